package uscente

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cmord/cmord/flows"
)

// blockRow is a row as the runs' blocks hold it.
type blockRow struct {
	line int
	bad  bool
	vals []string
}

// writeBlocks writes rows as the sort writes a run: blocks of about runBlock bytes.
func writeBlocks(t testing.TB, rows []blockRow) []byte {
	t.Helper()
	enc, err := newRunEncoder()
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var out bytes.Buffer
	w := runBlockWriter{enc: enc}
	for _, r := range rows {
		vals := make([][]byte, len(r.vals))
		for i, v := range r.vals {
			vals[i] = []byte(v)
		}
		w.add(r.line, r.bad, vals)
		if w.full() {
			if err := w.writeTo(&out); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.writeTo(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// readBlocks reads a run's rows back, written with want rows, and the blocks it held.
func readBlocks(t testing.TB, run []byte, want int) ([]blockRow, int, error) {
	t.Helper()
	dec, err := newRunDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var frame []byte
	r := bufio.NewReader(bytes.NewReader(run))
	b := runBlockReader{r: r, rd: r, dec: dec, frame: &frame, want: want}
	var rows []blockRow
	blocks := 0
	for {
		if b.row == b.rows {
			blocks++
		}
		buf, ends, line, bad, ok, err := b.next(nil, []int{0})
		if err != nil || !ok {
			return rows, blocks - 1, err
		}
		row := blockRow{line: line, bad: bad, vals: []string{}}
		for i := 1; i < len(ends); i++ {
			row.vals = append(row.vals, string(buf[ends[i-1]:ends[i]]))
		}
		rows = append(rows, row)
	}
}

// A run's rows come back from its blocks as they went in: any number of values a row
// (none, one, a layout's 37), empty values, any bytes, lines in any order, the bad
// flag, a value longer than a block, many blocks.
func TestRunBlocksRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	many := make([]blockRow, 20000)
	for i := range many {
		vals := make([]string, 37)
		for j := range vals {
			vals[j] = fmt.Sprintf("%d-%x", j, rng.Uint64()%uint64(1+j*j*1000))
		}
		many[i] = blockRow{line: 2 + int(rng.Uint64()%1_000_000), bad: i%97 == 0, vals: vals}
	}
	for _, tc := range []struct {
		name      string
		rows      []blockRow
		minBlocks int
	}{
		{"no rows", nil, 0},
		{"one row", []blockRow{{line: 2, vals: []string{"E", "IT001E00000001", "RSSMRA85T10A562S"}}}, 1},
		{"no values, empty values", []blockRow{{line: 5, vals: []string{}}, {line: 3, vals: []string{"", "", ""}}, {line: 4, bad: true, vals: []string{""}}}, 1},
		{"rows of different widths", []blockRow{{line: 9, vals: []string{"a"}}, {line: 2, vals: []string{"b", "c", "d", "e"}}, {line: 1 << 40, vals: []string{"f", "g"}}, {line: 0, vals: nil}}, 1},
		{"any bytes", []blockRow{{line: 7, bad: true, vals: []string{"\x00\xff\n;\"", "àèìòù€", strings.Repeat("\x80", 300)}}}, 1},
		{"a value longer than a block", []blockRow{{line: 2, vals: []string{"x"}}, {line: 3, vals: []string{strings.Repeat("long", runBlock)}}, {line: 4, vals: []string{"y"}}}, 1},
		{"many blocks", many, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := writeBlocks(t, tc.rows)
			got, blocks, err := readBlocks(t, run, len(tc.rows))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.rows) {
				t.Fatalf("%d rows back, want %d", len(got), len(tc.rows))
			}
			for i, r := range tc.rows {
				if r.vals == nil {
					r.vals = []string{}
				}
				if got[i].line != r.line || got[i].bad != r.bad || !slices.Equal(got[i].vals, r.vals) {
					t.Fatalf("row %d: %+v, want %+v", i, got[i], r)
				}
			}
			if blocks < tc.minBlocks {
				t.Errorf("%d blocks, want %d at least", blocks, tc.minBlocks)
			}
		})
	}
}

// A run that is cut short or damaged is an error, whatever byte it stops or turns at,
// never rows lost in silence or a panic.
func TestRunBlocksDamaged(t *testing.T) {
	var rows []blockRow
	for i := range 3000 {
		rows = append(rows, blockRow{line: i + 2, vals: []string{"E", fmt.Sprintf("IT001E%08d", i), "RSSMRA85T10A562S", fmt.Sprint(i % 13)}})
	}
	run := writeBlocks(t, rows)
	for _, tc := range []struct {
		name string
		run  []byte
	}{
		{"cut in the first header", run[:1]},
		{"cut in the first frame", run[:len(run)/3]},
		{"cut before the last byte", run[:len(run)-1]},
		{"a byte changed in a frame", func() []byte { b := slices.Clone(run); b[len(b)/2] ^= 0x10; return b }()},
		{"a block's size changed", func() []byte { b := slices.Clone(run); b[0] ^= 0x01; return b }()},
		{"a header of a huge block", append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01}, run...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := readBlocks(t, tc.run, len(rows))
			if err == nil {
				t.Fatalf("no error, %d rows of %d", len(got), len(rows))
			}
		})
	}
}

