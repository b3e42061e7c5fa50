// Package sftpserver is an in-process SFTP server (x/crypto/ssh + pkg/sftp's request
// server) on 127.0.0.1 for fast tests and `cmord demo`: one generated ed25519 host key,
// public-key authentication for one authorized key, and a chrooted view of a root
// directory (the client's "/" is root; paths cannot leave it). Plain SSH_FXP_RENAME
// refuses an existing target as SFTP v3 and OpenSSH do; posix-rename@openssh.com
// replaces it.
package sftpserver

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Server is a running SFTP server.
type Server struct {
	Addr    string // 127.0.0.1:port
	Port    int
	HostKey ssh.PublicKey
	Root    string

	ln     net.Listener
	config *ssh.ServerConfig
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	opened map[string]int // client path → times opened for reading
}

// Start serves root on 127.0.0.1 at a free port, accepting the user (any name) that
// proves possession of the private key of authorized.
func Start(root string, authorized ssh.PublicKey) (*Server, error) {
	return StartOn("127.0.0.1:0", root, authorized)
}

// StartOn is Start on a given address (e.g. to come back on the same port).
func StartOn(addr, root string, authorized ssh.PublicKey) (*Server, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("sftpserver: root %s is not a directory (%v)", root, err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	want := authorized.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), want) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not authorized")
		},
		ServerVersion: "SSH-2.0-cmord-sftpserver",
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port, HostKey: signer.PublicKey(),
		Root: root, ln: ln, config: cfg, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// OpenedForReading tells how many times a client opened p (its view: "/out/x.csv")
// for reading, so that a test can prove a file was never read.
func (s *Server) OpenedForReading(p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened[filepath.ToSlash(filepath.Clean("/"+p))]
}

func (s *Server) noteOpen(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened == nil {
		s.opened = map[string]int{}
	}
	s.opened[p]++
}

// WriteClientKey writes a new ed25519 private key for a client at path (OpenSSH
// format, mode 0600, with comment; its public half beside it as path.pub) and returns
// the public key, the one to give Start.
func WriteClientKey(path, comment string) (ssh.PublicKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return WritePrivateKey(path, priv, comment)
}

// WritePrivateKey writes priv at path (OpenSSH format, mode 0600, with comment; its
// public half beside it as path.pub) and returns the public key.
func WritePrivateKey(path string, priv crypto.Signer, comment string) (ssh.PublicKey, error) {
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	return pub, os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644)
}

// KnownHostsLine is the known_hosts line for this server.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey)
}

// WriteKnownHosts writes a known_hosts file trusting this server.
func (s *Server) WriteKnownHosts(path string) error {
	return os.WriteFile(path, []byte(s.KnownHostsLine()+"\n"), 0o600)
}

// Close stops listening and drops every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Server) serveConn(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sc.Close()
	go ssh.DiscardRequests(reqs) // answers keepalive@openssh.com with a refusal, as OpenSSH does
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				if req.Type == "subsystem" && len(req.Payload) > 4 && string(req.Payload[4:]) == "sftp" {
					_ = req.Reply(true, nil)
					go ssh.DiscardRequests(creqs)
					rs := sftp.NewRequestServer(ch, handlers(s.Root, s.noteOpen), sftp.WithStartDirectory("/"))
					_ = rs.Serve()
					rs.Close()
					return
				}
				_ = req.Reply(false, nil)
			}
		}()
	}
}

// rootFS maps the client's absolute, cleaned paths (pkg/sftp cleans them: no "..")
// under root.
type rootFS struct {
	root   string
	onRead func(clientPath string) // a file opened for reading
}

func handlers(root string, onRead func(string)) sftp.Handlers {
	fsys := &rootFS{root: root, onRead: onRead}
	return sftp.Handlers{FileGet: fsys, FilePut: fsys, FileCmd: fsys, FileList: fsys}
}

func (r *rootFS) real(p string) string { return filepath.Join(r.root, filepath.FromSlash(p)) }

