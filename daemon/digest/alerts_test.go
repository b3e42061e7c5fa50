package digest

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	cmail "github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
)

// clock is a settable fake clock shared by the sender and the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type rig struct {
	t      *testing.T
	dir    string
	st     *archive.Store
	sink   *smtpsink.Sink
	sender *cmail.Sender
	clock  *clock
	opts   Options
}

func newRig(t *testing.T, start time.Time) *rig {
	t.Helper()
	sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	r := &rig{t: t, dir: t.TempDir(), sink: sink, clock: &clock{t: start},
		opts: Options{Company: "Esempio Energia S.p.A.", To: []string{"compliance@example.it"}, AttachCSV: true, AttachXLSX: true}}
	r.open()
	return r
}

// open (re)opens the store and builds a sender over its outbox: a daemon restart.
func (r *rig) open() {
	st, err := archive.Open(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { st.Close() })
	r.st = st
	r.sender = cmail.NewSender(cmail.SMTP{Host: r.sink.Host(), Port: r.sink.Port(), TLS: cmail.TLSNone,
		From: "cmord <cmord@example.it>", Timeout: 5 * time.Second}, st.Outbox(), nil)
	r.sender.Now = r.clock.Now
}

func (r *rig) restart() {
	r.st.Close()
	r.open()
}

