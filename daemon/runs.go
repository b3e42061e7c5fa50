package daemon

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/flows"
)

// The run ledger (archive.Run, migration 0041) is how a daemon learns that the ones
// before it died: the alarms that live inside the process (exceptions, alerts,
// /healthz, the count of a job's failures) die with it, and systemd restarts it
// (Restart=on-failure) with nothing remembered. Each `cmord run` records its start, its
// clean stop, and what it can say before dying (a panic's message, the error that ended
// Run). At start the runs before it that never recorded a stop are unclean exits:
//
//   - crashLoopExits (2) or more in a row, none of them up runStayUp (an hour), is a
//     crash loop: daemon_crashed, urgent, mailed at once (without group_wait: the
//     daemon may die again before it passes), and /healthz answers 503 until this run
//     has stayed up runStayUp;
//   - one (the run before had been up an hour, then died): daemon_crashed, high, for
//     the digest.
//
// daemon_crashed resolves itself once a run has stayed up runStayUp, or at a clean
// stop (a person stopped or restarted the service). A run that stayed up ends a
// streak: it is counted, and the runs before it are not.
const (
	crashLoopExits = 2
	runStayUp      = time.Hour
	runStayUpText  = "an hour" // runStayUp, as messages say it
	// alertNowTimeout bounds the start's synchronous mail (SMTP included): the start
	// waits for it, since the process may die right after.
	alertNowTimeout = 30 * time.Second
)

// Fingerprints of the run ledger's exceptions (one of each at a time).
const (
	crashedFingerprint = "daemon_crashed"
	downFingerprint    = "daemon_down"
)

// runState is this daemon's row of the run ledger.
type runState struct {
	id      int64
	started time.Time
	streak  archive.UncleanStreak
	up      atomic.Bool
}

// loop reports whether the runs before this one were a crash loop.
func (r *runState) loop() bool { return r.streak.Exits >= crashLoopExits }

// StartRun records this run in the run ledger (`cmord run` calls it before Run) and
// raises daemon_crashed when the runs before it ended unclean; a crash loop's alert
// is queued and sent before it returns. It resolves daemon_down: the daemon runs again.
func (d *Daemon) StartRun(ctx context.Context, version string) error {
	now := d.now()
	id, err := d.Store.StartRun(ctx, os.Getpid(), version, now)
	if err != nil {
		return err
	}
	st, err := d.Store.UncleanStreakBefore(ctx, id)
	if err != nil {
		return err
	}
	rs := &runState{id: id, started: now, streak: st}
	d.run.Store(rs)
	d.Metrics.UncleanExits.Set(float64(st.Exits))
	d.resolve(ctx, downFingerprint, "cmord started again")
	if st.Exits > 0 {
		sev := archive.SevHigh
		if rs.loop() {
			sev = archive.SevUrgent
		}
		d.raise(ctx, archive.Exception{Kind: "daemon_crashed", Severity: sev, Owner: "sysadmin", Fingerprint: crashedFingerprint,
			Subject: "cmord", Message: "cmord restarted after " + StreakText(st),
			Action: digest.Info("daemon_crashed").ActionEN})
		d.Log.Warn("the runs before this one ended without a clean stop", "unclean_exits", st.Exits, "since", st.Since,
			"last_pid", st.Last.PID, "last_error", st.Last.Error, "crash_loop", rs.loop())
	}
	d.startMail(ctx, rs.loop())
	return nil
}

// startMail sends at start, within alertNowTimeout, what a daemon that may die again
// within the minute would otherwise never send (the alerts and mail jobs run every
// minute): after a crash loop, the urgent alerts due, new groups without group_wait;
// and the mail outbox's messages due, such as the alert `cmord alert --unit-failed`
// queued and could not send. What fails stays queued for the jobs.
func (d *Daemon) startMail(ctx context.Context, loop bool) {
	ctx, cancel := context.WithTimeout(ctx, alertNowTimeout)
	defer cancel()
	if loop {
		opts := d.digestOptions()
		opts.Log, opts.AlertNow = d.Log.With("component", "alerts"), true
		d.mu.RLock()
		sender := d.sender
		d.mu.RUnlock()
		if len(opts.AlertTo) == 0 {
			d.Log.Warn("crash loop: no alert recipients ([alerts] to / [digest] to): only /healthz and the digest say it")
		} else if _, err := digest.QueueAlerts(ctx, d.Store, sender, opts, d.now()); err != nil {
			d.Log.Error("crash loop: alert not queued", "err", err)
		}
	}
	if n, err := d.Store.Outbox().Pending(ctx); err == nil && n > 0 {
		_, _ = d.FlushMail(ctx)
	}
}

