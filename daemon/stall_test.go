package daemon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/intake"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
	"github.com/cmord/cmord/daemon/sched"
	"github.com/cmord/cmord/flows"
)

// A stall must reach a person: when the mail relay is down, mail_failed and every
// other alert can only go out by mail, so /healthz must say it. Two relays that fail
// differently: one refusing every message (451), one that accepts the connection and
// never answers. Each message that failed mailHealthAttempts times makes /healthz
// report the mail, naming the message and the error; once it goes out, /healthz is
// ok again.
func TestHealthzReportsMailDown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		relay func(t *testing.T) (host string, port int, heal func(c *config.Config))
		want  string
	}{
		{"relay refuses every message", func(t *testing.T) (string, int, func(c *config.Config)) {
			sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			sink.FailNext(1000)
			return sink.Host(), sink.Port(), func(*config.Config) { sink.FailNext(0) }
		}, "451"},
		{"relay accepts and never answers", func(t *testing.T) (string, int, func(c *config.Config)) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var conns []net.Conn
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					conns = append(conns, c) // held open, never a greeting
				}
			}()
			t.Cleanup(func() {
				ln.Close()
				for _, c := range conns {
					c.Close()
				}
			})
			sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			addr := ln.Addr().(*net.TCPAddr)
			return "127.0.0.1", addr.Port, func(c *config.Config) { c.Mail.Host, c.Mail.Port = sink.Host(), sink.Port() }
		}, "mail: connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newExcWorld(t)
			host, port, heal := tc.relay(t)
			w.tune(func(c *config.Config) {
				c.Mail.Host, c.Mail.Port, c.Mail.TLS, c.Mail.Timeout = host, port, "none", 300*time.Millisecond
			})
			setClock := func() { w.d.Sender().(*mail.Sender).Now = func() time.Time { return w.now } }
			setClock()
			if err := w.d.health(); err != nil {
				t.Fatalf("health before: %v", err)
			}
			if err := w.d.SendDigestNow(context.Background()); err != nil {
				t.Fatal(err)
			}
			attempts := func() int {
				ms, err := w.d.Store.Outbox().List(context.Background(), "", 0)
				if err != nil || len(ms) != 1 {
					t.Fatalf("outbox: %d messages, %v", len(ms), err)
				}
				return ms[0].Attempts
			}
			for attempts() < mailHealthAttempts {
				if err := w.d.health(); err != nil {
					t.Fatalf("health after %d failed attempts: %v (reported too early)", attempts(), err)
				}
				w.later(2 * time.Hour) // past the outbox's backoff
				if _, err := w.d.FlushMail(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			err := w.d.health()
			if err == nil {
				t.Fatalf("/healthz ok with a digest undelivered after %d attempts", mailHealthAttempts)
			}
			for _, want := range []string{"mail: 1 message(s) undelivered", "digest:", tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("health = %q, want it to contain %q", err, want)
				}
			}
			w.tune(func(c *config.Config) { c.Mail.TLS = "none"; heal(c) })
			setClock()
			w.later(2 * time.Hour)
			if n, err := w.d.FlushMail(context.Background()); err != nil || n != 1 {
				t.Fatalf("flush after the relay came back: %d sent, %v", n, err)
			}
			if err := w.d.health(); err != nil {
				t.Fatalf("health after the mail went out: %v", err)
			}
		})
	}
}

// failingBuilder is a builder whose runs fail (or panic) while broken is set (the
// cause is irrelevant here: what matters is what a person learns of a job that keeps
// failing).
type failingBuilder struct {
	broken atomic.Bool
	panics bool
}

func (b *failingBuilder) Name() string { return "failing" }
func (b *failingBuilder) Build(context.Context, time.Time) (int, error) {
	if b.broken.Load() {
		if b.panics {
			panic("archive: disk I/O error")
		}
		return 0, errors.New("archive: disk I/O error")
	}
	return 0, nil
}

