package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/sftpx"
	"github.com/cmord/cmord/daemon/sftpx/sftpserver"
)

// TestHygieneWarnings: secrets the group or others may read, a configuration others
// may change, and drop folders in system directories or in the state directory are
// warned about (by `cmord check` and at startup); a careful installation gets none.
// Issue 13.
func TestHygieneWarnings(t *testing.T) {
	tests := []struct {
		name       string
		passMode   os.FileMode
		keyMode    os.FileMode
		configMode os.FileMode
		folder     string // "" = a directory of its own; STATE/ and DIR/ are replaced
		want       []string
	}{
		{name: "careful installation"},
		{name: "password_file group-readable", passMode: 0o640, want: []string{"mail.password_file", "has mode 0640: the group (members of the cmord group run the CLI) may read the secret", "chmod 0600"}},
		{name: "password_file world-readable", passMode: 0o644, want: []string{"mail.password_file", "has mode 0644: every user may read the secret"}},
		{name: "private key world-readable", keyMode: 0o604, want: []string{"sftp sii: key_file", "has mode 0604"}},
		{name: "config 0666", configMode: 0o666, want: []string{"configuration", "has mode 0666: every user may change it"}},
		{name: "config group-writable", configMode: 0o660, want: []string{"has mode 0660: the group may change it"}},
		{name: "config 0644 is fine", configMode: 0o644},
		{name: "folder /etc", folder: "/etc", want: []string{"folder morosi: path /etc is inside /etc, a system directory"}},
		{name: "folder below /etc", folder: "/etc/cmord/in", want: []string{"is inside /etc"}},
		{name: "folder /", folder: "/", want: []string{"path / is a system directory"}},
		{name: "folder /usr/local/drop", folder: "/usr/local/drop", want: []string{"is inside /usr"}},
		{name: "folder /proc", folder: "/proc", want: []string{"is inside /proc"}},
		{name: "folder /dev/shm", folder: "/dev/shm", want: []string{"is inside /dev"}},
		{name: "folder /boot", folder: "/boot", want: []string{"is inside /boot"}},
		{name: "folder /var/lib", folder: "/var/lib", want: []string{"path /var/lib is a system directory"}},
		{name: "folder /tmp", folder: "/tmp", want: []string{"path /tmp is a system directory"}},
		{name: "folder /srv/cmord/morosi is fine", folder: "/srv/cmord/morosi"},
		{name: "folder /var/spool/cmord/morosi is fine", folder: "/var/spool/cmord/morosi"},
		{name: "folder is the state dir", folder: "STATE/", want: []string{"is inside the state directory"}},
		{name: "folder in the state dir", folder: "STATE/objects", want: []string{"is inside the state directory"}},
		{name: "folder contains the state dir", folder: "DIR/", want: []string{"contains the state directory"}},
		{name: "folder is a link to /etc", folder: "DIR/link-to-etc", want: []string{"is inside /etc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			own := filepath.Join(dir, "drop", "morosi")
			for _, d := range []string{filepath.Join(state, "objects"), own} {
				if err := os.MkdirAll(d, 0o750); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("/etc", filepath.Join(dir, "link-to-etc")); err != nil {
				t.Fatal(err)
			}
			file := func(name string, mode os.FileMode, def os.FileMode) string {
				p := filepath.Join(dir, name)
				if mode == 0 {
					mode = def
				}
				if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, mode); err != nil { // not subject to the umask
					t.Fatal(err)
				}
				return p
			}
			folder := own
			switch {
			case strings.HasPrefix(tt.folder, "STATE/"):
				folder = filepath.Join(state, strings.TrimPrefix(tt.folder, "STATE/"))
			case strings.HasPrefix(tt.folder, "DIR/"):
				folder = filepath.Join(dir, strings.TrimPrefix(tt.folder, "DIR/"))
			case tt.folder != "":
				folder = tt.folder
			}
			cfg := &config.Config{File: file("cmord.toml", tt.configMode, 0o640), StateDir: state,
				Folders: []config.Folder{{Name: "morosi", Path: folder, Kind: config.KindUscenteMorosi}},
				SFTP:    []config.SFTP{{Name: "sii", KeyFile: file("id_ed25519", tt.keyMode, 0o600)}},
				Mail:    config.Mail{PasswordFile: file("smtp_password", tt.passMode, 0o600)}}
			got := HygieneWarnings(cfg)
			all := strings.Join(got, "\n")
			if len(tt.want) == 0 && len(got) > 0 {
				t.Fatalf("warnings for a careful installation:\n%s", all)
			}
			if len(tt.want) > 0 && len(got) != 1 {
				t.Errorf("want exactly one warning, got %d:\n%s", len(got), all)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("no warning contains %q:\n%s", w, all)
				}
			}
			// `cmord check` shows the same.
			checkWarn, _ := CheckConfig(cfg)
			for _, w := range got {
				if !strings.Contains(strings.Join(checkWarn, "\n"), w) {
					t.Errorf("CheckConfig lacks %q", w)
				}
			}
		})
	}
}

