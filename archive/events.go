package archive

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is one entry of the append-only audit log.
type Event struct {
	ID         int64
	At         time.Time
	Type       string // RECEIVED, PROCESSED, REJECTED, BUILT, PUBLISHED, FETCHED, TRANSITION, ...
	FileID     int64
	PracticeID int64
	Actor      string // "daemon", "cli:<user>", "sii"
	Detail     string
	PrevHash   string
	Hash       string
}

// genesis is the prev_hash of the first event.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// chainHash is SHA-256 over the previous hash and the event's fields, unambiguously
// separated (lengths prefix each field).
func chainHash(prev string, id int64, at, typ string, fileID, practiceID int64, actor, detail string) string {
	h := sha256.New()
	for _, part := range []string{prev, strconv.FormatInt(id, 10), at, typ,
		strconv.FormatInt(fileID, 10), strconv.FormatInt(practiceID, 10), actor, detail} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// AppendEvent appends e to the audit log inside tx, chaining it to the previous event.
// The single writer connection serialises appends, so the chain has no forks.
func (s *Store) AppendEvent(tx *sql.Tx, e Event) error {
	var prevID int64
	prev := genesis
	err := tx.QueryRow(`SELECT id, hash FROM events ORDER BY id DESC LIMIT 1`).Scan(&prevID, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("archive: event chain head: %w", err)
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	if e.Actor == "" {
		e.Actor = "daemon"
	}
	id := prevID + 1
	at := TS(e.At)
	hash := chainHash(prev, id, at, e.Type, e.FileID, e.PracticeID, e.Actor, e.Detail)
	_, err = tx.Exec(`INSERT INTO events (id, at, type, file_id, practice_id, actor, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, at, e.Type, e.FileID, e.PracticeID, e.Actor, e.Detail, prev, hash)
	if err != nil {
		return fmt.Errorf("archive: append event: %w", err)
	}
	return nil
}

// EventFilter selects events.
type EventFilter struct {
	FileID, PracticeID int64
	Type               string
	Limit              int
}

// Events lists events oldest first.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	var where []string
	var args []any
	if f.FileID != 0 {
		where, args = append(where, "file_id = ?"), append(args, f.FileID)
	}
	if f.PracticeID != 0 {
		where, args = append(where, "practice_id = ?"), append(args, f.PracticeID)
	}
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, f.Type)
	}
	q := `SELECT id, at, type, file_id, practice_id, actor, detail, prev_hash, hash FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Type, &e.FileID, &e.PracticeID, &e.Actor, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.At, _ = ParseTS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
