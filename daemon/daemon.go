package daemon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/failpoint"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/daemon/intake"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/metrics"
	"github.com/cmord/cmord/daemon/notify"
	"github.com/cmord/cmord/daemon/receipt"
	"github.com/cmord/cmord/daemon/sched"
	"github.com/cmord/cmord/daemon/sftpx"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

// Daemon is one running cmord.
type Daemon struct {
	Log     *slog.Logger
	Store   *archive.Store
	Metrics *metrics.Metrics
	// OnReload, when set, is called with a new configuration once a reload applied it
	// (the CLI re-applies [log] level and format there: it owns the logger).
	OnReload func(cfg *config.Config)

	lock *StateLock // held from New to Close: one daemon per state directory

	mu          sync.RWMutex // guards cfg, catalog, handlers, builders, clients, sender across reloads
	cfg         *config.Config
	catalog     *flows.Catalog
	handlers    map[string]Handler
	siiRowHooks map[string]family.SIIRowHook
	builders    []Builder
	clients     map[string]*sftpx.Client
	sender      *mail.Sender
	cal         *flows.Calendar

	now func() time.Time // injectable clock for tests

	runMu    sync.Mutex // one cycle at a time (scheduler jobs vs --once)
	reloads  chan *config.Config
	started  time.Time
	trackers map[string]*sftpx.StabilityTracker // SFTP listing stability per endpoint

	onceCounts     atomic.Pointer[folderCounts]    // set during RunOnceSummary (once.go)
	released       atomic.Bool                     // an endpoint's queued deliveries were brought forward (transfer.go)
	missedOpen     sync.Map                        // job → bool: a missed_schedule raised and not yet resolved (jobs.go)
	failing        jobFailures                     // jobs whose latest runs failed (jobfail.go)
	raiseFailed    atomic.Pointer[raiseFailure]    // the latest exception could not be recorded (raise)
	lostFolders    sync.Map                        // folder → what is wrong: a drop folder intake cannot list as it set it up
	probe          writerProbe                     // the write that tells a wedged archive writer (writerprobe.go)
	watcher        atomic.Pointer[intake.Watcher]  // the drop folders' watcher of this generation (inhand.go)
	stuckRaised    sync.Map                        // fingerprint → true: a file in hand too long, raised (inhand.go)
	stuckAfter     atomic.Int64                    // nanoseconds; 0: fileStuckAfter (tests shorten it; inhand.go)
	stuckPrimed    atomic.Bool                     // stuckRaised holds those an earlier run left open (inhand.go)
	loopStuckAfter atomic.Int64                    // nanoseconds; 0: loopStuckAfter (tests shorten it; inhand.go)
	sched          atomic.Pointer[sched.Scheduler] // the scheduler of this generation: its loop's beat (schedHealth)
	run            atomic.Pointer[runState]        // this run's row of the run ledger, once StartRun recorded it (runs.go)
}

// New opens the state directory and prepares a daemon for cfg.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	lock, err := LockStateDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	store, err := archive.Open(cfg.StateDir)
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	if err := store.Blobs.RemoveTemp(); err != nil { // safe: the lock says no other daemon writes here
		store.Close()
		lock.Unlock()
		return nil, err
	}
	d := &Daemon{Log: log, Store: store, Metrics: metrics.New(), now: time.Now, reloads: make(chan *config.Config, 1), lock: lock}
	if err := d.apply(cfg); err != nil {
		store.Close()
		lock.Unlock()
		return nil, err
	}
	for _, w := range HygieneWarnings(cfg) {
		log.Warn("configuration hygiene", "warning", w)
	}
	return d, nil
}

// Config returns the configuration in force.
func (d *Daemon) Config() *config.Config {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cfg
}

// Catalog returns the flow catalog in force.
func (d *Daemon) Catalog() *flows.Catalog {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.catalog
}

// Calendar returns the working-day calendar (national holidays + patron day).
func (d *Daemon) Calendar() *flows.Calendar {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cal
}

// Now returns the daemon's clock.
func (d *Daemon) Now() time.Time { return d.now() }

// SetClock replaces the clock (tests and the demo's time travel).
func (d *Daemon) SetClock(now func() time.Time) { d.now = now }

// Handle registers the handler of an input kind (a billing kind or an SII flow key).
func (d *Daemon) Handle(kind string, h Handler) { d.handlers[kind] = h }

// AddBuilder registers a builder run by the "build" job.
func (d *Daemon) AddBuilder(b Builder) { d.builders = append(d.builders, b) }

