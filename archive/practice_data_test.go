package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestPracticeDataMigration proves that an archive from before migration 0031 (the
// case in practices.data) opens, that its cases move to practice_data without
// changing what a practice reads as, and that the state chain still verifies: the
// move changes no recorded hash. A practice written after it, and one whose case is
// saved again or emptied, verify too; editing a case behind cmord's back is reported.
func TestPracticeDataMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		key  string
		data string
	}{
		{"U|IT001E1|RSSMRA|2025-01-01", `{"case":{"point":"IT001E1"},"audit":{"cmor":"120.50"}}`},
		{"U|IT001E2|VRDLGU|2025-01-01", `{}`},
		{"U|IT001E3|BNCGNN|2025-01-01", `{"case":{"point":"IT001E3"}}`},
	}
	ids := make([]int64, len(cases))
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		for i, c := range cases {
			p := &Practice{CaseKey: c.key, Role: "uscente", Sector: "E", CompanyPIVA: "01234567890", Point: c.key[2:9], CustomerID: "X",
				State: "READY", Data: json.RawMessage(c.data)}
			if err := s.CreatePractice(ctx, tx, p, HistoryEntry{Flow: "uscente.morosi"}); err != nil {
				return err
			}
			ids[i] = p.ID
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// The archive as the version before 0031 left it: cases in practices.data.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE practices SET data = (SELECT d.data FROM practice_data d WHERE d.id = practices.id) WHERE id IN (SELECT id FROM practice_data)`,
		`DROP TABLE practice_data`,
		`DELETE FROM schema_migrations WHERE name = '0031_practice_data'`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, c := range cases {
		p, err := s.PracticeByID(ctx, nil, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(p.Data) != c.data {
			t.Errorf("practice %s: data %s after the migration, want %s", c.key, p.Data, c.data)
		}
	}
	var inRow, side int
	if err := s.Read().QueryRow(`SELECT (SELECT count(*) FROM practices WHERE data NOT IN ('', '{}')), (SELECT count(*) FROM practice_data)`).Scan(&inRow, &side); err != nil {
		t.Fatal(err)
	}
	if inRow != 0 || side != 2 {
		t.Errorf("after the migration: %d cases left in practices.data, %d in practice_data; want 0 and 2", inRow, side)
	}
	verifyOK(t, s, "after the migration")

	// Saved again, emptied, and a new one: still read back and sealed.
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p, err := s.PracticeByID(ctx, tx, ids[0])
		if err != nil {
			return err
		}
		p.Data = json.RawMessage(`{"case":{"point":"IT001E1"},"audit":{"cmor":"99.00"}}`)
		if err := s.SavePractice(ctx, tx, &p); err != nil {
			return err
		}
		q, err := s.PracticeByID(ctx, tx, ids[2])
		if err != nil {
			return err
		}
		q.Data = nil
		return s.SavePractice(ctx, tx, &q)
	}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]string{ids[0]: `{"case":{"point":"IT001E1"},"audit":{"cmor":"99.00"}}`, ids[2]: `{}`} {
		p, err := s.PracticeByID(ctx, nil, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(p.Data) != want {
			t.Errorf("practice %d: data %s, want %s", id, p.Data, want)
		}
	}
	verifyOK(t, s, "after saving")

	// A case edited behind cmord's back is the practice changed outside cmord.
	if _, err := s.w.Exec(`UPDATE practice_data SET data = '{"audit":{"cmor":"999999.00"}}' WHERE id = ?`, ids[0]); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "practice #1 ") || !strings.Contains(rep.Problems[0], "changed outside cmord") {
		t.Fatalf("case edited outside cmord: problems %q, want one about the practice", rep.Problems)
	}
}

func verifyOK(t *testing.T, s *Store, when string) {
	t.Helper()
	rep, err := s.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify %s: %q", when, rep.Problems)
	}
}
