package daemon

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/crypto/ssh"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/intake"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
	"github.com/cmord/cmord/daemon/sftpx/sftpserver"
	"github.com/cmord/cmord/flows"
)

// excWorld is a testWorld on the wall clock (deliveries and the SFTP client's backoff
// use it) with helpers to provoke operational exceptions for real.
type excWorld struct {
	*testWorld
}

func newExcWorld(t *testing.T) *excWorld {
	t.Helper()
	w := &excWorld{newTestWorld(t, time.Now(), "")}
	// Short settle and SFTP backoff: the conditions below need no long waits.
	w.tune(func(c *config.Config) {
		for i := range c.Folders {
			c.Folders[i].Settle = 50 * time.Millisecond
			c.Folders[i].PollInterval = 50 * time.Millisecond
			c.Folders[i].UnstableAfter = 300 * time.Millisecond
		}
		c.SFTP[0].BackoffMin, c.SFTP[0].BackoffMax = 10*time.Millisecond, 20*time.Millisecond
	})
	return w
}

// tune applies a changed copy of the configuration, as a reload would.
func (w *excWorld) tune(change func(c *config.Config)) {
	w.t.Helper()
	cfg := *w.d.Config()
	cfg.Folders = append([]config.Folder(nil), cfg.Folders...)
	cfg.SFTP = append([]config.SFTP(nil), cfg.SFTP...)
	change(&cfg)
	if err := w.d.apply(&cfg); err != nil {
		w.t.Fatal(err)
	}
}

// all returns every exception of kind, open or not.
func (w *excWorld) all(kind string) []archive.Exception {
	w.t.Helper()
	es, err := w.d.Store.Exceptions(context.Background(), archive.ExceptionFilter{Kind: kind})
	if err != nil {
		w.t.Fatal(err)
	}
	return es
}

// waitFor polls the archive until cond holds on the exceptions of kind: the daemon's
// goroutines raise them on their own timers.
func (w *excWorld) waitFor(kind string, what string, cond func([]archive.Exception) bool) {
	w.t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for !cond(w.all(kind)) {
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: %s never happened; have %+v", kind, what, w.all(kind))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run starts the daemon (drop folders, scheduler) until the test ends.
func (w *excWorld) run() {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.d.Run(ctx) }()
	w.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Errorf("Run: %v", err)
		}
	})
}

// scan takes in what is in the drop folders, as `cmord run --once` does.
func (w *excWorld) scan() {
	w.t.Helper()
	if err := w.d.ScanFoldersOnce(context.Background()); err != nil {
		w.t.Fatalf("ScanFoldersOnce: %v", err)
	}
}

func (w *excWorld) later(d time.Duration) { w.now = w.now.Add(d) }

