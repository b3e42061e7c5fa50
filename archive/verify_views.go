package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
)

// Views are part of what a person reads: practice_links (migration 0034) derives the
// links of the rows that stand for one, which receipts, publication, an abandoned
// delivery, a practice's files and its exceptions read. The rows are chained; the
// view's definition is not a row, and a view redefined by hand (an arm filtered, a
// relation swapped, a table of forged links in its place) would change what every
// reader answers with no row changed. verifyViews compares each view with the text
// cmord's migrations created it with (SQLite keeps that text as it was written). A
// later migration that renames a table a view names (SQLite then rewrites the view's
// text) must create the view again; the tests verify a fresh archive, so they show.

// createViewStmt is a CREATE VIEW statement of a migration, up to its semicolon.
var createViewStmt = regexp.MustCompile(`(?s)CREATE VIEW (\w+)\b[^;]*`)

// dropViewStmt is a DROP VIEW statement of a migration.
var dropViewStmt = regexp.MustCompile(`DROP VIEW (?:IF EXISTS )?(\w+)`)

// migrationViews returns the views the migrations leave, by name, with the text
// SQLite keeps for each (the last migration that creates or drops one wins).
func migrationViews() (map[string]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	views := map[string]string{}
	for _, name := range names {
		body, err := migrationFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		for _, m := range dropViewStmt.FindAllSubmatch(body, -1) {
			delete(views, string(m[1]))
		}
		for _, m := range createViewStmt.FindAllSubmatch(body, -1) {
			views[string(m[1])] = string(m[0])
		}
	}
	return views, nil
}

// verifyViews reports a view of the migrations missing, replaced by another kind of
// object, or defined otherwise than the migrations did.
func (s *Store) verifyViews(ctx context.Context, rep *VerifyReport) error {
	want, err := migrationViews()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var typ, text string
		err := s.r.QueryRowContext(ctx, `SELECT type, coalesce(sql, '') FROM main.sqlite_master WHERE name = ?`, n).Scan(&typ, &text)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			rep.Problems = append(rep.Problems, fmt.Sprintf("view %s is missing: it was dropped outside cmord", n))
		case err != nil:
			return err
		case typ != "view":
			rep.Problems = append(rep.Problems, fmt.Sprintf("view %s was changed outside cmord: it is now a %s, what its readers read is not what the chained rows say", n, typ))
		case text != want[n]:
			rep.Problems = append(rep.Problems, fmt.Sprintf("view %s was changed outside cmord: its definition differs from the one cmord's migrations created, what its readers read is not what the chained rows say", n))
		}
	}
	return nil
}
