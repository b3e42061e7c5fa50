// Package intake watches drop folders and hands each finished file, exactly once per
// claim, to a ProcessFunc.
//
// The life of a file F dropped in folder D:
//
//  1. Readiness. F is a candidate when it is a regular file whose name is not a
//     temporary one (dot-files, *.part, *.partial, *.filepart, *.tmp, *~ and the
//     folder's extra Ignore globs; matching is case-insensitive). It is ready when its
//     done-marker exists (DoneMarker mode) or, otherwise, when its size and mtime have
//     not changed for Settle, measured from the last time we saw them change. Readiness
//     is driven by timers, so a quiet file is claimed about Settle after its last
//     write, whatever the polling interval.
//  2. Claim. F is renamed to D/.inprogress/F (same filesystem, atomic, never over an
//     existing name: a re-delivery waits until the previous F is finished). Both
//     directories are fsynced. From here no other scan can take it.
//  3. Process. ProcessFunc runs with a context that shutdown does not cancel: SIGTERM
//     lets the file in hand finish. An error means "try again": F stays in .inprogress
//     and is retried with exponential backoff. Deciding when a failure is permanent
//     (refuse at once) or has repeated too often (refuse after max_attempts) is the
//     ProcessFunc's: the daemon's poison-file policy returns a refusal Outcome then.
//     A panic is recovered and F is rejected with the panic message.
//  4. Finish. F moves to D/done/F or D/rejected/F (+ D/rejected/F.reason.txt); an
//     existing name is never overwritten (F.1, F.2, … instead). Directories are fsynced,
//     so a kill -9 or power loss leaves F in exactly one place.
//
// At startup everything left in .inprogress is processed first with Recovered=true: the
// archive recognises content it already has, so a crash anywhere gives "archived once,
// processed once".
//
// fsnotify events are only hints; periodic full rescans are the truth. An overflow of
// the inotify queue or any watcher error triggers an immediate rescan of every watched
// folder and an Event. Folders on NFS, CIFS/SMB, FUSE, overlay and similar filesystems
// (where inotify cannot see changes made by other hosts) are polled instead.
//
// The watch is not recursive: subdirectories of a drop folder (other than ours:
// .inprogress, done, rejected) are ignored, as are symlinks and other non-regular files.
//
// Target: drop-to-archived within Settle + 100 ms (BenchmarkDropToClaim measures the
// claim overhead on top of Settle).
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Subdirectories created in every drop folder.
const (
	InProgressDir = ".inprogress"
	DoneDir       = "done"
	RejectedDir   = "rejected"
	// ReasonSuffix is appended to a rejected file's name for its explanation.
	ReasonSuffix = ".reason.txt"
)

// Watch modes.
const (
	WatchAuto   = "auto"
	WatchPoll   = "poll"
	WatchNotify = "notify"
)

// Defaults for zero Folder fields.
const (
	DefaultSettle        = 10 * time.Second
	DefaultRescan        = 5 * time.Minute
	DefaultPollInterval  = 10 * time.Second
	DefaultRetry         = 5 * time.Second
	DefaultUnstableAfter = time.Hour
	// maxRetryDelay caps the exponential backoff after transient errors.
	maxRetryDelay = 10 * time.Minute
)

// DefaultIgnore are the temporary-name globs always ignored (dot-files are too).
var DefaultIgnore = []string{"*.part", "*.partial", "*.filepart", "*.tmp", "*~"}

