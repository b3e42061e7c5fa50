// Package sshdtest runs a real OpenSSH sshd on 127.0.0.1 for tests and benchmarks:
// temporary host keys, a generated client key in a temporary authorized_keys, the
// current user (root in CI), and the SFTP subsystem rooted at a temporary directory.
//
// The subsystem is internal-sftp, not /usr/lib/openssh/sftp-server: it is the same
// OpenSSH SFTP server code, run inside the session process instead of fork+exec'ing a
// helper per session, which is what hardened SFTP hosts (ChrootDirectory setups such
// as the SII's kind of counterpart) use, and it starts faster.
package sshdtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cmord/cmord/daemon/sftpx/sftpserver"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDPath is the OpenSSH server used.
const SSHDPath = "/usr/sbin/sshd"

// Options tune the server.
type Options struct {
	HostKeyTypes []string // "ed25519", "ecdsa", "rsa"; default ["ed25519"]
	// SFTPServer "" = internal-sftp; or a path such as /usr/lib/openssh/sftp-server, run
	// through a wrapper script named sftp-server that stops itself before exec'ing it
	// while FreezeSFTPServers is in force.
	SFTPServer  string
	LogLevel    string // sshd LogLevel; default ERROR
	ExtraConfig string // appended to sshd_config
}

// Server is a running (or stopped) sshd.
type Server struct {
	Addr           string // 127.0.0.1:port
	Host           string
	Port           int
	User           string          // the login user: the current user
	HostKey        ssh.PublicKey   // the first host key
	HostKeys       []ssh.PublicKey // all host keys, in HostKeyTypes order
	KnownHostsFile string          // trusts every host key
	ClientKeyFile  string          // private key (OpenSSH format, 0600) authorized to log in
	ClientKey      ssh.PublicKey
	Root           string // the SFTP start directory (relative client paths land here)
	Dir            string // config, keys, logs

	tb         testing.TB
	configFile string
	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{}
	log        *lockedBuffer
	freezer    chan struct{} // closed to end FreezeSFTPServers' loop
	frozen     map[int]bool
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start starts sshd or skips the test when it is not installed (fails instead when
// CI=true: CI must run these tests). It is stopped at the end of the test.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if _, err := os.Stat(SSHDPath); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("sshdtest: %s is required in CI (apt-get install openssh-server): %v", SSHDPath, err)
		}
		tb.Skipf("sshdtest: %s not installed; skipping the tests against a real OpenSSH server", SSHDPath)
	}
	s, err := newServer(tb, opts)
	if err != nil {
		tb.Fatalf("sshdtest: %v", err)
	}
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			if l := s.log.String(); l != "" {
				tb.Logf("sshd log:\n%s", l)
			}
		}
	})
	if err := s.start(); err != nil {
		tb.Fatalf("sshdtest: %v", err)
	}
	return s
}

