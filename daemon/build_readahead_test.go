package daemon

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

// readAheadOutcome is what a build left, as a person reads it: each request's state
// and file, each practice's state and history, the files published.
type readAheadOutcome struct {
	requests  []string
	practices []string
	published map[string]string
	refused   []string // open build_refused exceptions, by subject
}

// buildWithPages runs the refused-request world of TestBuildRefusedREQ (five good
// cases, then one whose row the site catalog refuses) with two more ready requests,
// a page of page requests and read-ahead on or off, and returns what it left. The
// extra requests come right after the refused one: one for the refused practice
// (in the page after the refused one's, read ahead while that one is computed,
// unless both are in one page) and one for a good practice (built in the same file
// as its first request, or the next).
func buildWithPages(t *testing.T, page int, readAhead bool, maxRows int) readAheadOutcome {
	t.Helper()
	oldPage, oldAhead := uscente.BuildPage, uscente.BuildReadAhead
	uscente.BuildPage, uscente.BuildReadAhead = page, readAhead
	defer func() { uscente.BuildPage, uscente.BuildReadAhead = oldPage, oldAhead }()

	w := newTestWorld(t, e2eNow, fmt.Sprintf("[catalog]\npath = %q\nmode = \"extend\"\n", strictREQCatalog(t)))
	if maxRows > 0 {
		w.setBuildLimits(maxRows, 0)
	}
	sw := flows.D(2025, 3, 1)
	long := morosiRow("IT001E00000042", testCF("VRDGPP70A01H501"), "Giuseppe Verdi", sw, "F2025-0100", "95.50", nil)
	good := strings.Split(strings.TrimSuffix(extraCases(5), "\r\n"), "\r\n")
	lines := append(append([]string{strings.Join(morosiHeader, ";")}, good...), long)
	takeIn(t, w.d, "morosi", "morosi_20251015.csv", strings.Join(lines, "\r\n")+"\r\n")
	ctx := context.Background()
	bad, other := w.practice("E250000006"), w.practice("E250000001")
	if bad.State != flows.StateReady || other.State != flows.StateReady {
		t.Fatalf("before the build: %s %s, %s %s; want both READY", bad.CPUtente, bad.State, other.CPUtente, other.State)
	}
	if err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
		for i, p := range []archive.Practice{bad, other} {
			if err := w.d.Store.CreateRequest(ctx, tx, &archive.Request{PracticeID: p.ID, Flow: uscente.FlowREQ, CPUtente: fmt.Sprintf("E25999999%d", i)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	buildAndDeliver(t, w.d, func() time.Time { return w.now })

	var out readAheadOutcome
	rs, err := w.d.Store.Requests(ctx, nil, 0, uscente.FlowREQ, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		name := ""
		if r.FileID != 0 {
			f, err := w.d.Store.GetFile(ctx, r.FileID)
			if err != nil {
				t.Fatal(err)
			}
			name = f.Name
		}
		out.requests = append(out.requests, fmt.Sprintf("%s %s %s", r.CPUtente, r.State, name))
		p, err := w.d.Store.PracticeByID(ctx, nil, r.PracticeID)
		if err != nil {
			t.Fatal(err)
		}
		hist, err := w.d.Store.PracticeHistory(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		var hs []string
		for _, h := range hist {
			hs = append(hs, fmt.Sprintf("%s>%s %s %s", h.From, h.To, h.CauseCode, h.Note))
		}
		out.practices = append(out.practices, fmt.Sprintf("%s %s: %s", p.CPUtente, p.State, strings.Join(hs, " | ")))
	}
	out.published = map[string]string{}
	for name, content := range w.published() {
		if strings.Contains(name, "_SI10050_") {
			out.published[name] = content
		}
	}
	for _, e := range w.exceptions("build_refused") {
		out.refused = append(out.refused, e.Subject)
	}
	sort.Strings(out.refused)
	return out
}

// The build reads a page ahead while it computes the one before (BuildReadAhead):
// whatever the page size and the file's limits, it leaves what reading each page
// only once the one before is decided leaves — the same requests in the same files,
// the same states, history and exceptions — and a page read ahead before a
// request of the page before was refused (its practice back to DRAFT) is not used:
// the refused practice's second request, in a later page, is cancelled, not refused
// again.
func TestBuildReadAheadAsPageByPage(t *testing.T) {
	tests := []struct {
		name    string
		page    int
		maxRows int
		// what the refused practice's second request becomes: cancelled when it is
		// read after the first was refused (another page), refused too when read in
		// the same page (as the build did before reading ahead)
		wantSecond string
	}{
		{"a request a page, one file", 1, 0, "cancelled"},
		{"two requests a page, one file", 2, 0, "cancelled"},
		{"three requests a page, one file", 3, 0, "cancelled"},
		{"a request a page, two rows a file", 1, 2, "cancelled"},
		{"two requests a page, three rows a file", 2, 3, "invalid"},
		{"one page, one file", 256, 0, "invalid"},
		{"one page, one row a file", 256, 1, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slow := buildWithPages(t, tt.page, false, tt.maxRows)
			fast := buildWithPages(t, tt.page, true, tt.maxRows)
			if !reflect.DeepEqual(fast, slow) {
				t.Errorf("read ahead:\n%+v\npage by page:\n%+v", fast, slow)
			}
			var second string
			for _, r := range fast.requests {
				if strings.HasPrefix(r, "E259999990 ") {
					second = r
				}
			}
			if second != "E259999990 "+tt.wantSecond+" " {
				t.Errorf("the refused practice's second request: %q, want it %s", second, tt.wantSecond)
			}
			if wantRefused := []string{"E250000006"}; tt.wantSecond == "cancelled" && !reflect.DeepEqual(fast.refused, wantRefused) {
				t.Errorf("build_refused exceptions for %v, want %v", fast.refused, wantRefused)
			}
			if len(fast.published) == 0 {
				t.Error("nothing published")
			}
		})
	}
}
