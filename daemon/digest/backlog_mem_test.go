package digest

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// TestBacklogDigestKeepsNoCaseData looks up, as the digest does, a backlog of 5,000 practices
// whose case data (invoices, audit) weigh 8 KiB each, every one with an open exception.
// The digest names each practice by code, point and customer only; its lookup cache held
// each whole practice (case data included) for the whole Build: 100,000 stale practices
// put 143 MiB of it in the heap profile of cmord digest --preview. The list and CSV stay whole.
func TestBacklogDigestKeepsNoCaseData(t *testing.T) {
	const n = 5000
	st := openStore(t, t.TempDir())
	ctx := context.Background()
	at := rome(2026, time.November, 20, 9, 0)
	audit := strings.Repeat("x", 8<<10)
	write(t, st, func(tx *sql.Tx) error {
		for i := range n {
			data := fmt.Sprintf(`{"audit":%q}`, audit)
			p := &archive.Practice{CaseKey: fmt.Sprintf("U|IT001E%08d|RSSMRA85T10A562S|2026-03-01", i), Role: "uscente", Sector: "E",
				CompanyPIVA: "00488410010", CPUtente: fmt.Sprintf("E26%07d", i), Point: fmt.Sprintf("IT001E%08d", i),
				CustomerID: "RSSMRA85T10A562S", CustomerName: "Mario Rossi", SwitchDate: flows.D(2026, time.March, 1),
				State: flows.StateBuilt, Data: []byte(data)}
			if err := st.CreatePractice(ctx, tx, p, archive.HistoryEntry{At: at, Flow: "uscente.morosi"}); err != nil {
				return err
			}
			if _, _, err := st.RaiseException(ctx, tx, archive.Exception{Kind: "case_not_eligible", Severity: archive.SevLow,
				Owner: OwnerCompliance, PracticeID: p.ID, Fingerprint: fmt.Sprintf("backlog-%d", i),
				Message: "not eligible", FirstSeen: at, LastSeen: at}); err != nil {
				return err
			}
		}
		return nil
	})
	p, err := st.PracticeByID(ctx, nil, 1)
	if err != nil || len(p.Data) < 8<<10 {
		t.Fatalf("the fixture's practice has %d bytes of case data (%v): the test would prove nothing", len(p.Data), err)
	}
	// The digest's lookup caches every practice its items name, for the whole Build.
	before := heapInUse()
	look := newLookup(st)
	for id := int64(1); id <= n; id++ {
		if _, err := look.practice(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	held := heapInUse() - before
	// A practice's code, point, state and customer: well under 1 KiB each. Its case
	// data alone would be more than 8 KiB.
	if perPractice := held / n; perPractice > 1<<10 {
		t.Errorf("the digest's lookup of %d practices holds %d KiB, %d bytes per practice: it keeps their case data", n, held>>10, perPractice)
	}
	runtime.KeepAlive(look)

	d, err := Build(ctx, st, Options{Company: "Esempio Energia S.p.A.", ReadOnly: true}, at.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(d.New) + len(d.StillOpen); got != n {
		t.Fatalf("digest lists %d open exceptions, want %d", got, n)
	}
	if it := append(d.New, d.StillOpen...)[0]; it.PracticeCode == "" || it.Point == "" || it.CustomerName == "" {
		t.Errorf("an item lost its practice's code, point or customer: %+v", it)
	}
	csvData, err := d.CSV("it", true)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(csvData), "\r\n"); lines != n+1 {
		t.Errorf("the CSV has %d lines, want the header and %d exceptions", lines, n)
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestAlertListsAtMostMaxItems renders an urgent alert of a backlog: the subject counts
// every exception, the bodies list alertMaxItems and say, in Italian by default, how
// many more there are and where the full list is. Listing them all made one mail of
// 216 MB of text for 100,000 urgent deadline exceptions.
func TestAlertListsAtMostMaxItems(t *testing.T) {
	at := rome(2026, time.November, 20, 9, 0)
	for _, tc := range []struct {
		lang, more string
	}{
		{"", "… e altre 10, non elencate qui (elenco completo: cmord exceptions --severity urgent --owner compliance)."},
		{"en", "… and 10 more, not listed here (full list: cmord exceptions --severity urgent --owner compliance)."},
	} {
		var items []Item
		for i := range alertMaxItems + 10 {
			items = append(items, Item{Exception: archive.Exception{ID: int64(i + 1), Kind: "case_not_eligible", Severity: archive.SevUrgent,
				Owner: OwnerCompliance, Message: fmt.Sprintf("eccezione numero %d", i+1), FirstSeen: at, LastSeen: at, Count: 1}})
		}
		g := AlertGroup{Key: OwnerCompliance, Items: items}
		subject, text, html, err := g.Render(tc.lang, false, "Esempio Energia S.p.A.", at)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(subject, fmt.Sprintf(" %d × ", alertMaxItems+10)) {
			t.Errorf("%q: subject %q does not count all %d", tc.lang, subject, alertMaxItems+10)
		}
		for name, body := range map[string]string{"text": text, "html": html} {
			if !strings.Contains(body, fmt.Sprintf("#%d", alertMaxItems)) || strings.Contains(body, fmt.Sprintf("#%d", alertMaxItems+1)) {
				t.Errorf("%q %s: does not list exactly the first %d", tc.lang, name, alertMaxItems)
			}
			if !strings.Contains(body, tc.more) {
				t.Errorf("%q %s: no %q", tc.lang, name, tc.more)
			}
		}
	}
}
