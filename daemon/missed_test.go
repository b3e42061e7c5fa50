package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/sched"
	"github.com/cmord/cmord/flows"
)

// schedRig runs the daemon's own jobs (d.jobs()) and event handler (d.schedEvent) on
// a scheduler driven by a fake clock: startGeneration's wiring, with time in hand.
type schedRig struct {
	t     *testing.T
	w     *excWorld
	clock *sched.FakeClock
	s     *sched.Scheduler
}

func newSchedRig(t *testing.T, start time.Time) *schedRig {
	w := newExcWorld(t)
	clock := sched.NewFakeClock(start)
	w.d.SetClock(clock.Now)
	return &schedRig{t: t, w: w, clock: clock}
}

// start is a daemon (re)start: a new scheduler on the same ledger.
func (r *schedRig) start() {
	r.t.Helper()
	r.s = sched.New(flows.Rome, r.w.d.Store.ScheduleLedger(), nil, r.w.d.schedEvent)
	r.s.UseClock(r.clock)
	for _, j := range r.w.d.jobs() {
		if err := r.s.Add(j); err != nil {
			r.t.Fatal(err)
		}
	}
	r.s.Start(context.Background())
}

// stop waits for the jobs in flight: a clean stop (a crash is a ledger left running).
func (r *schedRig) stop() {
	<-r.s.Stop().Done()
}

// ran records a completed run of job at slot, as a previous process would have.
func (r *schedRig) ran(job string, slot time.Time, finished bool) {
	r.t.Helper()
	l := r.w.d.Store.ScheduleLedger()
	if _, err := l.Begin(context.Background(), job, slot, false); err != nil {
		r.t.Fatal(err)
	}
	if finished {
		if err := l.Finish(context.Background(), job, slot, nil); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *schedRig) missed() (open, all []archive.Exception) {
	for _, e := range r.w.all("missed_schedule") {
		all = append(all, e)
		if e.Open() {
			open = append(open, e)
		}
	}
	return open, all
}

// TestMissedScheduleCoalescedAndResolved: after crashes and restarts, the every-minute
// jobs' missed and interrupted slots make one low-severity exception per job (not one
// per kind and restart, nothing left for a person), which the job's next successful
// run resolves by itself.
func TestMissedScheduleCoalescedAndResolved(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 30, 0, flows.Rome)
	r := newSchedRig(t, t0)
	// The previous process ran mail and alerts every minute until 09:20, and died
	// in the middle of alerts' 09:20 run.
	r.ran(JobMail, t0.Add(-40*time.Minute).Truncate(time.Minute), true)
	r.ran(JobAlerts, t0.Add(-41*time.Minute).Truncate(time.Minute), true)
	r.ran(JobAlerts, t0.Add(-40*time.Minute).Truncate(time.Minute), false)
	var seen []string // what each start raised, before the runs resolve it
	for i := 0; i < 3; i++ {
		r.start()
		r.stop() // the catch-up runs complete
		_, all := r.missed()
		for _, e := range all {
			seen = append(seen, e.Subject+": "+e.Message)
		}
		// Crash loop: killed in the middle of both jobs' next run, restarted 3 minutes on.
		r.clock.Advance(3 * time.Minute)
		slot := r.clock.Now().Add(-2 * time.Minute).Truncate(time.Minute)
		r.ran(JobMail, slot, false)
		r.ran(JobAlerts, slot, false)
	}
	r.start()
	r.stop()
	open, all := r.missed()
	if len(open) != 0 {
		t.Errorf("missed_schedule left open after the jobs ran again: %+v", open)
	}
	byJob := map[string]archive.Exception{}
	for _, e := range all {
		if _, dup := byJob[e.Subject]; dup {
			t.Errorf("two missed_schedule exceptions for job %s", e.Subject)
		}
		byJob[e.Subject] = e
	}
	for _, job := range []string{JobMail, JobAlerts} {
		e, ok := byJob[job]
		if !ok {
			t.Fatalf("no missed_schedule for %s; have %+v", job, all)
		}
		if e.Severity != archive.SevLow || e.Owner != "sysadmin" || e.Count < 7 {
			t.Errorf("%s: severity %s owner %s count %d; want low, sysadmin, bumped by each miss and interruption (7 or more)", job, e.Severity, e.Owner, e.Count)
		}
		if e.ResolvedBy != "auto" || !strings.Contains(e.Resolution, "completed") {
			t.Errorf("%s resolved by %q (%q), want automatically by the next run", job, e.ResolvedBy, e.Resolution)
		}
	}
	if len(all) != 2 {
		t.Errorf("%d missed_schedule exceptions, want 2 (mail, alerts): %+v", len(all), all)
	}
	// Compliance's digest does not list them: they healed by themselves.
	if kinds := digestKinds(t, r); kinds["missed_schedule"] != 0 {
		t.Errorf("the digest lists %d missed_schedule items after they closed by themselves", kinds["missed_schedule"])
	}
	if s := strings.Join(seen, "\n"); !strings.Contains(s, "mail: job mail: 39 slot(s) missed: 24/11/2026 09:21, 24/11/2026 09:22 … 24/11/2026 09:59") {
		t.Errorf("messages do not say what was missed:\n%s", s)
	}
}

