// Package archive is cmord's durable state: a content-addressed blob store for every
// file in or out, and an SQLite index (files and versions, provenance, a hash-chained
// event log, exceptions, deliveries, the SFTP fetch ledger, the schedule ledger, the
// mail outbox, practices and sequences).
//
// One Store owns one state directory: index.db (WAL, synchronous=FULL, one writer
// connection) and objects/ (the blobs). Everything here is safe against kill -9.
package archive

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite: one static binary, no cgo
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationSource is where migrate reads the migrations it applies: cmord's own; a
// test puts its own after them.
var migrationSource fs.ReadFileFS = migrationFS

// Store is an open state directory.
type Store struct {
	dir   string
	w     *sql.DB // exactly one connection: SQLite has one writer anyway, and BEGIN IMMEDIATE avoids upgrade deadlocks
	r     *sql.DB // read-only pool
	Blobs *BlobStore
	// chained: the state chain exists (migration 0030 applied); every write
	// transaction then ends with its chain record (chain.go).
	chained bool
	// sideData: a practice's case is in practice_data (migration 0031 applied, or
	// being applied).
	sideData bool
	// builtSide: request_state holds the derived build history (migration 0037
	// applied): a practice's hash covers its requests' (chainedTable.built).
	builtSide bool
	// updatedOnce: the view practices reads an empty practice_state.updated_at as
	// state_since (migration 0040 applied), which cmord then stores for it
	// (Store.updatedAtSince).
	updatedOnce bool
	// rowsTrimmed: migration 0043 applied: cmord stores a bulk-created request's
	// created_at and its practice's creation history row's at as '' (read back as the
	// practice's created_at), and a derived build row's READY -> BUILT -> SENT as
	// NULLs (histStatesSQL).
	rowsTrimmed bool
	// stateSplit: practices is a view over practice_rows and practice_state
	// (migration 0035 applied): the chain's triggers and largest ids go to the
	// tables (chainedTable.rowsTable).
	stateSplit bool
	// caseDicts: case_dicts exists (migration 0038 applied): its rows are in the
	// state chain (chainTables), and a chunk of the uscente handler stores its cases
	// deflated against one (case_dicts.go). Set once the migration has committed: its
	// own transaction began with the chain's tables as they were.
	caseDicts bool
	// dicts: the case dictionaries read or written, by id (caseDict), at most
	// maxCachedDicts; dropped when a write transaction fails, which may have
	// written one whose id the next transaction then gives to another.
	dictMu sync.Mutex
	dicts  map[int64][]byte
	// chainReaders: the state chain's row readers on the writer, by table tag, for
	// the schema they were built on (chainSchema, and sideData as it was); only
	// sealTx uses them, on the one writer connection. Dropped when a write fails: a
	// schema version seen in a transaction rolled back may come again with another
	// schema.
	chainMu      sync.Mutex
	chainReaders map[byte]*chainRowReader
	chainSchema  chainSchemaKey
	// Now is the clock of the times the archive records (received, first seen, state
	// since, published): time.Now when nil. The demo sets its simulated clock, so that
	// the records of its script agree with the script's dates.
	Now func() time.Time
}

