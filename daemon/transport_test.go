package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/entrante"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
	"github.com/cmord/cmord/daemon/sftpx/sshdtest"
	"github.com/cmord/cmord/flows"
)

// withSink points the world's mail at a real SMTP sink (go-smtp) and returns it.
func (w *excWorld) withSink() *smtpsink.Sink {
	w.t.Helper()
	sink, err := smtpsink.Start(w.t.TempDir(), smtpsink.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { sink.Close() })
	w.tune(func(c *config.Config) {
		c.Mail.Host, c.Mail.Port, c.Mail.TLS = sink.Host(), sink.Port(), "none"
	})
	w.d.Sender().(*mail.Sender).Now = func() time.Time { return w.now }
	return sink
}

// runAlerts runs the every-minute alerts job (RunAlerts, then the outbox flush).
func (w *excWorld) runAlerts() {
	w.t.Helper()
	// Exceptions are stamped with the wall clock: the test clock must not be behind it,
	// and it moves past group_wait (1m) so that a new alert is due.
	if now := time.Now(); w.now.Before(now) {
		w.now = now
	}
	w.later(2 * time.Minute)
	if err := extraJobs[JobAlerts](w.d, context.Background(), w.now); err != nil {
		w.t.Fatalf("alerts job: %v", err)
	}
}

// alertMails returns the urgent alert mails the sink received whose body mentions what.
func alertMails(sink *smtpsink.Sink, what string) []smtpsink.Message {
	var out []smtpsink.Message
	for _, m := range sink.Messages() {
		if strings.Contains(string(m.Data), "X-Cmord-Alert:") && strings.Contains(string(m.Data), what) {
			out = append(out, m)
		}
	}
	return out
}

// TestAlertFollowsOccurrence: a host-key change is alerted, cleared (the key trusted
// again), then happens again: the reopened exception is a new occurrence and a second
// alert mail goes out at once, not after the 4 h repeat interval of the first one.
// While one occurrence stays open, it is not mailed again before repeat_interval.
func TestAlertFollowsOccurrence(t *testing.T) {
	w := newExcWorld(t)
	sink := w.withSink()
	w.pollUntilReachable()

	change := func() {
		w.restartSFTP(false) // a new host key, not in known_hosts
		time.Sleep(25 * time.Millisecond)
		if err := w.d.PollSII(context.Background()); err == nil {
			t.Fatal("connected to a server whose host key changed")
		}
	}
	change()
	w.runAlerts()
	if n := len(alertMails(sink, "hostkey")); n != 1 {
		t.Fatalf("first occurrence: %d alert mails, want 1", n)
	}
	// The same occurrence, a minute later: held (repeat_interval is 4 h).
	w.later(time.Minute)
	_ = w.d.PollSII(context.Background())
	w.runAlerts()
	if n := len(alertMails(sink, "hostkey")); n != 1 {
		t.Fatalf("same occurrence a minute later: %d alert mails, want still 1", n)
	}

	w.trustSFTP()
	w.pollUntilReachable()
	es := w.all("hostkey_mismatch")
	if len(es) != 1 || es[0].Open() {
		t.Fatalf("after the key was trusted: %+v, want one resolved", es)
	}

	w.later(10 * time.Minute) // well inside the 4 h of the first alert
	change()
	es = w.all("hostkey_mismatch")
	if len(es) != 1 || !es[0].Open() || !es[0].AlertedAt.IsZero() || !es[0].OpenedAt.After(es[0].FirstSeen) {
		t.Fatalf("reopened: %+v, want one open, not yet alerted, opened after it was first seen", es)
	}
	w.runAlerts()
	if n := len(alertMails(sink, "hostkey")); n != 2 {
		t.Fatalf("second occurrence: %d alert mails, want 2", n)
	}
	// Its repeats are its own: nothing more before repeat_interval from its alert.
	w.later(time.Hour)
	w.runAlerts()
	if n := len(alertMails(sink, "hostkey")); n != 2 {
		t.Errorf("an hour into the second occurrence: %d alert mails, want 2", n)
	}
	w.later(4 * time.Hour)
	_ = w.d.PollSII(context.Background())
	w.runAlerts()
	if n := len(alertMails(sink, "hostkey")); n != 3 {
		t.Errorf("past repeat_interval of the second occurrence: %d alert mails, want 3 (a reminder)", n)
	}
}

