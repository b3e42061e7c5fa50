package packaging

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestUnitMemoryLimits keeps the unit's Go soft memory limit (GOMEMLIMIT) under its
// hard stop (MemoryMax) with room for what is not Go heap: a limit at or above
// MemoryMax would let the collector wait until the kernel kills the daemon.
func TestUnitMemoryLimits(t *testing.T) {
	b, err := os.ReadFile("../systemd/cmord.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	m := regexp.MustCompile(`(?m)^MemoryMax=(\d+)M$`).FindStringSubmatch(unit)
	g := regexp.MustCompile(`(?m)^Environment=GOMEMLIMIT=(\d+)MiB$`).FindStringSubmatch(unit)
	if m == nil || g == nil {
		t.Fatalf("the unit sets MemoryMax=%v and GOMEMLIMIT=%v: both are needed (MemoryMax=NM, Environment=GOMEMLIMIT=NMiB)", m, g)
	}
	maxBytes, _ := strconv.ParseInt(m[1], 10, 64)
	limitBytes, _ := strconv.ParseInt(g[1], 10, 64)
	maxBytes <<= 20
	limitBytes <<= 20
	if headroom := maxBytes - limitBytes; headroom < 64<<20 {
		t.Errorf("GOMEMLIMIT %s MiB leaves %d MiB under MemoryMax %s M; SQLite's cache and the rest need at least 64", g[1], headroom>>20, m[1])
	}
}
