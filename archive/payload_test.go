package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestRequestPayloadRoundTrip(t *testing.T) {
	rows := [][]string{
		{"", "F1", "10.00", "IT001E00000001"},
		{"", "F2", "", "IT001E00000001"},
	}
	upper := strings.ToUpper(PayloadHash(rows))
	tests := []struct {
		name   string
		in     *RequestPayload
		form   byte // stored form: payloadForm4, '3', or 0 (not storable: the build falls back to the practice unchecked)
		length int  // the stored length, when form 4
	}{
		{"nil", nil, 0, 0},
		{"rows and inputs", &RequestPayload{Layout: "k3x9", Values: rows, Inputs: []int64{3, 17}}, payloadForm4, 1 + 1 + 2 + 4 + 32},
		{"no inputs", &RequestPayload{Layout: "k3x9", Values: [][]string{{"1"}}}, payloadForm4, 1 + 1 + 4 + 32},
		{"no rows", &RequestPayload{Layout: "k3x9", Values: [][]string{}, Inputs: []int64{1}}, payloadForm4, 1 + 1 + 1 + 4 + 32},
		{"a REQ's: one input, a 13-digit signature", &RequestPayload{Layout: "1y2p0ij32e8e7", Values: rows, Inputs: []int64{1}}, payloadForm4, 1 + 1 + 1 + 13 + 32},
		{"large, zero and negative input ids", &RequestPayload{Layout: "k", Values: rows, Inputs: []int64{0, -1, 1 << 40, math.MaxInt64, math.MinInt64}}, payloadForm4, 0},
		{"the hash as read, no rows", &RequestPayload{Layout: "k", Hash: PayloadHash(rows), Inputs: []int64{2}}, payloadForm4, 1 + 1 + 1 + 1 + 32},
		{"a hash not in PayloadHash's hex (form 3 keeps it as it is)", &RequestPayload{Layout: "k", Hash: upper, Inputs: []int64{2}}, '3', 0},
		{"no layout", &RequestPayload{Values: [][]string{{"1"}}}, 0, 0},
		{"layout with a separator", &RequestPayload{Layout: "k\x1e", Values: [][]string{{"1"}}}, 0, 0},
		{"map rows only (form 1 is not written any more)", &RequestPayload{Rows: []map[string]string{{"A": "1"}}}, 0, 0},
		{"value with a separator (hashed all the same)", &RequestPayload{Layout: "k", Values: [][]string{{"a\x1fb"}}}, payloadForm4, 0},
		{"unicode and quotes", &RequestPayload{Layout: "k", Values: [][]string{{`Società "Alfa"; è`, ""}}}, payloadForm4, 0},
		{"layout in unicode", &RequestPayload{Layout: "è\x00", Values: [][]string{{"1"}}}, payloadForm4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := payloadValue(tt.in)
			if (v != nil) != (tt.form != 0) {
				t.Fatalf("stored = %v, want %v (%q)", v != nil, tt.form != 0, v)
			}
			if v == nil {
				return
			}
			if v[0] != tt.form || tt.length != 0 && len(v) != tt.length || len(v) > 100 {
				t.Errorf("stored %q (%d bytes), want form %q of %d bytes", v, len(v), tt.form, tt.length)
			}
			got, err := ParsePayload(string(v))
			if err != nil {
				t.Fatal(err)
			}
			// Read back: the rows' hash in their place.
			hash := tt.in.Hash
			if tt.in.Values != nil {
				hash = PayloadHash(tt.in.Values)
			}
			want := &RequestPayload{Layout: tt.in.Layout, Hash: hash, Inputs: tt.in.Inputs}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip: got %+v, want %+v", got, want)
			}
			// Stored again as read (a payload moved or copied): the same bytes.
			if again := payloadValue(got); !bytes.Equal(again, v) {
				t.Errorf("stored again: %q, want %q", again, v)
			}
			// Form 3 of the same payload (as earlier versions wrote it) reads the same.
			if f3, err := ParsePayload(string(payloadForm3(tt.in, hash))); err != nil || !reflect.DeepEqual(f3, want) {
				t.Errorf("form 3 of it: %+v, %v; want %+v", f3, err, want)
			}
		})
	}
	// Forms 1, 2 and 3, written by earlier versions, are still read (1 and 2 with their rows).
	for _, tt := range []struct {
		name, stored string
		want         *RequestPayload
	}{
		{"form 1", "1\x1e3,17\x1eNUM_FATTURA\x1fCOD_POD\x1eF1\x1fIT001E00000001\x1eF2\x1f",
			&RequestPayload{Rows: []map[string]string{{"NUM_FATTURA": "F1", "COD_POD": "IT001E00000001"}, {"NUM_FATTURA": "F2"}}, Inputs: []int64{3, 17}}},
		{"form 2", "2\x1e3,17\x1ek3x9\x1e\x1fF1\x1f10.00\x1fIT001E00000001\x1e\x1fF2\x1f\x1fIT001E00000001",
			&RequestPayload{Layout: "k3x9", Values: rows, Inputs: []int64{3, 17}}},
		{"form 3", "3\x1e3,17\x1ek3x9\x1e" + PayloadHash(rows), &RequestPayload{Layout: "k3x9", Hash: PayloadHash(rows), Inputs: []int64{3, 17}}},
		{"form 3, no inputs", "3\x1e\x1ek3x9\x1e" + upper, &RequestPayload{Layout: "k3x9", Hash: upper}},
	} {
		got, err := ParsePayload(tt.stored)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	raw := string(bytes.Repeat([]byte{0xab}, 32))
	for _, bad := range []string{"", "3\x1e\x1eA", "3\x1e\x1eA\x1eabc", "4\x1e\x1eA\x1e" + PayloadHash(nil), "1\x1ex\x1eA", "1\x1e\x1eA\x1fB\x1e1",
		"\x04", "\x04\x00", "\x04\x00" + raw, // no layout
		"\x04\x01", "\x04\x02\x02", "\x04\xff", "\x04\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80", // inputs cut short or overlong
		"\x04\x01\x80" + raw, // an id cut short
	} {
		if _, err := ParsePayload(bad); err == nil {
			t.Errorf("ParsePayload(%q) accepted", bad)
		}
	}
}

