package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// logDBStat writes into the file MOROSI_DBSTAT names, when set, each table's and
// index's final size in index.db (SQLite's dbstat, through the sqlite3 shell: name,
// bytes, MiB, bytes per practice):
// where a benchmark's bytes end up (docs/benchmarks-uscente.md, "Where the bytes go").
func logDBStat(b *testing.B, stateDir string, practices int) {
	if os.Getenv("MOROSI_DBSTAT") == "" || practices == 0 {
		return
	}
	if _, err := os.Stat("/usr/bin/sqlite3"); err != nil {
		b.Logf("dbstat: no /usr/bin/sqlite3")
		return
	}
	q := `SELECT name, sum(pgsize), printf('%.1f', sum(pgsize) / 1048576.0), sum(pgsize) / ` + strconv.Itoa(practices) +
		` FROM dbstat GROUP BY name ORDER BY sum(pgsize) DESC;`
	out, err := exec.Command("/usr/bin/sqlite3", "-readonly", filepath.Join(stateDir, "index.db"), q).CombinedOutput()
	if err != nil {
		b.Logf("dbstat: %v %s", err, out)
		return
	}
	// Into the file MOROSI_DBSTAT names: the benchmark's log cuts long output.
	if err := os.WriteFile(os.Getenv("MOROSI_DBSTAT"), out, 0o644); err != nil {
		b.Logf("dbstat: %v", err)
	}
}