// now is the archive's clock (Store.Now, else the real one).
func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Open opens (creating if needed) the state directory and applies pending migrations.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("archive: create state dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	blobs, err := NewBlobStore(filepath.Join(abs, "objects"))
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(abs, "index.db")
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_time_format=sqlite"
	// The writer's page cache is 16 MiB (SQLite's default is 2 MiB): a big billing
	// extract touches a dozen indexes of a growing table, and every page the cache
	// drops is read back from the OS. It is SQLite's own memory, bounded, outside
	// the Go heap, and it counts against the daemon's memory promise (< 128 MiB
	// whatever the file): at 32 MiB the process peaked at 144 MiB on a 300,000-row
	// extract, at 16 MiB at 108 MiB, for about the same time (now that an extract
	// is committed in chunks, a chunk's dirty pages are what the cache must hold).
	// The WAL is checkpointed into index.db every 10,000 pages (40 MiB; SQLite's
	// default is 1,000): a page that consecutive chunks of a big extract rewrite (an
	// index page, the chain's, the sequences') then reaches index.db once per
	// checkpoint instead of once per chunk, 3-6 % fewer bytes written for the same
	// commits (docs/benchmarks-uscente.md). Every commit is still synced to the WAL
	// (synchronous=FULL): a checkpoint's interval changes nothing of durability.
	// journal_mode is set below, after page_size: the driver applies the DSN's
	// pragmas in its own order, and a database in WAL mode keeps its page size.
	w, err := sql.Open("sqlite", "file:"+dbPath+"?"+common+
		"&_pragma=synchronous(FULL)&_pragma=cache_size(-16384)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("archive: open %s: %w", dbPath, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	// A new archive has 8 KiB pages (SQLite's default is 4 KiB): a practice's case
	// (~1.6 KB) left a quarter of every 4 KiB page empty, two to a page; 8 KiB pages
	// hold five, and the B-trees have fewer levels. 100,000 rows: 16 % fewer bytes
	// written. An existing archive keeps its page size (WAL mode fixes it). With 8 KiB
	// pages the cache is 8 MiB: at 16 MiB the process peaked at 156 MiB (its pages
	// cost the driver's allocator more than their size), at 8 MiB at 121 MiB.
	var pageSize int
	for _, q := range []string{"PRAGMA page_size = 8192", "PRAGMA journal_mode = WAL"} {
		if _, err = w.Exec(q); err != nil {
			break
		}
	}
	if err == nil {
		err = w.QueryRow("PRAGMA page_size").Scan(&pageSize)
	}
	if err == nil && pageSize >= 8192 {
		_, err = w.Exec("PRAGMA cache_size = -8192")
	}
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("archive: open %s: %w", dbPath, err)
	}
	s := &Store{dir: abs, w: w, Blobs: blobs}
	if err := s.migrate(context.Background()); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.settleLookups(context.Background()); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", "file:"+dbPath+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	s.r = r
	return s, nil
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// Close checkpoints the WAL and closes the database.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		_, _ = s.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// Read returns the read-only connection pool. Always close rows.
func (s *Store) Read() *sql.DB { return s.r }

// Write runs fn in one write transaction (BEGIN IMMEDIATE) on the single writer
// connection; it commits if fn returns nil and rolls back otherwise.
func (s *Store) Write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	if s.w == nil {
		return ErrReadOnly
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("archive: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			s.dropChainReaders()
			s.dropCaseDicts()
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			s.dropChainReaders()
			s.dropCaseDicts()
			_ = tx.Rollback()
		}
	}()
	var marks chainMarks
	if s.chained {
		if marks, err = s.ensureChainTemp(ctx, tx); err != nil {
			return err
		}
	}
	if err = fn(tx); err != nil {
		return err
	}
	if s.chained {
		if err = s.sealTx(ctx, tx, marks); err != nil {
			return err
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("archive: commit: %w", err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("archive: migrations table: %w", err)
	}
	names, err := fs.Glob(migrationSource, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	// An archive a newer cmord migrated is refused before anything is written: this
	// binary would read a view as a table, or write what the newer one does not
	// expect, and fail later (a downgrade without the backup).
	known := make([]string, len(names))
	for i, n := range names {
		known[i] = strings.TrimSuffix(filepath.Base(n), ".sql")
	}
	appliedNames, err := appliedMigrations(ctx, s.w)
	if err != nil {
		return fmt.Errorf("archive: migrations: %w", err)
	}
	if m := newerMigration(appliedNames, known); m != "" {
		return &NewerArchiveError{Dir: s.dir, Migration: m}
	}
	// Chained once the chain's migration is applied, whether or not the table is
	// still there: a chain table dropped behind cmord's back makes every write fail
	// loudly ("no such table: chain") instead of going on unchained. Set before the
	// migrations after it run, so that what they write is chained too.
	applied := make(map[string]bool, len(appliedNames))
	for _, n := range appliedNames {
		applied[n] = true
	}
	s.chained = applied[chainMigration]
	s.sideData = applied[sideDataMigration]
	s.stateSplit = applied[stateSplitMigration]
	s.builtSide = applied[builtHistoryMigration]
	s.caseDicts = applied[caseDictsMigration]
	s.updatedOnce = applied[updatedOnceMigration]
	s.rowsTrimmed = applied[rowsTrimmedMigration]
	tempToFile := false
	for _, name := range names {
		base := strings.TrimSuffix(filepath.Base(name), ".sql")
		if applied[base] {
			continue
		}
		if !tempToFile {
			// A migration's statement journal goes to a temporary file, not to memory
			// (temp_store MEMORY, the writer's setting): an ALTER TABLE ... DROP COLUMN
			// (0035, 0036) rewrites the whole table in one statement and journals every
			// page it changes, and in memory the first start of an upgrade peaked at
			// 556 MiB on an archive of 500,000 practices, past the unit's MemoryMax.
			// Back to MEMORY after the migrations, which drops the TEMP objects: the
			// next write's ensureChainTemp makes the chain's again.
			if _, err := s.w.ExecContext(ctx, `PRAGMA temp_store = FILE`); err != nil {
				return fmt.Errorf("archive: migrations: %w", err)
			}
			tempToFile = true
			defer func() {
				if _, err := s.w.ExecContext(ctx, `PRAGMA temp_store = MEMORY`); err == nil {
					s.dropChainReaders()
				}
			}()
		}
		body, err := migrationSource.ReadFile(name)
		if err != nil {
			return err
		}
		if base == sideDataMigration {
			// The migration's own seal (it empties practices.data) must hash the
			// practices with their case from the new table, as every seal after it.
			s.sideData = true
		}
		if err := s.applyMigration(ctx, base, string(body)); err != nil {
			return err
		}
		if base == builtHistoryMigration {
			// Every request's derived columns are NULL yet: no practice's hash moved.
			s.builtSide = true
		}
		if base == caseDictsMigration {
			// From the next transaction on, case_dicts is chained (empty yet).
			s.caseDicts = true
		}
		if base == updatedOnceMigration {
			s.updatedOnce = true
		}
		if base == rowsTrimmedMigration {
			s.rowsTrimmed = true
		}
	}
	return nil
}

// applyMigration applies one migration and, when it needs one, the chain's reseal,
// in one transaction: both commit or neither does. Sealed in a transaction of their
// own, a kill -9 between the two commits left the migrated rows unsealed for good
// (the migration is not run again), and `archive verify` reported them as changed
// behind cmord's back.
func (s *Store) applyMigration(ctx context.Context, base, body string) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("archive: begin: %w", err)
	}
	wasChained, wasSplit := s.chained, s.stateSplit
	defer func() {
		if err != nil {
			s.dropChainReaders()
			s.stateSplit = wasSplit
			_ = tx.Rollback()
		}
	}()
	var marks chainMarks
	var before string
	if wasChained {
		if marks, err = s.ensureChainTemp(ctx, tx); err != nil {
			return err
		}
		if before, err = chainedColumns(ctx, tx); err != nil {
			return err
		}
	}
	if _, err = tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("archive: migration %s: %w", base, err)
	}
	if _, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, base, TS(time.Now())); err != nil {
		return err
	}
	if base == stateSplitMigration {
		// practices is a view from here on: the seal below reads it as one (by an
		// inner join), and the next transaction's TEMP triggers go to its tables.
		// Put back if this transaction rolls back.
		s.stateSplit = true
	}
	reseal := false
	switch {
	case base == chainMigration:
		// The rows from before the chain: sealed as they are by its first
		// record. Only right after the migration: were the chain emptied
		// later, sealing again would launder whatever was done meanwhile.
		reseal = true
		if marks, err = s.ensureChainTemp(ctx, tx); err != nil {
			return err
		}
	case wasChained:
		// A migration that changed a chained table's columns (a column with a
		// non-empty default, a rebuilt table) changes its rows' hashes: cmord's
		// own upgrade, sealed as such.
		after, err := chainedColumns(ctx, tx)
		if err != nil {
			return err
		}
		reseal = chainedColumnsChanged(before, after)
	}
	if reseal {
		if err = s.sealAll(ctx, tx); err != nil {
			return err
		}
	}
	if wasChained || reseal {
		// One record: what the migration wrote and, resealing, every row.
		if err = s.sealTx(ctx, tx, marks); err != nil {
			return err
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("archive: commit: %w", err)
	}
	if base == chainMigration {
		s.chained = true
	}
	return nil
}

