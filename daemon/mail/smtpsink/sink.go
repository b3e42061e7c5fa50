// Package smtpsink is an in-process SMTP server (emersion/go-smtp) that writes every
// message it accepts as an .eml file into a directory. Tests use it as a real SMTP
// peer (AUTH PLAIN, STARTTLS or implicit TLS, injected 451 failures, stop/start on the
// same port); `cmord demo` uses it as the compliance mailbox.
package smtpsink

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configures a sink. The zero value is a plain, unauthenticated server on
// 127.0.0.1 with an ephemeral port.
type Options struct {
	Addr        string // listen address; default 127.0.0.1:0
	Username    string // if set, AUTH PLAIN with Username/Password is required before MAIL
	Password    string
	STARTTLS    bool // advertise STARTTLS with a generated self-signed certificate
	ImplicitTLS bool // TLS from the first byte (SMTPS); also uses the generated certificate
	Domain      string
}

// Message is one accepted message.
type Message struct {
	Path string // the .eml file
	From string
	To   []string
	Data []byte
	TLS  bool   // the session was encrypted
	User string // authenticated user, if any
}

// Sink is a running SMTP sink.
type Sink struct {
	dir  string
	opts Options
	addr string

	tlsConfig *tls.Config
	certPool  *x509.CertPool

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener // closed by Stop too: see there
	served   chan struct{}
	msgs     []Message
	failNext int
	seq      int
}

// Start creates dir if needed and starts serving.
func Start(dir string, opts Options) (*Sink, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("smtpsink: %w", err)
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	s := &Sink{dir: dir, opts: opts}
	if opts.STARTTLS || opts.ImplicitTLS {
		cfg, pool, err := selfSigned()
		if err != nil {
			return nil, err
		}
		s.tlsConfig, s.certPool = cfg, pool
	}
	if err := s.listen(opts.Addr); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sink) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("smtpsink: listen %s: %w", addr, err)
	}
	if s.opts.ImplicitTLS {
		ln = tls.NewListener(ln, s.tlsConfig)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{sink: s, tls: isTLS, conn: c}, nil
	}))
	srv.Domain = s.opts.Domain
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 64 << 20
	srv.AllowInsecureAuth = !s.opts.STARTTLS && !s.opts.ImplicitTLS
	if s.opts.STARTTLS {
		srv.TLSConfig = s.tlsConfig
	}
	served := make(chan struct{})
	s.mu.Lock()
	s.srv, s.ln, s.served, s.addr = srv, ln, served, ln.Addr().String()
	s.mu.Unlock()
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	return nil
}

// Addr is host:port.
func (s *Sink) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Host is the listen host.
func (s *Sink) Host() string { h, _, _ := net.SplitHostPort(s.Addr()); return h }

// Port is the listen port.
func (s *Sink) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// Dir is where .eml files are written.
func (s *Sink) Dir() string { return s.dir }

// CertPool trusts the sink's self-signed certificate (nil without TLS).
func (s *Sink) CertPool() *x509.CertPool { return s.certPool }

// FailNext makes the next n messages fail at the end of DATA with 451 4.3.0.
func (s *Sink) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// Stop closes the listener and open sessions; Resume listens again on the same port.
func (s *Sink) Stop() error {
	s.mu.Lock()
	srv, ln, served := s.srv, s.ln, s.served
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	// go-smtp's Close closes the listeners Serve has registered: one stopped before
	// its Serve goroutine got that far was left accepting, and Stop waited on it for
	// good (a demo closed right after it started hung its test for 10 minutes). The
	// listener closed here ends that Serve's Accept whatever the order.
	err := srv.Close()
	_ = ln.Close()
	<-served
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return err
}

// Resume serves again on the address used before Stop.
func (s *Sink) Resume() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	return s.listen(s.Addr())
}

// Close stops the sink for good.
func (s *Sink) Close() error { return s.Stop() }

// Messages returns the accepted messages in arrival order.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// store writes the message atomically (temp file, fsync, rename) and records it.
func (s *Sink) store(m Message) error {
	s.mu.Lock()
	if s.failNext > 0 {
		s.failNext--
		s.mu.Unlock()
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure injected by smtpsink"}
	}
	s.seq++
	name := fmt.Sprintf("%06d-%d.eml", s.seq, time.Now().UnixNano())
	s.mu.Unlock()

	final := filepath.Join(s.dir, name)
	tmp, err := os.CreateTemp(s.dir, ".incoming-*")
	if err != nil {
		return fmt.Errorf("smtpsink: %w", err)
	}
	_, werr := tmp.Write(m.Data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), final)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot store message"}
	}
	m.Path = final
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	return nil
}

type session struct {
	sink *Sink
	conn *smtp.Conn
	tls  bool
	user string
	from string
	to   []string
}

func (se *session) AuthMechanisms() []string {
	if se.sink.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || se.sink.opts.Username == "" {
		return nil, smtp.ErrAuthUnsupported
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != se.sink.opts.Username || password != se.sink.opts.Password {
			return smtp.ErrAuthFailed
		}
		se.user = username
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.sink.opts.Username != "" && se.user == "" {
		return smtp.ErrAuthRequired
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !se.tls {
		_, se.tls = se.conn.TLSConnectionState()
	}
	return se.sink.store(Message{From: se.from, To: append([]string(nil), se.to...), Data: data, TLS: se.tls, User: se.user})
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }

// selfSigned makes an ECDSA certificate for localhost/127.0.0.1 and a pool trusting it.
func selfSigned() (*tls.Config, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("smtpsink: key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "cmord smtpsink"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("smtpsink: certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
	return cfg, pool, nil
}

// ReadEML reads back the .eml files in dir, oldest first (for tests and the demo).
func ReadEML(dir string) ([][]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, bytes.Clone(b))
	}
	return out, nil
}
