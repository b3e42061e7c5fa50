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
	"strings"
	"sync"
	"syscall"

	"github.com/klauspost/compress/zstd"
)

// BlobStore keeps file contents by their SHA-256, written once and never modified:
// objects/sha256/ab/<hex> (one fan-out level, as git: 256 directories keep each one
// small and a new blob rarely needs a new directory, hence no extra fsync). A write goes temp file → fsync → rename → directory
// fsync → read-only, so after a crash a blob is either whole or absent (restic's and
// Syncthing's protocol; renameio alone gives atomicity, not durability).
//
// Content that compresses is stored zstd-compressed as <hex>.zst, one zstd frame with
// its checksum; content that does not (a workbook, a zip, anything already compressed,
// or so small that the frame's own bytes eat the saving) is stored as it is, as <hex>.
// A blob's identity is unchanged either way: the SHA-256 and size of the original
// content, and every reader (Open) gets the original bytes back. The suffix, not the
// content, says which form a file is in: a plain blob whose content happens to be a
// zstd stream is never decompressed. Blobs written before compression (all plain) are
// read as they are, with no migration. If both forms exist (a downgrade to a version
// that wrote the plain one, then an upgrade), the plain one is read when it holds the
// content, else the compressed one; verify checks both and reports a damaged one.
type BlobStore struct {
	root string
	tmp  string
}

// zstSuffix names a blob stored compressed.
const zstSuffix = ".zst"

// sampleSize is how much of a content Put reads before choosing a form: content up to
// this size is compressed in one call and stored in whichever form is smaller by the
// rule of worthCompressing; a longer one is stored compressed when its first
// sampleSize bytes are worth it.
const sampleSize = 256 << 10

// blobWindow is the zstd window (the farthest back a match may reach): 1 MiB keeps an
// encoder near 3 MiB and a decoder near 1.2 MiB (peak RSS bound of issue 16), and on
// billing extracts, whose repetitions are within a few rows, a larger one gains little.
const blobWindow = 1 << 20

// maxDecodeWindow bounds what a decoder accepts from a frame header: a damaged header
// asking for a huge window is refused instead of allocating it. Above blobWindow so
// that a future, larger window stays readable.
const maxDecodeWindow = 8 << 20

// blobLevel is the zstd level blobs are compressed at. Measured on an extract with
// varied values (docs/benchmarks-uscente.md, "Blobs compressed"): the fastest level
// compresses it to 17.1 % at about 180 MB/s of CPU, the default to 16.8 % at 130 MB/s,
// the better one to 15.7 % at 50–80 MB/s; the fastest gives nearly all the saving for
// the least time in the archive step.
var blobLevel = zstd.SpeedFastest

// worthCompressing is the rule: store compressed only when it saves at least an
// eighth of the content. A saving below that (zip, xlsx, pdf, gzip, tiny files) is not
// worth a decompression on every read.
func worthCompressing(size, compressed int64) bool {
	return compressed <= size-size/8 && compressed < size
}

// Encoders and decoders are reused: each holds its tables and window buffers (a few
// MiB), and a Put or a read that made its own would allocate them every time.
// Concurrency 1: no goroutines of their own, so one left in a pool costs only memory.
var (
	encoderPool = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(blobLevel), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(blobWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(err) // only for invalid options, which are constants
		}
		return e
	}}
	decoderPool = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxDecodeWindow))
		if err != nil {
			panic(err)
		}
		return d
	}}
	copyBufPool = sync.Pool{New: func() any { b := make([]byte, sampleSize); return &b }}
	// A head that does not compress comes out a little longer (a 3-byte header per
	// 128 KiB block, the frame's header and checksum): room for that, so EncodeAll
	// never grows the buffer.
	sampleBufPool = sync.Pool{New: func() any { b := make([]byte, 0, sampleSize+4096); return &b }}
)

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

// plainPath is where the blob with this hash lives when stored as it is.
func (b *BlobStore) plainPath(hash string) string {
	if len(hash) < 2 {
		return filepath.Join(b.root, hash)
	}
	return filepath.Join(b.root, hash[0:2], hash)
}

// zstPath is where it lives when stored compressed.
func (b *BlobStore) zstPath(hash string) string { return b.plainPath(hash) + zstSuffix }

