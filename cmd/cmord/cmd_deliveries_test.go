package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon"
	"github.com/cmord/cmord/daemon/sftpx/sftpserver"
)

// deliveriesWorld is a running daemon publishing to a real SFTP server (pkg/sftp's
// server over SSH on 127.0.0.1), with the CLI pointed at its configuration.
type deliveriesWorld struct {
	t     *testing.T
	d     *daemon.Daemon
	inbox string // the server's directory we publish to
}

func newDeliveriesWorld(t *testing.T) *deliveriesWorld {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "sii")
	if err := os.MkdirAll(filepath.Join(root, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	sshPub, err := sftpserver.WriteClientKey(keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sftpserver.Start(root, sshPub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	known := filepath.Join(dir, "known_hosts")
	if err := srv.WriteKnownHosts(known); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cmord.toml")
	toml := fmt.Sprintf(`state_dir = "state"
[company]
piva = "00488410010"
name = "Energia Test S.p.A."
roles = ["uscente"]
sectors = ["E", "G"]
piva_gestore = "01234567897"
[[sftp]]
name = "sii"
host = "127.0.0.1"
port = %d
user = "cmord"
key_file = %q
known_hosts = %q
outbound_dir = "/in"
backoff_min = "10ms"
backoff_max = "20ms"
`, srv.Port, keyFile, known)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMORD_CONFIG", cfgPath)
	t.Setenv("SUDO_USER", "")
	t.Setenv("USER", "tester")
	t.Setenv("COLUMNS", "")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &deliveriesWorld{t: t, d: d, inbox: filepath.Join(root, "in")}
}

// queue archives a built flow file and queues it to the SII, as a builder does.
func (w *deliveriesWorld) queue(name, content string) {
	w.t.Helper()
	ctx := context.Background()
	err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
		f, err := w.d.ArchiveBuilt(ctx, tx, daemon.Built{Name: name, Kind: "REQ", Content: []byte(content)}, "built")
		if err != nil {
			return err
		}
		return w.d.QueueToSII(ctx, tx, f)
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *deliveriesWorld) remote(name, content string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.inbox, name), []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *deliveriesWorld) deliver() {
	w.t.Helper()
	if _, err := w.d.DeliverDue(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func (w *deliveriesWorld) ls(args ...string) []deliveryJSON {
	w.t.Helper()
	code, out, errOut := runCLI(w.t, append([]string{"deliveries", "ls", "--format", "json"}, args...)...)
	if code != exitOK {
		w.t.Fatalf("deliveries ls: exit %d: %s", code, errOut)
	}
	var list []deliveryJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		w.t.Fatalf("%v: %s", err, out)
	}
	return list
}

func (w *deliveriesWorld) uploadFailed() []archive.Exception {
	w.t.Helper()
	open := true
	es, err := w.d.Store.Exceptions(context.Background(), archive.ExceptionFilter{Kind: "upload_failed", Open: &open})
	if err != nil {
		w.t.Fatal(err)
	}
	return es
}

const (
	reqName1 = "00488410010_SI10050_20261202_0001.csv"
	reqName2 = "00488410010_SI10050_20261202_0002.csv"
	reqName3 = "00488410010_SI10050_20261202_0003.csv"
	reqName9 = "00488410010_SI10050_20261202_0009.csv"
)

// TestDeliveriesConflictWayOut: a file of the same name and other content is already
// on the SII server. The delivery fails for good; the exception names commands that
// exist; `deliveries ls` shows the conflict (the server's size and time against ours);
// each way out works against the real server: retry once the server's file is gone,
// retry under another name of the same flow, abandon with a note.
func TestDeliveriesConflictWayOut(t *testing.T) {
	w := newDeliveriesWorld(t)
	ours := "CP_UTENTE;POD\r\nE260000001;IT001E00000001\r\n"
	w.remote(reqName1, "other\r\n")
	w.queue(reqName1, ours)
	w.deliver()

	list := w.ls()
	if len(list) != 1 || list[0].State != "failed" || list[0].Attempts != 1 || list[0].RemoteSize == nil || *list[0].RemoteSize != 7 ||
		list[0].RemoteMTime == "" || list[0].Size != int64(len(ours)) || !strings.Contains(list[0].LastError, "already exists with other content") {
		t.Fatalf("after the conflict: %+v", list)
	}
	id := list[0].ID
	code, table, _ := runCLI(t, "deliveries", "ls")
	t.Logf("deliveries ls:\n%s", table)
	for _, want := range []string{"failed", reqName1, "server: 7 B modified", fmt.Sprintf("ours: %d B built", len(ours)),
		"failed for good", "cmord deliveries retry ID --as NAME", "cmord deliveries abandon ID --note T"} {
		if code != exitOK || !strings.Contains(table, want) {
			t.Errorf("deliveries ls (exit %d) does not say %q:\n%s", code, want, table)
		}
	}
	es := w.uploadFailed()
	if len(es) != 1 || !strings.Contains(es[0].Action, fmt.Sprintf("cmord deliveries retry %d", id)) ||
		!strings.Contains(es[0].Action, fmt.Sprintf("cmord deliveries abandon %d", id)) || !strings.Contains(es[0].Message, "abandoned: the name is taken") {
		t.Fatalf("exception: %+v", es)
	}
	// The commands the exception names exist and say what they do.
	for _, verb := range []string{"ls", "retry", "abandon"} {
		if code, _, errOut := runCLI(t, "deliveries", verb, "--help"); code != exitOK {
			t.Errorf("deliveries %s --help: exit %d %s", verb, code, errOut)
		}
	}
	// Not retried by the daemon on its own.
	w.deliver()
	if l := w.ls(); l[0].Attempts != 1 {
		t.Errorf("a conflict retried without a person: %+v", l[0])
	}

	t.Run("retry while the server's file is still there: fails again, still shown", func(t *testing.T) {
		if code, out, errOut := runCLI(t, "deliveries", "retry", fmt.Sprint(id)); code != exitOK || !strings.Contains(out, "re-queued by tester") {
			t.Fatalf("retry: exit %d %q %q", code, out, errOut)
		}
		if l := w.ls(); l[0].State != "pending" {
			t.Fatalf("after retry: %+v", l[0])
		}
		w.deliver()
		if l := w.ls(); l[0].State != "failed" || l[0].Attempts != 2 || l[0].RemoteSize == nil {
			t.Fatalf("retried into the same conflict: %+v", l[0])
		}
		if es := w.uploadFailed(); len(es) != 1 || es[0].Count != 2 {
			t.Errorf("exception after the second conflict: %+v", es)
		}
	})
	t.Run("retry once the server's file is removed: published", func(t *testing.T) {
		if err := os.Remove(filepath.Join(w.inbox, reqName1)); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := runCLI(t, "deliveries", "retry", "#"+fmt.Sprint(id)); code != exitOK {
			t.Fatalf("retry: exit %d %s", code, errOut)
		}
		w.deliver()
		if got, _ := os.ReadFile(filepath.Join(w.inbox, reqName1)); string(got) != ours {
			t.Errorf("on the server: %q", got)
		}
		if l := w.ls("--all"); len(l) != 1 || l[0].State != "delivered" || l[0].DeliveredAt == "" {
			t.Errorf("after the retry: %+v", l)
		}
		if es := w.uploadFailed(); len(es) != 0 {
			t.Errorf("exception still open: %+v", es)
		}
		if code, _, errOut := runCLI(t, "deliveries", "retry", fmt.Sprint(id)); code != exitFindings || !strings.Contains(errOut, "is delivered, not failed") {
			t.Errorf("retry of a delivered one: exit %d %q", code, errOut)
		}
	})
	t.Run("retry under another name of the same flow", func(t *testing.T) { conflictRetryAs(t, w) })
	t.Run("abandon with a note", func(t *testing.T) { conflictAbandon(t, w) })
}

// conflictRetryAs: a delivery in conflict is retried under another name of the same
// flow (names that are no file of the flow, not plain, or taken are refused).
func conflictRetryAs(t *testing.T, w *deliveriesWorld) {
	w.remote(reqName2, "someone else's\r\n")
	w.queue(reqName2, "CP_UTENTE;POD\r\nE260000002;IT001E00000002\r\n")
	w.deliver()
	id2 := w.ls()[0].ID
	for _, bad := range []struct {
		as   string
		code int
		msg  string
	}{
		{"report.csv", exitFindings, "is not named as a REQ flow file"},
		{"../x.csv", exitUsage, "a plain file name"},
		{reqName1, exitFindings, "already publishes a file as " + reqName1},
	} {
		if code, _, errOut := runCLI(t, "deliveries", "retry", fmt.Sprint(id2), "--as", bad.as); code != bad.code || !strings.Contains(errOut, bad.msg) {
			t.Errorf("retry --as %s: exit %d %q; want %d %q", bad.as, code, errOut, bad.code, bad.msg)
		}
	}
	if code, out, errOut := runCLI(t, "deliveries", "retry", fmt.Sprint(id2), "--as", reqName9); code != exitOK || !strings.Contains(out, "as "+reqName9) {
		t.Fatalf("retry --as: exit %d %q %q", code, out, errOut)
	}
	if es := w.uploadFailed(); len(es) != 0 {
		t.Errorf("the old name's exception still open: %+v", es)
	}
	w.deliver()
	if got, _ := os.ReadFile(filepath.Join(w.inbox, reqName9)); !strings.Contains(string(got), "E260000002") {
		t.Errorf("not published under the new name: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(w.inbox, reqName2)); string(got) != "someone else's\r\n" {
		t.Errorf("the server's own file was touched: %q", got)
	}
}

// conflictAbandon: a delivery in conflict is abandoned with a note, and never
// attempted again.
func conflictAbandon(t *testing.T, w *deliveriesWorld) {
	w.remote(reqName3, "sent by hand\r\n")
	w.queue(reqName3, "CP_UTENTE;POD\r\nE260000003;IT001E00000003\r\n")
	w.deliver()
	id3 := w.ls()[0].ID
	if code, _, errOut := runCLI(t, "deliveries", "abandon", fmt.Sprint(id3)); code != exitUsage || !strings.Contains(errOut, "--note is required") {
		t.Errorf("abandon without a note: exit %d %q", code, errOut)
	}
	if code, out, errOut := runCLI(t, "deliveries", "abandon", fmt.Sprint(id3), "--note", "the SII has the corrected file sent by PEC"); code != exitOK || !strings.Contains(out, "abandoned by tester") {
		t.Fatalf("abandon: exit %d %q %q", code, out, errOut)
	}
	if l := w.ls(); len(l) != 0 {
		t.Errorf("still listed as waiting: %+v", l)
	}
	l := w.ls("--state", "abandoned")
	if len(l) != 1 || l[0].AbandonedBy != "tester" || l[0].Note != "the SII has the corrected file sent by PEC" || l[0].AbandonedAt == "" {
		t.Errorf("abandoned: %+v", l)
	}
	if es := w.uploadFailed(); len(es) != 0 {
		t.Errorf("exception still open after abandon: %+v", es)
	}
	w.deliver()
	if got, _ := os.ReadFile(filepath.Join(w.inbox, reqName3)); string(got) != "sent by hand\r\n" {
		t.Errorf("an abandoned delivery was attempted: %q", got)
	}
	if code, _, errOut := runCLI(t, "deliveries", "retry", fmt.Sprint(id3)); code != exitFindings || !strings.Contains(errOut, "is abandoned, not failed") {
		t.Errorf("retry of an abandoned one: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "deliveries", "abandon", "99", "--note", "x"); code != exitFindings || !strings.Contains(errOut, "delivery 99") {
		t.Errorf("abandon of an unknown one: exit %d %q", code, errOut)
	}
}
