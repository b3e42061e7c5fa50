package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

// A request held by the build (build_line_changed) is decided again by a later
// extract of its case and goes out with the next build: the exception that said it
// was held must not stay open (the digest would keep telling compliance to act on a
// request already sent), and a build cycle that holds it again must not open a second.
func TestLineChangedHeldThenSent(t *testing.T) {
	w, held, _ := worldWithLineChanged(t, func(w *testWorld, reqs []archive.Request) archive.Request {
		for _, r := range reqs { // the request of case B (one invoice)
			if w.practice(r.CPUtente).Point == "IT001E00000042" {
				return r
			}
		}
		return archive.Request{}
	})
	ctx := context.Background()
	w.runOnce()
	w.runOnce() // a second build cycle: still held, still one exception
	if es := w.exceptions("build_line_changed"); len(es) != 1 {
		t.Fatalf("after two build cycles: %d open build_line_changed, want 1", len(es))
	}
	if r, _ := w.d.Store.RequestByCPUtente(ctx, nil, held.CPUtente); r.State != "ready" {
		t.Fatalf("held request %s: %s, want ready", held.CPUtente, r.State)
	}

	// The action the exception gives: drop the case again in an extract.
	sw := flows.D(2025, 3, 1)
	again := strings.Join([]string{strings.Join(morosiHeader, ";"),
		morosiRow("IT001E00000042", testCF("VRDGPP70A01H501"), "Giuseppe Verdi", sw, "F2025-0100", "95.50", nil)}, "\r\n") + "\r\n"
	takeIn(t, w.d, "morosi", "morosi_20251016.csv", again)
	w.runOnce()
	r, err := w.d.Store.RequestByCPUtente(ctx, nil, held.CPUtente)
	if err != nil || r.State != "sent" || r.FileID == 0 {
		t.Fatalf("request %s after the case was dropped again: %s file #%d (%v), want sent", held.CPUtente, r.State, r.FileID, err)
	}
	if es := w.exceptions("build_line_changed"); len(es) != 0 {
		t.Errorf("request %s was sent, but %d build_line_changed exception(s) still open: %q", held.CPUtente, len(es), es[0].Message)
	}
}

// A held request whose window closes before it could go out is refused
// (build_refused): the build_line_changed that held it is closed with it.
func TestLineChangedHeldThenWindowClosed(t *testing.T) {
	w, held, _ := worldWithLineChanged(t, firstRequest)
	ctx := context.Background()
	w.runOnce()
	if es := w.exceptions("build_line_changed"); len(es) != 1 {
		t.Fatalf("%d open build_line_changed, want 1", len(es))
	}
	w.now = w.practice(held.CPUtente).WindowClose.AddDays(1).Time().Add(10 * time.Hour)
	w.runOnce()
	if r, _ := w.d.Store.RequestByCPUtente(ctx, nil, held.CPUtente); r.State != "invalid" {
		t.Fatalf("request %s after its window closed: %s, want invalid", held.CPUtente, r.State)
	}
	if es := w.exceptions("build_refused"); len(es) != 1 {
		t.Errorf("%d open build_refused, want 1", len(es))
	}
	if es := w.exceptions("build_line_changed"); len(es) != 0 {
		t.Errorf("request %s refused, but build_line_changed still open", held.CPUtente)
	}
}

// worldWithLineChanged takes in the e2e extract (two ready requests) and has the
// stored hash of the request pick chooses stand for another line, as an earlier cmord
// or a case changed outside cmord would leave it. It returns the world, that request

// worldWithTwoReady is a world that has taken in the end-to-end extract, and its two
// ready REQ requests.
func worldWithTwoReady(t *testing.T) (*testWorld, []archive.Request) {
	t.Helper()
	w := newTestWorld(t, e2eNow, "")
	takeIn(t, w.d, "morosi", "morosi_20251015.csv", e2eExtract())
	reqs, err := w.d.Store.Requests(context.Background(), nil, 0, uscente.FlowREQ, "ready", 0)
	if err != nil || len(reqs) != 2 {
		t.Fatalf("ready requests %+v (%v), want 2", reqs, err)
	}
	return w, reqs
}

// and its payload as stored before.
func worldWithLineChanged(t *testing.T, pick func(w *testWorld, reqs []archive.Request) archive.Request) (*testWorld, archive.Request, []byte) {
	t.Helper()
	w, reqs := worldWithTwoReady(t)
	ctx := context.Background()
	changed := pick(w, reqs)
	if changed.ID == 0 {
		t.Fatal("no request picked")
	}
	var decided []byte
	err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT payload FROM request_payloads WHERE id = ?`, changed.ID).Scan(&decided); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE request_payloads SET payload = ? WHERE id = ?`,
			withHash(t, decided, archive.PayloadHash([][]string{{"a line decided otherwise"}})), changed.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, changed, decided
}

// firstRequest picks the first ready request.
func firstRequest(_ *testWorld, reqs []archive.Request) archive.Request { return reqs[0] }

