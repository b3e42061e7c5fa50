package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

// versionLine picks the most precise source: the build-time version, the module
// version, the VCS revision (with +dirty and its time), and says "devel" with the
// reason when the build information holds none.
func TestVersionLine(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name    string
		ldflags string
		bi      *debug.BuildInfo
		want    []string
		not     []string
	}{
		{"go install @version", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.2"}},
			[]string{"cmord v1.4.2 (", "go1.26.0"}, []string{"devel"}},
		{"git checkout, clean", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")},
			[]string{"cmord devel-0123456789ab (committed 2026-12-01T10:00:00Z, "}, []string{"dirty"}},
		{"git checkout, uncommitted changes", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")},
			[]string{"cmord devel-0123456789ab+dirty ("}, nil},
		{"package build", "1.0.0~git20261201", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")},
			[]string{"cmord 1.0.0~git20261201 (revision 0123456789ab, committed 2026-12-01T10:00:00Z, "}, nil},
		{"no VCS stamp", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			[]string{"cmord devel (no module version or VCS revision in the build information, "}, nil},
		{"no build information", "", nil, []string{"cmord devel ("}, nil},
	}
	for _, tt := range tests {
		got := versionLine(tt.ldflags, tt.bi)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tt.name, got, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("%s: %q has %q", tt.name, got, n)
			}
		}
	}
}

// `cmord --version`, `cmord -V` and `cmord version` print the same line.
func TestVersionFlag(t *testing.T) {
	var want bytes.Buffer
	if code := run([]string{"version"}, nil, &want, &want); code != exitOK || !strings.HasPrefix(want.String(), "cmord ") {
		t.Fatalf("cmord version: exit %d, %q", code, want.String())
	}
	for _, args := range [][]string{{"--version"}, {"-V"}} {
		var out bytes.Buffer
		if code := run(args, nil, &out, &out); code != exitOK || out.String() != want.String() {
			t.Errorf("cmord %s: exit %d, %q; want %q", args[0], code, out.String(), want.String())
		}
	}
}
