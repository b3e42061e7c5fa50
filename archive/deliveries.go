package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Delivery is the publication of one archived file to one target.
type Delivery struct {
	ID            int64
	FileID        int64
	Target        string // sftp:<endpoint> | dir:<path>
	RemoteDir     string
	RemoteName    string
	State         string // pending | delivered | failed | abandoned (failed, then closed by a person)
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
	CreatedAt     time.Time
	DeliveredAt   time.Time
	// The remote name conflict that made it fail for good: what the server holds under
	// our name (ConflictSize -1: not known). Zero when there is none.
	Conflict      bool
	ConflictSize  int64
	ConflictMTime time.Time
	ClosedAt      time.Time // abandoned by a person
	ClosedBy      string
	CloseNote     string
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"    // for good: a person must act (cmord deliveries retry|abandon)
	DeliveryAbandoned = "abandoned" // failed, then closed by a person with a note
)

// RemoteConflict is what the server holds under a delivery's remote name when that
// name is taken by other content.
type RemoteConflict struct {
	Size  int64 // -1: not known
	MTime time.Time
}

// QueueDelivery records, inside the transaction that built the file, that it must be
// published. Publishing happens later, so a crash between build and upload loses nothing.
func (s *Store) QueueDelivery(ctx context.Context, tx *sql.Tx, d Delivery) (int64, error) {
	now := d.CreatedAt // the daemon's clock when the caller sets it
	if now.IsZero() {
		now = s.now()
	}
	r, err := tx.ExecContext(ctx, `INSERT INTO deliveries (file_id, target, remote_dir, remote_name, state, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, 'pending', ?, ?)`, d.FileID, d.Target, d.RemoteDir, d.RemoteName, TS(now), TS(now))
	if err != nil {
		return 0, fmt.Errorf("archive: queue delivery of %s: %w", d.RemoteName, err)
	}
	return r.LastInsertId()
}

const deliverySelect = `SELECT id, file_id, target, remote_dir, remote_name, state, attempts, last_error, next_attempt_at, created_at, delivered_at,
	conflict_size, conflict_mtime, closed_at, closed_by, close_note FROM deliveries`

func scanDelivery(row rowScanner) (Delivery, error) {
	var d Delivery
	var next, created string
	var delivered, conflictMTime, closed sql.NullString
	var conflictSize sql.NullInt64
	err := row.Scan(&d.ID, &d.FileID, &d.Target, &d.RemoteDir, &d.RemoteName, &d.State, &d.Attempts, &d.LastError, &next, &created, &delivered,
		&conflictSize, &conflictMTime, &closed, &d.ClosedBy, &d.CloseNote)
	d.NextAttemptAt, _ = ParseTS(next)
	d.CreatedAt, _ = ParseTS(created)
	d.DeliveredAt = nullTS(delivered)
	d.Conflict, d.ConflictSize, d.ConflictMTime = conflictSize.Valid, conflictSize.Int64, nullTS(conflictMTime)
	if d.ClosedAt = nullTS(closed); !d.ClosedAt.IsZero() {
		d.State = DeliveryAbandoned
	}
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
	return s.queryDeliveries(ctx, nil, q+` ORDER BY id`, args...)
}

// Deliveries lists the deliveries of a file.
func (s *Store) Deliveries(ctx context.Context, fileID int64) ([]Delivery, error) {
	return s.queryDeliveries(ctx, nil, deliverySelect+` WHERE file_id = ? ORDER BY id`, fileID)
}