// queueFlow archives a built flow file and queues it to the SII, as a builder does.
func (w *excWorld) queueFlow(name string) archive.File {
	w.t.Helper()
	var f archive.File
	err := w.d.Store.Write(context.Background(), func(tx *sql.Tx) error {
		var err error
		if f, err = w.d.ArchiveBuilt(context.Background(), tx, Built{Name: name, Kind: "REQ", Content: []byte("A;B\r\n1;2\r\n")}, "build:test"); err != nil {
			return err
		}
		return w.d.QueueToSII(context.Background(), tx, f)
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return f
}

func (w *excWorld) deliver() {
	w.t.Helper()
	if _, err := w.d.DeliverDue(context.Background()); err != nil {
		w.t.Fatalf("DeliverDue: %v", err)
	}
}

// restartSFTP stops the SII's server and starts a new one on the same port: a new
// process, so a new host key. trust says whether known_hosts learns the new key.
func (w *excWorld) restartSFTP(trust bool) {
	w.t.Helper()
	addr, root := w.srv.Addr, w.srv.Root
	w.srv.Close()
	key, err := os.ReadFile(w.d.Config().SFTP[0].KeyFile)
	if err != nil {
		w.t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		w.t.Fatal(err)
	}
	srv, err := sftpserver.StartOn(addr, root, signer.PublicKey())
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { srv.Close() })
	w.srv = srv
	if trust {
		w.trustSFTP()
	}
}

func (w *excWorld) trustSFTP() {
	w.t.Helper()
	if err := w.srv.WriteKnownHosts(w.d.Config().SFTP[0].KnownHosts); err != nil {
		w.t.Fatal(err)
	}
}

// pollUntilReachable polls the SII until a listing succeeds: the client refuses to
// dial again until its (short) backoff has passed.
func (w *excWorld) pollUntilReachable() {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := w.d.PollSII(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("SII still unreachable: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *excWorld) fileID(source, name string) int64 {
	w.t.Helper()
	fs, err := w.d.Store.ListFiles(context.Background(), archive.FileFilter{Source: source, Name: name})
	if err != nil || len(fs) == 0 {
		w.t.Fatalf("no archived file %s %s: %v", source, name, err)
	}
	return fs[len(fs)-1].ID // oldest version
}

// excCase provokes one kind of exception through the code path that detects it.
type excCase struct {
	name     string
	kind     string
	severity string
	owner    string
	// provoke makes the condition happen once and returns the subject and file id
	// the exception must name (file id 0: none).
	provoke func(t *testing.T, w *excWorld) (subject string, fileID int64)
	message []string // substrings of the message
	// repeat makes it happen again; count is the exception's count afterwards (a
	// repeat bumps the counter of the same row; 1 when the code deliberately reports
	// once). nil: the condition cannot repeat under the same identity.
	repeat func(t *testing.T, w *excWorld)
	count  int
	// clear removes the condition where the code resolves the exception by itself
	// (resolved_by auto); nil: resolved by hand only.
	clear func(t *testing.T, w *excWorld)
}

const refusedCSV = "not;a;billing;header\r\n1;2;3;4\r\n"

// acceptedCSV is an extract that is processed (a header, no case): duplicates of
// processed content are refused; a refused file dropped again is processed again.
var acceptedCSV = strings.Join(morosiHeader, ";") + "\r\n"

func excCases() []excCase {
	var cases []excCase
	for _, group := range [][]excCase{excCasesInput(), excCasesSFTP(), excCasesFolders(), excCasesArchiveMail()} {
		cases = append(cases, group...)
	}
	return cases
}

// excCasesInput are the cases of the files taken in: refused, failing, duplicated.
func excCasesInput() []excCase {
	return []excCase{
		{
			name: "file_rejected/bad header", kind: "file_rejected", severity: archive.SevHigh, owner: "operator",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.drop("morosi", "morosi-bad.csv", refusedCSV)
				w.scan()
				if _, err := os.Stat(filepath.Join(w.folders["morosi"], "rejected", "morosi-bad.csv.reason.txt")); err != nil {
					t.Errorf("no reason file: %v", err)
				}
				return "morosi-bad.csv", w.fileID("folder:morosi", "morosi-bad.csv")
			},
			message: []string{"morosi-bad.csv refused"},
			// A refused file dropped again unchanged is a new attempt (the operator may
			// have corrected the folder's mapping), refused again: a second occurrence.
			repeat: func(t *testing.T, w *excWorld) { w.drop("morosi", "morosi-bad.csv", refusedCSV); w.scan() },
			count:  2,
		},
		{
			name: "file_rejected/handler panics", kind: "file_rejected", severity: archive.SevHigh, owner: "operator",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.tune(func(c *config.Config) { c.Folders[0].Kind = "test.panic" })
				w.d.Handle("test.panic", HandlerFunc(func(context.Context, *Input) (Result, error) { panic("handler bug") }))
				w.drop("morosi", "crash.csv", "x;y\r\n")
				w.scan()
				if _, err := os.Stat(filepath.Join(w.folders["morosi"], "rejected", "crash.csv")); err != nil {
					t.Errorf("panicking file not in rejected/: %v", err)
				}
				return "crash.csv", 0
			},
			message: []string{"folder morosi", "crash.csv refused after an internal error", "handler bug"},
			repeat:  func(t *testing.T, w *excWorld) { w.drop("morosi", "crash.csv", "x;y\r\n"); w.scan() },
			count:   2,
		},
		{
			name: "duplicate_file/other name", kind: "duplicate_file", severity: archive.SevLow, owner: "operator",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.drop("morosi", "a.csv", acceptedCSV)
				w.scan()
				w.drop("morosi", "b.csv", acceptedCSV)
				w.scan()
				if _, err := os.Stat(filepath.Join(w.folders["morosi"], "done", "a.csv")); err != nil {
					t.Errorf("the original was not processed: %v", err)
				}
				reason, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", "b.csv.reason.txt"))
				if err != nil {
					t.Errorf("the duplicate was not refused: %v", err)
				}
				// In the operator's language, with nothing to correct.
				for _, want := range []string{"Motivo: Contenuto identico a un file già ricevuto: non viene elaborato di nuovo. (già ricevuto come a.csv, #",
					"Nessuna correzione necessaria"} {
					if !strings.Contains(string(reason), want) {
						t.Errorf("reason file lacks %q:\n%s", want, reason)
					}
				}
				if strings.Contains(string(reason), "Corretto il file") || strings.Contains(string(reason), "Errori") {
					t.Errorf("the reason file of a duplicate asks for a correction:\n%s", reason)
				}
				return "b.csv", w.fileID("folder:morosi", "b.csv")
			},
			message: []string{"b.csv: identical content was already received as a.csv", "not processed again"},
			repeat:  func(t *testing.T, w *excWorld) { w.drop("morosi", "b.csv", acceptedCSV); w.scan() },
			count:   2,
		},
		{
			name: "duplicate_file/same name again", kind: "duplicate_file", severity: archive.SevLow, owner: "operator",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.drop("morosi", "same.csv", acceptedCSV)
				w.scan()
				w.drop("morosi", "same.csv", acceptedCSV)
				w.scan()
				ents, _ := os.ReadDir(filepath.Join(w.folders["morosi"], "rejected"))
				if len(ents) != 2 { // the second drop and its reason file; the first is in done/
					t.Errorf("rejected/ holds %d entries, want 2", len(ents))
				}
				return "same.csv", w.fileID("folder:morosi", "same.csv")
			},
			message: []string{"same.csv: identical content was already received as same.csv"},
			repeat:  func(t *testing.T, w *excWorld) { w.drop("morosi", "same.csv", acceptedCSV); w.scan() },
			count:   2,
		},
	}
}

