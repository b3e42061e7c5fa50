package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// StateLockFile is the lock file a daemon holds in its state directory.
const StateLockFile = "cmord.lock"

// StateLock is the exclusive advisory lock (flock) a daemon holds on its state
// directory for its whole life: two daemons on one archive would claim the same drop
// folders, build the same flows twice and interleave their writers. The kernel
// releases it when the process ends, even on kill -9, so a stale file never blocks a
// restart. CLI commands that only read never take it.
type StateLock struct {
	f   *os.File
	dir string
}

// StateLockedError says that another process holds the state directory.
type StateLockedError struct {
	Dir   string
	PID   int    // 0 when the holder had not written its PID yet
	State string // what /proc says of PID ("D (uninterruptible sleep …)"); "" when unknown
}

func (e *StateLockedError) Error() string {
	holder := "another cmord"
	if e.PID > 0 {
		holder = fmt.Sprintf("another cmord (PID %d", e.PID)
		if e.State != "" {
			holder += ", state " + e.State
		}
		holder += ")"
	}
	msg := fmt.Sprintf("state directory %s is in use by %s: only one daemon (run or demo) may use a state directory; stop it first (systemctl stop cmord)", e.Dir, holder)
	if e.PID > 0 && e.Stuck() {
		msg += fmt.Sprintf("; that process is not running (a process the watchdog killed but still in the kernel, or stopped): it keeps the lock until it ends, see cat /proc/%d/stack", e.PID)
	}
	return msg
}

// Stuck says whether /proc shows the holder unable to run: in uninterruptible sleep
// (D: a kill -9 waits until the kernel returns, e.g. from a hung disk or NFS server),
// stopped (T, t) or a zombie (Z).
func (e *StateLockedError) Stuck() bool {
	if e.State == "" {
		return false
	}
	switch e.State[0] {
	case 'D', 'T', 't', 'Z':
		return true
	}
	return false
}

// ProcState is what /proc/PID/stat says of a process's state, in words: "D
// (uninterruptible sleep: waiting on the kernel, a kill waits too)"; "" when the
// process is gone or /proc does not show it.
func ProcState(pid int) string {
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) state …: comm may hold spaces and parentheses; the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	st := string(b[i+2])
	words := map[string]string{
		"R": "running", "S": "sleeping", "I": "idle",
		"D": "uninterruptible sleep: waiting on the kernel (a hung disk, NFS or device); even kill -9 waits until it returns",
		"T": "stopped (SIGSTOP or a debugger)", "t": "stopped by a debugger", "Z": "zombie: ended, its parent has not collected it",
		"X": "dead",
	}
	if w, ok := words[st]; ok {
		return st + " (" + w + ")"
	}
	return st
}

// LockStateDir takes the exclusive lock of dir (created if needed) without waiting,
// and writes our PID into the lock file. A *StateLockedError says who holds it.
func LockStateDir(dir string) (*StateLock, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(abs, StateLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := readLockPID(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &StateLockedError{Dir: abs, PID: pid, State: ProcState(pid)}
		}
		return nil, fmt.Errorf("state directory lock %s: %w", path, err)
	}
	// The PID is for people (the message above, `cat cmord.lock`); the lock itself is
	// the flock, so a PID left by a dead process means nothing.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StateLock{f: f, dir: abs}, nil
}

// Dir returns the locked state directory.
func (l *StateLock) Dir() string { return l.dir }

// Unlock releases the lock. The file stays: removing it would let a second daemon
// lock a new file while a third still waits on the old one.
func (l *StateLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := flock(l.f, syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func readLockPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
