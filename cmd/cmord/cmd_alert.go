package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cmord/cmord/daemon"
	"github.com/cmord/cmord/flows"
)

func init() {
	register(&command{name: "alert", summary: "mail the urgent alert that the daemon is down (systemd's cmord-failed.service runs it)",
		usage: "--unit-failed",
		details: `--unit-failed: systemd gave up restarting cmord.service (OnFailure=). With the
daemon dead and the state directory's lock free, it records the exception
daemon_down (urgent, sysadmin) with what the run ledger knows of the last runs,
queues the urgent alert in the mail outbox and sends the outbox at once through
[mail]. A send that fails leaves the alert queued: the next daemon start sends it.
systemd's $MONITOR_SERVICE_RESULT, $MONITOR_EXIT_CODE and $MONITOR_EXIT_STATUS
are quoted in the message when set. When the archive itself cannot record it
(index.db damaged, the disk full or read-only: often why the daemon is down),
the alert is mailed directly, once, without the outbox. Exit 0 when the alert
was sent; 1 when it stays queued, could not be sent, nobody is configured to
receive it. When another process still holds the state directory's lock (a cmord
the watchdog killed that does not end, in uninterruptible sleep on a hung disk
or stopped, or one started by hand), nothing is recorded and the alert naming
its PID and its state in /proc is mailed directly, once.`,
		run: runAlert})
}

func runAlert(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	unitFailed := fs.Bool("unit-failed", false, "systemd gave up restarting the daemon: record daemon_down and mail the urgent alert")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	if !*unitFailed {
		return env.fail(usageError{"say what to alert about: --unit-failed"})
	}
	cfg, err := env.Config()
	if err != nil {
		return env.fail(err)
	}
	f := daemon.UnitFailure{Unit: os.Getenv("MONITOR_UNIT"), Result: os.Getenv("MONITOR_SERVICE_RESULT"),
		ExitCode: os.Getenv("MONITOR_EXIT_CODE"), ExitStatus: os.Getenv("MONITOR_EXIT_STATUS")}
	rep, err := daemon.AlertUnitFailed(ctx, cfg, env.Logger(), f, time.Now())
	if err != nil {
		return env.fail(err)
	}
	out := env.Stdout
	if h := rep.Held; h != nil {
		state := h.State
		if state == "" {
			state = "not shown by /proc"
		}
		fmt.Fprintf(out, "systemd says %s failed, but PID %d still holds the state directory %s (state %s): a stuck or orphaned cmord, or one started by hand; nothing recorded (the archive is that process's)\n", f.String(), h.PID, h.Dir, state)
		return directAlertOutcome(out, cfg.Mail.Host, rep)
	}
	if rep.ArchiveErr != "" {
		fmt.Fprintf(out, "the archive cannot record it: %s\n", rep.ArchiveErr)
		return directAlertOutcome(out, cfg.Mail.Host, rep)
	}
	fmt.Fprintf(out, "recorded daemon_down (exception %d): systemd stopped restarting %s\n", rep.ExceptionID, f.String())
	if rep.Streak.Exits > 0 {
		fmt.Fprintf(out, "run ledger: %s\n", daemon.StreakText(rep.Streak))
	} else {
		fmt.Fprintln(out, "run ledger: no unclean exit recorded (the daemon failed before recording its start)")
	}
	switch {
	case rep.NoRecipients:
		fmt.Fprintln(out, "no alert queued: [alerts] to and [digest] to are empty; nobody can be mailed (`cmord exceptions` shows it)")
		return exitFindings
	case len(rep.Queued) == 0:
		fmt.Fprintln(out, "no new alert queued: the open urgent exceptions were already mailed (the outbox repeats them after repeat_interval)")
		return exitOK
	}
	fmt.Fprintf(out, "alert queued in the mail outbox: %s\n", strings.Join(rep.Queued, ", "))
	switch {
	case rep.NoRelay:
		fmt.Fprintln(out, "not sent: [mail] host is not set")
		return exitFindings
	case len(rep.Sent) == len(rep.Queued):
		fmt.Fprintf(out, "sent through %s at %s\n", cfg.Mail.Host, time.Now().In(flows.Rome).Format("02/01/2006 15:04:05"))
		return exitOK
	}
	fmt.Fprintf(out, "not sent through %s: %s\nit stays in the outbox: the next daemon start sends it\n", cfg.Mail.Host, rep.SendErr)
	return exitFindings
}

// directAlertOutcome says what became of an alert mailed directly, without the
// archive's outbox (a process holds the state directory, or the archive cannot record
// it), and gives the command's exit code: 0 only when it was sent.
func directAlertOutcome(out io.Writer, host string, rep daemon.UnitFailedReport) int {
	switch {
	case rep.NoRecipients:
		fmt.Fprintln(out, "no alert mailed: [alerts] to and [digest] to are empty; nobody can be mailed")
	case rep.NoRelay:
		fmt.Fprintln(out, "no alert mailed: [mail] host is not set")
	case rep.DirectSent:
		fmt.Fprintf(out, "alert mailed directly (not queued: nothing repeats it) through %s at %s\n", host, time.Now().In(flows.Rome).Format("02/01/2006 15:04:05"))
		return exitOK
	default:
		fmt.Fprintf(out, "alert not sent through %s: %s\nnothing is queued: only the journal and systemctl status say cmord is down\n", host, rep.SendErr)
	}
	return exitFindings
}
