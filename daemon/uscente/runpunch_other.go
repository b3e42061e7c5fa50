//go:build !linux

package uscente

import "os"

// punchRun: only Linux's fallocate frees part of a file; elsewhere the run stays whole
// until the merge removes it.
func punchRun(f *os.File, from, to int64) bool { return false }