// queryDeliveries runs a deliverySelect query and scans its rows, keeping those keep
// accepts (all when keep is nil: states such as failed and abandoned are told apart
// only once scanned).
func (s *Store) queryDeliveries(ctx context.Context, keep func(Delivery) bool, q string, args ...any) ([]Delivery, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
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
		if keep == nil || keep(d) {
			out = append(out, d)
		}
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
// done, the file becomes "published" and the state changes its builder deferred
// (DeferTransition) are applied, all in one transaction.
func (s *Store) MarkDelivered(ctx context.Context, id int64, remotePath string, size int64) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		d, err := getDelivery(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.State == "delivered" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = '' WHERE id = ?`,
			TS(s.now()), id); err != nil {
			return err
		}
		var left int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE file_id = ? AND state <> 'delivered'`, d.FileID).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE files SET state = 'published', processed_at = ? WHERE id = ?`, TS(s.now()), d.FileID); err != nil {
				return err
			}
			// Only now, in the same transaction: the practices the file moves.
			if _, err := s.applyPublished(ctx, tx, d.FileID, fmt.Sprintf("%s confirmed on %s (size %d checked, renamed)", remotePath, d.Target, size), s.now()); err != nil {
				return err
			}
		}
		return s.AppendEvent(tx, Event{Type: "PUBLISHED", FileID: d.FileID,
			Detail: fmt.Sprintf("%s %s size %d", d.Target, remotePath, size)})
	})
}

// MarkDeliveryFailed records a failed attempt and when to try again. A conflict (the
// remote name holds other content) marks the delivery failed for good: a person must
// act (cmord deliveries retry|abandon), and what the server holds is recorded.
func (s *Store) MarkDeliveryFailed(ctx context.Context, id int64, cause error, next time.Time, conflict *RemoteConflict) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		if conflict == nil {
			_, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?`,
				cause.Error(), TS(next), id)
			return err
		}
		var mtime any
		if !conflict.MTime.IsZero() {
			mtime = TS(conflict.MTime)
		}
		_, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ?, next_attempt_at = ?,
			conflict_size = ?, conflict_mtime = ? WHERE id = ?`, cause.Error(), TS(next), conflict.Size, mtime, id)
		return err
	})
}

// GetDelivery returns one delivery.
func (s *Store) GetDelivery(ctx context.Context, id int64) (Delivery, error) {
	return getDelivery(ctx, s.r, id)
}

// getDelivery reads delivery id on the read pool or in a transaction; a missing one
// is ErrNotFound.
func getDelivery(ctx context.Context, q queryRower, id int64) (Delivery, error) {
	d, err := scanDelivery(q.QueryRowContext(ctx, deliverySelect+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("delivery %d: %w", id, ErrNotFound)
	}
	return d, err
}

// DeliveryFilter selects deliveries for ListDeliveries.
type DeliveryFilter struct {
	States []string // empty: all; "abandoned" and "failed" are told apart
	Target string
}

// ListDeliveries lists deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	q := deliverySelect
	var args []any
	if f.Target != "" {
		q += ` WHERE target = ?`
		args = append(args, f.Target)
	}
	var keep func(Delivery) bool
	if len(f.States) > 0 {
		keep = func(d Delivery) bool { return slices.Contains(f.States, d.State) }
	}
	return s.queryDeliveries(ctx, keep, q+` ORDER BY id DESC`, args...)
}

// RetryDelivery puts a delivery that failed for good back in the queue, due at now,
// by hand: by is who (kept in the event log), newName (optional) a new remote name
// when the old one is taken on the server. It refuses a delivery that is not failed
// (pending ones are retried by the daemon, delivered and abandoned ones are closed) and
// a new name already used by another delivery to the same place.
func (s *Store) RetryDelivery(ctx context.Context, id int64, by, newName string, now time.Time) (Delivery, error) {
	var d Delivery
	err := s.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if d, err = getDelivery(ctx, tx, id); err != nil {
			return err
		}
		if d.State != DeliveryFailed {
			return fmt.Errorf("delivery %d is %s, not failed: %w", id, d.State, ErrDeliveryState)
		}
		detail := fmt.Sprintf("delivery %d of %s to %s re-queued by hand", id, d.RemoteName, d.Target)
		old := d.RemoteName
		if newName != "" && newName != d.RemoteName {
			var other int64
			err := tx.QueryRowContext(ctx, `SELECT id FROM deliveries WHERE target = ? AND remote_dir = ? AND remote_name = ?`,
				d.Target, d.RemoteDir, newName).Scan(&other)
			if err == nil {
				return fmt.Errorf("delivery %d already publishes a file as %s to %s: %w", other, newName, d.Target, ErrDeliveryState)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			detail = fmt.Sprintf("delivery %d of %s to %s re-queued by hand as %s (the name %s is taken on the server)", id, d.RemoteName, d.Target, newName, d.RemoteName)
			d.RemoteName = newName
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', remote_name = ?, next_attempt_at = ?,
			conflict_size = NULL, conflict_mtime = NULL WHERE id = ?`, d.RemoteName, TS(now), id); err != nil {
			return err
		}
		d.State, d.NextAttemptAt, d.Conflict = DeliveryPending, now, false
		if d.RemoteName != old {
			// The old name's exception is closed: the same file goes out under the new
			// name, whose failures (if any) raise their own.
			if _, err := s.ResolveByFingerprint(ctx, tx, UploadFailedFingerprint(d.Target, old), fmt.Sprintf("re-queued as %s by %s", d.RemoteName, by)); err != nil {
				return err
			}
		}
		return s.AppendEvent(tx, Event{Type: "DELIVERY_RETRY", FileID: d.FileID, Actor: "cli:" + by, Detail: detail})
	})
	return d, err
}

