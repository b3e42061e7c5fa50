package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// A file taken gets a receipt beside it in done/, in the operators' language, saying
// per practice what became of it; with receipt_html the same as a page; a file refused
// whole gets a reason file in the same language, errors first.
func TestReceiptsBesideDoneFiles(t *testing.T) {
	for _, c := range []struct {
		lang string
		html bool
		want []string
	}{
		{"it", true, []string{
			"Esito del file: morosi_20251015.csv",
			"accettate, da inviare al SII:                         2",
			"in attesa dell'apertura della finestra:               1",
			"non ammissibili, nessuna correzione necessaria:       1",
			"rifiutate, da correggere in fatturazione:             1",
			"CP_UTENTE E250000003 — POD IT001E00000043", "la finestra di richiesta apre il 01/12/2025",
			"riga 7 — POD IT001E00000045 — cliente NRELCU75C15L219", // refused before it was a practice: named from the file
			"non ammissibile, nessuna correzione necessaria", "(condizione E5)",
			"POD IT001E00000044", "Codice fiscale non valido: 16 caratteri",
			"cmord validate --folder morosi FILE",
		}},
		{"en", false, []string{
			"Outcome of the file: morosi_20251015.csv",
			"accepted, to be sent to the SII:                      2",
			"not eligible, no correction needed:                   1",
			"the request window opens on 01/12/2025",
		}},
	} {
		t.Run(c.lang, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			cfg := *w.d.Config()
			cfg.Lang = c.lang
			for i := range cfg.Folders {
				cfg.Folders[i].ReceiptHTML = c.html
			}
			if err := w.d.apply(&cfg); err != nil {
				t.Fatal(err)
			}
			w.drop("morosi", "morosi_20251015.csv", e2eExtract())
			w.d.ScanFoldersOnce(context.Background())
			done := filepath.Join(w.folders["morosi"], "done")
			if _, err := os.Stat(filepath.Join(done, "morosi_20251015.csv")); err != nil {
				t.Fatalf("the extract is not in done/: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(done, "morosi_20251015.csv.esito.txt"))
			if err != nil {
				t.Fatal(err)
			}
			receipt := string(b)
			for _, want := range c.want {
				if !strings.Contains(receipt, want) {
					t.Errorf("receipt lacks %q:\n%s", want, receipt)
				}
			}
			_, err = os.Stat(filepath.Join(done, "morosi_20251015.csv.esito.html"))
			if c.html != (err == nil) {
				t.Errorf("HTML receipt present = %v, want %v", err == nil, c.html)
			}

			// A file refused whole: the reason file in the same language.
			w.drop("morosi", "vuoto.csv", "COLONNA;ALTRA\r\nx;y\r\n")
			w.d.ScanFoldersOnce(context.Background())
			r, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", "vuoto.csv.reason.txt"))
			if err != nil {
				t.Fatal(err)
			}
			head := map[string]string{"it": "cartella: morosi", "en": "folder: morosi"}[c.lang]
			body := map[string]string{"it": "rifiutato per intero", "en": "The whole file was refused"}[c.lang]
			if !strings.Contains(string(r), head) || !strings.Contains(string(r), body) {
				t.Errorf("reason file not in %s:\n%s", c.lang, r)
			}
			if _, err := os.Stat(filepath.Join(w.folders["morosi"], "done", "vuoto.csv.esito.txt")); err == nil {
				t.Errorf("a refused file got a receipt")
			}
		})
	}
}

// A spreadsheet dropped by mistake is refused with a reason a person can read: no
// binary garbage (control characters, undecodable bytes), bounded in size.
func TestReasonFileOfBinaryDrop(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	var bin strings.Builder
	bin.WriteString("PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00")
	for i := 0; i < 4000; i++ {
		bin.WriteByte(byte(i*131 + 7))
		if i%97 == 0 {
			bin.WriteString(";\r\n")
		}
	}
	w.drop("morosi", "estratto.xlsx", bin.String())
	w.d.ScanFoldersOnce(context.Background())
	r, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", "estratto.xlsx.reason.txt"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(r)
	if !utf8.ValidString(text) || strings.ContainsFunc(text, func(c rune) bool { return c < 0x20 && c != '\n' || c == utf8.RuneError || c == 0x7f }) {
		t.Errorf("reason file carries binary garbage:\n%q", text)
	}
	if len(r) > 16<<10 {
		t.Errorf("reason file is %d bytes", len(r))
	}
	if !strings.Contains(text, "rifiutato per intero") {
		t.Errorf("reason file does not say the file was refused:\n%s", text)
	}
}
