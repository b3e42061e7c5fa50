package archive

// The state chain: tamper evidence over the rows that say what happened to a file or
// a practice (docs/tamper.md).
//
// The event log has carried its own hash chain from the start, but the rows a person
// reads (files, practices, practice_history) are mutable and were outside it. Here
// every write transaction that touches one of them ends with one chain record: for
// each row written, its table, rowid and the SHA-256 of the row as it stands at
// commit (zeros if the transaction deleted it), plus the event log's head and the
// previous record's hash. Which rows a transaction wrote is collected by TEMP
// triggers on the single writer connection into a TEMP table, so no write site has
// to remember, and a row written by anything else (the sqlite3 shell) is not
// recorded — which is exactly what verify then reports. The cost is per transaction
// (one query per chained table reading back the rows written, one INSERT), not per
// row round trip: a chunk of 8,192 practices adds one record.
//
// Verify replays the records, and compares each row with the last hash recorded for
// it: an edited, added or deleted row is named. The newest record names the event
// log's head, so deleting the newest events is seen. A consistent rewrite (rows,
// records and events all recomputed) cannot be seen from inside the database: the
// head printed by `cmord archive anchor` and carried by every digest is what it is
// checked against (VerifyOptions.Anchor).

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// chainedTable is a table whose rows are in the state chain.
type chainedTable struct {
	tag   byte   // in chain entries
	name  string // SQL table
	noun  string // how verify names one row
	label string // column that names the row for a person ("" = none)
	// side: columns kept in another table that belong to the row, as a select-list
	// fragment on the row aliased t (a practice's case, migration 0031): hashed
	// under their own names, so that moving a column out keeps the row's hash.
	side string
	// sideJoin, sideCols: the same columns read by a join (a LEFT JOIN to a table
	// keyed by the row's id, at most one row each), cheaper per row than side's
	// subquery: what chainRowReader reads.
	sideJoin, sideCols string
	// rowsTable, writeTables: where name is a view over tables keyed by the same id
	// (practices, migration 0035), the table whose largest id is the view's (a
	// join gets no min/max optimisation: max(id) would read every row), and the
	// tables whose writes change a row of the view (where the TEMP triggers go).
	// Used once the view exists (Store.stateSplit).
	rowsTable   string
	writeTables []string
	// built: a further side column once migration 0037 is applied
	// (Store.builtSide): the requests of the row whose build history row is derived
	// from request_state (practiceSideBuilt).
	built string
}

// idTable is the table whose largest id is t's (see rowsTable).
func (t chainedTable) idTable(split bool) string {
	if split && t.rowsTable != "" {
		return t.rowsTable
	}
	return t.name
}

// written is the tables whose writes change a row of t (see writeTables).
func (t chainedTable) written(split bool) []string {
	if split && len(t.writeTables) > 0 {
		return t.writeTables
	}
	return []string{t.name}
}

// chainedTables are the tables in the chain. A table added here must have an
// INTEGER PRIMARY KEY named id; a migration adding one must seal its existing rows
// (see sealAll).
var chainedTables = []chainedTable{
	{tag: 1, name: "files", noun: "file", label: "name"},
	{tag: 2, name: "practices", noun: "practice", label: "cp_utente", side: practiceSideData,
		sideJoin: practiceSideJoin, sideCols: practiceSideCols,
		rowsTable: "practice_rows", writeTables: []string{"practice_rows", "practice_state"}, built: practiceSideBuilt},
	{tag: 3, name: "practice_history", noun: "practice history row", label: "practice_id"},
	// Last: in the chain once migration 0038 is applied (chainTables). A case
	// stored deflated (form 2) decodes through its dictionary: a dictionary edited or
	// deleted changes what every case built on it reads as, while the cases' own
	// bytes, which their practices' hashes cover, stay as they were.
	{tag: 4, name: "case_dicts", noun: "case dictionary"},
}

// chainTables are the chained tables of an archive: all of chainedTables once
// case_dicts exists (migration 0038 applied: dicts), the others before.
func chainTables(dicts bool) []chainedTable {
	if dicts {
		return chainedTables
	}
	return chainedTables[:len(chainedTables)-1]
}

