package flows

import (
	"slices"
	"testing"
)

// TestCountFindingsAndFileLevel: how a handler's findings are sorted into refusals and
// warnings, and which refusals concern the header or the whole file rather than a row.
func TestCountFindingsAndFileLevel(t *testing.T) {
	w := func(line int) Finding { return Finding{Line: line, Rule: "W", Severity: "warning"} }
	e := func(line int) Finding { return Finding{Line: line, Rule: "E"} }
	for _, tc := range []struct {
		name             string
		in               []Finding
		errors, warnings int
		fileLevelLines   []int
	}{
		{"none", nil, 0, 0, nil},
		{"warnings only", []Finding{w(0), w(1), w(5)}, 0, 3, nil},
		{"row errors only", []Finding{e(2), e(7)}, 2, 0, nil},
		{"header and whole file", []Finding{e(0), e(1), e(2), w(1)}, 3, 1, []int{0, 1}},
		{"explicit error severity", []Finding{{Line: 1, Rule: "E", Severity: "error"}}, 1, 0, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, warns := CountFindings(tc.in)
			if errs != tc.errors || warns != tc.warnings {
				t.Errorf("CountFindings = %d errors, %d warnings; want %d, %d", errs, warns, tc.errors, tc.warnings)
			}
			var lines []int
			for _, f := range FileLevelErrors(tc.in) {
				if f.IsWarning() {
					t.Errorf("FileLevelErrors kept a warning: %+v", f)
				}
				lines = append(lines, f.Line)
			}
			if !slices.Equal(lines, tc.fileLevelLines) {
				t.Errorf("FileLevelErrors lines = %v, want %v", lines, tc.fileLevelLines)
			}
		})
	}
}
