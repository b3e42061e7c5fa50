package sftpx

import (
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cmord/cmord/daemon/sftpx/sftpserver"
	"github.com/cmord/cmord/daemon/sftpx/sshdtest"
	"golang.org/x/crypto/ssh"
)

// backend is a server under test and an endpoint that reaches it. Remote paths in the
// tests are relative: both servers start clients in their root directory.
type backend struct {
	name string
	ep   Endpoint
	root string             // local path of the server's root directory
	sshd *sshdtest.Server   // nil for the in-process server
	srv  *sftpserver.Server // nil for sshd
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func baseEndpoint(name, host string, port int, user, key, known string) Endpoint {
	return Endpoint{Name: name, Host: host, Port: port, User: user, KeyFile: key, KnownHosts: known,
		DialTimeout: 5 * time.Second, IOTimeout: 10 * time.Second, Keepalive: 2 * time.Second, KeepaliveMaxMissed: 3,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, ConcurrentReads: true, ConcurrentWrites: true}
}

func startSSHD(t testing.TB, opts sshdtest.Options) backend {
	s := sshdtest.Start(t, opts)
	return backend{name: "openssh", root: s.Root, sshd: s,
		ep: baseEndpoint("sshd", s.Host, s.Port, s.User, s.ClientKeyFile, s.KnownHostsFile)}
}

// clientKey writes a new ed25519 private key into dir and returns its path and public key.
func clientKey(t testing.TB, dir string) (string, ssh.PublicKey) {
	t.Helper()
	file := filepath.Join(dir, "id_ed25519")
	pub, err := sftpserver.WriteClientKey(file, "")
	if err != nil {
		t.Fatal(err)
	}
	return file, pub
}

func startInProcess(t testing.TB) backend {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	key, pub := clientKey(t, dir)
	srv, err := sftpserver.Start(root, pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	known := filepath.Join(dir, "known_hosts")
	if err := srv.WriteKnownHosts(known); err != nil {
		t.Fatal(err)
	}
	return backend{name: "inprocess", root: root, srv: srv,
		ep: baseEndpoint("inproc", "127.0.0.1", srv.Port, "cmord", key, known)}
}

// bothBackends runs f against the in-process server and a real OpenSSH sshd.
func bothBackends(t *testing.T, f func(t *testing.T, b backend)) {
	t.Run("inprocess", func(t *testing.T) { f(t, startInProcess(t)) })
	t.Run("openssh", func(t *testing.T) { f(t, startSSHD(t, sshdtest.Options{})) })
}

func (b backend) mkdir(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(b.root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// mustRestartInProcess starts a new in-process server on the port of b (closed).
func mustRestartInProcess(t testing.TB, b backend) *sftpserver.Server {
	t.Helper()
	srv, err := sftpserver.StartOn(b.srv.Addr, b.root, mustPublic(t, b.ep.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WriteKnownHosts(b.ep.KnownHosts); err != nil {
		t.Fatal(err)
	}
	return srv
}
