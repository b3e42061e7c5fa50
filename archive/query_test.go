package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/flows"
)

// queryFixture creates a small set of practices whose every filter has a known answer.
func queryFixture(t testing.TB) *Store {
	t.Helper()
	s := openTest(t)
	ctx := context.Background()
	amt := flows.MustAmount
	ps := []Practice{
		{CaseKey: "A", Role: "uscente", Sector: "E", Point: "IT001E00000001", CustomerID: "RSSMRA80A01H501U", CPUtente: "E250000001",
			CPGestore: "G1", State: "sent", SwitchDate: flows.D(2025, 1, 1), RequestDate: flows.D(2025, 3, 10), CMOR: amt("120.50")},
		{CaseKey: "B", Role: "uscente", Sector: "E", Point: "IT001E00000001", CustomerID: "01234567897", CPUtente: "E250000002",
			State: "accepted", SwitchDate: flows.D(2025, 2, 1), RequestDate: flows.D(2025, 4, 10), AnswerDate: flows.D(2025, 4, 15), CMOR: amt("80")},
		{CaseKey: "C", Role: "uscente", Sector: "G", Point: "00881234567890", CustomerID: "RSSMRA80A01H501U", CPUtente: "G250000001",
			State: "rejected", CauseCode: "5", SwitchDate: flows.D(2025, 3, 1), RequestDate: flows.D(2025, 5, 2), AnswerDate: flows.D(2025, 5, 9), CMOR: amt("999.99")},
		{CaseKey: "D", Role: "entrante", Sector: "E", Point: "IT001E00000002", CustomerID: "01234567897", CPGestore: "G4",
			State: "notified", SwitchDate: flows.D(2025, 4, 1), AnswerDate: flows.D(2025, 6, 1), CMOR: amt("10")},
		{CaseKey: "E", Role: "entrante", Sector: "G", Point: "00881234567891", CustomerID: "VRDLGU70B02F205X", CPGestore: "G5",
			State: "charged", SwitchDate: flows.D(2025, 5, 1), CMOR: amt("0")},
	}
	err := s.Write(ctx, func(tx *sql.Tx) error {
		for i := range ps {
			ps[i].CompanyPIVA = "00488410010"
			if err := s.CreatePractice(ctx, tx, &ps[i], HistoryEntry{Flow: "test", At: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)}); err != nil {
				return err
			}
		}
		// A follow-up request of A with its own code, an open exception on B, a
		// resolved one on C.
		if err := s.CreateRequest(ctx, tx, &Request{PracticeID: ps[0].ID, Flow: "ANN_REQ", CPUtente: "E250000099"}); err != nil {
			return err
		}
		if _, _, err := s.RaiseException(ctx, tx, Exception{Kind: "no_answer", PracticeID: ps[1].ID, Message: "no answer"}); err != nil {
			return err
		}
		id, _, err := s.RaiseException(ctx, tx, Exception{Kind: "sii_refusal", PracticeID: ps[2].ID, Message: "refused"})
		if err != nil {
			return err
		}
		return s.ResolveException(ctx, tx, id, "test", "done")
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keys(ps []Practice) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.CaseKey)
	}
	return out
}