// FuzzRunBlock: any bytes given as a decoded block are read without a panic, and the
// rows read from one that is accepted come back the same through a written run; rows
// made of the input come back as they went in: split at '\n' into values split at
// ';', and split again at the input's first two bytes (so that values hold ';', '\n',
// quotes, any byte), with a value of the input repeated past a block's size.
func FuzzRunBlock(f *testing.F) {
	enc, err := newRunEncoder()
	if err != nil {
		f.Fatal(err)
	}
	w := runBlockWriter{enc: enc}
	w.add(2, false, [][]byte{[]byte("E"), []byte("IT001E00000001")})
	w.add(1, true, [][]byte{[]byte("G")})
	f.Add(slices.Clone(w.encode()))
	f.Add([]byte("E;IT001E00000001;RSSMRA85T10A562S\nE;IT001E00000002;;x\n\n"))
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte("|,E,\"Rossi; Mario\",a\nb,,\xff\xfe\x00|,|;;\n\"\""))
	f.Add([]byte("\x00\x01\x80\x00caf\xe9\x01\x01\x00"))
	// same says whether got are rows, as read back.
	same := func(t *testing.T, got, rows []blockRow) {
		t.Helper()
		if len(got) != len(rows) {
			t.Fatalf("%d rows back of %d", len(got), len(rows))
		}
		for i := range rows {
			want := rows[i]
			if want.vals == nil {
				want.vals = []string{}
			}
			if got[i].line != want.line || got[i].bad != want.bad || !slices.Equal(got[i].vals, want.vals) {
				t.Fatalf("row %d: %d %v %q, want %d %v %q", i, got[i].line, got[i].bad, got[i].vals, want.line, want.bad, want.vals)
			}
		}
	}
	roundTrip := func(t *testing.T, rows []blockRow) {
		t.Helper()
		got, _, err := readBlocks(t, writeBlocks(t, rows), len(rows))
		if err != nil {
			t.Fatalf("%d rows: %v", len(rows), err)
		}
		same(t, got, rows)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := runBlockReader{raw: data}
		if b.index() == nil {
			var rows []blockRow
			for b.row < b.rows {
				buf, ends, line, bad, _, err := b.next(nil, []int{0})
				if err != nil {
					break // a length over maxRunValue: refused, not read
				}
				row := blockRow{line: line, bad: bad, vals: []string{}}
				for i := 1; i < len(ends); i++ {
					row.vals = append(row.vals, string(buf[ends[i-1]:ends[i]]))
				}
				rows = append(rows, row)
			}
			roundTrip(t, rows)
		}
		split := func(data string, rowSep, valSep string) []blockRow {
			var rows []blockRow
			for i, ln := range strings.Split(data, rowSep) {
				rows = append(rows, blockRow{line: len(data) - 7*i, bad: i%2 == 1, vals: strings.Split(ln, valSep)})
			}
			return rows
		}
		roundTrip(t, split(string(data), "\n", ";"))
		if len(data) >= 2 && data[0] != data[1] {
			rows := split(string(data[2:]), string(data[:1]), string(data[1:2]))
			if v := rows[0].vals[0]; v != "" {
				long := strings.Repeat(v, runBlock/len(v)+1)
				rows = append(rows, blockRow{line: 1, vals: []string{long, v}}, blockRow{line: 2, vals: []string{v}})
			}
			roundTrip(t, rows)
		}
	})
}

