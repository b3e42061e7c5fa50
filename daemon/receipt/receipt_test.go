package receipt

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./daemon/receipt -update):\n%s", name, got)
	}
}

// fixture: an extract with one case filed, one held, one not eligible (E5), one
// refused for a data error (ID-CF, then CASE-ROWS) and a warning.
func fixture() (archive.File, []archive.PracticeAt, []flows.Finding) {
	f := archive.File{ID: 7, Name: "morosi-nov.csv", Kind: "uscente.morosi", Meta: map[string]string{"rows": "9"}}
	open, _ := flows.ParseDate("2027-03-01")
	ps := []archive.PracticeAt{
		{Line: 2, CPUtente: "E260000001", Point: "IT001E12345678", CustomerID: "RSSMRA80A01H501U", State: flows.StateReady},
		{Line: 4, CPUtente: "E260000002", Point: "00881234567890", CustomerID: "01234567897", State: flows.StateWaitingWindow, WindowOpen: open},
	}
	fs := []flows.Finding{
		{Line: 2, Field: "DATA_FATTURA", Rule: flows.RuleDate, Severity: "warning", Message: "invoice date is a Sunday"},
		{Line: 4, Rule: flows.RuleWindowWait, Severity: "warning", Value: "2027-03-01"},
		{Line: 6, Field: "INFO_CMOR", Rule: "E5", Value: "NO", Message: "mora notice 1 (M-77): the notice did not inform the customer about the CMOR"},
		{Line: 8, Field: "CF_CLIENTE", Rule: flows.RuleIDCF, Value: "RSSMRA85T10A562T", Message: "check character wrong"},
		{Line: 8, Field: "DATA_SWITCH", Rule: "CASE-ROWS", Value: "U|IT001E55556666|RSSMRA85T10A562T|2026-03-01", Message: "practice held, not filed: its row on line 8 was refused, and the rows on lines 9-10 are not filed alone; correct the refused rows and drop the whole practice again"},
	}
	return f, ps, fs
}

func TestReceiptGolden(t *testing.T) {
	f, ps, fs := fixture()
	at := time.Date(2026, 11, 23, 6, 30, 0, 0, time.UTC)
	r := Build(f, "morosi", ps, fs, at)
	for o, want := range map[Outcome]int{Filed: 1, Held: 1, NotEligible: 1, ToCorrect: 1, Updated: 0} {
		if got := r.Total(o); got != want {
			t.Errorf("total %s = %d, want %d", o, got, want)
		}
	}
	it := r.Text("it")
	golden(t, "receipt_it.txt", it)
	golden(t, "receipt_en.txt", r.Text("en"))
	golden(t, "receipt_it.html", r.HTML("it"))
	for _, want := range []string{
		"non ammissibile", "nessuna correzione necessaria", "condizione E5", // eligibility in words
		"la finestra di richiesta apre il 01/03/2027", // held with its opening date
		"riga 8 — POD IT001E55556666",                 // a refused case named by its point, not its key
		"cmord validate --folder morosi",
	} {
		if !strings.Contains(it, want) {
			t.Errorf("Italian receipt lacks %q", want)
		}
	}
	if strings.Contains(it, "U|IT001") {
		t.Errorf("raw case key in the receipt:\n%s", it)
	}
}

// Other kinds (payments, annulments, refunds, entrante files) report the practices
// they updated with their state; a file that touched none says so.
func TestReceiptOtherKinds(t *testing.T) {
	f := archive.File{Name: "incassi.csv", Kind: "uscente.incassi"}
	ps := []archive.PracticeAt{{Line: 3, CPUtente: "E260000009", Point: "IT001E12345678", State: flows.StateAnnulled}}
	r := Build(f, "incassi", ps, nil, time.Date(2026, 11, 23, 6, 30, 0, 0, time.UTC))
	text := r.Text("it")
	if r.Total(Updated) != 1 || !strings.Contains(text, "riga 3 — CP_UTENTE E260000009 — POD IT001E12345678: stato: annullata (ANNULLED)") {
		t.Errorf("incassi receipt:\n%s", text)
	}
	if strings.Contains(text, "accettate") || strings.Contains(text, "cmord validate") {
		t.Errorf("incassi receipt speaks of filing or corrections:\n%s", text)
	}
	// A practice on several lines of the file names them all: three payments of one
	// customer are "righe 2-4" (not "riga 2", the other two rows unaccounted for).
	for _, c := range []struct {
		p    archive.PracticeAt
		lang string
		want string
	}{
		{archive.PracticeAt{Line: 2, LastLine: 4, Lines: 3}, "it", "  righe 2-4 — CP_UTENTE E260000001"},
		{archive.PracticeAt{Line: 2, LastLine: 9, Lines: 2}, "it", "  2 righe dalla 2 alla 9 — CP_UTENTE E260000001"},
		{archive.PracticeAt{Line: 2, LastLine: 4, Lines: 3}, "en", "  lines 2-4 — CP_UTENTE E260000001"},
		{archive.PracticeAt{Line: 5, LastLine: 5, Lines: 1}, "it", "  riga 5 — CP_UTENTE E260000001"},
	} {
		c.p.CPUtente, c.p.State = "E260000001", flows.StateAdmitted
		r := Build(f, "incassi", []archive.PracticeAt{c.p}, nil, time.Time{})
		if text, html := r.Text(c.lang), r.HTML(c.lang); !strings.Contains(text, c.want) || !strings.Contains(html, strings.TrimSpace(c.want)) {
			t.Errorf("%+v %s: want %q in the receipt:\n%s\n%s", c.p, c.lang, c.want, text, html)
		}
	}
	empty := Build(f, "incassi", nil, nil, time.Time{}).Text("it")
	if !strings.Contains(empty, "Nessuna pratica in questo file.") {
		t.Errorf("empty receipt:\n%s", empty)
	}
}

