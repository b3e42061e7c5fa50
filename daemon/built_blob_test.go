package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// The build puts its file's blob on a goroutine of its own while it moves the
// practices (writeFile): when the put fails, the build's transaction rolls back
// whole. No request is marked built or sent, no practice moved, no file indexed
// for a blob that is not there, and the archive verifies; once the blob store
// works again the next cycle sends both requests.
func TestBuiltBlobPutFailsNothingSent(t *testing.T) {
	w, reqs := worldWithTwoReady(t)
	ctx := context.Background()
	tmp := filepath.Join(w.d.Store.Dir(), "objects", "tmp")
	if st, err := os.Stat(tmp); err != nil || !st.IsDir() {
		t.Fatalf("the blob store's temporary folder is not %s: %v", tmp, err)
	}
	// Every put fails: its temporary file cannot be made (root ignores modes).
	if err := os.Rename(tmp, tmp+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := w.d.Store.ListFiles(ctx, archive.FileFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.d.RunOnce(ctx); err == nil || !strings.Contains(err.Error(), "blob") {
		t.Fatalf("RunOnce: %v, want the build's blob put failing", err)
	}
	for _, r := range reqs {
		got, err := w.d.Store.RequestByCPUtente(ctx, nil, r.CPUtente)
		if err != nil || got.State != "ready" || got.FileID != 0 {
			t.Errorf("request %s after a failed blob put: %s, file #%d (%v); want ready, no file", r.CPUtente, got.State, got.FileID, err)
		}
		if p := w.practice(r.CPUtente); p.State != flows.StateReady {
			t.Errorf("practice of %s moved to %s by a build that failed", r.CPUtente, p.State)
		}
	}
	after, err := w.d.Store.ListFiles(ctx, archive.FileFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("%d files indexed by a build whose blob put failed", len(after)-len(before))
	}
	if rep, err := w.d.Store.Verify(ctx, nil); err != nil || !rep.OK() {
		t.Errorf("archive verify after the failed build: %v %v", err, rep.Problems)
	}
	// The store works again: the next cycle builds and sends both.
	os.Remove(tmp)
	if err := os.Rename(tmp+".away", tmp); err != nil {
		t.Fatal(err)
	}
	w.runOnce()
	for _, r := range reqs {
		got, err := w.d.Store.RequestByCPUtente(ctx, nil, r.CPUtente)
		if err != nil || got.State != "sent" || got.FileID == 0 {
			t.Errorf("request %s once the store works: %s, file #%d (%v); want sent", r.CPUtente, got.State, got.FileID, err)
		}
	}
	if rep, err := w.d.Store.Verify(ctx, nil); err != nil || !rep.OK() {
		t.Errorf("archive verify at the end: %v %v", err, rep.Problems)
	}
}