func TestQueryPracticesFilters(t *testing.T) {
	s := queryFixture(t)
	ctx := context.Background()
	yes, no := true, false
	a := func(v string) *flows.Amount { x := flows.MustAmount(v); return &x }
	tests := []struct {
		name string
		f    PracticeFilter
		want []string
	}{
		{"all", PracticeFilter{}, []string{"A", "B", "C", "D", "E"}},
		{"role", PracticeFilter{Role: "entrante"}, []string{"D", "E"}},
		{"sector", PracticeFilter{Sector: "G"}, []string{"C", "E"}},
		{"states", PracticeFilter{State: []string{"sent", " accepted", ""}}, []string{"A", "B"}},
		{"point", PracticeFilter{Point: "IT001E00000001"}, []string{"A", "B"}},
		{"customer", PracticeFilter{Customer: "01234567897"}, []string{"B", "D"}},
		{"cp_utente of the practice", PracticeFilter{CPUtente: "G250000001"}, []string{"C"}},
		{"cp_utente of a follow-up request", PracticeFilter{CPUtente: "E250000099"}, []string{"A"}},
		{"cp_gestore", PracticeFilter{CPGestore: "G4"}, []string{"D"}},
		{"cause", PracticeFilter{CauseCode: "5"}, []string{"C"}},
		{"switch range", PracticeFilter{SwitchFrom: flows.D(2025, 2, 1), SwitchTo: flows.D(2025, 4, 1)}, []string{"B", "C", "D"}},
		{"request from", PracticeFilter{RequestFrom: flows.D(2025, 4, 10)}, []string{"B", "C"}},
		{"request to excludes unknown dates", PracticeFilter{RequestTo: flows.D(2025, 4, 10)}, []string{"A", "B"}},
		{"answer range", PracticeFilter{AnswerFrom: flows.D(2025, 5, 1), AnswerTo: flows.D(2025, 12, 31)}, []string{"C", "D"}},
		{"amount min", PracticeFilter{AmountMin: a("80.00")}, []string{"A", "B", "C"}},
		{"amount range", PracticeFilter{AmountMin: a("10"), AmountMax: a("120.50")}, []string{"A", "B", "D"}},
		{"open exception", PracticeFilter{HasOpenException: &yes}, []string{"B"}},
		{"no open exception", PracticeFilter{HasOpenException: &no}, []string{"A", "C", "D", "E"}},
		{"combined", PracticeFilter{Role: "uscente", Customer: "RSSMRA80A01H501U", Sector: "E"}, []string{"A"}},
		{"none", PracticeFilter{Point: "IT001E99999999"}, []string{}},
		{"order by amount desc", PracticeFilter{Order: "-amount"}, []string{"C", "A", "B", "D", "E"}},
		{"order by switch", PracticeFilter{Order: "switch", Limit: 2}, []string{"A", "B"}},
		{"limit offset", PracticeFilter{Limit: 2, Offset: 2}, []string{"C", "D"}},
		{"offset only", PracticeFilter{Offset: 3}, []string{"D", "E"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.QueryPractices(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(keys(got), tt.want) {
				t.Errorf("QueryPractices = %v, want %v", keys(got), tt.want)
			}
			n, err := s.CountPractices(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if tt.f.Limit == 0 && tt.f.Offset == 0 && n != len(tt.want) {
				t.Errorf("CountPractices = %d, want %d", n, len(tt.want))
			}
		})
	}
}

func TestQueryPracticesRoundTripsFields(t *testing.T) {
	s := queryFixture(t)
	got, err := s.QueryPractices(context.Background(), PracticeFilter{CPUtente: "G250000001"})
	if err != nil || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
	p := got[0]
	if p.CMOR != flows.MustAmount("999.99") || p.SwitchDate != flows.D(2025, 3, 1) || p.AnswerDate != flows.D(2025, 5, 9) ||
		p.CauseCode != "5" || p.Point != "00881234567890" || p.StateSince.IsZero() {
		t.Errorf("practice read back wrong: %+v", p)
	}
}

func TestQueryPracticesBadOrder(t *testing.T) {
	s := queryFixture(t)
	if _, err := s.QueryPractices(context.Background(), PracticeFilter{Order: "name; DROP TABLE practices"}); err == nil {
		t.Fatal("unknown order accepted")
	}
	if _, err := s.CountPractices(context.Background(), PracticeFilter{Order: "nope"}); err == nil {
		t.Fatal("unknown order accepted by count")
	}
}

func TestEachPracticeStopsOnError(t *testing.T) {
	s := queryFixture(t)
	stop := errors.New("stop")
	seen := 0
	err := s.EachPractice(context.Background(), PracticeFilter{}, func(Practice) error {
		seen++
		if seen == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 2 {
		t.Fatalf("err = %v after %d rows; want stop after 2", err, seen)
	}
}

// TestQueryPlansUseIndexes pins the index each selective filter must use: a full
// scan of a million practices would turn a 1 ms lookup into a second. (A range open
// at one end may legitimately scan: without statistics SQLite assumes it matches a
// large share of the table, and then reading in id order is cheaper than sorting.)
func TestQueryPlansUseIndexes(t *testing.T) {
	s := queryFixture(t)
	yes := true
	big := flows.MustAmount("900")
	tests := []struct {
		f     PracticeFilter
		index string
	}{
		{PracticeFilter{Point: "IT001E00000001"}, "practices_point"},
		{PracticeFilter{Point: "IT001E00000001", Order: "-switch", Limit: 100}, "practices_point"},
		// Customer and amount: by their lookup tables (migration 0042), plus the
		// pending practices one by one (no SCAN but of practice_lookup_pending).
		{PracticeFilter{Customer: "01234567897"}, "SEARCH practice_customers USING PRIMARY KEY (customer_id=?)"},
		{PracticeFilter{CPGestore: "G4"}, "practices_cp_gestore"},
		{PracticeFilter{CauseCode: "5"}, "practices_cause"},
		{PracticeFilter{RequestFrom: flows.D(2025, 1, 1), RequestTo: flows.D(2025, 1, 31)}, "practices_request"},
		{PracticeFilter{AnswerFrom: flows.D(2025, 1, 1), AnswerTo: flows.D(2025, 1, 31)}, "practices_answer"},
		{PracticeFilter{AmountMin: &big, AmountMax: &big}, "SEARCH practice_amounts USING PRIMARY KEY (cmor_cents>? AND cmor_cents<?)"},
		{PracticeFilter{AmountMin: &big}, "SEARCH practice_amounts USING PRIMARY KEY (cmor_cents>? AND cmor_cents<?)"},
		{PracticeFilter{AmountMax: &big, State: []string{"READY"}}, "SEARCH practice_amounts USING PRIMARY KEY (cmor_cents>? AND cmor_cents<?)"},
		{PracticeFilter{SwitchFrom: flows.D(2025, 1, 1), SwitchTo: flows.D(2025, 1, 31)}, "practices_switch"},
		{PracticeFilter{CPUtente: "E250000001"}, "sqlite_autoindex_practice_rows"},
		{PracticeFilter{HasOpenException: &yes}, "exceptions_practice"},
		{PracticeFilter{State: []string{"READY"}}, "practices_state"},
		// A state beside a point, a customer or a code (migration 0035: the state on
		// the other side of the view): still the point's, customer's, code's index.
		{PracticeFilter{Point: "IT001E00000001", State: []string{"READY", "SENT"}}, "practices_point"},
		{PracticeFilter{Customer: "01234567897", State: []string{"READY"}}, "SEARCH practice_customers USING PRIMARY KEY (customer_id=?)"},
		{PracticeFilter{Role: "entrante", Customer: "01234567897"}, "SEARCH practice_customers USING PRIMARY KEY (customer_id=?)"},
		{PracticeFilter{Point: "IT001E00000001", Customer: "01234567897"}, "SEARCH"},
		{PracticeFilter{CPUtente: "E250000001", State: []string{"READY"}}, "sqlite_autoindex_practice_rows"},
	}
	for _, tt := range tests {
		plan, err := s.ExplainPractices(context.Background(), tt.f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(plan, "\n"), tt.index) {
			t.Errorf("filter %+v: plan does not use %s:\n%s", tt.f, tt.index, strings.Join(plan, "\n"))
		}
		if tt.f.Customer != "" || tt.f.AmountMin != nil || tt.f.AmountMax != nil {
			// Not a practice scanned: only the pending set (empty but during a big file).
			for _, line := range plan {
				if strings.Contains(line, "SCAN") && !strings.Contains(line, "SCAN lp") {
					t.Errorf("filter %+v: plan scans: %s\n%s", tt.f, line, strings.Join(plan, "\n"))
				}
			}
		}
	}
}

func TestSyntheticPracticesLoad(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.BulkLoadPractices(ctx, 1000, SyntheticPractice); err != nil {
		t.Fatal(err)
	}
	n, err := s.CountPractices(ctx, PracticeFilter{})
	if err != nil || n != 1000 {
		t.Fatalf("count = %d, %v", n, err)
	}
	got, err := s.QueryPractices(ctx, PracticeFilter{Point: SyntheticPractice(7).Point})
	if err != nil || len(got) != 1 || got[0].CaseKey != "S|7" {
		t.Fatalf("by point: %v, %v", keys(got), err)
	}
	if got[0].CMOR != SyntheticPractice(7).CMOR {
		t.Errorf("amount %v, want %v", got[0].CMOR, SyntheticPractice(7).CMOR)
	}
}

// benchStore opens a store holding n synthetic practices. Generating a million takes
// a while, so the state directory is kept under os.TempDir() keyed by n and reused by
// later runs (and by the export benchmarks, which use the same layout); newer
// migrations are applied to it on open like to any production store.
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("cmord-bench-practices-%d", n))
	if _, err := os.Stat(filepath.Join(dir, "index.db")); err != nil {
		tmp, err := os.MkdirTemp(os.TempDir(), "cmord-bench-gen-")
		if err != nil {
			b.Fatal(err)
		}
		s, err := Open(tmp)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := s.BulkLoadPractices(context.Background(), n, SyntheticPractice); err != nil {
			b.Fatal(err)
		}
		s.Close()
		b.Logf("generated %d practices in %v", n, time.Since(start))
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp) // another run won the race: use its copy
		}
	}
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkPracticesByPOD is `cmord practices --pod X` over a million practices.
func BenchmarkPracticesByPOD(b *testing.B) {
	const n = 1_000_000
	s := benchStore(b, n)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		want := SyntheticPractice(i * 7919 % n)
		got, err := s.QueryPractices(ctx, PracticeFilter{Point: want.Point, Limit: 100})
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			b.Fatalf("no practice for %s", want.Point)
		}
	}
}