func (r *rig) alerts() {
	r.t.Helper()
	if err := RunAlerts(context.Background(), r.st, r.sender, r.opts, r.clock.Now()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) flush() int {
	r.t.Helper()
	n, _ := r.sender.Flush(context.Background())
	return n
}

func subjects(t *testing.T, sink *smtpsink.Sink) []string {
	t.Helper()
	var out []string
	dec := new(mime.WordDecoder)
	for _, m := range sink.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		s, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestAlertsGroupWaitRepeatAndSMTPOutage(t *testing.T) {
	t0 := rome(2026, time.November, 23, 5, 10)
	r := newRig(t, t0)
	raise(t, r.st, archive.Exception{Fingerprint: "sii_unreachable|sii", Kind: "sii_unreachable", Severity: archive.SevUrgent,
		Owner: OwnerSysadmin, Subject: "sii", Message: "SII endpoint sii unreachable", LastSeen: t0})
	// Inside group_wait: nothing yet; a related one joins.
	r.clock.Set(t0.Add(30 * time.Second))
	r.alerts()
	raise(t, r.st, archive.Exception{Fingerprint: "hostkey_mismatch|sii2", Kind: "hostkey_mismatch", Severity: archive.SevUrgent,
		Owner: OwnerSysadmin, Subject: "sii2", Message: "SFTP sii2: host key mismatch", LastSeen: t0.Add(40 * time.Second)})
	// A non-urgent exception never alerts.
	raise(t, r.st, archive.Exception{Kind: "row_refused", Message: "row 3 refused", LastSeen: t0})
	if n, _ := r.st.Outbox().Pending(context.Background()); n != 0 {
		t.Fatalf("queued %d inside group_wait", n)
	}
	// SMTP is down when the group is due: queued, not lost.
	if err := r.sink.Stop(); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(t0.Add(61 * time.Second))
	r.alerts()
	if r.flush() != 0 {
		t.Fatal("sent with SMTP down")
	}
	// A restart while it is queued: the group is not queued again.
	r.restart()
	r.alerts()
	if err := r.sink.Resume(); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(2 * time.Minute) // past the outbox backoff
	if n := r.flush(); n != 1 {
		t.Fatalf("flushed %d, want 1", n)
	}
	r.alerts()
	r.flush()
	got := subjects(t, r.sink)
	if len(got) != 1 || !strings.Contains(got[0], "[CMOR URGENTE] 2 ×") {
		t.Fatalf("mails = %q, want one grouped alert", got)
	}
	// Within repeat_interval: nothing; after it: one reminder; then quiet again.
	r.clock.Set(t0.Add(3 * time.Hour))
	r.alerts()
	r.flush()
	if len(r.sink.Messages()) != 1 {
		t.Fatal("re-alerted before repeat_interval")
	}
	r.clock.Set(t0.Add(4*time.Hour + 3*time.Minute + time.Second))
	r.alerts()
	r.restart() // a restart between queue and send changes nothing
	r.alerts()
	r.flush()
	r.clock.Advance(time.Minute)
	r.alerts()
	r.flush()
	got = subjects(t, r.sink)
	if len(got) != 2 || !strings.Contains(got[1], "Promemoria") {
		t.Fatalf("mails = %q, want the alert and one reminder", got)
	}
	// Resolved: no more reminders.
	write(t, r.st, func(tx *sql.Tx) error {
		_, err := r.st.ResolveByFingerprintAt(context.Background(), tx, "sii_unreachable|sii", "reachable", r.clock.Now())
		if err == nil {
			_, err = r.st.ResolveByFingerprintAt(context.Background(), tx, "hostkey_mismatch|sii2", "verified", r.clock.Now())
		}
		return err
	})
	r.clock.Advance(10 * time.Hour)
	r.alerts()
	r.flush()
	if len(r.sink.Messages()) != 2 {
		t.Fatal("alerted about resolved exceptions")
	}
}

func TestAlertsInhibition(t *testing.T) {
	t0 := rome(2026, time.November, 23, 5, 10)
	r := newRig(t, t0)
	raise(t, r.st, archive.Exception{Fingerprint: "sii_unreachable|sii", Kind: "sii_unreachable", Severity: archive.SevUrgent,
		Owner: OwnerSysadmin, Subject: "sii", Message: "SII endpoint sii unreachable", LastSeen: t0})
	// Upload failures escalated to urgent: the one behind the unreachable SII is muted,
	// the one towards another endpoint is not.
	raise(t, r.st, archive.Exception{Fingerprint: "upload_failed|sftp:sii|A.csv", Kind: "upload_failed", Severity: archive.SevUrgent,
		Owner: OwnerSysadmin, Subject: "sii", Message: "publishing A.csv to sftp:sii failed", LastSeen: t0})
	raise(t, r.st, archive.Exception{Fingerprint: "upload_failed|sftp:backup|B.csv", Kind: "upload_failed", Severity: archive.SevUrgent,
		Owner: OwnerSysadmin, Subject: "backup", Message: "publishing B.csv to sftp:backup failed", LastSeen: t0})
	r.clock.Set(t0.Add(2 * time.Minute))
	groups, err := PendingAlerts(context.Background(), r.st, r.opts, r.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].Items) != 2 {
		t.Fatalf("groups = %+v", groups)
	}
	for _, it := range groups[0].Items {
		if it.Subject == "sii" && it.Kind == "upload_failed" {
			t.Error("upload_failed for sii alerted while sii_unreachable is open")
		}
	}
	r.alerts()
	r.flush()
	msgs := r.sink.Messages()
	if len(msgs) != 1 || bytes.Contains(msgs[0].Data, []byte("A.csv")) || !bytes.Contains(msgs[0].Data, []byte("B.csv")) {
		t.Fatalf("alert mail must name B.csv and not A.csv (%d mails)", len(msgs))
	}
	// Once the SII is back, the muted failure (if still open) alerts on its own.
	write(t, r.st, func(tx *sql.Tx) error {
		_, err := r.st.ResolveByFingerprintAt(context.Background(), tx, "sii_unreachable|sii", "reachable", r.clock.Now())
		return err
	})
	r.clock.Advance(time.Minute)
	r.alerts()
	r.flush()
	if got := subjects(t, r.sink); len(got) != 2 {
		t.Fatalf("mails = %q, want the unmuted failure alerted", got)
	}
}

func TestDigestSendExactlyOnce(t *testing.T) {
	r := newRig(t, fixtureNow)
	fixture(t, r.st)
	ctx := context.Background()
	// SMTP down at digest time.
	if err := r.sink.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := Send(ctx, r.st, r.sender, r.opts, fixtureNow); err != nil {
		t.Fatal(err)
	}
	r.flush()
	// Restart (reopen the store): the same day's digest is not queued again.
	r.restart()
	if _, err := Send(ctx, r.st, r.sender, r.opts, fixtureNow.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := r.sink.Resume(); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(5 * time.Minute)
	r.flush()
	r.flush()
	msgs := r.sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d digests delivered, want 1", len(msgs))
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/mixed") {
		t.Errorf("content type %q, want multipart/mixed (alternative text+HTML, CSV attached)", ct)
	}
	for _, want := range []string{"text/plain", "text/html", "cmord-eccezioni-2026-11-23.csv", "cmord-eccezioni-2026-11-23.xlsx",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "X-Cmord-Digest: digest:2026-11-23"} {
		if !bytes.Contains(msgs[0].Data, []byte(want)) {
			t.Errorf("digest mail lacks %q", want)
		}
	}
	rec, ok, err := r.st.LastDigest(ctx)
	if err != nil || !ok || rec.DedupKey != "digest:2026-11-23" || !rec.PeriodEnd.Equal(fixtureNow) {
		t.Fatalf("ledger = %+v %v %v", rec, ok, err)
	}
	// The next day's digest starts where this one ended and is empty of new items.
	next := fixtureNow.Add(24 * time.Hour)
	d, err := Build(ctx, r.st, r.opts, next)
	if err != nil {
		t.Fatal(err)
	}
	if !d.PeriodStart.Equal(fixtureNow) || len(d.New) != 0 {
		t.Fatalf("next digest: start %v, %d new", d.PeriodStart, len(d.New))
	}
}

func TestDigestCrashBetweenQueueAndLedger(t *testing.T) {
	r := newRig(t, fixtureNow)
	ctx := context.Background()
	// The digest was queued but the ledger row never committed (kill -9 in between).
	if err := r.sender.Queue(ctx, DedupKey(fixtureNow), "digest", cmail.Message{To: r.opts.To, Subject: "Riepilogo CMOR — 23/11/2026",
		Text: "first attempt"}); err != nil {
		t.Fatal(err)
	}
	r.restart()
	if _, err := Send(ctx, r.st, r.sender, r.opts, fixtureNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r.flush()
	if n := len(r.sink.Messages()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	if _, ok, _ := r.st.DigestByKey(ctx, DedupKey(fixtureNow)); !ok {
		t.Fatal("ledger not completed")
	}
}

func TestEmptyDigestSentUnlessSkipped(t *testing.T) {
	for _, skip := range []bool{false, true} {
		r := newRig(t, fixtureNow)
		r.opts.SkipEmpty = skip
		if _, err := Send(context.Background(), r.st, r.sender, r.opts, fixtureNow); err != nil {
			t.Fatal(err)
		}
		r.flush()
		want := 1
		if skip {
			want = 0
		}
		if got := len(r.sink.Messages()); got != want {
			t.Errorf("skip_empty=%v: %d mails, want %d", skip, got, want)
		}
		if _, ok, _ := r.st.DigestByKey(context.Background(), DedupKey(fixtureNow)); !ok {
			t.Errorf("skip_empty=%v: period not recorded", skip)
		}
	}
}

// TestDigestLogSaysQueuedNotSent: a second Send the same day, while the first digest
// still waits in the outbox (SMTP down), must not log "already sent"; it says the
// digest is queued and not sent yet. Once the relay took it, the log says sent.
func TestDigestLogSaysQueuedNotSent(t *testing.T) {
	r := newRig(t, fixtureNow)
	fixture(t, r.st)
	ctx := context.Background()
	var logs bytes.Buffer
	r.opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	if err := r.sink.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := Send(ctx, r.st, r.sender, r.opts, fixtureNow); err != nil {
		t.Fatal(err)
	}
	r.flush() // fails: the relay is down
	logs.Reset()
	if _, err := Send(ctx, r.st, r.sender, r.opts, fixtureNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := logs.String(); strings.Contains(got, "already sent") || !strings.Contains(got, "not sent yet") || !strings.Contains(got, "mail_state=queued") {
		t.Errorf("log while the digest waits in the outbox:\n%s", got)
	}
	if err := r.sink.Resume(); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(10 * time.Minute)
	r.flush()
	if n := len(r.sink.Messages()); n != 1 {
		t.Fatalf("%d mails delivered, want 1", n)
	}
	logs.Reset()
	if _, err := Send(ctx, r.st, r.sender, r.opts, fixtureNow.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := logs.String(); !strings.Contains(got, "already sent") || strings.Contains(got, "not sent yet") {
		t.Errorf("log once the digest went out:\n%s", got)
	}
}
