package uscente

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// The sort's runs (morosi_cases.go) are sequences of blocks, each about runBlock bytes
// of rows, written column by column and zstd-compressed (SpeedFastest) one frame per
// block:
//
//	block := uvarint(len(frame)) uvarint(len(raw)) frame    frame = zstd(raw)
//	raw   := uvarint(rows)
//	         rows × uvarint(values of the row)
//	         rows × varint(line − line of the row before; the first against 0)
//	         rows × byte(bad: 0 or 1)
//	         for each column c: the rows with a value c: uvarint(its length) each,
//	                            then the same rows' values, one after the other
//
// The case key is not stored: the merge computes it again from the values
// (flows.MorosiKeyer), as the Grouper does. Column by column, a value sits beside the
// same column of the neighbouring rows (dates, codes, amounts of one form, the months
// of a spend list), and zstd's entropy coding takes what S2's did not: on the
// benchmark's extract, rows shuffled, the runs are 22.7 MiB for 300,000 rows where the
// S2 stream of whole rows was 47.8 MiB (docs/benchmarks-uscente.md, "Seventh round").
// A merge holds one decoded block per run, and shares one decoder and one buffer of
// compressed bytes among all runs.
const runBlock = 256 << 10

// maxRunBlock bounds a block's sizes read back from a run, as maxRunValue bounds a
// value: a block holds rows up to runBlock bytes and the row that passes it.
const maxRunBlock = 2*maxRunValue + runBlock

// newRunEncoder returns the runs' compressor: one frame per block, window of the block.
func newRunEncoder() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(runBlock), zstd.WithLowerEncoderMem(true))
}

// newRunDecoder returns the merge's decompressor (DecodeAll only: no goroutines).
func newRunDecoder() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(maxRunBlock))
}

// runBlockWriter gathers rows into one block and writes it.
type runBlockWriter struct {
	enc   *zstd.Encoder
	lines []int
	bad   []bool
	nv    []int
	vals  [][]byte // the values of all rows, one after the other
	size  int      // bytes of values held
	raw   []byte
	frame []byte
}

// add holds a row; its values must stay unchanged until the block is written.
func (b *runBlockWriter) add(line int, bad bool, vals [][]byte) {
	b.lines = append(b.lines, line)
	b.bad = append(b.bad, bad)
	b.nv = append(b.nv, len(vals))
	b.vals = append(b.vals, vals...)
	for _, v := range vals {
		b.size += len(v) + 1
	}
	b.size += 3
}

// full says whether the block holds enough rows to be written.
func (b *runBlockWriter) full() bool { return b.size >= runBlock }

// encode returns the block's raw form (before compression).
func (b *runBlockWriter) encode() []byte {
	raw := binary.AppendUvarint(b.raw[:0], uint64(len(b.lines)))
	maxNV := 0
	for _, n := range b.nv {
		raw = binary.AppendUvarint(raw, uint64(n))
		maxNV = max(maxNV, n)
	}
	prev := 0
	for _, l := range b.lines {
		raw = binary.AppendVarint(raw, int64(l)-int64(prev))
		prev = l
	}
	for _, bad := range b.bad {
		if bad {
			raw = append(raw, 1)
		} else {
			raw = append(raw, 0)
		}
	}
	for c := range maxNV {
		at := 0
		for _, n := range b.nv {
			if c < n {
				raw = binary.AppendUvarint(raw, uint64(len(b.vals[at+c])))
			}
			at += n
		}
		at = 0
		for _, n := range b.nv {
			if c < n {
				raw = append(raw, b.vals[at+c]...)
			}
			at += n
		}
	}
	b.raw = raw
	return raw
}

