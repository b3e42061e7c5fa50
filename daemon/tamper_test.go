package daemon

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
)

// TestVerifyTamperTable runs the uscente end to end (an extract, its REQ file, the
// SII's answers), takes the chain's head as an external notary would, then tampers
// with the state the way someone with write access to the state directory could —
// through another SQLite connection, as the sqlite3 shell would, or on the files — and
// checks that `archive verify` names what changed. Issue 13.
func TestVerifyTamperTable(t *testing.T) {
	// One run, then each case tampers with its own copy of the state directory.
	orig := newTamperWorld(t)
	for _, tc := range tamperCases() {
		t.Run(tc.name, func(t *testing.T) { checkTamper(t, orig, tc) })
	}
}

// tamperCase is one tampering and what verify must say about it.
type tamperCase struct {
	name     string
	tamper   func(t *testing.T, tw *tamperWorld)
	anchored bool     // verify against the anchor taken before the tamper (else without)
	want     []string // each must be in one problem line
	clean    []string // and none may contain these
}

func tamperCases() []tamperCase {
	return []tamperCase{
		{name: "untampered", tamper: func(*testing.T, *tamperWorld) {}, anchored: true},
		{name: "untampered without anchor", tamper: func(*testing.T, *tamperWorld) {}},
		// The extract is stored compressed: the byte flipped is in its zstd stream,
		// which no longer decodes (its checksum differs). A plain blob's flipped byte
		// reads "content changed" (archive's TestVerifyDetectsTampering).
		{name: "flipped byte in a compressed blob", tamper: func(t *testing.T, tw *tamperWorld) {
			p := tw.blobPath(t, tw.inputHash)
			if !strings.HasSuffix(p, ".zst") {
				t.Fatalf("the extract's blob %s is not stored compressed", p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, b, 0o444); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"blob " + "%INPUT%", "damaged compressed content in ", ".zst: ", "morosi_20251015.csv"}},
		{name: "deleted blob", tamper: func(t *testing.T, tw *tamperWorld) {
			if err := os.Remove(tw.blobPath(t, tw.inputHash)); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"is missing", "morosi_20251015.csv"}},
		{name: "edited event", tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `DROP TRIGGER events_no_update`, `UPDATE events SET detail = 'nothing happened' WHERE id = 2`)
		}, want: []string{"event chain broken at event 2: content was altered"}},
		{name: "newest events deleted (truncation)", tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `DROP TRIGGER events_no_delete`, `DELETE FROM events WHERE id > (SELECT max(id) - 3 FROM events)`)
		}, want: []string{"event chain: truncated", "were deleted"}},
		{name: "newest events deleted, against the anchor", anchored: true, tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `DROP TRIGGER events_no_delete`, `DELETE FROM events WHERE id > (SELECT max(id) - 3 FROM events)`)
		}, want: []string{"event chain: truncated"}},
		{name: "newest chain records deleted (truncation)", anchored: true, tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `DROP TRIGGER chain_no_delete`, `DELETE FROM chain WHERE seq > (SELECT max(seq) - 2 FROM chain)`)
		}, want: []string{"state chain truncated: the anchor names record", "not covered by the state chain"}},
		{name: "consistent rewrite of the chain", anchored: true, tamper: func(t *testing.T, tw *tamperWorld) {
			// The attacker edits an amount, throws the chain away and lets cmord's own
			// code seal the forged state afresh (the chain migration runs again): every
			// row then matches its record; only the anchor tells.
			tw.sql(t, `UPDATE practices SET cmor_cents = 99999999 WHERE cp_utente = 'E250000001'`,
				`DROP TABLE chain`, `DELETE FROM schema_migrations WHERE name = '0030_chain'`)
			st, err := archive.Open(tw.state)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 30; i++ { // enough writes to pass the anchored record again
				if err := st.Write(context.Background(), func(tx *sql.Tx) error {
					return st.AppendEvent(tx, archive.Event{Type: "NOTE", Detail: "padding"})
				}); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
		}, want: []string{"state chain rewritten: record", "the anchor says"}},
		{name: "edited practice row", tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `UPDATE practices SET cmor_cents = cmor_cents + 100000 WHERE cp_utente = 'E250000001'`)
		}, want: []string{"practice #", "(cp_utente E250000001) was changed outside cmord"}},
		{name: "deleted practice row", tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `DELETE FROM practice_files WHERE practice_id = (SELECT id FROM practices WHERE cp_utente = 'E250000002')`,
				`DELETE FROM requests WHERE practice_id = (SELECT id FROM practices WHERE cp_utente = 'E250000002')`,
				`DELETE FROM practice_history WHERE practice_id = (SELECT id FROM practices WHERE cp_utente = 'E250000002')`,
				`DELETE FROM practices WHERE cp_utente = 'E250000002'`)
		}, want: []string{"practice #2 was deleted outside cmord", "practice history row #"}},
		{name: "edited practice history row", tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `UPDATE practice_history SET to_state = 'ACCEPTED', note = '' WHERE id = 1`)
		}, want: []string{"practice history row #1 (practice_id ", "was changed outside cmord"}},
		{name: "practice history row added", tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `INSERT INTO practice_history (practice_id, at, from_state, to_state) VALUES (1, '2025-10-15T00:00:00Z', 'SENT', 'ACCEPTED')`)
		}, want: []string{"practice history row #", "is not in the state chain"}},
		{name: "edited file row", tamper: func(t *testing.T, tw *tamperWorld) {
			tw.sql(t, `UPDATE files SET received_at = '2025-01-01T00:00:00.000000000Z' WHERE name = 'morosi_20251015.csv'`)
		}, want: []string{"(name morosi_20251015.csv) was changed outside cmord"}},
		{name: "blob replaced with its index row", tamper: func(t *testing.T, tw *tamperWorld) {
			forged := []byte("SETTORE;COD_POD\r\nE;IT001E00000000\r\n")
			sum := sha256.Sum256(forged)
			h := hex.EncodeToString(sum[:])
			p := tw.blobPath(t, h)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, forged, 0o444); err != nil {
				t.Fatal(err)
			}
			tw.sql(t, fmt.Sprintf(`INSERT INTO blobs (hash, size, created_at) VALUES ('%s', %d, '2025-10-15T00:00:00Z')`, h, len(forged)),
				fmt.Sprintf(`UPDATE files SET hash = '%s', size = %d WHERE name = 'morosi_20251015.csv'`, h, len(forged)))
		}, want: []string{"(name morosi_20251015.csv) was changed outside cmord"}, clean: []string{"blob "}},
		{name: "page corruption in the practices' table", tamper: corruptRootPage("practice_rows"),
			want: []string{"SQLite integrity_check: Tree", "(table practice_rows)", "practices: cannot be read"}},
		{name: "page corruption in the practices' state table (0035)", tamper: corruptRootPage("practice_state"),
			want: []string{"SQLite integrity_check: Tree", "(table practice_state)", "practices: cannot be read"}},
	}
}

