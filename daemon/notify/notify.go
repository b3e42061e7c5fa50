// Package notify speaks systemd's sd_notify datagram protocol (READY, RELOADING,
// STOPPING, WATCHDOG, STATUS) with no dependency, like Caddy's notify package. Every
// function is a no-op returning nil when NOTIFY_SOCKET is unset (not under systemd,
// or Type= is not notify).
package notify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Send sends one notification (newline-separated KEY=VALUE assignments) to the socket
// named by NOTIFY_SOCKET. A name starting with '@' is an abstract socket.
func Send(state string) error {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil
	}
	// Go maps a leading '@' to the abstract namespace itself.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready tells systemd that start-up (or a reload) is complete.
func Ready() error { return Send("READY=1") }

// Reloading tells systemd that a reload began; send Ready when it is done.
// systemd ≥ 253 (Type=notify-reload) wants MONOTONIC_USEC with it.
func Reloading() error {
	return Send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping tells systemd that shutdown began.
func Stopping() error { return Send("STOPPING=1") }

// Watchdog is the keep-alive ping for WatchdogSec=.
func Watchdog() error { return Send("WATCHDOG=1") }

// Status sets the one-line status shown by `systemctl status`.
func Status(s string) error {
	return Send("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// WatchdogInterval returns the watchdog timeout systemd expects pings within
// (WATCHDOG_USEC), and false when there is no watchdog or it is meant for another
// process (WATCHDOG_PID). Ping at half of it: see RunWatchdog.
func WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0, false
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}

// RunWatchdog pings the watchdog at half its interval until ctx ends, as long as
// healthy (which may be nil) returns nil: a daemon whose main loop is stuck stops
// pinging and systemd restarts it. Without a watchdog it returns at once.
func RunWatchdog(ctx context.Context, healthy func() error) {
	interval, ok := WatchdogInterval()
	if !ok {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		if healthy == nil || healthy() == nil {
			_ = Watchdog() // a lost ping is retried at the next tick; systemd tolerates one
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
