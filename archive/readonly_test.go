package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadOnlyChild is not a test on its own: TestOpenReadOnly runs it as a child
// process under another user (CMORD_RO_CHILD=dir) to read an archive that user may
// read but not write, as a member of the cmord group would.
func TestReadOnlyChild(t *testing.T) {
	dir := os.Getenv("CMORD_RO_CHILD")
	if dir == "" {
		t.Skip("helper process for TestOpenReadOnly")
	}
	out, err := readOnlySummary(dir)
	if err != nil {
		fmt.Print("error: " + err.Error())
		os.Exit(3)
	}
	fmt.Print(out)
	os.Exit(0)
}

// readOnlySummary opens dir read-only, lists its files, reads one blob and checks
// that a write is refused; it returns "files=N content=C".
func readOnlySummary(dir string) (string, error) {
	s, err := OpenReadOnly(dir)
	if err != nil {
		return "", err
	}
	defer s.Close()
	ctx := context.Background()
	files, err := s.ListFiles(ctx, FileFilter{})
	if err != nil {
		return "", err
	}
	content := ""
	if len(files) > 0 {
		rc, _, err := s.OpenFile(ctx, files[0].ID)
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return "", err
		}
		content = string(b)
	}
	werr := s.Write(ctx, func(tx *sql.Tx) error { return nil })
	if !errors.Is(werr, ErrReadOnly) || !IsPermission(werr) {
		return "", fmt.Errorf("Write on a read-only store: %v, want ErrReadOnly", werr)
	}
	return fmt.Sprintf("files=%d content=%s", len(files), content), nil
}

// readAsOtherUser runs readOnlySummary on dir as a user who may read the state
// directory but not write it. As root (who ignores file modes) the test binary is
// run again as nobody; otherwise dir is made read-only for us.
func readAsOtherUser(t *testing.T, dir string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		return readOnlySummary(dir)
	}
	// nobody must reach the copied test binary and the state directory.
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("cmord-ro-test-%d", os.Getpid()))
	if _, err := os.Stat(bin); err != nil {
		data, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Remove(bin) })
	cmd := exec.Command(bin, "-test.run=^TestReadOnlyChild$")
	cmd.Env = append(os.Environ(), "CMORD_RO_CHILD="+dir)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if errors.Is(err, fs.ErrPermission) {
		t.Skipf("cannot run the test binary as another user from %s (noexec?): %v", os.TempDir(), err)
	}
	s := string(out)
	if rest, ok := strings.CutPrefix(s, "error: "); ok {
		return "", errors.New(rest)
	}
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, s)
	}
	return s, nil
}

// makeReadOnly leaves dir readable (group and others, as the state directory is to
// the cmord group) but not writable, and its parents traversable.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	for p := filepath.Dir(dir); p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return os.Chmod(p, 0o555)
		}
		return os.Chmod(p, 0o444)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}

func TestOpenReadOnly(t *testing.T) {
	tests := []struct {
		name      string
		keepOpen  bool // the daemon is running: -wal and -shm exist
		prepare   func(t *testing.T, s *Store)
		want      string
		wantError string
	}{
		{name: "daemon stopped", want: "files=1 content=hello"},
		{name: "daemon running", keepOpen: true, want: "files=1 content=hello"},
		{name: "migration pending", prepare: func(t *testing.T, s *Store) {
			if _, err := s.w.Exec(`DELETE FROM schema_migrations WHERE name = '0014_request_payload'`); err != nil {
				t.Fatal(err)
			}
		}, wantError: "needs migration 0014_request_payload; start the daemon once first (`systemctl start cmord`, or `cmord run` as the cmord user)"},
		{name: "migrated by a newer cmord", prepare: func(t *testing.T, s *Store) {
			if _, err := s.w.Exec(`INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_from_the_future', '2030-01-01T00:00:00Z')`); err != nil {
				t.Fatal(err)
			}
		}, wantError: "was migrated by a newer cmord (migration 9999_from_the_future is unknown to this version)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			ingest(t, s, "folder:x", "a.csv", "hello")
			if tc.prepare != nil {
				tc.prepare(t, s)
			}
			if tc.keepOpen {
				defer s.Close()
			} else if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			makeReadOnly(t, dir)
			got, err := readAsOtherUser(t, dir)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("got %q, %v; want the error %q", got, err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.keepOpen {
				// the daemon still writes after the reader has gone
				ingest(t, s, "folder:x", "b.csv", "again")
			}
		})
	}
}

func TestOpenReadOnlyNoArchive(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenReadOnly(dir)
	var me *MigrationPendingError
	if !errors.As(err, &me) || !me.NoArchive || !strings.Contains(err.Error(), "run `cmord run` (as the cmord user) once first") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created index.db")
	}
}