// TestMissedDayForCompliance: a digest slot missed while the daemon was down for a
// whole day is a miss that matters (the day had no digest): one high exception for
// compliance naming the day, kept open. A build slot missed an hour before a restart
// that builds the same day, or a digest missed and caught up the same day, is not.
func TestMissedDayForCompliance(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 30, 0, flows.Rome) // Tuesday
	r := newSchedRig(t, t0)
	r.ran(JobDigest, time.Date(2026, 11, 22, 7, 30, 0, 0, flows.Rome), true) // Sunday's digest went out
	r.ran(JobBuild, time.Date(2026, 11, 24, 8, 0, 0, 0, flows.Rome), true)   // down since 08:00 today
	r.start()
	// The catch-up runs (digest of today, build of 10:00) complete.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok1, _ := r.w.d.Store.ScheduleLedger().RanBetween(context.Background(), JobDigest, t0.Add(-3*time.Hour), t0)
		ok2, _ := r.w.d.Store.ScheduleLedger().RanBetween(context.Background(), JobBuild, t0.Add(-time.Hour), t0)
		if ok1 && ok2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the catch-up runs of digest and build did not complete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.stop()
	open, _ := r.missed()
	var compliance []archive.Exception
	for _, e := range open {
		if e.Owner == "compliance" {
			compliance = append(compliance, e)
		} else {
			t.Errorf("still open after the job ran: %s %s", e.Subject, e.Message)
		}
	}
	if len(compliance) != 1 {
		t.Fatalf("want one compliance exception (Monday's digest), have %+v", compliance)
	}
	e := compliance[0]
	if kinds := digestKinds(t, r); kinds["missed_schedule"] != 1 {
		t.Errorf("the digest lists %d missed_schedule items, want the day without digest", kinds["missed_schedule"])
	}
	if e.Subject != JobDigest || e.Severity != archive.SevHigh || !strings.Contains(e.Message, "compliance digest of 23/11/2026 did not happen") ||
		!strings.Contains(e.Message, "23/11/2026 07:30") || !strings.Contains(e.Action, "cmord digest --send") {
		t.Errorf("exception %+v", e)
	}
}

// digestKinds counts the items of each kind in the digest compliance would receive
// (new, still open and resolved). Exceptions are resolved on the wall clock, so the
// digest is built just after it, covering the day before.
func digestKinds(t *testing.T, r *schedRig) map[string]int {
	t.Helper()
	d, err := digest.Build(context.Background(), r.w.d.Store, r.w.d.digestOptions(), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, list := range [][]digest.Item{d.New, d.StillOpen, d.Resolved} {
		for _, it := range list {
			out[it.Kind]++
		}
	}
	return out
}