// FuzzParsePayload: any stored bytes are read without a panic, and a payload read is
// stored and read again to the same payload.
func FuzzParsePayload(f *testing.F) {
	rows := [][]string{{"a", "b"}}
	for _, p := range []*RequestPayload{
		{Layout: "k3x9", Values: rows, Inputs: []int64{3, 17}},
		{Layout: "k", Values: rows},
		{Layout: "k", Hash: "AB", Inputs: []int64{-5}},
	} {
		f.Add(payloadValue(p))
	}
	f.Add([]byte("2\x1e3\x1ek\x1ea\x1fb"))
	f.Add([]byte("1\x1e3\x1eA\x1fB\x1ea\x1fb"))
	f.Fuzz(func(t *testing.T, stored []byte) {
		p, err := ParsePayload(string(stored))
		if err != nil || p.Hash == "" {
			return
		}
		v := payloadValue(p)
		if v == nil {
			if p.Layout != "" && !hasPayloadSeparator(p.Layout) {
				t.Fatalf("%q read as %+v, not stored again", stored, p)
			}
			return
		}
		again, err := ParsePayload(string(v))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("%q read as %+v, stored as %q, read again as %+v (%v)", stored, p, v, again, err)
		}
	})
}

// FuzzPayloadForm4: form 4 gives back any input ids, layout and hash.
func FuzzPayloadForm4(f *testing.F) {
	f.Add("k3x9", int64(3), int64(17), []byte("rows"))
	f.Add("", int64(0), int64(-1), []byte{})
	f.Fuzz(func(t *testing.T, layout string, a, b int64, seed []byte) {
		sum := sha256.Sum256(seed)
		in := &RequestPayload{Layout: layout, Hash: hex.EncodeToString(sum[:]), Inputs: []int64{a, b}}
		v := payloadValue(in)
		if layout == "" || hasPayloadSeparator(layout) {
			if v != nil {
				t.Fatalf("layout %q stored as %q", layout, v)
			}
			return
		}
		if v[0] != payloadForm4 {
			t.Fatalf("stored %q, want form 4", v)
		}
		got, err := ParsePayload(string(v))
		if err != nil || !reflect.DeepEqual(got, in) {
			t.Fatalf("%+v stored as %q, read as %+v (%v)", in, v, got, err)
		}
	})
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
