//go:build !linux

package notify

// monotonicUsec: systemd exists only on Linux; elsewhere notifications are no-ops
// anyway (no NOTIFY_SOCKET), so any value will do.
func monotonicUsec() int64 { return 0 }
