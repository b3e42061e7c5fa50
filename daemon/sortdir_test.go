package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cmord/cmord/config"
)

// Runs a killed daemon left while it sorted an extract (STATE/tmp/sort/file-N) are
// removed when the daemon starts again, whatever becomes of file N: before, they were
// removed only when file N was read sorted again, and stayed for good beside a file
// refused or read in file order after the restart. What else is under STATE/tmp is
// left as it is.
func TestRunRemovesSortRunsLeftByAKill(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "in"), 0o750)
	cfg, err := config.Parse(filepath.Join(dir, "cmord.toml"), []byte(fmt.Sprintf(`state_dir = %q
[company]
piva = "00488410010"
name = "Test"
roles = ["uscente"]
sectors = ["E"]
piva_gestore = "01234567897"
[[folder]]
name = "morosi"
path = %q
kind = "uscente.morosi"
`, filepath.Join(dir, "state"), filepath.Join(dir, "in"))))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tmp := filepath.Join(d.Store.Dir(), "tmp")
	run := filepath.Join(tmp, "sort", "file-7", "morosi-sort-123", "run-0000")
	other := filepath.Join(tmp, "sftp-x", "partial")
	for _, p := range []string{run, other} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("left by a kill"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // started, then stopped at once
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if left, err := os.ReadDir(filepath.Join(tmp, "sort")); err == nil && len(left) != 0 {
		t.Errorf("left under STATE/tmp/sort after a start: %v", left)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another part of STATE/tmp was touched: %v", err)
	}
}
