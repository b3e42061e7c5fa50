package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Missed-slot policies.
const (
	MissedSkip    = "skip"     // record missed slots as skipped and raise a "missed" event
	MissedRunOnce = "run_once" // run once for the latest missed slot, record the older ones skipped
)

// Event kinds passed to the onEvent callback; the daemon turns them into exceptions.
const (
	EventMissed      = "missed"      // slots passed while the daemon was down (or asleep)
	EventOverlap     = "overlap"     // a slot came while the previous run was still going
	EventFailed      = "failed"      // the job returned an error
	EventPanic       = "panic"       // the job panicked (recovered)
	EventInterrupted = "interrupted" // a run was in progress when the previous process died
	EventDone        = "done"        // a run completed without error (what resolves earlier misses)
)

// Skip reasons stored in the ledger.
const (
	ReasonMissed       = "missed while down"
	ReasonStillRunning = "still running"
)

// DefaultGrace is how late a slot may be noticed and still run on time (a restart at
// 07:30:20 still runs the 07:30 digest, whatever the missed policy).
const DefaultGrace = time.Minute

// maxSleep bounds one sleep of the loop: timers count monotonic time, which stops
// while the machine is suspended (a VM paused, snapshotted or migrated) and ignores a
// step of the wall clock (NTP correcting a clock that started hours behind), while slots
// are wall-clock times. A loop asleep until a slot hours away would wake that much
// late and run the digest hours after its time with nothing said (run_once has no
// slot to skip). Waking at least this often, the loop reads the wall clock again and
// runs a slot within maxSleep of it, well inside DefaultGrace.
const maxSleep = 20 * time.Second

// maxMissed bounds how many missed slots are recorded for one job (a minutely job down
// for a month would otherwise write 43,200 rows); the newest are kept.
const maxMissed = 1000

// Job is one periodic task.
type Job struct {
	Name   string
	Spec   string        // standard 5-field cron spec, @daily, @every 5m, CRON_TZ=...
	Missed string        // MissedSkip (default) or MissedRunOnce
	Grace  time.Duration // 0 = DefaultGrace
	// Run does the work for one slot (the slot's UTC instant, shown in Rome). ctx is
	// cancelled by Scheduler.Stop.
	Run func(ctx context.Context, slot time.Time) error
}

// Event reports something the daemon must surface (as an exception, in the digest).
type Event struct {
	Kind  string
	Job   string
	Slots []time.Time
	Err   error
}

// Ledger persists runs; archive.ScheduleLedger implements it. Slots are UTC instants.
type Ledger interface {
	// LastSlot is the latest scheduled (non-manual) slot recorded for job, in any state.
	LastSlot(ctx context.Context, job string) (time.Time, bool, error)
	// Begin records slot as running; false if the slot already ran or is running.
	Begin(ctx context.Context, job string, slot time.Time, manual bool) (bool, error)
	// Finish records the outcome of a begun slot (err nil = ok).
	Finish(ctx context.Context, job string, slot time.Time, err error) error
	// Skipped records slots that did not run and why.
	Skipped(ctx context.Context, job string, slots []time.Time, reason string) error
}

// InterruptRecoverer is optionally implemented by a Ledger: it marks runs left
// "running" by a dead process as failed and returns them per job.
type InterruptRecoverer interface {
	MarkInterrupted(ctx context.Context) (map[string][]time.Time, error)
}

// ErrRunning is returned by RunNow when the job is already running.
var ErrRunning = errors.New("sched: job is still running")

// Entry is a job's status for `cmord status`.
type Entry struct {
	Name    string
	Spec    string
	Next    time.Time // in the schedule's zone
	Running bool
}

type entry struct {
	job     Job
	sched   *Schedule
	next    time.Time
	running atomic.Bool
}

