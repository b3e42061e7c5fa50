package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// noBuiltCatalog writes a site catalog (mode extend) whose READY state may not move
// to BUILT: a REQ build then leaves its practices READY (the SII's confirmation moves
// them to SENT), the branch of writeFile that rewrites every practice of the file only
// for its request date (SetRequestDateAll), not SendAll.
func noBuiltCatalog(t *testing.T) string {
	t.Helper()
	def := flows.DefaultCatalog()
	ready := def.State(flows.StateReady)
	if ready == nil || !slices.Contains(ready.To, flows.StateBuilt) {
		t.Fatalf("the default catalog's READY does not move to BUILT: %+v", ready)
	}
	st := *ready
	st.To = slices.DeleteFunc(slices.Clone(st.To), func(s string) bool { return s == flows.StateBuilt })
	site := &flows.Catalog{Version: "ready-not-built", States: []flows.State{st}}
	var buf bytes.Buffer
	if err := site.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "catalog.toml")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBuiltHistoryPracticeNotMoved proves that a REQ whose practice cannot move to
// BUILT still gets its build row derived from its request (migration 0037), reading
// as the stored row did (READY → READY, the state it moves to once delivered), and
// that the archive verifies with the file not yet delivered (so no later transaction
// rewrote the practice): the build rewrote it (its request date) in the transaction
// that marked the request, so the practice's seal covers the derived row.
func TestBuiltHistoryPracticeNotMoved(t *testing.T) {
	w := newTestWorld(t, e2eNow, fmt.Sprintf("[catalog]\npath = %q\nmode = \"extend\"\n", noBuiltCatalog(t)))
	w.srv.Close() // the SII is down: the file is built, not published
	w.drop("morosi", "morosi_20251015.csv", e2eExtract())
	ctx := context.Background()
	_ = w.d.RunOnce(ctx) // the poll fails; intake and build go on
	a := w.practice("E250000001")
	if a.State != flows.StateReady || a.RequestDate.IsZero() {
		t.Errorf("A: %s, request date %q: want READY (its file undelivered) and the day its request was sent", a.State, a.RequestDate)
	}
	hist, err := w.d.Store.PracticeHistory(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, h := range hist {
		path = append(path, h.From+">"+h.To)
	}
	if got := strings.Join(path, " "); got != ">READY READY>READY" {
		t.Fatalf("A's history %s (%+v)", got, hist)
	}
	if h := hist[1]; h.ID != 0 || h.Link != archive.LinkBuilt || h.Flow != "REQ" ||
		!strings.HasPrefix(h.Note, "REQ E250000001 written into ") || !strings.HasSuffix(h.Note, " is delivered") || !strings.Contains(h.Note, "; SENT once ") {
		t.Errorf("A's build row: %+v, want it derived (id 0) reading as the stored one", h)
	}
	var stored int
	if err := w.d.Store.Read().QueryRow(`SELECT count(*) FROM practice_history WHERE link IN (2, 3)`).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("build rows stored: %d (%v), want 0", stored, err)
	}
	rep, err := w.d.Store.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("verify: %q", rep.Problems)
	}
}

// TestUscenteEndToEndVerifies runs the uscente story of TestUscenteEndToEnd (REQ
// built and published, answered by REQ_AMM and REQ_ESITO, annulled, refunded) and
// verifies the archive after it: every later write of a request whose build row is
// derived (an SII answer, an annulment) leaves what its practice's hash covers of it
// (practiceSideBuilt) as the build sealed it.
func TestUscenteEndToEndVerifies(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	w.drop("morosi", "morosi_20251015.csv", e2eExtract())
	w.runOnce()
	e2eFiled(t, w)
	e2eAnswered(t, w)
	e2eAnnulledAndRefunded(t, w)
	ctx := context.Background()
	var derived, answered int
	if err := w.d.Store.Read().QueryRow(`SELECT count(*), count(*) FILTER (WHERE state NOT IN ('ready', 'sent'))
		FROM request_state WHERE hist_after IS NOT NULL`).Scan(&derived, &answered); err != nil {
		t.Fatal(err)
	}
	if derived == 0 || answered == 0 {
		t.Fatalf("%d requests with a derived build row, %d of them answered: the story wrote none", derived, answered)
	}
	rep, err := w.d.Store.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("verify after the story: %q", rep.Problems)
	}
}
