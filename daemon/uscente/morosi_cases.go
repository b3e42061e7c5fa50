package uscente

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/daemon/xlsxrows"
	"github.com/cmord/cmord/flows"
	"github.com/klauspost/compress/zstd"
)

// Row order of uscente.morosi (docs/uscente.md, "Row order"). The rows of one practice
// may be anywhere in a billing extract (sorted by invoice date, by customer, by
// nothing), and a practice must be decided with all of its rows. Two cases:
//
//   - the rows of each practice are adjacent (how most extracts come): the file is read
//     as it is, one practice at a time, in file order;
//   - they are not: the rows are sorted by case key into runs under the state
//     directory, then merged, so that the Grouper sees each practice's rows together.
//
// A first pass over the file tells the two apart, keeping a set of 8-byte hashes (of
// the key of each run of adjacent rows): a key that starts two runs means the rows are
// not adjacent, and the pass stops there. Memory stays flat at a million rows either
// way: the sort holds one run (SortRunBytes of encoded rows) at a time and the merge
// one block of rows per run (runblock.go: the runs' form, and why).

// SortRunBytes is how many bytes of encoded rows one sorted run holds in memory
// (tests set it smaller, for many runs to merge).
var SortRunBytes = 16 << 20

// KeyOrderCases: a file of more practices than this is read sorted by case key
// even when the rows of each practice are adjacent, so that its practices are
// inserted in key order. Inserted in file order, their case keys and points land
// anywhere in those indexes: once the indexes outgrow the writer's page cache, every
// chunk rewrites pages all over them. Measured (docs/benchmarks-uscente.md): at
// 100,000 practices both ways cost the same; at 333,334 the sorted way took 43 s
// against 78 s and wrote 0.8 GB less, sort included. Tests set it smaller.
var KeyOrderCases = 100_000

// sortByKey says whether a file is read sorted by case key: when the rows of a
// practice are not adjacent, or when it has more than KeyOrderCases practices.
func sortByKey(adjacent bool, cases int) bool {
	return !adjacent || cases > KeyOrderCases
}

// KeysAdjacent reads the rows of rd (header already read or not) and reports
// whether the rows of every key are adjacent. Rows without a key are ignored, as the
// Grouper ignores them. A hash collision can only report "not adjacent" for a file
// that is: the sorted path then gives the same cases, a little slower.
func KeysAdjacent(ctx context.Context, rd *flows.CSVReader) (bool, error) {
	adjacent, _, err := keyRuns(ctx, rd, 0)
	return adjacent, err
}

// keyRuns is KeysAdjacent that also counts the runs of adjacent rows of one key:
// the file's practices when they are adjacent. Only the key's fields are normalised:
// the rows' findings are the reading proper's. After the first key that starts a
// second run (the file is then sorted whatever its size, and the count is of the
// runs seen so far) it only reads on, normalising nothing, to the end or to an error
// that stops the reading: a file the reading proper refuses is "adjacent", whatever
// its rows before, so that it is read in file order up to the line it stops at.
//
// limit, when above 0, ends the counting the same way once more than limit runs are
// seen: the handler then reads the file sorted by key whether its rows are adjacent
// or not (sortByKey with limit KeyOrderCases), and a million-row extract's row-order
// pass no longer normalises and hashes every key for a count that changes nothing.
// The runs counted are then limit+1, and adjacent says only that no key started a
// second run before.
func keyRuns(ctx context.Context, rd *flows.CSVReader, limit int) (bool, int, error) {
	rd.NormalizeOnly(flows.MorosiKeyFields...)
	seed := maphash.MakeSeed()
	starts := map[uint64]struct{}{}
	adjacent, counting := true, true
	prev := ""
	var keys flows.MorosiKeyer
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return false, 0, ctx.Err()
		}
		rec, _, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return true, 0, nil // the reading pass proper reports it
		}
		if !counting {
			continue
		}
		key := keys.Key(rec)
		if key == "" || key == prev {
			continue
		}
		prev = key
		h := maphash.String(seed, key)
		if _, seen := starts[h]; seen {
			adjacent, counting = false, false
			rd.NormalizeOnly() // no field: the rest is read for its errors alone
			continue
		}
		starts[h] = struct{}{}
		if limit > 0 && len(starts) > limit {
			counting = false
			rd.NormalizeOnly()
		}
	}
	return adjacent, len(starts), nil
}

