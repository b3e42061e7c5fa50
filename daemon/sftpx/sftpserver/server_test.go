package sftpserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func connect(t *testing.T, signer ssh.Signer, s *Server, known string) (*sftp.Client, error) {
	t.Helper()
	cb, err := knownhosts.New(known)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{User: "any", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: cb})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { sc.Close() })
	return sftp.NewClient(sc)
}

func newSigner(t *testing.T) ssh.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServer(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	signer := newSigner(t)
	s, err := Start(root, signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	known := filepath.Join(dir, "known_hosts")
	if err := s.WriteKnownHosts(known); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, newSigner(t), s, known); err == nil {
		t.Fatal("an unauthorized key logged in")
	}
	c, err := connect(t, signer, s, known)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.HasExtension("posix-rename@openssh.com"); !ok {
		t.Error("posix-rename@openssh.com not advertised")
	}

	write := func(p, content string) {
		t.Helper()
		f, err := c.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatalf("open %s: %v", p, err)
		}
		if _, err := io.WriteString(f, content); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	t.Run("chrooted view", func(t *testing.T) {
		write("../../escape.txt", "x") // lands in root, not above it
		if _, err := os.Stat(filepath.Join(root, "escape.txt")); err != nil {
			t.Errorf("write through ..: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "escape.txt")); err == nil {
			t.Error("escaped the root")
		}
		if wd, err := c.Getwd(); err != nil || wd != "/" {
			t.Errorf("cwd %q %v", wd, err)
		}
		if err := c.Symlink("/etc/passwd", "link"); err == nil {
			t.Error("symlinks must be refused")
		}
	})
	t.Run("rename semantics", func(t *testing.T) {
		write("a", "A")
		write("b", "B")
		if err := c.Rename("a", "b"); err == nil {
			t.Error("plain rename replaced an existing file")
		}
		if got, _ := os.ReadFile(filepath.Join(root, "b")); string(got) != "B" {
			t.Errorf("b = %q", got)
		}
		if err := c.PosixRename("a", "b"); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(root, "b")); string(got) != "A" {
			t.Errorf("b = %q after posix-rename", got)
		}
		if err := c.Rename("b", "c"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Stat("b"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("b still there: %v", err)
		}
	})
	t.Run("listing and stat", func(t *testing.T) {
		if err := c.MkdirAll("in/sub"); err != nil {
			t.Fatal(err)
		}
		write("in/f.csv", "12345")
		fis, err := c.ReadDir("in")
		if err != nil || len(fis) != 2 {
			t.Fatalf("%v %v", fis, err)
		}
		fi, err := c.Stat("in/f.csv")
		if err != nil || fi.Size() != 5 || fi.Name() != "f.csv" {
			t.Errorf("%v %v", fi, err)
		}
		if err := c.Remove("in/f.csv"); err != nil {
			t.Fatal(err)
		}
	})
}
