package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
)

// alertConfig writes a configuration whose mail goes to sink and whose alerts go to
// the sysadmin, on a state directory of its own.
func alertConfig(t *testing.T, sink *smtpsink.Sink) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "cmord.toml")
	toml := fmt.Sprintf(`state_dir = %q
[company]
piva = "00488410010"
name = "Test"
roles = ["uscente"]
sectors = ["E"]
piva_gestore = "01234567897"
[mail]
host = %q
port = %d
tls = "none"
from = "cmord <cmord@example.it>"
timeout = "5s"
[alerts]
to = ["sysadmin@example.it"]
state_min_free = 0
`, filepath.Join(dir, "state"), sink.Host(), sink.Port())
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// killedRun starts `cmord run` as its own process and kills it with SIGKILL once it
// runs: what the OOM killer or kill -9 leaves.
func killedRun(t *testing.T, cfgPath string) {
	t.Helper()
	cmd, out := startCmord(t, "run", "--config", cfgPath)
	waitFor(t, out, "cmord running")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// alertMail returns the subject and raw text of the one alert mail the sink holds
// whose subject has what.
func alertMail(t *testing.T, sink *smtpsink.Sink, what string) (string, string) {
	t.Helper()
	var subjects []string
	var found []string
	for _, msg := range sink.Messages() {
		m, err := netmail.ReadMessage(bytes.NewReader(msg.Data))
		if err != nil {
			t.Fatal(err)
		}
		subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, subject)
		if strings.Contains(subject, what) {
			found = append(found, subject, string(msg.Data))
		}
	}
	if len(found) != 2 {
		t.Fatalf("the SMTP server holds %q, want one alert about %q", subjects, what)
	}
	return found[0], found[1]
}

