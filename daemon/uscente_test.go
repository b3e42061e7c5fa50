package daemon

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Test identifiers with valid check characters.
func testCF(first15 string) string { return first15 + string(flows.CFCheckChar(first15)) }
func testPIVA(first10 string) string {
	return first10 + string(flows.PIVACheckDigit(first10))
}

const (
	ourPIVA     = "00488410010"
	gestorePIVA = "01234567897"
)

// morosiHeader is the uscente.morosi header (our canonical field names).
var morosiHeader = []string{"SETTORE", "COD_POD", "COD_PDR", "CF_CLIENTE", "PIVA_CLIENTE", "DENOMINAZIONE", "DATA_SWITCH", "TENSIONE",
	"USO_GAS", "CONSUMO_ANNUO_SMC", "NUM_FATTURA", "DATA_EMISSIONE", "DATA_SCADENZA", "PERIODO_DA", "PERIODO_A", "IMPORTO_FATTURA",
	"IMPORTO_INSOLUTO", "IMPORTO_RAI", "TIPO_LETTURA", "CONGUAGLIO", "RICOSTRUZIONE", "DATA_MORA", "MEZZO_MORA", "DATA_RICEVIMENTO_MORA",
	"TERMINE_MORA", "INFO_CMOR", "RIF_MORA", "SPESA_12M", "CMOR_PRECEDENTE", "CP_GESTORE_PRECEDENTE", "FATTURA_CHIUSURA",
	"INDENNIZZI_TIF_PAGATI", "RECLAMI_EVASI", "PUNTO_ATTIVO", "VOLTURA", "TUTTI_PUNTI_PERSI", "NOTE"}

// spend12 is a 12-month spend list ending with the month before switch (80.00 a month).
func spend12(switchDate flows.Date) string {
	var ms []flows.MonthSpend
	for i := 12; i >= 1; i-- {
		ms = append(ms, flows.MonthSpend{Month: switchDate.AddMonths(-i).FirstOfMonth(), Amount: flows.Euros(80, 0)})
	}
	return flows.FormatMonthAmounts(ms)
}

// morosiRow builds one electricity row; over overrides fields.
func morosiRow(pod, cf, name string, sw flows.Date, inv string, unpaid string, over map[string]string) string {
	v := map[string]string{
		"SETTORE": "E", "COD_POD": pod, "CF_CLIENTE": cf, "DENOMINAZIONE": name, "DATA_SWITCH": sw.String(), "TENSIONE": "BT",
		"NUM_FATTURA": inv, "DATA_EMISSIONE": sw.AddMonths(-2).String(), "DATA_SCADENZA": sw.AddMonths(-1).String(),
		"PERIODO_DA": sw.AddMonths(-4).String(), "PERIODO_A": sw.AddMonths(-2).AddDays(-1).String(), "IMPORTO_FATTURA": unpaid,
		"IMPORTO_INSOLUTO": unpaid, "TIPO_LETTURA": "E", "DATA_MORA": sw.AddMonths(1).AddDays(9).String(), "MEZZO_MORA": "RA",
		"TERMINE_MORA": sw.AddMonths(1).AddDays(29).String(), "INFO_CMOR": "S", "RIF_MORA": "RA-" + inv, "SPESA_12M": spend12(sw),
		"FATTURA_CHIUSURA": "S", "INDENNIZZI_TIF_PAGATI": "S", "RECLAMI_EVASI": "S", "PUNTO_ATTIVO": "S", "VOLTURA": "N",
	}
	for k, x := range over {
		v[k] = x
	}
	cols := make([]string, len(morosiHeader))
	for i, h := range morosiHeader {
		cols[i] = v[h]
		if strings.ContainsAny(cols[i], ";\"") {
			cols[i] = `"` + strings.ReplaceAll(cols[i], `"`, `""`) + `"`
		}
	}
	return strings.Join(cols, ";")
}

// testWorld is a daemon with the uscente's drop folders and the in-process SFTP
// server as the SII (world_test.go).
type testWorld struct {
	*world
	folders map[string]string
}

// uscenteFolders are the drop folders of a testWorld.
var uscenteFolders = []worldFolder{{"morosi", "uscente.morosi"}, {"incassi", "uscente.incassi"},
	{"annullamenti", "uscente.annullamenti"}, {"rimborsi", "uscente.rimborsi"}}

func newTestWorld(t *testing.T, now time.Time, extra string) *testWorld {
	t.Helper()
	w := newWorld(t, now, worldSpec{roles: `["uscente"]`, folders: uscenteFolders, dirs: []string{"drop/sii"}, extra: extra})
	folders := map[string]string{}
	for _, f := range uscenteFolders {
		folders[f.name] = filepath.Join(w.dir, "drop", f.name)
	}
	return &testWorld{world: w, folders: folders}
}

// drop writes a file into a drop folder, already settled.
func (w *testWorld) drop(folder, name, content string) {
	w.t.Helper()
	p := filepath.Join(w.folders[folder], name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(p, old, old)
}

// answer writes an SII answer into the server's outbound directory (our inbound).
func (w *testWorld) answer(name, content string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.srv.Root, "out", name), []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *testWorld) runOnce() {
	w.t.Helper()
	if err := w.d.RunOnce(context.Background()); err != nil {
		w.t.Fatalf("RunOnce: %v", err)
	}
	deliverOnWallClock(w.t, w.d, func() time.Time { return w.now })
}

// deliverOnWallClock delivers what is due, then puts the test clock back:
// archive.QueueDelivery stamps deliveries with the wall clock, not the daemon's, so the
// test clock's past would hold them.
func deliverOnWallClock(t *testing.T, d *Daemon, testClock func() time.Time) {
	t.Helper()
	d.SetClock(time.Now)
	_, err := d.DeliverDue(context.Background())
	d.SetClock(testClock)
	if err != nil {
		t.Fatalf("DeliverDue: %v", err)
	}
}