// morosiCases yields the cases of one uscente.morosi file in the order the handler
// processes them, each with all of its rows, together with the position a restart
// continues from.
type morosiCases struct {
	sorted bool
	g      flows.Grouper
	skip   int // cases (sorted) or lines (in file order) a previous run committed

	// In file order.
	rd      *flows.CSVReader
	carryFs []flows.Finding // findings of the row that started the current case
	carryN  int
	eof     bool

	// Sorted by key.
	merge *sortedRows
	cases int // cases handed out, counting skipped ones
}

// caseStep is one case and what was read to reach it.
type caseStep struct {
	mc *flows.MorosiCase // nil at the end of the file
	// through is the position after this case: in file order the last line accounted
	// for, sorted the number of cases done.
	through  int
	findings []flows.Finding // of the rows read meanwhile (in file order only)
	rows     int
}

// newMorosiCases prepares the cases of rd. sorted says how they are read (from
// KeysAdjacent, or from a previous run's progress); skip is that run's position.
// Sorted, the whole file is read and sorted here, and every row's findings are given
// to rowFindings (in file order they come with each caseStep instead).
func newMorosiCases(ctx context.Context, rd *flows.CSVReader, flow *flows.Flow, sorted bool, skip int, tmpDir string, rowFindings func(fs []flows.Finding)) (*morosiCases, error) {
	mc := &morosiCases{sorted: sorted, skip: skip, rd: rd}
	if !sorted {
		return mc, nil
	}
	m, err := sortRowsByKey(ctx, rd, flow, tmpDir, rowFindings)
	if err != nil {
		return nil, err
	}
	mc.merge = m
	return mc, nil
}

// Close removes the sorted runs.
func (c *morosiCases) Close() error {
	if c.merge != nil {
		return c.merge.Close()
	}
	return nil
}

// next returns the next case (mc nil at the end of the file).
func (c *morosiCases) next(ctx context.Context) (caseStep, error) {
	if c.sorted {
		return c.nextSorted(ctx)
	}
	return c.nextInOrder(ctx)
}

func (c *morosiCases) nextInOrder(ctx context.Context) (caseStep, error) {
	st := caseStep{findings: c.carryFs, rows: c.carryN}
	c.carryFs, c.carryN = nil, 0
	if c.eof {
		return st, nil
	}
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return st, ctx.Err()
		}
		rec, fs, err := c.rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, err
		}
		if rec.Line <= c.skip && rec.Line > 0 {
			continue
		}
		bad := flows.HasErrors(fs)
		if !bad || flows.MorosiKey(rec) != "" { // a bad row without a key has no case; its findings say why
			if done := c.g.Add(rec, bad); done != nil {
				// This row starts the next case: its findings go with that one, and a
				// restart after this case reads it again.
				c.carryFs, c.carryN = fs, 1
				st.mc, st.through = done, rec.Line-1
				return st, nil
			}
		}
		st.rows++
		st.findings = append(st.findings, fs...)
	}
	c.eof = true
	st.mc = c.g.Flush()
	return st, nil
}

func (c *morosiCases) nextSorted(ctx context.Context) (caseStep, error) {
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return caseStep{}, ctx.Err()
		}
		rec, bad, ok, err := c.merge.next()
		if err != nil {
			return caseStep{}, err
		}
		var done *flows.MorosiCase
		if ok {
			done = c.g.Add(rec, bad)
		} else {
			done = c.g.Flush()
			if done == nil {
				return caseStep{}, nil
			}
		}
		if done == nil {
			continue
		}
		c.cases++
		if c.cases <= c.skip {
			continue // committed by a previous run
		}
		return caseStep{mc: done, through: c.cases}, nil
	}
}

// ---- external sort of rows by case key ----

// sortRowsByKey reads every row of rd into sorted runs under dir and returns their
// merge. Rows without a key (refused: their findings say why) are left out. The rows
// are decoded and checked on a goroutine of their own (parseRows) while this one
// hands out their findings and encodes, sorts and writes the runs: the two halves of
// the pass overlap instead of taking turns.
func sortRowsByKey(ctx context.Context, rd *flows.CSVReader, flow *flows.Flow, dir string, rowFindings func(fs []flows.Finding)) (*sortedRows, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, "morosi-sort-")
	if err != nil {
		return nil, err
	}
	s := &runWriter{dir: tmp, flow: flow}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	rows := make(chan parsedRows, 2)
	go parseRows(pctx, rd, rows)
	fail := func(err error) (*sortedRows, error) {
		stop()
		for range rows { // until the parser has stopped: rd is the caller's again
		}
		os.RemoveAll(tmp)
		return nil, err
	}
	// A panic on this goroutine (rowFindings, a run's writing) leaves as fail does:
	// the parser stopped and the runs removed, then the panic goes on to the
	// caller's recover (intake refuses the file, which is not read again).
	opened := false
	defer func() {
		if !opened {
			if v := recover(); v != nil {
				fail(nil)
				panic(v)
			}
		}
	}()
	for b := range rows {
		for _, r := range b.rows {
			rowFindings(r.fs)
			if r.key == "" {
				continue
			}
			if err := s.add(r.key, r.rec.Line, flows.HasErrors(r.fs), r.rec.Values); err != nil {
				return fail(err)
			}
		}
		if b.panicked != nil {
			fail(nil)
			b.panicked.raise()
		}
		if b.err != nil {
			return fail(b.err)
		}
	}
	if err := ctx.Err(); err != nil { // the parser may have stopped without a word
		return fail(err)
	}
	if err := s.flush(); err != nil {
		return fail(err)
	}
	m, err := openMerge(tmp, s.runs, s.rows, s.flow)
	if err != nil {
		return fail(err)
	}
	opened = true
	return m, nil
}

