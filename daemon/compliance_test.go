package daemon

import (
	"context"
	"database/sql"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/flows"
)

// A practice created after the deadline job's last run is in the digest all the same:
// the digest's build (preview and the scheduled SendDigestNow alike) refreshes the
// deadlines first with the job's own code.
func TestDigestRefreshesDeadlinesBeforeReading(t *testing.T) {
	now := time.Date(2026, time.November, 23, 7, 30, 0, 0, flows.Rome)
	w := newTestWorld(t, now, "")
	ctx := context.Background()
	if err := extraJobs[JobDeadlines](w.d, ctx, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	cf := testCF("RSSMRA85T10A562")
	p := &archive.Practice{CaseKey: flows.UscenteCaseKey("IT001E12345678", cf, flows.D(2025, time.November, 1)), Role: "uscente",
		Sector: "E", CompanyPIVA: ourPIVA, CPUtente: "E260000077", Point: "IT001E12345678", CustomerID: cf, CustomerName: "Mario Rossi",
		SwitchDate: flows.D(2025, time.November, 1), State: flows.StateReady, WindowOpen: flows.D(2026, time.May, 1),
		WindowClose: flows.D(2026, time.November, 27)}
	if err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
		return w.d.Store.CreatePractice(ctx, tx, p, archive.HistoryEntry{At: now.Add(-time.Minute), Flow: "uscente.morosi"})
	}); err != nil {
		t.Fatal(err)
	}
	if rows, err := w.d.Store.DeadlinesBetween(ctx, flows.Date{}, flows.D(2027, time.December, 31)); err != nil || len(rows) != 0 {
		t.Fatalf("deadline table before the digest: %v, %v; want it stale (empty)", rows, err)
	}

	// `cmord digest --preview` builds with the same options as the daemon.
	d, err := digest.Build(ctx, w.d.Store, w.d.digestOptions(), now)
	if err != nil {
		t.Fatal(err)
	}
	var due []string
	for _, dl := range d.Deadlines {
		due = append(due, dl.Kind+" "+dl.PracticeCode+" "+dl.Due.String())
	}
	if strings.Join(due, ",") != "window_closing E260000077 27/11/2026" {
		t.Errorf("digest deadlines = %v, want the new practice's window closing", due)
	}
	var raised bool
	for _, it := range d.New {
		raised = raised || (it.Kind == digest.DeadlineWindowClosing && it.PracticeCode == "E260000077")
	}
	if !raised {
		t.Error("window_closing of the new practice not among the new exceptions")
	}

	// The scheduled digest: queued (the relay is down; it stays in the outbox) and
	// archived as sent.
	if err := w.d.SendDigestNow(ctx); err != nil {
		t.Fatal(err)
	}
	files, err := w.d.Store.ListFiles(ctx, archive.FileFilter{Source: "digest"})
	if err != nil || len(files) != 1 {
		t.Fatalf("archived digests = %v, %v", files, err)
	}
	rc, _, err := w.d.Store.OpenFile(ctx, files[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(rc)
	rc.Close()
	for _, want := range []string{"27/11/2026  [", "chiusura finestra di richiesta", "E260000077", "pronta per l'invio (READY)",
		"Chiusura finestra di richiesta: 27/11/2026 — tra 4 giorni (4 lavorativi)."} {
		if !strings.Contains(string(text), want) {
			t.Errorf("digest sent lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), p.CaseKey) || strings.Contains(string(text), cf) {
		t.Errorf("digest sent shows the case key or the unmasked CF:\n%s", text)
	}
}

// The daemon's digest and alert options carry its calendar and catalog, and the
// alerts' own personal-data switch.
func TestComplianceOptionsFromDaemon(t *testing.T) {
	w := newTestWorld(t, time.Date(2026, time.November, 23, 7, 30, 0, 0, flows.Rome), "[alerts]\ninclude_personal_data = true\n")
	opts := w.d.digestOptions()
	if opts.Catalog != w.d.Catalog() || opts.Calendar != w.d.Calendar() {
		t.Error("digest options do not carry the daemon's catalog and calendar")
	}
	if !opts.AlertIncludePersonalData || opts.IncludePersonalData {
		t.Errorf("alerts personal data %v, digest %v; want true (from [alerts]) and false", opts.AlertIncludePersonalData, opts.IncludePersonalData)
	}
}
