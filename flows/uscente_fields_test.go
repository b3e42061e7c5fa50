package flows

import (
	"fmt"
	"testing"
)

// The grouping reads the uscente.morosi fields by position (Record.mor): each gives
// what Get gives by name, in the catalog's layout, in a layout with the fields in
// another order and some missing, in a record shorter than its layout, and in a
// record without a layout.
func TestMorPositionsAsNames(t *testing.T) {
	for f, name := range morFieldNames {
		if name == "" {
			t.Fatalf("morField %d has no name", f)
		}
	}
	morosi := DefaultCatalog().Input("uscente.morosi")
	other := NewLayout([]string{MorSpend, "OTHER", MorCF, MorPOD, MorSwitch, MorInvNumber, MorCF})
	for _, tc := range []struct {
		name string
		rec  Record
	}{
		{"catalog layout", NewRecord(morosi)},
		{"another layout", Record{Values: make([]string, 7), layout: other}},
		{"short record", Record{Values: make([]string, 3), layout: other}},
		{"no layout", Record{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.rec.Values {
				tc.rec.Values[i] = fmt.Sprintf("v%d", i)
			}
			for f := range numMorFields {
				if got, want := tc.rec.mor(f), tc.rec.Get(morFieldNames[f]); got != want {
					t.Errorf("%s: by position %q, by name %q", morFieldNames[f], got, want)
				}
			}
		})
	}
}

// MorosiKeyer gives MorosiKey of every row, whether the row repeats the last one's
// key fields, changes one of them, writes the point or the customer in the other
// field, or has no key.
func TestMorosiKeyerAsMorosiKey(t *testing.T) {
	f := DefaultCatalog().Input("uscente.morosi")
	row := func(pod, pdr, cf, piva, sw string) Record {
		r := NewRecord(f)
		for name, v := range map[string]string{MorPOD: pod, MorPDR: pdr, MorCF: cf, MorPIVA: piva, MorSwitch: sw} {
			if err := r.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	rows := []Record{
		row("IT001E00004567", "", "BNCLRA80A41F205G", "", "01/03/2025"),
		row("IT001E00004567", "", "BNCLRA80A41F205G", "", "01/03/2025"),
		row("IT001E00004567", "", "BNCLRA80A41F205G", "", "02/03/2025"),
		row("IT001E00004567", "", "", "07654321095", "02/03/2025"),
		row("", "IT001E00004567", "", "07654321095", "02/03/2025"),
		row("", "", "", "07654321095", "02/03/2025"),
		row("", "", "", "07654321095", "02/03/2025"),
		row("IT001E00004567", "", "BNCLRA80A41F205G", "", ""),
		row("IT001E00004567", "", "BNCLRA80A41F205G", "", "01/03/2025"),
		{},
		row("IT001E00004567", "", "BNCLRA80A41F205G", "", "01/03/2025"),
	}
	var k MorosiKeyer
	for i, r := range rows {
		if got, want := k.Key(r), MorosiKey(r); got != want {
			t.Errorf("row %d: %q, MorosiKey %q", i, got, want)
		}
	}
}

// LinesText names lines compactly, without fmt.
func TestLinesText(t *testing.T) {
	for _, tc := range []struct {
		lines []int
		want  string
	}{
		{nil, ""}, {[]int{7}, "7"}, {[]int{7, 8, 9}, "7-9"}, {[]int{7, 12, 30}, "7,12,30"}, {[]int{9, 10}, "9-10"}, {[]int{10, 9}, "10,9"},
	} {
		if got := LinesText(tc.lines); got != tc.want {
			t.Errorf("LinesText(%v) = %q, want %q", tc.lines, got, tc.want)
		}
	}
}
