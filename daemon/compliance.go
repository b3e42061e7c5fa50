package daemon

import (
	"context"
	"time"

	"github.com/cmord/cmord/daemon/digest"
)

// The compliance jobs: deadlines computed per practice and raised ahead, the daily
// digest, and urgent alerts (digest package); the daemon only schedules them.
func init() {
	extraJobs[JobDeadlines] = func(d *Daemon, ctx context.Context, _ time.Time) error {
		cfg := d.Config()
		_, _, err := digest.RunDeadlines(ctx, d.Store, d.Calendar(), digest.DeadlineConfigFromConfig(cfg), d.now())
		return err
	}
	extraJobs[JobDigest] = func(d *Daemon, ctx context.Context, _ time.Time) error {
		return d.SendDigestNow(ctx)
	}
	// Every minute: urgent exceptions grouped (group_wait), repeated no more often
	// than repeat_interval, muted by inhibition; then the outbox is flushed.
	extraJobs[JobAlerts] = func(d *Daemon, ctx context.Context, _ time.Time) error {
		d.mu.RLock()
		sender := d.sender
		d.mu.RUnlock()
		opts := d.digestOptions()
		opts.Log = d.Log.With("component", "alerts")
		if len(opts.AlertTo) == 0 {
			return nil
		}
		if err := digest.RunAlerts(ctx, d.Store, sender, opts, d.now()); err != nil {
			return err
		}
		_, err := d.FlushMail(ctx)
		return err
	}
}

// digestOptions are the digest's and alerts' options with what the daemon runs with:
// its calendar (patron day) and the flow catalog it loaded (SII cause descriptions).
func (d *Daemon) digestOptions() digest.Options {
	opts := digest.OptionsFromConfig(d.Config())
	opts.Calendar, opts.Catalog = d.Calendar(), d.Catalog()
	return opts
}

// SendDigestNow queues the digest for today (once per day: a second call the same day
// queues nothing) and flushes the mail outbox. The digest's build refreshes the
// deadlines first (the deadline job's code), so it never reports those of the job's
// last run.
func (d *Daemon) SendDigestNow(ctx context.Context) error {
	d.mu.RLock()
	sender := d.sender
	d.mu.RUnlock()
	opts := d.digestOptions()
	opts.Log = d.Log.With("component", "digest")
	if len(opts.To) == 0 {
		// `cmord check` warns about this; the digest stays available with --preview.
		d.Log.Info("digest not sent: no recipients in [digest] to")
		return nil
	}
	if _, err := digest.Send(ctx, d.Store, sender, opts, d.now()); err != nil {
		return err
	}
	_, err := d.FlushMail(ctx)
	return err
}