// TestHygieneLoggedAtStartup: the daemon logs the same warnings when it starts.
func TestHygieneLoggedAtStartup(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "smtp_password")
	if err := os.WriteFile(pass, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(pass, 0o644)
	os.MkdirAll(filepath.Join(dir, "in"), 0o750)
	toml := fmt.Sprintf(`state_dir = %q
listen = ""
[company]
piva = %q
name = "Energia Test"
roles = ["uscente"]
sectors = ["E"]
piva_gestore = %q
[[folder]]
name = "morosi"
path = %q
kind = "uscente.morosi"
[mail]
host = "127.0.0.1"
port = 1
tls = "none"
from = "cmord@example.it"
username = "cmord"
password_file = %q
[digest]
to = ["compliance@example.it"]
`, filepath.Join(dir, "state"), ourPIVA, gestorePIVA, filepath.Join(dir, "in"), pass)
	cfg, err := config.Parse(filepath.Join(dir, "cmord.toml"), []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	d, err := New(cfg, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if !strings.Contains(logBuf.String(), "level=WARN msg=\"configuration hygiene\"") || !strings.Contains(logBuf.String(), "every user may read the secret") {
		t.Fatalf("startup log lacks the hygiene warning:\n%s", logBuf.String())
	}
}

// TestCheckConnectNeverRecordsTOFUKey: with insecure_trust_on_first_use, `cmord
// check --connect` reaches the server (real SFTP server, host key unknown) but never
// writes the key: neither a known_hosts file created nor a line added. The daemon's
// own connection records it. Issue 13.
func TestCheckConnectNeverRecordsTOFUKey(t *testing.T) {
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("known_hosts exists=%v", existing), func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "id_ed25519")
			sshPub, err := sftpserver.WriteClientKey(keyFile, "")
			if err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(dir, "sii")
			os.MkdirAll(filepath.Join(root, "out"), 0o755)
			srv, err := sftpserver.Start(root, sshPub)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			known := filepath.Join(dir, "known_hosts")
			if existing {
				if err := os.WriteFile(known, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := &config.Config{SFTP: []config.SFTP{{Name: "sii", Host: "127.0.0.1", Port: srv.Port, User: "cmord", KeyFile: keyFile,
				KnownHosts: known, InsecureTrustOnFirstUse: true, InboundDir: "/out"}}}
			res := CheckConnections(context.Background(), cfg)
			if len(res) != 1 || res[0].Err != nil {
				t.Fatalf("check --connect: %+v", res)
			}
			b, err := os.ReadFile(known)
			switch {
			case !existing && err == nil:
				t.Fatalf("check created %s", known)
			case existing && (err != nil || len(b) != 0):
				t.Fatalf("check wrote %q to %s (%v)", b, known, err)
			}
			// The daemon's connection, as configured, records the key.
			c := sftpx.NewClient(endpoint(cfg.SFTP[0]), nil)
			if _, err := c.List(context.Background(), "/out"); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if b, err := os.ReadFile(known); err != nil || !strings.Contains(string(b), "ssh-ed25519") {
				t.Fatalf("the daemon did not record the key: %q %v", b, err)
			}
		})
	}
}
