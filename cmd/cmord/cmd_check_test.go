package main

import (
	"bytes"
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
