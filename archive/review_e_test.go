package archive

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

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
