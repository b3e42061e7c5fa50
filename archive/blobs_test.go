package archive

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// csvLike is n bytes of a billing extract's rows: compresses well, as real ones do.
func csvLike(n int) []byte {
	var b bytes.Buffer
	b.WriteString("SETTORE;COD_POD;CF_CLIENTE;NUM_FATTURA;IMPORTO\r\n")
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "E;IT001E%08d;RSSMRA%02dT10A562S;FT-2024/%05d;%d,%02d\r\n", r.IntN(1e8), r.IntN(100), i, r.IntN(5000), r.IntN(100))
	}
	return b.Bytes()[:n]
}

// randomBytes is n incompressible bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed)})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// zipOf is a zip (deflated) of content: what an .xlsx is made of.
func zipOf(t testing.TB, content []byte) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create("xl/worksheets/sheet1.xml")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newBlobStore(t testing.TB) *BlobStore {
	t.Helper()
	b, err := NewBlobStore(filepath.Join(t.TempDir(), "objects"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readBlob(t testing.TB, b *BlobStore, hash string) []byte {
	t.Helper()
	rc, err := b.Open(hash)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestBlobRoundTrip stores contents of many sizes and kinds and reads each back: the
// hash and size are the original content's, the reader gets its bytes, verify's check
// passes, and the form on disk follows the rule (compressed only when it saves at
// least an eighth; never bigger than the content).
func TestBlobRoundTrip(t *testing.T) {
	csv := csvLike(8 << 20)
	tests := []struct {
		name       string
		content    []byte
		compressed bool
	}{
		{"empty", nil, false},
		{"one byte", []byte("x"), false},
		{"a short line (the frame costs more than it saves)", []byte("A;B\r\n1;2\r\n"), false},
		{"a small extract", csv[:4096], true},
		{"64 KiB extract", csv[:64<<10], true},
		{"exactly the sample", csv[:sampleSize], true},
		{"one byte past the sample", csv[:sampleSize+1], true},
		{"8 MiB extract", csv, true},
		{"64 KiB random", randomBytes(64<<10, 1), false},
		{"4 MiB random", randomBytes(4<<20, 2), false},
		{"a zip (xlsx) of an extract", zipOf(t, csv[:2<<20]), false},
		{"a zstd stream as content", zstdOf(t, csv[:1<<20]), false},
		// The sample chooses plain: the compressible tail is stored as it is.
		{"random head, extract tail", append(randomBytes(sampleSize, 3), csv[:1<<20]...), false},
		// The sample chooses compressed, the whole then does not save an eighth: the
		// temp file is decompressed and stored as it is.
		{"extract head, random tail", append(append([]byte{}, csv[:sampleSize]...), randomBytes(4<<20, 4)...), false},
		{"half and half", append(append([]byte{}, csv[:2<<20]...), randomBytes(1<<20, 5)...), true},
	}
	b := newBlobStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, size, err := b.Put(bytes.NewReader(tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if hash != sum(tt.content) || size != int64(len(tt.content)) {
				t.Fatalf("hash %s size %d, want the content's %s %d", hash, size, sum(tt.content), len(tt.content))
			}
			path, compressed, err := b.StoredFile(hash)
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if compressed != tt.compressed || strings.HasSuffix(path, ".zst") != compressed {
				t.Errorf("stored as %s (compressed %v), want compressed %v", filepath.Base(path), compressed, tt.compressed)
			}
			if compressed && st.Size() > size-size/8 {
				t.Errorf("compressed to %d of %d bytes: saves less than an eighth", st.Size(), size)
			}
			if !compressed && st.Size() != size {
				t.Errorf("plain blob of %d bytes for %d of content", st.Size(), size)
			}
			if st.Mode().Perm()&0o222 != 0 {
				t.Errorf("blob is writable: %v", st.Mode())
			}
			if got := readBlob(t, b, hash); !bytes.Equal(got, tt.content) {
				t.Fatalf("read back %d bytes (hash %s), want the %d stored", len(got), sum(got), len(tt.content))
			}
			if err := b.Check(hash, size); err != nil {
				t.Fatal(err)
			}
			// Storing it again adds nothing.
			if h2, s2, err := b.Put(bytes.NewReader(tt.content)); err != nil || h2 != hash || s2 != size {
				t.Fatalf("second put: %s %d %v", h2, s2, err)
			}
			if _, err := os.Stat(otherForm(b, hash, compressed)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("both forms stored: %v", err)
			}
		})
	}
	if ents, _ := os.ReadDir(b.tmp); len(ents) != 0 {
		t.Errorf("temp files left: %d", len(ents))
	}
}

func otherForm(b *BlobStore, hash string, compressed bool) string {
	if compressed {
		return b.plainPath(hash)
	}
	return b.zstPath(hash)
}

func zstdOf(t testing.TB, content []byte) []byte {
	e, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	return e.EncodeAll(content, nil)
}

// writeLegacy writes a blob as versions before compression did: plain, named by its
// hash, read-only.
func writeLegacy(t testing.TB, b *BlobStore, content []byte) string {
	t.Helper()
	hash := sum(content)
	p := b.plainPath(hash)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o444); err != nil {
		t.Fatal(err)
	}
	return hash
}

// TestBlobLegacyPlainStaysReadable: blobs stored plain by earlier versions are read as
// they are, with no migration, and storing the same content again keeps that copy. A
// plain blob whose content is itself a zstd stream is handed out as stored, never
// decompressed: the file name, not the content, says which form a blob is in.
func TestBlobLegacyPlainStaysReadable(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
	}{
		{"an extract", csvLike(1 << 20)},
		{"a zstd stream", zstdOf(t, csvLike(1<<20))},
		{"a zstd stream with a file's name", []byte("(\xb5/\xfd")},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBlobStore(t)
			hash := writeLegacy(t, b, tt.content)
			if got := readBlob(t, b, hash); !bytes.Equal(got, tt.content) {
				t.Fatalf("read %d bytes, want the %d stored", len(got), len(tt.content))
			}
			if err := b.Check(hash, int64(len(tt.content))); err != nil {
				t.Fatal(err)
			}
			if _, _, err := b.Put(bytes.NewReader(tt.content)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(b.zstPath(hash)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a compressed copy was added beside the plain one: %v", err)
			}
		})
	}
}

