package flows

import (
	"encoding/json"
	"reflect"
	"strings"
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

// A month's spend is written compactly and read back in both its forms, and zero
// fields of a case are left out without changing what is read back.
func TestCaseJSONCompactAndLegacy(t *testing.T) {
	m := MonthSpend{Month: D(2024, 3, 1), Amount: 8000}
	b, err := json.Marshal(m)
	if err != nil || string(b) != `["2024-03-01",8000]` {
		t.Fatalf("marshal %s %v", b, err)
	}
	for _, in := range []string{`["2024-03-01",8000]`, `{"Month":"2024-03-01","Amount":8000}`, `{"Month":{"Y":2024,"M":3,"D":1},"Amount":8000}`} {
		var got MonthSpend
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != m {
			t.Errorf("%s: got %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{`["2024-13-01",1]`, `["2024-03-01","x"]`, `[1,2]`} {
		var got MonthSpend
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	c := Case{Sector: "E", POD: "IT001E12345678", CustomerCF: "RSSMRA80A01H501U", SwitchDate: D(2025, 3, 1), PointActive: true,
		Invoices: []Invoice{{Number: "F1", Issued: D(2025, 1, 1), Amount: 4000, Unpaid: 4000, Reading: "E"}},
		Mora:     []MoraNotice{{Date: D(2025, 4, 10), Channel: "RA", MentionsCMOR: true}},
		Spend:    []MonthSpend{m}}
	b, err = json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{`"PDR"`, `"Voltura"`, `"RAI"`, `"Received"`, `"Conguagliata"`, `"PreviousCMOR"`} {
		if strings.Contains(string(b), absent) {
			t.Errorf("zero field %s written: %s", absent, b)
		}
	}
	var back Case
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("round trip: %+v %v", back, err)
	}
}
