package intake

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// waitLimit bounds every wait: generous, because tests must not depend on speed.
const waitLimit = 30 * time.Second

const testSettle = 50 * time.Millisecond

// rig runs a Watcher on one temp folder and records what it does.
type rig struct {
	t      *testing.T
	dir    string
	w      *Watcher
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	calls  []Claimed
	events []Event
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// newRig builds the Watcher without starting it. process may be nil (accept all).
func newRig(t *testing.T, cfg Folder, process ProcessFunc) *rig {
	t.Helper()
	r := &rig{t: t, dir: cfg.Path}
	if r.dir == "" {
		r.dir = t.TempDir()
	}
	cfg.Path = r.dir
	if cfg.Name == "" {
		cfg.Name = "billing"
	}
	if cfg.Settle == 0 {
		cfg.Settle = testSettle
	}
	if process == nil {
		process = func(context.Context, Claimed) (Outcome, error) { return Outcome{}, nil }
	}
	recorded := func(ctx context.Context, c Claimed) (Outcome, error) {
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		return process(ctx, c)
	}
	w, err := New([]Folder{cfg}, recorded, func(e Event) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	return r
}

func (r *rig) start() *rig {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan error, 1)
	go func() { r.done <- r.w.Run(ctx) }()
	r.t.Cleanup(r.stop)
	select {
	case <-r.w.Ready():
	case <-time.After(waitLimit):
		r.t.Fatal("watcher never became ready")
	}
	return r
}

func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(waitLimit):
		r.t.Error("Run did not return after cancel")
	}
}

func startRig(t *testing.T, cfg Folder, process ProcessFunc) *rig {
	return newRig(t, cfg, process).start()
}

func (r *rig) path(parts ...string) string {
	return filepath.Join(append([]string{r.dir}, parts...)...)
}

func (r *rig) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(r.path(name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// drop writes name atomically (temp name, then rename), as a well-behaved uploader does.
func (r *rig) drop(name, content string) {
	r.t.Helper()
	r.write(name+".part", content)
	if err := os.Rename(r.path(name+".part"), r.path(name)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; calls=%v events=%v", what, r.callNames(), r.eventKinds())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) waitExists(parts ...string) {
	r.t.Helper()
	p := r.path(parts...)
	r.waitFor(p, func() bool { _, err := os.Lstat(p); return err == nil })
}

func (r *rig) callNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		out = append(out, c.Name)
	}
	return out
}

func (r *rig) callsSnapshot() []Claimed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *rig) eventKinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Kind)
	}
	return out
}

func (r *rig) hasEvent(kind string) bool { return slices.Contains(r.eventKinds(), kind) }

