package daemon

import (
	"context"
	"strings"
	"testing"
)

// TestStateDiskLowAlert: with [alerts] state_min_free above the free space the
// state directory's filesystem really has (statfs), a cycle raises one urgent
// disk_low exception naming the directory and both sizes, repeated cycles only count
// it, and a threshold below the free space resolves it. 0 turns the check off.
// Issue 13.
func TestStateDiskLowAlert(t *testing.T) {
	free, err := statFree(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := newTestWorld(t, e2eNow, "")
	ctx := context.Background()
	setMinFree := func(n int64) {
		cfg := *w.d.Config()
		cfg.Alerts.StateMinFree = n
		if err := w.d.apply(&cfg); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		minFree int64
		open    bool
	}{
		{"threshold above the free space", free + 1<<40, true},
		{"still low: the same exception", free + 1<<40, true},
		{"check off", 0, true}, // off: nothing raised or resolved
		{"space back", 1 << 20, false},
	}
	var lastCount int
	for _, tt := range tests {
		setMinFree(tt.minFree)
		w.runOnce()
		got := w.exceptions("disk_low")
		if !tt.open {
			if len(got) != 0 {
				t.Fatalf("%s: disk_low still open: %+v", tt.name, got)
			}
			continue
		}
		if len(got) != 1 {
			t.Fatalf("%s: %d open disk_low exceptions, want 1", tt.name, len(got))
		}
		e := got[0]
		if e.Severity != "urgent" || e.Owner != "sysadmin" || e.Subject != w.d.Store.Dir() ||
			!strings.Contains(e.Message, "free, below the") || !strings.Contains(e.Message, "state_min_free") {
			t.Errorf("%s: exception %+v", tt.name, e)
		}
		if tt.minFree > 0 && e.Count <= lastCount {
			t.Errorf("%s: count %d, want more than %d (raised again)", tt.name, e.Count, lastCount)
		}
		lastCount = e.Count
	}
	if err := w.d.CheckStateDisk(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBytesIEC(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {2 << 30, "2.0 GiB"}, {5 << 40, "5.0 TiB"}} {
		if got := bytesIEC(tt.n); got != tt.want {
			t.Errorf("bytesIEC(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