// TestBlobBothForms: when a blob exists in both forms (a downgrade to a version that
// wrote the plain one, then an upgrade), readers (Open, OpenSized) read the form that
// holds the content — the plain one when it does, the compressed one when the plain
// one is damaged (edited, truncated, grown) — verify checks both and names the damaged
// one, and a Put of the content repairs a plain copy of the wrong size in place.
func TestBlobBothForms(t *testing.T) {
	content := csvLike(512 << 10)
	edited := bytes.Clone(content)
	edited[1000] ^= 1
	tests := []struct {
		name    string
		plain   []byte // the plain copy written beside the compressed one
		damage  func(t *testing.T, b *BlobStore, hash string)
		readErr string // what reading says, "" reads content
		check   []string
	}{
		{name: "both whole"},
		{name: "plain edited, same size", plain: edited, check: []string{"content changed", "blob "}},
		{name: "plain forged", plain: append([]byte("forged "), content[7:]...), check: []string{"content changed", "blob "}},
		{name: "plain truncated", plain: content[:len(content)/2], check: []string{"content changed", "blob "}},
		{name: "plain grown", plain: append(bytes.Clone(content), "more"...), check: []string{"holds more than"}},
		{name: "plain empty", plain: []byte{}, check: []string{"blob "}},
		{name: "compressed damaged", damage: func(t *testing.T, b *BlobStore, hash string) {
			flipByte(t, b.zstPath(hash))
		}, check: []string{".zst", "damaged compressed content"}},
		{name: "both damaged", plain: edited, damage: func(t *testing.T, b *BlobStore, hash string) {
			flipByte(t, b.zstPath(hash))
		}, readErr: "damaged compressed content", check: []string{"content changed", ".zst", "damaged compressed content"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBlobStore(t)
			hash, size, err := b.Put(bytes.NewReader(content))
			if err != nil {
				t.Fatal(err)
			}
			if _, compressed, _ := b.StoredFile(hash); !compressed {
				t.Fatal("the content was not stored compressed")
			}
			plain := tt.plain
			if plain == nil {
				plain = content
			}
			if err := os.WriteFile(b.plainPath(hash), plain, 0o444); err != nil {
				t.Fatal(err)
			}
			if tt.damage != nil {
				tt.damage(t, b, hash)
			}
			if p, compressed, _ := b.StoredFile(hash); compressed || p != b.plainPath(hash) {
				t.Errorf("StoredFile %s (compressed %v), want the plain one", p, compressed)
			}
			for _, open := range []struct {
				name string
				open func() (io.ReadCloser, error)
			}{
				{"Open", func() (io.ReadCloser, error) { return b.Open(hash) }},
				{"OpenSized", func() (io.ReadCloser, error) { return b.OpenSized(hash, size) }},
			} {
				rc, err := open.open()
				var got []byte
				if err == nil {
					got, err = io.ReadAll(rc)
					rc.Close()
				}
				switch {
				case tt.readErr == "" && err != nil:
					t.Errorf("%s: %v, want the content", open.name, err)
				case tt.readErr == "" && !bytes.Equal(got, content):
					t.Errorf("%s read %d bytes %.20q…, want the content (%d bytes)", open.name, len(got), got, len(content))
				case tt.readErr != "" && (err == nil || !strings.Contains(err.Error(), tt.readErr)):
					t.Errorf("%s: error %v, want one with %q", open.name, err, tt.readErr)
				}
			}
			err = b.Check(hash, size)
			if len(tt.check) == 0 && err != nil {
				t.Fatalf("check: %v", err)
			}
			for _, w := range tt.check {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("check: %v, want it to contain %q", err, w)
				}
			}
		})
	}
	t.Run("put repairs a damaged plain copy", func(t *testing.T) {
		b := newBlobStore(t)
		hash := sum(content)
		p := b.plainPath(hash)
		os.MkdirAll(filepath.Dir(p), 0o750)
		if err := os.WriteFile(p, content[:len(content)/2], 0o444); err != nil { // truncated: the wrong size
			t.Fatal(err)
		}
		if err := b.Check(hash, int64(len(content))); err == nil {
			t.Fatal("a truncated blob passed the check")
		}
		if _, _, err := b.Put(bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		if err := b.Check(hash, int64(len(content))); err != nil {
			t.Fatalf("after the put: %v", err)
		}
		if _, err := os.Stat(b.zstPath(hash)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("repaired beside it instead of in place: %v", err)
		}
	})
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, b, 0o444); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyDamagedCompressedBlob damages a compressed blob in the ways a disk or a
// person can, and checks that `archive verify` (Store.Verify) reports it naming the
// blob, its file on disk and the archived file that uses it, and that a reader of it
// gets an error rather than wrong bytes.
func TestVerifyDamagedCompressedBlob(t *testing.T) {
	content := csvLike(2 << 20)
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, stored []byte) []byte // returns the new bytes
		want   string
	}{
		{"a flipped byte", func(t *testing.T, _ string, s []byte) []byte {
			s[len(s)/2] ^= 0x40
			return s
		}, "damaged compressed content"},
		{"truncated to half", func(t *testing.T, _ string, s []byte) []byte { return s[:len(s)/2] }, "damaged compressed content"},
		{"its checksum cut off", func(t *testing.T, _ string, s []byte) []byte { return s[:len(s)-4] }, "damaged compressed content"},
		{"emptied", func(t *testing.T, _ string, s []byte) []byte { return nil }, "damaged compressed content"},
		{"random bytes", func(t *testing.T, _ string, s []byte) []byte { return randomBytes(len(s), 9) }, "damaged compressed content"},
		{"another content, compressed", func(t *testing.T, _ string, s []byte) []byte {
			return zstdOf(t, csvLike(2<<20 + 1)[1:])
		}, "content changed (now hashes to"},
		{"the content, shortened, compressed", func(t *testing.T, _ string, s []byte) []byte {
			return zstdOf(t, content[:1<<20])
		}, "content changed (now hashes to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			res, err := s.Ingest(context.Background(), IngestRequest{Source: "folder:a", Name: "morosi.csv", Direction: "in", Kind: "test", Reader: bytes.NewReader(content)})
			if err != nil {
				t.Fatal(err)
			}
			path, compressed, err := s.Blobs.StoredFile(res.File.Hash)
			if err != nil || !compressed {
				t.Fatalf("stored %s compressed %v: %v", path, compressed, err)
			}
			stored, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o644)
			if err := os.WriteFile(path, tt.damage(t, path, stored), 0o444); err != nil {
				t.Fatal(err)
			}
			rep, err := s.Verify(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 1 {
				t.Fatalf("problems %q, want one", rep.Problems)
			}
			p := rep.Problems[0]
			for _, w := range []string{"blob " + res.File.Hash, tt.want, "used by file #1 in morosi.csv"} {
				if !strings.Contains(p, w) {
					t.Errorf("problem %q does not contain %q", p, w)
				}
			}
			if tt.want == "damaged compressed content" && !strings.Contains(p, path) {
				t.Errorf("problem %q does not name the file %s", p, path)
			}
			if tt.want != "damaged compressed content" {
				return // a valid stream of other content reads; verify is what tells
			}
			rc, _, err := s.OpenFile(context.Background(), res.File.ID)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("reading the damaged blob: %v, want an error naming %s", err, path)
			}
		})
	}
}

