package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestStateSplitKeepsEarlierTamper proves that a practice changed behind cmord's back
// before the upgrade to migration 0035 is still reported after it. 0035 turns the
// practices table into a view of the same columns, values and hashes; sealing every
// row again for it (its columns lost their defaults) sealed that change as cmord's
// own, and `archive verify` said OK after the upgrade where it had reported the
// practice before it.
func TestStateSplitKeepsEarlierTamper(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "stored")
	dir := w.s.Dir()
	w.s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append(slices.Clone(undoRowsTrimmed), undoStateSplit...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	// The archive as the versions before 0035 left it, edited outside cmord.
	edited := w.practices[1]
	if _, err := db.Exec(`UPDATE practices SET cmor_cents = cmor_cents + 100 WHERE id = ?`, edited); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("practice #%d ", edited)
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], want) || !strings.Contains(rep.Problems[0], "changed outside cmord") {
		t.Errorf("verify after 0035 of an archive with %schanged before it: %q", want, rep.Problems)
	}
}

// TestOpenRefusesNewerArchive: the daemon (Open, which migrates) refuses an archive
// with a migration this binary does not know, before writing anything, naming it.
func TestOpenRefusesNewerArchive(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_from_the_future', '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(dir)
	var ne *NewerArchiveError
	if !errors.As(err, &ne) || ne.Migration != "9999_from_the_future" || !strings.Contains(err.Error(), "restore the backup") {
		t.Fatalf("Open of an archive a newer cmord migrated: %v", err)
	}
}
