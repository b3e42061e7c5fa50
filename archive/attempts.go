package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"modernc.org/sqlite"
)

// Meta keys of a file's processing attempts (files.meta): kept in the archive so that
// a restart, or a kill -9 between two attempts, continues the count instead of
// starting again at zero forever.
const (
	MetaAttempts          = "attempts"           // failed processing attempts so far (those that count towards a refusal)
	MetaTransientAttempts = "transient_attempts" // attempts failed for the machine's reasons (disk full, database locked)
	MetaLastError         = "last_error"         // the error of the latest failed attempt
)

// maxErrorText bounds the error text kept per attempt (meta and event).
const maxErrorText = 1000

// NoteFailedAttempt records one failed processing attempt of file id (its count and
// error in the file's meta, and a PROCESSING_FAILED event) and returns the number of
// failed attempts of that sort so far, this one included. Transient failures (the
// machine's, not the file's) are counted apart: they never bring a refusal closer.
func (s *Store) NoteFailedAttempt(ctx context.Context, id int64, cause error, transient bool) (int, error) {
	key, what := MetaAttempts, "attempt"
	if transient {
		key, what = MetaTransientAttempts, "transient failure"
	}
	text := cause.Error()
	if len(text) > maxErrorText {
		text = text[:maxErrorText] + "…"
	}
	var n int
	err := s.Write(ctx, func(tx *sql.Tx) error {
		var cur sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT json_extract(meta, '$.'||?) FROM files WHERE id = ?`, key, id).Scan(&cur); err != nil {
			return fmt.Errorf("archive: attempts of file #%d: %w", id, err)
		}
		n, _ = strconv.Atoi(cur.String)
		n++
		// Strings, as every meta value (File.Meta is a map of strings).
		if _, err := tx.ExecContext(ctx, `UPDATE files SET meta = json_set(meta, '$.'||?, ?, '$.last_error', ?) WHERE id = ?`,
			key, strconv.Itoa(n), text, id); err != nil {
			return fmt.Errorf("archive: attempts of file #%d: %w", id, err)
		}
		return s.AppendEvent(tx, Event{Type: "PROCESSING_FAILED", FileID: id, Detail: fmt.Sprintf("%s %d: %s", what, n, text)})
	})
	return n, err
}

// ResetAttempts clears the failed-attempt count of file id inside tx (a refused file
// dropped again unchanged starts a new series of attempts).
func (s *Store) ResetAttempts(ctx context.Context, tx *sql.Tx, id int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE files SET meta = json_remove(meta, '$.attempts', '$.transient_attempts', '$.last_error') WHERE id = ?`, id)
	return err
}

// Attempts returns the failed processing attempts recorded for f, of any sort.
func (f File) Attempts() int {
	n, _ := strconv.Atoi(f.Meta[MetaAttempts])
	m, _ := strconv.Atoi(f.Meta[MetaTransientAttempts])
	return n + m
}

// SQLite primary result codes (the low byte of an extended code).
const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteIOErr      = 10
	sqliteFull       = 13
	sqliteTooBig     = 18
	sqliteConstraint = 19
	sqliteMismatch   = 20
)

func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff, true
	}
	return 0, false
}

// IsBusy reports whether err is SQLite's "database is locked/busy": another process
// held the database longer than the busy timeout. Trying again later works.
func IsBusy(err error) bool {
	c, ok := sqliteCode(err)
	return ok && (c == sqliteBusy || c == sqliteLocked)
}

// IsStorageFull reports whether SQLite could not write the state directory's disk
// (full, or an I/O error): the machine's problem, not the file's.
func IsStorageFull(err error) bool {
	c, ok := sqliteCode(err)
	return ok && (c == sqliteFull || c == sqliteIOErr)
}

// IsDataRefused reports whether SQLite refused the data itself: a constraint (UNIQUE,
// CHECK, NOT NULL, FOREIGN KEY), a type mismatch or a value too big. The same data
// fails the same way every time.
func IsDataRefused(err error) bool {
	c, ok := sqliteCode(err)
	return ok && (c == sqliteConstraint || c == sqliteMismatch || c == sqliteTooBig)
}