// excCasesSFTP are the cases of the SII over SFTP: uploads, reachability, host key.
func excCasesSFTP() []excCase {
	return []excCase{
		{
			name: "upload_failed/server refuses the write", kind: "upload_failed", severity: archive.SevHigh, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				f := w.queueFlow("REQ_TEST_0001.csv")
				// The SII's inbound directory is not a directory: every create fails.
				in := filepath.Join(w.srv.Root, "in")
				if err := os.Remove(in); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(in, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				w.deliver()
				if len(w.all("sii_unreachable")) != 0 {
					t.Error("a refused write counted as an unreachable SII")
				}
				return "sii", f.ID
			},
			message: []string{"publishing REQ_TEST_0001.csv to sftp:sii failed (attempt 1)"},
			repeat:  func(t *testing.T, w *excWorld) { w.later(2 * time.Hour); w.deliver() },
			count:   2,
			clear: func(t *testing.T, w *excWorld) {
				in := filepath.Join(w.srv.Root, "in")
				if err := os.Remove(in); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(in, 0o755); err != nil {
					t.Fatal(err)
				}
				w.later(2 * time.Hour)
				w.deliver()
				if _, ok := w.published()["REQ_TEST_0001.csv"]; !ok {
					t.Errorf("not published after the server recovered: %v", keys(w.published()))
				}
			},
		},
		{
			name: "sii_unreachable/server stopped", kind: "sii_unreachable", severity: archive.SevUrgent, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.pollUntilReachable()
				w.srv.Close()
				if err := w.d.PollSII(context.Background()); err == nil {
					t.Fatal("poll of a stopped server succeeded")
				}
				if n := len(w.all("sii_unreachable")); n != 0 {
					t.Fatalf("raised at the first failure, before unreachable_alert_after: %d", n)
				}
				w.later(31 * time.Minute)
				_ = w.d.PollSII(context.Background())
				return "sii", 0
			},
			message: []string{"SII endpoint sii unreachable since " + time.Now().In(flows.Rome).Format("02/01/2006")},
			repeat:  func(t *testing.T, w *excWorld) { w.later(time.Minute); _ = w.d.PollSII(context.Background()) },
			count:   2,
			clear: func(t *testing.T, w *excWorld) {
				w.restartSFTP(true)
				w.pollUntilReachable()
			},
		},
		{
			name: "hostkey_mismatch/server key changed", kind: "hostkey_mismatch", severity: archive.SevUrgent, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.pollUntilReachable()
				w.restartSFTP(false)
				time.Sleep(25 * time.Millisecond) // past the client's backoff (backoff_max 20ms)
				if err := w.d.PollSII(context.Background()); err == nil {
					t.Fatal("connected to a server whose host key changed")
				}
				return "sii", 0
			},
			message: []string{"SFTP sii:", "cmord refused to connect"},
			repeat: func(t *testing.T, w *excWorld) {
				time.Sleep(25 * time.Millisecond)
				_ = w.d.PollSII(context.Background())
			},
			count: 2,
			clear: func(t *testing.T, w *excWorld) {
				w.trustSFTP()
				w.pollUntilReachable()
			},
		},
		{
			name: "watch_overflow/drop folder renamed, then queue overflow", kind: "watch_overflow", severity: archive.SevNormal, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.tune(func(c *config.Config) { c.Folders[0].Watch = "notify"; c.Folders[0].Rescan = time.Hour })
				w.run()
				// Once a file has gone through, the folder is watched.
				w.drop("morosi", "probe.csv", refusedCSV)
				w.waitFor("file_rejected", "the probe file refused", func(es []archive.Exception) bool { return len(es) == 1 })
				dir := w.folders["morosi"]
				if err := os.Rename(dir, dir+".moved"); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(dir+".moved", dir); err != nil {
					t.Fatal(err)
				}
				w.waitFor("watch_overflow", "raised", func(es []archive.Exception) bool { return len(es) == 1 })
				return "morosi", 0
			},
			message: []string{"folder morosi: file notifications were lost", "removed or renamed"},
			// A kernel queue overflow cannot be provoked from here without holding
			// intake's reader (intake's own test does that, with the real kernel):
			// the daemon's handler gets the event intake sends for it.
			repeat: func(t *testing.T, w *excWorld) {
				w.d.intakeEvent(intake.Event{Folder: "morosi", Kind: intake.EventOverflow, Detail: fsnotify.ErrEventOverflow.Error()})
				if es := w.all("watch_overflow"); len(es) == 1 && !strings.Contains(es[0].Message, "queue or buffer overflow") {
					t.Errorf("overflow message: %q", es[0].Message)
				}
			},
			count: 2,
		},
	}
}

