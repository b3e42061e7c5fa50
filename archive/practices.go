package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cmord/cmord/flows"
)

// Practice is one CMOR case seen from our side.
type Practice struct {
	ID             int64
	CaseKey        string
	Role           string // uscente | entrante
	Sector         string // E | G
	CompanyPIVA    string
	CPUtente       string
	CPGestore      string
	Point          string // POD or PDR
	CustomerID     string // CF or P.IVA
	CustomerName   string
	SwitchDate     flows.Date
	State          string
	StateSince     time.Time
	Credit         flows.Amount
	Estimate       flows.Amount
	Previous       flows.Amount
	CMOR           flows.Amount
	Charged        flows.Amount
	Collected      flows.Amount
	CauseCode      string
	Motivation     string
	WindowOpen     flows.Date
	WindowClose    flows.Date
	SuspensionTerm flows.Date
	RequestDate    flows.Date
	AnswerDate     flows.Date
	LinkedID       int64
	Data           json.RawMessage // invoices, mora notices, computation audit, flags
	CreatedAt      time.Time
	UpdatedAt      time.Time

	// caseDict: Data is a case still deflated (form 2) and this is its dictionary, as
	// the build reads it (readyWithPractices): UscenteData inflates it on whichever
	// goroutine decodes the case, not on the one reading the rows.
	caseDict []byte
}

// HistoryEntry is one state change of a practice.
type HistoryEntry struct {
	ID         int64
	PracticeID int64
	At         time.Time
	From, To   string
	Flow       string
	FileID     int64
	Line       int
	CauseCode  string
	Note       string
	// Link, when not "", is the link to FileID (at Line) this row stands for
	// (LinkInput, LinkBuilt): no practice_files row is written for it, readers find
	// it through the view practice_links (migration 0034). Such a row's Note may name
	// its file as FileName, rendered with the file's name when read: written so, the
	// row holds no copy of the name.
	Link string
}

// The links a history row can stand for (HistoryEntry.Link), and how practice_history
// stores them (column link).
const (
	LinkInput = "input"
	LinkBuilt = "built"
	// LinkBuiltRequest is LinkBuilt for the row a build writes for a request whose
	// code is its practice's CP_UTENTE (a REQ): its Note holds only the state the
	// practice moves to once the file is delivered ("" when none), and reads as
	// BuildNote renders it. Read back, the row's Link is LinkBuilt. Since migration
	// 0037 a build writes none for a REQ: the row is derived from its request
	// (BuiltRequest, PracticeStmts.MarkBuiltAll) and reads the same.
	LinkBuiltRequest = "built-request"
	// LinkInputCaseRead is LinkInput for the creation row of a practice the bulk path
	// made from a case of its extract: its Note holds what follows CaseReadPrefix
	// ("2-4; CMOR …"), and reads with the prefix, the file named. Read back, the
	// row's Link is LinkInput.
	LinkInputCaseRead = "input-case-read"
)

// CaseReadPrefix begins the note of a LinkInputCaseRead row as a person reads it,
// FileName rendered with the extract's name (the text must not change, or the rows
// written before would read differently).
const CaseReadPrefix = "case read from " + FileName + " lines "

// BuildNote is the note of a build's row as a person reads it: what a
// LinkBuiltRequest row's note is rendered as (historyNote renders it so in SQL; the
// text must not change, or the rows written before would read differently).
func BuildNote(flow, code, fileName, to string) string {
	n := flow + " " + code + " written into " + fileName
	if to != "" {
		n += "; " + to + " once " + fileName + " is delivered"
	}
	return n
}

// FileName stands for the name of a history row's file in the note of a row that
// stands for a link (HistoryEntry.Link): rendered when read (PracticeHistory).
const FileName = "{file}"

// linkCode is how practice_history.link stores h.Link.
func linkCode(h *HistoryEntry) (int, error) {
	code := 0
	switch h.Link {
	case "":
		return 0, nil
	case LinkInput:
		code = 1
	case LinkBuilt:
		code = 2
	case LinkBuiltRequest:
		code = 3
	case LinkInputCaseRead:
		code = 4
	default:
		return 0, fmt.Errorf("archive: a history row cannot stand for a %q link", h.Link)
	}
	if h.FileID == 0 {
		return 0, fmt.Errorf("archive: a history row of practice %d stands for a %s link and names no file", h.PracticeID, h.Link)
	}
	return code, nil
}

// linkOfCode is linkCode's inverse.
func linkOfCode(code int) string {
	switch code {
	case 1, 4:
		return LinkInput
	case 2, 3:
		return LinkBuilt
	}
	return ""
}

func dateText(d flows.Date) string { return d.ISO() }