// apply loads everything that depends on the configuration; on error nothing changes.
func (d *Daemon) apply(cfg *config.Config) error {
	cat := flows.DefaultCatalog()
	if cfg.Catalog.Path != "" {
		var err error
		if cat, err = flows.LoadCatalog(cfg.Catalog.Path, cfg.Catalog.Mode); err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
	}
	if fs := cat.Check(); len(fs) > 0 {
		for _, f := range fs {
			if !f.IsWarning() {
				return fmt.Errorf("catalog %s: %s", cfg.Catalog.Path, f.String())
			}
		}
	}
	if err := checkSIIFlowLimits(cfg, cat); err != nil {
		return err
	}
	// A folder's column mapping as `cmord check` checks it: a missing, broken or
	// disagreeing mapping file would refuse every file of its folder, so the daemon
	// does not start with it, and a reload keeps the configuration in force.
	if err := errors.Join(mappingErrors(cfg, inputLayoutOf(cat))...); err != nil {
		return err
	}
	pm, pd, _ := cfg.Deadlines.PatronMonthDay()
	cal := flows.NewCalendar(pm, pd)
	clients := map[string]*sftpx.Client{}
	for _, ep := range cfg.SFTP {
		clients[ep.Name] = sftpx.NewClient(endpoint(ep), d.Log.With("component", "sftp"))
	}
	sender := mail.NewSender(smtpConfig(cfg.Mail), d.Store.Outbox(), d.Log.With("component", "mail"))
	sender.DeadLetterDir = filepath.Join(cfg.StateDir, "dead-letter")
	if cfg.Mail.DeadLetterAfter > 0 { // 0: a Config built by hand; the sender's default (10) stands
		sender.DeadLetterAfter = cfg.Mail.DeadLetterAfter
	}
	sender.OnEvent = d.mailEvent
	sender.Lang = digest.OptionsFromConfig(cfg).Lang
	d.mu.Lock()
	old := d.clients
	d.cfg, d.catalog, d.cal, d.clients, d.sender = cfg, cat, cal, clients, sender
	d.handlers = map[string]Handler{}
	d.siiRowHooks = map[string]family.SIIRowHook{}
	d.builders = nil
	d.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
	for _, setup := range familySetups {
		if err := setup(d, d); err != nil {
			return err
		}
	}
	return nil
}

func endpoint(ep config.SFTP) sftpx.Endpoint {
	return sftpx.Endpoint{Name: ep.Name, Host: ep.Host, Port: ep.Port, User: ep.User, KeyFile: ep.KeyFile,
		KnownHosts: ep.KnownHosts, HostKeyAlgorithms: ep.HostKeyAlgorithms, DialTimeout: ep.DialTimeout,
		IOTimeout: ep.IOTimeout, OpTimeout: ep.OpTimeout, Keepalive: ep.Keepalive, KeepaliveMaxMissed: ep.KeepaliveMaxMissed,
		BackoffMin: ep.BackoffMin, BackoffMax: ep.BackoffMax, MaxPacket: ep.MaxPacket,
		ConcurrentWrites: ep.ConcurrentWrites, ConcurrentReads: ep.ConcurrentReads, TempPrefix: ep.TempPrefix,
		TempSuffix: ep.TempSuffix, Overwrite: ep.Overwrite, Rename: ep.Rename, InsecureTOFU: ep.InsecureTrustOnFirstUse}
}

func smtpConfig(m config.Mail) mail.SMTP {
	return mail.SMTP{Host: m.Host, Port: m.Port, TLS: m.TLS, Username: m.Username, PasswordFile: m.PasswordFile,
		From: m.From, HELO: m.HELO, Timeout: m.Timeout}
}

// Reload asks the running daemon to switch to cfg (SIGHUP). config.Load has refused
// a file that does not parse; what apply refuses (the catalog, the folders' column
// mappings) is logged and the configuration in force kept.
func (d *Daemon) Reload(cfg *config.Config) {
	select {
	case d.reloads <- cfg:
	default:
		// a reload is already pending: replace it with the newest
		select {
		case <-d.reloads:
		default:
		}
		d.reloads <- cfg
	}
}

// Close releases the daemon's resources.
func (d *Daemon) Close() error {
	d.mu.Lock()
	for _, c := range d.clients {
		c.Close()
	}
	d.mu.Unlock()
	err := d.Store.Close()
	// Only after the archive is closed (WAL checkpointed): the next daemon may start.
	return errors.Join(err, d.lock.Unlock())
}

// Run runs the daemon until ctx is cancelled: drop folders, schedule, metrics,
// systemd notifications, reloads. The file in hand is finished before it returns.
func (d *Daemon) Run(ctx context.Context) error {
	d.started = d.now()
	// Sort runs a killed daemon left (uscente.morosi): of no use, whatever becomes of
	// their file, and no handler of this daemon runs yet.
	if err := os.RemoveAll(uscente.SortRoot(d.Store.Dir())); err != nil {
		d.Log.Warn("cannot remove the sort runs left by a previous run", "err", err)
	}
	if srv, err := d.serveMetrics(); err != nil {
		return err
	} else if srv != nil {
		defer srv.Close()
	}
	stopWriter := d.watchWriter(ctx)
	defer stopWriter()
	stopWatchdog := d.watchdog(ctx)
	defer stopWatchdog()
	stopStayedUp := d.watchStayedUp(ctx)
	defer stopStayedUp()
	for {
		genCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		errc := make(chan error, 2)
		if err := d.startGeneration(genCtx, &wg, errc); err != nil {
			cancel()
			return err
		}
		notify.Ready()
		notify.Status(fmt.Sprintf("running: %d folders, %d SFTP endpoints", len(d.Config().Folders), len(d.Config().SFTP)))
		d.Log.Info("cmord running", "folders", len(d.Config().Folders), "sftp", len(d.Config().SFTP), "state_dir", d.Config().StateDir)
		select {
		case <-ctx.Done():
			notify.Stopping()
			d.Log.Info("stopping: finishing the file in hand")
			cancel()
			wg.Wait()
			d.Log.Info("stopped")
			return nil
		case err := <-errc:
			cancel()
			wg.Wait()
			return err
		case cfg := <-d.reloads:
			notify.Reloading()
			d.Log.Info("reloading configuration", "file", cfg.File)
			cancel()
			wg.Wait()
			if cfg.StateDir != d.Config().StateDir {
				d.Log.Warn("state_dir changed: it takes effect at the next restart", "kept", d.Config().StateDir)
				cfg.StateDir = d.Config().StateDir
			}
			if err := d.apply(cfg); err != nil {
				d.Log.Error("new configuration refused, keeping the old one", "err", err)
				_ = d.apply(d.Config())
			} else {
				if d.OnReload != nil {
					d.OnReload(cfg)
				}
				d.Log.Info("configuration reloaded")
			}
		}
	}
}

