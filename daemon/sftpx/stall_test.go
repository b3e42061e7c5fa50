package sftpx

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cmord/cmord/daemon/sftpx/sshdtest"
)

// frozenBackend is a real sshd whose sessions run the external sftp-server, so that
// the SFTP server process can be frozen while sshd (the SSH transport, keepalives)
// keeps answering. The endpoint's IOTimeout is far longer than the test allows: only
// the operation watchdog (OpTimeout) can end a stalled operation in time.
func frozenBackend(t *testing.T) (backend, Endpoint) {
	t.Helper()
	if _, err := os.Stat("/usr/lib/openssh/sftp-server"); err != nil {
		t.Skip("no /usr/lib/openssh/sftp-server:", err)
	}
	b := startSSHD(t, sshdtest.Options{SFTPServer: "/usr/lib/openssh/sftp-server"})
	b.mkdir(t, "out")
	ep := b.ep
	ep.IOTimeout = time.Minute // keepalives would keep it from firing anyway
	ep.Keepalive = 100 * time.Millisecond
	ep.OpTimeout = 400 * time.Millisecond
	ep.DialTimeout = 3 * time.Second // a loaded machine forks the session's SFTP server slowly
	return b, ep
}

// TestFrozenSFTPServer: the SFTP server process is SIGSTOPped while the SSH connection
// stays up and answers keepalives (what a stuck disk on the SII side looks like).
func TestFrozenSFTPServer(t *testing.T) {
	b, ep := frozenBackend(t)
	data := randomBytes(t, 256<<10)
	// The bound on every wait below: the configured times plus a generous margin, far
	// below IOTimeout (1 minute), which keepalives keep from firing in any case.
	bound := ep.OpTimeout + ep.DialTimeout + 5*time.Second

	t.Run("the session's sftp-server frozen: abandoned, redialled, done", func(t *testing.T) {
		c := NewClient(ep, testLogger(t))
		defer c.Close()
		if _, err := c.List(context.Background(), "out"); err != nil {
			t.Fatal(err)
		}
		pids := b.sshd.SFTPServerPIDs()
		if len(pids) != 1 {
			t.Fatalf("sftp-server processes: %v, want the one of our session", pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(pids[0], syscall.SIGCONT)
		start := time.Now()
		res, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "out", "one.bin")
		took := time.Since(start)
		if err != nil {
			t.Fatalf("upload with the session's sftp-server frozen: %v", err)
		}
		if took < ep.OpTimeout || took > bound {
			t.Errorf("took %s; want the watchdog's %s then a new connection (at most %s)", took, ep.OpTimeout, bound)
		}
		if got, _ := os.ReadFile(filepath.Join(b.root, "out", "one.bin")); !bytes.Equal(got, data) || res.AlreadyThere {
			t.Errorf("uploaded %d bytes, %+v", len(got), res)
		}
		if now := b.sshd.SFTPServerPIDs(); slices.Equal(now, pids) {
			t.Errorf("no new session: sftp-server processes %v", now)
		}
	})

	t.Run("every sftp-server frozen: a StallError in bounded time, then recovery", func(t *testing.T) {
		c := NewClient(ep, testLogger(t))
		defer c.Close()
		if _, err := c.List(context.Background(), "out"); err != nil {
			t.Fatal(err)
		}
		b.sshd.FreezeSFTPServers()
		defer b.sshd.ThawSFTPServers()
		for _, op := range []struct {
			name string
			run  func() error
		}{
			{"list", func() error { _, err := c.List(context.Background(), "out"); return err }},
			{"upload", func() error {
				_, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "out", "two.bin")
				return err
			}},
		} {
			time.Sleep(2 * ep.BackoffMax) // past the breaker, so the call really tries
			start := time.Now()
			err := op.run()
			took := time.Since(start)
			var st *StallError
			if !errors.As(err, &st) {
				t.Fatalf("%s: err %v (%T), want a StallError", op.name, err, err)
			}
			if took > bound {
				t.Errorf("%s: failed after %s, want at most %s", op.name, took, bound)
			}
			t.Logf("%s: %v after %s", op.name, err, took.Round(time.Millisecond))
			if err := c.Stuck(); err != nil {
				t.Errorf("Stuck after the operation returned: %v", err)
			}
		}
		b.sshd.ThawSFTPServers()
		deadline := time.Now().Add(bound)
		for {
			_, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "out", "two.bin")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still failing after the server was thawed: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got, _ := os.ReadFile(filepath.Join(b.root, "out", "two.bin")); !bytes.Equal(got, data) {
			t.Errorf("after the thaw: %d bytes uploaded", len(got))
		}
	})

	t.Run("an operation that outlives its closed connection is Stuck", func(t *testing.T) {
		c := NewClient(ep, testLogger(t))
		defer c.Close()
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- c.do(context.Background(), "wedged", func(*Conn) error { <-release; return errors.New("released") })
		}()
		deadline := time.Now().Add(bound)
		for c.Stuck() == nil {
			if time.Now().After(deadline) {
				t.Fatal("never reported Stuck")
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("Stuck: %v", c.Stuck())
		close(release)
		<-done
		if err := c.Stuck(); err != nil {
			t.Errorf("Stuck after the operation ended: %v", err)
		}
	})
}