// chainTables are the chained tables of s (Store.caseDicts).
func (s *Store) chainTables() []chainedTable { return chainTables(s.caseDicts) }

// eventsTag marks, in chain_pending, that the transaction appended events.
const eventsTag = 0

// chainTempSQL creates, on the writer connection, the TEMP table and triggers that
// collect what a transaction wrote (split: Store.stateSplit). TEMP objects belong to
// the connection: nothing else writing the file records anything. Each statement is
// returned with the name of the object it creates.
func chainTempSQL(split bool, tables []chainedTable) (names, stmts []string) {
	names = append(names, "chain_pending")
	stmts = append(stmts, `CREATE TEMP TABLE IF NOT EXISTS chain_pending (
		tbl INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (tbl, id)) WITHOUT ROWID`)
	for _, t := range tables {
		// No INSERT trigger: a row inserted by the transaction has an id above the
		// table's largest id when it began (SQLite's rowids, and the ids cmord
		// allocates itself, are max+1), so the seal reads new rows by id range —
		// a trigger per inserted row cost as much as reading it back.
		for _, w := range t.written(split) {
			names = append(names, "chain_"+w+"_upd", "chain_"+w+"_mov", "chain_"+w+"_del")
			stmts = append(stmts,
				fmt.Sprintf(`CREATE TEMP TRIGGER chain_%[1]s_upd AFTER UPDATE ON main.%[1]s
				BEGIN INSERT OR IGNORE INTO chain_pending VALUES (%[2]d, NEW.id); END`, w, t.tag),
				fmt.Sprintf(`CREATE TEMP TRIGGER chain_%[1]s_mov AFTER UPDATE OF id ON main.%[1]s WHEN OLD.id <> NEW.id
				BEGIN INSERT OR IGNORE INTO chain_pending VALUES (%[2]d, OLD.id); END`, w, t.tag),
				fmt.Sprintf(`CREATE TEMP TRIGGER chain_%[1]s_del AFTER DELETE ON main.%[1]s
				BEGIN INSERT OR IGNORE INTO chain_pending VALUES (%[2]d, OLD.id); END`, w, t.tag))
		}
	}
	names = append(names, "chain_events_ins")
	stmts = append(stmts, fmt.Sprintf(`CREATE TEMP TRIGGER chain_events_ins AFTER INSERT ON main.events
		BEGIN INSERT OR IGNORE INTO chain_pending VALUES (%d, 0); END`, eventsTag))
	return names, stmts
}

// ensureChainTemp creates the TEMP objects if this connection lacks them (the first
// transaction, or a connection database/sql opened again) or has those of another
// schema (the migration that made practices a view: its triggers moved with the
// renamed table), and returns each chained table's largest id as the transaction
// begins.
func (s *Store) ensureChainTemp(ctx context.Context, tx *sql.Tx) (chainMarks, error) {
	var have string
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(group_concat(name, ' '), '') FROM (SELECT name FROM sqlite_temp_master
		WHERE name LIKE 'chain\_%' ESCAPE '\' ORDER BY name)`).Scan(&have); err != nil {
		return nil, fmt.Errorf("archive: chain: %w", err)
	}
	names, stmts := chainTempSQL(s.stateSplit, s.chainTables())
	want := slices.Clone(names)
	sort.Strings(want)
	if have != strings.Join(want, " ") {
		var drop []string
		for _, n := range strings.Fields(have) {
			if n != "chain_pending" {
				drop = append(drop, `DROP TRIGGER IF EXISTS temp.`+n)
			}
		}
		for _, q := range drop {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return nil, fmt.Errorf("archive: chain: %w", err)
			}
		}
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return nil, fmt.Errorf("archive: chain: %w", err)
			}
		}
	}
	return maxIDs(ctx, tx, s.stateSplit, s.chainTables())
}

