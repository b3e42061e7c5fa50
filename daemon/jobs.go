package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/sched"
)

// Job names, as in the [schedule] section of the configuration.
const (
	JobPollSII   = "poll_sii"
	JobBuild     = "build"
	JobDeliver   = "deliver"
	JobDigest    = "digest"
	JobDeadlines = "deadlines"
	JobVerify    = "verify"
	JobAlerts    = "alerts"
	JobMail      = "mail"
)

// extraJobs lets the digest/alerts wiring add its job bodies (digest.go sets them).
var extraJobs = map[string]func(d *Daemon, ctx context.Context, slot time.Time) error{}

// jobs returns the scheduled jobs of the configuration in force.
func (d *Daemon) jobs() []sched.Job {
	cfg := d.Config()
	var out []sched.Job
	for _, j := range cfg.Schedule.Jobs() {
		if j.Spec == "off" {
			continue
		}
		body := d.jobBody(j.Name)
		if body == nil {
			continue
		}
		out = append(out, sched.Job{Name: j.Name, Spec: j.Spec, Missed: j.Missed, Run: body})
	}
	// Every minute: urgent alerts and the mail outbox, so nothing waits for the digest.
	for _, name := range []string{JobAlerts, JobMail} {
		if body := d.jobBody(name); body != nil {
			out = append(out, sched.Job{Name: name, Spec: "* * * * *", Missed: "skip", Run: body})
		}
	}
	for i := range out {
		out[i].Run = d.countScheduleRun(out[i].Name, out[i].Run)
	}
	return out
}

func (d *Daemon) jobBody(name string) func(ctx context.Context, slot time.Time) error {
	switch name {
	case JobPollSII:
		return func(ctx context.Context, _ time.Time) error { return d.PollSII(ctx) }
	case JobBuild:
		return func(ctx context.Context, _ time.Time) error { _, err := d.BuildAll(ctx); return err }
	case JobDeliver:
		return func(ctx context.Context, _ time.Time) error { _, err := d.DeliverDue(ctx); return err }
	case JobVerify:
		return func(ctx context.Context, _ time.Time) error { return d.VerifyArchive(ctx) }
	case JobMail:
		return func(ctx context.Context, _ time.Time) error {
			d.refreshGauges(ctx)
			_, err := d.FlushMail(ctx)
			return err
		}
	}
	if f, ok := extraJobs[name]; ok {
		return func(ctx context.Context, slot time.Time) error { return f(d, ctx, slot) }
	}
	return nil
}

// BuildAll runs every builder once.
func (d *Daemon) BuildAll(ctx context.Context) (int, error) {
	d.mu.RLock()
	builders := append([]Builder(nil), d.builders...)
	d.mu.RUnlock()
	total := 0
	var errs []error
	for _, b := range builders {
		n, err := b.Build(ctx, d.now())
		total += n
		if err != nil {
			d.Log.Error("build failed", "builder", b.Name(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			continue
		}
		if n > 0 {
			d.Log.Info("flow files built", "builder", b.Name(), "files", n)
		}
	}
	return total, errors.Join(errs...)
}

// FlushMail sends what is due in the mail outbox.
func (d *Daemon) FlushMail(ctx context.Context) (int, error) {
	d.mu.RLock()
	sender := d.sender
	host := d.cfg.Mail.Host
	d.mu.RUnlock()
	if host == "" {
		return 0, nil
	}
	n, err := sender.Flush(ctx)
	if err != nil {
		d.Log.Warn("mail not sent; it stays queued and is retried", "err", err)
		d.Metrics.Failures.WithLabelValues("mail").Inc()
	}
	return n, nil
}

// Sender returns the mail sender in force.
func (d *Daemon) Sender() interface{} {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.sender
}

// VerifyArchive re-hashes the archive; a problem is an urgent exception.
func (d *Daemon) VerifyArchive(ctx context.Context) error {
	rep, err := d.Store.Verify(ctx, nil)
	if err != nil {
		return err
	}
	fp := "verify_failed|archive"
	if rep.OK() {
		d.resolve(ctx, fp, fmt.Sprintf("verify ok: %d blobs, %d events", rep.Blobs, rep.Events))
		return nil
	}
	msg := fmt.Sprintf("archive verify found %d problems; first: %s", len(rep.Problems), rep.Problems[0])
	d.raise(ctx, archive.Exception{Fingerprint: fp, Kind: "verify_failed", Severity: archive.SevUrgent, Owner: "sysadmin",
		Subject: "archive", Message: msg, Action: "Run `cmord archive verify` and restore the named blobs from backup."})
	return errors.New(msg)
}

// RunOnce does one full cycle: drop folders, SII inbound, deadlines, build, deliver,
// then the scheduled jobs whose slot is due (the digest at its time, the weekly
// verify), urgent alerts, and the mail outbox. Used by `cmord run --once`; the same
// run ledger as the daemon's means a digest is never sent twice for one slot.
func (d *Daemon) RunOnce(ctx context.Context) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	var errs []error
	step := func(name string, f func() error) {
		if err := f(); err != nil {
			d.Log.Error("cycle step failed", "step", name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	step("folders", func() error { return d.ScanFoldersOnce(ctx) })
	step(JobPollSII, func() error { return d.PollSII(ctx) })
	step(JobBuild, func() error { _, err := d.BuildAll(ctx); return err })
	step(JobDeliver, func() error { _, err := d.DeliverDue(ctx); return err })
	// Jobs with their own time of day run only when their slot is due.
	cfg := d.Config()
	s := sched.New(cfg.Location, d.Store.ScheduleLedger(), d.Log.With("component", "sched"), d.schedEvent)
	for _, j := range d.jobs() {
		switch j.Name {
		case JobDigest, JobVerify, JobDeadlines:
			if err := s.Add(j); err != nil {
				errs = append(errs, err)
			}
		}
	}
	step("due jobs", func() error { return s.RunDue(ctx) })
	if f, ok := extraJobs[JobAlerts]; ok {
		step(JobAlerts, func() error { return f(d, ctx, d.now()) })
	}
	step(JobMail, func() error { _, err := d.FlushMail(ctx); return err })
	return errors.Join(errs...)
}

// refreshGauges updates the queue and exception gauges of /metrics (every minute).
func (d *Daemon) refreshGauges(ctx context.Context) {
	if n, err := d.Store.PendingDeliveries(ctx); err == nil {
		d.Metrics.QueueDepth.WithLabelValues("deliveries").Set(float64(n))
	}
	if n, err := d.Store.Outbox().Pending(ctx); err == nil {
		d.Metrics.QueueDepth.WithLabelValues("mail").Set(float64(n))
	}
	open := true
	if exc, err := d.Store.Exceptions(ctx, archive.ExceptionFilter{Open: &open}); err == nil {
		counts := map[string]int{archive.SevUrgent: 0, archive.SevHigh: 0, archive.SevNormal: 0, archive.SevLow: 0}
		for _, e := range exc {
			counts[e.Severity]++
		}
		for sev, n := range counts {
			d.Metrics.ExceptionsOpen.WithLabelValues(sev).Set(float64(n))
		}
	}
}
