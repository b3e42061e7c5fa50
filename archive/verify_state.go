package archive

import (
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// maxProblemsPerCheck bounds the lines one check adds: one edit early in a chain
// breaks every later link, and a table rewritten wholesale would list every row.
const maxProblemsPerCheck = 20

// problemList collects one check's problems, keeping the first few and counting the
// rest.
type problemList struct {
	what  string
	lines []string
	more  int
}

func (p *problemList) add(format string, args ...any) {
	if len(p.lines) >= maxProblemsPerCheck {
		p.more++
		return
	}
	p.lines = append(p.lines, fmt.Sprintf(format, args...))
}

func (p *problemList) flush(rep *VerifyReport) {
	rep.Problems = append(rep.Problems, p.lines...)
	if p.more > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d more problems", p.what, p.more))
	}
}

var integrityPage = regexp.MustCompile(`(?:Tree|Page) (\d+)`)

// verifyIntegrity runs SQLite's PRAGMA integrity_check: a damaged page (disk,
// filesystem, or an edit of the file's bytes) shows here even in rows the chain
// cannot read. Lines naming a table's root page say which table.
func (s *Store) verifyIntegrity(ctx context.Context, rep *VerifyReport) error {
	roots := map[string]string{}
	if rows, err := s.r.QueryContext(ctx, `SELECT type, name, rootpage FROM sqlite_master WHERE rootpage > 0`); err == nil {
		for rows.Next() {
			var typ, name string
			var root int64
			if rows.Scan(&typ, &name, &root) == nil {
				roots[strconv.FormatInt(root, 10)] = typ + " " + name
			}
		}
		rows.Close()
	}
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("SQLite integrity_check could not run: %v", err))
		return nil
	}
	defer rows.Close()
	pl := problemList{what: "SQLite integrity_check"}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		for _, line := range strings.Split(line, "\n") {
			if line == "ok" || line == "" || strings.HasPrefix(line, "*** in database") {
				continue
			}
			if m := integrityPage.FindStringSubmatch(line); m != nil && roots[m[1]] != "" {
				line += " (" + roots[m[1]] + ")"
			}
			pl.add("SQLite integrity_check: %s", line)
		}
	}
	if err := rows.Err(); err != nil {
		pl.add("SQLite integrity_check could not finish: %v", err)
	}
	pl.flush(rep)
	return nil
}

// chainSlot is the last thing the state chain recorded about one row.
type chainSlot struct {
	sum     [32]byte
	seq     int64 // the record; 0: never recorded
	visited bool  // the row was found in its table
}

func (c chainSlot) deleted() bool { return c.sum == [32]byte{} }

