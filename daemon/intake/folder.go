package intake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmord/cmord/flows"
)

// Why a full scan runs; it decides whether files found by it are news worth an Event.
type scanReason int

const (
	scanNone      scanReason = iota
	scanStartup              // first scan
	scanPoll                 // polling mode
	scanPeriodic             // the safety-net rescan in notify mode
	scanForced               // after overflow or watcher error
	scanRequested            // Watcher.Rescan
)

// maxWatchedFinished bounds the finished files watched for growth at once.
const maxWatchedFinished = 10000

// maxHints bounds the names remembered between two wakes of a busy folder; past it
// the folder is simply rescanned.
const maxHints = 4096

// candidate is a file in the drop folder not yet claimed.
type candidate struct {
	info      fs.FileInfo // the last Lstat: the file a claim must find (device and inode)
	size      int64
	mtime     time.Time
	changed   time.Time // when we last saw size or mtime differ (or first saw the file)
	firstSeen time.Time
	// due is when to evaluate the file next; zero means "only on a hint or scan"
	// (done-marker mode without a marker).
	due              time.Time
	unstableReported bool
	waitLogged       bool // re-delivery waiting for .inprogress/NAME, logged once
	claimFailures    int
}

// inflight is a claimed file awaiting a retry.
type inflight struct {
	c   Claimed
	due time.Time
	// outcome is set when processing finished but the move to done/rejected failed:
	// only the move is retried, never the processing.
	outcome *Outcome
}

// finished is a file moved to done/ or rejected/, watched for a while: a writer
// that was not done (settle shorter than its pauses) goes on appending to the same
// inode, now under done/ or rejected/, and that rest must not go unnoticed.
type finished struct {
	c     Claimed
	size  int64
	mtime time.Time
	next  time.Time
	every time.Duration
	until time.Time
}

// folder is one drop folder's state; everything except mu-guarded fields and the
// hint set is owned by its run goroutine.
type folder struct {
	w           *Watcher
	cfg         Folder
	root        string
	ignore      []string
	markerPre   string
	markerSuf   string
	fsType      string
	unwatchable bool
	poll        atomic.Bool
	watchLost   atomic.Bool
	lost        string // what is wrong with the root, as last reported (EventFolderLost); "" when fine
	rootSeen    bool   // a scan has reported the root's state (the first one says EventFolderBack if fine: a restart ends an earlier loss)

	wake   chan struct{}
	hmu    sync.Mutex
	hinted map[string]struct{}
	scan   scanReason

	cands     map[string]*candidate
	inflight  map[string]*inflight
	irregular map[string]bool      // non-regular names already logged
	recent    map[string]*finished // finished files watched for growth, by final path

	nextRescan time.Time
	nextPoll   time.Time

	mu    sync.Mutex
	stats FolderStats
}

func (f *folder) inprogress() string { return filepath.Join(f.root, InProgressDir) }

// hint records that name may have changed (called by the fsnotify reader).
func (f *folder) hint(name string) {
	f.hmu.Lock()
	if len(f.hinted) < maxHints {
		f.hinted[name] = struct{}{}
	} else if f.scan < scanRequested {
		f.scan = scanRequested // a flood of names: one listing is cheaper
	}
	f.hmu.Unlock()
	f.poke()
}

func (f *folder) requestScan(r scanReason) {
	f.hmu.Lock()
	if r > f.scan {
		f.scan = r
	}
	f.hmu.Unlock()
	f.poke()
}

func (f *folder) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// ignored reports whether name is never a data file of this folder.
func (f *folder) ignored(name string) bool {
	if name == "" || name[0] == '.' || name == DoneDir || name == RejectedDir {
		return true // our own subdirectories' names are reserved, whatever they hold
	}
	lower := strings.ToLower(name)
	for _, g := range f.ignore {
		if ok, _ := filepath.Match(g, lower); ok {
			return true
		}
	}
	_, isMarker := f.markerOf(name)
	return isMarker
}