// Event kinds reported to the events callback.
const (
	EventOverflow     = "overflow"      // inotify queue overflowed: events lost, folder rescanned
	EventWatchError   = "watch_error"   // any other watcher error: folder rescanned
	EventPolling      = "polling"       // the folder's filesystem cannot be watched; polling instead
	EventRescan       = "rescan"        // a periodic rescan found files fsnotify did not report
	EventUnstable     = "unstable"      // a file kept changing longer than UnstableAfter
	EventClaimFailed  = "claim_failed"  // a ready file could not be moved into .inprogress
	EventPanic        = "panic"         // ProcessFunc panicked; the file was rejected
	EventFinishFailed = "finish_failed" // a processed file could not be moved to done/rejected
	EventFinished     = "finished"      // such a file was moved at a later attempt
	EventGrew         = "grew"          // a finished file kept growing in done/ or rejected/ (its writer was not done)
	EventUnsafe       = "unsafe_file"   // a claimed name was not the regular file scanned (symlink, FIFO, swapped): rejected unread
	EventFolderLost   = "folder_lost"   // the folder cannot be listed, or is no longer the one cmord set up (deleted, unmounted): nothing is taken in
	EventFolderBack   = "folder_back"   // such a folder is listed again, as cmord set it up
	EventSettled      = "settled"       // a file reported unstable was taken at last, or is gone from the folder: nothing waits any more
)

// Folder is one drop folder.
type Folder struct {
	Name string
	Path string
	// Settle: a file whose size and mtime are unchanged for this long is ready.
	// Default 10s. Ignored when DoneMarker is set.
	Settle time.Duration
	// DoneMarker is "" or a pattern containing "{name}", e.g. "{name}.done": the file
	// is ready when its marker exists. Markers are never processed as data; a marker
	// is removed once its file is claimed.
	DoneMarker string
	// Ignore are extra globs (filepath.Match, case-insensitive) on top of
	// DefaultIgnore and dot-files.
	Ignore []string
	// Rescan is the period of the full rescan that catches what events missed.
	// Default 5m.
	Rescan time.Duration
	// Watch is "auto" (fsnotify unless the filesystem is a network/FUSE/overlay one),
	// "poll" or "notify". Default auto.
	Watch string
	// PollInterval is the scan period when polling. Default 10s.
	PollInterval time.Duration
	// Retry is the first delay after a transient ProcessFunc error, doubled at each
	// attempt up to 10m. Default 5s.
	Retry time.Duration
	// UnstableAfter: a file still changing this long after it appeared is reported
	// once (EventUnstable); it is still taken when it settles. Default 1h. It is also
	// how long a finished file is watched for growth (EventGrew), at widening
	// intervals from Settle.
	UnstableAfter time.Duration
}

// Claimed is a file taken for processing.
type Claimed struct {
	Folder    string
	Name      string
	Path      string // <folder>/.inprogress/<name>
	Size      int64
	ModTime   time.Time
	Recovered bool // found in .inprogress at startup: a previous run may have processed it
	Attempt   int  // 1 for the first call, +1 after each transient error
	// File is the claimed file, opened for this call without following any symlink,
	// checked to be a regular file on the folder's device and the one the scan saw.
	// Read the content from it (from offset 0, e.g. io.NewSectionReader), never from
	// Path: the name may point elsewhere by now. Intake closes it after the call.
	File *os.File
	// OpenErr is why File is nil: the claimed name could not be opened (other than
	// for safety, which intake refuses itself). ProcessFunc decides what it means for
	// the file (the poison-file policy), as for any other failure to read it.
	OpenErr error
	// scanned is what the scan saw under the name (nil for a recovered file).
	scanned os.FileInfo
	// opened says Size and ModTime are the opened file's own (fstat at the call):
	// the reference the watch of finished files compares with. A look after the
	// move would miss a writer that appended between the move and the look.
	opened bool
}

// Outcome is what ProcessFunc decided.
type Outcome struct {
	Rejected bool
	Reason   string // written to rejected/NAME.reason.txt
	// Lang is the language of the reason file's header: "en", else Italian.
	Lang string
	// Receipts are written beside a file taken, in done/, BEFORE it moves there
	// (suffix → content, e.g. ".esito.txt"): a crash in between leaves the file in
	// .inprogress, and its re-run writes the same receipt again.
	Receipts map[string][]byte
	// GrowthReported says ProcessFunc found the file changed while it was processed
	// and told a person: intake does not watch it for growth after the move as well.
	GrowthReported bool
}