// verifyState replays the state chain and compares every chained row with it. It
// returns the event heads the records name (event id → hash) for verifyChain.
func (s *Store) verifyState(ctx context.Context, rep *VerifyReport, anchor *Anchor) (map[int64]string, error) {
	heads := map[int64]string{}
	slots := map[byte][]chainSlot{}
	// Sized once from each table's largest id: grown by append, the slices of a
	// million rows would at times hold twice that (verify runs inside the daemon too).
	if marks, err := maxIDs(ctx, s.r, s.stateSplit, s.chainTables()); err == nil {
		for i, t := range s.chainTables() {
			if maxID := marks[i]; maxID >= 0 && maxID < 1<<32 {
				slots[t.tag] = make([]chainSlot, maxID+1)
			}
		}
	}
	recAt := []string{""} // by seq
	pl := problemList{what: "state chain"}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, at, event_id, event_hash, rows, entries, prev_hash, hash FROM chain ORDER BY seq`)
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("state chain: cannot be read: %v", err))
		return heads, nil
	}
	prev := genesis
	var lastSeq int64
	anchorOK := false
	for rows.Next() {
		var seq, eventID int64
		var n int
		var at, eventHash, prevHash, hash string
		var entries []byte
		if err := rows.Scan(&seq, &at, &eventID, &eventHash, &n, &entries, &prevHash, &hash); err != nil {
			rows.Close()
			return heads, err
		}
		rep.Records++
		if seq != lastSeq+1 {
			pl.add("state chain: records %d..%d are missing", lastSeq+1, seq-1)
		}
		if prevHash != prev {
			pl.add("state chain broken at record %d (%s): previous hash does not match", seq, at)
		}
		if recordHash(prevHash, seq, at, eventID, eventHash, n, entries) != hash {
			pl.add("state chain broken at record %d (%s): content was altered", seq, at)
		}
		if eventID > 0 {
			heads[eventID] = eventHash
		}
		for int64(len(recAt)) <= seq && seq-int64(len(recAt)) < 1<<20 {
			recAt = append(recAt, "")
		}
		if seq < int64(len(recAt)) {
			recAt[seq] = at
		}
		got := 0
		for b := entries; len(b) > 0; got++ {
			tag := b[0]
			id, k := binary.Uvarint(b[1:])
			if k <= 0 || len(b) < 1+k+32 || id > 1<<40 {
				pl.add("state chain record %d (%s): entries unreadable", seq, at)
				break
			}
			var sum [32]byte
			copy(sum[:], b[1+k:1+k+32])
			b = b[1+k+32:]
			t := slots[tag]
			if uint64(len(t)) <= id {
				t = append(t, make([]chainSlot, id+1-uint64(len(t)))...)
				slots[tag] = t
			}
			t[id] = chainSlot{sum: sum, seq: seq}
		}
		if got != n {
			pl.add("state chain record %d (%s): %d entries, the record says %d", seq, at, got, n)
		}
		if anchor != nil && seq == anchor.Seq {
			if hash != anchor.Hash {
				pl.add("state chain rewritten: record %d (%s) has hash %s, the anchor says %s: the archive no longer extends the anchored state", seq, at, hash, anchor.Hash)
			} else {
				anchorOK = true
			}
		}
		prev, lastSeq = hash, seq
		rep.Head = Anchor{Seq: seq, Hash: hash, EventID: eventID}
		rep.Head.At, _ = ParseTS(at)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		pl.add("state chain: cannot be read to the end: %v", err)
	}
	if anchor != nil && lastSeq < anchor.Seq {
		pl.add("state chain truncated: the anchor names record %d (%s), but the chain ends at record %d", anchor.Seq, anchor.At.UTC().Format("2006-01-02T15:04:05Z"), lastSeq)
	}
	rep.Anchored = anchor != nil && anchorOK
	pl.flush(rep)
	for _, t := range s.chainTables() {
		s.verifyTable(ctx, rep, t, slots[t.tag], recAt)
	}
	return heads, nil
}

// verifyTable compares every row of t with the last hash the chain recorded for it.
func (s *Store) verifyTable(ctx context.Context, rep *VerifyReport, t chainedTable, slots []chainSlot, recAt []string) {
	pl := problemList{what: t.name}
	when := func(seq int64) string {
		if seq < int64(len(recAt)) && recAt[seq] != "" {
			return fmt.Sprintf("record %d, %s", seq, recAt[seq])
		}
		return fmt.Sprintf("record %d", seq)
	}
	err := func() error {
		// One read transaction: a row read again column by column
		// (chainRowReader.readColumns) is the row as the scan saw it.
		tx, err := s.r.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		r, err := s.newChainRowReader(ctx, tx, t)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, r.query("t.id", `FROM main.`+t.name+` t`, `ORDER BY t.id`))
		if err != nil {
			return err
		}
		defer rows.Close()
		rh, vals := r.rh, r.vals
		labelCol := -1
		for i, c := range rh.names {
			if c == t.label {
				labelCol = i
			}
		}
		for rows.Next() {
			id, _, err := r.scan(ctx, tx, rows)
			if err != nil {
				return err
			}
			rep.Rows++
			if id < 0 {
				pl.add("%s row with id %d", t.name, id)
				continue
			}
			name := fmt.Sprintf("%s #%d", t.noun, id)
			if labelCol >= 0 && len(vals[labelCol]) > 0 {
				name += " (" + t.label + " " + escapeLabel(string(vals[labelCol])) + ")"
			}
			if id >= int64(len(slots)) || slots[id].seq == 0 {
				pl.add("%s is not in the state chain: added outside cmord, or the chain records that wrote it were deleted", name)
				continue
			}
			sl := &slots[id]
			sl.visited = true
			switch {
			case sl.deleted():
				pl.add("%s exists, but the state chain recorded its deletion (%s): put back outside cmord", name, when(sl.seq))
			case rh.sum(vals) != sl.sum:
				pl.add("%s was changed outside cmord: it differs from what the state chain recorded for it (%s)", name, when(sl.seq))
			}
		}
		return rows.Err()
	}()
	if err != nil {
		pl.add("%s: cannot be read (%v): see the integrity_check lines", t.name, err)
	} else {
		for id, sl := range slots {
			if sl.seq != 0 && !sl.visited && !sl.deleted() {
				pl.add("%s #%d was deleted outside cmord (the state chain last recorded it in %s)", t.noun, id, when(sl.seq))
			}
		}
	}
	if s.stateSplit && t.rowsTable != "" {
		s.verifyRowsWithoutView(ctx, &pl, t, slots)
	}
	pl.flush(rep)
}

// verifyRowsWithoutView reports the rows of t.rowsTable that are in no row of the view
// t (practices: practice_state LEFT JOIN practice_rows, migration 0035): a
// practice_rows row without its practice_state row is in no practice the scan of the
// view reads, yet the lookups by case key and code, which read practice_rows, find
// it. A row whose practice the chain holds and the scan did not find is reported as
// deleted already. Without an ORDER BY, SQLite reads the ids from the smallest index.
func (s *Store) verifyRowsWithoutView(ctx context.Context, pl *problemList, t chainedTable, slots []chainSlot) {
	rows, err := s.r.QueryContext(ctx, `SELECT r.id FROM main.`+t.rowsTable+` r WHERE NOT EXISTS (SELECT 1 FROM main.`+t.name+` v WHERE v.id = r.id)`)
	if err != nil {
		pl.add("%s: cannot be read (%v): see the integrity_check lines", t.rowsTable, err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			pl.add("%s: cannot be read (%v): see the integrity_check lines", t.rowsTable, err)
			return
		}
		if id >= 0 && id < int64(len(slots)) && slots[id].seq != 0 && !slots[id].deleted() {
			continue
		}
		pl.add("%s row #%d is in no %s (its state row is missing): added outside cmord", t.rowsTable, id, t.noun)
	}
	if err := rows.Err(); err != nil {
		pl.add("%s: cannot be read (%v): see the integrity_check lines", t.rowsTable, err)
	}
}

// escapeLabel keeps a stored name from writing control characters to a terminal.
func escapeLabel(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	q := strconv.QuoteToGraphic(s)
	if q[1:len(q)-1] == s && !strings.ContainsAny(s, " ") {
		return s
	}
	return q
}
