// Package sftpx is cmord's SFTP client: host keys verified against known_hosts and
// failing closed, every network read and write under a deadline, every SFTP operation
// under a progress watchdog (OpTimeout: no answer from the SFTP server for that long
// closes the connection, even while sshd answers the keepalives), keepalives,
// reconnection with capped backoff and a circuit breaker, inbound listing with a
// stability check, downloads verified by size, and atomic uploads (temporary name,
// size check, rename, never overwriting by default).
package sftpx

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Endpoint is one remote SFTP server and how to talk to it. Zero fields take the
// defaults of config.DefaultSFTP (see withDefaults).
type Endpoint struct {
	Name               string
	Host               string
	Port               int
	User               string
	KeyFile            string   // private key (OpenSSH or PEM format, unencrypted)
	KnownHosts         string   // known_hosts file; required unless InsecureTOFU
	HostKeyAlgorithms  []string // explicit list; empty = taken from the known_hosts entries
	DialTimeout        time.Duration
	IOTimeout          time.Duration // no progress on the TCP connection for this long kills it
	OpTimeout          time.Duration // no answer from the SFTP server during an operation for this long closes the connection (Client.watch)
	Keepalive          time.Duration // keepalive@openssh.com interval; negative disables
	KeepaliveMaxMissed int
	BackoffMin         time.Duration
	BackoffMax         time.Duration
	MaxPacket          int // bytes per read/write request; above 32768 only for servers known to accept it
	ConcurrentWrites   bool
	ConcurrentReads    bool
	TempPrefix         string // upload temp name = TempPrefix + name + TempSuffix
	TempSuffix         string
	Overwrite          bool   // replace an existing remote file with other content
	SkipFsync          bool   // don't ask the server to fsync uploads even when it offers fsync@openssh.com
	Rename             string // auto | posix | plain
	InsecureTOFU       bool   // accept and record an unknown host key (never a changed one)
	// TOFUNoRecord: with InsecureTOFU, accept an unknown host key for this
	// connection but write nothing (no known_hosts created, no line added). `cmord
	// check --connect` uses it: only the daemon, as the configuration says, records.
	TOFUNoRecord bool
}

// Addr is host:port.
func (ep Endpoint) Addr() string { return net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)) }

func (ep Endpoint) withDefaults() Endpoint {
	if ep.Port == 0 {
		ep.Port = 22
	}
	if ep.Name == "" {
		ep.Name = ep.Addr()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&ep.DialTimeout, 15*time.Second)
	def(&ep.IOTimeout, 60*time.Second)
	def(&ep.OpTimeout, 60*time.Second)
	def(&ep.Keepalive, 15*time.Second)
	def(&ep.BackoffMin, time.Second)
	def(&ep.BackoffMax, 5*time.Minute)
	if ep.Keepalive > 0 && ep.Keepalive*2 > ep.IOTimeout {
		ep.Keepalive = ep.IOTimeout / 2 // an idle connection must answer a keepalive before its IO deadline
	}
	if ep.KeepaliveMaxMissed <= 0 {
		ep.KeepaliveMaxMissed = 3
	}
	if ep.MaxPacket <= 0 {
		ep.MaxPacket = 32768
	}
	if ep.TempPrefix == "" && ep.TempSuffix == "" {
		ep.TempPrefix, ep.TempSuffix = ".", ".part"
	}
	if ep.Rename == "" {
		ep.Rename = "auto"
	}
	return ep
}

// HostKeyError is a host key that known_hosts does not vouch for: either the host is
// unknown (Mismatch false) or it presented a key other than the recorded one (Mismatch
// true: possibly an attack, raise it as urgent). The connection was refused.
type HostKeyError struct {
	Host        string   // host:port as dialled
	KeyType     string   // type of the key presented
	Fingerprint string   // SHA256:… of the key presented
	Expected    []string // "type SHA256:…" of the keys known_hosts records for the host
	Mismatch    bool
	File        string // the known_hosts file consulted
}

func (e *HostKeyError) Error() string {
	if e.Mismatch {
		return fmt.Sprintf("host key mismatch for %s: server presented %s %s, %s records %s (possible man-in-the-middle; connection refused)",
			e.Host, e.KeyType, e.Fingerprint, e.File, strings.Join(e.Expected, ", "))
	}
	return fmt.Sprintf("host key of %s is unknown (%s %s not in %s; confirm it out of band with `cmord hostkey fetch %s`; connection refused)",
		e.Host, e.KeyType, e.Fingerprint, e.File, e.Host)
}

// ConnectError is a failure to reach or log in to an endpoint (dial, handshake,
// authentication, or the circuit breaker refusing to try before the backoff ends).
type ConnectError struct {
	Endpoint string
	Err      error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("sftp %s: connect: %v", e.Endpoint, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// ExistsError refuses an upload whose final name already exists remotely with other
// content (Overwrite is false).
type ExistsError struct {
	Path          string
	RemoteSize    int64
	RemoteModTime time.Time
	LocalSize     int64
}

func (e *ExistsError) Error() string {
	if e.RemoteSize == e.LocalSize {
		return fmt.Sprintf("remote %s already exists with other content of the same size (%d bytes); not overwritten", e.Path, e.RemoteSize)
	}
	return fmt.Sprintf("remote %s already exists with other content (%d bytes, ours %d); not overwritten", e.Path, e.RemoteSize, e.LocalSize)
}

// StallError is an SFTP operation (or the start of the SFTP session) during which the
// SFTP server sent nothing for Idle, while the SSH connection itself may well be alive:
// the operation was abandoned and the connection closed, so the next attempt redials.
type StallError struct {
	Endpoint string
	Op       string
	Idle     time.Duration
	Err      error // what the abandoned operation returned
}

func (e *StallError) Error() string {
	s := fmt.Sprintf("sftp %s: %s: no answer from the SFTP server for %s (connection closed)", e.Endpoint, e.Op, e.Idle.Round(time.Millisecond))
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}
func (e *StallError) Unwrap() error { return e.Err }

// ErrCircuitOpen is wrapped in a ConnectError when the endpoint failed recently and
// the backoff has not elapsed: the call fails at once instead of waiting a dial timeout.
var ErrCircuitOpen = errors.New("endpoint unavailable (circuit open, waiting for backoff)")

// SizeError is a transfer whose byte count disagrees with the other side.
type SizeError struct {
	Path           string
	Want, Got      int64
	Side, Checking string
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%s %s: %s size %d, expected %d", e.Checking, e.Path, e.Side, e.Got, e.Want)
}