// Scheduler runs jobs on their slots.
type Scheduler struct {
	loc     *time.Location
	ledger  Ledger
	log     *slog.Logger
	onEvent func(Event)
	clock   Clock

	mu      sync.Mutex
	jobs    map[string]*entry
	order   []string
	started bool

	bg        context.Context // ledger writes: not cancelled by Stop
	runCtx    context.Context // passed to jobs, cancelled by Stop
	cancelRun context.CancelFunc
	wake      chan struct{}
	stop      chan struct{}
	loopDone  chan struct{}
	wg        sync.WaitGroup
	beat      atomic.Pointer[time.Time] // when the loop last went round (Stalled)
}

// Stalled reports whether the loop has not gone round for after (it wakes at least
// every maxSleep), and since when: it is held (a ledger write that never returns,
// an event callback that blocks), so no job is started. False before Start and
// after Stop.
func (s *Scheduler) Stalled(after time.Duration) (time.Time, bool) {
	b := s.beat.Load() // never s.mu: a wedged loop may hold it
	if b == nil {
		return time.Time{}, false
	}
	return *b, s.clock.Now().Sub(*b) >= after
}

// New returns a scheduler reading specs in loc (nil = Europe/Rome). onEvent is called
// from the scheduler's goroutines, sometimes under its lock: it must not call back into
// the Scheduler synchronously (record the event and return).
func New(loc *time.Location, ledger Ledger, log *slog.Logger, onEvent func(Event)) *Scheduler {
	if loc == nil {
		loc = defaultLocation()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	return &Scheduler{loc: loc, ledger: ledger, log: log, onEvent: onEvent, clock: RealClock{},
		jobs: map[string]*entry{}, wake: make(chan struct{}, 1)}
}

// UseClock replaces the wall clock (tests); call before Start.
func (s *Scheduler) UseClock(c Clock) { s.clock = c }

// Add registers a job; it may be called before or after Start.
func (s *Scheduler) Add(j Job) error {
	if j.Name == "" || j.Run == nil {
		return fmt.Errorf("sched: job needs a name and a Run func")
	}
	switch j.Missed {
	case "":
		j.Missed = MissedSkip
	case MissedSkip, MissedRunOnce:
	default:
		return fmt.Errorf("sched: job %s: missed policy %q: want %q or %q", j.Name, j.Missed, MissedSkip, MissedRunOnce)
	}
	if j.Grace <= 0 {
		j.Grace = DefaultGrace
	}
	sc, err := Parse(j.Spec, s.loc)
	if err != nil {
		return fmt.Errorf("sched: job %s: %w", j.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.jobs[j.Name]; dup {
		return fmt.Errorf("sched: job %s added twice", j.Name)
	}
	e := &entry{job: j, sched: sc}
	s.jobs[j.Name] = e
	s.order = append(s.order, j.Name)
	if s.started {
		now := s.clock.Now()
		s.catchUpLocked(e, now)
		e.next = sc.Next(now)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Start recovers interrupted runs, handles slots missed while down, and starts the loop.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	s.bg = context.WithoutCancel(ctx)
	s.runCtx, s.cancelRun = context.WithCancel(ctx)
	s.stop, s.loopDone = make(chan struct{}), make(chan struct{})
	if ir, ok := s.ledger.(InterruptRecoverer); ok {
		lost, err := ir.MarkInterrupted(s.bg)
		if err != nil {
			s.log.Error("schedule ledger: recover interrupted runs", "err", err)
		}
		for job, slots := range lost {
			s.log.Warn("job was interrupted by a restart", "job", job, "slots", len(slots))
			s.onEvent(Event{Kind: EventInterrupted, Job: job, Slots: slots})
		}
	}
	now := s.clock.Now()
	for _, name := range s.order {
		e := s.jobs[name]
		s.catchUpLocked(e, now)
		e.next = e.sched.Next(now)
	}
	go s.loop()
}

// catchUpLocked applies the missed policy to the slots between the ledger's last slot
// and now. A job never run before has missed nothing.
func (s *Scheduler) catchUpLocked(e *entry, now time.Time) {
	last, ok, err := s.ledger.LastSlot(s.bg, e.job.Name)
	if err != nil {
		s.log.Error("schedule ledger: last slot", "job", e.job.Name, "err", err)
		return
	}
	if !ok {
		return
	}
	s.handleDue(s.runCtx, e, e.sched.Between(last, now, maxMissed), now, false, false)
}

func (s *Scheduler) loop() {
	defer close(s.loopDone)
	defer s.beat.Store(nil)
	for {
		beat := s.clock.Now()
		s.beat.Store(&beat)
		s.mu.Lock()
		var next time.Time
		for _, name := range s.order {
			if n := s.jobs[name].next; !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
		}
		s.mu.Unlock()
		// Never asleep longer than maxSleep, even with no job due: the loop's beat
		// (Stalled) must go on.
		wait := maxSleep
		if !next.IsZero() {
			wait = min(next.Sub(s.clock.Now()), maxSleep)
		}
		timer := s.clock.NewTimer(wait)
		fire := timer.C()
		select {
		case <-s.stop:
			timer.Stop()
			return
		case <-s.wake:
			timer.Stop()
			continue
		case <-fire:
		}
		s.mu.Lock()
		now := s.clock.Now()
		for _, name := range s.order {
			e := s.jobs[name]
			if e.next.IsZero() || e.next.After(now) {
				continue
			}
			// Normally exactly one slot is due; more if the machine slept or the loop
			// was held up, and then the missed policy decides.
			due := append([]time.Time{e.next}, e.sched.Between(e.next, now, maxMissed)...)
			s.handleDue(s.runCtx, e, due, now, false, false)
			e.next = e.sched.Next(now)
		}
		s.mu.Unlock()
	}
}

// handleDue runs the latest due slot (if on time, or if the policy or force says so) and
// records the others as skipped. wait runs the job synchronously.
func (s *Scheduler) handleDue(ctx context.Context, e *entry, due []time.Time, now time.Time, force, wait bool) error {
	if len(due) == 0 {
		return nil
	}
	latest := due[len(due)-1]
	skipped := due[:len(due)-1]
	run := force || e.job.Missed == MissedRunOnce || now.Sub(latest) <= e.job.Grace
	if !run {
		skipped = due
	}
	if len(skipped) > 0 {
		if err := s.ledger.Skipped(s.bg, e.job.Name, skipped, ReasonMissed); err != nil {
			s.log.Error("schedule ledger: record skipped", "job", e.job.Name, "err", err)
		}
		s.log.Warn("missed job slots", "job", e.job.Name, "count", len(skipped),
			"first", skipped[0].In(e.sched.loc), "last", skipped[len(skipped)-1].In(e.sched.loc), "policy", e.job.Missed)
		s.onEvent(Event{Kind: EventMissed, Job: e.job.Name, Slots: append([]time.Time(nil), skipped...)})
	}
	if !run {
		return nil
	}
	return s.fire(ctx, e, latest, false, wait)
}

// fire starts one run of slot unless the job is still running or the slot already ran.
func (s *Scheduler) fire(ctx context.Context, e *entry, slot time.Time, manual, wait bool) error {
	name := e.job.Name
	if !e.running.CompareAndSwap(false, true) {
		if manual {
			return ErrRunning
		}
		if err := s.ledger.Skipped(s.bg, name, []time.Time{slot}, ReasonStillRunning); err != nil {
			s.log.Error("schedule ledger: record skipped", "job", name, "err", err)
		}
		s.log.Warn("job still running, slot skipped", "job", name, "slot", slot.In(e.sched.loc))
		s.onEvent(Event{Kind: EventOverlap, Job: name, Slots: []time.Time{slot}})
		return nil
	}
	ok, err := s.ledger.Begin(s.bg, name, slot, manual)
	if err != nil || !ok {
		e.running.Store(false)
		if err != nil {
			s.log.Error("schedule ledger: begin", "job", name, "err", err)
			return fmt.Errorf("sched: job %s: %w", name, err)
		}
		s.log.Debug("slot already ran", "job", name, "slot", slot.In(e.sched.loc))
		return nil
	}
	run := func() error {
		defer e.running.Store(false)
		start := s.clock.Now()
		err := s.invoke(ctx, e, slot)
		if ferr := s.ledger.Finish(s.bg, name, slot, err); ferr != nil {
			s.log.Error("schedule ledger: finish", "job", name, "err", ferr)
		}
		if err != nil {
			s.log.Error("job failed", "job", name, "slot", slot.In(e.sched.loc), "err", err)
		} else {
			s.log.Info("job done", "job", name, "slot", slot.In(e.sched.loc), "took", s.clock.Now().Sub(start))
		}
		return err
	}
	if wait {
		return run()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = run()
	}()
	return nil
}

// panicError marks a recovered panic.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

func (s *Scheduler) invoke(ctx context.Context, e *entry, slot time.Time) (err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &panicError{value: v, stack: debug.Stack()}
			s.log.Error("job panicked", "job", e.job.Name, "panic", fmt.Sprint(v), "stack", string(pe.stack))
			s.onEvent(Event{Kind: EventPanic, Job: e.job.Name, Slots: []time.Time{slot}, Err: pe})
			err = pe
		}
	}()
	err = e.job.Run(ctx, slot.In(e.sched.loc))
	if err != nil {
		s.onEvent(Event{Kind: EventFailed, Job: e.job.Name, Slots: []time.Time{slot}, Err: err})
	} else {
		s.onEvent(Event{Kind: EventDone, Job: e.job.Name, Slots: []time.Time{slot}})
	}
	return err
}

// RunNow runs a job at once, synchronously, as a manual run (recorded in the ledger but
// not counted as a scheduled slot). It refuses if the job is running.
func (s *Scheduler) RunNow(ctx context.Context, name string) error {
	s.mu.Lock()
	e, ok := s.jobs[name]
	if s.bg == nil {
		s.bg = context.WithoutCancel(ctx)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("sched: no job %q", name)
	}
	return s.fire(ctx, e, s.clock.Now(), true, true)
}

// RunDue runs, synchronously, every job whose latest slot up to now has not run yet
// (for `cmord run --once`): older missed slots are recorded skipped and reported; a job
// never run before runs for its latest slot.
func (s *Scheduler) RunDue(ctx context.Context) error {
	s.mu.Lock()
	if s.bg == nil {
		s.bg = context.WithoutCancel(ctx)
	}
	entries := make([]*entry, 0, len(s.order))
	for _, name := range s.order {
		entries = append(entries, s.jobs[name])
	}
	s.mu.Unlock()
	var errs []error
	now := s.clock.Now()
	for _, e := range entries {
		last, ok, err := s.ledger.LastSlot(s.bg, e.job.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("sched: job %s: %w", e.job.Name, err))
			continue
		}
		var due []time.Time
		if ok {
			due = e.sched.Between(last, now, maxMissed)
		} else if p := e.sched.Prev(now); !p.IsZero() {
			due = []time.Time{p}
		}
		if err := s.handleDue(ctx, e, due, now, true, true); err != nil {
			errs = append(errs, fmt.Errorf("sched: job %s: %w", e.job.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Stop stops scheduling, cancels the running jobs' context and returns a context that
// is done when they have returned; the caller bounds the wait.
func (s *Scheduler) Stop() context.Context {
	s.mu.Lock()
	started := s.started
	s.started = false
	s.mu.Unlock()
	if started {
		close(s.stop)
		<-s.loopDone
		s.cancelRun()
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		s.wg.Wait()
		cancel()
	}()
	return ctx
}

// Entries returns the jobs with their next slot, in the order they were added.
func (s *Scheduler) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	out := make([]Entry, 0, len(s.order))
	for _, name := range s.order {
		e := s.jobs[name]
		next := e.next
		if next.IsZero() || !s.started {
			next = e.sched.Next(now)
		}
		if !next.IsZero() {
			next = next.In(e.sched.loc)
		}
		out = append(out, Entry{Name: name, Spec: e.job.Spec, Next: next, Running: e.running.Load()})
	}
	return out
}
