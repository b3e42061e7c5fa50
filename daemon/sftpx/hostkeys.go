package sftpx

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// algorithmsForKeyType lists the host-key signature algorithms that a key of the
// given type can satisfy, strongest first.
func algorithmsForKeyType(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	default:
		return []string{keyType}
	}
}

// probeKey is a key no known_hosts file records: checking it makes the knownhosts
// callback list every key it holds for an address (hashed entries included).
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}
	return k
}()

// knownKeys returns the keys a known_hosts callback records for addr.
func knownKeys(cb ssh.HostKeyCallback, addr string) []knownhosts.KnownKey {
	remote := &net.TCPAddr{IP: net.IPv4(0, 0, 0, 0)}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			remote.IP = ip
		}
	}
	var ke *knownhosts.KeyError
	if err := cb(addr, remote, probeKey); errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// HostKeyAlgorithmsFor returns the host-key algorithms to offer when connecting to
// addr, derived from the keys known_hosts records for it: offering only those makes
// the server present a key we can verify (golang/go#29286: otherwise the client may
// negotiate, say, ECDSA while known_hosts holds only the RSA key, and fail with a
// spurious "key mismatch"). Nil when the file records nothing for addr.
func HostKeyAlgorithmsFor(knownHostsFile, addr string) ([]string, error) {
	cb, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, err
	}
	return algorithmsFromKnown(knownKeys(cb, addr)), nil
}

func algorithmsFromKnown(keys []knownhosts.KnownKey) []string {
	var algos []string
	for _, k := range keys {
		for _, a := range algorithmsForKeyType(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// hostKeyCheck builds the verification for ep: the callback, the algorithms to offer,
// and a function returning the *HostKeyError of the last refusal (the ssh package
// reports it only as text inside its handshake error).
func hostKeyCheck(ep Endpoint, log *slog.Logger) (ssh.HostKeyCallback, []string, func() *HostKeyError, error) {
	var (
		mu      sync.Mutex
		refusal *HostKeyError
	)
	last := func() *HostKeyError { mu.Lock(); defer mu.Unlock(); return refusal }
	if ep.KnownHosts == "" {
		if !ep.InsecureTOFU {
			return nil, nil, nil, errors.New("no known_hosts file configured: refusing to connect without verifying the host key")
		}
		log.Warn("INSECURE: no known_hosts file; accepting any host key", "endpoint", ep.Name)
		return ssh.InsecureIgnoreHostKey(), ep.HostKeyAlgorithms, last, nil
	}
	if _, err := os.Stat(ep.KnownHosts); err != nil {
		if !errors.Is(err, fs.ErrNotExist) || !ep.InsecureTOFU {
			return nil, nil, nil, fmt.Errorf("known_hosts: %w", err)
		}
		if ep.TOFUNoRecord {
			log.Warn("INSECURE: no known_hosts file yet; accepting any host key for this check, recording nothing (the daemon records it on first use)",
				"endpoint", ep.Name, "known_hosts", ep.KnownHosts)
			return ssh.InsecureIgnoreHostKey(), ep.HostKeyAlgorithms, last, nil
		}
		if err := os.WriteFile(ep.KnownHosts, nil, 0o600); err != nil {
			return nil, nil, nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	kh, err := knownhosts.New(ep.KnownHosts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("known_hosts %s: %w", ep.KnownHosts, err)
	}
	algos := ep.HostKeyAlgorithms
	known := knownKeys(kh, ep.Addr())
	if len(algos) == 0 {
		algos = algorithmsFromKnown(known)
	}
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := kh(hostname, remote, key)
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return err // nil (verified) or revoked
		}
		if len(ke.Want) == 0 && ep.InsecureTOFU && ep.TOFUNoRecord {
			log.Warn("INSECURE: unknown host key accepted for this check and not recorded (the daemon records it on first use)", "endpoint", ep.Name,
				"host", hostname, "type", key.Type(), "fingerprint", ssh.FingerprintSHA256(key))
			return nil
		}
		if len(ke.Want) == 0 && ep.InsecureTOFU {
			line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
			f, ferr := os.OpenFile(ep.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
			if ferr == nil {
				_, ferr = f.WriteString(line + "\n")
				if cerr := f.Close(); ferr == nil {
					ferr = cerr
				}
			}
			if ferr != nil {
				return fmt.Errorf("recording host key (trust on first use): %w", ferr)
			}
			log.Warn("INSECURE: trusted an unknown host key on first use and recorded it", "endpoint", ep.Name,
				"host", hostname, "type", key.Type(), "fingerprint", ssh.FingerprintSHA256(key), "known_hosts", ep.KnownHosts)
			return nil
		}
		he := &HostKeyError{Host: hostname, KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
			Mismatch: len(ke.Want) > 0, File: ep.KnownHosts}
		for _, w := range ke.Want {
			he.Expected = append(he.Expected, w.Key.Type()+" "+ssh.FingerprintSHA256(w.Key))
		}
		mu.Lock()
		refusal = he
		mu.Unlock()
		return he
	}
	return cb, algos, last, nil
}

// HostKeyInfo is one host key a server offered, for confirmation out of band.
type HostKeyInfo struct {
	Type           string // ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, …
	Fingerprint    string // SHA256:…
	AuthorizedLine string // "type base64" (authorized_keys format)
	KnownHostsLine string // a line for known_hosts, for the address as dialled
}

// FetchHostKey connects to hostport once per host-key algorithm family (ed25519,
// ECDSA, RSA) and records the key the server presents, aborting each handshake right
// there: it trusts nothing and never authenticates. Families the server does not
// have are skipped; an error is returned only if no key at all was obtained.
func FetchHostKey(ctx context.Context, hostport string, timeout time.Duration) ([]HostKeyInfo, error) {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	families := [][]string{
		{ssh.KeyAlgoED25519},
		{ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521},
		{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA},
	}
	errAbort := errors.New("host key recorded; handshake aborted on purpose")
	var out []HostKeyInfo
	var errs []error
	for _, algos := range families {
		var got ssh.PublicKey
		cfg := &ssh.ClientConfig{User: "cmord-hostkey-fetch", HostKeyAlgorithms: algos,
			HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error { got = key; return errAbort }}
		err := handshakeOnly(ctx, hostport, timeout, cfg)
		if got == nil {
			var dialErr *dialError
			if len(out) == 0 && errors.As(err, &dialErr) {
				// No TCP connection at all (no such host, refused, timed out): the
				// other families would fail the same way, after as long again.
				return nil, fmt.Errorf("fetching host keys of %s: %w", hostport, dialErr.err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", algos[0], err))
			continue
		}
		out = append(out, HostKeyInfo{Type: got.Type(), Fingerprint: ssh.FingerprintSHA256(got),
			AuthorizedLine: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(got))),
			KnownHostsLine: knownhosts.Line([]string{knownhosts.Normalize(hostport)}, got)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("fetching host keys of %s: %w", hostport, errors.Join(errs...))
	}
	return out, nil
}

// dialError is a failure to open the TCP connection, before any SSH.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func handshakeOnly(ctx context.Context, hostport string, timeout time.Duration, cfg *ssh.ClientConfig) error {
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return &dialError{err}
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	if err := raw.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	c, chans, reqs, err := ssh.NewClientConn(raw, hostport, cfg)
	if err == nil {
		ssh.NewClient(c, chans, reqs).Close()
	}
	return err
}