// AbandonDelivery closes a delivery by hand, with a note: it is never attempted again
// and shows as abandoned; the file stays unpublished there, so the state changes it
// would have made (archive.DeferTransition) do not happen, and the history of its
// practices says so.
func (s *Store) AbandonDelivery(ctx context.Context, id int64, by, note string, now time.Time) (Delivery, error) {
	var d Delivery
	err := s.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if d, err = getDelivery(ctx, tx, id); err != nil {
			return err
		}
		switch d.State {
		case DeliveryFailed, DeliveryPending:
		default:
			return fmt.Errorf("delivery %d is %s: nothing to abandon: %w", id, d.State, ErrDeliveryState)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'failed', closed_at = ?, closed_by = ?, close_note = ? WHERE id = ?`,
			TS(now), by, note, id); err != nil {
			return err
		}
		d.State, d.ClosedAt, d.ClosedBy, d.CloseNote = DeliveryAbandoned, now, by, note
		// The practices the file carries keep their state (the SII did not get it from
		// us); their history says why it will not change.
		if _, err := tx.ExecContext(ctx, `INSERT INTO practice_history (practice_id, at, from_state, to_state, flow, file_id, line, cause_code, note)
			SELECT p.id, ?, p.state, p.state, '', ?, 0, '', ? FROM practices p
			WHERE p.id IN (SELECT practice_id FROM practice_links WHERE file_id = ? AND relation = 'built')`, TS(now), d.FileID,
			fmt.Sprintf("delivery of %s to %s abandoned by %s: %s", d.RemoteName, d.Target, by, note), d.FileID); err != nil {
			return err
		}
		// Its upload_failed exception is closed with it, by the same person.
		if _, err := s.resolveFingerprint(ctx, tx, UploadFailedFingerprint(d.Target, d.RemoteName), by, "delivery abandoned: "+note); err != nil {
			return err
		}
		return s.AppendEvent(tx, Event{Type: "DELIVERY_ABANDONED", FileID: d.FileID, Actor: "cli:" + by,
			Detail: fmt.Sprintf("delivery %d of %s to %s abandoned: %s", id, d.RemoteName, d.Target, note)})
	})
	return d, err
}

// UploadFailedFingerprint is the fingerprint of the upload_failed exception of a
// delivery: one per target and remote name.
func UploadFailedFingerprint(target, remoteName string) string {
	return "upload_failed|" + target + "|" + remoteName
}

// ErrDeliveryState is a retry or abandon refused because of the delivery's state.
var ErrDeliveryState = errors.New("not possible in this state")

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
	// A fetch recorded as completed (CompletedAt set: a file refused unread, left on
	// the server) is never given to the completion policy.
	var completed any
	if !f.CompletedAt.IsZero() {
		completed = TS(f.CompletedAt)
	}
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO sftp_fetched (endpoint, remote_path, size, mtime, file_id, fetched_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		f.Endpoint, f.RemotePath, f.Size, TS(f.ModTime), f.FileID, TS(s.now()), completed)
	return err
}

// MarkFetchCompleted notes that the completion policy (move/delete) was applied.
func (s *Store) MarkFetchCompleted(ctx context.Context, endpoint, remotePath string, size int64, mtime time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE sftp_fetched SET completed_at = ? WHERE endpoint = ? AND remote_path = ? AND size = ? AND mtime = ?`,
			TS(s.now()), endpoint, remotePath, size, TS(mtime))
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
