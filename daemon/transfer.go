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
	"github.com/cmord/cmord/daemon/failpoint"
	"github.com/cmord/cmord/daemon/intake"
	"github.com/cmord/cmord/daemon/sftpx"
	"github.com/cmord/cmord/flows"
)

// deliveryBackoff is the wait before the n-th retry of a delivery while its endpoint
// fails: 1m doubling to 1h, with jitter. It does not outlast the outage: the first
// successful contact with the endpoint (a listing, another file's upload) makes every
// file queued for it due at once (noteContact, archive.ReleaseBackoff).
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
	delivered := 0
	unreachable := map[string]bool{}
	done := map[int64]bool{}
	// A contact made during the pass (the first file through after an outage) brings
	// the endpoint's other queued files forward: a second pass sends them now.
	var err error
	for pass := 0; pass < 2; pass++ {
		d.released.Store(false)
		var n int
		n, err = d.deliverPass(ctx, unreachable, done)
		delivered += n
		if err != nil || !d.released.Load() {
			break
		}
	}
	d.updateDeliveryGauge(ctx)
	return delivered, err
}

func (d *Daemon) updateDeliveryGauge(ctx context.Context) {
	if n, err := d.Store.PendingDeliveries(ctx); err == nil {
		d.Metrics.QueueDepth.WithLabelValues("deliveries").Set(float64(n))
	}
}

// deliverPass publishes the deliveries due now, skipping those in done (tried in an
// earlier pass of the same cycle) and the endpoints found unreachable.
func (d *Daemon) deliverPass(ctx context.Context, unreachable map[string]bool, done map[int64]bool) (int, error) {
	due, err := d.Store.DueDeliveries(ctx, d.now(), "")
	if err != nil {
		return 0, err
	}
	delivered := 0
	for _, dl := range due {
		if done[dl.ID] {
			continue
		}
		done[dl.ID] = true
		if ctx.Err() != nil {
			return delivered, ctx.Err()
		}
		if unreachable[dl.Target] {
			continue // the endpoint is down: don't spend a dial timeout per file
		}
		remote, size, err := d.deliver(ctx, dl)
		if err == nil {
			failpoint.Hit("after_upload")
			if err := d.Store.MarkDelivered(ctx, dl.ID, remote, size); err != nil {
				return delivered, err
			}
			delivered++
			d.Metrics.FilesOut.WithLabelValues(dl.Target).Inc()
			d.resolve(ctx, archive.UploadFailedFingerprint(dl.Target, dl.RemoteName), "delivered")
			d.Log.Info("file published", "target", dl.Target, "remote", remote, "size", size)
			continue
		}
		d.Metrics.Failures.WithLabelValues("deliver").Inc()
		var conflict *archive.RemoteConflict
		var exists *sftpx.ExistsError
		if errors.As(err, &exists) {
			conflict = &archive.RemoteConflict{Size: exists.RemoteSize, MTime: exists.RemoteModTime}
		} else if local := (*localExistsError)(nil); errors.As(err, &local) {
			conflict = &archive.RemoteConflict{Size: local.size, MTime: local.mtime}
		}
		if isConnectError(err) {
			unreachable[dl.Target] = true
		}
		next := d.now().Add(deliveryBackoff(dl.Attempts))
		if err := d.Store.MarkDeliveryFailed(ctx, dl.ID, err, next, conflict); err != nil {
			return delivered, err
		}
		action := "cmord retries automatically; check the SII endpoint if it persists."
		msg := fmt.Sprintf("publishing %s to %s failed (attempt %d): %v", dl.RemoteName, dl.Target, dl.Attempts+1, err)
		if conflict != nil {
			msg = fmt.Sprintf("publishing %s to %s abandoned: the name is taken on the server by other content (attempt %d): %v", dl.RemoteName, dl.Target, dl.Attempts+1, err)
			action = fmt.Sprintf("Not retried automatically. `cmord deliveries ls` shows what the server holds against our file. If that file is wrong or stale, have it removed, then `cmord deliveries retry %d`; to publish ours under another name, `cmord deliveries retry %d --as NEW_NAME`; if it is in fact right (sent by other means), `cmord deliveries abandon %d --note TEXT`.", dl.ID, dl.ID, dl.ID)
		}
		if n, cerr := d.Store.AwaitingPublication(ctx, dl.FileID); cerr == nil && n > 0 {
			// The practices in the file are not sent until it is delivered: say so.
			msg += fmt.Sprintf(" — %d practice(s) wait on this file: their state changes only once it is delivered", n)
		}
		d.raise(ctx, archive.Exception{Fingerprint: archive.UploadFailedFingerprint(dl.Target, dl.RemoteName), Kind: "upload_failed",
			Severity: archive.SevHigh, Owner: "sysadmin", FileID: dl.FileID, Subject: strings.TrimPrefix(dl.Target, "sftp:"),
			Message: msg, Action: action})
		if conflict != nil {
			d.Log.Error("publish failed for good: the remote name is taken by other content; not retried until a person runs cmord deliveries retry or abandon",
				"delivery", dl.ID, "target", dl.Target, "file", dl.RemoteName, "err", err)
		} else {
			d.Log.Warn("publish failed; will retry", "delivery", dl.ID, "target", dl.Target, "file", dl.RemoteName, "next", next, "err", err)
		}
	}
	return delivered, nil
}