// TestAlertUnitFailed is `cmord alert --unit-failed`, as systemd's cmord-failed.service
// runs it when it stopped restarting cmord: the real `cmord run` killed twice, then
// the alert against a real SMTP server (go-smtp): sent at once; with the relay down,
// kept in the outbox and sent by the next daemon start; and refused while a daemon
// holds the state directory (then it is not down).
func TestAlertUnitFailed(t *testing.T) {
	tests := []struct {
		name      string
		relayDown bool
		code      int
		want      []string
	}{
		{"relay up: sent at once", false, exitOK, []string{"recorded daemon_down (exception", "systemd stopped restarting cmord.service (result start-limit-hit, exited 1)",
			"run ledger: 2 unclean exits in a row since", "a crash loop", "alert queued in the mail outbox: alert:sysadmin:new:", "sent through 127.0.0.1"}},
		{"relay down: queued, sent by the next start", true, exitFindings, []string{"recorded daemon_down", "not sent through 127.0.0.1",
			"it stays in the outbox: the next daemon start sends it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			cfgPath := alertConfig(t, sink)
			killedRun(t, cfgPath)
			killedRun(t, cfgPath)
			// The second start found one unclean exit (high: the digest's), the alert
			// below is the first mail.
			if n := len(sink.Messages()); n != 0 {
				t.Fatalf("%d mails before the alert", n)
			}
			t.Setenv("MONITOR_SERVICE_RESULT", "start-limit-hit")
			t.Setenv("MONITOR_EXIT_CODE", "exited")
			t.Setenv("MONITOR_EXIT_STATUS", "1")
			if tt.relayDown {
				if err := sink.Stop(); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errOut := runCLI(t, "alert", "--unit-failed", "--config", cfgPath)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			t.Logf("cmord alert --unit-failed:\n%s", out)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tt.relayDown {
				if err := sink.Resume(); err != nil {
					t.Fatal(err)
				}
				if n := len(sink.Messages()); n != 0 {
					t.Fatalf("%d mails with the relay down", n)
				}
				nextStart(t, cfgPath)
				// That start also found the two unclean exits before it: a crash loop,
				// alerted in a mail of its own (daemon_down, resolved, is not in it).
				if subject, _ := alertMail(t, sink, "cmord terminato senza arresto regolare"); strings.Contains(subject, "fermo") {
					t.Errorf("the start's alert still lists daemon_down: %q", subject)
				}
			} else if n := len(sink.Messages()); n != 1 {
				t.Errorf("%d mails, want the alert", n)
			}
			subject, raw := alertMail(t, sink, "cmord fermo: systemd non lo riavvia più")
			if !strings.HasPrefix(subject, "[CMOR URGENTE]") {
				t.Errorf("alert subject %q", subject)
			}
			if !strings.Contains(raw, "X-Cmord-Alert: alert:sysadmin:new:") {
				t.Errorf("not an urgent alert:\n%s", raw)
			}
		})
	}
}

// nextStart is the daemon's next start, in process, its mail clock past the outbox's
// backoff of the failed send: it sends the alert left in the outbox, and resolves
// daemon_down (the daemon runs again).
func nextStart(t *testing.T, cfgPath string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pending, err := d.Store.Outbox().List(ctx, archive.OutboxQueued, 0)
	if err != nil || len(pending) != 1 || pending[0].Kind != "alert" || pending[0].Attempts != 1 {
		t.Fatalf("outbox before the next start: %+v, %v; want the alert, queued after one attempt", pending, err)
	}
	d.Sender().(*mail.Sender).Now = func() time.Time { return time.Now().Add(time.Hour) }
	if err := d.StartRun(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	yes := true
	if es, err := d.Store.Exceptions(ctx, archive.ExceptionFilter{Open: &yes, Kind: "daemon_down"}); err != nil || len(es) != 0 {
		t.Errorf("daemon_down still open after the daemon started: %+v, %v", es, err)
	}
	if err := d.StopRun(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAlertUnitFailedLockHeld: systemd says cmord.service failed, yet a process still
// holds the state directory's lock. Before, the command said "a daemon holds it, so it
// is not down" and mailed nobody; but that is a daemon the watchdog killed and that
// does not end (uninterruptible sleep on a hung disk survives SIGKILL; here a real
// `cmord run` stopped with SIGSTOP, which /proc shows as T), whose lock fails every
// restart until systemd gives up, or a cmord started by hand. Now each restart fails
// naming the holder's PID and state, and the alert naming them is mailed, with
// nothing recorded in the archive (that process's). Once the holder goes on and stops
// with SIGTERM, its stop is clean in the run ledger.
func TestAlertUnitFailedLockHeld(t *testing.T) {
	tests := []struct {
		name      string
		stop      bool   // SIGSTOP the holder: a process that cannot run
		wantState string // in the mail and the failed start's message
		wantStuck bool
	}{
		{"holder stopped: the watchdog's kill did not end it", true, "T (stopped", true},
		{"holder runs: started by hand outside systemd", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			cfgPath := alertConfig(t, sink)
			cmd, out := startCmord(t, "run", "--config", cfgPath)
			waitFor(t, out, "cmord running")
			pid := cmd.Process.Pid
			if tt.stop {
				if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				waitProcState(t, pid, 'T')
			}
			// systemd's restart: a second `cmord run` fails on the lock, naming the holder.
			second, secondOut := startCmord(t, "run", "--config", cfgPath)
			err = second.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitFindings {
				t.Fatalf("second start: %v, want exit 1\n%s", err, secondOut.String())
			}
			msg := secondOut.String()
			if !strings.Contains(msg, fmt.Sprintf("in use by another cmord (PID %d, state %s", pid, tt.wantState)) ||
				strings.Contains(msg, "that process is not running") != tt.wantStuck {
				t.Errorf("second start's message does not name the holder and its state:\n%s", msg)
			}
			t.Setenv("MONITOR_SERVICE_RESULT", "start-limit-hit")
			t.Setenv("MONITOR_EXIT_CODE", "exited")
			t.Setenv("MONITOR_EXIT_STATUS", "1")
			code, stdout, errOut := runCLI(t, "alert", "--unit-failed", "--config", cfgPath)
			if code != exitOK || !strings.Contains(stdout, fmt.Sprintf("but PID %d still holds the state directory", pid)) ||
				!strings.Contains(stdout, "alert mailed directly") {
				t.Fatalf("exit %d, want 0 and the alert mailed naming PID %d\nstdout: %s\nstderr: %s", code, pid, stdout, errOut)
			}
			subject, raw := alertMail(t, sink, fmt.Sprintf("systemd lo dà fallito ma il processo PID %d tiene ancora il suo archivio", pid))
			if !strings.HasPrefix(subject, "[CMOR URGENTE]") {
				t.Errorf("alert subject %q", subject)
			}
			body := decodedBody(t, raw)
			for _, w := range []string{"result start-limit-hit, exited 1", "stato del processo in /proc: " + tt.wantState, fmt.Sprintf("cat /proc/%d/stack", pid)} {
				if !strings.Contains(body, w) {
					t.Errorf("alert lacks %q:\n%s", w, body)
				}
			}
			if tt.stop {
				if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("cmord run after SIGTERM: %v\n%s", err, out.String())
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			st, err := archive.Open(cfg.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			es, err := st.Exceptions(context.Background(), archive.ExceptionFilter{Kind: "daemon_down"})
			if err != nil || len(es) != 0 {
				t.Errorf("daemon_down recorded in the holder's archive: %+v, %v", es, err)
			}
			runs, err := st.Runs(context.Background(), 0, 0)
			if err != nil || len(runs) != 1 || !runs[0].Clean() || runs[0].PID != pid {
				t.Errorf("run ledger after SIGTERM: %+v, %v; want one clean run of PID %d", runs, err, pid)
			}
		})
	}
}

// waitProcState waits until /proc shows pid in state st (a signal is delivered
// asynchronously).
func waitProcState(t *testing.T, pid int, st byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s := daemon.ProcState(pid); s != "" && s[0] == st {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("PID %d never in state %c: %q", pid, st, daemon.ProcState(pid))
}

// decodedBody returns the text part of a raw mail, decoded.
func decodedBody(t *testing.T, raw string) string {
	t.Helper()
	m, err := netmail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAlertUnitFailedArchiveUnusable: the daemon is down because its archive is
// unusable (here index.db overwritten; in the field a damaged file, a disk full or
// remounted read-only), and `cmord alert --unit-failed` could neither record
// daemon_down nor queue its alert there: it exited 2 and nobody was mailed. Now it
// mails the alert directly, once, naming the archive's error, and says so.
func TestAlertUnitFailedArchiveUnusable(t *testing.T) {
	sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	cfgPath := alertConfig(t, sink)
	killedRun(t, cfgPath)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.db-wal", "index.db-shm"} {
		os.Remove(filepath.Join(cfg.StateDir, name))
	}
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "index.db"), bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MONITOR_SERVICE_RESULT", "exit-code")
	code, out, errOut := runCLI(t, "alert", "--unit-failed", "--config", cfgPath)
	if code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, w := range []string{"the archive cannot record it:", "alert mailed directly (not queued: nothing repeats it) through 127.0.0.1"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	subject, raw := alertMail(t, sink, "cmord fermo e il suo archivio è inutilizzabile")
	if !strings.HasPrefix(subject, "[CMOR URGENTE]") {
		t.Errorf("alert subject %q", subject)
	}
	for _, w := range []string{"X-Cmord-Alert: alert:sysadmin:direct:", "result exit-code", "non ha potuto registrarlo", "systemctl reset-failed cmord"} {
		if !strings.Contains(raw, w) {
			t.Errorf("alert lacks %q:\n%s", w, raw)
		}
	}
}
