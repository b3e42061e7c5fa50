package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/flows"
)

// Real billing exports, as an operator produces them: a spreadsheet saved by
// LibreOffice Calc in an Italian locale (decimal commas, dates as Calc writes them,
// codes Calc made numeric, quoted text), as CSV or .xlsx, dropped into the morosi
// folder read with the Gamma mapping file. The fixtures are LibreOffice's own output
// (testdata/realinput/README.md says how each was made), so no soffice at test time.
// For each: what is refused names file, line, field and rule and is kept with its
// reason; a practice is filed only with billing's whole claim.

// realDrop is one drop of a real-input case.
type realDrop struct {
	fixture, as string
	runAfter    bool // build and deliver after this drop's scan (the practice is filed)
}

type realCase struct {
	name     string
	drops    []realDrop        // dropped in order, one scan each
	rejected map[string]string // file name → a text its reason file must hold
	claims   map[string]string // point → the CMOR of its practice, READY
	filed    map[string]string // point → the CMOR of its practice, SENT
	none     []string          // points with no practice
	refused  []string          // "LINE FIELD RULE" of row_refused exceptions expected
	message  map[string]string // "LINE FIELD RULE" → a text its message must hold
}

func realInputCases() []realCase {
	return []realCase{
		{
			// Calc read the Gamma export with its Italian defaults and saved it as CSV:
			// amounts "96,4", dates "01/03/2025", ISO dates kept, the PDR 00881234567890
			// turned into the number 881234567890. The condominium's two rows are refused
			// at their point, the practice held; Laura's is filed whole.
			name:    "csv saved by calc, pdr made numeric",
			drops:   []realDrop{{fixture: "gamma-lo-it.csv", as: "gamma.csv"}},
			claims:  map[string]string{"IT001E00004567": "246.75"},
			none:    []string{"881234567890", "00881234567890", "IT012E00098765"},
			refused: []string{"3 COD_PDR ID-PDR", "7 COD_PDR ID-PDR", "8 TIPO_LETTURA ENUM", "5 DATA_SWITCH CASE-ROWS"},
		},
		{
			// One customer's three invoices on one sheet, a blank row between them,
			// a header with odd spaces and case, two empty sheets after it.
			name:   "xlsx with empty sheets",
			drops:  []realDrop{{fixture: "empty_sheets.xlsx", as: "estratto.xlsx"}},
			claims: map[string]string{"IT001E00004567": "246.75"},
		},
		{
			// The same invoices, the third on a second sheet: reading the first sheet
			// alone filed the practice for 114.45 instead of 246.75, without a word.
			name:     "xlsx with rows on a second sheet",
			drops:    []realDrop{{fixture: "split_sheets.xlsx", as: "estratto.xlsx"}},
			rejected: map[string]string{"estratto.xlsx": `sheet "Foglio2" would be ignored`},
			none:     []string{"IT001E00004567"},
		},
		{
			// Date cells with Calc's Italian short format, saved as shown: "15/10/24".
			// No year is guessed: every date refused, saying why, and no practice.
			name:    "csv with short-year dates",
			drops:   []realDrop{{fixture: "shortdates-lo-it.csv", as: "estratto.csv"}},
			none:    []string{"IT001E00004567"},
			refused: shortDateRefusals(),
			message: map[string]string{"2 DATA_SWITCH TYPE-DATE": `date "01/03/25" is not GG/MM/AAAA (a two-digit year`},
		},
		{
			// A note typed beside the table, in a column with no header: Calc pads
			// every line, the header too, with empty columns. The note's row was read
			// as if the note were not there; it is refused (the practice held), as the
			// same sheet saved as .xlsx always was.
			name:    "csv with a note beside the table",
			drops:   []realDrop{{fixture: "note-beside-lo-it.csv", as: "estratto.csv"}},
			none:    []string{"IT001E00004567"},
			refused: []string{"3  CSV-COLUMNS", "2 DATA_SWITCH CASE-ROWS"},
			message: map[string]string{"3  CSV-COLUMNS": `column 31, which has no header, holds "ATTENZIONE: importo contestato"`},
		},
		{
			// Calc's Italian detection turned Laura's invoice number "3/11" into the
			// date 03/11/2026, and saved the workbook: the practice was filed with an
			// invoice 03/11/2026 that billing never issued. A date cell in a column
			// that is not a date is refused, the practice held.
			name:  "xlsx with an invoice number made a date",
			drops: []realDrop{{fixture: "invoice-number-made-date.xlsx", as: "estratto.xlsx"}},
			none:  []string{"IT001E00004567"},
			refused: []string{"4 NUM_FATTURA CELL-DATE", "2 DATA_SWITCH CASE-ROWS", "3 COD_PDR ID-PDR", "7 COD_PDR ID-PDR",
				"8 TIPO_LETTURA ENUM", "5 DATA_SWITCH CASE-ROWS"},
			message: map[string]string{"4 NUM_FATTURA CELL-DATE": "a date cell (03/11/2026) in a column of NUM_FATTURA"},
		},
		{
			// Saved by Calc with a tab as the field separator: refused whole, the
			// reason saying so first (not only "mandatory column missing").
			name:     "csv saved with tabs",
			drops:    []realDrop{{fixture: "gamma-lo-tab.csv", as: "estratto.csv"}},
			rejected: map[string]string{"estratto.csv": "no ';' between its columns but tabs"},
			none:     []string{"IT001E00004567"},
		},
		{
			// The practice's invoices in two files (Calc saved each sheet as its own
			// CSV, numbers quoted, not as shown), both dropped before a build: one
			// practice with the three invoices.
			name:   "one practice over two csv files",
			drops:  []realDrop{{fixture: "split-1.csv", as: "estratto-1.csv"}, {fixture: "split-2.csv", as: "estratto-2.csv"}},
			claims: map[string]string{"IT001E00004567": "246.75"},
		},
		{
			// The same, a build between the two: the practice went out with the first
			// file's invoices; the second file's invoice cannot be added to a filed
			// claim, and a person is told so (SI-D01 at its line).
			name: "one practice over two csv files, filed between",
			drops: []realDrop{{fixture: "split-1.csv", as: "estratto-1.csv", runAfter: true},
				{fixture: "split-2.csv", as: "estratto-2.csv"}},
			filed:   map[string]string{"IT001E00004567": "114.45"},
			refused: []string{"2 CP_UTENTE SI-D01"},
			// Not a mere repeat: the message says what the filed claim lacks.
			message: map[string]string{"2 CP_UTENTE SI-D01": "this extract differs from the filed claim: invoice G24-12003 (unpaid 141.30) is not in the filed claim"},
		},
	}
}