// TestVerifyCompressedBlobsOrphans: a compressed blob no index row names is an
// orphan, reported by its file name; an indexed one is not.
func TestVerifyCompressedBlobsOrphans(t *testing.T) {
	s := openTest(t)
	ingest(t, s, "folder:a", "a.csv", string(csvLike(64<<10)))
	orphan, _, err := s.Blobs.Put(bytes.NewReader(csvLike(128 << 10)))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(context.Background(), nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %q", err, rep.Problems)
	}
	if len(rep.Orphans) != 1 || rep.Orphans[0] != orphan+".zst" {
		t.Errorf("orphans %q, want [%s.zst]", rep.Orphans, orphan)
	}
}

// failingReader gives n bytes of content, then fails: a source that broke mid-read.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source broke")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestBlobPutFailsCleanly: a source that fails mid-read leaves neither a blob nor a
// temp file, in either form; the limit is enforced on the original size.
func TestBlobPutFailsCleanly(t *testing.T) {
	content := csvLike(3 << 20)
	for _, at := range []int{0, 100, sampleSize, 2 << 20} {
		t.Run(fmt.Sprint("after ", at), func(t *testing.T) {
			b := newBlobStore(t)
			if _, _, err := b.Put(&failingReader{r: bytes.NewReader(content), n: at}); err == nil || !strings.Contains(err.Error(), "source broke") {
				t.Fatalf("put: %v", err)
			}
			if ents, _ := os.ReadDir(b.tmp); len(ents) != 0 {
				t.Errorf("temp files left: %d", len(ents))
			}
			if fs, _ := filepath.Glob(filepath.Join(b.root, "*", "*")); len(fs) != 0 {
				t.Errorf("blobs stored: %v", fs)
			}
		})
	}
	t.Run("over the limit", func(t *testing.T) {
		b := newBlobStore(t)
		// 3 MiB compress to far less than 1 MiB: the limit is on the content.
		hash, size, stored, err := b.PutLimited(bytes.NewReader(content), 1<<20)
		if err != nil || stored || hash != sum(content) || size != int64(len(content)) {
			t.Fatalf("PutLimited: %s %d stored %v %v", hash, size, stored, err)
		}
		if _, _, err := b.StoredFile(hash); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a blob over the limit was stored: %v", err)
		}
	})
}

