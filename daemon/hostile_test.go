package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/intake"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// ammAnswer is an SI1.0100 answer (CSV) padded to exactly size bytes.
func ammAnswer(size int) string {
	head := "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n"
	row := "SI1;0100;" + ourPIVA + ";" + gestorePIVA + ";E259999999;;0;4;"
	pad := size - len(head) - len(row) - 2
	return head + row + strings.Repeat("m", max(pad, 0)) + "\r\n"
}

// TestSizeLimits: each limit refuses a file one byte over it while reading, before
// anything is archived: the archive keeps the file's row (state rejected, its SHA-256
// and size) but no blob, a file_rejected exception (rule SIZE) names the limit, and a
// file at the limit goes through. An SII file whose listed size is over the limit its
// name gives is refused before it is downloaded: the server sees no read of it, the
// row has its name and size but no SHA-256, and the refusal is recorded once however
// many polls see it again.
func TestSizeLimits(t *testing.T) {
	const kib = 1024
	tests := []struct {
		name       string
		folder     int64 // max_size of the morosi folder (0: default)
		limits     config.Limits
		drop       int    // bytes dropped in morosi (0: none)
		answer     int    // bytes of the SI1.0100 answer (0: none)
		answerName string // its name on the server (default: one that names the flow)
		refused    bool
		unread     bool  // refused from the listing, never read
		limit      int64 // the limit named in the refusal
	}{
		{name: "folder: one byte over max_size", folder: kib, drop: kib + 1, refused: true, limit: kib},
		{name: "folder: exactly max_size", folder: kib, drop: kib},
		{name: "folder: default 512MiB lets a big extract through", drop: 64 * kib},
		{name: "SII: one byte over sii_file", limits: config.Limits{SIIFile: kib}, answer: kib + 1, refused: true, unread: true, limit: kib},
		{name: "SII: far over sii_file", limits: config.Limits{SIIFile: kib}, answer: 3 << 20, refused: true, unread: true, limit: kib},
		{name: "SII: exactly sii_file", limits: config.Limits{SIIFile: kib}, answer: kib},
		{name: "SII: the flow's own limit above sii_file", limits: config.Limits{SIIFile: kib, SIIFlow: map[string]int64{"REQ_AMM": 4 * kib}}, answer: 2 * kib},
		{name: "SII: the flow's own limit below sii_file", limits: config.Limits{SIIFile: 8 * kib, SIIFlow: map[string]int64{"REQ_AMM": kib}}, answer: 2 * kib, refused: true, unread: true, limit: kib},
		{name: "SII: another flow's limit does not apply", limits: config.Limits{SIIFile: kib, SIIFlow: map[string]int64{"REQ_ESITO": 8 * kib}}, answer: 2 * kib, refused: true, unread: true, limit: kib},
		// A name that does not say the flow: held to the largest limit before reading,
		// to the flow's own once its first bytes name it.
		{name: "SII, unnamed flow: over every limit", answerName: "answer.csv", limits: config.Limits{SIIFile: kib, SIIFlow: map[string]int64{"REQ_AMM": 2 * kib}}, answer: 3 * kib, refused: true, unread: true, limit: 2 * kib},
		{name: "SII, unnamed flow: within its flow's limit", answerName: "answer.csv", limits: config.Limits{SIIFile: kib, SIIFlow: map[string]int64{"REQ_AMM": 4 * kib}}, answer: 2 * kib},
		{name: "SII, unnamed flow: over its flow's limit once read", answerName: "answer.csv", limits: config.Limits{SIIFile: 8 * kib, SIIFlow: map[string]int64{"REQ_AMM": kib}}, answer: 2 * kib, refused: true, limit: kib},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			cfg := *w.d.Config()
			cfg.Folders = append([]config.Folder(nil), cfg.Folders...)
			if tc.folder != 0 {
				cfg.Folders[0].MaxSize = tc.folder
			}
			if tc.limits.SIIFile != 0 {
				cfg.Limits = tc.limits
			}
			if err := w.d.apply(&cfg); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var content, name string
			if tc.drop > 0 {
				name = "morosi.csv"
				content = strings.Join(morosiHeader, ";") + "\r\n"
				content += strings.Repeat("x", tc.drop-len(content))
				w.drop("morosi", name, content)
				if err := w.d.ScanFoldersOnce(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				name, content = "SI10100_20251016_0001.csv", ammAnswer(tc.answer)
				if tc.answerName != "" {
					name = tc.answerName
				}
				w.answer(name, content)
				if err := w.d.PollSII(ctx); err != nil {
					t.Fatal(err)
				}
			}
			fs, err := w.d.Store.ListFiles(ctx, archive.FileFilter{Name: name})
			if err != nil || len(fs) != 1 {
				t.Fatalf("archived %v, %v: want one row", fs, err)
			}
			f := fs[0]
			wantHash := sha(content)
			if tc.unread {
				wantHash = "" // never read: no SHA-256 to give
			}
			if f.Hash != wantHash || f.Size != int64(len(content)) {
				t.Errorf("row has sha256 %q size %d, want %q size %d", f.Hash, f.Size, wantHash, len(content))
			}
			if tc.answer > 0 {
				opened := w.srv.OpenedForReading("/out/" + name)
				if tc.unread && opened != 0 {
					t.Errorf("the file over the limit was opened for reading %d time(s) on the server", opened)
				} else if !tc.unread && opened == 0 {
					t.Errorf("the file was never read on the server (the counter does not work)")
				}
				if spool, _ := filepath.Glob(filepath.Join(w.d.Store.Dir(), "tmp", "sftp-*", "*")); len(spool) != 0 {
					t.Errorf("left in the spool: %v", spool)
				}
			}
			_, _, blobErr := w.d.Store.Blobs.StoredFile(f.Hash)
			var sizeExc []archive.Exception
			for _, e := range w.exceptions("file_rejected") {
				if e.Rule == "SIZE" {
					sizeExc = append(sizeExc, e)
				}
			}
			if !tc.refused {
				if blobErr != nil || len(sizeExc) != 0 || strings.Contains(f.Reason, "limit") {
					t.Fatalf("refused for its size: blob %v, exceptions %+v, reason %q", blobErr, sizeExc, f.Reason)
				}
				return
			}
			want := archive.TooBigReason(int64(len(content)), tc.limit)
			if tc.unread {
				want = archive.UnreadTooBigReason(int64(len(content)), tc.limit)
			}
			if f.State != archive.StateRejected || f.Reason != want {
				t.Errorf("row state %s reason %q, want rejected: %q", f.State, f.Reason, want)
			}

			if !tc.unread && !errors.Is(blobErr, os.ErrNotExist) {
				t.Errorf("the refused content is in the blob store (%v)", blobErr)
			}
			if len(sizeExc) != 1 || !strings.Contains(sizeExc[0].Message, "not processed") || sizeExc[0].FileID != f.ID ||
				!strings.Contains(sizeExc[0].Message, name) || !strings.Contains(sizeExc[0].Message, want) {
				t.Errorf("SIZE exceptions (want one naming %s, its size and the limit %d): %+v", name, tc.limit, sizeExc)
			}
			rep, err := w.d.Store.Verify(ctx, nil)
			if err != nil || len(rep.Problems) > 0 {
				t.Errorf("verify after a refusal: %v %v", rep.Problems, err)
			}
			if _, _, err := w.d.Store.OpenFile(ctx, f.ID); err == nil || !strings.Contains(err.Error(), "not kept") {
				t.Errorf("opening the refused file: %v, want 'not kept'", err)
			}
			if tc.drop > 0 {
				reason, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", name+".reason.txt"))
				if err != nil || !strings.Contains(string(reason), "over the limit") {
					t.Errorf("reason file: %q %v", reason, err)
				}
				if _, err := os.Stat(filepath.Join(w.folders["morosi"], "rejected", name)); err != nil {
					t.Errorf("the refused file is not in rejected/: %v", err)
				}
			} else {
				// Left on the SII side for a person, and not fetched again.
				if _, err := os.Stat(filepath.Join(w.srv.Root, "out", name)); err != nil {
					t.Errorf("refused SII file gone from the server: %v", err)
				}
				if err := w.d.PollSII(ctx); err != nil {
					t.Fatal(err)
				}
				if fs, _ := w.d.Store.ListFiles(ctx, archive.FileFilter{Name: name}); len(fs) != 1 {
					t.Errorf("fetched again: %d rows", len(fs))
				}
				if n := len(w.exceptions("file_rejected")); n != 1 {
					t.Errorf("refused again: %d file_rejected exceptions after a second poll", n)
				}
				if tc.unread && w.srv.OpenedForReading("/out/"+name) != 0 {
					t.Errorf("read by the second poll")
				}
			}
		})
	}
}

