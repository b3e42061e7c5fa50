package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cmord/cmord/daemon"
)

func init() {
	register(&command{name: "check", summary: "validate the configuration (--connect: also reach SFTP and SMTP; --effective: print it with the defaults)", usage: "[--connect] [--effective]", run: runCheck})
}

func runCheck(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	connect := fs.Bool("connect", false, "also connect to every SFTP endpoint and the SMTP server")
	effective := fs.Bool("effective", false, "print the effective configuration as TOML on stdout (every key, defaults applied, paths resolved; "+
		"no secret: files are named, the SMTP username is masked); warnings and the verdict go to stderr")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	cfg, err := env.Config()
	if err != nil {
		return env.fail(err)
	}
	// With --effective stdout is the configuration alone (TOML to keep or diff), so
	// the messages go to stderr.
	msg := env.Stdout
	if *effective {
		fmt.Fprint(env.Stdout, cfg.Redacted())
		msg = env.Stderr
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(msg, "warning: %s\n", w.String())
	}
	warnings, err := daemon.CheckConfig(cfg)
	for _, w := range warnings {
		fmt.Fprintf(msg, "warning: %s\n", w)
	}
	if err != nil {
		// The file parses, but what it names (catalog, mapping files, folders, keys,
		// known_hosts, secrets, the SFTP endpoint flows need) would make `cmord run`
		// fail: findings, exit 1, each at the file and line of its key. A file that
		// does not parse is exit 2 (env.Config above).
		fmt.Fprintf(env.Stderr, "cmord check: %v\n", err)
		return exitFindings
	}
	fmt.Fprintf(msg, "%s: configuration OK (%s, %s, state in %s)\n", cfg.File,
		plural(len(cfg.Folders), "folder", "folders"), plural(len(cfg.SFTP), "SFTP endpoint", "SFTP endpoints"), cfg.StateDir)
	if !*connect {
		return exitOK
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	failed := false
	for _, r := range daemon.CheckConnections(cctx, cfg) {
		status := "OK"
		if r.Err != nil {
			status, failed = "FAILED: "+r.Err.Error(), true
		}
		fmt.Fprintf(msg, "%-8s %-20s %s\n", r.Kind, r.Name, status)
	}
	if failed {
		return exitFindings
	}
	return exitOK
}

// plural is "1 file" or "N files": every count the CLI prints agrees with its noun.
func plural[N int | int64](n N, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
