package archive

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cmord/cmord/flows"
)

// PracticeFilter selects practices for `cmord practices`, exports and the digest.
// Zero fields do not filter. Every filter is an equality or a range that an index
// serves (see migrations 0005 and 0006), so a lookup by POD among a million practices
// stays in the milliseconds.
type PracticeFilter struct {
	Role      string   // uscente | entrante
	Sector    string   // E | G
	State     []string // any of these states
	Point     string   // POD or PDR
	Customer  string   // CF or P.IVA of the customer
	CPUtente  string   // our code: the practice's or that of any request filed for it
	CPGestore string   // the SII's code
	CauseCode string   // last SII cause code

	// Date ranges, both ends inclusive; a zero end is open.
	SwitchFrom, SwitchTo   flows.Date
	RequestFrom, RequestTo flows.Date
	AnswerFrom, AnswerTo   flows.Date

	// Range on the CMOR amount (cmor_cents), both ends inclusive; nil is open.
	AmountMin, AmountMax *flows.Amount

	// HasOpenException: nil does not filter; true keeps practices with at least one
	// unresolved exception, false those with none.
	HasOpenException *bool

	// WithoutCase leaves each practice's case unread (Data "{}"): the exports with
	// no column for it (CSV, XLSX) skip a lookup and 1.5 KB per practice.
	WithoutCase bool

	Limit  int    // 0: all
	Offset int    // rows to skip (with Limit, for paging)
	Order  string // one of PracticeOrders; "" = "id"
}

// PracticeOrders are the accepted values of PracticeFilter.Order; a leading "-"
// reverses the order (e.g. "-switch": latest switch first). Ties break on id.
var PracticeOrders = map[string]string{
	"id":      "id",
	"switch":  "switch_date",
	"request": "request_date",
	"answer":  "answer_date",
	"amount":  "cmor_cents",
	"state":   "state",
	"updated": "updated_at",
}

