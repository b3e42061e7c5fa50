package daemon

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestBuiltSentAtOnAMovingClock: on a real clock (every reading a little later than
// the one before), the uscente build archives its file at the time it marks its
// requests sent, so every built request's sent_at is stored as the empty text
// (migration 0043) and reads back as that time, the time its build history row
// shows. The other tests freeze the daemon's clock, under which any two readings
// agree: a file stamped with a later reading of the clock than the build's kept
// every sent_at written out in full in production.
func TestBuiltSentAtOnAMovingClock(t *testing.T) {
	ctx := context.Background()
	w := newTestWorld(t, e2eNow, "")
	var tick atomic.Int64
	w.d.SetClock(func() time.Time { return e2eNow.Add(time.Duration(tick.Add(1)) * time.Millisecond) })
	w.drop("morosi", "morosi.csv", e2eExtract())
	if err := w.d.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := w.d.Store.Read().QueryContext(ctx, `SELECT r.cp_utente, s.sent_at, coalesce(r.sent_at, 'NULL'), f.received_at, r.practice_id
		FROM request_state s JOIN requests r ON r.id = s.id JOIN files f ON f.id = s.file_id WHERE s.state = 'sent' ORDER BY s.id`)
	if err != nil {
		t.Fatal(err)
	}
	type sent struct {
		code, stored, read, received string
		practice                     int64
	}
	var got []sent
	for rows.Next() {
		var s sent
		if err := rows.Scan(&s.code, &s.stored, &s.read, &s.received, &s.practice); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	rows.Close()
	if len(got) == 0 {
		t.Fatal("no request was built")
	}
	for _, s := range got {
		if s.stored != "" || s.read != s.received {
			t.Errorf("request %s: sent_at stored %q, read %q; want stored empty, read as its file's received_at %q", s.code, s.stored, s.read, s.received)
		}
		hs, err := w.d.Store.PracticeHistory(ctx, s.practice)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, h := range hs {
			if h.Flow == "REQ" && h.FileID != 0 && h.To == "BUILT" {
				found = true
				if got := h.At.UTC().Format("2006-01-02T15:04:05.000000000Z"); got != s.read {
					t.Errorf("request %s: its build history row at %s, its sent_at %s: want the same time", s.code, got, s.read)
				}
			}
		}
		if !found {
			t.Errorf("request %s: no build history row in %+v", s.code, hs)
		}
	}
}