// startGeneration starts the components that depend on the configuration.
func (d *Daemon) startGeneration(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) error {
	cfg := d.Config()
	// Each folder's first scan says again whether it is lost (a folder no longer
	// configured must not keep /healthz failing).
	d.lostFolders.Clear()
	d.watcher.Store(nil)
	var folders []intake.Folder
	for _, f := range cfg.Folders {
		folders = append(folders, intakeFolder(f))
	}
	if len(folders) > 0 {
		w, err := intake.New(folders, d.processClaimed, d.intakeEvent, d.Log.With("component", "intake"))
		if err != nil {
			return err
		}
		d.watcher.Store(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer d.RecordPanic()
			if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- err
			}
		}()
	}
	s := sched.New(cfg.Location, d.Store.ScheduleLedger(), d.Log.With("component", "sched"), d.schedEvent)
	for _, j := range d.jobs() {
		if err := s.Add(j); err != nil {
			return fmt.Errorf("schedule %s: %w", j.Name, err)
		}
	}
	s.Start(ctx)
	d.sched.Store(s)
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		stopCtx := s.Stop()
		select {
		case <-stopCtx.Done():
		case <-time.After(2 * time.Minute):
			d.Log.Warn("scheduled jobs still running after 2m; leaving them")
		}
	}()
	return nil
}

func (d *Daemon) serveMetrics() (*http.Server, error) {
	addr := d.Config().Listen
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: d.Metrics.Handler(d.health), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	d.Log.Info("serving /healthz and /metrics", "addr", ln.Addr().String())
	return srv, nil
}

// health is /healthz: the archive answers and records exceptions, no SFTP operation
// is wedged, the state directory's disk has state_min_free, the mail outbox is not
// stuck on failing messages, no scheduled job keeps failing, and every SFTP endpoint
// was reached recently enough, this run does not follow a crash loop it has not
// outlived yet (runs.go), every drop folder can be listed as cmord set it up, and no
// file has been in processing for over an hour (inhand.go).
func (d *Daemon) health() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var one int
	if err := d.Store.Read().QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := d.stuck(); err != nil {
		return err
	}
	if err := d.writerHealth(); err != nil {
		return err
	}
	if err := d.schedHealth(); err != nil {
		return err
	}
	if err := d.raiseHealth(); err != nil {
		return err
	}
	if err := d.diskHealth(); err != nil {
		return err
	}
	if err := d.mailHealth(ctx); err != nil {
		return err
	}
	if err := d.failingHealth(); err != nil {
		return err
	}
	if err := d.crashHealth(); err != nil {
		return err
	}
	if err := d.foldersHealth(); err != nil {
		return err
	}
	if err := d.inHandHealth(); err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, ep := range d.cfg.SFTP {
		c := d.clients[ep.Name]
		if c == nil {
			continue
		}
		if err := c.Healthy(); err != nil && time.Since(d.started) > ep.UnreachableAlertAfter {
			return fmt.Errorf("sftp %s: %w", ep.Name, err)
		}
	}
	return nil
}

// mailHealthAttempts is how many failed attempts of one message make /healthz report
// the mail down (1+2+4 minutes of backoff: a relay's brief hiccup does not count).
const mailHealthAttempts = 3

// mailHealth is nil unless a message of the outbox has failed mailHealthAttempts
// times. Mail is how digests and alerts, the mail_failed exception included, reach a
// person: when it is down only /healthz (and the log) can say so.
func (d *Daemon) mailHealth(ctx context.Context) error {
	if d.Config().Mail.Host == "" {
		return nil
	}
	n, m, err := d.Store.Outbox().Failing(ctx, mailHealthAttempts)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("mail: %d message(s) undelivered after %d or more attempts (oldest %s, queued %s, %d attempts): %s",
		n, mailHealthAttempts, m.DedupKey, m.CreatedAt.In(flows.Rome).Format("02/01/2006 15:04"), m.Attempts, m.LastError)
}