func (r *rig) list(sub string) []string {
	r.t.Helper()
	entries, err := os.ReadDir(r.path(sub))
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func (r *rig) read(parts ...string) string {
	r.t.Helper()
	b, err := os.ReadFile(r.path(parts...))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func TestReadyAfterSettle(t *testing.T) {
	for _, mode := range []string{WatchNotify, WatchPoll} {
		t.Run(mode, func(t *testing.T) {
			r := startRig(t, Folder{Watch: mode, PollInterval: 20 * time.Millisecond}, nil)
			r.write("a.csv", "hello\n")
			r.write("empty.csv", "") // a zero-length file is processed too
			r.waitExists(DoneDir, "a.csv")
			r.waitExists(DoneDir, "empty.csv")
			if got := r.read(DoneDir, "a.csv"); got != "hello\n" {
				t.Errorf("done/a.csv = %q", got)
			}
			calls := r.callsSnapshot()
			if len(calls) != 2 {
				t.Fatalf("calls = %v, want 2", r.callNames())
			}
			for _, c := range calls {
				if c.Folder != "billing" || c.Recovered || c.Attempt != 1 || c.Path != r.path(InProgressDir, c.Name) {
					t.Errorf("claimed = %+v", c)
				}
				if want := map[string]int64{"a.csv": 6, "empty.csv": 0}[c.Name]; c.Size != want {
					t.Errorf("%s size = %d, want %d", c.Name, c.Size, want)
				}
			}
			if got := r.list(InProgressDir); len(got) != 0 {
				t.Errorf(".inprogress = %v", got)
			}
			// The counters follow the move into done/ by a moment.
			r.waitFor("stats", func() bool {
				st := r.w.Stats()["billing"]
				return st.Mode == mode && st.Done == 2 && st.Pending == 0 && st.InProgress == 0
			})
		})
	}
}

// A file still being appended to is not taken; when it stops, it is taken whole.
func TestGrowingFileWaits(t *testing.T) {
	// Settle is far longer than the gap between appends so that a slow machine does
	// not make the file look settled.
	const settle = 400 * time.Millisecond
	r := startRig(t, Folder{Settle: settle}, nil)
	fh, err := os.Create(r.path("big.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	for range 100 { // ≈ 1 s of appends, far longer than Settle
		n, err := fh.WriteString("row;1;2;3\n")
		if err != nil {
			t.Fatal(err)
		}
		written += int64(n)
		time.Sleep(10 * time.Millisecond)
		if names := r.callNames(); len(names) > 0 {
			t.Fatalf("file taken while still growing (after %d bytes)", written)
		}
	}
	fh.Close()
	r.waitExists(DoneDir, "big.csv")
	if c := r.callsSnapshot()[0]; c.Size != written {
		t.Errorf("claimed size = %d, want %d", c.Size, written)
	}
}

func TestIgnoredNames(t *testing.T) {
	r := startRig(t, Folder{Ignore: []string{"*.lock"}}, nil)
	ignored := []string{"a.csv.part", "b.partial", "c.filepart", "d.TMP", "e.csv~", ".hidden", "f.lock"}
	for _, n := range ignored {
		r.write(n, "x")
	}
	if err := os.Mkdir(r.path("subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.write("subdir/inner.csv", "x")
	if err := os.Symlink("/etc/hostname", r.path("link.csv")); err != nil {
		t.Fatal(err)
	}
	// The sentinel is dropped after the rest: once it is done, the others have had
	// every chance to be taken.
	r.write("sentinel.csv", "x")
	r.waitExists(DoneDir, "sentinel.csv")
	r.w.Rescan("billing")
	r.write("sentinel2.csv", "x")
	r.waitExists(DoneDir, "sentinel2.csv")
	if got := r.callNames(); !slices.Equal(got, []string{"sentinel.csv", "sentinel2.csv"}) {
		t.Fatalf("processed %v, want only the sentinels", got)
	}
	for _, n := range append(ignored, "subdir/inner.csv", "link.csv") {
		if _, err := os.Lstat(r.path(n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	// A temporary name renamed to its final name arrives.
	if err := os.Rename(r.path("a.csv.part"), r.path("a.csv")); err != nil {
		t.Fatal(err)
	}
	r.waitExists(DoneDir, "a.csv")
}

func TestDoneMarker(t *testing.T) {
	r := startRig(t, Folder{DoneMarker: "{name}.done"}, nil)
	r.write("a.csv", "a")
	r.write("b.csv", "b")
	r.write("b.csv.done", "")
	r.waitExists(DoneDir, "b.csv")
	r.waitFor("b's marker removed", func() bool { _, err := os.Lstat(r.path("b.csv.done")); return err != nil })
	r.w.Rescan("billing")
	r.write("c.csv", "c")
	r.write("c.csv.done", "")
	r.waitExists(DoneDir, "c.csv")
	if got := r.callNames(); !slices.Equal(got, []string{"b.csv", "c.csv"}) {
		t.Fatalf("processed %v: a.csv has no marker yet", got)
	}
	r.write("a.csv.done", "")
	r.waitExists(DoneDir, "a.csv")
	r.waitFor("a's marker removed", func() bool { _, err := os.Lstat(r.path("a.csv.done")); return err != nil })
	if got := r.list(""); !slices.Equal(got, []string{InProgressDir, DoneDir, RejectedDir}) {
		t.Errorf("folder holds %v", got)
	}
}

func TestRejectWritesReason(t *testing.T) {
	for _, c := range []struct {
		lang string
		want []string
	}{
		{"en", []string{"(Europe/Rome)", "file: billing.csv", "size: 4 bytes", "rule pod-format: bad POD"}},
		{"it", []string{"(ora di Roma)", "cartella: billing", "file: billing.csv", "dimensione: 4 byte", "rule pod-format: bad POD"}},
	} {
		t.Run(c.lang, func(t *testing.T) {
			testRejectWritesReason(t, c.lang, c.want)
		})
	}
}

func testRejectWritesReason(t *testing.T, lang string, want []string) {
	r := startRig(t, Folder{}, func(_ context.Context, c Claimed) (Outcome, error) {
		return Outcome{Rejected: true, Reason: "billing.csv line 3 field POD rule pod-format: bad POD", Lang: lang}, nil
	})
	r.write("billing.csv", "x;y\n")
	r.waitExists(RejectedDir, "billing.csv"+ReasonSuffix)
	reason := r.read(RejectedDir, "billing.csv"+ReasonSuffix)
	for _, want := range want {
		if !strings.Contains(reason, want) {
			t.Errorf("reason file lacks %q:\n%s", want, reason)
		}
	}
	if got := r.read(RejectedDir, "billing.csv"); got != "x;y\n" {
		t.Errorf("rejected content = %q", got)
	}
	r.waitFor("stats", func() bool { st := r.w.Stats()["billing"]; return st.Rejected == 1 && st.Done == 0 })
}

func TestReasonGolden(t *testing.T) {
	at := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC) // 03:30 CEST, the morning DST begins
	got := reasonTextIn(Claimed{Folder: "billing", Name: "f.csv", Size: 42}, "f.csv.1", "line 2 field IMPORTO rule amount: not a number", "en", at)
	golden := filepath.Join("testdata", "reason.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("reason text:\n%s\nwant:\n%s", got, want)
	}
}

func TestNameCollisionNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{DoneDir, RejectedDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, DoneDir, "a.csv"), []byte("old"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, DoneDir, "a.csv.1"), []byte("older"), 0o644))
	// In rejected/, a reason file alone also reserves its name.
	must(t, os.WriteFile(filepath.Join(dir, RejectedDir, "r.csv"+ReasonSuffix), []byte("old reason"), 0o644))
	r := startRig(t, Folder{Path: dir}, func(_ context.Context, c Claimed) (Outcome, error) {
		return Outcome{Rejected: strings.HasPrefix(c.Name, "r"), Reason: "nope"}, nil
	})
	r.write("a.csv", "new")
	r.write("r.csv", "rej")
	r.waitExists(DoneDir, "a.csv.2")
	r.waitExists(RejectedDir, "r.csv.1"+ReasonSuffix)
	for name, want := range map[string]string{
		"done/a.csv": "old", "done/a.csv.1": "older", "done/a.csv.2": "new",
		"rejected/r.csv.1": "rej", "rejected/r.csv" + ReasonSuffix: "old reason",
	} {
		if got := r.read(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryAtStartup(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, InProgressDir), 0o755))
	old := time.Now().Add(-time.Hour)
	for i, n := range []string{"y.csv", "x.csv"} {
		p := filepath.Join(dir, InProgressDir, n)
		must(t, os.WriteFile(p, []byte(n), 0o644))
		must(t, os.Chtimes(p, old, old.Add(time.Duration(i)*time.Minute))) // y older than x
	}
	must(t, os.WriteFile(filepath.Join(dir, "a.csv"), []byte("a"), 0o644))
	r := startRig(t, Folder{Path: dir}, nil)
	r.waitExists(DoneDir, "a.csv")
	calls := r.callsSnapshot()
	var got []string
	for _, c := range calls {
		got = append(got, fmt.Sprintf("%s recovered=%v", c.Name, c.Recovered))
	}
	want := []string{"y.csv recovered=true", "x.csv recovered=true", "a.csv recovered=false"}
	if !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v (recovered first, oldest first)", got, want)
	}
	if got := r.list(DoneDir); !slices.Equal(got, []string{"a.csv", "x.csv", "y.csv"}) {
		t.Errorf("done = %v", got)
	}
}

// Overflow: with nobody reading fsnotify, the kernel queue overflows for real; the
// files whose events were lost are found by the rescan the overflow triggers, each
// processed exactly once.
func TestOverflowRescansAndProcessesOnce(t *testing.T) {
	queued, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skip("no inotify:", err)
	}
	var limit int
	if _, err := fmt.Sscan(string(queued), &limit); err != nil || limit > 1<<20 {
		t.Skipf("max_queued_events = %q: too large to overflow in a test", queued)
	}
	r := newRig(t, Folder{Rescan: time.Hour, Watch: WatchNotify}, nil)
	gate := make(chan struct{})
	r.w.readerGate = gate
	r.start()

	// Fill the queue cheaply: alternate writes to two ignored files so that the kernel
	// cannot merge consecutive identical events.
	noise := [2]*os.File{}
	for i := range noise {
		f, err := os.Create(r.path(fmt.Sprintf(".noise%d", i)))
		must(t, err)
		defer f.Close()
		noise[i] = f
	}
	// fsnotify reads up to 64 KiB of events (≥ 16 bytes each) before it blocks on
	// its channel; the kernel then holds max_queued_events more.
	for i := 0; i < limit+65536/16+100; i++ {
		if _, err := noise[i%2].Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 60
	for i := range n {
		r.write(fmt.Sprintf("f%03d.csv", i), "x")
	}
	close(gate) // the reader now drains 16k noise events, then finds the overflow
	r.waitFor("all files done", func() bool { return len(r.list(DoneDir)) == n })
	counts := map[string]int{}
	for _, name := range r.callNames() {
		counts[name]++
	}
	if len(counts) != n {
		t.Errorf("%d distinct files processed, want %d", len(counts), n)
	}
	for name, c := range counts {
		if c != 1 {
			t.Errorf("%s processed %d times", name, c)
		}
	}
	if !r.hasEvent(EventOverflow) {
		t.Errorf("no overflow event; events = %v", r.eventKinds())
	}
	if st := r.w.Stats()["billing"]; st.Rescans == 0 { // counted before the rescan ran
		t.Errorf("stats = %+v, want a forced rescan counted", st)
	}
}

// The same path by injection: any watcher error means "rescan now".
func TestWatchErrorRescans(t *testing.T) {
	r := newRig(t, Folder{Rescan: time.Hour, Watch: WatchNotify}, nil)
	gate := make(chan struct{}) // never opened: events are not read at all
	r.w.readerGate = gate
	r.start()
	r.write("lost.csv", "x")
	r.w.watchError(errors.New("inotify: something broke"))
	r.waitExists(DoneDir, "lost.csv")
	if !r.hasEvent(EventWatchError) {
		t.Errorf("events = %v", r.eventKinds())
	}
	close(gate)
}

// With events lost silently, the periodic rescan still finds the file and says so.
func TestPeriodicRescanFindsMissedFiles(t *testing.T) {
	r := newRig(t, Folder{Rescan: 100 * time.Millisecond, Watch: WatchNotify}, nil)
	r.w.readerGate = make(chan struct{}) // never opened
	r.start()
	r.write("missed.csv", "x")
	r.waitExists(DoneDir, "missed.csv")
	r.waitFor("rescan event", func() bool { return r.hasEvent(EventRescan) })
}

func TestTransientErrorRetried(t *testing.T) {
	var mu sync.Mutex
	failures := 2
	r := startRig(t, Folder{Retry: 10 * time.Millisecond}, func(_ context.Context, c Claimed) (Outcome, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return Outcome{}, errors.New("database is locked")
		}
		return Outcome{}, nil
	})
	r.write("a.csv", "a")
	r.waitExists(DoneDir, "a.csv")
	var attempts []int
	for _, c := range r.callsSnapshot() {
		attempts = append(attempts, c.Attempt)
	}
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("attempts = %v", attempts)
	}
	r.waitFor("stats", func() bool {
		st := r.w.Stats()["billing"]
		return st.Errors == 2 && st.Done == 1 && st.InProgress == 0
	})
}

// A file re-delivered while its namesake is still in .inprogress waits for it.
func TestRedeliveryWaitsForInProgress(t *testing.T) {
	var mu sync.Mutex
	fail := true
	r := startRig(t, Folder{Retry: 300 * time.Millisecond}, func(_ context.Context, c Claimed) (Outcome, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false
			return Outcome{}, errors.New("transient")
		}
		return Outcome{}, nil
	})
	r.write("a.csv", "first")
	r.waitFor("first attempt", func() bool { return len(r.callNames()) == 1 })
	r.write("a.csv", "second")
	r.waitExists(DoneDir, "a.csv.1")
	if got := r.read(DoneDir, "a.csv"); got != "first" {
		t.Errorf("done/a.csv = %q, want the first delivery", got)
	}
	if got := r.read(DoneDir, "a.csv.1"); got != "second" {
		t.Errorf("done/a.csv.1 = %q", got)
	}
}

