package intake

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Filesystem magic numbers (statfs f_type) on which inotify does not see every change:
// changes made by other hosts (network filesystems), by a FUSE daemon, or in a lower
// layer (overlay).
var unwatchableFS = map[int64]string{
	0x6969:     "nfs",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x517B:     "smb",
	0x65735546: "fuse",
	0x794C7630: "overlay",
	0x01021997: "9p",
	0x00C36400: "ceph",
	0x5346414F: "afs",
	0x73757245: "coda",
	0x01161970: "gfs2",
	0x7461636F: "ocfs2",
	0x0BD00BD0: "lustre",
}

// fsKind names the filesystem of path and reports whether inotify cannot be trusted
// there.
func fsKind(path string) (string, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "unknown", false
	}
	return classifyFS(int64(st.Type))
}

func classifyFS(magic int64) (string, bool) {
	magic &= 0xFFFFFFFF // f_type is signed on some architectures
	if name, ok := unwatchableFS[magic]; ok {
		return name, true
	}
	return fmt.Sprintf("local (0x%x)", magic), false
}

// renameNoReplace renames without ever replacing an existing target: fs.ErrExist if
// newpath exists. It uses renameat2(RENAME_NOREPLACE), atomic, where the filesystem
// supports it; elsewhere a check then rename (only this process writes our
// subdirectories, so the check cannot race with another writer of ours).
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOTSUP):
		if _, err := os.Lstat(newpath); err == nil {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
		}
		return os.Rename(oldpath, newpath)
	default:
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
}
