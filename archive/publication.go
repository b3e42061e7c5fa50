package archive

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// PendingTransition is a state change a built file makes once it is published: see
// migration 0018. PracticeID 0 means every practice linked to the file as "built"
// that is still in From.
type PendingTransition struct {
	FileID     int64
	PracticeID int64
	From, To   string
	Flow       string
	Note       string // the history note written when it is applied
	At         time.Time
}

// DeferTransition records, inside the transaction that builds a file, a state change
// that happens when the file is published (MarkDelivered).
func (s *Store) DeferTransition(ctx context.Context, tx *sql.Tx, t PendingTransition) error {
	if t.At.IsZero() {
		t.At = s.now()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO pending_transitions (file_id, practice_id, from_state, to_state, flow, note, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, t.FileID, t.PracticeID, t.From, t.To, t.Flow, t.Note, TS(t.At))
	if err != nil {
		return fmt.Errorf("archive: defer transition for file %d: %w", t.FileID, err)
	}
	return nil
}

// applyPublished applies, inside the transaction that marks the file published, the
// state changes its builder deferred. A practice that left the From state meanwhile
// (annulled while its request waited for the SII) is left alone. It returns how many
// practices moved.
func (s *Store) applyPublished(ctx context.Context, tx *sql.Tx, fileID int64, detail string, at time.Time) (int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT practice_id, from_state, to_state, flow, note FROM pending_transitions WHERE file_id = ? ORDER BY id`, fileID)
	if err != nil {
		return 0, err
	}
	var pend []PendingTransition
	for rows.Next() {
		t := PendingTransition{FileID: fileID}
		if err := rows.Scan(&t.PracticeID, &t.From, &t.To, &t.Flow, &t.Note); err != nil {
			rows.Close()
			return 0, err
		}
		pend = append(pend, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var moved int64
	for _, t := range pend {
		which := `SELECT practice_id FROM practice_links WHERE file_id = ? AND relation = 'built'`
		args := []any{fileID}
		if t.PracticeID != 0 {
			which, args = `SELECT ?`, []any{t.PracticeID}
		}
		note := t.Note
		if note == "" {
			note = "published"
		}
		note += ": " + detail
		hargs := append([]any{TS(at), t.From, t.To, t.Flow, fileID, note, t.From}, args...)
		if _, err := tx.ExecContext(ctx, `INSERT INTO practice_history (practice_id, at, from_state, to_state, flow, file_id, line, cause_code, note)
			SELECT id, ?, ?, ?, ?, ?, 0, '', ? FROM practices WHERE state = ? AND id IN (`+which+`)`, hargs...); err != nil {
			return moved, fmt.Errorf("archive: history of published file %d: %w", fileID, err)
		}
		r, err := tx.ExecContext(ctx, `UPDATE practice_state SET state = ?, state_since = ?, updated_at = ? WHERE state = ? AND id IN (`+which+`)`,
			append([]any{t.To, TS(at), s.updatedAtSince(TS(at)), t.From}, args...)...)
		if err != nil {
			return moved, fmt.Errorf("archive: practices of published file %d to %s: %w", fileID, t.To, err)
		}
		n, _ := r.RowsAffected()
		moved += n
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pending_transitions WHERE file_id = ?`, fileID); err != nil {
		return moved, err
	}
	return moved, nil
}

// AwaitingPublication counts the practices whose state change waits for the
// publication of file fileID.
func (s *Store) AwaitingPublication(ctx context.Context, fileID int64) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, awaitingPublicationSQL, fileID).Scan(&n)
	return n, err
}

// awaitingPublicationSQL is AwaitingPublication's query. The file is the parameter
// in the subquery too, not pending_transitions.file_id: SQLite pushes a constant into
// each arm of the view practice_links (an index search of the file's links), not a
// column of the outer query (a scan of every link, stored or stood for). The state is
// only a check (+): since migration 0035 it is on the id's side of the view, and
// SQLite would walk every practice in that state (every practice a big build left
// BUILT, for each file) instead of the file's links.
const awaitingPublicationSQL = `SELECT coalesce(sum(CASE WHEN practice_id = 0 THEN
	(SELECT count(DISTINCT p.id) FROM practice_links pf JOIN practices p ON p.id = pf.practice_id
	 WHERE pf.file_id = ?1 AND pf.relation = 'built' AND +p.state = pending_transitions.from_state)
	ELSE 1 END), 0) FROM pending_transitions WHERE file_id = ?1`
