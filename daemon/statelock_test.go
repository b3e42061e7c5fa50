package daemon

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cmord/cmord/config"
)

// TestStateLockHolderChild is not a test on its own: run by TestStateLockOtherProcess
// as a child process (CMORD_STATELOCK_CHILD=dir), it takes the lock, says "locked"
// on stdout and holds it until its stdin closes or it is killed.
func TestStateLockHolderChild(t *testing.T) {
	dir := os.Getenv("CMORD_STATELOCK_CHILD")
	if dir == "" {
		t.Skip("helper process for TestStateLockOtherProcess")
	}
	l, err := LockStateDir(dir)
	if err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(3)
	}
	os.Stdout.WriteString("locked\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	l.Unlock()
	os.Exit(0)
}

func startLockHolder(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStateLockHolderChild$")
	cmd.Env = append(os.Environ(), "CMORD_STATELOCK_CHILD="+dir, "CMORD_TEST_CHILD=")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder: %q %v", line, err)
	}
	return cmd, stdin
}

// A second daemon on the same state directory is refused with the directory and the
// holder's PID; the lock goes away with the holder, also on kill -9.
func TestStateLockOtherProcess(t *testing.T) {
	tests := []struct {
		name string
		end  func(cmd *exec.Cmd, stdin io.WriteCloser)
	}{
		{"holder exits", func(cmd *exec.Cmd, stdin io.WriteCloser) { stdin.Close(); _ = cmd.Wait() }},
		{"holder killed -9", func(cmd *exec.Cmd, stdin io.WriteCloser) { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			cmd, stdin := startLockHolder(t, dir)
			_, err := LockStateDir(dir)
			var le *StateLockedError
			if !errors.As(err, &le) {
				t.Fatalf("second lock: got %v, want a StateLockedError", err)
			}
			if le.PID != cmd.Process.Pid {
				t.Errorf("PID in the refusal = %d, want the holder's %d", le.PID, cmd.Process.Pid)
			}
			for _, want := range []string{dir, "PID " + strconv.Itoa(cmd.Process.Pid)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not name %q", err, want)
				}
			}
			tc.end(cmd, stdin)
			l, err := LockStateDir(dir)
			if err != nil {
				t.Fatalf("after the holder ended: %v", err)
			}
			b, _ := os.ReadFile(filepath.Join(dir, StateLockFile))
			if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
				t.Errorf("lock file holds %q, want our PID %d", b, os.Getpid())
			}
			if err := l.Unlock(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// flock locks belong to the open file description: a second open in the same process
// conflicts too, which is what keeps `run` and `demo` apart in one test binary.
func TestStateLockSameProcess(t *testing.T) {
	dir := t.TempDir()
	l1, err := LockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockStateDir(dir)
	var le *StateLockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || le.Dir != dir {
		t.Fatalf("second lock in one process: %v (%+v)", err, le)
	}
	if err := l1.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockStateDir(dir)
	if err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	l2.Unlock()
}

// Two daemons on one configuration: the second New is refused before it opens the
// archive, and the first keeps running.
func TestNewRefusesSecondDaemon(t *testing.T) {
	cfg := lockTestConfig(t)
	d1, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, nil)
	var le *StateLockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("second daemon: got %v, want a StateLockedError naming PID %d", err, os.Getpid())
	}
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	d2.Close()
}

func lockTestConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "cmord.toml"), []byte(`state_dir = "state"
[company]
piva = "00488410010"
name = "Test"
roles = ["uscente"]
sectors = ["E"]
piva_gestore = "01234567897"
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