// markerOf returns the data name for a marker name.
func (f *folder) markerOf(name string) (string, bool) {
	if f.markerPre == "" && f.markerSuf == "" {
		return "", false
	}
	if len(name) > len(f.markerPre)+len(f.markerSuf) && strings.HasPrefix(name, f.markerPre) && strings.HasSuffix(name, f.markerSuf) {
		return name[len(f.markerPre) : len(name)-len(f.markerSuf)], true
	}
	return "", false
}

func (f *folder) markerFor(name string) string { return f.markerPre + name + f.markerSuf }

// busy records that the loop made progress at now and is still busy (now zero: it
// waits): FolderStats.StalledSince.
func (f *folder) busy(now time.Time) {
	f.mu.Lock()
	f.stats.StalledSince = now
	f.mu.Unlock()
}

func (f *folder) run(ctx context.Context) {
	f.busy(f.w.now())
	defer f.busy(time.Time{})
	f.recoverInProgress(ctx)
	f.fullScan(scanStartup) // also sets nextRescan and nextPoll
	f.w.startWG.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		f.step(ctx)
		if ctx.Err() != nil {
			return
		}
		now := f.w.now()
		next := f.nextWake()
		timer.Reset(max(next.Sub(now), 0))
		f.busy(time.Time{})
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
			f.busy(f.w.now())
			f.drainHints()
		case <-timer.C:
			now := f.w.now()
			f.busy(now)
			if f.poll.Load() && !now.Before(f.nextPoll) {
				f.fullScan(scanPoll)
			} else if !now.Before(f.nextRescan) {
				f.fullScan(scanPeriodic)
			}
		}
	}
}

func (f *folder) nextWake() time.Time {
	next := f.nextRescan
	if f.poll.Load() && f.nextPoll.Before(next) {
		next = f.nextPoll
	}
	for _, c := range f.cands {
		if !c.due.IsZero() && c.due.Before(next) {
			next = c.due
		}
	}
	for _, in := range f.inflight {
		if in.due.Before(next) {
			next = in.due
		}
	}
	for _, r := range f.recent {
		if r.next.Before(next) {
			next = r.next
		}
	}
	return next
}

// checkFinished looks again at the files finished lately whose check is due; one
// that changed is reported once (EventGrew) and no longer watched.
func (f *folder) checkFinished(now time.Time) {
	for p, r := range f.recent {
		if r.next.After(now) {
			continue
		}
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			delete(f.recent, p) // moved away or deleted by a person
		case fi.Size() != r.size || !fi.ModTime().Equal(r.mtime):
			delete(f.recent, p)
			rel, _ := filepath.Rel(f.root, p)
			msg := fmt.Sprintf("%s changed after it was taken and finished: %d bytes when it was taken, %s now has %d bytes (modified %s); what was written after was not read",
				r.c.Name, r.c.Size, rel, fi.Size(), fi.ModTime().Format(time.RFC3339))
			f.w.log.Warn(msg, "folder", f.cfg.Name, "file", r.c.Name)
			f.w.events(Event{Folder: f.cfg.Name, Kind: EventGrew, Detail: msg, File: r.c.Name, ModTime: r.c.ModTime})
		case !now.Before(r.until):
			delete(f.recent, p)
		default:
			r.every *= 2
			r.next = now.Add(r.every)
		}
	}
}

// drainHints applies the hints (and any scan request) gathered since the last wake.
// Bursts of events for one name collapse into one stat: this is the debounce.
func (f *folder) drainHints() {
	f.hmu.Lock()
	names := f.hinted
	f.hinted = map[string]struct{}{}
	reason := f.scan
	f.scan = scanNone
	f.hmu.Unlock()
	if reason != scanNone {
		f.fullScan(reason)
		return
	}
	now := f.w.now()
	for name := range names {
		if data, ok := f.markerOf(name); ok {
			if c := f.cands[data]; c != nil {
				c.due = now
			}
			continue
		}
		if f.ignored(name) {
			continue
		}
		fi, err := os.Lstat(filepath.Join(f.root, name))
		if err != nil {
			f.dropCandidate(name) // gone (claimed, renamed away, deleted)
			continue
		}
		f.observe(name, fi, now)
	}
	f.updatePending()
}

