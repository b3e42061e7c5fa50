package uscente

import (
	"os"
	"syscall"
)

// punchRun frees the bytes of a run before off (the rows the merge has read): pages
// still dirty there are dropped instead of written back (cancelled_write_bytes), as if
// the run had been removed. False when the file system cannot (the run then stays
// whole until the merge removes it).
func punchRun(f *os.File, from, to int64) bool {
	const punchHole, keepSize = 0x02, 0x01 // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	return syscall.Fallocate(int(f.Fd()), punchHole|keepSize, from, to-from) == nil
}