// writeTo writes the rows held as one block (nothing when there are none) and empties
// the writer.
func (b *runBlockWriter) writeTo(w io.Writer) error {
	if len(b.lines) == 0 {
		return nil
	}
	raw := b.encode()
	b.frame = b.enc.EncodeAll(raw, b.frame[:0])
	var hdr [2 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b.frame)))
	n += binary.PutUvarint(hdr[n:], uint64(len(raw)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	if _, err := w.Write(b.frame); err != nil {
		return err
	}
	clear(b.vals) // the values are the caller's: not held past the block
	b.lines, b.bad, b.nv, b.vals, b.size = b.lines[:0], b.bad[:0], b.nv[:0], b.vals[:0], 0
	if cap(b.raw) > 4*runBlock { // a block of a huge value: not held for the next
		b.raw, b.frame = nil, nil
	}
	return nil
}

// runBlockReader hands out the rows of one run, block by block.
type runBlockReader struct {
	r     io.ByteReader // and io.Reader: a *bufio.Reader
	rd    io.Reader
	dec   *zstd.Decoder // shared by the runs of a merge
	frame *[]byte       // shared too: a block's compressed bytes, read then decoded
	raw   []byte        // the block being read

	// The run's bytes the merge has read are freed as it goes (punchRun), so that a
	// long merge does not leave them to the kernel's writeback: at a million rows the
	// runs outlive it (30 s) and would otherwise reach the disk.
	file    *os.File // nil: nothing freed
	at      int64    // the run's bytes read: the blocks before the current one and it
	punched int64    // the run's bytes freed

	// want is how many rows the run was written with (runWriter.rows): a run that
	// ends before them, or holds more, is damaged. Nothing in a run's bytes says where
	// it ends, and a run cut where a block ends reads as a shorter run.
	want, loaded int // rows the run holds, rows in the blocks loaded so far

	rows, row int // rows in the block, rows handed out
	line      int
	nvAt      int   // where the next row's count of values is
	lineAt    int   // its line
	badAt     int   // its bad byte
	lenAt     []int // per column, where the next value's length is
	valAt     []int // per column, where the next value is
	counts    []int // scratch: rows with exactly n values
}

var errRunDamaged = errors.New("sorted rows: a damaged run")

// freeReadRuns: the merge frees what it has read of the runs (tests and benchmarks
// turn it off, to measure what it saves).
var freeReadRuns = true

// punchStep is how many bytes of read blocks a run frees at once.
const punchStep = 1 << 20

// load reads and decodes the next block; false at the end of the run.
func (b *runBlockReader) load() (bool, error) {
	if b.file != nil && b.at-b.punched >= punchStep {
		to := b.at &^ 4095 // whole pages: a part of one would be zeroed, not freed
		if punchRun(b.file, b.punched, to) {
			b.punched = to
		} else {
			b.file = nil
		}
	}
	fl, err := binary.ReadUvarint(b.r)
	if err == io.EOF {
		if b.loaded != b.want {
			return false, fmt.Errorf("%w: it ends after %d rows of %d", errRunDamaged, b.loaded, b.want)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	rl, err := binary.ReadUvarint(b.r)
	if err != nil {
		return false, noEOF(err)
	}
	if fl > maxRunBlock+maxRunBlock/64+(1<<10) || rl > maxRunBlock || rl == 0 {
		return false, fmt.Errorf("sorted rows: a block of %d bytes (%d compressed)", rl, fl)
	}
	frame, err := readFrame(b.rd, shrunk(*b.frame, fl), fl)
	*b.frame = frame
	if err != nil {
		return false, noEOF(err)
	}
	// The frame's own header gives the block's size too (but for a block under 256
	// bytes): a damaged size is refused here, before the decoder makes room for it.
	var h zstd.Header
	if err := h.Decode(frame); err != nil || h.HasFCS && h.FrameContentSize != rl || !h.HasFCS && rl >= 256 {
		return false, errRunDamaged
	}
	raw, err := b.dec.DecodeAll(frame, shrunk(b.raw, rl)[:0])
	if err != nil {
		return false, fmt.Errorf("sorted rows: %w", err)
	}
	b.raw = raw
	if uint64(len(raw)) != rl {
		return false, errRunDamaged
	}
	b.at += int64(uvarintLen(fl) + uvarintLen(rl) + len(frame))
	if err := b.index(); err != nil {
		return false, err
	}
	if b.loaded += b.rows; b.loaded > b.want {
		return false, fmt.Errorf("%w: more than the %d rows it was written with", errRunDamaged, b.want)
	}
	return true, nil
}

// shrunk is buf, or nil when buf is far larger than the n bytes it is to hold (it
// held a block of a huge value): a run's buffers are not held at that size for the
// blocks of ordinary rows after it.
func shrunk(buf []byte, n uint64) []byte {
	if cap(buf) > 4*runBlock && n <= 2*runBlock {
		return nil
	}
	return buf
}

// readFrame reads the n bytes of a frame into buf[:0], growing it as they come
// (a megabyte at a time at most): a damaged size costs the bytes the run holds, not
// the size it claims.
func readFrame(r io.Reader, buf []byte, n uint64) ([]byte, error) {
	buf = buf[:0]
	for uint64(len(buf)) < n {
		want := n - uint64(len(buf))
		if room := uint64(cap(buf) - len(buf)); want > room {
			want = max(room, min(want, 1<<20))
		}
		at := len(buf)
		buf = slices.Grow(buf, int(want))[:at+int(want)]
		if _, err := io.ReadFull(r, buf[at:]); err != nil {
			return buf[:at], err
		}
	}
	return buf, nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// noEOF: a run that ends inside a block is damaged, not finished.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// index checks the decoded block's structure and sets where each column starts.
// Every length it reads is checked here, so that the rows read from it afterwards
// stay inside the block.
func (b *runBlockReader) index() error {
	raw := b.raw
	rows, at := binary.Uvarint(raw)
	if at <= 0 || rows == 0 || rows > uint64(len(raw)) {
		return errRunDamaged
	}
	b.rows, b.row, b.line = int(rows), 0, 0
	b.nvAt = at
	b.counts = b.counts[:0]
	values := uint64(0) // each has a length of one byte at least
	for range rows {
		n, k := binary.Uvarint(raw[at:])
		if values += n; k <= 0 || n > uint64(len(raw)) || values > uint64(len(raw)) {
			return errRunDamaged
		}
		at += k
		for uint64(len(b.counts)) <= n {
			b.counts = append(b.counts, 0)
		}
		b.counts[n]++
	}
	b.lineAt = at
	for range rows {
		_, k := binary.Varint(raw[at:])
		if k <= 0 {
			return errRunDamaged
		}
		at += k
	}
	b.badAt = at
	if at += int(rows); at > len(raw) {
		return errRunDamaged
	}
	cols := len(b.counts) - 1 // the most values a row has
	b.lenAt, b.valAt = b.lenAt[:0], b.valAt[:0]
	with := int(rows) // rows with a value in column c
	for c := range cols {
		with -= b.counts[c]
		b.lenAt = append(b.lenAt, at)
		total := uint64(0)
		for range with {
			l, k := binary.Uvarint(raw[at:])
			if k <= 0 || l > uint64(len(raw)) {
				return errRunDamaged
			}
			at += k
			total += l
		}
		if total > uint64(len(raw)-at) {
			return errRunDamaged
		}
		b.valAt = append(b.valAt, at)
		at += int(total)
	}
	if at != len(raw) {
		return errRunDamaged
	}
	return nil
}

// next appends the next row's values to buf, each value's end to ends (after those
// already there), and returns them with the row's line and bad flag; ok false at the
// end of the run.
func (b *runBlockReader) next(buf []byte, ends []int) (_ []byte, _ []int, line int, bad, ok bool, err error) {
	if b.row == b.rows {
		if ok, err := b.load(); !ok || err != nil {
			return buf, ends, 0, false, false, err
		}
	}
	raw := b.raw
	nv, k := binary.Uvarint(raw[b.nvAt:])
	b.nvAt += k
	d, k := binary.Varint(raw[b.lineAt:])
	b.lineAt += k
	b.line += int(d)
	bad = raw[b.badAt] == 1
	b.badAt++
	for c := range int(nv) {
		l, k := binary.Uvarint(raw[b.lenAt[c]:])
		b.lenAt[c] += k
		if l > uint64(maxRunValue) {
			return buf, ends, 0, false, false, fmt.Errorf("sorted rows: a value of %d bytes", l)
		}
		buf = append(buf, raw[b.valAt[c]:b.valAt[c]+int(l)]...)
		b.valAt[c] += int(l)
		ends = append(ends, len(buf))
	}
	b.row++
	return buf, ends, b.line, bad, true, nil
}