// stuck is nil unless an SFTP operation is wedged: its connection was closed by the
// operation watchdog (op_timeout) and it still has not returned, so the job running
// it, and whatever waits for that job, is stuck.
func (d *Daemon) stuck() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, c := range d.clients {
		if err := c.Stuck(); err != nil {
			return err
		}
	}
	return nil
}

// watchdog pings systemd at half the WatchdogSec interval while the process is
// responsive: the archive answers, its writer takes a write within writerStuckAfter,
// the scheduler's loop goes round, and no SFTP operation is wedged past twice its
// op_timeout. A stuck daemon is not
// petted, and systemd restarts it (kill -9 safe).
func (d *Daemon) watchdog(ctx context.Context) func() {
	interval, ok := notify.WatchdogInterval()
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				err := d.alive(ctx)
				if err == nil {
					notify.Watchdog()
				} else if ctx.Err() == nil {
					d.Log.Error("not petting the systemd watchdog: the daemon is stuck", "err", err)
				}
			}
		}
	}()
	return cancel
}

// alive is the watchdog's check: the archive answers reads, its writer is not
// wedged (writerprobe.go), the scheduler's loop goes round, and no SFTP operation is
// wedged.
func (d *Daemon) alive(ctx context.Context) error {
	var one int
	if err := d.Store.Read().QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return err
	}
	if err := d.writerHealth(); err != nil {
		return err
	}
	if err := d.schedHealth(); err != nil {
		return err
	}
	return d.stuck()
}

// schedStalledAfter is how long the scheduler's loop (it goes round at least every
// 20 s) may not go round before the daemon counts as stuck: longer than
// writerStuckAfter, so that a wedged writer, the likely cause, is named first.
const schedStalledAfter = 15 * time.Minute

// schedHealth is nil unless the scheduler's loop is held (no scheduled job starts:
// no poll, build, delivery, digest, alert or mail).
func (d *Daemon) schedHealth() error {
	s := d.sched.Load()
	if s == nil {
		return nil
	}
	if since, stalled := s.Stalled(schedStalledAfter); stalled {
		return fmt.Errorf("scheduler: its loop has not gone round since %s (over 15 minutes): no scheduled job starts; the systemd watchdog restarts cmord",
			since.In(flows.Rome).Format("02/01/2006 15:04:05"))
	}
	return nil
}

// raise records an exception outside any other transaction.
func (d *Daemon) raise(ctx context.Context, e archive.Exception) {
	err := d.Store.Write(ctx, func(tx *sql.Tx) error {
		_, _, err := d.Store.RaiseException(ctx, tx, e)
		return err
	})
	if err != nil {
		d.Log.Error("cannot record exception", "kind", e.Kind, "err", err)
		f := &raiseFailure{at: d.now(), kind: e.Kind, err: err.Error()}
		if prev := d.raiseFailed.Load(); prev != nil {
			f.at = prev.at // failing since the first
		}
		d.raiseFailed.Store(f)
		return
	}
	d.raiseFailed.Store(nil)
}

// raiseFailure is an exception the archive refused to record (database locked by
// another process, disk full): the alarm is lost, so /healthz says it until an
// exception is recorded again.
type raiseFailure struct {
	at   time.Time
	kind string
	err  string
}

// raiseHealth is nil unless the latest exception could not be recorded.
func (d *Daemon) raiseHealth() error {
	f := d.raiseFailed.Load()
	if f == nil {
		return nil
	}
	return fmt.Errorf("archive: exceptions cannot be recorded since %s (latest: %s: %s)", f.at.In(flows.Rome).Format("02/01/2006 15:04"), f.kind, f.err)
}

// resolve auto-resolves an exception whose condition cleared.
func (d *Daemon) resolve(ctx context.Context, fingerprint, note string) {
	_ = d.Store.Write(ctx, func(tx *sql.Tx) error {
		_, err := d.Store.ResolveByFingerprint(ctx, tx, fingerprint, note)
		return err
	})
}

