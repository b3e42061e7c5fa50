package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// VerifyReport is the outcome of Verify. Problems is empty when everything holds.
type VerifyReport struct {
	Blobs    int      // blobs re-hashed
	Bytes    int64    // bytes re-hashed
	Events   int      // events whose chain was recomputed
	Records  int      // state chain records replayed
	Rows     int      // chained rows (files, practices, history, case dictionaries) compared with the chain
	Head     Anchor   // the newest chain record (Seq 0: none)
	Anchored bool     // an anchor was given and the chain extends it
	Problems []string // one line per mismatch, missing blob, broken link
	Orphans  []string // blobs on disk that no index row names (harmless, reported)
}

// OK reports whether nothing is wrong.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

// VerifyOptions are the optional checks of VerifyWith.
type VerifyOptions struct {
	// Anchor, when set, is a head printed earlier (by `cmord archive anchor`, or
	// carried by a digest): the chain must still contain that record with that hash.
	Anchor *Anchor
	// Progress, if not nil, is called with (done, total) as blobs are checked.
	Progress func(done, total int)
}

// Verify is VerifyWith without an anchor.
func (s *Store) Verify(ctx context.Context, progress func(done, total int)) (VerifyReport, error) {
	return s.VerifyWith(ctx, VerifyOptions{Progress: progress})
}

// VerifyWith checks the whole state: SQLite's own integrity check of every page;
// the hash of every blob the index names and every file row's blob; the event hash
// chain; the state chain (each record's hash and link, the event head it names, so
// that deleted newest events show); every file, practice and practice history row
// against the last hash the chain recorded for it; and, given an anchor, that the
// chain still extends it. What it proves and what it cannot: docs/tamper.md.
func (s *Store) VerifyWith(ctx context.Context, opt VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	progress := opt.Progress
	if err := s.verifyIntegrity(ctx, &rep); err != nil {
		return rep, err
	}
	if err := s.verifyViews(ctx, &rep); err != nil {
		return rep, err
	}
	if err := s.verifyLookups(ctx, &rep); err != nil {
		return rep, err
	}
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM blobs WHERE kept = 1`).Scan(&total); err != nil {
		return rep, err
	}
	// kept = 0: content refused for its size, only its hash was ever indexed.
	rows, err := s.r.QueryContext(ctx, `SELECT hash, size FROM blobs WHERE kept = 1 ORDER BY hash`)
	if err != nil {
		return rep, err
	}
	known := make(map[string]bool, total)
	type blob struct {
		hash string
		size int64
	}
	var blobs []blob
	for rows.Next() {
		var b blob
		if err := rows.Scan(&b.hash, &b.size); err != nil {
			rows.Close()
			return rep, err
		}
		blobs = append(blobs, b)
	}
	rows.Close()
	for i, b := range blobs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		known[b.hash] = true
		if err := s.Blobs.Check(b.hash, b.size); err != nil {
			rep.Problems = append(rep.Problems, err.Error()+s.filesUsing(ctx, b.hash))
		} else {
			rep.Bytes += b.size
		}
		rep.Blobs++
		if progress != nil {
			progress(i+1, total)
		}
	}
	// Files naming a blob the index does not have (should be impossible with foreign keys).
	frows, err := s.r.QueryContext(ctx, `SELECT f.id, f.name, f.hash FROM files f LEFT JOIN blobs b ON b.hash = f.hash WHERE b.hash IS NULL`)
	if err != nil {
		return rep, err
	}
	for frows.Next() {
		var id int64
		var name, hash string
		if err := frows.Scan(&id, &name, &hash); err != nil {
			frows.Close()
			return rep, err
		}
		rep.Problems = append(rep.Problems, fmt.Sprintf("file #%d %s names blob %s that is not indexed", id, name, hash))
	}
	frows.Close()
	heads, err := s.verifyState(ctx, &rep, opt.Anchor)
	if err != nil {
		return rep, err
	}
	if err := s.verifyChain(ctx, &rep, heads); err != nil {
		return rep, err
	}
	_ = filepath.WalkDir(s.Blobs.root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if !known[BlobHashOf(d.Name())] {
			rep.Orphans = append(rep.Orphans, d.Name())
		}
		return nil
	})
	return rep, nil
}

// verifyChain recomputes the event chain, and checks that the events the state
// chain's records name (heads: event id → hash) are there with that hash.
func (s *Store) verifyChain(ctx context.Context, rep *VerifyReport, heads map[int64]string) error {
	rows, err := s.r.QueryContext(ctx, `SELECT id, at, type, file_id, practice_id, actor, detail, prev_hash, hash FROM events ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	prev := genesis
	var lastID int64
	for rows.Next() {
		var e Event
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Type, &e.FileID, &e.PracticeID, &e.Actor, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		rep.Events++
		if e.ID != lastID+1 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("event chain: events %d..%d are missing", lastID+1, e.ID-1))
		}
		if e.PrevHash != prev {
			rep.Problems = append(rep.Problems, fmt.Sprintf("event chain broken at event %d: previous hash does not match", e.ID))
		}
		if want := chainHash(e.PrevHash, e.ID, at, e.Type, e.FileID, e.PracticeID, e.Actor, e.Detail); want != e.Hash {
			rep.Problems = append(rep.Problems, fmt.Sprintf("event chain broken at event %d: content was altered", e.ID))
		}
		if want, ok := heads[e.ID]; ok && want != e.Hash {
			rep.Problems = append(rep.Problems, fmt.Sprintf("event chain: event %d is not the one the state chain recorded (its hash differs): the event log was rewritten", e.ID))
		}
		prev, lastID = e.Hash, e.ID
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if head := rep.Head; head.Seq > 0 && head.EventID > lastID {
		rep.Problems = append(rep.Problems, fmt.Sprintf("event chain: truncated: the newest chain record #%d (%s) names event %d, but the log ends at event %d (events %d..%d were deleted)",
			head.Seq, TS(head.At), head.EventID, lastID, lastID+1, head.EventID))
	} else if head.Seq > 0 && lastID > head.EventID {
		rep.Problems = append(rep.Problems, fmt.Sprintf("event chain: events %d..%d are not covered by the state chain (written outside cmord, or the newest chain records were deleted)",
			head.EventID+1, lastID))
	}
	if len(rep.Problems) > 0 {
		// keep the first few chain problems: one edit breaks every later link otherwise
		var chain, other []string
		for _, p := range rep.Problems {
			if strings.HasPrefix(p, "event chain") {
				chain = append(chain, p)
			} else {
				other = append(other, p)
			}
		}
		if len(chain) > 10 {
			chain = append(chain[:10], fmt.Sprintf("event chain: %d more problems", len(chain)-10))
		}
		rep.Problems = append(other, chain...)
	}
	return nil
}

// filesUsing names the archived files whose content is hash (", used by file #3
// in morosi.csv, ..."): a person restoring from backup needs to know what was lost.
func (s *Store) filesUsing(ctx context.Context, hash string) string {
	rows, err := s.r.QueryContext(ctx, `SELECT id, direction, name FROM files WHERE hash = ? ORDER BY id LIMIT 4`, hash)
	if err != nil {
		return ""
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var id int64
		var dir, name string
		if rows.Scan(&id, &dir, &name) == nil {
			names = append(names, fmt.Sprintf("file #%d %s %s", id, dir, name))
		}
	}
	switch {
	case len(names) == 0:
		return ""
	case len(names) > 3:
		names = append(names[:3], "...")
	}
	return "; used by " + strings.Join(names, ", ")
}