// Eligibility refusals are told from data errors: a case is "not eligible" only when
// every error is one of E1–E11.
func TestOutcomeOfRefusals(t *testing.T) {
	for _, c := range []struct {
		rules []string
		want  Outcome
	}{
		{[]string{"E5"}, NotEligible},
		{[]string{"E1", "E10"}, NotEligible},
		{[]string{"E5", flows.RuleIDCF}, ToCorrect},
		{[]string{"CASE-ROWS"}, ToCorrect},
		{[]string{flows.RuleWindowWait}, ToCorrect}, // not an eligibility refusal
		{[]string{"E12"}, ToCorrect},
		{nil, ToCorrect},
	} {
		var fs []flows.Finding
		for _, r := range c.rules {
			fs = append(fs, flows.Finding{Rule: r, Value: "x"}) // E1/E2 without a value are missing data, not eligibility
		}
		if got := refusalOutcome(fs); got != c.want {
			t.Errorf("%v: %s, want %s", c.rules, got, c.want)
		}
	}
}

// A reason file lists errors before warnings, at most MaxReasonLines, then "e altri N"
// and the command that lists them all; binary garbage in values is not copied.
func TestReasonTextCappedErrorsFirst(t *testing.T) {
	var fs []flows.Finding
	for i := 0; i < 31; i++ {
		fs = append(fs, flows.Finding{Line: 2 + i, Field: "NOTE", Rule: flows.RuleString, Severity: "warning", Message: "odd text"})
	}
	for i := 0; i < 40; i++ {
		fs = append(fs, flows.Finding{Line: 40 + i, Field: "COD_POD", Rule: flows.RuleIDPOD, Value: "PK\x03\x04\x00garb\xff\xfeage", Message: "bad POD"})
	}
	got := ReasonText("morosi", "40 refused rows and on_bad_rows = \"reject_file\": the whole file is refused, nothing was done", fs, "it")
	errAt, warnAt := strings.Index(got, "Errori (40):"), strings.Index(got, "Avvisi (31):")
	if errAt < 0 || warnAt < 0 || errAt > warnAt {
		t.Fatalf("errors must come before warnings:\n%s", got)
	}
	if n := strings.Count(got, "\n  riga "); n != MaxReasonLines {
		t.Errorf("%d findings listed, want %d", n, MaxReasonLines)
	}
	if !strings.Contains(got, "… e altri 21, non elencati qui.") {
		t.Errorf("no 'e altri 21':\n%s", got)
	}
	if !strings.Contains(got, "Motivo: 40 righe rifiutate e la cartella rifiuta i file con righe errate") {
		t.Errorf("reason not said in Italian:\n%s", got)
	}
	if !strings.Contains(got, "cmord validate --folder morosi FILE") || !strings.Contains(got, "rifiutato per intero") {
		t.Errorf("reason lacks the pointer or the headline:\n%s", got)
	}
	if strings.ContainsAny(got, "\x00\x03\x04\ufffd") || !utf8.ValidString(got) {
		t.Errorf("control characters copied into the reason file")
	}
	golden(t, "reason_it.txt", got)
}

