package archive

import "context"

// PracticeAt is a practice a file touched, with the line of the file it came from.
type PracticeAt struct {
	Practice
	Line int
}

// PracticesOfFile lists the practices a file touched as their input (practice_files,
// relation "input"), in the practices' current state, by line: what a receipt for the
// file reports once its transaction has committed, and what a restart rebuilds the
// receipt from.
func (s *Store) PracticesOfFile(ctx context.Context, fileID int64) ([]PracticeAt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT pf.line, p.id FROM practice_files pf JOIN practices p ON p.id = pf.practice_id
		WHERE pf.file_id = ? AND pf.relation = 'input' ORDER BY pf.line, p.id`, fileID)
	if err != nil {
		return nil, err
	}
	type link struct {
		line int
		id   int64
	}
	var links []link
	for rows.Next() {
		var l link
		if err := rows.Scan(&l.line, &l.id); err != nil {
			rows.Close()
			return nil, err
		}
		links = append(links, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]PracticeAt, 0, len(links))
	seen := map[int64]bool{}
	for _, l := range links {
		if seen[l.id] { // a practice linked at several lines: its first line
			continue
		}
		seen[l.id] = true
		p, err := s.PracticeByID(ctx, nil, l.id)
		if err != nil {
			return nil, err
		}
		out = append(out, PracticeAt{Practice: p, Line: l.line})
	}
	return out, nil
}
