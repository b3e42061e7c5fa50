package archive

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/flows"
)

// undoStateSplit turns an archive back into what the versions before migration 0035
// left: practices a table with every column (updated_at written out, as 0040 had not
// yet left it empty for state_since), no practice_state, no view. Tests of
// older migrations start from it (they re-run migrations written for that table).
var undoStateSplit = []string{
	`DROP VIEW practices`, // and its INSTEAD OF triggers
	`ALTER TABLE practice_rows ADD COLUMN state TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE practice_rows ADD COLUMN state_since TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE practice_rows ADD COLUMN request_date TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE practice_rows ADD COLUMN updated_at TEXT NOT NULL DEFAULT ''`,
	`UPDATE practice_rows SET (state, state_since, request_date, updated_at) =
		(SELECT state, state_since, request_date, CASE updated_at WHEN '' THEN state_since ELSE updated_at END
		FROM practice_state s WHERE s.id = practice_rows.id)`,
	`DROP TABLE practice_state`,
	`ALTER TABLE practice_rows RENAME TO practices`,
	`CREATE INDEX practices_state ON practices (role, state)`,
	`CREATE INDEX practices_request ON practices (request_date) WHERE request_date <> ''`,
	// 0040 (updated_at stored '' for state_since) redefines the view 0035 made:
	// undone with it, and applied again after it.
	`DELETE FROM schema_migrations WHERE name IN ('0035_practice_state', '0040_practice_updated_same')`,
}

// practicesDump is every practice as SELECT * of the view (or the old table) gives it,
// column by column, by name: what readers and the state chain read.
func practicesDump(t *testing.T, db *sql.DB) []map[string]string {
	t.Helper()
	return tableDump(t, db, "practices")
}