func parseDateText(s string) flows.Date {
	if s == "" {
		return flows.Date{}
	}
	d, _ := flows.ParseDate(s)
	return d
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreatePractice inserts p (its ID is set) with a creation history entry and the link
// to the file it came from, inside tx.
func (s *Store) CreatePractice(ctx context.Context, tx *sql.Tx, p *Practice, h HistoryEntry) error {
	now := h.At
	if now.IsZero() {
		now = s.now()
	}
	if len(p.Data) == 0 {
		p.Data = json.RawMessage("{}")
	}
	id, err := s.insertPractice(ctx, tx, p, now)
	if err != nil {
		return fmt.Errorf("archive: create practice %s: %w", p.CaseKey, err)
	}
	p.ID = id
	if err := putPracticeData(ctx, tx, p.ID, p.Data, false); err != nil {
		return err
	}
	p.StateSince, p.CreatedAt, p.UpdatedAt = now, now, now
	h.PracticeID, h.From, h.To, h.At = p.ID, "", p.State, now
	if err := s.addHistory(ctx, tx, h); err != nil {
		return err
	}
	if h.FileID != 0 && h.Link == "" { // else the row stands for the link
		return s.LinkPracticeFile(ctx, tx, p.ID, h.FileID, "input", h.Line)
	}
	return nil
}

// A practice is written into two tables (migration 0035): practice_rows holds what a
// state change leaves as it is, practice_state what it writes (the state, its time,
// the day the request was sent, the time of the last change). Readers read the
// view practices, which joins them under the old table's columns.
const (
	practiceRowInsert = `INSERT INTO practice_rows (id, case_key, role, sector, company_piva, cp_utente, cp_gestore, point,
		customer_id, customer_name, switch_date, credit_cents, estimate_cents, previous_cents, cmor_cents, charged_cents,
		collected_cents, cause_code, motivation, window_open, window_close, suspension_term, answer_date, linked_id, data, created_at)`
	practiceRowCols     = 26
	practiceStateInsert = `INSERT INTO practice_state (id, state, state_since, request_date, updated_at)`
	practiceStateCols   = 5
	// practiceRowSave writes the columns SavePractice saves that are in practice_rows
	// (practiceRowSaveArgs), practiceStateSave those in practice_state.
	practiceRowSave = `UPDATE practice_rows SET cp_utente = ?, cp_gestore = ?, customer_name = ?, credit_cents = ?,
		estimate_cents = ?, previous_cents = ?, cmor_cents = ?, charged_cents = ?, collected_cents = ?, cause_code = ?, motivation = ?,
		window_open = ?, window_close = ?, suspension_term = ?, answer_date = ?, linked_id = ?, data = ? WHERE id = ?`
	practiceStateSave = `UPDATE practice_state SET request_date = ?, updated_at = ? WHERE id = ?`
	// practiceStateSet moves a practice: state, since, updated, id.
	practiceStateSet = `UPDATE practice_state SET state = ?, state_since = ?, updated_at = ? WHERE id = ?`
)

// valuesOf is " VALUES (?, ...)" for n columns.
func valuesOf(n int) string {
	return " VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// practiceRowArgs appends p's practice_rows values (practiceRowInsert) to args; id nil
// takes the next rowid.
func practiceRowArgs(args []any, id any, p *Practice, created string) []any {
	return append(args, id, p.CaseKey, p.Role, p.Sector, p.CompanyPIVA, nullIfEmpty(p.CPUtente), nullIfEmpty(p.CPGestore), p.Point,
		p.CustomerID, p.CustomerName, dateText(p.SwitchDate), int64(p.Credit), int64(p.Estimate), int64(p.Previous), int64(p.CMOR),
		int64(p.Charged), int64(p.Collected), p.CauseCode, p.Motivation, dateText(p.WindowOpen), dateText(p.WindowClose),
		dateText(p.SuspensionTerm), dateText(p.AnswerDate), nullIfZero(p.LinkedID), rowData(p.Data), created)
}

// practiceStateArgs appends p's practice_state values (practiceStateInsert) to args;
// updated as Store.updatedAtSince gives it.
func practiceStateArgs(args []any, id int64, p *Practice, since, updated string) []any {
	return append(args, id, p.State, since, dateText(p.RequestDate), updated)
}

// updatedAtSince is what practice_state.updated_at stores for a practice created or
// moved at since (its updated_at is then its state_since): the empty text, which the
// view practices reads back as state_since (migration 0040). A practice created or
// moved changes nothing else at that moment, and the state row, written by the handler
// and again by the build, carried the same 30 characters twice. On an archive without
// 0040 (tests that stop the migrations before it) the time itself.
func (s *Store) updatedAtSince(since string) string {
	if s.updatedOnce {
		return ""
	}
	return since
}

// practiceRowSaveArgs are practiceRowSave's arguments for p.
func practiceRowSaveArgs(p *Practice) []any {
	return []any{nullIfEmpty(p.CPUtente), nullIfEmpty(p.CPGestore), p.CustomerName, int64(p.Credit), int64(p.Estimate),
		int64(p.Previous), int64(p.CMOR), int64(p.Charged), int64(p.Collected), p.CauseCode, p.Motivation, dateText(p.WindowOpen),
		dateText(p.WindowClose), dateText(p.SuspensionTerm), dateText(p.AnswerDate), nullIfZero(p.LinkedID), rowData(p.Data), p.ID}
}

// insertPractice inserts p's two rows with the next id, which it returns.
func (s *Store) insertPractice(ctx context.Context, tx *sql.Tx, p *Practice, now time.Time) (int64, error) {
	r, err := tx.ExecContext(ctx, practiceRowInsert+valuesOf(practiceRowCols), practiceRowArgs(nil, nil, p, TS(now))...)
	if err != nil {
		return 0, err
	}
	id, err := r.LastInsertId()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, practiceStateInsert+valuesOf(practiceStateCols), practiceStateArgs(nil, id, p, TS(now), s.updatedAtSince(TS(now)))...); err != nil {
		return 0, err
	}
	return id, nil
}

// SavePractice writes every mutable column of p (not its state: use Transition).
func (s *Store) SavePractice(ctx context.Context, tx *sql.Tx, p *Practice) error {
	p.UpdatedAt = s.now()
	if len(p.Data) == 0 {
		p.Data = json.RawMessage("{}")
	}
	if _, err := tx.ExecContext(ctx, practiceRowSave, practiceRowSaveArgs(p)...); err != nil {
		return fmt.Errorf("archive: save practice %d: %w", p.ID, err)
	}
	if _, err := tx.ExecContext(ctx, practiceStateSave, dateText(p.RequestDate), TS(p.UpdatedAt), p.ID); err != nil {
		return fmt.Errorf("archive: save practice %d: %w", p.ID, err)
	}
	return s.saveCase(ctx, tx, p)
}

// saveCase writes a saved practice's case, unless it is the case already stored: a
// state change or an SII answer saves the practice with the case it read, and
// rewriting that case (1–2 KB of JSON) on each of them wrote more than the row, and
// turned a compact case into JSON. A case that did change is stored compact when the
// compact form gives its readers back the same JSON (compactIfSame).
func (s *Store) saveCase(ctx context.Context, tx *sql.Tx, p *Practice) error {
	if hasCase(p.Data) {
		var stored []byte
		err := tx.QueryRowContext(ctx, `SELECT data FROM practice_data WHERE id = ?`, p.ID).Scan(&stored)
		if err == nil && IsDeflatedCase(stored) {
			// Compared in the compact form it stands for; one that does not
			// inflate (damaged) is replaced.
			if c, err := s.expandCase(ctx, tx, stored); err == nil {
				stored = c
			}
		}
		switch {
		case err == nil:
			if bytes.Equal(stored, p.Data) {
				return nil
			}
			if flows.IsCompactUscenteData(stored) {
				if js, err := flows.UscenteDataJSON(stored, p.CaseRow()); err == nil && bytes.Equal(js, p.Data) {
					return nil
				}
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("archive: case of practice %d: %w", p.ID, err)
		}
	}
	return putPracticeData(ctx, tx, p.ID, compactIfSame(p), true)
}

// compactIfSame is the uscente case of p in the compact form when decoding that form
// gives back p.Data byte for byte (what every reader would then get), else p.Data as
// it is: a case written by an earlier version, or one the compact form cannot hold,
// stays JSON.
func compactIfSame(p *Practice) json.RawMessage {
	if p.Role != "uscente" || !hasCase(p.Data) || flows.IsCompactUscenteData(p.Data) {
		return p.Data
	}
	d, err := flows.ParseUscenteData(p.Data)
	if err != nil {
		return p.Data
	}
	c := flows.EncodeUscenteData(&d, p.CaseRow())
	if !flows.IsCompactUscenteData(c) {
		return p.Data
	}
	if js, err := flows.UscenteDataJSON(c, p.CaseRow()); err != nil || !bytes.Equal(js, p.Data) {
		return p.Data
	}
	return c
}

// A practice's case is stored in practice_data (migration 0031), apart from the
// columns its state changes rewrite; practices.data is then '', or '{}' for a practice
// without a case. practice_data.data is JSON (text), the compact form (a blob, 0x01)
// or, written by the handler's chunks since migration 0038, the compact form deflated
// against a dictionary of case_dicts (a blob, 0x02: case_dicts.go); every reader gets
// form 2 through expandCase. Every write of a case also updates its practice row,
// whose chain trigger then seals the practice with it (chainedTable.side).

// rowData is what practices.data holds for case d.
func rowData(d json.RawMessage) string {
	if hasCase(d) {
		return ""
	}
	return "{}"
}

func hasCase(d json.RawMessage) bool { return len(d) > 0 && string(d) != "{}" }

// caseValue is how case d is bound for practice_data.data: JSON as text, the compact
// form (flows.EncodeUscenteData) as a blob (a chunk of the handler deflates it:
// PracticeStmts.caseValueIn). The state chain hashes the bytes either way.
func caseValue(d json.RawMessage) any {
	if flows.IsCompactUscenteData(d) {
		return []byte(d)
	}
	return string(d)
}

// CaseRow is what the practice's row holds of its case: the compact form of a uscente
// case (flows.EncodeUscenteData) leaves it out, and is read back with it.
func (p *Practice) CaseRow() flows.CaseRow {
	return flows.CaseRow{Point: p.Point, CustomerID: p.CustomerID, CustomerName: p.CustomerName, SwitchDate: p.SwitchDate}
}

// UscenteData decodes the practice's data, whatever its form: JSON, or compact (as
// ReadyRequestsWithPractices gives it, or deflated with its dictionary, and as a
// practice created in memory holds it).
func (p *Practice) UscenteData() (flows.UscenteData, error) {
	if IsDeflatedCase(p.Data) {
		if p.caseDict == nil { // left as stored by a reader that could not inflate it
			return flows.UscenteData{}, errDeflatedCase
		}
		c, err := inflateStored(p.Data, p.caseDict)
		if err != nil { // as when its reader could not inflate it
			return flows.UscenteData{}, errDeflatedCase
		}
		return flows.DecodeUscenteData(c, p.CaseRow())
	}
	return flows.DecodeUscenteData(p.Data, p.CaseRow())
}

// CaseUnreadable says whether a practice as its readers get it (PracticeByCode,
// EachPractice, Practice: the case as JSON) holds a stored case that cannot be read:
// caseJSON hands such a case out as stored, bytes that are not JSON (damaged, its
// dictionary edited or deleted, or edited outside cmord; archive verify reports it).
// Not for the build's compact cases (readyWithPractices), which are not JSON.
func (p *Practice) CaseUnreadable() bool {
	return len(p.Data) > 0 && !json.Valid(p.Data)
}

// caseJSON is the case as the practice's readers get it: JSON, the compact form
// decoded with the row it was stored with, form 2 inflated (expandCase, its
// dictionary read through q) then decoded. This is the one place a stored case is
// read for them (scanPractice); the build reads it compact (readyWithPractices). A case that
// does not decode (damaged, its dictionary gone, or edited outside cmord: verify
// reports it) is handed out as stored, as a damaged JSON case is: the readers that
// parse it fail on that practice alone, and every listing still lists the others.
func (s *Store) caseJSON(ctx context.Context, q queryer, p *Practice, stored []byte) json.RawMessage {
	c, err := s.expandCase(ctx, q, stored)
	if err != nil {
		return json.RawMessage(stored)
	}
	if !flows.IsCompactUscenteData(c) {
		return json.RawMessage(c)
	}
	js, err := flows.UscenteDataJSON(c, p.CaseRow())
	if err != nil {
		return json.RawMessage(stored)
	}
	return js
}

// practiceDataValue reads a practice's case as stored, in any form (scanPractice gives
// it to the readers): from practice_data, else the row's own column (a practice
// without a case).
const practiceDataValue = `coalesce((SELECT d.data FROM practice_data d WHERE d.id = practices.id), nullif(practices.data, ''), '{}')`

// practiceSideData is the case as the state chain hashes it with the practice row t.
const practiceSideData = `(SELECT d.data FROM main.practice_data d WHERE d.id = t.id) AS data`

// practiceSideBuilt is, as the state chain hashes it with the practice row t (once
// migration 0037 is applied), what its requests whose build history row is derived
// (request_state.hist_after not NULL, BuiltRequest) hold of that row: their id, flow,
// file, time and the row's place and states, in id order (the index requests_practice
// gives them so: no sort); NULL (left out of the hash)
// for a practice without one, as every practice before 0037. The build rewrites the
// practice in the transaction that marks its request so (a REQ moves it or records its
// request date), so the practice's seal covers them: a request_state row of a derived
// history row edited, moved to another practice or file, or deleted outside cmord is
// reported as its practice changed.
var practiceSideBuilt = `(SELECT group_concat(b, ';') FROM (SELECT s.id || ' ' || s.flow || ' ' || coalesce(s.file_id, '') || ' ' ||
	` + sentAtSQL + ` || ' ' || s.hist_after || ' ' || ` + histFromSQL + ` || ' ' || ` + histToSQL + ` || ' ' ||
	` + histMovesSQL + ` AS b FROM main.request_rows r JOIN main.request_state s ON s.id = r.id
	WHERE r.practice_id = t.id AND s.hist_after IS NOT NULL ORDER BY r.id)) AS built_requests`

// histFromSQL, histToSQL and histMovesSQL are a derived build row's states (request_state
// aliased s, hist_after not NULL) as every reader and the state chain read them, from
// either stored form: hist_from NULL (migration 0043; PracticeStmts.MarkBuiltAll) stands
// for READY -> BUILT, moving to SENT once delivered, what every REQ of a billing extract
// records, each of hist_to and hist_moves read as stored when not NULL (so that an
// edit of any of the three changes what is read, and the practice's hash); else the
// columns as stored, NULL read as the empty text. A row stored before 0043 never has hist_from NULL
// (a Go string was bound), so it reads, and hashes, as it did.
var (
	histFromSQL  = `CASE WHEN s.hist_from IS NULL THEN '` + flows.StateReady + `' ELSE s.hist_from END`
	histToSQL    = `coalesce(s.hist_to, CASE WHEN s.hist_from IS NULL THEN '` + flows.StateBuilt + `' ELSE '' END)`
	histMovesSQL = `coalesce(s.hist_moves, CASE WHEN s.hist_from IS NULL THEN '` + flows.StateSent + `' ELSE '' END)`
)

// sentAtSQL is a request's sent_at (request_state aliased s) as every reader and the
// state chain read it, NULL read as the empty text: a stored empty text (migration
// 0043, Store.sentAtStored) stands for the received_at of the request's file, chained
// with the file.
const sentAtSQL = `coalesce(CASE s.sent_at WHEN '' THEN (SELECT f.received_at FROM main.files f WHERE f.id = s.file_id) ELSE s.sent_at END, '')`

// builtStatesStored is the (from, to, moves) a derived build row stores as NULLs once
// migration 0043 is applied (histFromSQL).
var builtStatesStored = [3]string{flows.StateReady, flows.StateBuilt, flows.StateSent}

// practiceSideJoin and practiceSideCols read the same case by a join (chainRowReader).
const (
	practiceSideJoin = `LEFT JOIN main.practice_data d ON d.id = t.id`
	practiceSideCols = `d.data AS data`
)

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// putPracticeData stores practice id's case; existing says the practice may already
// have one (an update: a case emptied is removed).
func putPracticeData(ctx context.Context, tx execer, id int64, d json.RawMessage, existing bool) error {
	var err error
	switch {
	case hasCase(d) && existing:
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO practice_data (id, data) VALUES (?, ?)`, id, caseValue(d))
	case hasCase(d):
		_, err = tx.ExecContext(ctx, `INSERT INTO practice_data (id, data) VALUES (?, ?)`, id, caseValue(d))
	case existing:
		_, err = tx.ExecContext(ctx, `DELETE FROM practice_data WHERE id = ?`, id)
	}
	if err != nil {
		return fmt.Errorf("archive: case of practice %d: %w", id, err)
	}
	return nil
}

// Transition moves a practice to state `to`, recording who/what caused it. The
// caller checks the move against the catalog's state machine.
func (s *Store) Transition(ctx context.Context, tx *sql.Tx, p *Practice, to string, h HistoryEntry) error {
	now := h.At
	if now.IsZero() {
		now = s.now()
	}
	if _, err := tx.ExecContext(ctx, practiceStateSet, to, TS(now), s.updatedAtSince(TS(now)), p.ID); err != nil {
		return fmt.Errorf("archive: transition practice %d: %w", p.ID, err)
	}
	h.PracticeID, h.From, h.To, h.At = p.ID, p.State, to, now
	p.State, p.StateSince = to, now
	if err := s.addHistory(ctx, tx, h); err != nil {
		return err
	}
	if h.FileID != 0 && h.Link == "" { // else the row stands for the link
		rel := "answer"
		if strings.HasPrefix(h.Flow, "uscente.") || strings.HasPrefix(h.Flow, "entrante.") {
			rel = "input"
		}
		return s.LinkPracticeFile(ctx, tx, p.ID, h.FileID, rel, h.Line)
	}
	return nil
}

// Note records a history entry that does not change the state (e.g. amount updated,
// linked, refund recorded).
func (s *Store) Note(ctx context.Context, tx *sql.Tx, p *Practice, h HistoryEntry) error {
	h.PracticeID, h.From, h.To = p.ID, p.State, p.State
	if h.At.IsZero() {
		h.At = s.now()
	}
	return s.addHistory(ctx, tx, h)
}

func (s *Store) addHistory(ctx context.Context, tx *sql.Tx, h HistoryEntry) error {
	link, err := linkCode(&h)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO practice_history (practice_id, at, from_state, to_state, flow, file_id, line, cause_code, note, link)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, h.PracticeID, TS(h.At), h.From, h.To, h.Flow, h.FileID, h.Line, h.CauseCode, h.Note, link)
	if err != nil {
		return fmt.Errorf("archive: practice history: %w", err)
	}
	return nil
}

// LinkPracticeFile records that a file touched a practice.
func (s *Store) LinkPracticeFile(ctx context.Context, tx *sql.Tx, practiceID, fileID int64, relation string, line int) error {
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO practice_files (practice_id, file_id, relation, line) VALUES (?, ?, ?, ?)`,
		practiceID, fileID, relation, line)
	return err
}

const practiceSelect = `SELECT id, case_key, role, sector, company_piva, coalesce(cp_utente, ''), coalesce(cp_gestore, ''), point, customer_id,
	customer_name, switch_date, state, state_since, credit_cents, estimate_cents, previous_cents, cmor_cents, charged_cents,
	collected_cents, cause_code, motivation, window_open, window_close, suspension_term, request_date, answer_date,
	coalesce(linked_id, 0), ` + practiceDataValue + `, created_at, updated_at FROM practices`

// practiceSelectWithoutCase is practiceSelect with "{}" for the case.
var practiceSelectWithoutCase = strings.Replace(practiceSelect, practiceDataValue, `'{}'`, 1)

// scanPractice reads a row of practiceSelect, its case as its readers get it
// (caseJSON; a form-2 case's dictionary read through q). Over rows still open, q must
// be the transaction they are read in (a lookup on the pool would wait for a second
// connection), or the practices are scanned with scanPracticeStored and finished by
// caseForReaders once the rows are closed.
func (s *Store) scanPractice(ctx context.Context, q queryer, row rowScanner) (Practice, error) {
	p, err := scanPracticeStored(row)
	if err != nil {
		return p, err
	}
	s.caseForReaders(ctx, q, &p)
	return p, nil
}

// caseForReaders turns p.Data, as stored (scanPracticeStored), into what the
// practice's readers get (caseJSON).
func (s *Store) caseForReaders(ctx context.Context, q queryer, p *Practice) {
	p.Data = s.caseJSON(ctx, q, p, p.Data)
}

// scanPracticeStored reads a row of practiceSelect with its case as stored, in any
// form: caseForReaders must follow.
func scanPracticeStored(row rowScanner) (Practice, error) {
	var p Practice
	var sw, since, wo, wc, st, rd, ad, created, updated string
	var data []byte
	var credit, estimate, previous, cmor, charged, collected int64
	err := row.Scan(&p.ID, &p.CaseKey, &p.Role, &p.Sector, &p.CompanyPIVA, &p.CPUtente, &p.CPGestore, &p.Point, &p.CustomerID,
		&p.CustomerName, &sw, &p.State, &since, &credit, &estimate, &previous, &cmor, &charged, &collected, &p.CauseCode,
		&p.Motivation, &wo, &wc, &st, &rd, &ad, &p.LinkedID, &data, &created, &updated)
	if err != nil {
		return p, err
	}
	p.SwitchDate, p.WindowOpen, p.WindowClose = parseDateText(sw), parseDateText(wo), parseDateText(wc)
	p.SuspensionTerm, p.RequestDate, p.AnswerDate = parseDateText(st), parseDateText(rd), parseDateText(ad)
	p.StateSince, _ = ParseTS(since)
	p.CreatedAt, _ = ParseTS(created)
	p.UpdatedAt, _ = ParseTS(updated)
	p.Credit, p.Estimate, p.Previous, p.CMOR = flows.Amount(credit), flows.Amount(estimate), flows.Amount(previous), flows.Amount(cmor)
	p.Charged, p.Collected = flows.Amount(charged), flows.Amount(collected)
	p.Data = json.RawMessage(data)
	return p, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// q returns tx if not nil, else the read pool: lookups inside a write transaction
// must see its own uncommitted rows.
func (s *Store) q(tx *sql.Tx) queryer {
	if tx != nil {
		return tx
	}
	return s.r
}

// PracticeByKey returns the practice with that case key (tx may be nil).
func (s *Store) PracticeByKey(ctx context.Context, tx *sql.Tx, key string) (Practice, error) {
	p, err := s.scanPractice(ctx, s.q(tx), s.q(tx).QueryRowContext(ctx, practiceSelect+` WHERE case_key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("practice %s: %w", key, ErrNotFound)
	}
	return p, err
}

// PracticeByID returns one practice (tx may be nil).
func (s *Store) PracticeByID(ctx context.Context, tx *sql.Tx, id int64) (Practice, error) {
	p, err := s.scanPractice(ctx, s.q(tx), s.q(tx).QueryRowContext(ctx, practiceSelect+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("practice #%d: %w", id, ErrNotFound)
	}
	return p, err
}

// PracticeByCode finds a practice by CP_UTENTE (of the practice or of any request
// filed for it), by CP_GESTORE, or by "#id" (tx may be nil).
func (s *Store) PracticeByCode(ctx context.Context, tx *sql.Tx, code string) (Practice, error) {
	code = strings.TrimSpace(code)
	if strings.HasPrefix(code, "#") {
		if id, err := strconv.ParseInt(code[1:], 10, 64); err == nil {
			return s.PracticeByID(ctx, tx, id)
		}
	}
	p, err := s.scanPractice(ctx, s.q(tx), s.q(tx).QueryRowContext(ctx, practiceByCodeQuery, code))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("practice %s: %w", code, ErrNotFound)
	}
	return p, err
}

// practiceByCodeQuery is PracticeByCode's query; the code is ?1. The practice's id is
// looked up first, code by code in their order (each an index search; coalesce stops
// at the first found), then read by it: practices is a view (migration 0035) whose id
// is practice_state's and whose codes are practice_rows', and an OR across the two
// sides (cp_utente = ? OR cp_gestore = ? OR id = ...) read every practice.
const practiceByCodeQuery = practiceSelect + ` WHERE id = coalesce(
	(SELECT id FROM practice_rows WHERE cp_utente = ?1),
	(SELECT id FROM practice_rows WHERE cp_gestore = ?1 ORDER BY id LIMIT 1),
	(SELECT practice_id FROM request_rows WHERE cp_utente = ?1))`

// PracticeHistory returns the state changes of a practice, oldest first: its
// practice_history rows, and the build rows derived from its requests (migration
// 0037, BuiltRequest), each where its row would have been: after the rows up to the
// request's hist_after, before those written after it.
func (s *Store) PracticeHistory(ctx context.Context, id int64) ([]HistoryEntry, error) {
	rows, err := s.r.QueryContext(ctx, practiceHistoryQuery, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		var h HistoryEntry
		var at string
		var link int
		var k1, k2, k3 int64
		if err := rows.Scan(&h.ID, &h.PracticeID, &at, &h.From, &h.To, &h.Flow, &h.FileID, &h.Line, &h.CauseCode, &h.Note, &link,
			&k1, &k2, &k3); err != nil {
			return nil, err
		}
		h.At, _ = ParseTS(at)
		h.Link = linkOfCode(link)
		out = append(out, h)
	}
	return out, rows.Err()
}

// practiceHistoryQuery is PracticeHistory's query (the practice is ?1): the stored
// rows by id, and the derived ones (id 0, link 3) each sorted after the stored row
// hist_after (then by request id). Both arms are index searches of the practice
// (practice_history_practice, requests_practice).
var practiceHistoryQuery = `SELECT id, practice_id, ` + historyAt + `, from_state, to_state, ` + historyFlow + `, file_id, line, cause_code, ` + historyNote + `, link,
		id, 0, 0
	FROM practice_history h WHERE practice_id = ?1
	UNION ALL
	SELECT 0, r.practice_id, ` + sentAtSQL + `, ` + histFromSQL + `, ` + histToSQL + `, s.flow, coalesce(s.file_id, 0), 0, '',
		` + builtNote + `, 3, s.hist_after, 1, s.id
	FROM request_rows r JOIN request_state s ON s.id = r.id WHERE r.practice_id = ?1 AND s.hist_after IS NOT NULL
	ORDER BY 12, 13, 14`

// historyAt is a practice_history row's time (the row aliased h): the empty text stands for its
// practice's created_at (migration 0043: the creation row written with the practice,
// PracticeStmts.Flush).
const historyAt = `CASE h.at WHEN '' THEN coalesce((SELECT p.created_at FROM practice_rows p WHERE p.id = h.practice_id), '') ELSE h.at END`

// historyFlow is a practice_history row's flow (the row aliased h): the empty text in
// a row whose at is empty too (a creation row, migration 0043) stands for the kind of
// its file (chained with the file).
const historyFlow = `CASE WHEN h.at = '' AND h.flow = '' THEN coalesce((SELECT f.kind FROM files f WHERE f.id = h.file_id), '') ELSE h.flow END`

// historyNote is a practice_history row's note (the row aliased h) as a person reads
// it: a row that stands for a link names its file as FileName, rendered with the
// file's name (immutable, and chained as the row is); a LinkBuiltRequest row's note
// is BuildNote of its flow, its practice's code (immutable, chained) and its file; a
// LinkInputCaseRead row's note follows CaseReadPrefix.
var historyNote = `CASE h.link WHEN 0 THEN h.note ELSE replace(CASE h.link WHEN 3 THEN
	` + buildNoteSQL("h.flow", "h.practice_id", "h.note") + `
	WHEN 4 THEN '` + CaseReadPrefix + `' || h.note
	ELSE h.note END, '` + FileName + `', ` + fileNameSQL("h.file_id") + `) END`

// builtNote is the note of the build row derived from a request (request_state
// aliased s, request_rows r), rendered exactly as historyNote renders a stored
// LinkBuiltRequest row whose note is s.hist_moves.
var builtNote = `replace(` + buildNoteSQL("s.flow", "r.practice_id", "("+histMovesSQL+")") + `,
	'` + FileName + `', ` + fileNameSQL("s.file_id") + `)`

// buildNoteSQL is BuildNote in SQL for a request under its practice's own code: the
// flow, the practice's CP_UTENTE and the state it moves to ("" for none) given as SQL
// expressions, the file still named FileName. One text for the stored row
// (historyNote) and the derived one (builtNote): they must read alike.
func buildNoteSQL(flow, practiceID, moves string) string {
	return flow + ` || ' ' || coalesce((SELECT cp_utente FROM practices WHERE id = ` + practiceID + `), '') || ' written into ` + FileName + `' ||
	CASE WHEN ` + moves + ` <> '' THEN '; ' || ` + moves + ` || ' once ` + FileName + ` is delivered' ELSE '' END`
}

// fileNameSQL is the name of the file whose id is the SQL expression fileID (” for none).
func fileNameSQL(fileID string) string {
	return `coalesce((SELECT name FROM files WHERE id = ` + fileID + `), '')`
}

// PracticeFile is a file that touched a practice.
type PracticeFile struct {
	File     File
	Relation string
	Line     int
}

// PracticeFiles lists the files behind a practice.
func (s *Store) PracticeFiles(ctx context.Context, id int64) ([]PracticeFile, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT file_id, relation, line FROM practice_links WHERE practice_id = ? ORDER BY file_id, line`, id)
	if err != nil {
		return nil, err
	}
	type link struct {
		id   int64
		rel  string
		line int
	}
	var links []link
	for rows.Next() {
		var l link
		if err := rows.Scan(&l.id, &l.rel, &l.line); err != nil {
			rows.Close()
			return nil, err
		}
		links = append(links, l)
	}
	rows.Close()
	out := make([]PracticeFile, 0, len(links))
	for _, l := range links {
		f, err := s.GetFile(ctx, l.id)
		if err != nil {
			return nil, err
		}
		out = append(out, PracticeFile{File: f, Relation: l.rel, Line: l.line})
	}
	return out, nil
}

// NextSequence returns the next value of a named sequence and advances it, inside tx,
// so that a value is consumed only if the transaction that uses it commits.
func (s *Store) NextSequence(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	var next int64
	err := tx.QueryRowContext(ctx, `INSERT INTO sequences (name, next) VALUES (?, 2)
		ON CONFLICT (name) DO UPDATE SET next = next + 1 RETURNING next - 1`, name).Scan(&next)
	if err != nil {
		return 0, fmt.Errorf("archive: sequence %s: %w", name, err)
	}
	return next, nil
}

// Request is one request we file (or filed) to the SII for a practice.
type Request struct {
	ID         int64
	PracticeID int64
	Flow       string
	CPUtente   string
	State      string
	Data       map[string]string
	FileID     int64
	CreatedAt  time.Time
	SentAt     time.Time
	AnsweredAt time.Time
	CauseCode  string
	Motivation string
	// Payload is what the request becomes in its file when that was computed as the
	// request was made ready (nil otherwise: the build derives it from the practice).
	// Read only by ReadyRequestsWithPractices.
	Payload *RequestPayload
}

// RequestPayload is what a ready request becomes in its file, without the flow header
// fields, and the input files behind it. Since form 3 only a SHA-256 of the rows is
// stored (requests made ready by earlier versions keep their rows, forms 1 and 2):
// the build computes the rows again from the practice's case and sends them only if
// they hash to what was decided when the request was made ready.
type RequestPayload struct {
	Rows   []map[string]string // form 1 (read only: older requests)
	Layout string              // forms 2, 3 and 4: the signature of the flow layout of Values
	Values [][]string          // form 2 (read only), and what the handler gives to be stored: one per row, positional in that layout
	Hash   string              // forms 3 and 4: PayloadHash of the rows decided (Values nil when read)
	Inputs []int64
}

// The payload's stored forms (request_payloads.payload; every form is read):
//   - Form 4 (written since the sixth round of issue 16): a BLOB, the byte
//     payloadForm4, a uvarint count of input ids and each id as a varint (zigzag),
//     the layout signature's bytes, then the rows' PayloadHash as its 32 raw bytes
//     (the signature is what lies between): about 50 bytes.
//   - Form 3 (written before; still written for a hash not in PayloadHash's own
//     lowercase hex, which form 4 could not give back): text, "3", then the input ids
//     (comma-separated), the layout signature and the rows' PayloadHash (64 hex
//     digits), separated by RS: about 85 bytes.
//   - Form 2: "2", the input ids, the layout signature, and one record per row,
//     separated by RS; the values within a record by US, in the layout's order
//     (about 620 bytes).
//   - Form 1 had the field names in place of the signature and each row's values in
//     their order.
//
// Form 4's first byte is none of form 1-3's ('1', '2', '3'): the SQL that tells a
// payload carrying its rows (forms 1 and 2) from one that does not
// (readyWithPracticeSelect) compares the first byte with '1' and '2', and a BLOB
// equals no text.
const (
	payloadRS    = "\x1e"
	payloadUS    = "\x1f"
	payloadForm4 = 0x04
)

// PayloadHash is the hex SHA-256 of rows of positional values: each row's number of
// values, then each value, length-prefixed (no separator a value could hold).
func PayloadHash(rows [][]string) string {
	h := sha256.New()
	var b []byte
	for _, vals := range rows {
		b = binary.AppendUvarint(b[:0], uint64(len(vals)))
		for _, v := range vals {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// payloadValue is p's stored form: form 4, or form 3 for a hash form 4 cannot hold
// (see above); nil (no payload: the build derives the rows from the practice's case
// unchecked) for nil, or without a layout or rows.
func payloadValue(p *RequestPayload) []byte {
	if p == nil || p.Layout == "" || hasPayloadSeparator(p.Layout) {
		return nil
	}
	hash := p.Hash
	if p.Values != nil {
		hash = PayloadHash(p.Values)
	}
	if hash == "" {
		return nil
	}
	raw, err := hex.DecodeString(hash)
	if err != nil || len(raw) != sha256.Size || hex.EncodeToString(raw) != hash {
		return payloadForm3(p, hash)
	}
	b := make([]byte, 0, 2+binary.MaxVarintLen64*len(p.Inputs)+len(p.Layout)+sha256.Size)
	b = append(b, payloadForm4)
	b = binary.AppendUvarint(b, uint64(len(p.Inputs)))
	for _, id := range p.Inputs {
		b = binary.AppendVarint(b, id)
	}
	b = append(b, p.Layout...)
	return append(b, raw...)
}

// payloadForm3 is p's form 3 with hash.
func payloadForm3(p *RequestPayload, hash string) []byte {
	b := make([]byte, 0, len(p.Layout)+len(hash)+8*len(p.Inputs)+8)
	b = append(b, "3"+payloadRS...)
	for i, id := range p.Inputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	b = append(b, payloadRS...)
	b = append(b, p.Layout...)
	b = append(b, payloadRS...)
	b = append(b, hash...)
	return b
}

func hasPayloadSeparator(s string) bool {
	return strings.IndexByte(s, payloadRS[0]) >= 0 || strings.IndexByte(s, payloadUS[0]) >= 0
}

// A request's payload is stored in request_payloads (migration 0032), apart from the
// columns the build rewrites when it sends the request; requests.payload is ''.

// requestPayloadValue reads the payload of request r: from request_payloads, else the
// row's own column (written before 0032 and not moved: none after the migration).
const requestPayloadValue = `coalesce((SELECT rp.payload FROM request_payloads rp WHERE rp.id = r.id), r.payload)`

// putRequestPayload stores request id's payload (payloadValue; nil = none); existing
// says it may have one already (a replacement).
func putRequestPayload(ctx context.Context, tx execer, id int64, value []byte, existing bool) error {
	var err error
	switch {
	case value != nil && existing:
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO request_payloads (id, payload) VALUES (?, ?)`, id, value)
	case value != nil:
		_, err = tx.ExecContext(ctx, `INSERT INTO request_payloads (id, payload) VALUES (?, ?)`, id, value)
	case existing:
		_, err = tx.ExecContext(ctx, `DELETE FROM request_payloads WHERE id = ?`, id)
	}
	if err != nil {
		return fmt.Errorf("archive: payload of request %d: %w", id, err)
	}
	return nil
}

// ParsePayload reads a stored payload of any form (what payloadValue writes, and the
// forms of earlier versions).
func ParsePayload(s string) (*RequestPayload, error) {
	if len(s) > 0 && s[0] == payloadForm4 {
		return parsePayloadForm4(s)
	}
	parts := strings.Split(s, payloadRS)
	if len(parts) < 3 || parts[0] != "1" && parts[0] != "2" && parts[0] != "3" {
		return nil, fmt.Errorf("unknown payload form")
	}
	p := &RequestPayload{}
	if parts[1] != "" {
		for _, f := range strings.Split(parts[1], ",") {
			id, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("payload input %q: %w", f, err)
			}
			p.Inputs = append(p.Inputs, id)
		}
	}
	if parts[0] == "3" {
		if len(parts) != 4 || len(parts[3]) != sha256.Size*2 {
			return nil, fmt.Errorf("payload form 3 without its hash")
		}
		p.Layout, p.Hash = parts[2], parts[3]
		return p, nil
	}
	if parts[0] == "2" {
		p.Layout, p.Values = parts[2], make([][]string, 0, len(parts)-3)
		for _, rec := range parts[3:] {
			p.Values = append(p.Values, strings.Split(rec, payloadUS))
		}
		return p, nil
	}
	fields := strings.Split(parts[2], payloadUS)
	for _, rec := range parts[3:] {
		vals := strings.Split(rec, payloadUS)
		if len(vals) != len(fields) {
			return nil, fmt.Errorf("payload row with %d values for %d fields", len(vals), len(fields))
		}
		row := make(map[string]string, len(fields))
		for i, v := range vals {
			if v != "" {
				row[fields[i]] = v
			}
		}
		p.Rows = append(p.Rows, row)
	}
	return p, nil
}

// parsePayloadForm4 reads form 4 (s[0] is payloadForm4).
func parsePayloadForm4(s string) (*RequestPayload, error) {
	b := []byte(s[1:])
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("payload form 4: bad input count")
	}
	b = b[w:]
	p := &RequestPayload{}
	if n > 0 {
		p.Inputs = make([]int64, 0, n)
	}
	for range n {
		id, w := binary.Varint(b)
		if w <= 0 {
			return nil, fmt.Errorf("payload form 4: bad input id")
		}
		p.Inputs, b = append(p.Inputs, id), b[w:]
	}
	if len(b) <= sha256.Size {
		return nil, fmt.Errorf("payload form 4 without its layout or hash")
	}
	p.Layout = string(b[:len(b)-sha256.Size])
	p.Hash = hex.EncodeToString(b[len(b)-sha256.Size:])
	return p, nil
}

// A request is written into two tables (migration 0036): request_rows holds what the
// build leaves as it is, request_state what it writes (the flow, the state, the file,
// the time). Readers read the view requests, which joins them.
const (
	requestRowInsert   = `INSERT INTO request_rows (id, practice_id, cp_utente, data, payload, created_at)`
	requestRowCols     = 6
	requestStateInsert = `INSERT INTO request_state (id, flow, state)`
	requestStateCols   = 3
	// requestSent marks a request written into a file: file, time, id.
	requestSent = `UPDATE request_state SET state = 'sent', file_id = ?, sent_at = ? WHERE id = ?`
	// requestStateSet: state, id; requestDataSet: data, id.
	requestStateSet = `UPDATE request_state SET state = ? WHERE id = ?`
	requestDataSet  = `UPDATE request_rows SET data = ? WHERE id = ?`
)

// insertRequest inserts r's two rows with the next id, which it returns.
func insertRequest(ctx context.Context, tx *sql.Tx, r *Request, data []byte, created string) (int64, error) {
	res, err := tx.ExecContext(ctx, requestRowInsert+valuesOf(requestRowCols), nil, r.PracticeID, r.CPUtente, data, "", created)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, requestStateInsert+valuesOf(requestStateCols), id, r.Flow, r.State); err != nil {
		return 0, err
	}
	return id, nil
}

// CreateRequest records a request ready to be written into a flow file.
func (s *Store) CreateRequest(ctx context.Context, tx *sql.Tx, r *Request) error {
	if r.State == "" {
		r.State = "ready"
	}
	now := s.now()
	id, err := insertRequest(ctx, tx, r, encodeRequestData(r.Data), TS(now))
	if err != nil {
		return fmt.Errorf("archive: request %s %s: %w", r.Flow, r.CPUtente, err)
	}
	r.ID = id
	if err := putRequestPayload(ctx, tx, r.ID, payloadValue(r.Payload), false); err != nil {
		return err
	}
	r.CreatedAt = now
	return nil
}

const requestSelect = `SELECT id, practice_id, flow, cp_utente, state, data, coalesce(file_id, 0), created_at, sent_at, answered_at, cause_code, motivation FROM requests`

func scanRequest(row rowScanner) (Request, error) {
	var r Request
	var data, created string
	var sent, answered sql.NullString
	err := row.Scan(&r.ID, &r.PracticeID, &r.Flow, &r.CPUtente, &r.State, &data, &r.FileID, &created, &sent, &answered, &r.CauseCode, &r.Motivation)
	if err != nil {
		return r, err
	}
	decodeRequestData(data, &r.Data)
	r.CreatedAt, _ = ParseTS(created)
	r.SentAt, r.AnsweredAt = nullTS(sent), nullTS(answered)
	return r, nil
}

// RequestByCPUtente finds a request by its code (tx may be nil).
func (s *Store) RequestByCPUtente(ctx context.Context, tx *sql.Tx, code string) (Request, error) {
	r, err := scanRequest(s.q(tx).QueryRowContext(ctx, requestSelect+` WHERE cp_utente = ?`, code))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("request %s: %w", code, ErrNotFound)
	}
	return r, err
}

// Requests lists the requests of a practice, or (practiceID 0) those of a flow in a
// state, oldest first.
func (s *Store) Requests(ctx context.Context, tx *sql.Tx, practiceID int64, flow, state string, limit int) ([]Request, error) {
	q, args := requestsQuery(practiceID, flow, state, limit)
	return s.requestList(ctx, tx, q, args...)
}

// requestList runs q (a requestSelect) and scans every request it returns.
func (s *Store) requestList(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]Request, error) {
	rows, err := s.q(tx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// requestsQuery is Requests' query and its arguments.
func requestsQuery(practiceID int64, flow, state string, limit int) (string, []any) {
	q := requestSelect
	var where []string
	var args []any
	if practiceID != 0 {
		where, args = append(where, "practice_id = ?"), append(args, practiceID)
	}
	// A practice's requests are found by requests_practice; flow and state are then
	// only checks (+): they are in request_state (migration 0036), and without
	// statistics SQLite would as soon walk every request of the flow.
	check := ""
	if practiceID != 0 {
		check = "+"
	}
	if flow != "" {
		where, args = append(where, check+"flow = ?"), append(args, flow)
	}
	switch {
	case state == "ready" && check == "":
		// Literal: requests_ready indexes the ready requests only (migration 0043),
		// which SQLite uses for a state it can read in the query's text.
		where = append(where, "state = 'ready'")
	case state != "":
		where, args = append(where, check+"state = ?"), append(args, state)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	return q, args
}

// MarkRequestSent records that a request was written into a built flow file.
func (s *Store) MarkRequestSent(ctx context.Context, tx *sql.Tx, id, fileID int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, requestSent, fileID, TS(at), id)
	return err
}

// AnswerRequest records the SII's answer to a request.
func (s *Store) AnswerRequest(ctx context.Context, tx *sql.Tx, id int64, state, cause, motivation string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, requestStateSet, state, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE request_rows SET cause_code = ?, motivation = ?, answered_at = ? WHERE id = ?`,
		cause, motivation, TS(at), id)
	return err
}

// CountByState returns "STATE n, STATE n, ..." over all practices, per role.
func (s *Store) CountByState(ctx context.Context) (string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT role, state, count(*) FROM practices GROUP BY role, state ORDER BY role DESC, state`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var role, state string
		var n int
		if err := rows.Scan(&role, &state, &n); err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("%s %s %d", role, state, n))
	}
	if len(parts) == 0 {
		return "none", rows.Err()
	}
	return strings.Join(parts, ", "), rows.Err()
}

// readyWithPracticeSelect reads a ready request and its practice in one row, the
// request's columns first (as requestSelect), then the practice's (as practiceSelect).
// readyWithPracticeSelect reads the practice's data only for a request whose payload
// does not carry its rows (none, or form 3's or 4's hash: a form 4 payload is a BLOB,
// and its first byte equals neither '1' nor '2'): the build needs nothing else of
// it, and it is the biggest column.
const readyWithPracticeSelect = `SELECT r.id, r.practice_id, r.flow, r.cp_utente, r.state, r.data, coalesce(r.file_id, 0), r.created_at,
	r.sent_at, r.answered_at, r.cause_code, r.motivation, ` + requestPayloadValue + `,
	p.id, p.case_key, p.role, p.sector, p.company_piva, coalesce(p.cp_utente, ''), coalesce(p.cp_gestore, ''), p.point, p.customer_id,
	p.customer_name, p.switch_date, p.state, p.state_since, p.credit_cents, p.estimate_cents, p.previous_cents, p.cmor_cents,
	p.charged_cents, p.collected_cents, p.cause_code, p.motivation, p.window_open, p.window_close, p.suspension_term, p.request_date,
	p.answer_date, coalesce(p.linked_id, 0), CASE WHEN substr(` + requestPayloadValue + `, 1, 1) NOT IN ('1', '2') THEN coalesce((SELECT d.data FROM practice_data d WHERE d.id = p.id), nullif(p.data, ''), '{}') ELSE '{}' END,
	p.created_at, p.updated_at
	FROM requests r JOIN practices p ON p.id = r.practice_id`

// ReadyRequestsWithPractices lists the ready requests of a flow with id > after, oldest
// first, at most limit, each with its practice: one query where a build of thousands
// of requests would otherwise look each practice up on its own. A practice's Data is
// JSON or the compact form (a case stored deflated is inflated): decode it with
// Practice.UscenteData.
func (s *Store) ReadyRequestsWithPractices(ctx context.Context, tx *sql.Tx, flow string, after int64, limit int) ([]Request, []Practice, error) {
	rows, err := s.q(tx).QueryContext(ctx, readyWithPracticeQuery, flow, after, limit)
	if err != nil {
		return nil, nil, err
	}
	return s.readyWithPractices(ctx, s.q(tx), rows)
}

// ReadyRequestsWithPractices is Store.ReadyRequestsWithPractices in p's transaction,
// its statement prepared once for the job: a build reads a page of a few hundred
// requests at a time, and SQLite parsing the query again for each page cost as much
// as decoding the page's request data.
func (p *PracticeStmts) ReadyRequestsWithPractices(ctx context.Context, flow string, after int64, limit int) ([]Request, []Practice, error) {
	if err := p.Flush(ctx); err != nil {
		return nil, nil, err
	}
	st, err := p.bulkStmt(ctx, readyWithPracticeQuery)
	if err != nil {
		return nil, nil, err
	}
	rows, err := st.QueryContext(ctx, flow, after, limit)
	if err != nil {
		return nil, nil, err
	}
	return p.s.readyWithPractices(ctx, p.tx, rows)
}

// readyWithPractices reads the rows of readyWithPracticeSelect (scanReadyWithPractices)
// and gives each practice its case as the build reads it: the compact form (form 2
// inflated, its dictionary read through q once the rows are closed) or JSON. A case
// that does not inflate is left as stored: decoding it fails for that practice alone,
// as for any damaged case.
func (s *Store) readyWithPractices(ctx context.Context, q queryer, rows *sql.Rows) ([]Request, []Practice, error) {
	reqs, ps, err := scanReadyWithPractices(rows)
	if err != nil {
		return nil, nil, err
	}
	for i := range ps {
		// Its dictionary only: the case is inflated where it is decoded (UscenteData),
		// on the build's second goroutine for most (daemon/uscente's pageCompute).
		if IsDeflatedCase(ps[i].Data) {
			if dict, err := s.dictOfCase(ctx, q, ps[i].Data); err == nil {
				ps[i].caseDict = dict
			}
		}
	}
	return reqs, ps, nil
}

// readyWithPracticeQuery reads the ready requests of a flow (?1) with id > ?2,
// oldest first, at most ?3, each with its practice.
const readyWithPracticeQuery = readyWithPracticeSelect + ` WHERE r.flow = ? AND r.state = 'ready' AND r.id > ? ORDER BY r.id LIMIT ?`

// scanReadyWithPractices reads the rows of readyWithPracticeSelect, and closes them.
func scanReadyWithPractices(rows *sql.Rows) ([]Request, []Practice, error) {
	defer rows.Close()
	var reqs []Request
	var ps []Practice
	for rows.Next() {
		var r Request
		var p Practice
		var rdata, rcreated, payload string
		var sent, answered sql.NullString
		var sw, since, wo, wc, st, rd, ad, created, updated string
		var data []byte
		var credit, estimate, previous, cmor, charged, collected int64
		err := rows.Scan(&r.ID, &r.PracticeID, &r.Flow, &r.CPUtente, &r.State, &rdata, &r.FileID, &rcreated, &sent, &answered, &r.CauseCode, &r.Motivation, &payload,
			&p.ID, &p.CaseKey, &p.Role, &p.Sector, &p.CompanyPIVA, &p.CPUtente, &p.CPGestore, &p.Point, &p.CustomerID,
			&p.CustomerName, &sw, &p.State, &since, &credit, &estimate, &previous, &cmor, &charged, &collected, &p.CauseCode,
			&p.Motivation, &wo, &wc, &st, &rd, &ad, &p.LinkedID, &data, &created, &updated)
		if err != nil {
			return nil, nil, err
		}
		decodeRequestData(rdata, &r.Data)
		if payload != "" {
			if r.Payload, err = ParsePayload(payload); err != nil {
				return nil, nil, fmt.Errorf("archive: request %d payload: %w", r.ID, err)
			}
		}
		r.CreatedAt, _ = ParseTS(rcreated)
		r.SentAt, r.AnsweredAt = nullTS(sent), nullTS(answered)
		p.SwitchDate, p.WindowOpen, p.WindowClose = parseDateText(sw), parseDateText(wo), parseDateText(wc)
		p.SuspensionTerm, p.RequestDate, p.AnswerDate = parseDateText(st), parseDateText(rd), parseDateText(ad)
		p.StateSince, _ = ParseTS(since)
		p.CreatedAt, _ = ParseTS(created)
		p.UpdatedAt, _ = ParseTS(updated)
		p.Credit, p.Estimate, p.Previous, p.CMOR = flows.Amount(credit), flows.Amount(estimate), flows.Amount(previous), flows.Amount(cmor)
		p.Charged, p.Collected = flows.Amount(charged), flows.Amount(collected)
		p.Data = json.RawMessage(data)
		reqs, ps = append(reqs, r), append(ps, p)
	}
	return reqs, ps, rows.Err()
}
