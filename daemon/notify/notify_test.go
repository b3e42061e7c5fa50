package notify

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen opens a real unixgram socket and points NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return conn
}

func recv(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func shortDir(t *testing.T) string {
	// sun_path holds 108 bytes: t.TempDir() paths can be longer.
	dir, err := os.MkdirTemp("", "nt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestMessages(t *testing.T) {
	conn := listen(t, filepath.Join(shortDir(t), "notify.sock"))
	cases := []struct {
		send func() error
		want string
	}{
		{Ready, "READY=1"},
		{Stopping, "STOPPING=1"},
		{Watchdog, "WATCHDOG=1"},
		{func() error { return Status("ingesting\nmorosi.csv") }, "STATUS=ingesting morosi.csv"},
	}
	for _, tc := range cases {
		if err := tc.send(); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, conn); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	conn := listen(t, filepath.Join(shortDir(t), "notify.sock"))
	var before unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	got := recv(t, conn)
	first, second, ok := strings.Cut(got, "\n")
	if !ok || first != "RELOADING=1" || !strings.HasPrefix(second, "MONOTONIC_USEC=") {
		t.Fatalf("got %q", got)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(second, "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec < before.Nano()/1000 {
		t.Errorf("MONOTONIC_USEC %d earlier than %d (%v)", usec, before.Nano()/1000, err)
	}
}

func TestAbstractSocket(t *testing.T) {
	conn := listen(t, fmt.Sprintf("@cmord-notify-test-%d", os.Getpid()))
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, conn); got != "READY=1" {
		t.Errorf("got %q", got)
	}
}

func TestNoSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for _, f := range []func() error{Ready, Reloading, Stopping, Watchdog} {
		if err := f(); err != nil {
			t.Error(err)
		}
	}
}

func TestMissingSocketIsError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(shortDir(t), "absent.sock"))
	if err := Ready(); err == nil {
		t.Error("no error for a missing socket")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"60000000", "", time.Minute, true},
		{"60000000", pid, time.Minute, true},
		{"60000000", "1", 0, false},
		{"-5", "", 0, false},
		{"abc", "", 0, false},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, ok := WatchdogInterval()
		if got != tc.want || ok != tc.ok {
			t.Errorf("USEC=%q PID=%q: got %v %v", tc.usec, tc.pid, got, ok)
		}
	}
}

func TestRunWatchdog(t *testing.T) {
	conn := listen(t, filepath.Join(shortDir(t), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "20000") // 20ms: pings every 10ms
	t.Setenv("WATCHDOG_PID", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { RunWatchdog(ctx, func() error { return nil }); close(done) }()
	for range 3 {
		if got := recv(t, conn); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	cancel()
	<-done

	drain(conn)

	// An unhealthy daemon does not ping.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go RunWatchdog(ctx, func() error { return fmt.Errorf("stuck") })
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 64)); err == nil {
		t.Errorf("unhealthy daemon pinged: %d bytes", n)
	}
}

// drain discards datagrams already queued.
func drain(conn *net.UnixConn) {
	buf := make([]byte, 64)
	for {
		conn.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}