// TestBlobConcurrentPuts stores and reads blobs from several goroutines at once: the
// pooled encoders and decoders are never shared between two of them.
func TestBlobConcurrentPuts(t *testing.T) {
	b := newBlobStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				content := csvLike(64<<10 + g*100_003 + i*7919)
				if i%3 == 2 {
					content = randomBytes(len(content), uint64(g*10+i))
				}
				hash, _, err := b.Put(bytes.NewReader(content))
				if err != nil {
					errs <- err
					return
				}
				rc, err := b.Open(hash)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, content) {
					errs <- fmt.Errorf("goroutine %d blob %d: read %d bytes, %v", g, i, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBlobKilledMidPut kills (SIGKILL) a process while it stores a blob, at points the
// content's source chooses — reading the head, compressing the rest, reading the tail
// whose content will not compress — and once the blob is stored: afterwards the blob
// is absent or whole, never partial, and RemoveTemp clears what the kill left.
func TestBlobKilledMidPut(t *testing.T) {
	if dir := os.Getenv("CMORD_BLOB_CHILD"); dir != "" {
		blobChild(dir, os.Getenv("CMORD_BLOB_CONTENT"), os.Getenv("CMORD_BLOB_STOP"))
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	tests := []struct {
		content string // csv or mixed (an extract head, a random tail)
		stop    string // after N bytes read; "stored": after Put returned
		whole   bool
	}{
		{"csv", "1000", false},
		{"csv", fmt.Sprint(sampleSize + 1), false},
		{"csv", fmt.Sprint(3 << 20), false},
		{"mixed", fmt.Sprint(3 << 20), false},
		{"csv", "stored", true},
		{"mixed", "stored", true},
	}
	for _, tt := range tests {
		t.Run(tt.content+" "+tt.stop, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "objects")
			cmd := exec.Command(os.Args[0], "-test.run", "^TestBlobKilledMidPut$")
			cmd.Env = append(os.Environ(), "CMORD_BLOB_CHILD="+dir, "CMORD_BLOB_CONTENT="+tt.content, "CMORD_BLOB_STOP="+tt.stop)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || strings.TrimSpace(line) != "stop" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child said %q, %v", line, err)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("child ended with %v, want killed", err)
			}
			b, err := NewBlobStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			content := blobChildContent(tt.content)
			hash := sum(content)
			_, _, statErr := b.StoredFile(hash)
			if tt.whole != (statErr == nil) {
				t.Fatalf("blob present: %v, want %v", statErr == nil, tt.whole)
			}
			if fs, _ := filepath.Glob(filepath.Join(b.root, "*", "*")); len(fs) > 1 || (len(fs) == 1 && !tt.whole) {
				t.Fatalf("files in the store: %v", fs)
			}
			if tt.whole {
				if err := b.Check(hash, int64(len(content))); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.RemoveTemp(); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(b.tmp); len(ents) != 0 {
				t.Errorf("temp files left after RemoveTemp: %d", len(ents))
			}
			// The store takes the content afresh.
			if _, _, err := b.Put(bytes.NewReader(content)); err != nil {
				t.Fatal(err)
			}
			if got := readBlob(t, b, hash); !bytes.Equal(got, content) {
				t.Fatal("read back other bytes")
			}
		})
	}
}

func blobChildContent(kind string) []byte {
	csv := csvLike(6 << 20)
	if kind == "mixed" {
		return append(csv[:sampleSize:sampleSize], randomBytes(6<<20, 7)...)
	}
	return csv
}

// stoppingReader tells the parent "stop" once n bytes were read, then waits to be
// killed.
type stoppingReader struct {
	r    io.Reader
	n, m int
}

func (s *stoppingReader) Read(p []byte) (int, error) {
	if s.m >= s.n {
		fmt.Println("stop")
		time.Sleep(time.Hour)
	}
	if len(p) > s.n-s.m {
		p = p[:s.n-s.m]
	}
	k, err := s.r.Read(p)
	s.m += k
	return k, err
}

func blobChild(dir, kind, stop string) {
	b, err := NewBlobStore(dir)
	if err != nil {
		panic(err)
	}
	content := blobChildContent(kind)
	var r io.Reader = bytes.NewReader(content)
	if stop != "stored" {
		var n int
		fmt.Sscan(stop, &n)
		r = &stoppingReader{r: r, n: n}
	}
	if _, _, err := b.Put(r); err != nil {
		panic(err)
	}
	fmt.Println("stop")
	time.Sleep(time.Hour)
}

// TestBlobReaderSeeks: a blob's reader seeks as a plain file does, compressed or not —
// the SFTP upload rewinds it to retry on a new connection.
func TestBlobReaderSeeks(t *testing.T) {
	for _, tt := range []struct {
		name       string
		content    []byte
		compressed bool
	}{
		{"plain", randomBytes(700<<10, 11), false},
		{"compressed", csvLike(700 << 10), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBlobStore(t)
			hash, _, err := b.Put(bytes.NewReader(tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if _, compressed, _ := b.StoredFile(hash); compressed != tt.compressed {
				t.Fatalf("compressed %v, want %v", compressed, tt.compressed)
			}
			for _, sized := range []bool{false, true} {
				t.Run(fmt.Sprint("sized ", sized), func(t *testing.T) { seekBlob(t, b, hash, tt.content, sized) })
			}
		})
	}
}

// seekBlob seeks a blob's reader (Open's, or OpenSized's: readers of archived files
// use it) as the SFTP upload does, and reads what each seek leads to.
func seekBlob(t *testing.T, b *BlobStore, hash string, content []byte, sized bool) {
	var rc io.ReadCloser
	var err error
	if sized {
		rc, err = b.OpenSized(hash, int64(len(content)))
	} else {
		rc, err = b.Open(hash)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sk, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Fatalf("%T does not seek", rc)
	}
	half := len(content) / 2
	if _, err := io.ReadFull(sk, make([]byte, half)); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		offset int64
		whence int
		want   int64
	}{
		{0, io.SeekCurrent, int64(half)}, // where the upload starts from
		{0, io.SeekStart, 0},             // rewound for a retry
		{int64(half) + 100, io.SeekStart, int64(half) + 100},
		{-50, io.SeekCurrent, int64(half) + 50},
		{int64(len(content)) - 10, io.SeekStart, int64(len(content)) - 10},
	}
	for _, st := range steps {
		pos, err := sk.Seek(st.offset, st.whence)
		if err != nil || pos != st.want {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", st.offset, st.whence, pos, err, st.want)
		}
		got := make([]byte, 10)
		if _, err := io.ReadFull(sk, got); err != nil || !bytes.Equal(got, content[pos:pos+10]) {
			t.Fatalf("after Seek(%d, %d): read %q, %v; want %q", st.offset, st.whence, got, err, content[pos:pos+10])
		}
		if _, err := sk.Seek(pos, io.SeekStart); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sk.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(sk); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read after the rewind: %d bytes, %v", len(got), err)
	}
}

// bombOf is a zstd stream, as a streaming writer with the store's window makes it,
// whose content is n zero bytes: a few KiB on disk expanding to n.
func bombOf(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	e, err := zstd.NewWriter(&b, zstd.WithWindowSize(blobWindow))
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for i := 0; i < n; i += len(zeros) {
		e.Write(zeros[:min(len(zeros), n-i)])
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// countingDiscard counts what a reader of a blob was given.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestBlobReadEnforcesIndexedSize replaces a compressed blob by a valid stream of
// another length — a decompression bomb (a few KiB expanding to 256 MiB) or a shorter
// content — and checks that a reader of the archived file (cat, export, publish, the
// handlers) gets at most the indexed size and then an error, never the extra bytes,
// and that verify says so without decompressing the whole bomb.
func TestBlobReadEnforcesIndexedSize(t *testing.T) {
	content := csvLike(64 << 10)
	tests := []struct {
		name     string
		stored   func(t *testing.T) []byte
		readErr  string
		checkErr string
	}{
		{"a bomb", func(t *testing.T) []byte { return bombOf(t, 256<<20) }, "holds more than the 65536 bytes the index says", "holds more than the 65536 bytes the index says"},
		// Its checksum broken: a reader or verify that decompressed it all would
		// report that instead, 256 MiB later.
		{"a bomb with a broken end", func(t *testing.T) []byte {
			b := bombOf(t, 256<<20)
			b[len(b)-1] ^= 1
			return b
		}, "holds more than the 65536 bytes the index says", "holds more than the 65536 bytes the index says"},
		{"a shorter content", func(t *testing.T) []byte { return zstdOf(t, content[:1000]) }, "ends after 1000 bytes, the index says 65536", "content changed"},
		// A whole, valid stream of other content of the same size: only its hash tells.
		{"other content of the same size", func(t *testing.T) []byte {
			other := bytes.Clone(content)
			other[4000] ^= 1
			return zstdOf(t, other)
		}, "content changed", "content changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			res, err := s.Ingest(context.Background(), IngestRequest{Source: "folder:a", Name: "morosi.csv", Direction: "in", Kind: "test", Reader: bytes.NewReader(content)})
			if err != nil {
				t.Fatal(err)
			}
			path, compressed, err := s.Blobs.StoredFile(res.File.Hash)
			if err != nil || !compressed {
				t.Fatalf("stored %s compressed %v: %v", path, compressed, err)
			}
			os.Chmod(path, 0o644)
			if err := os.WriteFile(path, tt.stored(t), 0o444); err != nil {
				t.Fatal(err)
			}
			rc, _, err := s.OpenFile(context.Background(), res.File.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got countingDiscard
			_, err = io.Copy(&got, rc)
			rc.Close()
			if err == nil || !strings.Contains(err.Error(), tt.readErr) || !strings.Contains(err.Error(), short(res.File.Hash)) {
				t.Errorf("reading: %v, want an error naming the blob and saying %q", err, tt.readErr)
			}
			if got.n > int64(len(content)) {
				t.Errorf("the reader was given %d bytes, more than the indexed %d", got.n, len(content))
			}
			rep, err := s.Verify(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], tt.checkErr) {
				t.Errorf("verify problems %q, want one saying %q", rep.Problems, tt.checkErr)
			}
		})
	}
}

// TestBlobPutRepairsDamagedCompressedCopy: storing again a content whose compressed
// copy is damaged leaves the content readable and verified, whichever form this
// version would choose for it.
func TestBlobPutRepairsDamagedCompressedCopy(t *testing.T) {
	compressible := csvLike(512 << 10)
	incompressible := randomBytes(300<<10, 5) // a copy compressed by other settings, say
	tests := []struct {
		name    string
		content []byte
		damaged []byte
	}{
		{"compressible, truncated", compressible, zstdOf(t, compressible)[:1000]},
		{"incompressible, truncated", incompressible, zstdOf(t, incompressible)[:1000]},
		{"incompressible, emptied", incompressible, nil},
		{"incompressible, another content", incompressible, zstdOf(t, randomBytes(300<<10, 6))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBlobStore(t)
			hash := sum(tt.content)
			z := b.zstPath(hash)
			os.MkdirAll(filepath.Dir(z), 0o750)
			if err := os.WriteFile(z, tt.damaged, 0o444); err != nil {
				t.Fatal(err)
			}
			if _, _, err := b.Put(bytes.NewReader(tt.content)); err != nil {
				t.Fatal(err)
			}
			if err := b.Check(hash, int64(len(tt.content))); err != nil {
				t.Errorf("after the put: %v", err)
			}
			rc, err := b.Open(hash)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, tt.content) {
				t.Errorf("read %d bytes, %v; want the content (%d bytes)", len(got), err, len(tt.content))
			}
		})
	}
}

