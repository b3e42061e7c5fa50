package archive

import (
	"context"
	"fmt"

	"github.com/cmord/cmord/flows"
)

// PracticeAt is what a receipt shows of a practice a file touched: who it is, its
// state now and the first line of the file it came from. It is light on purpose (no
// data, no amounts): a file of a million rows touches hundreds of thousands of them.
type PracticeAt struct {
	ID         int64
	Line       int // the first line of the file linked to the practice
	LastLine   int // the last one
	Lines      int // how many lines of the file the practice has (payments of 3 invoices: 3)
	CPUtente   string
	Point      string
	CustomerID string
	State      string
	WindowOpen flows.Date
}

// PracticesOfFile lists the practices a file touched as their input (practice_links,
// relation "input"), in their current state, by line: what a receipt for the file
// reports once its transaction has committed, and what a restart rebuilds the receipt
// from. One query.
func (s *Store) PracticesOfFile(ctx context.Context, fileID int64) ([]PracticeAt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.id, min(pf.line), max(pf.line), count(DISTINCT pf.line), coalesce(p.cp_utente, ''), p.point, p.customer_id, p.state, p.window_open
		FROM practice_links pf JOIN practices p ON p.id = pf.practice_id
		WHERE pf.file_id = ? AND pf.relation = 'input' GROUP BY p.id ORDER BY min(pf.line), p.id`, fileID)
	if err != nil {
		return nil, fmt.Errorf("archive: practices of file %d: %w", fileID, err)
	}
	defer rows.Close()
	var out []PracticeAt
	for rows.Next() {
		var p PracticeAt
		var wo string
		if err := rows.Scan(&p.ID, &p.Line, &p.LastLine, &p.Lines, &p.CPUtente, &p.Point, &p.CustomerID, &p.State, &wo); err != nil {
			return nil, err
		}
		p.WindowOpen = parseDateText(wo)
		out = append(out, p)
	}
	return out, rows.Err()
}

// ReadyRequestFlows lists, per practice, the flows of its requests waiting for the
// next build (state ready), oldest first: what a receipt of a payments or suspensions
// file adds to the practice's state ("to be sent to the SII: AI1.0050 — Annulment
// request"), since the practice's state moves only once the request is delivered.
// One indexed search per practice (requests_practice); practices with none are absent.
func (s *Store) ReadyRequestFlows(ctx context.Context, practiceIDs []int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	for _, id := range practiceIDs {
		rows, err := s.r.QueryContext(ctx, `SELECT s.flow FROM request_rows r JOIN request_state s ON s.id = r.id
			WHERE r.practice_id = ? AND s.state = 'ready' ORDER BY r.id`, id)
		if err != nil {
			return nil, fmt.Errorf("archive: ready requests of practice %d: %w", id, err)
		}
		for rows.Next() {
			var flow string
			if err := rows.Scan(&flow); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = append(out[id], flow)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
