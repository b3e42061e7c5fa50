package digest

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// archiveDump is every row of every table of the store, as text: two dumps are equal
// when nothing was written.
func archiveDump(t *testing.T, st *archive.Store) string {
	t.Helper()
	ctx := context.Background()
	rows, err := st.Read().QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tbl := range tables {
		r, err := st.Read().QueryContext(ctx, `SELECT * FROM "`+tbl+`" ORDER BY rowid`)
		if err != nil {
			// WITHOUT ROWID tables: their primary key orders them.
			if r, err = st.Read().QueryContext(ctx, `SELECT * FROM "`+tbl+`"`); err != nil {
				t.Fatal(err)
			}
		}
		cols, _ := r.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		n := 0
		for r.Next() {
			if err := r.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s: %v\n", tbl, vals)
			n++
		}
		r.Close()
		fmt.Fprintf(&b, "%s: %d rows\n", tbl, n)
	}
	return b.String()
}

func countExceptions(t *testing.T, st *archive.Store) (total, open int) {
	t.Helper()
	if err := st.Read().QueryRow(`SELECT count(*), count(*) - count(resolved_at) FROM exceptions`).Scan(&total, &open); err != nil {
		t.Fatal(err)
	}
	return total, open
}

// refRE matches how an item names its exception: "#12" or, in a preview, "(nuova)".
var refRE = regexp.MustCompile(`(?m)^(#\d+|\(nuova\)) \[`)

// A preview (ReadOnly) writes nothing to the archive, and shows what the real digest
// built at the same instant shows: the deadline exceptions the refresh would raise,
// escalate, reopen or resolve are applied in memory.
func TestPreviewIsReadOnly(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		now       time.Time
		setup     func(t *testing.T, st *archive.Store)
		wantNew   int // exceptions the real digest raises that the preview shows without an id
		wantDelta int // open exceptions the real refresh adds (negative: resolves)
	}{
		{name: "deadline job ran this morning", now: fixtureNow},
		{name: "two days later: escalations", now: rome(2026, time.November, 25, 7, 30)},
		{name: "practice created since the job ran", now: fixtureNow, wantNew: 1, wantDelta: 1,
			setup: func(t *testing.T, st *archive.Store) {
				createPractice(t, st, &archive.Practice{CaseKey: "U|IT001E99990000|BNCLRA90C50F205Y|2025-12-01", Role: "uscente",
					Sector: "E", CompanyPIVA: "00488410010", CPUtente: "E260000077", Point: "IT001E99990000", CustomerID: "BNCLRA90C50F205Y",
					State: flows.StateReady, WindowOpen: flows.D(2026, time.June, 1), WindowClose: flows.D(2026, time.November, 26)},
					fixtureNow.Add(-time.Minute))
			}},
		{name: "practice sent since the job ran", now: fixtureNow, wantDelta: -1,
			setup: func(t *testing.T, st *archive.Store) {
				p, err := st.PracticeByCode(context.Background(), nil, "E260000012")
				if err != nil {
					t.Fatal(err)
				}
				transition(t, st, &p, flows.StateSent, "REQ", fixtureNow.Add(-time.Minute))
			}},
		{name: "automatic resolution undone", now: fixtureNow, wantDelta: 1,
			setup: func(t *testing.T, st *archive.Store) {
				write(t, st, func(tx *sql.Tx) error {
					_, err := tx.ExecContext(context.Background(), `UPDATE exceptions SET resolved_at = ?, resolution = 'test', resolved_by = 'auto'
						WHERE kind = ? AND resolved_at IS NULL`, archive.TS(fixtureNow.Add(-time.Hour)), DeadlineWindowClosing)
					return err
				})
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			fixture(t, st)
			if c.setup != nil {
				c.setup(t, st)
			}
			opts := Options{Company: "Esempio Energia S.p.A."}
			before := archiveDump(t, st)
			_, openBefore := countExceptions(t, st)
			preview := opts
			preview.ReadOnly = true
			pd, err := Build(ctx, st, preview, c.now)
			if err != nil {
				t.Fatal(err)
			}
			_, ptext, _, _, err := pd.Render("it", false)
			if err != nil {
				t.Fatal(err)
			}
			if after := archiveDump(t, st); after != before {
				t.Fatalf("the preview wrote to the archive:\n%s", firstDiff(before, after))
			}
			if n := strings.Count(ptext, "\n(nuova) ["); n != c.wantNew {
				t.Errorf("preview shows %d exceptions without id, want %d:\n%s", n, c.wantNew, ptext)
			}

			rd, err := Build(ctx, st, opts, c.now)
			if err != nil {
				t.Fatal(err)
			}
			_, rtext, _, _, err := rd.Render("it", false)
			if err != nil {
				t.Fatal(err)
			}
			if _, openAfter := countExceptions(t, st); openAfter-openBefore != c.wantDelta {
				t.Errorf("the real refresh changed open exceptions by %d, want %d", openAfter-openBefore, c.wantDelta)
			}
			norm := func(s string) string { return refRE.ReplaceAllString(s, "#? [") }
			if norm(ptext) != norm(rtext) {
				t.Errorf("preview differs from the digest built for real:\n%s", firstDiff(norm(rtext), norm(ptext)))
			}
		})
	}
}
