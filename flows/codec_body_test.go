package flows

import (
	"bytes"
	"errors"
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

// A refused row is refused by a BodyEncoder as by a Writer, and leaves nothing behind
// in the encoder: the next request's body is what a new encoder gives.
func TestEncodeBodyRefusesBadRow(t *testing.T) {
	f := DefaultCatalog().Flow("ANN_REQ")
	for _, format := range []string{"csv", "xml"} {
		enc, err := NewBodyEncoder(f, format)
		if err != nil {
			t.Fatal(err)
		}
		good := sampleRequests(t, f)
		if _, err := enc.Encode(append(good[0][:1:1], map[string]string{"CP_UTENTE": "x"})); err == nil {
			t.Fatalf("%s: a row without its required fields was encoded", format)
		}
		got, err := enc.Encode(good[1])
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := NewBodyEncoder(f, format)
		want, err := fresh.Encode(good[1])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || len(got) == 0 {
			t.Errorf("%s: after a refused request the next body is %q, want %q", format, got, want)
		}
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

// The positional form of a REQ request (ReqRecords, header filled later by
// FillReqHeader, as the handler stores it and the build encodes it) writes exactly the
// bytes of its map form (ReqRows), in CSV and XML.
func TestReqRecordsEncodeAsReqRows(t *testing.T) {
	f := DefaultCatalog().Flow("REQ")
	c := Case{Sector: "E", POD: "IT001E12345678", CustomerCF: "RSSMRA80A01H501U", CustomerName: "Mario; \"Rossi\"", SwitchDate: D(2025, 3, 1),
		Mora: []MoraNotice{{Date: D(2025, 4, 10), Channel: "ra", Term: D(2025, 4, 30), Ref: "R1"}},
		Invoices: []Invoice{
			{Number: "F1", Issued: D(2025, 1, 1), Due: D(2025, 2, 1), PeriodFrom: D(2024, 11, 1), PeriodTo: D(2024, 12, 31), Amount: 4000, Unpaid: 4000, Reading: "e"},
			{Number: "F9", Issued: D(2025, 1, 1), Due: D(2025, 2, 1), PeriodFrom: D(2024, 12, 1), PeriodTo: D(2024, 12, 31), Amount: 100, Unpaid: 100, Reading: "R"},
			{Number: "F2", Issued: D(2025, 2, 1), Due: D(2025, 3, 1), PeriodFrom: D(2025, 1, 1), PeriodTo: D(2025, 1, 31), Amount: 2500, Unpaid: 2500, Reading: "E"},
		}, PreviousCPGestore: "SII2024A0000001"}
	hdr := ReqHeader{PIVAUtente: "01234567897", PIVAGestore: "12345678903", CPUtente: "E250000001", PIVACCUscita: "00488410010"}
	audits := map[string]*CMORAudit{
		"counted two of three": {Credit: 6500, CMOR: 6500, Estimate: 9000, Counted: []string{"F1", "F2"}},
		"with previous CMOR":   {Credit: 6500, CMOR: 6500, Estimate: 9000, Previous: 1200, Counted: []string{"F1"}},
	}
	for name, a := range audits {
		for _, format := range []string{"csv", "xml"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				enc, err := NewBodyEncoder(f, format)
				if err != nil {
					t.Fatal(err)
				}
				want, err := enc.Encode(ReqRows(hdr, c, a))
				if err != nil {
					t.Fatal(err)
				}
				recs, err := ReqRecords(f, ReqHeader{}, c, a)
				if err != nil {
					t.Fatal(err)
				}
				if err := FillReqHeader(recs, hdr); err != nil {
					t.Fatal(err)
				}
				got, err := enc.EncodeRecords(recs)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("records encode as\n%s\nmaps as\n%s", got, want)
				}
				if len(recs) == 0 {
					t.Fatal("no rows")
				}
				back, ok := RecordOf(f, recs[0].Values)
				if !ok || back.Get("CP_UTENTE") != hdr.CPUtente {
					t.Errorf("RecordOf: %v %q", ok, back.Get("CP_UTENTE"))
				}
			})
		}
	}
}

// A catalog whose REQ lacks a field the request has refuses the request by name, in
// both forms; values stored under another layout are not read back.
func TestReqRecordsUnderAnotherLayout(t *testing.T) {
	cat := DefaultCatalog()
	f := cat.Flow("REQ")
	var names []string
	for _, fd := range f.Fields {
		names = append(names, fd.Name)
	}
	renamed := NewLayout(append([]string{"X"}, names[1:]...))
	reordered := NewLayout(append(append([]string(nil), names[1:]...), names[0]))
	if f.Layout().Signature() == renamed.Signature() || f.Layout().Signature() == reordered.Signature() || NewLayout(names).Signature() != f.Layout().Signature() {
		t.Fatalf("signatures: %s %s %s", f.Layout().Signature(), renamed.Signature(), reordered.Signature())
	}
	if _, ok := RecordOf(f, make([]string, len(f.Fields)-1)); ok {
		t.Error("RecordOf took values of another length")
	}
	c := Case{Sector: "E", POD: "IT001E12345678", CustomerCF: "RSSMRA80A01H501U", SwitchDate: D(2025, 3, 1),
		Invoices: []Invoice{{Number: "F1", Issued: D(2025, 1, 1), Due: D(2025, 2, 1), Amount: 4000, Unpaid: 4000}}}
	small := &Flow{Key: "REQ", Fields: []Field{{Name: "CP_UTENTE"}, {Name: "NUM_FATTURA"}}}
	small.layout = NewLayout([]string{"CP_UTENTE", "NUM_FATTURA"})
	_, err := ReqRecords(small, ReqHeader{}, c, nil)
	var re *RecordError
	if !errors.As(err, &re) || len(re.Findings) == 0 || re.Findings[0].Rule != RuleCSVColumn {
		t.Fatalf("ReqRecords on a flow without SETTORE: %v", err)
	}
	recs := []Record{NewRecord(small)}
	if err := FillReqHeader(recs, ReqHeader{PIVAUtente: "01234567897"}); !errors.As(err, &re) {
		t.Fatalf("FillReqHeader on a flow without PIVA_UTENTE: %v", err)
	}
}