// shortDateRefusals are the TYPE-DATE refusals of shortdates-lo-it.csv: the eight
// date columns of its three rows.
func shortDateRefusals() []string {
	var out []string
	for line := 2; line <= 4; line++ {
		for _, f := range []string{"DATA_EMISSIONE", "DATA_SCADENZA", "DATA_SWITCH", "PERIODO_DA", "PERIODO_A", "DATA_MORA", "DATA_RICEVIMENTO_MORA", "TERMINE_MORA"} {
			out = append(out, fmt.Sprintf("%d %s %s", line, f, flows.RuleDate))
		}
	}
	return out
}

func TestRealInputLibreOffice(t *testing.T) {
	for _, tc := range realInputCases() {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			cfg := *w.d.Config()
			cfg.Folders = append([]config.Folder(nil), cfg.Folders...)
			for i := range cfg.Folders {
				if cfg.Folders[i].Name == "morosi" {
					cfg.Folders[i].MappingFile = "../testdata/inputs/foreign/morosi-gamma.mapping.toml"
					cfg.Folders[i].DecimalComma = true
				}
			}
			if err := w.d.apply(&cfg); err != nil {
				t.Fatal(err)
			}
			for _, d := range tc.drops {
				data, err := os.ReadFile(filepath.Join("testdata", "realinput", d.fixture))
				if err != nil {
					t.Fatal(err)
				}
				w.drop("morosi", d.as, string(data))
				w.d.ScanFoldersOnce(context.Background())
				if d.runAfter {
					w.runOnce()
				}
			}
			checkRealOutcome(t, w, tc)
		})
	}
}

