package archive

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// openUndone opens the closed archive in dir bare (foreign keys on, no migration),
// takes it back to an older schema with the undo statements, and returns it: how each
// migration's upgrade test makes an archive of the schema before it.
func openUndone(t *testing.T, dir string, undo []string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range undo {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			t.Fatal(q, err)
		}
	}
	return db
}

// explainPlan is SQLite's query plan for q, one line per step.
func explainPlan(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var a, b, c int
		var d string
		if err := rows.Scan(&a, &b, &c, &d); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// fullScans is the steps of plan that read a whole practices or requests table
// (either side of the views of migrations 0035 and 0036).
func fullScans(plan []string) []string {
	var out []string
	for _, step := range plan {
		f := strings.Fields(step)
		if len(f) >= 2 && f[0] == "SCAN" {
			switch f[1] {
			case "s", "r", "p", "practice_rows", "practice_state", "request_rows", "request_state", "practices", "requests":
				out = append(out, step)
			}
		}
	}
	return out
}

// TestLookupsByCodeReadNoWholeTable pins that the lookups run once per line of an
// input or an SII answer (a practice by CP_UTENTE, CP_GESTORE or a request's code;
// the ready requests of entrante practices, per page of a build) search indexes
// only. Through the views of migration 0035 (id from practice_state, codes and role
// in practice_rows) an OR across id and the codes, or a list of every entrante
// practice's id, read every practice of the archive: a million rows per line.
func TestLookupsByCodeReadNoWholeTable(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name string
		q    string
		args []any
	}{
		{"PracticeByCode", practiceByCodeQuery, []any{"E250000001"}},
		{"ReadyEntranteRequests", readyEntranteQuery, []any{"SUSP_REQ", 0, 256}},
	}
	for _, tt := range tests {
		plan := explainPlan(t, s.Read(), tt.q, tt.args...)
		if scans := fullScans(plan); len(scans) > 0 {
			t.Errorf("%s reads a whole table (%s):\n%s", tt.name, strings.Join(scans, "; "), strings.Join(plan, "\n"))
		}
	}
}