// withHash is a stored payload of form 4 (the layout signature then the 32 bytes of
// the rows' hash, last) with hash in place of its own.
func withHash(t *testing.T, stored []byte, hash string) []byte {
	t.Helper()
	raw, err := hex.DecodeString(hash)
	if len(stored) < 34 || stored[0] != 0x04 || err != nil || len(raw) != 32 {
		t.Fatalf("stored payload %q is not of form 4", stored)
	}
	return append(bytes.Clone(stored[:len(stored)-32]), raw...)
}

// A practice whose stored case no longer decodes (edited outside cmord, or the
// dictionary its case was deflated against edited or deleted) must not stop the build
// of every other request: the other request goes out, this one stays ready with a
// build_case_unreadable exception, verify names the practice, and once the case is
// decided again by a later extract the request goes out and the exception closes.
func TestUnreadableCaseHeldOthersBuilt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage string // SQL on practice_data of the practice id ?
	}{
		{"case bytes edited", `UPDATE practice_data SET data = x'01ff00' WHERE id = ?`},
		{"case deflated against a dictionary that is not there", `UPDATE practice_data SET data = x'02ffff0300' WHERE id = ?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, reqs := worldWithTwoReady(t)
			ctx := context.Background()
			var damaged, other archive.Request
			for _, r := range reqs {
				if w.practice(r.CPUtente).Point == "IT001E00000042" {
					damaged = r
				} else {
					other = r
				}
			}
			if damaged.ID == 0 || other.ID == 0 {
				t.Fatal("the e2e extract's two requests not found")
			}
			var original []byte
			if err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
				if err := tx.QueryRowContext(ctx, `SELECT data FROM practice_data WHERE id = ?`, damaged.PracticeID).Scan(&original); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, tc.damage, damaged.PracticeID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			// The weekly verify job fails on the damaged practice (that is how it
			// reaches a person); every other job runs.
			runOnceTampered := func() {
				t.Helper()
				if err := w.d.RunOnce(ctx); err != nil && !strings.Contains(err.Error(), "job verify: archive verify found") {
					t.Fatalf("RunOnce: %v", err)
				}
				deliverOnWallClock(t, w.d, func() time.Time { return w.now })
			}
			runOnceTampered()
			runOnceTampered() // a second build cycle: still held, still one exception
			if r, _ := w.d.Store.RequestByCPUtente(ctx, nil, other.CPUtente); r.State != "sent" || r.FileID == 0 {
				t.Fatalf("the other request %s: %s file #%d, want sent in a file", other.CPUtente, r.State, r.FileID)
			}
			if r, _ := w.d.Store.RequestByCPUtente(ctx, nil, damaged.CPUtente); r.State != "ready" {
				t.Fatalf("request %s of the damaged case: %s, want ready", damaged.CPUtente, r.State)
			}
			es := w.exceptions("build_case_unreadable")
			if len(es) != 1 || es[0].PracticeID != damaged.PracticeID || !strings.Contains(es[0].Message, damaged.CPUtente) {
				t.Fatalf("open build_case_unreadable: %+v, want one for practice #%d", es, damaged.PracticeID)
			}
			rep, err := w.d.Store.Verify(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Errorf("verify after the case was damaged: OK, want the practice reported")
			}

			// A later extract with the same case and a new one: the new one is taken,
			// the case whose practice cannot be read is left out with a finding, and
			// the file is not failed for it.
			sw := flows.D(2025, 3, 1)
			later := strings.Join([]string{strings.Join(morosiHeader, ";"),
				morosiRow("IT001E00000042", testCF("VRDGPP70A01H501"), "Giuseppe Verdi", sw, "F2025-0100", "95.50", nil),
				morosiRow("IT001E00000077", testCF("BNCLRA70A41F205"), "Laura Bianchi", sw, "F2025-0200", "120.00", nil)}, "\r\n") + "\r\n"
			takeIn(t, w.d, "morosi", "morosi_20251016.csv", later)
			if ps, err := w.d.Store.QueryPractices(ctx, archive.PracticeFilter{Point: "IT001E00000077"}); err != nil || len(ps) != 1 {
				t.Errorf("the new case of the later extract: %d practices (%v), want 1", len(ps), err)
			}
			found := false
			for _, e := range w.exceptions("") {
				if e.Rule == "CASE_UNREADABLE" && strings.Contains(e.Message, damaged.CPUtente) {
					found = true
				}
			}
			if !found {
				t.Errorf("no open exception with rule CASE_UNREADABLE for %s after the later extract: %+v", damaged.CPUtente, w.exceptions(""))
			}

			// The action the exception gives: the case restored (from a backup).
			if err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `UPDATE practice_data SET data = ? WHERE id = ?`, original, damaged.PracticeID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			w.runOnce()
			if r, _ := w.d.Store.RequestByCPUtente(ctx, nil, damaged.CPUtente); r.State != "sent" {
				t.Fatalf("request %s after the case was dropped again: %s, want sent", damaged.CPUtente, r.State)
			}
			if es := w.exceptions("build_case_unreadable"); len(es) != 0 {
				t.Errorf("request %s was sent, but build_case_unreadable is still open: %q", damaged.CPUtente, es[0].Message)
			}
		})
	}
}
