package archive

import (
	"reflect"
	"testing"
)

func TestRequestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		in     *RequestPayload
		stored bool // false: not storable, the build falls back to the practice
	}{
		{"nil", nil, false},
		{"rows and inputs", &RequestPayload{Rows: []map[string]string{
			{"NUM_FATTURA": "F1", "IMPORTO_FATTURA": "10,00", "COD_POD": "IT001E00000001"},
			{"NUM_FATTURA": "F2", "DATA_SCADENZA": "01/02/2026", "COD_POD": "IT001E00000001"},
		}, Inputs: []int64{3, 17}}, true},
		{"no inputs", &RequestPayload{Rows: []map[string]string{{"A": "1"}}}, true},
		{"no rows", &RequestPayload{Inputs: []int64{1}}, true},
		{"value with a separator", &RequestPayload{Rows: []map[string]string{{"DENOMINAZIONE": "a\x1fb"}}}, false},
		{"unicode and quotes", &RequestPayload{Rows: []map[string]string{{"DENOMINAZIONE": `Società "Alfa"; è`}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := payloadText(tt.in)
			if (text != "") != tt.stored {
				t.Fatalf("stored = %v, want %v (%q)", text != "", tt.stored, text)
			}
			if !tt.stored {
				return
			}
			got, err := parsePayload(text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.in) {
				t.Errorf("round trip: got %+v, want %+v", got, tt.in)
			}
		})
	}
	for _, bad := range []string{"", "2\x1e\x1eA", "1\x1ex\x1eA", "1\x1e\x1eA\x1fB\x1e1"} {
		if _, err := parsePayload(bad); err == nil {
			t.Errorf("parsePayload(%q) accepted", bad)
		}
	}
}