func (d *Daemon) intakeEvent(ev intake.Event) {
	ctx := context.Background()
	switch ev.Kind {
	case "overflow", "watch_error":
		d.raise(ctx, archive.Exception{Kind: "watch_overflow", Severity: archive.SevNormal, Owner: "sysadmin",
			Fingerprint: "watch_overflow|" + ev.Folder + "|" + d.now().In(flows.Rome).Format("2006-01-02"),
			Subject:     ev.Folder, Message: fmt.Sprintf("folder %s: file notifications were lost (%s); a full rescan was done at once", ev.Folder, ev.Detail),
			Action: "Nothing is lost. If it repeats, raise fs.inotify.max_queued_events (see systemd/90-cmord-inotify.conf)."})
		d.Metrics.Failures.WithLabelValues("watch_" + ev.Kind).Inc()
	case "unstable":
		// One exception per file: a folder-wide one would keep only the latest file's
		// message and hide the others behind a counter.
		d.raise(ctx, archive.Exception{Kind: "file_unstable", Severity: archive.SevNormal, Owner: "operator",
			Fingerprint: unstableFingerprint(ev.Folder, ev.File), Subject: ev.Folder + "/" + ev.File, Message: fmt.Sprintf("folder %s: %s", ev.Folder, ev.Detail),
			Action: "Check that whoever writes the file finishes it, or use a done-marker."})
	case "claim_failed":
		// The cause (permissions, another filesystem) is the folder's: one exception per
		// folder, the message names the latest file that could not be taken.
		d.raise(ctx, archive.Exception{Kind: "claim_failed", Severity: archive.SevHigh, Owner: "sysadmin",
			Subject: ev.Folder, Message: fmt.Sprintf("folder %s: cannot move a ready file into %s: %s", ev.Folder, intake.InProgressDir, ev.Detail),
			Action: "Check the folder's permissions: cmord must be able to rename files in it (and .inprogress must be on the same filesystem)."})
	case intake.EventFinishFailed:
		// Processed, but stuck in .inprogress: a person must know why it does not
		// reach done/ or rejected/ (intake retries the move with backoff).
		d.raise(ctx, archive.Exception{Kind: "file_retrying", Severity: archive.SevHigh, Owner: "sysadmin",
			Fingerprint: "file_retrying|folder:" + ev.Folder + "|" + ev.File, Subject: ev.File,
			Message: fmt.Sprintf("folder %s: %s", ev.Folder, ev.Detail),
			Action:  "Check the folder's done/ and rejected/ (they must be directories cmord can write); the move is retried by itself."})
	case intake.EventFolderLost:
		// Nothing is taken in from the folder (deleted, unreadable, its share
		// unmounted): files dropped there wait, and nobody gets a receipt.
		d.lostFolders.Store(ev.Folder, ev.Detail)
		d.raise(ctx, archive.Exception{Kind: "folder_unreadable", Severity: archive.SevHigh, Owner: "sysadmin",
			Fingerprint: folderLostFingerprint(ev.Folder), Subject: ev.Folder, Message: ev.Detail,
			Action: digest.Info("folder_unreadable").ActionEN})
		d.Metrics.Failures.WithLabelValues("folder_lost").Inc()
	case intake.EventFolderBack:
		// Also each folder's first scan after a start or reload: a loss seen by an
		// earlier run ends there too. Written only when there is one to resolve (a
		// read first): the event comes from the folder's goroutine, which must not
		// wait on the writer at every start.
		if _, was := d.lostFolders.LoadAndDelete(ev.Folder); was || d.folderLostOpen(ctx, ev.Folder) {
			d.resolve(ctx, folderLostFingerprint(ev.Folder), "the folder is listed again as cmord set it up")
			// A loop stalled before a restart (inhand.go): this listing came back.
			d.resolve(ctx, stalledFingerprint(ev.Folder), "the folder's intake came back")
		}
	case intake.EventSettled:
		// The file reported unstable was taken at last (its marker came, its writer
		// finished a long copy) or is gone: the report ends, by itself.
		d.resolve(ctx, unstableFingerprint(ev.Folder, ev.File), "the file was taken, or is no longer in the folder")
	case intake.EventGrew:
		d.intakeGrew(ev)
	case intake.EventFinished:
		d.resolve(ctx, "file_retrying|folder:"+ev.Folder+"|"+ev.File, "moved out of "+intake.InProgressDir)
	case intake.EventUnsafe:
		// Someone put a symlink (or a FIFO, or another file) where a dropped file was:
		// possibly an attempt to make cmord archive a file from outside the folder.
		d.raise(ctx, archive.Exception{Kind: "file_rejected", Severity: archive.SevHigh, Owner: "sysadmin",
			Fingerprint: "file_rejected|unsafe|" + ev.Folder + "|" + ev.File, Subject: ev.File, Rule: "UNSAFE",
			Message: fmt.Sprintf("folder %s: %s", ev.Folder, ev.Detail),
			Action:  "Nothing was read. Find out who replaced the file in the drop folder; the link itself is in rejected/."})
		d.Metrics.Failures.WithLabelValues("unsafe_file").Inc()
	case "panic":
		// intake turned the panic into a refusal: the file is in rejected/ and a person
		// must know, as for any refused file.
		d.raise(ctx, archive.Exception{Kind: "file_rejected", Severity: archive.SevHigh, Owner: "operator",
			Fingerprint: "file_rejected|panic|" + ev.Folder + "|" + ev.File, Subject: ev.File,
			Message: fmt.Sprintf("folder %s: %s refused after an internal error while processing: %s", ev.Folder, ev.File, ev.Detail),
			Action:  "Report it with the file (in rejected/); drop it again once fixed."})
		d.Metrics.Failures.WithLabelValues("panic").Inc()
	}
	// Not logged here: intake logged each event, with its fields, as it happened.
}

// unstableFingerprint is the file_unstable exception of a file of a drop folder: the
// one RaiseException gives an exception with no fingerprint of its own, as raised
// before there was a resolution for it.
func unstableFingerprint(folder, file string) string {
	return strings.Join([]string{"file_unstable", folder + "/" + file, "0", "0", "", "", "0"}, "|")
}

