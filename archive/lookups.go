package archive

import (
	"context"
	"database/sql"
	"fmt"
)

// The customer and amount lookups (migration 0042): practice_customers and
// practice_amounts hold (value, practice id) for every practice but those listed in
// practice_lookup_pending, which a bulk job (the uscente.morosi handler) fills chunk
// by chunk and moves at the end of its file (MovePendingLookups). A reader by customer
// or amount reads both: the table by its key, and the pending practices one by one
// (none but during a big file, or after a file that never ended: see settleLookups).

// customerLookup is the condition "the practice's customer is ?1" on the view
// practices (or practice_rows): by the table, plus the pending practices. CROSS JOIN
// keeps SQLite to the pending set (it would otherwise walk practice_rows).
const customerLookup = `id IN (SELECT practice_id FROM practice_customers WHERE customer_id = ?
	UNION ALL SELECT lp.practice_id FROM practice_lookup_pending lp CROSS JOIN practice_rows r ON r.id = lp.practice_id WHERE r.customer_id = ?)`

// amountLookup is the condition "the practice's CMOR amount is within [?1, ?2]".
const amountLookup = `id IN (SELECT practice_id FROM practice_amounts WHERE cmor_cents >= ? AND cmor_cents <= ?
	UNION ALL SELECT lp.practice_id FROM practice_lookup_pending lp CROSS JOIN practice_rows r ON r.id = lp.practice_id WHERE r.cmor_cents >= ? AND r.cmor_cents <= ?)`

// DeferLookups makes the practices Flush creates pending (practice_lookup_pending):
// their customer and amount entries are not written with them but by
// MovePendingLookups, which the job must run in the transaction that ends its file.
// A job that commits a file in several transactions (chunks) writes each leaf page of
// the two lookup tables once, sorted, instead of once per chunk in no order.
func (p *PracticeStmts) DeferLookups() { p.deferLookups = true }

// MovePendingLookups writes the lookup entries of every pending practice, in key
// order, from its current customer and amount, and empties the pending set. It
// returns how many practices it moved.
func MovePendingLookups(ctx context.Context, tx *sql.Tx) (int64, error) {
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO practice_customers (customer_id, practice_id)
		SELECT r.customer_id, r.id FROM practice_lookup_pending lp CROSS JOIN practice_rows r ON r.id = lp.practice_id ORDER BY 1, 2`); err != nil {
		return 0, fmt.Errorf("archive: customer lookups: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO practice_amounts (cmor_cents, practice_id)
		SELECT r.cmor_cents, r.id FROM practice_lookup_pending lp CROSS JOIN practice_rows r ON r.id = lp.practice_id ORDER BY 1, 2`); err != nil {
		return 0, fmt.Errorf("archive: amount lookups: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM practice_lookup_pending`)
	if err != nil {
		return 0, fmt.Errorf("archive: pending lookups: %w", err)
	}
	return res.RowsAffected()
}

// PendingLookups returns how many practices wait for their lookup entries (tx may be
// nil).
func (s *Store) PendingLookups(ctx context.Context, tx *sql.Tx) (int64, error) {
	var n int64
	err := s.q(tx).QueryRowContext(ctx, `SELECT count(*) FROM practice_lookup_pending`).Scan(&n)
	return n, err
}

// settleLookups moves, at open, pending lookups that no file will move: pending
// practices are committed with the chunks of a file in progress, whose last chunk
// moves them; with no file in progress (a file refused after some of its chunks were
// committed, its progress left behind) nothing else would until the next big
// extract. The practices stay findable meanwhile (readers read the pending set), only
// slower. A file still being processed (state received, with progress) is left to its
// own end.
func (s *Store) settleLookups(ctx context.Context) error {
	var waiting bool
	if err := s.w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'practice_lookup_pending')`).Scan(&waiting); err != nil || !waiting {
		return err // an archive migrated up to an older cmord's migrations (tests)
	}
	err := s.w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM practice_lookup_pending)
		AND NOT EXISTS (SELECT 1 FROM file_progress fp JOIN files f ON f.id = fp.file_id WHERE f.state = ?)`, StateReceived).Scan(&waiting)
	if err != nil || !waiting {
		return err
	}
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := MovePendingLookups(ctx, tx)
		return err
	})
}

// verifyLookups reports lookup entries that disagree with practice_rows: a practice
// (not pending) without its entry, an entry naming no practice or another value than
// the practice's, a pending practice that also has an entry. A forged or missing
// entry hides a practice from a query by customer or amount.
func (s *Store) verifyLookups(ctx context.Context, rep *VerifyReport) error {
	checks := []struct{ what, query string }{
		{"practice #%d has no customer lookup entry (practice_customers): queries by its customer miss it",
			`SELECT r.id FROM practice_rows r WHERE NOT EXISTS (SELECT 1 FROM practice_customers c WHERE c.customer_id = r.customer_id AND c.practice_id = r.id)
				AND NOT EXISTS (SELECT 1 FROM practice_lookup_pending p WHERE p.practice_id = r.id) ORDER BY r.id`},
		{"practice #%d has no amount lookup entry (practice_amounts): queries by its CMOR amount miss it",
			`SELECT r.id FROM practice_rows r WHERE NOT EXISTS (SELECT 1 FROM practice_amounts a WHERE a.cmor_cents = r.cmor_cents AND a.practice_id = r.id)
				AND NOT EXISTS (SELECT 1 FROM practice_lookup_pending p WHERE p.practice_id = r.id) ORDER BY r.id`},
		{"customer lookup entry of practice #%d (practice_customers) names another customer than the practice's, or no practice: queries by customer answer wrong",
			`SELECT c.practice_id FROM practice_customers c WHERE NOT EXISTS (SELECT 1 FROM practice_rows r WHERE r.id = c.practice_id AND r.customer_id = c.customer_id)
				OR EXISTS (SELECT 1 FROM practice_lookup_pending p WHERE p.practice_id = c.practice_id) ORDER BY c.practice_id`},
		{"amount lookup entry of practice #%d (practice_amounts) names another amount than the practice's, or no practice: queries by amount answer wrong",
			`SELECT a.practice_id FROM practice_amounts a WHERE NOT EXISTS (SELECT 1 FROM practice_rows r WHERE r.id = a.practice_id AND r.cmor_cents = a.cmor_cents)
				OR EXISTS (SELECT 1 FROM practice_lookup_pending p WHERE p.practice_id = a.practice_id) ORDER BY a.practice_id`},
	}
	const most = 20 // per check: a table emptied by hand is one problem, not a million lines
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := func() (int, error) {
			rows, err := s.r.QueryContext(ctx, c.query)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					return n, err
				}
				if n < most {
					rep.Problems = append(rep.Problems, fmt.Sprintf(c.what, id))
				}
				n++
			}
			return n, rows.Err()
		}()
		if n > most {
			rep.Problems = append(rep.Problems, fmt.Sprintf("... and %d more of the same", n-most))
		}
		if err != nil {
			// A damaged page (integrity_check names it): reported, the rest goes on.
			rep.Problems = append(rep.Problems, fmt.Sprintf("the customer and amount lookups could not be checked: %v", err))
			break
		}
	}
	return nil
}
