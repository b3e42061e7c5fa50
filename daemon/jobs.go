package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/sched"
	"github.com/cmord/cmord/flows"
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
			d.checkInHand(ctx)
			if err := d.CheckStateDisk(ctx); err != nil {
				d.Log.Warn("disk check", "err", err)
			}
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
	step("disk", func() error { return d.CheckStateDisk(ctx) })
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

// dayJobs are the jobs whose miss matters to compliance: a whole day without a
// digest, or without a build of the flow files. Any other miss (an every-minute poll,
// the mail outbox, alerts, a weekly verify) is the sysadmin's, and only until the job
// runs again.
var dayJobs = map[string]string{
	JobDigest: "the compliance digest",
	JobBuild:  "the build of the flow files",
}

// missedSchedule records slots a job missed, lost to a crash, or ended in a panic.
// One exception per job, whatever the kind and however many restarts (a crash loop
// bumps its count), low severity for jobs that run at least hourly; the next
// successful run of the job resolves it (scheduleDone). For the jobs of dayJobs, a
// day that ends without a run raises a separate exception for compliance, kept until
// a person resolves it.
func (d *Daemon) missedSchedule(ev sched.Event) {
	ctx := context.Background()
	spec, policy := d.jobSpec(ev.Job)
	if ev.Kind == sched.EventMissed || ev.Kind == sched.EventInterrupted || ev.Kind == sched.EventPanic {
		sev := archive.SevNormal
		if p := jobPeriod(spec, d.Config().Location); p > 0 && p <= time.Hour {
			sev = archive.SevLow
		}
		msg := fmt.Sprintf("job %s: %d slot(s) %s: %s", ev.Job, len(ev.Slots), ev.Kind, slotList(ev.Slots))
		if ev.Err != nil {
			msg += ": " + ev.Err.Error()
		}
		d.raise(ctx, archive.Exception{Kind: "missed_schedule", Severity: sev, Owner: "sysadmin",
			Fingerprint: "missed_schedule|" + ev.Job, Subject: ev.Job, Message: msg,
			Action: "Nothing to do if the job runs again: its next successful run resolves this. If it keeps coming back, read the daemon's log (restarts, crashes)."})
		d.missedOpen.Store(ev.Job, true)
	}
	if _, ok := dayJobs[ev.Job]; ok && ev.Kind != sched.EventOverlap {
		d.checkLostDays(ctx, ev, spec, policy)
	}
}