// StoredFile returns the file that holds the blob with this hash, and whether it is
// zstd-compressed (then its bytes are not the content: read it with Open). The plain
// file wins when both exist. An error wrapping os.ErrNotExist: no such blob. For
// tests and tools that inspect or damage the store; readers use Open.
func (b *BlobStore) StoredFile(hash string) (path string, compressed bool, err error) {
	if hash == "" {
		return "", false, fmt.Errorf("archive: no content: %w", os.ErrNotExist)
	}
	p := b.plainPath(hash)
	if _, err := os.Lstat(p); err == nil {
		return p, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	z := b.zstPath(hash)
	if _, err := os.Lstat(z); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// A *PathError, so that os.IsNotExist says it too.
			return "", false, &os.PathError{Op: "stat", Path: p, Err: os.ErrNotExist}
		}
		return "", false, err
	}
	return z, true, nil
}

// BlobHashOf returns the hash a file name of the store stands for (its name without
// the compressed suffix), for walks over the store's files.
func BlobHashOf(name string) string { return strings.TrimSuffix(name, zstSuffix) }

// Put stores the content of r and returns its hash and size. Storing content that is
// already present costs the hashing (and compressing) only.
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

// countingWriter counts what passes to the temp file: the stored size.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
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
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := *bufp
	h := sha256.New()
	// The first sampleSize bytes choose the form.
	n, rerr := io.ReadFull(r, buf)
	switch {
	case errors.Is(rerr, errOverLimit):
		return "", 0, rerr
	case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
		rerr = io.EOF // the whole content is in buf
	case rerr != nil:
		return "", 0, fmt.Errorf("archive: blob write: %w", rerr)
	}
	head := buf[:n]
	h.Write(head)
	enc := encoderPool.Get().(*zstd.Encoder)
	defer func() {
		enc.Reset(nil)
		encoderPool.Put(enc)
	}()
	samplep := sampleBufPool.Get().(*[]byte)
	defer sampleBufPool.Put(samplep)
	sample := enc.EncodeAll(head, (*samplep)[:0])
	compressed := worthCompressing(int64(n), int64(len(sample)))
	cw := &countingWriter{w: f}
	if rerr == io.EOF {
		// All of it is here: the sample is the stored form, one frame with its size.
		size = int64(n)
		if compressed {
			_, err = cw.Write(sample)
		} else {
			_, err = cw.Write(head)
		}
		if err != nil {
			return "", 0, fmt.Errorf("archive: blob write: %w", err)
		}
	} else {
		var dst io.Writer = cw
		if compressed {
			enc.Reset(cw)
			dst = enc
		}
		if _, err = dst.Write(head); err != nil {
			return "", 0, fmt.Errorf("archive: blob write: %w", err)
		}
		var rest int64
		rest, err = io.CopyBuffer(io.MultiWriter(dst, h), r, buf)
		if errors.Is(err, errOverLimit) {
			return "", 0, err
		}
		if err != nil {
			return "", 0, fmt.Errorf("archive: blob write: %w", err)
		}
		if compressed {
			if err = enc.Close(); err != nil {
				return "", 0, fmt.Errorf("archive: blob compress: %w", err)
			}
		}
		size = int64(n) + rest
	}
	hash = hex.EncodeToString(h.Sum(nil))
	if compressed && !worthCompressing(size, cw.n) {
		// The head compressed, the rest did not: store it as it is after all, so that a
		// .zst blob always saves what the rule says.
		if f, tmpName, err = b.decompressTemp(f, tmpName); err != nil {
			return "", 0, err
		}
		compressed = false
	}
	plain, zst := b.plainPath(hash), b.zstPath(hash)
	final := plain
	removeDamaged := "" // a damaged compressed copy, removed once the plain one is durable
	if st, statErr := os.Stat(plain); statErr == nil {
		if st.Size() == size {
			f.Close()
			os.Remove(tmpName)
			return hash, size, nil
		}
		// A plain copy of the wrong size is damaged: replace it in its own form (the
		// plain one is what readers read when both exist).
		if compressed {
			if f, tmpName, err = b.decompressTemp(f, tmpName); err != nil {
				return "", 0, err
			}
			compressed = false
		}
	} else if compressed {
		final = zst
		// The same content compressed with the same settings has the same size: a
		// copy of another size is damaged (or from other settings), and replaced.
		if st, statErr := os.Stat(zst); statErr == nil && st.Size() == cw.n {
			f.Close()
			os.Remove(tmpName)
			return hash, size, nil
		}
	} else if zf, statErr := os.Open(zst); statErr == nil {
		// Stored compressed before (other settings): that copy stands if it holds the
		// content. A damaged one is checked here, in this rare case only, because the
		// plain copy written otherwise is what repairs it (and is what readers read).
		damaged := checkFile(zf, hash, size, true)
		zf.Close()
		if damaged == nil {
			f.Close()
			os.Remove(tmpName)
			return hash, size, nil
		}
		removeDamaged = zst
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
	if removeDamaged != "" {
		// Best effort: the content is stored and read from the plain copy either way;
		// a damaged copy left behind is still reported by verify.
		if os.Remove(removeDamaged) == nil {
			_ = syncDir(dir)
		}
	}
	return hash, size, nil
}

