package sftpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Conn is one SSH connection with its SFTP session. It is safe for concurrent use;
// once broken (network error, IO timeout, missed keepalives, Close) it stays broken.
type Conn struct {
	SFTP *sftp.Client
	ep   Endpoint
	ssh  *ssh.Client
	raw  net.Conn
	log  *slog.Logger

	dead      chan struct{}
	closeOnce sync.Once

	// lastRecv is when the SFTP server last sent anything on the SFTP channel (unix
	// nanos): the progress the operation watchdog looks at (Client.do). Keepalive
	// replies come from sshd, not from the SFTP server, and do not count.
	lastRecv *atomic.Int64
}

// sinceRecv is how long the SFTP server has been silent, counted from start at the
// latest (the start of the operation that asks).
func (c *Conn) sinceRecv(start time.Time) time.Duration {
	last := time.Unix(0, c.lastRecv.Load())
	if last.Before(start) {
		last = start
	}
	return time.Since(last)
}

// recvMeter stamps lastRecv at every read from the SFTP channel that returns data.
type recvMeter struct {
	r    io.Reader
	last *atomic.Int64
}

func (m recvMeter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// Done is closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.dead }

// Broken tells whether the connection is gone.
func (c *Conn) Broken() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// Close tears the connection down.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		// The transport first: closing the SFTP session first would send a message
		// that can block for IOTimeout on a stalled connection.
		c.ssh.Close()
		c.raw.Close()
		c.SFTP.Close()
	})
	<-c.dead
	return nil
}

// HasExtension tells whether the server advertised an SFTP extension.
func (c *Conn) HasExtension(name string) bool {
	_, ok := c.SFTP.HasExtension(name)
	return ok
}

// progressConn puts every Read and Write under a deadline of IOTimeout from the
// moment it starts: a connection that makes no progress for that long fails, and with
// it every request waiting on it. The SSH transport always has a Read pending, so an
// idle connection stays alive only through the keepalive replies (Keepalive must be
// well below IOTimeout; Dial enforces it). Until handshakeDone, the deadline is also
// capped by the dial deadline.
type progressConn struct {
	net.Conn
	timeout  time.Duration
	hardStop atomic.Int64 // unix nanos; 0 = none
}

func (c *progressConn) deadline() time.Time {
	d := time.Now().Add(c.timeout)
	if hs := c.hardStop.Load(); hs != 0 && hs < d.UnixNano() {
		return time.Unix(0, hs)
	}
	return d
}