// ProcessFunc processes one claimed file. An error is transient: the file stays in
// .inprogress and is retried later with backoff, and intake logs the failure, once:
// an error that has LogFields adds them to that line. A refusal is an Outcome.
type ProcessFunc func(ctx context.Context, c Claimed) (Outcome, error)

// LogFields is implemented by a ProcessFunc error that carries what its caller knows
// of the failure (slog key-value pairs: its class, the attempts counted across
// restarts, ...), so that the failure is one log line with every field, not one line
// from intake and another from the caller.
type LogFields interface {
	LogFields() []any
}

// Event is something the daemon should record as an exception or a metric. File is
// the file it concerns, if any (unstable, claim_failed, panic, finish_failed, grew);
// ModTime is that file's modification time when it was claimed (grew), which tells
// one drop of a name from the next.
type Event struct {
	Folder, Kind, Detail, File string
	ModTime                    time.Time
}

// FolderStats are counters for metrics and queue depth.
type FolderStats struct {
	Mode       string    // "notify" or "poll"
	FSType     string    // filesystem of the root, e.g. "ext4/xfs/other", "nfs"
	Pending    int       // candidate files in the drop folder (ready or settling)
	InProgress int       // files in .inprogress (being processed or awaiting retry)
	Done       uint64    // moved to done/ since start
	Rejected   uint64    // moved to rejected/ since start
	Errors     uint64    // transient ProcessFunc errors since start
	Rescans    uint64    // forced rescans after watcher overflow/errors since start
	LastScan   time.Time // last full scan
	// InHand is the file being processed now ("" when none), for InHandFor (measured
	// on the watcher's clock when Stats is called): nothing else of the folder is taken
	// until it returns.
	InHand      string
	InHandSince time.Time
	InHandFor   time.Duration
	// StalledSince is when the folder's loop last made progress (it woke, or a file
	// in hand returned), while it is still busy with no file in hand: inside a listing,
	// a stat or a rename of the folder, or an event callback. Zero while it waits or
	// has a file in hand (InHand says that). StalledFor is its age on the watcher's
	// clock when Stats is called: a loop that never comes back (a network mount that no
	// longer answers a listing) takes nothing in, and no file is in hand to say so.
	StalledSince time.Time
	StalledFor   time.Duration
}

// Watcher runs the intake of a set of folders.
type Watcher struct {
	folders []*folder
	byPath  map[string]*folder // cleaned absolute root → folder
	byName  map[string]*folder
	process ProcessFunc
	events  func(Event)
	log     *slog.Logger
	now     func() time.Time

	ready     chan struct{}
	readyOnce sync.Once
	startWG   sync.WaitGroup

	mu      sync.Mutex
	running bool

	fsw *fsnotify.Watcher
	// readerGate, when non-nil, holds the fsnotify reader until closed (tests use it
	// to let the kernel queue overflow).
	readerGate chan struct{}
}

// New validates the folders, creates their .inprogress, done and rejected
// subdirectories and decides how each is watched. events and log may be nil; events
// is called from the folders' goroutines and must be quick.
func New(folders []Folder, process ProcessFunc, events func(Event), log *slog.Logger) (*Watcher, error) {
	if process == nil {
		return nil, errors.New("intake: nil ProcessFunc")
	}
	if events == nil {
		events = func(Event) {}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		byPath:  map[string]*folder{},
		byName:  map[string]*folder{},
		process: process,
		events:  events,
		log:     log,
		now:     time.Now,
		ready:   make(chan struct{}),
	}
	for _, cfg := range folders {
		f, err := newFolder(w, cfg)
		if err != nil {
			return nil, err
		}
		if _, dup := w.byName[f.cfg.Name]; dup {
			return nil, fmt.Errorf("intake: folder %q defined twice", f.cfg.Name)
		}
		if other, dup := w.byPath[f.root]; dup {
			return nil, fmt.Errorf("intake: folders %q and %q share the path %s", other.cfg.Name, f.cfg.Name, f.root)
		}
		w.folders = append(w.folders, f)
		w.byName[f.cfg.Name] = f
		w.byPath[f.root] = f
	}
	return w, nil
}

