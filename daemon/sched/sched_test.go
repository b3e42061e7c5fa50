package sched

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// harness drives a Scheduler on a FakeClock against the real SQLite ledger.
type harness struct {
	t      *testing.T
	store  *archive.Store
	ledger *archive.ScheduleLedger
	clock  *FakeClock
	s      *Scheduler

	mu     sync.Mutex
	runs   map[string][]time.Time
	events []Event
}

func newHarness(t *testing.T, dir string, now time.Time) *harness {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := archive.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, store: st, ledger: st.ScheduleLedger(), clock: NewFakeClock(now), runs: map[string][]time.Time{}}
	h.s = New(nil, h.ledger, slog.New(slog.DiscardHandler), func(e Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	})
	h.s.UseClock(h.clock)
	return h
}

// record returns a job body that remembers its slots.
func (h *harness) record(name string) func(context.Context, time.Time) error {
	return func(_ context.Context, slot time.Time) error {
		h.mu.Lock()
		h.runs[name] = append(h.runs[name], slot)
		h.mu.Unlock()
		return nil
	}
}

func (h *harness) add(j Job) {
	h.t.Helper()
	if j.Run == nil {
		j.Run = h.record(j.Name)
	}
	if err := h.s.Add(j); err != nil {
		h.t.Fatal(err)
	}
}

// settle waits until the loop is asleep on a timer and no job is running.
func (h *harness) settle() {
	done := make(chan struct{})
	go func() {
		h.clock.WaitTimer(nil)
		h.s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a guard against a hang, not a timing assumption
		h.t.Fatal("scheduler did not settle")
	}
}

// runUntil advances the fake clock timer by timer up to end.
func (h *harness) runUntil(end time.Time) {
	for {
		h.settle()
		next, ok := h.clock.NextTimer()
		if !ok || next.After(end) {
			h.clock.Set(end)
			return
		}
		h.clock.Set(next)
	}
}

func (h *harness) slots(name string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.runs[name]...)
}

func (h *harness) eventsOf(kind string) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) stop() {
	h.t.Helper()
	ctx := h.s.Stop()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		h.t.Fatal("Stop did not finish")
	}
}

func rome(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, flows.Rome)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSchedulerOncePerSlotAcrossDST(t *testing.T) {
	tests := []struct {
		name  string
		spec  string
		from  string
		to    string
		want  []string // UTC
		count int
	}{
		{"daily 02:30 on fall-back 2025", "30 2 * * *", "2025-10-25 12:00", "2025-10-26 23:59",
			[]string{"2025-10-26T00:30:00Z"}, 1},
		{"daily 02:30 on fall-back 2026", "30 2 * * *", "2026-10-24 12:00", "2026-10-25 23:59",
			[]string{"2026-10-25T00:30:00Z"}, 1},
		{"daily 02:30 on spring-forward 2025", "30 2 * * *", "2025-03-29 12:00", "2025-03-30 23:59",
			[]string{"2025-03-30T01:00:00Z"}, 1},
		{"daily 02:30 on spring-forward 2026", "30 2 * * *", "2026-03-28 12:00", "2026-03-29 23:59",
			[]string{"2026-03-29T01:00:00Z"}, 1},
		{"daily across both weeks", "30 2 * * *", "2025-10-20 12:00", "2025-11-02 12:00", nil, 13},
		{"hourly on fall-back day", "0 * * * *", "2025-10-25 23:30", "2025-10-26 23:30", nil, 25},
		{"hourly on spring-forward day", "0 * * * *", "2025-03-29 23:30", "2025-03-30 23:30", nil, 23},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", rome(tt.from))
			h.add(Job{Name: "j", Spec: tt.spec})
			h.s.Start(context.Background())
			h.runUntil(rome(tt.to))
			h.stop()
			got := h.slots("j")
			if len(got) != tt.count {
				t.Fatalf("%d runs, want %d: %v", len(got), tt.count, got)
			}
			for i, w := range tt.want {
				if !got[i].Equal(utc(w)) {
					t.Errorf("run %d at %s, want %s", i, got[i].UTC(), w)
				}
			}
			runs, err := h.ledger.ScheduleRuns(context.Background(), "j", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				if r.State != "ok" {
					t.Errorf("ledger %s state %s", r.Slot, r.State)
				}
			}
			if len(runs) != tt.count {
				t.Errorf("ledger has %d rows, want %d", len(runs), tt.count)
			}
		})
	}
}

