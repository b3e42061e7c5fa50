package uscente

import (
	"os"
	"syscall"
)

// punchRun frees the bytes of a run before off (the rows the merge has read): pages
// still dirty there are dropped instead of written back (cancelled_write_bytes), as if
// the run had been removed. False when the file system cannot (the run then stays
// whole until the merge removes it), or f is closed.
//
// The descriptor is used under f's own hold (SyscallConn's Control), not taken out
// with Fd: a Close of f meanwhile waits for the call instead of freeing the number
// for another file to open, whose bytes would then be punched.
func punchRun(f *os.File, from, to int64) bool {
	const punchHole, keepSize = 0x02, 0x01 // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var perr error
	if err := rc.Control(func(fd uintptr) {
		perr = syscall.Fallocate(int(fd), punchHole|keepSize, from, to-from)
	}); err != nil {
		return false
	}
	return perr == nil
}
