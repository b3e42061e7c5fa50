package daemon

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/sched"
	"github.com/cmord/cmord/flows"
)

// A scheduled job that keeps returning an error, panicking, or hanging (a run still
// going when its next slots come) is a stall no other exception names (deadlines not
// computed, no urgent alert queued, the weekly verify not done): after jobFailingRuns
// consecutive failed runs or skipped slots (one for a job that runs less often than
// hourly) it raises missed_schedule (high, sysadmin) with the latest error, and
// /healthz reports it, since the alert about it may be the very thing that is
// failing. The next successful run resolves it and clears /healthz.
//
// The transport jobs' errors and overlaps (not their panics) are left out: their own
// exceptions and thresholds (sii_unreachable after unreachable_alert_after,
// sftp_stalled and /healthz's wedged operation after op_timeout, upload_failed) say
// it, so that a planned SII outage or a long transfer raises no alarm early.
const jobFailingRuns = 3

// jobFailingExempt are the jobs whose failures are reported by their own exceptions.
var jobFailingExempt = map[string]bool{JobPollSII: true, JobDeliver: true}

// jobFailure is the run of consecutive failures of one job.
type jobFailure struct {
	runs  int
	since time.Time
	err   string
}

// jobFailures tracks the jobs currently failing (guarded by its mutex).
type jobFailures struct {
	mu   sync.Mutex
	jobs map[string]jobFailure
}

// failingFingerprint is the exception of a job that keeps failing.
func failingFingerprint(job string) string { return "missed_schedule|" + job + "|failing" }

// jobFailed counts a failed run of ev.Job and, at the threshold, raises the exception
// (again at each later failure, with the latest error and the count bumped).
func (d *Daemon) jobFailed(ev sched.Event) {
	if ev.Kind != sched.EventPanic && jobFailingExempt[ev.Job] {
		return
	}
	msg := "unknown error"
	if ev.Err != nil {
		msg = ev.Err.Error()
	}
	switch ev.Kind {
	case sched.EventPanic:
		msg = "internal error (panic): " + msg
	case sched.EventOverlap:
		msg = "still running at its next slot " + slotList(ev.Slots) + " (slot skipped): the run hangs"
	}
	d.failing.mu.Lock()
	if d.failing.jobs == nil {
		d.failing.jobs = map[string]jobFailure{}
	}
	f := d.failing.jobs[ev.Job]
	if f.runs == 0 {
		f.since = d.now()
	}
	f.runs++
	f.err = msg
	d.failing.jobs[ev.Job] = f
	d.failing.mu.Unlock()
	if f.runs < d.failingThreshold(ev.Job) {
		return
	}
	d.raise(context.Background(), archive.Exception{Kind: "missed_schedule", Severity: archive.SevHigh, Owner: "sysadmin",
		Fingerprint: failingFingerprint(ev.Job), Subject: ev.Job,
		Message: fmt.Sprintf("job %s: %d consecutive runs failed or hung since %s; latest: %s", ev.Job, f.runs,
			f.since.In(flows.Rome).Format("02/01/2006 15:04"), msg),
		Action: "Read the daemon's log for the job's error and fix its cause (disk, database, configuration); the job's next successful run resolves this."})
	d.missedOpen.Store(ev.Job, true)
}

// jobSucceeded ends a run of failures of job.
func (d *Daemon) jobSucceeded(job string) {
	d.failing.mu.Lock()
	delete(d.failing.jobs, job)
	d.failing.mu.Unlock()
}

// failingThreshold is how many consecutive failed runs of job make an alarm: one for
// a job that runs less often than hourly (the next try is far), jobFailingRuns else.
func (d *Daemon) failingThreshold(job string) int {
	spec, _ := d.jobSpec(job)
	if p := jobPeriod(spec, d.Config().Location); p > 0 && p <= time.Hour {
		return jobFailingRuns
	}
	return 1
}

// failingHealth is nil unless a job has failed its threshold of consecutive runs.
func (d *Daemon) failingHealth() error {
	d.failing.mu.Lock()
	defer d.failing.mu.Unlock()
	var bad []string
	for job, f := range d.failing.jobs {
		if f.runs >= d.failingThreshold(job) {
			bad = append(bad, fmt.Sprintf("job %s: %d consecutive runs failed or hung since %s: %s", job, f.runs,
				f.since.In(flows.Rome).Format("02/01/2006 15:04"), f.err))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("%s", strings.Join(bad, "; "))
}