// TestPracticeByCodeEachCode proves that a practice is found by its own CP_UTENTE,
// its CP_GESTORE, a request's CP_UTENTE and #id, and that an unknown code is not
// found.
func TestPracticeByCodeEachCode(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var a, b Practice
	err = s.Write(ctx, func(tx *sql.Tx) error {
		a = Practice{CaseKey: "U|P1|C1|2025-01-01", Role: "uscente", Sector: "E", CompanyPIVA: "1", CPUtente: "UA", CPGestore: "GA",
			Point: "P1", CustomerID: "C1", State: "READY"}
		b = Practice{CaseKey: "E|GB", Role: "entrante", Sector: "E", CompanyPIVA: "1", CPGestore: "GB", Point: "P2", CustomerID: "C2",
			State: "NOTIFIED"}
		if err := s.CreatePractice(ctx, tx, &a, HistoryEntry{}); err != nil {
			return err
		}
		if err := s.CreatePractice(ctx, tx, &b, HistoryEntry{}); err != nil {
			return err
		}
		if err := s.CreateRequest(ctx, tx, &Request{PracticeID: a.ID, Flow: "SUSP_REQ", CPUtente: "RA"}); err != nil {
			return err
		}
		return s.CreateRequest(ctx, tx, &Request{PracticeID: b.ID, Flow: "SUSP_REQ", CPUtente: "RB"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[string]int64{"UA": a.ID, "GA": a.ID, "GB": b.ID, "RA": a.ID, "RB": b.ID, "#2": 2, " UA ": a.ID} {
		p, err := s.PracticeByCode(ctx, nil, code)
		if err != nil || p.ID != want {
			t.Errorf("PracticeByCode(%q) = #%d, %v; want #%d", code, p.ID, err, want)
		}
	}
	if _, err := s.PracticeByCode(ctx, nil, "NOPE"); err == nil {
		t.Errorf("PracticeByCode(NOPE) found a practice")
	}
	reqs, err := s.ReadyEntranteRequests(ctx, nil, "SUSP_REQ", 0, 10)
	if err != nil || len(reqs) != 1 || reqs[0].CPUtente != "RB" {
		t.Errorf("ReadyEntranteRequests = %+v, %v; want the request RB", reqs, err)
	}
}

// TestStateSplitMigrationsKeepEntranteData runs migrations 0035 and 0036 on an
// archive holding both sides: an entrante practice linked to a uscente one, requests
// in every state (one sent into a file), an entrante report line naming a request and
// a billing line. Every practice, request and line reads the same after them, the
// foreign keys still hold (foreign_key_check clean, and enforced: a request of a
// missing practice is refused), request_rows.file_id is NULL, every row has its state,
// and the state chain verifies.
func TestStateSplitMigrationsKeepEntranteData(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "stored")
	s := w.s
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		ent := Practice{CaseKey: "E|G777", Role: "entrante", Sector: "G", CompanyPIVA: "00488410010", CPGestore: "G777",
			Point: "IT001E0", CustomerID: "RSSMRA80A01H501U", State: "NOTIFIED", LinkedID: w.practices[0],
			Data: []byte(`{"invoices":[{"n":"F1"}]}`)}
		if err := s.CreatePractice(ctx, tx, &ent, HistoryEntry{Flow: "entrante.notifica"}); err != nil {
			return err
		}
		reqs, err := s.Requests(ctx, tx, 0, "REQ", "", 0)
		if err != nil || len(reqs) < 3 {
			return fmt.Errorf("REQ requests: %d, %v", len(reqs), err)
		}
		if err := s.MarkRequestSent(ctx, tx, reqs[0].ID, w.built.ID, linksT0); err != nil {
			return err
		}
		if err := s.MarkRequestSent(ctx, tx, reqs[1].ID, w.built.ID, linksT0); err != nil {
			return err
		}
		if err := s.AnswerRequest(ctx, tx, reqs[1].ID, "rejected", "R02", "no", linksT0.Add(time.Hour)); err != nil {
			return err
		}
		if err := s.SetRequestState(ctx, tx, reqs[2].ID, "cancelled"); err != nil {
			return err
		}
		rend := Request{PracticeID: ent.ID, Flow: "REND", CPUtente: "E259999991", Data: map[string]string{"IMPORTO": "10,00"}}
		if err := s.CreateRequest(ctx, tx, &rend); err != nil {
			return err
		}
		if err := s.MarkRequestSent(ctx, tx, rend.ID, w.built2.ID, linksT0); err != nil {
			return err
		}
		if err := s.AnswerRequest(ctx, tx, rend.ID, "admitted", "", "", linksT0.Add(time.Hour)); err != nil {
			return err
		}
		susp := Request{PracticeID: ent.ID, Flow: "SUSP_REQ", CPUtente: "E259999992"}
		if err := s.CreateRequest(ctx, tx, &susp); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO entrante_report_lines (practice_id, period, file_id, line, invoice, data, arrived_at, request_id)
			VALUES (?, '2025-10', ?, 2, 'F1', '{}', 't', ?)`, ent.ID, w.extract.ID, rend.ID); err != nil {
			return err
		}
		_, err = tx.Exec(`INSERT INTO entrante_billing_lines (export, practice_id, file_id, line, data, created_at)
			VALUES ('credit_notes', ?, ?, 3, '{}', 't')`, ent.ID, w.extract.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	dumps := func(db *sql.DB) map[string][]map[string]string {
		out := map[string][]map[string]string{}
		for _, name := range []string{"practices", "requests", "entrante_report_lines", "entrante_billing_lines", "practice_data", "practice_history"} {
			out[name] = tableDump(t, db, name)
		}
		return out
	}
	before := dumps(s.Read())
	s.Close()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append(append([]string{}, undoRequestSplit...), undoStateSplit...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if old := dumps(db); !reflect.DeepEqual(old, before) {
		t.Fatalf("the undone archive reads otherwise:\n%v\nwant\n%v", old, before)
	}
	db.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after := dumps(s.Read())
	for name, rows := range before {
		if !reflect.DeepEqual(after[name], rows) {
			t.Errorf("after 0035 and 0036, %s reads:\n%v\nwant\n%v", name, after[name], rows)
		}
	}
	var fkProblems, fileIDs, rowsNoState, statesNoRow int
	if err := s.Read().QueryRow(`SELECT (SELECT count(*) FROM pragma_foreign_key_check),
		(SELECT count(*) FROM request_rows WHERE file_id IS NOT NULL),
		(SELECT count(*) FROM practice_rows r WHERE NOT EXISTS (SELECT 1 FROM practice_state s WHERE s.id = r.id))
		+ (SELECT count(*) FROM request_rows r WHERE NOT EXISTS (SELECT 1 FROM request_state s WHERE s.id = r.id)),
		(SELECT count(*) FROM practice_state s WHERE NOT EXISTS (SELECT 1 FROM practice_rows r WHERE s.id = r.id))
		+ (SELECT count(*) FROM request_state s WHERE NOT EXISTS (SELECT 1 FROM request_rows r WHERE s.id = r.id))`).
		Scan(&fkProblems, &fileIDs, &rowsNoState, &statesNoRow); err != nil {
		t.Fatal(err)
	}
	if fkProblems != 0 || fileIDs != 0 || rowsNoState != 0 || statesNoRow != 0 {
		t.Errorf("after 0035 and 0036: %d foreign key problems, %d request_rows with a file_id, %d rows without state, %d states without row",
			fkProblems, fileIDs, rowsNoState, statesNoRow)
	}
	verifyOK(t, s, "after 0035 and 0036")
	// Still enforced: a request of no practice, a report line of no request.
	err = s.Write(ctx, func(tx *sql.Tx) error {
		return s.CreateRequest(ctx, tx, &Request{PracticeID: 9999, Flow: "REQ", CPUtente: "E259999993"})
	})
	if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Errorf("a request of practice #9999: %v, want a foreign key error", err)
	}
	err = s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE entrante_report_lines SET request_id = 9999`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Errorf("a report line of request #9999: %v, want a foreign key error", err)
	}
}

// TestVerifyReportsEditsOfEitherTable proves that archive verify reports a practice
// written behind cmord's back in any of the tables the view practices joins
// (migration 0035): a column of practice_rows, of practice_state or of practice_data
// changed, a row of either deleted, an id changed, a row added to either alone or
// through the view.
func TestVerifyReportsEditsOfEitherTable(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		q    string
		want string
	}{
		{`UPDATE practice_rows SET customer_name = 'X' WHERE id = ?1`, "changed outside cmord"},
		{`UPDATE practice_state SET state = 'ACCEPTED' WHERE id = ?1`, "changed outside cmord"},
		{`INSERT OR REPLACE INTO practice_data (id, data) VALUES (?1, '{"x":1}')`, "changed outside cmord"},
		{`DELETE FROM practice_state WHERE id = ?1`, "deleted outside cmord"},
		{`DELETE FROM practice_rows WHERE id = ?1`, "changed outside cmord"},
		{`UPDATE practice_rows SET id = 1000 WHERE id = ?1`, "changed outside cmord"},
		{`UPDATE practice_state SET id = 1000 WHERE id = ?1`, "practice #1000"},
		{`UPDATE practices SET id = 1000 WHERE id = ?1`, "practice #1000"},
		{`INSERT INTO practice_state (id, state, state_since, updated_at) VALUES (1000 + ?1, 'READY', 't', 't')`, "not in the state chain"},
		{`INSERT INTO practice_rows (case_key, role, sector, company_piva, point, customer_id, created_at)
			VALUES ('U|X|Y|2025-10-01', 'uscente', 'E', 'P', 'X', 'Y', 't')`, "is in no practice"},
		{`INSERT INTO practices (case_key, role, sector, company_piva, point, customer_id, state, state_since, created_at, updated_at)
			VALUES ('U|X|Y|2025-10-01', 'uscente', 'E', 'P', 'X', 'Y', 'READY', 't', 't', 't')`, "not in the state chain"},
	} {
		t.Run(tt.q, func(t *testing.T) {
			w := newLinksWorld(t, "folded")
			verifyOK(t, w.s, "before")
			c, err := sql.Open("sqlite", "file:"+filepath.Join(w.s.Dir(), "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Exec(tt.q, w.practices[1]); err != nil {
				t.Fatal(err)
			}
			rep, err := w.s.Verify(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rep.Problems, "\n"); rep.OK() || !strings.Contains(got, tt.want) {
				t.Errorf("verify: %q, want a problem saying %q", rep.Problems, tt.want)
			}
		})
	}
}

// TestAwaitingPublicationWalksTheFile pins that counting the practices waiting on a
// file (each failed delivery attempt of each file) reads the file's links and each
// linked practice by its id, not every practice in the awaited state: since
// migration 0035 the state is on the id's side of the view, and SQLite walked the
// state's index (a million BUILT practices after a big build, once per file).
func TestAwaitingPublicationWalksTheFile(t *testing.T) {
	w := newLinksWorld(t, "folded")
	plan := strings.Join(explainPlan(t, w.s.Read(), awaitingPublicationSQL, w.built.ID), "\n")
	if strings.Contains(plan, "practices_state") || !strings.Contains(plan, "SEARCH s USING INTEGER PRIMARY KEY (rowid=?)") {
		t.Errorf("AwaitingPublication walks the practices in a state, not the file's:\n%s", plan)
	}
}

// TestLookupsByCustomerReadNoWholeTable pins that the entrante lookups by customer
// (a billing line's customer) read the customer lookup (migration 0042) or the point's
// index, not every practice: only the pending set (lp) is scanned.
func TestLookupsByCustomerReadNoWholeTable(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name, q, index string
		args           []any
	}{
		{"UncollectedEntrante", uncollectedEntranteQuery, "SEARCH practice_customers USING PRIMARY KEY (customer_id=?)", []any{"X", "X"}},
		{"EntrantePracticesByPoint", practiceSelect + ` WHERE role = 'entrante' AND point = ? AND customer_id = ? ORDER BY id DESC`, "practices_point", []any{"P", "X"}},
		{"UscentePracticeByPoint", practiceSelect + ` WHERE role = 'uscente' AND point = ? AND customer_id = ? ORDER BY id DESC LIMIT 1`, "practices_point", []any{"P", "X"}},
	}
	for _, tt := range tests {
		plan := explainPlan(t, s.Read(), tt.q, tt.args...)
		if scans := fullScans(plan); len(scans) > 0 {
			t.Errorf("%s reads a whole table (%s):\n%s", tt.name, strings.Join(scans, "; "), strings.Join(plan, "\n"))
		}
		if !strings.Contains(strings.Join(plan, "\n"), tt.index) {
			t.Errorf("%s: plan does not use %s:\n%s", tt.name, tt.index, strings.Join(plan, "\n"))
		}
	}
}