// decompressTemp turns a compressed temp file into a new temp file holding the
// content as it is, removing the first: the rare path where the whole content did
// not compress after its head did, or where a damaged plain copy is replaced.
func (b *BlobStore) decompressTemp(f *os.File, name string) (*os.File, string, error) {
	defer func() {
		f.Close()
		os.Remove(name)
	}()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", fmt.Errorf("archive: blob temp: %w", err)
	}
	out, err := os.CreateTemp(b.tmp, "put-*")
	if err != nil {
		return nil, "", fmt.Errorf("archive: blob temp: %w", err)
	}
	d := decoderPool.Get().(*zstd.Decoder)
	defer putDecoder(d)
	if err = d.Reset(f); err == nil {
		_, err = io.Copy(out, d)
	}
	if err != nil {
		out.Close()
		os.Remove(out.Name())
		return nil, "", fmt.Errorf("archive: blob temp: %w", err)
	}
	return out, out.Name(), nil
}

func putDecoder(d *zstd.Decoder) {
	d.Reset(nil) // drops the file it read
	decoderPool.Put(d)
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

// Open opens a blob for reading its original content, decompressing it if stored
// compressed. A compressed blob found damaged while reading (a corrupt or truncated
// stream, a checksum that differs) fails the read with an error naming its file.
//
// When both forms exist, the plain one is read only if it holds the content (checked
// here, in that rare case only: its size, then its SHA-256), else the compressed one:
// a damaged plain copy beside an intact compressed one must not hide it.
func (b *BlobStore) Open(hash string) (io.ReadCloser, error) { return b.open(hash, -1) }

// open is Open; size is the content's size when the index knows it, else -1.
func (b *BlobStore) open(hash string, size int64) (io.ReadCloser, error) {
	if hash == "" { // a file refused unread has no content (the path would name the store's root)
		return nil, fmt.Errorf("archive: no content: %w", os.ErrNotExist)
	}
	f, err := os.Open(b.plainPath(hash))
	if err == nil {
		if _, zerr := os.Lstat(b.zstPath(hash)); zerr != nil || b.plainHolds(f, hash, size) {
			return f, nil
		}
		// The plain copy is damaged: the compressed one is read (and checked as it
		// is read). Should it be gone meanwhile, the plain one is all there is.
		zf, zerr := os.Open(b.zstPath(hash))
		if zerr != nil {
			return f, nil
		}
		f.Close()
		return newZstdReader(zf)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("archive: blob %s: %w", short(hash), err)
	}
	f, err = os.Open(b.zstPath(hash))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("open %s: %w", b.plainPath(hash), os.ErrNotExist)
		}
		return nil, fmt.Errorf("archive: blob %s: %w", short(hash), err)
	}
	return newZstdReader(f)
}

// plainHolds reports whether the plain file f holds the blob's content (size -1: the
// index's size is not known, the file's own is taken), and leaves f at its start.
func (b *BlobStore) plainHolds(f *os.File, hash string, size int64) bool {
	st, err := f.Stat()
	if err != nil || (size >= 0 && st.Size() != size) {
		return false
	}
	ok := checkFile(f, hash, st.Size(), false) == nil
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false
	}
	return ok
}

