package archive

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// oldSealRows is sealRows as it was before chainRowReader (issue 16), kept to prove
// that reading a row as one joined text changes no hash: q returns the row's id, then
// SELECT t.* and the side columns, NULL when the row is gone.
func oldSealRows(ctx context.Context, tx queryer, t chainedTable, q string, entries *[]byte, n *int, args ...any) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	rh, err := newRowHasher(t.name, cols[1:])
	if err != nil {
		return err
	}
	dest, vals := scanDest(len(cols))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		id, err := strconv.ParseInt(string(vals[0]), 10, 64)
		if err != nil {
			return fmt.Errorf("%s rowid %q: %w", t.name, vals[0], err)
		}
		var sum [32]byte // zeros: deleted
		if vals[1+rh.idCol] != nil {
			sum = rh.sum(vals[1:])
		}
		*entries = append(*entries, t.tag)
		*entries = binary.AppendUvarint(*entries, uint64(id))
		*entries = append(*entries, sum[:]...)
		*n++
	}
	return rows.Err()
}

// chainRowsGen writes random rows to every chained table (and practice_data), with the
// values the joined read must get right: NULL, ”, '0', negative and extreme
// integers, NUL bytes in text, Unicode, blobs with NUL bytes in text and integer
// columns, REAL values, text that is not UTF-8, JSON and compact-like cases.
type chainRowsGen struct {
	r        *rand.Rand
	blobHash string
	n        int     // for unique values
	files    []int64 // live ids written by the test
	practs   []int64
	history  []int64
}

func (g *chainRowsGen) text() any {
	g.n++
	switch g.r.IntN(17) {
	case 0:
		return ""
	case 1:
		return "0"
	case 2:
		return "a\x00b"
	case 3:
		return "\x00"
	case 4:
		return "àèìòù € 😀 ☃ Ω"
	case 5:
		return `{"fatture":[{"n":"1","importo":12.5}],"x":null}`
	case 6:
		return strings.Repeat("z", 300+g.r.IntN(2000))
	case 7:
		return []byte{0, 1, 2, 0xff, 0} // a blob in a TEXT column
	case 8:
		return []byte{} // an empty blob
	case 9:
		return int64(-3) // stored as its text
	case 10:
		return 2.5 // stored as its text
	case 11:
		return "-0"
	case 12:
		return "line\nnext\t;"
	case 13:
		return "00"
	case 14:
		return []byte("plain blob")
	case 15:
		if g.r.IntN(2) == 0 {
			return "not UTF-8 \xff\xfe\xc3"
		}
	}
	return "v" + strconv.Itoa(g.n)
}

func (g *chainRowsGen) integer(nullable bool) any {
	switch g.r.IntN(16) {
	case 0:
		return int64(0)
	case 1:
		return int64(-1)
	case 2:
		return int64(math.MinInt64)
	case 3:
		return int64(math.MaxInt64)
	case 4:
		return 1.5 // a REAL: read column by column
	case 5:
		return 1e300
	case 6:
		return 3.0 // stored as the integer 3
	case 7:
		return "12" // stored as the integer 12
	case 8:
		return "abc" // stays text
	case 9:
		return "a\x00b"
	case 10:
		return []byte{0, 7}
	case 11:
		return ""
	case 12:
		return -0.25
	case 13:
		if nullable {
			return nil
		}
	}
	return g.r.Int64N(1 << 40)
}

func (g *chainRowsGen) maybeNull(v any) any {
	if g.r.IntN(3) == 0 {
		return nil
	}
	return v
}

func (g *chainRowsGen) pick(ids []int64) (int64, bool) {
	if len(ids) == 0 {
		return 0, false
	}
	return ids[g.r.IntN(len(ids))], true
}

func drop(ids []int64, id int64) []int64 {
	for i, v := range ids {
		if v == id {
			return append(ids[:i], ids[i+1:]...)
		}
	}
	return ids
}

func (g *chainRowsGen) caseValue() any {
	switch g.r.IntN(5) {
	case 0:
		return `{"invoices":[{"number":"F1","amount_cents":1250}],"nota":"già è"}`
	case 1:
		b := []byte{'U', 'C', 1, 0}
		for i := 0; i < 40+g.r.IntN(200); i++ {
			b = append(b, byte(g.r.IntN(256)))
		}
		return append(b, 0, 0) // a compact-like case: binary, with NUL bytes
	case 2:
		return "x\x00y"
	case 3:
		return ""
	}
	return "0"
}

