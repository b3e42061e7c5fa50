//go:build !linux

package intake

import (
	"io/fs"
	"os"
)

// fsKind: outside Linux we cannot tell; trust the configured mode.
func fsKind(path string) (string, bool) { return "unknown", false }

// renameNoReplace: check then rename (only this process writes our subdirectories).
func renameNoReplace(oldpath, newpath string) error {
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	}
	return os.Rename(oldpath, newpath)
}