// A scheduled job whose every run fails must reach a person: the hourly build, failing
// run after run through the real scheduler, raised only a log line and a counter (a
// panic, a low missed_schedule for the digest). Now its third consecutive failure raises missed_schedule (high, sysadmin, the error
// named) and /healthz reports it; the next successful run resolves both.
func TestJobKeepsFailingReachesAPerson(t *testing.T) {
	for _, panics := range []bool{false, true} {
		name := "returns an error"
		if panics {
			name = "panics"
		}
		t.Run(name, func(t *testing.T) { testJobKeepsFailing(t, panics) })
	}
}

func testJobKeepsFailing(t *testing.T, panics bool) {
	r := newSchedRig(t, time.Date(2026, 11, 24, 10, 0, 30, 0, flows.Rome))
	b := &failingBuilder{panics: panics}
	b.broken.Store(true)
	r.w.d.AddBuilder(b)
	s := sched.New(flows.Rome, r.w.d.Store.ScheduleLedger(), nil, r.w.d.schedEvent)
	s.UseClock(r.clock)
	for _, j := range r.w.d.jobs() {
		if err := s.Add(j); err != nil {
			t.Fatal(err)
		}
	}
	failing := func() []archive.Exception {
		var out []archive.Exception
		for _, e := range r.w.all("missed_schedule") {
			if e.Fingerprint == failingFingerprint(JobBuild) {
				out = append(out, e)
			}
		}
		return out
	}
	for i := 1; i <= jobFailingRuns; i++ {
		if i > 1 {
			if es := failing(); len(es) != 0 {
				t.Fatalf("raised after %d failed runs (threshold %d): %+v", i-1, jobFailingRuns, es)
			}
			if err := r.w.d.health(); err != nil {
				t.Fatalf("health after %d failed runs: %v", i-1, err)
			}
		}
		if err := s.RunNow(context.Background(), JobBuild); err == nil {
			t.Fatal("the build ran without error")
		}
		r.clock.Advance(time.Hour)
	}
	es := failing()
	if len(es) != 1 || !es[0].Open() || es[0].Severity != archive.SevHigh || es[0].Owner != "sysadmin" {
		t.Fatalf("after %d failed runs: %+v, want one open high sysadmin missed_schedule", jobFailingRuns, es)
	}
	for _, want := range []string{"job build: 3 consecutive runs failed or hung since 24/11/2026 10:00", "archive: disk I/O error"} {
		if !strings.Contains(es[0].Message, want) {
			t.Errorf("message %q does not contain %q", es[0].Message, want)
		}
	}
	err := r.w.d.health()
	if err == nil || !strings.Contains(err.Error(), "job build: 3 consecutive runs failed or hung") || !strings.Contains(err.Error(), "disk I/O error") {
		t.Fatalf("health = %v, want the failing build named", err)
	}
	b.broken.Store(false)
	if err := s.RunNow(context.Background(), JobBuild); err != nil {
		t.Fatalf("build after the fix: %v", err)
	}
	if es := failing(); len(es) != 1 || es[0].Open() || es[0].ResolvedBy != "auto" {
		t.Errorf("after a good run: %+v, want resolved automatically", es)
	}
	if err := r.w.d.health(); err != nil {
		t.Errorf("health after a good run: %v", err)
	}
}