// parsedRow is a row of the file as the sort pass takes it, with its case key.
type parsedRow struct {
	rec flows.Record
	fs  []flows.Finding
	key string
}

// parsedRows is a run of rows in file order; err (with the rows before it) stops the
// reading, and so does panicked (the reading code's panic, raised again by the caller).
type parsedRows struct {
	rows     []parsedRow
	err      error
	panicked *goPanic
}

// goPanic is a panic on a goroutine of the handler's or the build's own, carried to the
// goroutine that waits for it and raised there again (raise): the recovers that keep the
// daemon up when processing panics (intake's, which refuses the file; the scheduler's,
// which fails the run) are on that goroutine, and a panic left on the other one would end
// the process.
type goPanic struct{ value any }

// raise panics with the value the other goroutine panicked with.
func (p *goPanic) raise() { panic(p.value) }

// parseRows reads rd to its end, 256 rows at a time, and closes out. It stops when
// ctx is cancelled.
func parseRows(ctx context.Context, rd *flows.CSVReader, out chan<- parsedRows) {
	defer close(out)
	var b parsedRows
	var keys flows.MorosiKeyer
	defer func() {
		if v := recover(); v != nil { // the rows before it, then the panic
			select {
			case out <- parsedRows{rows: b.rows, panicked: &goPanic{v}}:
			case <-ctx.Done():
			}
		}
	}()
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			b.err = ctx.Err()
			break
		}
		rec, fs, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.err = err
			break
		}
		b.rows = append(b.rows, parsedRow{rec: rec, fs: fs, key: keys.Key(rec)})
		if len(b.rows) == 256 {
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
			b = parsedRows{}
		}
	}
	select {
	case out <- b:
	case <-ctx.Done():
	}
}

// runWriter collects encoded rows up to SortRunBytes, sorts them by (key, line) and
// writes them as one run file.
type runWriter struct {
	dir   string
	flow  *flows.Flow
	buf   []byte
	index []runEntry
	runs  []string
	rows  []int // the rows of each run, which the merge checks it reads (runBlockReader.want)
	block runBlockWriter
	vals  [][]byte // scratch: one row's values, slices of buf
}

type runEntry struct {
	key       []byte // into buf, set by flush
	line      int
	off, size int
}

// Row encoding: uvarint key length, key, uvarint line, bad byte, uvarint number of
// values, then each value as uvarint length and bytes.
func (s *runWriter) add(key string, line int, bad bool, values []string) error {
	if s.buf == nil {
		s.buf = make([]byte, 0, SortRunBytes)
	}
	size := 2*binary.MaxVarintLen64 + len(key) + 1 + binary.MaxVarintLen64
	for _, v := range values {
		size += binary.MaxVarintLen64 + len(v)
	}
	if len(s.buf)+size > cap(s.buf) && len(s.index) > 0 {
		if err := s.flush(); err != nil {
			return err
		}
	}
	off := len(s.buf)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(key)))
	s.buf = append(s.buf, key...)
	s.buf = binary.AppendUvarint(s.buf, uint64(line))
	if bad {
		s.buf = append(s.buf, 1)
	} else {
		s.buf = append(s.buf, 0)
	}
	s.buf = binary.AppendUvarint(s.buf, uint64(len(values)))
	for _, v := range values {
		s.buf = binary.AppendUvarint(s.buf, uint64(len(v)))
		s.buf = append(s.buf, v...)
	}
	s.index = append(s.index, runEntry{line: line, off: off, size: len(s.buf) - off})
	return nil
}

