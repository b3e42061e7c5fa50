package sftpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Client is the long-lived handle on one endpoint, safe for concurrent use: calls
// share one connection, made on first use. A call that meets a broken connection
// reconnects and retries once. Failed connection attempts open a circuit breaker for
// a capped exponential backoff with jitter, during which calls fail at once with a
// *ConnectError wrapping ErrCircuitOpen, so one dead endpoint costs no dial timeouts.
type Client struct {
	ep  Endpoint
	log *slog.Logger

	mu          sync.Mutex
	conn        *Conn
	dialing     chan struct{} // closed when the dial in progress ends
	failures    int
	nextAttempt time.Time
	lastErr     error
	lastContact time.Time
	closed      bool
	ops         map[*opWatch]struct{} // operations in flight, for Stuck
}

// opWatch is one operation in flight under the watchdog.
type opWatch struct {
	op    string
	conn  *Conn
	start time.Time
}

// NewClient returns a client for ep; it does not connect yet. log may be nil.
func NewClient(ep Endpoint, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{ep: ep.withDefaults(), log: log}
}

// Endpoint returns the endpoint with its defaults applied.
func (c *Client) Endpoint() Endpoint { return c.ep }

// LastContact is when a call last succeeded on the endpoint (zero: never).
func (c *Client) LastContact() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastContact
}

// Healthy is nil when the last connection attempt succeeded (or none was made), else
// the error that made it fail.
func (c *Client) Healthy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failures > 0 {
		return c.lastErr
	}
	return nil
}

// Stuck is nil unless an operation in flight has had no answer from the SFTP server
// for longer than twice OpTimeout: the watchdog closed its connection at OpTimeout and
// the operation should have ended, so the caller is wedged (the daemon stops petting
// the systemd watchdog, and systemd restarts it).
func (c *Client) Stuck() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.ops {
		if idle := w.conn.sinceRecv(w.start); idle > 2*c.ep.OpTimeout {
			return fmt.Errorf("sftp %s: %s stuck: no progress for %s, still running after its connection was closed", c.ep.Name, w.op, idle.Round(time.Millisecond))
		}
	}
	return nil
}

// Close drops the connection; later calls fail.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		return conn.Close()
	}
	return nil
}

// backoff is the wait after the n-th consecutive failure (n ≥ 1): BackoffMin doubling
// up to BackoffMax, then a random point in its upper half.
func (c *Client) backoff(n int) time.Duration {
	d := c.ep.BackoffMin << min(n-1, 30)
	if d > c.ep.BackoffMax || d <= 0 {
		d = c.ep.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// get returns a live connection, dialling if there is none. Concurrent callers share
// one dial.
func (c *Client) get(ctx context.Context) (*Conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, &ConnectError{Endpoint: c.ep.Name, Err: errors.New("client closed")}
		}
		if c.conn != nil && !c.conn.Broken() {
			conn := c.conn
			c.mu.Unlock()
			return conn, nil
		}
		if c.dialing != nil {
			wait := c.dialing
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if wait := time.Until(c.nextAttempt); wait > 0 && c.failures > 0 {
			err := c.lastErr
			c.mu.Unlock()
			var he *HostKeyError
			if errors.As(err, &he) {
				return nil, he // keep the host-key refusal visible while the breaker is open
			}
			var ce *ConnectError
			if errors.As(err, &ce) {
				err = ce.Err
			}
			return nil, &ConnectError{Endpoint: c.ep.Name, Err: fmt.Errorf("%w; retry in %s; last error: %w", ErrCircuitOpen, wait.Round(time.Millisecond), err)}
		}
		done := make(chan struct{})
		c.dialing = done
		c.mu.Unlock()

		conn, err := Dial(ctx, c.ep, c.log)

		c.mu.Lock()
		c.dialing = nil
		close(done)
		if err != nil {
			if ctx.Err() == nil { // our caller giving up says nothing about the endpoint
				c.failures++
				c.lastErr = err
				c.nextAttempt = time.Now().Add(c.backoff(c.failures))
				c.log.Warn("sftp connection failed", "endpoint", c.ep.Name, "failures", c.failures, "next_attempt", c.nextAttempt, "err", err)
			}
			c.mu.Unlock()
			return nil, err
		}
		if c.failures > 0 {
			c.log.Info("sftp endpoint reachable again", "endpoint", c.ep.Name, "after_failures", c.failures)
		}
		c.failures, c.lastErr = 0, nil
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			continue
		}
		c.conn = conn
		c.mu.Unlock()
		return conn, nil
	}
}

// drop forgets conn if it is still the current one.
func (c *Client) drop(conn *Conn) {
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
	}
	c.mu.Unlock()
	conn.Close()
}

// watch runs op on conn under the progress watchdog: when the SFTP server sends
// nothing for OpTimeout while op runs, the connection is closed (pkg/sftp has no
// per-request timeout, and closing fails every request in flight) and op's error
// becomes a *StallError. Time spent by op on our side (reading the local file) counts
// too: a request is always in flight then or about to be.
func (c *Client) watch(name string, conn *Conn, op func(*Conn) error) error {
	w := &opWatch{op: name, conn: conn, start: time.Now()}
	c.mu.Lock()
	if c.ops == nil {
		c.ops = map[*opWatch]struct{}{}
	}
	c.ops[w] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.ops, w)
		c.mu.Unlock()
	}()
	ended := make(chan struct{})
	var stalled atomic.Int64 // the idle time when the watchdog fired
	go func() {
		t := time.NewTicker(max(c.ep.OpTimeout/20, 5*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ended:
				return
			case <-conn.Done():
				return
			case <-t.C:
			}
			if idle := conn.sinceRecv(w.start); idle >= c.ep.OpTimeout {
				stalled.Store(int64(idle))
				c.log.Warn("sftp operation made no progress; closing the connection", "endpoint", c.ep.Name, "op", name, "idle", idle.Round(time.Millisecond))
				c.drop(conn)
				return
			}
		}
	}()
	err := op(conn)
	close(ended)
	if idle := stalled.Load(); idle > 0 && err != nil {
		return &StallError{Endpoint: c.ep.Name, Op: name, Idle: time.Duration(idle), Err: err}
	}
	return err
}

// do runs op on a live connection; if the connection breaks under it, op runs once
// more on a new connection (op must be safe to repeat). Cancelling ctx while op runs
// closes the connection: pkg/sftp has no other way to abandon a request. Every run of
// op is under the progress watchdog (watch).
func (c *Client) do(ctx context.Context, name string, op func(*Conn) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var conn *Conn
		conn, err = c.get(ctx)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { c.drop(conn) })
		err = c.watch(name, conn, op)
		stop()
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		if !isBroken(conn, err) {
			if err == nil {
				c.mu.Lock()
				c.lastContact = time.Now()
				c.mu.Unlock()
			}
			return err
		}
		c.log.Warn("sftp connection lost; reconnecting", "endpoint", c.ep.Name, "attempt", attempt+1, "err", err)
		c.drop(conn)
	}
	return err
}