// corruptRootPage overwrites the header and cell pointers of table's root page in
// index.db, as a failing disk or a careless hand would.
func corruptRootPage(table string) func(t *testing.T, tw *tamperWorld) {
	return func(t *testing.T, tw *tamperWorld) {
		var root, pageSize int64
		tw.query(t, `SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = '`+table+`'`, &root)
		tw.query(t, `PRAGMA page_size`, &pageSize)
		f, err := os.OpenFile(filepath.Join(tw.state, "index.db"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		junk := []byte(strings.Repeat("\xde\xad\xbe\xef", 16))
		if _, err := f.WriteAt(junk, (root-1)*pageSize); err != nil {
			t.Fatal(err)
		}
	}
}

// checkTamper tampers with a copy of orig's state as tc says and checks what verify
// reports: nothing for an untampered state, every wanted line otherwise.
func checkTamper(t *testing.T, orig *tamperWorld, tc tamperCase) {
	tw := orig.copy(t)
	tc.tamper(t, tw)
	st, err := archive.OpenReadOnly(tw.state)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	opt := archive.VerifyOptions{}
	if tc.anchored {
		opt.Anchor = &tw.anchor
	}
	rep, err := st.VerifyWith(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Problems, "\n")
	if len(tc.want) == 0 {
		if !rep.OK() {
			t.Fatalf("untampered archive: problems:\n%s", all)
		}
		if rep.Records == 0 || rep.Rows == 0 || rep.Events == 0 || rep.Blobs == 0 {
			t.Fatalf("verify checked nothing: %+v", rep)
		}
		if tc.anchored && !rep.Anchored {
			t.Fatalf("the chain does not extend the anchor %s taken after the run", tw.anchor)
		}
		return
	}
	if rep.OK() {
		t.Fatalf("tamper not detected: %+v", rep)
	}
	t.Logf("verify reports:\n%s", all)
	for _, c := range tc.clean {
		if strings.Contains(all, c) {
			t.Errorf("a problem line contains %q; problems:\n%s", c, all)
		}
	}
	for _, w := range tc.want {
		w = strings.ReplaceAll(w, "%INPUT%", tw.inputHash)
		if !strings.Contains(all, w) {
			t.Errorf("no problem line contains %q; problems:\n%s", w, all)
		}
	}
}

type tamperWorld struct {
	state     string
	anchor    archive.Anchor
	inputHash string
	db        *sql.DB
	blobs     *archive.BlobStore
}

// newTamperWorld runs an extract end to end (practices made and sent, answers
// read), takes the anchor, and closes the daemon.
func newTamperWorld(t *testing.T) *tamperWorld {
	w := newTestWorld(t, e2eNow, "")
	w.drop("morosi", "morosi_20251015.csv", e2eExtract())
	w.runOnce()
	w.answer("SI10100_20251016_0001.csv", "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n"+
		"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E250000001;SII2025A0000001;1;;\r\n"+
		"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E250000002;;0;4;campo DATA_SWITCH non valorizzato correttamente\r\n")
	w.now = w.now.Add(24 * time.Hour)
	w.runOnce()
	ctx := context.Background()
	files, err := w.d.Store.ListFiles(ctx, archive.FileFilter{Source: "folder:morosi"})
	if err != nil || len(files) != 1 {
		t.Fatalf("morosi files %v, %v", files, err)
	}
	head, ok, err := w.d.Store.ChainHead(ctx)
	if err != nil || !ok {
		t.Fatalf("chain head: %v %v", ok, err)
	}
	tw := &tamperWorld{state: w.d.Store.Dir(), anchor: head, inputHash: files[0].Hash}
	if err := w.d.Close(); err != nil {
		t.Fatal(err)
	}
	return tw
}

// copy copies the (closed) state directory for one case and opens the attacker's
// connection on the copy: not cmord's writer, so none of its TEMP triggers.
func (tw *tamperWorld) copy(t *testing.T) *tamperWorld {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "state")
	err := filepath.WalkDir(tw.state, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tw.state, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := archive.NewBlobStore(filepath.Join(dst, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	c := &tamperWorld{state: dst, anchor: tw.anchor, inputHash: tw.inputHash, blobs: blobs}
	c.db, err = sql.Open("sqlite", "file:"+filepath.Join(dst, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	c.db.SetMaxOpenConns(1)
	t.Cleanup(func() { c.db.Close() })
	return c
}

func (tw *tamperWorld) sql(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := tw.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func (tw *tamperWorld) query(t *testing.T, q string, dest any) {
	t.Helper()
	if err := tw.db.QueryRow(q).Scan(dest); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// blobPath is the file holding a stored blob (compressed or not); for a hash not
// stored, where a plain blob of it would be.
func (tw *tamperWorld) blobPath(t *testing.T, hash string) string {
	t.Helper()
	p, _, err := tw.blobs.StoredFile(hash)
	if errors.Is(err, os.ErrNotExist) {
		return filepath.Join(tw.state, "objects", "sha256", hash[:2], hash)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}
