package mail

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/daemon/mail/smtpsink"
	"github.com/cmord/cmord/flows"
)

// TestLateMailSaysSo: a message the relay accepts long after it was queued (the relay
// was down, or cmord was not running) went out with its queue-time Date and nothing in
// it said it was late: an urgent alert read at 19:10 looked written then, or sorted
// hours down the inbox. Now its text and HTML open with a line that says when it was
// queued, when it was sent and why, its Date is the send time (the queue time stays in
// the line and X-Cmord-Queued-At) and EventLate reports it; the attachment and the
// Message-ID are unchanged, and the outbox keeps the bytes as queued. A message sent
// within LateAfter goes out byte for byte as queued. Real SMTP (go-smtp), the
// sender's clock injected.
func TestLateMailSaysSo(t *testing.T) {
	queued := time.Date(2026, 12, 3, 14, 5, 0, 0, flows.Rome)
	tests := []struct {
		name      string
		lang      string
		relayDown bool
		after     time.Duration // from queueing to the flush that sends it
		wantLine  string        // "" : not late, sent as queued
	}{
		{"sent at once", "", false, 0, ""},
		{"relay down 10 minutes: not late", "", true, 10 * time.Minute, ""},
		{"relay down 5 hours", "", true, 5*time.Hour + 5*time.Minute,
			"Inviato in ritardo: accodato alle 14:05 del 03/12/2026, inviato alle 19:10 del 03/12/2026 (5 h 5 min dopo): il server di posta non rispondeva. Il contenuto è quello di allora."},
		{"relay down 5 hours, English", "en", true, 5*time.Hour + 5*time.Minute,
			"Sent late: queued at 14:05 on 03/12/2026, sent at 19:10 on 03/12/2026 (5 h 5 min later): the mail server did not answer. What it says is as of then."},
		{"cmord not running for a day", "", false, 26 * time.Hour,
			"Inviato in ritardo: accodato alle 14:05 del 03/12/2026, inviato alle 16:05 del 04/12/2026 (1 g 2 h dopo): cmord non ha potuto inviarlo prima (non era in esecuzione). Il contenuto è quello di allora."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, smtpsink.Options{}, SMTP{})
			e.sender.Lang = tt.lang
			e.now = queued
			msg := digestMessage()
			msg.Date = queued
			if err := e.sender.Queue(context.Background(), "alert:x", "alert", msg); err != nil {
				t.Fatal(err)
			}
			if tt.relayDown {
				if err := e.sink.Stop(); err != nil {
					t.Fatal(err)
				}
				if n, err := e.flush(); n != 0 || err == nil {
					t.Fatalf("flush with the relay down: %d %v", n, err)
				}
				if err := e.sink.Resume(); err != nil {
					t.Fatal(err)
				}
			}
			e.now = queued.Add(tt.after)
			if n, err := e.flush(); n != 1 || err != nil {
				t.Fatalf("flush: %d %v", n, err)
			}
			files := e.files()
			if len(files) != 1 {
				t.Fatalf("%d delivered", len(files))
			}
			row := e.outbox("alert:x")
			var late []Event
			for _, ev := range e.events {
				if ev.Kind == EventLate {
					late = append(late, ev)
				}
			}
			if tt.wantLine == "" {
				if !bytes.Equal(files[0], row.EML) || len(late) != 0 {
					t.Fatalf("not late, yet not sent as queued (late events %+v):\n%s", late, files[0])
				}
				return
			}
			m, _, leaves := parseEML(t, files[0])
			if len(leaves) != 3 {
				t.Fatalf("parts %+v", leaves)
			}
			if want := tt.wantLine + "\n\nRiepilogo: 2 eccezioni aperte.\nDettaglio in allegato."; leaves[0].body != want {
				t.Errorf("text part:\n%q\nwant\n%q", leaves[0].body, want)
			}
			if !strings.Contains(leaves[1].body, tt.wantLine) || !strings.HasSuffix(leaves[1].body, "<p>Riepilogo: <b>2</b> eccezioni aperte.</p>") {
				t.Errorf("HTML part lacks the line: %q", leaves[1].body)
			}
			if leaves[2] != (part{"text/csv", "eccezioni.csv", csvData}) {
				t.Errorf("attachment changed: %+v", leaves[2])
			}
			if d, err := m.Header.Date(); err != nil || !d.Equal(e.now) {
				t.Errorf("Date %v (%v), want the send time %v", d, err, e.now)
			}
			if q, err := time.Parse(time.RFC1123Z, m.Header.Get("X-Cmord-Queued-At")); err != nil || !q.Equal(queued) {
				t.Errorf("X-Cmord-Queued-At %q, want %v", m.Header.Get("X-Cmord-Queued-At"), queued)
			}
			if m.Header.Get("Message-ID") != "<"+row.MessageID+">" {
				t.Errorf("Message-ID %q, want <%s>", m.Header.Get("Message-ID"), row.MessageID)
			}
			if bytes.Contains(row.EML, []byte("ritardo")) || bytes.Contains(row.EML, []byte("Sent late")) {
				t.Errorf("the outbox's copy was changed")
			}
			if len(late) != 1 || !late[0].QueuedAt.Equal(queued) || !late[0].SentAt.Equal(e.now) || late[0].DedupKey != "alert:x" {
				t.Errorf("late events %+v", late)
			}
		})
	}
}

// TestMarkLateTextOnly: a message with only a text part (the alert mailed directly
// by `cmord alert`) gets the line at the top of its body too.
func TestMarkLateTextOnly(t *testing.T) {
	queued := time.Date(2026, 12, 3, 14, 5, 0, 0, flows.Rome)
	eml, _, err := Build(Message{From: "cmord@example.it", To: []string{"ops@example.it"}, Subject: "[CMOR URGENTE] prova",
		Text: "cmord è fermo.\nCosa fare: …", Date: queued})
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarkLate(eml, Late{QueuedAt: queued, SentAt: queued.Add(40 * time.Minute), FailedAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	m, _, leaves := parseEML(t, out)
	want := "Inviato in ritardo: accodato alle 14:05 del 03/12/2026, inviato alle 14:45 del 03/12/2026 (40 min dopo): il server di posta non rispondeva. Il contenuto è quello di allora.\n\ncmord è fermo.\nCosa fare: …"
	if len(leaves) != 1 || m.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Fatalf("parts %+v, encoding %q", leaves, m.Header.Get("Content-Transfer-Encoding"))
	}
	body, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(leaves[0].body)))
	if err != nil || strings.ReplaceAll(string(body), "\r\n", "\n") != want {
		t.Fatalf("body %q (%v), want %q", body, err, want)
	}
	if got, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); got != "[CMOR URGENTE] prova" {
		t.Errorf("Subject %q", got)
	}
}
