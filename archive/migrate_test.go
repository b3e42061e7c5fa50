package archive

import (
	"context"
	"database/sql"
	"io/fs"
	"path"
	"strings"
	"testing"
	"testing/fstest"
)

// withMigrations makes migrate read cmord's migrations up to and including upTo ("":
// all of them) followed by extra (name without .sql → SQL), until the test ends.
func withMigrations(t *testing.T, upTo string, extra map[string]string) {
	t.Helper()
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	for _, n := range names {
		if upTo != "" && strings.TrimSuffix(path.Base(n), ".sql") > upTo {
			continue
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		m[n] = &fstest.MapFile{Data: b}
	}
	for name, body := range extra {
		m["migrations/"+name+".sql"] = &fstest.MapFile{Data: []byte(body)}
	}
	prev := migrationSource
	migrationSource = m
	t.Cleanup(func() { migrationSource = prev })
}

// TestMigrationAndResealOneTransaction proves that a migration and the chain's reseal
// after it commit together or not at all. They were two transactions: a kill -9, or a
// failure, between the migration's commit and the reseal's left the migration applied
// (never run again) and its rows unsealed, and `archive verify` then reported them as
// changed behind cmord's back. A seal the chain refuses stands for the crash here: the
// migration must be gone with it, and the next start applies both.
func TestMigrationAndResealOneTransaction(t *testing.T) {
	const testMigration = "9990_test_column"
	// refuseSeal makes the chain refuse any new record, within the migration's
	// transaction: the reseal fails after the migration's SQL ran.
	const refuseSeal = `CREATE TRIGGER test_refuse_seal BEFORE INSERT ON chain BEGIN SELECT RAISE(ABORT, 'seal refused'); END;`
	for _, tt := range []struct {
		name       string
		sql        string
		wantErr    string // Open's error, "" none
		newRecords int    // chain records the migration adds when it applies
	}{
		{"column with a value: resealed", `ALTER TABLE files ADD COLUMN test_note TEXT NOT NULL DEFAULT 'x';`, "", 1},
		{"column with no default: no reseal", `ALTER TABLE files ADD COLUMN test_note TEXT;`, "", 0},
		{"rows rewritten and a column with a value: one record", `ALTER TABLE files ADD COLUMN test_note TEXT NOT NULL DEFAULT 'x';
			UPDATE files SET test_note = 'y' WHERE id = 1;`, "", 1},
		{"reseal refused: migration rolled back", `ALTER TABLE files ADD COLUMN test_note TEXT NOT NULL DEFAULT 'x';` + refuseSeal, "seal refused", 0},
		{"rows rewritten, seal refused: migration rolled back", `ALTER TABLE files ADD COLUMN test_note TEXT;
			UPDATE files SET size = size WHERE id = 1;` + refuseSeal, "seal refused", 0},
		{"migration failing after its first statement", `ALTER TABLE files ADD COLUMN test_note TEXT NOT NULL DEFAULT 'x';
			INSERT INTO no_such_table VALUES (1);`, "no such table", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			ingest(t, s, "folder:a", "one.csv", "1")
			ingest(t, s, "folder:a", "two.csv", "2")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			records := func(s *Store) int {
				var n int
				if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM chain`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			applied := func(s *Store) (migrated, column bool) {
				var n, c int
				if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, testMigration).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('files') WHERE name = 'test_note'`).Scan(&c); err != nil {
					t.Fatal(err)
				}
				return n > 0, c > 0
			}
			s, err = Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			before := records(s)
			s.Close()

			withMigrations(t, "", map[string]string{testMigration: tt.sql})
			s, err = Open(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					s.Close()
					t.Fatalf("Open: %v, want an error with %q", err, tt.wantErr)
				}
				// Nothing of the migration is left: cmord's own migrations open the
				// archive as it was, verify finds it whole, the chain unchanged.
				migrationSource = migrationFS
				s, err = Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if m, c := applied(s); m || c {
					t.Errorf("after the failed migration: recorded %v, column there %v; want neither", m, c)
				}
				var trig int
				if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'test_refuse_seal'`).Scan(&trig); err != nil || trig != 0 {
					t.Errorf("the migration's trigger left behind: %d, %v", trig, err)
				}
				if got := records(s); got != before {
					t.Errorf("chain records %d, want %d", got, before)
				}
				verifyOK(t, s, "after a migration rolled back")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if m, c := applied(s); !m || !c {
				t.Errorf("migration recorded %v, column there %v; want both", m, c)
			}
			if got := records(s); got != before+tt.newRecords {
				t.Errorf("chain records %d, want %d + %d", got, before, tt.newRecords)
			}
			verifyOK(t, s, "after the migration")
			// Applied once: opening again changes nothing.
			s.Close()
			if s, err = Open(dir); err != nil {
				t.Fatal(err)
			}
			if got := records(s); got != before+tt.newRecords {
				t.Errorf("chain records after reopening %d, want %d + %d", got, before, tt.newRecords)
			}
			verifyOK(t, s, "reopened after the migration")
		})
	}
}

// TestChainMigrationSealsRowsBefore proves that the chain's own migration seals the
// rows from before it in its own transaction: an archive from before 0030 verifies
// whole once opened.
func TestChainMigrationSealsRowsBefore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	withMigrations(t, "0029~", nil) // every migration before 0030_chain
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.chained {
		t.Fatal("chained before the chain's migration")
	}
	ingest(t, s, "folder:a", "one.csv", "1")
	ingest(t, s, "folder:a", "two.csv", "2")
	s.Close()
	migrationSource = migrationFS
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var records, rows int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(min(rows), 0) FROM chain`).Scan(&records, &rows); err != nil {
		t.Fatal(err)
	}
	if records == 0 || rows < 2 {
		t.Errorf("chain after its migration: %d records, the first with %d rows; want the rows from before sealed", records, rows)
	}
	verifyOK(t, s, "after the chain's migration")
}

// TestMigrationTempStoreFile proves that migrations run with their temporary data
// (above all the statement journal of an ALTER TABLE ... DROP COLUMN, which copies
// every page of the table it rewrites) in a file, not in memory: in memory, the first
// start of the 0035/0036 upgrade peaked at 556 MiB on an archive of 500,000 practices,
// past the systemd unit's MemoryMax=512M. After the migrations the writer is back on
// temp_store MEMORY, which drops the TEMP objects; a row that cmord updates afterwards
// must still be noted by the chain's TEMP triggers (made again), or verify would report
// it as changed outside cmord.
func TestMigrationTempStoreFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, s, "folder:a", "one.csv", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	withMigrations(t, "", map[string]string{"9991_test_temp_store": `CREATE TABLE test_temp_store AS SELECT temp_store AS mode FROM pragma_temp_store;`})
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var during, after int
	if err := s.r.QueryRowContext(ctx, `SELECT mode FROM test_temp_store`).Scan(&during); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if during != 1 || after != 2 {
		t.Errorf("temp_store during the migration %d, after it %d; want 1 (FILE) and 2 (MEMORY)", during, after)
	}
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE files SET reason = 'updated after the migrations' WHERE id = 1`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, "after an update following the migrations")
	// Opened again with nothing to migrate: the writer keeps MEMORY throughout.
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&after); err != nil || after != 2 {
		t.Errorf("temp_store with nothing to migrate: %d (%v), want 2 (MEMORY)", after, err)
	}
}