// A full state disk stops every write, the disk_low exception and its alert mail
// included: /healthz must say it by itself. Thresholds against the free space the
// filesystem really has (statfs).
func TestHealthzReportsDiskLow(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	free, err := statFree(w.d.Store.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		minFree int64
		want    string // "" = healthy
	}{
		{"threshold above the free space", free + 1<<40, "disk: the state directory " + w.d.Store.Dir()},
		{"check off", 0, ""},
		{"space enough", 1 << 20, ""},
	} {
		cfg := *w.d.Config()
		cfg.Alerts.StateMinFree = tc.minFree
		if err := w.d.apply(&cfg); err != nil {
			t.Fatal(err)
		}
		err := w.d.health()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: health = %v, want ok", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "below state_min_free")):
			t.Errorf("%s: health = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// Another process holding the archive's write lock (a sqlite3 shell left in a
// transaction, a hung tool) makes every exception fail to be recorded: the alarm would
// be a log line only. /healthz says it until an exception is recorded again. Real
// SQLite: a second connection to index.db holds BEGIN IMMEDIATE; the daemon's write
// gives up after its busy timeout (10 s).
func TestHealthzReportsExceptionsNotRecorded(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for SQLite's 10 s busy timeout")
	}
	w := newTestWorld(t, e2eNow, "")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(w.d.Store.Dir(), "index.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	exc := func(subject string) archive.Exception {
		return archive.Exception{Kind: "watch_overflow", Severity: archive.SevNormal, Owner: "sysadmin",
			Subject: subject, Message: "folder " + subject + ": notifications lost"}
	}
	w.d.raise(ctx, exc("morosi"))
	err = w.d.health()
	if err == nil || !strings.Contains(err.Error(), "exceptions cannot be recorded") || !strings.Contains(err.Error(), "watch_overflow") {
		t.Fatalf("health with the archive locked = %v, want exceptions not recorded named", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	w.d.raise(ctx, exc("sii"))
	if err := w.d.health(); err != nil {
		t.Fatalf("health once an exception is recorded again: %v", err)
	}
}

// hungBuilder blocks its run until release is closed.
type hungBuilder struct{ entered, release chan struct{} }

func (b *hungBuilder) Name() string { return "hung" }
func (b *hungBuilder) Build(ctx context.Context, _ time.Time) (int, error) {
	close(b.entered)
	<-b.release
	return 0, nil
}

// A run that never returns (not an SFTP operation: those have op_timeout) left only a
// "job still running, slot skipped" warning per slot. Now the hourly build still
// running at its third next slot raises missed_schedule and /healthz names it; when
// the run ends, both clear. The real scheduler, on a fake clock.
func TestJobHungReachesAPerson(t *testing.T) {
	r := newSchedRig(t, time.Date(2026, 11, 24, 10, 0, 30, 0, flows.Rome))
	b := &hungBuilder{entered: make(chan struct{}), release: make(chan struct{})}
	r.w.d.AddBuilder(b)
	r.start()
	released := false
	defer func() {
		if !released {
			close(b.release)
		}
		r.stop()
	}()
	done := make(chan error, 1)
	go func() { done <- r.s.RunNow(context.Background(), JobBuild) }()
	<-b.entered
	skipped := func() int {
		r.w.d.failing.mu.Lock()
		defer r.w.d.failing.mu.Unlock()
		return r.w.d.failing.jobs[JobBuild].runs
	}
	for i := 1; i <= jobFailingRuns; i++ {
		if err := r.w.d.health(); err != nil {
			t.Fatalf("health after %d skipped slots: %v", i-1, err)
		}
		r.clock.Advance(time.Hour)
		deadline := time.Now().Add(8 * time.Second)
		for skipped() < i {
			if time.Now().After(deadline) {
				t.Fatalf("slot %d of the hung build never came", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	err := r.w.d.health()
	if err == nil || !strings.Contains(err.Error(), "job build: 3 consecutive runs failed or hung") || !strings.Contains(err.Error(), "the run hangs") {
		t.Fatalf("health = %v, want the hung build named", err)
	}
	// The count is kept before the exception is written: wait for the write.
	var open []archive.Exception
	r.w.waitFor("missed_schedule", "the hung build's exception", func(es []archive.Exception) bool {
		open = nil
		for _, e := range es {
			if e.Fingerprint == failingFingerprint(JobBuild) && e.Open() && e.Count >= 1 {
				open = append(open, e)
			}
		}
		return len(open) == 1 && strings.Contains(open[0].Message, fmt.Sprintf("%d consecutive", jobFailingRuns))
	})
	if len(open) != 1 || open[0].Severity != archive.SevHigh || !strings.Contains(open[0].Message, "still running at its next slot") {
		t.Fatalf("open: %+v, want one high missed_schedule for the hung build", open)
	}
	close(b.release)
	released = true
	if err := <-done; err != nil {
		t.Fatalf("the build once released: %v", err)
	}
	if err := r.w.d.health(); err != nil {
		t.Errorf("health after the run ended: %v", err)
	}
}

// A transaction that never ends (here one held open by a test; in the field a handler
// blocked on a hung network mount while it writes) wedges every write of the daemon,
// exceptions included, while its reads answer: /healthz said all was well and the
// watchdog went on petting. The writer probe, still waiting writerStuckAfter later on
// the daemon's clock, makes both say it; once the writer is free, both clear.
func TestWriterWedgedReachesAPerson(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- w.d.Store.Write(ctx, func(*sql.Tx) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	w.d.probeWriter()
	if err := w.d.health(); err != nil {
		t.Fatalf("health with the probe just started: %v", err)
	}
	w.now = w.now.Add(writerStuckAfter - time.Second)
	if err := w.d.health(); err != nil {
		t.Fatalf("health before writerStuckAfter: %v", err)
	}
	w.now = w.now.Add(2 * time.Second)
	for name, check := range map[string]func() error{"/healthz": w.d.health, "watchdog": func() error { return w.d.alive(ctx) }} {
		if err := check(); err == nil || !strings.Contains(err.Error(), "no write has gone through since") {
			t.Errorf("%s with the writer wedged %s: %v", name, writerStuckAfter, err)
		}
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); w.d.writerHealth() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) { // a guard against a hang, not a timing assumption
			t.Fatal("the probe never went through once the writer was free")
		}
	}
	if err := w.d.health(); err != nil {
		t.Errorf("health once the writer is free: %v", err)
	}
	if err := w.d.alive(ctx); err != nil {
		t.Errorf("watchdog once the writer is free: %v", err)
	}
}

// A file whose processing never returns (in the field, its read hangs on a network
// mount gone dead) held its drop folder: every later file waited with no receipt
// while /healthz said all was well. Past fileStuckAfter in hand, the every-minute check raises file_retrying naming it and /healthz names it; once it
// returns, both clear. Intake measures the time in hand on its own clock (the real
// one): the test lowers the threshold rather than wait an hour.
func TestFileInHandTooLongReachesAPerson(t *testing.T) {
	w := newExcWorld(t)
	w.tune(func(c *config.Config) { c.Folders[0].Watch = "poll" })
	entered, release := make(chan struct{}), make(chan struct{})
	w.d.Handle(w.d.Config().Folders[0].Kind, HandlerFunc(func(ctx context.Context, in *Input) (Result, error) {
		close(entered)
		<-release
		return Result{}, nil
	}))
	w.run()
	w.drop("morosi", "hung.csv", acceptedCSV)
	<-entered
	ctx := context.Background()
	w.d.checkInHand(ctx)
	if es := w.all("file_retrying"); len(es) != 0 || w.d.health() != nil {
		t.Fatalf("raised for a file just taken: %+v, health %v", es, w.d.health())
	}
	w.d.stuckAfter.Store(int64(time.Nanosecond)) // any time in hand is too long now
	w.d.checkInHand(ctx)
	es := w.all("file_retrying")
	if len(es) != 1 || es[0].Subject != "hung.csv" || !es[0].Open() || es[0].Severity != archive.SevHigh ||
		!strings.Contains(es[0].Message, "folder morosi: hung.csv has been in processing since") ||
		!strings.Contains(es[0].Message, "no other file of the folder is taken") {
		t.Fatalf("file_retrying after %s in hand: %+v", fileStuckAfter, es)
	}
	if err := w.d.health(); err == nil || !strings.Contains(err.Error(), "folder morosi: hung.csv in processing since") {
		t.Errorf("health with the file in hand: %v", err)
	}
	close(release)
	w.waitFor("file_retrying", "resolved once the file returned", func([]archive.Exception) bool {
		w.d.checkInHand(ctx)
		es := w.all("file_retrying")
		return len(es) == 1 && !es[0].Open()
	})
	if err := w.d.health(); err != nil {
		t.Errorf("health once the file returned: %v", err)
	}
}

// heldLedger is the real schedule ledger whose Begin is held until release: a
// scheduler loop that never comes back from a ledger write.
type heldLedger struct {
	sched.Ledger
	entered, release chan struct{}
}

func (l *heldLedger) Begin(ctx context.Context, job string, slot time.Time, manual bool) (bool, error) {
	close(l.entered)
	<-l.release
	return l.Ledger.Begin(ctx, job, slot, manual)
}

// The watchdog was petted by its own ticker whatever the scheduler's loop did: held
// (here in a ledger write, under its lock), no job started, not even the mail job
// that would report it, and /healthz said all was well. Now /healthz and the
// watchdog's check name it once the loop has not gone round for schedStalledAfter.
func TestSchedulerLoopHeldReachesAPerson(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	clock := sched.NewFakeClock(time.Date(2026, 11, 24, 6, 59, 0, 0, flows.Rome))
	l := &heldLedger{Ledger: w.d.Store.ScheduleLedger(), entered: make(chan struct{}), release: make(chan struct{})}
	s := sched.New(flows.Rome, l, nil, nil)
	s.UseClock(clock)
	if err := s.Add(sched.Job{Name: "build", Spec: "0 7 * * *", Run: func(context.Context, time.Time) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	w.d.sched.Store(s)
	clock.WaitTimer(nil)
	clock.Set(time.Date(2026, 11, 24, 7, 0, 0, 0, flows.Rome))
	<-l.entered
	ctx := context.Background()
	if err := w.d.health(); err != nil {
		t.Fatalf("health with the loop just held: %v", err)
	}
	clock.Advance(schedStalledAfter)
	for name, check := range map[string]func() error{"/healthz": w.d.health, "watchdog": func() error { return w.d.alive(ctx) }} {
		if err := check(); err == nil || !strings.Contains(err.Error(), "scheduler: its loop has not gone round since 24/11/2026 06:59") {
			t.Errorf("%s with the scheduler's loop held: %v", name, err)
		}
	}
	close(l.release)
	for deadline := time.Now().Add(30 * time.Second); w.d.schedHealth() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) { // a guard against a hang, not a timing assumption
			t.Fatal("the loop never went round once released")
		}
	}
	if err := w.d.alive(ctx); err != nil {
		t.Errorf("watchdog once the loop goes round: %v", err)
	}
	s.Stop()
}

// A drop folder's loop that hangs with no file in hand (in the field a listing of the
// folder that never returns: a network mount gone dead waits in the kernel, no error
// comes, so folder_unreadable was never raised) took nothing in, and neither the
// file-in-hand check (no file is in hand) nor anything else said so. Now, busy past
// loopStuckAfter with no file in hand, /healthz names the folder and the every-minute
// check raises folder_unreadable; once the loop comes back it is resolved. Here the
// loop is held for real inside its event callback: the folder's .inprogress removed,
// the loop reports the loss and the daemon's callback waits on the archive's writer,
// held by an open transaction. Intake measures on its own (real) clock: the test
// lowers the threshold rather than wait 15 minutes.
func TestFolderLoopStalledReachesAPerson(t *testing.T) {
	w := newExcWorld(t)
	w.tune(func(c *config.Config) { c.Folders[0].Watch = "poll" })
	folder := w.d.Config().Folders[0].Name
	w.run()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); w.d.watcher.Load() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) { // a guard against a hang, not a timing assumption
			t.Fatal("intake never started")
		}
	}
	<-w.d.watcher.Load().Ready()
	entered, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- w.d.Store.Write(ctx, func(*sql.Tx) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	if err := os.Remove(filepath.Join(w.folders[folder], intake.InProgressDir)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, lost := w.d.lostFolders.Load(folder); lost {
			break // the loop is in the callback, which now waits on the writer
		}
		if time.Now().After(deadline) {
			t.Fatal("the folder's loss was never reported")
		}
	}
	st := w.d.watcher.Load().Stats()[folder]
	if st.StalledSince.IsZero() || st.InHand != "" {
		t.Fatalf("intake's stats with the loop held: %+v", st)
	}
	// /healthz says the first problem it finds (here the folder's loss, already
	// reported): intake's own verdict is the one about the loop.
	if err := w.d.inHandHealth(); err != nil {
		t.Fatalf("health with the loop just held: %v", err)
	}
	w.d.loopStuckAfter.Store(int64(time.Nanosecond)) // any time busy is too long now
	if err := w.d.inHandHealth(); err == nil || !strings.Contains(err.Error(), "intake: folder "+folder+": busy since") {
		t.Errorf("health with the folder's loop held: %v", err)
	}
	checked := make(chan struct{})
	go func() { w.d.checkInHand(ctx); close(checked) }() // its raise waits on the writer too
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	<-checked
	var loop []archive.Exception
	for _, e := range w.all("folder_unreadable") {
		if e.Fingerprint == stalledFingerprint(folder) {
			loop = append(loop, e)
		}
	}
	if len(loop) != 1 || !loop[0].Open() || loop[0].Severity != archive.SevHigh || loop[0].Owner != "sysadmin" ||
		!strings.Contains(loop[0].Message, "drop folder "+folder+": intake has been busy since") ||
		!strings.Contains(loop[0].Message, "no file is taken in from it") {
		t.Fatalf("folder_unreadable for the held loop: %+v", loop)
	}
	w.d.loopStuckAfter.Store(int64(time.Hour)) // the loop came back: busy moments are short again
	w.d.checkInHand(ctx)
	for _, e := range w.all("folder_unreadable") {
		if e.Fingerprint == stalledFingerprint(folder) && e.Open() {
			t.Errorf("still open once the loop came back: %+v", e)
		}
	}
	if err := w.d.inHandHealth(); err != nil {
		t.Errorf("intake's health once the loop came back: %v", err)
	}
}

// The Action of a file in hand too long says to restart cmord, and the restart takes
// the file again from .inprogress/ and finishes it: the file_retrying the previous run
// raised must then be resolved. It stayed open for good (only the run that raised it
// remembered it), an urgent exception about a file long since processed.
func TestFileInHandResolvedAfterRestart(t *testing.T) {
	w := newExcWorld(t)
	ctx := context.Background()
	// Raised by the run before the restart, for a file it held too long.
	w.raiseLeftOpen(archive.Exception{Kind: "file_retrying", Severity: archive.SevHigh, Owner: "sysadmin",
		Fingerprint: stuckFingerprint("morosi", "hung.csv"), Subject: "hung.csv", Message: "folder morosi: hung.csv has been in processing since …"})
	w.run()
	w.waitFor("file_retrying", "resolved by the next run, whose intake holds no file too long", func([]archive.Exception) bool {
		w.d.checkInHand(ctx)
		es := w.all("file_retrying")
		return len(es) == 1 && !es[0].Open()
	})
}

// A file reported unstable by a run that then stopped (a restart, an upgrade) is taken
// by the next run, which never saw it unstable: the report ends then too. It stayed
// open, the next run having no candidate marked as reported.
func TestFileUnstableResolvedAfterRestart(t *testing.T) {
	w := newExcWorld(t)
	w.raiseLeftOpen(archive.Exception{Kind: "file_unstable", Severity: archive.SevNormal, Owner: "operator",
		Fingerprint: unstableFingerprint("morosi", "slow.csv"), Subject: "morosi/slow.csv", Message: "folder morosi: file slow.csv is still changing …"})
	w.run()
	w.drop("morosi", "slow.csv", acceptedCSV)
	w.waitFor("file_unstable", "resolved once the next run took the file", func(es []archive.Exception) bool {
		return len(es) == 1 && !es[0].Open()
	})
}

// raiseLeftOpen records e as an earlier run of the daemon left it: open, raised before
// this world's daemon ran.
func (w *excWorld) raiseLeftOpen(e archive.Exception) {
	w.t.Helper()
	ctx := context.Background()
	if err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
		_, _, err := w.d.Store.RaiseException(ctx, tx, e)
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
}
