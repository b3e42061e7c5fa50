package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/cmord/cmord/daemon/demo"
)

// TestCheckAndHostkeyAgainstDemoServers runs `cmord check --connect` and `cmord
// hostkey fetch` against the demo's real in-process SFTP and SMTP servers.
func TestCheckAndHostkeyAgainstDemoServers(t *testing.T) {
	dm, err := demo.Setup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dm.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--connect", "--config", dm.ConfigPath}, nil, &out, &errb); code != exitOK {
		t.Fatalf("check --connect = %d\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"configuration OK", "sftp", "sii", "smtp"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if code := run([]string{"hostkey", "fetch", dm.SFTP.Addr}, nil, &out, &errb); code != exitOK {
		t.Fatalf("hostkey fetch = %d: %s", code, errb.String())
	}
	if fp := ssh.FingerprintSHA256(dm.SFTP.HostKey); !strings.Contains(out.String(), fp) {
		t.Errorf("hostkey fetch did not print %s:\n%s", fp, out.String())
	}

	// A known_hosts that names another key: check --connect fails closed, exit 1.
	other := filepath.Join(t.TempDir(), "known_hosts")
	line := strings.Replace(dm.SFTP.KnownHostsLine(), strings.Fields(dm.SFTP.KnownHostsLine())[2], "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", 1)
	if err := os.WriteFile(other, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dm.Dir, "keys", "known_hosts")
	if err := os.WriteFile(known, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"check", "--connect", "--config", dm.ConfigPath}, nil, &out, &errb); code != exitFindings {
		t.Fatalf("check --connect with a wrong host key = %d, want 1\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "FAILED") {
		t.Errorf("no failure shown:\n%s", out.String())
	}
}

// TestCheckAcceptsExample: the documented example configuration passes `cmord check`
// once the folders, keys and secrets it names exist (here under a temporary
// directory); as shipped, on a machine without them, check fails (exit 1) and names
// each one at its line.
func TestCheckAcceptsExample(t *testing.T) {
	example, err := os.ReadFile("../../config/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := strings.NewReplacer("/var/lib/cmord", filepath.Join(dir, "state"), "/srv/cmord", filepath.Join(dir, "srv"),
		"/etc/cmord", filepath.Join(dir, "etc")).Replace(string(example))
	for _, d := range []string{"srv/morosi", "srv/incassi", "srv/annullamenti", "srv/rimborsi", "srv/fatturato", "srv/sospensioni", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	key, known := sshFixture(t)
	write(t, filepath.Join(dir, "etc", "sii_ed25519"), key)
	write(t, filepath.Join(dir, "etc", "known_hosts"), strings.Replace(known, "127.0.0.1", "sftp.sii.example.it", 1))
	write(t, filepath.Join(dir, "etc", "smtp_password"), "s3cret\n")
	write(t, filepath.Join(dir, "cmord.toml"), cfg)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", filepath.Join(dir, "cmord.toml")}, nil, &out, &errb); code != exitOK {
		t.Fatalf("check example.toml = %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "configuration OK") {
		t.Errorf("no OK line:\n%s", out.String())
	}
	if _, err := os.Stat("/etc/cmord"); err == nil {
		return // an installed cmord: the shipped paths may exist here
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "--config", "../../config/example.toml"}, nil, &out, &errb); code != exitFindings {
		t.Fatalf("check of the shipped example on a bare machine = %d, want 1\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"folder[0].path: folder morosi: /srv/cmord/morosi does not exist", "sftp[0].key_file", "sftp[0].known_hosts", "mail.password_file"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("check does not name %q:\n%s", want, errb.String())
		}
	}
}