// chainSide is t's side columns as a select-list fragment (", ..."), once the tables
// holding them exist (sideData).
func (s *Store) chainSide(t chainedTable) string {
	if t.side == "" || !s.sideData {
		return ""
	}
	return ", " + t.side + s.chainBuilt(t)
}

// chainBuilt is t's built side column as a select-list fragment (", ..."), once
// migration 0037 is applied (builtSide).
func (s *Store) chainBuilt(t chainedTable) string {
	if t.built == "" || !s.builtSide {
		return ""
	}
	return ", " + t.built
}

// chainMarks is the largest id of each chained table (in chainTables order).
type chainMarks []int64

// maxIDs reads chainMarks in one query (each max(id) is one b-tree descent), in a
// transaction or, for verify, on the read pool (split: Store.stateSplit; tables:
// Store.chainTables).
func maxIDs(ctx context.Context, tx queryRower, split bool, tables []chainedTable) (chainMarks, error) {
	var parts []string
	for _, t := range tables {
		parts = append(parts, "(SELECT coalesce(max(id), 0) FROM main."+t.idTable(split)+")")
	}
	m := make(chainMarks, len(tables))
	dest := make([]any, len(m))
	for i := range m {
		dest[i] = &m[i]
	}
	if err := tx.QueryRowContext(ctx, "SELECT "+strings.Join(parts, ", ")).Scan(dest...); err != nil {
		return nil, fmt.Errorf("archive: chain: %w", err)
	}
	return m, nil
}

// rowHasher hashes rows of one table read with SELECT *: columns in name order, a
// column whose value is NULL, empty text or 0 left out (so that a column a later migration
// adds with such a default does not change the hash of the rows before it), each
// value as its text, length-prefixed.
type rowHasher struct {
	table string
	names []string
	order []int // indexes into the scanned columns, by name
	idCol int
	h     hash.Hash
	buf   []byte
}

func newRowHasher(table string, cols []string) (*rowHasher, error) {
	r := &rowHasher{table: table, names: cols, idCol: -1, h: sha256.New()}
	for i, c := range cols {
		r.order = append(r.order, i)
		if c == "id" {
			r.idCol = i
		}
	}
	if r.idCol < 0 {
		return nil, fmt.Errorf("archive: chain: table %s has no id column", table)
	}
	sort.Slice(r.order, func(a, b int) bool { return cols[r.order[a]] < cols[r.order[b]] })
	return r, nil
}

