package main

import (
	"bytes"
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

// TestCheckAcceptsExample: the documented example configuration passes `cmord check`;
// paths that do not exist on this machine are warnings, not errors.
func TestCheckAcceptsExample(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", "../../config/example.toml"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("check example.toml = %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "configuration OK") {
		t.Errorf("no OK line:\n%s", out.String())
	}
}

// TestCheckMappingsAndKeyMode: `cmord check` opens each folder's mapping file as the
// daemon will when the first file arrives, and reports its problems at file:line:
// syntax, targets that are not fields of the folder's kind, kind and decimal_comma
// disagreeing with the folder; a missing mapping file and a private key that the
// group may read are warnings. The output (paths as DIR) is compared with
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
			files: map[string]string{"m.toml": "[mapping]\n\"Codice POD\" = \"COD_POD\"\n\"Codice Fiscale\" = CF_CLIENTE\n"}, code: exitUsage},
		{name: "mapping_values", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "[mapping]\n\"A\" = \"COD_POD\"\n\"B\" = 3\n\"C\" = \"COD_POD\"\n"}, code: exitUsage},
		{name: "mapping_target", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "# billing v3\n[mapping]\n\"Codice POD\" = \"COD_POD\"\n\"Codice Fiscale\" = \"CF_CLIENT\"\n\"Importo\" = \"IMPORTO_TOTALE\"\n"}, code: exitUsage},
		{name: "mapping_target_flat", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "\"Codice POD\" = \"COD_PODD\"\n"}, code: exitUsage},
		{name: "inline_target", folder: "[folder.mapping]\n\"Codice POD\" = \"COD_POD\"\n\"Cod. Fiscale\" = \"CF\"", code: exitUsage},
		{name: "decimal_comma", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "decimal_comma = true\n" + goodMapping[len("kind = \"uscente.morosi\"\n"):]}, code: exitUsage},
		{name: "wrong_kind", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "kind = \"uscente.incassi\"\n[mapping]\n\"Codice POD\" = \"COD_POD\"\n"}, code: exitUsage},
		{name: "mapping_rules", folder: `mapping_file = "m.toml"`,
			files: map[string]string{"m.toml": "kind = \"uscente.morosi\"\n[mapping]\n\"Codice Fiscale\" = \"CF_CLIENTE\"\n" +
				"[values.TIPO_LETURA]\nR = \"E\"\n[values.MEZZO_MORA]\nPEC = \"PEC\"\n[constants]\nFATTURA_CHIUSURA = \"forse\"\n" +
				"[route.\"Punto\"]\nCOD_POD = \"COMMODITY=E\"\nCOD_PDR = \"SETTORE=G\"\n"}, code: exitUsage},
		{name: "mapping_missing", folder: `mapping_file = "missing.toml"`, code: exitOK},
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
			files := map[string]string{"cmord.toml": fmt.Sprintf(base, tt.folder), "known_hosts": "", "sii_key": "not a real key\n"}
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
