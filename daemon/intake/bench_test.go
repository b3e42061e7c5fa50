package intake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDropToClaim measures the time from creating a file to the ProcessFunc
// call with Settle = 50ms. The target for the daemon is drop-to-archived within
// Settle + 100 ms; overhead-ms is the part on top of Settle (event delivery, timers,
// the claiming rename and its directory fsyncs).
func BenchmarkDropToClaim(b *testing.B) {
	dir := b.TempDir()
	claimed := make(chan time.Time, 1)
	w, err := New([]Folder{{Name: "bench", Path: dir, Settle: testSettle, Watch: WatchNotify}},
		func(context.Context, Claimed) (Outcome, error) {
			claimed <- time.Now()
			return Outcome{}, nil
		}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Ready()
	var total time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d.csv", i)), []byte("POD;IMPORTO\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		total += (<-claimed).Sub(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(total-time.Duration(b.N)*testSettle)/float64(b.N)/float64(time.Millisecond), "overhead-ms")
	cancel()
	<-done
}
