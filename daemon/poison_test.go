package daemon

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/intake"
	"github.com/cmord/cmord/flows"
)

// realSQLiteErrors provokes SQLite's busy and constraint errors on a real database
// file: a second writer while the first holds the lock (busy_timeout 0, so at once),
// and a UNIQUE violation.
func realSQLiteErrors(t *testing.T) (busy, constraint error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.db")
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)&_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	if _, err := a.Exec(`CREATE TABLE t (x INTEGER UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(`INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	_, constraint = a.Exec(`INSERT INTO t VALUES (1)`)
	tx, err := a.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	_, busy = b.Exec(`INSERT INTO t VALUES (2)`)
	if busy == nil || constraint == nil {
		t.Fatalf("no SQLite errors provoked: busy %v, constraint %v", busy, constraint)
	}
	return busy, constraint
}

// TestClassifyFailure sorts real errors as the poison-file policy must: what would
// fail the same way again is permanent, the machine's troubles are transient.
func TestClassifyFailure(t *testing.T) {
	busy, constraint := realSQLiteErrors(t)
	dir := t.TempDir()
	_, readDir := os.ReadFile(dir) // reading a directory: EISDIR on the source path
	tooLong := flows.Finding{File: "m.csv", Line: 7, Rule: flows.RuleCSVLine, Message: "line longer than 1048576 bytes"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		err    error
		source string
		want   failureClass
	}{
		{"line too long (a finding returned as error)", fmt.Errorf("read m.csv: %w", tooLong), "", failPermanent},
		{"UNIQUE constraint in the handler", fmt.Errorf("save practice: %w", constraint), "", failPermanent},
		{"source cannot be read", readDir, dir, failPermanent},
		{"database locked by another process", fmt.Errorf("archive: begin: %w", busy), "", failTransient},
		{"disk full writing the blob", &fs.PathError{Op: "write", Path: "/var/lib/cmord/objects/tmp-1", Err: syscall.ENOSPC}, "/srv/in/m.csv", failTransient},
		{"state directory not writable", &fs.PathError{Op: "open", Path: "/var/lib/cmord/objects/tmp-1", Err: syscall.EACCES}, "/srv/in/m.csv", failTransient},
		{"shutdown", ctx.Err(), "", failTransient},
		{"a bug of unknown kind", errors.New("index out of step"), "", failUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyFailure(tt.err, tt.source); got != tt.want {
				t.Errorf("classifyFailure(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}

// failedAttempts counts the PROCESSING_FAILED events of the archive.
func failedAttempts(t *testing.T, st *archive.Store) int {
	t.Helper()
	var n int
	if err := st.Read().QueryRow(`SELECT count(*) FROM events WHERE type = 'PROCESSING_FAILED'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPoisonFileRejected: a drop whose processing fails ends in rejected/ with its
// reason and an open file_rejected exception saying what failed: at once for an error
// that would repeat (a real UNIQUE constraint of the archive broken by the handler),
// after max_attempts for an error of unknown kind; nothing stays in .inprogress.
func TestPoisonFileRejected(t *testing.T) {
	// A handler that breaks a real constraint of the archive: the blob of its own file
	// inserted a second time (PRIMARY KEY), as a handler inserting the same key twice.
	constraint := func(ctx context.Context, in *Input) (Result, error) {
		return Result{}, in.Store.Write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO blobs (hash, size, created_at) VALUES (?, 0, '')`, in.File.Hash)
			return err
		})
	}
	unknown := func(context.Context, *Input) (Result, error) {
		return Result{}, errors.New("simulated handler failure")
	}
	tests := []struct {
		name        string
		maxAttempts int
		handler     func(context.Context, *Input) (Result, error)
		calls       int // handler calls wanted
		reason      []string
	}{
		{name: "constraint failure: at once", maxAttempts: 3, handler: constraint, calls: 1,
			reason: []string{"would repeat at every attempt", "UNIQUE constraint failed: blobs.hash"}},
		{name: "unknown error: after 3 attempts", maxAttempts: 3, handler: unknown, calls: 3,
			reason: []string{"processing failed 3 times (max_attempts = 3)", "simulated handler failure"}},
		{name: "unknown error, max_attempts 1", maxAttempts: 1, handler: unknown, calls: 1,
			reason: []string{"processing failed 1 times (max_attempts = 1)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newExcWorld(t)
			w.tune(func(c *config.Config) {
				c.Folders[0].Retry, c.Folders[0].MaxAttempts = 20*time.Millisecond, tt.maxAttempts
			})
			var calls atomic.Int32
			w.d.Handle(config.KindUscenteMorosi, HandlerFunc(func(ctx context.Context, in *Input) (Result, error) {
				calls.Add(1)
				return tt.handler(ctx, in)
			}))
			w.drop("morosi", "poison.csv", acceptedCSV)
			w.scan()
			if int(calls.Load()) != tt.calls {
				t.Errorf("handler called %d times, want %d", calls.Load(), tt.calls)
			}
			if n := failedAttempts(t, w.d.Store); n != tt.calls {
				t.Errorf("%d failed attempts recorded, want %d", n, tt.calls)
			}
			reason, err := os.ReadFile(filepath.Join(w.folders["morosi"], intake.RejectedDir, "poison.csv"+intake.ReasonSuffix))
			if err != nil {
				t.Fatalf("no reason file: %v", err)
			}
			if left, _ := os.ReadDir(filepath.Join(w.folders["morosi"], intake.InProgressDir)); len(left) != 0 {
				t.Errorf(".inprogress still holds %d files", len(left))
			}
			es := w.all("file_rejected")
			if len(es) != 1 || !es[0].Open() || es[0].FileID == 0 {
				t.Fatalf("want one open file_rejected exception on the file, have %+v", es)
			}
			if !strings.Contains(es[0].Message, "folder morosi: poison.csv refused") || !strings.Contains(es[0].Action, "rejected/") {
				t.Errorf("exception %q / %q: want the folder and file, and the reason file in rejected/", es[0].Message, es[0].Action)
			}
			for _, want := range tt.reason {
				if !strings.Contains(string(reason), want) {
					t.Errorf("reason file does not say %q:\n%.300s", want, reason)
				}
				if !strings.Contains(es[0].Message, want) {
					t.Errorf("exception does not say %q: %.300s", want, es[0].Message)
				}
			}
			f, err := w.d.Store.GetFile(context.Background(), es[0].FileID)
			if err != nil || f.State != archive.StateRejected {
				t.Errorf("archived file: %+v %v, want rejected", f.State, err)
			}
		})
	}
}

// TestTransientBusyRetried: another process holds the archive's database (a real
// second SQLite connection in BEGIN IMMEDIATE) for longer than the busy timeout while
// a file is taken in. That is the machine's problem, not the file's: even with
// max_attempts = 1 the file is not refused; it is retried, an exception says it
// waits, and once the lock is released it is processed and the exception resolves.
func TestTransientBusyRetried(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out SQLite's 10 s busy timeout")
	}
	w := newExcWorld(t)
	w.tune(func(c *config.Config) {
		c.Folders[0].Retry, c.Folders[0].MaxAttempts = 50*time.Millisecond, 1
	})
	db, err := sql.Open("sqlite", "file:"+filepath.Join(w.d.Store.Dir(), "index.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.Begin() // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	failures := func() float64 {
		var m dto.Metric
		if err := w.d.Metrics.Failures.WithLabelValues("archive").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	w.drop("morosi", "busy.csv", acceptedCSV)
	done := make(chan error, 1)
	go func() { done <- w.d.ScanFoldersOnce(context.Background()) }()
	// Hold the lock until the first attempt has failed (busy timeout), then let go.
	deadline := time.Now().Add(30 * time.Second)
	for failures() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never failed on the locked database")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tx.Rollback()
	if err := <-done; err != nil {
		t.Fatalf("ScanFoldersOnce: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.folders["morosi"], intake.DoneDir, "busy.csv")); err != nil {
		t.Fatalf("the file was not processed after the lock was released: %v", err)
	}
	if es := w.all("file_rejected"); len(es) != 0 {
		t.Errorf("a transient failure refused the file: %+v", es)
	}
	es := w.all("file_retrying")
	if len(es) != 1 || es[0].Open() || es[0].ResolvedBy != "auto" || !strings.Contains(es[0].Message, "database is locked") {
		t.Errorf("want one file_retrying exception naming the lock, resolved automatically; have %+v", es)
	}
}

// TestFileGrewAfterClaim: a slow writer (settle shorter than its pauses) goes on
// appending to the file after cmord took it. The archived part is processed, and an
// exception names the file and both sizes, so the rest is never ignored in silence.
func TestFileGrewAfterClaim(t *testing.T) {
	w := newExcWorld(t)
	real := w.d.handlers[config.KindUscenteMorosi]
	p := filepath.Join(w.folders["morosi"], "slow.csv")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(acceptedCSV); err != nil {
		t.Fatal(err)
	}
	// The writer's next chunk lands while the file is being processed (the handler
	// waits for it, so the test does not depend on timing).
	w.d.Handle(config.KindUscenteMorosi, HandlerFunc(func(ctx context.Context, in *Input) (Result, error) {
		if _, err := f.WriteString(strings.Repeat("more;", 20) + "\r\n"); err != nil {
			return Result{}, err
		}
		return real.Handle(ctx, in)
	}))
	w.scan()
	es := w.all("file_grew")
	if len(es) != 1 {
		t.Fatalf("want one file_grew exception, have %+v", es)
	}
	want := []string{"folder morosi", "slow.csv changed after it was taken", fmt.Sprintf("%d bytes were archived", len(acceptedCSV)),
		fmt.Sprintf("now has %d bytes", len(acceptedCSV)+102), "the rest was not read"}
	for _, s := range want {
		if !strings.Contains(es[0].Message, s) {
			t.Errorf("message %q does not say %q", es[0].Message, s)
		}
	}
	if es[0].FileID == 0 || es[0].Owner != "operator" || !strings.Contains(es[0].Action, "settle") {
		t.Errorf("exception %+v: want the file, owner operator, the settle advice", es[0])
	}
	// A file written once and left alone raises nothing.
	w.drop("morosi", "quiet.csv", acceptedCSV+"\r\n")
	w.d.Handle(config.KindUscenteMorosi, real)
	w.scan()
	if es := w.all("file_grew"); len(es) != 1 {
		t.Errorf("a file that did not change raised file_grew: %+v", es)
	}
}

// TestSIIPoisonFile: an SII file fetched over SFTP whose processing keeps failing is
// refused (state rejected in the archive, an open file_rejected exception naming it
// and what failed) instead of being retried at every poll for ever: after the
// endpoint's max_attempts for an error of unknown kind, at once for a handler that
// panics. It never holds up the file fetched after it.
func TestSIIPoisonFile(t *testing.T) {
	tests := []struct {
		name    string
		fail    func() (Result, error)
		calls   int32
		message []string
	}{
		{"unknown error", func() (Result, error) { return Result{}, errors.New("simulated handler failure") }, 2,
			[]string{"failed 2 times", "simulated handler failure"}},
		{"handler panics", func() (Result, error) { panic("handler bug") }, 1,
			[]string{"would repeat at every attempt", "internal error while processing (panic): handler bug"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newExcWorld(t)
			w.tune(func(c *config.Config) { c.SFTP[0].MaxAttempts = 2 })
			const poison, good = "SI10100_20251016_0001.csv", "SI10100_20251016_0002.csv"
			real := w.d.handlers["REQ_AMM"]
			var calls atomic.Int32
			w.d.Handle("REQ_AMM", HandlerFunc(func(ctx context.Context, in *Input) (Result, error) {
				if in.File.Name == poison {
					calls.Add(1)
					return tt.fail()
				}
				return real.Handle(ctx, in)
			}))
			header := "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n"
			w.answer(poison, header+"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E250000001;SII2025A0000001;1;;\r\n")
			w.answer(good, header+"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E259999999;SII2025A0000099;1;;\r\n")
			ctx := context.Background()
			for poll := 1; poll <= 3; poll++ {
				_ = w.d.PollSII(ctx) // the poison file's failure is reported, the poll goes on
			}
			if n := calls.Load(); n != tt.calls {
				t.Errorf("poison file processed %d times over 3 polls, want %d", n, tt.calls)
			}
			files, err := w.d.Store.ListFiles(ctx, archive.FileFilter{Source: "sftp:sii"})
			if err != nil {
				t.Fatal(err)
			}
			states := map[string]string{}
			for _, f := range files {
				states[f.Name] = f.State
			}
			if states[poison] != archive.StateRejected || states[good] != archive.StateProcessed {
				t.Errorf("states %v: want %s rejected and %s processed", states, poison, good)
			}
			es := w.all("file_rejected")
			if len(es) != 1 || !es[0].Open() || es[0].Subject != poison {
				t.Fatalf("want one open file_rejected exception on %s; have %+v", poison, es)
			}
			for _, m := range append(tt.message, "SFTP sii: "+poison+" refused") {
				if !strings.Contains(es[0].Message, m) {
					t.Errorf("message %q does not say %q", es[0].Message, m)
				}
			}
			// No rejected/ folder for an SII file: the action says where it is.
			if !strings.Contains(es[0].Action, "cmord archive cat") || strings.Contains(es[0].Action, "rejected/") {
				t.Errorf("action %q: want the archive commands", es[0].Action)
			}
		})
	}
}

// TestFinishFailedRaisesAndResolves: a file processed but that cannot leave
// .inprogress (done/ is no longer a directory) has an open exception saying so while
// it waits there, resolved by itself once the move succeeds.
func TestFinishFailedRaisesAndResolves(t *testing.T) {
	w := newExcWorld(t)
	w.tune(func(c *config.Config) { c.Folders[0].Retry = 20 * time.Millisecond })
	done := filepath.Join(w.folders["morosi"], intake.DoneDir)
	real := w.d.handlers[config.KindUscenteMorosi]
	w.d.Handle(config.KindUscenteMorosi, HandlerFunc(func(ctx context.Context, in *Input) (Result, error) {
		// Someone replaces done/ with a file while the extract is processed.
		if err := os.Remove(done); err != nil {
			return Result{}, err
		}
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return Result{}, err
		}
		return real.Handle(ctx, in)
	}))
	w.drop("morosi", "stuck.csv", acceptedCSV)
	restored := make(chan struct{})
	go func() {
		defer close(restored)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, e := range w.all("file_retrying") {
				if e.Open() {
					os.Remove(done)
					os.Mkdir(done, 0o755)
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	w.scan()
	<-restored
	es := w.all("file_retrying")
	if len(es) != 1 || !strings.Contains(es[0].Message, "stuck.csv: processed but not moved out of .inprogress") || es[0].Owner != "sysadmin" {
		t.Fatalf("want one file_retrying exception naming the file; have %+v", es)
	}
	if es[0].Open() || es[0].ResolvedBy != "auto" {
		t.Errorf("not resolved once the file left .inprogress: %+v", es[0])
	}
	if _, err := os.Stat(filepath.Join(done, "stuck.csv")); err != nil {
		t.Errorf("the file did not reach done/: %v", err)
	}
}

// TestUnreadableDropRefusedAtOnce: a claimed file that cannot be read (here a
// directory where the file should be: the read fails with EISDIR on its own path) is
// refused at its first attempt, with the read error as the reason and an exception;
func TestUnreadableDropRefusedAtOnce(t *testing.T) {
	w := newExcWorld(t)
	claimed := filepath.Join(w.folders["morosi"], intake.InProgressDir, "odd.csv")
	if err := os.MkdirAll(claimed, 0o755); err != nil {
		t.Fatal(err)
	}
	// Intake refuses a directory as unsafe before the daemon sees it; an open that fails
	// otherwise (a mode the cmord user may not read: not reproducible as root) reaches
	// the daemon as OpenErr, which is what this hands over.
	_, openErr := os.ReadFile(claimed)
	out, err := w.d.processClaimed(context.Background(), intake.Claimed{Folder: "morosi", Name: "odd.csv", Path: claimed, Attempt: 1, OpenErr: openErr})
	if err != nil {
		t.Fatalf("an unreadable file was left for a retry: %v", err)
	}
	if !out.Rejected || !strings.Contains(out.Reason, "cannot be read") || !strings.Contains(out.Reason, "is a directory") {
		t.Errorf("outcome %+v: want refused, saying the file cannot be read and why", out)
	}
	es := w.all("file_rejected")
	if len(es) != 1 || !es[0].Open() || es[0].Subject != "odd.csv" || !strings.Contains(es[0].Message, "folder morosi: odd.csv refused") {
		t.Errorf("want one open file_rejected exception on odd.csv; have %+v", es)
	}
}

// TestFileGrewAfterFinish: the slow writer pauses longer than settle and than the
// processing, and appends again once the file is already in done/ (the same inode
// under its new name). The daemon's later look at done/ raises file_grew on the
// archived file, with the size taken and the size now.
func TestFileGrewAfterFinish(t *testing.T) {
	w := newExcWorld(t)
	// Watched for a minute: the test's write lands in it however slow the machine.
	w.tune(func(c *config.Config) { c.Folders[0].UnstableAfter = time.Minute })
	p := filepath.Join(w.folders["morosi"], "slow.csv")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(acceptedCSV); err != nil {
		t.Fatal(err)
	}
	w.run()
	done := filepath.Join(w.folders["morosi"], intake.DoneDir, "slow.csv")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(done); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file never reached done/")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(w.all("file_grew")) != 0 {
		t.Fatal("file_grew raised before the file grew")
	}
	if _, err := f.WriteString(strings.Repeat("more;", 20) + "\r\n"); err != nil {
		t.Fatal(err)
	}
	w.waitFor("file_grew", "raised for the file grown in done/", func(es []archive.Exception) bool { return len(es) == 1 })
	e := w.all("file_grew")[0]
	for _, s := range []string{"folder morosi: slow.csv changed after it was taken and finished", fmt.Sprintf("%d bytes when it was taken", len(acceptedCSV)),
		fmt.Sprintf("done/slow.csv now has %d bytes", len(acceptedCSV)+102)} {
		if !strings.Contains(e.Message, s) {
			t.Errorf("message %q does not say %q", e.Message, s)
		}
	}
	if e.FileID != w.fileID("folder:morosi", "slow.csv") || e.Subject != "morosi/slow.csv" {
		t.Errorf("exception on file #%d subject %q, want the archived slow.csv", e.FileID, e.Subject)
	}
}

// TestTransientFailuresDoNotCount: failures of the machine (a real SQLite "database
// is locked") between failures of the file do not bring its refusal closer: with
// max_attempts = 3, two transient failures and then errors of unknown kind refuse
// the file at the third unknown failure, the fifth call.
func TestTransientFailuresDoNotCount(t *testing.T) {
	busy, _ := realSQLiteErrors(t)
	w := newExcWorld(t)
	w.tune(func(c *config.Config) { c.Folders[0].Retry, c.Folders[0].MaxAttempts = 20*time.Millisecond, 3 })
	var calls atomic.Int32
	w.d.Handle(config.KindUscenteMorosi, HandlerFunc(func(context.Context, *Input) (Result, error) {
		if calls.Add(1) <= 2 {
			return Result{}, fmt.Errorf("save: %w", busy)
		}
		return Result{}, errors.New("simulated handler failure")
	}))
	w.drop("morosi", "mixed.csv", acceptedCSV)
	w.scan()
	if n := calls.Load(); n != 5 {
		t.Errorf("handler called %d times, want 5 (2 transient + 3 counted)", n)
	}
	es := w.all("file_rejected")
	if len(es) != 1 || !strings.Contains(es[0].Message, "failed 3 times") {
		t.Errorf("want one file_rejected saying 3 failed attempts; have %+v", es)
	}
	if es := w.all("file_retrying"); len(es) != 0 {
		t.Errorf("2 transient failures (< max_attempts) raised file_retrying: %+v", es)
	}
}

// logRecords returns the JSON log records of the file at path that keep says to keep.
func logRecords(t *testing.T, path string, keep func(map[string]any) bool) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// TestDropFailureLoggedOnce: each failed attempt at a dropped file is one log line
// carrying every field (intake's folder, attempt and retry delay; the poison-file
// policy's class, failures counted in the archive, max_attempts, the file's kind and
// id; the error), not one line from intake and others from the daemon; the refusal
// that ends it is one line too, whoever writes it (the policy, or intake for a panic).
func TestDropFailureLoggedOnce(t *testing.T) {
	unknown := func(context.Context, *Input) (Result, error) {
		return Result{}, errors.New("simulated handler failure")
	}
	permanent := func(context.Context, *Input) (Result, error) {
		return Result{}, flows.Finding{Line: 2, Field: "COD_POD", Rule: "X", Message: "simulated"}
	}
	panics := func(context.Context, *Input) (Result, error) { panic("simulated handler panic") }
	const retryMsg, refusedMsg = "processing failed; will retry", "file refused after failed processing"
	retryFields := []string{"folder", "file", "attempt", "retry_in", "err", "class", "failures", "max_attempts", "kind", "file_id"}
	refusedFields := []string{"where", "file", "class", "attempts", "err", "kind", "file_id"}
	tests := []struct {
		name      string
		handler   func(context.Context, *Input) (Result, error)
		retries   int    // "will retry" lines wanted, one per failed attempt before the refusal
		refusal   string // the refusal's line
		refFields []string
	}{
		{name: "unknown error: two retries, then refused", handler: unknown, retries: 2, refusal: refusedMsg, refFields: refusedFields},
		{name: "permanent error: refused at once", handler: permanent, refusal: refusedMsg, refFields: refusedFields},
		{name: "panic: refused at once by intake", handler: panics, refusal: "panic while processing; file rejected",
			refFields: []string{"folder", "file", "panic", "stack"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newExcWorld(t)
			w.tune(func(c *config.Config) {
				c.Folders[0].Retry, c.Folders[0].MaxAttempts = 20*time.Millisecond, 3
			})
			// A file: the daemon's and intake's goroutines write to it at once.
			logs := filepath.Join(t.TempDir(), "cmord.log")
			lf, err := os.Create(logs)
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			w.d.Log = slog.New(slog.NewJSONHandler(lf, nil))
			w.d.Handle(config.KindUscenteMorosi, HandlerFunc(tt.handler))
			w.drop("morosi", "poison.csv", acceptedCSV)
			w.scan()
			if _, err := os.Stat(filepath.Join(w.folders["morosi"], intake.RejectedDir, "poison.csv")); err != nil {
				t.Fatalf("not refused: %v", err)
			}
			// Every line about the file but its move to rejected/ (intake's "file
			// finished", another event): one per failed attempt, one refusal.
			all := logRecords(t, logs, func(r map[string]any) bool {
				return r["msg"] != "file finished" && (r["file"] == "poison.csv" || strings.Contains(fmt.Sprint(r["detail"]), "poison.csv"))
			})
			var msgs []string
			for _, r := range all {
				msgs = append(msgs, r["msg"].(string))
			}
			want := append(slices.Repeat([]string{retryMsg}, tt.retries), tt.refusal)
			if !slices.Equal(msgs, want) {
				t.Errorf("log lines about the file: %q, want %q", msgs, want)
			}
			for i, r := range all {
				fields := retryFields
				if i == len(all)-1 {
					fields = tt.refFields
				}
				for _, k := range fields {
					if _, ok := r[k]; !ok {
						t.Errorf("line %d (%s) has no %q: %v", i, r["msg"], k, r)
					}
				}
				if i < tt.retries && (r["attempt"] != float64(i+1) || r["failures"] != float64(i+1)) {
					t.Errorf("failure line %d: attempt %v, failures %v, want %d", i, r["attempt"], r["failures"], i+1)
				}
			}
		})
	}
}
