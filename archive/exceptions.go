package archive

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cmord/cmord/flows"
)

// Exception severities.
const (
	SevUrgent = "urgent" // mailed at once (host key mismatch, SII unreachable, deadline within 2 working days)
	SevHigh   = "high"
	SevNormal = "normal"
	SevLow    = "low"
)

// Exception is something a person must look at.
type Exception struct {
	ID          int64
	Fingerprint string // identity: a repeat with the same fingerprint bumps Count
	Kind        string // e.g. row_refused, file_rejected, sii_refusal, no_answer, window_closing, hostkey_mismatch, ...
	Severity    string
	Owner       string // operator | compliance | sysadmin
	FileID      int64
	Line        int
	Field       string
	Rule        string
	Value       string
	PracticeID  int64
	Subject     string
	Message     string
	Action      string
	DueOn       string // ISO date
	FirstSeen   time.Time
	LastSeen    time.Time
	Count       int
	ResolvedAt  time.Time
	Resolution  string
	ResolvedBy  string
	AlertedAt   time.Time // last urgent mail about the current occurrence
	// OpenedAt is when the current occurrence began: FirstSeen, or the moment an
	// automatically resolved exception was raised again (reopened).
	OpenedAt time.Time
}

// Open reports whether the exception is unresolved.
func (e Exception) Open() bool { return e.ResolvedAt.IsZero() }

