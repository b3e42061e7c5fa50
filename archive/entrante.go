package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ReportLine is one entrante.fatturato row kept for the REND report of its period.
type ReportLine struct {
	ID         int64
	PracticeID int64
	Period     string // AAAA-MM
	FileID     int64
	Line       int
	Invoice    string
	Data       map[string]string
	ArrivedAt  time.Time
	RequestID  int64
}

// AddReportLine records a billing line for the report of its period; an earlier
// unreported line of the same practice, invoice and period is superseded by it.
func (s *Store) AddReportLine(ctx context.Context, tx *sql.Tx, l *ReportLine) error {
	if _, err := tx.ExecContext(ctx, `UPDATE entrante_report_lines SET superseded = 1
		WHERE practice_id = ? AND period = ? AND invoice = ? AND request_id IS NULL`, l.PracticeID, l.Period, l.Invoice); err != nil {
		return fmt.Errorf("archive: supersede report line: %w", err)
	}
	data, _ := json.Marshal(nonNil(l.Data))
	r, err := tx.ExecContext(ctx, `INSERT INTO entrante_report_lines (practice_id, period, file_id, line, invoice, data, arrived_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_id, line) DO NOTHING`,
		l.PracticeID, l.Period, l.FileID, l.Line, l.Invoice, string(data), TS(l.ArrivedAt))
	if err != nil {
		return fmt.Errorf("archive: report line: %w", err)
	}
	l.ID, _ = r.LastInsertId()
	return nil
}

