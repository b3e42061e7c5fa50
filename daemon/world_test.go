package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/sftpx/sftpserver"
)

// The one setup of the daemon's test worlds (testWorld in uscente_test.go, entWorld
// in entrante_test.go, and the tests that need only a client key and the SII's
// server): a temporary directory, the in-process SFTP server as the SII, a client key
// it accepts and a known_hosts that trusts it, a configuration, a daemon on a fake
// clock.

// worldFolder is a drop folder of a test world, at dir/drop/NAME.
type worldFolder struct{ name, kind string }

// worldSpec says what differs between test worlds.
type worldSpec struct {
	roles   string        // company.roles, a TOML array
	folders []worldFolder // configured drop folders
	dirs    []string      // more directories to create under the world's directory
	billing bool          // [outbound] billing_dir = dir/billing
	extra   string        // more TOML, each part under its own [section]
}

// world is the part every test world shares.
type world struct {
	t   *testing.T
	d   *Daemon
	srv *sftpserver.Server
	dir string
	now time.Time // the daemon's clock: tests move it
}

// writeClientKey writes a new ed25519 client key (OpenSSH format, 0600, its public
// half beside it) into dir with sftpserver.WriteClientKey and
// returns its path and public half.
func writeClientKey(t *testing.T, dir string) (string, ssh.PublicKey) {
	t.Helper()
	keyFile := filepath.Join(dir, "id_ed25519")
	pub, err := sftpserver.WriteClientKey(keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, pub
}

// startSII starts the in-process SFTP server as the SII, rooted at dir/sii (our
// inbound is its /out, our outbound its /in), accepting a new client key; known_hosts
// (dir/known_hosts) trusts its host key. The server stops with the test.
func startSII(t *testing.T, dir string) (srv *sftpserver.Server, keyFile, known string) {
	t.Helper()
	keyFile, pub := writeClientKey(t, dir)
	srv, err := sftpserver.Start(filepath.Join(dir, "sii"), pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	known = filepath.Join(dir, "known_hosts")
	if err := srv.WriteKnownHosts(known); err != nil {
		t.Fatal(err)
	}
	return srv, keyFile, known
}

// config is the configuration of a world in dir whose SII listens on port.
func (s worldSpec) config(dir string, port int, keyFile, known string) (*config.Config, string, error) {
	var fb strings.Builder
	for _, f := range s.folders {
		fmt.Fprintf(&fb, "[[folder]]\nname = %q\npath = %q\nkind = %q\nsettle = \"1s\"\nwatch = \"poll\"\n\n", f.name, filepath.Join(dir, "drop", f.name), f.kind)
	}
	outbound := ""
	if s.billing {
		outbound = fmt.Sprintf("[outbound]\nbilling_dir = %q\n", filepath.Join(dir, "billing"))
	}
	toml := fmt.Sprintf(`state_dir = %q
listen = ""
[company]
piva = %q
name = "Energia Test"
roles = %s
sectors = ["E", "G"]
piva_gestore = %q
[practice_code]
template = "{SECTOR}{YY}{SEQ:7}"
%s
[[sftp]]
name = "sii"
host = "127.0.0.1"
port = %d
user = "cmord"
key_file = %q
known_hosts = %q
inbound_dir = "/out"
outbound_dir = "/in"
stable_listings = 1
[mail]
host = "127.0.0.1"
port = 1
tls = "none"
from = "cmord@example.it"
[digest]
to = ["compliance@example.it"]
%s%s
`, filepath.Join(dir, "state"), ourPIVA, s.roles, gestorePIVA, fb.String(), port, keyFile, known, outbound, s.extra)
	cfg, err := config.Parse(filepath.Join(dir, "cmord.toml"), []byte(toml))
	return cfg, toml, err
}

// newWorld makes the directories, starts the SII and a daemon configured by spec
// whose clock is the world's now.
func newWorld(t *testing.T, now time.Time, spec worldSpec) *world {
	t.Helper()
	dir := t.TempDir()
	dirs := append([]string{"sii/in", "sii/out"}, spec.dirs...)
	for _, f := range spec.folders {
		dirs = append(dirs, filepath.Join("drop", f.name))
	}
	if spec.billing {
		dirs = append(dirs, "billing")
	}
	for _, p := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv, keyFile, known := startSII(t, dir)
	cfg, toml, err := spec.config(dir, srv.Port, keyFile, known)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, toml)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	w := &world{t: t, d: d, srv: srv, dir: dir, now: now}
	d.SetClock(func() time.Time { return w.now })
	return w
}