func TestMissedSlotsPolicies(t *testing.T) {
	tests := []struct {
		name        string
		policy      string
		restartAt   string
		wantRuns    []string // UTC of the slot that ran
		wantSkipped int
	}{
		{"run_once runs the latest, skips older", MissedRunOnce, "2025-06-04 09:00", []string{"2025-06-04T05:30:00Z"}, 2},
		{"skip records all as skipped", MissedSkip, "2025-06-04 09:00", nil, 3},
		{"skip still runs a slot within the grace period", MissedSkip, "2025-06-04 07:30", []string{"2025-06-04T05:30:00Z"}, 2},
		{"nothing missed", MissedSkip, "2025-06-01 09:00", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// First life: the 2025-06-01 07:30 slot runs, then the process dies.
			h1 := newHarness(t, dir, rome("2025-06-01 07:00"))
			h1.add(Job{Name: "digest", Spec: "30 7 * * *", Missed: tt.policy})
			h1.s.Start(context.Background())
			h1.runUntil(rome("2025-06-01 08:00"))
			h1.stop()
			h1.store.Close()

			h := newHarness(t, dir, rome(tt.restartAt))
			h.add(Job{Name: "digest", Spec: "30 7 * * *", Missed: tt.policy})
			h.s.Start(context.Background())
			h.settle()
			h.stop()
			got := h.slots("digest")
			if len(got) != len(tt.wantRuns) {
				t.Fatalf("runs %v, want %v", got, tt.wantRuns)
			}
			for i, w := range tt.wantRuns {
				if !got[i].Equal(utc(w)) {
					t.Errorf("ran %s, want %s", got[i].UTC(), w)
				}
			}
			missed := h.eventsOf(EventMissed)
			n := 0
			for _, e := range missed {
				n += len(e.Slots)
			}
			if n != tt.wantSkipped {
				t.Errorf("missed events cover %d slots, want %d", n, tt.wantSkipped)
			}
			runs, _ := h.ledger.ScheduleRuns(context.Background(), "digest", 0)
			skipped := 0
			for _, r := range runs {
				if r.State == "skipped" {
					skipped++
					if r.Error != ReasonMissed {
						t.Errorf("skip reason %q", r.Error)
					}
				}
			}
			if skipped != tt.wantSkipped {
				t.Errorf("ledger skipped rows = %d, want %d", skipped, tt.wantSkipped)
			}
		})
	}
}

// A restart in the same minute as a slot that already ran does not run it again.
func TestRestartDoesNotRerunSlot(t *testing.T) {
	dir := t.TempDir()
	h1 := newHarness(t, dir, utc("2025-10-26T00:00:00Z")) // 02:00 CEST
	h1.add(Job{Name: "j", Spec: "30 2 * * *"})
	h1.s.Start(context.Background())
	h1.runUntil(utc("2025-10-26T00:31:00Z")) // 02:31 CEST
	h1.stop()
	h1.store.Close()
	if n := len(h1.slots("j")); n != 1 {
		t.Fatalf("first life ran %d", n)
	}
	// Restart an hour later, at 02:31 CET: the wall clock is back to 02:31.
	h := newHarness(t, dir, utc("2025-10-26T01:31:00Z"))
	h.add(Job{Name: "j", Spec: "30 2 * * *", Missed: MissedRunOnce})
	h.s.Start(context.Background())
	h.runUntil(rome("2025-10-26 12:00"))
	h.stop()
	if got := h.slots("j"); len(got) != 0 {
		t.Errorf("second life re-ran %v", got)
	}
	if len(h.eventsOf(EventMissed)) != 0 {
		t.Errorf("unexpected missed events %v", h.events)
	}
}

// Two schedulers on one ledger (say a stale process and a new one) run a slot once.
func TestLedgerDedupesConcurrentSchedulers(t *testing.T) {
	dir := t.TempDir()
	h1 := newHarness(t, dir, rome("2025-06-01 07:29"))
	h2 := newHarness(t, dir, rome("2025-06-01 07:29"))
	h1.add(Job{Name: "j", Spec: "30 7 * * *"})
	h2.add(Job{Name: "j", Spec: "30 7 * * *"})
	h1.s.Start(context.Background())
	h2.s.Start(context.Background())
	h1.runUntil(rome("2025-06-01 07:31"))
	h2.runUntil(rome("2025-06-01 07:31"))
	h1.stop()
	h2.stop()
	if n := len(h1.slots("j")) + len(h2.slots("j")); n != 1 {
		t.Errorf("slot ran %d times", n)
	}
}

