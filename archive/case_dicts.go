package archive

// Cases deflated against a dictionary (issue 16, migration 0038). The compact form of
// a case (flows.EncodeUscenteData, about 350 bytes at 100,000 rows) was the biggest
// table of an extract's archive, and written twice under WAL. Cases of one extract
// share most of their bytes (the layout, the invoice numbering, the dates, the
// company's text), so each chunk of the uscente.morosi handler (one transaction,
// PracticeStmts) stores its first case in case_dicts and every case it writes as form
// 2: 0x02, the dictionary's id (uvarint), then a raw deflate stream of the compact form
// primed with the dictionary; about 165 bytes a case where the compact form is 348
// (docs/benchmarks-uscente.md, "Sixth round"). A case whose stream is not smaller
// stays compact. Forms 1 (compact) and JSON are read as before, and the other writers
// of a case (SavePractice, CreatePractice, BulkLoadPractices) still write the compact
// form: a single case has no chunk to share a dictionary with.
//
// Every reader of a stored case gets it through expandCase, which turns form 2 back
// into the compact form before anything else looks at it: what the readers see, and
// print, is the same as before. The state chain hashes a practice with its case as
// stored (form 2's bytes), and seals each dictionary row (table tag 4): a dictionary
// edited or deleted outside cmord is named by `cmord archive verify`.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/cmord/cmord/flows"
)

// caseDeflated is the first byte of a case in form 2 (flows' compact form is 0x01).
const caseDeflated = 0x02

// caseDeflateLevel is klauspost/compress's deflate level for cases. Measured on the
// 33,334 cases of a 100,000-row extract with one case of the chunk as dictionary:
// level 1 184 bytes a case, 4 166, 6 166, 7 160 (but three times the CPU); the
// standard library's level 6 163 at three times the CPU of this level 4 (its writer
// clears 640 KB of hash tables at every Reset), and its level 1 (BestSpeed) ignores a
// dictionary. zstd with the raw dictionary: 193 at its fastest (its frame header).
const caseDeflateLevel = 4

// maxCaseSize bounds what a stored stream inflates to: a compact case is a few hundred
// bytes, a damaged stream must not make a reader allocate without end.
const maxCaseSize = 1 << 20

// maxCachedDicts bounds Store.dicts: one dictionary per chunk of 32,768 cases, about
// 350 bytes each.
const maxCachedDicts = 1024

// IsDeflatedCase reports whether b is a case stored in form 2 (deflated against a
// dictionary of case_dicts).
func IsDeflatedCase(b []byte) bool { return len(b) > 0 && b[0] == caseDeflated }

// errCaseDict marks a form-2 case whose dictionary is not there.
var errCaseDict = errors.New("its dictionary is missing")

// errDeflatedCase is the error of decoding a form-2 case its reader could not inflate.
var errDeflatedCase = errors.New("case stored deflated does not inflate (damaged, or its dictionary edited or deleted: see cmord archive verify)")

// caseDeflater stores the cases of one transaction deflated against its dictionary.
type caseDeflater struct {
	id   int64  // case_dicts.id
	head []byte // 0x02 and the id, uvarint
	dict []byte
	w    *flate.Writer // made at the first case not deflated ahead (PredeflatedCase)
	buf  bytes.Buffer
}