func checkRealOutcome(t *testing.T, w *testWorld, tc realCase) {
	t.Helper()
	ctx := context.Background()
	for name, want := range tc.rejected {
		reason, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", name+".reason.txt"))
		if err != nil {
			t.Errorf("%s: no reason file: %v", name, err)
		} else if t.Logf("%s: reason file\n%s", name, reason); !strings.Contains(string(reason), want) {
			t.Errorf("%s: reason file\n%s\nwant %q", name, reason, want)
		}
		if _, err := os.Stat(filepath.Join(w.folders["morosi"], "rejected", name)); err != nil {
			t.Errorf("%s: the refused file is not kept: %v", name, err)
		}
		found := false
		for _, e := range w.exceptions("file_rejected") {
			found = found || e.Subject == name
		}
		if !found {
			t.Errorf("%s: no file_rejected exception", name)
		}
	}
	for state, claims := range map[string]map[string]string{flows.StateReady: tc.claims, flows.StateSent: tc.filed} {
		for point, cmor := range claims {
			ps, err := w.d.Store.QueryPractices(ctx, archive.PracticeFilter{Point: point})
			if err != nil || len(ps) != 1 {
				t.Errorf("point %s: %d practices, %v; want one", point, len(ps), err)
				continue
			}
			if ps[0].CMOR != flows.MustAmount(cmor) || ps[0].State != state {
				t.Errorf("point %s: %s CMOR %s, want %s %s", point, ps[0].State, ps[0].CMOR, state, cmor)
			}
		}
	}
	for _, point := range tc.none {
		if ps, err := w.d.Store.QueryPractices(ctx, archive.PracticeFilter{Point: point}); err != nil || len(ps) != 0 {
			for _, p := range ps {
				t.Errorf("point %s: practice %s %s CMOR %s, want none", point, p.CPUtente, p.State, p.CMOR)
			}
			if err != nil {
				t.Error(err)
			}
		}
	}
	got := map[string]bool{}
	for _, e := range w.exceptions("row_refused") {
		// A row of the wrong width has no field: its message names the column.
		if e.FileID == 0 || e.Line == 0 || e.Field == "" && e.Rule != flows.RuleCSVColumns || e.Rule == "" {
			t.Errorf("refusal without file, line, field or rule: %+v", e)
		}
		k := fmt.Sprintf("%d %s %s", e.Line, e.Field, e.Rule)
		got[k] = true
		if want, ok := tc.message[k]; ok && !strings.Contains(e.Message, want) {
			t.Errorf("row_refused %s: %s\nwant %q", k, e.Message, want)
		}
	}
	for _, want := range tc.refused {
		if !got[want] {
			t.Errorf("no row_refused %q; got %v", want, got)
		}
	}
	if len(got) != len(tc.refused) {
		t.Errorf("row_refused %v, want exactly %v", got, tc.refused)
	}
}

// A workbook written by a program (a report tool, a script) and never opened since
// holds formulas without their values. Billing's canone RAI of case A's first invoice
// is such a formula (=4.5*2): read as an empty cell, it was no RAI at all, and case A
// was filed for 270.00 instead of 261.00. The workbook is refused, naming the cell.
func TestMorosiWorkbookFormulaNotComputed(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	x := excelize.NewFile()
	sh := x.GetSheetName(0)
	rai := 0
	for i, h := range morosiHeader {
		if h == "IMPORTO_RAI" {
			rai = i + 1
		}
	}
	for r, line := range strings.Split(strings.TrimRight(e2eExtract(), "\r\n"), "\r\n") {
		for c, v := range strings.Split(line, ";") {
			if v != "" { // a program writes no empty cells
				cell, _ := excelize.CoordinatesToCellName(c+1, r+1)
				x.SetCellStr(sh, cell, v)
			}
		}
	}
	cell, _ := excelize.CoordinatesToCellName(rai, 2) // case A, invoice F2025-0001
	if err := x.SetCellFormula(sh, cell, "4.5*2"); err != nil {
		t.Fatal(err)
	}
	var book bytes.Buffer
	if err := x.Write(&book); err != nil {
		t.Fatal(err)
	}
	x.Close()
	w.drop("morosi", "morosi.xlsx", book.String())
	w.d.ScanFoldersOnce(context.Background())

	reason, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", "morosi.xlsx.reason.txt"))
	if err != nil || !strings.Contains(string(reason), "formulas were never computed") || !strings.Contains(string(reason), "(the first: "+cell+")") {
		t.Errorf("reason file (%v):\n%s", err, reason)
	}
	if ps, err := w.d.Store.QueryPractices(context.Background(), archive.PracticeFilter{}); err != nil || len(ps) != 0 {
		for _, p := range ps {
			t.Errorf("practice %s %s CMOR %s filed from a workbook whose RAI was not computed", p.CPUtente, p.State, p.CMOR)
		}
	}
}

