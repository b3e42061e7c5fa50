package smtpsink

import (
	"crypto/tls"
	"errors"
	"net/smtp"
	"os"
	"strings"
	"testing"
)

const raw = "From: a@example.it\r\nTo: b@example.it\r\nSubject: hi\r\n\r\nbody\r\n"

func send(addr string, auth smtp.Auth) error {
	return smtp.SendMail(addr, auth, "a@example.it", []string{"b@example.it"}, []byte(raw))
}

func TestSinkWritesEMLAndSurvivesStopResume(t *testing.T) {
	s, err := Start(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr()
	if err := send(addr, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := send(addr, nil); err == nil {
		t.Fatal("sent to a stopped sink")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Errorf("resumed on %s, was %s", s.Addr(), addr)
	}
	s.FailNext(1)
	err = send(addr, nil)
	var perr interface{ Error() string }
	if err == nil || !strings.HasPrefix(err.Error(), "451") || !errors.As(err, &perr) {
		t.Fatalf("FailNext: %v", err)
	}
	if err := send(addr, nil); err != nil {
		t.Fatal(err)
	}
	files, err := ReadEML(s.Dir())
	if err != nil || len(files) != 2 || string(files[0]) != raw {
		t.Fatalf("files %d %v %q", len(files), err, files)
	}
	m := s.Messages()
	if len(m) != 2 || m[0].From != "a@example.it" || m[0].To[0] != "b@example.it" || m[1].Path == "" {
		t.Errorf("messages %+v", m)
	}
	if _, err := os.Stat(m[1].Path); err != nil {
		t.Error(err)
	}
}

func TestSinkAuthAndSTARTTLS(t *testing.T) {
	s, err := Start(t.TempDir(), Options{Username: "u", Password: "p", STARTTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dial := func() *smtp.Client {
		c, err := smtp.Dial(s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Mail("a@example.it"); err == nil {
			t.Error("MAIL accepted without AUTH")
		}
		c.Reset()
		if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1", RootCAs: s.CertPool()}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := dial().Auth(smtp.PlainAuth("", "u", "wrong", "127.0.0.1")); err == nil {
		t.Error("wrong password accepted")
	}
	c := dial()
	if err := c.Auth(smtp.PlainAuth("", "u", "p", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.it"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.it"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(raw))
	if err := w.Close(); err != nil { // returns after the server's 250, i.e. after the file is written
		t.Fatal(err)
	}
	m := s.Messages()
	if len(m) != 1 || !m[0].TLS || m[0].User != "u" {
		t.Errorf("messages %+v", m)
	}
}