// newCaseDeflater writes dict as a new dictionary in tx, and returns the deflater of
// the cases stored against it.
func (s *Store) newCaseDeflater(ctx context.Context, tx execQueryer, dict []byte) (*caseDeflater, error) {
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO case_dicts (dict) VALUES (?) RETURNING id`, dict).Scan(&id); err != nil {
		return nil, fmt.Errorf("archive: case dictionary: %w", err)
	}
	dict = bytes.Clone(dict)
	d := &caseDeflater{id: id, head: binary.AppendUvarint([]byte{caseDeflated}, uint64(id)), dict: dict}
	s.cacheCaseDict(id, dict) // dropped if the transaction fails (Store.Write)
	return d, nil
}

// newDeflateWriter is the writer of cases deflated against dict, to w.
func newDeflateWriter(w io.Writer, dict []byte) (*flate.Writer, error) {
	return flate.NewWriterDict(w, caseDeflateLevel, dict)
}

// deflate is compact (a case in the compact form) in form 2, or compact itself when
// that is not smaller.
func (d *caseDeflater) deflate(compact []byte) ([]byte, error) {
	if d.w == nil {
		var err error
		if d.w, err = newDeflateWriter(&d.buf, d.dict); err != nil {
			return nil, err
		}
	}
	d.buf.Reset()
	d.buf.Write(d.head)
	d.w.Reset(&d.buf)
	if _, err := d.w.Write(compact); err != nil {
		return nil, err
	}
	if err := d.w.Close(); err != nil {
		return nil, err
	}
	if d.buf.Len() >= len(compact) {
		return compact, nil
	}
	return bytes.Clone(d.buf.Bytes()), nil
}

// stored is what deflate returns for compact, from its stream deflated ahead
// (PredeflatedCase.stream, deflated against d.dict): the same bytes.
func (d *caseDeflater) stored(compact, stream []byte) []byte {
	if len(d.head)+len(stream) >= len(compact) {
		return compact
	}
	b := make([]byte, 0, len(d.head)+len(stream))
	return append(append(b, d.head...), stream...)
}

// CasePredeflater deflates cases ahead of the transaction that stores them, on
// another goroutine than the one holding it (the uscente.morosi handler's reader,
// while its writer steps SQLite on the other core): each case against the first
// case of its chunk, which is the dictionary the chunk's transaction chooses
// (caseValueIn) when that case is the first it creates, as it is for an extract of
// new cases. The transaction takes a case deflated ahead only when the dictionary
// it chose and the case it stores are byte for byte those the stream was deflated
// from, and deflates the case itself otherwise: what is stored is the same either
// way, since a stream is a function of the dictionary and the case alone (a flate
// Writer's Reset is a NewWriterDict). Not safe for concurrent use.
type CasePredeflater struct {
	dict []byte
	w    *flate.Writer
	buf  bytes.Buffer
}

// PredeflatedCase is a case deflated ahead (CasePredeflater.Deflate), handed to
// PracticeStmts.QueueCreateCase with the practice whose case it is.
type PredeflatedCase struct {
	dict, compact, stream []byte
}

// CasePredeflater returns a predeflater for the cases of a big job, nil when this
// archive stores no deflated case (before migration 0038).
func (s *Store) CasePredeflater() *CasePredeflater {
	if !s.caseDicts {
		return nil
	}
	return &CasePredeflater{}
}

// NewChunk starts a chunk: the next case Deflate takes becomes its dictionary.
func (c *CasePredeflater) NewChunk() {
	if c != nil {
		c.dict = nil
	}
}

// Deflate deflates compact against the chunk's dictionary (compact itself for the
// chunk's first case); nil when c is nil or caseValueIn would store compact as it is.
// compact must not change afterwards.
func (c *CasePredeflater) Deflate(compact []byte) (*PredeflatedCase, error) {
	if c == nil || !flows.IsCompactUscenteData(compact) || len(compact) > maxCaseSize {
		return nil, nil
	}
	if c.dict == nil {
		c.dict = compact
		if c.w == nil {
			var err error
			if c.w, err = newDeflateWriter(&c.buf, c.dict); err != nil {
				return nil, err
			}
		} else {
			c.w.ResetDict(&c.buf, c.dict)
		}
	}
	c.buf.Reset()
	c.w.Reset(&c.buf)
	if _, err := c.w.Write(compact); err != nil {
		return nil, err
	}
	if err := c.w.Close(); err != nil {
		return nil, err
	}
	return &PredeflatedCase{dict: c.dict, compact: compact, stream: bytes.Clone(c.buf.Bytes())}, nil
}

type execQueryer interface {
	execer
	queryer
}

// caseValueIn is caseValue for a case written in a chunk that may store it deflated
// (PracticeStmts.Flush): the first compact case of the transaction becomes its
// dictionary.
//
// pre, when not nil, is the case deflated ahead: taken when it was deflated from d
// against the dictionary the transaction chose.
func (p *PracticeStmts) caseValueIn(ctx context.Context, d []byte, pre *PredeflatedCase) (any, error) {
	if !p.s.caseDicts || !flows.IsCompactUscenteData(d) || len(d) > maxCaseSize {
		// A case past maxCaseSize stays compact: its readers refuse to inflate a
		// stream past it (inflateCase), and would hand it out as damaged. Nor is it
		// the chunk's dictionary: the next case is.
		return caseValue(d), nil
	}
	if p.deflater == nil {
		var err error
		if p.deflater, err = p.s.newCaseDeflater(ctx, p.tx, d); err != nil {
			return nil, err
		}
	}
	if pre != nil && bytes.Equal(pre.compact, d) && bytes.Equal(pre.dict, p.deflater.dict) {
		return p.deflater.stored(d, pre.stream), nil
	}
	b, err := p.deflater.deflate(d)
	if err != nil {
		return nil, fmt.Errorf("archive: deflate case: %w", err)
	}
	return b, nil
}

// inflaters are the readers of form 2, reused (flate.Resetter).
var inflaters sync.Pool

// inflateCase is the compact form of stored (form 2) deflated against dict.
func inflateCase(stream, dict []byte) ([]byte, error) {
	src := bytes.NewReader(stream)
	r, _ := inflaters.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReaderDict(src, dict)
	} else if err := r.(flate.Resetter).Reset(src, dict); err != nil {
		return nil, err
	}
	defer inflaters.Put(r)
	out := make([]byte, 0, 4*len(stream)+64)
	buf := bytes.NewBuffer(out)
	n, err := buf.ReadFrom(io.LimitReader(r, maxCaseSize+1))
	if err != nil {
		return nil, err
	}
	if n > maxCaseSize {
		return nil, fmt.Errorf("inflates past %d bytes", maxCaseSize)
	}
	b := buf.Bytes()
	if !flows.IsCompactUscenteData(b) {
		return nil, fmt.Errorf("does not inflate to a compact case")
	}
	return b, nil
}

// expandCase is a stored case as its readers get it: form 2 inflated into the compact
// form (its dictionary read through q, the transaction or the read pool, else the
// cache), any other form as it is. This is the one place form 2 is read.
func (s *Store) expandCase(ctx context.Context, q queryer, stored []byte) ([]byte, error) {
	if !IsDeflatedCase(stored) {
		return stored, nil
	}
	dict, err := s.dictOfCase(ctx, q, stored)
	if err != nil {
		return nil, err
	}
	return inflateStored(stored, dict)
}

// dictOfCase is the dictionary of stored, a case in form 2 (read through q, else
// the cache): expandCase in two steps, for a reader that inflates the case later on
// another goroutine (Practice.caseDict), where q cannot be used.
func (s *Store) dictOfCase(ctx context.Context, q queryer, stored []byte) ([]byte, error) {
	id, k := binary.Uvarint(stored[1:])
	if k <= 0 || id > 1<<62 {
		return nil, fmt.Errorf("deflated case: unreadable dictionary id")
	}
	dict, err := s.caseDict(ctx, q, int64(id))
	if err != nil {
		return nil, fmt.Errorf("deflated case: dictionary #%d: %w", id, err)
	}
	return dict, nil
}

// inflateStored is the compact form of stored, a case in form 2 whose dictionary is
// dict (dictOfCase).
func inflateStored(stored, dict []byte) ([]byte, error) {
	id, k := binary.Uvarint(stored[1:])
	b, err := inflateCase(stored[1+k:], dict)
	if err != nil {
		return nil, fmt.Errorf("deflated case (dictionary #%d): %w", id, err)
	}
	return b, nil
}

// caseDict returns dictionary id, from the cache or read through q.
func (s *Store) caseDict(ctx context.Context, q queryer, id int64) ([]byte, error) {
	s.dictMu.Lock()
	d, ok := s.dicts[id]
	s.dictMu.Unlock()
	if ok {
		return d, nil
	}
	err := q.QueryRowContext(ctx, `SELECT dict FROM case_dicts WHERE id = ?`, id).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errCaseDict
	}
	if err != nil {
		return nil, err
	}
	s.cacheCaseDict(id, d)
	return d, nil
}

// cacheCaseDict keeps dictionary id (read, or written by the transaction under way).
func (s *Store) cacheCaseDict(id int64, d []byte) {
	s.dictMu.Lock()
	defer s.dictMu.Unlock()
	if s.dicts == nil {
		s.dicts = map[int64][]byte{}
	}
	if len(s.dicts) >= maxCachedDicts {
		for k := range s.dicts { // any one: they are all a read away
			delete(s.dicts, k)
			break
		}
	}
	s.dicts[id] = d
}

// dropCaseDicts forgets the cached dictionaries (a write transaction failed: a
// dictionary it wrote is gone, and its id may come again with another).
func (s *Store) dropCaseDicts() {
	s.dictMu.Lock()
	s.dicts = nil
	s.dictMu.Unlock()
}
