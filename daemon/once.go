package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/cmord/cmord/daemon/intake"
)

// ScanFoldersOnce takes in every file present in the drop folders now: it runs the
// intake (same readiness, claim and finish rules as the daemon) until each folder has
// nothing pending and nothing in progress, or until a bound derived from the settle
// times passes. Files still being written when the bound passes stay for the next run.
func (d *Daemon) ScanFoldersOnce(ctx context.Context) error {
	cfg := d.Config()
	if len(cfg.Folders) == 0 {
		return nil
	}
	var folders []intake.Folder
	var longest time.Duration
	for _, f := range cfg.Folders {
		folders = append(folders, intakeFolder(f))
		if f.Settle > longest {
			longest = f.Settle
		}
	}
	w, err := intake.New(folders, d.processClaimed, d.intakeEvent, d.Log.With("component", "intake"))
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	select {
	case <-w.Ready():
	case err := <-done:
		return err
	}
	// A file that keeps changing longer than this is left for the next run.
	deadline := time.Now().Add(3*longest + 30*time.Second)
	idleSince := time.Time{}
	for {
		busy := false
		for _, st := range w.Stats() {
			if st.Pending > 0 || st.InProgress > 0 {
				busy = true
			}
		}
		switch {
		case !busy && idleSince.IsZero():
			idleSince = time.Now()
		case busy:
			idleSince = time.Time{}
		}
		// idle for a moment: nothing more arrived while the last file was finishing
		if !idleSince.IsZero() && time.Since(idleSince) > 200*time.Millisecond {
			cancel()
			return <-done
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			return fmt.Errorf("drop folders: files still changing after %s; they are left for the next run", (3*longest + 30*time.Second))
		}
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return ctx.Err()
		case err := <-done:
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
