package archive

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

// TestBuiltHistoryLaterRequestWrites proves that what cmord writes to a request after
// its build derived its history row (an SII answer, a state set without an answer)
// leaves what its practice's hash covers (practiceSideBuilt: not the state) as the
// build sealed it: in a transaction that rewrites no practice, verify stays clean and
// the derived row reads the same.
func TestBuiltHistoryLaterRequestWrites(t *testing.T) {
	w := newLinksWorld(t, "derived")
	ctx := context.Background()
	before, err := w.s.PracticeHistory(ctx, w.practices[0])
	if err != nil {
		t.Fatal(err)
	}
	at := linksT0.Add(48 * time.Hour)
	if err := w.s.Write(ctx, func(tx *sql.Tx) error {
		if err := w.s.AnswerRequest(ctx, tx, w.requests[0], "admitted", "", "", at); err != nil {
			return err
		}
		if err := w.s.AnswerRequest(ctx, tx, w.requests[0], "inadmissible", "4", "campo mancante", at); err != nil {
			return err
		}
		return w.s.SetRequestState(ctx, tx, w.requests[1], "cancelled")
	}); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, w.s, "after the answers")
	after, err := w.s.PracticeHistory(ctx, w.practices[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(after) < 2 || after[1] != before[1] || after[1].ID != 0 {
		t.Errorf("history after the answers:\n%+v\nbefore:\n%+v", after, before)
	}
}

// TestBuiltHistorySameTransactionOrder proves where a derived build row sorts among
// rows of its practice written in the same transaction: after those written before the
// request was marked (MarkBuiltAll), before those written after it, as the stored row
// written at that point did. (A practice has at most one: a request under its own
// code, request_rows.cp_utente being unique.)
func TestBuiltHistorySameTransactionOrder(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := linksT0
	s.Now = func() time.Time { return t0 }
	res, err := s.Ingest(ctx, IngestRequest{Source: "built", Name: "CMOR_REQ_1.csv", Direction: "out", Kind: "REQ",
		Reader: strings.NewReader("x\r\n"), At: t0})
	if err != nil {
		t.Fatal(err)
	}
	file := res.File
	var p Practice
	var req int64
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		p = Practice{CaseKey: "k1", Role: "uscente", Sector: "E", CPUtente: "E250000001", Point: "IT001E1", CustomerID: "C1", State: "READY"}
		if err := st.Create(ctx, &p, HistoryEntry{Note: "created"}); err != nil {
			return err
		}
		r := &Request{PracticeID: p.ID, Flow: "REQ", CPUtente: p.CPUtente}
		if err := st.CreateRequest(ctx, r); err != nil {
			return err
		}
		req = r.ID
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Hour)
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return t1 })
		if err := st.History(ctx, HistoryEntry{PracticeID: p.ID, From: "READY", To: "READY", At: t1, Note: "before the build"}); err != nil {
			return err
		}
		if err := st.MarkBuiltAll(ctx, []BuiltRequest{{ID: req, From: "READY", To: "BUILT", Moves: "SENT"}}, file.ID, t1); err != nil {
			return err
		}
		if err := st.SetStateAll(ctx, []int64{p.ID}, "BUILT", t1); err != nil {
			return err
		}
		if err := st.HistoryAll(ctx, []HistoryEntry{{PracticeID: p.ID, From: "BUILT", To: "BUILT", At: t1, Note: "after the build"}}); err != nil {
			return err
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	hs, err := s.PracticeHistory(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hs {
		got = append(got, h.Note)
	}
	want := []string{"created", "before the build",
		"REQ E250000001 written into CMOR_REQ_1.csv; SENT once CMOR_REQ_1.csv is delivered", "after the build"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	verifyOK(t, s, "after the build")
}

// TestBuiltHistoryReadOnly proves that the read-only open (the CLI's `archive
// verify`, `practice show`) hashes a practice with its derived build row as the writer
// sealed it, reads the row, and still sees it edited.
func TestBuiltHistoryReadOnly(t *testing.T) {
	w := newLinksWorld(t, "derived")
	ctx := context.Background()
	want, err := w.s.PracticeHistory(ctx, w.practices[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := w.s.Dir()
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	verifyOK(t, ro, "read-only")
	got, err := ro.PracticeHistory(ctx, w.practices[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) < 2 || got[1] != want[1] || got[1].ID != 0 {
		t.Errorf("read-only history:\n%+v\nwriter's:\n%+v", got, want)
	}
	if _, err := w.s.w.Exec(`UPDATE request_state SET hist_moves = 'ACCEPTED' WHERE id = ?`, w.requests[0]); err != nil {
		t.Fatal(err)
	}
	rep, err := ro.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Problems, "\n"), "changed outside cmord") {
		t.Errorf("read-only verify after an edit of the derived row: %q", rep.Problems)
	}
}
