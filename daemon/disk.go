package daemon

import (
	"context"
	"fmt"
	"syscall"

	"github.com/cmord/cmord/archive"
)

// statFree returns the bytes an unprivileged process may still write on the
// filesystem holding path (statfs(2) f_bavail: what cmord, not root, can use).
func statFree(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// stateDiskFree is the state directory's free space and [alerts] state_min_free
// (0: the check is off, and the filesystem is not asked).
func (d *Daemon) stateDiskFree() (free, minFree int64, err error) {
	minFree = d.Config().Alerts.StateMinFree
	if minFree <= 0 {
		return 0, 0, nil
	}
	if free, err = statFree(d.Store.Dir()); err != nil {
		return 0, minFree, fmt.Errorf("free space of the state directory: %w", err)
	}
	return free, minFree, nil
}

// diskLowFingerprint is the one disk_low exception: raised again it only counts.
const diskLowFingerprint = "disk_low|state_dir"

// CheckStateDisk raises an urgent disk_low exception (alerted by mail like any urgent
// one) when the state directory's filesystem has less free space than
// [alerts] state_min_free, and resolves it once space is back. A full disk stops
// the archive from taking files in (SQLite refuses to write), so the sysadmin must
// know before. Runs every minute and in every `run --once` cycle. Issue 13.
func (d *Daemon) CheckStateDisk(ctx context.Context) error {
	free, minFree, err := d.stateDiskFree()
	if err != nil || minFree <= 0 {
		return err
	}
	if free >= minFree {
		d.resolve(ctx, diskLowFingerprint, fmt.Sprintf("free space back to %s (threshold %s)", bytesIEC(free), bytesIEC(minFree)))
		return nil
	}
	msg := fmt.Sprintf("the state directory %s has %s free, below the %s of [alerts] state_min_free: when it is full, no file can be archived",
		d.Store.Dir(), bytesIEC(free), bytesIEC(minFree))
	d.Log.Warn("state directory low on disk space", "dir", d.Store.Dir(), "free_bytes", free, "min_free_bytes", minFree)
	d.raise(ctx, archive.Exception{Fingerprint: diskLowFingerprint, Kind: "disk_low", Severity: archive.SevUrgent, Owner: "sysadmin",
		Subject: d.Store.Dir(), Message: msg,
		Action: "Free space on the state directory's filesystem or grow it; the archive itself is never pruned by cmord."})
	return nil
}

// diskHealth is nil unless the state directory's filesystem has less free space than
// [alerts] state_min_free: /healthz says it too, since on a full disk SQLite can write
// neither the disk_low exception nor the alert mail about it.
func (d *Daemon) diskHealth() error {
	free, minFree, err := d.stateDiskFree()
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if minFree > 0 && free < minFree {
		return fmt.Errorf("disk: the state directory %s has %s free, below state_min_free %s", d.Store.Dir(), bytesIEC(free), bytesIEC(minFree))
	}
	return nil
}

// bytesIEC is n in the largest binary unit that keeps it at 1 or more ("1.5 GiB").
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
