package archive

import (
	"reflect"
	"testing"
)

func TestRequestPayloadRoundTrip(t *testing.T) {
	rows := [][]string{
		{"", "F1", "10.00", "IT001E00000001"},
		{"", "F2", "", "IT001E00000001"},
	}
	tests := []struct {
		name   string
		in     *RequestPayload
		stored bool // false: not storable, the build falls back to the practice unchecked
	}{
		{"nil", nil, false},
		{"rows and inputs", &RequestPayload{Layout: "k3x9", Values: rows, Inputs: []int64{3, 17}}, true},
		{"no inputs", &RequestPayload{Layout: "k3x9", Values: [][]string{{"1"}}}, true},
		{"no rows", &RequestPayload{Layout: "k3x9", Values: [][]string{}, Inputs: []int64{1}}, true},
		{"no layout", &RequestPayload{Values: [][]string{{"1"}}}, false},
		{"layout with a separator", &RequestPayload{Layout: "k\x1e", Values: [][]string{{"1"}}}, false},
		{"map rows only (form 1 is not written any more)", &RequestPayload{Rows: []map[string]string{{"A": "1"}}}, false},
		{"value with a separator (hashed all the same)", &RequestPayload{Layout: "k", Values: [][]string{{"a\x1fb"}}}, true},
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
			if text[0] != '3' || len(text) > 100 {
				t.Errorf("stored %q (%d bytes), want form 3 without the rows", text, len(text))
			}
			got, err := parsePayload(text)
			if err != nil {
				t.Fatal(err)
			}
			// Read back: the rows' hash in their place.
			want := &RequestPayload{Layout: tt.in.Layout, Hash: PayloadHash(tt.in.Values), Inputs: tt.in.Inputs}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip: got %+v, want %+v", got, want)
			}
			// Stored again as read (a payload moved or copied): the same text.
			if again := payloadText(got); again != text {
				t.Errorf("stored again: %q, want %q", again, text)
			}
		})
	}
	// Forms 1 and 2, written by earlier versions, are still read with their rows.
	got, err := parsePayload("1\x1e3,17\x1eNUM_FATTURA\x1fCOD_POD\x1eF1\x1fIT001E00000001\x1eF2\x1f")
	want := &RequestPayload{Rows: []map[string]string{{"NUM_FATTURA": "F1", "COD_POD": "IT001E00000001"}, {"NUM_FATTURA": "F2"}}, Inputs: []int64{3, 17}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("form 1: got %+v, %v; want %+v", got, err, want)
	}
	got, err = parsePayload("2\x1e3,17\x1ek3x9\x1e\x1fF1\x1f10.00\x1fIT001E00000001\x1e\x1fF2\x1f\x1fIT001E00000001")
	want = &RequestPayload{Layout: "k3x9", Values: rows, Inputs: []int64{3, 17}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("form 2: got %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"", "3\x1e\x1eA", "3\x1e\x1eA\x1eabc", "4\x1e\x1eA\x1e" + PayloadHash(nil), "1\x1ex\x1eA", "1\x1e\x1eA\x1fB\x1e1"} {
		if _, err := parsePayload(bad); err == nil {
			t.Errorf("parsePayload(%q) accepted", bad)
		}
	}
}

// The hash tells rows apart that a joined text would not: values moved across a
// boundary, a row split in two, an empty value added.
func TestPayloadHashDistinguishes(t *testing.T) {
	forms := [][][]string{
		nil,
		{{}},
		{{""}},
		{{"", ""}},
		{{"ab", "c"}},
		{{"a", "bc"}},
		{{"abc"}},
		{{"a"}, {"bc"}},
		{{"a", "bc"}, {}},
		{{"10.00"}},
		{{"10,00"}},
	}
	seen := map[string]int{}
	for i, f := range forms {
		h := PayloadHash(f)
		if len(h) != 64 {
			t.Fatalf("PayloadHash(%q) = %q, want 64 hex digits", f, h)
		}
		if j, ok := seen[h]; ok {
			t.Errorf("PayloadHash(%q) = PayloadHash(%q)", f, forms[j])
		}
		seen[h] = i
		if again := PayloadHash(f); again != h {
			t.Errorf("PayloadHash(%q) not stable", f)
		}
	}
}
