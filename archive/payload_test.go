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
		{"rows and inputs", &RequestPayload{Layout: "k3x9", Values: [][]string{
			{"", "F1", "10.00", "IT001E00000001"},
			{"", "F2", "", "IT001E00000001"},
		}, Inputs: []int64{3, 17}}, true},
		{"no inputs", &RequestPayload{Layout: "k3x9", Values: [][]string{{"1"}}}, true},
		{"no rows", &RequestPayload{Layout: "k3x9", Values: [][]string{}, Inputs: []int64{1}}, true},
		{"no layout", &RequestPayload{Values: [][]string{{"1"}}}, false},
		{"map rows only (form 1 is not written any more)", &RequestPayload{Rows: []map[string]string{{"A": "1"}}}, false},
		{"value with a separator", &RequestPayload{Layout: "k", Values: [][]string{{"a\x1fb"}}}, false},
		{"unicode and quotes", &RequestPayload{Layout: "k", Values: [][]string{{`Società "Alfa"; è`, ""}}}, true},
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
	// Form 1, written by earlier versions, is still read.
	got, err := parsePayload("1\x1e3,17\x1eNUM_FATTURA\x1fCOD_POD\x1eF1\x1fIT001E00000001\x1eF2\x1f")
	want := &RequestPayload{Rows: []map[string]string{{"NUM_FATTURA": "F1", "COD_POD": "IT001E00000001"}, {"NUM_FATTURA": "F2"}}, Inputs: []int64{3, 17}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("form 1: got %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"", "3\x1e\x1eA", "1\x1ex\x1eA", "1\x1e\x1eA\x1fB\x1e1"} {
		if _, err := parsePayload(bad); err == nil {
			t.Errorf("parsePayload(%q) accepted", bad)
		}
	}
}
