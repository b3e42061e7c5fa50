package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cmord/cmord/flows"
)

// PracticeStmts are the practice statements of a bulk job (an uscente.morosi extract of
// a million rows, a REQ build of thousands of practices), prepared once on the job's
// transaction. They do what CreatePractice, Transition, CreateRequest and
// MarkRequestSent do, statement for statement, without re-preparing per row.
type PracticeStmts struct {
	s                                         *Store
	tx                                        *sql.Tx
	byKey, byID, insPractice, savePractice    *sql.Stmt
	latestByKey                               *sql.Stmt
	insHistory, insLink, insRequest, codeUsed *sql.Stmt
	setState, markSent, setRequest, readSeq   *sql.Stmt
	setRequestDate                            *sql.Stmt
	insPracticeState, savePracticeState       *sql.Stmt
	insRequestState, setRequestData           *sql.Stmt
	seqs                                      map[string]int64 // sequence name → next value, written back by Close
	seqDirty                                  map[string]bool
	now                                       func() time.Time
	bulk                                      map[string]*sql.Stmt // multi-row statements by text, prepared on first use

	// Practices created by QueueCreate and not yet inserted: Flush inserts them, their
	// history, links and requests with a few multi-row statements. Their IDs are drawn
	// here, after the largest in the table, which holds because the job's transaction is
	// the only writer and every other statement of these runs Flush first.
	queue                     []queuedPractice
	queuedKeys, queuedCodes   map[string]struct{}
	nextPracticeID, nextReqID int64

	// codesChecked: per sequence, the values whose codes were looked up together (a
	// query per code was 4 % of a million-row extract) and the ones found issued.
	codesChecked map[string]*codeWindow

	// deflater: the transaction's case dictionary, written with its first case
	// (caseValueIn): every case it writes is stored deflated against it.
	deflater *caseDeflater

	// deferLookups: Flush lists its practices in practice_lookup_pending (DeferLookups).
	deferLookups bool

	// fileKinds: the kind of each file a creation row of Flush named (historyAll).
	fileKinds map[int64]string
}

// codeWindow is a run of sequence values [from, to) whose codes were checked at once,
// and those of its codes found issued.
type codeWindow struct {
	from, to int64
	used     map[string]bool
}

// codeWindowSize is how many codes NewCode looks up in one query.
const codeWindowSize = 256

type queuedPractice struct {
	pr  *Practice
	h   HistoryEntry
	req *Request
	pre *PredeflatedCase
}

