package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
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