// observe records a stat of a candidate. It returns true for a file not seen before.
func (f *folder) observe(name string, fi fs.FileInfo, now time.Time) bool {
	if !fi.Mode().IsRegular() {
		if !fi.IsDir() && !f.irregular[name] {
			f.irregular[name] = true
			f.w.log.Warn("not a regular file; ignored", "folder", f.cfg.Name, "file", name, "mode", fi.Mode().String())
		}
		return false
	}
	c := f.cands[name]
	if c == nil {
		c = &candidate{info: fi, size: fi.Size(), mtime: fi.ModTime(), changed: now, firstSeen: now}
		f.cands[name] = c
		f.schedule(c, now)
		return true
	}
	if c.size != fi.Size() || !c.mtime.Equal(fi.ModTime()) || !os.SameFile(c.info, fi) {
		c.info, c.size, c.mtime, c.changed = fi, fi.Size(), fi.ModTime(), now
		f.schedule(c, now)
		f.checkUnstable(name, c, now)
	} else if f.markerPre != "" || f.markerSuf != "" {
		c.due = now // a scan or hint: look for the marker
	}
	return false
}

func (f *folder) schedule(c *candidate, now time.Time) {
	if f.markerPre != "" || f.markerSuf != "" {
		c.due = now
		return
	}
	c.due = c.changed.Add(f.cfg.Settle)
}

// fullScan lists the root: the truth that events only hint at.
func (f *folder) fullScan(reason scanReason) {
	now := f.w.now()
	f.nextRescan = now.Add(f.cfg.Rescan)
	f.nextPoll = now.Add(f.cfg.PollInterval)
	if f.watchLost.Load() && f.w.fsw != nil {
		if err := f.w.fsw.Add(f.root); err == nil {
			f.watchLost.Store(false)
			f.w.log.Info("drop folder watched again", "folder", f.cfg.Name)
		}
	}
	// Hints gathered so far are covered by this scan.
	f.hmu.Lock()
	clear(f.hinted)
	f.hmu.Unlock()
	entries, err := os.ReadDir(f.root)
	if problem := f.rootProblem(err); problem != f.lost || !f.rootSeen {
		was := f.lost
		f.lost, f.rootSeen = problem, true
		if problem != "" {
			f.w.log.Error(problem, "folder", f.cfg.Name, "path", f.root)
			f.w.events(Event{Folder: f.cfg.Name, Kind: EventFolderLost, Detail: problem})
		} else {
			if was != "" {
				f.w.log.Info("drop folder readable again", "folder", f.cfg.Name, "path", f.root)
			}
			f.w.events(Event{Folder: f.cfg.Name, Kind: EventFolderBack})
		}
	}
	if f.lost != "" {
		return
	}
	seen := make(map[string]bool, len(entries))
	var found []string
	for _, e := range entries {
		name := e.Name()
		if f.ignored(name) || e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // vanished between ReadDir and Lstat
		}
		seen[name] = true
		if f.observe(name, fi, now) {
			found = append(found, name)
		}
	}
	for name := range f.cands {
		if !seen[name] {
			f.dropCandidate(name)
		}
	}
	f.mu.Lock()
	f.stats.LastScan = now
	f.mu.Unlock()
	f.updatePending()
	if reason == scanPeriodic && !f.poll.Load() && len(found) > 0 {
		slices.Sort(found)
		msg := fmt.Sprintf("rescan found %d file(s) that the file watcher did not report: %s", len(found), strings.Join(found, ", "))
		f.w.log.Warn(msg, "folder", f.cfg.Name)
		f.w.events(Event{Folder: f.cfg.Name, Kind: EventRescan, Detail: msg})
	}
}