// The merge frees the part of each run it has read (Linux: fallocate's punched hole),
// so that what it has done with does not wait for the kernel's writeback and reach
// the disk: before the merge is closed, most of a run it has read through holds no
// blocks any more, and the rows came back whole.
func TestRunsFreedAsMerged(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("runs are freed as read on Linux only")
	}
	dir := t.TempDir()
	probe, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	probe.Write(make([]byte, 8192))
	if !punchRun(probe, 0, 4096) {
		t.Skip("this file system cannot free part of a file")
	}
	probe.Close()
	const header = "SETTORE;COD_POD;CF_CLIENTE;DENOMINAZIONE;DATA_SWITCH\n"
	rng := rand.New(rand.NewPCG(3, 4))
	var data strings.Builder
	data.WriteString(header)
	const rows = 20000
	for i := range rows {
		// A name of random letters: the run does not compress below a few MiB.
		name := make([]byte, 200)
		for j := range name {
			name[j] = 'A' + byte(rng.Uint32()%26)
		}
		fmt.Fprintf(&data, "E;IT001E%08d;RSSMRA85T10A562S;%s;01/03/2025\n", (i*7919)%rows, name)
	}
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	rd := flows.NewCSVReader(strings.NewReader(data.String()), flow, flows.ReadOptions{FileName: "x.csv"})
	defer rd.Close()
	m, err := sortRowsByKey(context.Background(), rd, flow, dir, func([]flows.Finding) {})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n := 0
	for {
		_, _, ok, err := m.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		n++
	}
	if n != rows {
		t.Fatalf("%d rows merged, want %d", n, rows)
	}
	var size, held int64
	for _, f := range m.fs {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		size += st.Size
		held += st.Blocks * 512
	}
	if size < 2*punchStep {
		t.Fatalf("runs of %d bytes: too small to be freed as read", size)
	}
	if held > size/2 {
		t.Errorf("runs of %d bytes still hold %d bytes of blocks once read", size, held)
	}
}

// sortedRuns writes rows (the short header's columns, shuffled PODs) as the sort does,
// into runs under dir, and returns them and their rows.
func sortedRuns(t *testing.T, dir string, rows int) ([]string, []int) {
	t.Helper()
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	var data strings.Builder
	data.WriteString(shortHeader)
	for i := range rows {
		fmt.Fprintf(&data, "E;IT001E%08d;RSSMRA85T10A562S;Rossi Mario %d;01/03/2025\n", (i*7919)%rows, i)
	}
	rd := flows.NewCSVReader(strings.NewReader(data.String()), flow, flows.ReadOptions{FileName: "x.csv"})
	defer rd.Close()
	w := &runWriter{dir: dir, flow: flow}
	for {
		rec, _, err := rd.Next()
		if err != nil {
			break
		}
		if err := w.add(flows.MorosiKey(rec), rec.Line, false, rec.Values); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	return w.runs, w.rows
}

// blockEnds returns the offsets in run where each block ends.
func blockEnds(t *testing.T, run []byte) []int {
	t.Helper()
	var ends []int
	for at := 0; at < len(run); {
		fl, n := binary.Uvarint(run[at:])
		if n <= 0 {
			t.Fatalf("no block header at %d", at)
		}
		at += n
		_, n = binary.Uvarint(run[at:])
		at += n + int(fl)
		ends = append(ends, at)
	}
	return ends
}

// mergeAll reads every row of the merge of runs: their count, or the first error.
func mergeAll(dir string, runs []string, rows []int) (int, error) {
	m, err := openMerge(dir, runs, rows, flows.DefaultCatalog().Input("uscente.morosi"))
	if err != nil {
		return 0, err
	}
	defer m.Close()
	n := 0
	for {
		_, _, ok, err := m.next()
		if err != nil {
			return n, err
		}
		if !ok {
			return n, nil
		}
		n++
	}
}

// A run cut short where one of its blocks ends (a file system that lost its tail, a
// run written by a sort that died) is an error like a run cut inside a block: its
// last blocks' rows are not lost in silence. Nothing in the run's bytes says how many
// blocks it holds: the merge knows how many rows each run was written with.
func TestRunCutAtABlockEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(run []byte, ends []int) []byte
	}{
		{"after the first block", func(run []byte, ends []int) []byte { return run[:ends[0]] }},
		{"before the last block", func(run []byte, ends []int) []byte { return run[:ends[len(ends)-2]] }},
		{"empty", func(run []byte, ends []int) []byte { return nil }},
		{"a block twice", func(run []byte, ends []int) []byte { return append(slices.Clone(run), run[:ends[0]]...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			runs, rows := sortedRuns(t, dir, 12000)
			if len(runs) != 1 {
				t.Fatalf("%d runs, want 1", len(runs))
			}
			run, err := os.ReadFile(runs[0])
			if err != nil {
				t.Fatal(err)
			}
			ends := blockEnds(t, run)
			if len(ends) < 3 {
				t.Fatalf("a run of %d blocks, want 3 at least", len(ends))
			}
			if err := os.WriteFile(runs[0], tc.cut(run, ends), 0o600); err != nil {
				t.Fatal(err)
			}
			n, err := mergeAll(dir, runs, rows)
			if err == nil {
				t.Fatalf("no error: %d rows merged of 12000", n)
			}
		})
	}
	t.Run("whole", func(t *testing.T) {
		dir := t.TempDir()
		runs, rows := sortedRuns(t, dir, 12000)
		if n, err := mergeAll(dir, runs, rows); err != nil || n != 12000 {
			t.Fatalf("%d rows merged, %v; want 12000", n, err)
		}
	})
}

