package mail

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
)

const csvData = "POD;Importo\nIT001E00000001;123,45\n"

func digestMessage() Message {
	return Message{
		From:    "cmord <cmord@example.it>",
		To:      []string{"Compliance <compliance@example.it>", "ops@example.it"},
		Subject: "Digest eccezioni 26/10/2025",
		Text:    "Riepilogo: 2 eccezioni aperte.\nDettaglio in allegato.",
		HTML:    "<p>Riepilogo: <b>2</b> eccezioni aperte.</p>",
		Attachments: []Attachment{
			{Name: "eccezioni.csv", ContentType: "text/csv", Data: []byte(csvData)},
		},
		Headers: map[string]string{"X-Cmord-Kind": "digest"},
	}
}

// part is a leaf of a parsed MIME tree.
type part struct {
	contentType string
	filename    string
	body        string
}

// parseEML checks the envelope headers and flattens the MIME tree into leaves,
// recording the multipart nesting as a path like "mixed/alternative".
func parseEML(t *testing.T, raw []byte) (*mail.Message, []string, []part) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var shapes []string
	var leaves []part
	var walk func(ct string, h map[string][]string, body io.Reader, path string)
	walk = func(ct string, h map[string][]string, body io.Reader, path string) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			path += "/" + strings.TrimPrefix(mt, "multipart/")
			shapes = append(shapes, strings.TrimPrefix(path, "/"))
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p.Header.Get("Content-Type"), p.Header, decode(t, p.Header.Get("Content-Transfer-Encoding"), p), path)
			}
		}
		b, _ := io.ReadAll(body)
		_, dp, _ := mime.ParseMediaType(firstOf(h["Content-Disposition"]))
		leaves = append(leaves, part{contentType: mt, filename: dp["filename"], body: strings.ReplaceAll(string(b), "\r\n", "\n")})
	}
	walk(msg.Header.Get("Content-Type"), msg.Header, msg.Body, "")
	return msg, shapes, leaves
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func decode(t *testing.T, cte string, r io.Reader) io.Reader {
	switch strings.ToLower(cte) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

func checkDigestParts(t *testing.T, raw []byte, wantID string) {
	t.Helper()
	msg, shapes, leaves := parseEML(t, raw)
	if got := msg.Header.Get("Message-ID"); got != "<"+wantID+">" {
		t.Errorf("Message-ID %q, want <%s>", got, wantID)
	}
	if got, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); got != "Digest eccezioni 26/10/2025" {
		t.Errorf("Subject %q", got)
	}
	if msg.Header.Get("X-Cmord-Kind") != "digest" {
		t.Errorf("custom header missing")
	}
	if d, err := msg.Header.Date(); err != nil || d.IsZero() {
		t.Errorf("Date: %v", err)
	}
	if strings.Join(shapes, ",") != "mixed,mixed/alternative" {
		t.Errorf("MIME shape %v", shapes)
	}
	want := []part{
		{"text/plain", "", "Riepilogo: 2 eccezioni aperte.\nDettaglio in allegato."},
		{"text/html", "", "<p>Riepilogo: <b>2</b> eccezioni aperte.</p>"},
		{"text/csv", "eccezioni.csv", csvData},
	}
	if len(leaves) != len(want) {
		t.Fatalf("parts %+v", leaves)
	}
	for i, w := range want {
		if leaves[i] != w {
			t.Errorf("part %d = %+v, want %+v", i, leaves[i], w)
		}
	}
}

