package sftpx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
)

// RemoteFile is one regular file of a remote listing.
type RemoteFile struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// IsTempName tells whether name looks like a file still being written by someone:
// dot-files and the usual temporary suffixes (.part, .partial, .filepart, .tmp, ~).
func IsTempName(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	lower := strings.ToLower(name)
	for _, suf := range []string{".part", ".partial", ".filepart", ".tmp"} {
		if strings.HasSuffix(lower, suf) {
			return true
		}
	}
	return false
}

// List returns the regular files of remote directory dir, sorted by name, leaving
// out temporary names (IsTempName and the endpoint's own TempPrefix/TempSuffix).
func (c *Client) List(ctx context.Context, dir string) ([]RemoteFile, error) {
	var out []RemoteFile
	err := c.do(ctx, "listing "+dir, func(conn *Conn) error {
		infos, err := conn.SFTP.ReadDirContext(ctx, dir)
		if err != nil {
			return fmt.Errorf("listing %s: %w", dir, err)
		}
		out = out[:0]
		for _, fi := range infos {
			name := fi.Name()
			if !fi.Mode().IsRegular() || IsTempName(name) ||
				(c.ep.TempPrefix != "" && strings.HasPrefix(name, c.ep.TempPrefix)) ||
				(c.ep.TempSuffix != "" && strings.HasSuffix(name, c.ep.TempSuffix)) {
				continue
			}
			out = append(out, RemoteFile{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// StabilityTracker decides when a remote file has finished arriving: when it was seen
// with the same size and modification time in N consecutive listings. It is safe for
// concurrent use.
type StabilityTracker struct {
	n    int
	mu   sync.Mutex
	seen map[string]sighting
}

type sighting struct {
	size  int64
	mtime time.Time
	count int
}

// NewStabilityTracker requires n identical consecutive sightings (n < 1 means 2).
func NewStabilityTracker(n int) *StabilityTracker {
	if n < 1 {
		n = 2
	}
	return &StabilityTracker{n: n, seen: map[string]sighting{}}
}

// Observe records one listing and returns, sorted by name, the files that are stable
// now. A file that changed restarts its count; a file absent from the listing is
// forgotten. Stable files are returned again by later listings while they stay.
func (t *StabilityTracker) Observe(list []RemoteFile) []RemoteFile {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := make(map[string]sighting, len(list))
	var stable []RemoteFile
	for _, f := range list {
		s, ok := t.seen[f.Name]
		if ok && s.size == f.Size && s.mtime.Equal(f.ModTime) {
			s.count++
		} else {
			s = sighting{size: f.Size, mtime: f.ModTime, count: 1}
		}
		next[f.Name] = s
		if s.count >= t.n {
			stable = append(stable, f)
		}
	}
	t.seen = next
	sort.Slice(stable, func(i, j int) bool { return stable[i].Name < stable[j].Name })
	return stable
}

// smallFile is the size up to which a download is one ReadAt into memory rather
// than a streamed, concurrent WriteTo.
const smallFile = 1 << 20

// Download copies remotePath into a new temporary file in localDir (named
// ".<base>.<random>.partial"), fsyncs it and checks that its size is the remote
// Stat size; on any failure the temporary file is removed. The caller owns the
// returned file (rename or remove it).
//
// maxSize > 0 bounds what reaches the local disk: a file whose Stat size passes it is
// not read at all, and one that grows past it while read is abandoned at maxSize
// bytes; both return a *TooBigError.
func (c *Client) Download(ctx context.Context, remotePath, localDir string, maxSize int64) (string, int64, error) {
	var local string
	var size int64
	err := c.do(ctx, "downloading "+remotePath, func(conn *Conn) error {
		var err error
		local, size, err = download(conn, remotePath, localDir, maxSize)
		return err
	})
	return local, size, err
}

// TooBigError is a download refused for its size: Size is the remote Stat size (or,
// for a file that grew while read, the bytes seen when reading stopped).
type TooBigError struct {
	Path        string
	Size, Limit int64
}

func (e *TooBigError) Error() string {
	return fmt.Sprintf("downloading %s: %d bytes, over the limit of %d: not downloaded", e.Path, e.Size, e.Limit)
}

// limitedWriter fails a write that would take the total past n, so that a streamed
// download stops there instead of filling the disk.
type limitedWriter struct {
	w       io.Writer
	n, done int64
}

var errPastLimit = errors.New("past the size limit")

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.done+int64(len(p)) > l.n {
		return 0, errPastLimit
	}
	m, err := l.w.Write(p)
	l.done += int64(m)
	return m, err
}

// grownSize is the size of a remote file that grew past the limit while read: what
// Stat says now, or seen (the bytes it is known to have at least).
func grownSize(conn *Conn, remotePath string, seen int64) int64 {
	if fi, err := conn.SFTP.Stat(remotePath); err == nil && fi.Size() > seen {
		return fi.Size()
	}
	return seen
}

func download(conn *Conn, remotePath, localDir string, maxSize int64) (local string, n int64, err error) {
	// Stat and Open travel together: one round trip, not two.
	type statResult struct {
		fi  os.FileInfo
		err error
	}
	statc := make(chan statResult, 1)
	go func() { fi, err := conn.SFTP.Stat(remotePath); statc <- statResult{fi, err} }()
	f, openErr := conn.SFTP.Open(remotePath)
	st := <-statc
	if openErr != nil || st.err != nil {
		if f != nil {
			f.Close()
		}
		return "", 0, fmt.Errorf("downloading %s: %w", remotePath, errors.Join(st.err, openErr))
	}
	defer func() {
		// A read-only handle: its close cannot lose data, so don't wait for the answer
		// on success; on failure wait, so that the retry finds a tidy server.
		if err != nil {
			f.Close()
		} else {
			go f.Close()
		}
	}()
	want := st.fi.Size()
	if maxSize > 0 && want > maxSize {
		return "", 0, &TooBigError{Path: remotePath, Size: want, Limit: maxSize}
	}
	tmp, err := os.CreateTemp(localDir, "."+path.Base(remotePath)+".*.partial")
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if want <= smallFile {
		buf := make([]byte, want+1) // one byte more reveals a file that grew since Stat
		var m int
		m, err = f.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", 0, fmt.Errorf("downloading %s: %w", remotePath, err)
		}
		n = int64(m)
		if _, err = tmp.Write(buf[:m]); err != nil {
			return "", 0, err
		}
	} else {
		var dst io.Writer = tmp
		if maxSize > 0 {
			dst = &limitedWriter{w: tmp, n: maxSize}
		}
		if n, err = f.WriteTo(dst); err != nil {
			if errors.Is(err, errPastLimit) {
				return "", 0, &TooBigError{Path: remotePath, Size: grownSize(conn, remotePath, maxSize+1), Limit: maxSize}
			}
			return "", 0, fmt.Errorf("downloading %s: %w", remotePath, err)
		}
	}
	if maxSize > 0 && n > maxSize {
		// Grown since Stat, caught by the one byte more of a small file's read.
		return "", 0, &TooBigError{Path: remotePath, Size: grownSize(conn, remotePath, n), Limit: maxSize}
	}
	if n != want {
		return "", 0, &SizeError{Path: remotePath, Want: want, Got: n, Side: "downloaded", Checking: "downloading"}
	}
	if err = tmp.Sync(); err != nil {
		return "", 0, err
	}
	if err = tmp.Close(); err != nil {
		return "", 0, err
	}
	return tmp.Name(), n, nil
}

// Complete applies the completion policy to a fetched remote file: "none" (or "")
// leaves it, "delete" removes it, "move" renames it into moveTo (relative to the
// file's directory unless absolute; created when absent), never over an existing
// file. Repeating a completion that already happened is not an error.
func (c *Client) Complete(ctx context.Context, remotePath, policy, moveTo string) error {
	switch policy {
	case "", "none":
		return nil
	case "delete":
		return c.do(ctx, "deleting "+remotePath, func(conn *Conn) error {
			if err := conn.SFTP.Remove(remotePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("deleting %s: %w", remotePath, err)
			}
			return nil
		})
	case "move":
		if moveTo == "" {
			return errors.New(`completion "move" needs a move_to directory`)
		}
		if !path.IsAbs(moveTo) {
			moveTo = path.Join(path.Dir(remotePath), moveTo)
		}
		dest := path.Join(moveTo, path.Base(remotePath))
		return c.do(ctx, "moving "+remotePath, func(conn *Conn) error {
			if _, err := conn.SFTP.Lstat(moveTo); errors.Is(err, fs.ErrNotExist) {
				if err := conn.SFTP.MkdirAll(moveTo); err != nil {
					return fmt.Errorf("creating %s: %w", moveTo, err)
				}
			}
			if dfi, err := conn.SFTP.Lstat(dest); err == nil {
				if _, serr := conn.SFTP.Lstat(remotePath); errors.Is(serr, fs.ErrNotExist) {
					return nil // moved by an earlier attempt
				}
				return &ExistsError{Path: dest, RemoteSize: dfi.Size(), RemoteModTime: dfi.ModTime(), LocalSize: -1}
			}
			// SSH_FXP_RENAME refuses an existing target (SFTP v3): no overwrite even in a race.
			if err := conn.SFTP.Rename(remotePath, dest); err != nil {
				if _, serr := conn.SFTP.Lstat(remotePath); errors.Is(serr, fs.ErrNotExist) {
					if _, derr := conn.SFTP.Lstat(dest); derr == nil {
						return nil
					}
				}
				return fmt.Errorf("moving %s to %s: %w", remotePath, dest, err)
			}
			return nil
		})
	}
	return fmt.Errorf("unknown completion policy %q (none, move, delete)", policy)
}

// UploadResult says where an upload ended up.
type UploadResult struct {
	RemotePath   string
	Size         int64
	AlreadyThere bool // the final file existed with identical content (an earlier attempt crashed after its rename)
}

// UploadFile uploads a local file; see Upload.
func (c *Client) UploadFile(ctx context.Context, localPath, remoteDir, name string) (UploadResult, error) {
	f, err := os.Open(localPath)
	if err != nil {
		return UploadResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return UploadResult{}, err
	}
	if name == "" {
		name = filepath.Base(localPath)
	}
	return c.Upload(ctx, f, fi.Size(), remoteDir, name)
}

var errNoRewind = errors.New("the source cannot be rewound for a retry")

// Upload publishes size bytes from r as remoteDir/name, atomically: the bytes go to
// TempPrefix+name+TempSuffix (opened O_WRONLY|O_CREATE|O_TRUNC, so a leftover of a
// crashed attempt is overwritten), the temp file's remote size is checked, it is
// fsynced when the server offers fsync@openssh.com, then renamed to name. A reader
// of the directory never sees a partial file under the final name.
//
// If name already exists and Overwrite is false, nothing is overwritten: when the
// existing file has our size and SHA-256 it is ours from an attempt that crashed
// after its rename, and the result has AlreadyThere; otherwise a *ExistsError.
// With Overwrite, posix-rename@openssh.com replaces the file atomically; without
// that extension the old file is removed first (logged as a warning).
//
// The upload is retried once on a new connection if the connection breaks, provided
// r is an io.Seeker (an *os.File is).
func (c *Client) Upload(ctx context.Context, r io.Reader, size int64, remoteDir, name string) (UploadResult, error) {
	if name == "" || strings.ContainsRune(name, '/') {
		return UploadResult{}, fmt.Errorf("upload: bad remote name %q", name)
	}
	var start int64 = -1
	seeker, canSeek := r.(io.Seeker)
	if canSeek {
		if off, err := seeker.Seek(0, io.SeekCurrent); err == nil {
			start = off
		}
	}
	attempts := 0
	var res UploadResult
	err := c.do(ctx, "uploading "+path.Join(remoteDir, name), func(conn *Conn) error {
		attempts++
		if attempts > 1 {
			if start < 0 {
				return errNoRewind
			}
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return fmt.Errorf("%w: %w", errNoRewind, err)
			}
		}
		var err error
		res, err = c.upload(conn, r, size, remoteDir, name)
		return err
	})
	return res, err
}

type statResult struct {
	fi  os.FileInfo
	err error
}

func (c *Client) upload(conn *Conn, r io.Reader, size int64, remoteDir, name string) (UploadResult, error) {
	final := path.Join(remoteDir, name)
	tmp := path.Join(remoteDir, c.ep.TempPrefix+name+c.ep.TempSuffix)
	res := UploadResult{RemotePath: final, Size: size}

	// Look for the final name while opening the temp file: one round trip, not two.
	var existing chan statResult
	if !c.ep.Overwrite {
		existing = make(chan statResult, 1)
		go func() { fi, err := conn.SFTP.Lstat(final); existing <- statResult{fi, err} }()
	}
	f, err := conn.SFTP.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if existing != nil {
		if st := <-existing; st.err == nil {
			if f != nil {
				f.Close()
			}
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil {
				return res, fmt.Errorf("hashing the local content: %w", err)
			}
			if n != size {
				return res, &SizeError{Path: final, Want: size, Got: n, Side: "local", Checking: "uploading"}
			}
			return c.resolveExisting(conn, res, tmp, st.fi, h.Sum(nil))
		} else if !errors.Is(st.err, fs.ErrNotExist) {
			if f != nil {
				f.Close()
			}
			return res, fmt.Errorf("checking %s: %w", final, st.err)
		}
	}
	if err != nil {
		return res, fmt.Errorf("creating %s: %w", tmp, err)
	}
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()

	h := sha256.New()
	src := &io.LimitedReader{R: io.TeeReader(r, h), N: size}
	var written int64
	if c.ep.ConcurrentWrites && size > int64(c.ep.MaxPacket) {
		written, err = f.ReadFromWithConcurrency(src, 0)
	} else {
		written, err = writeSequential(f, src, size, c.ep.MaxPacket)
	}
	if err != nil {
		return res, fmt.Errorf("writing %s: %w", tmp, err)
	}
	if written != size {
		return res, &SizeError{Path: tmp, Want: size, Got: written, Side: "local source", Checking: "uploading"}
	}
	var extra [1]byte
	if n, err := io.ReadFull(r, extra[:]); n > 0 {
		return res, fmt.Errorf("uploading %s: the source holds more than the declared %d bytes", final, size)
	} else if err != nil && err != io.EOF {
		// The source fails at its end: a compressed blob tells a checksum that differs,
		// or a content past its indexed size, only there. What was written is not it.
		return res, fmt.Errorf("uploading %s: reading the source after its %d bytes: %w", final, size, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("checking %s: %w", tmp, err)
	}
	if fi.Size() != size {
		f.Close()
		closed = true
		conn.SFTP.Remove(tmp)
		return res, &SizeError{Path: tmp, Want: size, Got: fi.Size(), Side: "remote", Checking: "uploading"}
	}
	if !c.ep.SkipFsync && conn.HasExtension("fsync@openssh.com") {
		if err := f.Sync(); err != nil {
			return res, fmt.Errorf("fsync %s: %w", tmp, err)
		}
	}
	closed = true
	if err := f.Close(); err != nil {
		return res, fmt.Errorf("closing %s: %w", tmp, err)
	}
	return c.rename(conn, res, tmp, h.Sum(nil))
}

// writeSequential writes src with one request in flight at a time; for a file of
// one packet or less that is a single write.
func writeSequential(f *sftp.File, src io.Reader, size int64, maxPacket int) (int64, error) {
	buf := make([]byte, min(int64(maxPacket), max(size, 1)))
	var written int64
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			m, err := f.Write(buf[:n])
			written += int64(m)
			if err != nil {
				return written, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// rename moves the verified temp file to its final name.
func (c *Client) rename(conn *Conn, res UploadResult, tmp string, sum []byte) (UploadResult, error) {
	final := res.RemotePath
	posix := conn.HasExtension("posix-rename@openssh.com")
	var err error
	switch {
	case !c.ep.Overwrite:
		// SSH_FXP_RENAME refuses an existing target (SFTP v3 §6.5): if the final name
		// appeared since our check, the rename fails instead of replacing it.
		if c.ep.Rename == "posix" {
			err = conn.SFTP.PosixRename(tmp, final)
		} else {
			err = conn.SFTP.Rename(tmp, final)
		}
		if err != nil {
			if fi, serr := conn.SFTP.Lstat(final); serr == nil {
				return c.resolveExisting(conn, res, tmp, fi, sum)
			}
		}
	case c.ep.Rename == "posix" || (c.ep.Rename == "auto" && posix):
		err = conn.SFTP.PosixRename(tmp, final)
	default:
		if _, serr := conn.SFTP.Lstat(final); serr == nil {
			c.log.Warn("replacing a remote file by remove-then-rename (no posix-rename@openssh.com): not atomic", "endpoint", c.ep.Name, "path", final)
			if rerr := conn.SFTP.Remove(final); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				return res, fmt.Errorf("removing %s before replacing it: %w", final, rerr)
			}
		}
		err = conn.SFTP.Rename(tmp, final)
	}
	if err != nil {
		return res, fmt.Errorf("renaming %s to %s: %w", tmp, final, err)
	}
	return res, nil
}

// resolveExisting handles a final name that already exists: ours (same size and
// SHA-256) → AlreadyThere and the temp file removed; otherwise *ExistsError.
func (c *Client) resolveExisting(conn *Conn, res UploadResult, tmp string, fi os.FileInfo, sum []byte) (UploadResult, error) {
	final := res.RemotePath
	exists := &ExistsError{Path: final, RemoteSize: fi.Size(), RemoteModTime: fi.ModTime(), LocalSize: res.Size}
	if !fi.Mode().IsRegular() || fi.Size() != res.Size {
		conn.SFTP.Remove(tmp)
		return res, exists
	}
	remoteSum, err := remoteSHA256(conn, final)
	if err != nil {
		return res, fmt.Errorf("comparing with the existing %s: %w", final, err)
	}
	if err := conn.SFTP.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("could not remove an upload temp file", "endpoint", c.ep.Name, "path", tmp, "err", err)
	}
	if !bytes.Equal(remoteSum, sum) {
		return res, exists
	}
	c.log.Info("remote file already present with identical content (earlier attempt); not uploaded again", "endpoint", c.ep.Name, "path", final)
	res.AlreadyThere = true
	return res, nil
}

func remoteSHA256(conn *Conn, p string) ([]byte, error) {
	f, err := conn.SFTP.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	if _, err := f.WriteTo(h); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