func (c *progressConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(c.deadline()); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *progressConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(c.deadline()); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Dial connects to ep, verifies its host key against ep.KnownHosts (failing closed:
// an unknown or different key is a *HostKeyError), authenticates with ep.KeyFile and
// starts the SFTP subsystem, all within ep.DialTimeout. Other failures are wrapped in
// a *ConnectError.
func Dial(ctx context.Context, ep Endpoint, log *slog.Logger) (*Conn, error) {
	ep = ep.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fail := func(err error) (*Conn, error) { return nil, &ConnectError{Endpoint: ep.Name, Err: err} }
	signer, err := loadSigner(ep.KeyFile)
	if err != nil {
		return fail(err)
	}
	hostKeyCB, algos, refusal, err := hostKeyCheck(ep, log)
	if err != nil {
		return fail(err)
	}
	cfg := &ssh.ClientConfig{User: ep.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeyCB, HostKeyAlgorithms: algos, ClientVersion: "SSH-2.0-cmord"}

	dialCtx, cancel := context.WithTimeout(ctx, ep.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dialCtx, "tcp", ep.Addr())
	if err != nil {
		return fail(err)
	}
	if tc, ok := raw.(*net.TCPConn); ok && ep.Keepalive > 0 {
		_ = tc.SetKeepAlive(true) // the kernel's probes notice a vanished peer even when idle
	}
	pc := &progressConn{Conn: raw, timeout: ep.IOTimeout}
	dl, _ := dialCtx.Deadline()
	pc.hardStop.Store(dl.UnixNano())
	stop := context.AfterFunc(dialCtx, func() { raw.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(pc, ep.Addr(), cfg)
	if err != nil {
		stop()
		raw.Close()
		if he := refusal(); he != nil {
			return nil, he
		}
		if ctxErr := dialCtx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		return fail(err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	opts := []sftp.ClientOption{sftp.UseConcurrentWrites(ep.ConcurrentWrites), sftp.UseConcurrentReads(ep.ConcurrentReads)}
	if ep.MaxPacket > 32768 {
		opts = append(opts, sftp.MaxPacketUnchecked(ep.MaxPacket))
	} else {
		opts = append(opts, sftp.MaxPacketChecked(ep.MaxPacket))
	}
	lastRecv := new(atomic.Int64)
	sc2, err := startSFTP(client, lastRecv, opts)
	stopped := stop()
	if err != nil || !stopped {
		client.Close()
		raw.Close()
		if err == nil {
			err = dialCtx.Err()
		}
		if dialCtx.Err() != nil || !time.Now().Before(dl) {
			// SSH answered, the SFTP server did not before the dial deadline (which may
			// fire on the connection's read deadline just before dialCtx's timer): the
			// stall of a frozen sftp-server seen from a new connection.
			err = &StallError{Endpoint: ep.Name, Op: "starting the SFTP session", Idle: ep.DialTimeout, Err: err}
		}
		return fail(fmt.Errorf("starting the sftp subsystem: %w", err))
	}
	pc.hardStop.Store(0)
	c := &Conn{SFTP: sc2, ep: ep, ssh: client, raw: raw, log: log, dead: make(chan struct{}), lastRecv: lastRecv}
	go func() {
		_ = client.Wait()
		close(c.dead)
	}()
	if ep.Keepalive > 0 {
		go c.keepalive()
	}
	log.Debug("sftp connected", "endpoint", ep.Name, "addr", ep.Addr(), "server", string(sc.ServerVersion()))
	return c, nil
}

// startSFTP starts the SFTP subsystem as sftp.NewClient does, with the server's
// output read through a recvMeter so that the operation watchdog sees its progress.
func startSFTP(client *ssh.Client, lastRecv *atomic.Int64, opts []sftp.ClientOption) (*sftp.Client, error) {
	s, err := client.NewSession()
	if err != nil {
		return nil, err
	}
	pw, err := s.StdinPipe()
	if err != nil {
		return nil, err
	}
	pr, err := s.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		return nil, err
	}
	return sftp.NewClientPipe(recvMeter{r: pr, last: lastRecv}, pw, opts...)
}

// keepalive sends keepalive@openssh.com every ep.Keepalive; after KeepaliveMaxMissed
// intervals without an answer the connection is closed (any reply, even a refusal,
// proves the server is alive).
func (c *Conn) keepalive() {
	t := time.NewTicker(c.ep.Keepalive)
	defer t.Stop()
	var pending chan error
	missed := 0
	for {
		select {
		case <-c.dead:
			return
		case err := <-pending:
			pending = nil
			missed = 0
			if err != nil {
				c.ssh.Close()
				return
			}
			continue
		case <-t.C:
		}
		if pending != nil {
			missed++
			if missed >= c.ep.KeepaliveMaxMissed {
				c.log.Warn("sftp keepalive unanswered; closing the connection", "endpoint", c.ep.Name, "missed", missed)
				c.ssh.Close()
				c.raw.Close()
				return
			}
			continue
		}
		pending = make(chan error, 1)
		go func(ch chan error) {
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			ch <- err
		}(pending)
	}
}

func loadSigner(keyFile string) (ssh.Signer, error) {
	if keyFile == "" {
		return nil, errors.New("no key_file configured")
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("key %s is protected by a passphrase; cmord needs an unencrypted key readable only by its user", keyFile)
		}
		return nil, fmt.Errorf("parsing key %s: %w", keyFile, err)
	}
	return s, nil
}

// isBroken tells whether err (from an operation on c) means the connection is gone
// rather than the operation being refused by the server.
func isBroken(c *Conn, err error) bool {
	if err == nil {
		return false
	}
	if c.Broken() {
		return true
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return false
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, sftp.ErrSSHFxConnectionLost) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}