func newFolder(w *Watcher, cfg Folder) (*folder, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("intake: folder with path %q has no name", cfg.Path)
	}
	if cfg.Path == "" {
		return nil, fmt.Errorf("intake: folder %q has no path", cfg.Name)
	}
	root, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("intake: folder %q: %w", cfg.Name, err)
	}
	root = filepath.Clean(root)
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("intake: folder %q: %w", cfg.Name, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("intake: folder %q: %s is not a directory", cfg.Name, root)
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.UnstableAfter <= 0 {
		cfg.UnstableAfter = DefaultUnstableAfter
	}
	switch cfg.Watch {
	case "":
		cfg.Watch = WatchAuto
	case WatchAuto, WatchPoll, WatchNotify:
	default:
		return nil, fmt.Errorf("intake: folder %q: watch = %q: want auto, poll or notify", cfg.Name, cfg.Watch)
	}
	f := &folder{w: w, cfg: cfg, root: root}
	for _, g := range append(append([]string{}, DefaultIgnore...), cfg.Ignore...) {
		g = strings.ToLower(g)
		if _, err := filepath.Match(g, ""); err != nil {
			return nil, fmt.Errorf("intake: folder %q: ignore glob %q: %w", cfg.Name, g, err)
		}
		f.ignore = append(f.ignore, g)
	}
	if cfg.DoneMarker != "" {
		pre, suf, ok := strings.Cut(cfg.DoneMarker, "{name}")
		if !ok || strings.Contains(suf, "{name}") || pre+suf == "" || strings.ContainsRune(cfg.DoneMarker, '/') {
			return nil, fmt.Errorf("intake: folder %q: done marker %q: want a file name containing {name} once, e.g. {name}.done", cfg.Name, cfg.DoneMarker)
		}
		f.markerPre, f.markerSuf = pre, suf
	}
	for _, d := range []string{InProgressDir, DoneDir, RejectedDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			return nil, fmt.Errorf("intake: folder %q: %w", cfg.Name, err)
		}
	}
	f.fsType, f.unwatchable = fsKind(root)
	f.poll.Store(cfg.Watch == WatchPoll || (cfg.Watch == WatchAuto && f.unwatchable))
	f.wake = make(chan struct{}, 1)
	f.hinted = map[string]struct{}{}
	f.cands = map[string]*candidate{}
	f.inflight = map[string]*inflight{}
	f.recent = map[string]*finished{}
	f.irregular = map[string]bool{}
	return f, nil
}

// Ready is closed once every folder has recovered its .inprogress files and finished
// its first scan (the moment to tell systemd READY=1).
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Run watches and processes until ctx is cancelled. On cancellation the file being
// processed in each folder finishes (its ProcessFunc context is not cancelled) and
// Run returns after it has been moved to done/ or rejected/.
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("intake: Run called twice")
	}
	w.running = true
	w.mu.Unlock()

	w.startWatching()
	var wg sync.WaitGroup
	if w.fsw != nil {
		readerCtx, stopReader := context.WithCancel(ctx)
		defer stopReader()
		wg.Add(1)
		go func() { defer wg.Done(); w.readEvents(readerCtx) }()
	}
	w.startWG.Add(len(w.folders))
	go func() { w.startWG.Wait(); w.readyOnce.Do(func() { close(w.ready) }) }()
	var fwg sync.WaitGroup
	for _, f := range w.folders {
		fwg.Add(1)
		go func() { defer fwg.Done(); f.run(ctx) }()
	}
	fwg.Wait()
	if w.fsw != nil {
		w.fsw.Close()
	}
	wg.Wait()
	return nil
}

