package archive

// Reading chained rows for their hash (issue 16). Reading a practice column by column
// through database/sql cost, per column (about 30), a Go value from the driver and a
// conversion to sql.RawBytes: most of the seal's CPU. Now SQLite hands over a row's
// TEXT-affinity columns as one text, joined by NUL bytes, and rowHasher hashes the
// fields exactly as it hashed the columns: no hash changes (TestChainRowsSameHashes
// holds the new read to the old one, oldSealRows).
//
// Why the joined fields are the bytes database/sql handed over: a TEXT-affinity column
// holds only text, blobs and NULL (SQLite stores a number written to it as its text),
// concat() copies text and blob bytes as they are, and NULL and '' are both empty,
// which the hash leaves out either way. A row with a NUL byte in one of those values
// splits into more fields than columns and is read again column by column, in the same
// transaction (cmord writes none; a row edited outside cmord may). The other columns
// (integers, where someone could have written a REAL that SQLite would print with 15
// digits and database/sql exactly) and the side columns (a case in the compact form is
// a blob with NUL bytes) are read one by one, as before. The side columns come by a
// LEFT JOIN (chainedTable.sideJoin) rather than the per-row subquery: the same value,
// one cursor per query instead of one per row.

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// chainRowReader reads the rows of one chained table for their hash.
type chainRowReader struct {
	t    chainedTable
	side string // s.chainSide(t): the side columns as the fallback reads them
	join string // the FROM clause's join for the side columns (t.sideJoin), if any
	list string // select list after the row's id: the joined columns, the direct ones, the side columns
	// textIdx: the columns (indexes into the hasher's names) joined, in their order;
	// directIdx: those read one by one, in the query's order (the side columns last).
	textIdx, directIdx []int
	texts              [][]byte // the joined columns, cut (split)
	rh                 *rowHasher
	vals               []sql.RawBytes // the current row's columns, in names order
	dest               []any
	raw                []sql.RawBytes // id, joined, direct columns
	fbDest             []any          // the row read column by column
	fbRaw              []sql.RawBytes
	fbOwn              [][]byte
}

// sideMarker separates t.* from the side columns in the query that names them.
const sideMarker = "cmord-side-columns"