// An extract with billing's own headers dropped in a folder with no mapping: the
// reason file names the missing columns and the ignored ones on one line each, with
// the advice said once, not once per column (15 errors and 31 warnings for the sample
// of testdata/inputs, read here by the real CSV reader); other findings stay one line
// each. Italian and English.
func TestReasonTextHeaderColumnsOnce(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "testdata", "inputs", "uscente.morosi.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := flows.NewCSVReader(f, flows.DefaultCatalog().Input("uscente.morosi"), flows.ReadOptions{FileName: "estratto.csv"}).ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	missing, unknown := headerColumns(fs)
	if len(missing) != 15 || len(unknown) != 31 {
		t.Fatalf("the sample's header gives %d missing and %d unknown columns, want 15 and 31: %v", len(missing), len(unknown), fs)
	}
	fs = append(fs, flows.Finding{Line: 3, Field: "COD_POD", Rule: flows.RuleIDPOD, Value: "IT001E1234567", Message: "bad POD"})
	for _, lang := range []string{"it", "en"} {
		got := ReasonText("morosi", "the header row does not fit uscente.morosi (see the findings); no row was read", fs, lang)
		for _, want := range map[string][]string{
			"it": {"Motivo: L'intestazione non corrisponde al tracciato uscente.morosi (Fatturazione — Crediti insoluti; vedere gli errori): nessuna riga è stata letta.\n",
				"Errori (16):\n  riga 1: Mancano 15 colonne obbligatorie: DENOMINAZIONE, DATA_SWITCH, ", "PUNTO_ATTIVO. Se l'estrazione ha intestazioni proprie, alla cartella serve un file di mappatura",
				"\n  riga 3: Codice POD non valido: 14 caratteri", "Avvisi (31):\n  riga 1: 31 colonne non previste dal tracciato, ignorate: \"Codice POD\", \"Codice PDR\", "},
			"en": {"line 1: 15 mandatory columns missing: DENOMINAZIONE, ", "Warnings (31):\n  line 1: 31 columns not in the layout, ignored: \"Codice POD\""},
		}[lang] {
			if !strings.Contains(got, want) {
				t.Errorf("%s: reason lacks %q:\n%s", lang, want, got)
			}
		}
		if n := strings.Count(got, "mappatura") + strings.Count(got, "mapping file"); n != 1 {
			t.Errorf("%s: the mapping advice said %d times, want once:\n%s", lang, n, got)
		}
		golden(t, "reason_header_"+lang+".txt", got)
	}
}