// TestClaimedSwapNotArchived: the file in .inprogress is replaced by a symlink to the
// SFTP private key right after the claim (the moment of the hole seen in the field):
// the daemon archives what was dropped, read from intake's descriptor, and nothing of
// the key reaches the archive or a reason file. A dropped name that is a symlink at
// claim time is refused unread with an UNSAFE exception.
func TestClaimedSwapNotArchived(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	key := filepath.Join(w.dir, "id_ed25519")
	keyBytes, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	folder := w.d.folderByName("morosi")
	dropped := "not an extract\r\n"
	w.drop("morosi", "a.csv", dropped)
	process := func(ctx context.Context, c intake.Claimed) (intake.Outcome, error) {
		// The attacker wins the race: the claimed name now points at the key.
		os.Remove(c.Path)
		if err := os.Symlink(key, c.Path); err != nil {
			t.Error(err)
		}
		return w.d.processClaimed(ctx, c)
	}
	iw, err := intake.New([]intake.Folder{intakeFolder(*folder)}, process, w.d.intakeEvent, nil)
	if err != nil {
		t.Fatal(err)
	}
	runIntakeUntil(t, iw, func() bool {
		ents, _ := os.ReadDir(filepath.Join(folder.Path, "rejected"))
		done, _ := os.ReadDir(filepath.Join(folder.Path, "done"))
		return len(ents)+len(done) > 0
	})
	ctx := context.Background()
	all, err := w.d.Store.ListFiles(ctx, archive.FileFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if f.Hash == sha(string(keyBytes)) {
			t.Fatalf("the private key was archived as file #%d", f.ID)
		}
	}
	if len(all) != 1 || all[0].Hash != sha(dropped) {
		t.Fatalf("archived %+v, want the dropped content only", all)
	}
	reasons, _ := filepath.Glob(filepath.Join(folder.Path, "rejected", "*.reason.txt"))
	for _, r := range reasons {
		b, _ := os.ReadFile(r)
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Fatalf("%s quotes the key: %q", r, b)
		}
	}

	// A symlink dropped in place of a scanned file: refused unread, the link moved.
	w.drop("morosi", "b.csv", dropped+"b")
	iw, err = intake.New([]intake.Folder{intakeFolder(*folder)}, func(ctx context.Context, c intake.Claimed) (intake.Outcome, error) {
		return w.d.processClaimed(ctx, c)
	}, w.d.intakeEvent, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(folder.Path, ".inprogress"), 0o750)
	// As if a previous run crashed right after claiming a name that was a link.
	if err := os.Symlink(key, filepath.Join(folder.Path, ".inprogress", "c.csv")); err != nil {
		t.Fatal(err)
	}
	runIntakeUntil(t, iw, func() bool {
		_, err := os.Lstat(filepath.Join(folder.Path, "rejected", "c.csv"))
		return err == nil
	})
	fi, err := os.Lstat(filepath.Join(folder.Path, "rejected", "c.csv"))
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("rejected/c.csv: %v %v, want the link itself", fi, err)
	}
	reason, _ := os.ReadFile(filepath.Join(folder.Path, "rejected", "c.csv.reason.txt"))
	if !strings.Contains(string(reason), "symbolic link") || strings.Contains(string(reason), "PRIVATE KEY") {
		t.Errorf("reason: %q", reason)
	}
	var unsafe []archive.Exception
	for _, e := range w.exceptions("file_rejected") {
		if e.Rule == "UNSAFE" {
			unsafe = append(unsafe, e)
		}
	}
	if len(unsafe) != 1 || unsafe[0].Subject != "c.csv" {
		t.Errorf("UNSAFE exceptions: %+v", unsafe)
	}
	all, _ = w.d.Store.ListFiles(ctx, archive.FileFilter{})
	for _, f := range all {
		if f.Hash == sha(string(keyBytes)) {
			t.Fatalf("the private key was archived as file #%d", f.ID)
		}
	}
}

