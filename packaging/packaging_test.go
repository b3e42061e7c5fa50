// Package packaging holds the Debian package's build script and maintainer scripts
// (no Go code: this test checks them; .ci/run builds, installs and purges the package).
package packaging

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The scripts parse in the shells that run them: bash for the build and the install
// check, POSIX sh (dash on Debian) for dpkg's maintainer scripts; the maintainer
// scripts never fail the install for a missing systemd (set -e, and every systemctl
// call guarded).
func TestScriptsParse(t *testing.T) {
	sh := "sh"
	if _, err := exec.LookPath("dash"); err == nil {
		sh = "dash"
	}
	tests := []struct{ shell, path string }{
		{"bash", "build-deb.sh"},
		{"bash", "install-check.sh"},
		{sh, "debian/postinst"},
		{sh, "debian/prerm"},
		{sh, "debian/postrm"},
	}
	for _, tt := range tests {
		if out, err := exec.Command(tt.shell, "-n", tt.path).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", tt.shell, tt.path, err, out)
		}
		b, err := os.ReadFile(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(tt.path)
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", tt.path)
		}
		if !strings.HasPrefix(tt.path, "debian/") {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "systemctl ") && !strings.Contains(line, "|| true") {
				t.Errorf("%s:%d: a systemctl call that can fail the install: %s", tt.path, i+1, strings.TrimSpace(line))
			}
		}
	}
	control, err := os.ReadFile("debian/control")
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"Package: cmord", "Version: @VERSION@", "Architecture: @ARCH@", "Installed-Size: @SIZE@", "Maintainer: ", "Description: "} {
		if !strings.Contains(string(control), field) {
			t.Errorf("debian/control lacks %q", field)
		}
	}
}
