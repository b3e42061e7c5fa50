package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"reflect"
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

// TestRequestPayloadMigration proves that the payloads of an archive from before
// migration 0032 (in requests.payload) move to request_payloads and read the same,
// and that a payload replaced or removed afterwards reads as such.
func TestRequestPayloadMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	payload := &RequestPayload{Layout: "REQ/sig", Values: [][]string{{"IT001E1", "120,50"}, {"IT001E1", "7,00"}}, Inputs: []int64{3}}
	var withID, withoutID int64
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p := &Practice{CaseKey: "U|IT001E1|RSSMRA|2025-01-01", Role: "uscente", Sector: "E", CompanyPIVA: "01234567890", Point: "IT001E1",
			CustomerID: "X", State: "READY"}
		if err := s.CreatePractice(ctx, tx, p, HistoryEntry{}); err != nil {
			return err
		}
		with := &Request{PracticeID: p.ID, Flow: "REQ", CPUtente: "E250000001", Payload: payload}
		without := &Request{PracticeID: p.ID, Flow: "REQ", CPUtente: "E250000002"}
		if err := s.CreateRequest(ctx, tx, with); err != nil {
			return err
		}
		withID = with.ID
		err := s.CreateRequest(ctx, tx, without)
		withoutID = without.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	// As versions before 0032 left it: the rows themselves (form 2) in the request's row.
	form2 := "2\x1e3\x1eREQ/sig\x1eIT001E1\x1f120,50\x1eIT001E1\x1f7,00"
	for _, q := range []string{
		`UPDATE requests SET payload = ? WHERE id IN (SELECT id FROM request_payloads)`,
		`DROP TABLE request_payloads`,
		`DELETE FROM schema_migrations WHERE name = '0032_request_payloads'`,
	} {
		var args []any
		if strings.Contains(q, "?") {
			args = append(args, form2)
		}
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var inRow, side int
	if err := s.Read().QueryRow(`SELECT (SELECT count(*) FROM requests WHERE payload <> ''), (SELECT count(*) FROM request_payloads)`).Scan(&inRow, &side); err != nil {
		t.Fatal(err)
	}
	if inRow != 0 || side != 1 {
		t.Errorf("after the migration: %d payloads left in requests, %d in request_payloads; want 0 and 1", inRow, side)
	}
	ready := func() map[int64]*RequestPayload {
		t.Helper()
		reqs, _, err := s.ReadyRequestsWithPractices(ctx, nil, "REQ", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]*RequestPayload{}
		for _, r := range reqs {
			out[r.ID] = r.Payload
		}
		return out
	}
	got := ready()
	if len(got) != 2 || !reflect.DeepEqual(got[withID], payload) || got[withoutID] != nil {
		t.Fatalf("after the migration: payloads %+v, want %+v for %d and none for %d", got, payload, withID, withoutID)
	}

	// Replaced on one request, given to the other, then removed from the first.
	other := &RequestPayload{Layout: "REQ/sig", Values: [][]string{{"IT001E1", "1,00"}}}
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		for _, set := range []struct {
			id int64
			p  *RequestPayload
		}{{withID, other}, {withoutID, payload}, {withID, nil}} {
			if err := st.SetRequestPayload(ctx, set.id, set.p); err != nil {
				st.Close(ctx)
				return err
			}
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	got = ready()
	// Written now: the rows' hash in their place (form 4).
	hashed := &RequestPayload{Layout: payload.Layout, Hash: PayloadHash(payload.Values), Inputs: payload.Inputs}
	if got[withID] != nil || !reflect.DeepEqual(got[withoutID], hashed) {
		t.Fatalf("after replacing: payloads %+v, want none for %d and %+v for %d", got, withID, hashed, withoutID)
	}
}

// TestOpenPageSize: a new archive gets 8 KiB pages and an 8 MiB writer cache; an
// archive made with 4 KiB pages keeps them and its 16 MiB cache, in WAL mode either way.
func TestOpenPageSize(t *testing.T) {
	old := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(old, "index.db")+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE before_cmord (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, tt := range []struct {
		name            string
		dir             string
		pageSize, cache int
	}{
		{"new archive", t.TempDir(), 8192, -8192},
		{"archive with 4 KiB pages", old, 4096, -16384},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var pageSize, cache int
			var mode string
			if err := s.w.QueryRow(`SELECT (SELECT page_size FROM pragma_page_size), (SELECT cache_size FROM pragma_cache_size), (SELECT journal_mode FROM pragma_journal_mode)`).Scan(&pageSize, &cache, &mode); err != nil {
				t.Fatal(err)
			}
			if pageSize != tt.pageSize || cache != tt.cache || mode != "wal" {
				t.Errorf("page_size %d, cache_size %d, journal_mode %s; want %d, %d, wal", pageSize, cache, mode, tt.pageSize, tt.cache)
			}
		})
	}
}