// resolveUnstableTaken resolves the file_unstable of a file now taken that an earlier
// run reported (this run's own reports end with intake's EventSettled): a read first,
// a write only when there is one open.
func (d *Daemon) resolveUnstableTaken(ctx context.Context, folder, file string) {
	e := archive.Exception{Fingerprint: unstableFingerprint(folder, file)}
	e.Bound() // as RaiseException stored it
	var one int
	err := d.Store.Read().QueryRowContext(ctx, `SELECT 1 FROM exceptions WHERE fingerprint = ? AND resolved_at IS NULL`, e.Fingerprint).Scan(&one)
	if err == nil {
		d.resolve(ctx, e.Fingerprint, "the file was taken")
	}
}

// folderLostFingerprint is the folder_unreadable exception of a drop folder.
func folderLostFingerprint(folder string) string { return "folder_unreadable|" + folder }

// folderLostOpen reports whether folder has an open folder_unreadable exception (or
// whether that cannot be read: then it is resolved to be sure).
func (d *Daemon) folderLostOpen(ctx context.Context, folder string) bool {
	open := true
	es, err := d.Store.Exceptions(ctx, archive.ExceptionFilter{Kind: "folder_unreadable", Open: &open})
	if err != nil {
		return true
	}
	for _, e := range es {
		if e.Fingerprint == folderLostFingerprint(folder) || e.Fingerprint == stalledFingerprint(folder) {
			return true
		}
	}
	return false
}

// foldersHealth is nil unless a drop folder cannot be listed as cmord set it up.
func (d *Daemon) foldersHealth() error {
	var bad []string
	d.lostFolders.Range(func(_, detail any) bool {
		bad = append(bad, detail.(string))
		return true
	})
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("%s", strings.Join(bad, "; "))
}

func (d *Daemon) mailEvent(ev mail.Event) {
	if ev.Kind == mail.EventLate {
		d.mailLate(ev)
		return
	}
	if ev.Kind != mail.EventDeadLetter {
		return
	}
	d.raise(context.Background(), archive.Exception{Fingerprint: "mail_failed|" + ev.DedupKey, Kind: "mail_failed", Severity: archive.SevHigh,
		Owner: "sysadmin", Subject: ev.DedupKey, Message: fmt.Sprintf("mail %s still not delivered after %d attempts: %v (a copy is in %s)", ev.DedupKey, ev.Attempts, ev.Err, ev.Path),
		Action: "Check the SMTP relay; the message stays queued and is retried."})
}

// mailLate records that mail went out late (EventLate): one mail_late a day (Rome),
// low and already resolved, so that the next digest lists the outage among the
// exceptions resolved in its period: from the earliest queue time to the latest send
// of the day's late mails, how many, the longest delay (Value: "count;first
// queued;last sent;max delay seconds", which the digest words in Italian). The late
// mails say it themselves (mail.MarkLate); mail_failed (after dead_letter_after
// attempts) said only that mail was failing, never that it went out late.
func (d *Daemon) mailLate(ev mail.Event) {
	if err := RecordMailLate(context.Background(), d.Store, ev.SentAt); err != nil {
		d.Log.Error("mail sent late: cannot record it", "err", err)
	}
}

// RecordMailLate records mail_late for the Rome day of sentAt from the outbox (the
// daemon's sender, and the CLI's that flush the outbox: `cmord digest`, `cmord alert`).
func RecordMailLate(ctx context.Context, store *archive.Store, sentAt time.Time) error {
	day := sentAt.In(flows.Rome)
	from := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, flows.Rome)
	sum, err := store.Outbox().LateSent(ctx, from, from.AddDate(0, 0, 1), mail.DefaultLateAfter)
	if err != nil || sum.Count == 0 {
		return err
	}
	fp := "mail_late|" + from.Format("2006-01-02")
	e := archive.Exception{Fingerprint: fp, Kind: "mail_late", Severity: archive.SevLow, Owner: "sysadmin", Subject: "mail",
		Value: fmt.Sprintf("%d;%s;%s;%d", sum.Count, archive.TS(sum.FirstQueued), archive.TS(sum.LastSent), int64(sum.MaxDelay/time.Second)),
		Message: fmt.Sprintf("%s sent late: queued from %s, the last sent at %s, up to %s late (the relay did not answer, or cmord was not running)",
			plural(sum.Count, "mail", "mails"), sum.FirstQueued.In(flows.Rome).Format("02/01/2006 15:04"), sum.LastSent.In(flows.Rome).Format("02/01/2006 15:04"), mail.FormatDelay(sum.MaxDelay, "en")),
		Action: "Nothing to do now: the mail went out. If it repeats, check the SMTP relay.", LastSeen: sentAt}
	return store.Write(ctx, func(tx *sql.Tx) error {
		if _, _, err := store.RaiseException(ctx, tx, e); err != nil {
			return err
		}
		_, err := store.ResolveByFingerprint(ctx, tx, fp, "the late mail went out")
		return err
	})
}

