package flows

import (
	"strings"
	"testing"
)

func morosiRecord(t testing.TB, line int, vals map[string]string) Record {
	t.Helper()
	f := DefaultCatalog().Input("uscente.morosi")
	rec := NewRecord(f)
	for k, v := range vals {
		if err := rec.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	rec.Line = line
	return rec
}

func TestGrouperGroupsConsecutiveRows(t *testing.T) {
	row := func(line int, pod, cf, sw, inv string) Record {
		return morosiRecord(t, line, map[string]string{MorSector: "E", MorPOD: pod, MorCF: cf, MorSwitch: sw, MorInvNumber: inv,
			MorInvUnpaid: "10.00", MorMoraDate: "10/04/2025", MorMoraRef: "R1", MorMoraChannel: "RA"})
	}
	rows := []Record{
		row(2, "IT023E00121943", "RSSMRA85T10A562S", "01/03/2025", "F1"),
		row(3, "IT023E00121943", "RSSMRA85T10A562S", "01/03/2025", "F2"),
		row(4, "IT001E00000042", "RSSMRA85T10A562S", "01/03/2025", "F3"),
		row(5, "IT023E00121943", "RSSMRA85T10A562S", "01/03/2025", "F4"), // the first key again, later
		morosiRecord(t, 6, map[string]string{MorSector: "E"}),            // no key: ignored
	}
	var g Grouper
	var cases []*MorosiCase
	for _, r := range rows {
		if c := g.Add(r, r.Line == 4); c != nil {
			cases = append(cases, c)
		}
	}
	if c := g.Flush(); c != nil {
		cases = append(cases, c)
	}
	if len(cases) != 3 {
		t.Fatalf("%d cases, want 3", len(cases))
	}
	if got := len(cases[0].Case.Invoices); got != 2 || cases[0].FirstLine() != 2 || len(cases[0].Case.Mora) != 1 {
		t.Errorf("first case: %d invoices, first line %d, %d mora", got, cases[0].FirstLine(), len(cases[0].Case.Mora))
	}
	if !cases[1].Bad || cases[0].Bad {
		t.Errorf("bad flags: %v %v", cases[0].Bad, cases[1].Bad)
	}
	if cases[0].Key != cases[2].Key {
		t.Errorf("the repeated key must give the same case key: %s vs %s", cases[0].Key, cases[2].Key)
	}
	// The daemon merges the repeat into the practice the first one created.
	cases[2].MergeCase(cases[0].Case)
	if got := len(cases[2].Case.Invoices); got != 3 {
		t.Errorf("merged case has %d invoices, want 3", got)
	}
	if k := cases[0].Key; k != "U|IT023E00121943|RSSMRA85T10A562S|2025-03-01" {
		t.Errorf("case key %s", k)
	}
}

func TestReqRowsOnePerCountedInvoice(t *testing.T) {
	inv := func(n, unpaid string) Invoice {
		return Invoice{Number: n, Issued: D(2025, 1, 5), Due: D(2025, 2, 5), PeriodFrom: D(2024, 11, 1), PeriodTo: D(2024, 12, 31),
			Amount: MustAmount("20.00"), Unpaid: MustAmount(unpaid), Reading: "E"}
	}
	c := Case{Sector: "E", POD: "IT023E00121943", CustomerCF: "RSSMRA85T10A562S", CustomerName: "Mario Rossi", SwitchDate: D(2025, 3, 1),
		Mora:     []MoraNotice{{Date: D(2025, 4, 10), Channel: "ra", Term: D(2025, 4, 30), MentionsCMOR: true, Ref: "R1"}},
		Invoices: []Invoice{inv("F1", "10.00"), inv("F2", "0.00"), inv("F3", "5.00")}}
	a := &CMORAudit{RequestDate: D(2025, 10, 15), Credit: MustAmount("15.00"), CMOR: MustAmount("15.00"), Counted: []string{"F1", "F3"}}
	rows := ReqRows(ReqHeader{PIVAUtente: "00488410010", PIVAGestore: "01234567897", CPUtente: "E250000001"}, c, a)
	if len(rows) != 2 || rows[0]["NUM_FATTURA"] != "F1" || rows[1]["NUM_FATTURA"] != "F3" {
		t.Fatalf("rows %v", rows)
	}
	for _, r := range rows {
		if r["CP_UTENTE"] != "E250000001" || r["IMPORTO_INDENNIZZO"] != "15.00" || r["MEZZO"] != "RA" || r["INFO_CMOR"] != "S" {
			t.Errorf("row %v", r)
		}
		if _, ok := r["COD_PDR"]; ok {
			t.Errorf("empty values must be left out: %v", r)
		}
	}
	f := DefaultCatalog().Flow("REQ")
	var b strings.Builder
	w := NewCSVWriter(&b, f)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatalf("the REQ writer refuses our row: %v", err)
		}
	}
	w.Close()
}

