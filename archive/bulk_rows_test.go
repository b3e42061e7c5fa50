package archive

import (
	"strings"
	"testing"
)

// A chunk's multi-row INSERTs of bulkRows rows each (and the last, shorter) are taken
// by SQLite for every table they fill, the widest (practice_rows, 26 columns: 6,656
// values a statement) within its limit of 32,766 bound values: every practice, case,
// state, history row and request of a chunk of 2×bulkRows+3 is stored once.
func TestBulkRowsWithinSQLiteLimits(t *testing.T) {
	for _, cols := range []int{practiceRowCols, practiceStateCols, requestRowCols, requestStateCols, 10, 4, 2, 1} {
		if bulkRows*cols > 32766 {
			t.Errorf("%d rows of %d columns: %d values, past SQLite's limit", bulkRows, cols, bulkRows*cols)
		}
	}
	if n := strings.Count(practiceRowInsert[strings.Index(practiceRowInsert, "("):], ",") + 1; n != practiceRowCols {
		t.Fatalf("practice_rows insert of %d columns, practiceRowCols %d", n, practiceRowCols)
	}
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 2*bulkRows + 3
	if ids := writeChunk(t, s, 0, n, false); len(ids) != n {
		t.Fatalf("%d practices written, want %d", len(ids), n)
	}
	for _, table := range []string{"practice_rows", "practice_state", "practice_data", "practice_history", "request_rows", "request_state"} {
		var got int
		if err := s.Read().QueryRow(`SELECT count(*) FROM ` + table).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%s: %d rows, want %d", table, got, n)
		}
	}
}
