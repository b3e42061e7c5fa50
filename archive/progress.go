package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cmord/cmord/flows"
)

// FileProgress is how far the committed chunks of an input file reach (see
// migrations/0015_file_progress.sql).
type FileProgress struct {
	Line     int            // every input line <= Line is accounted for
	Counters map[string]int // the handler's own counters so far
	Findings []flows.Finding
}

// LoadProgress returns the progress recorded for a file; ok is false when the file has
// none (it was never started, or it finished).
func (s *Store) LoadProgress(ctx context.Context, tx *sql.Tx, fileID int64) (p FileProgress, ok bool, err error) {
	var state string
	err = s.q(tx).QueryRowContext(ctx, `SELECT line, state FROM file_progress WHERE file_id = ?`, fileID).Scan(&p.Line, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("archive: progress of file #%d: %w", fileID, err)
	}
	if err := json.Unmarshal([]byte(state), &p.Counters); err != nil {
		return p, false, fmt.Errorf("archive: progress of file #%d: %w", fileID, err)
	}
	rows, err := s.q(tx).QueryContext(ctx, `SELECT finding FROM file_progress_findings WHERE file_id = ? ORDER BY id`, fileID)
	if err != nil {
		return p, false, fmt.Errorf("archive: progress findings of file #%d: %w", fileID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			return p, false, err
		}
		var f flows.Finding
		if err := json.Unmarshal([]byte(text), &f); err != nil {
			return p, false, fmt.Errorf("archive: progress findings of file #%d: %w", fileID, err)
		}
		p.Findings = append(p.Findings, f)
	}
	return p, true, rows.Err()
}

// SaveProgress records, inside the transaction that commits a chunk, that every line
// of the file up to line is accounted for, with the handler's counters and the
// findings the chunk added.
func (s *Store) SaveProgress(ctx context.Context, tx *sql.Tx, fileID int64, line int, counters map[string]int, added []flows.Finding) error {
	state, err := json.Marshal(counters)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO file_progress (file_id, line, state, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (file_id) DO UPDATE SET line = excluded.line, state = excluded.state, updated_at = excluded.updated_at`,
		fileID, line, string(state), TS(s.now())); err != nil {
		return fmt.Errorf("archive: save progress of file #%d: %w", fileID, err)
	}
	for _, f := range added {
		text, err := json.Marshal(f)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO file_progress_findings (file_id, finding) VALUES (?, ?)`, fileID, string(text)); err != nil {
			return fmt.Errorf("archive: save progress of file #%d: %w", fileID, err)
		}
	}
	return nil
}

// ClearProgress forgets a file's progress, in the transaction that finishes it.
func (s *Store) ClearProgress(ctx context.Context, tx *sql.Tx, fileID int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM file_progress_findings WHERE file_id = ?`, fileID); err != nil {
		return fmt.Errorf("archive: clear progress of file #%d: %w", fileID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM file_progress WHERE file_id = ?`, fileID); err != nil {
		return fmt.Errorf("archive: clear progress of file #%d: %w", fileID, err)
	}
	return nil
}