// TestBackoffReleasedOnContact: during an outage the queued files back off (doubling
// per file, up to an hour); the first successful contact with the endpoint makes them
// all due, so they go in the next delivery cycle instead of each waiting out its own
// backoff. Both kinds of contact count: an SII poll, and a new file's upload.
func TestBackoffReleasedOnContact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		contact func(w *excWorld)
	}{
		{"poll", func(w *excWorld) { w.pollUntilReachable() }},
		{"new file", func(w *excWorld) { w.queueFlow("REQ_NEW.csv") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newExcWorld(t)
			w.pollUntilReachable()
			w.srv.Close()
			names := []string{"REQ_A.csv", "REQ_B.csv", "REQ_C.csv"}
			for _, n := range names {
				w.queueFlow(n)
			}
			// Failed cycles a minute apart, until every file waits out a backoff of its own.
			for i := 0; ; i++ {
				time.Sleep(25 * time.Millisecond) // past the client's own dial backoff (20ms)
				w.deliver()
				due, err := w.d.Store.DueDeliveries(context.Background(), w.now.Add(time.Minute), "")
				if err != nil {
					t.Fatal(err)
				}
				if len(due) == 0 {
					break
				}
				if i > 30 {
					t.Fatalf("files still due every minute after %d failed cycles: %+v", i, due)
				}
				w.later(time.Minute)
			}
			w.restartSFTP(true)
			time.Sleep(25 * time.Millisecond)
			tc.contact(w)
			w.deliver() // the same instant: no file's own backoff has passed
			pub := w.published()
			for _, n := range names {
				if _, ok := pub[n]; !ok {
					t.Errorf("%s not published in the first delivery cycle after the contact: have %v", n, keys(pub))
				}
			}
		})
	}
}

// sshdDialTimeout leaves a loaded machine time to fork the SFTP server of a session.
const sshdDialTimeout = 3 * time.Second