// RaiseException records e inside tx. If an exception with the same fingerprint exists,
// its count and last-seen time are bumped (and it is reopened if it had been resolved
// automatically); otherwise a new one is created. It returns the exception id and
// whether it is new (or newly reopened).
func (s *Store) RaiseException(ctx context.Context, tx *sql.Tx, e Exception) (int64, bool, error) {
	if e.Fingerprint == "" {
		e.Fingerprint = strings.Join([]string{e.Kind, e.Subject, fmt.Sprint(e.FileID), fmt.Sprint(e.Line),
			e.Field, e.Rule, fmt.Sprint(e.PracticeID)}, "|")
	}
	e.Bound()
	if e.Severity == "" {
		e.Severity = SevNormal
	}
	if e.Owner == "" {
		e.Owner = "operator"
	}
	now := e.LastSeen
	if now.IsZero() {
		now = s.now()
	}
	var id int64
	var resolved sql.NullString
	var resolvedBy string
	err := tx.QueryRowContext(ctx, `SELECT id, resolved_at, resolved_by FROM exceptions WHERE fingerprint = ?`, e.Fingerprint).Scan(&id, &resolved, &resolvedBy)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		r, err := tx.ExecContext(ctx, `INSERT INTO exceptions (fingerprint, kind, severity, owner, file_id, line, field, rule, value,
			practice_id, subject, message, action, due_on, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Fingerprint, e.Kind, e.Severity, e.Owner, e.FileID, e.Line, e.Field, e.Rule, e.Value,
			e.PracticeID, e.Subject, e.Message, e.Action, e.DueOn, TS(now), TS(now))
		if err != nil {
			return 0, false, fmt.Errorf("archive: raise exception: %w", err)
		}
		id, _ = r.LastInsertId()
		return id, true, nil
	case err != nil:
		return 0, false, err
	}
	// A person's resolution stands: a repeat only bumps the counter. An automatic
	// resolution (the condition cleared) is undone when the condition comes back, as a
	// new occurrence: it starts now and has not been alerted yet, so an urgent one is
	// mailed again (the alert of the previous occurrence says nothing about this one).
	reopen := resolved.Valid && resolvedBy == "auto"
	q := `UPDATE exceptions SET count = count + 1, last_seen = ?, message = ?, severity = ?, due_on = ?, action = ?`
	args := []any{TS(now), e.Message, e.Severity, e.DueOn, e.Action}
	if reopen {
		q += `, resolved_at = NULL, resolution = '', resolved_by = '', alerted_at = NULL, opened_at = ?`
		args = append(args, TS(now))
	}
	if _, err := tx.ExecContext(ctx, q+` WHERE id = ?`, append(args, id)...); err != nil {
		return 0, false, err
	}
	return id, reopen, nil
}

// maxFingerprint bounds an exception's identity; a longer one (built from an outside
// value) is kept as its start and the SHA-256 of the whole, still unique.
const maxFingerprint = 512

// Bound bounds and escapes everything of e that may come from outside (names, values,
// the SII's texts quoted in messages): an exception costs at most a few KiB in the
// index, the CLI, the digest and its CSV, whatever the input held. RaiseException
// applies it; display points apply it again (it changes nothing the second time).
func (e *Exception) Bound() {
	if len(e.Fingerprint) > maxFingerprint {
		sum := sha256.Sum256([]byte(e.Fingerprint))
		e.Fingerprint = e.Fingerprint[:maxFingerprint-65] + "|" + hex.EncodeToString(sum[:])
	}
	e.Subject = flows.Shown(e.Subject, flows.MaxNameLen)
	e.Field = flows.Shown(e.Field, flows.MaxNameLen)
	e.Rule = flows.Shown(e.Rule, flows.MaxNameLen)
	e.Value = flows.Shown(e.Value, flows.MaxValueLen)
	e.Message = flows.EscapeText(flows.Truncate(e.Message, flows.MaxMessageLen))
	e.Action = flows.EscapeText(flows.Truncate(e.Action, flows.MaxMessageLen))
}

// ResolveException closes an exception by id. by is "auto" when the condition cleared,
// or who resolved it by hand.
func (s *Store) ResolveException(ctx context.Context, tx *sql.Tx, id int64, by, note string) error {
	r, err := tx.ExecContext(ctx, `UPDATE exceptions SET resolved_at = ?, resolution = ?, resolved_by = ? WHERE id = ? AND resolved_at IS NULL`,
		TS(s.now()), note, by, id)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		var exists int
		_ = tx.QueryRowContext(ctx, `SELECT count(*) FROM exceptions WHERE id = ?`, id).Scan(&exists)
		if exists == 0 {
			return fmt.Errorf("exception %d: %w", id, ErrNotFound)
		}
		return fmt.Errorf("exception %d is already resolved", id)
	}
	return nil
}

// ResolveByFingerprint closes the open exception with that fingerprint, if any
// (the condition cleared). It returns whether one was closed.
func (s *Store) ResolveByFingerprint(ctx context.Context, tx *sql.Tx, fingerprint, note string) (bool, error) {
	return s.resolveFingerprint(ctx, tx, fingerprint, "auto", note)
}

// resolveFingerprint closes the open exception with that fingerprint, if any, as
// resolved by by ("auto", or who acted by hand).
func (s *Store) resolveFingerprint(ctx context.Context, tx *sql.Tx, fingerprint, by, note string) (bool, error) {
	bounded := Exception{Fingerprint: fingerprint} // as RaiseException stored it
	bounded.Bound()
	fingerprint = bounded.Fingerprint
	r, err := tx.ExecContext(ctx, `UPDATE exceptions SET resolved_at = ?, resolution = ?, resolved_by = ? WHERE fingerprint = ? AND resolved_at IS NULL`,
		TS(s.now()), note, by, fingerprint)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

// ResolvePracticesKind is ResolvePracticeKind for many practices in one statement (a
// built file's: one UPDATE however many requests it carries).
func (s *Store) ResolvePracticesKind(ctx context.Context, tx *sql.Tx, kind string, practiceIDs []int64, note string) (int64, error) {
	if len(practiceIDs) == 0 {
		return 0, nil
	}
	ids, _ := json.Marshal(practiceIDs)
	r, err := tx.ExecContext(ctx, `UPDATE exceptions SET resolved_at = ?, resolution = ?, resolved_by = 'auto'
		WHERE kind = ? AND resolved_at IS NULL AND practice_id IN (SELECT value FROM json_each(?))`, TS(s.now()), note, kind, string(ids))
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// ResolvePracticeKind closes the open exceptions of one kind about one practice (the
// action they asked for was taken). It returns how many were closed.
func (s *Store) ResolvePracticeKind(ctx context.Context, tx *sql.Tx, kind string, practiceID int64, note string) (int64, error) {
	r, err := tx.ExecContext(ctx, `UPDATE exceptions SET resolved_at = ?, resolution = ?, resolved_by = 'auto'
		WHERE practice_id = ? AND practice_id <> 0 AND kind = ? AND resolved_at IS NULL`, TS(s.now()), note, practiceID, kind)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// ExceptionFilter selects exceptions.
type ExceptionFilter struct {
	Open       *bool // nil: all
	Kind       string
	Severity   string
	Owner      string
	PracticeID int64
	FileID     int64
	Since      time.Time // first seen at or after
	Limit      int
}

const exceptionSelect = `SELECT id, fingerprint, kind, severity, owner, file_id, line, field, rule, value, practice_id,
	subject, message, action, due_on, first_seen, last_seen, count, resolved_at, resolution, resolved_by, alerted_at, opened_at FROM exceptions`

// Exceptions lists exceptions, most severe and newest first.
func (s *Store) Exceptions(ctx context.Context, f ExceptionFilter) ([]Exception, error) {
	var where []string
	var args []any
	if f.Open != nil {
		if *f.Open {
			where = append(where, "resolved_at IS NULL")
		} else {
			where = append(where, "resolved_at IS NOT NULL")
		}
	}
	for _, c := range []struct {
		col string
		v   any
		set bool
	}{{"kind", f.Kind, f.Kind != ""}, {"severity", f.Severity, f.Severity != ""}, {"owner", f.Owner, f.Owner != ""},
		{"file_id", f.FileID, f.FileID != 0}} {
		if c.set {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if f.PracticeID != 0 {
		// A practice also carries the exceptions of the flow files it waits on: built
		// with it, not yet published (a failed delivery holds its state change).
		where = append(where, `(practice_id = ? OR (file_id <> 0 AND file_id IN (SELECT pf.file_id FROM practice_links pf
			JOIN files fl ON fl.id = pf.file_id WHERE pf.practice_id = ? AND pf.relation = 'built' AND fl.state <> 'published')))`)
		args = append(args, f.PracticeID, f.PracticeID)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "first_seen >= ?"), append(args, TS(f.Since))
	}
	q := exceptionSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY CASE severity WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Exception
	for rows.Next() {
		e, err := scanException(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// GetException returns one exception.
func (s *Store) GetException(ctx context.Context, id int64) (Exception, error) {
	e, err := scanException(s.r.QueryRowContext(ctx, exceptionSelect+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("exception %d: %w", id, ErrNotFound)
	}
	return e, err
}

func scanException(row rowScanner) (Exception, error) {
	var e Exception
	var first, last string
	var resolved, alerted, opened sql.NullString
	err := row.Scan(&e.ID, &e.Fingerprint, &e.Kind, &e.Severity, &e.Owner, &e.FileID, &e.Line, &e.Field, &e.Rule, &e.Value,
		&e.PracticeID, &e.Subject, &e.Message, &e.Action, &e.DueOn, &first, &last, &e.Count, &resolved, &e.Resolution, &e.ResolvedBy, &alerted, &opened)
	if err != nil {
		return e, err
	}
	e.FirstSeen, _ = ParseTS(first)
	e.LastSeen, _ = ParseTS(last)
	e.ResolvedAt = nullTS(resolved)
	e.AlertedAt = nullTS(alerted)
	if e.OpenedAt = nullTS(opened); e.OpenedAt.IsZero() {
		e.OpenedAt = e.FirstSeen
	}
	return e, nil
}

// MarkAlerted records that an urgent mail about these exceptions was queued.
func (s *Store) MarkAlerted(ctx context.Context, tx *sql.Tx, at time.Time, ids ...int64) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE exceptions SET alerted_at = ? WHERE id = ?`, TS(at), id); err != nil {
			return err
		}
	}
	return nil
}