func TestDecideAnswer(t *testing.T) {
	cat := DefaultCatalog()
	rec := func(key string, vals map[string]string) (*Flow, Record) {
		f := cat.Flow(key)
		r := NewRecord(f)
		for k, v := range vals {
			r.Set(k, v)
		}
		return f, r
	}
	tests := []struct {
		key      string
		vals     map[string]string
		from, to string
		refusal  bool
		conflict bool
	}{
		{"REQ_AMM", map[string]string{"VERIFICA_AMM": "1", "CP_GESTORE": "SII2025A0000001"}, StateSent, StateAdmitted, false, false},
		{"REQ_AMM", map[string]string{"VERIFICA_AMM": "0", "COD_CAUSALE": "4", "MOTIVAZIONE": "x"}, StateSent, StateInadmissible, true, false},
		{"REQ_AMM", map[string]string{"VERIFICA_AMM": "1"}, StateAdmitted, StateAdmitted, false, false}, // the same answer again
		{"REQ_AMM", map[string]string{"VERIFICA_AMM": "1"}, StateReady, StateReady, false, true},
		{"REQ_ESITO", map[string]string{"ESITO": "1"}, StateAdmitted, StateAccepted, false, false},
		{"REQ_ESITO", map[string]string{"ESITO": "0"}, StateAdmitted, StateRejected, true, false},
		{"REQ_ESITO", map[string]string{"ESITO": "1"}, StateSent, StateSent, false, true},
		{"SUSP_NOTIF", map[string]string{"TIPO_NOTIFICA": "S"}, StateAccepted, StateSuspended, false, false},
		{"SUSP_NOTIF", map[string]string{"TIPO_NOTIFICA": "R"}, StateSuspended, StateAccepted, false, false},
		{"ANN_AMM", map[string]string{"VERIFICA_AMM": "0"}, StateAccepted, StateAccepted, true, false},
		{"ANN_NOTIF", map[string]string{"FLAG_INDENNIZZO_GIA_EROGATO": "S"}, StateIndemnityPaid, StateAnnulled, false, false},
		{"ANN_NOTIF", nil, StateRejected, StateRejected, false, true},
		{"UPD_NOTIF", nil, StateAccepted, "AMOUNT_UPDATED", false, false},
	}
	for _, tc := range tests {
		f, r := rec(tc.key, tc.vals)
		d, err := DecideAnswer(cat, f, r, tc.from)
		if (err != nil) != tc.conflict {
			t.Errorf("%s from %s: err %v, want conflict %v", tc.key, tc.from, err, tc.conflict)
			continue
		}
		if !tc.conflict && (d.To != tc.to || d.Refusal != tc.refusal) {
			t.Errorf("%s from %s: to %s refusal %v; want %s %v", tc.key, tc.from, d.To, d.Refusal, tc.to, tc.refusal)
		}
	}
}

func FuzzGrouper(f *testing.F) {
	f.Add("IT023E00121943;RSSMRA85T10A562S;01/03/2025;F1\nIT023E00121943;RSSMRA85T10A562S;01/03/2025;F2")
	f.Add(";;;\n;x;01/13/2025;")
	cat := DefaultCatalog().Input("uscente.morosi")
	f.Fuzz(func(t *testing.T, s string) {
		var g Grouper
		seen := 0
		lines := strings.Split(s, "\n")
		for i, ln := range lines {
			parts := strings.Split(ln, ";")
			for len(parts) < 4 {
				parts = append(parts, "")
			}
			r := NewRecord(cat)
			r.Line = i + 2
			r.Set(MorPOD, parts[0])
			r.Set(MorCF, parts[1])
			r.Set(MorSwitch, parts[2])
			r.Set(MorInvNumber, parts[3])
			if c := g.Add(r, false); c != nil {
				seen += len(c.Lines)
			}
		}
		if c := g.Flush(); c != nil {
			seen += len(c.Lines)
		}
		if seen > len(lines) {
			t.Fatalf("grouper reported %d rows out of %d", seen, len(lines))
		}
	})
}

// TestCaseLabel: a case is named for people by point, customer and switch date, not by
// its internal key.
func TestCaseLabel(t *testing.T) {
	for _, tt := range []struct {
		c    Case
		want string
	}{
		{Case{POD: "IT001E12345678", CustomerCF: "RSSMRA85T10A562S", SwitchDate: Date{Y: 2025, M: 3, D: 1}}, "IT001E12345678 RSSMRA85T10A562S 01/03/2025"},
		{Case{PDR: "00881234567890", CustomerPIVA: "01234567897", SwitchDate: Date{Y: 2026, M: 12, D: 31}}, "00881234567890 01234567897 31/12/2026"},
		{Case{POD: "IT001E12345678"}, "IT001E12345678"},
	} {
		if got := CaseLabel(&tt.c); got != tt.want {
			t.Errorf("CaseLabel(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}
