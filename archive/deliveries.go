package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Delivery is the publication of one archived file to one target.
type Delivery struct {
	ID            int64
	FileID        int64
	Target        string // sftp:<endpoint> | dir:<path>
	RemoteDir     string
	RemoteName    string
	State         string // pending | delivered | failed
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
	CreatedAt     time.Time
	DeliveredAt   time.Time
}

// QueueDelivery records, inside the transaction that built the file, that it must be
// published. Publishing happens later, so a crash between build and upload loses nothing.
func (s *Store) QueueDelivery(ctx context.Context, tx *sql.Tx, d Delivery) (int64, error) {
	now := d.CreatedAt // the daemon's clock when the caller sets it
	if now.IsZero() {
		now = time.Now()
	}
	r, err := tx.ExecContext(ctx, `INSERT INTO deliveries (file_id, target, remote_dir, remote_name, state, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, 'pending', ?, ?)`, d.FileID, d.Target, d.RemoteDir, d.RemoteName, TS(now), TS(now))
	if err != nil {
		return 0, fmt.Errorf("archive: queue delivery of %s: %w", d.RemoteName, err)
	}
	return r.LastInsertId()
}

const deliverySelect = `SELECT id, file_id, target, remote_dir, remote_name, state, attempts, last_error, next_attempt_at, created_at, delivered_at FROM deliveries`

func scanDelivery(row rowScanner) (Delivery, error) {
	var d Delivery
	var next, created string
	var delivered sql.NullString
	err := row.Scan(&d.ID, &d.FileID, &d.Target, &d.RemoteDir, &d.RemoteName, &d.State, &d.Attempts, &d.LastError, &next, &created, &delivered)
	d.NextAttemptAt, _ = ParseTS(next)
	d.CreatedAt, _ = ParseTS(created)
	d.DeliveredAt = nullTS(delivered)
	return d, err
}

// DueDeliveries returns pending deliveries whose next attempt is due, oldest first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, target string) ([]Delivery, error) {
	q := deliverySelect + ` WHERE state = 'pending' AND next_attempt_at <= ?`
	args := []any{TS(now)}
	if target != "" {
		q += ` AND target = ?`
		args = append(args, target)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Deliveries lists the deliveries of a file.
func (s *Store) Deliveries(ctx context.Context, fileID int64) ([]Delivery, error) {
	rows, err := s.r.QueryContext(ctx, deliverySelect+` WHERE file_id = ? ORDER BY id`, fileID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PendingDeliveries counts pending deliveries (queue depth).
func (s *Store) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE state = 'pending'`).Scan(&n)
	return n, err
}

// MarkDelivered records a successful publication; when every delivery of the file is
// done, the file becomes "published".
func (s *Store) MarkDelivered(ctx context.Context, id int64, remotePath string, size int64) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		d, err := scanDelivery(tx.QueryRowContext(ctx, deliverySelect+` WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delivery %d: %w", id, ErrNotFound)
		} else if err != nil {
			return err
		}
		if d.State == "delivered" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = '' WHERE id = ?`,
			TS(time.Now()), id); err != nil {
			return err
		}
		var left int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE file_id = ? AND state <> 'delivered'`, d.FileID).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE files SET state = 'published', processed_at = ? WHERE id = ?`, TS(time.Now()), d.FileID); err != nil {
				return err
			}
		}
		return s.AppendEvent(tx, Event{Type: "PUBLISHED", FileID: d.FileID,
			Detail: fmt.Sprintf("%s %s size %d", d.Target, remotePath, size)})
	})
}

// MarkDeliveryFailed records a failed attempt and when to try again. permanent marks
// the delivery failed for good (a person must act).
func (s *Store) MarkDeliveryFailed(ctx context.Context, id int64, cause error, next time.Time, permanent bool) error {
	state := "pending"
	if permanent {
		state = "failed"
	}
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?`,
			state, cause.Error(), TS(next), id)
		return err
	})
}

// ReleaseBackoff makes every pending delivery to target due at now: the target was
// just reached, so the files that waited out an outage go at once instead of each
// waiting out its own backoff (which doubles up to an hour per file). It returns how
// many deliveries were brought forward.
func (s *Store) ReleaseBackoff(ctx context.Context, target string, now time.Time) (int64, error) {
	var n int64
	err := s.Write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE deliveries SET next_attempt_at = ? WHERE state = 'pending' AND target = ? AND next_attempt_at > ?`,
			TS(now), target, TS(now))
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	return n, err
}

// Fetched is one file fetched from an SFTP endpoint.
type Fetched struct {
	Endpoint, RemotePath string
	Size                 int64
	ModTime              time.Time
	FileID               int64
	FetchedAt            time.Time
	CompletedAt          time.Time
}

// WasFetched reports whether this (endpoint, path, size, mtime) was already fetched.
func (s *Store) WasFetched(ctx context.Context, endpoint, remotePath string, size int64, mtime time.Time) (Fetched, bool, error) {
	var f Fetched
	var fetched string
	var completed sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT file_id, fetched_at, completed_at FROM sftp_fetched WHERE endpoint = ? AND remote_path = ? AND size = ? AND mtime = ?`,
		endpoint, remotePath, size, TS(mtime)).Scan(&f.FileID, &fetched, &completed)
	if errors.Is(err, sql.ErrNoRows) {
		return f, false, nil
	}
	if err != nil {
		return f, false, err
	}
	f.Endpoint, f.RemotePath, f.Size, f.ModTime = endpoint, remotePath, size, mtime
	f.FetchedAt, _ = ParseTS(fetched)
	f.CompletedAt = nullTS(completed)
	return f, true, nil
}

// RecordFetched notes a fetched file inside tx (the same transaction that indexes it).
func (s *Store) RecordFetched(ctx context.Context, tx *sql.Tx, f Fetched) error {
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO sftp_fetched (endpoint, remote_path, size, mtime, file_id, fetched_at) VALUES (?, ?, ?, ?, ?, ?)`,
		f.Endpoint, f.RemotePath, f.Size, TS(f.ModTime), f.FileID, TS(time.Now()))
	return err
}

// MarkFetchCompleted notes that the completion policy (move/delete) was applied.
func (s *Store) MarkFetchCompleted(ctx context.Context, endpoint, remotePath string, size int64, mtime time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE sftp_fetched SET completed_at = ? WHERE endpoint = ? AND remote_path = ? AND size = ? AND mtime = ?`,
			TS(time.Now()), endpoint, remotePath, size, TS(mtime))
		return err
	})
}

// UncompletedFetches lists fetched files whose completion policy was not yet applied.
func (s *Store) UncompletedFetches(ctx context.Context, endpoint string) ([]Fetched, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT remote_path, size, mtime, file_id FROM sftp_fetched WHERE endpoint = ? AND completed_at IS NULL`, endpoint)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Fetched
	for rows.Next() {
		f := Fetched{Endpoint: endpoint}
		var mt string
		if err := rows.Scan(&f.RemotePath, &f.Size, &mt, &f.FileID); err != nil {
			return nil, err
		}
		f.ModTime, _ = ParseTS(mt)
		out = append(out, f)
	}
	return out, rows.Err()
}