// TestDoneEventPerCompletedRun: a run that returns nil is reported (EventDone, with
// its slot): what resolves the misses of the job before it.
func TestDoneEventPerCompletedRun(t *testing.T) {
	h := newHarness(t, "", rome("2025-06-01 06:59"))
	h.add(Job{Name: "ok", Spec: "0 * * * *", Run: func(context.Context, time.Time) error { return nil }})
	h.s.Start(context.Background())
	h.runUntil(rome("2025-06-01 08:30"))
	h.stop()
	done := h.eventsOf(EventDone)
	if len(done) != 2 || done[0].Job != "ok" || !done[0].Slots[0].Equal(rome("2025-06-01 07:00")) || !done[1].Slots[0].Equal(rome("2025-06-01 08:00")) {
		t.Errorf("done events %+v, want 07:00 and 08:00", done)
	}
}

func TestPanicIsRecoveredAndRecorded(t *testing.T) {
	h := newHarness(t, "", rome("2025-06-01 06:59"))
	calls := 0
	h.add(Job{Name: "p", Spec: "0 * * * *", Run: func(context.Context, time.Time) error {
		calls++
		if calls == 1 {
			panic("boom")
		}
		return errors.New("plain failure")
	}})
	h.s.Start(context.Background())
	h.runUntil(rome("2025-06-01 08:30"))
	h.stop()
	if calls != 2 {
		t.Fatalf("calls = %d, want 2 (scheduler survives the panic)", calls)
	}
	if len(h.eventsOf(EventPanic)) != 1 || len(h.eventsOf(EventFailed)) != 1 || len(h.eventsOf(EventDone)) != 0 {
		t.Errorf("events %+v", h.events)
	}
	runs, _ := h.ledger.ScheduleRuns(context.Background(), "p", 0)
	if len(runs) != 2 || runs[1].State != "failed" || runs[1].Error != "panic: boom" || runs[0].Error != "plain failure" {
		t.Errorf("ledger %+v", runs)
	}
}

func TestStillRunningSlotIsSkipped(t *testing.T) {
	h := newHarness(t, "", rome("2025-06-01 06:59"))
	release := make(chan struct{})
	started := make(chan time.Time, 4)
	h.add(Job{Name: "slow", Spec: "0 * * * *", Run: func(_ context.Context, slot time.Time) error {
		started <- slot
		<-release
		return nil
	}})
	h.s.Start(context.Background())
	h.clock.WaitTimer(nil)
	h.clock.Set(rome("2025-06-01 07:00"))
	<-started
	h.clock.WaitTimer(nil)
	h.clock.Set(rome("2025-06-01 08:00")) // the 07:00 run is still going
	h.clock.WaitTimer(nil)
	close(release)
	h.settle()
	h.stop()
	if len(started) != 0 {
		t.Errorf("the 08:00 slot started while 07:00 was running")
	}
	if ev := h.eventsOf(EventOverlap); len(ev) != 1 || !ev[0].Slots[0].Equal(rome("2025-06-01 08:00")) {
		t.Errorf("overlap events %+v", ev)
	}
	runs, _ := h.ledger.ScheduleRuns(context.Background(), "slow", 0)
	if len(runs) != 2 || runs[0].State != "skipped" || runs[0].Error != ReasonStillRunning || runs[1].State != "ok" {
		t.Errorf("ledger %+v", runs)
	}
}

func TestStopCancelsJobsAndWaits(t *testing.T) {
	h := newHarness(t, "", rome("2025-06-01 06:59"))
	started := make(chan struct{})
	var finished bool
	h.add(Job{Name: "long", Spec: "0 7 * * *", Run: func(ctx context.Context, _ time.Time) error {
		close(started)
		<-ctx.Done()
		finished = true
		return ctx.Err()
	}})
	h.s.Start(context.Background())
	h.clock.WaitTimer(nil)
	h.clock.Set(rome("2025-06-01 07:00"))
	<-started
	h.stop()
	if !finished {
		t.Fatal("Stop returned before the job did")
	}
	runs, _ := h.ledger.ScheduleRuns(context.Background(), "long", 0)
	if len(runs) != 1 || runs[0].State != "failed" || runs[0].Error != context.Canceled.Error() {
		t.Errorf("ledger %+v", runs)
	}
}

