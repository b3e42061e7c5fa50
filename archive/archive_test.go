package archive

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ingest(t *testing.T, s *Store, source, name, content string) IngestResult {
	t.Helper()
	res, err := s.Ingest(context.Background(), IngestRequest{Source: source, Name: name, Direction: "in", Kind: "test", Reader: strings.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestOpenUsesWALAndFullSync(t *testing.T) {
	s := openTest(t)
	var mode string
	if err := s.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var sync int
	if err := s.w.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
	// Reopening applies no migration twice.
	dir := s.Dir()
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

func TestIngestVersionsAndDuplicates(t *testing.T) {
	s := openTest(t)
	tests := []struct {
		step          string
		source, name  string
		content       string
		wantVersion   int
		wantState     string
		wantExisting  bool
		wantDuplicate bool
	}{
		{"first delivery", "folder:a", "x.csv", "one", 1, StateReceived, false, false},
		{"same name same content is recognised", "folder:a", "x.csv", "one", 1, StateReceived, true, false},
		{"same name new content is a new version", "folder:a", "x.csv", "two", 2, StateReceived, false, false},
		{"other name identical content is a duplicate", "folder:a", "y.csv", "one", 1, StateDuplicate, false, true},
		{"other source same name is another logical file", "folder:b", "x.csv", "three", 1, StateReceived, false, false},
	}
	for _, tt := range tests {
		res := ingest(t, s, tt.source, tt.name, tt.content)
		if res.File.Version != tt.wantVersion || res.File.State != tt.wantState || res.Existing != tt.wantExisting || (res.File.DuplicateOf != 0) != tt.wantDuplicate {
			t.Errorf("%s: got version %d state %s existing %v dupOf %d", tt.step, res.File.Version, res.File.State, res.Existing, res.File.DuplicateOf)
		}
	}
	hist, err := s.History(context.Background(), "folder:a", "x.csv")
	if err != nil || len(hist) != 2 {
		t.Fatalf("history: %d versions, %v", len(hist), err)
	}
	rc, f, err := s.OpenFile(context.Background(), hist[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "two" || f.Version != 2 {
		t.Fatalf("content of v2 = %q", b)
	}
	st, _ := os.Stat(blobFile(t, s.Blobs, f.Hash))
	if st.Mode().Perm()&0o222 != 0 {
		t.Fatalf("blob is writable: %v", st.Mode())
	}
}

func TestSetFileStateAndProvenance(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	in := ingest(t, s, "folder:a", "in.csv", "rows")
	out, err := s.Ingest(ctx, IngestRequest{Source: "built", Name: "out.csv", Direction: "out", Kind: "REQ", Reader: strings.NewReader("flow"), Inputs: []int64{in.File.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if out.File.State != StateBuilt {
		t.Fatalf("out state %s", out.File.State)
	}
	err = s.Write(ctx, func(tx *sql.Tx) error {
		return s.SetFileState(ctx, tx, in.File.ID, StateProcessed, "", map[string]string{"rows": "1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetFile(ctx, in.File.ID)
	if got.State != StateProcessed || got.Meta["rows"] != "1" || got.ProcessedAt.IsZero() {
		t.Fatalf("after SetFileState: %+v", got)
	}
	inputs, _, _ := s.Provenance(ctx, out.File.ID)
	_, outputs, _ := s.Provenance(ctx, in.File.ID)
	if len(inputs) != 1 || inputs[0] != in.File.ID || len(outputs) != 1 || outputs[0] != out.File.ID {
		t.Fatalf("provenance inputs %v outputs %v", inputs, outputs)
	}
}

func TestEventsAreAppendOnly(t *testing.T) {
	s := openTest(t)
	ingest(t, s, "folder:a", "x", "1")
	for _, q := range []string{`UPDATE events SET detail = 'x'`, `DELETE FROM events`} {
		if _, err := s.w.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only refusal", q, err)
		}
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *Store, hash string)
		want   string
	}{
		{"intact", func(*testing.T, *Store, string) {}, ""},
		{"changed blob", func(t *testing.T, s *Store, hash string) {
			p := blobFile(t, s.Blobs, hash)
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, []byte("forged"), 0o444); err != nil {
				t.Fatal(err)
			}
		}, "content changed"},
		{"missing blob", func(t *testing.T, s *Store, hash string) {
			if err := os.Remove(blobFile(t, s.Blobs, hash)); err != nil {
				t.Fatal(err)
			}
		}, "is missing"},
		{"altered event", func(t *testing.T, s *Store, _ string) {
			mustExec(t, s, `DROP TRIGGER events_no_update`)
			mustExec(t, s, `UPDATE events SET detail = 'rewritten history' WHERE id = 1`)
		}, "content was altered"},
		{"deleted event", func(t *testing.T, s *Store, _ string) {
			mustExec(t, s, `DROP TRIGGER events_no_delete`)
			mustExec(t, s, `DELETE FROM events WHERE id = 2`)
		}, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			r1 := ingest(t, s, "folder:a", "one.csv", "first content")
			ingest(t, s, "folder:a", "two.csv", "second content")
			ingest(t, s, "folder:a", "three.csv", "third content")
			tt.tamper(t, s, r1.File.Hash)
			rep, err := s.Verify(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if !rep.OK() || rep.Blobs != 3 || rep.Events != 3 {
					t.Fatalf("intact store: %+v", rep)
				}
				return
			}
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), tt.want) {
				t.Fatalf("problems %q, want one containing %q", rep.Problems, tt.want)
			}
		})
	}
}

func mustExec(t *testing.T, s *Store, q string) {
	t.Helper()
	if _, err := s.w.Exec(q); err != nil {
		t.Fatal(err)
	}
}

func TestExceptionsFingerprintAndResolution(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	raise := func(msg string) (int64, bool) {
		var id int64
		var fresh bool
		err := s.Write(ctx, func(tx *sql.Tx) (err error) {
			id, fresh, err = s.RaiseException(ctx, tx, Exception{Fingerprint: "fp1", Kind: "sii_unreachable", Severity: SevUrgent, Message: msg})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return id, fresh
	}
	id1, new1 := raise("down")
	id2, new2 := raise("still down")
	if id1 != id2 || !new1 || new2 {
		t.Fatalf("repeat made a new row: %d/%v %d/%v", id1, new1, id2, new2)
	}
	e, _ := s.GetException(ctx, id1)
	if e.Count != 2 || e.Message != "still down" || !e.Open() {
		t.Fatalf("after repeat: %+v", e)
	}
	// automatic resolution, then the condition comes back: reopened
	s.Write(ctx, func(tx *sql.Tx) error {
		_, err := s.ResolveByFingerprint(ctx, tx, "fp1", "reachable again")
		return err
	})
	if _, reopened := raise("down again"); !reopened {
		t.Fatal("auto-resolved exception was not reopened")
	}
	// resolution by a person stands
	s.Write(ctx, func(tx *sql.Tx) error { return s.ResolveException(ctx, tx, id1, "anna", "called AU") })
	if _, reopened := raise("down once more"); reopened {
		t.Fatal("a person's resolution was undone")
	}
	open := true
	list, _ := s.Exceptions(ctx, ExceptionFilter{Open: &open})
	if len(list) != 0 {
		t.Fatalf("open exceptions: %d", len(list))
	}
}

func TestDeliveriesPublishFile(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	out, _ := s.Ingest(ctx, IngestRequest{Source: "built", Name: "f.csv", Direction: "out", Kind: "REQ", Reader: strings.NewReader("x")})
	var id int64
	s.Write(ctx, func(tx *sql.Tx) (err error) {
		id, err = s.QueueDelivery(ctx, tx, Delivery{FileID: out.File.ID, Target: "sftp:sii", RemoteDir: "/in", RemoteName: "f.csv"})
		return err
	})
	due, _ := s.DueDeliveries(ctx, out.File.ReceivedAt.Add(1e9), "")
	if len(due) != 1 || due[0].ID != id {
		t.Fatalf("due: %+v", due)
	}
	if err := s.MarkDelivered(ctx, id, "/in/f.csv", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivered(ctx, id, "/in/f.csv", 1); err != nil { // idempotent
		t.Fatal(err)
	}
	f, _ := s.GetFile(ctx, out.File.ID)
	if f.State != StatePublished {
		t.Fatalf("state %s", f.State)
	}
	if n, _ := s.PendingDeliveries(ctx); n != 0 {
		t.Fatalf("pending %d", n)
	}
}

// BenchmarkIngest64KiB measures durable ingest (blob fsync + directory fsync + SQLite
// commit with synchronous=FULL) of distinct 64 KiB files. Target: >= 500 files/s.
func BenchmarkIngest64KiB(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	dir := b.TempDir()
	paths := make([]string, b.N)
	for i := range paths {
		copy(buf, fmt.Sprintf("file %d of %d", i, b.N))
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%06d.csv", i))
		if err := os.WriteFile(paths[i], buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Ingest(ctx, IngestRequest{Source: "folder:bench", Name: filepath.Base(paths[i]), Direction: "in", Kind: "unknown", Path: paths[i]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkIngest64KiBParallel is the same with several files in flight at once, as
// when several drop folders and the SFTP poller ingest together: blob fsyncs overlap,
// index commits stay serial on the single writer.
func BenchmarkIngest64KiBParallel(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	dir := b.TempDir()
	paths := make([]string, b.N)
	buf := make([]byte, 64<<10)
	for i := range paths {
		copy(buf, fmt.Sprintf("parallel file %d of %d", i, b.N))
		paths[i] = filepath.Join(dir, fmt.Sprintf("p%06d.csv", i))
		if err := os.WriteFile(paths[i], buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetBytes(int64(len(buf)))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if _, err := s.Ingest(ctx, IngestRequest{Source: "folder:bench", Name: filepath.Base(paths[i]), Direction: "in", Kind: "unknown", Path: paths[i]}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

var _ = bytes.MinRead

// TestChainSealsEveryWrite: every way cmord's own code changes a chained row
// (insert, update, insert and update in one transaction, delete, a rolled-back
// transaction, a transaction of events only) leaves an archive that verifies clean,
// with one chain record per transaction that wrote something. Issue 13.
func TestChainSealsEveryWrite(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	records := func() int {
		var n int
		if err := s.r.QueryRow(`SELECT count(*) FROM chain`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	write := func(fn func(tx *sql.Tx) error) error { return s.Write(ctx, fn) }
	exec := func(q string, args ...any) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error { _, err := tx.Exec(q, args...); return err }
	}
	steps := []struct {
		name       string
		do         func()
		newRecords int
	}{
		{"ingest (insert file, event)", func() { ingest(t, s, "folder:a", "one.csv", "1") }, 1},
		{"update a file row", func() {
			if err := write(exec(`UPDATE files SET state = 'processed', processed_at = ? WHERE id = 1`, TS(time.Now()))); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"insert and update in one transaction", func() {
			err := write(func(tx *sql.Tx) error {
				if _, err := tx.Exec(`INSERT INTO files (source, name, direction, kind, hash, size, version, state, received_at)
					SELECT 'cli', 'two', 'in', 'x', hash, size, 1, 'received', ? FROM blobs LIMIT 1`, TS(time.Now())); err != nil {
					return err
				}
				_, err := tx.Exec(`UPDATE files SET reason = 'changed in the same transaction' WHERE name = 'two'`)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"delete a row", func() {
			if err := write(exec(`DELETE FROM files WHERE name = 'two'`)); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"rolled back", func() {
			err := write(func(tx *sql.Tx) error {
				if _, err := tx.Exec(`UPDATE files SET reason = 'never committed' WHERE id = 1`); err != nil {
					return err
				}
				return errors.New("abort")
			})
			if err == nil {
				t.Fatal("the write did not fail")
			}
		}, 0},
		{"nothing chained written", func() {
			if err := write(exec(`INSERT INTO sequences (name, next) VALUES ('x', 1)`)); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"an event only", func() {
			if err := write(func(tx *sql.Tx) error { return s.AppendEvent(tx, Event{Type: "NOTE"}) }); err != nil {
				t.Fatal(err)
			}
		}, 1},
	}
	for _, st := range steps {
		before := records()
		st.do()
		if got := records() - before; got != st.newRecords {
			t.Errorf("%s: %d new chain records, want %d", st.name, got, st.newRecords)
		}
		rep, err := s.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("%s: verify: %q", st.name, rep.Problems)
		}
	}
	var reason string
	s.r.QueryRow(`SELECT reason FROM files WHERE id = 1`).Scan(&reason)
	if reason != "" {
		t.Fatalf("the rolled-back update is there: %q", reason)
	}
}

// TestParseAnchor: the line `archive anchor` prints and SEQ:HASH read back; anything
// else is refused with a reason.
func TestParseAnchor(t *testing.T) {
	h := strings.Repeat("ab", 32)
	a := Anchor{Seq: 42, Hash: h, At: time.Date(2026, 12, 2, 22, 0, 0, 0, time.UTC), EventID: 7}
	for _, tt := range []struct {
		in   string
		want Anchor
		err  string
	}{
		{in: a.String(), want: a},
		{in: "  " + a.String() + "\n", want: a},
		{in: "42:" + h, want: Anchor{Seq: 42, Hash: h}},
		{in: "42:" + strings.ToUpper(h), want: Anchor{Seq: 42, Hash: h}},
		{in: "seq=42 hash=" + h, want: Anchor{Seq: 42, Hash: h}},
		{in: "", err: "want the line"},
		{in: "42:abc", err: "want the line"},
		{in: "0:" + h, err: "sequence number"},
		{in: "cmord-anchor/2 seq=1 hash=" + h, err: "unknown version"},
		{in: "cmord-anchor/1 seq=x hash=" + h, err: "seq"},
		{in: "cmord-anchor/1 hash=" + h, err: "sequence number"},
	} {
		got, err := ParseAnchor(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseAnchor(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.Seq != tt.want.Seq || got.Hash != tt.want.Hash || !got.At.Equal(tt.want.At) || got.EventID != tt.want.EventID {
			t.Errorf("ParseAnchor(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestDroppedChainStopsWrites: a chain table dropped behind cmord's back does not let
// it go on writing unchained: every write fails and names the chain.
func TestDroppedChainStopsWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, s, "folder:a", "one.csv", "1")
	s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE chain`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Ingest(context.Background(), IngestRequest{Source: "folder:a", Name: "two.csv", Direction: "in", Kind: "test", Reader: strings.NewReader("2")})
	if err == nil || !strings.Contains(err.Error(), "chain") {
		t.Fatalf("write without the chain table: %v, want an error naming the chain", err)
	}
	rep, err := s.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "state chain: cannot be read") {
		t.Fatalf("verify: %q", rep.Problems)
	}
}

// TestStoreClock: the times the archive records follow Store.Now when it is set (the
// demo's simulated clock), and the real clock otherwise.
func TestStoreClock(t *testing.T) {
	s := openTest(t)
	past := time.Date(2025, 11, 24, 8, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		now    func() time.Time
		within func(time.Time) bool
	}{
		{"set", func() time.Time { return past }, func(at time.Time) bool { return at.Equal(past) }},
		{"unset", nil, func(at time.Time) bool { return time.Since(at) < time.Hour && time.Since(at) >= 0 }},
	} {
		s.Now = tt.now
		f := ingest(t, s, "folder:clock", tt.name+".csv", "content of "+tt.name).File
		got, err := s.GetFile(context.Background(), f.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !tt.within(got.ReceivedAt) {
			t.Errorf("%s: received at %v", tt.name, got.ReceivedAt)
		}
	}
}

// blobFile is the file holding a stored blob, compressed or not.
func blobFile(t testing.TB, b *BlobStore, hash string) string {
	t.Helper()
	p, _, err := b.StoredFile(hash)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
