// Package failpoint kills the process at named points of the data path, for the
// kill-and-restart tests (daemon/killrestart_test.go): $CMORD_FAILPOINT names the point.
package failpoint

import (
	"io"
	"os"
	"syscall"
)

// Hit kills the process with SIGKILL when $CMORD_FAILPOINT names this point.
// It exists for the kill-and-restart tests, which prove that a crash at any of these
// points loses nothing and does nothing twice; in production the variable is unset and
// this is one getenv.
func Hit(name string) {
	if v := os.Getenv("CMORD_FAILPOINT"); v != "" && v == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not instantaneous; never run past the point
	}
}

// failpointReader triggers the failpoint "mid_upload" once half of the content has
// been read, i.e. in the middle of a transfer.
type failpointReader struct {
	r         io.Reader
	read, at  int64
	triggered bool
}

func (f *failpointReader) Read(p []byte) (int, error) {
	if !f.triggered && f.read >= f.at {
		// the first half has been handed to the uploader (and written): die now
		f.triggered = true
		Hit("mid_upload")
	}
	if rest := f.at - f.read; !f.triggered && rest > 0 && int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.r.Read(p)
	f.read += int64(n)
	return n, err
}

// UploadReader returns r, or, when $CMORD_FAILPOINT is "mid_upload", a reader of r
// that kills the process once half of size was read.
func UploadReader(r io.Reader, size int64) io.Reader {
	if os.Getenv("CMORD_FAILPOINT") != "mid_upload" {
		return r
	}
	return &failpointReader{r: r, at: size / 2}
}