func TestInterruptedRunIsReported(t *testing.T) {
	dir := t.TempDir()
	h1 := newHarness(t, dir, rome("2025-06-01 07:00"))
	if ok, err := h1.ledger.Begin(context.Background(), "j", rome("2025-06-01 07:00"), false); !ok || err != nil {
		t.Fatal(ok, err)
	}
	h1.store.Close() // the process dies mid-run

	h := newHarness(t, dir, rome("2025-06-01 07:05"))
	h.add(Job{Name: "j", Spec: "0 * * * *"})
	h.s.Start(context.Background())
	h.settle()
	h.stop()
	if ev := h.eventsOf(EventInterrupted); len(ev) != 1 || ev[0].Job != "j" {
		t.Errorf("events %+v", h.events)
	}
	runs, _ := h.ledger.ScheduleRuns(context.Background(), "j", 0)
	if len(runs) != 1 || runs[0].State != "failed" || runs[0].Error != "interrupted by restart" {
		t.Errorf("ledger %+v", runs)
	}
	if len(h.slots("j")) != 0 {
		t.Errorf("interrupted slot re-ran")
	}
}

func TestRunNowAndRunDue(t *testing.T) {
	h := newHarness(t, "", rome("2025-06-03 09:00"))
	h.add(Job{Name: "digest", Spec: "30 7 * * *"})
	h.add(Job{Name: "poll", Spec: "*/10 * * * *"})
	ctx := context.Background()

	// --once on a fresh state: each job runs for its latest slot.
	if err := h.s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if d, p := h.slots("digest"), h.slots("poll"); len(d) != 1 || !d[0].Equal(rome("2025-06-03 07:30")) ||
		len(p) != 1 || !p[0].Equal(rome("2025-06-03 09:00")) {
		t.Fatalf("RunDue ran digest %v poll %v", d, p)
	}
	// Again at once: nothing due.
	if err := h.s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if len(h.slots("digest")) != 1 || len(h.slots("poll")) != 1 {
		t.Fatalf("second RunDue re-ran")
	}
	// A manual run does not move the scheduled slot accounting.
	h.clock.Set(rome("2025-06-05 10:00"))
	if err := h.s.RunNow(ctx, "digest"); err != nil {
		t.Fatal(err)
	}
	if last, _, _ := h.ledger.LastSlot(ctx, "digest"); !last.Equal(rome("2025-06-03 07:30")) {
		t.Errorf("LastSlot after manual run = %s", last)
	}
	if err := h.s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	d := h.slots("digest")
	if len(d) != 3 || !d[2].Equal(rome("2025-06-05 07:30")) {
		t.Errorf("digest runs %v", d)
	}
	if ev := h.eventsOf(EventMissed); len(ev) != 2 { // digest 06-04, poll's older slots
		t.Errorf("missed events %+v", ev)
	}
	if err := h.s.RunNow(ctx, "nope"); err == nil {
		t.Error("RunNow of unknown job accepted")
	}
}

func TestEntriesShowNextRunInRome(t *testing.T) {
	h := newHarness(t, "", rome("2025-10-25 12:00"))
	h.add(Job{Name: "digest", Spec: "30 2 * * *"})
	e := h.s.Entries()
	if len(e) != 1 || !e[0].Next.Equal(utc("2025-10-26T00:30:00Z")) || e[0].Next.Location() != flows.Rome {
		t.Errorf("entries %+v", e)
	}
	if err := h.s.Add(Job{Name: "digest", Spec: "* * * * *", Run: h.record("x")}); err == nil {
		t.Error("duplicate job accepted")
	}
	if err := h.s.Add(Job{Name: "bad", Spec: "* * * * *", Missed: "later", Run: h.record("x")}); err == nil {
		t.Error("bad policy accepted")
	}
}

func TestAddAfterStart(t *testing.T) {
	// 10 s before b's slot: the loop's sleep (maxSleep at most) ends after it.
	h := newHarness(t, "", rome("2025-06-01 06:59").Add(50*time.Second))
	h.add(Job{Name: "a", Spec: "0 8 * * *"})
	h.s.Start(context.Background())
	h.settle()
	h.add(Job{Name: "b", Spec: "0 7 * * *"}) // earlier than the loop's current timer
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if next, _ := h.clock.NextTimer(); next.Equal(rome("2025-06-01 07:00")) {
			break // the loop re-armed for b
		}
		if time.Now().After(deadline) {
			t.Fatal("loop did not re-arm after Add")
		}
	}
	h.runUntil(rome("2025-06-01 07:30"))
	h.stop()
	if got := h.slots("b"); len(got) != 1 || !got[0].Equal(rome("2025-06-01 07:00")) {
		t.Errorf("b ran %v", got)
	}
	if got := h.slots("a"); len(got) != 0 {
		t.Errorf("a ran %v", got)
	}
}