// OpenSized is Open for a blob whose size the index knows (File.Size): the reader
// gives at most size bytes, failing, with an error naming the blob, on a content that
// goes on past them or ends before them. Readers of archived files use it, so that a
// compressed blob replaced by another stream — a few KiB that expand to gigabytes —
// can neither fill a reader's memory (a publish reads the content whole) nor pass for
// the archived content; and a shortened one is not read as a whole file.
func (b *BlobStore) OpenSized(hash string, size int64) (io.ReadCloser, error) {
	rc, err := b.open(hash, size)
	if err != nil {
		return nil, err
	}
	return &sizedReader{rc: rc, hash: hash, size: size, sum: sha256.New(), summing: true}, nil
}

// sizedReader enforces a blob's indexed size on its reader; it seeks as that reader
// does (the SFTP upload rewinds its source to retry).
//
// It also hashes what a read from the start hands out, and at its end refuses content
// whose SHA-256 is not the blob's (a blob edited in place to the same size, or a .zst
// replaced by another stream): a reader that reads to the end (archive cat, the
// handlers, publication) then fails instead of taking it, as `archive verify` would
// report it. A seek elsewhere than the start stops the check for that pass.
type sizedReader struct {
	rc      io.ReadCloser
	hash    string
	size    int64
	pos     int64
	sum     hash.Hash
	summing bool // every byte from 0 to pos went into sum
}

func (s *sizedReader) Read(p []byte) (int, error) {
	// One byte past the size is asked for, so that a longer content is told.
	if rest := s.size + 1 - s.pos; int64(len(p)) > rest {
		p = p[:max(rest, 0)]
	}
	if len(p) == 0 {
		return 0, s.tooLong()
	}
	n, err := s.rc.Read(p)
	s.pos += int64(n)
	if s.pos > s.size {
		return n - int(s.pos-s.size), s.tooLong()
	}
	if s.summing {
		s.sum.Write(p[:n])
	}
	if err == io.EOF && s.pos < s.size {
		err = fmt.Errorf("archive: blob %s: ends after %d bytes, the index says %d (run cmord archive verify)", short(s.hash), s.pos, s.size)
	}
	if err == io.EOF && s.summing {
		if got := hex.EncodeToString(s.sum.Sum(nil)); got != s.hash {
			err = fmt.Errorf("archive: blob %s: content changed (now hashes to %s; run cmord archive verify)", short(s.hash), short(got))
		}
	}
	return n, err
}

func (s *sizedReader) tooLong() error {
	return fmt.Errorf("archive: blob %s: holds more than the %d bytes the index says (run cmord archive verify)", short(s.hash), s.size)
}

func (s *sizedReader) Seek(offset int64, whence int) (int64, error) {
	sk, ok := s.rc.(io.Seeker)
	if !ok {
		return s.pos, errors.New("archive: blob reader does not seek")
	}
	pos, err := sk.Seek(offset, whence)
	if err == nil {
		if pos != s.pos || pos == 0 {
			s.sum.Reset()
			s.summing = pos == 0
		}
		s.pos = pos
	}
	return pos, err
}

func (s *sizedReader) Close() error { return s.rc.Close() }

// zstdReader reads a compressed blob's content through a pooled decoder. It seeks as
// a reader of a plain blob (an *os.File) may need — the SFTP upload rewinds its
// source to retry on a new connection — by decoding again from the start, or
// skipping forward; never by holding the content in memory.
type zstdReader struct {
	f   *os.File
	d   *zstd.Decoder
	pos int64 // offset in the content
	// err is the damage found, returned by every later Read until a Seek decodes
	// again: the decoder would hand out the block whose checksum failed to a caller
	// that reads again (bufio.Reader returns an error once, then reads on).
	err error
}

func newZstdReader(f *os.File) (*zstdReader, error) {
	if err := notEmpty(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("archive: blob %s: damaged compressed content: %w", f.Name(), err)
	}
	d := decoderPool.Get().(*zstd.Decoder)
	if err := d.Reset(f); err != nil {
		putDecoder(d)
		f.Close()
		return nil, fmt.Errorf("archive: blob %s: damaged compressed content: %w", f.Name(), err)
	}
	return &zstdReader{f: f, d: d}, nil
}

