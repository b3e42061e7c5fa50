package export

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
)

func TestAmountHuman(t *testing.T) {
	for _, c := range []struct {
		cents      int64
		lang, want string
	}{
		{0, "it", "0,00"}, {5, "it", "0,05"}, {123456, "it", "1.234,56"}, {-123456789, "it", "-1.234.567,89"},
		{100000, "it", "1.000,00"}, {99999, "it", "999,99"}, {123456, "en", "1,234.56"}, {-1230, "en", "-12.30"},
	} {
		if got := amountHuman(flows.Amount(c.cents), c.lang); got != c.want {
			t.Errorf("amountHuman(%d, %s) = %q, want %q", c.cents, c.lang, got, c.want)
		}
	}
}

func TestNoteText(t *testing.T) {
	for _, c := range []struct{ note, want string }{
		{"case read from morosi.csv lines 5-6; CMOR 1234.50 (credit 2500.00, estimate 180.40); request window opens 01/03/2026",
			"caso letto da morosi.csv, righe 5-6; CMOR 1.234,50 (credito 2.500,00, stima 4 mesi 180,40); la finestra di richiesta apre il 01/03/2026"},
		{"case read from m.csv lines 7; CMOR 10.00 (credit 20.00, estimate 0.00); files again the case of CP_UTENTE E260000001 (INADMISSIBLE)",
			"caso letto da m.csv, riga 7; CMOR 10,00 (credito 20,00, stima 4 mesi 0,00); ripresenta il caso del CP_UTENTE E260000001, stato inammissibile (INADMISSIBLE)"},
		{"REQ E260000001 written into IT00488410010_SI1.0050_20261122_001.csv", "REQ E260000001 scritta nel file IT00488410010_SI1.0050_20261122_001.csv"},
		{"payment of 50.00 on 02/03/2026 for invoice F-1; still unpaid 1000.00", "pagamento di 50,00 il 02/03/2026 per la fattura F-1; ancora insoluto 1.000,00"},
		{"SUSP_REQ E1 admitted by the SII; MOTIVAZIONE: ok", "SUSP_REQ E1 ammessa dal SII; MOTIVAZIONE: ok"},
		{"answer not applied: REQ_ESITO cannot move a practice from SENT to ACCEPTED: the flow applies only to practices in ADMITTED",
			"risposta non applicata: REQ_ESITO non può portare la pratica da inviata al SII (SENT) a accolta (ACCEPTED): il flusso vale solo per le pratiche in ammessa (ADMITTED)"},
		{"CMOR updated by the SII on 01/02/2026: 100.00 → 1200.00 (the notice says the old amount was 90.00)",
			"CMOR aggiornato dal SII il 01/02/2026: 100,00 → 1.200,00 (secondo la notifica l'importo precedente era 90,00)"},
		{"annulment requested (ANN_REQ E260000004, cause AN-02): debt paid on 23/11/2026 (invoice F202603003, 143.10)",
			"annullamento richiesto (ANN_REQ E260000004, causale AN-02): debito saldato il 23/11/2026 (fattura F202603003, 143,10)"},
		{"annulment E260000004 admitted by the SII", "richiesta di annullamento E260000004 ammessa dal SII"},
		{"MOTIVAZIONE: Debito saldato dal cliente; annulled on 24/11/2026", "MOTIVAZIONE: Debito saldato dal cliente; annullata il 24/11/2026"},
		{"CMOR updated on 01/02/2026: old 100.00, new 1200.00, delta 1100.00; our amount was 100.00, not 90.00",
			"CMOR aggiornato il 01/02/2026: precedente 100,00, nuovo 1.200,00, differenza 1.100,00; il nostro importo era 100,00, non 90,00"},
		{"not sent: window closed", "non inviata: window closed"},
		{"something the daemon never wrote before", "something the daemon never wrote before"},
		{"", ""},
	} {
		if got := noteText(c.note, "it"); got != c.want {
			t.Errorf("noteText(%q)\n got %q\nwant %q", c.note, got, c.want)
		}
		if got := noteText(c.note, "en"); got != c.note {
			t.Errorf("English note changed: %q", got)
		}
	}
}

// noteFormatRE finds the history notes the daemon writes: a format string given to a
// history entry's Note, to a note variable, or to the entrante's j.note.
// Also the segments daemon/sii/answers.go appends to its notes, and the reason of an
// annulment a payment causes (the ${text} of "annulment requested …").
var noteFormatRE = regexp.MustCompile(`(?:Note: |[Nn]ote \+?= |\.note\(ctx, [^,]+, [^,]+, |notes = append\((?:notes, |\[\]string\{)|\.annul\(ctx, [^"]+"AN-\d+", )(?:fmt\.Sprintf\()?"((?:[^"\\]|\\.)*)"`)

// Every note the daemon writes is known to the Italian dossier: each format string,
// its verbs filled with sample values, is translated segment by segment (a segment
// that is only a verb is free text and stays).
func TestNotePatternsCoverTheDaemon(t *testing.T) {
	// The daemon root and the flow families, where the handlers and builders write notes.
	var srcs []string
	for _, dir := range []string{"..", "../uscente", "../entrante", "../sii"} {
		more, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(more) == 0 {
			t.Fatalf("daemon sources in %s: %v", dir, err)
		}
		srcs = append(srcs, more...)
	}
	verbs := regexp.MustCompile(`%[-+# 0-9.]*[sdvq]`)
	n := 0
	for _, path := range srcs {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range noteFormatRE.FindAllStringSubmatch(string(b), -1) {
			format := m[1]
			sample := verbs.ReplaceAllStringFunc(format, func(v string) string {
				if strings.HasSuffix(v, "d") {
					return "7"
				}
				return "X1"
			})
			if strings.HasSuffix(sample, " ") {
				sample += "X1" // "… refused: " + a message
			}
			n++
			for _, seg := range strings.Split(sample, "; ") {
				// A lone verb is free text; a segment starting with a blank continues
				// an earlier format, whose pattern covers it whole.
				if seg == "X1" || strings.TrimSpace(seg) == "" || strings.HasPrefix(seg, " ") {
					continue
				}
				if _, known := translateSegment(seg, "it"); !known {
					t.Errorf("%s: note %q: segment %q has no Italian (add it to notePatterns)", filepath.Base(path), format, seg)
				}
			}
		}
	}
	if n < 15 {
		t.Errorf("found only %d note formats in the daemon's sources: the scan is broken", n)
	}
}