// PendingReportPeriods lists the periods (AAAA-MM, oldest first) that have lines not
// yet reported.
func (s *Store) PendingReportPeriods(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := s.q(tx).QueryContext(ctx, `SELECT DISTINCT period FROM entrante_report_lines
		WHERE request_id IS NULL AND superseded = 0 ORDER BY period`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PendingReportLines returns the unreported lines of a period, by practice and invoice.
func (s *Store) PendingReportLines(ctx context.Context, tx *sql.Tx, period string) ([]ReportLine, error) {
	rows, err := s.q(tx).QueryContext(ctx, `SELECT id, practice_id, period, file_id, line, invoice, data, arrived_at, coalesce(request_id, 0)
		FROM entrante_report_lines WHERE period = ? AND request_id IS NULL AND superseded = 0 ORDER BY practice_id, invoice, id`, period)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ReportLine
	for rows.Next() {
		var l ReportLine
		var data, at string
		if err := rows.Scan(&l.ID, &l.PracticeID, &l.Period, &l.FileID, &l.Line, &l.Invoice, &data, &at, &l.RequestID); err != nil {
			return nil, err
		}
		_ = json.Unmarshal([]byte(data), &l.Data)
		l.ArrivedAt, _ = ParseTS(at)
		out = append(out, l)
	}
	return out, rows.Err()
}

// MarkReportLine records the REND request a line was reported in.
func (s *Store) MarkReportLine(ctx context.Context, tx *sql.Tx, id, requestID int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE entrante_report_lines SET request_id = ? WHERE id = ?`, requestID, id)
	return err
}

// BillingLine is one line of an accumulating billing export.
type BillingLine struct {
	ID         int64
	Export     string
	PracticeID int64
	FileID     int64
	Line       int
	Data       map[string]string
	CreatedAt  time.Time
}

// AddBillingLine queues a line for the next export of its kind; the same (export,
// practice, file, line) is recorded once, so re-processing a file adds nothing.
func (s *Store) AddBillingLine(ctx context.Context, tx *sql.Tx, l *BillingLine) (bool, error) {
	data, _ := json.Marshal(nonNil(l.Data))
	at := l.CreatedAt
	if at.IsZero() {
		at = s.now()
	}
	r, err := tx.ExecContext(ctx, `INSERT INTO entrante_billing_lines (export, practice_id, file_id, line, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (export, practice_id, file_id, line) DO NOTHING`,
		l.Export, l.PracticeID, l.FileID, l.Line, string(data), TS(at))
	if err != nil {
		return false, fmt.Errorf("archive: billing line: %w", err)
	}
	n, _ := r.RowsAffected()
	l.ID, _ = r.LastInsertId()
	return n > 0, nil
}

// PendingBillingLines returns the lines of an export not yet exported, oldest first.
func (s *Store) PendingBillingLines(ctx context.Context, tx *sql.Tx, export string, limit int) ([]BillingLine, error) {
	q := `SELECT id, export, practice_id, file_id, line, data, created_at FROM entrante_billing_lines
		WHERE export = ? AND export_file_id IS NULL ORDER BY id`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.q(tx).QueryContext(ctx, q, export)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BillingLine
	for rows.Next() {
		var l BillingLine
		var data, at string
		if err := rows.Scan(&l.ID, &l.Export, &l.PracticeID, &l.FileID, &l.Line, &data, &at); err != nil {
			return nil, err
		}
		_ = json.Unmarshal([]byte(data), &l.Data)
		l.CreatedAt, _ = ParseTS(at)
		out = append(out, l)
	}
	return out, rows.Err()
}

// MarkBillingLinesExported records the export file the lines went into.
func (s *Store) MarkBillingLinesExported(ctx context.Context, tx *sql.Tx, ids []int64, fileID int64) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE entrante_billing_lines SET export_file_id = ? WHERE id = ?`, fileID, id); err != nil {
			return err
		}
	}
	return nil
}

// EntrantePracticesByPoint returns the entrante practices of a point (and customer,
// when given), newest first (tx may be nil).
func (s *Store) EntrantePracticesByPoint(ctx context.Context, tx *sql.Tx, point, customer string) ([]Practice, error) {
	q := practiceSelect + ` WHERE role = 'entrante' AND point = ?`
	args := []any{point}
	if customer != "" {
		// The point's index finds the practices: the customer is a check on them.
		q += ` AND customer_id = ?`
		args = append(args, customer)
	}
	return s.practiceList(ctx, tx, q+` ORDER BY id DESC`, args...)
}

// UncollectedEntrante returns the entrante practices of a customer whose CMOR is not
// fully collected and that are still alive (not annulled or closed), oldest first.
func (s *Store) UncollectedEntrante(ctx context.Context, tx *sql.Tx, customer string) ([]Practice, error) {
	c := strings.ToUpper(customer)
	return s.practiceList(ctx, tx, uncollectedEntranteQuery, c, c)
}

// uncollectedEntranteQuery is UncollectedEntrante's: by the customer lookup.
const uncollectedEntranteQuery = practiceSelect + ` WHERE role = 'entrante' AND ` + customerLookup + ` AND collected_cents < cmor_cents
	AND state NOT IN ('ANNULLED', 'REFUNDED', 'CLOSED') ORDER BY id`

func (s *Store) practiceList(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]Practice, error) {
	rows, err := s.q(tx).QueryContext(ctx, q, args...)
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

// ReadyEntranteRequests lists ready requests of a flow filed for entrante practices,
// with id > after, oldest first.
func (s *Store) ReadyEntranteRequests(ctx context.Context, tx *sql.Tx, flow string, after int64, limit int) ([]Request, error) {
	return s.requestList(ctx, tx, readyEntranteQuery, flow, after, limit)
}

// readyEntranteQuery is ReadyEntranteRequests' query: flow, after, limit. The role
// checked on each ready request's practice (a key search), not the entrante
// practices listed first: the role has no index of its own since 0035
// (practices_state is the state's), and that list read every practice.
const readyEntranteQuery = requestSelect + ` WHERE flow = ? AND state = 'ready' AND id > ?
	AND EXISTS (SELECT 1 FROM practice_rows p WHERE p.id = practice_id AND p.role = 'entrante') ORDER BY id LIMIT ?`

// SetRequestState changes a request's state (e.g. cancelled, invalid) without an answer.
func (s *Store) SetRequestState(ctx context.Context, tx *sql.Tx, id int64, state string) error {
	_, err := tx.ExecContext(ctx, requestStateSet, state, id)
	return err
}