// StopRun records the clean stop of this run and resolves daemon_crashed.
func (d *Daemon) StopRun(ctx context.Context) error {
	rs := d.run.Load()
	if rs == nil {
		return nil
	}
	if err := d.Store.StopRun(ctx, rs.id, d.now()); err != nil {
		return err
	}
	d.resolve(ctx, crashedFingerprint, "cmord stopped cleanly")
	return nil
}

// RunFailed records what is ending this run (a panic's message, a fatal error) in
// the run ledger, for the next start to report. The run stays unclean.
func (d *Daemon) RunFailed(msg string) {
	rs := d.run.Load()
	if rs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Store.RunError(ctx, rs.id, msg, d.now()); err != nil {
		d.Log.Error("cannot record the error that ends this run", "err", err)
	}
}

// RecordPanic, deferred at the top of a goroutine, records a panic's message in the
// run ledger and panics again: the process still dies (and systemd restarts it), and
// the next start says why.
func (d *Daemon) RecordPanic() {
	if p := recover(); p != nil {
		d.RunFailed(fmt.Sprintf("panic: %v", p))
		panic(p)
	}
}

// checkStayedUp marks this run up once it has run runStayUp: the crash loop, if any,
// is over (daemon_crashed resolved, /healthz clear, cmord_unclean_exits 0).
func (d *Daemon) checkStayedUp(ctx context.Context) {
	rs := d.run.Load()
	if rs == nil || rs.up.Load() || d.now().Sub(rs.started) < runStayUp {
		return
	}
	if err := d.Store.MarkRunUp(ctx, rs.id, d.now()); err != nil {
		d.Log.Error("cannot record that this run stayed up", "err", err)
		return
	}
	rs.up.Store(true)
	d.Metrics.UncleanExits.Set(0)
	d.resolve(ctx, crashedFingerprint, "cmord stayed up "+runStayUpText)
}

// watchStayedUp checks every minute whether this run has stayed up runStayUp.
func (d *Daemon) watchStayedUp(ctx context.Context) func() {
	if d.run.Load() == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer d.RecordPanic()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				d.checkStayedUp(ctx)
			}
		}
	}()
	return cancel
}

// crashHealth is nil unless this run follows a crash loop and has not stayed up
// runStayUp yet: between two crashes the daemon answers, and /healthz must not say
// all is well.
func (d *Daemon) crashHealth() error {
	rs := d.run.Load()
	if rs == nil || !rs.loop() || rs.up.Load() {
		return nil
	}
	return fmt.Errorf("daemon: restarted after %s; healthy again once up %s", StreakText(rs.streak), runStayUpText)
}

// StreakText says what the run ledger knows of a streak of unclean exits.
func StreakText(st archive.UncleanStreak) string {
	count := fmt.Sprintf("%d unclean exits in a row since %s", st.Exits, st.Since.In(flows.Rome).Format("02/01/2006 15:04:05"))
	switch {
	case st.Exits == 1:
		count = "an unclean exit"
	case st.Exits >= archive.MaxUncleanStreak:
		count = "at least " + count
	}
	if st.Exits >= crashLoopExits {
		count += " (a crash loop)"
	}
	last := fmt.Sprintf("the last run (PID %d", st.Last.PID)
	if st.Last.Version != "" {
		last += ", version " + st.Last.Version
	}
	last += ", started " + st.Last.StartedAt.In(flows.Rome).Format("02/01/2006 15:04:05")
	if !st.Last.UpAt.IsZero() {
		last += ", up over " + runStayUpText
	}
	last += ")"
	if st.Last.Error != "" {
		last += " recorded before dying, at " + st.Last.ErrorAt.In(flows.Rome).Format("15:04:05") + ": " + st.Last.Error
	} else {
		last += " recorded nothing before it died: killed by a signal (kill -9, the OOM killer at MemoryMax), the watchdog, or a panic outside cmord's guard; see journalctl -u cmord"
	}
	return count + "; " + last
}
