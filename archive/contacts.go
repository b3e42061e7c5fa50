package archive

import (
	"context"
	"database/sql"
	"time"
)

// NoteContact records the outcome of talking to an endpoint and returns since when it
// has been failing (zero when the contact succeeded).
func (s *Store) NoteContact(ctx context.Context, endpoint string, ok bool, at time.Time) (time.Time, error) {
	var since time.Time
	err := s.Write(ctx, func(tx *sql.Tx) error {
		if ok {
			_, err := tx.ExecContext(ctx, `INSERT INTO endpoint_contacts (endpoint, last_ok, failing_since) VALUES (?, ?, NULL)
				ON CONFLICT (endpoint) DO UPDATE SET last_ok = excluded.last_ok, failing_since = NULL`, endpoint, TS(at))
			return err
		}
		var fs sql.NullString
		err := tx.QueryRowContext(ctx, `INSERT INTO endpoint_contacts (endpoint, failing_since) VALUES (?, ?)
			ON CONFLICT (endpoint) DO UPDATE SET failing_since = coalesce(failing_since, excluded.failing_since)
			RETURNING failing_since`, endpoint, TS(at)).Scan(&fs)
		since = nullTS(fs)
		return err
	})
	return since, err
}