// newChainRowReader names t's columns as the hasher sees them (SELECT t.* and the side
// columns, as sealRows and verify always read them) and builds the query's select list.
func (s *Store) newChainRowReader(ctx context.Context, q queryer, t chainedTable) (*chainRowReader, error) {
	r := &chainRowReader{t: t, side: s.chainSide(t)}
	sideList := r.side
	if r.side != "" && t.sideJoin != "" {
		r.join, sideList = " "+t.sideJoin, ", "+t.sideCols+s.chainBuilt(t)
	}
	rows, err := q.QueryContext(ctx, `SELECT t.*, NULL AS "`+sideMarker+`"`+sideList+` FROM main.`+t.name+` t`+r.join+` WHERE 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	m := -1
	for i, c := range cols {
		if c == sideMarker {
			m = i
			break
		}
	}
	if m < 1 {
		return nil, fmt.Errorf("table %s: no columns", t.name)
	}
	names := append(append([]string{}, cols[:m]...), cols[m+1:]...)
	if r.rh, err = newRowHasher(t.name, names); err != nil {
		return nil, err
	}
	// TEXT-affinity columns are joined: they hold only text, blobs and NULL (SQLite
	// stores a number written to them as its text), whose bytes are what database/sql
	// handed over. The others (integers, and a REAL a person may have written to one)
	// and the side columns are read one by one, as they always were.
	var joined, direct []string
	for i, c := range names {
		e := "t." + quoteIdent(c)
		if i < m && c != "id" && textAffinity(types[i].DatabaseTypeName()) {
			r.textIdx = append(r.textIdx, i)
			joined = append(joined, e)
		} else {
			r.directIdx = append(r.directIdx, i)
			if i < m {
				direct = append(direct, e)
			} // the side columns: sideList, last
		}
	}
	list := []string{"''"}
	if len(joined) > 0 {
		list[0] = "concat(" + strings.Join(joined, ", char(0), ") + ")"
	}
	list = append(list, direct...)
	r.list = strings.Join(list, ", ") + sideList
	r.raw = make([]sql.RawBytes, 2+len(r.directIdx))
	r.dest = make([]any, len(r.raw))
	for i := range r.raw {
		r.dest[i] = &r.raw[i]
	}
	r.texts = make([][]byte, len(r.textIdx))
	r.vals = make([]sql.RawBytes, len(names))
	r.fbDest, r.fbRaw = scanDest(len(names))
	r.fbOwn = make([][]byte, len(names))
	return r, nil
}

// chainSchemaKey is what a chainRowReader depends on: the main schema's version (any
// change of a table, by cmord's migrations or by anything else) and whether the side
// columns are read.
type chainSchemaKey struct {
	version   int64
	sideData  bool
	builtSide bool
}

// chainReader returns the writer's reader of t, built again when the schema changed:
// building it costs a query, and a small transaction's seal would pay it per table.
func (s *Store) chainReader(ctx context.Context, tx queryer, t chainedTable, schemaVersion int64) (*chainRowReader, error) {
	key := chainSchemaKey{schemaVersion, s.sideData, s.builtSide}
	s.chainMu.Lock()
	defer s.chainMu.Unlock()
	if s.chainReaders == nil || s.chainSchema != key {
		s.chainReaders, s.chainSchema = map[byte]*chainRowReader{}, key
	}
	if r := s.chainReaders[t.tag]; r != nil {
		return r, nil
	}
	r, err := s.newChainRowReader(ctx, tx, t)
	if err != nil {
		return nil, err
	}
	s.chainReaders[t.tag] = r
	return r, nil
}

// dropChainReaders forgets the cached readers (Write, when a transaction fails).
func (s *Store) dropChainReaders() {
	s.chainMu.Lock()
	s.chainReaders = nil
	s.chainMu.Unlock()
}

// query is the SELECT reading the rows from (a FROM clause, the table aliased t), then
// rest (WHERE, ORDER BY), idExpr naming each row (p.id when the row may be gone).
func (r *chainRowReader) query(idExpr, from, rest string) string {
	return "SELECT " + idExpr + ", " + r.list + " " + from + r.join + " " + rest
}

// scan reads rows' current row into r.vals: its id, and present false when the row is
// gone (the LEFT JOIN found none). q reads a row column by column, in the same
// transaction as rows.
func (r *chainRowReader) scan(ctx context.Context, q queryer, rows *sql.Rows) (id int64, present bool, err error) {
	if err := rows.Scan(r.dest...); err != nil {
		return 0, false, err
	}
	id, err = strconv.ParseInt(string(r.raw[0]), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s rowid %q: %w", r.t.name, r.raw[0], err)
	}
	for k, i := range r.directIdx {
		r.vals[i] = r.raw[2+k]
	}
	if r.vals[r.rh.idCol] == nil {
		return id, false, nil
	}
	if r.split(r.raw[1]) {
		return id, true, nil
	}
	return id, true, r.readColumns(ctx, q, id)
}

// split cuts the joined columns into r.vals (splitNUL, as EachPracticeText cuts its
// own); false if there are more fields than columns (a value holds a NUL byte).
func (r *chainRowReader) split(joined []byte) bool {
	if len(r.textIdx) == 0 {
		return true
	}
	if !splitNUL(joined, r.texts) {
		return false
	}
	for k, i := range r.textIdx {
		r.vals[i] = r.texts[k]
	}
	return true
}

// readColumns reads row id column by column, as the chain always did, into r.vals.
func (r *chainRowReader) readColumns(ctx context.Context, q queryer, id int64) error {
	rows, err := q.QueryContext(ctx, `SELECT t.*`+r.side+` FROM main.`+r.t.name+` t WHERE t.id = ?`, id)
	if err != nil {
		return err
	}
	defer rows.Close()
	if cols, err := rows.Columns(); err != nil {
		return err
	} else if len(cols) != len(r.vals) {
		return fmt.Errorf("%s: %d columns, %d when the seal began", r.t.name, len(cols), len(r.vals))
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%s row %d: gone while read", r.t.name, id)
	}
	if err := rows.Scan(r.fbDest...); err != nil {
		return err
	}
	for i, v := range r.fbRaw {
		r.fbOwn[i] = append(r.fbOwn[i][:0], v...)
		r.vals[i] = r.fbOwn[i]
	}
	return rows.Close()
}

// textAffinity says whether a column declared as decl has TEXT affinity (the rules of
// https://sqlite.org/datatype3.html#determination_of_column_affinity, in their order).
func textAffinity(decl string) bool {
	d := strings.ToUpper(decl)
	if strings.Contains(d, "INT") {
		return false
	}
	return strings.Contains(d, "CHAR") || strings.Contains(d, "CLOB") || strings.Contains(d, "TEXT")
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
