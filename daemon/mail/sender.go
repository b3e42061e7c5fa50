package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/cmord/cmord/archive"
)

// TLS modes of SMTP.TLS.
const (
	TLSStartTLS = "starttls" // STARTTLS mandatory (go-mail TLSMandatory); the default
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, usually port 465)
	TLSNone     = "none"     // plain text; refused unless the host is loopback
)

// SMTP is the relay configuration.
type SMTP struct {
	Host               string
	Port               int // default 587 (starttls), 465 (tls), 25 (none)
	TLS                string
	Username           string
	PasswordFile       string // read at each send, trimmed; never logged
	From               string // default From and envelope sender
	HELO               string
	Timeout            time.Duration  // per connection and per message; default 30s
	InsecureSkipVerify bool           // tests only
	RootCAs            *x509.CertPool // nil = system roots (tests pass the sink's pool)
}

// Outbox is the persistent queue; *archive.Outbox implements it.
type Outbox interface {
	Enqueue(ctx context.Context, m archive.OutboxMessage) (int64, bool, error)
	Due(ctx context.Context, now time.Time) ([]archive.OutboxMessage, error)
	MarkSending(ctx context.Context, id int64) error
	MarkSent(ctx context.Context, id int64, at time.Time) error
	MarkRetry(ctx context.Context, id int64, errText string, next time.Time) (int, error)
	SetDeadLetter(ctx context.Context, id int64, path string) error
	Pending(ctx context.Context) (int, error)
}

// Event kinds raised through Sender.OnEvent.
const (
	EventRetry      = "retry"       // an attempt failed; the message stays queued
	EventDeadLetter = "dead_letter" // attempts exceeded DeadLetterAfter; a copy was written to DeadLetterDir (Path)
	EventLate       = "late"        // a message went out more than LateAfter after it was queued (QueuedAt, SentAt)
)

// Event reports a delivery problem for the daemon to raise as an exception.
type Event struct {
	Kind     string
	OutboxID int64
	DedupKey string
	Attempts int
	Err      error
	Path     string
	// QueuedAt and SentAt, of EventLate.
	QueuedAt, SentAt time.Time
}

// Sender queues messages in the outbox and delivers them.
type Sender struct {
	cfg    SMTP
	outbox Outbox
	log    *slog.Logger

	// DeadLetterDir receives an .eml copy of a message once it has failed more than
	// DeadLetterAfter (default 10) times; it stays queued and keeps being retried.
	DeadLetterDir   string
	DeadLetterAfter int
	OnEvent         func(Event)
	Now             func() time.Time
	// LateAfter: a message sent later than this after it was queued opens with a line
	// that says so (MarkLate; in Lang, "en" or else Italian) and raises EventLate.
	// Default DefaultLateAfter; negative: never.
	LateAfter time.Duration
	Lang      string

	mu sync.Mutex // one Flush at a time: rows in "sending" belong to it

	// crashAfterData, in tests, simulates a kill between the server's 250 to DATA and
	// the commit of "sent".
	crashAfterData func() bool
}

