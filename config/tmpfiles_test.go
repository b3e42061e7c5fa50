package config

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// The Debian package installs example.toml as /etc/cmord/cmord.toml and
// systemd/cmord.tmpfiles creates its folders: every drop folder and the exports folder
// it names must have a "d" line owned by cmord, setgid and group-writable (billing
// writes through the cmord group), under the unit's ReadWritePaths=/srv/cmord.
func TestTmpfilesCreateExampleFolders(t *testing.T) {
	c, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../systemd/cmord.tmpfiles")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := map[string][]string{} // path → fields
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && fields[0] == "d" {
			lines[fields[1]] = fields
		}
	}
	want := []string{c.Outbound.BillingDir}
	for _, fo := range c.Folders {
		want = append(want, fo.Path)
	}
	for _, p := range want {
		l, ok := lines[p]
		switch {
		case !ok:
			t.Errorf("%s: no \"d\" line in systemd/cmord.tmpfiles", p)
		case l[2] != "2770" || l[3] != "cmord" || l[4] != "cmord":
			t.Errorf("%s: %v, want mode 2770 owner cmord group cmord", p, l)
		case !strings.HasPrefix(p, "/srv/cmord/"):
			t.Errorf("%s: outside /srv/cmord, the unit's ReadWritePaths=", p)
		}
	}
	if l, ok := lines[c.StateDir]; !ok || l[3] != "cmord" {
		t.Errorf("state_dir %s: no \"d\" line owned by cmord", c.StateDir)
	}
}
