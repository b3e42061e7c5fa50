package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailureUnit keeps the alert for a daemon systemd gave up on wired: cmord.service
// names cmord-failed.service in OnFailure=, that unit runs `cmord alert --unit-failed`
// as the daemon's user with the daemon's state and configuration directories, the
// package installs it and the install check verifies it; and both units pass
// `systemd-analyze verify` (where it is installed; CI installs it), with their binary
// path pointed at an executable that exists.
func TestFailureUnit(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	main, failed := read("../systemd/cmord.service"), read("../systemd/cmord-failed.service")
	tests := []struct{ file, text, want string }{
		{"cmord.service", main, "\nOnFailure=cmord-failed.service\n"},
		{"cmord-failed.service", failed, "\nType=oneshot\n"},
		{"cmord-failed.service", failed, "\nExecStart=/usr/local/bin/cmord alert --unit-failed --config /etc/cmord/cmord.toml\n"},
		{"cmord-failed.service", failed, "\nUser=cmord\n"},
		{"cmord-failed.service", failed, "\nStateDirectory=cmord\n"},
		{"cmord-failed.service", failed, "\nConfigurationDirectory=cmord\n"},
		{"cmord-failed.service", failed, "\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n"},
		{"build-deb.sh", read("build-deb.sh"), "cmord-failed.service"},
		{"install-check.sh", read("install-check.sh"), "/lib/systemd/system/cmord-failed.service"},
	}
	for _, tt := range tests {
		if !strings.Contains(tt.text, tt.want) {
			t.Errorf("%s lacks %q", tt.file, strings.TrimSpace(tt.want))
		}
	}
	if strings.Contains(failed, "\nOnFailure=") {
		t.Errorf("cmord-failed.service must not have an OnFailure= of its own (a failing alert would loop)")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed (CI installs systemd)")
		}
		t.Skip("systemd-analyze not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, text := range map[string]string{"cmord.service": main, "cmord-failed.service": failed} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(text, "/usr/local/bin/cmord", exe)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "cmord.service", "cmord-failed.service")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