// A payment row without RESIDUO_INSOLUTO lowers the invoice's unpaid amount by what was
// paid. The same payment listed twice — a row copied in the spreadsheet, or a
// cumulative export that repeats yesterday's payments — was subtracted twice: case A,
// 270.00 unpaid, paid 50.00 once, was recomputed to 170.00 (and a debt "cleared" that
// way would file an annulment). A payment already applied (same invoice, date, amount
// and reference) is not applied again, and the row is refused saying where it was
// applied; a payment with its own reference is another payment.
func TestIncassiRepeatedPayment(t *testing.T) {
	cfA := testCF("RSSMRA85T10A562")
	hdr := "COD_POD;CF_CLIENTE;NUM_FATTURA;DATA_INCASSO;IMPORTO_INCASSATO;RIF_INCASSO\r\n"
	pay := func(inv, amount, ref string) string {
		return "IT023E00121943;" + cfA + ";" + inv + ";16/10/2025;" + amount + ";" + ref + "\r\n"
	}
	for _, tc := range []struct {
		name    string
		files   []string
		cmor    string
		refused []string // "FILE:LINE" of PAYMENT-REPEATED refusals
	}{
		{"once", []string{hdr + pay("F2025-0001", "50.00", "")}, "220.00", nil},
		{"a row copied in the same file", []string{hdr + pay("F2025-0001", "50.00", "") + pay("F2025-0001", "50.00", "")}, "220.00",
			[]string{"incassi-1.csv:3"}},
		// Another file listing a payment already applied (billing's export is
		// cumulative, or the operator corrected a refused row and dropped the whole
		// file again, as the reason file asks): not applied again, and nothing for a
		// person to correct: a warning in the receipt, no refusal (each day's
		// cumulative export would otherwise refuse every earlier payment again).
		{"a cumulative export repeats yesterday's payment", []string{hdr + pay("F2025-0001", "50.00", ""),
			hdr + pay("F2025-0001", "50.00", "") + pay("F2025-0002", "30.00", "")}, "190.00", nil},
		{"a file with a refused row, corrected and dropped again whole", []string{
			hdr + pay("F2025-0001", "50.00", "") + "IT023E00121943;" + cfA + ";F2025-0002;16/10/2025;30,000.00;\r\n",
			hdr + pay("F2025-0001", "50.00", "") + pay("F2025-0002", "30.00", "")}, "190.00", nil},
		{"two payments of one amount, each with its reference", []string{hdr + pay("F2025-0001", "50.00", "B-1") + pay("F2025-0001", "50.00", "B-2")},
			"170.00", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			w.drop("morosi", "morosi.csv", e2eExtract())
			w.d.ScanFoldersOnce(context.Background())
			for i, f := range tc.files {
				w.drop("incassi", fmt.Sprintf("incassi-%d.csv", i+1), f)
				w.d.ScanFoldersOnce(context.Background())
			}
			if a := w.practice("E250000001"); a.CMOR != flows.MustAmount(tc.cmor) {
				t.Errorf("A: CMOR %s, want %s", a.CMOR, tc.cmor)
			}
			var got []string
			for _, e := range w.exceptions("row_refused") {
				if e.Rule == "PAYMENT-REPEATED" {
					got = append(got, fmt.Sprintf("%s:%d", e.Subject, e.Line))
					if e.Field != "IMPORTO_INCASSATO" || !strings.Contains(e.Message, "already applied") {
						t.Errorf("refusal %+v", e)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.refused) {
				t.Errorf("PAYMENT-REPEATED refusals %v, want %v", got, tc.refused)
			}
		})
	}
}

// A refund row listed twice — copied in the spreadsheet, or a cumulative refunds
// export dropped again the next day — filed a second REFUND_ACK to the SII for the same
// refund, each with its own CP_UTENTE. A refund already recorded for the practice is
// not recorded again: the row is refused (REFUND-REPEATED), one REFUND_ACK goes out.
func TestRimborsiRepeatedRefund(t *testing.T) {
	refund := "CP_GESTORE;DATA_RESTITUZIONE;IMPORTO_RESTITUITO;MODALITA\r\nSII2025A0000001;22/10/2025;260.00;BO\r\n"
	for _, tc := range []struct {
		name  string
		files []string
		lines []string // "RULE FILE:LINE" of REFUND-REPEATED and STATE refusals
	}{
		{"once", []string{refund}, nil},
		// The very refund listed again: not recorded again, and nothing to correct (a
		// warning, as an annulment listed again); refused, it raised row_refused
		// 'Correct the row in billing' at each cumulative export.
		{"a row copied in the same file", []string{refund + "SII2025A0000001;22/10/2025;260.00;BO\r\n"}, nil},
		// Delivered between: the practice is REFUNDED; the same refund is still only
		// a warning (it was refused as STATE: no refund is due).
		{"the same refund in the next day's file", []string{refund,
			"CP_GESTORE;DATA_RESTITUZIONE;IMPORTO_RESTITUITO;MODALITA;RIF_RIMBORSO\r\nSII2025A0000001;22/10/2025;260.00;BO;R-1\r\n"},
			nil},
		// Another refund for the practice (another amount): refused, a person says
		// which is right.
		{"another refund in the same file", []string{refund + "SII2025A0000001;23/10/2025;250.00;BO\r\n"}, []string{"REFUND-REPEATED rimborsi-1.csv:3"}},
		{"another refund in the next day's file", []string{refund, "CP_GESTORE;DATA_RESTITUZIONE;IMPORTO_RESTITUITO;MODALITA\r\nSII2025A0000001;23/10/2025;250.00;BO\r\n"},
			[]string{"STATE rimborsi-2.csv:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			w.drop("morosi", "morosi_20251015.csv", e2eExtract())
			w.runOnce()
			w.answer("SI10100_20251016_0001.csv", "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n"+
				"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E250000001;SII2025A0000001;1;;\r\n")
			w.now = w.now.Add(24 * time.Hour)
			w.runOnce()
			w.answer("AI20200_20251020_0001.csv", "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;COD_CAUSALE_ANNULLAMENTO;MOTIVAZIONE;DATA_ANNULLAMENTO;FLAG_INDENNIZZO_GIA_EROGATO\r\n"+
				"AI2;0200;"+ourPIVA+";"+gestorePIVA+";;SII2025A0000001;AN-02;debito saldato;20/10/2025;S\r\n")
			w.now = w.now.Add(48 * time.Hour)
			w.runOnce()
			if a := w.practice("E250000001"); a.State != flows.StateAnnulled {
				t.Fatalf("A: %s, want ANNULLED", a.State)
			}
			for i, f := range tc.files {
				w.drop("rimborsi", fmt.Sprintf("rimborsi-%d.csv", i+1), f)
				w.runOnce()
			}
			acks := 0
			for name, content := range w.published() {
				if strings.Contains(name, "_AI10060_") {
					acks += strings.Count(content, "\r\n") - 1
				}
			}
			if acks != 1 {
				t.Errorf("%d REFUND_ACK rows published, want 1", acks)
			}
			var got []string
			for _, e := range w.exceptions("row_refused") {
				if e.Rule == "REFUND-REPEATED" || e.Rule == "STATE" {
					got = append(got, fmt.Sprintf("%s %s:%d", e.Rule, e.Subject, e.Line))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.lines) {
				t.Errorf("REFUND-REPEATED refusals %v, want %v", got, tc.lines)
			}
		})
	}
}

// A note typed "3/11" in the NOTE column (a reminder's date) is made a date cell by the
// spreadsheet. NOTE is a column cmord reads for nothing: the case was refused whole
// (CELL-DATE) and no claim filed for a debt whose data were right. A date cell there is
// a warning; in a column the code reads (the invoice number) it still refuses the row.
func TestMorosiDateCellInNoteNotRefused(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	x := excelize.NewFile()
	sh := x.GetSheetName(0)
	note := 0
	for i, h := range morosiHeader {
		if h == "NOTE" {
			note = i + 1
		}
	}
	lines := strings.Split(strings.TrimRight(e2eExtract(), "\r\n"), "\r\n")
	for r, line := range lines {
		for c, v := range strings.Split(line, ";") {
			cell, _ := excelize.CoordinatesToCellName(c+1, r+1)
			x.SetCellStr(sh, cell, v)
		}
	}
	italian, err := x.NewStyle(&excelize.Style{CustomNumFmt: ptrString("dd/mm/yyyy")})
	if err != nil {
		t.Fatal(err)
	}
	for r := 2; r <= len(lines); r++ { // every row's note: "3/11" made the date 03/11/2026
		cell, _ := excelize.CoordinatesToCellName(note, r)
		x.SetCellValue(sh, cell, 46329) // 03/11/2026
		x.SetCellStyle(sh, cell, cell, italian)
	}
	var book bytes.Buffer
	if err := x.Write(&book); err != nil {
		t.Fatal(err)
	}
	x.Close()
	w.drop("morosi", "morosi.xlsx", book.String())
	w.d.ScanFoldersOnce(context.Background())
	w.practice("E250000001") // case A became a practice
	for _, e := range w.exceptions("row_refused") {
		if e.Rule == flows.RuleCellDate {
			t.Errorf("refused for a date cell in NOTE: %+v", e)
		}
	}
}

func ptrString(s string) *string { return &s }
