package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cmord/cmord/flows"
)

// DigestRecord is one compliance digest queued for mail (the digest ledger).
type DigestRecord struct {
	ID          int64
	DedupKey    string // the outbox key, e.g. digest:2026-11-23
	PeriodStart time.Time
	PeriodEnd   time.Time
	Lang        string
	Subject     string
	Summary     json.RawMessage
	CreatedAt   time.Time
}

const digestSelect = `SELECT id, dedup_key, period_start, period_end, lang, subject, summary, created_at FROM digests`

func scanDigest(row rowScanner) (DigestRecord, error) {
	var d DigestRecord
	var start, end, created, summary string
	if err := row.Scan(&d.ID, &d.DedupKey, &start, &end, &d.Lang, &d.Subject, &summary, &created); err != nil {
		return d, err
	}
	d.PeriodStart, _ = ParseTS(start)
	d.PeriodEnd, _ = ParseTS(end)
	d.CreatedAt, _ = ParseTS(created)
	d.Summary = json.RawMessage(summary)
	return d, nil
}

// LastDigest returns the digest with the latest period end (ok false when none was
// ever queued).
func (s *Store) LastDigest(ctx context.Context) (DigestRecord, bool, error) {
	d, err := scanDigest(s.r.QueryRowContext(ctx, digestSelect+` ORDER BY period_end DESC, id DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("archive: last digest: %w", err)
	}
	return d, true, nil
}

// DigestByKey returns the digest recorded under an outbox key.
func (s *Store) DigestByKey(ctx context.Context, key string) (DigestRecord, bool, error) {
	d, err := scanDigest(s.r.QueryRowContext(ctx, digestSelect+` WHERE dedup_key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("archive: digest %s: %w", key, err)
	}
	return d, true, nil
}

// RecordDigest adds d to the ledger; a key already recorded is left alone (inserted
// false), so recording again after a crash is harmless.
func (s *Store) RecordDigest(ctx context.Context, tx *sql.Tx, d DigestRecord) (bool, error) {
	if len(d.Summary) == 0 {
		d.Summary = json.RawMessage("{}")
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now()
	}
	r, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO digests (dedup_key, period_start, period_end, lang, subject, summary, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, d.DedupKey, TS(d.PeriodStart), TS(d.PeriodEnd), d.Lang, d.Subject, string(d.Summary), TS(d.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("archive: record digest %s: %w", d.DedupKey, err)
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

// DeadlineRow is one deadline of one practice.
type DeadlineRow struct {
	PracticeID int64
	Kind       string
	DueOn      flows.Date
}

// SyncDeadlines makes the deadlines table equal to rows (the deadline job recomputes
// every practice's deadlines): missing rows are inserted, changed dates updated, rows
// no longer computed deleted.
func (s *Store) SyncDeadlines(ctx context.Context, tx *sql.Tx, rows []DeadlineRow, at time.Time) error {
	type key struct {
		id   int64
		kind string
	}
	want := make(map[key]string, len(rows))
	for _, r := range rows {
		want[key{r.PracticeID, r.Kind}] = r.DueOn.ISO()
	}
	have := map[key]string{}
	cur, err := tx.QueryContext(ctx, `SELECT practice_id, kind, due_on FROM deadlines`)
	if err != nil {
		return fmt.Errorf("archive: read deadlines: %w", err)
	}
	for cur.Next() {
		var k key
		var due string
		if err := cur.Scan(&k.id, &k.kind, &due); err != nil {
			cur.Close()
			return err
		}
		have[k] = due
	}
	cur.Close()
	if err := cur.Err(); err != nil {
		return err
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			if _, err := tx.ExecContext(ctx, `DELETE FROM deadlines WHERE practice_id = ? AND kind = ?`, k.id, k.kind); err != nil {
				return fmt.Errorf("archive: delete deadline: %w", err)
			}
		}
	}
	for k, due := range want {
		if old, ok := have[k]; ok && old == due {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO deadlines (practice_id, kind, due_on, computed_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (practice_id, kind) DO UPDATE SET due_on = excluded.due_on, computed_at = excluded.computed_at`,
			k.id, k.kind, due, TS(at)); err != nil {
			return fmt.Errorf("archive: store deadline: %w", err)
		}
	}
	return nil
}

// DeadlinesBetween lists the deadlines due in [from, to] (ISO order, then practice).
func (s *Store) DeadlinesBetween(ctx context.Context, from, to flows.Date) ([]DeadlineRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT practice_id, kind, due_on FROM deadlines WHERE due_on >= ? AND due_on <= ?
		ORDER BY due_on, practice_id, kind`, from.ISO(), to.ISO())
	if err != nil {
		return nil, fmt.Errorf("archive: deadlines: %w", err)
	}
	defer rows.Close()
	var out []DeadlineRow
	for rows.Next() {
		var r DeadlineRow
		var due string
		if err := rows.Scan(&r.PracticeID, &r.Kind, &due); err != nil {
			return nil, err
		}
		r.DueOn = parseDateText(due)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ExceptionsResolvedBetween lists the exceptions resolved in [from, to), most severe first.
func (s *Store) ExceptionsResolvedBetween(ctx context.Context, from, to time.Time) ([]Exception, error) {
	return s.exceptionsWhere(ctx, nil, `resolved_at >= ? AND resolved_at < ?`, TS(from), TS(to))
}

// OpenExceptionsWithPrefix lists the open exceptions whose fingerprint starts with
// prefix (inside tx when not nil), e.g. the deadline job's "deadline|".
func (s *Store) OpenExceptionsWithPrefix(ctx context.Context, tx *sql.Tx, prefix string) ([]Exception, error) {
	return s.exceptionsWhere(ctx, tx, `resolved_at IS NULL AND substr(fingerprint, 1, ?) = ?`, len(prefix), prefix)
}

func (s *Store) exceptionsWhere(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]Exception, error) {
	rows, err := s.q(tx).QueryContext(ctx, exceptionSelect+` WHERE `+where+
		` ORDER BY CASE severity WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: exceptions: %w", err)
	}
	defer rows.Close()
	var out []Exception
	for rows.Next() {
		e, err := scanException(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ResolveByFingerprintAt is ResolveByFingerprint with the resolution time given (the
// deadline job runs on the daemon's clock).
func (s *Store) ResolveByFingerprintAt(ctx context.Context, tx *sql.Tx, fingerprint, note string, at time.Time) (bool, error) {
	r, err := tx.ExecContext(ctx, `UPDATE exceptions SET resolved_at = ?, resolution = ?, resolved_by = 'auto' WHERE fingerprint = ? AND resolved_at IS NULL`,
		TS(at), note, fingerprint)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

// FlowCount is the activity of one file kind (input kind or flow key) in a period.
type FlowCount struct {
	Kind        string
	Received    int // inbound files received (duplicates excluded)
	Rejected    int // inbound files refused as a whole
	Duplicates  int // inbound files identical to one already received
	RowsRefused int // rows refused inside processed files (row_refused exceptions first seen)
	Built       int // flow files we built
	Published   int // files whose delivery completed
}

// FlowCounts counts, per kind, the files received, refused, built and published in
// [from, to).
func (s *Store) FlowCounts(ctx context.Context, from, to time.Time) ([]FlowCount, error) {
	counts := map[string]*FlowCount{}
	get := func(k string) *FlowCount {
		if c := counts[k]; c != nil {
			return c
		}
		c := &FlowCount{Kind: k}
		counts[k] = c
		return c
	}
	f, t := TS(from), TS(to)
	q := func(query string, add func(c *FlowCount, n int)) error {
		rows, err := s.r.QueryContext(ctx, query, f, t)
		if err != nil {
			return fmt.Errorf("archive: flow counts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var kind string
			var n int
			if err := rows.Scan(&kind, &n); err != nil {
				return err
			}
			add(get(kind), n)
		}
		return rows.Err()
	}
	steps := []struct {
		query string
		add   func(c *FlowCount, n int)
	}{
		{`SELECT kind, count(*) FROM files WHERE direction = 'in' AND state <> 'duplicate' AND received_at >= ? AND received_at < ? GROUP BY kind`,
			func(c *FlowCount, n int) { c.Received += n }},
		{`SELECT kind, count(*) FROM files WHERE direction = 'in' AND state = 'rejected' AND received_at >= ? AND received_at < ? GROUP BY kind`,
			func(c *FlowCount, n int) { c.Rejected += n }},
		{`SELECT kind, count(*) FROM files WHERE direction = 'in' AND state = 'duplicate' AND received_at >= ? AND received_at < ? GROUP BY kind`,
			func(c *FlowCount, n int) { c.Duplicates += n }},
		{`SELECT f.kind, count(*) FROM exceptions e JOIN files f ON f.id = e.file_id
			WHERE e.kind = 'row_refused' AND e.first_seen >= ? AND e.first_seen < ? GROUP BY f.kind`,
			func(c *FlowCount, n int) { c.RowsRefused += n }},
		{`SELECT kind, count(*) FROM files WHERE direction = 'out' AND source = 'built' AND received_at >= ? AND received_at < ? GROUP BY kind`,
			func(c *FlowCount, n int) { c.Built += n }},
		{`SELECT f.kind, count(DISTINCT f.id) FROM deliveries d JOIN files f ON f.id = d.file_id
			WHERE d.state = 'delivered' AND d.delivered_at >= ? AND d.delivered_at < ? GROUP BY f.kind`,
			func(c *FlowCount, n int) { c.Published += n }},
	}
	for _, st := range steps {
		if err := q(st.query, st.add); err != nil {
			return nil, err
		}
	}
	out := make([]FlowCount, 0, len(counts))
	for _, c := range counts {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out, nil
}

// AlertGroupSent reports whether an alert mail with that key was already queued.
func (s *Store) AlertGroupSent(ctx context.Context, key string) (bool, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM alert_groups WHERE dedup_key = ?`, key).Scan(&n); err != nil {
		return false, fmt.Errorf("archive: alert group %s: %w", key, err)
	}
	return n > 0, nil
}

// RecordAlertGroup notes, inside tx, that an alert mail for these exceptions was queued
// under key, and marks them alerted at at.
func (s *Store) RecordAlertGroup(ctx context.Context, tx *sql.Tx, key, group string, ids []int64, at time.Time) error {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO alert_groups (dedup_key, group_key, exception_ids, sent_at) VALUES (?, ?, ?, ?)`,
		key, group, strings.Join(parts, ","), TS(at)); err != nil {
		return fmt.Errorf("archive: record alert group %s: %w", key, err)
	}
	return s.MarkAlerted(ctx, tx, at, ids...)
}