// published returns the files on the SII's inbound directory, by name.
func (w *testWorld) published() map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir(filepath.Join(w.srv.Root, "in"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(w.srv.Root, "in", e.Name()))
		out[e.Name()] = string(b)
	}
	return out
}

func (w *testWorld) practice(code string) archive.Practice {
	w.t.Helper()
	p, err := w.d.Store.PracticeByCode(context.Background(), nil, code)
	if err != nil {
		w.t.Fatalf("practice %s: %v", code, err)
	}
	return p
}

func (w *testWorld) exceptions(kind string) []archive.Exception {
	open := true
	es, err := w.d.Store.Exceptions(context.Background(), archive.ExceptionFilter{Open: &open, Kind: kind})
	if err != nil {
		w.t.Fatal(err)
	}
	return es
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "uscente", name)
	if *update {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// The test clock: 15 October 2025, 10:00 in Rome.
var e2eNow = time.Date(2025, 10, 15, 10, 0, 0, 0, flows.Rome)

func e2eExtract() string {
	sw := flows.D(2025, 3, 1)     // window 01/09/2025 - 28/02/2026: open
	swLate := flows.D(2025, 6, 1) // window opens 01/12/2025: waits
	cfA, cfB, cfC := testCF("RSSMRA85T10A562"), testCF("VRDGPP70A01H501"), testCF("BNCLRA80A41F205")
	lines := []string{strings.Join(morosiHeader, ";"),
		// case A: two invoices, filed now
		morosiRow("IT023E00121943", cfA, "Mario Rossi", sw, "F2025-0001", "150.00", nil),
		morosiRow("IT023E00121943", cfA, "Mario Rossi", sw, "F2025-0002", "120.00", map[string]string{"PERIODO_DA": "01/12/2024", "PERIODO_A": "31/01/2025"}),
		// case B: one invoice, filed now
		morosiRow("IT001E00000042", cfB, "Giuseppe Verdi", sw, "F2025-0100", "95.50", nil),
		// case C: window not open yet
		morosiRow("IT001E00000043", cfC, "Laura Bianchi", swLate, "F2025-0200", "80.00", nil),
		// bad row: codice fiscale with a wrong check character
		morosiRow("IT001E00000044", "RSSMRA85T10A562T", "Errato", sw, "F2025-0300", "60.00", nil),
		// refused case: the mora notice did not mention the CMOR (E5)
		morosiRow("IT001E00000045", testCF("NRELCU75C15L219"), "Luca Neri", sw, "F2025-0400", "70.00", map[string]string{"INFO_CMOR": "N"}),
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

func TestUscenteEndToEnd(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	golden(t, "morosi_e2e.csv", e2eExtract()) // the input, kept as a sample for `cmord validate`
	w.drop("morosi", "morosi_20251015.csv", e2eExtract())
	w.runOnce()
	e2eFiled(t, w)
	e2eAnswered(t, w)
	e2eAnnulledAndRefunded(t, w)

	// The window of C opens: it is built without a new extract.
	w.now = time.Date(2025, 12, 1, 9, 0, 0, 0, flows.Rome)
	w.runOnce()
	if c := w.practice("E250000003"); c.State != flows.StateSent {
		t.Errorf("C after its window opened: %s", c.State)
	}
}

// e2eFiled checks the extract's outcome: A and B sent, C waiting, the bad cases
// refused (data errors and an ineligible case apart), one REQ file.
func e2eFiled(t *testing.T, w *testWorld) {

	// Practices: A and B sent, C waiting, the bad ones nowhere.
	a, b, c := w.practice("E250000001"), w.practice("E250000002"), w.practice("E250000003")
	if a.State != flows.StateSent || b.State != flows.StateSent {
		t.Fatalf("A %s, B %s: want SENT", a.State, b.State)
	}
	if c.State != flows.StateWaitingWindow || c.WindowOpen != flows.D(2025, 12, 1) {
		t.Fatalf("C %s opens %s: want WAITING_WINDOW from 01/12/2025", c.State, c.WindowOpen)
	}
	if a.CMOR != flows.MustAmount("270.00") || a.Credit != flows.MustAmount("270.00") || a.Estimate != flows.MustAmount("320.00") {
		t.Errorf("A amounts: credit %s estimate %s cmor %s", a.Credit, a.Estimate, a.CMOR)
	}
	if _, err := w.d.Store.PracticeByCode(context.Background(), nil, "E250000004"); err == nil {
		t.Errorf("a refused case got a practice code")
	}
	refused := w.exceptions("row_refused")
	rules := map[string]bool{}
	for _, e := range refused {
		rules[e.Rule] = true
		if e.FileID == 0 || e.Line == 0 {
			t.Errorf("finding without file or line: %+v", e)
		}
	}
	if !rules[flows.RuleIDCF] || rules["E5"] {
		t.Errorf("row_refused exceptions with rules %v: want ID-CF (a data error), not E5 (an eligibility refusal)", rules)
	}
	// E5 is an eligibility refusal: its own kind, low severity, nothing to correct.
	if ne := w.exceptions("case_not_eligible"); len(ne) != 1 || ne[0].Rule != "E5" || ne[0].Severity != archive.SevLow ||
		!strings.Contains(ne[0].Action, flows.EligibilityNoteEN) {
		t.Errorf("case_not_eligible exceptions %+v, want one E5, low, %q", ne, flows.EligibilityNoteEN)
	}
	pub := w.published()
	if len(pub) != 1 {
		t.Fatalf("published %d files, want 1 REQ: %v", len(pub), keys(pub))
	}
	for name, content := range pub {
		if name != ourPIVA+"_SI10050_20251015_0001.csv" {
			t.Errorf("REQ file name %s", name)
		}
		golden(t, "REQ_e2e.csv", content)
	}
}

// e2eAnswered checks the SII's answers: A admitted then accepted, B refused, an
// orphan answer and a forbidden one reported, A's history complete.
func e2eAnswered(t *testing.T, w *testWorld) {
	// The SII answers: admissibility for A and B (B refused), outcome for A, an orphan.
	w.answer("SI10100_20251016_0001.csv", "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n"+
		"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E250000001;SII2025A0000001;1;;\r\n"+
		"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E250000002;;0;4;campo DATA_SWITCH non valorizzato correttamente\r\n"+
		"SI1;0100;"+ourPIVA+";"+gestorePIVA+";E259999999;SII2025A0000099;1;;\r\n")
	w.now = w.now.Add(24 * time.Hour)
	w.runOnce()
	a, b := w.practice("E250000001"), w.practice("E250000002")
	if a.State != flows.StateAdmitted || a.CPGestore != "SII2025A0000001" {
		t.Fatalf("A after REQ_AMM: %s %q", a.State, a.CPGestore)
	}
	if b.State != flows.StateInadmissible || b.CauseCode != "4" || b.Motivation != "campo DATA_SWITCH non valorizzato correttamente" {
		t.Fatalf("B after REQ_AMM: %s cause %q %q", b.State, b.CauseCode, b.Motivation)
	}
	if es := w.exceptions("sii_refusal"); len(es) != 1 || es[0].PracticeID != b.ID {
		t.Errorf("sii_refusal exceptions: %+v", es)
	}
	if es := w.exceptions("orphan_answer"); len(es) != 1 || !strings.Contains(es[0].Message, "E259999999") {
		t.Errorf("orphan_answer exceptions: %+v", es)
	}

	w.answer("SI10150_20251017_0001.csv", "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;ESITO;COD_CAUSALE;MOTIVAZIONE;IMPORTO_CMOR_VALIDATO;DATA_ESITO\r\n"+
		"SI1;0150;"+ourPIVA+";"+gestorePIVA+";E250000001;SII2025A0000001;1;;;260.00;17/10/2025\r\n"+
		// an outcome for a practice never admitted: the state machine forbids it
		"SI1;0150;"+ourPIVA+";"+gestorePIVA+";E250000002;SII2025A0000002;1;;;95.50;17/10/2025\r\n")
	w.now = w.now.Add(24 * time.Hour)
	w.runOnce()
	a = w.practice("E250000001")
	if a.State != flows.StateAccepted || a.CMOR != flows.MustAmount("260.00") {
		t.Fatalf("A after REQ_ESITO: %s %s", a.State, a.CMOR)
	}
	if es := w.exceptions("state_conflict"); len(es) != 1 {
		t.Errorf("state_conflict exceptions: %+v", es)
	}
	hist, err := w.d.Store.PracticeHistory(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, h := range hist {
		path = append(path, h.To)
		if h.FileID == 0 {
			t.Errorf("history entry without a file: %+v", h)
		}
	}
	// BUILT when its REQ file was written, SENT once that file was confirmed on the SII side.
	if got := strings.Join(path, ">"); got != "READY>BUILT>SENT>ADMITTED>ACCEPTED" {
		t.Errorf("A history %s", got)
	}
	e2eFoldedHistory(t, w, a, hist)
}

// e2eFoldedHistory checks what a person reads of a practice the bulk path created and
// the build wrote (issue 16): its creation and build rows stand for its input and
// built links, and their notes, stored with the file named as archive.FileName, read
// with the file's name, as they did when the name was stored in each.
func e2eFoldedHistory(t *testing.T, w *testWorld, a archive.Practice, hist []archive.HistoryEntry) {
	t.Helper()
	ctx := context.Background()
	files, err := w.d.Store.PracticeFiles(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	byRel := map[string]string{}
	for _, f := range files {
		byRel[f.Relation] = f.File.Name
	}
	if byRel["input"] != "morosi_20251015.csv" || !strings.Contains(byRel["built"], "_SI10050_") {
		t.Fatalf("files of A: %+v", files)
	}
	if want := "case read from morosi_20251015.csv lines "; !strings.HasPrefix(hist[0].Note, want) {
		t.Errorf("creation note %q, want it to begin %q", hist[0].Note, want)
	}
	if want := fmt.Sprintf("REQ E250000001 written into %s; SENT once %[1]s is delivered", byRel["built"]); hist[1].Note != want {
		t.Errorf("build note %q, want %q", hist[1].Note, want)
	}
	// As stored: the creation note without "case read from <file> lines "; no build
	// row (migration 0037): its request holds the state A moves to once its file is
	// delivered and where the row sorts, READY -> BUILT -> SENT as NULLs (0043), and
	// the derived row reads as the stored one.
	var links, buildRows int
	var creationNote, moves, from, to string
	var after int64
	if err := w.d.Store.Read().QueryRowContext(ctx, `SELECT (SELECT group_concat(note, '|') FROM practice_history WHERE practice_id = ?1 AND link = 4),
		(SELECT count(*) FROM practice_history WHERE practice_id = ?1 AND link IN (2, 3)),
		(SELECT count(*) FROM practice_files WHERE practice_id = ?1 AND relation IN ('input', 'built')),
		coalesce(s.hist_moves, 'NULL'), coalesce(s.hist_from, 'NULL'), coalesce(s.hist_to, 'NULL'), s.hist_after
		FROM request_rows r JOIN request_state s ON s.id = r.id WHERE r.practice_id = ?1 AND s.flow = 'REQ'`, a.ID).
		Scan(&creationNote, &buildRows, &links, &moves, &from, &to, &after); err != nil {
		t.Fatal(err)
	}
	if "case read from morosi_20251015.csv lines "+creationNote != hist[0].Note || buildRows != 0 || links != 0 ||
		moves != "NULL" || from != "NULL" || to != "NULL" || after < hist[0].ID || hist[1].ID != 0 || hist[2].ID <= after ||
		hist[1].From != "READY" || hist[1].To != "BUILT" {
		t.Errorf("A's creation row's stored note %q, build rows %d, link rows stored %d, its request's derived row %s>%s moves %q after #%d (history %+v); "+
			"want the note read without its prefix, 0, 0, READY>BUILT moves SENT stored as NULLs (migration 0043) between the creation row and the next",
			creationNote, buildRows, links, from, to, moves, after, hist)
	}
	ps, err := w.d.Store.PracticesOfFile(ctx, files[0].File.ID)
	if err != nil || len(ps) == 0 || ps[0].ID != a.ID || ps[0].Line != hist[0].Line {
		t.Errorf("receipt of the extract: %+v, %v", ps, err)
	}
}

// e2eFoldedOwnCodeBuildNotes checks the build rows of requests under a code of their
// own (ANN_REQ, REFUND_ACK: archive.LinkBuilt, not a REQ's LinkBuiltRequest): stored
// with the file named as archive.FileName, they read as the build wrote them before
// issue 16, byte for byte, the state the practice moves to once delivered included.
func e2eFoldedOwnCodeBuildNotes(t *testing.T, w *testWorld) {
	t.Helper()
	ctx := context.Background()
	a := w.practice("E250000001")
	hist, err := w.d.Store.PracticeHistory(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ANN_REQ":    "ANN_REQ E250000004 written into 00488410010_AI10050_20251018_0001.csv",
		"REFUND_ACK": "REFUND_ACK E250000005 written into 00488410010_AI10060_20251020_0001.csv; REFUNDED once 00488410010_AI10060_20251020_0001.csv is delivered",
	}
	for _, h := range hist {
		if h.Link != archive.LinkBuilt || want[h.Flow] == "" {
			continue
		}
		if h.Note != want[h.Flow] {
			t.Errorf("%s build note %q, want %q", h.Flow, h.Note, want[h.Flow])
		}
		var stored string
		var link int
		if err := w.d.Store.Read().QueryRowContext(ctx, `SELECT note, link FROM practice_history WHERE id = ?`, h.ID).Scan(&stored, &link); err != nil {
			t.Fatal(err)
		}
		if link != 2 || strings.Count(stored, archive.FileName) != strings.Count(h.Note, " once ")+1 {
			t.Errorf("%s build row stored as link %d, note %q: want link 2 and the file named as %s", h.Flow, link, stored, archive.FileName)
		}
		delete(want, h.Flow)
	}
	if len(want) != 0 {
		t.Errorf("no build row standing for the built link of %v in A's history: %+v", keys(want), hist)
	}
}

// e2eAnnulledAndRefunded checks the payment (ANN_REQ), the annulment notice with the
// indemnity already paid, and the refund (REFUND_ACK).
func e2eAnnulledAndRefunded(t *testing.T, w *testWorld) {
	// The customer pays: ANN_REQ (AN-02) is built and published.
	cfA := testCF("RSSMRA85T10A562")
	w.drop("incassi", "incassi_20251018.csv", "COD_POD;CF_CLIENTE;NUM_FATTURA;DATA_INCASSO;IMPORTO_INCASSATO;RESIDUO_INSOLUTO\r\n"+
		"IT023E00121943;"+cfA+";F2025-0001;17/10/2025;150.00;0.00\r\n"+
		"IT023E00121943;"+cfA+";F2025-0002;17/10/2025;120.00;0.00\r\n")
	w.now = w.now.Add(24 * time.Hour)
	w.runOnce()
	// The receipt names both lines of the practice and the annulment the payments
	// queued (the practice's state moves only once it is delivered).
	rc, err := os.ReadFile(filepath.Join(w.folders["incassi"], "done", "incassi_20251018.csv.esito.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "  righe 2-3 — CP_UTENTE E250000001 — POD IT023E00121943 — cliente " + cfA + ": stato: accolta (ACCEPTED); da inviare al SII: AI1.0050 — Richiesta annullamento\n"; !strings.Contains(string(rc), want) {
		t.Errorf("incassi receipt lacks %q:\n%s", want, rc)
	}
	pub := w.published()
	var ann string
	for name, content := range pub {
		if strings.Contains(name, "_AI10050_") {
			ann = content
		}
	}
	if ann == "" {
		t.Fatalf("no ANN_REQ published: %v", keys(pub))
	}
	golden(t, "ANN_REQ_e2e.csv", ann)

	// The annulment notice with the indemnity already paid, then the refund.
	w.answer("AI20200_20251020_0001.csv", "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;COD_CAUSALE_ANNULLAMENTO;MOTIVAZIONE;DATA_ANNULLAMENTO;FLAG_INDENNIZZO_GIA_EROGATO\r\n"+
		"AI2;0200;"+ourPIVA+";"+gestorePIVA+";;SII2025A0000001;AN-02;debito saldato;20/10/2025;S\r\n")
	w.now = w.now.Add(48 * time.Hour)
	w.runOnce()
	if a := w.practice("E250000001"); a.State != flows.StateAnnulled {
		t.Fatalf("A after ANN_NOTIF: %s", a.State)
	}
	if es := w.exceptions("refund_overdue"); len(es) != 1 || es[0].DueOn != "2025-10-30" {
		t.Fatalf("refund_overdue: %+v", es)
	}
	w.drop("rimborsi", "rimborsi_20251022.csv", "CP_GESTORE;DATA_RESTITUZIONE;IMPORTO_RESTITUITO;MODALITA\r\nSII2025A0000001;22/10/2025;260.00;BO\r\n")
	w.runOnce()
	if es := w.exceptions("refund_overdue"); len(es) != 0 {
		t.Errorf("refund_overdue still open: %+v", es)
	}
	var ack string
	for name, content := range w.published() {
		if strings.Contains(name, "_AI10060_") {
			ack = content
		}
	}
	if ack == "" {
		t.Fatalf("no REFUND_ACK published")
	}
	golden(t, "REFUND_ACK_e2e.csv", ack)
	e2eFoldedOwnCodeBuildNotes(t, w)
	if a := w.practice("E250000001"); a.State != "REFUNDED" {
		t.Errorf("A after REFUND_ACK: %s", a.State)
	}
	if es := w.exceptions("ack_overdue"); len(es) != 0 {
		t.Errorf("ack_overdue still open: %+v", es)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestUscenteREQAsXML(t *testing.T) {
	w := newTestWorld(t, e2eNow, "[build.format]\nREQ = \"xml\"\n")
	w.drop("morosi", "morosi.csv", e2eExtract())
	w.runOnce()
	pub := w.published()
	name := ourPIVA + "_SI10050_20251015_0001.xml"
	if _, ok := pub[name]; !ok {
		t.Fatalf("published %v, want %s", keys(pub), name)
	}
	golden(t, "REQ_e2e.xml", pub[name])
	// Round trip: the XML reader gives back the rows the CSV golden holds.
	f := w.d.Catalog().Flow("REQ")
	rd := flows.NewXMLReader(strings.NewReader(pub[name]), f, flows.ReadOptions{FileName: name})
	n := 0
	for {
		_, fs, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil || flows.HasErrors(fs) {
			t.Fatalf("reading our own XML: %v %v", err, fs)
		}
		n++
	}
	if n != 3 {
		t.Errorf("XML REQ has %d rows, want 3", n)
	}
}

func TestUscenteRejectFileCreatesNothing(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	cfg := *w.d.Config()
	cfg.Folders = append([]config.Folder(nil), cfg.Folders...)
	for i := range cfg.Folders {
		cfg.Folders[i].OnBadRows = "reject_file"
	}
	if err := w.d.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	w.drop("morosi", "morosi.csv", e2eExtract())
	w.runOnce()
	if _, err := w.d.Store.PracticeByCode(context.Background(), nil, "E250000001"); err == nil {
		t.Fatal("reject_file: a practice was created from a refused file")
	}
	if _, err := os.Stat(filepath.Join(w.folders["morosi"], "rejected", "morosi.csv.reason.txt")); err != nil {
		t.Errorf("no reason file: %v", err)
	}
	if len(w.published()) != 0 {
		t.Errorf("something was published")
	}
	// The sequence was not consumed: the next good file starts from 1.
	w.drop("morosi", "morosi2.csv", strings.Join(strings.Split(e2eExtract(), "\r\n")[:4], "\r\n")+"\r\n")
	w.runOnce()
	w.practice("E250000001")
}

func TestUscenteRoleRefused(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	cfg := *w.d.Config()
	cfg.Company.Roles = []string{"entrante"}
	if err := w.d.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	w.drop("morosi", "morosi.csv", e2eExtract())
	w.d.ScanFoldersOnce(context.Background())
	reason, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", "morosi.csv.reason.txt"))
	if err != nil || !strings.Contains(string(reason), "does not hold the uscente role") {
		t.Fatalf("reason %q, %v", reason, err)
	}
	// An SII file that is no known flow is refused too.
	w.answer("XX9.0001_whatever.csv", "A;B\r\n1;2\r\n")
	w.d.PollSII(context.Background())
	fs, _ := w.d.Store.ListFiles(context.Background(), archive.FileFilter{Name: "XX9.0001_whatever.csv"})
	if len(fs) != 1 || fs[0].State != archive.StateRejected || !strings.Contains(fs[0].Reason, "not a known SII flow") {
		t.Errorf("unknown SII file: %+v", fs)
	}
}

// morosiBenchFile generates (once, cached in os.TempDir) an uscente.morosi extract of
// rows rows: three invoices per case, every case eligible and in its window on e2eNow.
func morosiBenchFile(b *testing.B, rows int) string {
	b.Helper()
	p := filepath.Join(os.TempDir(), fmt.Sprintf("cmord-bench-morosi-v2-%d.csv", rows))
	if st, err := os.Stat(p); err == nil && st.Size() > 0 {
		return p
	}
	tmp := p + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufioWriter(fh)
	fmt.Fprintf(bw, "%s\r\n", strings.Join(morosiHeader, ";"))
	row := morosiBenchRow()
	for i := 0; i < rows; i++ {
		fmt.Fprintf(bw, "%s\r\n", row(i))
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	fh.Close()
	if err := os.Rename(tmp, p); err != nil {
		b.Fatal(err)
	}
	return p
}

// peakHeap samples the live heap until stop is closed and returns the maximum.
func peakHeap(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak {
				peak = ms.HeapInuse
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// morosiBenchRow returns the benchmark extract's row i: 3 invoices per case. Its
// values vary as a billing extract's do (each case its own customer, name, spend and
// amounts; each invoice its own number and amount), so that what depends on them (the
// compressed blobs above all, but also the indexes) is measured on a file that
// compresses like a real one (about 15 %, not the 2 % of identical values); every case
// stays eligible and in its window on e2eNow.
func morosiBenchRow() func(i int) string {
	sw := flows.D(2025, 3, 1)
	first := []string{"Mario", "Giulia", "Luca", "Francesca", "Marco", "Chiara", "Andrea", "Sara", "Giuseppe", "Elena",
		"Alessandro", "Valentina", "Matteo", "Federica", "Lorenzo", "Silvia", "Davide", "Martina", "Simone", "Paola",
		"Roberto", "Anna", "Stefano", "Laura", "Antonio", "Elisa", "Paolo", "Roberta", "Fabio", "Ilaria"}
	last := []string{"Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
		"Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti",
		"Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone",
		"Longo", "Gentile", "Martinelli", "Vitale", "Lombardo", "Serra", "Coppola", "De Santis", "D'Angelo", "Marchetti"}
	mix := func(x uint64) uint64 { // splitmix64: the same file on every run
		x += 0x9e3779b97f4a7c15
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
		x = (x ^ (x >> 27)) * 0x94d049bb133111eb
		return x ^ (x >> 31)
	}
	cents := func(v uint64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }
	var lastCase = -1
	var pod, cf, name, spend string
	return func(i int) string {
		c := i / 3
		if c != lastCase {
			lastCase = c
			r := mix(uint64(c))
			pod = fmt.Sprintf("IT%03dE%08d", r%997, c)
			cf = testCF(fmt.Sprintf("%s%s%02dT%02dA%03d", "RSS", "MRA", 40+(r>>10)%60, 10+(r>>16)%18, c%1000))
			name = last[(r>>24)%uint64(len(last))] + " " + first[(r>>32)%uint64(len(first))]
			var ms []flows.MonthSpend
			for m := 12; m >= 1; m-- {
				monthly := 3500 + mix(r+uint64(m))%16500 // 35.00–199.99 a month
				ms = append(ms, flows.MonthSpend{Month: sw.AddMonths(-m).FirstOfMonth(), Amount: flows.Amount(monthly)})
			}
			spend = flows.FormatMonthAmounts(ms)
		}
		unpaid := cents(1500 + mix(uint64(i)<<1)%13500) // 15.00–149.99
		return morosiRow(pod, cf, name, sw, fmt.Sprintf("FT%02d-%07d", 24+i%2, i), unpaid, map[string]string{"SPESA_12M": spend})
	}
}

// morosiBenchShuffledFile writes the same rows as morosiBenchFile in a scattered order
// (row (i*p) mod rows at position i, p a prime not dividing rows), without holding
// them in memory: the three rows of a case end up far apart.
func morosiBenchShuffledFile(b *testing.B, rows int) string {
	b.Helper()
	p := filepath.Join(os.TempDir(), fmt.Sprintf("cmord-bench-morosi-v2-shuffled-%d.csv", rows))
	if st, err := os.Stat(p); err == nil && st.Size() > 0 {
		return p
	}
	step := 1_000_003
	for rows%step == 0 {
		step += 2
	}
	tmp := p + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufioWriter(fh)
	fmt.Fprintf(bw, "%s\r\n", strings.Join(morosiHeader, ";"))
	row := morosiBenchRow()
	for i := 0; i < rows; i++ {
		fmt.Fprintf(bw, "%s\r\n", row(int(int64(i)*int64(step)%int64(rows))))
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	fh.Close()
	if err := os.Rename(tmp, p); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkMorosi1M runs a 1,000,000-row uscente.morosi extract through validation,
// grouping, eligibility, practices with their CP_UTENTE and REQ requests (one
// transaction), then builds every SI1.0050 file, and compares the handler with
// sqlite3's own CSV import of the same file. Run: go test ./daemon -run '^$'
// -bench Morosi1M -benchtime 1x (MOROSI_ROWS=N for another size).
func BenchmarkMorosi1M(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("MOROSI_ROWS"); v != "" {
		fmt.Sscan(v, &rows)
	}
	file := morosiBenchFile(b, rows)
	if v := os.Getenv("MOROSI_KEYORDER"); v != "" { // a smaller file read sorted by key, as a million-row one is
		old := uscente.KeyOrderCases
		fmt.Sscan(v, &uscente.KeyOrderCases)
		defer func() { uscente.KeyOrderCases = old }()
	}
	if v := os.Getenv("MOROSI_CHUNK"); v != "" { // experiments with the commit size
		old := uscente.ChunkCases
		fmt.Sscan(v, &uscente.ChunkCases)
		defer func() { uscente.ChunkCases = old }()
	}
	var importSecs, importFileSecs float64
	if _, err := os.Stat("/usr/bin/sqlite3"); err == nil {
		start := time.Now()
		out, err := exec.Command("/usr/bin/sqlite3", ":memory:", ".mode csv", ".separator ;", ".import "+file+" t").CombinedOutput()
		if err != nil {
			b.Fatalf("sqlite3 import: %v %s", err, out)
		}
		importSecs = time.Since(start).Seconds()
		// The same into a database file (rollback journal, sqlite3's defaults), as a
		// user would load it to keep it.
		dbFile := filepath.Join(b.TempDir(), "import.db")
		start = time.Now()
		if out, err := exec.Command("/usr/bin/sqlite3", dbFile, ".mode csv", ".separator ;", ".import "+file+" t").CombinedOutput(); err != nil {
			b.Fatalf("sqlite3 import: %v %s", err, out)
		}
		importFileSecs = time.Since(start).Seconds()
	}
	// The third peer: the same load through modernc.org/sqlite, the driver cmord must
	// use (no cgo), in the settings cmord uses (WAL, synchronous FULL): what the
	// driver alone costs against the sqlite3 shell on the same rows.
	moderncSecs := moderncImport(b, file)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := newTestWorld(&testing.T{}, e2eNow, "")
		ctx := context.Background()
		ioIngest := readProcIO(b)
		res, err := w.d.Store.Ingest(ctx, archive.IngestRequest{Source: "folder:morosi", Name: filepath.Base(file), Direction: "in", Kind: "uscente.morosi", Path: file})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		ioHandler := readProcIO(b)
		stop := make(chan struct{})
		peak := peakHeap(stop)
		resetPeakRSS(b)
		b.StartTimer()
		start := time.Now()
		out, err := w.d.process(ctx, res.File, w.d.folderByName("morosi"))
		if err != nil || out.Rejected {
			b.Fatalf("process: %v %s", err, out.Reason)
		}
		handler := time.Since(start)
		b.StopTimer()
		ioBuild := readProcIO(b)
		rssHandler := peakRSS(b)
		resetPeakRSS(b)
		b.StartTimer()
		startBuild := time.Now()
		n, err := w.d.BuildAll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		build := time.Since(startBuild)
		b.StopTimer()
		ioEnd := readProcIO(b)
		rssBuild := peakRSS(b)
		reportWrites(b, "", file, ioIngest, ioHandler, ioBuild, ioEnd)
		logBuiltHashes(b, w)
		b.ReportMetric((handler+build).Seconds()/moderncSecs, "ratio-vs-modernc")
		b.Logf("sorted file: handler + build %s = %.2f× the modernc.org/sqlite load (%.2fs)", (handler + build).Round(time.Millisecond), (handler+build).Seconds()/moderncSecs, moderncSecs)
		b.ReportMetric(rssHandler, "peak-rss-handler-MiB")
		b.ReportMetric(rssBuild, "peak-rss-build-MiB")
		b.Logf("peak resident memory of the process: handler %.1f MiB, build %.1f MiB (VmHWM, reset before each)", rssHandler, rssBuild)
		close(stop)
		heap := <-peak
		b.ReportMetric(float64(rows)/handler.Seconds(), "rows/s")
		b.ReportMetric(handler.Seconds(), "handler-s")
		b.ReportMetric(build.Seconds(), "build-s")
		b.ReportMetric(float64(n), "files")
		b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
		if importSecs > 0 {
			b.ReportMetric(importSecs, "sqlite3-import-s")
			b.ReportMetric(handler.Seconds()/importSecs, "ratio")
			b.ReportMetric(importFileSecs, "sqlite3-import-file-s")
			b.ReportMetric((handler+build).Seconds()/importFileSecs, "ratio-with-build-vs-file")
			b.ReportMetric(moderncSecs, "modernc-import-s")
			b.Logf("the same rows loaded through modernc.org/sqlite (one INSERT per row, one transaction, WAL): %.2fs = %.1f× sqlite3 .import to a file",
				moderncSecs, moderncSecs/importFileSecs)
		}
		b.Logf("%d rows: handler %s (%.0f rows/s), build %s (%d files), sqlite3 .import %.2fs (:memory:) %.2fs (file), peak heap %.1f MiB, meta %v",
			rows, handler.Round(time.Millisecond), float64(rows)/handler.Seconds(), build.Round(time.Millisecond), n, importSecs, importFileSecs, float64(heap)/(1<<20), out.Meta)
		w.d.Close()
		reportCloseWrites(b, file, ioIngest, ioEnd)
		logDBStat(b, w.d.Store.Dir(), (rows+2)/3) // 3 rows a case
		keepBenchWorld(b, w, "sorted")
		removeBenchWorld(w)

		// The same rows shuffled: the rows of one practice are far apart, so the
		// handler sorts them by key under the state directory first (morosi_cases.go).
		// MOROSI_SHUFFLED=0 skips it.
		if os.Getenv("MOROSI_SHUFFLED") == "0" {
			continue
		}
		b.StopTimer()
		shuffledFile := morosiBenchShuffledFile(b, rows)
		ws := newTestWorld(&testing.T{}, e2eNow, "")
		ioIngestS := readProcIO(b)
		rs, err := ws.d.Store.Ingest(ctx, archive.IngestRequest{Source: "folder:morosi", Name: filepath.Base(shuffledFile), Direction: "in", Kind: "uscente.morosi", Path: shuffledFile})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		ioHandlerS := readProcIO(b)
		resetPeakRSS(b)
		b.StartTimer()
		start = time.Now()
		outS, err := ws.d.process(ctx, rs.File, ws.d.folderByName("morosi"))
		if err != nil || outS.Rejected {
			b.Fatalf("process shuffled: %v %s", err, outS.Reason)
		}
		handlerS := time.Since(start)
		b.StopTimer()
		ioBuildS := readProcIO(b)
		rssHandlerS := peakRSS(b)
		resetPeakRSS(b)
		b.StartTimer()
		startBuild = time.Now()
		nS, err := ws.d.BuildAll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		buildS := time.Since(startBuild)
		b.StopTimer()
		ioEndS := readProcIO(b)
		rssBuildS := peakRSS(b)
		reportWrites(b, "shuffled-", shuffledFile, ioIngestS, ioHandlerS, ioBuildS, ioEndS)
		logBuiltHashes(b, ws) // the same files as the sorted file's when both were read sorted by key
		b.ReportMetric((handlerS+buildS).Seconds()/moderncSecs, "shuffled-ratio-vs-modernc")
		b.Logf("shuffled file: handler + build %s = %.2f× the modernc.org/sqlite load (%.2fs)", (handlerS + buildS).Round(time.Millisecond), (handlerS+buildS).Seconds()/moderncSecs, moderncSecs)
		if outS.Meta["practices_created"] != out.Meta["practices_created"] || outS.Meta["ready"] != out.Meta["ready"] {
			b.Errorf("shuffled file: meta %v, sorted file %v", outS.Meta, out.Meta)
		}
		b.ReportMetric(handlerS.Seconds(), "shuffled-handler-s")
		b.ReportMetric(buildS.Seconds(), "shuffled-build-s")
		b.ReportMetric(rssHandlerS, "shuffled-peak-rss-handler-MiB")
		b.ReportMetric(rssBuildS, "shuffled-peak-rss-build-MiB")
		b.Logf("%d rows shuffled: handler %s (sorted file %s), build %s (%d files), peak resident memory handler %.1f MiB (sorted file %.1f), build %.1f MiB, meta %v",
			rows, handlerS.Round(time.Millisecond), handler.Round(time.Millisecond), buildS.Round(time.Millisecond), nS, rssHandlerS, rssHandler, rssBuildS, outS.Meta)
		ws.d.Close()
		keepBenchWorld(b, ws, "shuffled")
		removeBenchWorld(ws)
	}
}

// keepBenchWorld moves a benchmark world's closed state to $MOROSI_KEEP/name when
// MOROSI_KEEP is set: two runs of the benchmark (two versions of the code) are then
// compared table by table and blob by blob (docs/benchmarks-uscente.md).
func keepBenchWorld(b *testing.B, w *testWorld, name string) {
	dir := os.Getenv("MOROSI_KEEP")
	if dir == "" {
		return
	}
	dst := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(dst)
	if err := os.Rename(w.dir, dst); err != nil {
		b.Fatal(err)
	}
	b.Logf("state kept in %s", dst)
}

// removeBenchWorld removes a benchmark's world: made with a testing.T that never runs
// its cleanups, its state (a gigabyte at 1,000,000 rows) would stay in $TMPDIR.
func removeBenchWorld(w *testWorld) {
	os.RemoveAll(w.dir)
	os.Remove(filepath.Dir(w.dir)) // the T's own temporary root, empty now
}

// moderncImport loads the CSV file into one table of 37 text columns as sqlite3's
// .import does (header row skipped, one INSERT per row, one transaction), through
// modernc.org/sqlite with cmord's pragmas, and returns the seconds it took.
func moderncImport(b *testing.B, file string) float64 {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "modernc.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	if !sc.Scan() {
		b.Fatal("empty file")
	}
	n := len(strings.Split(sc.Text(), ";"))
	cols := make([]string, n)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d TEXT", i)
	}
	start := time.Now()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tx.Exec("CREATE TABLE t (" + strings.Join(cols, ", ") + ")"); err != nil {
		b.Fatal(err)
	}
	st, err := tx.Prepare("INSERT INTO t VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")")
	if err != nil {
		b.Fatal(err)
	}
	args := make([]any, n)
	for sc.Scan() {
		for i, v := range strings.SplitN(sc.Text(), ";", n) {
			args[i] = v
		}
		if _, err := st.Exec(args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start).Seconds()
}

// procIO is what /proc/self/io says the process wrote so far: write_bytes is what it
// sent to the storage layer (page cache pages it dirtied), cancelled_write_bytes what
// of that was truncated or deleted before reaching the disk (a sort run removed in
// time), wchar what it passed to write(2).
type procIO struct{ write, cancelled, wchar int64 }

func readProcIO(b *testing.B) procIO {
	var io procIO
	st, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return io
	}
	for _, ln := range strings.Split(string(st), "\n") {
		k, v, _ := strings.Cut(ln, ": ")
		var n int64
		fmt.Sscan(v, &n)
		switch k {
		case "write_bytes":
			io.write = n
		case "cancelled_write_bytes":
			io.cancelled = n
		case "wchar":
			io.wchar = n
		}
	}
	return io
}

// reportWrites reports the bytes written to disk by each phase (archiving the
// extract, the handler, the build) and their sum as a multiple of the extract's size.
func reportWrites(b *testing.B, prefix, file string, ingest, handler, build, end procIO) {
	st, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	size := float64(st.Size())
	mb := func(from, to procIO) float64 {
		return float64((to.write-to.cancelled)-(from.write-from.cancelled)) / (1 << 20)
	}
	b.ReportMetric(mb(ingest, handler), prefix+"written-ingest-MiB")
	b.ReportMetric(mb(handler, build), prefix+"written-handler-MiB")
	b.ReportMetric(mb(build, end), prefix+"written-build-MiB")
	total := mb(ingest, end)
	b.ReportMetric(total*(1<<20)/size, prefix+"written-x-extract")
	b.Logf("%sbytes written (write_bytes - cancelled_write_bytes): archive %.1f MiB, handler %.1f MiB, build %.1f MiB, total %.1f MiB = %.2f× the extract (%.1f MiB); write(2) total %.1f MiB",
		prefix, mb(ingest, handler), mb(handler, build), mb(build, end), total, total*(1<<20)/size, size/(1<<20), float64(end.wchar-ingest.wchar)/(1<<20))
	b.Logf("%swrite(2): archive %.1f MiB, handler %.1f MiB, build %.1f MiB", prefix, float64(handler.wchar-ingest.wchar)/(1<<20),
		float64(build.wchar-handler.wchar)/(1<<20), float64(end.wchar-build.wchar)/(1<<20))
}

// reportCloseWrites reports what closing the store wrote: the WAL pages not yet
// checkpointed reach index.db then (up to wal_autocheckpoint's 10,000 pages), and
// belong to the extract's cost as much as the checkpoints during the run (at 100,000
// rows 57.6 MiB, outside written-x-extract: docs/benchmarks-uscente.md).
func reportCloseWrites(b *testing.B, file string, ingest, end procIO) {
	st, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	closed := readProcIO(b)
	closeBytes := float64((closed.write - closed.cancelled) - (end.write - end.cancelled))
	total := float64((closed.write - closed.cancelled) - (ingest.write - ingest.cancelled))
	b.ReportMetric(closeBytes/(1<<20), "written-close-MiB")
	b.ReportMetric(total/float64(st.Size()), "written-x-extract-with-close")
	b.Logf("bytes written by closing the store (the WAL's last checkpoint): %.1f MiB; total with it %.1f MiB = %.2f× the extract",
		closeBytes/(1<<20), total/(1<<20), total/float64(st.Size()))
}

// resetPeakRSS resets the process's peak resident set size (VmHWM), so that the next
// peakRSS measures only what runs in between (Linux: clear_refs 5).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset VmHWM: %v", err)
	}
}

// peakRSS is the process's VmHWM in MiB: the Go heap, the runtime's unreturned
// memory and SQLite's page cache and allocations together.
func peakRSS(b *testing.B) float64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, ln := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(ln, "VmHWM:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}

func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 1<<20) }

// logBuiltHashes logs the SHA-256 of every file the build archived, in order, and one
// over them all: a change to what is stored must leave the built files byte-identical.
func logBuiltHashes(b *testing.B, w *testWorld) {
	rows, err := w.d.Store.Read().Query(`SELECT hash FROM files WHERE direction = 'out' ORDER BY id`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	all := sha256.New()
	n := 0
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			b.Fatal(err)
		}
		all.Write([]byte(h))
		n++
	}
	b.Logf("built files: %d, SHA-256 over their SHA-256s %x", n, all.Sum(nil))
}
