package flows

import (
	"bytes"
	"testing"
)

// Assembling bodies encoded one request at a time gives the very bytes of encoding
// all the rows at once, in both formats, for flows with and without row groups.
func TestAssembleEqualsWholeEncoding(t *testing.T) {
	cat := DefaultCatalog()
	for _, tc := range []struct {
		flow, format string
	}{{"REQ", "csv"}, {"REQ", "xml"}, {"ANN_REQ", "csv"}, {"ANN_REQ", "xml"}} {
		t.Run(tc.flow+"/"+tc.format, func(t *testing.T) {
			f := cat.Flow(tc.flow)
			if f == nil {
				t.Fatalf("no flow %s", tc.flow)
			}
			requests := sampleRequests(t, f)
			enc, err := NewBodyEncoder(f, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			var all []map[string]string
			var bodies [][]byte
			for _, rows := range requests {
				all = append(all, rows...)
				b, err := enc.Encode(rows)
				if err != nil {
					t.Fatal(err)
				}
				bodies = append(bodies, b)
			}
			var whole bytes.Buffer
			w, err := NewWriter(&whole, f, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range all {
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			prefix, suffix, err := Envelope(f, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			got := Assemble(prefix, suffix, bodies)
			if !bytes.Equal(got, whole.Bytes()) {
				t.Errorf("assembled file differs from the whole encoding:\n%s\n---\n%s", got, whole.Bytes())
			}
			empty := Assemble(prefix, suffix, nil)
			var none bytes.Buffer
			w, _ = NewWriter(&none, f, tc.format)
			w.Close()
			if !bytes.Equal(empty, none.Bytes()) {
				t.Errorf("empty file: %q, want %q", empty, none.Bytes())
			}
		})
	}
}

// A refused row is refused by a BodyEncoder as by a Writer.
func TestEncodeBodyRefusesBadRow(t *testing.T) {
	enc, err := NewBodyEncoder(DefaultCatalog().Flow("ANN_REQ"), "csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode([]map[string]string{{"CP_UTENTE": "x"}}); err == nil {
		t.Fatal("a row without its required fields was encoded")
	}
}

func sampleRequests(t *testing.T, f *Flow) [][]map[string]string {
	t.Helper()
	switch f.Key {
	case "REQ":
		c := Case{Sector: "E", POD: "IT001E12345678", CustomerCF: "RSSMRA80A01H501U", CustomerName: "Mario Rossi", SwitchDate: D(2025, 3, 1),
			Mora: []MoraNotice{{Date: D(2025, 4, 10), Channel: "RA", Term: D(2025, 4, 30), MentionsCMOR: true, Ref: "R1"}},
			Invoices: []Invoice{
				{Number: "F1", Issued: D(2025, 1, 1), Due: D(2025, 2, 1), PeriodFrom: D(2024, 11, 1), PeriodTo: D(2024, 12, 31), Amount: 4000, Unpaid: 4000, Reading: "E"},
				{Number: "F2", Issued: D(2025, 2, 1), Due: D(2025, 3, 1), PeriodFrom: D(2025, 1, 1), PeriodTo: D(2025, 1, 31), Amount: 2500, Unpaid: 2500, Reading: "E"},
			}}
		a := &CMORAudit{Credit: 6500, CMOR: 6500, Estimate: 9000, Counted: []string{"F1", "F2"}}
		var out [][]map[string]string
		for _, code := range []string{"E250000001", "E250000002", "E250000003"} {
			out = append(out, ReqRows(ReqHeader{PIVAUtente: "01234567897", PIVAGestore: "12345678903", CPUtente: code}, c, a))
		}
		return out
	default:
		var out [][]map[string]string
		for i, code := range []string{"E250000011", "E250000012"} {
			out = append(out, []map[string]string{{"PIVA_UTENTE": "01234567897", "PIVA_GESTORE": "12345678903", "CP_UTENTE": code,
				"CP_GESTORE": "SII2025A000000" + string(rune('1'+i)), "COD_CAUSALE_ANNULLAMENTO": "AN-01", "MOTIVAZIONE": "paid; \"in full\"", "DATA_EVENTO": "01/06/2025"}})
		}
		return out
	}
}