func (r *rowHasher) sum(vals []sql.RawBytes) (out [32]byte) {
	b := append(r.buf[:0], "cmord-row/1\x00"...)
	b = append(b, r.table...)
	b = append(b, 0)
	for _, i := range r.order {
		v := vals[i]
		if len(v) == 0 || (len(v) == 1 && v[0] == '0') {
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(r.names[i])))
		b = append(b, r.names[i]...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	r.buf = b
	r.h.Reset()
	r.h.Write(b)
	r.h.Sum(out[:0])
	return out
}

// scanDest returns Scan destinations for n columns and the values they fill.
func scanDest(n int) ([]any, []sql.RawBytes) {
	vals := make([]sql.RawBytes, n)
	dest := make([]any, n)
	for i := range vals {
		dest[i] = &vals[i]
	}
	return dest, vals
}

// sealTx ends a write transaction with a chain record of what it wrote, if it wrote
// anything chained: the rows the triggers noted (updated, deleted) among those that
// existed when it began (start), and every row above start (inserted).
func (s *Store) sealTx(ctx context.Context, tx *sql.Tx, start chainMarks) error {
	var pending int
	var schema int64
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM temp.chain_pending), (SELECT schema_version FROM pragma_schema_version())`).Scan(&pending, &schema); err != nil {
		return fmt.Errorf("archive: chain: %w", err)
	}
	tables := s.chainTables()
	end, err := maxIDs(ctx, tx, s.stateSplit, tables)
	if err != nil {
		return err
	}
	grown := false
	for i := range end {
		grown = grown || end[i] > start[i]
	}
	if pending == 0 && !grown {
		return nil
	}
	entries := []byte{} // not nil: a record of events only has no entries, and nil is NULL
	n := 0
	for i, t := range tables {
		r, err := s.chainReader(ctx, tx, t, schema)
		if err != nil {
			return fmt.Errorf("archive: chain: %s: %w", t.name, err)
		}
		where := fmt.Sprintf(`WHERE p.tbl = %d AND p.id <= %d ORDER BY p.id`, t.tag, start[i])
		queries := []string{r.query("p.id", `FROM temp.chain_pending p LEFT JOIN main.`+t.name+` t ON t.id = p.id`, where)}
		if s.stateSplit && t.rowsTable != "" {
			// A view over a join, on the right of a LEFT JOIN, is not flattened:
			// SQLite would build every practice of the archive to find the few
			// written. The rows still there come by an inner join (each a key
			// search), the rows gone by NOT EXISTS, in entries of their own.
			queries[0] = r.query("p.id", `FROM temp.chain_pending p JOIN main.`+t.name+` t ON t.id = p.id`, where)
			if err := sealGone(ctx, tx, t, fmt.Sprintf(`SELECT p.id FROM temp.chain_pending p WHERE p.tbl = %d AND p.id <= %d
				AND NOT EXISTS (SELECT 1 FROM main.%s t WHERE t.id = p.id) ORDER BY p.id`, t.tag, start[i], t.name), &entries, &n); err != nil {
				return fmt.Errorf("archive: chain: %s: %w", t.name, err)
			}
		}
		if end[i] > start[i] { // rows inserted
			queries = append(queries, r.query("t.id", `FROM main.`+t.name+` t`, fmt.Sprintf(`WHERE t.id > %d ORDER BY t.id`, start[i])))
		}
		for _, q := range queries {
			if err := sealRows(ctx, tx, r, q, &entries, &n); err != nil {
				return fmt.Errorf("archive: chain: %s: %w", t.name, err)
			}
		}
	}
	eventID, eventHash, err := eventHead(ctx, tx)
	if err != nil {
		return err
	}
	var prevSeq int64
	prev := genesis
	if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1`).Scan(&prevSeq, &prev); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("archive: chain head: %w", err)
	}
	seq, at := prevSeq+1, TS(time.Now())
	h := recordHash(prev, seq, at, eventID, eventHash, n, entries)
	if _, err := tx.ExecContext(ctx, `INSERT INTO chain (seq, at, event_id, event_hash, rows, entries, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, seq, at, eventID, eventHash, n, entries, prev, h); err != nil {
		return fmt.Errorf("archive: chain record: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM temp.chain_pending`); err != nil {
		return fmt.Errorf("archive: chain: %w", err)
	}
	return nil
}

// sealRows appends an entry for each row q (chainRowReader.query) returns.
func sealRows(ctx context.Context, tx *sql.Tx, r *chainRowReader, q string, entries *[]byte, n *int) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		id, present, err := r.scan(ctx, tx, rows)
		if err != nil {
			return err
		}
		var sum [32]byte // zeros: deleted
		if present {
			sum = r.rh.sum(r.vals)
		}
		*entries = append(*entries, r.t.tag)
		*entries = binary.AppendUvarint(*entries, uint64(id))
		*entries = append(*entries, sum[:]...)
		*n++
	}
	return rows.Err()
}

// sealGone appends a "deleted" entry (zeros) of t for each id q returns.
func sealGone(ctx context.Context, tx *sql.Tx, t chainedTable, q string, entries *[]byte, n *int) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	var zeros [32]byte
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		*entries = append(*entries, t.tag)
		*entries = binary.AppendUvarint(*entries, uint64(id))
		*entries = append(*entries, zeros[:]...)
		*n++
	}
	return rows.Err()
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func eventHead(ctx context.Context, q queryRower) (int64, string, error) {
	var id int64
	h := genesis
	err := q.QueryRowContext(ctx, `SELECT id, hash FROM events ORDER BY id DESC LIMIT 1`).Scan(&id, &h)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("archive: event chain head: %w", err)
	}
	return id, h, nil
}

