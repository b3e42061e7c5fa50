package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ScheduleLedger is the run ledger of daemon/sched (table schedule_runs): one row per
// job slot, keyed by the slot's UTC instant.
type ScheduleLedger struct{ s *Store }

// ScheduleLedger returns the store's schedule ledger.
func (s *Store) ScheduleLedger() *ScheduleLedger { return &ScheduleLedger{s: s} }

// ScheduleRun is one row of the ledger.
type ScheduleRun struct {
	Job        string
	Slot       time.Time
	State      string // running | ok | failed | skipped
	Manual     bool
	StartedAt  time.Time
	FinishedAt time.Time
	Error      string // failure message or skip reason
}

// LastSlot returns the latest scheduled (non-manual) slot recorded for job, whatever
// its state: catch-up after a restart starts after it.
func (l *ScheduleLedger) LastSlot(ctx context.Context, job string) (time.Time, bool, error) {
	var slot sql.NullString
	err := l.s.Read().QueryRowContext(ctx,
		`SELECT max(slot_utc) FROM schedule_runs WHERE job = ? AND manual = 0`, job).Scan(&slot)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("archive: last slot of %s: %w", job, err)
	}
	if !slot.Valid {
		return time.Time{}, false, nil
	}
	t, err := ParseTS(slot.String)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("archive: last slot of %s: %w", job, err)
	}
	return t, true, nil
}

// Begin records slot as running. It returns false, changing nothing, if the slot is
// already on record in any state: that is what makes a slot run once.
func (l *ScheduleLedger) Begin(ctx context.Context, job string, slot time.Time, manual bool) (bool, error) {
	var inserted bool
	err := l.s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO schedule_runs (job, slot_utc, state, manual, started_at)
			VALUES (?, ?, 'running', ?, ?) ON CONFLICT (job, slot_utc) DO NOTHING`,
			job, TS(slot), manual, TS(time.Now()))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		inserted = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("archive: begin %s at %s: %w", job, TS(slot), err)
	}
	return inserted, nil
}

// Finish records the outcome of a begun slot.
func (l *ScheduleLedger) Finish(ctx context.Context, job string, slot time.Time, runErr error) error {
	state, msg := "ok", ""
	if runErr != nil {
		state, msg = "failed", runErr.Error()
	}
	err := l.s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE schedule_runs SET state = ?, error = ?, finished_at = ?
			WHERE job = ? AND slot_utc = ? AND state = 'running'`, state, msg, TS(time.Now()), job, TS(slot))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errors.New("no running row")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: finish %s at %s: %w", job, TS(slot), err)
	}
	return nil
}

// Skipped records slots that did not run, with the reason; slots already on record
// keep their row.
func (l *ScheduleLedger) Skipped(ctx context.Context, job string, slots []time.Time, reason string) error {
	if len(slots) == 0 {
		return nil
	}
	now := TS(time.Now())
	err := l.s.Write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO schedule_runs (job, slot_utc, state, finished_at, error)
			VALUES (?, ?, 'skipped', ?, ?) ON CONFLICT (job, slot_utc) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, slot := range slots {
			if _, err := stmt.ExecContext(ctx, job, TS(slot), now, reason); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: record skipped slots of %s: %w", job, err)
	}
	return nil
}

// MarkInterrupted turns rows left 'running' by a process that died into 'failed'
// ("interrupted by restart") and returns them by job. Call once at startup, before any
// job runs. The slot is not re-run: the next slot picks up the pending work.
func (l *ScheduleLedger) MarkInterrupted(ctx context.Context) (map[string][]time.Time, error) {
	out := map[string][]time.Time{}
	err := l.s.Write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT job, slot_utc FROM schedule_runs WHERE state = 'running' ORDER BY job, slot_utc`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var job, slot string
			if err := rows.Scan(&job, &slot); err != nil {
				return err
			}
			t, err := ParseTS(slot)
			if err != nil {
				return err
			}
			out[job] = append(out[job], t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE schedule_runs SET state = 'failed', error = 'interrupted by restart', finished_at = ?
			WHERE state = 'running'`, TS(time.Now()))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("archive: mark interrupted runs: %w", err)
	}
	return out, nil
}

// ScheduleRuns lists the ledger rows of job (all jobs if empty), newest first, at most
// limit (0 = 100).
func (l *ScheduleLedger) ScheduleRuns(ctx context.Context, job string, limit int) ([]ScheduleRun, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := l.s.Read().QueryContext(ctx, `SELECT job, slot_utc, state, manual, started_at, finished_at, error
		FROM schedule_runs WHERE (? = '' OR job = ?) ORDER BY slot_utc DESC, job LIMIT ?`, job, job, limit)
	if err != nil {
		return nil, fmt.Errorf("archive: schedule runs: %w", err)
	}
	defer rows.Close()
	var out []ScheduleRun
	for rows.Next() {
		var r ScheduleRun
		var slot string
		var started, finished sql.NullString
		if err := rows.Scan(&r.Job, &slot, &r.State, &r.Manual, &started, &finished, &r.Error); err != nil {
			return nil, fmt.Errorf("archive: schedule runs: %w", err)
		}
		if r.Slot, err = ParseTS(slot); err != nil {
			return nil, fmt.Errorf("archive: schedule runs: %w", err)
		}
		r.StartedAt, r.FinishedAt = nullTS(started), nullTS(finished)
		out = append(out, r)
	}
	return out, rows.Err()
}

// RanBetween reports whether job completed a run (state ok, scheduled or manual) for
// a slot in [from, to): "did the digest go out that day?".
func (l *ScheduleLedger) RanBetween(ctx context.Context, job string, from, to time.Time) (bool, error) {
	var n int
	err := l.s.Read().QueryRowContext(ctx, `SELECT count(*) FROM schedule_runs WHERE job = ? AND state = 'ok' AND slot_utc >= ? AND slot_utc < ?`,
		job, TS(from), TS(to)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("archive: runs of %s: %w", job, err)
	}
	return n > 0, nil
}