// TestCheckMappingsAndKeyMode: `cmord check` opens each folder's mapping file as the
// daemon will when the first file arrives, and reports its problems at file:line:
// syntax, targets that are not fields of the folder's kind, kind and decimal_comma
// disagreeing with the folder, a missing mapping file (every file of the folder would
// be refused: exit 1); a private key that the group may read is a warning. The output (paths as DIR) is compared with
// testdata/check/NAME.txt.
func TestCheckMappingsAndKeyMode(t *testing.T) {
	base := `state_dir = "state"
[company]
piva = "00488410010"
name = "Test S.p.A."
roles = ["uscente", "entrante"]
sectors = ["E", "G"]
piva_gestore = "01234567897"
[[folder]]
name = "morosi"
path = "in"
kind = "uscente.morosi"
%s
[[sftp]]
name = "sii"
host = "127.0.0.1"
user = "cmord"
key_file = "sii_key"
known_hosts = "known_hosts"
inbound_dir = "/out"
outbound_dir = "/in"
`
	goodMapping := "kind = \"uscente.morosi\"\n[mapping]\n\"Codice POD\" = \"COD_POD\"\n\"Codice Fiscale\" = \"CF_CLIENTE\"\n"
	tests := []struct {
		name    string
		folder  string            // extra lines of the [[folder]]
		files   map[string]string // files next to the configuration
		keyMode os.FileMode
		code    int
	}{
		{name: "mapping_ok", folder: `mapping_file = "m.toml"`, files: map[string]string{"m.toml": goodMapping}, code: exitOK},
		{name: "mapping_syntax", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "[mapping]\n\"Codice POD\" = \"COD_POD\"\n\"Codice Fiscale\" = CF_CLIENTE\n"}, code: exitFindings},
		{name: "mapping_values", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "[mapping]\n\"A\" = \"COD_POD\"\n\"B\" = 3\n\"C\" = \"COD_POD\"\n"}, code: exitFindings},
		{name: "mapping_target", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "# billing v3\n[mapping]\n\"Codice POD\" = \"COD_POD\"\n\"Codice Fiscale\" = \"CF_CLIENT\"\n\"Importo\" = \"IMPORTO_TOTALE\"\n"}, code: exitFindings},
		{name: "mapping_target_flat", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "\"Codice POD\" = \"COD_PODD\"\n"}, code: exitFindings},
		{name: "inline_target", folder: "[folder.mapping]\n\"Codice POD\" = \"COD_POD\"\n\"Cod. Fiscale\" = \"CF\"", code: exitFindings},
		{name: "decimal_comma", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "decimal_comma = true\n" + goodMapping[len("kind = \"uscente.morosi\"\n"):]}, code: exitFindings},
		{name: "wrong_kind", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "kind = \"uscente.incassi\"\n[mapping]\n\"Codice POD\" = \"COD_POD\"\n"}, code: exitFindings},
		{name: "mapping_rules", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "kind = \"uscente.morosi\"\n[mapping]\n\"Codice Fiscale\" = \"CF_CLIENTE\"\n" +
				"[values.TIPO_LETURA]\nR = \"E\"\n[values.MEZZO_MORA]\nPEC = \"PEC\"\n[constants]\nFATTURA_CHIUSURA = \"forse\"\n" +
				"[route.\"Punto\"]\nCOD_POD = \"COMMODITY=E\"\nCOD_PDR = \"SETTORE=G\"\n"}, code: exitFindings},
		{name: "mapping_missing", folder: `mapping_file = "missing.toml"`, code: exitFindings},
		{name: "key_group_readable", keyMode: 0o640, code: exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"in", "state"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o750); err != nil {
					t.Fatal(err)
				}
			}
			key, known := sshFixture(t)
			files := map[string]string{"cmord.toml": fmt.Sprintf(base, tt.folder), "known_hosts": known, "sii_key": key}
			for name, body := range tt.files {
				files[name] = body
			}
			for name, body := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.keyMode != 0 {
				if err := os.Chmod(filepath.Join(dir, "sii_key"), tt.keyMode); err != nil {
					t.Fatal(err)
				}
			}
			var out, errb bytes.Buffer
			code := run([]string{"check", "--config", filepath.Join(dir, "cmord.toml")}, nil, &out, &errb)
			got := strings.ReplaceAll(out.String()+errb.String(), dir, "DIR")
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, got)
			}
			goldenCLI(t, "check", tt.name+".txt", []byte(got))
		})
	}
}

