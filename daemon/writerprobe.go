package daemon

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/cmord/cmord/flows"
)

// The archive has one write connection: every write of the daemon (a file taken in,
// an exception raised, the schedule's ledger, the mail outbox) waits for it, with no
// time limit. A transaction that never ends (a handler blocked on a hung network
// mount while it holds the writer, a bug) therefore wedges the whole daemon while
// its reads still answer: /healthz said all was well and the watchdog went on
// petting, and nothing could raise an exception about it (raise itself waits). The
// writer probe is a write that does nothing, started every writerProbeEvery; one
// still waiting after writerStuckAfter makes /healthz answer 503 and stops the
// watchdog, so systemd restarts cmord (kill -9 safe) and the next start raises
// daemon_crashed, by mail.
//
// writerStuckAfter is far above the longest hold of the writer measured (a chunk of
// a 1,000,000-row extract holds it about 3 s; docs/benchmarks-uscente.md).
const (
	writerProbeEvery = 30 * time.Second
	writerStuckAfter = 10 * time.Minute
	// writerStuckText is writerStuckAfter as messages say it.
	writerStuckText = "10 minutes"
)

// writerProbe is the probe in flight, if any.
type writerProbe struct {
	mu      sync.Mutex
	pending bool
	since   time.Time
}

// probeWriter starts a probe of the archive's writer unless one is still waiting.
func (d *Daemon) probeWriter() {
	d.probe.mu.Lock()
	if d.probe.pending {
		d.probe.mu.Unlock()
		return
	}
	d.probe.pending, d.probe.since = true, d.now()
	d.probe.mu.Unlock()
	go func() {
		err := d.Store.Write(context.Background(), func(*sql.Tx) error { return nil })
		if err != nil {
			// An error (a full disk, another process's lock) is not a wedge: the
			// writer answered. raise and its /healthz report say those.
			d.Log.Warn("archive writer probe failed", "err", err)
		}
		d.probe.mu.Lock()
		d.probe.pending = false
		d.probe.mu.Unlock()
	}()
}

// writerHealth is nil unless a probe has waited writerStuckAfter for the writer.
func (d *Daemon) writerHealth() error {
	d.probe.mu.Lock()
	pending, since := d.probe.pending, d.probe.since
	d.probe.mu.Unlock()
	if !pending || d.now().Sub(since) < writerStuckAfter {
		return nil
	}
	return fmt.Errorf("archive: no write has gone through since %s (over %s): a transaction never ends and every file, exception and mail waits; the systemd watchdog restarts cmord",
		since.In(flows.Rome).Format("02/01/2006 15:04:05"), writerStuckText)
}

// watchWriter probes the writer every writerProbeEvery until ctx ends.
func (d *Daemon) watchWriter(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(writerProbeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				d.probeWriter()
			}
		}
	}()
	return cancel
}
