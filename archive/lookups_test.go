package archive

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/flows"
)

// byCustomer and byAmount are the ids `cmord practices --customer` and
// `--amount-min/--amount-max` list.
func byCustomer(t *testing.T, s *Store, customer string) []int64 {
	t.Helper()
	return practiceIDs(t, s, PracticeFilter{Customer: customer})
}

func byAmount(t *testing.T, s *Store, lo, hi flows.Amount) []int64 {
	t.Helper()
	return practiceIDs(t, s, PracticeFilter{AmountMin: &lo, AmountMax: &hi})
}

func practiceIDs(t *testing.T, s *Store, f PracticeFilter) []int64 {
	t.Helper()
	ps, err := s.QueryPractices(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int64{}
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids
}

// lookupsAgree fails the test when verify finds the lookup tables disagreeing with
// practice_rows, and checks every practice is found by its customer and its amount.
func lookupsAgree(t *testing.T, s *Store) {
	t.Helper()
	var rep VerifyReport
	if err := s.verifyLookups(context.Background(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("lookups disagree:\n%s", strings.Join(rep.Problems, "\n"))
	}
	rows, err := s.Read().Query(`SELECT id, customer_id, cmor_cents FROM practice_rows`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id       int64
		customer string
		cents    int64
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.customer, &r.cents); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	rows.Close()
	for _, r := range all {
		if !contains(byCustomer(t, s, r.customer), r.id) {
			t.Errorf("practice #%d not found by its customer %s", r.id, r.customer)
		}
		if !contains(byAmount(t, s, flows.Amount(r.cents), flows.Amount(r.cents)), r.id) {
			t.Errorf("practice #%d not found by its amount %d", r.id, r.cents)
		}
	}
}

func contains(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func execW(t *testing.T, s *Store, q string, args ...any) {
	t.Helper()
	if err := s.Write(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(q, args...)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestLookupTriggers: every way a practice is written keeps its customer and amount
// lookups right (migration 0042's triggers): cmord's create and save, the bulk
// create, and a person writing the view practices (insert, update of the customer,
// the amount, the id; delete).
func TestLookupTriggers(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	var p *Practice
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p = &Practice{CaseKey: "E|1", Role: "entrante", Sector: "E", CompanyPIVA: "01234567890", Point: "IT001E00000001",
			CustomerID: "RSSMRA80A01H501U", State: "NOTIFIED", CMOR: flows.MustAmount("120.50")}
		return s.CreatePractice(ctx, tx, p, HistoryEntry{Flow: "test"})
	}); err != nil {
		t.Fatal(err)
	}
	writeChunk(t, s, 0, 70, false) // bulk create, lookups written with the rows
	lookupsAgree(t, s)
	if got := byCustomer(t, s, "RSSMRA80A01H501U"); !reflect.DeepEqual(got, []int64{p.ID}) {
		t.Fatalf("by customer: %v", got)
	}
	// Save with a changed amount (an entrante practice's notified CMOR).
	p.CMOR = flows.MustAmount("99")
	if err := s.Write(ctx, func(tx *sql.Tx) error { return s.SavePractice(ctx, tx, p) }); err != nil {
		t.Fatal(err)
	}
	lookupsAgree(t, s)
	if got := byAmount(t, s, flows.MustAmount("120.50"), flows.MustAmount("120.50")); len(got) != 0 {
		t.Errorf("old amount still finds %v", got)
	}
	if got := byAmount(t, s, flows.MustAmount("99"), flows.MustAmount("99")); !reflect.DeepEqual(got, []int64{p.ID}) {
		t.Errorf("new amount finds %v", got)
	}
	// A person: the customer, then the id, then a row inserted, then deleted.
	execW(t, s, `UPDATE practices SET customer_id = 'VRDLGU70B02F205X' WHERE id = ?`, p.ID)
	lookupsAgree(t, s)
	if got := byCustomer(t, s, "RSSMRA80A01H501U"); len(got) != 0 {
		t.Errorf("old customer still finds %v", got)
	}
	// (A practice with history cannot change its id: the foreign keys. One a person
	// inserted, without any, can.)
	execW(t, s, `INSERT INTO practices (case_key, role, sector, company_piva, point, customer_id, cmor_cents, state, state_since, created_at, updated_at)
		VALUES ('E|2', 'entrante', 'E', '01234567890', 'IT001E00000002', 'X2', 777, 'NOTIFIED', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')`)
	lookupsAgree(t, s)
	execW(t, s, `UPDATE practices SET id = 1000 WHERE case_key = 'E|2'`)
	lookupsAgree(t, s)
	if got := byCustomer(t, s, "X2"); !reflect.DeepEqual(got, []int64{1000}) {
		t.Errorf("moved practice by customer: %v", got)
	}
	execW(t, s, `UPDATE practices SET customer_id = 'X1', cmor_cents = 5, id = 1001 WHERE id = 1000`)
	lookupsAgree(t, s)
	execW(t, s, `DELETE FROM practices WHERE id = 1001`)
	lookupsAgree(t, s)
	var n int
	if err := s.Read().QueryRow(`SELECT (SELECT count(*) FROM practice_customers) + (SELECT count(*) FROM practice_amounts)`).Scan(&n); err != nil || n != 2*71 {
		t.Errorf("%d lookup entries, want %d (%v)", n, 2*71, err)
	}
}

// deferredChunk creates practices from..to as the uscente.morosi handler does, their
// lookups pending.
func deferredChunk(t *testing.T, s *Store, from, to int, progressFile int64) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.DeferLookups()
		for i := from; i < to; i++ {
			_, p := dictCase(i)
			p.CMOR = flows.Amount(1000 + i%7)
			if err := st.QueueCreate(ctx, p, HistoryEntry{Flow: "uscente.morosi"}, nil); err != nil {
				st.Close(ctx)
				return err
			}
			ids = append(ids, p.ID)
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		if progressFile != 0 {
			return s.SaveProgress(ctx, tx, progressFile, to, map[string]int{}, nil)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

func pending(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.PendingLookups(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeferredLookups: practices a chunk creates with their lookups deferred are
// found by customer and amount before the move and after it, whatever is done to
// them meanwhile (saved with another amount, their customer or id changed, deleted);
// the move leaves no pending practice and tables that verify.
func TestDeferredLookups(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	writeChunk(t, s, 0, 10, false)
	ids := deferredChunk(t, s, 10, 200, 0)
	if n := pending(t, s); n != 190 {
		t.Fatalf("%d pending, want 190", n)
	}
	var inTable int
	if err := s.Read().QueryRow(`SELECT count(*) FROM practice_customers WHERE practice_id >= ?`, ids[0]).Scan(&inTable); err != nil || inTable != 0 {
		t.Fatalf("%d of the chunk's practices in practice_customers (%v), want 0", inTable, err)
	}
	lookupsAgree(t, s)
	_, p12 := dictCase(12)
	if got := byCustomer(t, s, p12.CustomerID); !contains(got, ids[2]) {
		t.Errorf("pending practice not found by customer: %v", got)
	}
	// Meanwhile: a pending practice saved with another amount, one given another
	// customer, one moved to another id, one deleted.
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p, err := s.PracticeByID(ctx, tx, ids[3])
		if err != nil {
			return err
		}
		p.CMOR = 424242
		return s.SavePractice(ctx, tx, &p)
	}); err != nil {
		t.Fatal(err)
	}
	execW(t, s, `UPDATE practices SET customer_id = 'NEWCUST' WHERE id = ?`, ids[4])
	// A pending practice without history (the foreign keys) moved to another id.
	execW(t, s, `INSERT INTO practice_lookup_pending VALUES (5000)`)
	execW(t, s, `INSERT INTO practices (id, case_key, role, sector, company_piva, point, customer_id, cmor_cents, state, state_since, created_at, updated_at)
		VALUES (5000, 'E|2', 'entrante', 'E', '01234567890', 'IT001E00000002', 'X2', 777, 'NOTIFIED', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')`)
	execW(t, s, `UPDATE practices SET id = 9000 WHERE id = 5000`)
	// And one deleted.
	execW(t, s, `INSERT INTO practice_lookup_pending VALUES (5001)`)
	execW(t, s, `INSERT INTO practices (id, case_key, role, sector, company_piva, point, customer_id, cmor_cents, state, state_since, created_at, updated_at)
		VALUES (5001, 'E|3', 'entrante', 'E', '01234567890', 'IT001E00000003', 'X3', 778, 'NOTIFIED', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')`)
	if got := byCustomer(t, s, "X3"); !reflect.DeepEqual(got, []int64{5001}) {
		t.Errorf("pending practice by customer: %v", got)
	}
	execW(t, s, `DELETE FROM practices WHERE id = 5001`)
	if got := byCustomer(t, s, "X2"); !reflect.DeepEqual(got, []int64{9000}) {
		t.Errorf("pending practice moved to id 9000, by customer: %v", got)
	}
	lookupsAgree(t, s)
	if n := pending(t, s); n != 191 {
		t.Errorf("%d pending after a delete, want 191", n)
	}
	before := map[string][]int64{"X2": byCustomer(t, s, "X2"), "NEWCUST": byCustomer(t, s, "NEWCUST"), "amount": byAmount(t, s, 424242, 424242),
		"range": byAmount(t, s, 1002, 1004), "c12": byCustomer(t, s, p12.CustomerID)}
	if !reflect.DeepEqual(before["NEWCUST"], []int64{ids[4]}) || !reflect.DeepEqual(before["amount"], []int64{ids[3]}) {
		t.Errorf("before the move: %v", before)
	}
	var moved int64
	if err := s.Write(ctx, func(tx *sql.Tx) (err error) {
		moved, err = MovePendingLookups(ctx, tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if moved != 191 || pending(t, s) != 0 {
		t.Errorf("moved %d, %d left", moved, pending(t, s))
	}
	lookupsAgree(t, s)
	after := map[string][]int64{"X2": byCustomer(t, s, "X2"), "NEWCUST": byCustomer(t, s, "NEWCUST"), "amount": byAmount(t, s, 424242, 424242),
		"range": byAmount(t, s, 1002, 1004), "c12": byCustomer(t, s, p12.CustomerID)}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("queries differ after the move:\nbefore %v\n after %v", before, after)
	}
	rep, err := s.Verify(ctx, nil)
	if err != nil || !rep.OK() {
		t.Errorf("verify: %v %v", rep.Problems, err)
	}
}

// TestPendingLookupsAtOpen: pending lookups of a file still in progress are left to
// its end; with no file in progress (refused after some chunks) the next open moves
// them.
func TestPendingLookupsAtOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := ingest(t, s, "test", "morosi.csv", "a;b\n")
	deferredChunk(t, s, 0, 50, f.File.ID)
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, s); n != 50 {
		t.Errorf("file in progress: %d pending after open, want 50 (its end moves them)", n)
	}
	if err := s.Write(context.Background(), func(tx *sql.Tx) error {
		return s.SetFileState(context.Background(), tx, f.File.ID, StateRejected, "refused", nil)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := pending(t, s); n != 0 {
		t.Errorf("no file in progress: %d pending after open, want 0", n)
	}
	lookupsAgree(t, s)
	rep, err := s.Verify(context.Background(), nil)
	if err != nil || !rep.OK() {
		t.Errorf("verify: %v %v", rep.Problems, err)
	}
}

// TestVerifyLookupsTampered: a lookup entry missing, forged, or naming another value
// hides a practice from (or adds one to) a query by customer or amount: verify says so.
func TestVerifyLookupsTampered(t *testing.T) {
	tests := []struct {
		name, sql, want string
	}{
		{"customer entry deleted", `DELETE FROM practice_customers WHERE practice_id = 3`, "practice #3 has no customer lookup entry"},
		{"amount entry deleted", `DELETE FROM practice_amounts WHERE practice_id = 3`, "practice #3 has no amount lookup entry"},
		{"customer entry changed", `UPDATE practice_customers SET customer_id = 'FORGED' WHERE practice_id = 3`, "customer lookup entry of practice #3"},
		{"amount entry changed", `UPDATE practice_amounts SET cmor_cents = 1 WHERE practice_id = 3`, "amount lookup entry of practice #3"},
		{"entry forged", `INSERT INTO practice_customers VALUES ('SOMEONE', 4)`, "customer lookup entry of practice #4"},
		{"entry of no practice", `INSERT INTO practice_amounts VALUES (5, 999)`, "amount lookup entry of practice #999"},
		{"pending and entered", `INSERT INTO practice_lookup_pending VALUES (2)`, "customer lookup entry of practice #2"},
		{"table emptied", `DELETE FROM practice_customers`, "and 5 more of the same"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			writeChunk(t, s, 0, 25, false)
			execW(t, s, tt.sql)
			rep, err := s.Verify(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(rep.Problems, "\n"), tt.want) {
				t.Errorf("verify says:\n%s\nwant %q", strings.Join(rep.Problems, "\n"), tt.want)
			}
		})
	}
}

// TestLookupsMigration: an archive from before migration 0042 gets its lookup tables
// filled, the two indexes dropped, the same answers by customer and amount, and
// verifies.
func TestLookupsMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	withMigrations(t, "0041_daemon_runs", nil)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeChunk(t, s, 0, 150, false)
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		for i := 150; i < 160; i++ {
			_, p := dictCase(i)
			p.CMOR = flows.Amount(i % 4)
			if err := s.CreatePractice(ctx, tx, p, HistoryEntry{Flow: "test"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	customers := []string{"RSSMRA85T10A000", "RSSMRA85T10A007", "RSSMRA85T10A155", "NOBODY"}
	amounts := [][2]flows.Amount{{0, 0}, {1, 2}, {0, 1 << 40}}
	query := func() map[string][]int64 {
		out := map[string][]int64{}
		for _, c := range customers {
			out[c] = practiceIDs(t, s, PracticeFilter{Customer: c})
		}
		for _, a := range amounts {
			lo, hi := a[0], a[1]
			out[fmt.Sprint(a)] = practiceIDs(t, s, PracticeFilter{AmountMin: &lo, AmountMax: &hi})
		}
		return out
	}
	// Before: the old schema, read by its columns.
	before := map[string][]int64{}
	ids := func(q string, args ...any) []int64 {
		rows, err := s.Read().Query(q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := []int64{}
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			out = append(out, id)
		}
		return out
	}
	for _, c := range customers {
		before[c] = ids(`SELECT id FROM practice_rows WHERE customer_id = ? ORDER BY id`, c)
	}
	for _, a := range amounts {
		before[fmt.Sprint(a)] = ids(`SELECT id FROM practice_rows WHERE cmor_cents BETWEEN ? AND ? ORDER BY id`, int64(a[0]), int64(a[1]))
	}
	if len(before["RSSMRA85T10A007"]) == 0 || len(before[fmt.Sprint(amounts[1])]) == 0 {
		t.Fatalf("fixture: %v", before)
	}
	s.Close()
	migrationSource = migrationFS
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if after := query(); !reflect.DeepEqual(before, after) {
		t.Errorf("answers changed:\nbefore %v\n after %v", before, after)
	}
	var idx []string
	rows, err := s.Read().Query(`SELECT name FROM sqlite_master WHERE name IN ('practices_customer', 'practices_cmor')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		idx = append(idx, n)
	}
	rows.Close()
	sort.Strings(idx)
	if len(idx) > 0 {
		t.Errorf("indexes left: %v", idx)
	}
	lookupsAgree(t, s)
	rep, err := s.Verify(ctx, nil)
	if err != nil || !rep.OK() {
		t.Errorf("verify: %v %v", rep.Problems, err)
	}
}

// TestLookupsMigrationTime times migration 0042 on an archive of LOOKUP_MIGRATION_ROWS
// synthetic practices (skipped without it): the upgrade's cost in docs/install.md.
func TestLookupsMigrationTime(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("LOOKUP_MIGRATION_ROWS"))
	if n == 0 {
		t.Skip("set LOOKUP_MIGRATION_ROWS")
	}
	dir := t.TempDir()
	withMigrations(t, "0041_daemon_runs", nil)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BulkLoadPractices(context.Background(), n, SyntheticPractice); err != nil {
		t.Fatal(err)
	}
	s.Close()
	migrationSource = migrationFS
	start := time.Now()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("migration 0042 on %d practices: %v", n, time.Since(start))
	s.Close()
}