// isConnectError tells whether err is the endpoint's fault rather than the file's:
// it cannot be reached or logged in to, or its SFTP server does not answer (stall).
func isConnectError(err error) bool {
	var hk *sftpx.HostKeyError
	var ce *sftpx.ConnectError
	var st *sftpx.StallError
	return errors.As(err, &hk) || errors.As(err, &ce) || errors.As(err, &st)
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
		rc, err := d.Store.Blobs.OpenSized(f.Hash, f.Size)
		if err != nil {
			return "", 0, err
		}
		defer rc.Close()
		res, err := c.Upload(ctx, failpoint.UploadReader(rc, f.Size), f.Size, dl.RemoteDir, dl.RemoteName)
		d.noteContact(ctx, name, err)
		if err != nil {
			return "", 0, err
		}
		return res.RemotePath, res.Size, nil
	case strings.HasPrefix(dl.Target, "dir:"):
		dir := strings.TrimPrefix(dl.Target, "dir:")
		rc, err := d.Store.Blobs.OpenSized(f.Hash, f.Size)
		if err != nil {
			return "", 0, err
		}
		defer rc.Close()
		p, err := publishLocal(rc, dir, dl.RemoteName)
		return p, f.Size, err
	}
	return "", 0, fmt.Errorf("unknown delivery target %q", dl.Target)
}

// localExistsError is publishLocal's refusal to overwrite a file of the same name and
// other content: like sftpx.ExistsError, a conflict a person must resolve.
type localExistsError struct {
	path  string
	size  int64
	mtime time.Time
}

func (e *localExistsError) Error() string {
	return fmt.Sprintf("%s already exists with other content (%d bytes); not overwritten", e.path, e.size)
}