// appliedMigrations returns the names of the migrations applied to the archive, in
// order (what migrate skips and the read-only open checks).
func appliedMigrations(ctx context.Context, q queryer) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM schema_migrations ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// chainedColumns describes the columns of the chained tables (name, type, default).
func chainedColumns(ctx context.Context, q queryer) (string, error) {
	var b strings.Builder
	for _, t := range chainedTables {
		rows, err := q.QueryContext(ctx, `SELECT name, type, coalesce(dflt_value, '') FROM pragma_table_info(?) ORDER BY cid`, t.name)
		if err != nil {
			return "", err
		}
		for rows.Next() {
			var n, ty, d string
			if err := rows.Scan(&n, &ty, &d); err != nil {
				rows.Close()
				return "", err
			}
			fmt.Fprintf(&b, "%s.%s\t%s\t%s\n", t.name, n, ty, d)
		}
		rows.Close()
	}
	return b.String(), nil
}

// chainedColumnsChanged says whether the chained tables' columns went from before to
// after (chainedColumns) in a way that changes a row's hash: a column gone or changed,
// or one added with a default the hash does not leave out. A column added with no
// default, an empty text or 0 (0034's practice_history.link) reads so in every row
// before it, which the hash leaves out (rowHasher): no reseal of every row for it.
func chainedColumnsChanged(before, after string) bool {
	was := map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		was[l] = true
	}
	now := map[string]bool{}
	for _, l := range strings.Split(after, "\n") {
		now[l] = true
		if l == "" || was[l] {
			continue
		}
		f := strings.Split(l, "\t") // table.column, type, default
		if d := f[len(f)-1]; len(f) != 3 || (d != "" && d != "0" && d != "''" && d != "NULL") {
			return true // a new column with a default other than nothing, '' or 0
		}
	}
	for l := range was {
		if l == "" || now[l] {
			continue
		}
		// The same column, of the same type, with no default now: a table turned into
		// a view of its columns (0035's practices) loses its defaults. A default fills
		// only rows inserted later; every row keeps its value, hence its hash, and a
		// reseal would only seal, as cmord's own, whatever was changed behind its back
		// before the upgrade (and hold every row in memory to do it).
		if f := strings.Split(l, "\t"); len(f) == 3 && now[f[0]+"\t"+f[1]+"\t"] {
			continue
		}
		// The same column of a view, now computed (its declared type is gone: 0040's
		// practices.updated_at, '' stored for state_since and read back as it): the
		// view hands every row the value it had, which the migration's own text says.
		if f := strings.Split(l, "\t"); len(f) == 3 && f[2] == "" && now[f[0]+"\t\t"] {
			continue
		}
		return true
	}
	return false
}