// tableDump is every row of a table or view, column by column, by name.
func tableDump(t *testing.T, db *sql.DB, name string) []map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM ` + name + ` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]string
	for rows.Next() {
		dest, vals := scanDest(len(cols))
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for i, c := range cols {
			m[c] = string(vals[i])
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPracticeStateMigration proves that an archive from before migration 0035 (one
// practices table) opens, that every practice reads the same through the view, with
// the same columns, that the state chain still verifies, and that what cmord writes
// after it (a creation, a move, a save, a build's bulk move) lands in the right table
// and verifies; a state edited behind cmord's back, through the view or in
// practice_state itself, is reported.
func TestPracticeStateMigration(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "stored")
	s := w.s
	// One practice moved, one with a request date, besides the READY ones.
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p, err := s.PracticeByID(ctx, tx, w.practices[0])
		if err != nil {
			return err
		}
		if err := s.Transition(ctx, tx, &p, "BUILT", HistoryEntry{Flow: "REQ"}); err != nil {
			return err
		}
		p.RequestDate = flows.D(2025, 10, 16)
		return s.SavePractice(ctx, tx, &p)
	}); err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	before := practicesDump(t, s.Read())
	s.Close()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append(slices.Clone(undoRowsTrimmed), undoStateSplit...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if old := practicesDump(t, db); !reflect.DeepEqual(old, before) {
		t.Fatalf("the undone archive reads otherwise:\n%v\nwant\n%v", old, before)
	}
	var records int
	if err := db.QueryRow(`SELECT count(*) FROM chain`).Scan(&records); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if after := practicesDump(t, s.Read()); !reflect.DeepEqual(after, before) {
		t.Errorf("after 0035 the practices read:\n%v\nwant\n%v", after, before)
	}
	var kind, fk string
	var recordsAfter, states int
	if err := s.Read().QueryRow(`SELECT (SELECT type FROM sqlite_master WHERE name = 'practices'),
		(SELECT sql FROM sqlite_master WHERE name = 'request_rows'), (SELECT count(*) FROM chain), (SELECT count(*) FROM practice_state)`).
		Scan(&kind, &fk, &recordsAfter, &states); err != nil {
		t.Fatal(err)
	}
	if kind != "view" || states != len(before) {
		t.Errorf("after 0035: practices is a %s, practice_state has %d rows; want a view and %d", kind, states, len(before))
	}
	if !strings.Contains(fk, `"practice_rows"`) {
		t.Errorf("request_rows' foreign key after 0035: %s", fk)
	}
	// The view's columns differ from the table's in their defaults only: every row
	// keeps its hash, and nothing is sealed again.
	if recordsAfter != records {
		t.Errorf("0035 added %d chain records, want none", recordsAfter-records)
	}
	verifyOK(t, s, "after 0035")

	// cmord's writes after it: each in its table, each sealed.
	var created Practice
	at := linksT0.Add(time.Hour)
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		created = Practice{CaseKey: "U|IT001E7|X|2025-10-01", Role: "uscente", Sector: "E", CompanyPIVA: "00488410010", Point: "IT001E7",
			CustomerID: "X", State: "READY"}
		if err := s.CreatePractice(ctx, tx, &created, HistoryEntry{Flow: "uscente.morosi", At: at}); err != nil {
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
		p2, err := st.ByID(ctx, w.practices[2])
		if err != nil {
			return err
		}
		return st.SendAll(ctx, []*Practice{&p1, &p2}, "BUILT", at, flows.D(2025, 10, 15))
	}); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, "after writes under 0035")
	for _, tt := range []struct {
		id                    int64
		state, request, since string
	}{
		{created.ID, "READY", "", TS(at)},
		{w.practices[1], "BUILT", "2025-10-15", TS(at)},
		{w.practices[2], "BUILT", "2025-10-15", TS(at)},
	} {
		p, err := s.PracticeByID(ctx, nil, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if p.State != tt.state || dateText(p.RequestDate) != tt.request || TS(p.StateSince) != tt.since || TS(p.UpdatedAt) != tt.since {
			t.Errorf("practice %d: %s since %s, request %s, updated %s; want %s since %s, request %q", tt.id, p.State, TS(p.StateSince),
				dateText(p.RequestDate), TS(p.UpdatedAt), tt.state, tt.since, tt.request)
		}
	}

	// Behind cmord's back: through the view (its trigger writes the tables), and in
	// the narrow table itself.
	for _, q := range []string{
		`UPDATE practices SET state = 'ACCEPTED' WHERE id = ?`,
		`UPDATE practice_state SET request_date = '2020-01-01' WHERE id = ?`,
	} {
		t.Run(q, func(t *testing.T) {
			c, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Exec(q, created.ID); err != nil {
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

// TestPracticesViewWritable proves the view's INSTEAD OF triggers: a person's INSERT,
// UPDATE and DELETE on practices (as on the table before 0035) write the two tables,
// with the table's defaults for the columns left out.
func TestPracticesViewWritable(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.Read()
	c, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps := []struct {
		q    string
		want string // the practice as id|role|state|point|credit|request_date|updated_at, "" = none
	}{
		{`INSERT INTO practices (case_key, role, sector, company_piva, point, customer_id, state, state_since, created_at, updated_at)
			VALUES ('K', 'uscente', 'E', 'P', 'IT001E1', 'C', 'READY', 't0', 't0', 't0')`, "1|uscente|READY|IT001E1|0||t0"},
		{`UPDATE practices SET state = 'BUILT', credit_cents = 500, request_date = '2025-10-15', updated_at = 't1' WHERE point = 'IT001E1'`,
			"1|uscente|BUILT|IT001E1|500|2025-10-15|t1"},
		{`DELETE FROM practices WHERE id = 1`, ""},
	}
	for _, st := range steps {
		if _, err := c.Exec(st.q); err != nil {
			t.Fatal(st.q, err)
		}
		var got string
		err := db.QueryRow(`SELECT id || '|' || role || '|' || state || '|' || point || '|' || credit_cents || '|' || request_date || '|' || updated_at
			FROM practices`).Scan(&got)
		if err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
		var rows, states int
		if err := db.QueryRow(`SELECT (SELECT count(*) FROM practice_rows), (SELECT count(*) FROM practice_state)`).Scan(&rows, &states); err != nil {
			t.Fatal(err)
		}
		if got != st.want || rows != states {
			t.Errorf("after %s: %q (%d rows, %d states), want %q", st.q, got, rows, states, st.want)
		}
	}
}

// undoBuiltHistory turns an archive whose builds derived no history row (none in the
// archive tests' worlds) back into what the versions before migration 0037 left.
var undoBuiltHistory = append(slices.Clone(undoRowsTrimmed),
	`DROP VIEW practice_links`,
	`CREATE VIEW practice_links (practice_id, file_id, relation, line) AS
    SELECT practice_id, file_id, relation, line FROM practice_files
    UNION ALL
    SELECT practice_id, file_id, CASE WHEN link IN (1, 4) THEN 'input' ELSE 'built' END, line
    FROM practice_history WHERE link <> 0`,
	`DROP INDEX request_state_built`,
	`ALTER TABLE request_state DROP COLUMN hist_after`,
	`ALTER TABLE request_state DROP COLUMN hist_from`,
	`ALTER TABLE request_state DROP COLUMN hist_to`,
	`ALTER TABLE request_state DROP COLUMN hist_moves`,
	`DELETE FROM schema_migrations WHERE name = '0037_request_built_history'`,
)

// undoRequestSplit turns an archive back into what the versions before migration 0036
// left: requests a table with every column.
var undoRequestSplit = append(slices.Clone(undoBuiltHistory),
	`DROP VIEW requests`, // and its INSTEAD OF triggers
	`ALTER TABLE request_rows ADD COLUMN flow TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE request_rows ADD COLUMN state TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE request_rows ADD COLUMN sent_at TEXT`,
	`UPDATE request_rows SET (flow, state, file_id, sent_at) =
		(SELECT flow, state, file_id, sent_at FROM request_state s WHERE s.id = request_rows.id)`,
	`DROP TABLE request_state`,
	`ALTER TABLE request_rows RENAME TO requests`,
	`CREATE INDEX requests_ready ON requests (flow, state)`,
	`DELETE FROM schema_migrations WHERE name = '0036_request_state'`,
)

// TestRequestStateMigration proves that an archive from before migration 0036 (one
// requests table) opens, that every request reads the same through the view, that
// the state chain still verifies, and that what cmord writes to a request after it
// (a creation, a refresh, a build's bulk mark, an answer, a state) reads back.
func TestRequestStateMigration(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "stored")
	s := w.s
	var reqs []Request
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if reqs, err = s.Requests(ctx, tx, 0, "REQ", "", 0); err != nil {
			return err
		}
		if len(reqs) < 3 {
			t.Fatalf("the world has %d REQ requests, want 3", len(reqs))
		}
		if err := s.MarkRequestSent(ctx, tx, reqs[0].ID, w.built.ID, linksT0); err != nil {
			return err
		}
		return s.AnswerRequest(ctx, tx, reqs[0].ID, "admitted", "A01", "ok", linksT0.Add(time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	before := tableDump(t, s.Read(), "requests")
	s.Close()

	db := openUndone(t, dir, undoRequestSplit)
	if old := tableDump(t, db, "requests"); !reflect.DeepEqual(old, before) {
		t.Fatalf("the undone archive reads otherwise:\n%v\nwant\n%v", old, before)
	}
	db.Close()

	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if after := tableDump(t, s.Read(), "requests"); !reflect.DeepEqual(after, before) {
		t.Errorf("after 0036 the requests read:\n%v\nwant\n%v", after, before)
	}
	var kind, fk string
	var nulls int
	if err := s.Read().QueryRow(`SELECT (SELECT type FROM sqlite_master WHERE name = 'requests'),
		(SELECT sql FROM sqlite_master WHERE name = 'entrante_report_lines'),
		(SELECT count(*) FROM request_rows WHERE file_id IS NOT NULL)`).Scan(&kind, &fk, &nulls); err != nil {
		t.Fatal(err)
	}
	if kind != "view" || !strings.Contains(fk, `"request_rows"`) || nulls != 0 {
		t.Errorf("after 0036: requests is a %s, entrante_report_lines %s, %d request_rows with a file_id", kind, fk, nulls)
	}
	verifyOK(t, s, "after 0036")

	var created Request
	at := linksT0.Add(2 * time.Hour)
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		created = Request{PracticeID: w.practices[0], Flow: "ANN_REQ", CPUtente: "E250000099", Data: map[string]string{"a": "1"}}
		if err := s.CreateRequest(ctx, tx, &created); err != nil {
			return err
		}
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		defer st.Close(ctx)
		if err := st.SetRequest(ctx, created.ID, "cancelled", map[string]string{"a": "2"}); err != nil {
			return err
		}
		if err := st.MarkSentAll(ctx, []int64{reqs[1].ID, reqs[2].ID}, w.built2.ID, at); err != nil {
			return err
		}
		return s.SetRequestState(ctx, tx, reqs[0].ID, "accepted")
	}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id                int64
		flow, state, data string
		file              int64
		sent              string
	}{
		{created.ID, "ANN_REQ", "cancelled", "2", 0, ""},
		{reqs[0].ID, "REQ", "accepted", "", w.built.ID, TS(linksT0)},
		{reqs[1].ID, "REQ", "sent", "", w.built2.ID, TS(at)},
		{reqs[2].ID, "REQ", "sent", "", w.built2.ID, TS(at)},
	} {
		rs, err := s.Requests(ctx, nil, 0, tt.flow, tt.state, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got *Request
		for i := range rs {
			if rs[i].ID == tt.id {
				got = &rs[i]
			}
		}
		if got == nil {
			t.Errorf("request %d: not among the %s %s requests", tt.id, tt.flow, tt.state)
			continue
		}
		sent := ""
		if !got.SentAt.IsZero() {
			sent = TS(got.SentAt)
		}
		if got.FileID != tt.file || sent != tt.sent || got.Data["a"] != tt.data {
			t.Errorf("request %d: file %d sent %q data %v; want file %d sent %q a=%q", tt.id, got.FileID, sent, got.Data, tt.file, tt.sent, tt.data)
		}
	}
	if r, err := s.RequestByCPUtente(ctx, nil, reqs[0].CPUtente); err != nil || r.CauseCode != "A01" || r.Motivation != "ok" || r.AnsweredAt.IsZero() {
		t.Errorf("answered request: %+v, %v", r, err)
	}

	// A person's writes through the view.
	c, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{
		`INSERT INTO requests (practice_id, flow, cp_utente, state, created_at) VALUES (1, 'SUSP_REQ', 'X1', 'ready', 't0')`,
		`UPDATE requests SET state = 'sent', file_id = 1, motivation = 'm' WHERE cp_utente = 'X1'`,
	} {
		if _, err := c.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	var got string
	if err := c.QueryRow(`SELECT flow || '|' || state || '|' || file_id || '|' || motivation || '|' || data FROM requests WHERE cp_utente = 'X1'`).Scan(&got); err != nil || got != "SUSP_REQ|sent|1|m|{}" {
		t.Errorf("a request written through the view reads %q (%v)", got, err)
	}
	if _, err := c.Exec(`DELETE FROM requests WHERE cp_utente = 'X1'`); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := c.QueryRow(`SELECT (SELECT count(*) FROM request_rows) - (SELECT count(*) FROM request_state)`).Scan(&left); err != nil || left != 0 {
		t.Errorf("after a delete through the view: %d rows without their state (%v)", left, err)
	}
}

// TestRequestsQueryPlans pins the index each way of listing requests uses, now that
// the flow and state are on the other side of the view from the practice (0036).
func TestRequestsQueryPlans(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		practice    int64
		flow, state string
		index       string
	}{
		{5, "", "", "requests_practice"},
		{5, "REQ", "", "requests_practice"},
		{5, "REQ", "ready", "requests_practice"},
		{5, "", "sent", "requests_practice"},
		{0, "REQ", "ready", "requests_ready"},
		// Every request of a flow, whatever its state: no caller lists those, and
		// requests_ready holds the ready ones only (0043): a scan.
		{0, "ANN_REQ", "", "SCAN"},
		{0, "ANN_REQ", "ready", "requests_ready"},
	}
	for _, tt := range tests {
		q, args := requestsQuery(tt.practice, tt.flow, tt.state, 10)
		plan := explainPlan(t, s.Read(), q, args...)
		if !strings.Contains(strings.Join(plan, "\n"), tt.index) {
			t.Errorf("requests of practice %d, flow %q, state %q: plan does not use %s:\n%s", tt.practice, tt.flow, tt.state, tt.index,
				strings.Join(plan, "\n"))
		}
	}
}