// NewSender returns a sender for cfg over outbox.
func NewSender(cfg SMTP, outbox Outbox, log *slog.Logger) *Sender {
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Port == 0 {
		switch cfg.TLS {
		case TLSImplicit:
			cfg.Port = 465
		case TLSNone:
			cfg.Port = 25
		default:
			cfg.Port = 587
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{cfg: cfg, outbox: outbox, log: log, DeadLetterAfter: 10, OnEvent: func(Event) {}, Now: time.Now, LateAfter: DefaultLateAfter}
}

// Queue builds msg and stores it in the outbox under key (e.g. "digest:2025-10-26").
// A key already queued or sent is not queued again (logged, no error).
func (s *Sender) Queue(ctx context.Context, key, kind string, msg Message) error {
	if msg.From == "" {
		msg.From = s.cfg.From
	}
	envFrom, err := mail.ParseAddress(msg.From)
	if err != nil {
		return fmt.Errorf("mail: queue %s: from %q: %w", key, msg.From, err)
	}
	rcpts := make([]string, 0, len(msg.To))
	for _, to := range msg.To {
		a, err := mail.ParseAddress(to)
		if err != nil {
			return fmt.Errorf("mail: queue %s: recipient %q: %w", key, to, err)
		}
		rcpts = append(rcpts, a.Address)
	}
	eml, id, err := Build(msg)
	if err != nil {
		return fmt.Errorf("mail: queue %s: %w", key, err)
	}
	oid, dup, err := s.outbox.Enqueue(ctx, archive.OutboxMessage{DedupKey: key, Kind: kind, MessageID: id,
		Sender: envFrom.Address, Recipients: rcpts, Subject: msg.Subject, EML: eml, CreatedAt: s.Now()})
	if err != nil {
		return fmt.Errorf("mail: queue %s: %w", key, err)
	}
	if dup {
		s.log.Info("mail already queued, not queued again", "key", key, "outbox_id", oid)
	} else {
		s.log.Info("mail queued", "key", key, "kind", kind, "outbox_id", oid, "message_id", id, "recipients", len(rcpts))
	}
	return nil
}

// Backoff is the wait after the n-th failed attempt: 1m, 2m, 4m … capped at 1h.
func Backoff(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	if attempts > 7 {
		return time.Hour
	}
	return min(time.Minute<<(attempts-1), time.Hour)
}

// Flush sends every due message over one SMTP connection. Failures are recorded with
// their backoff and the messages stay queued; the first error is returned.
func (s *Sender) Flush(ctx context.Context) (sent int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Ledger writes must land even when ctx is cancelled mid-send.
	db := context.WithoutCancel(ctx)
	due, err := s.outbox.Due(ctx, s.Now())
	if err != nil || len(due) == 0 {
		return 0, err
	}
	client, sc, err := s.dial(ctx)
	if err != nil {
		err = fmt.Errorf("mail: connect %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
		for _, m := range due {
			s.retry(db, m, false, err)
		}
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { _ = sc.Close() })
	defer func() {
		if stop() {
			_ = client.CloseWithSMTPClient(sc)
		}
	}()
	var firstErr error
	for _, m := range due {
		if ctx.Err() != nil {
			break
		}
		if err := s.outbox.MarkSending(db, m.ID); err != nil {
			return sent, fmt.Errorf("mail: %w", err)
		}
		m.Attempts++
		wire := m
		now := s.Now()
		late := s.LateAfter >= 0 && !m.CreatedAt.IsZero() && now.Sub(m.CreatedAt) > s.LateAfter
		if late {
			// The failed attempts before this one: the row's count minus this attempt.
			l := Late{QueuedAt: m.CreatedAt, SentAt: now, FailedAttempts: m.Attempts - 1, Lang: s.Lang}
			if eml, err := MarkLate(m.EML, l); err != nil {
				s.log.Warn("mail sent late without the line that says so", "key", m.DedupKey, "err", err)
			} else {
				wire.EML = eml
			}
		}
		if err := s.sendOne(sc, wire); err != nil {
			err = fmt.Errorf("mail: send %s: %w", m.DedupKey, err)
			s.retry(db, m, true, err)
			if firstErr == nil {
				firstErr = err
			}
			// After a failed transaction the session must be reset; if that fails
			// the connection is gone and the rest waits for the next Flush.
			if rerr := sc.Reset(); rerr != nil {
				break
			}
			continue
		}
		if s.crashAfterData != nil && s.crashAfterData() {
			return sent, errors.New("mail: simulated crash after DATA")
		}
		if err := s.outbox.MarkSent(db, m.ID, s.Now()); err != nil {
			return sent, fmt.Errorf("mail: %w", err)
		}
		sent++
		s.log.Info("mail sent", "key", m.DedupKey, "outbox_id", m.ID, "message_id", m.MessageID, "attempt", m.Attempts)
		if late {
			s.log.Warn("mail sent late", "key", m.DedupKey, "queued", m.CreatedAt, "delay", now.Sub(m.CreatedAt).Round(time.Second))
			s.OnEvent(Event{Kind: EventLate, OutboxID: m.ID, DedupKey: m.DedupKey, Attempts: m.Attempts, QueuedAt: m.CreatedAt, SentAt: now})
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("mail: flush: %w", ctx.Err())
	}
	return sent, firstErr
}

// sendOne runs one SMTP transaction with the stored bytes: MAIL, RCPT…, DATA.
func (s *Sender) sendOne(sc *gosmtp.Client, m archive.OutboxMessage) error {
	if err := sc.UpdateDeadline(s.cfg.Timeout); err != nil {
		return err
	}
	if err := sc.Mail(m.Sender); err != nil {
		return err
	}
	for _, r := range m.Recipients {
		if err := sc.Rcpt(r); err != nil {
			return fmt.Errorf("rcpt %s: %w", r, err)
		}
	}
	w, err := sc.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.EML); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close() // reads the server's verdict on the message
}

// retry records a failed attempt, schedules the next one and, past the threshold,
// writes the dead-letter copy. begun says whether MarkSending already counted it.
func (s *Sender) retry(ctx context.Context, m archive.OutboxMessage, begun bool, sendErr error) {
	expect := m.Attempts
	if !begun {
		expect++ // MarkRetry counts an attempt that failed before MarkSending
	}
	next := s.Now().Add(Backoff(expect))
	attempts, err := s.outbox.MarkRetry(ctx, m.ID, sendErr.Error(), next)
	if err != nil {
		s.log.Error("mail outbox: record retry", "key", m.DedupKey, "err", err)
		return
	}
	s.log.Warn("mail not sent, will retry", "key", m.DedupKey, "outbox_id", m.ID, "attempts", attempts,
		"next", next, "err", sendErr)
	s.OnEvent(Event{Kind: EventRetry, OutboxID: m.ID, DedupKey: m.DedupKey, Attempts: attempts, Err: sendErr})
	if attempts <= s.DeadLetterAfter || m.DeadLetter != "" {
		return
	}
	if s.DeadLetterDir == "" {
		if attempts == s.DeadLetterAfter+1 {
			s.OnEvent(Event{Kind: EventDeadLetter, OutboxID: m.ID, DedupKey: m.DedupKey, Attempts: attempts, Err: sendErr})
		}
		return
	}
	path, err := writeDeadLetter(s.DeadLetterDir, m)
	if err != nil {
		s.log.Error("mail: write dead-letter copy", "key", m.DedupKey, "err", err)
		return
	}
	if err := s.outbox.SetDeadLetter(ctx, m.ID, path); err != nil {
		s.log.Error("mail outbox: record dead letter", "key", m.DedupKey, "err", err)
	}
	s.log.Error("mail undeliverable so far; dead-letter copy written, still retrying", "key", m.DedupKey, "attempts", attempts, "path", path)
	s.OnEvent(Event{Kind: EventDeadLetter, OutboxID: m.ID, DedupKey: m.DedupKey, Attempts: attempts, Err: sendErr, Path: path})
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func writeDeadLetter(dir string, m archive.OutboxMessage) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	final := filepath.Join(dir, fmt.Sprintf("%06d-%s.eml", m.ID, unsafeName.ReplaceAllString(m.DedupKey, "_")))
	tmp, err := os.CreateTemp(dir, ".dead-*")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(m.EML)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), final)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return final, nil
}

// Check connects, negotiates TLS, authenticates and quits (`cmord check --connect`).
func (s *Sender) Check(ctx context.Context) error {
	client, sc, err := s.dial(ctx)
	if err != nil {
		return fmt.Errorf("mail: connect %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	return client.CloseWithSMTPClient(sc)
}

// dial opens an SMTP session with go-mail's client (TLS policy, AUTH, timeouts) and
// returns its low-level smtp.Client, on which the stored bytes are sent verbatim:
// go-mail's Send would re-render a *Msg, and a resend must be byte-identical.
func (s *Sender) dial(ctx context.Context) (*gomail.Client, *gosmtp.Client, error) {
	tlsCfg := &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12,
		RootCAs: s.cfg.RootCAs, InsecureSkipVerify: s.cfg.InsecureSkipVerify} //nolint:gosec // tests only, documented
	opts := []gomail.Option{gomail.WithPort(s.cfg.Port), gomail.WithTimeout(s.cfg.Timeout), gomail.WithTLSConfig(tlsCfg)}
	if s.cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(s.cfg.HELO))
	}
	switch s.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		if !isLoopback(s.cfg.Host) {
			return nil, nil, fmt.Errorf("tls = %q is allowed only for a loopback host, not %q", TLSNone, s.cfg.Host)
		}
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		return nil, nil, fmt.Errorf("tls = %q: want %s, %s or %s", s.cfg.TLS, TLSStartTLS, TLSImplicit, TLSNone)
	}
	if s.cfg.Username != "" {
		pw, err := s.password()
		if err != nil {
			return nil, nil, err
		}
		auth := gomail.SMTPAuthAutoDiscover
		if s.cfg.TLS == TLSNone {
			auth = gomail.SMTPAuthPlain // go-mail permits PLAIN in clear to loopback only
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(s.cfg.Username), gomail.WithPassword(pw))
	}
	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return nil, nil, err
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, nil, err
	}
	return client, sc, nil
}

func (s *Sender) password() (string, error) {
	if s.cfg.PasswordFile == "" {
		return "", fmt.Errorf("smtp username %q set but no password_file", s.cfg.Username)
	}
	b, err := os.ReadFile(s.cfg.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("smtp password_file: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("smtp password_file %s is empty", s.cfg.PasswordFile)
	}
	return pw, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