// runIntakeUntil runs a watcher until cond holds (bounded by a generous limit).
func runIntakeUntil(t *testing.T, iw *intake.Watcher, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- iw.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("intake did not finish the file")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSIIFlowLimitKeys: a [limits.sii_flow] key must be an inbound SII flow of the
// catalog, in `cmord check` and when the daemon applies a configuration.
func TestSIIFlowLimitKeys(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	tests := []struct {
		keys []string
		want string
	}{
		{[]string{"REQ_AMM", "REND_AMM"}, ""},
		{[]string{"REQ_AMX"}, "limits.sii_flow: REQ_AMX: not an inbound SII flow"},
		{[]string{"REQ"}, "limits.sii_flow: REQ: not an inbound SII flow"}, // one we send
		{[]string{"uscente.morosi", "ZZ"}, "limits.sii_flow: ZZ, uscente.morosi: not"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.keys, ","), func(t *testing.T) {
			cfg := *w.d.Config()
			cfg.Limits = config.Limits{SIIFile: 1 << 20, SIIFlow: map[string]int64{}}
			for _, k := range tc.keys {
				cfg.Limits.SIIFlow[k] = 2 << 20
			}
			errApply := w.d.apply(&cfg)
			_, errCheck := CheckConfig(&cfg)
			for _, err := range []error{errApply, errCheck} {
				if tc.want == "" && err != nil && strings.Contains(err.Error(), "limits") {
					t.Errorf("refused: %v", err)
				}
				if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
					t.Errorf("err = %v, want %q", err, tc.want)
				}
			}
		})
	}
}