// PreparePractices prepares the statements on tx. Close it before the transaction
// commits: Close also writes back the sequences advanced in memory.
func (s *Store) PreparePractices(ctx context.Context, tx *sql.Tx) (*PracticeStmts, error) {
	p := &PracticeStmts{s: s, tx: tx, seqs: map[string]int64{}, seqDirty: map[string]bool{}, now: time.Now}
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = tx.PrepareContext(ctx, q)
		return st
	}
	p.byKey = prep(practiceSelect + ` WHERE case_key = ?`)
	// The case key itself or a refiling of it (key#2, key#3...), newest first; the
	// range keeps the lookup on the case_key index.
	p.latestByKey = prep(practiceSelect + ` WHERE case_key = ?1 OR (case_key > ?1 || '#' AND case_key < ?1 || '$') ORDER BY id DESC LIMIT 1`)
	p.byID = prep(practiceSelect + ` WHERE id = ?`)
	p.insPractice = prep(practiceRowInsert + valuesOf(practiceRowCols))
	p.insPracticeState = prep(practiceStateInsert + valuesOf(practiceStateCols))
	p.savePractice = prep(practiceRowSave)
	p.savePracticeState = prep(practiceStateSave)
	p.insHistory = prep(`INSERT INTO practice_history (practice_id, at, from_state, to_state, flow, file_id, line, cause_code, note, link)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	p.insLink = prep(`INSERT OR IGNORE INTO practice_files (practice_id, file_id, relation, line) VALUES (?, ?, ?, ?)`)
	p.insRequest = prep(requestRowInsert + valuesOf(requestRowCols))
	p.insRequestState = prep(requestStateInsert + valuesOf(requestStateCols))
	p.codeUsed = prep(`SELECT EXISTS (SELECT 1 FROM practice_rows WHERE cp_utente = ?1) OR EXISTS (SELECT 1 FROM request_rows WHERE cp_utente = ?1)`)
	p.setState = prep(practiceStateSet)
	p.markSent = prep(requestSent)
	p.setRequest = prep(requestStateSet)
	p.setRequestData = prep(requestDataSet)
	p.readSeq = prep(`SELECT next FROM sequences WHERE name = ?`)
	p.setRequestDate = prep(practiceStateSave)
	if err != nil {
		p.Close(ctx)
		return nil, fmt.Errorf("archive: prepare practice statements: %w", err)
	}
	return p, nil
}

// Tx returns the transaction the statements run in.
func (p *PracticeStmts) Tx() *sql.Tx { return p.tx }

// SetClock sets the time recorded in history and timestamps (tests).
func (p *PracticeStmts) SetClock(now func() time.Time) { p.now = now }

// Close writes back the sequences and closes the statements. It returns the first
// error of writing the sequences (the caller must then roll back).
func (p *PracticeStmts) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	for name := range p.seqDirty {
		if err != nil {
			break
		}
		if _, e := p.tx.ExecContext(ctx, `INSERT INTO sequences (name, next) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET next = excluded.next`, name, p.seqs[name]); e != nil {
			err = fmt.Errorf("archive: sequence %s: %w", name, e)
		}
	}
	p.seqDirty = map[string]bool{}
	for _, st := range p.bulk {
		st.Close()
	}
	p.bulk = nil
	for _, st := range []*sql.Stmt{p.byKey, p.latestByKey, p.byID, p.insPractice, p.savePractice, p.insHistory, p.insLink, p.insRequest,
		p.codeUsed, p.setState, p.markSent, p.setRequest, p.readSeq, p.setRequestDate, p.insPracticeState, p.savePracticeState, p.insRequestState, p.setRequestData} {
		if st != nil {
			st.Close()
		}
	}
	return err
}

// NextSequence draws the next value of a sequence. Values are advanced in memory and
// written back by Close in the same transaction, so a rolled-back job consumes none.
func (p *PracticeStmts) NextSequence(ctx context.Context, name string) (int64, error) {
	next, ok := p.seqs[name]
	if !ok {
		err := p.readSeq.QueryRowContext(ctx, name).Scan(&next)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			next = 1
		case err != nil:
			return 0, fmt.Errorf("archive: sequence %s: %w", name, err)
		}
	}
	p.seqs[name], p.seqDirty[name] = next+1, true
	return next, nil
}

// CodeUsed reports whether a practice or request code was ever issued.
func (p *PracticeStmts) CodeUsed(ctx context.Context, code string) (bool, error) {
	if _, ok := p.queuedCodes[code]; ok {
		return true, nil
	}
	var used bool
	err := p.codeUsed.QueryRowContext(ctx, code).Scan(&used)
	return used, err
}

// NewCode draws codes from the sequence until one was never issued (a template changed
// over the years could otherwise spell an old code again) and returns it.
func (p *PracticeStmts) NewCode(ctx context.Context, seqName string, render func(seq int64) (string, error)) (string, error) {
	for tries := 0; tries < 1000; tries++ {
		seq, err := p.NextSequence(ctx, seqName)
		if err != nil {
			return "", err
		}
		code, err := render(seq)
		if err != nil {
			return "", err
		}
		used, err := p.codeUsedAhead(ctx, seqName, seq, code, render)
		if err != nil {
			return "", err
		}
		if !used {
			return code, nil
		}
	}
	return "", fmt.Errorf("archive: sequence %s: 1000 codes in a row were already issued; check the practice code template", seqName)
}

// codeUsedAhead is CodeUsed for the code of sequence value seq, looking up the codes
// of the next codeWindowSize values in the same query. The answers hold for the rest
// of the transaction: only this job issues codes in it, and the codes it issues are
// in queuedCodes or inserted at once.
func (p *PracticeStmts) codeUsedAhead(ctx context.Context, seqName string, seq int64, code string, render func(seq int64) (string, error)) (bool, error) {
	if _, ok := p.queuedCodes[code]; ok {
		return true, nil
	}
	w := p.codesChecked[seqName]
	if w == nil || seq < w.from || seq >= w.to {
		codes := make([]string, 0, codeWindowSize)
		for v := seq; v < seq+codeWindowSize; v++ {
			c, err := render(v)
			if err != nil {
				break // a value the template cannot spell: checked alone when reached
			}
			codes = append(codes, c)
		}
		if len(codes) == 0 {
			return p.CodeUsed(ctx, code)
		}
		w = &codeWindow{from: seq, to: seq + int64(len(codes)), used: map[string]bool{}}
		list := "?" + strings.Repeat(",?", len(codes)-1)
		args := make([]any, len(codes))
		for i, c := range codes {
			args[i] = c
		}
		rows, err := p.tx.QueryContext(ctx, `SELECT cp_utente FROM practice_rows WHERE cp_utente IN (`+list+`)
			UNION SELECT cp_utente FROM request_rows WHERE cp_utente IN (`+list+`)`, append(args, args...)...)
		if err != nil {
			return false, fmt.Errorf("archive: codes in use: %w", err)
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return false, err
			}
			w.used[c] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, err
		}
		if p.codesChecked == nil {
			p.codesChecked = map[string]*codeWindow{}
		}
		p.codesChecked[seqName] = w
	}
	return w.used[code], nil
}

// ByKey returns the practice with that case key (ErrNotFound wrapped if none).
func (p *PracticeStmts) ByKey(ctx context.Context, key string) (Practice, error) {
	if _, ok := p.queuedKeys[key]; ok {
		if err := p.Flush(ctx); err != nil {
			return Practice{}, err
		}
	}
	pr, err := p.s.scanPractice(ctx, p.tx, p.byKey.QueryRowContext(ctx, key))
	if errors.Is(err, sql.ErrNoRows) {
		return pr, fmt.Errorf("practice %s: %w", key, ErrNotFound)
	}
	return pr, err
}

// LatestByKey returns the newest practice of a case: the one with that case key or,
// when the case was filed again after the SII refused it, its latest refiling
// (RefileKey). ErrNotFound wrapped if none.
func (p *PracticeStmts) LatestByKey(ctx context.Context, key string) (Practice, error) {
	if err := p.Flush(ctx); err != nil {
		return Practice{}, err
	}
	pr, err := p.s.scanPractice(ctx, p.tx, p.latestByKey.QueryRowContext(ctx, key))
	if errors.Is(err, sql.ErrNoRows) {
		return pr, fmt.Errorf("practice %s: %w", key, ErrNotFound)
	}
	return pr, err
}

// RefileKey is the case key of the next filing of a case whose practice has key:
// the case key, "#", and the filing's number (2 for the first refiling).
func RefileKey(key string) string {
	base, n := key, 1
	if i := strings.LastIndexByte(key, '#'); i >= 0 {
		if v, err := strconv.Atoi(key[i+1:]); err == nil && v > 1 {
			base, n = key[:i], v
		}
	}
	return base + "#" + strconv.Itoa(n+1)
}

// ByID returns one practice.
func (p *PracticeStmts) ByID(ctx context.Context, id int64) (Practice, error) {
	if err := p.Flush(ctx); err != nil {
		return Practice{}, err
	}
	pr, err := p.s.scanPractice(ctx, p.tx, p.byID.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return pr, fmt.Errorf("practice #%d: %w", id, ErrNotFound)
	}
	return pr, err
}

// Create inserts a practice with its creation history and input link (as CreatePractice).
func (p *PracticeStmts) Create(ctx context.Context, pr *Practice, h HistoryEntry) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	now := h.At
	if now.IsZero() {
		now = p.now()
	}
	if len(pr.Data) == 0 {
		pr.Data = json.RawMessage("{}")
	}
	r, err := p.insPractice.ExecContext(ctx, practiceRowArgs(nil, nil, pr, TS(now))...)
	if err != nil {
		return fmt.Errorf("archive: create practice %s: %w", pr.CaseKey, err)
	}
	pr.ID, _ = r.LastInsertId()
	if _, err := p.insPracticeState.ExecContext(ctx, practiceStateArgs(nil, pr.ID, pr, TS(now), p.s.updatedAtSince(TS(now)))...); err != nil {
		return fmt.Errorf("archive: create practice %s: %w", pr.CaseKey, err)
	}
	if err := putPracticeData(ctx, p.tx, pr.ID, pr.Data, false); err != nil {
		return err
	}
	pr.StateSince, pr.CreatedAt, pr.UpdatedAt = now, now, now
	h.PracticeID, h.From, h.To, h.At = pr.ID, "", pr.State, now
	if err := p.History(ctx, h); err != nil {
		return err
	}
	if h.FileID != 0 && h.Link == "" { // else the row stands for the link
		return p.Link(ctx, pr.ID, h.FileID, "input", h.Line)
	}
	return nil
}

// Save writes the mutable columns of a practice (as SavePractice).
func (p *PracticeStmts) Save(ctx context.Context, pr *Practice) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	pr.UpdatedAt = p.now()
	if len(pr.Data) == 0 {
		pr.Data = json.RawMessage("{}")
	}
	if _, err := p.savePractice.ExecContext(ctx, practiceRowSaveArgs(pr)...); err != nil {
		return fmt.Errorf("archive: save practice %d: %w", pr.ID, err)
	}
	if _, err := p.savePracticeState.ExecContext(ctx, dateText(pr.RequestDate), TS(pr.UpdatedAt), pr.ID); err != nil {
		return fmt.Errorf("archive: save practice %d: %w", pr.ID, err)
	}
	return p.s.saveCase(ctx, p.tx, pr)
}

// Transition moves a practice to state to with a history entry and a file link (as
// Store.Transition).
func (p *PracticeStmts) Transition(ctx context.Context, pr *Practice, to, relation string, h HistoryEntry) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	now := h.At
	if now.IsZero() {
		now = p.now()
	}
	if _, err := p.setState.ExecContext(ctx, to, TS(now), p.s.updatedAtSince(TS(now)), pr.ID); err != nil {
		return fmt.Errorf("archive: transition practice %d: %w", pr.ID, err)
	}
	h.PracticeID, h.From, h.To, h.At = pr.ID, pr.State, to, now
	pr.State, pr.StateSince = to, now
	if err := p.History(ctx, h); err != nil {
		return err
	}
	if h.FileID != 0 && relation != "" && h.Link == "" { // else the row stands for the link
		return p.Link(ctx, pr.ID, h.FileID, relation, h.Line)
	}
	return nil
}

// History appends a history entry as given (From/To included).
func (p *PracticeStmts) History(ctx context.Context, h HistoryEntry) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	if h.At.IsZero() {
		h.At = p.now()
	}
	link, err := linkCode(&h)
	if err != nil {
		return err
	}
	_, err = p.insHistory.ExecContext(ctx, h.PracticeID, TS(h.At), h.From, h.To, h.Flow, h.FileID, h.Line, h.CauseCode, h.Note, link)
	if err != nil {
		return fmt.Errorf("archive: practice history: %w", err)
	}
	return nil
}

// Link records that a file touched a practice.
func (p *PracticeStmts) Link(ctx context.Context, practiceID, fileID int64, relation string, line int) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	_, err := p.insLink.ExecContext(ctx, practiceID, fileID, relation, line)
	return err
}

// CreateRequest records a request (as Store.CreateRequest).
func (p *PracticeStmts) CreateRequest(ctx context.Context, r *Request) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	if r.State == "" {
		r.State = "ready"
	}
	now := p.now()
	res, err := p.insRequest.ExecContext(ctx, nil, r.PracticeID, r.CPUtente, encodeRequestData(r.Data), "", TS(now))
	if err != nil {
		return fmt.Errorf("archive: request %s %s: %w", r.Flow, r.CPUtente, err)
	}
	r.ID, _ = res.LastInsertId()
	if _, err := p.insRequestState.ExecContext(ctx, r.ID, r.Flow, r.State); err != nil {
		return fmt.Errorf("archive: request %s %s: %w", r.Flow, r.CPUtente, err)
	}
	if err := putRequestPayload(ctx, p.tx, r.ID, payloadValue(r.Payload), false); err != nil {
		return err
	}
	r.CreatedAt = now
	return nil
}

// SetRequest changes a request's state and data (a ready request refreshed by a new
// extract, or cancelled).
func (p *PracticeStmts) SetRequest(ctx context.Context, id int64, state string, data map[string]string) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	if _, err := p.setRequest.ExecContext(ctx, state, id); err != nil {
		return err
	}
	_, err := p.setRequestData.ExecContext(ctx, encodeRequestData(data), id)
	return err
}

// SetRequestDate records the day a practice's request was sent.
func (p *PracticeStmts) SetRequestDate(ctx context.Context, pr *Practice, day flows.Date) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	pr.RequestDate, pr.UpdatedAt = day, p.now()
	_, err := p.setRequestDate.ExecContext(ctx, dateText(day), TS(pr.UpdatedAt), pr.ID)
	return err
}

// SetRequestPayload replaces what a ready request becomes in its file.
func (p *PracticeStmts) SetRequestPayload(ctx context.Context, id int64, payload *RequestPayload) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	return putRequestPayload(ctx, p.tx, id, payloadValue(payload), true)
}

// MarkSent records that a request went into a built file.
func (p *PracticeStmts) MarkSent(ctx context.Context, id, fileID int64, at time.Time) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	_, err := p.markSent.ExecContext(ctx, fileID, TS(at), id)
	return err
}

// UscentePracticesDue lists uscente practices in state whose window date column
// ("window_open" or "window_close") is on or before day, oldest first, at most limit.
func (s *Store) UscentePracticesDue(ctx context.Context, tx *sql.Tx, state, column string, day flows.Date, limit int) ([]Practice, error) {
	if column != "window_open" && column != "window_close" {
		return nil, fmt.Errorf("archive: column %q", column)
	}
	q := practiceSelect + ` WHERE role = 'uscente' AND state = ? AND ` + column + ` <> '' AND ` + column + ` <= ? ORDER BY id`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.q(tx).QueryContext(ctx, q, state, day.ISO())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Practice
	for rows.Next() {
		p, err := scanPracticeStored(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for i := range out {
		s.caseForReaders(ctx, s.q(tx), &out[i])
	}
	return out, rows.Err()
}

// ReadyRequestsAfter lists ready requests of a flow with id > after, oldest first.
func (s *Store) ReadyRequestsAfter(ctx context.Context, tx *sql.Tx, flow string, after int64, limit int) ([]Request, error) {
	return s.requestList(ctx, tx, requestSelect+` WHERE flow = ? AND state = 'ready' AND id > ? ORDER BY id LIMIT ?`, flow, after, limit)
}

// UscentePracticeByPoint returns the most recent uscente practice of a point and
// customer.
func (s *Store) UscentePracticeByPoint(ctx context.Context, tx *sql.Tx, point, customer string) (Practice, error) {
	p, err := s.scanPractice(ctx, s.q(tx), s.q(tx).QueryRowContext(ctx, practiceSelect+` WHERE role = 'uscente' AND point = ? AND customer_id = ? ORDER BY id DESC LIMIT 1`, point, customer))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("practice of %s/%s: %w", point, customer, ErrNotFound)
	}
	return p, err
}

// ---- set-based forms: one statement for many rows ----

// bulkRows is how many rows one multi-row INSERT carries: SQLite's cost is per
// statement as much as per row (each opens its cursors on the table and every index
// again). 256 rows of the widest table (26 columns, 6,656 values) stay far below its
// limit of bound parameters (32,766). 64 before issue 16's seventh round: 256 took
// 18 % off the handler's writer CPU at 300,000 rows (sqlite3_step 14 % less, the
// argument checks of database/sql fewer), for up to 9 MiB more peak memory; 1,024
// was no better and took 15–19 MiB more (docs/benchmarks-uscente.md, "Seventh round").
const bulkRows = 256

// bulkStmt returns the statement for text, prepared once per job.
func (p *PracticeStmts) bulkStmt(ctx context.Context, text string) (*sql.Stmt, error) {
	if st, ok := p.bulk[text]; ok {
		return st, nil
	}
	st, err := p.tx.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	if p.bulk == nil {
		p.bulk = map[string]*sql.Stmt{}
	}
	p.bulk[text] = st
	return st, nil
}

// insertRows runs head + " VALUES (?, ...), ..." over args, cols values per row, in
// statements of at most bulkRows rows, in order.
func (p *PracticeStmts) insertRows(ctx context.Context, head string, cols int, args []any) error {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	for len(args) > 0 {
		n := len(args) / cols
		if n > bulkRows {
			n = bulkRows
		}
		text := head + " VALUES " + strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
		st, err := p.bulkStmt(ctx, text)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, args[:n*cols]...); err != nil {
			return err
		}
		args = args[n*cols:]
	}
	return nil
}

// idList is ids as a JSON array, for "IN (SELECT value FROM json_each(?))".
func idList(ids []int64) string {
	b := make([]byte, 0, 2+len(ids)*8)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// HistoryAll appends history entries as given, in order (as History for each).
func (p *PracticeStmts) HistoryAll(ctx context.Context, hs []HistoryEntry) error {
	return p.historyAll(ctx, hs, nil)
}

// historyAll is HistoryAll; created, when not nil, is each entry's practice's
// created_at, the entries being their practices' creation rows written with them
// (Flush): a row at that time stores the empty text for it, read back as it
// (historyAt, migration 0043), and then the empty text for a flow that is its file's
// kind (historyFlow).
func (p *PracticeStmts) historyAll(ctx context.Context, hs []HistoryEntry, created []time.Time) error {
	args := make([]any, 0, len(hs)*10)
	for i, h := range hs {
		if h.At.IsZero() {
			h.At = p.now()
		}
		link, err := linkCode(&h)
		if err != nil {
			return err
		}
		at, flow := TS(h.At), h.Flow
		if created != nil && h.At.Equal(created[i]) {
			kind, err := p.fileKind(ctx, h.FileID)
			if err != nil {
				return err
			}
			// An empty at and flow read as the practice's created_at and the file's
			// kind (historyFlow): a flow of its own that is empty keeps its time.
			switch {
			case flow != "" && flow == kind:
				at, flow = "", ""
			case flow != "" || kind == "":
				at = ""
			}
		}
		args = append(args, h.PracticeID, at, h.From, h.To, flow, h.FileID, h.Line, h.CauseCode, h.Note, link)
	}
	if err := p.insertRows(ctx, `INSERT INTO practice_history (practice_id, at, from_state, to_state, flow, file_id, line, cause_code, note, link)`, 10, args); err != nil {
		return fmt.Errorf("archive: practice history: %w", err)
	}
	return nil
}

// fileKind is the kind of file id ("" for none), looked up once per PracticeStmts.
func (p *PracticeStmts) fileKind(ctx context.Context, id int64) (string, error) {
	if kind, ok := p.fileKinds[id]; ok {
		return kind, nil
	}
	var kind string
	if err := p.tx.QueryRowContext(ctx, `SELECT kind FROM files WHERE id = ?`, id).Scan(&kind); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("archive: kind of file %d: %w", id, err)
	}
	if p.fileKinds == nil {
		p.fileKinds = map[int64]string{}
	}
	p.fileKinds[id] = kind
	return kind, nil
}

// LinkAll records that a file touched each of the practices (as Link for each).
func (p *PracticeStmts) LinkAll(ctx context.Context, practiceIDs []int64, fileID int64, relation string, line int) error {
	args := make([]any, 0, len(practiceIDs)*4)
	for _, id := range practiceIDs {
		args = append(args, id, fileID, relation, line)
	}
	if err := p.insertRows(ctx, `INSERT OR IGNORE INTO practice_files (practice_id, file_id, relation, line)`, 4, args); err != nil {
		return fmt.Errorf("archive: practice files: %w", err)
	}
	return nil
}

// SetStateAll moves the practices to state to as of at, without history (the caller
// records it with HistoryAll, knowing each one's previous state).
func (p *PracticeStmts) SetStateAll(ctx context.Context, ids []int64, to string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := p.tx.ExecContext(ctx, `UPDATE practice_state SET state = ?, state_since = ?, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))`,
		to, TS(at), p.s.updatedAtSince(TS(at)), idList(ids))
	if err != nil {
		return fmt.Errorf("archive: practices to %s: %w", to, err)
	}
	return nil
}

// SetRequestDateAll records the day the practices' requests were sent (as
// SetRequestDate for each).
func (p *PracticeStmts) SetRequestDateAll(ctx context.Context, prs []*Practice, day flows.Date) error {
	if len(prs) == 0 {
		return nil
	}
	now := p.now()
	ids := make([]int64, len(prs))
	for i, pr := range prs {
		pr.RequestDate, pr.UpdatedAt = day, now
		ids[i] = pr.ID
	}
	_, err := p.tx.ExecContext(ctx, `UPDATE practice_state SET request_date = ?, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))`,
		dateText(day), TS(now), idList(ids))
	return err
}

// SendAll is SetStateAll then SetRequestDateAll in one statement, for practices whose
// request went out and that all move: each practice row is rewritten once, not twice.
func (p *PracticeStmts) SendAll(ctx context.Context, prs []*Practice, to string, at time.Time, day flows.Date) error {
	if len(prs) == 0 {
		return nil
	}
	ids := make([]int64, len(prs))
	for i, pr := range prs {
		pr.State, pr.StateSince, pr.RequestDate, pr.UpdatedAt = to, at, day, at
		ids[i] = pr.ID
	}
	_, err := p.tx.ExecContext(ctx, `UPDATE practice_state SET state = ?, state_since = ?, request_date = ?, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))`,
		to, TS(at), dateText(day), p.s.updatedAtSince(TS(at)), idList(ids))
	if err != nil {
		return fmt.Errorf("archive: practices to %s: %w", to, err)
	}
	return nil
}

// MarkSentAll records that the requests went into a built file (as MarkSent for each).
func (p *PracticeStmts) MarkSentAll(ctx context.Context, ids []int64, fileID int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := p.tx.ExecContext(ctx, `UPDATE request_state SET state = 'sent', file_id = ?1, sent_at = `+p.s.sentAtStored()+`
		WHERE id IN (SELECT value FROM json_each(?3))`, fileID, TS(at), idList(ids))
	return err
}

// sentAtStored is the SQL value a build stores in request_state.sent_at for the time ?2
// of the file ?1: once migration 0043 is applied, the empty text when it is the file's
// received_at (the build archives its file at the time it marks the requests), which
// every reader reads back as it (sentAtSQL, the view requests).
func (s *Store) sentAtStored() string {
	if s.rowsTrimmed {
		return `CASE WHEN ?2 = (SELECT f.received_at FROM files f WHERE f.id = ?1) THEN '' ELSE ?2 END`
	}
	return `?2`
}

// BuiltRequest is a request a build marks sent whose history row is derived from
// request_state instead of written (migration 0037): a request under its practice's
// own CP_UTENTE, in a transaction that rewrites its practice (a REQ). From and To are
// the states the row records (the practice's before and after the build), Moves the
// state it moves to once the file is delivered ("" for none): what a LinkBuiltRequest
// row stored, read back by PracticeHistory as that row (BuildNote) and by
// practice_links as its built link.
type BuiltRequest struct {
	ID              int64
	From, To, Moves string
}

// MarkBuiltAll is MarkSentAll for requests whose build history row is derived
// (BuiltRequest): the same UPDATE also records the row's place among its practice's
// history (after every row written so far: hist_after, the largest id) and its states.
// One statement per distinct (From, To, Moves), in a build one.
func (p *PracticeStmts) MarkBuiltAll(ctx context.Context, reqs []BuiltRequest, fileID int64, at time.Time) error {
	type key struct{ from, to, moves string }
	var order []key
	groups := map[key][]int64{}
	for _, r := range reqs {
		k := key{r.From, r.To, r.Moves}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r.ID)
	}
	for _, k := range order {
		var from, to, moves any = k.from, k.to, nil
		if k.moves != "" {
			moves = k.moves
		}
		if p.s.rowsTrimmed && [3]string{k.from, k.to, k.moves} == builtStatesStored {
			from, to, moves = nil, nil, nil // read back as these states (histFromSQL)
		}
		_, err := p.tx.ExecContext(ctx, `UPDATE request_state SET state = 'sent', file_id = ?1, sent_at = `+p.s.sentAtStored()+`,
			hist_after = (SELECT coalesce(max(id), 0) FROM practice_history), hist_from = ?3, hist_to = ?4, hist_moves = ?5
			WHERE id IN (SELECT value FROM json_each(?6))`, fileID, TS(at), from, to, moves, idList(groups[k]))
		if err != nil {
			return fmt.Errorf("archive: requests sent: %w", err)
		}
	}
	return nil
}

// ---- queued creation: a bulk job's new practices, inserted in batches ----

// QueueCreate creates a practice with its creation history, its input link and, when
// req is not nil, its request (as Create then CreateRequest), inserted at the next
// Flush: at the latest when bulkRows of them wait, before any other statement of p, or
// by Close. The creation row stands for the input link (h.Link LinkInput, or
// LinkInputCaseRead; h.Note may name the file as FileName). pr.ID (and req.ID, req.PracticeID) are set at once.
// A lookup of its case key (ByKey) or its code (CodeUsed) sees it; statements run on
// the transaction directly do not: Flush before them.
func (p *PracticeStmts) QueueCreate(ctx context.Context, pr *Practice, h HistoryEntry, req *Request) error {
	return p.QueueCreateCase(ctx, pr, h, req, nil)
}

// QueueCreateCase is QueueCreate with pr's case deflated ahead (CasePredeflater), or
// nil: Flush stores the same bytes, without deflating the case on this goroutine
// when pre fits the transaction's dictionary.
func (p *PracticeStmts) QueueCreateCase(ctx context.Context, pr *Practice, h HistoryEntry, req *Request, pre *PredeflatedCase) error {
	if len(p.queue) == 0 {
		// Prepared once per job (bulkStmt): asked again each time the queue starts.
		maxPractice, err := p.bulkStmt(ctx, `SELECT coalesce(max(id), 0) + 1 FROM practice_rows`)
		if err != nil {
			return fmt.Errorf("archive: practice ids: %w", err)
		}
		if err := maxPractice.QueryRowContext(ctx).Scan(&p.nextPracticeID); err != nil {
			return fmt.Errorf("archive: practice ids: %w", err)
		}
		maxRequest, err := p.bulkStmt(ctx, `SELECT coalesce(max(id), 0) + 1 FROM request_rows`)
		if err != nil {
			return fmt.Errorf("archive: request ids: %w", err)
		}
		if err := maxRequest.QueryRowContext(ctx).Scan(&p.nextReqID); err != nil {
			return fmt.Errorf("archive: request ids: %w", err)
		}
		if p.queuedKeys == nil {
			p.queuedKeys, p.queuedCodes = map[string]struct{}{}, map[string]struct{}{}
		}
	}
	now := h.At
	if now.IsZero() {
		now = p.now()
	}
	if len(pr.Data) == 0 {
		pr.Data = json.RawMessage("{}")
	}
	pr.ID, p.nextPracticeID = p.nextPracticeID, p.nextPracticeID+1
	pr.StateSince, pr.CreatedAt, pr.UpdatedAt = now, now, now
	h.PracticeID, h.From, h.To, h.At = pr.ID, "", pr.State, now
	p.queuedKeys[pr.CaseKey] = struct{}{}
	if pr.CPUtente != "" {
		p.queuedCodes[pr.CPUtente] = struct{}{}
	}
	if req != nil {
		if req.State == "" {
			req.State = "ready"
		}
		req.ID, p.nextReqID = p.nextReqID, p.nextReqID+1
		// Made with its practice, in the same transaction: the practice's time (stored
		// once, migration 0043).
		req.PracticeID, req.CreatedAt = pr.ID, now
		p.queuedCodes[req.CPUtente] = struct{}{}
	}
	p.queue = append(p.queue, queuedPractice{pr: pr, h: h, req: req, pre: pre})
	if len(p.queue) >= bulkRows {
		return p.Flush(ctx)
	}
	return nil
}

// Flush inserts the queued practices, in the order they were queued.
func (p *PracticeStmts) Flush(ctx context.Context) error {
	if len(p.queue) == 0 {
		return nil
	}
	q := p.queue
	p.queue = p.queue[:0]
	clear(p.queuedKeys)
	clear(p.queuedCodes)
	args := make([]any, 0, len(q)*practiceRowCols)
	stateArgs := make([]any, 0, len(q)*practiceStateCols)
	var dataArgs []any
	// A bulk job's practices and requests are made at one time (the job's clock):
	// its text is formatted once, not three times a practice.
	var lastAt time.Time
	var lastTS string
	ts := func(t time.Time) string {
		if lastTS == "" || !t.Equal(lastAt) {
			lastAt, lastTS = t, TS(t)
		}
		return lastTS
	}
	for _, e := range q {
		pr := e.pr
		created := ts(pr.CreatedAt)
		args = practiceRowArgs(args, pr.ID, pr, created)
		stateArgs = practiceStateArgs(stateArgs, pr.ID, pr, created, p.s.updatedAtSince(created))
		if hasCase(pr.Data) {
			v, err := p.caseValueIn(ctx, pr.Data, e.pre)
			if err != nil {
				return err
			}
			dataArgs = append(dataArgs, pr.ID, v)
		}
	}
	if p.deferLookups {
		// Before their rows: the lookup triggers skip a pending practice.
		ids := make([]any, len(q))
		for i, e := range q {
			ids[i] = e.pr.ID
		}
		if err := p.insertRows(ctx, `INSERT OR IGNORE INTO practice_lookup_pending (practice_id)`, 1, ids); err != nil {
			return fmt.Errorf("archive: pending lookups of practices %s ...: %w", q[0].pr.CaseKey, err)
		}
	}
	if err := p.insertRows(ctx, practiceRowInsert, practiceRowCols, args); err != nil {
		return fmt.Errorf("archive: create practices %s ...: %w", q[0].pr.CaseKey, err)
	}
	if err := p.insertRows(ctx, practiceStateInsert, practiceStateCols, stateArgs); err != nil {
		return fmt.Errorf("archive: create practices %s ...: %w", q[0].pr.CaseKey, err)
	}
	if err := p.insertRows(ctx, `INSERT INTO practice_data (id, data)`, 2, dataArgs); err != nil {
		return fmt.Errorf("archive: cases of practices %s ...: %w", q[0].pr.CaseKey, err)
	}
	hs := make([]HistoryEntry, len(q))
	var reqArgs, reqStateArgs, payloadArgs []any
	for i, e := range q {
		hs[i] = e.h
		if e.h.FileID != 0 && e.h.Link == "" {
			// The creation row stands for the input link (file, first line): one
			// row instead of two (practice_links).
			hs[i].Link = LinkInput
		}
		if r := e.req; r != nil {
			created := ts(r.CreatedAt)
			if p.s.rowsTrimmed && r.CreatedAt.Equal(e.pr.CreatedAt) {
				created = "" // read back as its practice's (the view requests, migration 0043)
			}
			reqArgs = append(reqArgs, r.ID, r.PracticeID, r.CPUtente, encodeRequestData(r.Data), "", created)
			reqStateArgs = append(reqStateArgs, r.ID, r.Flow, r.State)
			if v := payloadValue(r.Payload); v != nil {
				payloadArgs = append(payloadArgs, r.ID, v)
			}
		}
	}
	var created []time.Time
	if p.s.rowsTrimmed {
		created = make([]time.Time, len(q))
		for i, e := range q {
			created[i] = e.pr.CreatedAt
		}
	}
	if err := p.historyAll(ctx, hs, created); err != nil {
		return err
	}
	if err := p.insertRows(ctx, requestRowInsert, requestRowCols, reqArgs); err != nil {
		return fmt.Errorf("archive: requests: %w", err)
	}
	if err := p.insertRows(ctx, requestStateInsert, requestStateCols, reqStateArgs); err != nil {
		return fmt.Errorf("archive: requests: %w", err)
	}
	if err := p.insertRows(ctx, `INSERT INTO request_payloads (id, payload)`, 2, payloadArgs); err != nil {
		return fmt.Errorf("archive: request payloads: %w", err)
	}
	return nil
}

func nullIfZero(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Queued reports whether a practice with that case key waits in the creation queue.
func (p *PracticeStmts) Queued(key string) bool {
	_, ok := p.queuedKeys[key]
	return ok
}

// ExistingKeys returns which of keys are case keys of practices already in the table
// (queued ones excluded: ask Queued). One query per bulkRows keys instead of one per
// key: a billing extract is mostly new cases, and each lookup that finds nothing
// still costs a statement.
func (p *PracticeStmts) ExistingKeys(ctx context.Context, keys []string) (map[string]bool, error) {
	found := map[string]bool{}
	for len(keys) > 0 {
		n := min(len(keys), 4*bulkRows)
		text := `SELECT case_key FROM practice_rows WHERE case_key IN (` + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + `)`
		st, err := p.bulkStmt(ctx, text)
		if err != nil {
			return nil, err
		}
		args := make([]any, n)
		for i, k := range keys[:n] {
			args[i] = k
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("archive: case keys: %w", err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, err
			}
			found[k] = true
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		keys = keys[n:]
	}
	return found, nil
}
