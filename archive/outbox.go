package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Outbox states.
const (
	OutboxQueued  = "queued"
	OutboxSending = "sending"
	OutboxSent    = "sent"
	OutboxDead    = "dead" // set only by an operator; the sender never gives up by itself
)

// OutboxMessage is one message of the persistent mail outbox (table mail_outbox).
//
// Delivery guarantee: the sender marks a row "sending" before SMTP DATA and "sent" once
// the server accepted it. A row found "sending" after a restart is ambiguous (the
// server may or may not have accepted it before the crash) and is treated as not sent:
// it is resent, byte for byte, with the same Message-ID, so the recipients' mail
// clients collapse a duplicate. Once "sent" is committed it is never sent again. That
// is at-least-once on the wire and exactly-once in the ledger.
type OutboxMessage struct {
	ID            int64
	DedupKey      string // e.g. "digest:2025-10-26"; a second Enqueue with the same key is a no-op
	Kind          string // digest | alert | test | ...
	MessageID     string // without angle brackets
	Sender        string // envelope MAIL FROM
	Recipients    []string
	Subject       string
	EML           []byte // the complete RFC 5322 message, built once
	State         string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	SentAt        time.Time
	DeadLetter    string // path of the .eml copy written after many failed attempts
}

// Outbox is the store's persistent mail outbox.
type Outbox struct{ s *Store }

// Outbox returns the store's mail outbox.
func (s *Store) Outbox() *Outbox { return &Outbox{s: s} }

// Enqueue stores m as queued and due now (or at m.NextAttemptAt if set). If a message
// with the same dedup key exists, in any state, nothing changes and dup is true.
func (o *Outbox) Enqueue(ctx context.Context, m OutboxMessage) (id int64, dup bool, err error) {
	if m.DedupKey == "" || m.Kind == "" || len(m.EML) == 0 || len(m.Recipients) == 0 || m.Sender == "" {
		return 0, false, errors.New("archive: enqueue mail: dedup key, kind, sender, recipients and message are required")
	}
	for _, r := range m.Recipients {
		if r == "" || strings.ContainsAny(r, "\r\n") {
			return 0, false, fmt.Errorf("archive: enqueue mail %s: bad recipient %q", m.DedupKey, r)
		}
	}
	now := time.Now()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	if m.NextAttemptAt.IsZero() {
		m.NextAttemptAt = m.CreatedAt
	}
	err = o.s.Write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM mail_outbox WHERE dedup_key = ?`, m.DedupKey).Scan(&id)
		if err == nil {
			dup = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO mail_outbox (dedup_key, kind, message_id, sender, recipients,
			subject, eml, state, attempts, next_attempt_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?)`,
			m.DedupKey, m.Kind, m.MessageID, m.Sender, strings.Join(m.Recipients, "\n"),
			m.Subject, m.EML, TS(m.NextAttemptAt), TS(m.CreatedAt))
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		return o.s.AppendEvent(tx, Event{Type: "MAIL_QUEUED", Detail: fmt.Sprintf("outbox=%d key=%s kind=%s message-id=<%s>", id, m.DedupKey, m.Kind, m.MessageID)})
	})
	if err != nil {
		return 0, false, fmt.Errorf("archive: enqueue mail %s: %w", m.DedupKey, err)
	}
	return id, dup, nil
}

const outboxColumns = `id, dedup_key, kind, message_id, sender, recipients, subject, eml, state, attempts,
	next_attempt_at, last_error, created_at, sent_at, dead_letter`

func scanOutbox(sc interface{ Scan(...any) error }) (OutboxMessage, error) {
	var m OutboxMessage
	var rcpts, next, created string
	var sent sql.NullString
	err := sc.Scan(&m.ID, &m.DedupKey, &m.Kind, &m.MessageID, &m.Sender, &rcpts, &m.Subject, &m.EML, &m.State,
		&m.Attempts, &next, &m.LastError, &created, &sent, &m.DeadLetter)
	if err != nil {
		return m, err
	}
	m.Recipients = strings.Split(rcpts, "\n")
	if m.NextAttemptAt, err = ParseTS(next); err != nil {
		return m, err
	}
	if m.CreatedAt, err = ParseTS(created); err != nil {
		return m, err
	}
	m.SentAt = nullTS(sent)
	return m, nil
}