// excCasesFolders are the cases of drop folders and the schedule.
func excCasesFolders() []excCase {
	var stopUnstable func() // the file_unstable case's writers
	return []excCase{
		{
			name: "file_unstable/writer never stops", kind: "file_unstable", severity: archive.SevNormal, owner: "operator",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				// A settle far above the writers' 25 ms ticks: a writer held up by a loaded
				// machine (-race, parallel tests) must not let its file settle and be taken
				// before it is reported (it then never was: 'raised for both files' failed).
				w.tune(func(c *config.Config) { c.Folders[0].Watch = "notify"; c.Folders[0].Settle = 2 * time.Second })
				w.run()
				// Two files written without pause for longer than the limit: one
				// exception each, each naming its file.
				stop := make(chan struct{})
				writersDone := make(chan struct{}, 2)
				for _, name := range []string{"growing.csv", "growing2.csv"} {
					go func() {
						defer func() { writersDone <- struct{}{} }()
						f, err := os.Create(filepath.Join(w.folders["morosi"], name))
						if err != nil {
							t.Error(err)
							return
						}
						defer f.Close()
						f.WriteString(name + ";") // different bytes: not duplicates of each other
						tick := time.NewTicker(25 * time.Millisecond)
						defer tick.Stop()
						for {
							select {
							case <-stop:
								return
							case <-tick.C:
								f.WriteString("x;")
							}
						}
					}()
				}
				w.waitFor("file_unstable", "raised for both files", func(es []archive.Exception) bool { return len(es) == 2 })
				var once sync.Once
				stopUnstable = func() {
					once.Do(func() {
						close(stop)
						<-writersDone
						<-writersDone
					})
				}
				t.Cleanup(stopUnstable)
				return "morosi/growing.csv", 0
			},
			message: []string{"folder morosi: file growing.csv is still changing", "it will be taken once it stops"},
			// Reported, not refused: once the writer stops the file is taken, and the
			// report ends (it stayed open, by hand only, for a file long processed).
			clear: func(t *testing.T, w *excWorld) {
				stopUnstable()
				w.waitFor("file_rejected", "the files taken once settled", func(es []archive.Exception) bool { return len(es) == 2 })
				w.waitFor("file_unstable", "both resolved once taken", func(es []archive.Exception) bool {
					return len(es) == 2 && !es[0].Open() && !es[1].Open()
				})
			},
		},
		{
			// The drop folder's share unmounted: its empty mount point lists fine, and
			// before, nothing said that files waiting on the share were never taken in.
			name: "folder_unreadable/share unmounted", kind: "folder_unreadable", severity: archive.SevHigh, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.tune(func(c *config.Config) { c.Folders[0].Watch = "poll" })
				w.run()
				// Once a file has gone through, the folder is set up and scanned.
				w.drop("morosi", "probe.csv", refusedCSV)
				w.waitFor("file_rejected", "the probe file refused", func(es []archive.Exception) bool { return len(es) == 1 })
				dir := w.folders["morosi"]
				if err := os.Rename(dir, dir+".share"); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(dir, 0o755); err != nil { // the empty mount point
					t.Fatal(err)
				}
				w.waitFor("folder_unreadable", "raised", func(es []archive.Exception) bool { return len(es) == 1 })
				if err := w.d.health(); err == nil || !strings.Contains(err.Error(), "drop folder morosi") {
					t.Errorf("/healthz with the folder unmounted: %v", err)
				}
				return "morosi", 0
			},
			message: []string{"drop folder morosi", ".inprogress subdirectory is missing", "no longer mounted", "no file is taken in"},
			clear: func(t *testing.T, w *excWorld) {
				dir := w.folders["morosi"]
				if err := os.Remove(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(dir+".share", dir); err != nil {
					t.Fatal(err)
				}
				w.waitFor("folder_unreadable", "resolved", func(es []archive.Exception) bool { return len(es) == 1 && !es[0].Open() })
				if err := w.d.health(); err != nil && strings.Contains(err.Error(), "drop folder") {
					t.Errorf("/healthz with the folder back: %v", err)
				}
			},
		},
		{
			name: "claim_failed/.inprogress on another filesystem", kind: "claim_failed", severity: archive.SevHigh, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				// As root a read-only directory does not stop a rename; a .inprogress
				// that is a symlink (here to another disk) does: no file is moved
				// through a link someone put in place of cmord's directory.
				other, err := os.MkdirTemp("/dev/shm", "cmord-exc-")
				if err != nil {
					t.Skipf("no /dev/shm: %v", err)
				}
				t.Cleanup(func() { os.RemoveAll(other) })
				var a, b syscall.Stat_t
				if syscall.Stat(other, &a) != nil || syscall.Stat(w.folders["morosi"], &b) != nil || a.Dev == b.Dev {
					t.Skip("/dev/shm is on the same filesystem as the temp dir")
				}
				if err := os.Symlink(other, filepath.Join(w.folders["morosi"], intake.InProgressDir)); err != nil {
					t.Fatal(err)
				}
				w.tune(func(c *config.Config) { c.Folders[0].Watch = "notify" })
				w.run()
				w.drop("morosi", "stuck.csv", refusedCSV)
				w.waitFor("claim_failed", "raised", func(es []archive.Exception) bool { return len(es) == 1 })
				if _, err := os.Stat(filepath.Join(w.folders["morosi"], "stuck.csv")); err != nil {
					t.Errorf("the file left its folder: %v", err)
				}
				return "morosi", 0
			},
			message: []string{"folder morosi: cannot move a ready file into .inprogress: stuck.csv", ".inprogress is a symbolic link, not cmord's own directory"},
			repeat: func(t *testing.T, w *excWorld) {
				w.drop("morosi", "stuck2.csv", refusedCSV+"2")
				w.waitFor("claim_failed", "bumped", func(es []archive.Exception) bool { return len(es) == 1 && es[0].Count == 2 })
			},
			count: 2,
		},
		{
			name: "missed_schedule/down across a slot, policy skip", kind: "missed_schedule", severity: archive.SevNormal, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				w.tune(func(c *config.Config) {
					c.Schedule.Verify = config.Job{Name: JobVerify, Spec: "0 3 * * *", Missed: "skip"}
				})
				// The last run the ledger knows is three days ago: the daemon was down since.
				y, m, d := time.Now().In(flows.Rome).AddDate(0, 0, -3).Date()
				last := time.Date(y, m, d, 3, 0, 0, 0, flows.Rome)
				ledger := w.d.Store.ScheduleLedger()
				if _, err := ledger.Begin(context.Background(), JobVerify, last, false); err != nil {
					t.Fatal(err)
				}
				if err := ledger.Finish(context.Background(), JobVerify, last, nil); err != nil {
					t.Fatal(err)
				}
				w.run()
				w.waitFor("missed_schedule", "raised", func(es []archive.Exception) bool { return len(es) == 1 })
				return JobVerify, 0
			},
			message: []string{"job verify:", "missed:", last3am(-2)},
		},
	}
}

