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
	Dir string
	PID int // 0 when the holder had not written its PID yet
}

func (e *StateLockedError) Error() string {
	holder := "another cmord"
	if e.PID > 0 {
		holder = fmt.Sprintf("another cmord (PID %d)", e.PID)
	}
	return fmt.Sprintf("state directory %s is in use by %s: only one daemon (run or demo) may use a state directory; stop it first (systemctl stop cmord)", e.Dir, holder)
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
			return nil, &StateLockedError{Dir: abs, PID: pid}
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
