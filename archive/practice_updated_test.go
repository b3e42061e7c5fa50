package archive

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/flows"
)

// undoUpdatedSame turns an archive back into what the versions before migration 0040
// left: the view practices as 0035 created it, and every updated_at written out.
func undoUpdatedSame(t *testing.T) []string {
	t.Helper()
	body, err := migrationFS.ReadFile("migrations/0035_practice_state.sql")
	if err != nil {
		t.Fatal(err)
	}
	view := string(body)[strings.Index(string(body), "CREATE VIEW practices"):]
	return []string{
		`DROP VIEW practices`,
		view,
		`UPDATE practice_state SET updated_at = state_since WHERE updated_at = ''`,
		`DELETE FROM schema_migrations WHERE name = '0040_practice_updated_same'`,
	}
}

// rawUpdated is practice id's updated_at as practice_state stores it, and as the view
// practices reads it.
func rawUpdated(t *testing.T, db *sql.DB, id int64) (stored, read string) {
	t.Helper()
	if err := db.QueryRow(`SELECT s.updated_at, p.updated_at FROM practice_state s JOIN practices p ON p.id = s.id WHERE s.id = ?`, id).
		Scan(&stored, &read); err != nil {
		t.Fatal(err)
	}
	return stored, read
}

// TestUpdatedAtStoredOnce proves migration 0040: a practice created or moved stores an empty text
// for an updated_at that is its state_since, and every reader (the view, the
// practice read back) gets the time; a save that changes only other columns stores
// its own time. An archive from before 0040 reads the same after it, gets no chain
// record from it, and verifies; an updated_at edited behind cmord's back in either
// form is reported.
func TestUpdatedAtStoredOnce(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "stored")
	s := w.s
	at := linksT0.Add(time.Hour)
	saved := linksT0.Add(2 * time.Hour)
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p, err := s.PracticeByID(ctx, tx, w.practices[0])
		if err != nil {
			return err
		}
		s.Now = func() time.Time { return at }
		if err := s.Transition(ctx, tx, &p, "BUILT", HistoryEntry{Flow: "REQ"}); err != nil {
			return err
		}
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		defer st.Close(ctx)
		p1, err := st.ByID(ctx, w.practices[1])
		if err != nil {
			return err
		}
		if err := st.SendAll(ctx, []*Practice{&p1}, "BUILT", at, flows.D(2025, 10, 15)); err != nil {
			return err
		}
		p2, err := st.ByID(ctx, w.practices[2])
		if err != nil {
			return err
		}
		s.Now = func() time.Time { return saved }
		p2.RequestDate = flows.D(2025, 10, 16)
		return s.SavePractice(ctx, tx, &p2)
	}); err != nil {
		t.Fatal(err)
	}
	db := s.Read()
	for _, tt := range []struct {
		name         string
		id           int64
		stored, read string
	}{
		{"moved one by one", w.practices[0], "", TS(at)},
		{"moved in bulk", w.practices[1], "", TS(at)},
		{"saved, not moved", w.practices[2], TS(saved), TS(saved)},
	} {
		stored, read := rawUpdated(t, db, tt.id)
		p, err := s.PracticeByID(ctx, nil, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if stored != tt.stored || read != tt.read || TS(p.UpdatedAt) != tt.read {
			t.Errorf("%s: stored %q, view %q, practice %q; want stored %q, read %q", tt.name, stored, read, TS(p.UpdatedAt), tt.stored, tt.read)
		}
	}
	verifyOK(t, s, "after writes under 0040")

	// An archive from before 0040: the same values, no chain record, verifies.
	dir := s.Dir()
	before := practicesDump(t, db)
	s.Close()
	c := openUndone(t, dir, undoUpdatedSame(t))
	if old := practicesDump(t, c); !reflect.DeepEqual(old, before) {
		t.Fatalf("the undone archive reads otherwise:\n%v\nwant\n%v", old, before)
	}
	var records int
	if err := c.QueryRow(`SELECT count(*) FROM chain`).Scan(&records); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if after := practicesDump(t, s.Read()); !reflect.DeepEqual(after, before) {
		t.Errorf("after 0040 the practices read:\n%v\nwant\n%v", after, before)
	}
	var recordsAfter int
	if err := s.Read().QueryRow(`SELECT count(*) FROM chain`).Scan(&recordsAfter); err != nil {
		t.Fatal(err)
	}
	if recordsAfter != records {
		t.Errorf("0040 added %d chain records, want none (no hash moves)", recordsAfter-records)
	}
	verifyOK(t, s, "after 0040")

	// Behind cmord's back: a time edited, and a '' that hides a time that differed.
	for _, q := range []string{
		`UPDATE practice_state SET updated_at = '2020-01-01T00:00:00.000000000Z' WHERE id = ?`,
		`UPDATE practice_state SET updated_at = '' WHERE id = ?`,
	} {
		t.Run(q, func(t *testing.T) {
			c, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Exec(q, w.practices[2]); err != nil {
				t.Fatal(err)
			}
			rep, err := s.Verify(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "changed outside cmord") {
				t.Errorf("verify after %s: %q, want the practice changed outside cmord", q, rep.Problems)
			}
		})
	}
}