// sshFixture returns a real unencrypted ed25519 private key (PEM) and a known_hosts
// line with a host key for 127.0.0.1 (port 22).
func sshFixture(t *testing.T) (key, knownHosts string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	hostPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := ssh.NewPublicKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), "127.0.0.1 " + string(ssh.MarshalAuthorizedKey(hk))
}

// TestCheckOfflineFailures: `cmord check` (no --connect) fails, exit 1, with the
// configuration's file:line and the rule, on everything that would make `cmord run`
// fail and can be seen offline; what may be intended stays a warning and exit 0. The
// output (paths as DIR) is compared with testdata/check/offline_NAME.txt.
func TestCheckOfflineFailures(t *testing.T) {
	base := `state_dir = "%s"
[company]
piva = "00488410010"
name = "Test S.p.A."
roles = ["uscente", "entrante"]
sectors = ["E", "G"]
piva_gestore = "01234567897"
[[folder]]
name = "morosi"
path = "%s"
kind = "uscente.morosi"
[[sftp]]
name = "sii"
host = "127.0.0.1"
user = "cmord"
key_file = "%s"
known_hosts = "%s"
%s
%s
[outbound]
billing_dir = "%s"
[mail]
host = "127.0.0.1"
tls = "none"
from = "cmord@example.it"
username = "cmord"
password_file = "%s"
`
	type setup struct {
		state, folder, key, known, inbound, outbound, billing, password string
	}
	good := setup{state: "state", folder: "in", key: "sii_key", known: "known_hosts", inbound: `inbound_dir = "/out"`, outbound: `outbound_dir = "/in"`,
		billing: "to-billing", password: "smtp_password"}
	tests := []struct {
		name   string
		change func(s *setup, dir string)
		code   int
	}{
		{"ok", func(*setup, string) {}, exitOK},
		{"billing_dir_to_create", func(s *setup, _ string) { s.billing = "new/to-billing" }, exitOK},
		{"known_hosts_missing", func(s *setup, _ string) { s.known = "no_known_hosts" }, exitFindings},
		{"known_hosts_other_host", func(_ *setup, dir string) {
			write(t, filepath.Join(dir, "known_hosts"), "sftp.sii.example.it ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
		}, exitFindings},
		{"known_hosts_garbage", func(_ *setup, dir string) {
			write(t, filepath.Join(dir, "known_hosts"), "127.0.0.1 ssh-ed25519 not-base64!\n")
		}, exitFindings},
		{"key_missing", func(s *setup, _ string) { s.key = "no_key" }, exitFindings},
		{"key_not_a_key", func(_ *setup, dir string) { write(t, filepath.Join(dir, "sii_key"), "not a real key\n") }, exitFindings},
		{"key_passphrase", func(_ *setup, dir string) {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, "sii_key"), string(pem.EncodeToMemory(block)))
		}, exitFindings},
		{"no_outbound_endpoint", func(s *setup, _ string) { s.outbound = "" }, exitFindings},
		{"no_inbound_endpoint", func(s *setup, _ string) { s.inbound = "" }, exitFindings},
		{"password_file_missing", func(s *setup, _ string) { s.password = "no_password" }, exitFindings},
		{"password_file_empty", func(_ *setup, dir string) { write(t, filepath.Join(dir, "smtp_password"), "\n") }, exitFindings},
		{"folder_missing", func(s *setup, _ string) { s.folder = "no_such_folder" }, exitFindings},
		{"folder_is_a_file", func(s *setup, _ string) { s.folder = "sii_key" }, exitFindings},
		{"state_dir_under_a_file", func(s *setup, _ string) { s.state = "sii_key/state" }, exitFindings},
		{"billing_dir_under_a_file", func(s *setup, _ string) { s.billing = "sii_key/out" }, exitFindings},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"in", "state", "to-billing"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o750); err != nil {
					t.Fatal(err)
				}
			}
			key, known := sshFixture(t)
			write(t, filepath.Join(dir, "sii_key"), key)
			write(t, filepath.Join(dir, "known_hosts"), known)
			write(t, filepath.Join(dir, "smtp_password"), "s3cret\n")
			s := good
			tt.change(&s, dir)
			write(t, filepath.Join(dir, "cmord.toml"), fmt.Sprintf(base, s.state, s.folder, s.key, s.known, s.inbound, s.outbound, s.billing, s.password))
			var out, errb bytes.Buffer
			code := run([]string{"check", "--config", filepath.Join(dir, "cmord.toml")}, nil, &out, &errb)
			got := strings.ReplaceAll(out.String()+errb.String(), dir, "DIR")
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, got)
			}
			if tt.code == exitFindings && !strings.Contains(got, "DIR/cmord.toml:") {
				t.Errorf("no file:line in\n%s", got)
			}
			goldenCLI(t, "check", "offline_"+tt.name+".txt", []byte(got))
		})
	}
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCheckEffective: `cmord check --effective` prints the effective configuration
// (every key, defaults applied) on stdout and nothing else, so it can be kept or
// diffed; the verdict goes to stderr. The print is itself a configuration that
// passes check. A value check refuses (attachment_max_rows = 0 or "abc") prints no
// configuration and names the file and line, exit 2.
func TestCheckEffective(t *testing.T) {
	dm, err := demo.Setup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dm.Close()
	base, err := os.ReadFile(dm.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	withDigest := func(line string) string {
		s := strings.Replace(string(base), "\n[digest]\n", "\n[digest]\n"+line+"\n", 1)
		if s == string(base) {
			t.Fatal("the demo configuration has no [digest] table")
		}
		return s
	}
	cfgPath := filepath.Join(dm.Dir, "effective-test.toml")
	write(t, cfgPath, withDigest("attachment_max_rows = 250"))
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--effective", "--config", cfgPath}, nil, &out, &errb); code != exitOK {
		t.Fatalf("check --effective = %d\n%s%s", code, out.String(), errb.String())
	}
	got := out.String()
	if !strings.HasPrefix(got, "# effective configuration of "+cfgPath+"\n") {
		t.Errorf("stdout does not start with the effective configuration:\n%s", got)
	}
	for _, want := range []string{"\n[digest]\n", "\nattachment_max_rows = 250\n", "\nattachment_max_size = \"6MiB\"\n", "\nwarn_days = [30, 7, 2]\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("the effective configuration lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "configuration OK") || !strings.Contains(errb.String(), "configuration OK") {
		t.Errorf("the verdict belongs on stderr, not in the TOML\nstdout:\n%s\nstderr:\n%s", got, errb.String())
	}
	printed := filepath.Join(dm.Dir, "printed.toml")
	write(t, printed, got)
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "--config", printed}, nil, &out, &errb); code != exitOK {
		t.Fatalf("check of the printed configuration = %d\n%s%s", code, out.String(), errb.String())
	}

	for _, bad := range []string{`attachment_max_rows = 0`, `attachment_max_rows = "abc"`, `attachment_max_size = "abc"`, `attachment_max_size = 0`} {
		write(t, cfgPath, withDigest(bad))
		out.Reset()
		errb.Reset()
		code := run([]string{"check", "--effective", "--config", cfgPath}, nil, &out, &errb)
		key := strings.Fields(bad)[0]
		want := fmt.Sprintf("%s:%d: digest.%s: ", cfgPath, 1+strings.Count(strings.SplitAfter(withDigest(bad), bad)[0], "\n"), key)
		if code != exitUsage || out.Len() != 0 || !strings.Contains(errb.String(), want) {
			t.Errorf("%s: exit %d, want %d, with %q on stderr and nothing on stdout\nstdout:\n%s\nstderr:\n%s", bad, code, exitUsage, want, out.String(), errb.String())
		}
	}
}