// tx writes one random transaction: inserts, updates and deletes in every table.
func (g *chainRowsGen) tx(tx *sql.Tx) error {
	now := TS(time.Now())
	// A case dictionary (append-only: inserted, never changed).
	if _, err := tx.Exec(`INSERT INTO case_dicts (dict) VALUES (?)`, []byte(fmt.Sprintf("\x01dict\x00%v", g.text()))); err != nil {
		return err
	}
	for i := 0; i < 1+g.r.IntN(6); i++ {
		g.n++
		dup := any(nil)
		if g.r.IntN(4) == 0 {
			dup = int64(1) // the ingested file, never deleted
		}
		res, err := tx.Exec(`INSERT INTO files (source, name, direction, kind, hash, size, version, state, reason, duplicate_of, received_at, processed_at, meta)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			g.text(), fmt.Sprintf("%v#%d", g.text(), g.n), []string{"in", "out"}[g.r.IntN(2)], g.text(), g.blobHash,
			g.integer(false), g.integer(false), g.text(), g.text(), dup, g.text(), g.maybeNull(g.text()), g.text())
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		g.files = append(g.files, id)
	}
	for i := 0; i < 1+g.r.IntN(6); i++ {
		g.n++
		_, err := tx.Exec(`INSERT INTO practices (case_key, role, sector, company_piva, cp_utente, cp_gestore, point, customer_id, customer_name,
			switch_date, state, state_since, credit_cents, estimate_cents, previous_cents, cmor_cents, charged_cents, collected_cents,
			cause_code, motivation, window_open, window_close, suspension_term, request_date, answer_date, linked_id, data, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			fmt.Sprintf("U|%v|%d", g.text(), g.n), []string{"uscente", "entrante"}[g.r.IntN(2)], []string{"E", "G"}[g.r.IntN(2)], g.text(),
			g.maybeNull(fmt.Sprintf("CP%v%d", g.text(), g.n)), g.maybeNull(g.text()), g.text(), g.text(), g.text(),
			g.text(), g.text(), g.text(), g.integer(false), g.integer(false), g.integer(false), g.integer(false), g.integer(false), g.integer(false),
			g.text(), g.text(), g.text(), g.text(), g.text(), g.text(), g.text(), nil, []any{"", "{}", g.text()}[g.r.IntN(3)], now, now)
		if err != nil {
			return err
		}
		var id int64 // an INSERT through the view's trigger leaves no last rowid
		if err := tx.QueryRow(`SELECT max(id) FROM practice_rows`).Scan(&id); err != nil {
			return err
		}
		g.practs = append(g.practs, id)
		if g.r.IntN(3) > 0 {
			if _, err := tx.Exec(`INSERT INTO practice_data (id, data) VALUES (?, ?)`, id, g.caseValue()); err != nil {
				return err
			}
		}
	}
	for i := 0; i < g.r.IntN(8); i++ {
		p, ok := g.pick(g.practs)
		if !ok {
			break
		}
		res, err := tx.Exec(`INSERT INTO practice_history (practice_id, at, from_state, to_state, flow, file_id, line, cause_code, note)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, p, g.text(), g.text(), g.text(), g.text(), g.integer(false), g.integer(false), g.text(), g.text())
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		g.history = append(g.history, id)
	}
	// Updates of rows written by earlier transactions (and this one).
	for i := 0; i < g.r.IntN(6); i++ {
		if id, ok := g.pick(g.files); ok {
			col := []string{"reason", "meta", "state", "processed_at"}[g.r.IntN(4)]
			if _, err := tx.Exec(`UPDATE files SET `+col+` = ?, size = ? WHERE id = ?`, g.text(), g.integer(false), id); err != nil {
				return err
			}
		}
		if id, ok := g.pick(g.practs); ok {
			col := []string{"motivation", "customer_name", "state", "data"}[g.r.IntN(4)]
			if _, err := tx.Exec(`UPDATE practices SET `+col+` = ?, cmor_cents = ? WHERE id = ?`, g.text(), g.integer(false), id); err != nil {
				return err
			}
			if g.r.IntN(2) == 0 {
				if _, err := tx.Exec(`INSERT OR REPLACE INTO practice_data (id, data) VALUES (?, ?)`, id, g.caseValue()); err != nil {
					return err
				}
			}
		}
		if id, ok := g.pick(g.history); ok {
			if _, err := tx.Exec(`UPDATE practice_history SET note = ?, line = ? WHERE id = ?`, g.text(), g.integer(false), id); err != nil {
				return err
			}
		}
	}
	// Deletes.
	if g.r.IntN(2) == 0 {
		if id, ok := g.pick(g.files); ok {
			if _, err := tx.Exec(`DELETE FROM files WHERE id = ?`, id); err != nil {
				return err
			}
			g.files = drop(g.files, id)
		}
	}
	if g.r.IntN(2) == 0 {
		if id, ok := g.pick(g.practs); ok {
			for _, q := range []string{`DELETE FROM practice_history WHERE practice_id = ? RETURNING id`} {
				rows, err := tx.Query(q, id)
				if err != nil {
					return err
				}
				for rows.Next() {
					var h int64
					rows.Scan(&h)
					g.history = drop(g.history, h)
				}
				rows.Close()
			}
			if _, err := tx.Exec(`DELETE FROM practice_data WHERE id = ?`, id); err != nil {
				return err
			}
			if _, err := tx.Exec(`DELETE FROM practices WHERE id = ?`, id); err != nil {
				return err
			}
			g.practs = drop(g.practs, id)
		}
	}
	if g.r.IntN(2) == 0 {
		if id, ok := g.pick(g.history); ok {
			if _, err := tx.Exec(`DELETE FROM practice_history WHERE id = ?`, id); err != nil {
				return err
			}
			g.history = drop(g.history, id)
		}
	}
	return nil
}

// TestChainRowsSameHashes: the state chain's records written by the joined read are
// byte for byte what the column-by-column read (oldSealRows) computes for the same
// rows, over random transactions; the full-table read verify uses agrees too; and
// verify passes, then names a row changed outside cmord with a NUL byte or a REAL.
func TestChainRowsSameHashes(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ingest(t, s, "folder:a", "one.csv", "1") // file 1 and its blob
	g := &chainRowsGen{r: rand.New(rand.NewPCG(16, 2026))}
	if err := s.r.QueryRow(`SELECT hash FROM files WHERE id = 1`).Scan(&g.blobHash); err != nil {
		t.Fatal(err)
	}
	fallbacks := 0
	for step := 0; step < 60; step++ {
		if err := s.Write(ctx, g.tx); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		checkLastRecord(t, s, fmt.Sprintf("step %d", step))
	}
	// Every row, as verify reads it, both ways.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, ct := range chainedTables {
		var want, got []byte
		var nw, ng int
		if err := oldSealRows(ctx, tx, ct, `SELECT t.id, t.*`+s.chainSide(ct)+` FROM main.`+ct.name+` t ORDER BY t.id`, &want, &nw); err != nil {
			t.Fatal(err)
		}
		r, err := s.newChainRowReader(ctx, tx, ct)
		if err != nil {
			t.Fatal(err)
		}
		if err := sealRows(ctx, tx, r, r.query("t.id", `FROM main.`+ct.name+` t`, `ORDER BY t.id`), &got, &ng); err != nil {
			t.Fatal(err)
		}
		if nw < 20 || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d rows read joined, %d column by column, entries equal %v", ct.name, ng, nw, bytes.Equal(got, want))
		}
		// The rows that took the column-by-column way (a REAL or a NUL byte).
		fallbacks += countFallbacks(t, tx, r, ct)
	}
	tx.Rollback()
	if fallbacks == 0 {
		t.Fatal("no row took the column-by-column way: the test does not reach it")
	}
	rep, err := s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify: %q", rep.Problems)
	}
	// Changed outside cmord: a NUL byte in one practice, a REAL in another.
	p1, p2 := g.practs[0], g.practs[len(g.practs)-1]
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE practices SET motivation = 'x' || char(0) || 'y' WHERE id = ?`, p1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE practices SET credit_cents = 0.5 WHERE id = ?`, p2); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{p1, p2} {
		found := false
		for _, p := range rep.Problems {
			found = found || strings.Contains(p, fmt.Sprintf("practice #%d ", id)) && strings.Contains(p, "changed outside cmord")
		}
		if !found {
			t.Errorf("verify does not name practice #%d changed outside cmord: %q", id, rep.Problems)
		}
	}
}

// countFallbacks counts ct's rows that chainRowReader reads column by column.
func countFallbacks(t *testing.T, tx *sql.Tx, r *chainRowReader, ct chainedTable) int {
	t.Helper()
	rows, err := tx.Query(r.query("t.id", `FROM main.`+ct.name+` t`, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if err := rows.Scan(r.dest...); err != nil {
			t.Fatal(err)
		}
		if !r.split(r.raw[1]) {
			n++
		}
	}
	return n
}

// BenchmarkChainRows reads 20,000 practices for their hash both ways (the seal's and
// verify's work per row): go test ./archive -run '^$' -bench ChainRows.
func BenchmarkChainRows(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	err := s.Write(ctx, func(tx *sql.Tx) error {
		now := TS(time.Now())
		for i := 0; i < 20000; i++ {
			_, err := tx.Exec(`INSERT INTO practices (case_key, role, sector, company_piva, cp_utente, point, customer_id, customer_name,
				switch_date, state, state_since, credit_cents, estimate_cents, cmor_cents, window_open, window_close, data, created_at, updated_at)
				VALUES (?, 'uscente', 'E', '01234567890', ?, ?, 'RSSMRA80A01H501U', 'Mario Rossi', '2026-10-01', 'READY', ?, ?, ?, ?, '2026-11-01', '2026-11-30', '', ?, ?)`,
				fmt.Sprintf("U|IT001E%08d|RSSMRA80A01H501U|2026-10-01", i), fmt.Sprintf("CPU%012d", i), fmt.Sprintf("IT001E%08d", i), now, 12345+i, 23456, 3456, now, now)
			if err != nil {
				return err
			}
			var id int64 // an INSERT through the view's trigger leaves no last rowid
			if err := tx.QueryRow(`SELECT max(id) FROM practice_rows`).Scan(&id); err != nil {
				return err
			}
			data := make([]byte, 200)
			for j := range data {
				data[j] = byte(i * j)
			}
			if _, err := tx.Exec(`INSERT INTO practice_data (id, data) VALUES (?, ?)`, id, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ct := chainedTables[1]
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	b.Run("columns", func(b *testing.B) {
		defer reportCPUPerRow(b, cpuTime(), 20000)
		for i := 0; i < b.N; i++ {
			var e []byte
			n := 0
			if err := oldSealRows(ctx, tx, ct, `SELECT t.id, t.*`+s.chainSide(ct)+` FROM main.practices t ORDER BY t.id`, &e, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("joined", func(b *testing.B) {
		defer reportCPUPerRow(b, cpuTime(), 20000)
		for i := 0; i < b.N; i++ {
			var e []byte
			n := 0
			r, err := s.newChainRowReader(ctx, tx, ct)
			if err != nil {
				b.Fatal(err)
			}
			if err := sealRows(ctx, tx, r, r.query("t.id", `FROM main.practices t`, `ORDER BY t.id`), &e, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// cpuTime is the process's user and system CPU time: on a shared machine, steadier
// than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPUPerRow(b *testing.B, start time.Duration, rows int) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N*rows), "cpu-ns/row")
}

// checkLastRecord requires the newest chain record's entries to be what oldSealRows
// computes for the rows it names, as they are now.
func checkLastRecord(t *testing.T, s *Store, step string) {
	t.Helper()
	ctx := context.Background()
	byTag := map[byte]chainedTable{}
	for _, ct := range chainedTables {
		byTag[ct.tag] = ct
	}
	var entries []byte
	if err := s.r.QueryRow(`SELECT entries FROM chain ORDER BY seq DESC LIMIT 1`).Scan(&entries); err != nil {
		t.Fatal(err)
	}
	// The ids the record names, by table, in its order.
	ids := map[byte][]int64{}
	var order []byte
	for b := entries; len(b) > 0; {
		tag := b[0]
		id, k := binary.Uvarint(b[1:])
		if k <= 0 || len(b) < 1+k+32 {
			t.Fatalf("%s: entries unreadable", step)
		}
		if len(ids[tag]) == 0 {
			order = append(order, tag)
		}
		ids[tag] = append(ids[tag], int64(id))
		b = b[1+k+32:]
	}
	var want []byte
	n := 0
	for _, tag := range order {
		ct := byTag[tag]
		js, _ := json.Marshal(ids[tag])
		q := `SELECT p.value, t.*` + s.chainSide(ct) + ` FROM json_each(?) p LEFT JOIN main.` + ct.name + ` t ON t.id = p.value ORDER BY p.key`
		if err := oldSealRows(ctx, s.r, ct, q, &want, &n, string(js)); err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 || !bytes.Equal(entries, want) {
		t.Fatalf("%s: the chain record's entries differ from the column-by-column read's (%d rows)", step, n)
	}
}

// TestChainRowsSchemaChange: a column added behind the writer's back (another
// connection, as the sqlite3 shell would) is in the next seal's hash, as the
// column-by-column read has it: the writer's cached readers follow the schema.
func TestChainRowsSchemaChange(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ingest(t, s, "folder:a", "one.csv", "1")
	update := func(reason string) {
		t.Helper()
		if err := s.Write(ctx, func(tx *sql.Tx) error {
			_, err := tx.Exec(`UPDATE files SET reason = ? WHERE id = 1`, reason)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	update("first")
	checkLastRecord(t, s, "before the new column")
	var before []byte
	s.r.QueryRow(`SELECT entries FROM chain ORDER BY seq DESC LIMIT 1`).Scan(&before)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`ALTER TABLE files ADD COLUMN extra TEXT NOT NULL DEFAULT 'added behind cmord''s back'`,
		`ALTER TABLE files ADD COLUMN extra_n INTEGER NOT NULL DEFAULT 7`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	update("first") // the same row as before but for the new columns
	checkLastRecord(t, s, "after the new columns")
	var after []byte
	s.r.QueryRow(`SELECT entries FROM chain ORDER BY seq DESC LIMIT 1`).Scan(&after)
	if bytes.Equal(before, after) {
		t.Fatal("the new columns are not in the row's hash")
	}
}