// rootProblem says why the folder's listing (whose error is listErr) cannot be trusted,
// or "" when it can: the root cannot be listed (deleted, permissions, an I/O error of
// its filesystem), or it lists but lacks the .inprogress subdirectory cmord created at
// start: the folder was deleted and made again, or the filesystem it was on is no
// longer mounted and the empty mount point is listed in its place. Either way no file
// is taken in, and only a person can tell which (cmord does not recreate the
// subdirectory: on an unmounted share that would be the wrong disk).
func (f *folder) rootProblem(listErr error) string {
	if listErr != nil {
		return fmt.Sprintf("drop folder %s cannot be listed: %v; no file is taken in from it", f.cfg.Name, listErr)
	}
	// Only a missing one: something else in its place (a symlink) is refused by the
	// claim itself, which says what it found (claim_failed).
	if _, err := os.Lstat(f.inprogress()); !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return fmt.Sprintf("drop folder %s (%s) is no longer the folder cmord set up: its %s subdirectory is missing (the folder was deleted and created again, or the filesystem it was on is no longer mounted); no file is taken in from it",
		f.cfg.Name, f.root, InProgressDir)
}

func (f *folder) updatePending() {
	f.mu.Lock()
	f.stats.Pending = len(f.cands)
	f.stats.InProgress = len(f.inflight)
	f.mu.Unlock()
}

// step evaluates what is due and processes ready files, one at a time, oldest first.
func (f *folder) step(ctx context.Context) {
	now := f.w.now()
	f.checkFinished(now)
	// Claimed files awaiting a retry go first: they are older than anything new.
	var retry []*inflight
	for _, in := range f.inflight {
		if !in.due.After(now) {
			retry = append(retry, in)
		}
	}
	slices.SortFunc(retry, func(a, b *inflight) int { return compareFiles(a.c.ModTime, a.c.Name, b.c.ModTime, b.c.Name) })
	for _, in := range retry {
		if ctx.Err() != nil {
			return
		}
		delete(f.inflight, in.c.Name)
		if in.outcome != nil {
			if f.finish(in.c, *in.outcome) {
				f.w.events(Event{Folder: f.cfg.Name, Kind: EventFinished, File: in.c.Name,
					Detail: fmt.Sprintf("%s moved out of %s at last", in.c.Name, InProgressDir)})
			}
			continue
		}
		in.c.Attempt++
		f.handle(ctx, in.c)
	}

	type ready struct {
		name string
		c    *candidate
	}
	var rs []ready
	for name, c := range f.cands {
		if c.due.IsZero() || c.due.After(now) {
			continue
		}
		if f.evaluate(name, c, now) {
			rs = append(rs, ready{name, c})
		}
	}
	slices.SortFunc(rs, func(a, b ready) int { return compareFiles(a.c.mtime, a.name, b.c.mtime, b.name) })
	for _, r := range rs {
		if ctx.Err() != nil {
			break
		}
		f.claimAndHandle(ctx, r.name, r.c)
	}
	f.updatePending()
}

func compareFiles(ta time.Time, na string, tb time.Time, nb string) int {
	if c := ta.Compare(tb); c != 0 {
		return c
	}
	return strings.Compare(na, nb)
}

// evaluate re-stats a due candidate and reports whether it is ready.
func (f *folder) evaluate(name string, c *candidate, now time.Time) bool {
	fi, err := os.Lstat(filepath.Join(f.root, name))
	if err != nil || !fi.Mode().IsRegular() {
		f.dropCandidate(name)
		return false
	}
	changed := c.size != fi.Size() || !c.mtime.Equal(fi.ModTime()) || !os.SameFile(c.info, fi)
	if changed {
		c.info, c.size, c.mtime, c.changed = fi, fi.Size(), fi.ModTime(), now
	}
	if f.markerPre != "" || f.markerSuf != "" {
		if _, err := os.Lstat(filepath.Join(f.root, f.markerFor(name))); err == nil {
			return true
		}
		// A file whose marker never comes (its writer died before writing it) would
		// wait here forever with nobody told: said once, UnstableAfter after it
		// appeared; until then looked at again then (or on a hint or scan).
		c.due = time.Time{}
		if !c.unstableReported {
			if wait := now.Sub(c.firstSeen); wait > f.cfg.UnstableAfter {
				c.unstableReported = true
				msg := fmt.Sprintf("file %s has waited %s for its done-marker %s; it will be taken once the marker is there",
					name, wait.Round(time.Millisecond), f.markerFor(name))
				f.w.log.Warn(msg, "folder", f.cfg.Name, "file", name)
				f.w.events(Event{Folder: f.cfg.Name, Kind: EventUnstable, Detail: msg, File: name})
			} else {
				c.due = c.firstSeen.Add(f.cfg.UnstableAfter + time.Millisecond)
			}
		}
		return false
	}
	if changed {
		f.checkUnstable(name, c, now)
	}
	if changed || now.Sub(c.changed) < f.cfg.Settle {
		c.due = c.changed.Add(f.cfg.Settle)
		return false
	}
	return true
}

