package intake

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// UnsafeFileError says why a claimed name was not opened: it is not (or no longer) the
// regular file of the folder that the scan saw. Nothing of it was read.
type UnsafeFileError struct{ Why string }

func (e *UnsafeFileError) Error() string { return e.Why }

// openClaimed opens root/rel for reading without ever following a symbolic link (in
// any component), requires a regular file on the device of root, and, when scanned is
// not nil, the very file the scan saw (same device and inode). A file replaced by a
// symlink, a FIFO, a device, a file of another filesystem or another file between the
// scan and the claim is an *UnsafeFileError: nothing was read from it. Everything
// after this reads the returned descriptor, never the path again.
func openClaimed(root, rel string, scanned fs.FileInfo) (*os.File, fs.FileInfo, error) {
	rootInfo, err := os.Stat(root)
	if err != nil {
		return nil, nil, err
	}
	fh, err := openNoFollow(root, rel)
	if err != nil {
		if isSymlinkErr(err) {
			return nil, nil, &UnsafeFileError{Why: "a symbolic link (or a path through one), not a regular file: not followed, nothing was read"}
		}
		return nil, nil, err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, nil, err
	}
	why := ""
	switch {
	case !fi.Mode().IsRegular():
		why = fmt.Sprintf("not a regular file (%s): nothing was read", describeMode(fi.Mode()))
	case !sameDevice(fi, rootInfo):
		why = "a file of another filesystem than the folder's: nothing was read"
	case scanned != nil && !os.SameFile(fi, scanned):
		why = "replaced by another file between the scan and the claim: nothing was read"
	case linkCount(fi) > 1:
		// Another name shares the content: a hard link to a file elsewhere on the
		// filesystem (where protected_hardlinks is off, even one we may read and the
		// dropper may not). Copy the file into the folder instead of linking it.
		why = fmt.Sprintf("a file with %d hard links (another name elsewhere shares its content): nothing was read; copy the file instead of linking it", linkCount(fi))
	}
	if why != "" {
		fh.Close()
		return nil, nil, &UnsafeFileError{Why: why}
	}
	return fh, fi, nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	}
	return "mode " + m.String()
}

// OpenSpoolFile opens a file the daemon itself wrote into its spool directory dir (an
// SII download) the same safe way: no symlink followed, a regular file on dir's device.
func OpenSpoolFile(path string) (*os.File, error) {
	fh, _, err := openClaimed(filepath.Dir(path), filepath.Base(path), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fh, nil
}

var errSymlink = errors.New("symbolic link")

// ownSubdir checks that root/sub (.inprogress, done, rejected) is a real directory on
// root's device and not a symbolic link: someone with write access to the drop folder
// could otherwise replace it by a link and have our renames carry files into, or
// out of, any directory cmord may write (its own state directory among them). Checked
// before every claim and every move; a failure stops the move and tells the daemon.
func ownSubdir(root, sub string) error {
	ri, err := os.Stat(root)
	if err != nil {
		return err
	}
	li, err := os.Lstat(filepath.Join(root, sub))
	if err != nil {
		return err
	}
	switch {
	case li.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link, not cmord's own directory: no file is moved through it (remove it; cmord recreates it at start)", filepath.Join(root, sub))
	case !li.IsDir():
		return fmt.Errorf("%s is not a directory (%s): no file is moved through it", filepath.Join(root, sub), describeMode(li.Mode()))
	case !sameDevice(li, ri):
		return fmt.Errorf("%s is on another filesystem than the folder (a mount over it?): no file is moved through it", filepath.Join(root, sub))
	}
	return nil
}
