package flows

import (
	"encoding/json"
	"testing"
)

func TestDateJSON(t *testing.T) {
	type holder struct {
		D Date `json:"d"`
	}
	for _, tt := range []struct {
		in   string
		want Date
		out  string // re-encoded
	}{
		{`{"d":"2026-03-01"}`, D(2026, 3, 1), `{"d":"2026-03-01"}`},
		{`{"d":"01/03/2026"}`, D(2026, 3, 1), `{"d":"2026-03-01"}`},
		{`{"d":{"Y":2026,"M":3,"D":1}}`, D(2026, 3, 1), `{"d":"2026-03-01"}`}, // stored before dates were strings
		{`{"d":""}`, Date{}, `{"d":""}`},
		{`{"d":null}`, Date{}, `{"d":""}`},
		{`{}`, Date{}, `{"d":""}`},
	} {
		var h holder
		if err := json.Unmarshal([]byte(tt.in), &h); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if h.D != tt.want {
			t.Errorf("%s: got %v, want %v", tt.in, h.D, tt.want)
		}
		b, err := json.Marshal(h)
		if err != nil || string(b) != tt.out {
			t.Errorf("%s: re-encoded %s (%v), want %s", tt.in, b, err, tt.out)
		}
	}
	for _, bad := range []string{`{"d":"2026-02-30"}`, `{"d":"soon"}`, `{"d":17}`} {
		var h holder
		if err := json.Unmarshal([]byte(bad), &h); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
