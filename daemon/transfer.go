package daemon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/intake"
	"github.com/cmord/cmord/daemon/sftpx"
	"github.com/cmord/cmord/flows"
)

// deliveryBackoff is the wait before the n-th retry of a delivery: 1m doubling to 1h,
// with jitter so that a recovered endpoint is not hit by every file at once.
func deliveryBackoff(attempts int) time.Duration {
	d := time.Minute << min(attempts, 6)
	if d > time.Hour {
		d = time.Hour
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// DeliverDue publishes every due delivery. Each one is independent: a failure is
// recorded and retried with backoff, and an unreachable SII is one exception that
// mutes the per-file failures behind it.
func (d *Daemon) DeliverDue(ctx context.Context) (int, error) {
	due, err := d.Store.DueDeliveries(ctx, d.now(), "")
	if err != nil {
		return 0, err
	}
	delivered := 0
	unreachable := map[string]bool{}
	for _, dl := range due {
		if ctx.Err() != nil {
			return delivered, ctx.Err()
		}
		if unreachable[dl.Target] {
			continue // the endpoint is down: don't spend a dial timeout per file
		}
		remote, size, err := d.deliver(ctx, dl)
		if err == nil {
			failpoint("after_upload")
			if err := d.Store.MarkDelivered(ctx, dl.ID, remote, size); err != nil {
				return delivered, err
			}
			delivered++
			d.Metrics.FilesOut.WithLabelValues(dl.Target).Inc()
			d.resolve(ctx, "upload_failed|"+dl.Target+"|"+dl.RemoteName, "delivered")
			d.Log.Info("file published", "target", dl.Target, "remote", remote, "size", size)
			continue
		}
		d.Metrics.Failures.WithLabelValues("deliver").Inc()
		var exists *sftpx.ExistsError
		permanent := errors.As(err, &exists)
		if isConnectError(err) {
			unreachable[dl.Target] = true
		}
		next := d.now().Add(deliveryBackoff(dl.Attempts))
		if err := d.Store.MarkDeliveryFailed(ctx, dl.ID, err, next, permanent); err != nil {
			return delivered, err
		}
		sev := archive.SevHigh
		action := "cmord retries automatically; check the SII endpoint if it persists."
		if permanent {
			action = "A file with that name is already on the SII server with other content: check it, then run `cmord deliveries retry` or rename."
		}
		d.raise(ctx, archive.Exception{Fingerprint: "upload_failed|" + dl.Target + "|" + dl.RemoteName, Kind: "upload_failed",
			Severity: sev, Owner: "sysadmin", FileID: dl.FileID, Subject: strings.TrimPrefix(dl.Target, "sftp:"),
			Message: fmt.Sprintf("publishing %s to %s failed (attempt %d): %v", dl.RemoteName, dl.Target, dl.Attempts+1, err), Action: action})
		d.Log.Warn("publish failed; will retry", "target", dl.Target, "file", dl.RemoteName, "next", next, "err", err)
	}
	if n, err := d.Store.PendingDeliveries(ctx); err == nil {
		d.Metrics.QueueDepth.WithLabelValues("deliveries").Set(float64(n))
	}
	return delivered, nil
}

func isConnectError(err error) bool {
	var hk *sftpx.HostKeyError
	var ce *sftpx.ConnectError
	return errors.As(err, &hk) || errors.As(err, &ce)
}

// deliver publishes one file to its target.
func (d *Daemon) deliver(ctx context.Context, dl archive.Delivery) (string, int64, error) {
	f, err := d.Store.GetFile(ctx, dl.FileID)
	if err != nil {
		return "", 0, err
	}
	switch {
	case strings.HasPrefix(dl.Target, "sftp:"):
		name := strings.TrimPrefix(dl.Target, "sftp:")
		d.mu.RLock()
		c := d.clients[name]
		d.mu.RUnlock()
		if c == nil {
			return "", 0, fmt.Errorf("endpoint %s is not configured", name)
		}
		rc, err := d.Store.Blobs.Open(f.Hash)
		if err != nil {
			return "", 0, err
		}
		defer rc.Close()
		res, err := c.Upload(ctx, withUploadFailpoint(rc, f.Size), f.Size, dl.RemoteDir, dl.RemoteName)
		d.noteContact(ctx, name, err)
		if err != nil {
			return "", 0, err
		}
		return res.RemotePath, res.Size, nil
	case strings.HasPrefix(dl.Target, "dir:"):
		dir := strings.TrimPrefix(dl.Target, "dir:")
		p, err := publishLocal(d.Store.Blobs.Path(f.Hash), dir, dl.RemoteName)
		return p, f.Size, err
	}
	return "", 0, fmt.Errorf("unknown delivery target %q", dl.Target)
}

// publishLocal copies a blob into a local folder atomically: a temp name, fsync,
// rename, directory fsync. An existing file with the same name is never overwritten.
func publishLocal(blobPath, dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	final := filepath.Join(dir, name)
	src, err := os.ReadFile(blobPath)
	if err != nil {
		return "", err
	}
	if cur, err := os.ReadFile(final); err == nil {
		if string(cur) == string(src) {
			return final, nil // a crash after the rename: already there
		}
		return "", fmt.Errorf("%s already exists with other content; not overwritten", final)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*.part")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(src); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	// Billing reads these as the cmord group (the unit's UMask is 0027); CreateTemp
	// makes 0600.
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Link(tmp.Name(), final); err != nil { // link fails if final appeared meanwhile: never overwrite
		return "", err
	}
	return final, archive.SyncDir(dir)
}

// noteContact tracks the reachability of an SFTP endpoint: success resolves the
// "unreachable" exception, failure past the threshold raises it (urgent).
func (d *Daemon) noteContact(ctx context.Context, endpoint string, err error) {
	fp := "sii_unreachable|" + endpoint
	if err == nil {
		d.Metrics.SFTPContact(endpoint, d.now())
		_, _ = d.Store.NoteContact(ctx, endpoint, true, d.now())
		d.resolve(ctx, fp, "reachable again")
		d.resolve(ctx, "hostkey_mismatch|"+endpoint, "host key verified")
		return
	}
	var hk *sftpx.HostKeyError
	if errors.As(err, &hk) {
		d.raise(ctx, archive.Exception{Fingerprint: "hostkey_mismatch|" + endpoint, Kind: "hostkey_mismatch", Severity: archive.SevUrgent,
			Owner: "sysadmin", Subject: endpoint, Message: fmt.Sprintf("SFTP %s: %v — cmord refused to connect", endpoint, err),
			Action: "Confirm the new key with the SII out of band (`cmord hostkey fetch`), then update known_hosts. Never accept it blindly."})
		return
	}
	if !isConnectError(err) {
		return
	}
	// Failing since the first failure after the last success, across restarts.
	since, serr := d.Store.NoteContact(ctx, endpoint, false, d.now())
	if serr != nil || since.IsZero() {
		return
	}
	var threshold time.Duration
	for _, ep := range d.Config().SFTP {
		if ep.Name == endpoint {
			threshold = ep.UnreachableAlertAfter
		}
	}
	if d.now().Sub(since) < threshold {
		return
	}
	d.raise(ctx, archive.Exception{Fingerprint: fp, Kind: "sii_unreachable", Severity: archive.SevUrgent, Owner: "sysadmin",
		Subject: endpoint, Message: fmt.Sprintf("SII endpoint %s unreachable since %s: %v", endpoint, since.In(flows.Rome).Format("02/01/2006 15:04"), err),
		Action: "Check the network path and the SII's status; flows wait in the queue and go out when it is back."})
}

// PollSII lists every SII inbound directory, downloads the files that are stable and
// not yet fetched, archives and processes them, then applies the completion policy.
func (d *Daemon) PollSII(ctx context.Context) error {
	cfg := d.Config()
	var errs []error
	for _, ep := range cfg.SFTP {
		if ep.InboundDir == "" {
			continue
		}
		if err := d.pollEndpoint(ctx, ep); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ep.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ingestDownload archives an SII file downloaded to the local spool: opened without
// following a symlink and checked to be a regular file (intake.OpenSpoolFile), its
// flow identified from its first bytes, read from that descriptor only, and refused
// while read when it passes the flow's size limit ([limits]).
func (d *Daemon) ingestDownload(ctx context.Context, ep config.SFTP, name, local, remote string, mtime time.Time) (archive.IngestResult, error) {
	fh, err := intake.OpenSpoolFile(local)
	if err != nil {
		return archive.IngestResult{}, err
	}
	defer fh.Close()
	head := make([]byte, 8192)
	n, err := fh.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return archive.IngestResult{}, err
	}
	kind := "sii"
	if fl := d.Catalog().Identify(name, head[:n]); fl != nil {
		kind = fl.Key
	}
	return d.Store.Ingest(ctx, archive.IngestRequest{Source: "sftp:" + ep.Name, Name: name, Direction: "in", Kind: kind,
		Reader: io.NewSectionReader(fh, 0, math.MaxInt64), MaxSize: d.Config().Limits.SIIMaxSize(kind),
		Meta: map[string]string{"remote_path": remote, "remote_mtime": mtime.UTC().Format(time.RFC3339)}})
}

func (d *Daemon) pollEndpoint(ctx context.Context, ep config.SFTP) error {
	d.mu.RLock()
	c := d.clients[ep.Name]
	d.mu.RUnlock()
	if c == nil {
		return nil
	}
	// First finish the completion policy of files fetched before a crash.
	if pend, err := d.Store.UncompletedFetches(ctx, ep.Name); err == nil && ep.Completion != "none" && ep.Completion != "" {
		for _, f := range pend {
			if err := c.Complete(ctx, f.RemotePath, ep.Completion, ep.MoveTo); err == nil {
				_ = d.Store.MarkFetchCompleted(ctx, ep.Name, f.RemotePath, f.Size, f.ModTime)
			}
		}
	}
	list, err := c.List(ctx, ep.InboundDir)
	d.noteContact(ctx, ep.Name, err)
	if err != nil {
		return err
	}
	tracker := d.stability(ep)
	stable := tracker.Observe(list)
	if len(stable) < countFetchable(list) {
		// Files seen for the first time need a second listing to prove they stopped
		// growing; take it after a short pause instead of waiting for the next poll.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(stabilityPause):
		}
		for i := 1; i < max(ep.StableListings, 2); i++ {
			if list, err = c.List(ctx, ep.InboundDir); err != nil {
				return err
			}
			stable = tracker.Observe(list)
		}
	}
	tmpDir := filepath.Join(d.Store.Dir(), "tmp", "sftp-"+ep.Name)
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return err
	}
	for _, rf := range stable {
		remote := path.Join(ep.InboundDir, rf.Name)
		if _, seen, err := d.Store.WasFetched(ctx, ep.Name, remote, rf.Size, rf.ModTime); err != nil {
			return err
		} else if seen {
			continue
		}
		local, size, err := c.Download(ctx, remote, tmpDir)
		if err != nil {
			d.Log.Warn("download failed; will retry at the next poll", "file", rf.Name, "err", err)
			continue
		}
		res, err := d.ingestDownload(ctx, ep, rf.Name, local, remote, rf.ModTime)
		os.Remove(local)
		if err != nil {
			return err
		}
		if err := d.Store.Write(ctx, func(tx *sql.Tx) error {
			return d.Store.RecordFetched(ctx, tx, archive.Fetched{Endpoint: ep.Name, RemotePath: remote, Size: size, ModTime: rf.ModTime, FileID: res.File.ID})
		}); err != nil {
			return err
		}
		d.Metrics.FilesIn.WithLabelValues("sftp:" + ep.Name).Inc()
		if res.TooBig {
			// Refused unread: the file stays on the SII side for a person to look at
			// (no completion), and is not fetched again.
			d.refuseTooBig(ctx, res.File, "SII endpoint "+ep.Name, d.Config().Limits.SIIMaxSize(res.File.Kind))
			_ = d.Store.MarkFetchCompleted(ctx, ep.Name, remote, rf.Size, rf.ModTime)
			continue
		}
		if _, err := d.process(ctx, res.File, nil); err != nil {
			continue // stays "received"; reprocessed by the retry sweep
		}
		if ep.Completion != "none" && ep.Completion != "" {
			if err := c.Complete(ctx, remote, ep.Completion, ep.MoveTo); err != nil {
				d.Log.Warn("completion policy failed; will retry", "endpoint", ep.Name, "file", rf.Name, "err", err)
				continue
			}
			_ = d.Store.MarkFetchCompleted(ctx, ep.Name, remote, rf.Size, rf.ModTime)
		}
	}
	return d.retryReceived(ctx, "sftp:"+ep.Name)
}

// stabilityPause separates the listings that prove a remote file complete.
var stabilityPause = 2 * time.Second

func countFetchable(list []sftpx.RemoteFile) int { return len(list) }

// retryReceived re-runs the handler of files archived but not yet processed (a crash
// or a transient error between ingest and processing).
func (d *Daemon) retryReceived(ctx context.Context, source string) error {
	files, err := d.Store.ListFiles(ctx, archive.FileFilter{Source: source, State: archive.StateReceived, Direction: "in"})
	if err != nil {
		return err
	}
	for i := len(files) - 1; i >= 0; i-- { // oldest first
		if _, err := d.process(ctx, files[i], nil); err != nil {
			return err
		}
	}
	return nil
}

// stability returns the listing tracker of an endpoint (kept across polls).
func (d *Daemon) stability(ep config.SFTP) *sftpx.StabilityTracker {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.trackers == nil {
		d.trackers = map[string]*sftpx.StabilityTracker{}
	}
	t := d.trackers[ep.Name]
	if t == nil {
		t = sftpx.NewStabilityTracker(ep.StableListings)
		d.trackers[ep.Name] = t
	}
	return t
}