// sshdWorld is an excWorld whose SII is a real OpenSSH sshd running the external
// sftp-server (so that it can be frozen while sshd answers), on the wall clock.
func sshdWorld(t *testing.T, opTimeout, stalledAfter time.Duration) (*excWorld, *sshdtest.Server) {
	t.Helper()
	sshd := sshdtest.Start(t, sshdtest.Options{SFTPServer: "/usr/lib/openssh/sftp-server"})
	if _, err := os.Stat("/usr/lib/openssh/sftp-server"); err != nil {
		t.Skip("no /usr/lib/openssh/sftp-server:", err)
	}
	for _, d := range []string{"in", "out"} {
		if err := os.MkdirAll(filepath.Join(sshd.Root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w := newExcWorld(t)
	w.d.SetClock(time.Now)
	w.tune(func(c *config.Config) {
		s := &c.SFTP[0]
		s.Host, s.Port, s.User, s.KeyFile, s.KnownHosts = sshd.Host, sshd.Port, sshd.User, sshd.ClientKeyFile, sshd.KnownHostsFile
		s.InboundDir, s.OutboundDir = filepath.Join(sshd.Root, "out"), filepath.Join(sshd.Root, "in")
		s.OpTimeout, s.StalledAlertAfter = opTimeout, stalledAfter
		s.DialTimeout, s.IOTimeout, s.Keepalive = sshdDialTimeout, time.Minute, 100*time.Millisecond
		c.Alerts.GroupWait = 500 * time.Millisecond
	})
	return w, sshd
}

// TestSFTPStallAlertAndRecovery: the SII's SFTP server hangs (every sftp-server
// process SIGSTOPped, each new session's too) while sshd keeps the SSH connection and
// its keepalives alive. The daemon's cycles (poll, deliver, alerts) keep ending; an
// urgent sftp_stalled exception is raised and mailed within op_timeout +
// stalled_alert_after (+ the cycles' own bounded time); the queued flow is not
// published and its upload failure is muted behind the stall. SIGCONT: the same daemon,
// not restarted, publishes the flow and the exception resolves by itself.
func TestSFTPStallAlertAndRecovery(t *testing.T) {
	const opTimeout, stalledAfter = 500 * time.Millisecond, 2 * time.Second
	w, sshd := sshdWorld(t, opTimeout, stalledAfter)
	sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	w.tune(func(c *config.Config) { c.Mail.Host, c.Mail.Port, c.Mail.TLS = sink.Host(), sink.Port(), "none" })
	ctx := context.Background()
	w.pollUntilReachable()
	w.queueFlow("REQ_STALL.csv")

	// One daemon cycle: each step must end by itself (bounded by the configured times).
	cycle := func() time.Duration {
		start := time.Now()
		_ = w.d.PollSII(ctx)
		if _, err := w.d.DeliverDue(ctx); err != nil {
			t.Fatalf("DeliverDue: %v", err)
		}
		if err := extraJobs[JobAlerts](w.d, ctx, time.Now()); err != nil {
			t.Fatalf("alerts: %v", err)
		}
		return time.Since(start)
	}
	// A cycle against a frozen server: a poll (the operation abandoned at op_timeout,
	// the redial's SFTP start at dial_timeout) and a delivery (the breaker, or the same).
	cycleBound := 2*(opTimeout+sshdDialTimeout) + 2*time.Second
	bound := stalledAfter + 3*cycleBound

	sshd.FreezeSFTPServers()
	defer sshd.ThawSFTPServers()
	frozenAt := time.Now()
	var stalled archive.Exception
	for {
		if took := cycle(); took > cycleBound {
			t.Errorf("a cycle against the frozen server took %s, want at most %s", took, cycleBound)
		}
		es := w.all("sftp_stalled")
		if len(es) == 1 && !es[0].AlertedAt.IsZero() {
			stalled = es[0]
			break
		}
		if time.Since(frozenAt) > bound {
			t.Fatalf("no alerted sftp_stalled exception %s after the freeze (bound %s): %+v", time.Since(frozenAt), bound, es)
		}
	}
	t.Logf("raised and alerted %s after the freeze: %s", time.Since(frozenAt).Round(time.Millisecond), stalled.Message)
	if stalled.Severity != archive.SevUrgent || stalled.Owner != "sysadmin" || stalled.Subject != "sii" ||
		!strings.Contains(stalled.Message, "its SFTP server has answered no operation since") || !strings.Contains(stalled.Action, "op_timeout") {
		t.Errorf("exception: %+v", stalled)
	}
	if len(w.all("sii_unreachable")) != 0 {
		t.Errorf("a hung SFTP server reported as unreachable too: %+v", w.all("sii_unreachable"))
	}
	if n := len(alertMails(sink, "X-Cmord-Alert")); n != 1 {
		t.Errorf("%d alert mails, want 1", n)
	}
	if _, ok := readDirNames(t, filepath.Join(sshd.Root, "in"))["REQ_STALL.csv"]; ok {
		t.Fatal("published while the server was frozen")
	}

	sshd.ThawSFTPServers()
	thawedAt := time.Now()
	for {
		cycle()
		es := w.all("sftp_stalled")
		_, published := readDirNames(t, filepath.Join(sshd.Root, "in"))["REQ_STALL.csv"]
		if len(es) == 1 && !es[0].Open() && published {
			t.Logf("recovered %s after the thaw: %s", time.Since(thawedAt).Round(time.Millisecond), es[0].Resolution)
			break
		}
		if time.Since(thawedAt) > 3*cycleBound {
			t.Fatalf("not recovered %s after the thaw: exceptions %+v, published %v", time.Since(thawedAt), es, published)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readDirNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// TestWatchdogNotPettedWhileStuck: under systemd's watchdog (NOTIFY_SOCKET,
// WATCHDOG_USEC) the daemon pings while healthy; when a delivery wedges inside an
// upload on something the SFTP watchdog cannot end (here the local source, a FIFO
// that stops giving bytes), it stops pinging once the operation is past twice
// op_timeout, so systemd would restart it; pings resume when the operation ends.
func TestWatchdogNotPettedWhileStuck(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000") // pings every 50 ms
	t.Setenv("WATCHDOG_PID", "")
	var pings atomic.Int64
	go func() {
		buf := make([]byte, 256)
		for {
			n, _, err := ln.ReadFromUnix(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:n]), "WATCHDOG=1") {
				pings.Add(1)
			}
		}
	}()
	waitPings := func(what string, more int64) {
		t.Helper()
		from := pings.Load()
		deadline := time.Now().Add(5 * time.Second)
		for pings.Load() < from+more {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d pings in 5s, want %d", what, pings.Load()-from, more)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	const opTimeout = 300 * time.Millisecond
	w := newExcWorld(t)
	w.tune(func(c *config.Config) { c.SFTP[0].OpTimeout = opTimeout })
	w.pollUntilReachable()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := w.d.watchdog(ctx)
	defer stop()
	waitPings("healthy", 3)

	// The flow's blob becomes a FIFO that gives 5 of its 10 bytes, then nothing.
	f := w.queueFlow("REQ_WEDGE.csv")
	blob, compressed, err := w.d.Store.Blobs.StoredFile(f.Hash)
	if err != nil || compressed { // a FIFO in place of a plain blob is read as it is
		t.Fatalf("blob %s: compressed %v, %v", blob, compressed, err)
	}
	if err := os.Remove(blob); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(blob, 0o600); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	go func() {
		fw, err := os.OpenFile(blob, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		fw.Write([]byte("A;B\r\n"))
		<-release
		fw.Close()
	}()
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		w.d.DeliverDue(context.Background())
	}()
	deadline := time.Now().Add(2*opTimeout + 5*time.Second)
	for w.d.stuck() == nil {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the wedged upload never counted as stuck")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("stuck: %v", w.d.stuck())
	time.Sleep(100 * time.Millisecond) // a ping in flight when it became stuck
	before := pings.Load()
	time.Sleep(500 * time.Millisecond) // ten ping intervals
	if n := pings.Load() - before; n != 0 {
		t.Errorf("%d watchdog pings while stuck, want none", n)
	}
	close(release)
	<-delivered
	waitPings("after the operation ended", 2)
}

// TestPracticeSentOnlyOnConfirmedDelivery: while the SII is down, a practice whose REQ
// file is built is BUILT, not SENT; its history says the file waits for delivery and it
// carries the delivery's exception. Once the file is uploaded, size-checked and renamed
// it is SENT, with the publication in its history, and the exception closes.
func TestPracticeSentOnlyOnConfirmedDelivery(t *testing.T) {
	w := &excWorld{newTestWorld(t, e2eNow, "")}
	w.tune(func(c *config.Config) {
		c.SFTP[0].BackoffMin, c.SFTP[0].BackoffMax = 10*time.Millisecond, 20*time.Millisecond
	})
	w.srv.Close() // the SII is down
	w.drop("morosi", "morosi_20251015.csv", e2eExtract())
	_ = w.d.RunOnce(context.Background()) // the poll fails; build and intake go on
	deliverOnWallClock(t, w.d, func() time.Time { return w.now })

	ctx := context.Background()
	a := w.practice("E250000001")
	if a.State != flows.StateBuilt {
		t.Fatalf("A is %s while its REQ file is undelivered, want BUILT", a.State)
	}
	if got := digest.StateName(a.State, "it"); got != "flusso generato, in attesa di invio al SII (BUILT)" {
		t.Errorf("Italian label: %q", got)
	}
	hist, err := w.d.Store.PracticeHistory(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	last := hist[len(hist)-1]
	if last.To != flows.StateBuilt || !strings.Contains(last.Note, "SENT once") || !strings.Contains(last.Note, "is delivered") {
		t.Errorf("history while undelivered: %+v", last)
	}
	open := true
	es, err := w.d.Store.Exceptions(ctx, archive.ExceptionFilter{PracticeID: a.ID, Open: &open})
	if err != nil {
		t.Fatal(err)
	}
	var waiting *archive.Exception
	for i := range es {
		if es[i].Kind == "upload_failed" {
			waiting = &es[i]
		}
	}
	if waiting == nil || !strings.Contains(waiting.Message, "2 practice(s) wait on this file") {
		t.Fatalf("the practice does not carry its file's delivery failure: %+v", es)
	}

	w.restartSFTP(true)
	w.pollUntilReachable() // the contact releases the file's backoff
	deliverOnWallClock(t, w.d, func() time.Time { return w.now })
	a = w.practice("E250000001")
	if a.State != flows.StateSent {
		dls, _ := w.d.Store.ListDeliveries(ctx, archive.DeliveryFilter{})
		t.Fatalf("A is %s after its file was delivered, want SENT; deliveries %+v", a.State, dls)
	}
	hist, _ = w.d.Store.PracticeHistory(ctx, a.ID)
	last = hist[len(hist)-1]
	if last.From != flows.StateBuilt || last.To != flows.StateSent || !strings.Contains(last.Note, "confirmed on sftp:sii") ||
		!strings.Contains(last.Note, "checked, renamed") {
		t.Errorf("history after delivery: %+v", last)
	}
	if e, err := w.d.Store.GetException(ctx, waiting.ID); err != nil || e.Open() {
		t.Errorf("the delivery's exception after delivery: %+v %v", e, err)
	}
	if len(w.published()) == 0 {
		t.Error("nothing on the SII")
	}
}

// TestEntranteSuspensionRequestedOnlyOnDelivery: a suspension request built while the
// SII refuses our upload leaves the practice where it is (TO_CHARGE: the SII has not
// been asked), with the history saying so and the delivery's exception on the
// practice; once the file is delivered the practice is SUSP_REQUESTED.
func TestEntranteSuspensionRequestedOnlyOnDelivery(t *testing.T) {
	w := noticed(t, `["entrante"]`)
	in := filepath.Join(w.srv.Root, "in")
	// The SII's inbound directory is not a directory: every upload is refused.
	if err := os.Rename(in, in+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w.now = time.Date(2025, 1, 30, 9, 0, 0, 0, flows.Rome)
	w.drop("sospensioni", sospensioniHeader,
		map[string]string{"CP_GESTORE": cpgA, "COD_POD": podA, "MOTIVO_SOSPENSIONE": "SO-02", "DATA_RICHIESTA_SOSPENSIONE_FORNITURA": "27/01/2025",
			"CMOR_INCASSATO": "N"})
	if err := w.d.RunOnce(context.Background()); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	a := w.practice(cpgA)
	if a.State != flows.EntranteToCharge {
		t.Fatalf("A is %s while its SUSP_REQ is undelivered, want still TO_CHARGE\n%s", a.State, w.history(a))
	}
	if h := w.history(a); !strings.Contains(h, "SUSP_REQUESTED once") {
		t.Errorf("history does not say the request waits for delivery:\n%s", h)
	}
	open := true
	es, _ := w.d.Store.Exceptions(context.Background(), archive.ExceptionFilter{PracticeID: a.ID, Open: &open, Kind: "upload_failed"})
	if len(es) != 1 {
		t.Errorf("the practice carries %d upload_failed exceptions, want its file's one", len(es))
	}

	if err := os.Remove(in); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(in+".away", in); err != nil {
		t.Fatal(err)
	}
	deliverOnWallClock(t, w.d, func() time.Time { return w.now })
	if a = w.practice(cpgA); a.State != flows.EntranteSuspRequested {
		t.Fatalf("A is %s after its SUSP_REQ was delivered, want SUSP_REQUESTED\n%s", a.State, w.history(a))
	}
	if h := w.history(a); !strings.Contains(h, "confirmed on sftp:sii") {
		t.Errorf("history does not record the publication:\n%s", h)
	}
	// The SII never answers: the suspension's term no longer reminds anyone, so
	// no_answer does, no_answer_days working days after the delivery (before, the
	// practice stayed SUSP_REQUESTED with nobody told).
	deadlines := func() []archive.Exception {
		t.Helper()
		if err := extraJobs[JobDeadlines](w.d, context.Background(), w.now); err != nil {
			t.Fatal(err)
		}
		es, _ := w.d.Store.Exceptions(context.Background(), archive.ExceptionFilter{PracticeID: a.ID, Open: &open, Kind: "no_answer"})
		return es
	}
	// Delivered on the wall clock (deliverOnWallClock): counted from that day.
	a = w.practice(cpgA)
	since := flows.Today(a.StateSince)
	due := w.d.Calendar().AddWorkingDays(since, w.d.Config().Deadlines.NoAnswerDays)
	w.now = time.Date(due.Y, due.M, due.D, 9, 0, 0, 0, flows.Rome)
	if es := deadlines(); len(es) != 0 {
		t.Fatalf("no_answer raised on its due day: %+v", es)
	}
	w.now = w.now.AddDate(0, 0, 1)
	es = deadlines()
	if len(es) != 1 || !strings.Contains(es[0].Message, "suspension request delivered "+since.String()) || es[0].Owner != "compliance" {
		t.Fatalf("no_answer after no_answer_days (state since %s): %+v", w.practice(cpgA).StateSince, es)
	}
	// The SII admits the request (SUSP_AMM): it has answered, and the outcome
	// (SUSP_ESITO, after the distributor acts) is counted from the admission, as an
	// uscente request ADMITTED is. It was still counted from the delivery: no_answer
	// stayed open past the SII's answer.
	reqs, _ := w.d.Store.Requests(context.Background(), nil, a.ID, entrante.FlowSUSPREQ, "sent", 0)
	if len(reqs) != 1 {
		t.Fatalf("SUSP_REQ requests %+v", reqs)
	}
	w.sii("SUSP_AMM", map[string]string{"CP_UTENTE": reqs[0].CPUtente, "CP_GESTORE": cpgA, "VERIFICA_AMM": "1"})
	w.runOnce()
	if es := deadlines(); len(es) != 0 {
		t.Fatalf("no_answer open once the SII admitted the request: %+v", es)
	}
	admitted := flows.Today(w.now)
	due = w.d.Calendar().AddWorkingDays(admitted, w.d.Config().Deadlines.NoAnswerDays)
	w.now = time.Date(due.Y, due.M, due.D, 9, 0, 0, 0, flows.Rome).AddDate(0, 0, 1)
	if es := deadlines(); len(es) != 1 || !strings.Contains(es[0].Message, "suspension request "+reqs[0].CPUtente+" admitted "+admitted.String()) {
		t.Fatalf("no_answer no_answer_days after the admission: %+v", es)
	}
}

// TestAnswerToBuiltPractice: the daemon is killed after the upload, before it records
// it; the SII answers before the restart records the publication. The answer proves
// the SII has the file: it moves the BUILT practice (no state_conflict), and the
// publication recorded afterwards leaves the practice where the answer put it.
func TestAnswerToBuiltPractice(t *testing.T) {
	w := &excWorld{newTestWorld(t, e2eNow, "")}
	in := filepath.Join(w.srv.Root, "in")
	if err := os.Rename(in, in+".away"); err != nil { // uploads refused: the file stays unrecorded
		t.Fatal(err)
	}
	if err := os.WriteFile(in, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w.drop("morosi", "morosi_20251015.csv", e2eExtract())
	if err := w.d.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := w.practice("E250000001").State; s != flows.StateBuilt {
		t.Fatalf("A is %s, want BUILT", s)
	}
	w.answer("SI10100_20251016_0001.csv", "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n"+
		"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E250000001;SII2025A0000001;1;;\r\n")
	if err := w.d.PollSII(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := w.practice("E250000001"); a.State != flows.StateAdmitted || a.CPGestore != "SII2025A0000001" {
		t.Fatalf("A after REQ_AMM while BUILT: %s %q", a.State, a.CPGestore)
	}
	if es := w.exceptions("state_conflict"); len(es) != 0 {
		t.Errorf("state_conflict: %+v", es)
	}
	os.Remove(in)
	if err := os.Rename(in+".away", in); err != nil {
		t.Fatal(err)
	}
	deliverOnWallClock(t, w.d, func() time.Time { return w.now })
	if a := w.practice("E250000001"); a.State != flows.StateAdmitted {
		t.Errorf("A after the publication was recorded: %s, want still ADMITTED", a.State)
	}
	if b := w.practice("E250000002"); b.State != flows.StateSent {
		t.Errorf("B after the publication: %s, want SENT", b.State)
	}
}
