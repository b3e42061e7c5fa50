//go:build !linux

package intake

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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

// openNoFollow: outside Linux, refuse a symlink seen by Lstat, then open and check
// that the opened file is the one Lstat saw (a swap in between is caught, never read).
func openNoFollow(root, rel string) (*os.File, error) {
	full := filepath.Join(root, rel)
	li, err := os.Lstat(full)
	if err != nil {
		return nil, err
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		return nil, &os.PathError{Op: "open", Path: full, Err: errSymlink}
	}
	fh, err := os.Open(full)
	if err != nil {
		return nil, err
	}
	if fi, err := fh.Stat(); err != nil || !os.SameFile(fi, li) {
		fh.Close()
		return nil, &os.PathError{Op: "open", Path: full, Err: errSymlink}
	}
	return fh, nil
}

func isSymlinkErr(err error) bool { return errors.Is(err, errSymlink) }

func sameDevice(a, b fs.FileInfo) bool { return true }

func linkCount(fi fs.FileInfo) uint64 { return 1 }