// checkUnstable reports, once, a file that keeps changing long after it appeared (a
// stuck or endless writer, or a log file dropped by mistake).
func (f *folder) checkUnstable(name string, c *candidate, now time.Time) {
	if c.unstableReported || now.Sub(c.firstSeen) <= f.cfg.UnstableAfter {
		return
	}
	c.unstableReported = true
	msg := fmt.Sprintf("file %s is still changing %s after it appeared; it will be taken once it stops", name, now.Sub(c.firstSeen).Round(time.Millisecond))
	f.w.log.Warn(msg, "folder", f.cfg.Name, "file", name)
	f.w.events(Event{Folder: f.cfg.Name, Kind: EventUnstable, Detail: msg, File: name})
}

// dropCandidate forgets name (claimed, or gone from the folder): a file reported
// unstable is no longer waiting, and EventSettled ends that report.
func (f *folder) dropCandidate(name string) {
	if c := f.cands[name]; c != nil && c.unstableReported {
		f.w.events(Event{Folder: f.cfg.Name, Kind: EventSettled, File: name})
	}
	delete(f.cands, name)
}

// claimAndHandle moves a ready file into .inprogress and processes it.
func (f *folder) claimAndHandle(ctx context.Context, name string, c *candidate) {
	now := f.w.now()
	dst := filepath.Join(f.inprogress(), name)
	if _, busy := f.inflight[name]; busy {
		f.waitForPrevious(name, c, now)
		return
	}
	err := ownSubdir(f.root, InProgressDir)
	if err == nil {
		err = renameNoReplace(filepath.Join(f.root, name), dst)
	}
	switch {
	case errors.Is(err, fs.ErrExist):
		f.waitForPrevious(name, c, now)
		return
	case errors.Is(err, fs.ErrNotExist):
		f.dropCandidate(name)
		return
	case err != nil:
		c.claimFailures++
		c.due = now.Add(f.backoff(c.claimFailures))
		f.w.log.Error("cannot claim file", "folder", f.cfg.Name, "file", name, "err", err, "retry_in", c.due.Sub(now))
		if c.claimFailures == 1 {
			f.w.events(Event{Folder: f.cfg.Name, Kind: EventClaimFailed, Detail: fmt.Sprintf("%s: %v", name, err), File: name})
		}
		return
	}
	f.dropCandidate(name)
	if err := syncDirs(f.inprogress(), f.root); err != nil {
		f.w.log.Warn("fsync after claim", "folder", f.cfg.Name, "file", name, "err", err)
	}
	if f.markerPre != "" || f.markerSuf != "" {
		f.removeMarker(name)
	}
	cl := Claimed{Folder: f.cfg.Name, Name: name, Path: dst, Size: c.size, ModTime: c.mtime, Attempt: 1, scanned: c.info}
	f.w.log.Debug("claimed", "folder", f.cfg.Name, "file", name, "size", cl.Size)
	f.handle(ctx, cl)
}

func (f *folder) waitForPrevious(name string, c *candidate, now time.Time) {
	if !c.waitLogged {
		c.waitLogged = true
		f.w.log.Info("a file with the same name is still in progress; the new one waits", "folder", f.cfg.Name, "file", name)
	}
	c.due = now.Add(f.cfg.Settle)
}