func TestBuild(t *testing.T) {
	raw, id, err := Build(digestMessage())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(id, "@example.it") || len(id) != 32+len("@example.it") {
		t.Errorf("message id %q", id)
	}
	checkDigestParts(t, raw, id)

	fixed := digestMessage()
	fixed.MessageID = "digest-2025-10-26@example.it"
	_, id, err = Build(fixed)
	if err != nil || id != fixed.MessageID {
		t.Errorf("fixed id: %q %v", id, err)
	}

	refusals := []struct {
		name string
		edit func(*Message)
	}{
		{"no recipients", func(m *Message) { m.To = nil }},
		{"empty text", func(m *Message) { m.Text = "" }},
		{"bad from", func(m *Message) { m.From = "not an address" }},
		{"bad recipient", func(m *Message) { m.To = []string{"nobody"} }},
		{"subject injection", func(m *Message) { m.Subject = "x\r\nBcc: evil@x.it" }},
		{"reserved header", func(m *Message) { m.Headers = map[string]string{"Bcc": "evil@x.it"} }},
		{"header value injection", func(m *Message) { m.Headers = map[string]string{"X-A": "a\r\nBcc: e@x.it"} }},
		{"attachment path", func(m *Message) { m.Attachments = []Attachment{{Name: "../x.csv"}} }},
		{"message id with brackets", func(m *Message) { m.MessageID = "<a@b>" }},
	}
	for _, r := range refusals {
		m := digestMessage()
		r.edit(&m)
		if _, _, err := Build(m); err == nil {
			t.Errorf("%s: accepted", r.name)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{0, time.Minute}, {1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {6, 32 * time.Minute}, {7, time.Hour}, {50, time.Hour}} {
		if got := Backoff(tt.n); got != tt.want {
			t.Errorf("Backoff(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

// env is a real archive store + real go-smtp sink + sender with a fake clock.
type env struct {
	t      testing.TB
	dir    string
	store  *archive.Store
	sink   *smtpsink.Sink
	cfg    SMTP
	sender *Sender
	now    time.Time

	mu     sync.Mutex
	events []Event
}

func newEnv(t testing.TB, sinkOpts smtpsink.Options, cfg SMTP) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), now: time.Now()}
	sink, err := smtpsink.Start(filepath.Join(e.dir, "mailbox"), sinkOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	e.sink = sink
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	cfg.Port = sink.Port()
	if cfg.TLS == "" {
		cfg.TLS = TLSNone
	}
	cfg.From = "cmord <cmord@example.it>"
	cfg.Timeout = 10 * time.Second
	e.cfg = cfg
	e.reopen()
	return e
}

// reopen closes the store and builds a new sender on it, as a restarted daemon would.
func (e *env) reopen() {
	if e.store != nil {
		e.store.Close()
	}
	st, err := archive.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	e.store = st
	e.sender = NewSender(e.cfg, st.Outbox(), slog.New(slog.DiscardHandler))
	e.sender.Now = func() time.Time { return e.now }
	e.sender.DeadLetterDir = filepath.Join(e.dir, "dead")
	e.sender.OnEvent = func(ev Event) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
	}
}

func (e *env) queue(key string) {
	e.t.Helper()
	if err := e.sender.Queue(context.Background(), key, "digest", digestMessage()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) flush() (int, error) { return e.sender.Flush(context.Background()) }

func (e *env) files() [][]byte {
	e.t.Helper()
	b, err := smtpsink.ReadEML(e.sink.Dir())
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) outbox(key string) archive.OutboxMessage {
	e.t.Helper()
	all, err := e.store.Outbox().List(context.Background(), "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range all {
		if m.DedupKey == key {
			return m
		}
	}
	e.t.Fatalf("no outbox row %s", key)
	return archive.OutboxMessage{}
}

func (e *env) pending() int {
	n, err := e.store.Outbox().Pending(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestSendTextHTMLAttachmentThroughSink(t *testing.T) {
	e := newEnv(t, smtpsink.Options{}, SMTP{})
	e.queue("digest:2025-10-26")
	e.queue("digest:2025-10-26") // same key: not queued twice
	if n, err := e.flush(); n != 1 || err != nil {
		t.Fatalf("flush: %d %v", n, err)
	}
	files := e.files()
	if len(files) != 1 {
		t.Fatalf("%d messages delivered", len(files))
	}
	row := e.outbox("digest:2025-10-26")
	checkDigestParts(t, files[0], row.MessageID)
	if !bytes.Equal(row.EML, files[0]) {
		t.Errorf("delivered bytes differ from the stored message")
	}
	msgs := e.sink.Messages()
	if msgs[0].From != "cmord@example.it" || strings.Join(msgs[0].To, ",") != "compliance@example.it,ops@example.it" {
		t.Errorf("envelope %s → %v", msgs[0].From, msgs[0].To)
	}
	if row.State != archive.OutboxSent || row.Attempts != 1 || e.pending() != 0 {
		t.Errorf("row %s attempts %d pending %d", row.State, row.Attempts, e.pending())
	}
	if n, err := e.flush(); n != 0 || err != nil || len(e.files()) != 1 {
		t.Errorf("second flush sent %d (%v)", n, err)
	}
}

func TestSMTPDownThenUpDeliversEachOnce(t *testing.T) {
	e := newEnv(t, smtpsink.Options{}, SMTP{})
	keys := []string{"digest:2025-10-24", "digest:2025-10-25", "alert:hostkey"}
	for _, k := range keys {
		e.queue(k)
	}
	if err := e.sink.Stop(); err != nil {
		t.Fatal(err)
	}
	if n, err := e.flush(); n != 0 || err == nil {
		t.Fatalf("flush with SMTP down: %d %v", n, err)
	}
	for _, k := range keys {
		if m := e.outbox(k); m.State != archive.OutboxQueued || m.Attempts != 1 || m.NextAttemptAt.Sub(e.now) != time.Minute {
			t.Errorf("%s after failure: %+v", k, m)
		}
	}
	// Before the backoff expires nothing is attempted, even with SMTP back.
	if err := e.sink.Resume(); err != nil {
		t.Fatal(err)
	}
	if n, err := e.flush(); n != 0 || err != nil {
		t.Fatalf("flush inside backoff: %d %v", n, err)
	}
	e.now = e.now.Add(time.Minute)
	if n, err := e.flush(); n != 3 || err != nil {
		t.Fatalf("flush after recovery: %d %v", n, err)
	}
	e.now = e.now.Add(time.Hour)
	if n, _ := e.flush(); n != 0 {
		t.Errorf("resent %d", n)
	}
	files := e.files()
	if len(files) != 3 {
		t.Fatalf("%d delivered, want 3", len(files))
	}
	ids := map[string]bool{}
	for _, f := range files {
		m, _ := mail.ReadMessage(bytes.NewReader(f))
		ids[m.Header.Get("Message-ID")] = true
	}
	if len(ids) != 3 {
		t.Errorf("message ids %v", ids)
	}
	if len(e.events) != 3 || e.events[0].Kind != EventRetry {
		t.Errorf("events %+v", e.events)
	}
}

func TestTemporaryFailureIsRetried(t *testing.T) {
	e := newEnv(t, smtpsink.Options{}, SMTP{})
	e.queue("digest:a")
	e.queue("digest:b")
	e.sink.FailNext(1)
	n, err := e.flush()
	if n != 1 || err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("flush: %d %v (want 1 sent, a 451 error)", n, err)
	}
	a := e.outbox("digest:a")
	if a.State != archive.OutboxQueued || a.Attempts != 1 || !strings.Contains(a.LastError, "451") {
		t.Errorf("failed row %+v", a)
	}
	e.now = e.now.Add(time.Minute)
	if n, err := e.flush(); n != 1 || err != nil {
		t.Fatalf("retry flush: %d %v", n, err)
	}
	if a := e.outbox("digest:a"); a.State != archive.OutboxSent || a.Attempts != 2 {
		t.Errorf("retried row %+v", a)
	}
	if len(e.files()) != 2 {
		t.Errorf("%d delivered", len(e.files()))
	}
}

func TestRestartBetweenSteps(t *testing.T) {
	t.Run("between queue and send", func(t *testing.T) {
		e := newEnv(t, smtpsink.Options{}, SMTP{})
		e.queue("digest:x")
		e.reopen()
		if n, err := e.flush(); n != 1 || err != nil {
			t.Fatalf("flush after restart: %d %v", n, err)
		}
		if len(e.files()) != 1 {
			t.Errorf("%d delivered", len(e.files()))
		}
	})
	t.Run("after marking sending, before DATA", func(t *testing.T) {
		e := newEnv(t, smtpsink.Options{}, SMTP{})
		e.queue("digest:x")
		if err := e.store.Outbox().MarkSending(context.Background(), e.outbox("digest:x").ID); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		if n, err := e.flush(); n != 1 || err != nil {
			t.Fatalf("flush after restart: %d %v", n, err)
		}
		if len(e.files()) != 1 || e.outbox("digest:x").Attempts != 2 {
			t.Errorf("%d delivered, attempts %d", len(e.files()), e.outbox("digest:x").Attempts)
		}
	})
	t.Run("after DATA accepted, before sent committed", func(t *testing.T) {
		// The documented ambiguity: resent once, byte-identical, same Message-ID.
		e := newEnv(t, smtpsink.Options{}, SMTP{})
		e.queue("digest:x")
		e.sender.crashAfterData = func() bool { return true }
		if _, err := e.flush(); err == nil {
			t.Fatal("simulated crash did not surface")
		}
		e.reopen()
		if m := e.outbox("digest:x"); m.State != archive.OutboxSending {
			t.Fatalf("state after crash %s", m.State)
		}
		if n, err := e.flush(); n != 1 || err != nil {
			t.Fatalf("flush after restart: %d %v", n, err)
		}
		e.reopen()
		e.now = e.now.Add(24 * time.Hour)
		if n, _ := e.flush(); n != 0 {
			t.Errorf("sent again after 'sent' was committed")
		}
		files := e.files()
		if len(files) != 2 || !bytes.Equal(files[0], files[1]) {
			t.Fatalf("want the same bytes delivered twice, got %d files", len(files))
		}
	})
}

func TestAuthWithPasswordFileOverSTARTTLS(t *testing.T) {
	sinkOpts := smtpsink.Options{Username: "cmord", Password: "s3cret pass", STARTTLS: true}
	pwFile := filepath.Join(t.TempDir(), "smtp.pw")
	if err := os.WriteFile(pwFile, []byte("s3cret pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, sinkOpts, SMTP{TLS: TLSStartTLS, Username: "cmord", PasswordFile: pwFile})
	e.cfg.RootCAs = e.sink.CertPool()
	e.reopen()
	e.queue("digest:auth")
	if n, err := e.flush(); n != 1 || err != nil {
		t.Fatalf("flush: %d %v", n, err)
	}
	m := e.sink.Messages()[0]
	if !m.TLS || m.User != "cmord" {
		t.Errorf("session TLS=%v user=%q", m.TLS, m.User)
	}

	// A wrong password fails, the message stays queued, and the password is not in the error.
	if err := os.WriteFile(pwFile, []byte("wrong-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.queue("digest:auth2")
	n, err := e.flush()
	if n != 0 || err == nil || strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("flush with a wrong password: %d %v", n, err)
	}
	if r := e.outbox("digest:auth2"); r.State != archive.OutboxQueued || strings.Contains(r.LastError, "wrong-pass") {
		t.Errorf("row %+v", r)
	}
	// Missing password file.
	e.cfg.PasswordFile = filepath.Join(t.TempDir(), "missing")
	e.reopen()
	e.now = e.now.Add(time.Hour)
	if _, err := e.flush(); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("missing password file: %v", err)
	}
}

func TestTLSModes(t *testing.T) {
	tests := []struct {
		name     string
		sink     smtpsink.Options
		cfg      SMTP
		trust    bool
		wantSent bool
		wantErr  string
	}{
		{"starttls", smtpsink.Options{STARTTLS: true}, SMTP{TLS: TLSStartTLS}, true, true, ""},
		{"starttls refuses a server without it", smtpsink.Options{}, SMTP{TLS: TLSStartTLS}, false, false, "STARTTLS"},
		{"starttls verifies the certificate", smtpsink.Options{STARTTLS: true}, SMTP{TLS: TLSStartTLS}, false, false, "certificate"},
		{"starttls skip-verify (tests only)", smtpsink.Options{STARTTLS: true}, SMTP{TLS: TLSStartTLS, InsecureSkipVerify: true}, false, true, ""},
		{"implicit tls", smtpsink.Options{ImplicitTLS: true}, SMTP{TLS: TLSImplicit}, true, true, ""},
		{"none refused for a remote host", smtpsink.Options{}, SMTP{TLS: TLSNone, Host: "smtp.example.it"}, false, false, "loopback"},
		{"unknown mode", smtpsink.Options{}, SMTP{TLS: "ssl3"}, false, false, "want"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.sink, tt.cfg)
			if tt.trust {
				e.cfg.RootCAs = e.sink.CertPool()
				e.reopen()
			}
			e.queue("digest:tls")
			n, err := e.flush()
			if tt.wantSent != (n == 1) {
				t.Fatalf("sent %d, err %v", n, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
			if tt.wantSent && !e.sink.Messages()[0].TLS {
				t.Errorf("delivered without TLS")
			}
			if !tt.wantSent && e.pending() != 1 {
				t.Errorf("message dropped")
			}
		})
	}
}

func TestDeadLetterAfterManyAttempts(t *testing.T) {
	e := newEnv(t, smtpsink.Options{}, SMTP{})
	e.sender.DeadLetterAfter = 3
	e.queue("digest:stuck")
	e.sink.Stop()
	for i := 0; i < 5; i++ {
		if _, err := e.flush(); err == nil {
			t.Fatal("flush succeeded with SMTP down")
		}
		e.now = e.now.Add(time.Hour)
	}
	row := e.outbox("digest:stuck")
	if row.State != archive.OutboxQueued || row.Attempts != 5 || row.DeadLetter == "" {
		t.Fatalf("row %+v", row)
	}
	dead, err := os.ReadFile(row.DeadLetter)
	if err != nil || !bytes.Equal(dead, row.EML) {
		t.Errorf("dead letter %s: %v", row.DeadLetter, err)
	}
	var deadEvents int
	for _, ev := range e.events {
		if ev.Kind == EventDeadLetter {
			deadEvents++
			if ev.Attempts != 4 || ev.Path != row.DeadLetter {
				t.Errorf("event %+v", ev)
			}
		}
	}
	if deadEvents != 1 {
		t.Errorf("%d dead-letter events", deadEvents)
	}
	// Never dropped: once SMTP is back it goes out.
	e.sink.Resume()
	if n, err := e.flush(); n != 1 || err != nil {
		t.Fatalf("flush: %d %v", n, err)
	}
}

func TestFlushHonoursContext(t *testing.T) {
	e := newEnv(t, smtpsink.Options{}, SMTP{})
	e.queue("digest:ctx")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := e.sender.Flush(ctx); n != 0 || err == nil {
		t.Fatalf("flush with cancelled ctx: %d %v", n, err)
	}
	if e.pending() != 1 {
		t.Error("message lost")
	}
	e.now = e.now.Add(time.Hour)
	if n, err := e.flush(); n != 1 || err != nil {
		t.Fatalf("flush: %d %v", n, err)
	}
}
