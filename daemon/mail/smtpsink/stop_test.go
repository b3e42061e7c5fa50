package smtpsink

import (
	"testing"
	"time"
)

// A sink stopped at once after it started (before its Serve goroutine ran) must
// return: go-smtp's Close closed only the listeners Serve had registered, and Stop
// waited for good. Many starts, each stopped at once, give the race its chances.
func TestStopRightAfterStart(t *testing.T) {
	for i := 0; i < 200; i++ {
		s, err := Start(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Stop() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("stop %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("stop %d still waiting after 30 s: the Serve goroutine never returned", i)
		}
	}
}