// steppedClock is a FakeClock whose wall time can be stepped without its timers
// noticing, as Go's timers (monotonic time) do not notice a suspend of the machine
// or an NTP step of the wall clock.
type steppedClock struct {
	*FakeClock // the monotonic time the timers count
	mu         sync.Mutex
	skew       time.Duration
}

func (c *steppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.FakeClock.Now().Add(c.skew)
}

func (c *steppedClock) step(d time.Duration) {
	c.mu.Lock()
	c.skew += d
	c.mu.Unlock()
}

// TestWallClockStepRunsOnTime: the wall clock jumps 3 hours ahead of the timers
// (the VM was paused, or NTP corrected a clock that booted behind) while the loop
// sleeps towards the 07:30 digest. The digest runs at 07:30 wall time, not 3 hours
// late with nothing said (run_once: no slot is skipped, so no missed event would tell).
func TestWallClockStepRunsOnTime(t *testing.T) {
	h := newHarness(t, "", rome("2025-06-01 03:00"))
	c := &steppedClock{FakeClock: h.clock}
	h.s.UseClock(c)
	var wallAt []time.Time
	h.add(Job{Name: "digest", Spec: "30 7 * * *", Missed: MissedRunOnce, Run: func(_ context.Context, slot time.Time) error {
		h.mu.Lock()
		h.runs["digest"] = append(h.runs["digest"], slot)
		wallAt = append(wallAt, c.Now())
		h.mu.Unlock()
		return nil
	}})
	h.s.Start(context.Background())
	h.settle()
	c.step(3 * time.Hour) // wall 06:00, the timers still at 03:00
	// 1h31m of the timers' time: wall 07:31.
	h.runUntil(rome("2025-06-01 04:31"))
	h.settle()
	h.stop()
	got := h.slots("digest")
	if len(got) != 1 || !got[0].Equal(rome("2025-06-01 07:30")) {
		t.Fatalf("digest ran for slots %v by wall 07:31, want the 07:30 slot", got)
	}
	if late := wallAt[0].Sub(rome("2025-06-01 07:30")); late < 0 || late > DefaultGrace {
		t.Errorf("digest ran at wall %s, %s after its slot", wallAt[0].In(flows.Rome).Format("15:04:05"), late)
	}
	if ev := h.eventsOf(EventMissed); len(ev) != 0 {
		t.Errorf("missed events %+v", ev)
	}
}

// blockingLedger holds Begin until release is closed: a ledger write that never
// returns.
type blockingLedger struct {
	Ledger
	entered, release chan struct{}
}

func (l *blockingLedger) Begin(ctx context.Context, job string, slot time.Time, manual bool) (bool, error) {
	close(l.entered)
	<-l.release
	return l.Ledger.Begin(ctx, job, slot, manual)
}

// TestStalledLoop: the loop held in a ledger write (under its lock) starts no job;
// Stalled says so once it has not gone round for the given time, and stops saying
// it once the loop goes round again. The daemon's watchdog and /healthz read it.
func TestStalledLoop(t *testing.T) {
	h := newHarness(t, "", rome("2025-06-01 06:59"))
	bl := &blockingLedger{Ledger: h.ledger, entered: make(chan struct{}), release: make(chan struct{})}
	h.s.ledger = bl
	h.add(Job{Name: "a", Spec: "0 7 * * *"})
	if _, stalled := h.s.Stalled(5 * time.Minute); stalled {
		t.Fatal("stalled before Start")
	}
	h.s.Start(context.Background())
	h.settle()
	h.clock.Set(rome("2025-06-01 07:00"))
	<-bl.entered
	if _, stalled := h.s.Stalled(5 * time.Minute); stalled {
		t.Fatal("stalled at once")
	}
	h.clock.Advance(6 * time.Minute)
	since, stalled := h.s.Stalled(5 * time.Minute)
	if !stalled || since.After(rome("2025-06-01 07:00")) {
		t.Fatalf("Stalled = %s, %v with the loop held 6 minutes", since, stalled)
	}
	close(bl.release)
	h.settle()
	if _, stalled := h.s.Stalled(5 * time.Minute); stalled {
		t.Error("still stalled once the loop went round")
	}
	h.stop()
	if _, stalled := h.s.Stalled(0); stalled {
		t.Error("stalled after Stop")
	}
}