func (d *Daemon) schedEvent(ev sched.Event) {
	if ev.Kind == sched.EventDone {
		d.jobSucceeded(ev.Job)
		d.scheduleDone(ev)
		return
	}
	if ev.Kind == sched.EventFailed || ev.Kind == sched.EventPanic || ev.Kind == sched.EventOverlap {
		d.jobFailed(ev)
	}
	var slots []string
	for _, t := range ev.Slots {
		slots = append(slots, t.In(flows.Rome).Format("02/01/2006 15:04"))
	}
	d.Log.Warn("schedule event", "job", ev.Job, "kind", ev.Kind, "slots", slots, "err", ev.Err)
	d.Metrics.ScheduleRuns.WithLabelValues(ev.Job, ev.Kind).Inc()
	d.missedSchedule(ev)
}

// folderByName returns the configuration of a drop folder.
func (d *Daemon) folderByName(name string) *config.Folder {
	cfg := d.Config()
	for i := range cfg.Folders {
		if cfg.Folders[i].Name == name {
			return &cfg.Folders[i]
		}
	}
	return nil
}

// processClaimed is intake's ProcessFunc: archive the claimed file, then process it
// once. A crash anywhere leaves the file in .inprogress/, and the re-run finds it in
// the archive (Existing) and does not process it twice.
func (d *Daemon) processClaimed(ctx context.Context, c intake.Claimed) (intake.Outcome, error) {
	folder := d.folderByName(c.Folder)
	if folder == nil {
		return intake.Outcome{}, fmt.Errorf("folder %s is no longer configured", c.Folder)
	}
	failpoint.Hit("after_claim")
	// The content comes from the descriptor intake opened and checked (a regular file
	// of the folder, the one scanned), never from the path, which may point elsewhere.
	if c.File == nil {
		if c.OpenErr == nil {
			return intake.Outcome{}, fmt.Errorf("%s: claimed file not opened by intake", c.Name)
		}
		// The dropped file itself cannot be opened: named by its path, so that the
		// poison-file policy refuses it at once rather than retrying it forever.
		cause := c.OpenErr
		var pe *fs.PathError
		if errors.As(cause, &pe) {
			cause = pe.Err
		}
		return d.notArchived(ctx, c, folder, &fs.PathError{Op: "open", Path: c.Path, Err: cause})
	}
	res, err := d.Store.Ingest(ctx, archive.IngestRequest{Source: "folder:" + folder.Name, Name: c.Name, Direction: "in",
		Kind: folder.Kind, Reader: io.NewSectionReader(c.File, 0, math.MaxInt64), MaxSize: folder.MaxSize,
		Meta: map[string]string{"path": filepath.Join(folder.Path, c.Name)}})
	if err != nil {
		d.Metrics.Failures.WithLabelValues("archive").Inc()
		return d.notArchived(ctx, c, folder, err)
	}
	d.Metrics.FilesIn.WithLabelValues("folder:" + folder.Name).Inc()
	d.resolveUnstableTaken(ctx, folder.Name, c.Name)
	if c.Attempt > 1 {
		d.resolve(ctx, "file_retrying|folder:"+folder.Name+"|"+c.Name, "archived")
	}
	failpoint.Hit("after_archive")
	if res.TooBig {
		reason := d.refuseTooBig(ctx, res.File, "folder "+folder.Name, folder.MaxSize)
		return intake.Outcome{Rejected: true, Reason: d.reasonText(folder, Result{Rejected: true, Reason: reason}), Lang: d.lang()}, nil
	}
	if res.Existing && !c.Recovered && c.Attempt == 1 && res.File.State == archive.StateRejected {
		// Refused, then dropped again unchanged (typically after the folder's mapping or
		// configuration was corrected): a new attempt, not a duplicate. Recorded in the
		// event log and processed again.
		err := d.Store.Write(ctx, func(tx *sql.Tx) error {
			if err := d.Store.ResetAttempts(ctx, tx, res.File.ID); err != nil {
				return err
			}
			return d.Store.SetFileState(ctx, tx, res.File.ID, archive.StateReceived, "dropped again after its refusal: processed again", nil)
		})
		if err != nil {
			return intake.Outcome{}, err
		}
		res.File.State, res.File.Reason = archive.StateReceived, ""
		delete(res.File.Meta, archive.MetaAttempts)
		delete(res.File.Meta, archive.MetaTransientAttempts)
	}
	if res.Existing && !c.Recovered && c.Attempt == 1 && res.File.State == archive.StateProcessed {
		// The same bytes under the same name, dropped again after they were finished:
		// not a crash recovery (that comes back Recovered) but a re-delivery, which a
		// person should hear about like an identical file under another name.
		return intake.Outcome{Rejected: true, Reason: d.reasonText(folder, d.duplicate(ctx, res.File, res.File)), Lang: d.lang()}, nil
	}
	// Already processed by a run that died before finishing the file: its receipt is
	// rebuilt from the archive (the handler's findings are gone with that run).
	rebuilt := res.File.State == archive.StateProcessed
	out, err := d.processOrRefuse(ctx, res.File, folder, "folder "+folder.Name, folder.MaxAttempts)
	if err != nil {
		return intake.Outcome{}, err
	}
	grew := d.checkGrowth(ctx, c, folder, res.File)
	failpoint.Hit("after_process")
	if out.Rejected {
		return intake.Outcome{Rejected: true, Reason: d.reasonText(folder, out), Lang: d.lang(), GrowthReported: grew}, nil
	}
	receipts, err := d.receipts(ctx, res.File.ID, folder, out, rebuilt)
	if err != nil {
		return intake.Outcome{}, err
	}
	return intake.Outcome{Receipts: receipts, Lang: d.lang(), GrowthReported: grew}, nil
}

