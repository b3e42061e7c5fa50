package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
)

// digestConfig writes a configuration whose mail goes to an in-process go-smtp sink and
// whose state holds one open exception.
func digestConfig(t *testing.T) *smtpsink.Sink {
	t.Helper()
	sink, err := smtpsink.Start(t.TempDir(), smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state_dir = "state"

[company]
piva = "00488410010"
name = "Energia Test S.p.A."
roles = ["uscente"]
sectors = ["E"]
piva_gestore = "01234567897"

[mail]
host = "127.0.0.1"
port = %d
tls = "none"
from = "cmord <cmord@example.it>"

[digest]
to = ["compliance@example.it"]
`, sink.Port())
	path := filepath.Join(dir, "cmord.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMORD_CONFIG", path)
	st, err := archive.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Write(context.Background(), func(tx *sql.Tx) error {
		_, _, err := st.RaiseException(context.Background(), tx, archive.Exception{Kind: "file_rejected", Severity: archive.SevHigh,
			Message: "morosi.csv: line 1: header missing column POD", LastSeen: time.Now().Add(-time.Hour)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sink
}

func TestDigestVerb(t *testing.T) {
	sink := digestConfig(t)
	htmlPath := filepath.Join(t.TempDir(), "digest.html")
	code, out, errOut := runCLI(t, "digest", "--preview", "--html", htmlPath)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Riepilogo CMOR — ", "== Sintesi ==", "File rifiutati", "header missing column POD"} {
		if !strings.Contains(out, want) {
			t.Errorf("preview lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(htmlPath); err != nil || !strings.Contains(string(b), "<h2") {
		t.Errorf("--html: %v", err)
	}
	code, out, _ = runCLI(t, "digest", "--preview", "--lang", "en")
	if code != exitOK || !strings.Contains(out, "CMOR digest — ") || !strings.Contains(out, "Files rejected") {
		t.Errorf("--lang en: exit %d:\n%s", code, out)
	}
	if len(sink.Messages()) != 0 {
		t.Fatal("--preview sent mail")
	}
	code, out, errOut = runCLI(t, "digest", "--send")
	if code != exitOK || !strings.Contains(out, "digest queued and 1 message sent") {
		t.Fatalf("--send: exit %d: %s %s", code, out, errOut)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d mails delivered, want 1", n)
	}
	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"digest"}, "give exactly one of --preview and --send"},
		{[]string{"digest", "--preview", "--send"}, "give exactly one of --preview and --send"},
		{[]string{"digest", "--preview", "--lang", "fr"}, `--lang "fr": want it or en`},
		{[]string{"digest", "--send", "--html", "x.html"}, "--html and --csv go with --preview"},
	} {
		code, _, errOut := runCLI(t, bad.args...)
		if code != exitUsage || !strings.Contains(errOut, bad.msg) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", bad.args, code, errOut, bad.msg)
		}
	}
}
