package daemon

import (
	"context"
	"time"
)

// countScheduleRun counts a job's successful runs in cmord_schedule_runs_total{status="ok"};
// failures, panics, missed and overlapping slots are counted from the scheduler's
// events (schedEvent), so a dashboard sees every outcome, not only the problems.
func (d *Daemon) countScheduleRun(job string, run func(ctx context.Context, slot time.Time) error) func(ctx context.Context, slot time.Time) error {
	return func(ctx context.Context, slot time.Time) error {
		err := run(ctx, slot)
		if err == nil {
			d.Metrics.ScheduleRuns.WithLabelValues(job, "ok").Inc()
		}
		return err
	}
}