// An Italian operator acts from the Italian text alone: each finding of a reason file
// (and of a receipt) gives its own facts in Italian, not only the rule's general
// wording, and amounts of cmord's own are said with the decimal comma. The messages
// are the code's own, as the real refusals of daemon/testdata/realinput raise them.
func TestReasonTextItalianFacts(t *testing.T) {
	for _, c := range []struct {
		name string
		f    flows.Finding
		want []string // in the Italian line
		not  []string // not in it
	}{
		{"payment repeated", flows.Finding{Line: 5, Field: "IMPORTO_INCASSATO", Rule: "PAYMENT-REPEATED", Value: "96.40",
			Message: "payment of 96.40 on 12/11/2026 for invoice G24-10311 of practice E260000001 was already applied (line 3 of file #7): not applied again; if it is another payment, give each its own RIF_INCASSO, or give RESIDUO_INSOLUTO"},
			[]string{"riga 5: ", "pagamento di 96,40 euro del 12/11/2026 sulla fattura G24-10311 della pratica E260000001 già applicato alla riga 3 del file n. 7", "RIF_INCASSO", `valore "96,40"`}, []string{"96.40", "already applied"}},
		{"payment repeated from an earlier file (a warning)", flows.Finding{Line: 6, Field: "IMPORTO_INCASSATO", Rule: "PAYMENT-REPEATED", Value: "96.40", Severity: "warning",
			Message: "payment of 96.40 on 12/11/2026 for invoice G24-10311 of practice E260000001 was already applied (line 3 of file #7): not applied again"},
			[]string{"già applicato alla riga 3 del file n. 7: non applicato di nuovo", "nulla da correggere", `valore "96,40"`}, []string{"96.40", "already applied", "Dettaglio tecnico"}},
		{"the same refund again (a warning)", flows.Finding{Line: 4, Field: "IMPORTO_RESTITUITO", Rule: "REFUND-REPEATED", Value: "12.50", Severity: "warning",
			Message: "practice E260000004: this refund of 12.50 on 02/11/2026 is already recorded and its REFUND_ACK filed or queued: not recorded again"},
			[]string{"questo rimborso di 12,50 euro del 02/11/2026 è già registrato", "nulla da correggere"}, []string{"12.50", "Dettaglio tecnico"}},
		{"a date cell in a column cmord does not read (a warning)", flows.Finding{Line: 3, Field: "NOTE", Rule: flows.RuleCellDate, Value: "03/11/2026", Severity: "warning",
			Message: "a date cell (03/11/2026) in a column of NOTE, which is not a date: kept as the date; cmord does not use the column"},
			[]string{"nella colonna di NOTE, che cmord non usa: riga accettata"}, []string{"Dettaglio tecnico", "formattare la colonna"}},
		{"refund repeated", flows.Finding{Line: 4, Field: "IMPORTO_RESTITUITO", Rule: "REFUND-REPEATED", Value: "12.50",
			Message: "practice E260000004: a refund of 12.50 on 02/11/2026 (BONIFICO) is already recorded and its REFUND_ACK filed or queued: not recorded again"},
			[]string{"un rimborso di 12,50 euro del 02/11/2026 (BONIFICO) è già registrato", `valore "12,50"`}, []string{"12.50"}},
		{"E9 below the minimum", flows.Finding{Line: 2, Field: "IMPORTO_INDENNIZZO", Rule: "E9", Value: "6.40", Message: "indemnity 6.40 is below the minimum 10.00"},
			[]string{"indennizzo di 6,40 euro, inferiore al minimo di 10,00 euro", `campo IMPORTO_INDENNIZZO, valore "6,40"`}, []string{"6.40", "10.00"}},
		{"invoice number made a date", flows.Finding{Line: 3, Field: "NUM_FATTURA", Rule: flows.RuleCellDate, Value: "03/11/2026",
			Message: `a date cell (03/11/2026) in a column of NUM_FATTURA, which is not a date: the spreadsheet turned what was typed ("3/11", "1-12") into a date; format the column as text, type the value again and save`},
			[]string{"qui: una cella data (03/11/2026) nella colonna di NUM_FATTURA", "formattare la colonna come testo"}, []string{"the spreadsheet"}},
		{"note beside the table", flows.Finding{Line: 3, Rule: flows.RuleCSVColumns, Value: "31",
			Message: `line 3 has 31 values, the header has 29 columns: column 31, which has no header, holds "chiamare" (a ; inside a value must be in quotes)`},
			[]string{`la colonna 31, senza intestazione, contiene "chiamare"`, "un ; dentro un valore va tra virgolette"}, []string{"which has no header"}},
		{"a pandas index column", flows.Finding{Line: 2, Rule: flows.RuleCSVColumns, Value: "0",
			Message: `column 1 has no header and holds "0": the value would go to no field; give the column its name in the header (or delete the column) and drop the file again`},
			[]string{`la colonna 1 non ha intestazione e contiene "0": dare un nome alla colonna (o toglierla)`}, []string{"no header"}},
		{"a workbook with rows on two sheets", flows.Finding{Rule: flows.RuleFileFormat, Value: "xlsx",
			Message: `an Excel workbook (.xlsx) with values on more than one sheet: sheet "Estratto" is read and sheet "Foglio2" would be ignored; nothing of it was read. Put every row on the first sheet (one header), or save each sheet as its own file (CSV UTF-8), and drop it again`},
			[]string{`si legge il foglio "Estratto" e il foglio "Foglio2" sarebbe ignorato`, "Mettere tutte le righe sul primo foglio"}, []string{"would be ignored"}},
		{"a mandatory value missing says it once", flows.Finding{Line: 2, Field: "NUM_FATTURA", Rule: flows.RuleRequired, Message: "mandatory value missing"},
			[]string{"Campo obbligatorio mancante. (campo NUM_FATTURA, regola REQUIRED)"}, []string{"Dettaglio tecnico", "Valore obbligatorio"}},
		{"a case already filed", flows.Finding{Line: 2, Field: "CP_UTENTE", Rule: "SI-D01", Value: "E260000001",
			Message: "case U|IT001E12345678|RSSMRA80A01H501U|2026-03-01 was already filed as CP_UTENTE E260000001 (state SENT): not filed again"},
			[]string{"già presentato come CP_UTENTE E260000001 (stato ", "non presentato di nuovo", "IT001E12345678"}, []string{"U|IT001", "already filed"}},
		{"entrante billed above the CMOR", flows.Finding{Line: 2, Field: "IMPORTO_ADDEBITATO", Rule: flows.RuleRendAmount, Value: "30.00", Severity: "warning",
			Message: "billed in total 30.00, more than the CMOR notified (25.00)"},
			[]string{"addebitati in totale 30,00 euro, più del CMOR comunicato (25,00 euro)", `valore "30,00"`}, []string{"30.00", "25.00"}},
		{"invoice listed twice", flows.Finding{Line: 6, Field: "NUM_FATTURA", Rule: flows.RuleCaseDupInvoice, Value: "G24-1",
			Message: "invoice G24-1 is listed 2 times (lines 4, 6); list each invoice once, the practice is held"},
			[]string{"la fattura G24-1 compare 2 volte (righe 4, 6)"}, nil},
		{"a value differing between rows", flows.Finding{Line: 4, Field: "DENOMINAZIONE", Rule: flows.RuleCaseConflict, Value: "A / B",
			Message: `DENOMINAZIONE differs between the rows of one practice: "A" on line 2, "B" on lines 3-4; billing must give one value, the practice is held`},
			[]string{`DENOMINAZIONE è diverso tra le righe della stessa pratica: "A" on riga 2`}, nil},
		{"amount above", flows.Finding{Line: 2, Field: "IMPORTO_INSOLUTO", Rule: flows.RuleAmountAbove, Value: "120.00", Message: "IMPORTO_INSOLUTO 120.00 is above IMPORTO_FATTURA 100.00"},
			[]string{"IMPORTO_INSOLUTO 120,00 è maggiore di IMPORTO_FATTURA 100,00", `valore "120,00"`}, []string{"120.00"}},
		{"a message no table knows stays as the technical detail", flows.Finding{Line: 2, Field: "X", Rule: "ENT-AMBIGUOUS", Message: "2 open entrante practices for this point (A, B): give CP_GESTORE"},
			[]string{"Dettaglio tecnico: 2 open entrante practices for this point (A, B): give CP_GESTORE"}, nil},
		{"a typed amount is shown as typed", flows.Finding{Line: 2, Field: "IMPORTO_FATTURA", Rule: flows.RuleAmount, Value: "1.020,00", Message: "not an amount"},
			[]string{`valore "1.020,00"`}, []string{"Dettaglio tecnico"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ReasonText("morosi", "", []flows.Finding{c.f}, "it")
			rec := Build(archive.File{Name: "x.csv", Kind: "uscente.incassi"}, "incassi", nil, []flows.Finding{c.f}, time.Time{}).Text("it")
			for _, w := range c.want {
				if !strings.Contains(strings.ToLower(got), strings.ToLower(w)) {
					t.Errorf("reason file lacks %q:\n%s", w, got)
				}
				if w = strings.TrimPrefix(w, "riga 5: "); !strings.Contains(strings.ToLower(rec), strings.ToLower(w)) {
					t.Errorf("receipt lacks %q:\n%s", w, rec)
				}
			}
			for _, w := range c.not {
				if strings.Contains(got, w) || strings.Contains(rec, w) {
					t.Errorf("Italian text holds %q:\n%s\n%s", w, got, rec)
				}
			}
		})
	}
}