// notEmpty refuses an empty compressed file: the decoder reads it as empty content,
// but Put never writes one (empty content is stored plain), so it was truncated.
func notEmpty(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return errors.New("the file is empty (a compressed blob holds at least one zstd frame)")
	}
	return nil
}

func (z *zstdReader) Read(p []byte) (int, error) {
	if z.d == nil {
		return 0, os.ErrClosed
	}
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.d.Read(p)
	if err != nil && err != io.EOF {
		// What came with the error is not trusted content either.
		z.err = fmt.Errorf("archive: blob %s: damaged compressed content: %w", z.f.Name(), err)
		return 0, z.err
	}
	z.pos += int64(n)
	return n, err
}

// Seek moves to an offset of the content, from its start or from the current
// offset (the content's end is not known without reading it all).
func (z *zstdReader) Seek(offset int64, whence int) (int64, error) {
	if z.d == nil {
		return 0, os.ErrClosed
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += z.pos
	default:
		return z.pos, fmt.Errorf("archive: blob %s: seek from the end of a compressed blob", z.f.Name())
	}
	if offset < 0 {
		return z.pos, fmt.Errorf("archive: blob %s: seek to a negative offset", z.f.Name())
	}
	if offset < z.pos {
		if _, err := z.f.Seek(0, io.SeekStart); err != nil {
			return z.pos, err
		}
		if err := z.d.Reset(z.f); err != nil {
			return z.pos, fmt.Errorf("archive: blob %s: damaged compressed content: %w", z.f.Name(), err)
		}
		z.pos, z.err = 0, nil
	}
	if skip := offset - z.pos; skip > 0 {
		n, err := io.CopyN(io.Discard, z, skip)
		if err != nil && err != io.EOF {
			return z.pos, err
		}
		_ = n // past the end: the position stays at the end, as a later Read says EOF
	}
	return z.pos, nil
}

func (z *zstdReader) Close() error {
	if z.d == nil {
		return nil
	}
	putDecoder(z.d)
	z.d = nil
	return z.f.Close()
}

// Check recomputes the hash of a stored blob's content (decompressed, for a blob
// stored compressed). When both forms exist, both are checked.
func (b *BlobStore) Check(hash string, size int64) error {
	var problems []string
	found := 0
	for _, c := range []struct {
		path       string
		compressed bool
	}{{b.plainPath(hash), false}, {b.zstPath(hash), true}} {
		f, err := os.Open(c.path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		found++
		if err != nil {
			problems = append(problems, fmt.Sprintf("blob %s: %v", hash, err))
			continue
		}
		if err := checkFile(f, hash, size, c.compressed); err != nil {
			problems = append(problems, err.Error())
		}
		f.Close()
	}
	if found == 0 {
		return fmt.Errorf("blob %s is missing", hash)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func checkFile(f *os.File, hash string, size int64, compressed bool) error {
	var r io.Reader = f
	where := ""
	if compressed {
		where = " (" + f.Name() + ", compressed)"
		if err := notEmpty(f); err != nil {
			return fmt.Errorf("blob %s: damaged compressed content in %s: %w", hash, f.Name(), err)
		}
		d := decoderPool.Get().(*zstd.Decoder)
		defer putDecoder(d)
		if err := d.Reset(f); err != nil {
			return fmt.Errorf("blob %s: damaged compressed content in %s: %w", hash, f.Name(), err)
		}
		r = d
	}
	h := sha256.New()
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	// Never more than a byte past the indexed size: a small stream that expands to
	// gigabytes is told by its length, not decompressed whole.
	n, err := io.CopyBuffer(h, io.LimitReader(r, size+1), *bufp)
	if err != nil {
		if compressed {
			return fmt.Errorf("blob %s: damaged compressed content in %s: %w", hash, f.Name(), err)
		}
		return fmt.Errorf("blob %s: read: %w", hash, err)
	}
	if n > size {
		return fmt.Errorf("blob %s%s: holds more than the %d bytes the index says", hash, where, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return fmt.Errorf("blob %s%s: content changed (now hashes to %s)", hash, where, got)
	}
	if n != size {
		return fmt.Errorf("blob %s%s: size %d, index says %d", hash, where, n, size)
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