// checkLostDays raises, for each day of ev's slots that has ended (or will end)
// without a completed run of the job, one exception for compliance.
func (d *Daemon) checkLostDays(ctx context.Context, ev sched.Event, spec, policy string) {
	loc := d.Config().Location
	if loc == nil {
		loc = flows.Rome
	}
	sc, err := sched.Parse(spec, loc)
	if err != nil {
		// The configuration was checked at load: say so rather than drop the check.
		d.Log.Error("cannot check for a day without run: schedule does not parse", "job", ev.Job, "spec", spec, "err", err)
		return
	}
	now := d.now()
	y, m, dd := now.In(loc).Date()
	today := time.Date(y, m, dd, 0, 0, 0, 0, loc)
	byDay := map[time.Time][]time.Time{}
	var days []time.Time
	for _, s := range ev.Slots {
		y, m, dd := s.In(loc).Date()
		day := time.Date(y, m, dd, 0, 0, 0, 0, loc)
		if byDay[day] == nil {
			days = append(days, day)
		}
		byDay[day] = append(byDay[day], s)
	}
	for _, day := range days {
		end := day.AddDate(0, 0, 1)
		if !day.Before(today) {
			// Today can still have its run: with run_once the latest due slot runs now
			// (it is today, as the skipped ones are); otherwise a later slot today may.
			if ev.Kind == sched.EventMissed && policy == sched.MissedRunOnce {
				continue
			}
			if next := sc.Next(now); !next.IsZero() && next.Before(end) {
				continue
			}
		}
		// A day whose run cannot be verified (the archive did not answer) is raised
		// too, saying so: compliance must not lose a missed day to a database error.
		var unverified error
		ran, err := d.Store.ScheduleLedger().RanBetween(ctx, ev.Job, day, end)
		if err != nil {
			unverified = err
		} else if ran {
			continue
		}
		if ev.Job == JobDigest && unverified == nil {
			// A run killed after it queued the digest still sent it.
			_, queued, err := d.Store.DigestByKey(ctx, digest.DedupKey(day.Add(12*time.Hour)))
			if err != nil {
				unverified = err
			} else if queued {
				continue
			}
		}
		if unverified != nil {
			d.Log.Warn("cannot tell whether the day's run happened; raising it as missed", "job", ev.Job, "day", day.Format("02/01/2006"), "err", unverified)
		}
		what := map[string]string{sched.EventMissed: "missed while the daemon was down", sched.EventInterrupted: "interrupted by a restart",
			sched.EventPanic: "ended in an internal error", sched.EventFailed: "failed"}[ev.Kind]
		msg := fmt.Sprintf("%s of %s did not happen: its slot %s was %s, and no other run that day completed",
			dayJobs[ev.Job], day.Format("02/01/2006"), slotList(byDay[day]), what)
		if ev.Err != nil {
			msg += ": " + ev.Err.Error()
		}
		if unverified != nil {
			msg += fmt.Sprintf(" (not verified: the run ledger could not be read: %v)", unverified)
		}
		action := "Run `cmord digest --send` if the day's digest is still useful; the next digest covers the period since the last one sent."
		if ev.Job == JobBuild {
			action = "Nothing is lost (the requests wait and go out with the next build), but check that no deadline fell on that day; `cmord run --once` builds now."
		}
		d.raise(ctx, archive.Exception{Kind: "missed_schedule", Severity: archive.SevHigh, Owner: "compliance",
			Fingerprint: "missed_schedule|" + ev.Job + "|day|" + day.Format("2006-01-02"), Subject: ev.Job, Message: msg, Action: action})
	}
}

// scheduleDone resolves the job's missed_schedule once a run has completed. The first
// completion of each job in this process also resolves what earlier versions left
// (one exception per job and kind).
func (d *Daemon) scheduleDone(ev sched.Event) {
	open, seen := d.missedOpen.Swap(ev.Job, false)
	if seen && !open.(bool) {
		return
	}
	ctx := context.Background()
	resolution := "the job ran again" // an exception's resolution, not a practice note
	if len(ev.Slots) > 0 {
		resolution = "the run of " + slotList(ev.Slots) + " completed"
	}
	fps := []string{"missed_schedule|" + ev.Job, failingFingerprint(ev.Job)}
	if !seen {
		for _, k := range []string{sched.EventMissed, sched.EventInterrupted, sched.EventPanic} {
			fps = append(fps, "missed_schedule|"+ev.Job+"|"+k)
		}
	}
	for _, fp := range fps {
		d.resolve(ctx, fp, resolution)
	}
}

// jobSpec returns the cron spec and missed policy of a scheduled job.
func (d *Daemon) jobSpec(name string) (spec, policy string) {
	for _, j := range d.jobs() {
		if j.Name == name {
			return j.Spec, j.Missed
		}
	}
	return "", ""
}

// jobPeriod is the time between two consecutive slots of spec (0 if unknown).
func jobPeriod(spec string, loc *time.Location) time.Duration {
	sc, err := sched.Parse(spec, loc)
	if err != nil {
		return 0
	}
	a := sc.Next(time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)) // a Monday: weekday specs too
	b := sc.Next(a)
	if a.IsZero() || b.IsZero() {
		return 0
	}
	return b.Sub(a)
}

// slotList renders slots as people read them (Rome time), the first and last of a
// long list only.
func slotList(slots []time.Time) string {
	f := func(t time.Time) string { return t.In(flows.Rome).Format("02/01/2006 15:04") }
	if len(slots) > 6 {
		return fmt.Sprintf("%s, %s … %s", f(slots[0]), f(slots[1]), f(slots[len(slots)-1]))
	}
	out := make([]string, len(slots))
	for i, s := range slots {
		out[i] = f(s)
	}
	return strings.Join(out, ", ")
}