// The merge gives exactly the rows the file's reader gives, in (key, line) order:
// every value byte for byte (quoted ones holding ';', quotes and line breaks, bytes
// that are not UTF-8, empty ones, a name near a CSV line's limit), every line and bad
// flag, each row once, over many runs of many blocks.
func TestSortRowsByKeyGivesTheReadersRows(t *testing.T) {
	defer func(n int) { SortRunBytes = n }(SortRunBytes)
	SortRunBytes = 1 << 20
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	rng := rand.New(rand.NewPCG(5, 6))
	names := []string{"", "Rossi", `"Rossi; Mario"`, `"Bianchi ""Gino"""`, "\"riga\nnuova\"", "caf\xe9", "\xff\xfe", "\"a;b\r\nc\"", "\u00c3\u00a8"}
	var data strings.Builder
	data.WriteString(shortHeader)
	const rows = 30000
	for i := range rows {
		name := names[rng.IntN(len(names))]
		if i == 777 {
			name = strings.Repeat("N", 1000<<10)
		}
		cf := "RSSMRA85T10A562S"
		if i%101 == 0 {
			cf = "RSSMRA85T10A56" // refused: bad rows, kept with their key
		}
		fmt.Fprintf(&data, "E;IT001E%08d;%s;%s;%02d/03/2025\n", rng.IntN(rows/3), cf, name, 1+i%3)
	}
	read := func() *flows.CSVReader {
		return flows.NewCSVReader(strings.NewReader(data.String()), flow, flows.ReadOptions{FileName: "x.csv"})
	}
	type row struct {
		key  string
		line int
		bad  bool
		vals []string
		name string
	}
	var want []row
	rd := read()
	bad := 0
	for {
		rec, fs, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if k := flows.MorosiKey(rec); k != "" {
			want = append(want, row{k, rec.Line, flows.HasErrors(fs), slices.Clone(rec.Values), rec.Get(flows.MorName)})
			if flows.HasErrors(fs) {
				bad++
			}
		}
	}
	rd.Close()
	for _, sub := range []string{";", "\n", `"`} { // bytes not UTF-8 the reader decodes (Windows-1252)
		if !slices.ContainsFunc(want, func(r row) bool { return strings.Contains(r.name, sub) }) {
			t.Fatalf("no name holds %q: the test does not test it", sub)
		}
	}
	if len(want) != rows || bad == 0 {
		t.Fatalf("%d rows with a key (%d bad), want %d and some bad", len(want), bad, rows)
	}
	slices.SortStableFunc(want, func(a, b row) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return a.line - b.line
	})
	rd = read()
	defer rd.Close()
	m, err := sortRowsByKey(context.Background(), rd, flow, t.TempDir(), func([]flows.Finding) {})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.fs) < 4 {
		t.Fatalf("%d runs, want several", len(m.fs))
	}
	for i := 0; ; i++ {
		rec, bad, ok, err := m.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if i != len(want) {
				t.Fatalf("%d rows merged, want %d", i, len(want))
			}
			break
		}
		if i >= len(want) {
			t.Fatalf("more than the %d rows read", len(want))
		}
		w := want[i]
		if rec.Line != w.line || bad != w.bad || flows.MorosiKey(rec) != w.key || !slices.Equal(rec.Values, w.vals) {
			t.Fatalf("row %d: line %d bad %v %q, want line %d bad %v %q", i, rec.Line, bad, rec.Values, w.line, w.bad, w.vals)
		}
	}
}

