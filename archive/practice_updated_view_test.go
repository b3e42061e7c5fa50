package archive

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// A person writing practices through the view (sqlite3, outside cmord) gets back the
// updated_at written, stored ” only when it is state_since (0040's INSTEAD OF
// triggers); a write that leaves updated_at out keeps the time the view read.
func TestUpdatedAtThroughTheView(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir(), "index.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const t1, t2, t3 = "2026-01-01T00:00:00.000000000Z", "2026-02-01T00:00:00.000000000Z", "2026-03-01T00:00:00.000000000Z"
	ins := func(key, since, updated string) int64 {
		t.Helper()
		_, err := db.Exec(`INSERT INTO practices (case_key, role, sector, company_piva, point, customer_id, state, state_since, created_at, updated_at)
			VALUES (?, 'uscente', 'E', '01234567890', 'IT001E1', 'C1', 'READY', ?, ?, ?)`, key, since, since, updated)
		if err != nil {
			t.Fatal(err)
		}
		var id int64 // (LastInsertId is not the view's row: the triggers inserted it)
		if err := db.QueryRow(`SELECT id FROM practice_rows WHERE case_key = ?`, key).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, tc := range []struct {
		name                 string
		since, updated       string
		update               string // an UPDATE of the view, ? = the id ("" none)
		wantStored, wantRead string
	}{
		{"inserted the same", t1, t1, "", "", t1},
		{"inserted later", t1, t2, "", t2, t2},
		{"moved, updated_at left out", t1, t1, `UPDATE practices SET state = 'BUILT', state_since = '` + t3 + `' WHERE id = ?`, t1, t1},
		{"moved with its updated_at", t1, t2, `UPDATE practices SET state = 'BUILT', state_since = '` + t3 + `', updated_at = '` + t3 + `' WHERE id = ?`, "", t3},
		{"updated_at only", t1, t1, `UPDATE practices SET updated_at = '` + t2 + `' WHERE id = ?`, t2, t2},
		{"updated_at back to state_since", t1, t2, `UPDATE practices SET updated_at = '` + t1 + `' WHERE id = ?`, "", t1},
		{"another column only", t1, t2, `UPDATE practices SET motivation = 'x' WHERE id = ?`, t2, t2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := ins(tc.name, tc.since, tc.updated)
			if tc.update != "" {
				if _, err := db.Exec(tc.update, id); err != nil {
					t.Fatal(err)
				}
			}
			stored, read := rawUpdated(t, db, id)
			if stored != tc.wantStored || read != tc.wantRead {
				t.Errorf("stored %q, read %q; want %q, %q", stored, read, tc.wantStored, tc.wantRead)
			}
		})
	}
}
