package family

import (
	"fmt"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// TestFindingExceptions: the exceptions a handler's result raises. Header and
// whole-file problems are one exception (not one per column), and none when the file
// is refused (file_rejected says it); each refused row is one, bounded by
// MaxRowExceptions with one summary past it; an eligibility refusal is compliance's,
// with nothing to correct; warnings raise nothing.
func TestFindingExceptions(t *testing.T) {
	f := archive.File{ID: 7, Name: "morosi.csv"}
	row := func(line int, rule string) flows.Finding {
		return flows.Finding{Line: line, Rule: rule, Field: "X", Message: "m"}
	}
	many := make([]flows.Finding, MaxRowExceptions+5)
	for i := range many {
		many[i] = row(i+2, "V")
	}
	type want struct{ kind, rule string }
	for _, tc := range []struct {
		name string
		res  Result
		want []want
	}{
		{"nothing", Result{}, nil},
		{"warnings only", Result{Findings: []flows.Finding{{Line: 3, Rule: "W", Severity: "warning"}}}, nil},
		{"header problems are one exception", Result{Findings: []flows.Finding{row(1, "H1"), row(1, "H2"), row(0, "F")}},
			[]want{{"row_refused", "HEADER"}}},
		{"a refused file: header problems told by file_rejected", Result{Rejected: true, Reason: "bad", Findings: []flows.Finding{row(1, "H1")}},
			[]want{{"file_rejected", ""}}},
		{"rows and an ineligible case", Result{Findings: []flows.Finding{row(2, "V"), {Line: 3, Rule: "E4", Value: "NO", Message: "m"}}},
			[]want{{"row_refused", "V"}, {"case_not_eligible", "E4"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, _ := flows.CountFindings(tc.res.Findings)
			got := findingExceptions(f, tc.res, errs)
			if len(got) != len(tc.want) {
				t.Fatalf("%d exceptions %+v, want %v", len(got), got, tc.want)
			}
			for i, e := range got {
				if e.Kind != tc.want[i].kind || e.Rule != tc.want[i].rule || e.FileID != f.ID || e.Subject != f.Name {
					t.Errorf("exception %d = %s/%s (file %d %s), want %s/%s", i, e.Kind, e.Rule, e.FileID, e.Subject, tc.want[i].kind, tc.want[i].rule)
				}
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		got := findingExceptions(f, Result{Findings: many}, len(many))
		if len(got) != MaxRowExceptions+1 {
			t.Fatalf("%d exceptions, want %d", len(got), MaxRowExceptions+1)
		}
		last := got[len(got)-1]
		if last.Rule != "MORE" || last.Message != fmt.Sprintf("5 more refused rows in %s: see the reason file and `cmord validate`", f.Name) {
			t.Errorf("summary %+v", last)
		}
	})
}

// TestFindingSinkBounded: a sink keeps MaxKeptFindings findings in line order, counts
// the refusals it saw and the findings it dropped, and says how many are not listed.
func TestFindingSinkBounded(t *testing.T) {
	s := NewFindingSink("f.csv")
	for i := MaxKeptFindings + 2; i >= 1; i-- {
		s.Add(flows.Finding{Line: i, Rule: "R"})
	}
	s.Add(flows.Finding{Line: 1, Rule: "W", Severity: "warning"})
	if s.Errors != MaxKeptFindings+2 || s.Dropped != 3 {
		t.Fatalf("errors %d dropped %d", s.Errors, s.Dropped)
	}
	res := s.Result()
	if len(res) != MaxKeptFindings+1 || res[0].File != "f.csv" || res[0].Line > res[1].Line {
		t.Fatalf("result: %d findings, first %+v", len(res), res[0])
	}
	if more := res[len(res)-1]; more.Rule != "MORE" {
		t.Errorf("last finding %+v, want the MORE summary", more)
	}
}
