package archive

import "strings"

// undoRowsTrimmed turns an archive back into what the versions before migration 0043
// left, as far as its schema goes: the view requests (and its triggers) as 0036
// created it, requests_ready over every request, every request's created_at and
// sent_at and every derived build row's states written out. A creation history row's empty at is
// left as it is: the state chain sealed it so, and cmord reads either form (an
// archive from before 0043 has none). To be applied before any other undo of these
// tests (newest first).
var undoRowsTrimmed = []string{
	`DROP VIEW requests`, // and its INSTEAD OF triggers
	requestsViewOf0036(),
	`DROP INDEX requests_ready`,
	`CREATE INDEX requests_ready ON request_state (flow, state)`,
	`UPDATE request_rows SET created_at = coalesce((SELECT p.created_at FROM practice_rows p WHERE p.id = request_rows.practice_id), '')
		WHERE created_at = ''`,
	`UPDATE request_state SET hist_from = 'READY', hist_to = coalesce(hist_to, 'BUILT'), hist_moves = coalesce(hist_moves, 'SENT')
		WHERE hist_after IS NOT NULL AND hist_from IS NULL`,
	`UPDATE request_state SET sent_at = (SELECT f.received_at FROM files f WHERE f.id = request_state.file_id) WHERE sent_at = ''`,
	`DELETE FROM schema_migrations WHERE name = '0043_rows_trimmed'`,
}

// requestsViewOf0036 is the view requests and its triggers as migration 0036 created
// them.
func requestsViewOf0036() string {
	body, err := migrationFS.ReadFile("migrations/0036_request_state.sql")
	if err != nil {
		panic(err)
	}
	return string(body)[strings.Index(string(body), "CREATE VIEW requests"):]
}
