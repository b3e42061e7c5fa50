package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cmord/cmord/daemon/demo"
)

// TestMain lets the test binary run as the cmord command itself (for signal tests).
func TestMain(m *testing.M) {
	if os.Getenv("CMORD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// startCmord starts the test binary as `cmord args...` (TestMain), its output in the
// returned buffer; the process is killed when the test ends, if still running.
func startCmord(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CMORD_TEST_MAIN=1", "NOTIFY_SOCKET=")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, out
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitFor(t *testing.T, out *syncBuffer, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(out.String(), what) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("never saw %q in the output:\n%s", what, out.String())
}

const runTestConfig = `state_dir = "state"
[log]
format = "text"
[company]
piva = "00488410010"
name = "Test S.p.A."
roles = ["uscente"]
sectors = ["E"]
piva_gestore = "01234567897"
[[folder]]
name = "%s"
path = "in"
kind = "uscente.morosi"
settle = "50ms"
`

// TestRunReloadAndStop drives `cmord run` as users do: SIGHUP with a broken file
// keeps the old configuration (and says why), SIGHUP with a good one reloads, a file
// dropped afterwards is processed, and SIGTERM stops the daemon cleanly (exit 0).
func TestRunReloadAndStop(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o750); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cmord.toml")
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(runTestConfig, "morosi"))
	cmd, out := startCmord(t, "run", "--config", cfgPath)
	waitFor(t, out, "cmord running")

	// A second daemon on the same state directory is refused (exit 1, naming the
	// directory and the running daemon's PID); read commands do not need the lock.
	var so, se bytes.Buffer
	if code := run([]string{"run", "--once", "--config", cfgPath}, nil, &so, &se); code != exitFindings {
		t.Errorf("second `cmord run`: exit %d, want %d\n%s%s", code, exitFindings, so.String(), se.String())
	}
	for _, want := range []string{filepath.Join(dir, "state"), fmt.Sprintf("PID %d", cmd.Process.Pid)} {
		if !strings.Contains(se.String(), want) {
			t.Errorf("second `cmord run` says %q; want it to name %q", se.String(), want)
		}
	}
	so.Reset()
	se.Reset()
	if code := run([]string{"archive", "ls", "--config", cfgPath}, nil, &so, &se); code != exitOK {
		t.Errorf("`cmord archive ls` beside the daemon: exit %d\n%s", code, se.String())
	}

	write("state_dir = \"state\"\nthis is not toml\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, out, "new configuration refused, keeping the old one")

	// A configuration `cmord check` refuses for its column mapping (the mapping file
	// says decimal_comma, the folder does not) is refused by the reload too, instead of
	// every file of the folder being refused once it arrives.
	mapping, err := filepath.Abs(filepath.Join("..", "..", "testdata", "inputs", "uscente.morosi.mapping.toml"))
	if err != nil {
		t.Fatal(err)
	}
	write(fmt.Sprintf(runTestConfig, "morosi-mapped") + fmt.Sprintf("mapping_file = %q\n", mapping))
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, out, "decimal_comma = true in the [[folder]] too")

	write(fmt.Sprintf(runTestConfig, "morosi-renamed"))
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, out, "configuration reloaded")

	if err := os.WriteFile(filepath.Join(dir, "in", "x.csv"), []byte("not;a;morosi;file\r\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "file finished")
	if !strings.Contains(out.String(), "folder=morosi-renamed") {
		t.Errorf("the file was not taken by the reloaded folder configuration:\n%s", out.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("cmord run after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("cmord run did not stop on SIGTERM:\n%s", out.String())
	}
	waitFor(t, out, "stopped")
	// every log line is one record a machine can read
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "time=") {
			t.Errorf("unstructured output line: %q", line)
		}
	}
}

// TestRunOnceSummary: `cmord run --once` ends with one paragraph saying what the cycle
// did, counted from the real cycle against the demo's SFTP and SMTP servers: a good
// extract and a broken one dropped, the practices' requests built and uploaded; a
// second cycle with nothing new says so.
func TestRunOnceSummary(t *testing.T) {
	dm, err := demo.Setup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dm.Close()
	if _, err := dm.DropMorosi(demo.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dm.Path("in/morosi/broken.csv"), []byte("not;a;morosi;file\r\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want []string
	}{
		{"first cycle", []string{"Cycle done: 2 files taken in from the drop folders (1 done, 1 rejected), 0 files fetched from the SII; ",
			" new this cycle).", "See `cmord exceptions` and the .reason.txt files in rejected/."}},
		{"nothing new", []string{"Cycle done: 0 files taken in from the drop folders (0 done, 0 rejected), 0 files fetched from the SII; 0 flow files built, 0 files delivered; 0 mails sent; ",
			"(0 new this cycle)."}},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := run([]string{"run", "--once", "--config", dm.ConfigPath}, nil, &out, &errb); code != exitOK {
			t.Fatalf("%s: exit %d\n%s%s", tt.name, code, out.String(), errb.String())
		}
		t.Logf("%s: %s", tt.name, out.String())
		if n := strings.Count(out.String(), "\n"); n != 1 {
			t.Errorf("%s: want one paragraph on stdout, got %d lines:\n%s", tt.name, n, out.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: summary lacks %q:\n%s", tt.name, w, out.String())
			}
		}
		if tt.name == "first cycle" && !regexp.MustCompile(`; [1-9]\d* flow files? built, [1-9]\d* files? delivered; \d+ mails? sent; [1-9]\d* exceptions? open \([1-9]\d* new`).MatchString(out.String()) {
			t.Errorf("the first cycle built, delivered and raised nothing?\n%s", out.String())
		}
	}
}

// TestRunOnceSummaryAfterErrors: a cycle with a step that fails (the SII's SFTP server
// gone) still ends with the summary of what the other steps did, as docs/install.md
// says of `cmord run --once`: the file dropped was taken in; exit 1, the error logged.
func TestRunOnceSummaryAfterErrors(t *testing.T) {
	dm, err := demo.Setup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dm.Close() // the demo's SII (SFTP) and mail servers stop: poll_sii fails
	if err := os.WriteFile(dm.Path("in/morosi/broken.csv"), []byte("not;a;morosi;file\r\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"run", "--once", "--config", dm.ConfigPath}, nil, &out, &errb); code != exitFindings {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFindings, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "cycle finished with errors") {
		t.Errorf("the failed step is not logged:\n%s", errb.String())
	}
	want := "Cycle done: 1 file taken in from the drop folders (0 done, 1 rejected), 0 files fetched from the SII; "
	if !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("stdout: want one paragraph starting %q, got:\n%s", want, out.String())
	}
}

// TestRunReloadLogSettings: SIGHUP applies a changed [log] to the running daemon, as
// docs/install.md says: text at info, then JSON at debug (the daemon's own records,
// component loggers included, come out as JSON), then text at warn (info records no
// longer appear, up to the end of the process).
func TestRunReloadLogSettings(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o750); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cmord.toml")
	write := func(level, format string) {
		s := strings.Replace(fmt.Sprintf(runTestConfig, "morosi"), "[log]\nformat = \"text\"",
			fmt.Sprintf("[log]\nlevel = %q\nformat = %q", level, format), 1)
		if err := os.WriteFile(cfgPath, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write("info", "text")
	cmd, out := startCmord(t, "run", "--config", cfgPath)
	waitFor(t, out, "msg=\"cmord running\"")

	write("debug", "json")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, out, `"msg":"configuration reloaded"`)
	if !strings.Contains(out.String(), `msg="applying new log settings" log_level=DEBUG log_format=json`) {
		t.Errorf("the change of log settings is not announced (in the old format):\n%s", out.String())
	}
	// A file dropped now is logged by the intake's component logger, in JSON.
	if err := os.WriteFile(filepath.Join(dir, "in", "x.csv"), []byte("not;a;morosi;file\r\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, `"msg":"file finished"`)
	if !strings.Contains(out.String(), `"level":"DEBUG"`) {
		t.Errorf("no debug record after switching to level debug:\n%s", out.String())
	}

	write("warn", "text")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, out, `"msg":"applying new log settings","log_level":"WARN","log_format":"text"`)
	// "configuration reloaded" (info) comes right after the switch: wait past it.
	time.Sleep(200 * time.Millisecond)
	mark := len(out.String())
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cmord run after SIGTERM: %v\n%s", err, out.String())
	}
	after := out.String()[mark:]
	if strings.Contains(after, "level=INFO") || strings.Contains(after, `"level":"INFO"`) {
		t.Errorf("info records after switching to level warn:\n%s", after)
	}
	if strings.Contains(after, "stopped") {
		t.Errorf("the info record \"stopped\" was logged at level warn:\n%s", after)
	}
}