// BenchmarkPracticesByCustomerOpenExceptions combines an indexed filter with the
// EXISTS subquery on exceptions.
func BenchmarkPracticesByCustomerOpenExceptions(b *testing.B) {
	const n = 1_000_000
	s := benchStore(b, n)
	ctx := context.Background()
	no := false
	for i := 0; b.Loop(); i++ {
		want := SyntheticPractice(i * 104729 % n)
		if _, err := s.QueryPractices(ctx, PracticeFilter{Customer: want.CustomerID, HasOpenException: &no, Limit: 100}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEachPracticeText: the stored text of PracticeTextColumns, per practice matching
// the filter in its order; a missing code as ""; a practice whose text holds a NUL
// byte (the joined form's separator) still whole; fn's error stops the iteration.
func TestEachPracticeText(t *testing.T) {
	s := queryFixture(t)
	ctx := context.Background()
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE practices SET customer_name = 'Nul'||char(0)||'S.r.l.' WHERE case_key = 'B'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	col := func(name string) int {
		for i, c := range PracticeTextColumns {
			if c == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	var got [][]string
	err := s.EachPracticeText(ctx, PracticeFilter{Order: "-amount"}, func(cols [][]byte) error {
		if len(cols) != len(PracticeTextColumns) {
			t.Fatalf("%d columns, want %d", len(cols), len(PracticeTextColumns))
		}
		var r []string
		for _, name := range []string{"cp_utente", "cp_gestore", "customer_name", "switch_date", "cmor_cents", "answer_date"} {
			r = append(r, string(cols[col(name)]))
		}
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"G250000001", "", "", "2025-03-01", "99999", "2025-05-09"},
		{"E250000001", "G1", "", "2025-01-01", "12050", ""},
		{"E250000002", "", "Nul\x00S.r.l.", "2025-02-01", "8000", "2025-04-15"},
		{"", "G4", "", "2025-04-01", "1000", "2025-06-01"},
		{"", "G5", "", "2025-05-01", "0", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EachPracticeText =\n%q\nwant\n%q", got, want)
	}
	stop := errors.New("stop")
	seen := 0
	err = s.EachPracticeText(ctx, PracticeFilter{Role: "uscente"}, func([][]byte) error {
		if seen++; seen == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 2 {
		t.Errorf("err = %v after %d rows; want stop after 2", err, seen)
	}
}

// TestEachPracticeTextReadOnly: the read transaction of EachPracticeText, and its
// reading again of a practice with a NUL byte, work on an archive opened read-only
// (`cmord practices --format csv`).
func TestEachPracticeTextReadOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.BulkLoadPractices(ctx, 3, SyntheticPractice); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE practices SET motivation = char(0) WHERE id = 2`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var motivations []string
	err = ro.EachPracticeText(ctx, PracticeFilter{}, func(cols [][]byte) error {
		motivations = append(motivations, string(cols[18]))
		return nil
	})
	if PracticeTextColumns[18] != "motivation" {
		t.Fatalf("column 18 is %s", PracticeTextColumns[18])
	}
	if err != nil || !reflect.DeepEqual(motivations, []string{"", "\x00", ""}) {
		t.Errorf("EachPracticeText read-only = %q, %v", motivations, err)
	}
}
