package daemon

import (
	"context"
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
	d.stuckRaised.Range(func(k, _ any) bool {
		if fp := k.(string); !now[fp] {
			d.resolve(ctx, fp, "the file's processing returned")
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
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("intake: %s (over %s; the folder takes nothing else)", strings.Join(bad, "; "), fileStuckText)
}
