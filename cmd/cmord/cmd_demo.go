package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon"
	"github.com/cmord/cmord/daemon/demo"
	"github.com/cmord/cmord/daemon/logx"
	"github.com/cmord/cmord/flows"
)

func init() {
	register(&command{name: "demo", summary: "a self-contained demo: in-process SII (SFTP) and mail server, sample extracts, the daemon running",
		usage: "[--dir D] [--once] [--reset]", run: runDemo})
}

// demoTimeline places the demo's scripted month in the past: the script starts a week
// before the first of a month (09:00 in Rome) and moves its clock to that first of the
// month at step 6, when the month's report is due. The first of the month is the
// latest one at least an hour before now, so every date the script writes into the
// archive (files received, practices' states) is before the real time the daemon goes
// on with after the tour: no record from the future.
func demoTimeline(now time.Time) (start, monthEnd time.Time) {
	first := flows.Today(now).FirstOfMonth()
	monthEnd = time.Date(first.Time().Year(), first.Time().Month(), first.Time().Day(), 9, 0, 0, 0, flows.Rome)
	if now.Sub(monthEnd) < time.Hour {
		first = first.AddMonths(-1)
		monthEnd = time.Date(first.Time().Year(), first.Time().Month(), first.Time().Day(), 9, 0, 0, 0, flows.Rome)
	}
	return monthEnd.AddDate(0, 0, -7), monthEnd
}

func runDemo(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	dir := fs.String("dir", "cmord-demo", "working `DIR` of the demo (created, or reused with its state)")
	once := fs.Bool("once", false, "run the scripted cycles, print the tour and exit (default: keep the daemon running)")
	reset := fs.Bool("reset", false, "remove the demo's earlier state in DIR and start over")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	if *reset {
		if err := demo.Reset(*dir); err != nil {
			return env.fail(err)
		}
	}
	dm, err := demo.Setup(*dir)
	if err != nil {
		return env.fail(err)
	}
	defer dm.Close()
	env.ConfigPath = dm.ConfigPath
	// The daemon logs to a file: the terminal is the tour's.
	logFile, err := os.OpenFile(dm.Path(demo.LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return env.fail(err)
	}
	defer logFile.Close()
	env.logCtl = logx.NewReloadable(logFile, dm.Config.Log.Level, "text", dm.Config.Log.Redact)
	env.log = env.logCtl.Logger()
	log := env.log
	d, err := daemon.New(dm.Config, log)
	if err != nil {
		return env.fail(err)
	}
	defer d.Close()
	// SIGHUP re-reads the demo's configuration, as it does for `cmord run`.
	stopReload := reloadOnSIGHUP(ctx, env, d)
	defer stopReload()
	sii, err := demo.NewFakeSII(dm, d.Catalog())
	if err != nil {
		return env.fail(err)
	}
	w := env.Stdout
	say := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	var last string // practice counts after the previous cycle
	// The script's clock: the real one shifted into the past (demoTimeline); the
	// fake SII answers on the same clock.
	var shift atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }
	cycle := func() error { return demoCycle(ctx, d, sii, clock, say, &last) }
	// Ctrl-C during the scripted tour stops it where it is: said plainly, not as an
	// error (the next run goes on with the state as it is; --reset runs the script again).
	fail := func(err error) int {
		if ctx.Err() != nil {
			say("\nInterrupted during the tour: `cmord demo --dir %s` goes on with this state, `--reset` runs the tour again from step 1.", dm.Dir)
			return exitOK
		}
		return env.fail(err)
	}
	say("cmord demo in %s", dm.Dir)
	say("  SII (SFTP) on %s, mail (SMTP) on %s; the daemon's log is %s", dm.SFTP.Addr, dm.SMTP.Addr(), dm.Path(demo.LogFile))
	if dm.Fresh {
		// The narration is kept, to be replayed by the next run.
		var narration bytes.Buffer
		w = io.MultiWriter(env.Stdout, &narration)
		if err := demoScript(ctx, d, dm, sii, &shift, clock, cycle, say); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(dm.Path(demo.TourFile), narration.Bytes(), 0o640); err != nil {
			return fail(err)
		}
		w = env.Stdout
	} else {
		b, err := os.ReadFile(dm.Path(demo.TourFile))
		if err == nil {
			say("\nThe tour of the first run in %s (`cmord demo --reset` starts over):", dm.Dir)
			fmt.Fprint(w, string(b))
		} else {
			say("\nReusing the demo state in %s (`cmord demo --reset` starts over).", dm.Dir)
		}
		say("\nThis run: one more cycle on the same state")
		if err := cycle(); err != nil {
			return fail(err)
		}
	}
	tour(w, dm, d, *once)
	if *once {
		return exitOK
	}
	say("\nThe daemon is running (Ctrl-C to stop; SIGHUP re-reads %s).", dm.ConfigPath)
	say("Drop billing extracts into the folders of %s (morosi, incassi, ...): cmord takes them within seconds, builds,", dm.Path("in"))
	say("publishes and polls the SII every minute, and the demo SII answers what it receives within %s.", demoSIIRound)
	go func() {
		t := time.NewTicker(demoSIIRound)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := sii.Round(time.Now()); err != nil {
					log.Warn("demo SII", "err", err)
				}
			}
		}
	}()
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return env.fail(err)
	}
	say("\nStopped. `cmord demo --dir %s` goes on with this state; `--reset` starts over.", dm.Dir)
	return exitOK
}

