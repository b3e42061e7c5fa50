package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cmord/cmord/daemon/intake"
)

// CycleSummary is what one `cmord run --once` cycle did, for the person who ran it.
type CycleSummary struct {
	FolderFiles    int // files taken in from the drop folders
	FolderDone     int // of which finished (done/)
	FolderRejected int // of which refused (rejected/, with a reason)
	SIIFetched     int // files fetched from the SII over SFTP and archived
	Built          int // flow files built
	Delivered      int // deliveries completed (uploads to the SII, copies to billing)
	MailSent       int // messages sent from the outbox
	ExceptionsNew  int // exceptions raised for the first time during the cycle
	ExceptionsOpen int // open exceptions at the end
	// Counted: the counts above were read from the archive (false when the archive
	// itself failed: the summary then says nothing and is not printed).
	Counted bool
}

// String is the one-paragraph summary `cmord run --once` prints.
func (s CycleSummary) String() string {
	n := func(k int, one, many string) string {
		if k == 1 {
			return fmt.Sprintf("%d %s", k, one)
		}
		return fmt.Sprintf("%d %s", k, many)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Cycle done: %s taken in from the drop folders (%d done, %d rejected), %s fetched from the SII; ",
		n(s.FolderFiles, "file", "files"), s.FolderDone, s.FolderRejected, n(s.SIIFetched, "file", "files"))
	fmt.Fprintf(&b, "%s built, %s delivered; %s sent; %s open (%d new this cycle).",
		n(s.Built, "flow file", "flow files"), n(s.Delivered, "file", "files"), n(s.MailSent, "mail", "mails"),
		n(s.ExceptionsOpen, "exception", "exceptions"), s.ExceptionsNew)
	if s.FolderRejected > 0 || s.ExceptionsOpen > 0 {
		b.WriteString(" See `cmord exceptions`")
		if s.FolderRejected > 0 {
			b.WriteString(" and the .reason.txt files in rejected/")
		}
		b.WriteString(".")
	}
	return b.String()
}

// folderCounts counts the outcomes of the files the intake hands over during a
// RunOnceSummary (nil otherwise).
type folderCounts struct{ taken, done, rejected atomic.Int64 }

// archiveCounts is the part of a CycleSummary read from the archive, before and after.
type archiveCounts struct {
	maxFileID, maxExceptionID      int64
	delivered, mailSent, openExcep int
}

func (d *Daemon) archiveCounts(ctx context.Context) (archiveCounts, error) {
	var c archiveCounts
	err := d.Store.Read().QueryRowContext(ctx, `SELECT
		(SELECT coalesce(max(id), 0) FROM files),
		(SELECT coalesce(max(id), 0) FROM exceptions),
		(SELECT count(*) FROM deliveries WHERE state = 'delivered'),
		(SELECT count(*) FROM mail_outbox WHERE state = 'sent'),
		(SELECT count(*) FROM exceptions WHERE resolved_at IS NULL)`).
		Scan(&c.maxFileID, &c.maxExceptionID, &c.delivered, &c.mailSent, &c.openExcep)
	return c, err
}

// RunOnceSummary runs one cycle (RunOnce) and says what it did. The summary is
// filled in (Counted) also when the cycle had errors: a step that failed (the SII
// unreachable) does not hide what the other steps did.
func (d *Daemon) RunOnceSummary(ctx context.Context) (CycleSummary, error) {
	var sum CycleSummary
	before, err := d.archiveCounts(ctx)
	if err != nil {
		return sum, fmt.Errorf("archive: %w", err)
	}
	counts := &folderCounts{}
	d.onceCounts.Store(counts)
	defer d.onceCounts.Store(nil)
	runErr := d.RunOnce(ctx)
	after, err := d.archiveCounts(ctx)
	if err != nil {
		return sum, fmt.Errorf("archive: %w", err)
	}
	sum.FolderFiles, sum.FolderDone, sum.FolderRejected = int(counts.taken.Load()), int(counts.done.Load()), int(counts.rejected.Load())
	sum.Delivered, sum.MailSent = after.delivered-before.delivered, after.mailSent-before.mailSent
	sum.ExceptionsOpen = after.openExcep
	err = d.Store.Read().QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM files WHERE id > ? AND direction = 'in' AND source LIKE 'sftp:%'),
		(SELECT count(*) FROM files WHERE id > ? AND direction = 'out' AND source = 'built'),
		(SELECT count(*) FROM exceptions WHERE id > ?)`, before.maxFileID, before.maxFileID, before.maxExceptionID).
		Scan(&sum.SIIFetched, &sum.Built, &sum.ExceptionsNew)
	if err != nil {
		return sum, fmt.Errorf("archive: %w", err)
	}
	sum.Counted = true
	return sum, runErr
}

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
	process := d.processClaimed
	if counts := d.onceCounts.Load(); counts != nil {
		process = func(ctx context.Context, c intake.Claimed) (intake.Outcome, error) {
			out, err := d.processClaimed(ctx, c)
			if err == nil {
				counts.taken.Add(1)
				if out.Rejected {
					counts.rejected.Add(1)
				} else {
					counts.done.Add(1)
				}
			}
			return out, err
		}
	}
	w, err := intake.New(folders, process, d.intakeEvent, d.Log.With("component", "intake"))
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
		busy, retrying := false, 0
		for _, st := range w.Stats() {
			if st.Pending > 0 || st.InProgress > 0 {
				busy = true
			}
			retrying += st.InProgress
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
			if retrying > 0 {
				return fmt.Errorf("drop folders: %d file(s) still failing with a transient error after %s; they stay in %s for the next run (see `cmord exceptions`)",
					retrying, (3*longest + 30*time.Second), intake.InProgressDir)
			}
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