// chainMigration is the migration that creates the state chain.
const chainMigration = "0030_chain"

// sideDataMigration is the migration that moves a practice's case into practice_data.
const sideDataMigration = "0031_practice_data"

// stateSplitMigration is the migration that makes practices a view over practice_rows
// and practice_state.
const stateSplitMigration = "0035_practice_state"

// builtHistoryMigration is the migration after which a build derives its history row
// of a REQ from request_state instead of writing one (archive.BuiltRequest).
const builtHistoryMigration = "0037_request_built_history"

// caseDictsMigration is the migration that adds case_dicts, the dictionaries cases are
// stored deflated against (case_dicts.go).
const caseDictsMigration = "0038_case_dicts"

// updatedOnceMigration is the migration after which practice_state stores an empty
// updated_at for one that is the practice's state_since (Store.updatedAtSince).
const updatedOnceMigration = "0040_practice_updated_same"

// rowsTrimmedMigration is the migration after which cmord stores the shorter forms of
// Store.rowsTrimmed.
const rowsTrimmedMigration = "0043_rows_trimmed"

// TS formats an instant as stored in the index: RFC 3339, UTC, nanoseconds, fixed width
// so that text order is time order.
func TS(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

// ParseTS reads a time stored by TS.
func ParseTS(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// nullTS reads an optional stored time.
func nullTS(ns sql.NullString) time.Time {
	if !ns.Valid || ns.String == "" {
		return time.Time{}
	}
	t, _ := ParseTS(ns.String)
	return t
}
