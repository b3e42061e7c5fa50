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
	if code, ok := env.parse(fs, args); !ok {
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
	if code, ok := env.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return env.fail(usageError{"name one catalog FILE"})
	}
	cat, err := flows.LoadCatalog(fs.Arg(0), *mode)
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
	fmt.Fprintf(env.Stdout, "%s: catalog OK (%d flows, %d input kinds, %d states)\n", fs.Arg(0), len(cat.Flows), len(cat.Inputs), len(cat.States))
	return exitOK
}