// Due returns the messages to send at now, oldest first: queued ones whose next attempt
// has come, and "sending" ones (left by a crash, see OutboxMessage).
func (o *Outbox) Due(ctx context.Context, now time.Time) ([]OutboxMessage, error) {
	return o.query(ctx, `WHERE state IN ('queued', 'sending') AND next_attempt_at <= ? ORDER BY id`, TS(now))
}

// List returns messages in state (all if empty), newest first, at most limit (0 = 100).
func (o *Outbox) List(ctx context.Context, state string, limit int) ([]OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	return o.query(ctx, `WHERE (? = '' OR state = ?) ORDER BY id DESC LIMIT ?`, state, state, limit)
}

// Get returns one message.
func (o *Outbox) Get(ctx context.Context, id int64) (OutboxMessage, error) {
	ms, err := o.query(ctx, `WHERE id = ?`, id)
	if err != nil {
		return OutboxMessage{}, err
	}
	if len(ms) == 0 {
		return OutboxMessage{}, fmt.Errorf("archive: outbox message %d: %w", id, sql.ErrNoRows)
	}
	return ms[0], nil
}

// ByKey returns the message queued under dedupKey; found is false when there is none.
func (o *Outbox) ByKey(ctx context.Context, dedupKey string) (m OutboxMessage, found bool, err error) {
	ms, err := o.query(ctx, `WHERE dedup_key = ?`, dedupKey)
	if err != nil || len(ms) == 0 {
		return OutboxMessage{}, false, err
	}
	return ms[0], true, nil
}

func (o *Outbox) query(ctx context.Context, where string, args ...any) ([]OutboxMessage, error) {
	rows, err := o.s.Read().QueryContext(ctx, `SELECT `+outboxColumns+` FROM mail_outbox `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("archive: outbox: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: outbox: %w", err)
	}
	return out, nil
}

// update runs one single-row UPDATE and fails if the row is not in an expected state.
func (o *Outbox) update(ctx context.Context, what string, id int64, q string, args ...any) error {
	err := o.s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errors.New("no such message in a sendable state")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: outbox %s %d: %w", what, id, err)
	}
	return nil
}

// MarkSending records that an attempt starts (state sending, attempts+1). Call it
// before SMTP DATA.
func (o *Outbox) MarkSending(ctx context.Context, id int64) error {
	return o.update(ctx, "mark sending", id, `UPDATE mail_outbox SET state = 'sending', attempts = attempts + 1
		WHERE id = ? AND state IN ('queued', 'sending')`, id)
}

// MarkSent records that the server accepted the message; it will never be sent again.
func (o *Outbox) MarkSent(ctx context.Context, id int64, at time.Time) error {
	err := o.s.Write(ctx, func(tx *sql.Tx) error {
		var key, msgID string
		err := tx.QueryRowContext(ctx, `UPDATE mail_outbox SET state = 'sent', sent_at = ?, last_error = ''
			WHERE id = ? AND state IN ('queued', 'sending') RETURNING dedup_key, message_id`, TS(at), id).Scan(&key, &msgID)
		if errors.Is(err, sql.ErrNoRows) {
			return errors.New("no such message in a sendable state")
		}
		if err != nil {
			return err
		}
		return o.s.AppendEvent(tx, Event{At: at, Type: "MAIL_SENT", Detail: fmt.Sprintf("outbox=%d key=%s message-id=<%s>", id, key, msgID)})
	})
	if err != nil {
		return fmt.Errorf("archive: outbox mark sent %d: %w", id, err)
	}
	return nil
}