// flush writes the rows held as one sorted run.
func (s *runWriter) flush() error {
	if len(s.index) == 0 {
		return nil
	}
	// The keys are sliced here, once the buffer no longer moves (a row larger than
	// the buffer makes append reallocate it).
	for i := range s.index {
		e := &s.index[i]
		kl, n := binary.Uvarint(s.buf[e.off:])
		e.key = s.buf[e.off+n : e.off+n+int(kl)]
	}
	slices.SortFunc(s.index, func(a, b runEntry) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return a.line - b.line
	})
	if s.block.enc == nil {
		enc, err := newRunEncoder()
		if err != nil {
			return err
		}
		s.block.enc = enc
	}
	f, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("run-%04d", len(s.runs))))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	for _, e := range s.index {
		if err := s.addToBlock(e); err != nil {
			f.Close()
			return err
		}
		if s.block.full() {
			if err := s.block.writeTo(w); err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := s.block.writeTo(w); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	s.runs, s.rows = append(s.runs, f.Name()), append(s.rows, len(s.index))
	s.buf, s.index = s.buf[:0], s.index[:0]
	return nil
}

// addToBlock adds the row of e (encoded by add) to the block being written, key left
// out: the merge computes it again from the values.
func (s *runWriter) addToBlock(e runEntry) error {
	row := s.buf[e.off : e.off+e.size]
	kl, n := binary.Uvarint(row)
	row = row[n+int(kl):]
	line, n := binary.Uvarint(row)
	row = row[n:]
	bad := row[0] == 1
	row = row[1:]
	nv, n := binary.Uvarint(row)
	row = row[n:]
	s.vals = s.vals[:0]
	for range nv {
		l, n := binary.Uvarint(row)
		s.vals = append(s.vals, row[n:n+int(l)])
		row = row[n+int(l):]
	}
	if len(row) != 0 || int(line) != e.line {
		return errors.New("sorted rows: a row encoded wrongly") // cannot happen: add wrote it
	}
	s.block.add(e.line, bad, s.vals)
	return nil
}

// sortedRows merges the runs: rows in (key, line) order.
type sortedRows struct {
	dir   string
	flow  *flows.Flow
	h     runHeap
	fs    []*os.File
	dec   *zstd.Decoder
	frame []byte // the compressed bytes of the block read last, any run's
}

type runCursor struct {
	blocks runBlockReader
	flow   *flows.Flow
	keys   flows.MorosiKeyer
	rec    flows.Record
	key    string
	line   int
	bad    bool
	vals   []string
	spare  []string // the slice of the row handed out before this one (next)
	buf    []byte   // the row's values, read before they become one string
	ends   []int    // where each value ends in buf
}

// read reads the next row of the run. Its values are slices of one string (one
// allocation a row, not one a value): the values are the row's own, kept by the case
// they go into. The slice that lists them is the cursor's, two in turn: a row handed
// out by next stays whole until next is called again. The key is computed from the
// values, as the Grouper computes it (runs do not store it).
func (c *runCursor) read() (bool, error) {
	var (
		line    int
		bad, ok bool
		err     error
	)
	c.buf, c.ends, line, bad, ok, err = c.blocks.next(c.buf[:0], append(c.ends[:0], 0))
	if !ok || err != nil {
		return false, err
	}
	nv := len(c.ends) - 1
	row := string(c.buf)
	vals := c.spare
	if cap(vals) < nv {
		vals = make([]string, nv)
	}
	c.spare = c.vals
	vals = vals[:nv]
	for i := range vals {
		vals[i] = row[c.ends[i]:c.ends[i+1]]
	}
	rec, ok := flows.RecordOf(c.flow, vals)
	if !ok {
		return false, errors.New("sorted rows: a row of another layout")
	}
	rec.Line = line
	key := c.keys.Key(rec)
	if key == "" {
		return false, errors.New("sorted rows: a row without its key") // the sort leaves those out
	}
	c.rec, c.key, c.line, c.bad, c.vals = rec, key, line, bad, vals
	return true, nil
}

// maxRunValue bounds a length read back from a run: a damaged run is an error, not an
// allocation of its garbage size. A CSV line is at most 1 MiB, but a workbook's cell is
// bounded only by the size its sheet or shared strings unzip to (Excel's 32,767
// characters a cell do not bind a workbook written by a program):
// TestSortRowsByKeyLongWorkbookCell.
const maxRunValue = xlsxrows.MaxUnzipped

type runHeap []*runCursor

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if h[i].key != h[j].key {
		return h[i].key < h[j].key
	}
	return h[i].line < h[j].line
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runCursor)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// openMerge opens the merge of runs, which runWriter wrote with rows[i] rows each.
func openMerge(dir string, runs []string, rows []int, flow *flows.Flow) (*sortedRows, error) {
	dec, err := newRunDecoder()
	if err != nil {
		return nil, err
	}
	m := &sortedRows{dir: dir, flow: flow, dec: dec}
	for i, p := range runs {
		f, err := os.OpenFile(p, os.O_RDWR, 0) // read, and freed as read (punchRun)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.fs = append(m.fs, f)
		r := bufio.NewReaderSize(f, 16<<10)
		c := &runCursor{flow: flow, blocks: runBlockReader{r: r, rd: r, dec: dec, frame: &m.frame, want: rows[i]}}
		if freeReadRuns {
			c.blocks.file = f
		}
		ok, err := c.read()
		if err != nil {
			m.Close()
			return nil, err
		}
		if ok {
			m.h = append(m.h, c)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// next returns the next row in key order; ok false after the last. The row's Values
// are valid until the next call (its strings are its own).
func (m *sortedRows) next() (rec flows.Record, bad, ok bool, err error) {
	if len(m.h) == 0 {
		return rec, false, false, nil
	}
	c := m.h[0]
	rec, bad = c.rec, c.bad
	more, err := c.read()
	if err != nil {
		return rec, false, false, err
	}
	if more {
		heap.Fix(&m.h, 0)
	} else {
		heap.Pop(&m.h)
	}
	return rec, bad, true, nil
}

// Close closes and removes the runs.
func (m *sortedRows) Close() error {
	for _, f := range m.fs {
		f.Close()
	}
	m.fs = nil
	if m.dec != nil {
		m.dec.Close()
		m.dec = nil
	}
	return os.RemoveAll(m.dir)
}

// MorosiCaseReport is one practice of a billing extract as `cmord validate` shows it:
// what the daemon would do with it, decided by the same code.
type MorosiCaseReport struct {
	Key     string
	Lines   []int
	Case    flows.Case
	Outcome flows.MorosiOutcome
}

// ValidateMorosi reads a uscente.morosi file offline exactly as the handler does —
// the same reader, the same grouping whatever the row order (sorting under tmpDir when
// the rows of a practice are not adjacent), the same decision per practice
// (flows.DecideMorosi) — touching no state: a practice already filed is not known
// here. emit gets every finding (rows, then per practice its refusals and the
// window-wait warning); report gets every practice in the order the daemon takes them.
// It returns the number of data rows.
func ValidateMorosi(ctx context.Context, open func() (io.ReadCloser, error), flow *flows.Flow, opt flows.ReadOptions, requestDate flows.Date,
	p flows.CMORParams, tmpDir string, emit func(flows.Finding), report func(MorosiCaseReport)) (int, error) {
	rc, err := open()
	if err != nil {
		return 0, err
	}
	first := flows.NewCSVReader(rc, flow, opt)
	adjacent, practices, err := keyRuns(ctx, first, KeyOrderCases)
	family.ReaderCloser{Reader: first, File: rc}.Close() // a workbook's reader holds it in memory and in temporary files
	if err != nil {
		return 0, err
	}
	if rc, err = open(); err != nil {
		return 0, err
	}
	rd := flows.NewCSVReader(rc, flow, opt)
	defer family.ReaderCloser{Reader: rd, File: rc}.Close()
	hdr, err := rd.ReadHeader()
	if err != nil {
		return 0, err
	}
	for _, f := range hdr {
		emit(f)
	}
	if flows.HasErrors(hdr) {
		return 0, nil
	}
	rows := 0
	stop := func(err error) (int, error) {
		var fd flows.Finding
		if errors.As(err, &fd) { // the file cannot be read on: the reader says where
			emit(fd)
			return rows, nil
		}
		return rows, err
	}
	cases, err := newMorosiCases(ctx, rd, flow, sortByKey(adjacent, practices), 0, tmpDir, func(fs []flows.Finding) {
		rows++
		for _, f := range fs {
			emit(f)
		}
	})
	if err != nil {
		return stop(err)
	}
	defer cases.Close()
	for {
		st, err := cases.next(ctx)
		if err != nil {
			return stop(err)
		}
		rows += st.rows
		for _, f := range st.findings {
			emit(f)
		}
		if st.mc == nil {
			return rows, nil
		}
		out := flows.DecideMorosi(st.mc, opt.FileName, requestDate, p)
		for _, f := range out.Refusals {
			emit(f)
		}
		for _, f := range out.Warnings {
			if f.Rule == flows.RuleWindowWait {
				emit(f)
			}
		}
		report(MorosiCaseReport{Key: st.mc.Key, Lines: st.mc.Lines, Case: st.mc.Case, Outcome: out})
	}
}
