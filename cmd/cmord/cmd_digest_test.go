package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
	"github.com/cmord/cmord/flows"
)

// digestConfig writes a configuration whose mail goes to an in-process go-smtp sink and
// whose state holds one open exception and a practice whose request window closes in
// two days (the deadline job has not run: a digest raises its exception).
func digestConfig(t *testing.T) (*smtpsink.Sink, string) {
	t.Helper()
	return digestConfigWith(t, "")
}

// digestConfigWith is digestConfig with more [digest] keys.
func digestConfigWith(t *testing.T, digestKeys string) (*smtpsink.Sink, string) {
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
%s`, sink.Port(), digestKeys)
	path := filepath.Join(dir, "cmord.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMORD_CONFIG", path)
	stateDir := filepath.Join(dir, "state")
	st, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	today := flows.Today(time.Now())
	err = st.Write(context.Background(), func(tx *sql.Tx) error {
		_, _, err := st.RaiseException(context.Background(), tx, archive.Exception{Kind: "file_rejected", Severity: archive.SevHigh,
			Message: "morosi.csv: line 1: header missing column POD", LastSeen: time.Now().Add(-time.Hour)})
		if err != nil {
			return err
		}
		return st.CreatePractice(context.Background(), tx, &archive.Practice{CaseKey: "U|IT001E12345678|RSSMRA85T10A562S|2025-11-01",
			Role: "uscente", Sector: "E", CompanyPIVA: "00488410010", CPUtente: "E260000012", Point: "IT001E12345678",
			CustomerID: "RSSMRA85T10A562S", State: flows.StateReady, WindowOpen: today.AddDays(-100), WindowClose: today.AddDays(2)},
			archive.HistoryEntry{At: time.Now().Add(-time.Hour), Flow: "uscente.morosi"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return sink, stateDir
}

// archiveCounts counts the exceptions, deadline rows and digests recorded in the state.
func archiveCounts(t *testing.T, stateDir string) string {
	t.Helper()
	st, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var exc, open, deadlines, digests int
	if err := st.Read().QueryRow(`SELECT (SELECT count(*) FROM exceptions), (SELECT count(*) FROM exceptions WHERE resolved_at IS NULL),
		(SELECT count(*) FROM deadlines), (SELECT count(*) FROM digests)`).Scan(&exc, &open, &deadlines, &digests); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("exceptions %d (open %d), deadlines %d, digests %d", exc, open, deadlines, digests)
}

// A preview is read-only: it shows the deadline exception the daemon would raise but
// records nothing, and never claims an attachment.
func TestDigestPreviewReadOnly(t *testing.T) {
	_, stateDir := digestConfig(t)
	before := archiveCounts(t, stateDir)
	csvPath := filepath.Join(t.TempDir(), "digest.csv")
	for _, c := range []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"text only", []string{"digest", "--preview"},
			[]string{"Finestra di richiesta in chiusura", "(nuova) [urgente]", "chiusura finestra di richiesta"}, []string{"allegato"}},
		{"with --csv", []string{"digest", "--preview", "--csv", csvPath},
			[]string{"Elenco completo in CSV nel file " + csvPath}, []string{"allegato"}},
		{"english", []string{"digest", "--preview", "--lang", "en"},
			[]string{"Request window closing", "(new) [urgent]"}, []string{"attach"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("preview lacks %q:\n%s", w, out)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(out, w) {
					t.Errorf("preview says %q:\n%s", w, out)
				}
			}
			if after := archiveCounts(t, stateDir); after != before {
				t.Errorf("the preview wrote to the archive: before %s, after %s", before, after)
			}
		})
	}
	if b, err := os.ReadFile(csvPath); err != nil || !strings.Contains(string(b), "Finestra di richiesta in chiusura") {
		t.Errorf("--csv: %v %q", err, b)
	}
	// The real digest raises it.
	if code, _, errOut := runCLI(t, "digest", "--send"); code != exitOK {
		t.Fatalf("--send: exit %d: %s", code, errOut)
	}
	if after := archiveCounts(t, stateDir); after == before {
		t.Errorf("--send recorded nothing: %s", after)
	}
}

func TestDigestVerb(t *testing.T) {
	sink, _ := digestConfig(t)
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

// TestDigestBoundPreviewAndSend: with the list over [digest] attachment_max_rows, the
// preview says how much of it a digest sent now would attach and writes the whole list
// to its CSV file; the digest sent attaches that much, and its body says "N of M" and
// the command for the whole list, which is the preview's.
func TestDigestBoundPreviewAndSend(t *testing.T) {
	sink, _ := digestConfigWith(t, "attachment_max_rows = 1\n")
	csvPath := filepath.Join(t.TempDir(), "eccezioni.csv")
	code, out, errOut := runCLI(t, "digest", "--preview", "--csv", csvPath)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Inviato ora, il riepilogo allegherebbe solo la prima eccezione di 2, la più urgente",
		"l'elenco completo si ottiene con: cmord digest --preview --csv eccezioni.csv", "Elenco completo in CSV nel file " + csvPath} {
		if !strings.Contains(out, want) {
			t.Errorf("preview lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(string(b), "\r\n") - 1; rows != 2 {
		t.Errorf("the preview's CSV file has %d rows, want the whole list, 2", rows)
	}
	if code, out, errOut := runCLI(t, "digest", "--send"); code != exitOK {
		t.Fatalf("--send: exit %d: %s %s", code, out, errOut)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails delivered, want 1", len(msgs))
	}
	parts := mimeParts(t, msgs[0].Data)
	text := string(parts["text/plain"])
	for _, want := range []string{"Allegati parziali: contengono solo la prima eccezione di 2, la più urgente",
		"si ottiene sul server con: cmord digest --preview --csv eccezioni.csv"} {
		if !strings.Contains(text, want) {
			t.Errorf("the digest sent lacks %q:\n%s", want, text)
		}
	}
	csvData, ok := parts["text/csv"]
	if !ok {
		t.Fatalf("no CSV attachment among %d parts", len(parts))
	}
	if rows := strings.Count(string(csvData), "\r\n") - 1; rows != 1 {
		t.Errorf("the CSV attachment has %d rows, want 1", rows)
	}
	if !strings.Contains(string(csvData), "Finestra di richiesta in chiusura") {
		t.Error("the CSV attachment does not carry the most urgent row (the urgent window closing)")
	}
}

// mimeParts is the decoded leaf parts of a message by media type.
func mimeParts(t *testing.T, raw []byte) map[string][]byte {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	var walk func(h textproto.MIMEHeader, body io.Reader)
	walk = func(h textproto.MIMEHeader, body io.Reader) {
		mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			r := multipart.NewReader(body, params["boundary"])
			for {
				p, err := r.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p.Header, p)
			}
		}
		switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		out[mt] = b
	}
	walk(textproto.MIMEHeader(m.Header), m.Body)
	return out
}