// TestHostileNameEscapedEverywhere: a file dropped under a name with a terminal escape,
// a bidi override and a byte that is not UTF-8 is refused as usual; its reason file,
// its exception and the digest (text, HTML, CSV) show the name escaped, never raw.
func TestHostileNameEscapedEverywhere(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	name := "morosi\x1b[2J\u202evsc\xff.csv"
	w.drop("morosi", name, "not;an;extract\r\n1;2;3\r\n")
	if err := w.d.ScanFoldersOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	reason, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", name+".reason.txt"))
	if err != nil {
		t.Fatal(err)
	}
	exc := w.exceptions("")
	if len(exc) == 0 {
		t.Fatal("no exception")
	}
	dg, err := digest.Build(context.Background(), w.d.Store, digest.OptionsFromConfig(w.d.Config()), w.now)
	if err != nil {
		t.Fatal(err)
	}
	subject, text, html, csv, err := dg.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{"reason file": string(reason), "digest subject": subject, "digest text": text, "digest html": html, "digest csv": string(csv)}
	for _, e := range exc {
		shown[fmt.Sprintf("exception %d", e.ID)] = e.Subject + " " + e.Message + " " + e.Value
	}
	for where, s := range shown {
		for i, r := range s {
			if (r < 0x20 && r != '\n' && r != '\r' && r != '\t') || r == 0x7f || r == 0x202e || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
				t.Errorf("%s: raw %U at byte %d", where, r, i)
				break
			}
		}
	}
	if !strings.Contains(string(reason), `morosi\x1b[2J\u202evsc\xff.csv`) {
		t.Errorf("reason file does not name the file escaped:\n%s", reason)
	}
	if !strings.Contains(text, `\x1b[2J`) {
		t.Errorf("digest text does not name the file escaped:\n%s", text)
	}
}
