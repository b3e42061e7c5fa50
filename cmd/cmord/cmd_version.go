package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func init() {
	register(&command{name: "version", summary: "print the version", run: func(ctx context.Context, env *Env, args []string) int {
		if code, ok := noArgs(env, env.newFlags(), args, ""); !ok {
			return code
		}
		v := version
		if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		fmt.Fprintf(env.Stdout, "cmord %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	}})
}