// allocated is the bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// A damaged block header that gives a size within the bounds a legitimate block may
// have (a row of a workbook may pass a GiB) costs the bytes the run holds, not the
// size it claims: the frame is read as it comes, and a frame whose own header does not
// give the block's size is refused before it is decoded.
func TestRunBlockDamagedSizeBoundsMemory(t *testing.T) {
	run := writeBlocks(t, []blockRow{{line: 2, vals: []string{"E", "IT001E00000001"}}})
	fl, n := binary.Uvarint(run)
	rl, k := binary.Uvarint(run[n:])
	frame := run[n+k:]
	header := func(fl, rl uint64) []byte {
		return binary.AppendUvarint(binary.AppendUvarint(nil, fl), rl)
	}
	for _, tc := range []struct {
		name string
		run  []byte
	}{
		{"a frame of 1.5 GiB", append(header(3<<29, rl), frame...)},
		{"a block of 1.5 GiB", append(header(fl, 3<<29), frame...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if a := allocated(func() { _, _, err = readBlocks(t, tc.run, 1) }); a > 64<<20 {
				t.Errorf("%d MiB allocated reading a run of %d bytes", a>>20, len(tc.run))
			}
			if err == nil {
				t.Error("no error")
			}
		})
	}
}

// A merge that has read a block holding a 10 MB value does not keep its buffers at
// that size for the rest of the run: the next blocks of ordinary rows are read into
// buffers of their own size.
func TestRunBlockBigValueNotHeld(t *testing.T) {
	rows := []blockRow{{line: 2, vals: []string{"E", strings.Repeat("N", 10<<20)}}}
	for i := range 20000 {
		rows = append(rows, blockRow{line: 3 + i, vals: []string{"E", fmt.Sprintf("IT001E%08d", i), "RSSMRA85T10A562S"}})
	}
	run := writeBlocks(t, rows)
	dec, err := newRunDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var frame []byte
	r := bufio.NewReader(bytes.NewReader(run))
	b := runBlockReader{r: r, rd: r, dec: dec, frame: &frame, want: len(rows)}
	for i := range rows {
		if _, _, _, _, ok, err := b.next(nil, nil); !ok || err != nil {
			t.Fatalf("row %d: %v %v", i, ok, err)
		}
		if i > 2*runBlock/40 && (cap(b.raw) > 4*runBlock || cap(frame) > 4*runBlock) {
			t.Fatalf("row %d (%d rows loaded): buffers of %d and %d bytes held", i, b.loaded, cap(b.raw), cap(frame))
		}
	}
	// The sort's writer likewise, from one block to the next.
	enc, err := newRunEncoder()
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	w := runBlockWriter{enc: enc}
	w.add(2, false, [][]byte{[]byte(rows[0].vals[1])})
	if err := w.writeTo(io.Discard); err != nil {
		t.Fatal(err)
	}
	w.add(3, false, [][]byte{[]byte("E")})
	if err := w.writeTo(io.Discard); err != nil {
		t.Fatal(err)
	}
	if cap(w.raw) > 4*runBlock || cap(w.frame) > 4*runBlock {
		t.Errorf("the writer holds buffers of %d and %d bytes after a block of one short row", cap(w.raw), cap(w.frame))
	}
}

// A run the disk cannot hold (ENOSPC while its blocks are written, or at its last
// flush) is an error of the sort, not a shorter run: here the run's file is /dev/full.
func TestSortRunNoSpace(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	for _, rows := range []int{3, 20000} { // the last flush only; blocks before it
		t.Run(fmt.Sprint(rows), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Symlink("/dev/full", filepath.Join(dir, "run-0000")); err != nil {
				t.Fatal(err)
			}
			w := &runWriter{dir: dir, flow: flow}
			for i := range rows {
				if err := w.add(fmt.Sprintf("k%08d", i), i+2, false, []string{"E", fmt.Sprintf("IT001E%08d", i), "RSSMRA85T10A562S"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.flush(); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("flush: %v, want ENOSPC", err)
			}
			if len(w.runs) != 0 {
				t.Errorf("runs %v kept", w.runs)
			}
		})
	}
}