// where builds the WHERE clause (with a leading " WHERE ", or "") and its arguments.
func (f PracticeFilter) where() (string, []any) {
	var conds []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			conds, args = append(conds, col+" = ?"), append(args, v)
		}
	}
	eq("role", f.Role)
	eq("sector", f.Sector)
	eq("point", f.Point)
	if f.Customer != "" {
		// By the customer lookup (migration 0042), not a column index.
		conds, args = append(conds, customerLookup), append(args, f.Customer, f.Customer)
	}
	eq("cp_gestore", f.CPGestore)
	if f.CauseCode != "" {
		// The literal (<> '') lets SQLite use the partial index practices_cause.
		conds, args = append(conds, "cause_code = ? AND cause_code <> ''"), append(args, f.CauseCode)
	}
	if f.CPUtente != "" {
		// A follow-up request (annulment, suspension...) has its own CP_UTENTE: a person
		// quoting it means the practice it belongs to.
		conds = append(conds, "id IN (SELECT id FROM practice_rows WHERE cp_utente = ? UNION ALL SELECT practice_id FROM request_rows WHERE cp_utente = ?)")
		args = append(args, f.CPUtente, f.CPUtente)
	}
	var states []string
	for _, s := range f.State {
		if s = strings.TrimSpace(s); s != "" {
			states = append(states, s)
		}
	}
	if len(states) > 0 {
		// The state is in practice_state, the point, customer and codes in
		// practice_rows (migration 0035): without statistics SQLite weighs an
		// equality on either side alike, and would walk every practice in a state
		// to find one point's. Beside one of those, the state is only a check (+).
		col := "state"
		if f.Point != "" || f.Customer != "" || f.CPGestore != "" || f.CPUtente != "" {
			col = "+state"
		}
		conds = append(conds, col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(states)), ", ")+")")
		for _, s := range states {
			args = append(args, s)
		}
	}
	// Dates are stored as ISO text, so text comparison is date comparison; an empty
	// (unknown) date never falls inside a range. The literal (<> '') also lets SQLite
	// use the partial indexes on request_date and answer_date (migration 0013).
	dateRange := func(col string, from, to flows.Date) {
		if !from.IsZero() {
			conds, args = append(conds, col+" >= ?"), append(args, from.ISO())
		}
		if !to.IsZero() {
			conds, args = append(conds, col+" <= ?"), append(args, to.ISO())
		}
		if !from.IsZero() || !to.IsZero() {
			conds = append(conds, col+" <> ''")
		}
	}
	dateRange("switch_date", f.SwitchFrom, f.SwitchTo)
	dateRange("request_date", f.RequestFrom, f.RequestTo)
	dateRange("answer_date", f.AnswerFrom, f.AnswerTo)
	if f.AmountMin != nil || f.AmountMax != nil {
		// By the amount lookup (migration 0042), not a column index; an open end is
		// the widest value.
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if f.AmountMin != nil {
			lo = f.AmountMin.Cents()
		}
		if f.AmountMax != nil {
			hi = f.AmountMax.Cents()
		}
		conds, args = append(conds, amountLookup), append(args, lo, hi, lo, hi)
	}
	if f.HasOpenException != nil {
		// practice_id <> 0 lets SQLite use the partial index exceptions_practice.
		exists := `EXISTS (SELECT 1 FROM exceptions e WHERE e.practice_id = practices.id AND e.practice_id <> 0 AND e.resolved_at IS NULL)`
		if !*f.HasOpenException {
			exists = "NOT " + exists
		}
		conds = append(conds, exists)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// orderBy returns the ORDER BY clause for f.Order.
func (f PracticeFilter) orderBy() (string, error) {
	key, desc := f.Order, false
	if strings.HasPrefix(key, "-") {
		key, desc = key[1:], true
	}
	if key == "" {
		key = "id"
	}
	col, ok := PracticeOrders[key]
	if !ok {
		return "", fmt.Errorf("archive: unknown practice order %q (one of id, switch, request, answer, amount, state, updated)", f.Order)
	}
	dir := ""
	if desc {
		dir = " DESC"
	}
	if col == "id" {
		return " ORDER BY id" + dir, nil
	}
	return " ORDER BY " + col + dir + ", id" + dir, nil
}

// practiceQuery is the full SELECT for f with its arguments.
func (f PracticeFilter) practiceQuery() (string, []any, error) {
	if f.WithoutCase {
		return f.queryFrom(practiceSelectWithoutCase)
	}
	return f.queryFrom(practiceSelect)
}

// queryFrom is sel (a SELECT ... FROM practices) with f's WHERE, ORDER BY, LIMIT and
// OFFSET, and its arguments.
func (f PracticeFilter) queryFrom(sel string) (string, []any, error) {
	where, args := f.where()
	order, err := f.orderBy()
	if err != nil {
		return "", nil, err
	}
	q := sel + where + order
	switch {
	case f.Limit > 0:
		q += " LIMIT ? OFFSET ?"
		args = append(args, f.Limit, f.Offset)
	case f.Offset > 0:
		q += " LIMIT -1 OFFSET ?"
		args = append(args, f.Offset)
	}
	return q, args, nil
}

// QueryPractices returns the practices matching f, in f.Order.
func (s *Store) QueryPractices(ctx context.Context, f PracticeFilter) ([]Practice, error) {
	var out []Practice
	err := s.EachPractice(ctx, f, func(p Practice) error {
		out = append(out, p)
		return nil
	})
	return out, err
}

// EachPractice calls fn for each practice matching f, in f.Order, streaming from one
// read transaction: memory stays constant however many rows match (exports of a
// million practices). An error from fn stops the iteration and is returned as is.
// fn may write to the store (the writer is another connection), but the rows it is
// given are the snapshot taken when the query started.
func (s *Store) EachPractice(ctx context.Context, f PracticeFilter, fn func(Practice) error) error {
	q, args, err := f.practiceQuery()
	if err != nil {
		return err
	}
	// One read transaction: a case's dictionary (scanPractice) is read on the
	// connection the rows hold, not on a second one of the pool.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("archive: query practices: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("archive: query practices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := s.scanPractice(ctx, tx, rows)
		if err != nil {
			return fmt.Errorf("archive: read practice: %w", err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("archive: query practices: %w", err)
	}
	return nil
}

// PracticeTextColumns are the columns of practices that EachPracticeText hands out,
// in this order: what the CSV export writes, as stored (amounts in cents, dates ISO,
// instants as TS writes them), no case.
var PracticeTextColumns = []string{"id", "cp_utente", "cp_gestore", "role", "sector", "point", "customer_id",
	"customer_name", "switch_date", "state", "state_since", "credit_cents", "estimate_cents", "previous_cents",
	"cmor_cents", "charged_cents", "collected_cents", "cause_code", "motivation", "window_open", "window_close",
	"suspension_term", "request_date", "answer_date"}

// practiceTextSelect reads PracticeTextColumns one by one, as text (a NULL as ""): the
// way of EachPracticeText for a row the joined form cannot carry.
var practiceTextSelect = func() string {
	cols := make([]string, len(PracticeTextColumns))
	for i, c := range PracticeTextColumns {
		cols[i] = "coalesce(" + c + ", '')"
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM practices"
}()

// practiceJoinedSelect reads PracticeTextColumns as one text per practice, joined by a
// NUL byte. A column handed out by the driver costs far more than SQLite's own join
// (a type, a length and a copy, each through the library's mutex, then database/sql's
// conversion): one column instead of 24 is what brings the CSV export of a million
// practices near sqlite3's own (docs/benchmarks-uscente.md, Export).
var practiceJoinedSelect = func() string {
	cols := make([]string, len(PracticeTextColumns))
	for i, c := range PracticeTextColumns {
		cols[i] = c
		if c == "cp_utente" || c == "cp_gestore" {
			// concat_ws skips a NULL: coalesce keeps the columns in their places (in
			// another column, NOT NULL, a NULL would be read again by practiceTextByID).
			cols[i] = "coalesce(" + c + ", '')"
		}
	}
	return "SELECT concat_ws(char(0), " + strings.Join(cols, ", ") + ") FROM practices"
}()

// EachPracticeText calls fn with the stored text of PracticeTextColumns (integers in
// decimal, NULL as "") of each practice matching f, in f.Order, streaming from one
// read transaction like EachPractice. cols and its bytes are valid only during the
// call: fn copies what it keeps. An error from fn stops the iteration and is returned
// as is.
//
// The columns come joined by NUL bytes (practiceJoinedSelect); a practice whose text
// itself holds a NUL byte does not split into as many columns, and is read again,
// column by column, in the same transaction (so from the same snapshot).
func (s *Store) EachPracticeText(ctx context.Context, f PracticeFilter, fn func(cols [][]byte) error) error {
	q, args, err := f.queryFrom(practiceJoinedSelect)
	if err != nil {
		return err
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("archive: query practices: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("archive: query practices: %w", err)
	}
	defer rows.Close()
	var joined sql.RawBytes
	cols := make([][]byte, len(PracticeTextColumns))
	var single []sql.RawBytes // the columns of a row read one by one
	for rows.Next() {
		if err := rows.Scan(&joined); err != nil {
			return fmt.Errorf("archive: read practice: %w", err)
		}
		if !splitNUL(joined, cols) {
			// The id (the first column, an integer) has no NUL in it.
			idText, _, _ := bytes.Cut(joined, []byte{0})
			id, err := strconv.ParseInt(string(idText), 10, 64)
			if err != nil {
				return fmt.Errorf("archive: read practice: id %q: %w", idText, err)
			}
			if single, err = practiceTextByID(ctx, tx, id, single); err != nil {
				return err
			}
			for i := range cols {
				cols[i] = single[i]
			}
		}
		if err := fn(cols); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("archive: query practices: %w", err)
	}
	return nil
}

// splitNUL splits b at its NUL bytes into cols, and reports whether there were
// exactly len(cols) pieces.
func splitNUL(b []byte, cols [][]byte) bool {
	for i := range len(cols) - 1 {
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			return false
		}
		cols[i], b = b[:j:j], b[j+1:]
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	cols[len(cols)-1] = b
	return true
}

// practiceTextByID reads PracticeTextColumns of practice id column by column, into
// buf's slices (reused; the result stays valid until the next call).
func practiceTextByID(ctx context.Context, tx *sql.Tx, id int64, buf []sql.RawBytes) ([]sql.RawBytes, error) {
	rows, err := tx.QueryContext(ctx, practiceTextSelect+" WHERE id = ?", id)
	if err != nil {
		return nil, fmt.Errorf("archive: read practice #%d: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive: read practice #%d: %w", id, err)
		}
		return nil, fmt.Errorf("archive: read practice #%d: %w", id, ErrNotFound)
	}
	raw := make([]sql.RawBytes, len(PracticeTextColumns))
	dest := make([]any, len(raw))
	for i := range raw {
		dest[i] = &raw[i]
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, fmt.Errorf("archive: read practice #%d: %w", id, err)
	}
	// RawBytes point into the driver's row until the next Next or Close: copy.
	buf = buf[:0]
	for _, r := range raw {
		buf = append(buf, bytes.Clone(r))
	}
	return buf, rows.Close()
}

// CountPractices counts the practices matching f (Limit, Offset and Order ignored).
func (s *Store) CountPractices(ctx context.Context, f PracticeFilter) (int, error) {
	if _, err := f.orderBy(); err != nil {
		return 0, err
	}
	where, args := f.where()
	var n int
	// Counted from a subquery SQLite does not fold into the count (its LIMIT): a
	// plain SELECT drops the view's join to practice_rows when nothing of it is read
	// (the state filters, or none), an aggregate does not, and would read every
	// practice's row to count them (3.7 s of an export of a million).
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM practices`+where+` LIMIT -1)`, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("archive: count practices: %w", err)
	}
	return n, nil
}

// ExplainPractices returns SQLite's query plan for f, one line per step, so that
// tests (and a curious operator) can see which index a filter uses.
func (s *Store) ExplainPractices(ctx context.Context, f PracticeFilter) ([]string, error) {
	q, args, err := f.practiceQuery()
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return nil, err
		}
		plan = append(plan, detail)
	}
	return plan, rows.Err()
}

// BulkLoadPractices inserts n practices made by gen in one transaction through one
// prepared statement, without history, file links or events. It is meant for load
// tests, benchmarks and demos, where a million practices must exist in seconds; the
// daemon creates practices with CreatePractice, which records their history.
func (s *Store) BulkLoadPractices(ctx context.Context, n int, gen func(i int) Practice) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, practiceRowInsert+valuesOf(practiceRowCols))
		if err != nil {
			return fmt.Errorf("archive: bulk load: %w", err)
		}
		defer st.Close()
		stState, err := tx.PrepareContext(ctx, practiceStateInsert+valuesOf(practiceStateCols))
		if err != nil {
			return fmt.Errorf("archive: bulk load: %w", err)
		}
		defer stState.Close()
		for i := 0; i < n; i++ {
			p := gen(i)
			if len(p.Data) == 0 {
				p.Data = []byte("{}")
			}
			ts := TS(p.CreatedAt)
			r, err := st.ExecContext(ctx, practiceRowArgs(nil, nil, &p, ts)...)
			if err != nil {
				return fmt.Errorf("archive: bulk load practice %d: %w", i, err)
			}
			id, err := r.LastInsertId()
			if err != nil {
				return fmt.Errorf("archive: bulk load practice %d: %w", i, err)
			}
			if _, err := stState.ExecContext(ctx, practiceStateArgs(nil, id, &p, ts, s.updatedAtSince(ts))...); err != nil {
				return fmt.Errorf("archive: bulk load practice %d: %w", i, err)
			}
			if hasCase(p.Data) {
				if _, err := tx.ExecContext(ctx, `INSERT INTO practice_data (id, data) VALUES (?, ?)`, id, caseValue(p.Data)); err != nil {
					return fmt.Errorf("archive: bulk load practice %d: %w", i, err)
				}
			}
		}
		return nil
	})
}

// syntheticStates is the cycle of states SyntheticPractice goes through.
var syntheticStates = []string{"ready", "sent", "admitted", "accepted", "rejected", "closed"}

// SyntheticPractice returns the deterministic made-up practice number i (from 0), for
// load tests and benchmarks with BulkLoadPractices: about 2.5 practices per point
// over a million, four in five electricity, dates over two years, amounts up to
// 5,000 euros, a few names that start with a formula character.
func SyntheticPractice(i int) Practice {
	p := Practice{
		Role:        "uscente",
		Sector:      "E",
		CompanyPIVA: "00488410010",
		Point:       fmt.Sprintf("IT001E%08d", i%400000),
		CustomerID:  fmt.Sprintf("%011d", 10000000000+int64(i%300000)*7),
		State:       syntheticStates[i%len(syntheticStates)],
		SwitchDate:  flows.D(2024, 1, 1).AddDays(i % 700),
		CMOR:        flows.Amount(int64(i) * 7919 % 500000),
	}
	if i%5 == 4 {
		p.Sector, p.Point = "G", fmt.Sprintf("%014d", 88000000000000+int64(i%400000))
	}
	if i%10 == 9 {
		p.Role = "entrante"
		p.CPGestore = fmt.Sprintf("G%014d", i)
		p.Charged, p.Collected = p.CMOR, p.CMOR/2
		p.SuspensionTerm = p.SwitchDate.AddDays(90)
	} else {
		p.CPUtente = fmt.Sprintf("%s%07d", p.Sector, i)
		p.Credit, p.Estimate = p.CMOR+1234, p.CMOR*2
		p.WindowOpen, p.WindowClose = p.SwitchDate.AddMonths(2), p.SwitchDate.AddMonths(6)
	}
	p.CaseKey = fmt.Sprintf("S|%d", i)
	p.CustomerName = fmt.Sprintf("Cliente %d S.r.l.", i)
	if i%1000 == 0 {
		p.CustomerName = fmt.Sprintf("=Cliente %d", i)
	}
	if p.State != "ready" {
		p.RequestDate = p.SwitchDate.AddMonths(3)
	}
	if p.State == "accepted" || p.State == "rejected" || p.State == "closed" {
		p.AnswerDate = p.RequestDate.AddDays(5)
	}
	if p.State == "rejected" {
		p.CauseCode, p.Motivation = fmt.Sprint(1+i%9), "Richiesta non ammissibile"
	}
	p.CreatedAt = p.SwitchDate.Time()
	return p
}

// OpenExceptionCounts returns, per practice id, how many unresolved exceptions concern
// it. Open exceptions are few however many practices there are, so exports join this
// map in memory instead of running one query per row.
func (s *Store) OpenExceptionCounts(ctx context.Context) (map[int64]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT practice_id, count(*) FROM exceptions
		WHERE practice_id <> 0 AND resolved_at IS NULL GROUP BY practice_id`)
	if err != nil {
		return nil, fmt.Errorf("archive: open exceptions per practice: %w", err)
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}
