package flows

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestFindingEligibility(t *testing.T) {
	tests := []struct {
		f    Finding
		want bool
	}{
		{Finding{Rule: "E5", Field: "DATA_COSTITUZIONE_MORA"}, true}, // never put in mora
		{Finding{Rule: "E3", Value: "01/03/2024"}, true},             // window closed
		{Finding{Rule: "E9"}, true},                                  // under 10 euro
		{Finding{Rule: "E1", Value: "AT"}, true},                     // an AT point
		{Finding{Rule: "E1", Value: ""}, false},                      // voltage missing: billing must give it
		{Finding{Rule: "E2", Field: "USO_GAS", Value: ""}, false},
		{Finding{Rule: "E11", Field: "NUM_FATTURA"}, false},
		{Finding{Rule: RuleIDCF, Value: "X"}, false},
		{Finding{Rule: RuleRequired}, false},
		{Finding{Rule: RuleCaseConflict}, false},
		{Finding{Rule: RuleWindowWait, Severity: "warning"}, false},
	}
	for _, tt := range tests {
		if got := tt.f.Eligibility(); got != tt.want {
			t.Errorf("%+v: Eligibility %v, want %v", tt.f, got, tt.want)
		}
	}
}

// The conflicts of a case, its invoices and what DecideMorosi makes of it do not
// depend on the order of its rows.
func TestMorosiCaseOrderFree(t *testing.T) {
	row := func(line int, inv, voltage, closing string) Record {
		return morosiRecord(t, line, map[string]string{MorSector: "E", MorPOD: "IT023E00121943", MorCF: "RSSMRA85T10A562S", MorSwitch: "01/03/2025",
			MorInvNumber: inv, MorInvUnpaid: "10.00", MorVoltage: voltage, MorClosing: closing, MorMoraDate: "10/04/2025", MorMoraRef: "R1", MorMoraChannel: "RA"})
	}
	rows := []Record{row(2, "F2", "BT", "S"), row(3, "F1", "MT", "S"), row(4, "F3", "BT", ""), row(5, "F1", "BT", "N")}
	var want *MorosiCase
	for _, perm := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}} {
		var g Grouper
		for _, i := range perm {
			if g.Add(rows[i], false) != nil {
				t.Fatal("one key, one case")
			}
		}
		mc := g.Flush()
		if !mc.Held() {
			t.Fatal("conflicting rows must hold the case")
		}
		if want == nil {
			want = mc
			var rules []string
			for _, f := range mc.Conflicts() {
				rules = append(rules, f.Rule+" "+f.Field+" "+f.Value)
			}
			wantRules := []string{"CASE-CONFLICT TENSIONE BT / MT", "CASE-CONFLICT FATTURA_CHIUSURA N / S", "CASE-DUP-INVOICE NUM_FATTURA F1"}
			if !reflect.DeepEqual(rules, wantRules) {
				t.Errorf("conflicts %q, want %q", rules, wantRules)
			}
			if !slices.IsSortedFunc(mc.Case.Invoices, func(a, b Invoice) int { return cmpString(a.Number, b.Number) }) || len(mc.Case.Invoices) != 3 {
				t.Errorf("invoices %v: want F1, F2, F3", mc.Case.Invoices)
			}
			continue
		}
		if !reflect.DeepEqual(mc.Conflicts(), want.Conflicts()) || !reflect.DeepEqual(mc.Lines, want.Lines) {
			t.Errorf("order %v: conflicts %v lines %v, want %v %v", perm, mc.Conflicts(), mc.Lines, want.Conflicts(), want.Lines)
		}
		o, wo := DecideMorosi(mc, "f.csv", D(2025, 10, 15), DefaultCMORParams()), DecideMorosi(want, "f.csv", D(2025, 10, 15), DefaultCMORParams())
		if !o.Held || !reflect.DeepEqual(o, wo) {
			t.Errorf("order %v: outcome %+v, want %+v", perm, o, wo)
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// A case keeps each practice-level value's lines in place for the first few rows and
// beyond them apart (valueSet, lineSet): with more rows than that, the conflicts name
// every line of every value, in any row order, an invoice listed five times names its
// five lines, and a case whose many rows agree has none.
func TestMorosiCaseConflictsManyRows(t *testing.T) {
	row := func(line int, inv, voltage, term string) Record {
		return morosiRecord(t, line, map[string]string{MorSector: "E", MorPOD: "IT023E00121943", MorCF: "RSSMRA85T10A562S", MorSwitch: "01/03/2025",
			MorInvNumber: inv, MorInvUnpaid: "10.00", MorVoltage: voltage, MorMoraDate: "10/04/2025", MorMoraRef: "R1", MorMoraChannel: "RA", MorMoraTerm: term})
	}
	rows := []Record{row(2, "F1", "BT", "30/04/2025"), row(3, "F1", "BT", "30/04/2025"), row(4, "F2", "BT", "30/04/2025"), row(5, "F1", "BT", "30/04/2025"),
		row(6, "F1", "MT", "15/05/2025"), row(7, "F3", "BT", "15/05/2025"), row(8, "F1", "MT", "15/05/2025")}
	want := []string{
		`8 TENSIONE "BT / MT" TENSIONE differs between the rows of one practice: "BT" on lines 2,3,4,5,7, "MT" on lines 6,8; billing must give one value, the practice is held`,
		`8 TERMINE_MORA "15/05/2025 / 30/04/2025" for one mora notice (2025-04-10 R1 RA), TERMINE_MORA differs between the rows of one practice: "15/05/2025" on lines 6-8, "30/04/2025" on lines 2-5; billing must give one value, the practice is held`,
		`8 NUM_FATTURA "F1" invoice F1 is listed 5 times (lines 2,3,5,6,8); list each invoice once, the practice is held`,
	}
	for _, perm := range [][]int{{0, 1, 2, 3, 4, 5, 6}, {6, 5, 4, 3, 2, 1, 0}, {3, 6, 0, 4, 1, 5, 2}} {
		var g Grouper
		for _, i := range perm {
			if g.Add(rows[i], false) != nil {
				t.Fatal("one key, one case")
			}
		}
		var got []string
		for _, f := range g.Flush().Conflicts() {
			got = append(got, fmt.Sprintf("%d %s %q %s", f.Line, f.Field, f.Value, f.Message))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("order %v: conflicts\n%s\nwant\n%s", perm, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	var g Grouper
	for line := 2; line < 12; line++ {
		g.Add(row(line, fmt.Sprintf("F%d", line), "BT", "30/04/2025"), false)
	}
	if mc := g.Flush(); mc.Held() || len(mc.Lines) != 10 || len(mc.Case.Invoices) != 10 {
		t.Errorf("ten agreeing rows: held %v (%v), %d lines, %d invoices", mc.Held(), mc.Conflicts(), len(mc.Lines), len(mc.Case.Invoices))
	}
}

// The Grouper reuses one caseRows from case to case (what only the conflicts need,
// and the lists a case is built in): a case read after others is the case read by a
// Grouper of its own, field for field (nil lists included), with the same conflicts,
// whatever the cases before held (more rows, notices and invoices, conflicts, bad
// rows, or none of them).
func TestGrouperReuseAsFreshGrouper(t *testing.T) {
	type spec struct {
		rows, notices, invoices int
		conflict, dup, bad      bool
	}
	specs := []spec{
		{rows: 7, notices: 4, invoices: 5, conflict: true, dup: true},
		{rows: 1},
		{rows: 3, notices: 1, invoices: 3},
		{rows: 2, notices: 2, invoices: 1, bad: true},
		{rows: 9, notices: 3, invoices: 9, conflict: true},
		{rows: 1, invoices: 1},
		{rows: 4, notices: 1, invoices: 2, dup: true},
		{rows: 3, notices: 3, invoices: 3},
	}
	var all []Record
	var bad []bool
	var cases [][]int // indexes into all, per case
	line := 2
	for c, sp := range specs {
		var idx []int
		for i := range sp.rows {
			vals := map[string]string{MorSector: "E", MorPOD: fmt.Sprintf("IT023E%08d", c), MorCF: "RSSMRA85T10A562S", MorSwitch: "01/03/2025",
				MorVoltage: "BT", MorClosing: "S", MorName: "Rossi", MorSpend: "2024-12:100.00,2024-11:90.00"}
			if sp.invoices > 0 {
				vals[MorInvNumber], vals[MorInvUnpaid] = fmt.Sprintf("F%d", (sp.invoices-1-i%sp.invoices)), "10.00"
				if sp.dup && i == sp.rows-1 {
					vals[MorInvNumber] = "F0"
				}
			}
			if sp.notices > 0 {
				k := i % sp.notices
				vals[MorMoraDate], vals[MorMoraRef], vals[MorMoraChannel] = fmt.Sprintf("%02d/04/2025", 10+k), fmt.Sprintf("R%d", k), "ra"
				vals[MorMoraTerm] = "30/04/2025"
				if sp.conflict && i == sp.rows-1 {
					vals[MorMoraTerm] = "15/05/2025"
				}
			}
			if sp.conflict && i == 0 {
				vals[MorVoltage] = "MT"
			}
			idx = append(idx, len(all))
			all = append(all, morosiRecord(t, line, vals))
			bad = append(bad, sp.bad && i == 0)
			line++
		}
		cases = append(cases, idx)
	}
	type seen struct {
		mc        MorosiCase
		held      bool
		conflicts []Finding
	}
	view := func(mc *MorosiCase) seen {
		return seen{MorosiCase{Key: mc.Key, Case: mc.Case, Lines: mc.Lines, Bad: mc.Bad, BadLines: mc.BadLines}, mc.Held(), mc.Conflicts()}
	}
	var fresh []seen
	for _, idx := range cases {
		var g Grouper
		for _, i := range idx {
			if g.Add(all[i], bad[i]) != nil {
				t.Fatal("one key, one case")
			}
		}
		fresh = append(fresh, view(g.Flush()))
	}
	var g Grouper
	var reused []*MorosiCase
	for i := range all {
		if mc := g.Add(all[i], bad[i]); mc != nil {
			reused = append(reused, mc)
		}
	}
	reused = append(reused, g.Flush())
	if len(reused) != len(fresh) {
		t.Fatalf("%d cases, want %d", len(reused), len(fresh))
	}
	held := 0
	for i, mc := range reused { // read after every case is done: none shares the Grouper's memory
		if got := view(mc); !reflect.DeepEqual(got, fresh[i]) {
			t.Errorf("case %d:\n%+v\nwant\n%+v", i, got, fresh[i])
		}
		if fresh[i].held {
			held++
		}
	}
	if held != 4 {
		t.Errorf("%d cases held, want 4 (the specs with a conflict, a duplicate or a bad row)", held)
	}
}
