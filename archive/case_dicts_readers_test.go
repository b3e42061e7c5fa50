package archive

import (
	"bytes"
	"context"
	"sync"
	"testing"
)

// A read-only Store (the CLI's, beside the daemon) reads the cases of chunks written
// by another Store after it cached dictionaries, a rolled-back chunk between them,
// and while chunks are being written.
func TestCaseDictsReadOnlyBesideWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := writeChunk(t, s, 0, 20, false)
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	checkCases(t, ro, 0, a) // caches dictionary 1
	writeChunk(t, s, 900, 905, true)
	b := writeChunk(t, s, 20, 40, false) // dictionary 2, the id the rolled-back chunk had
	checkCases(t, ro, 20, b)
	checkCases(t, ro, 0, a)

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for k := 0; k < 6; k++ {
			writeChunk(t, s, 40+k*10, 40+k*10+10, k%2 == 1)
		}
	}()
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		if err := ro.EachPractice(ctx, PracticeFilter{}, func(p Practice) error {
			i := -1
			for k, id := range a {
				if id == p.ID {
					i = k
				}
			}
			for k, id := range b {
				if id == p.ID {
					i = 20 + k
				}
			}
			if i < 0 {
				return nil
			}
			if d, _ := dictCase(i); !bytes.Equal(p.Data, d.Marshal()) {
				t.Errorf("practice #%d reads %.60q while a chunk writes", p.ID, p.Data)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	verifyOK(t, s, "after the chunks")
}
