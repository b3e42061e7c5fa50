package archive

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
)

// decodeRequestData gives what json.Unmarshal gives for every text, the hand path
// or not; the table says which texts the hand path takes.
func TestDecodeRequestDataAsJSON(t *testing.T) {
	tests := []struct {
		text string
		fast bool // flatStringMap reads it
	}{
		{`{}`, true},
		{`{"IMPORTO_CREDITO":"120.00","IMPORTO_INDENNIZZO":"120.00","STIMA_SPESA_4_MESI":"320.00"}`, true},
		{`{"a":"b"}`, true},
		{`{"":""}`, true},
		{`{"a":"1","a":"2"}`, true}, // the later key wins, as in json.Unmarshal
		{`{"k":"x y ; : , { } [ ] / ~"}`, true},
		{`{ "a":"b"}`, false},
		{`{"a" : "b"}`, false},
		{`{"a":"b"} `, false},
		{`{"a":"b\"c"}`, false},
		{`{"a":"\u00e8"}`, false},
		{`{"a":"è"}`, false},
		{"{\"a\":\"\xff\"}", false},
		{"{\"a\":\"x\ty\"}", false},
		{`{"a":1}`, false},
		{`{"a":null}`, false},
		{`{"a":"b",}`, false},
		{`{"a":"b"`, false},
		{`{"a":"b"}x`, false},
		{`{"a":"b"}}`, false},
		{`{"a"}`, false},
		{`{,}`, false},
		{`null`, false},
		{``, false},
		{`{`, false},
		{`[]`, false},
		{`"x"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			var want map[string]string
			wantErr := json.Unmarshal([]byte(tt.text), &want)
			var got map[string]string
			decodeRequestData(tt.text, &got)
			if !reflect.DeepEqual(got, want) || (got == nil) != (want == nil) {
				t.Errorf("decodeRequestData(%q) = %#v, json.Unmarshal %#v (%v)", tt.text, got, want, wantErr)
			}
			if _, ok := flatStringMap(tt.text); ok != tt.fast {
				t.Errorf("flatStringMap(%q) ok = %v, want %v", tt.text, ok, tt.fast)
			}
		})
	}
	// Into a map already holding values (none of cmord's readers does this): merged,
	// as json.Unmarshal merges.
	m := map[string]string{"x": "1"}
	decodeRequestData(`{"a":"b"}`, &m)
	if want := map[string]string{"x": "1", "a": "b"}; !reflect.DeepEqual(m, want) {
		t.Errorf("into a map holding values: %v, want %v", m, want)
	}
}

func FuzzDecodeRequestData(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"b"}`, `{"a":"1","b":"2"}`, `{"a":"b\"c"}`, `{"a":1}`, `null`, `{"a":"b",}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 0 && text[0] == requestDataCompact {
			return // the compact form (FuzzCompactRequestData); no JSON starts so
		}
		var want map[string]string
		_ = json.Unmarshal([]byte(text), &want)
		var got map[string]string
		decodeRequestData(text, &got)
		if !reflect.DeepEqual(got, want) || (got == nil) != (want == nil) {
			t.Errorf("decodeRequestData(%q) = %#v, json.Unmarshal %#v", text, got, want)
		}
	})
}

// The compact form gives back every map it stores, and takes what JSON took in far
// fewer bytes: a REQ's three amounts in 13 bytes instead of 90.
func TestRequestDataCompactRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
		size int // stored bytes (0: not checked)
	}{
		{"nil (stored as empty)", nil, 1},
		{"empty", map[string]string{}, 1},
		{"a REQ's snapshot", map[string]string{"IMPORTO_CREDITO": "271.23", "IMPORTO_INDENNIZZO": "271.23", "STIMA_SPESA_4_MESI": "420.21"}, 13},
		{"an ANN_REQ", map[string]string{"COD_CAUSALE_ANNULLAMENTO": "A01", "MOTIVAZIONE": "pagato; \"tutto\" è a posto", "DATA_EVENTO": "2025-10-15"}, 0},
		{"a SUSP_REQ with the entrante's _src", map[string]string{"MOTIVO_SOSPENSIONE": "M1", "CMOR_INCASSATO": "N", "COD_POD": "IT001E00000001", "_src": "12"}, 0},
		{"names not in the table", map[string]string{"": "", "a": "b", "IMPORTO_NUOVO": "1.00", "x\x00y": "\x01"}, 0},
		{"amounts at the bounds", map[string]string{"A": "0.00", "B": "-0.01", "C": "9999999999999999.99", "D": "-9999999999999999.99", "E": "0.10"}, 0},
		{"amount-like texts kept as text", map[string]string{"A": "-0.00", "B": "01.00", "C": "1.5", "D": "1,00", "E": "+1.00", "F": "10000000000000000.00",
			"G": ".00", "H": "1.000", "I": "1e2", "J": "- 1.00", "K": "--1.00", "L": "1.0a", "M": " 1.00"}, 0},
		{"bytes JSON would have changed", map[string]string{"A": "\xff\xfe", "\xc3": "<&>"}, 0},
		{"a long value", map[string]string{"NOTE": strings.Repeat("n", 300)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeRequestData(tt.data)
			if b[0] != requestDataCompact || tt.size != 0 && len(b) != tt.size {
				t.Errorf("stored %q (%d bytes), want the compact form of %d", b, len(b), tt.size)
			}
			want := tt.data
			if want == nil {
				want = map[string]string{}
			}
			var got map[string]string
			decodeRequestData(string(b), &got)
			if !reflect.DeepEqual(got, want) || got == nil {
				t.Errorf("round trip: got %#v, want %#v", got, want)
			}
			if again := encodeRequestData(got); string(again) != string(b) {
				t.Errorf("stored again: %q, want %q", again, b)
			}
			// The same map as JSON (as earlier versions stored it) reads the same,
			// where JSON can carry it.
			j, _ := json.Marshal(want)
			var fromJSON map[string]string
			decodeRequestData(string(j), &fromJSON)
			if tt.name != "bytes JSON would have changed" && !reflect.DeepEqual(fromJSON, got) {
				t.Errorf("as JSON %s: %#v, compact %#v", j, fromJSON, got)
			}
		})
	}
	// Into a map already holding values: merged, as JSON is.
	m := map[string]string{"x": "1", "a": "old"}
	decodeRequestData(string(encodeRequestData(map[string]string{"a": "b"})), &m)
	if want := map[string]string{"x": "1", "a": "b"}; !reflect.DeepEqual(m, want) {
		t.Errorf("into a map holding values: %v, want %v", m, want)
	}
}

// A compact text cut short or with an unknown code is not read: the map is left as
// it was (as JSON that does not parse).
func TestCompactRequestDataBad(t *testing.T) {
	whole := string(encodeRequestData(map[string]string{"IMPORTO_CREDITO": "271.23", "zz": "abc"}))
	bad := []string{
		"\x01\x7f",       // a code past the table
		"\x01\x00",       // an escaped name without its length
		"\x01\x00\x05ab", // a name cut short
		"\x01\x01",       // a value without its length
		"\x01\x01\x03ab", // a value cut short
		"\x01\x81",       // an amount missing
		"\x01\x81\xff\xff\xff\xff\xff\xff\xff\xff\x7f", // an amount out of bounds
	}
	// Cut anywhere but after an entry (the marker, the amount's entry), a text is not whole.
	first := len(encodeRequestData(map[string]string{"IMPORTO_CREDITO": "271.23"}))
	for i := 2; i < len(whole); i++ {
		if i != first {
			bad = append(bad, whole[:i])
		}
	}
	for _, text := range bad {
		var m map[string]string
		decodeRequestData(text, &m)
		if m != nil {
			t.Errorf("decodeRequestData(%q) = %#v, want nothing", text, m)
		}
	}
	held := map[string]string{"x": "1"}
	decodeRequestData("\x01\x7f", &held)
	if want := map[string]string{"x": "1"}; !reflect.DeepEqual(held, want) {
		t.Errorf("a bad text changed the map: %v", held)
	}
}

// requestDataNamesPinned is requestDataNames as first released: a code is stored in
// every compact request, so this list may only grow at its end, never change.
var requestDataNamesPinned = []string{
	"COD_SERVIZIO", "COD_FLUSSO", "PIVA_UTENTE", "PIVA_GESTORE",
	"CP_UTENTE", "PIVA_CC_USCENTE", "SETTORE", "COD_POD",
	"COD_PDR", "CF_CLIENTE", "PIVA_CLIENTE", "DENOMINAZIONE",
	"DATA_SWITCH", "IMPORTO_CREDITO", "IMPORTO_INDENNIZZO", "IMPORTO_CMOR_PRECEDENTE",
	"CP_GESTORE_CMOR_PRECEDENTE", "STIMA_SPESA_4_MESI", "NUM_FATTURA", "DATA_EMISSIONE",
	"DATA_SCADENZA", "PERIODO_DA", "PERIODO_A", "IMPORTO_FATTURA",
	"IMPORTO_INSOLUTO", "TIPO_LETTURA", "DATA_COSTITUZIONE_MORA", "MEZZO",
	"DATA_RICEVIMENTO", "TERMINE_PAGAMENTO", "RIF_COMUNICAZIONE", "INFO_CMOR",
	"NOTE", "CP_GESTORE", "MOTIVO_SOSPENSIONE", "DATA_RICHIESTA_SOSPENSIONE_FORNITURA",
	"COD_PRATICA_SOSPENSIONE_DISTRIBUTORE", "CMOR_INCASSATO", "MOTIVO_REVOCA", "DATA_REVOCA",
	"COD_CAUSALE_ANNULLAMENTO", "MOTIVAZIONE", "DATA_EVENTO", "DATA_RESTITUZIONE",
	"IMPORTO_RESTITUITO", "MODALITA", "NUM_FATTURA_CMOR", "DATA_FATTURA",
	"IMPORTO_FATTURATO", "STATO_INCASSO", "IMPORTO_INCASSATO", "DATA_INCASSO",
	"_src",
}

// TestRequestDataNamesPinned: the compact form's name table keeps its order (it may
// only be appended to: append here too), holds each name once and at most 127, and
// holds every field of the default catalog's request flows (a field added to the
// catalog is stored in full until appended: smaller, not wrong).
func TestRequestDataNamesPinned(t *testing.T) {
	names := requestDataNames[:]
	if len(names) < len(requestDataNamesPinned) || !slices.Equal(names[:len(requestDataNamesPinned)], requestDataNamesPinned) {
		t.Fatalf("requestDataNames changed where it may only grow at its end:\n%q\nwas\n%q", names, requestDataNamesPinned)
	}
	if len(names) > 127 {
		t.Errorf("%d names, at most 127 fit in a code", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("%s twice", n)
		}
		seen[n] = true
	}
	for _, f := range flows.DefaultCatalog().Flows {
		if f.Direction != "out" {
			continue
		}
		for _, fd := range f.Fields {
			if !seen[fd.Name] {
				t.Errorf("%s's field %s is not in requestDataNames (append it)", f.Key, fd.Name)
			}
		}
	}
	// The codes as stored: pinned by value too.
	if b := encodeRequestData(map[string]string{"COD_SERVIZIO": "x", "IMPORTO_CREDITO": "1.00", "_src": "7"}); string(b) != "\x01\x01\x01x\x8e\xc8\x01\x35\x017" {
		t.Errorf("stored %q", b)
	}
}

// FuzzCompactRequestData: any text in the compact form is read without a panic, and
// what it reads is stored and read again the same; any map is stored and read back.
func FuzzCompactRequestData(f *testing.F) {
	f.Add(encodeRequestData(map[string]string{"IMPORTO_CREDITO": "271.23", "a": "b"}), "k", "1.00")
	f.Add([]byte{requestDataCompact, 0x7f}, "", "-0.00")
	f.Fuzz(func(t *testing.T, stored []byte, k, v string) {
		text := string(append([]byte{requestDataCompact}, stored...))
		var m map[string]string
		decodeRequestData(text, &m)
		if m != nil {
			var again map[string]string
			decodeRequestData(string(encodeRequestData(m)), &again)
			if !reflect.DeepEqual(again, m) {
				t.Fatalf("%q read as %#v, stored and read again as %#v", text, m, again)
			}
		}
		in := map[string]string{k: v, "IMPORTO_CREDITO": v, "x" + k: k}
		var got map[string]string
		decodeRequestData(string(encodeRequestData(in)), &got)
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("%#v stored and read as %#v", in, got)
		}
	})
}
