package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version may be set at build time with -ldflags "-X main.version=1.2.3" (the Debian
// package does); otherwise the build information says what was built.
var version = ""

func init() {
	register(&command{name: "version", summary: "print the version (also: cmord --version)", run: func(ctx context.Context, env *Env, args []string) int {
		if code, ok := noArgs(env, env.newFlags(), args, ""); !ok {
			return code
		}
		bi, _ := debug.ReadBuildInfo()
		fmt.Fprintln(env.Stdout, versionLine(version, bi))
		return exitOK
	}})
}

// versionLine says what this binary is, from the most precise source there is: a
// version set at build time, the module version (`go install …/cmd/cmord@v1.2.3`), or
// the VCS revision the build stamped (go build in a git checkout), with "+dirty" when
// the checkout had uncommitted changes and the commit time; then the Go version and
// platform. Without any of them (GOFLAGS=-buildvcs=false, a tarball) it says "devel"
// and why.
func versionLine(ldflagsVersion string, bi *debug.BuildInfo) string {
	settings := map[string]string{}
	goVersion := runtime.Version()
	v := ldflagsVersion
	if bi != nil {
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	var extra []string
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if settings["vcs.modified"] == "true" {
			rev += "+dirty"
		}
		if v == "" {
			v = "devel-" + rev
		} else {
			extra = append(extra, "revision "+rev)
		}
		if t := settings["vcs.time"]; t != "" {
			extra = append(extra, "committed "+t)
		}
	}
	if v == "" {
		v = "devel"
		extra = append(extra, "no module version or VCS revision in the build information")
	}
	extra = append(extra, goVersion, runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("cmord %s (%s)", v, strings.Join(extra, ", "))
}