func TestPanicRejects(t *testing.T) {
	r := startRig(t, Folder{}, func(_ context.Context, c Claimed) (Outcome, error) {
		panic("index out of range [7] with length 3")
	})
	r.write("boom.csv", "x")
	r.waitExists(RejectedDir, "boom.csv"+ReasonSuffix)
	if reason := r.read(RejectedDir, "boom.csv"+ReasonSuffix); !strings.Contains(reason, "index out of range [7]") {
		t.Errorf("reason = %q", reason)
	}
	if !r.hasEvent(EventPanic) {
		t.Errorf("events = %v", r.eventKinds())
	}
	// And the folder keeps working.
	r.write("next.csv", "x")
	r.waitExists(RejectedDir, "next.csv")
}

func TestShutdownFinishesFileInHand(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var ctxErr error
	r := startRig(t, Folder{}, func(ctx context.Context, c Claimed) (Outcome, error) {
		close(started)
		<-release
		ctxErr = ctx.Err()
		return Outcome{}, nil
	})
	r.write("a.csv", "a")
	<-started
	r.cancel()
	r.cancel = nil
	select {
	case <-r.done:
		t.Fatal("Run returned while a file was in hand")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-r.done:
		must(t, err)
	case <-time.After(waitLimit):
		t.Fatal("Run did not return")
	}
	if ctxErr != nil {
		t.Errorf("ProcessFunc context was cancelled by shutdown: %v", ctxErr)
	}
	if _, err := os.Lstat(r.path(DoneDir, "a.csv")); err != nil {
		t.Errorf("file in hand not finished: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	must(t, os.WriteFile(file, nil, 0o644))
	ok := func(context.Context, Claimed) (Outcome, error) { return Outcome{}, nil }
	tests := []struct {
		name    string
		folders []Folder
		wantErr string
	}{
		{"no name", []Folder{{Path: dir}}, "has no name"},
		{"no path", []Folder{{Name: "a"}}, "has no path"},
		{"missing dir", []Folder{{Name: "a", Path: filepath.Join(dir, "nope")}}, "no such file"},
		{"not a dir", []Folder{{Name: "a", Path: file}}, "not a directory"},
		{"bad watch", []Folder{{Name: "a", Path: dir, Watch: "inotify"}}, "want auto, poll or notify"},
		{"bad glob", []Folder{{Name: "a", Path: dir, Ignore: []string{"[x"}}}, "ignore glob"},
		{"marker without name", []Folder{{Name: "a", Path: dir, DoneMarker: "READY"}}, "{name}"},
		{"marker is the name", []Folder{{Name: "a", Path: dir, DoneMarker: "{name}"}}, "{name}"},
		{"dup name", []Folder{{Name: "a", Path: dir}, {Name: "a", Path: t.TempDir()}}, "defined twice"},
		{"dup path", []Folder{{Name: "a", Path: dir}, {Name: "b", Path: dir + "/"}}, "share the path"},
		{"good", []Folder{{Name: "a", Path: dir, DoneMarker: "{name}.ok", Watch: "poll"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.folders, ok, nil, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestClassifyFS(t *testing.T) {
	tests := []struct {
		magic       int64
		name        string
		unwatchable bool
	}{
		{0x6969, "nfs", true},
		{0xFF534D42, "cifs", true},
		{int64(int32(-0x00ACB2BE)), "cifs", true}, // 0xFF534D42 as a signed 32-bit f_type
		{0xFE534D42, "smb2", true},
		{0x65735546, "fuse", true},
		{0x794C7630, "overlay", true},
		{0xEF53, "local (0xef53)", false},        // ext4
		{0x01021994, "local (0x1021994)", false}, // tmpfs
	}
	for _, tt := range tests {
		name, unw := classifyFS(tt.magic)
		if name != tt.name || unw != tt.unwatchable {
			t.Errorf("classifyFS(%#x) = %q,%v want %q,%v", tt.magic, name, unw, tt.name, tt.unwatchable)
		}
	}
}

func TestPollingEventOnUnwatchableFS(t *testing.T) {
	r := newRig(t, Folder{}, nil)
	f := r.w.folders[0]
	f.fsType, f.unwatchable = "nfs", true // as fsKind reports for an NFS mount
	f.poll.Store(true)
	f.cfg.PollInterval = 20 * time.Millisecond
	r.start()
	r.mu.Lock()
	events := slices.Clone(r.events)
	r.mu.Unlock()
	want := Event{Folder: "billing", Kind: EventPolling, Detail: "folder billing is on nfs: inotify cannot see changes made by other hosts; polling every 20ms"}
	if !slices.Contains(events, want) {
		t.Fatalf("events = %v, want %v", events, want)
	}
	r.write("a.csv", "a")
	r.waitExists(DoneDir, "a.csv")
	if st := r.w.Stats()["billing"]; st.Mode != WatchPoll || st.FSType != "nfs" {
		t.Errorf("stats = %+v", st)
	}
}

func TestUnstableFileReported(t *testing.T) {
	const settle = 400 * time.Millisecond
	r := startRig(t, Folder{Settle: settle, UnstableAfter: 100 * time.Millisecond}, nil)
	fh, err := os.Create(r.path("log.csv"))
	must(t, err)
	defer fh.Close()
	for !r.hasEvent(EventUnstable) {
		_, err := fh.WriteString("more\n")
		must(t, err)
		time.Sleep(10 * time.Millisecond)
		if len(r.callNames()) > 0 {
			t.Fatal("taken while changing")
		}
	}
	fh.Close()
	r.waitExists(DoneDir, "log.csv") // still taken once it stops
	if n := strings.Count(strings.Join(r.eventKinds(), " "), EventUnstable); n != 1 {
		t.Errorf("%d unstable events, want 1", n)
	}
	// Taken at last: the report ends.
	r.waitFor("settled event", func() bool { return r.hasEvent(EventSettled) })
}

// swapForFile replaces directory sub of the rig with a plain file (so renames into it
// fail) and returns a function that restores it.
func (r *rig) swapForFile(sub string) func() {
	r.t.Helper()
	must(r.t, os.Rename(r.path(sub), r.path(sub+".away")))
	must(r.t, os.WriteFile(r.path(sub), nil, 0o644))
	return func() {
		must(r.t, os.Remove(r.path(sub)))
		must(r.t, os.Rename(r.path(sub+".away"), r.path(sub)))
	}
}

func TestClaimFailureRetried(t *testing.T) {
	r := startRig(t, Folder{Retry: 20 * time.Millisecond}, nil)
	restore := r.swapForFile(InProgressDir)
	r.write("a.csv", "a")
	r.waitFor("claim_failed event", func() bool { return r.hasEvent(EventClaimFailed) })
	if _, err := os.Lstat(r.path("a.csv")); err != nil {
		t.Fatalf("file moved despite the failed claim: %v", err)
	}
	restore()
	r.waitExists(DoneDir, "a.csv")
}

// When the move to done/ fails, only the move is retried: the file is not processed
// a second time.
func TestFinishFailureRetriesOnlyTheMove(t *testing.T) {
	r := startRig(t, Folder{Retry: 20 * time.Millisecond}, nil)
	restore := r.swapForFile(DoneDir)
	r.write("a.csv", "a")
	r.waitFor("finish_failed event", func() bool { return r.hasEvent(EventFinishFailed) })
	restore()
	r.waitExists(DoneDir, "a.csv")
	if got := r.callNames(); len(got) != 1 {
		t.Errorf("processed %d times: %v", len(got), got)
	}
	// The daemon resolves its exception on this: the file left .inprogress at last.
	r.waitFor("finished event", func() bool { return r.hasEvent(EventFinished) })
}

// TestGrowthAfterFinishReported: a writer still holding the file appends to it once
// it is in done/ (the same inode): reported once (EventGrew) with both sizes; a file
// left alone is not.
func TestGrowthAfterFinishReported(t *testing.T) {
	r := startRig(t, Folder{UnstableAfter: time.Minute}, nil)
	fh, err := os.Create(r.path("slow.csv"))
	must(t, err)
	defer fh.Close()
	_, err = fh.WriteString("part one\n")
	must(t, err)
	r.drop("quiet.csv", "all at once\n")
	r.waitExists(DoneDir, "slow.csv")
	r.waitExists(DoneDir, "quiet.csv")
	_, err = fh.WriteString("part two\n")
	must(t, err)
	r.waitFor("grew event", func() bool { return r.hasEvent(EventGrew) })
	r.mu.Lock()
	var grew []Event
	for _, e := range r.events {
		if e.Kind == EventGrew {
			grew = append(grew, e)
		}
	}
	r.mu.Unlock()
	if len(grew) != 1 || grew[0].File != "slow.csv" || !strings.Contains(grew[0].Detail, "9 bytes when it was taken, done/slow.csv now has 18 bytes") ||
		grew[0].ModTime.IsZero() {
		t.Errorf("grew events %+v: want one for slow.csv with both sizes", grew)
	}
}

// A file taken goes to done/ with its receipts beside it, under the same free name;
// a receipt left without its file (a crash between the two steps) is overwritten by
// the re-run's, and a name taken by an earlier file gets .1 for both.
func TestDoneWritesReceipts(t *testing.T) {
	r := startRig(t, Folder{}, func(_ context.Context, c Claimed) (Outcome, error) {
		return Outcome{Receipts: map[string][]byte{".esito.txt": []byte("esito di " + c.Name), ".esito.html": []byte("<p>ok</p>")}}, nil
	})
	must(t, os.WriteFile(filepath.Join(r.dir, DoneDir, "a.csv"+".esito.txt"), []byte("orphan from a crash"), 0o644))
	r.write("a.csv", "1\n")
	r.waitExists(DoneDir, "a.csv")
	if got := r.read(DoneDir, "a.csv.esito.txt"); got != "esito di a.csv" {
		t.Errorf("receipt = %q", got)
	}
	if got := r.read(DoneDir, "a.csv.esito.html"); got != "<p>ok</p>" {
		t.Errorf("html receipt = %q", got)
	}
	r.write("a.csv", "2\n")
	r.waitExists(DoneDir, "a.csv.1")
	if got := r.read(DoneDir, "a.csv.1.esito.txt"); got != "esito di a.csv" {
		t.Errorf("second receipt = %q", got)
	}
	if got := r.read(DoneDir, "a.csv"); got != "1\n" {
		t.Errorf("first file overwritten: %q", got)
	}
}

// TestGrowthWatchStartsFromWhatWasOpened: the watch of a finished file compares with
// the size the file had when it was opened for processing, not with a look after
// the move, which would take in a chunk appended in between and never report it. A
// chunk appended during processing is reported by the watch unless ProcessFunc says
// it reported it itself (GrowthReported).
func TestGrowthWatchStartsFromWhatWasOpened(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reported bool
		want     int
	}{
		{"not reported by the processing", false, 1},
		{"reported by the processing", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRig(t, Folder{UnstableAfter: time.Minute}, func(_ context.Context, c Claimed) (Outcome, error) {
				fh, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					return Outcome{}, err
				}
				defer fh.Close()
				_, err = fh.WriteString("part two\n")
				return Outcome{GrowthReported: tc.reported}, err
			})
			r.write("slow.csv", "part one\n")
			r.waitExists(DoneDir, "slow.csv")
			r.drop("later.csv", "x\n") // a second file: the watch of the first has had its look once this is done
			r.waitExists(DoneDir, "later.csv")
			if tc.want > 0 {
				r.waitFor("grew event", func() bool { return r.hasEvent(EventGrew) })
			} else {
				time.Sleep(300 * time.Millisecond)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			var grew []Event
			for _, e := range r.events {
				if e.Kind == EventGrew {
					grew = append(grew, e)
				}
			}
			if len(grew) != tc.want {
				t.Fatalf("grew events %+v, want %d", grew, tc.want)
			}
			if tc.want > 0 && !strings.Contains(grew[0].Detail, "9 bytes when it was taken, done/slow.csv now has 18 bytes") {
				t.Errorf("detail %q: want both sizes", grew[0].Detail)
			}
		})
	}
}

// A drop folder that stops being the one cmord set up is said once, and once more
// when it is back: deleted (the listing fails), or an unmounted share whose empty
// mount point lists fine but lacks .inprogress. Before, the failing listing was only
// logged at each scan and the empty mount point not at all: files waiting on the
// share were never taken in, and nobody was told.
func TestLostFolderReported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lose   func(t *testing.T, dir string) // dir has been moved away to dir+".away"
		detail string
	}{
		{"deleted", func(t *testing.T, dir string) {}, "cannot be listed"},
		{"unmounted", func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o755); err != nil { // the empty mount point
				t.Fatal(err)
			}
		}, ".inprogress subdirectory is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRig(t, Folder{Watch: WatchPoll, PollInterval: 20 * time.Millisecond}, nil)
			r.drop("before.csv", "x")
			r.waitExists(DoneDir, "before.csv")
			if err := os.Rename(r.dir, r.dir+".away"); err != nil {
				t.Fatal(err)
			}
			tc.lose(t, r.dir)
			r.waitFor("folder_lost event", func() bool { return r.hasEvent(EventFolderLost) })
			r.mu.Lock()
			var lost []Event
			for _, e := range r.events {
				if e.Kind == EventFolderLost {
					lost = append(lost, e)
				}
			}
			r.mu.Unlock()
			if !strings.Contains(lost[0].Detail, tc.detail) || lost[0].Folder != "billing" {
				t.Errorf("folder_lost %+v does not say %q", lost[0], tc.detail)
			}
			// Said once, not at every poll.
			time.Sleep(100 * time.Millisecond)
			r.mu.Lock()
			n := 0
			for _, e := range r.events {
				if e.Kind == EventFolderLost {
					n++
				}
			}
			r.mu.Unlock()
			if n != 1 {
				t.Errorf("%d folder_lost events, want 1", n)
			}
			// Mounted again: said, and files are taken in again.
			if err := os.RemoveAll(r.dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(r.dir+".away", r.dir); err != nil {
				t.Fatal(err)
			}
			r.waitFor("folder_back event", func() bool { return r.hasEvent(EventFolderBack) })
			r.drop("after.csv", "y")
			r.waitExists(DoneDir, "after.csv")
		})
	}
}

// In done-marker mode a file whose marker never comes (its writer died half-way) was
// never taken and never reported: now it is said once, UnstableAfter after it appeared,
// and still taken once its marker is there.
func TestMarkerNeverComesReported(t *testing.T) {
	r := startRig(t, Folder{DoneMarker: "{name}.done", UnstableAfter: 100 * time.Millisecond}, nil)
	r.write("half.csv", "half written")
	r.waitFor("unstable event", func() bool { return r.hasEvent(EventUnstable) })
	r.mu.Lock()
	ev := r.events[len(r.events)-1]
	r.mu.Unlock()
	if ev.File != "half.csv" || !strings.Contains(ev.Detail, "for its done-marker half.csv.done") {
		t.Errorf("event %+v", ev)
	}
	if len(r.callNames()) != 0 {
		t.Fatal("taken without its marker")
	}
	r.w.Rescan("billing") // a scan does not say it again
	r.write("half.csv.done", "")
	r.waitExists(DoneDir, "half.csv")
	if n := strings.Count(strings.Join(r.eventKinds(), " "), EventUnstable); n != 1 {
		t.Errorf("%d unstable events, want 1", n)
	}
	// Taken at last (a long copy whose marker came late): the report ends.
	r.waitFor("settled event", func() bool { return r.hasEvent(EventSettled) })
}

// A file reported unstable that is then deleted (its writer gave up and removed the
// half file) waits no more: the report ends as well, once; a file never reported
// unstable says nothing when it goes.
func TestUnstableMarkerFileGoneSettles(t *testing.T) {
	r := startRig(t, Folder{DoneMarker: "{name}.done", UnstableAfter: 100 * time.Millisecond}, nil)
	r.write("half.csv", "half written")
	r.write("other.csv", "never reported")
	r.waitFor("unstable event", func() bool { return r.hasEvent(EventUnstable) })
	os.Remove(filepath.Join(r.dir, "half.csv"))
	r.w.Rescan("billing")
	r.waitFor("settled event", func() bool { return r.hasEvent(EventSettled) })
	r.mu.Lock()
	var settled []string
	for _, ev := range r.events {
		if ev.Kind == EventSettled {
			settled = append(settled, ev.File)
		}
	}
	r.mu.Unlock()
	if fmt.Sprint(settled) != "[half.csv]" {
		t.Errorf("settled %v, want [half.csv]", settled)
	}
}