// removeMarker deletes name's done-marker, unless a new copy of name has been
// dropped since (then the marker belongs to it).
func (f *folder) removeMarker(name string) {
	if _, err := os.Lstat(filepath.Join(f.root, name)); err == nil {
		return
	}
	err := os.Remove(filepath.Join(f.root, f.markerFor(name)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.w.log.Warn("cannot remove done marker", "folder", f.cfg.Name, "file", name, "err", err)
	}
}

func (f *folder) backoff(attempt int) time.Duration {
	d := f.cfg.Retry
	for i := 1; i < attempt && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// handle runs ProcessFunc on a claimed file and finishes it, or schedules a retry.
func (f *folder) handle(ctx context.Context, c Claimed) {
	f.mu.Lock()
	f.stats.Pending = len(f.cands)
	f.stats.InProgress = len(f.inflight) + 1
	f.stats.InHand, f.stats.InHandSince = c.Name, f.w.now()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		// The file returned: progress, the loop goes on from now.
		f.stats.InHand, f.stats.InHandSince, f.stats.StalledSince = "", time.Time{}, f.w.now()
		f.mu.Unlock()
	}()
	fh, fi, err := openClaimed(f.root, filepath.Join(InProgressDir, c.Name), c.scanned)
	var unsafe *UnsafeFileError
	if errors.As(err, &unsafe) {
		f.refuseUnsafe(c, unsafe)
		return
	}
	var out Outcome
	if err == nil {
		c.File, c.Size, c.ModTime, c.opened = fh, fi.Size(), fi.ModTime(), true
		out, err = f.call(ctx, c)
		fh.Close()
		c.File = nil
	} else {
		// Not opened (permissions, an I/O error): ProcessFunc applies the poison-file
		// policy, so that such a file is refused with a reason, not retried forever.
		c.OpenErr, c.opened = err, false
		out, err = f.call(ctx, c)
		c.OpenErr = nil
	}
	if err != nil {
		delay := f.backoff(c.Attempt)
		attrs := []any{"folder", f.cfg.Name, "file", flows.Escape(c.Name), "attempt", c.Attempt, "retry_in", delay, "err", err}
		if lf := LogFields(nil); errors.As(err, &lf) {
			attrs = append(attrs, lf.LogFields()...)
		}
		f.w.log.Warn("processing failed; will retry", attrs...)
		f.inflight[c.Name] = &inflight{c: c, due: f.w.now().Add(delay)}
		f.mu.Lock()
		f.stats.Errors++
		f.mu.Unlock()
		f.updatePending()
		return
	}
	f.finish(c, out)
}

// refuseUnsafe moves a claimed name that is not the scanned regular file (a symlink
// swapped in, a FIFO, another file) to rejected/ unread, with its reason, and tells the
// daemon. The rename moves the link itself, never what it points to.
func (f *folder) refuseUnsafe(c Claimed, e *UnsafeFileError) {
	shown := flows.Escape(c.Name)
	msg := fmt.Sprintf("%s was not taken: at claim time it was %s", shown, e.Why)
	f.w.log.Warn("claimed name is not the regular file scanned; rejected unread", "folder", f.cfg.Name, "file", shown, "why", e.Why)
	f.w.events(Event{Folder: f.cfg.Name, Kind: EventUnsafe, Detail: msg, File: c.Name})
	c.Size = 0
	f.finish(c, Outcome{Rejected: true, Reason: msg})
}

// call runs ProcessFunc, turning a panic into a rejection: input never crashes us.
func (f *folder) call(ctx context.Context, c Claimed) (out Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprintf("internal error while processing (panic): %v", r)
			f.w.log.Error("panic while processing; file rejected", "folder", f.cfg.Name, "file", c.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			f.w.events(Event{Folder: f.cfg.Name, Kind: EventPanic, Detail: fmt.Sprintf("%s: %v", c.Name, r), File: c.Name})
			out, err = Outcome{Rejected: true, Reason: msg}, nil
		}
	}()
	// Shutdown must not interrupt the file in hand.
	return f.w.process(context.WithoutCancel(ctx), c)
}

