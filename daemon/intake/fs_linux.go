package intake

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

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

// openNoFollow opens root/rel read-only without following any symbolic link and
// without leaving root: openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) where the kernel
// has it (5.6+), else one openat(O_NOFOLLOW) per component from root's descriptor.
// O_NONBLOCK keeps a FIFO put in a file's place from blocking the open.
func openNoFollow(root, rel string) (*os.File, error) {
	dfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dfd)
	full := filepath.Join(root, rel)
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	how := unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := openat2(dfd, rel, &how)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// No openat2 (old kernel, or a seccomp filter that refuses it): walk.
		fd, err = openatWalk(dfd, rel, flags)
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			err = errSymlink
		}
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return os.NewFile(uintptr(fd), full), nil
}

// openat2 is unix.Openat2, replaceable by tests that check the fallback.
var openat2 = func(dfd int, rel string, how *unix.OpenHow) (int, error) {
	for {
		fd, err := unix.Openat2(dfd, rel, how)
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
	}
}

// openatWalk opens rel below dfd one component at a time, each with O_NOFOLLOW.
func openatWalk(dfd int, rel string, flags int) (int, error) {
	parts := strings.Split(filepath.Clean(rel), "/")
	cur := dfd
	for i, p := range parts {
		if p == ".." || p == "" || filepath.IsAbs(rel) {
			if cur != dfd {
				unix.Close(cur)
			}
			return -1, unix.EXDEV
		}
		fl := flags
		if i < len(parts)-1 {
			fl = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		fd, err := unix.Openat(cur, p, fl, 0)
		if cur != dfd {
			unix.Close(cur)
		}
		if i < len(parts)-1 && errors.Is(err, unix.ENOTDIR) {
			err = unix.ELOOP // O_DIRECTORY|O_NOFOLLOW on a symlink: a link in the path
		}
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

func isSymlinkErr(err error) bool { return errors.Is(err, errSymlink) }

// sameDevice reports whether two files are on one device.
func sameDevice(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return !ok1 || !ok2 || sa.Dev == sb.Dev
}

// linkCount is the number of hard links of a file (1 for an ordinary file).
func linkCount(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