// TestBlobReaderErrorSticks: once a compressed blob's reader reports damage, it keeps
// reporting it: the decoder would otherwise hand out the block whose checksum failed
// to a caller that reads again (bufio.Reader does: it returns an error once).
func TestBlobReaderErrorSticks(t *testing.T) {
	b := newBlobStore(t)
	content := csvLike(700 << 10)
	hash, _, err := b.Put(bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	p, compressed, err := b.StoredFile(hash)
	if err != nil || !compressed {
		t.Fatalf("stored as %s (compressed %v): %v", p, compressed, err)
	}
	stored, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	stored[len(stored)-1] ^= 1 // the frame's checksum
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, stored, 0o444); err != nil {
		t.Fatal(err)
	}
	rc, err := b.Open(hash)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, first := io.ReadAll(rc)
	if first == nil || !strings.Contains(first.Error(), "damaged compressed content") {
		t.Fatalf("read %d bytes, %v; want the damage reported", len(got), first)
	}
	for i := range 3 {
		if n, err := rc.Read(make([]byte, 64<<10)); n != 0 || err == nil {
			t.Fatalf("read %d after the damage: %d bytes, %v; want none and the error again", i+1, n, err)
		}
	}
}

// TestBlobReadRefusesChangedContent: a plain blob edited in place to the same size is
// refused at the end of a read from its start (archive cat, a handler, a publication
// fail instead of taking it), also after a rewind; a read that seeks elsewhere first
// is not checked; an intact blob reads as it is either way.
func TestBlobReadRefusesChangedContent(t *testing.T) {
	var rnd []byte // incompressible: a SHA-256 counter stream, stored plain (checked below)
	for i := 0; len(rnd) < 16<<10; i++ {
		h := sha256.Sum256([]byte(fmt.Sprint(i)))
		rnd = append(rnd, h[:]...)
	}
	for _, edited := range []bool{false, true} {
		for _, seek := range []string{"none", "rewind", "elsewhere"} {
			t.Run(fmt.Sprintf("edited=%v/seek=%s", edited, seek), func(t *testing.T) {
				s := openTest(t)
				res, err := s.Ingest(context.Background(), IngestRequest{Source: "folder:a", Name: "book.xlsx", Direction: "in", Kind: "test", Reader: bytes.NewReader(rnd)})
				if err != nil {
					t.Fatal(err)
				}
				path, compressed, err := s.Blobs.StoredFile(res.File.Hash)
				if err != nil || compressed {
					t.Fatalf("stored %s compressed %v (%v): the test needs a plain blob", path, compressed, err)
				}
				if edited {
					b := bytes.Clone(rnd)
					b[100] ^= 1
					os.Chmod(path, 0o644)
					if err := os.WriteFile(path, b, 0o444); err != nil {
						t.Fatal(err)
					}
				}
				rc, err := s.Blobs.OpenSized(res.File.Hash, res.File.Size)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				sk := rc.(io.Seeker)
				switch seek {
				case "rewind":
					io.CopyN(io.Discard, rc, 500)
					if _, err := sk.Seek(0, io.SeekStart); err != nil {
						t.Fatal(err)
					}
				case "elsewhere":
					if _, err := sk.Seek(50, io.SeekStart); err != nil {
						t.Fatal(err)
					}
				}
				_, err = io.Copy(io.Discard, rc)
				wantErr := edited && seek != "elsewhere"
				if wantErr != (err != nil) || (err != nil && !strings.Contains(err.Error(), "content changed")) {
					t.Errorf("read error %v, want one saying the content changed: %v", err, wantErr)
				}
			})
		}
	}
}