// excCasesArchiveMail are the cases of the archive and the mail relay.
func excCasesArchiveMail() []excCase {
	return []excCase{
		{
			name: "verify_failed/blob changed on disk", kind: "verify_failed", severity: archive.SevUrgent, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				f := w.queueFlow("REQ_VERIFY.csv")
				p, _, err := w.d.Store.Blobs.StoredFile(f.Hash)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("tampered"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := w.d.VerifyArchive(context.Background()); err == nil {
					t.Fatal("verify passed over a changed blob")
				}
				return "archive", 0
			},
			message: []string{"archive verify found 1 problems", "content changed", "used by file #1 out REQ_VERIFY.csv"},
			repeat:  func(t *testing.T, w *excWorld) { _ = w.d.VerifyArchive(context.Background()) },
			count:   2,
			clear: func(t *testing.T, w *excWorld) {
				f, err := w.d.Store.GetFile(context.Background(), 1)
				if err != nil {
					t.Fatal(err)
				}
				p, compressed, err := w.d.Store.Blobs.StoredFile(f.Hash)
				if err != nil || compressed {
					t.Fatalf("blob %s: compressed %v, %v", p, compressed, err)
				}
				if err := os.WriteFile(p, []byte("A;B\r\n1;2\r\n"), 0o444); err != nil {
					t.Fatal(err)
				}
				if err := w.d.VerifyArchive(context.Background()); err != nil {
					t.Fatalf("verify after restore: %v", err)
				}
			},
		},
		{
			name: "mail_failed/SMTP server refuses the digest", kind: "mail_failed", severity: archive.SevHigh, owner: "sysadmin",
			provoke: func(t *testing.T, w *excWorld) (string, int64) {
				sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { sink.Close() })
				sink.FailNext(1000)
				// Two refusals make a dead letter instead of ten.
				w.tune(func(c *config.Config) {
					c.Mail.Host, c.Mail.Port, c.Mail.TLS, c.Mail.DeadLetterAfter = sink.Host(), sink.Port(), "none", 1
				})
				sender := w.d.Sender().(*mail.Sender)
				sender.Now = func() time.Time { return w.now }
				// The digest is named by the day it was sent on: the clock moves on below,
				// possibly past midnight in Rome.
				subject := "digest:" + w.now.In(flows.Rome).Format("2006-01-02")
				if err := w.d.SendDigestNow(context.Background()); err != nil {
					t.Fatal(err)
				}
				if len(w.all("mail_failed")) != 0 {
					t.Fatal("raised at the first refusal")
				}
				w.later(2 * time.Hour) // past the outbox's backoff
				if _, err := w.d.FlushMail(context.Background()); err != nil {
					t.Fatal(err)
				}
				if len(sink.Messages()) != 0 {
					t.Fatal("the sink accepted a message it should refuse")
				}
				return subject, 0
			},
			message: []string{"still not delivered after 2 attempts", "451", "a copy is in"},
			// Reported once per message: later refusals do not mail the sysadmin again.
			repeat: func(t *testing.T, w *excWorld) { w.later(2 * time.Hour); w.d.FlushMail(context.Background()) },
			count:  1,
		},
	}
}