// finish moves a processed file to done/ or rejected/, and reports whether it did.
func (f *folder) finish(c Claimed, out Outcome) bool {
	var final string
	err := ownSubdir(f.root, InProgressDir)
	if err == nil && out.Rejected {
		err = ownSubdir(f.root, RejectedDir)
	} else if err == nil {
		err = ownSubdir(f.root, DoneDir)
	}
	switch {
	case err != nil:
	case out.Rejected:
		final, err = moveRejected(c.Path, filepath.Join(f.root, RejectedDir), c, out.Reason, out.Lang, f.w.now())
	default:
		final, err = moveDone(c.Path, filepath.Join(f.root, DoneDir), c.Name, out.Receipts)
	}
	if err != nil {
		delay := f.backoff(c.Attempt)
		msg := fmt.Sprintf("%s: processed but not moved out of %s: %v", c.Name, InProgressDir, err)
		f.w.log.Error(msg, "folder", f.cfg.Name, "retry_in", delay)
		f.w.events(Event{Folder: f.cfg.Name, Kind: EventFinishFailed, Detail: msg, File: c.Name})
		c.Attempt++
		f.inflight[c.Name] = &inflight{c: c, due: f.w.now().Add(delay), outcome: &out}
		f.updatePending()
		return false
	}
	f.mu.Lock()
	if out.Rejected {
		f.stats.Rejected++
	} else {
		f.stats.Done++
	}
	f.mu.Unlock()
	f.updatePending()
	dir := DoneDir
	if out.Rejected {
		dir = RejectedDir
	}
	f.w.log.Info("file finished", "folder", f.cfg.Name, "file", c.Name, "to", filepath.Join(dir, final), "recovered", c.Recovered)
	p := filepath.Join(f.root, dir, final)
	if fi, err := os.Lstat(p); err == nil && !out.GrowthReported && len(f.recent) < maxWatchedFinished {
		size, mtime := fi.Size(), fi.ModTime()
		if c.opened {
			size, mtime = c.Size, c.ModTime
		}
		now := f.w.now()
		f.recent[p] = &finished{c: c, size: size, mtime: mtime,
			next: now.Add(f.cfg.Settle), every: f.cfg.Settle, until: now.Add(f.cfg.UnstableAfter)}
	}
	return true
}

// recoverInProgress processes what a previous run left in .inprogress, first.
func (f *folder) recoverInProgress(ctx context.Context) {
	entries, err := os.ReadDir(f.inprogress())
	if err != nil {
		f.w.log.Error("cannot list .inprogress", "folder", f.cfg.Name, "err", err)
		return
	}
	var claimed []Claimed
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || fi.IsDir() {
			continue // a symlink or FIFO left here is refused unread by handle
		}
		claimed = append(claimed, Claimed{
			Folder: f.cfg.Name, Name: e.Name(), Path: filepath.Join(f.inprogress(), e.Name()),
			Size: fi.Size(), ModTime: fi.ModTime(), Recovered: true, Attempt: 1,
		})
	}
	slices.SortFunc(claimed, func(a, b Claimed) int { return compareFiles(a.ModTime, a.Name, b.ModTime, b.Name) })
	if len(claimed) > 0 {
		f.w.log.Info("recovering files left in .inprogress by a previous run", "folder", f.cfg.Name, "count", len(claimed))
	}
	for i, c := range claimed {
		if ctx.Err() != nil {
			// Shutdown during recovery: the rest stays in .inprogress for next time.
			for _, rest := range claimed[i:] {
				f.inflight[rest.Name] = &inflight{c: rest, due: f.w.now()}
			}
			f.updatePending()
			return
		}
		if f.markerPre != "" || f.markerSuf != "" {
			f.removeMarker(c.Name)
		}
		f.handle(ctx, c)
	}
}
