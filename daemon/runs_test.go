package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
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
	"github.com/cmord/cmord/daemon/mail/smtpsink"
	dto "github.com/prometheus/client_model/go"
)

// runsConfig writes a daemon configuration on dir/state whose mail goes to sink (nil:
// a relay nobody listens on) and whose alerts go to the sysadmin, and returns its path.
func runsConfig(t *testing.T, dir string, sink *smtpsink.Sink) string {
	t.Helper()
	host, port := "127.0.0.1", 1 // nothing listens on port 1: the relay is down
	if sink != nil {
		host, port = sink.Host(), sink.Port()
	}
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
`, filepath.Join(dir, "state"), host, port)
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunLedgerChild is not a test on its own: run by TestCrashLoopAlert as a child
// process (CMORD_RUNS_CHILD=config), it is the daemon of `cmord run`: it records its
// start in the run ledger, says "running" on stdout, and runs until it is killed; with
// CMORD_RUNS_PANIC set, a goroutine guarded as the daemon's are panics with that
// message once it runs.
func TestRunLedgerChild(t *testing.T) {
	path := os.Getenv("CMORD_RUNS_CHILD")
	if path == "" {
		t.Skip("helper process for TestCrashLoopAlert")
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	if err := d.StartRun(ctx, "child"); err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	defer d.RecordPanic()
	go func() {
		if err := d.Run(ctx); err != nil {
			d.RunFailed("fatal error: " + err.Error())
			os.Exit(1)
		}
	}()
	fmt.Println("running")
	if msg := os.Getenv("CMORD_RUNS_PANIC"); msg != "" {
		go func() {
			defer d.RecordPanic()
			panic(msg)
		}()
	}
	select {}
}

// startRunChild starts the daemon as a child process and waits until it runs.
func startRunChild(t *testing.T, cfgPath, panicMsg string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunLedgerChild$")
	cmd.Env = append(os.Environ(), "CMORD_RUNS_CHILD="+cfgPath, "CMORD_RUNS_PANIC="+panicMsg, "CMORD_TEST_CHILD=", "NOTIFY_SOCKET=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "running\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q %v\n%s", line, err, stderr.String())
	}
	return cmd
}

// TestCrashLoopAlert is the silent failure of a daemon that keeps dying: systemd
// restarts it, and each start forgets what the last one knew. Two real processes of
// the daemon die without a clean stop, one killed (kill -9, the OOM killer), one by a
// panic it records before dying; the next start raises daemon_crashed (urgent, a crash
// loop) naming both and the panic's message, mails the urgent alert at once (no
// group_wait: it may die again) to a real SMTP server, and /healthz and /metrics say
// it. Once the run has stayed up an hour (the test's clock) it resolves itself, and
// /healthz is ok again.
func TestCrashLoopAlert(t *testing.T) {
	sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	dir := t.TempDir()
	cfgPath := runsConfig(t, dir, sink)

	killed := startRunChild(t, cfgPath, "")
	if err := killed.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := killed.Wait(); !errors.As(err, &exit) {
		t.Fatalf("killed child: %v", err)
	}
	panicked := startRunChild(t, cfgPath, "runtime error: invalid memory address")
	if err := panicked.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("panicking child: %v, want exit status 2 (a Go panic)", err)
	}

	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now()
	d.SetClock(func() time.Time { return now })
	ctx := context.Background()
	if err := d.StartRun(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	es := openOfKind(t, d, "daemon_crashed")
	if len(es) != 1 {
		t.Fatalf("daemon_crashed open: %+v, want one", es)
	}
	e := es[0]
	for _, want := range []string{"2 unclean exits in a row since", "a crash loop", "version child", "panic: runtime error: invalid memory address"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q lacks %q", e.Message, want)
		}
	}
	if e.Severity != archive.SevUrgent || e.Owner != "sysadmin" || e.AlertedAt.IsZero() {
		t.Errorf("daemon_crashed: severity %s owner %s alerted %v, want urgent, sysadmin, alerted", e.Severity, e.Owner, e.AlertedAt)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("the SMTP server received %d messages, want the urgent alert", len(msgs))
	}
	subject, body := decodeMail(t, msgs[0].Data)
	if !strings.Contains(subject, "[CMOR URGENTE]") || !strings.Contains(subject, "cmord terminato senza arresto regolare") {
		t.Errorf("alert subject %q", subject)
	}
	for _, want := range []string{"2 unclean exits in a row", "panic: runtime error: invalid memory address"} {
		if !strings.Contains(body, want) {
			t.Errorf("alert body lacks %q:\n%s", want, body)
		}
	}
	t.Logf("alert: %s\n%s", subject, body)
	if msgs[0].To[0] != "sysadmin@example.it" {
		t.Errorf("alert to %v", msgs[0].To)
	}
	if err := d.health(); err == nil || !strings.Contains(err.Error(), "a crash loop") {
		t.Errorf("/healthz = %v, want the crash loop", err)
	}
	if v := gaugeValue(t, d); v != 2 {
		t.Errorf("cmord_unclean_exits = %v, want 2", v)
	}

	now = now.Add(runStayUp - time.Minute)
	d.checkStayedUp(ctx)
	if len(openOfKind(t, d, "daemon_crashed")) != 1 || d.health() == nil {
		t.Fatal("resolved before the run stayed up an hour")
	}
	now = now.Add(time.Minute)
	d.checkStayedUp(ctx)
	if es := openOfKind(t, d, "daemon_crashed"); len(es) != 0 {
		t.Errorf("still open after the run stayed up an hour: %+v", es)
	}
	if err := d.health(); err != nil {
		t.Errorf("/healthz after the run stayed up: %v", err)
	}
	if v := gaugeValue(t, d); v != 0 {
		t.Errorf("cmord_unclean_exits = %v after the run stayed up, want 0", v)
	}
	if len(sink.Messages()) != 1 {
		t.Errorf("%d messages: the alert was sent more than once", len(sink.Messages()))
	}
}

// openOfKind returns the open exceptions of kind.
func openOfKind(t *testing.T, d *Daemon, kind string) []archive.Exception {
	t.Helper()
	yes := true
	es, err := d.Store.Exceptions(context.Background(), archive.ExceptionFilter{Open: &yes, Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// decodeMail returns a message's subject and its text parts, decoded.
func decodeMail(t *testing.T, data []byte) (subject, text string) {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	if subject, err = dec.DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var walk func(h map[string][]string, r io.Reader)
	walk = func(h map[string][]string, r io.Reader) {
		get := func(k string) string {
			if v := h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		mt, params, _ := mime.ParseMediaType(get("Content-Type"))
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(r, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err != nil {
					return
				}
				walk(p.Header, p)
			}
		}
		switch strings.ToLower(get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			r = quotedprintable.NewReader(r)
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, r)
		}
		if mt == "text/plain" {
			body, _ := io.ReadAll(r)
			b.Write(body)
		}
	}
	walk(m.Header, m.Body)
	return subject, b.String()
}

// gaugeValue reads cmord_unclean_exits.
func gaugeValue(t *testing.T, d *Daemon) float64 {
	t.Helper()
	var m dto.Metric
	if err := d.Metrics.UncleanExits.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestRunLedgerRule drives in-process daemons through histories of runs (abandoned:
// closed without a clean stop, as a killed process leaves it) and checks what the
// next start raises, whether it mails the urgent alert at once, what /healthz says,
// and what a clean stop resolves.
func TestRunLedgerRule(t *testing.T) {
	tests := []struct {
		name    string
		history []string // oldest first: clean, abandon, fatal (RunFailed, then abandoned), up (stayed up an hour, then abandoned)
		exits   int
		sev     string // "" none
		want    string // in the message
	}{
		{"first start ever", nil, 0, "", ""},
		{"after a clean stop", []string{"clean"}, 0, "", ""},
		{"one unclean exit: high, for the digest", []string{"clean", "abandon"}, 1, archive.SevHigh, "an unclean exit"},
		{"a fatal error recorded", []string{"clean", "fatal"}, 1, archive.SevHigh, "fatal error: listen 127.0.0.1:9464: address already in use"},
		{"two in a row: a crash loop", []string{"clean", "abandon", "abandon"}, 2, archive.SevUrgent, "2 unclean exits in a row since"},
		{"died after an hour up, then again at once", []string{"up", "abandon"}, 2, archive.SevUrgent, "a crash loop"},
		{"died after an hour up: one", []string{"abandon", "up"}, 1, archive.SevHigh, "up over an hour"},
		{"a clean stop ends the streak", []string{"abandon", "abandon", "clean"}, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			cfgPath := runsConfig(t, t.TempDir(), sink)
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
			start := func() *Daemon {
				t.Helper()
				d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
				if err != nil {
					t.Fatal(err)
				}
				d.SetClock(func() time.Time { return now })
				if err := d.StartRun(ctx, "test"); err != nil {
					t.Fatal(err)
				}
				return d
			}
			for _, h := range tt.history {
				d := start()
				switch h {
				case "clean":
					if err := d.StopRun(ctx); err != nil {
						t.Fatal(err)
					}
				case "fatal":
					d.RunFailed("fatal error: listen 127.0.0.1:9464: address already in use")
				case "up":
					now = now.Add(runStayUp)
					d.checkStayedUp(ctx)
				}
				d.Close()
				now = now.Add(10 * time.Second)
			}
			sent := len(sink.Messages())
			d := start()
			defer d.Close()
			es := openOfKind(t, d, "daemon_crashed")
			if tt.sev == "" {
				if len(es) != 0 {
					t.Fatalf("daemon_crashed raised: %+v", es)
				}
			} else {
				if len(es) != 1 || es[0].Severity != tt.sev || !strings.Contains(es[0].Message, tt.want) {
					t.Fatalf("daemon_crashed = %+v, want one, %s, message with %q", es, tt.sev, tt.want)
				}
			}
			if v := gaugeValue(t, d); v != float64(tt.exits) {
				t.Errorf("cmord_unclean_exits = %v, want %d", v, tt.exits)
			}
			loop := tt.sev == archive.SevUrgent
			if mailed := len(sink.Messages()) - sent; (mailed == 1) != loop || mailed > 1 {
				t.Errorf("%d alert mails at this start, want %v", mailed, loop)
			}
			if err := d.health(); (err != nil) != loop {
				t.Errorf("/healthz = %v, want an error only for a crash loop", err)
			}
			// A clean stop resolves it (a person stopped or restarted the service), and
			// the next start raises nothing.
			if err := d.StopRun(ctx); err != nil {
				t.Fatal(err)
			}
			if es := openOfKind(t, d, "daemon_crashed"); len(es) != 0 {
				t.Errorf("open after a clean stop: %+v", es)
			}
			d.Close()
			d2 := start()
			defer d2.Close()
			if es := openOfKind(t, d2, "daemon_crashed"); len(es) != 0 || gaugeValue(t, d2) != 0 {
				t.Errorf("raised again after a clean stop: %+v", es)
			}
		})
	}
}
