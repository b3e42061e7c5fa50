package archive

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"testing"
)

// The build's read of ready requests with their practices through the job's prepared
// statement (PracticeStmts.ReadyRequestsWithPractices) gives what the one-off query
// (Store.ReadyRequestsWithPractices) gives, page after page, in the same transaction,
// before and after the transaction writes (a request leaves the ready ones, one
// becomes ready again, a practice changes state), and for a flow with none.
func TestReadyRequestsPreparedAsOneOff(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		defer st.Close(ctx)
		for i := 1; i <= 9; i++ {
			p := &Practice{CaseKey: fmt.Sprintf("U|%d", i), Role: "uscente", Sector: "E", CompanyPIVA: "01234567890",
				Point: fmt.Sprintf("IT001E%08d", i), CustomerID: "VRDGPP70A01H501X", State: "READY", Data: []byte(`{"x":1}`)}
			r := &Request{Flow: "REQ", CPUtente: fmt.Sprintf("E25%07d", i), Data: map[string]string{"IMPORTO_CREDITO": fmt.Sprintf("%d.00", i)}}
			if i%3 == 0 {
				r.Payload = &RequestPayload{Layout: "REQ/sig", Hash: PayloadHash([][]string{{"x"}})}
			}
			if err := st.QueueCreate(ctx, p, HistoryEntry{Flow: "uscente.morosi"}, r); err != nil {
				return err
			}
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	pages := []struct {
		flow         string
		after        int64
		limit        int
		wantRequests int
	}{
		{"REQ", 0, 4, 4},
		{"REQ", 4, 4, 4},
		{"REQ", 8, 4, 1},
		{"REQ", 9, 4, 0},
		{"REQ", 0, 256, 9},
		{"ANN_REQ", 0, 256, 0},
	}
	compare := func(t *testing.T, tx *sql.Tx, st *PracticeStmts, when string, shift int) error {
		t.Helper()
		for _, pg := range pages {
			wantR, wantP, err := s.ReadyRequestsWithPractices(ctx, tx, pg.flow, pg.after, pg.limit)
			if err != nil {
				return err
			}
			gotR, gotP, err := st.ReadyRequestsWithPractices(ctx, pg.flow, pg.after, pg.limit)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(gotR, wantR) || !reflect.DeepEqual(gotP, wantP) {
				t.Errorf("%s, %s after %d limit %d: prepared read\n%+v\n%+v\none-off\n%+v\n%+v", when, pg.flow, pg.after, pg.limit, gotR, gotP, wantR, wantP)
			}
			if want := pg.wantRequests; pg.limit == 256 && pg.flow == "REQ" {
				want += shift
				if len(gotR) != want {
					t.Errorf("%s: %d ready requests, want %d", when, len(gotR), want)
				}
			} else if when == "before" && len(gotR) != want {
				t.Errorf("%s, after %d limit %d: %d requests, want %d", when, pg.after, pg.limit, len(gotR), want)
			}
		}
		return nil
	}
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		defer st.Close(ctx)
		if err := compare(t, tx, st, "before", 0); err != nil {
			return err
		}
		for _, id := range []int64{2, 5} {
			if err := st.SetRequest(ctx, id, "cancelled", nil); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE practices SET state = 'DRAFT' WHERE id = 3`); err != nil {
			return err
		}
		if err := compare(t, tx, st, "after two sent and a practice moved", -2); err != nil {
			return err
		}
		if err := st.SetRequest(ctx, 5, "ready", map[string]string{"a": "b"}); err != nil {
			return err
		}
		if err := compare(t, tx, st, "after one ready again", -1); err != nil {
			return err
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
}