// last3am is 03:00 (Rome) days from today, as missed_schedule prints slots.
func last3am(days int) string {
	return time.Now().In(flows.Rome).AddDate(0, 0, days).Format("02/01/2006") + " 03:00"
}

// TestExceptionKinds drives each operational exception through its real detection
// path and checks the row a person reads: kind, severity, owner, subject, file,
// message, open; the same row bumped on a repeat; closed automatically where the
// condition clearing is detected.
func TestExceptionKinds(t *testing.T) {
	for _, tc := range excCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newExcWorld(t)
			subject, fileID := tc.provoke(t, w)
			var es []archive.Exception
			for _, e := range w.all(tc.kind) {
				if e.Subject == subject {
					es = append(es, e)
				}
			}
			if len(es) != 1 {
				t.Fatalf("want one %s exception about %q, have %+v", tc.kind, subject, w.all(tc.kind))
			}
			e := es[0]
			t.Logf("%s %s/%s subject %q file #%d: %s", e.Kind, e.Severity, e.Owner, e.Subject, e.FileID, e.Message)
			if !e.Open() || e.Severity != tc.severity || e.Owner != tc.owner || e.Count != 1 || e.FileID != fileID {
				t.Errorf("exception: open %v severity %q owner %q count %d file %d; want open, %q, %q, 1, file %d",
					e.Open(), e.Severity, e.Owner, e.Count, e.FileID, tc.severity, tc.owner, fileID)
			}
			for _, m := range tc.message {
				if !strings.Contains(e.Message, m) {
					t.Errorf("message %q does not say %q", e.Message, m)
				}
			}
			if e.Action == "" {
				t.Error("no action for the person who reads it")
			}
			if tc.repeat != nil {
				tc.repeat(t, w)
				got, err := w.d.Store.GetException(context.Background(), e.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Count != tc.count || !got.Open() {
					t.Errorf("after a repeat: count %d open %v, want count %d, open", got.Count, got.Open(), tc.count)
				}
				if n := len(w.all(tc.kind)); n != 1 {
					t.Errorf("after a repeat: %d %s exceptions, want the same one", n, tc.kind)
				}
			}
			if tc.clear != nil {
				tc.clear(t, w)
				got, err := w.d.Store.GetException(context.Background(), e.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Open() || got.ResolvedBy != "auto" || got.Resolution == "" {
					t.Errorf("condition cleared, exception not resolved automatically: %+v", got)
				}
			}
		})
	}
}

