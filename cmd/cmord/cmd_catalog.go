package main

import (
	"context"
	"fmt"
	"os"

	"github.com/cmord/cmord/flows"
)

func init() {
	register(&command{name: "catalog show", summary: "print the effective flow catalog as TOML", run: runCatalogShow})
	register(&command{name: "catalog check", summary: "check a flow catalog file (exit 1 with findings)", usage: "[--mode extend|replace] FILE", run: runCatalogCheck})
}

// runCatalogShow prints the catalog in force: the embedded one, extended or replaced
// by the configured file when a configuration is given.
func runCatalogShow(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	cat := flows.DefaultCatalog()
	if env.ConfigPath != "" || os.Getenv("CMORD_CONFIG") != "" {
		cfg, err := env.Config()
		if err != nil {
			return env.fail(err)
		}
		if cfg.Catalog.Path != "" {
			if cat, err = flows.LoadCatalog(cfg.Catalog.Path, cfg.Catalog.Mode); err != nil {
				return env.fail(err)
			}
		}
	}
	if err := cat.WriteTOML(env.Stdout); err != nil {
		return env.fail(err)
	}
	return exitOK
}

// runCatalogCheck parses a catalog file strictly and checks it, as combined with the
// embedded catalog (mode extend, the default) or alone (replace).
func runCatalogCheck(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	mode := fs.String("mode", "extend", "how the file combines with the embedded catalog: extend or replace")
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return env.fail(usageError{"name one catalog FILE"})
	}
	if *mode != "extend" && *mode != "replace" {
		return env.fail(usageError{fmt.Sprintf("--mode %q: want extend or replace", *mode)})
	}
	file := pos[0]
	cat, err := flows.LoadCatalog(file, *mode)
	if err != nil {
		fmt.Fprintln(env.Stdout, err)
		return exitFindings
	}
	findings := cat.Check()
	for _, f := range findings {
		if f.IsWarning() {
			fmt.Fprintf(env.Stdout, "%s (warning)\n", f.String())
		} else {
			fmt.Fprintln(env.Stdout, f.String())
		}
	}
	if flows.HasErrors(findings) {
		return exitFindings
	}
	fmt.Fprintf(env.Stdout, "%s: catalog OK (%s, %s, %s)\n", file, plural(len(cat.Flows), "flow", "flows"),
		plural(len(cat.Inputs), "input kind", "input kinds"), plural(len(cat.States), "state", "states"))
	return exitOK
}
