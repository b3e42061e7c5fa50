package archive

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Run is one row of the run ledger (table daemon_runs, migration 0041): one start of
// the daemon. A run that is not the one running and has no StoppedAt ended unclean (a
// panic, the OOM killer, kill -9, a fatal error, a power cut).
type Run struct {
	ID        int64
	StartedAt time.Time
	PID       int
	Version   string
	UpAt      time.Time // when it had stayed up long enough to count as healthy; zero if it never did
	StoppedAt time.Time // its clean stop; zero if it never recorded one
	Error     string    // what it could record before dying (a panic's message, a fatal error)
	ErrorAt   time.Time
}

// Clean reports whether the run recorded a clean stop.
func (r Run) Clean() bool { return !r.StoppedAt.IsZero() }

// RunsKept is how many runs the ledger keeps (StartRun removes older ones): ten times
// MaxUncleanStreak, about a day of restarts every 10 s. Tests set it smaller.
var RunsKept = 10 * MaxUncleanStreak

// StartRun records the start of a daemon run and returns its id.
func (s *Store) StartRun(ctx context.Context, pid int, version string, at time.Time) (int64, error) {
	var id int64
	err := s.Write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO daemon_runs (started_at, pid, version) VALUES (?, ?, ?)`, TS(at), pid, version)
		if err != nil {
			return err
		}
		if id, err = r.LastInsertId(); err != nil {
			return err
		}
		// The ledger keeps the newest RunsKept runs: a daemon that systemd restarts
		// every few seconds for days adds a row each time, and nothing reads further
		// back than MaxUncleanStreak.
		_, err = tx.ExecContext(ctx, `DELETE FROM daemon_runs WHERE id <= ?`, id-int64(RunsKept))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("archive: record run start: %w", err)
	}
	return id, nil
}

// MarkRunUp records that run id has stayed up long enough to count as healthy.
func (s *Store) MarkRunUp(ctx context.Context, id int64, at time.Time) error {
	return s.runUpdate(ctx, "mark run up", `UPDATE daemon_runs SET up_at = ? WHERE id = ? AND up_at IS NULL`, TS(at), id)
}

// StopRun records the clean stop of run id.
func (s *Store) StopRun(ctx context.Context, id int64, at time.Time) error {
	return s.runUpdate(ctx, "record run stop", `UPDATE daemon_runs SET stopped_at = ? WHERE id = ?`, TS(at), id)
}

// RunError records what ended run id (a panic's message, the error that ended the
// daemon) before the process dies. The run stays unclean.
func (s *Store) RunError(ctx context.Context, id int64, msg string, at time.Time) error {
	return s.runUpdate(ctx, "record run error", `UPDATE daemon_runs SET error = ?, error_at = ? WHERE id = ?`, msg, TS(at), id)
}

func (s *Store) runUpdate(ctx context.Context, what, q string, args ...any) error {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("archive: %s: %w", what, err)
	}
	return nil
}

// Runs returns the latest runs, newest first, at most limit (0 = 100), those before
// run before only when before is not 0.
func (s *Store) Runs(ctx context.Context, before int64, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.Read().QueryContext(ctx, `SELECT id, started_at, pid, version, up_at, stopped_at, error, error_at
		FROM daemon_runs WHERE (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`, before, before, limit)
	if err != nil {
		return nil, fmt.Errorf("archive: runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var started string
		var up, stopped, errAt sql.NullString
		if err := rows.Scan(&r.ID, &started, &r.PID, &r.Version, &up, &stopped, &r.Error, &errAt); err != nil {
			return nil, fmt.Errorf("archive: runs: %w", err)
		}
		if r.StartedAt, err = ParseTS(started); err != nil {
			return nil, fmt.Errorf("archive: runs: %w", err)
		}
		r.UpAt, r.StoppedAt, r.ErrorAt = nullTS(up), nullTS(stopped), nullTS(errAt)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: runs: %w", err)
	}
	return out, nil
}

// UncleanStreak is the unclean exits in a row before a run.
type UncleanStreak struct {
	// Exits counts the runs in a row, newest first, that ended without a clean stop,
	// back to (and including) the first one that had stayed up (a run that worked,
	// then died: where a loop begins). 0: the latest run stopped cleanly, or there was
	// none.
	Exits int
	Since time.Time // the start of the oldest of them
	Last  Run       // the latest of them
}

// MaxUncleanStreak bounds how far back UncleanStreakBefore reads: more exits in a row
// than this are counted as this many.
const MaxUncleanStreak = 1000

// UncleanStreakBefore counts the unclean exits in a row before run before (0: before
// any run, i.e. all runs, when no daemon is running: `cmord alert --unit-failed`).
func (s *Store) UncleanStreakBefore(ctx context.Context, before int64) (UncleanStreak, error) {
	runs, err := s.Runs(ctx, before, MaxUncleanStreak)
	if err != nil {
		return UncleanStreak{}, err
	}
	var st UncleanStreak
	for i, r := range runs {
		if r.Clean() {
			break
		}
		if i == 0 {
			st.Last = r
		}
		st.Exits++
		st.Since = r.StartedAt
		if !r.UpAt.IsZero() {
			break
		}
	}
	return st, nil
}
