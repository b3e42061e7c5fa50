package archive

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// TestRowsTrimmedLaterWrites: what cmord writes later over a practice and a request
// stored in migration 0043's short forms (the SII's answer, a request cancelled, the
// practice saved again and moved, its request data refreshed) leaves every short form
// reading what it stood for: the request's created_at and sent_at, the creation
// row's time and flow, the derived build row; no stale empty text reads as another
// time; and the archive verifies.
func TestRowsTrimmedLaterWrites(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "derived")
	at := buildAtFileTime(t, w)
	later := at.Add(48 * time.Hour)
	pid, rid := w.practices[3], w.requests[3]
	var stored string
	if err := w.s.Read().QueryRow(`SELECT r.created_at || '|' || s.sent_at || '|' || coalesce(s.hist_from, 'NULL') FROM request_rows r
		JOIN request_state s ON s.id = r.id WHERE r.id = ?`, rid).Scan(&stored); err != nil || stored != "||NULL" {
		t.Fatalf("stored %q (%v), want the short forms", stored, err)
	}
	check := func(when string, state string) {
		t.Helper()
		rs, err := w.s.Requests(ctx, nil, pid, "", "", 0)
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: requests %+v (%v)", when, rs, err)
		}
		if r := rs[0]; r.State != state || !r.CreatedAt.Equal(at) || !r.SentAt.Equal(at) {
			t.Errorf("%s: request state %s created %v sent %v; want %s, %v, %v", when, r.State, r.CreatedAt, r.SentAt, state, at, at)
		}
		r, err := w.s.RequestByCPUtente(ctx, nil, "E250000009")
		if err != nil || !r.CreatedAt.Equal(at) || !r.SentAt.Equal(at) {
			t.Errorf("%s: request by code created %v sent %v (%v)", when, r.CreatedAt, r.SentAt, err)
		}
		hs, err := w.s.PracticeHistory(ctx, pid)
		if err != nil || len(hs) < 2 {
			t.Fatalf("%s: history %+v (%v)", when, hs, err)
		}
		if !hs[0].At.Equal(at) || hs[0].Flow != "uscente.morosi" || hs[1].From != "READY" || hs[1].To != "BUILT" || !hs[1].At.Equal(at) {
			t.Errorf("%s: creation row %+v, build row %+v", when, hs[0], hs[1])
		}
		for _, h := range hs[2:] {
			if !h.At.Equal(later) {
				t.Errorf("%s: a later row at %v, want %v: %+v", when, h.At, later, h)
			}
		}
		verifyOK(t, w.s, when)
	}
	check("built", "sent")
	if err := w.s.Write(ctx, func(tx *sql.Tx) error {
		return w.s.AnswerRequest(ctx, tx, rid, "admitted", "", "", later)
	}); err != nil {
		t.Fatal(err)
	}
	check("answered", "admitted")
	if err := w.s.Write(ctx, func(tx *sql.Tx) error {
		return w.s.SetRequestState(ctx, tx, rid, "cancelled")
	}); err != nil {
		t.Fatal(err)
	}
	check("cancelled", "cancelled")
	if err := w.s.Write(ctx, func(tx *sql.Tx) error {
		st, err := w.s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return later })
		p, err := st.ByID(ctx, pid)
		if err != nil {
			return err
		}
		p.CustomerName = "Rossi Mario"
		if err := st.Save(ctx, &p); err != nil {
			return err
		}
		if err := st.SetRequest(ctx, rid, "cancelled", map[string]string{"IMPORTO": "1"}); err != nil {
			return err
		}
		if err := st.Transition(ctx, &p, "SENT", "", HistoryEntry{Flow: "REQ", At: later, Note: "delivered"}); err != nil {
			return err
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	check("practice saved, moved, request refreshed", "cancelled")
	p, err := w.s.PracticeByCode(ctx, nil, "E250000009")
	if err != nil || !p.CreatedAt.Equal(at) || p.State != "SENT" || p.CustomerName != "Rossi Mario" {
		t.Errorf("practice %+v (%v)", p, err)
	}
}