// process runs the handler of an archived input file unless it was already processed.
func (d *Daemon) process(ctx context.Context, f archive.File, folder *config.Folder) (Result, error) {
	switch f.State {
	case archive.StateProcessed:
		return Result{}, nil
	case archive.StateRejected:
		return Result{Rejected: true, Reason: f.Reason}, nil
	case archive.StateDuplicate:
		orig, _ := d.Store.GetFile(ctx, f.DuplicateOf)
		return d.duplicate(ctx, f, orig), nil
	}
	d.mu.RLock()
	h := d.handlers[f.Kind]
	cfg, cat := d.cfg, d.catalog
	d.mu.RUnlock()
	if h == nil {
		h = HandlerFunc(unknownKind)
	}
	in := &Input{File: f, Folder: folder, Store: d.Store, Catalog: cat, Config: cfg, Log: d.Log.With("file", f.Name, "file_id", f.ID), Now: d.now()}
	start := time.Now()
	out, err := h.Handle(ctx, in)
	if err != nil {
		d.Metrics.Failures.WithLabelValues("handler").Inc()
		// Whether it is retried or refused is the poison-file policy's to say (failed),
		// and its log line (or intake's, for a drop retried) says it with the error.
		return out, err
	}
	d.Log.Info("file processed", "file", f.Name, "kind", f.Kind, "rejected", out.Rejected, "findings", len(out.Findings), "took", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// refuseTooBig records the refusal of a file over its size limit (its row is already
// rejected, with no blob) as a file_rejected exception, and returns the reason.
func (d *Daemon) refuseTooBig(ctx context.Context, f archive.File, where string, limit int64) string {
	reason := f.Reason // the archive's: read and hashed, or refused unread
	if reason == "" {
		reason = archive.TooBigReason(f.Size, limit)
	}
	action := "Check what was dropped: if the file is genuine, raise the limit (max_size of the folder, [limits] for the SII) and drop it again."
	if strings.HasPrefix(f.Source, "sftp:") {
		action = "The file stays on the SII server. If it is genuine, raise [limits] sii_file (or the flow's own limit) and ask the SII to send it again: a new upload is fetched as a new file."
	}
	d.raise(ctx, archive.Exception{Kind: "file_rejected", Severity: archive.SevHigh, Owner: "operator", FileID: f.ID,
		Rule: "SIZE", Subject: f.Name, Message: fmt.Sprintf("%s (%s) refused: %s", f.Name, where, reason), Action: action})
	d.Log.Warn("file over its size limit; not processed, content not kept", "file", flows.Escape(f.Name), "where", where, "size", f.Size, "limit", limit, "sha256", f.Hash, "read", f.Hash != "")
	return reason
}

// raiseDuplicate records that dup carries the content already received as orig (the
// same row when the same name came again) and returns the refusal reason.
func (d *Daemon) raiseDuplicate(ctx context.Context, dup, orig archive.File) string {
	reason := fmt.Sprintf("identical content was already received as %s (file #%d, %s): not processed again",
		orig.Name, orig.ID, orig.ReceivedAt.In(flows.Rome).Format("02/01/2006 15:04"))
	d.raise(ctx, archive.Exception{Kind: "duplicate_file", Severity: archive.SevLow, Owner: "operator", FileID: dup.ID,
		Subject: dup.Name, Message: fmt.Sprintf("%s: %s", dup.Name, reason), Action: "None if the re-delivery was a mistake."})
	return reason
}

// duplicate is the refusal of dup, whose content was already received as orig: the
// exception raised, the reason, and the finding that lets the reason file say it in
// the operator's language with nothing to correct.
func (d *Daemon) duplicate(ctx context.Context, dup, orig archive.File) Result {
	reason := d.raiseDuplicate(ctx, dup, orig)
	return Result{Rejected: true, Reason: reason, Findings: []flows.Finding{{File: dup.Name, Rule: receipt.RuleDuplicate,
		Value:   fmt.Sprintf("%s, #%d, %s", orig.Name, orig.ID, orig.ReceivedAt.In(flows.Rome).Format("02/01/2006 15:04")),
		Message: reason}}}
}

// intakeFolder is the intake's view of a configured folder. UnstableAfter 0 (a
// Config built by hand) is intake's default, 1h, as config's.
func intakeFolder(f config.Folder) intake.Folder {
	return intake.Folder{Name: f.Name, Path: f.Path, Settle: f.Settle, DoneMarker: f.DoneMarker,
		Ignore: f.Ignore, Rescan: f.Rescan, Watch: f.Watch, PollInterval: f.PollInterval, UnstableAfter: f.UnstableAfter,
		Retry: f.Retry}
}

// plural is "1 mail", "3 mails".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
