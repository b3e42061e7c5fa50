package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/demo"
	"github.com/cmord/cmord/daemon/sftpx/sshdtest"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

// TestMain lets the test binary act as a daemon process for the kill-and-restart
// tests: with CMORD_TEST_CHILD set it runs one `run --once` cycle on the given
// configuration and exits, and CMORD_FAILPOINT may kill it on the way.
func TestMain(m *testing.M) {
	if cfgPath := os.Getenv("CMORD_TEST_CHILD"); cfgPath != "" {
		os.Exit(childOnce(cfgPath))
	}
	if cfgPath := os.Getenv("CMORD_TEST_HUGE_CHILD"); cfgPath != "" {
		os.Exit(childHuge(cfgPath)) // TestHugeValueMemory
	}
	os.Exit(m.Run())
}

func childOnce(cfgPath string) int {
	if v := os.Getenv("CMORD_TEST_CHUNK_CASES"); v != "" {
		fmt.Sscan(v, &uscente.ChunkCases) // small chunks, so that a kill can fall between two
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	d, err := New(cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer d.Close()
	if calls := os.Getenv("CMORD_TEST_POISON_CALLS"); calls != "" {
		// A failing handler: with an error of unknown kind, or (CMORD_TEST_POISON_KIND
		// = constraint) breaking a real UNIQUE constraint of the archive. Each call
		// appends a line to the file named, so the test counts calls across processes.
		permanent := os.Getenv("CMORD_TEST_POISON_KIND") == "constraint"
		d.Handle(config.KindUscenteMorosi, HandlerFunc(func(ctx context.Context, in *Input) (Result, error) {
			f, err := os.OpenFile(calls, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err == nil {
				fmt.Fprintln(f, "call")
				f.Close()
			}
			if permanent {
				return Result{}, in.Store.Write(ctx, func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO blobs (hash, size, created_at) VALUES (?, 0, '')`, in.File.Hash)
					return err
				})
			}
			return Result{}, errors.New("simulated handler failure")
		}))
	}
	if err := d.RunOnce(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "cycle:", err)
		return 1
	}
	return 0
}

// killEnv is one scenario's world: a real OpenSSH sshd standing in for the SII, a
// drop folder, a state directory.
type killEnv struct {
	dir, cfgPath string
	sshd         *sshdtest.Server
	inbox        string // where cmord publishes (on the sshd)
}

func newKillEnv(t *testing.T, sshd *sshdtest.Server) *killEnv {
	t.Helper()
	dir := t.TempDir()
	// One remote directory per scenario: TempDir's base name restarts at 001 in each
	// subtest, and scenarios sharing an SII directory would see each other's files.
	remote, err := os.MkdirTemp(sshd.Root, "env-")
	if err != nil {
		t.Fatal(err)
	}
	e := &killEnv{dir: dir, sshd: sshd, inbox: filepath.Join(remote, "to-sii")}
	for _, p := range []string{"in/morosi", "state", e.inbox, filepath.Join(remote, "from-sii")} {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`state_dir = "state"
[company]
piva = "00488410010"
name = "Test S.p.A."
roles = ["uscente", "entrante"]
sectors = ["E", "G"]
piva_gestore = "01234567897"
[[folder]]
name = "morosi"
path = "in/morosi"
kind = "uscente.morosi"
settle = "100ms"
[[sftp]]
name = "sii"
host = "127.0.0.1"
port = %d
user = %q
key_file = %q
known_hosts = %q
inbound_dir = %q
outbound_dir = %q
dial_timeout = "5s"
io_timeout = "10s"
`, sshd.Port, sshd.User, sshd.ClientKeyFile, sshd.KnownHostsFile,
		filepath.Join(remote, "from-sii"), e.inbox)
	e.cfgPath = filepath.Join(dir, "cmord.toml")
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	return e
}

// run executes one daemon cycle in a child process; with a failpoint the child is
// expected to die by SIGKILL.
func (e *killEnv) run(t *testing.T, failpoint string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CMORD_TEST_CHILD="+e.cfgPath, "CMORD_FAILPOINT="+failpoint, "CMORD_TEST_CHUNK_CASES=2")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if failpoint == "" {
		if err != nil {
			t.Fatalf("cycle without failpoint: %v\n%s", err, out.String())
		}
		return
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("failpoint %s: child exited normally (%v); the point was never reached\n%s", failpoint, err, out.String())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("failpoint %s: child ended with %v, want SIGKILL\n%s", failpoint, err, out.String())
	}
}

// outcome is what a scenario ended with, compared across scenarios.
type outcome struct {
	practices   []string // case key + state
	sentCodes   []string // every CP_UTENTE published, with the remote file it is in
	remoteFiles int
	inputRows   int
	receipt     string // the summary of done/morosi.csv.esito.txt
}

func (e *killEnv) outcome(t *testing.T) outcome {
	t.Helper()
	st, err := archive.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var o outcome
	ps, err := st.QueryPractices(ctx, archive.PracticeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		o.practices = append(o.practices, p.CaseKey+" "+p.State)
		// Its case, stored deflated against its chunk's dictionary, reads back whole
		// whatever chunk a kill fell in (the chunk tests compare it byte for byte).
		if d, err := flows.ParseUscenteData(p.Data); p.Role == "uscente" && (err != nil || d.Case.POD+d.Case.PDR != p.Point) {
			t.Errorf("%s: case %.60q does not read back (%v)", p.CaseKey, p.Data, err)
		}
		if p.State != flows.StateSent {
			continue
		}
		// Sent once: one move to SENT, from BUILT, whatever was killed on the way.
		hist, err := st.PracticeHistory(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		var moves []string
		for _, h := range hist {
			if h.To == flows.StateSent && h.From != flows.StateSent {
				moves = append(moves, h.From+">"+h.To)
			}
		}
		if len(moves) != 1 || moves[0] != flows.StateBuilt+">"+flows.StateSent {
			t.Errorf("%s: moves to SENT %v, want one from BUILT", p.CaseKey, moves)
		}
	}
	sort.Strings(o.practices)
	files, _ := st.ListFiles(ctx, archive.FileFilter{Source: "folder:morosi"})
	o.inputRows = len(files)
	for _, f := range files {
		if f.State != archive.StateProcessed {
			t.Errorf("input %s is %s, want processed", f.Name, f.State)
		}
	}
	n, _ := st.PendingDeliveries(ctx)
	if n != 0 {
		t.Errorf("%d deliveries still pending", n)
	}
	rep, err := st.Verify(ctx, nil)
	if err != nil || !rep.OK() {
		t.Errorf("archive verify: %v %v", err, rep.Problems)
	}
	// The file's end moved every practice's customer and amount lookups, a kill
	// between its chunks or not (migration 0042).
	if n, err := st.PendingLookups(ctx, nil); err != nil || n != 0 {
		t.Errorf("%d practices left pending their lookups (%v)", n, err)
	}
	findableByLookups(t, st)
	// The SII side: only complete files under final names, each request exactly once.
	ents, _ := os.ReadDir(e.inbox)
	seen := map[string]string{}
	cat := flows.DefaultCatalog()
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), ".") || strings.HasSuffix(en.Name(), ".part") {
			t.Errorf("temporary file left on the SII server: %s", en.Name())
			continue
		}
		o.remoteFiles++
		b, _ := os.ReadFile(filepath.Join(e.inbox, en.Name()))
		fl := cat.Identify(en.Name(), b)
		if fl == nil || fl.Key != "REQ" {
			t.Errorf("remote file %s is not a REQ flow", en.Name())
			continue
		}
		for i, line := range strings.Split(strings.TrimSpace(string(b)), "\r\n") {
			if i == 0 {
				continue
			}
			cols := strings.Split(line, ";")
			code := cols[fl.Layout().Index("CP_UTENTE")]
			if prev, dup := seen[code]; dup && prev != en.Name() {
				t.Errorf("request %s published twice: in %s and %s", code, prev, en.Name())
			}
			seen[code] = en.Name()
		}
	}
	for code := range seen {
		o.sentCodes = append(o.sentCodes, code)
	}
	sort.Strings(o.sentCodes)
	// The operator's view: the extract is in done/ exactly once, nothing in progress.
	// The extract is there with its receipt beside it, whatever the crash.
	done, _ := os.ReadDir(filepath.Join(e.dir, "in/morosi/done"))
	var names []string
	for _, d := range done {
		names = append(names, d.Name())
	}
	if strings.Join(names, " ") != "morosi.csv morosi.csv.esito.txt" {
		t.Errorf("done/ holds %v, want the extract and its receipt", names)
	}
	rc, err := os.ReadFile(filepath.Join(e.dir, "in/morosi/done/morosi.csv.esito.txt"))
	if err != nil {
		t.Errorf("receipt: %v", err)
	}
	text := string(rc)
	if i, j := strings.Index(text, "Riepilogo"), strings.Index(text, "\n\n"+"Accettate"); i >= 0 && j > i {
		o.receipt = text[i:j]
	} else {
		t.Errorf("receipt without a summary and its accepted practices:\n%s", text)
	}
	if inprog, _ := os.ReadDir(filepath.Join(e.dir, "in/morosi/.inprogress")); len(inprog) != 0 {
		t.Errorf(".inprogress still holds %d files", len(inprog))
	}
	return o
}

// receiptTotals is the totals block of a receipt summary: the lines up to the first
// blank line.
func receiptTotals(summary string) string {
	if i := strings.Index(summary, "\n\n"); i >= 0 {
		return summary[:i]
	}
	return summary
}

// TestKillAndRestart kills the daemon at chosen points of the data path — after the
// claim, after archiving, between two committed chunks of the extract, after processing, in the middle of the upload to a real
// OpenSSH sshd, after the upload before it was recorded — restarts it, and checks
// that the end state is the same as an uninterrupted run: every input archived once,
// processed once, every request delivered once, no partial file on the SII server.
func TestKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd and child processes")
	}
	sshd := sshdtest.Start(t, sshdtest.Options{})
	extract := demo.MorosiCSV(time.Now())
	// The same extract with its rows shuffled: the rows of a practice are no longer
	// adjacent, so the daemon sorts them by key and commits in chunks of practices.
	grouped := extract
	lines := strings.Split(strings.TrimRight(string(extract), "\r\n"), "\r\n")
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(lines)-1, func(i, j int) { lines[i+1], lines[j+1] = lines[j+1], lines[i+1] })
	shuffled := []byte(strings.Join(lines, "\r\n") + "\r\n")
	if adjacent, _ := uscente.KeysAdjacent(context.Background(), flows.NewCSVReader(bytes.NewReader(shuffled),
		flows.DefaultCatalog().Input("uscente.morosi"), flows.ReadOptions{})); adjacent {
		t.Fatal("the shuffled extract still has the rows of each practice adjacent: it proves nothing")
	}
	drop := func(e *killEnv) {
		p := filepath.Join(e.dir, "in/morosi/morosi.csv")
		if err := os.WriteFile(p+".part", extract, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".part", p); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Minute) // already settled
		os.Chtimes(p, old, old)
	}
	ref := newKillEnv(t, sshd)
	drop(ref)
	ref.run(t, "")
	want := ref.outcome(t)
	if len(want.sentCodes) == 0 || want.remoteFiles == 0 {
		t.Fatalf("reference run published nothing: %+v", want)
	}
	// Codes are allocated per scenario (own state dir): compare counts and keys.
	for _, fp := range []string{"after_claim", "after_archive", "after_chunk", "after_process", "after_built_blob", "after_receipt", "mid_upload", "after_upload", "shuffled/after_chunk", "shuffled/after_process"} {
		t.Run(fp, func(t *testing.T) {
			e := newKillEnv(t, sshd)
			if rest, ok := strings.CutPrefix(fp, "shuffled/"); ok {
				extract, fp = shuffled, rest
				defer func() { extract = grouped }()
			}
			drop(e)
			e.run(t, fp)
			if fp == "after_chunk" {
				// Killed between chunks: the committed chunks' practices wait for their
				// lookups (the file's end moves them), found by customer and amount
				// meanwhile. Opening the store leaves them: the file is in progress.
				st, err := archive.Open(filepath.Join(e.dir, "state"))
				if err != nil {
					t.Fatal(err)
				}
				n, err := st.PendingLookups(context.Background(), nil)
				if err != nil || n == 0 {
					t.Errorf("killed between chunks: %d practices pending their lookups (%v), want some", n, err)
				}
				findableByLookups(t, st)
				st.Close()
			}
			if fp == "after_built_blob" {
				// Killed between the built file's blob put (on its own goroutine) and the
				// build's commit: the blob is an orphan no row names, no request is built
				// or sent, and the archive verifies before the restart.
				st, err := archive.Open(filepath.Join(e.dir, "state"))
				if err != nil {
					t.Fatal(err)
				}
				rep, err := st.Verify(context.Background(), nil)
				if err != nil || !rep.OK() || len(rep.Orphans) == 0 {
					t.Errorf("archive verify after the kill: %v, problems %v, orphans %v; want clean, the built blob an orphan", err, rep.Problems, rep.Orphans)
				}
				if reqs, err := st.Requests(context.Background(), nil, 0, uscente.FlowREQ, "ready", 0); err != nil || len(reqs) == 0 {
					t.Errorf("no request left ready by the killed build (%v)", err)
				}
				for _, state := range []string{"built", "sent"} {
					if reqs, err := st.Requests(context.Background(), nil, 0, uscente.FlowREQ, state, 0); err != nil || len(reqs) != 0 {
						t.Errorf("%d requests %s by a build killed before its commit (%v)", len(reqs), state, err)
					}
				}
				st.Close()
			}
			if fp == "mid_upload" || fp == "after_upload" {
				// Killed before the upload was recorded: no practice may say SENT yet.
				st, err := archive.Open(filepath.Join(e.dir, "state"))
				if err != nil {
					t.Fatal(err)
				}
				ps, err := st.QueryPractices(context.Background(), archive.PracticeFilter{})
				st.Close()
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range ps {
					if p.State == flows.StateSent {
						t.Errorf("%s is SENT while its file's upload was never recorded", p.CaseKey)
					}
				}
			}
			e.run(t, "")
			got := e.outcome(t)
			if strings.Join(got.practices, "\n") != strings.Join(want.practices, "\n") {
				t.Errorf("practices differ from the uninterrupted run:\n got %v\nwant %v", got.practices, want.practices)
			}
			gotReceipt, wantReceipt := got.receipt, want.receipt
			if extract != nil && bytes.Equal(extract, shuffled) {
				// Other line numbers (and codes) in a shuffled file: the totals must agree.
				gotReceipt, wantReceipt = receiptTotals(gotReceipt), receiptTotals(wantReceipt)
			}
			if gotReceipt != wantReceipt {
				t.Errorf("receipt summary differs from the uninterrupted run:\n got %s\nwant %s", got.receipt, want.receipt)
			}
			if len(got.sentCodes) != len(want.sentCodes) || got.remoteFiles != want.remoteFiles || got.inputRows != want.inputRows {
				t.Errorf("got %d requests in %d files from %d inputs, want %d in %d from %d",
					len(got.sentCodes), got.remoteFiles, got.inputRows, len(want.sentCodes), want.remoteFiles, want.inputRows)
			}
		})
	}
}

// TestPoisonFileAcrossKills: the attempts of a file whose processing keeps failing
// are counted in the archive, so killing the daemon (kill -9) after each failed
// attempt and restarting it neither resets the count nor loops forever: with
// max_attempts = 3 the handler runs exactly three times over three processes and the
// file ends in rejected/ with its reason and an open exception.
func TestPoisonFileAcrossKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd and child processes")
	}
	sshd := sshdtest.Start(t, sshdtest.Options{})
	e := newKillEnv(t, sshd)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("settle = \"100ms\"\n"), []byte("settle = \"100ms\"\nretry = \"50ms\"\nmax_attempts = 3\n"), 1)
	if err := os.WriteFile(e.cfgPath, cfg, 0o640); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(e.dir, "calls")
	t.Setenv("CMORD_TEST_POISON_CALLS", calls)
	p := filepath.Join(e.dir, "in/morosi/poison.csv")
	if err := os.WriteFile(p, []byte(strings.Join(morosiHeader, ";")+"\r\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(p, old, old)
	e.run(t, "after_failed_attempt") // attempt 1, then kill -9
	e.run(t, "after_failed_attempt") // attempt 2 (recovered from .inprogress), kill -9
	e.run(t, "")                     // attempt 3: refused
	b, _ := os.ReadFile(calls)
	if n := strings.Count(string(b), "call"); n != 3 {
		t.Errorf("handler called %d times over three processes, want 3 (the count must survive kill -9)", n)
	}
	reason, err := os.ReadFile(filepath.Join(e.dir, "in/morosi/rejected/poison.csv.reason.txt"))
	if err != nil {
		t.Fatalf("not in rejected/: %v", err)
	}
	if !strings.Contains(string(reason), "processing failed 3 times") || !strings.Contains(string(reason), "simulated handler failure") {
		t.Errorf("reason file:\n%s", reason)
	}
	if left, _ := os.ReadDir(filepath.Join(e.dir, "in/morosi/.inprogress")); len(left) != 0 {
		t.Errorf(".inprogress still holds %d files", len(left))
	}
	st, err := archive.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	open := true
	es, err := st.Exceptions(context.Background(), archive.ExceptionFilter{Kind: "file_rejected", Open: &open})
	if err != nil || len(es) != 1 || !strings.Contains(es[0].Message, "failed 3 times") {
		t.Errorf("want one open file_rejected exception saying what failed; have %+v %v", es, err)
	}
	if n := failedAttempts(t, st); n != 3 {
		t.Errorf("%d PROCESSING_FAILED events, want 3", n)
	}
}

// TestPermanentFailureAcrossKill: a permanent error (a real UNIQUE constraint broken
// by the handler) refuses the file at its first attempt; killed right after that
// attempt was recorded, the restarted daemon refuses it at once (one more call), it
// does not start a new series of attempts.
func TestPermanentFailureAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd and child processes")
	}
	sshd := sshdtest.Start(t, sshdtest.Options{})
	e := newKillEnv(t, sshd)
	calls := filepath.Join(e.dir, "calls")
	t.Setenv("CMORD_TEST_POISON_CALLS", calls)
	t.Setenv("CMORD_TEST_POISON_KIND", "constraint")
	p := filepath.Join(e.dir, "in/morosi/poison.csv")
	if err := os.WriteFile(p, []byte(strings.Join(morosiHeader, ";")+"\r\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(p, old, old)
	e.run(t, "after_failed_attempt") // first attempt recorded, then kill -9
	e.run(t, "")
	b, _ := os.ReadFile(calls)
	if n := strings.Count(string(b), "call"); n != 2 {
		t.Errorf("handler called %d times, want 2 (one per process: a permanent error is not retried)", n)
	}
	reason, err := os.ReadFile(filepath.Join(e.dir, "in/morosi/rejected/poison.csv.reason.txt"))
	if err != nil {
		t.Fatalf("not in rejected/: %v", err)
	}
	if !strings.Contains(string(reason), "would repeat at every attempt") || !strings.Contains(string(reason), "UNIQUE constraint failed") {
		t.Errorf("reason file:\n%s", reason)
	}
}

var _ = sql.ErrNoRows