// demoScript is the tour of a fresh demo: the billing drops and the SII's answers of
// steps 1 to 6 on the simulated clock (shift from the real one), then the digest on
// the real clock. say narrates.
func demoScript(ctx context.Context, d *daemon.Daemon, dm *demo.Demo, sii *demo.FakeSII, shift *atomic.Int64, clock func() time.Time, cycle func() error, say func(string, ...any)) error {
	start, monthEnd := demoTimeline(time.Now())
	shift.Store(int64(start.Sub(time.Now())))
	d.SetClock(clock)
	// The archive records on the same clock: files received, exceptions, practice
	// history and publications all carry the script's dates (back to the real
	// clock with it, shift 0, after the tour).
	d.Store.Now = clock
	now := clock()
	say("\nThe script runs on a simulated clock, from %s (step 1) to %s (step 6), so that a month", start.Format("02/01/2006"), monthEnd.Format("02/01/2006"))
	say("ends during the tour: its files and practices carry those dates. After the tour the clock is the real one.")
	name, err := dm.DropMorosi(now)
	if err != nil {
		return err
	}
	say("\n1. Billing drops %s into in/morosi (8 switched-out customers: 3 claimable, 1 not yet, 4 to refuse)", name)
	if err := cycle(); err != nil {
		return err
	}
	say("\n2. The SII answers: admissibility of each request (the demo's SII refuses one, with its cause, as the")
	say("   real one may: see `cmord exceptions`), and two CMOR notices for customers who came to us")
	if err := cycle(); err != nil {
		return err
	}
	inc, err := dm.DropIncassi(now)
	if err != nil {
		return err
	}
	fat, err := dm.DropFatturato(now, sii.EntranteCodes())
	if err != nil {
		return err
	}
	say("\n3. The SII confirms the outcomes. Billing drops %s (Mario Rossi paid: his claim must be annulled)", inc)
	say("   and %s (the CMOR charged to the two new customers: one paid, one did not)", fat)
	if err := cycle(); err != nil {
		return err
	}
	sosp, err := dm.DropSospensioni(now, sii.EntranteCodes())
	if err != nil {
		return err
	}
	say("\n4. The SII acknowledges the annulment; billing drops %s: the customer who did not pay the CMOR", sosp)
	say("   was suspended for non-payment, within the suspension term, so cmord files a suspension request")
	if err := cycle(); err != nil {
		return err
	}
	// The SII answers a suspension request in two files, a round apart: the
	// admissibility answer (SUSP_AMM), read here, leaves the practice in
	// SUSP_REQUESTED; the outcome (SUSP_ESITO) it writes now is read in step 6.
	say("\n5. cmord reads the SII's first answer to the suspension request: admissible, so the practice stays")
	say("   SUSP_REQUESTED; the SII then sends the outcome (suspension carried out), which cmord reads in step 6")
	if err := cycle(); err != nil {
		return err
	}
	// Reports cover whole months: the simulated clock reaches the first of the month.
	shift.Store(int64(monthEnd.Sub(time.Now())))
	say("\n6. The simulated clock reaches %s. cmord reads the suspension outcome (the practice is SUSPENDED) and,", monthEnd.Format("02/01/2006"))
	say("   the month being over, builds the report (REND) of the CMOR billed and collected: the collected practice is CLOSED")
	if err := cycle(); err != nil {
		return err
	}
	say("   cmord reads the SII's admission of the report")
	if err := cycle(); err != nil {
		return err
	}
	shift.Store(0)
	d.SetClock(time.Now)
	if err := d.SendDigestNow(ctx); err != nil {
		say("   (digest not sent: %v)", err)
	} else {
		say("\n7. Back on the real clock, the compliance digest goes out by mail (see the mail folder)")
	}
	return nil
}

// demoSIIRound is how often the running demo's SII reads what cmord published.
const demoSIIRound = 5 * time.Second