// startWatching creates the one fsnotify watcher and adds the notify-mode roots;
// where that fails the folder falls back to polling.
func (w *Watcher) startWatching() {
	for _, f := range w.folders {
		if f.poll.Load() {
			if f.unwatchable {
				msg := fmt.Sprintf("folder %s is on %s: inotify cannot see changes made by other hosts; polling every %s", f.cfg.Name, f.fsType, f.cfg.PollInterval)
				w.log.Warn(msg, "folder", f.cfg.Name, "path", f.root)
				w.events(Event{Folder: f.cfg.Name, Kind: EventPolling, Detail: msg})
			} else {
				w.log.Info("folder polled by configuration", "folder", f.cfg.Name, "path", f.root, "every", f.cfg.PollInterval)
			}
			continue
		}
		if f.unwatchable {
			w.log.Warn(fmt.Sprintf("folder %s is on %s but watch = notify: changes made by other hosts are seen only by the rescan every %s", f.cfg.Name, f.fsType, f.cfg.Rescan), "folder", f.cfg.Name)
		}
		if w.fsw == nil {
			fsw, err := fsnotify.NewWatcher()
			if err != nil {
				w.fallBackToPolling(f, fmt.Errorf("creating the inotify watcher (raise fs.inotify.max_user_instances): %w", err))
				continue
			}
			w.fsw = fsw
		}
		if err := w.fsw.Add(f.root); err != nil {
			w.fallBackToPolling(f, fmt.Errorf("watching %s (raise fs.inotify.max_user_watches): %w", f.root, err))
		}
	}
}

func (w *Watcher) fallBackToPolling(f *folder, err error) {
	f.poll.Store(true)
	msg := fmt.Sprintf("folder %s cannot be watched: %v; polling every %s", f.cfg.Name, err, f.cfg.PollInterval)
	w.log.Error(msg, "folder", f.cfg.Name)
	w.events(Event{Folder: f.cfg.Name, Kind: EventPolling, Detail: msg})
}

// readEvents is the one select loop over fsnotify's channels. It never blocks on
// processing: an event only records a hint for the folder's goroutine.
func (w *Watcher) readEvents(ctx context.Context) {
	if w.readerGate != nil {
		select {
		case <-w.readerGate:
		case <-ctx.Done():
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if f := w.byPath[filepath.Dir(ev.Name)]; f != nil {
				f.hint(filepath.Base(ev.Name))
			} else if f := w.byPath[ev.Name]; f != nil && ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 {
				w.watchError(fmt.Errorf("drop folder %s was removed or renamed: %s", f.root, ev.Op))
				f.watchLost.Store(true)
			} else if f != nil && ev.Op&fsnotify.Chmod != 0 {
				f.requestScan(scanRequested) // its permissions changed: can it still be listed?
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.watchError(err)
		}
	}
}

// watchError handles fsnotify's errors: events may have been lost, so every watched
// folder is rescanned at once and the daemon is told.
func (w *Watcher) watchError(err error) {
	kind := EventWatchError
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		kind = EventOverflow
	}
	for _, f := range w.folders {
		if f.poll.Load() {
			continue
		}
		w.log.Warn("file watcher lost events; rescanning", "folder", f.cfg.Name, "kind", kind, "err", err)
		f.mu.Lock()
		f.stats.Rescans++
		f.mu.Unlock()
		w.events(Event{Folder: f.cfg.Name, Kind: kind, Detail: err.Error()})
		f.requestScan(scanForced)
	}
}

// Rescan asks for an immediate full scan of the named folder.
func (w *Watcher) Rescan(folder string) {
	if f := w.byName[folder]; f != nil {
		f.requestScan(scanRequested)
	}
}

// Stats returns the counters of every folder by name.
func (w *Watcher) Stats() map[string]FolderStats {
	out := make(map[string]FolderStats, len(w.folders))
	for _, f := range w.folders {
		f.mu.Lock()
		s := f.stats
		f.mu.Unlock()
		if s.InHand != "" {
			s.InHandFor = w.now().Sub(s.InHandSince)
			s.StalledSince = time.Time{}
		} else if !s.StalledSince.IsZero() {
			s.StalledFor = w.now().Sub(s.StalledSince)
		}
		s.FSType = f.fsType
		s.Mode = WatchNotify
		if f.poll.Load() {
			s.Mode = WatchPoll
		}
		out[f.cfg.Name] = s
	}
	return out
}