// A receipt rebuilt from the archive after a restart reads each finding's own message
// back from its row exception (which holds the finding said whole), so it says the
// same Italian facts as the uninterrupted run's, not an English "morosi.csv:17: field
// …" as technical detail.
func TestFindingsFromExceptionsOwnMessage(t *testing.T) {
	for _, f := range []flows.Finding{
		{File: "morosi.csv", Line: 17, Field: "IMPORTO_INDENNIZZO", Rule: "E9", Value: "6.40", Message: "indemnity 6.40 is below the minimum 10.00"},
		{File: "morosi.csv", Line: 15, Field: "INFO_CMOR", Rule: "E5", Value: "NO", Message: "mora notice 1 (PEC-2026-7): the notice did not inform the customer about the CMOR"},
		{File: "rule E3: odd.csv", Line: 3, Rule: flows.RuleCSVColumns, Value: "31", Message: `line 3 has 31 values, the header has 29 columns: column 31, which has no header, holds "x" (a ; inside a value must be in quotes)`},
		{File: "x.csv", Line: 2, Field: "NUM_FATTURA", Rule: flows.RuleRequired, Message: "mandatory value missing"},
	} {
		es := []archive.Exception{{ID: 1, Kind: "row_refused", Line: f.Line, Field: f.Field, Rule: f.Rule, Value: f.Value, Message: f.String()}}
		got := FindingsFromExceptions(es)
		if len(got) != 1 || got[0].Message != f.Message {
			t.Errorf("%s: rebuilt message %q, want %q", f.String(), got, f.Message)
		}
		live := findingText(f, "it")
		if rebuilt := findingText(got[0], "it"); rebuilt != live {
			t.Errorf("rebuilt %q\nwant     %q", rebuilt, live)
		}
	}
}