// MarkRetry puts the message back in the queue for next, recording the error. An
// attempt that failed before MarkSending (the connection could not be made) is counted
// here, so attempts always counts failed tries. It returns the attempts so far.
func (o *Outbox) MarkRetry(ctx context.Context, id int64, errText string, next time.Time) (attempts int, err error) {
	err = o.s.Write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `UPDATE mail_outbox SET
			attempts = attempts + CASE WHEN state = 'queued' THEN 1 ELSE 0 END,
			state = 'queued', last_error = ?, next_attempt_at = ?
			WHERE id = ? AND state IN ('queued', 'sending') RETURNING attempts`, errText, TS(next), id).Scan(&attempts)
	})
	if errors.Is(err, sql.ErrNoRows) {
		err = errors.New("no such message in a sendable state")
	}
	if err != nil {
		return 0, fmt.Errorf("archive: outbox mark retry %d: %w", id, err)
	}
	return attempts, nil
}

// SetDeadLetter records where the dead-letter .eml copy was written.
func (o *Outbox) SetDeadLetter(ctx context.Context, id int64, path string) error {
	return o.update(ctx, "set dead letter", id, `UPDATE mail_outbox SET dead_letter = ? WHERE id = ?`, path, id)
}

// Pending counts the messages not yet sent (queued or sending).
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	var n int
	err := o.s.Read().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox WHERE state IN ('queued', 'sending')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("archive: outbox pending: %w", err)
	}
	return n, nil
}

// Failing counts the messages not yet sent (queued or sending) that have failed at
// least minAttempts times, and returns the oldest of them (what /healthz reports: mail
// that cannot reach anyone must be visible without mail).
func (o *Outbox) Failing(ctx context.Context, minAttempts int) (n int, oldest OutboxMessage, err error) {
	err = o.s.Read().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox
		WHERE state IN ('queued', 'sending') AND attempts >= ?`, minAttempts).Scan(&n)
	if err != nil {
		return 0, OutboxMessage{}, fmt.Errorf("archive: outbox failing: %w", err)
	}
	if n == 0 {
		return 0, OutboxMessage{}, nil
	}
	ms, err := o.query(ctx, `WHERE state IN ('queued', 'sending') AND attempts >= ? ORDER BY id LIMIT 1`, minAttempts)
	if err != nil || len(ms) == 0 {
		return n, OutboxMessage{}, err
	}
	return n, ms[0], nil
}

// LateSummary is what LateSent found: the messages sent in a window more than
// lateAfter after they were queued.
type LateSummary struct {
	Count       int
	FirstQueued time.Time // the earliest queue time among them
	LastSent    time.Time // the latest send time among them
	MaxDelay    time.Duration
}

// LateSent summarises the messages sent in [from, to) more than lateAfter after they
// were queued (a mail outage, or the daemon down, made them late): the digest lists it
// (mail_late).
func (o *Outbox) LateSent(ctx context.Context, from, to time.Time, lateAfter time.Duration) (LateSummary, error) {
	var s LateSummary
	rows, err := o.s.Read().QueryContext(ctx, `SELECT created_at, sent_at FROM mail_outbox
		WHERE state = 'sent' AND sent_at >= ? AND sent_at < ?`, TS(from), TS(to))
	if err != nil {
		return s, fmt.Errorf("archive: outbox late: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c, st string
		if err := rows.Scan(&c, &st); err != nil {
			return s, fmt.Errorf("archive: outbox late: %w", err)
		}
		created, err1 := ParseTS(c)
		sent, err2 := ParseTS(st)
		if err1 != nil || err2 != nil {
			continue
		}
		d := sent.Sub(created)
		if d <= lateAfter {
			continue
		}
		s.Count++
		if s.FirstQueued.IsZero() || created.Before(s.FirstQueued) {
			s.FirstQueued = created
		}
		if sent.After(s.LastSent) {
			s.LastSent = sent
		}
		s.MaxDelay = max(s.MaxDelay, d)
	}
	return s, rows.Err()
}