// TestExceptionExportUnpublished: an entrante export built while outbound.billing_dir
// is unset is archived but reaches nobody; the export file is named.
func TestExceptionExportUnpublished(t *testing.T) {
	w := newEntWorld(t, entStart, `["entrante"]`, "")
	cfg := *w.d.Config()
	cfg.Outbound.BillingDir = ""
	if err := w.d.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	w.sii("NOTIF_ENTR", noticeRows()...)
	w.runOnce()
	es := w.exceptions("export_unpublished")
	if len(es) != 1 {
		t.Fatalf("export_unpublished: %+v", es)
	}
	e := es[0]
	f, err := w.d.Store.GetFile(context.Background(), e.FileID)
	if err != nil || !strings.HasPrefix(f.Name, "CMOR_DA_ADDEBITARE_") {
		t.Fatalf("exception names file #%d: %+v %v", e.FileID, f, err)
	}
	if e.Severity != archive.SevHigh || e.Owner != "sysadmin" || e.Subject == "" || e.Count != 1 ||
		!strings.Contains(e.Message, f.Name) || !strings.Contains(e.Message, "outbound.billing_dir is not configured") {
		t.Errorf("exception: %+v", e)
	}
	if ents, _ := os.ReadDir(w.billing); len(ents) != 0 {
		t.Errorf("something reached billing: %v", ents)
	}
}
