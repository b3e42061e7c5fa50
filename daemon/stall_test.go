package daemon

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
)

// A stall must reach a person: when the mail relay is down, mail_failed and every
// other alert can only go out by mail, so /healthz must say it. Two relays that fail
// differently: one refusing every message (451), one that accepts the connection and
// never answers. Each message that failed mailHealthAttempts times makes /healthz
// report the mail, naming the message and the error; once it goes out, /healthz is
// ok again.
func TestHealthzReportsMailDown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		relay func(t *testing.T) (host string, port int, heal func(c *config.Config))
		want  string
	}{
		{"relay refuses every message", func(t *testing.T) (string, int, func(c *config.Config)) {
			sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			sink.FailNext(1000)
			return sink.Host(), sink.Port(), func(*config.Config) { sink.FailNext(0) }
		}, "451"},
		{"relay accepts and never answers", func(t *testing.T) (string, int, func(c *config.Config)) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var conns []net.Conn
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					conns = append(conns, c) // held open, never a greeting
				}
			}()
			t.Cleanup(func() {
				ln.Close()
				for _, c := range conns {
					c.Close()
				}
			})
			sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			addr := ln.Addr().(*net.TCPAddr)
			return "127.0.0.1", addr.Port, func(c *config.Config) { c.Mail.Host, c.Mail.Port = sink.Host(), sink.Port() }
		}, "mail: connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newExcWorld(t)
			host, port, heal := tc.relay(t)
			w.tune(func(c *config.Config) {
				c.Mail.Host, c.Mail.Port, c.Mail.TLS, c.Mail.Timeout = host, port, "none", 300*time.Millisecond
			})
			setClock := func() { w.d.Sender().(*mail.Sender).Now = func() time.Time { return w.now } }
			setClock()
			if err := w.d.health(); err != nil {
				t.Fatalf("health before: %v", err)
			}
			if err := w.d.SendDigestNow(context.Background()); err != nil {
				t.Fatal(err)
			}
			attempts := func() int {
				ms, err := w.d.Store.Outbox().List(context.Background(), "", 0)
				if err != nil || len(ms) != 1 {
					t.Fatalf("outbox: %d messages, %v", len(ms), err)
				}
				return ms[0].Attempts
			}
			for attempts() < mailHealthAttempts {
				if err := w.d.health(); err != nil {
					t.Fatalf("health after %d failed attempts: %v (reported too early)", attempts(), err)
				}
				w.later(2 * time.Hour) // past the outbox's backoff
				if _, err := w.d.FlushMail(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			err := w.d.health()
			if err == nil {
				t.Fatalf("/healthz ok with a digest undelivered after %d attempts", mailHealthAttempts)
			}
			for _, want := range []string{"mail: 1 message(s) undelivered", "digest:", tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("health = %q, want it to contain %q", err, want)
				}
			}
			w.tune(func(c *config.Config) { c.Mail.TLS = "none"; heal(c) })
			setClock()
			w.later(2 * time.Hour)
			if n, err := w.d.FlushMail(context.Background()); err != nil || n != 1 {
				t.Fatalf("flush after the relay came back: %d sent, %v", n, err)
			}
			if err := w.d.health(); err != nil {
				t.Fatalf("health after the mail went out: %v", err)
			}
		})
	}
}