// demoCycle runs one daemon cycle and lets the scripted SII answer what was
// published. It prints the practices per state, or that they did not change since the
// cycle whose counts are in *last (a repeated line reads as a mistake).
func demoCycle(ctx context.Context, d *daemon.Daemon, sii *demo.FakeSII, clock func() time.Time, say func(string, ...any), last *string) error {
	if err := d.RunOnce(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // interrupted: not an error of the cycle's
		}
		say("   cycle finished with errors: %v", err)
	}
	answers, err := sii.Round(clock())
	if err != nil {
		return err
	}
	counts, err := d.Store.CountByState(ctx)
	if err != nil {
		return err
	}
	if counts == *last {
		say("   practices unchanged")
	} else {
		say("   practices now: %s", counts)
	}
	*last = counts
	if len(answers) > 0 {
		say("   the SII wrote %s", strings.Join(answers, ", "))
	}
	return nil
}

func tour(w io.Writer, dm *demo.Demo, d *daemon.Daemon, once bool) {
	ctx := context.Background()
	rel := func(p string) string {
		if r, err := filepath.Rel(mustWd(), p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	fmt.Fprintf(w, "\nWhere things are:\n")
	// From the configuration, so a folder added to the demo is not left out of the tour.
	var billing, sii []string
	for _, f := range dm.Config.Folders {
		if f.Kind == config.KindSII {
			sii = append(sii, rel(f.Path))
		} else {
			billing = append(billing, filepath.Base(f.Path))
		}
	}
	fmt.Fprintf(w, "  drop folders         %s/{%s}\n", rel(dm.Path("in")), strings.Join(billing, ","))
	for _, p := range sii {
		fmt.Fprintf(w, "  SII files by hand    %s (e.g. downloaded from the SII portal: read like answers fetched by SFTP)\n", p)
	}
	fmt.Fprintf(w, "  processed / refused  each folder's done/ and rejected/ (with NAME.reason.txt)\n")
	fmt.Fprintf(w, "  published to the SII %s\n", rel(dm.Path(demo.SIIInbox)))
	fmt.Fprintf(w, "  answers from the SII %s\n", rel(dm.Path(demo.SIIOutbox)))
	fmt.Fprintf(w, "  exports for billing  %s\n", rel(dm.Path(demo.BillingOut)))
	fmt.Fprintf(w, "  mail sent            %s (one .eml per message)\n", rel(dm.Path(demo.MailDir)))
	fmt.Fprintf(w, "  archive and index    %s\n", rel(dm.Path("state")))
	fmt.Fprintf(w, "  the daemon's log     %s\n", rel(dm.Path(demo.LogFile)))
	if once {
		// The next run listens on a port of its own (a free one, chosen at each run).
		fmt.Fprintf(w, "  metrics              /metrics and /healthz on 127.0.0.1 while `cmord demo` (without --once) runs: its tour gives the address\n")
	} else {
		fmt.Fprintf(w, "  metrics              http://%s/metrics and /healthz\n", dm.Metrics)
	}
	if files, err := d.Store.ListFiles(ctx, archive.FileFilter{}); err == nil {
		in, out := 0, 0
		for _, f := range files {
			if f.Direction == "in" {
				in++
			} else {
				out++
			}
		}
		fmt.Fprintf(w, "  archived so far      %s in, %s out\n", plural(in, "file", "files"), plural(out, "file", "files"))
	}
	open := true
	if exc, err := d.Store.Exceptions(ctx, archive.ExceptionFilter{Open: &open}); err == nil {
		fmt.Fprintf(w, "  open exceptions      %d (what the digest tells compliance)\n", len(exc))
	}
	fmt.Fprintf(w, "\nNext, in another terminal:\n")
	fmt.Fprintf(w, "  export CMORD_CONFIG=%s\n", dm.ConfigPath)
	fmt.Fprintf(w, "  cmord practices                      # every practice and its state\n")
	fmt.Fprintf(w, "  cmord practice show <CODE>           # one practice: history and the files behind it\n")
	fmt.Fprintf(w, "  cmord practice show <CODE> --format json   # the same for programs (fields: --help)\n")
	fmt.Fprintf(w, "  cmord exceptions                     # what needs a person\n")
	fmt.Fprintf(w, "  cmord digest --preview               # the next digest: what is new since the one in the mail folder (--lang en)\n")
	fmt.Fprintf(w, "  cmord export --format xlsx -o pratiche.xlsx\n")
	fmt.Fprintf(w, "  cmord archive ls && cmord archive verify\n")
	fmt.Fprintf(w, "  (with `go run ./cmd/cmord` in place of `cmord` if it is not installed)\n")
}

func mustWd() string {
	wd, _ := os.Getwd()
	return wd
}
