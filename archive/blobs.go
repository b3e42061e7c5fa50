package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// BlobStore keeps file contents by their SHA-256, written once and never modified:
// objects/sha256/ab/<hex> (one fan-out level, as git: 256 directories keep each one
// small and a new blob rarely needs a new directory, hence no extra fsync). A write goes temp file → fsync → rename → directory
// fsync → read-only, so after a crash a blob is either whole or absent (restic's and
// Syncthing's protocol; renameio alone gives atomicity, not durability).
type BlobStore struct {
	root string
	tmp  string
}

// NewBlobStore opens (creating) a blob store rooted at dir.
func NewBlobStore(dir string) (*BlobStore, error) {
	b := &BlobStore{root: filepath.Join(dir, "sha256"), tmp: filepath.Join(dir, "tmp")}
	for _, d := range []string{b.root, b.tmp} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("archive: blob store: %w", err)
		}
	}
	return b, nil
}

// RemoveTemp deletes the temp files a crash left (their content was never indexed).
// Only the daemon calls it, holding the state directory's lock: a CLI command that
// opens the archive beside a running daemon must not delete a blob being written.
func (b *BlobStore) RemoveTemp() error {
	ents, err := os.ReadDir(b.tmp)
	if err != nil {
		return fmt.Errorf("archive: blob store: %w", err)
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(b.tmp, e.Name())); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("archive: blob store: %w", err)
		}
	}
	return nil
}

// Path returns where the blob with this hash lives.
func (b *BlobStore) Path(hash string) string {
	if len(hash) < 2 {
		return filepath.Join(b.root, hash)
	}
	return filepath.Join(b.root, hash[0:2], hash)
}

// Put stores the content of r and returns its hash and size. Storing content that is
// already present costs the hashing only.
func (b *BlobStore) Put(r io.Reader) (hash string, size int64, err error) {
	hash, size, _, err = b.PutLimited(r, 0)
	return hash, size, err
}

// PutLimited is Put with a size limit (0: none), enforced while reading: once the
// content passes limit bytes nothing more is written and the partial temp file is
// dropped, but r is still read to its end through the hash, so that a refused file
// is known by its SHA-256 and size. Then stored is false and no blob exists.
func (b *BlobStore) PutLimited(r io.Reader, limit int64) (hash string, size int64, stored bool, err error) {
	if limit > 0 {
		lr := &limitedWriterSource{r: r, limit: limit}
		hash, size, err = b.put(lr)
		if errors.Is(err, errOverLimit) {
			// Past the limit: keep hashing what is left, store nothing.
			h := lr.h
			buf := make([]byte, 256<<10)
			n, cerr := io.CopyBuffer(h, r, buf)
			if cerr != nil {
				return "", 0, false, fmt.Errorf("archive: blob read: %w", cerr)
			}
			return hex.EncodeToString(h.Sum(nil)), lr.n + n, false, nil
		}
		return hash, size, err == nil, err
	}
	hash, size, err = b.put(r)
	return hash, size, err == nil, err
}

// errOverLimit stops put once a limited content passes its limit.
var errOverLimit = errors.New("over the size limit")

// limitedWriterSource reads r until limit bytes have passed, hashing them into h,
// then fails with errOverLimit (having consumed one byte past the limit).
type limitedWriterSource struct {
	r     io.Reader
	limit int64
	n     int64
	h     hash.Hash
}

func (l *limitedWriterSource) Read(p []byte) (int, error) {
	if l.h == nil {
		l.h = sha256.New()
	}
	if l.n > l.limit {
		return 0, errOverLimit
	}
	if rest := l.limit + 1 - l.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := l.r.Read(p)
	l.h.Write(p[:n])
	l.n += int64(n)
	if l.n > l.limit {
		return n, errOverLimit
	}
	return n, err
}

func (b *BlobStore) put(r io.Reader) (hash string, size int64, err error) {
	f, err := os.CreateTemp(b.tmp, "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("archive: blob temp: %w", err)
	}
	tmpName := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmpName)
		}
	}()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	size, err = io.CopyBuffer(io.MultiWriter(f, h), r, buf)
	if errors.Is(err, errOverLimit) {
		return "", 0, err
	}
	if err != nil {
		return "", 0, fmt.Errorf("archive: blob write: %w", err)
	}
	hash = hex.EncodeToString(h.Sum(nil))
	final := b.Path(hash)
	if st, statErr := os.Stat(final); statErr == nil && st.Size() == size {
		f.Close()
		os.Remove(tmpName)
		return hash, size, nil
	}
	if err = f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return "", 0, fmt.Errorf("archive: blob fsync: %w", err)
	}
	err = nil
	if err = f.Chmod(0o444); err != nil {
		return "", 0, err
	}
	if err = f.Close(); err != nil {
		return "", 0, fmt.Errorf("archive: blob close: %w", err)
	}
	dir := filepath.Dir(final)
	if err = mkdirAllSync(dir); err != nil {
		return "", 0, err
	}
	if err = os.Rename(tmpName, final); err != nil {
		return "", 0, fmt.Errorf("archive: blob rename: %w", err)
	}
	if err = syncDir(dir); err != nil {
		return "", 0, err
	}
	return hash, size, nil
}

// PutFile stores the file at path.
func (b *BlobStore) PutFile(path string) (hash string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return b.Put(f)
}

// Open opens a blob for reading.
func (b *BlobStore) Open(hash string) (*os.File, error) {
	if hash == "" { // a file refused unread has no content (Path would name the store's root)
		return nil, fmt.Errorf("archive: no content: %w", os.ErrNotExist)
	}
	f, err := os.Open(b.Path(hash))
	if err != nil {
		return nil, fmt.Errorf("archive: blob %s: %w", short(hash), err)
	}
	return f, nil
}

// Check recomputes the hash of a stored blob.
func (b *BlobStore) Check(hash string, size int64) error {
	f, err := os.Open(b.Path(hash))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("blob %s is missing", hash)
		}
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("blob %s: read: %w", hash, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return fmt.Errorf("blob %s: content changed (now hashes to %s)", hash, got)
	}
	if n != size {
		return fmt.Errorf("blob %s: size %d, index says %d", hash, n, size)
	}
	return nil
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

// mkdirAllSync creates dir and fsyncs each parent whose entry it created, so that a
// freshly created fan-out directory survives a crash together with the blob in it.
func mkdirAllSync(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := mkdirAllSync(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory so that a rename or create inside it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("archive: fsync dir %s: %w", dir, err)
	}
	return nil
}

// SyncDir is syncDir for the daemon's own folder moves (done/, rejected/).
func SyncDir(dir string) error { return syncDir(dir) }