// recordHash is SHA-256 over a chain record's fields, length-prefixed, the entries
// by their own SHA-256.
func recordHash(prev string, seq int64, at string, eventID int64, eventHash string, rows int, entries []byte) string {
	es := sha256.Sum256(entries)
	h := sha256.New()
	for _, part := range []string{"cmord-chain/1", prev, strconv.FormatInt(seq, 10), at, strconv.FormatInt(eventID, 10), eventHash,
		strconv.Itoa(rows), hex.EncodeToString(es[:])} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sealAll puts every existing chained row and the event head in the transaction's
// pending set, so that its record seals the state as it is: run once, right after
// the migration that creates the chain.
func (s *Store) sealAll(ctx context.Context, tx *sql.Tx) error {
	for _, t := range s.chainTables() {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT OR IGNORE INTO temp.chain_pending SELECT %d, id FROM main.%s`, t.tag, t.name)); err != nil {
			return fmt.Errorf("archive: chain: seal %s: %w", t.name, err)
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO temp.chain_pending VALUES (?, 0)`, eventsTag)
	return err
}

// Anchor is the chain's head as printed for an external notary: a later state of the
// archive must extend it (record Seq still has hash Hash).
type Anchor struct {
	Seq     int64
	Hash    string
	At      time.Time // when record Seq was written
	EventID int64     // the event log's head it covers
}

// String is the one-line form `cmord archive anchor` prints and digests carry.
func (a Anchor) String() string {
	return fmt.Sprintf("cmord-anchor/1 seq=%d hash=%s at=%s events=%d", a.Seq, a.Hash, a.At.UTC().Format(time.RFC3339), a.EventID)
}

var anchorSeqHash = regexp.MustCompile(`^(?:seq=)?(\d+)[ :](?:hash=)?([0-9a-f]{64})$`)

// ParseAnchor reads an anchor: the line Anchor.String prints (as mailed in a digest
// or kept by a notary), or just "SEQ:HASH".
func ParseAnchor(s string) (Anchor, error) {
	f := strings.Fields(strings.TrimSpace(s))
	var a Anchor
	if len(f) > 0 && strings.HasPrefix(f[0], "cmord-anchor/") {
		if f[0] != "cmord-anchor/1" {
			return a, fmt.Errorf("anchor %q: unknown version %s", s, f[0])
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			switch k {
			case "seq":
				a.Seq, err = strconv.ParseInt(v, 10, 64)
			case "hash":
				a.Hash = strings.ToLower(v)
			case "at":
				a.At, err = time.Parse(time.RFC3339, v)
			case "events":
				a.EventID, err = strconv.ParseInt(v, 10, 64)
			}
			if err != nil {
				return a, fmt.Errorf("anchor %q: %s: %w", s, k, err)
			}
		}
	} else if m := anchorSeqHash.FindStringSubmatch(strings.ToLower(strings.Join(f, " "))); m != nil {
		a.Seq, _ = strconv.ParseInt(m[1], 10, 64)
		a.Hash = m[2]
	} else {
		return a, fmt.Errorf("anchor %q: want the line `cmord archive anchor` prints, or SEQ:HASH", s)
	}
	if a.Seq <= 0 || len(a.Hash) != 64 {
		return a, fmt.Errorf("anchor %q: want a sequence number and a 64-digit hash", s)
	}
	if _, err := hex.DecodeString(a.Hash); err != nil {
		return a, fmt.Errorf("anchor %q: hash: %w", s, err)
	}
	return a, nil
}

// ChainHead returns the newest chain record as an anchor (ok false: no record yet).
func (s *Store) ChainHead(ctx context.Context) (a Anchor, ok bool, err error) {
	var at string
	err = s.r.QueryRowContext(ctx, `SELECT seq, hash, at, event_id FROM chain ORDER BY seq DESC LIMIT 1`).Scan(&a.Seq, &a.Hash, &at, &a.EventID)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("archive: chain head: %w", err)
	}
	a.At, _ = ParseTS(at)
	return a, true, nil
}