func (r *rootFS) Fileread(req *sftp.Request) (io.ReaderAt, error) {
	r.onRead(req.Filepath)
	return os.Open(r.real(req.Filepath))
}

func openFlags(pf sftp.FileOpenFlags) int {
	var f int
	switch {
	case pf.Read && pf.Write:
		f = os.O_RDWR
	case pf.Write:
		f = os.O_WRONLY
	default:
		f = os.O_RDONLY
	}
	if pf.Append {
		f |= os.O_APPEND
	}
	if pf.Creat {
		f |= os.O_CREATE
	}
	if pf.Trunc {
		f |= os.O_TRUNC
	}
	if pf.Excl {
		f |= os.O_EXCL
	}
	return f
}

func (r *rootFS) Filewrite(req *sftp.Request) (io.WriterAt, error) {
	return os.OpenFile(r.real(req.Filepath), openFlags(req.Pflags())|os.O_WRONLY, 0o644)
}

func (r *rootFS) OpenFile(req *sftp.Request) (sftp.WriterAtReaderAt, error) {
	if req.Pflags().Read {
		r.onRead(req.Filepath)
	}
	return os.OpenFile(r.real(req.Filepath), openFlags(req.Pflags()), 0o644)
}

func (r *rootFS) Filecmd(req *sftp.Request) error {
	p := r.real(req.Filepath)
	switch req.Method {
	case "Setstat":
		attrs, flags := req.Attributes(), req.AttrFlags()
		if flags.Size {
			if err := os.Truncate(p, int64(attrs.Size)); err != nil {
				return err
			}
		}
		if flags.Permissions {
			if err := os.Chmod(p, attrs.FileMode().Perm()); err != nil {
				return err
			}
		}
		if flags.Acmodtime {
			return os.Chtimes(p, attrs.AccessTime(), attrs.ModTime())
		}
		return nil
	case "Rename":
		// SFTP v3: fail if the target exists. link+unlink makes that atomic, as in
		// OpenSSH's sftp-server.
		target := r.real(req.Target)
		if err := os.Link(p, target); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return err
			}
			if _, serr := os.Lstat(target); serr == nil {
				return fs.ErrExist
			}
			return os.Rename(p, target) // directories, or filesystems without hard links
		}
		return os.Remove(p)
	case "Rmdir":
		return syscall.Rmdir(p)
	case "Remove":
		return syscall.Unlink(p)
	case "Mkdir":
		return os.Mkdir(p, 0o755)
	case "Link":
		return os.Link(p, r.real(req.Target))
	case "Symlink":
		return sftp.ErrSSHFxOpUnsupported // a symlink could point outside the root
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename replaces the target atomically (posix-rename@openssh.com).
func (r *rootFS) PosixRename(req *sftp.Request) error {
	return os.Rename(r.real(req.Filepath), r.real(req.Target))
}

type listerAt []os.FileInfo

func (l listerAt) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

func (r *rootFS) Filelist(req *sftp.Request) (sftp.ListerAt, error) {
	p := r.real(req.Filepath)
	switch req.Method {
	case "List":
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		out := make(listerAt, 0, len(entries))
		for _, e := range entries {
			if fi, err := e.Info(); err == nil {
				out = append(out, fi)
			}
		}
		return out, nil
	case "Stat":
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		return listerAt{renamed{fi, req.Filepath}}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat does not follow a final symlink.
func (r *rootFS) Lstat(req *sftp.Request) (sftp.ListerAt, error) {
	fi, err := os.Lstat(r.real(req.Filepath))
	if err != nil {
		return nil, err
	}
	return listerAt{renamed{fi, req.Filepath}}, nil
}

// RealPath resolves a path in the client's view (already cleaned and absolute).
func (r *rootFS) RealPath(p string) (string, error) {
	return filepath.ToSlash(filepath.Clean("/" + p)), nil
}

// renamed reports the base name of the client's path, not of the real one.
type renamed struct {
	os.FileInfo
	clientPath string
}

func (f renamed) Name() string {
	if f.clientPath == "/" {
		return "/"
	}
	return filepath.Base(f.clientPath)
}
