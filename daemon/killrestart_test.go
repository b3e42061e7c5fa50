package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	"github.com/cmord/cmord/flows"
)

// TestMain lets the test binary act as a daemon process for the kill-and-restart
// tests: with CMORD_TEST_CHILD set it runs one `run --once` cycle on the given
// configuration and exits, and CMORD_FAILPOINT may kill it on the way.
func TestMain(m *testing.M) {
	if cfgPath := os.Getenv("CMORD_TEST_CHILD"); cfgPath != "" {
		os.Exit(childOnce(cfgPath))
	}
	os.Exit(m.Run())
}

func childOnce(cfgPath string) int {
	if v := os.Getenv("CMORD_TEST_CHUNK_CASES"); v != "" {
		fmt.Sscan(v, &morosiChunkCases) // small chunks, so that a kill can fall between two
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
	e := &killEnv{dir: dir, sshd: sshd, inbox: filepath.Join(sshd.Root, filepath.Base(dir), "to-sii")}
	for _, p := range []string{"in/morosi", "state", e.inbox, filepath.Join(sshd.Root, filepath.Base(dir), "from-sii")} {
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
		filepath.Join(sshd.Root, filepath.Base(dir), "from-sii"), e.inbox)
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
	for _, fp := range []string{"after_claim", "after_archive", "after_chunk", "after_process", "after_receipt", "mid_upload", "after_upload"} {
		t.Run(fp, func(t *testing.T) {
			e := newKillEnv(t, sshd)
			drop(e)
			e.run(t, fp)
			e.run(t, "")
			got := e.outcome(t)
			if strings.Join(got.practices, "\n") != strings.Join(want.practices, "\n") {
				t.Errorf("practices differ from the uninterrupted run:\n got %v\nwant %v", got.practices, want.practices)
			}
			if got.receipt != want.receipt {
				t.Errorf("receipt summary differs from the uninterrupted run:\n got %s\nwant %s", got.receipt, want.receipt)
			}
			if len(got.sentCodes) != len(want.sentCodes) || got.remoteFiles != want.remoteFiles || got.inputRows != want.inputRows {
				t.Errorf("got %d requests in %d files from %d inputs, want %d in %d from %d",
					len(got.sentCodes), got.remoteFiles, got.inputRows, len(want.sentCodes), want.remoteFiles, want.inputRows)
			}
		})
	}
}

var _ = sql.ErrNoRows