func newServer(tb testing.TB, opts Options) (*Server, error) {
	dir := tb.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege-separation directory
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		User: u.Username, Root: root, Dir: dir, tb: tb, log: &lockedBuffer{}}

	types := opts.HostKeyTypes
	if len(types) == 0 {
		types = []string{"ed25519"}
	}
	var hostKeyLines, knownLines []string
	for _, typ := range types {
		priv, err := generate(typ)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(dir, "ssh_host_"+typ+"_key")
		pub, err := sftpserver.WritePrivateKey(file, priv, "")
		if err != nil {
			return nil, err
		}
		s.HostKeys = append(s.HostKeys, pub)
		hostKeyLines = append(hostKeyLines, "HostKey "+file)
		knownLines = append(knownLines, knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, pub))
	}
	s.HostKey = s.HostKeys[0]
	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(s.KnownHostsFile, []byte(strings.Join(knownLines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}

	clientPriv, err := generate("ed25519")
	if err != nil {
		return nil, err
	}
	s.ClientKeyFile = filepath.Join(dir, "id_ed25519")
	if s.ClientKey, err = sftpserver.WritePrivateKey(s.ClientKeyFile, clientPriv, ""); err != nil {
		return nil, err
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(s.ClientKey), 0o600); err != nil {
		return nil, err
	}

	subsystem := "internal-sftp"
	if opts.SFTPServer != "" {
		// The wrapper's process is named sftp-server too (its comm is the script's name).
		subsystem = filepath.Join(dir, "sftp-server")
		script := fmt.Sprintf("#!/bin/sh\nif [ -e %s ]; then kill -STOP $$; fi\nexec %s \"$@\"\n", s.freezeFlag(), opts.SFTPServer)
		if err := os.WriteFile(subsystem, []byte(script), 0o755); err != nil {
			return nil, err
		}
	}
	logLevel := opts.LogLevel
	if logLevel == "" {
		logLevel = "ERROR"
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
%s
PidFile none
AuthorizedKeysFile %s
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 50
LogLevel %s
Subsystem sftp %s -d %s
%s
`, port, strings.Join(hostKeyLines, "\n"), authorized, logLevel, subsystem, root, opts.ExtraConfig)
	s.configFile = filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(s.configFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func generate(typ string) (crypto.Signer, error) {
	switch typ {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "ecdsa":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unknown host key type %q (ed25519, ecdsa, rsa)", typ)
}

// start runs sshd and waits until it accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	// sshd re-executes itself and so needs its absolute path.
	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", s.configFile)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("sshd exited at start: %s", s.log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd not listening on %s after 10s: %s", s.Addr, s.log.String())
		}
	}
}

// descendants lists the processes below pid (sshd's per-connection children call
// setsid, so a process group would not reach them).
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may contain spaces, so cut after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			parent[p] = pp
		}
	}
	var out []int
	frontier := []int{pid}
	for len(frontier) > 0 {
		var next []int
		for p, pp := range parent {
			for _, f := range frontier {
				if pp == f {
					out = append(out, p)
					next = append(next, p)
				}
			}
		}
		frontier = next
	}
	return out
}

func (s *Server) signalSessions(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	for _, p := range descendants(s.cmd.Process.Pid) {
		_ = syscall.Kill(p, sig)
	}
}

// Kill SIGKILLs sshd and every session process: a crash of the server host.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGSTOP) // no new children while we collect them
	for _, p := range descendants(pid) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// Stop terminates sshd and its sessions (SIGTERM, then SIGKILL after 5 s).
func (s *Server) Stop() {
	s.ThawSFTPServers()
	s.mu.Lock()
	if s.cmd == nil {
		s.mu.Unlock()
		return
	}
	pid := s.cmd.Process.Pid
	for _, p := range descendants(pid) {
		_ = syscall.Kill(p, syscall.SIGCONT)
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	exited := s.exited
	s.mu.Unlock()
	select {
	case <-exited:
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
	case <-time.After(5 * time.Second):
		s.Kill()
	}
}

// Restart kills sshd (if running) and starts it again on the same port with the same
// host keys.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.tb.Fatalf("sshdtest: restart: %v", err)
	}
}

// Pause freezes every established session (SIGSTOP): the network path stays up but
// the server stops answering, like a hung host. New connections are still accepted.
func (s *Server) Pause() { s.signalSessions(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Server) Resume() { s.signalSessions(syscall.SIGCONT) }

// SFTPServerPIDs lists the running sftp-server processes of the sessions (with
// Options.SFTPServer = "/usr/lib/openssh/sftp-server": internal-sftp runs inside
// sshd's own session process and has none).
func (s *Server) SFTPServerPIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sftpServerPIDs()
}

func (s *Server) freezeFlag() string { return filepath.Join(s.Dir, "sftp-frozen") }

func (s *Server) sftpServerPIDs() []int {
	if s.cmd == nil {
		return nil
	}
	var out []int
	for _, p := range descendants(s.cmd.Process.Pid) {
		if comm, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "sftp-server" {
			out = append(out, p)
		}
	}
	return out
}

// FreezeSFTPServers SIGSTOPs every sftp-server process, and every new session's
// stops itself before it answers anything, until ThawSFTPServers: the SFTP side of the
// host hangs (a stuck disk) while sshd, and so the SSH transport and its keepalive
// replies, still answer. It needs Options.SFTPServer.
func (s *Server) FreezeSFTPServers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freezer != nil {
		return
	}
	if err := os.WriteFile(s.freezeFlag(), nil, 0o644); err != nil {
		s.tb.Fatalf("sshdtest: %v", err)
	}
	stop := make(chan struct{})
	s.freezer = stop
	if s.frozen == nil {
		s.frozen = map[int]bool{}
	}
	freeze := func() {
		for _, p := range s.sftpServerPIDs() {
			if !s.frozen[p] {
				_ = syscall.Kill(p, syscall.SIGSTOP)
				s.frozen[p] = true
			}
		}
	}
	freeze()
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			s.mu.Lock()
			if s.freezer == stop {
				freeze()
			}
			s.mu.Unlock()
		}
	}()
}

// ThawSFTPServers ends FreezeSFTPServers: every stopped sftp-server gets SIGCONT.
func (s *Server) ThawSFTPServers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freezer != nil {
		close(s.freezer)
		s.freezer = nil
	}
	_ = os.Remove(s.freezeFlag())
	for p := range s.frozen {
		_ = syscall.Kill(p, syscall.SIGCONT)
	}
	for _, p := range s.sftpServerPIDs() { // those that stopped themselves
		_ = syscall.Kill(p, syscall.SIGCONT)
	}
	s.frozen = nil
}

// Log is what sshd wrote to stderr so far.
func (s *Server) Log() string { return s.log.String() }

// KnownHostsLine is a known_hosts line for key at this server's address.
func (s *Server) KnownHostsLine(key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, key)
}
