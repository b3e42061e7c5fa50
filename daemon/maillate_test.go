package daemon

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
	"github.com/cmord/cmord/flows"
)

// TestMailOutageReachesTheReader: the SMTP relay (go-smtp, in process) is down when the
// digest is queued at 14:05 and comes back at 19:10. Before, the digest went out at
// 19:10 with its 14:05 Date and nothing said it was late, and only mail_failed, after
// dead_letter_after attempts (about 5 h), ever told of the outage. Now the late digest
// opens with "Inviato in ritardo: accodato alle 14:05 …", mail_late records the outage
// (resolved: the mail went out) and the next day's digest lists it among the resolved:
// "Posta in ritardo: 1 messaggio accodato dalle 14:05 del … è partito in ritardo,
// l'ultimo alle 19:10 … (ritardo massimo 5 h 5 min)". The daemon's and the sender's
// clocks are the test's.
func TestMailOutageReachesTheReader(t *testing.T) {
	w := newExcWorld(t)
	w.now = time.Date(2026, 12, 3, 14, 5, 0, 0, flows.Rome)
	w.d.Store.Now = func() time.Time { return w.now }
	sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	w.tune(func(c *config.Config) { c.Mail.Host, c.Mail.Port, c.Mail.TLS = sink.Host(), sink.Port(), "none" })
	w.d.Sender().(*mail.Sender).Now = func() time.Time { return w.now }
	if err := sink.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w.d.SendDigestNow(ctx); err != nil {
		t.Fatal(err)
	}
	w.later(5*time.Hour + 5*time.Minute)
	if err := sink.Resume(); err != nil {
		t.Fatal(err)
	}
	if n, err := w.d.FlushMail(ctx); n != 1 || err != nil {
		t.Fatalf("flush after the outage: %d %v", n, err)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails", len(msgs))
	}
	late := mailText(t, msgs[0].Data)
	want := "Inviato in ritardo: accodato alle 14:05 del 03/12/2026, inviato alle 19:10 del 03/12/2026 (5 h 5 min dopo): il server di posta non rispondeva."
	if !strings.HasPrefix(late, want) {
		t.Errorf("the late digest does not open with %q:\n%s", want, late)
	}
	es := w.all("mail_late")
	if len(es) != 1 || es[0].Open() || es[0].Severity != archive.SevLow || es[0].Owner != "sysadmin" ||
		!strings.Contains(es[0].Message, "1 mail sent late: queued from 03/12/2026 14:05, the last sent at 03/12/2026 19:10, up to 5 h 5 min late") {
		t.Fatalf("mail_late: %+v", es)
	}
	// The next day's digest, sent at once, lists the outage.
	w.later(24 * time.Hour)
	if err := w.d.SendDigestNow(ctx); err != nil {
		t.Fatal(err)
	}
	msgs = sink.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d mails, want the next digest too", len(msgs))
	}
	next := mailText(t, msgs[1].Data)
	for _, w := range []string{"Posta inviata in ritardo",
		"Posta in ritardo: 1 messaggio accodato dalle 14:05 del 03/12/2026 è partito in ritardo, l'ultimo alle 19:10 del 03/12/2026 (ritardo massimo 5 h 5 min)"} {
		if !strings.Contains(next, w) {
			t.Errorf("the next digest lacks %q:\n%s", w, next)
		}
	}
	if strings.Contains(next, "Inviato in ritardo") {
		t.Errorf("the next digest, sent at once, says it is late:\n%s", next)
	}
	t.Logf("the next digest:\n%s", next)
}

// mailText is the decoded text/plain part of a raw mail.
func mailText(t *testing.T, raw []byte) string {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var find func(ct, cte string, body io.Reader) string
	find = func(ct, cte string, body io.Reader) string {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err != nil {
					return ""
				}
				if s := find(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); s != "" {
					return s
				}
			}
		}
		if mt != "text/plain" {
			return ""
		}
		if strings.EqualFold(cte, "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		b, _ := io.ReadAll(body)
		return strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	return find(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body)
}
