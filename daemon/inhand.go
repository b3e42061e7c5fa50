package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// A drop folder processes one file at a time: a file whose processing never returns
// (its read hangs on a network mount gone dead, a handler that loops) holds the
// folder, and every file dropped after it waits with no receipt, while the rest of
// the daemon, /healthz and the watchdog carry on. A file in hand for fileStuckAfter
// raises file_retrying (high, sysadmin; checked every minute by the mail job) and
// makes /healthz answer 503, until it returns. fileStuckAfter is far above the
// longest processing measured (a 1,000,000-row extract takes minutes;
// docs/benchmarks-uscente.md).
const (
	fileStuckAfter = time.Hour
	fileStuckText  = "an hour" // fileStuckAfter, as messages say it
)

// A drop folder's loop can also hang with no file in hand: a listing, a stat or a
// rename of the folder that never returns (a network mount that no longer answers:
// the call waits in the kernel, no error ever comes, so folder_unreadable is not
// raised either), or an event callback. Nothing is taken in from the folder, and no
// file is in hand to say so. Busy past loopStuckAfter without a file in hand, the
// folder raises folder_unreadable (high, sysadmin; checked every minute by the mail
// job with the files in hand) and /healthz answers 503 naming it, until the loop
// comes back. A listing takes seconds even for 100,000 files.
const (
	loopStuckAfter = 15 * time.Minute
	loopStuckText  = "15 minutes" // loopStuckAfter, as messages say it
)

// stalledLoop is a folder whose loop is busy past loopStuckAfter with no file in hand.
type stalledLoop struct {
	folder string
	since  time.Time
}

// stalledLoops returns the folders whose loop has not come back for loopStuckAfter.
func (d *Daemon) stalledLoops() []stalledLoop {
	w := d.watcher.Load()
	if w == nil {
		return nil
	}
	after := time.Duration(d.loopStuckAfter.Load())
	if after <= 0 {
		after = loopStuckAfter
	}
	var out []stalledLoop
	for name, st := range w.Stats() {
		if st.InHand == "" && !st.StalledSince.IsZero() && st.StalledFor >= after {
			out = append(out, stalledLoop{folder: name, since: d.now().Add(-st.StalledFor)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].folder < out[j].folder })
	return out
}

func stalledFingerprint(folder string) string { return "folder_unreadable|" + folder + "|loop" }

// stuckFile is a file in hand past fileStuckAfter.
type stuckFile struct {
	folder, file string
	since        time.Time
}

// stuckInHand returns the files in hand past fileStuckAfter, by folder.
func (d *Daemon) stuckInHand() []stuckFile {
	w := d.watcher.Load()
	if w == nil {
		return nil
	}
	after := time.Duration(d.stuckAfter.Load())
	if after <= 0 {
		after = fileStuckAfter
	}
	var out []stuckFile
	for name, st := range w.Stats() {
		// Measured by intake on its own (real) clock: the demo's simulated clock jumps.
		if st.InHand != "" && st.InHandFor >= after {
			out = append(out, stuckFile{folder: name, file: st.InHand, since: d.now().Add(-st.InHandFor)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].folder < out[j].folder })
	return out
}

func stuckFingerprint(folder, file string) string {
	return "file_retrying|folder:" + folder + "|" + file + "|in_hand"
}

// checkInHand raises file_retrying for each file in hand past fileStuckAfter and
// resolves those raised earlier that have returned.
func (d *Daemon) checkInHand(ctx context.Context) {
	if d.watcher.Load() == nil {
		return // no intake running (a reload between generations): nothing known
	}
	if !d.stuckPrimed.Load() {
		// Those a previous run raised: its Action is a restart, which takes the file
		// again and finishes it; this run must resolve them once nothing is stuck.
		open := true
		es, err := d.Store.Exceptions(ctx, archive.ExceptionFilter{Kind: "file_retrying", Open: &open})
		if err == nil {
			for _, e := range es {
				if strings.HasPrefix(e.Fingerprint, "file_retrying|folder:") && strings.HasSuffix(e.Fingerprint, "|in_hand") {
					d.stuckRaised.Store(e.Fingerprint, true)
				}
			}
			d.stuckPrimed.Store(true)
		}
	}
	now := map[string]bool{}
	for _, s := range d.stuckInHand() {
		fp := stuckFingerprint(s.folder, s.file)
		now[fp] = true
		d.stuckRaised.Store(fp, true)
		d.raise(ctx, archive.Exception{Kind: "file_retrying", Severity: archive.SevHigh, Owner: "sysadmin",
			Fingerprint: fp, Subject: s.file,
			Message: fmt.Sprintf("folder %s: %s has been in processing since %s (over %s) and has not returned; no other file of the folder is taken until it does",
				s.folder, flows.Escape(s.file), s.since.In(flows.Rome).Format("02/01/2006 15:04"), fileStuckText),
			Action: "Check the folder's filesystem (a network mount that no longer answers holds the read) and the daemon's log; if nothing moves, restart cmord (systemctl restart cmord): the file is processed again from .inprogress/, once."})
	}
	for _, s := range d.stalledLoops() {
		fp := stalledFingerprint(s.folder)
		now[fp] = true
		d.stuckRaised.Store(fp, true)
		d.raise(ctx, archive.Exception{Kind: "folder_unreadable", Severity: archive.SevHigh, Owner: "sysadmin",
			Fingerprint: fp, Subject: s.folder,
			Message: fmt.Sprintf("drop folder %s: intake has been busy since %s (over %s) with no file in hand and has not come back: a listing, stat or rename of the folder that does not return (a network mount that no longer answers); no file is taken in from it",
				s.folder, s.since.In(flows.Rome).Format("02/01/2006 15:04"), loopStuckText),
			Action: "Check the folder's filesystem (mount, NFS or SMB server) and the daemon's log; once the mount answers the folder goes on by itself; if the call never returns, cmord cannot be stopped cleanly either (systemctl restart cmord; a process in state D needs the mount back, or a reboot)."})
	}
	d.stuckRaised.Range(func(k, _ any) bool {
		if fp := k.(string); !now[fp] {
			why := "the file's processing returned"
			if strings.HasSuffix(fp, "|loop") {
				why = "the folder's intake came back"
			}
			d.resolve(ctx, fp, why)
			d.stuckRaised.Delete(fp)
		}
		return true
	})
}

// inHandHealth is nil unless a file has been in hand past fileStuckAfter.
func (d *Daemon) inHandHealth() error {
	var bad []string
	for _, s := range d.stuckInHand() {
		bad = append(bad, fmt.Sprintf("folder %s: %s in processing since %s", s.folder, flows.Escape(s.file), s.since.In(flows.Rome).Format("02/01/2006 15:04")))
	}
	var err error
	if len(bad) > 0 {
		err = fmt.Errorf("intake: %s (over %s; the folder takes nothing else)", strings.Join(bad, "; "), fileStuckText)
	}
	bad = nil
	for _, s := range d.stalledLoops() {
		bad = append(bad, fmt.Sprintf("folder %s: busy since %s with no file in hand", s.folder, s.since.In(flows.Rome).Format("02/01/2006 15:04")))
	}
	if len(bad) > 0 {
		err = errors.Join(err, fmt.Errorf("intake: %s (over %s: a listing of the folder that does not return; nothing is taken in)", strings.Join(bad, "; "), loopStuckText))
	}
	return err
}
