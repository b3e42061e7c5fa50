package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon"
)

func init() {
	register(&command{name: "run", summary: "run the daemon (--once: one full cycle, then exit)", usage: "[--once]", run: runRun})
}

func runRun(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	once := fs.Bool("once", false, "do one full cycle (ingest, SII poll, build, deliver, digest if due) and exit")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	cfg, err := env.Config()
	if err != nil {
		return env.fail(err)
	}
	log := env.Logger()
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w.String())
	}
	d, err := daemon.New(cfg, log)
	if err != nil {
		return env.fail(err)
	}
	defer d.Close()
	stopReload := reloadOnSIGHUP(ctx, env, d)
	defer stopReload()
	if *once {
		sum, err := d.RunOnceSummary(ctx)
		if err != nil {
			log.Error("cycle finished with errors", "err", err)
		}
		// The summary also after errors: what the steps that worked did (files taken
		// in, rejected) is what the person who ran it looks for next.
		if sum.Counted {
			fmt.Fprintln(env.Stdout, sum.String())
		}
		if err != nil {
			return exitFindings
		}
		return exitOK
	}
	// The run ledger: this start, what ends it (a panic in this goroutine, a fatal
	// error), and its clean stop. The next start reads it (daemon_crashed).
	// A ledger that cannot be written (a full disk) does not keep the daemon down.
	if err := d.StartRun(ctx, shortVersion()); err != nil {
		log.Error("cannot record this start in the run ledger", "err", err)
	}
	defer d.RecordPanic()
	if err := d.Run(ctx); err != nil {
		d.RunFailed("fatal error: " + err.Error())
		fmt.Fprintf(env.Stderr, "cmord run: %v\n", err)
		return exitFindings
	}
	if err := d.StopRun(context.WithoutCancel(ctx)); err != nil {
		log.Error("cannot record the clean stop in the run ledger", "err", err)
	}
	return exitOK
}

// shortVersion is the version of versionLine without the Go version and platform
// ("1.2.3", "devel"): what the run ledger records of each start.
func shortVersion() string {
	bi, _ := debug.ReadBuildInfo()
	v := strings.TrimPrefix(versionLine(version, bi), "cmord ")
	if i := strings.Index(v, " ("); i > 0 {
		v = v[:i]
	}
	return v
}

// reloadOnSIGHUP makes SIGHUP re-read the configuration file and hand it to the daemon
// (a bad new configuration is refused and the old one kept); the daemon applies it,
// then [log] level and format through Daemon.OnReload. The returned func stops it.
// Both `cmord run` and `cmord demo` use it, so the demo survives SIGHUP like the daemon.
func reloadOnSIGHUP(ctx context.Context, env *Env, d *daemon.Daemon) (stop func()) {
	log := env.Logger()
	d.OnReload = env.applyLogSettings
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				newCfg, err := config.Load(env.ResolvedConfigPath())
				if err != nil {
					log.Error("SIGHUP: new configuration refused, keeping the old one", "err", err)
					continue
				}
				log.Info("SIGHUP: reloading the configuration", "file", newCfg.File)
				d.Reload(newCfg)
			}
		}
	}()
	return func() { signal.Stop(hup); cancel() }
}
