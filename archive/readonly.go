package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"modernc.org/sqlite"
)

// ErrReadOnly is returned by Write on a Store opened with OpenReadOnly.
var ErrReadOnly = errors.New("archive: opened read-only")

// MigrationPendingError says that a read-only open found an archive older than this
// binary (or none at all): only a writer (the daemon) may migrate it.
type MigrationPendingError struct {
	Dir       string
	Migration string // the first migration not applied, e.g. "0014_request_payload"
	NoArchive bool   // there is no index.db in Dir at all
}

func (e *MigrationPendingError) Error() string {
	if e.NoArchive {
		return fmt.Sprintf("no archive in %s yet; run `cmord run` (as the cmord user) once first", e.Dir)
	}
	return fmt.Sprintf("the archive in %s needs migration %s; start the daemon once first (`systemctl start cmord`, or `cmord run` as the cmord user): it migrates the archive as it starts", e.Dir, e.Migration)
}

// NewerArchiveError says that the archive was migrated by a newer cmord: this binary
// does not know what its schema means (a table may be a view, a column moved), and
// would fail later, or write what the newer one does not expect.
type NewerArchiveError struct {
	Dir       string
	Migration string // the first applied migration this binary does not know
}

func (e *NewerArchiveError) Error() string {
	return fmt.Sprintf("the archive in %s was migrated by a newer cmord (migration %s is unknown to this version): run that version, "+
		"or restore the backup taken before the upgrade (docs/install.md)", e.Dir, e.Migration)
}

// newerMigration returns the first of applied (sorted) that known lacks, or "".
func newerMigration(applied []string, known []string) string {
	k := make(map[string]bool, len(known))
	for _, n := range known {
		k[n] = true
	}
	for _, n := range applied {
		if !k[n] {
			return n
		}
	}
	return ""
}

// OpenReadOnly opens the state directory for reading only: the SQLite index with
// mode=ro and query_only, nothing created, no migration applied, no temp file
// cleaned. It is what CLI read commands use, so that members of the cmord group can
// run them on a state directory they may read but not write, beside a running daemon.
// Write on the returned Store fails with ErrReadOnly. A *MigrationPendingError says
// the archive must first be opened by the daemon.
func OpenReadOnly(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(abs, "index.db")
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return nil, &MigrationPendingError{Dir: abs, NoArchive: true}
	} else if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_time_format=sqlite&_pragma=query_only(1)"
	r, err := openRO("file:" + dbPath + "?mode=ro&" + common)
	if err != nil && isCantOpen(err) && !exists(dbPath+"-wal") {
		// A WAL database whose -shm file is gone (the daemon is stopped and closed it
		// cleanly) cannot be opened read-only in a directory we may not write: SQLite
		// would need to create the -shm. With no -wal file every committed page is in
		// index.db, so reading it as immutable is exact; a daemon starting meanwhile
		// is the one case where the reader may see an older state.
		r, err = openRO("file:" + dbPath + "?mode=ro&immutable=1&" + common)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: open %s read-only: %w", dbPath, err)
	}
	if err := checkMigrated(context.Background(), r, abs); err != nil {
		r.Close()
		return nil, err
	}
	objects := filepath.Join(abs, "objects")
	// Every migration is applied (checked above): the practice's case is in practice_data.
	return &Store{dir: abs, r: r, sideData: true, builtSide: true, stateSplit: true, caseDicts: true, Blobs: &BlobStore{root: filepath.Join(objects, "sha256"), tmp: filepath.Join(objects, "tmp")}}, nil
}

func openRO(dsn string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	// Ping does not read the schema; a real query is where a missing -shm shows.
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// checkMigrated refuses an archive that lacks one of the embedded migrations.
func checkMigrated(ctx context.Context, db *sql.DB, dir string) error {
	var hasTable int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&hasTable); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	var names []string
	if hasTable > 0 {
		var err error
		if names, err = appliedMigrations(ctx, db); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
	}
	applied := make(map[string]bool, len(names))
	for _, n := range names {
		applied[n] = true
	}
	if m := newerMigration(names, migrationNames()); m != "" {
		return &NewerArchiveError{Dir: dir, Migration: m}
	}
	for _, m := range migrationNames() {
		if !applied[m] {
			return &MigrationPendingError{Dir: dir, Migration: m}
		}
	}
	return nil
}

// migrationNames lists the embedded migrations in order ("0001_core", ...).
func migrationNames() []string {
	names, _ := fs.Glob(migrationFS, "migrations/*.sql")
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimSuffix(filepath.Base(n), ".sql")
	}
	return out
}

// ReadOnly reports whether the Store was opened with OpenReadOnly.
func (s *Store) ReadOnly() bool { return s.w == nil }

// IsPermission reports whether err comes from lacking write access to the state
// directory: a write on a read-only Store, a file the OS refused, or SQLite refusing
// to write its files.
func IsPermission(err error) bool {
	if errors.Is(err, ErrReadOnly) || errors.Is(err, fs.ErrPermission) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 3, 8: // SQLITE_PERM, SQLITE_READONLY (and its extended codes)
			return true
		}
	}
	return false
}

func isCantOpen(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 14, 8: // SQLITE_CANTOPEN; SQLITE_READONLY_CANTINIT (read-only -shm)
			return true
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