// publishLocal copies a blob's content (read through the blob store, which
// decompresses it) into a local folder atomically: a temp name, fsync, rename,
// directory fsync. An existing file with the same name is never overwritten.
func publishLocal(content io.Reader, dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	final := filepath.Join(dir, name)
	src, err := io.ReadAll(content)
	if err != nil {
		return "", err
	}
	if cur, err := os.ReadFile(final); err == nil {
		if string(cur) == string(src) {
			return final, nil // a crash after the rename: already there
		}
		le := &localExistsError{path: final, size: int64(len(cur))}
		if fi, err := os.Stat(final); err == nil {
			le.mtime = fi.ModTime()
		}
		return "", le
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
		// The endpoint answers: what waited for it goes at the next delivery pass, not
		// after each file's own backoff.
		if n, err := d.Store.ReleaseBackoff(ctx, "sftp:"+endpoint, d.now()); err == nil && n > 0 {
			d.Log.Info("endpoint reachable: queued files released from their backoff", "endpoint", endpoint, "files", n)
			d.released.Store(true)
		}
		d.resolve(ctx, fp, "reachable again")
		d.resolve(ctx, "sftp_stalled|"+endpoint, "the SFTP server answers again")
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
	var threshold, stallThreshold time.Duration
	for _, ep := range d.Config().SFTP {
		if ep.Name == endpoint {
			threshold, stallThreshold = ep.UnreachableAlertAfter, ep.StalledAlertAfter
		}
	}
	var stall *sftpx.StallError
	if errors.As(err, &stall) {
		// Connected, but the SFTP server sends nothing: each operation is abandoned after
		// op_timeout and the next one redials; this says so once it has lasted.
		if d.now().Sub(since) < stallThreshold {
			return
		}
		d.raise(ctx, archive.Exception{Fingerprint: "sftp_stalled|" + endpoint, Kind: "sftp_stalled", Severity: archive.SevUrgent, Owner: "sysadmin",
			Subject: endpoint, Message: fmt.Sprintf("SII endpoint %s: the SSH connection works but its SFTP server has answered no operation since %s: %v",
				endpoint, since.In(flows.Rome).Format("02/01/2006 15:04"), err),
			Action: "The SII's SFTP server is hung (a stuck disk, a frozen process): tell the SII. cmord abandons each stalled operation after op_timeout and tries again; flows wait in the queue and this closes by itself once an operation succeeds."})
		return
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
	kind := "sii"
	if fl := d.Catalog().IdentifyReader(name, io.NewSectionReader(fh, 0, flows.IdentifyHead)); fl != nil {
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
	tried := map[int64]bool{} // processed in this poll: one attempt per poll
	for _, rf := range stable {
		remote := path.Join(ep.InboundDir, rf.Name)
		if _, seen, err := d.Store.WasFetched(ctx, ep.Name, remote, rf.Size, rf.ModTime); err != nil {
			return err
		} else if seen {
			continue
		}
		// The size limit holds before a byte is read: a file the listing shows over it
		// is refused unread, and the download stops at it should the file grow.
		kind, limit := d.siiLimitUnread(rf.Name)
		if limit > 0 && rf.Size > limit {
			if err := d.refuseUnread(ctx, ep, rf, remote, kind, rf.Size, limit); err != nil {
				return err
			}
			continue
		}
		local, size, err := c.Download(ctx, remote, tmpDir, limit)
		if tb := (*sftpx.TooBigError)(nil); errors.As(err, &tb) {
			if err := d.refuseUnread(ctx, ep, rf, remote, kind, tb.Size, tb.Limit); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			d.Log.Warn("download failed; will retry at the next poll", "file", rf.Name, "err", err)
			if isConnectError(err) {
				d.noteContact(ctx, ep.Name, err)
				return err // the endpoint, not the file: the next poll tries again
			}
			continue
		}
		res, err := d.ingestDownload(ctx, ep, rf.Name, local, remote, rf.ModTime)
		os.Remove(local)
		if err != nil {
			return err
		}
		fetched := archive.Fetched{Endpoint: ep.Name, RemotePath: remote, Size: size, ModTime: rf.ModTime, FileID: res.File.ID}
		if res.TooBig {
			// Refused for its flow's limit once read: the file stays on the SII side for a person to look at,
			// so it is recorded as completed (never moved or deleted) in the same
			// transaction, and it is not fetched again.
			fetched.CompletedAt = d.now()
		}
		if err := d.Store.Write(ctx, func(tx *sql.Tx) error {
			return d.Store.RecordFetched(ctx, tx, fetched)
		}); err != nil {
			return err
		}
		d.Metrics.FilesIn.WithLabelValues("sftp:" + ep.Name).Inc()
		if res.TooBig {
			d.refuseTooBig(ctx, res.File, "SII endpoint "+ep.Name, d.Config().Limits.SIIMaxSize(res.File.Kind))
			continue
		}
		tried[res.File.ID] = true
		if _, err := d.processInbound(ctx, res.File, "SFTP "+ep.Name, ep.MaxAttempts); err != nil {
			continue // stays "received"; retried by the sweep below, refused after max_attempts
		}
		if ep.Completion != "none" && ep.Completion != "" {
			if err := c.Complete(ctx, remote, ep.Completion, ep.MoveTo); err != nil {
				d.Log.Warn("completion policy failed; will retry", "endpoint", ep.Name, "file", rf.Name, "err", err)
				continue
			}
			_ = d.Store.MarkFetchCompleted(ctx, ep.Name, remote, rf.Size, rf.ModTime)
		}
	}
	return d.retryReceived(ctx, "sftp:"+ep.Name, ep.MaxAttempts, tried)
}

// siiLimitUnread is the size limit an SII file is held to before any of it is read,
// with the flow its name says it is ("sii" when the name does not say): that flow's
// limit, else the largest any flow has, since its first bytes may yet name any flow
// (ingestDownload applies the exact one). 0 is no limit.
func (d *Daemon) siiLimitUnread(name string) (kind string, limit int64) {
	lim := d.Config().Limits
	if fl := d.Catalog().Identify(name, nil); fl != nil {
		return fl.Key, lim.SIIMaxSize(fl.Key)
	}
	limit = lim.SIIFile
	for _, n := range lim.SIIFlow {
		if limit <= 0 || n <= 0 {
			return "sii", 0
		}
		limit = max(limit, n)
	}
	return "sii", limit
}

// refuseUnread records an SII file refused for its size before it was read: its row
// (name, size, reason; no content), the fetch noted as completed in the same
// transaction so that it is not fetched again (it stays on the SII side for a person
// to look at), and the SIZE exception of every oversize refusal.
func (d *Daemon) refuseUnread(ctx context.Context, ep config.SFTP, rf sftpx.RemoteFile, remote, kind string, size, limit int64) error {
	var res archive.IngestResult
	err := d.Store.Write(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = d.Store.IngestUnreadTx(ctx, tx, archive.IngestRequest{Source: "sftp:" + ep.Name, Name: rf.Name, Direction: "in", Kind: kind,
			MaxSize: limit, Meta: map[string]string{"remote_path": remote, "remote_mtime": rf.ModTime.UTC().Format(time.RFC3339)}}, size)
		if err != nil {
			return err
		}
		return d.Store.RecordFetched(ctx, tx, archive.Fetched{Endpoint: ep.Name, RemotePath: remote, Size: rf.Size, ModTime: rf.ModTime,
			FileID: res.File.ID, CompletedAt: d.now()})
	})
	if err != nil {
		return err
	}
	d.Metrics.FilesIn.WithLabelValues("sftp:" + ep.Name).Inc()
	d.refuseTooBig(ctx, res.File, "SII endpoint "+ep.Name, limit)
	return nil
}

// stabilityPause separates the listings that prove a remote file complete.
var stabilityPause = 2 * time.Second

func countFetchable(list []sftpx.RemoteFile) int { return len(list) }

// retryReceived re-runs the handler of files archived but not yet processed (a crash
// or a failure between ingest and processing). A file that keeps failing is refused
// after maxAttempts (the poison-file policy) and never holds up the files after it.
func (d *Daemon) retryReceived(ctx context.Context, source string, maxAttempts int, tried map[int64]bool) error {
	files, err := d.Store.ListFiles(ctx, archive.FileFilter{Source: source, State: archive.StateReceived, Direction: "in"})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(files) - 1; i >= 0; i-- { // oldest first
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if tried[files[i].ID] {
			continue
		}
		if _, err := d.processInbound(ctx, files[i], strings.Replace(source, "sftp:", "SFTP ", 1), maxAttempts); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", files[i].Name, err))
		}
	}
	return errors.Join(errs...)
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
