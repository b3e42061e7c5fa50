package export

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
	"github.com/xuri/excelize/v2"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixtureAt is the fixed instant of every fixture event, so outputs are byte-stable.
var fixtureAt = time.Date(2025, 6, 2, 8, 30, 0, 0, time.UTC)

// fixture is a store with three practices, the files behind them and exceptions.
type fixture struct {
	store *archive.Store
	ids   map[string]int64 // case key → practice id
	files []archive.File
}

func newFixture(t testing.TB) fixture { return newFixtureForm(t, false) }

// newFixtureForm is newFixture, its history written in the folded form when folded
// (issue 16): the creation and build rows stand for the input and built links and
// name their file as archive.FileName, as the bulk path and the build write them
// now. Every export must read the same either way.
func newFixtureForm(t testing.TB, folded bool) fixture {
	t.Helper()
	ctx := context.Background()
	s, err := archive.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fx := fixture{store: s, ids: map[string]int64{}}
	for i, c := range []struct{ source, name, dir, kind, body string }{
		{"folder:morosi", "morosi_20250301.csv", "in", "uscente.morosi", "POD;CF;IMPORTO\r\nIT001E00000001;RSSMRA80A01H501U;120,50\r\n"},
		{"built", "CMOR_REQ_00488410010_20250310.csv", "out", "REQ", "CP_UTENTE;POD\r\nE250000001;IT001E00000001\r\n"},
		{"sftp:sii", "CMOR_ESITO_20250315.csv", "in", "REQ_ESITO", "CP_UTENTE;ESITO;CAUSALE\r\nE250000001;OK;\r\n"},
		{"sftp:sii", "../weird name;=1.csv", "in", "REQ_ESITO", "x\r\n"},
	} {
		res, err := s.Ingest(ctx, archive.IngestRequest{Source: c.source, Name: c.name, Direction: c.dir, Kind: c.kind,
			Reader: strings.NewReader(c.body), At: fixtureAt.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		fx.files = append(fx.files, res.File)
	}
	amt := flows.MustAmount
	ps := []archive.Practice{
		{CaseKey: "U|IT001E00000001", Role: "uscente", Sector: "E", Point: "IT001E00000001", CustomerID: "RSSMRA80A01H501U",
			CustomerName: "Rossi Mario; \"Bar Èlite\"", CPUtente: "E250000001", CPGestore: "=cmd|' /C calc'!A0", State: flows.StateReady,
			SwitchDate: flows.D(2025, 1, 1), Credit: amt("2500.00"), Estimate: amt("180.40"), CMOR: amt("120.50"),
			WindowOpen: flows.D(2025, 3, 1), WindowClose: flows.D(2025, 6, 30), RequestDate: flows.D(2025, 3, 10),
			AnswerDate: flows.D(2025, 3, 15)},
		{CaseKey: "U|00881234567890", Role: "uscente", Sector: "G", Point: "00881234567890", CustomerID: "01234567897",
			CustomerName: "+39 Gas S.r.l.", CPUtente: "G250000001", State: flows.StateRejected, CauseCode: "5",
			Motivation: "@SUM(1+1) codice già usato", SwitchDate: flows.D(2025, 2, 1), Credit: amt("1234567.89"),
			Estimate: amt("0.01"), CMOR: amt("-12.30"), RequestDate: flows.D(2025, 4, 1), AnswerDate: flows.D(2025, 4, 3)},
		{CaseKey: "E|G77", Role: "entrante", Sector: "E", Point: "IT001E00000009", CustomerID: "VRDLGU70B02F205X",
			CustomerName: "-Verdi Luigi\tsecondo", CPGestore: "G77", State: flows.EntranteCharged, SwitchDate: flows.D(2025, 4, 1),
			Previous: amt("30.00"), CMOR: amt("45.67"), Charged: amt("45.67"), Collected: amt("20"), SuspensionTerm: flows.D(2025, 7, 1)},
	}
	err = s.Write(ctx, func(tx *sql.Tx) error {
		for i := range ps {
			ps[i].CompanyPIVA = "00488410010"
			h := archive.HistoryEntry{Flow: "uscente.morosi", At: fixtureAt, FileID: fx.files[0].ID, Line: 2 + i}
			if i == 0 { // as daemon/uscente.go writes it
				h.Note = "case read from morosi_20250301.csv lines 2; CMOR 120.50 (credit 2500.00, estimate 180.40); request window opens 01/03/2025"
			}
			switch {
			case folded && i == 0: // as the morosi handler writes it
				h.Link, h.Note = archive.LinkInputCaseRead, strings.TrimPrefix(h.Note, "case read from morosi_20250301.csv lines ")
			case folded:
				h.Link = archive.LinkInput
			}
			if ps[i].Role == "entrante" {
				h = archive.HistoryEntry{Flow: "NOTIFICA", At: fixtureAt, FileID: fx.files[3].ID, Line: 1}
			}
			if err := s.CreatePractice(ctx, tx, &ps[i], h); err != nil {
				return err
			}
			fx.ids[ps[i].CaseKey] = ps[i].ID
		}
		p := &ps[0]
		built := archive.HistoryEntry{Flow: "REQ", FileID: fx.files[1].ID, Line: 2, At: fixtureAt.Add(2 * time.Hour),
			Note: "REQ E250000001 written into CMOR_REQ_00488410010_20250310.csv"}
		// Stored: the transition links the file as an answer, the build's link is
		// added. Folded: the row stands for the built link and its note is rendered
		// (archive.BuildNote); the answer link is added.
		link := "built"
		if folded {
			built.Link, built.Note, link = archive.LinkBuiltRequest, "", "answer"
		}
		if err := s.Transition(ctx, tx, p, flows.StateSent, built); err != nil {
			return err
		}
		if err := s.LinkPracticeFile(ctx, tx, p.ID, fx.files[1].ID, link, 2); err != nil {
			return err
		}
		if err := s.Transition(ctx, tx, p, flows.StateAccepted, archive.HistoryEntry{Flow: "REQ_ESITO", FileID: fx.files[2].ID, Line: 2, At: fixtureAt.Add(3 * time.Hour),
			Note: "a note nobody translated; CMOR 1234.50"}); err != nil {
			return err
		}
		if _, _, err := s.RaiseException(ctx, tx, archive.Exception{Kind: "sii_refusal", Severity: archive.SevHigh, PracticeID: ps[1].ID,
			Message: "SII refused the request: cause 5", LastSeen: fixtureAt}); err != nil {
			return err
		}
		if _, _, err := s.RaiseException(ctx, tx, archive.Exception{Kind: "window_closing", PracticeID: ps[0].ID,
			Message: "request window closes 30/06/2025", LastSeen: fixtureAt}); err != nil {
			return err
		}
		id, _, err := s.RaiseException(ctx, tx, archive.Exception{Kind: "no_answer", PracticeID: ps[0].ID,
			Message: "no SII answer after 3 days", LastSeen: fixtureAt})
		if err != nil {
			return err
		}
		if err := s.ResolveException(ctx, tx, id, "auto", "answer received"); err != nil {
			return err
		}
		// ResolveException stamps the wall clock: pin it so golden files are stable.
		_, err = tx.ExecContext(ctx, `UPDATE exceptions SET resolved_at = ? WHERE id = ?`, archive.TS(fixtureAt.Add(4*time.Hour)), id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (run go test -update and review the diff):\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestNeutralise(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""}, {"Rossi", "Rossi"}, {"=1+1", "'=1+1"}, {"+39 06", "'+39 06"}, {"-x", "'-x"}, {"@SUM(A1)", "'@SUM(A1)"},
		{"\t=1", "'\t=1"}, {"\r=1", "'\r=1"}, {"a=b", "a=b"}, {"'quoted", "'quoted"},
		// CR and LF lead a cell: neutralised whatever follows (issue 13)
		{"\r", "'\r"}, {"\n", "'\n"}, {"\n=HYPERLINK(\"x\")", "'\n=HYPERLINK(\"x\")"}, {"\r\n@x", "'\r\n@x"},
		{"\nRossi", "'\nRossi"}, {"Rossi\n=1", "Rossi\n=1"},
		// leading spaces are looked through
		{" =1+1", "' =1+1"}, {"   -5", "'   -5"}, {"  Rossi", "  Rossi"}, {"   ", "   "},
	} {
		if got := Neutralise(tt.in); got != tt.want {
			t.Errorf("Neutralise(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestFastFormatters pins dateIT and amountText to the flows formatting they replace.
func TestFastFormatters(t *testing.T) {
	for _, d := range []flows.Date{{}, flows.D(2025, 1, 1), flows.D(1999, 12, 31), flows.D(2100, 2, 28)} {
		if got, want := dateIT(d), d.String(); got != want {
			t.Errorf("dateIT(%v) = %q, want %q", d, got, want)
		}
	}
	for _, c := range []int64{0, 1, -1, 9, 10, 99, 100, -100, 12345, -12345, 123456789012, -9223372036854775807} {
		for _, dec := range []byte{'.', ','} {
			if got, want := amountText(flows.Amount(c), dec), flows.Amount(c).Format(dec); got != want {
				t.Errorf("amountText(%d, %c) = %q, want %q", c, dec, got, want)
			}
		}
	}
}

func TestPracticesCSVGolden(t *testing.T) {
	fx := newFixture(t)
	for _, tt := range []struct {
		golden string
		opt    Options
	}{
		{"practices_it.csv", Options{}}, // Italian by default: ';' and decimal comma
		{"practices_it_comma.csv", Options{Lang: "it", DecimalComma: true}},
		{"practices_it_point.csv", Options{Lang: "it", DecimalPoint: true}},
		{"practices_en.csv", Options{Format: "csv", Lang: "en"}}, // ',' and decimal point
		{"practices_en_excel_it.csv", Options{Lang: "en", DecimalComma: true, Comma: ';'}},
		{"practices.json", Options{Format: "json"}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := Practices(context.Background(), fx.store, archive.PracticeFilter{}, &buf, tt.opt)
			if err != nil || n != 3 {
				t.Fatalf("Practices = %d, %v", n, err)
			}
			golden(t, tt.golden, buf.Bytes())
		})
	}
}

// The CSV separators follow the language unless asked for explicitly; the file read
// back with a CSV parser has the amounts in the expected notation.
func TestPracticesCSVSeparatorsByLanguage(t *testing.T) {
	fx := newFixture(t)
	for _, tt := range []struct {
		name       string
		opt        Options
		field      rune
		cmor, cred string
	}{
		{"default is Italian", Options{}, ';', "-12,30", "1234567,89"},
		{"it", Options{Lang: "it"}, ';', "-12,30", "1234567,89"},
		{"it with decimal point", Options{Lang: "it", DecimalPoint: true}, ';', "-12.30", "1234567.89"},
		{"it with ','", Options{Lang: "it", Comma: ','}, ',', "-12,30", "1234567,89"}, // quoted by the writer
		{"en", Options{Lang: "en"}, ',', "-12.30", "1234567.89"},
		{"en with decimal comma", Options{Lang: "en", DecimalComma: true}, ',', "-12,30", "1234567,89"},
		{"en for an Italian Excel", Options{Lang: "en", DecimalComma: true, Comma: ';'}, ';', "-12,30", "1234567,89"},
		{"tab", Options{Lang: "en", Comma: '\t'}, '\t', "-12.30", "1234567.89"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := Practices(context.Background(), fx.store, archive.PracticeFilter{}, &buf, tt.opt); err != nil {
				t.Fatal(err)
			}
			r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(buf.Bytes(), []byte("\xEF\xBB\xBF"))))
			r.Comma = tt.field
			recs, err := r.ReadAll()
			if err != nil || len(recs) != 4 || len(recs[0]) != len(columns) {
				t.Fatalf("read back with %q: %d rows, %v", tt.field, len(recs), err)
			}
			cmor, cred := slices.Index(recs[0], Headers(tt.opt.Lang)[13]), slices.Index(recs[0], Headers(tt.opt.Lang)[10])
			if got := recs[2][cmor]; got != tt.cmor {
				t.Errorf("CMOR = %q, want %q", got, tt.cmor)
			}
			if got := recs[2][cred]; got != tt.cred {
				t.Errorf("credit = %q, want %q", got, tt.cred)
			}
		})
	}
	for _, bad := range []struct {
		opt Options
		msg string
	}{
		{Options{DecimalComma: true, DecimalPoint: true}, "both"},
		{Options{Comma: '"'}, "separator"},
		{Options{Comma: '.'}, "separator"},
	} {
		if _, err := Practices(context.Background(), fx.store, archive.PracticeFilter{}, io.Discard, bad.opt); err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%+v: err %v, want one naming %q", bad.opt, err, bad.msg)
		}
	}
}

// TestPracticesCSVForExcel checks the properties an Italian Excel needs, reading the
// file back with a CSV parser rather than trusting the golden bytes.
func TestPracticesCSVForExcel(t *testing.T) {
	fx := newFixture(t)
	var buf bytes.Buffer
	if _, err := Practices(context.Background(), fx.store, archive.PracticeFilter{}, &buf, Options{DecimalComma: true}); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if !bytes.HasPrefix(data, []byte("\xEF\xBB\xBF")) {
		t.Fatal("no UTF-8 BOM")
	}
	if bytes.Count(data, []byte("\n")) != bytes.Count(data, []byte("\r\n")) {
		t.Error("line ends are not all CRLF")
	}
	r := csv.NewReader(bytes.NewReader(data[3:]))
	r.Comma = ';'
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || !reflect.DeepEqual(recs[0], Headers("it")) {
		t.Fatalf("header/rows wrong: %d rows, header %v", len(recs), recs[0])
	}
	col := func(h string) int {
		for i, x := range recs[0] {
			if x == h {
				return i
			}
		}
		t.Fatalf("no column %q", h)
		return -1
	}
	first, second, third := recs[1], recs[2], recs[3]
	checks := []struct{ got, want string }{
		{first[col("CP_GESTORE")], "'=cmd|' /C calc'!A0"},
		{first[col("denominazione")], "Rossi Mario; \"Bar Èlite\""},
		{first[col("CMOR")], "120,50"},
		{first[col("data switch")], "01/01/2025"},
		{first[col("dal")], "02/06/2025"},
		{first[col("eccezioni aperte")], "1"},
		{second[col("denominazione")], "'+39 Gas S.r.l."},
		{second[col("motivazione")], "'@SUM(1+1) codice già usato"},
		{second[col("CMOR")], "-12,30"},
		{second[col("credito")], "1234567,89"},
		{second[col("POD/PDR")], "00881234567890"},
		{third[col("denominazione")], "'-Verdi Luigi\tsecondo"},
		{third[col("data risposta")], ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("cell = %q, want %q", c.got, c.want)
		}
	}
}

func TestPracticesFilterAndProgress(t *testing.T) {
	fx := newFixture(t)
	var calls [][2]int
	var buf bytes.Buffer
	n, err := Practices(context.Background(), fx.store, archive.PracticeFilter{Role: "uscente"}, &buf,
		Options{Progress: func(done, total int) { calls = append(calls, [2]int{done, total}) }})
	if err != nil || n != 2 {
		t.Fatalf("Practices = %d, %v", n, err)
	}
	if len(calls) < 2 || calls[0] != [2]int{0, 2} || calls[len(calls)-1] != [2]int{2, 2} {
		t.Errorf("progress calls %v, want first (0,2) and last (2,2)", calls)
	}
	if strings.Contains(buf.String(), "G77") {
		t.Error("entrante practice exported despite role filter")
	}
	if _, err := Practices(context.Background(), fx.store, archive.PracticeFilter{}, io.Discard, Options{Format: "pdf"}); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := Practices(context.Background(), fx.store, archive.PracticeFilter{}, io.Discard, Options{Lang: "fr"}); err == nil {
		t.Error("unknown language accepted")
	}
}

func TestPracticesJSONIsValid(t *testing.T) {
	fx := newFixture(t)
	for _, f := range []archive.PracticeFilter{{}, {Point: "nothing"}} {
		var buf bytes.Buffer
		n, err := Practices(context.Background(), fx.store, f, &buf, Options{Format: "json"})
		if err != nil {
			t.Fatal(err)
		}
		var recs []Record
		if err := json.Unmarshal(buf.Bytes(), &recs); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, buf.Bytes())
		}
		if len(recs) != n {
			t.Fatalf("%d records, %d written", len(recs), n)
		}
		if n > 0 && (recs[0].CMOR != "120.50" || recs[0].SwitchDate != "2025-01-01" || recs[0].OpenExceptions != 1) {
			t.Errorf("record 0 = %+v", recs[0])
		}
	}
}

// TestPracticesXLSXReadBack writes an XLSX and reads it back cell by cell with
// excelize as an independent reader: types, raw values, formats, header, panes,
// autofilter.
func TestPracticesXLSXReadBack(t *testing.T) {
	fx := newFixture(t)
	var buf bytes.Buffer
	n, err := Practices(context.Background(), fx.store, archive.PracticeFilter{}, &buf, Options{Format: "xlsx"})
	if err != nil || n != 3 {
		t.Fatalf("Practices = %d, %v", n, err)
	}
	x, err := excelize.OpenReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	const sheet = "Pratiche"
	if got := x.GetSheetList(); !reflect.DeepEqual(got, []string{sheet}) {
		t.Fatalf("sheets %v", got)
	}
	rows, err := x.GetRows(sheet)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || !reflect.DeepEqual(rows[0], Headers("it")) {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	// Header: bold.
	sid, _ := x.GetCellStyle(sheet, "A1")
	if st, err := x.GetStyle(sid); err != nil || st.Font == nil || !st.Font.Bold {
		t.Errorf("header not bold: %+v %v", st, err)
	}
	// Frozen header row.
	panes, err := x.GetPanes(sheet)
	if err != nil || !panes.Freeze || panes.YSplit != 1 || panes.TopLeftCell != "A2" {
		t.Errorf("panes %+v, %v; want header frozen", panes, err)
	}
	// Autofilter over the whole table.
	found := false
	for _, d := range x.GetDefinedName() {
		if d.Name == "_xlnm._FilterDatabase" && strings.HasSuffix(d.RefersTo, "$A$1:$X$4") {
			found = true
		}
	}
	if !found {
		t.Errorf("no autofilter over A1:X4 in %+v", x.GetDefinedName())
	}
	if w, _ := x.GetColWidth(sheet, "G"); w < 20 {
		t.Errorf("name column width %v, want a wide column", w)
	}
	checkXLSXCells(t, x, sheet)
	// Empty dates are empty cells, not 00/01/1900.
	if v, _ := x.GetCellValue(sheet, "W4"); v != "" {
		t.Errorf("W4 (no answer date) = %q, want empty", v)
	}
	libreOfficeReadBack(t, buf.Bytes())
}

// checkXLSXCells checks the type, raw value, shown value and number format of a
// sample of cells of the fixture's export, and that no cell is a formula.
func checkXLSXCells(t *testing.T, x *excelize.File, sheet string) {
	t.Helper()
	type cellCheck struct {
		cell      string
		types     []excelize.CellType
		raw       string // value as stored
		formatted string // value as a spreadsheet shows it
		numFmt    string
	}
	num := []excelize.CellType{excelize.CellTypeUnset, excelize.CellTypeNumber} // no t attribute means number
	str := []excelize.CellType{excelize.CellTypeSharedString, excelize.CellTypeInlineString}
	checks := []cellCheck{
		{"A2", str, "E250000001", "E250000001", ""},
		{"B2", str, "=cmd|' /C calc'!A0", "=cmd|' /C calc'!A0", ""}, // a string cell: shown as text, never evaluated
		{"H2", num, "45658", "01/01/2025", xlsxDateFormat},          // switch date, a real date
		{"I2", str, "accolta (ACCEPTED)", "accolta (ACCEPTED)", ""}, // state in words, with its code
		{"J2", num, "45810", "02/06/2025", xlsxDateFormat},          // state since, Rome date
		{"N2", num, "120.5", "120.50", xlsxAmountFormat},            // CMOR
		{"X2", num, "1", "1", ""},                                   // open exceptions
		{"E3", str, "00881234567890", "00881234567890", ""},         // PDR keeps its leading zeros
		{"K3", num, "1234567.89", "1,234,567.89", xlsxAmountFormat},
		{"L3", num, "0.01", "0.01", xlsxAmountFormat},
		{"N3", num, "-12.3", "-12.30", xlsxAmountFormat},
		{"Q3", str, "5", "5", ""},
		{"P4", num, "20", "20.00", xlsxAmountFormat},
		{"U4", num, "45839", "01/07/2025", xlsxDateFormat},
	}
	for _, c := range checks {
		typ, err := x.GetCellType(sheet, c.cell)
		if err != nil {
			t.Fatal(err)
		}
		if !containsType(c.types, typ) {
			t.Errorf("%s: type %v, want one of %v", c.cell, typ, c.types)
		}
		raw, _ := x.GetCellValue(sheet, c.cell, excelize.Options{RawCellValue: true})
		if raw != c.raw {
			t.Errorf("%s: raw %q, want %q", c.cell, raw, c.raw)
		}
		shown, _ := x.GetCellValue(sheet, c.cell)
		if shown != c.formatted {
			t.Errorf("%s: shown %q, want %q", c.cell, shown, c.formatted)
		}
		if formula, _ := x.GetCellFormula(sheet, c.cell); formula != "" {
			t.Errorf("%s: has formula %q", c.cell, formula)
		}
		if c.numFmt != "" {
			sid, _ := x.GetCellStyle(sheet, c.cell)
			st, _ := x.GetStyle(sid)
			if st == nil || st.CustomNumFmt == nil || *st.CustomNumFmt != c.numFmt {
				t.Errorf("%s: number format %+v, want %q", c.cell, st, c.numFmt)
			}
		}
	}
}

// libreOfficeReadBack is a second, independent reader when one is installed:
// LibreOffice converting the workbook to CSV must show the typed values as formatted.
func libreOfficeReadBack(t *testing.T, xlsx []byte) {
	t.Helper()
	soffice, err := exec.LookPath("libreoffice")
	if err != nil {
		soffice, err = exec.LookPath("soffice")
	}
	if err != nil {
		t.Log("libreoffice not installed: LibreOffice read-back skipped (the excelize read-back above is the required check)")
		return
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "p.xlsx")
	if err := os.WriteFile(in, xlsx, 0o644); err != nil {
		t.Fatal(err)
	}
	// CSV filter options: ',' separated, '"' quoted, UTF-8 (76), from row 1, cells saved
	// as shown (the 9th token), so the typed cells come back with their formats.
	cmd := exec.Command(soffice, "--headless", "-env:UserInstallation=file://"+dir+"/lo", "--convert-to",
		"csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true", "--outdir", dir, in)
	cmd.Env = append(os.Environ(), "LANG=C.UTF-8", "LC_ALL=C.UTF-8")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("libreoffice: %v\n%s", err, out)
	}
	csvOut, err := os.ReadFile(filepath.Join(dir, "p.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(csvOut), "01/01/2025") || !strings.Contains(string(csvOut), "120.50") ||
		!strings.Contains(string(csvOut), ",00881234567890,01234567897,") || !strings.Contains(string(csvOut), "Bar Èlite") {
		t.Errorf("LibreOffice CSV lacks typed values:\n%s", csvOut)
	}
}

func containsType(ts []excelize.CellType, t excelize.CellType) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func TestPracticesXLSXEmptyAndEnglish(t *testing.T) {
	fx := newFixture(t)
	var buf bytes.Buffer
	n, err := Practices(context.Background(), fx.store, archive.PracticeFilter{Point: "none"}, &buf, Options{Format: "xlsx", Lang: "en"})
	if err != nil || n != 0 {
		t.Fatalf("Practices = %d, %v", n, err)
	}
	x, err := excelize.OpenReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	rows, err := x.GetRows("Practices")
	if err != nil || len(rows) != 1 || !reflect.DeepEqual(rows[0], Headers("en")) {
		t.Fatalf("rows %v, %v", rows, err)
	}
}

// unzip reads every entry of a zip into memory.
func unzip(t *testing.T, data []byte) (map[string][]byte, []string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	var names []string
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
		names = append(names, f.Name)
	}
	return out, names
}

func TestDossier(t *testing.T) {
	for _, folded := range []bool{false, true} {
		fx := newFixtureForm(t, folded)
		for _, tt := range []struct{ code, lang, golden string }{
			{"E250000001", "it", "dossier_E250000001_history_it.txt"},
			{"#1", "en", "dossier_E250000001_history_en.txt"},
		} {
			t.Run(fmt.Sprintf("%s/folded=%v", tt.lang, folded), func(t *testing.T) {
				testDossier(t, fx, tt.code, tt.lang, tt.golden)
			})
		}
	}
}

// testDossier checks the dossier of code in lang against the golden files.
func testDossier(t *testing.T, fx fixture, code, lang, goldenName string) {
	t.Helper()
	tt := struct{ code, lang, golden string }{code, lang, goldenName}
	var buf bytes.Buffer
	if err := Dossier(context.Background(), fx.store, tt.code, &buf, tt.lang); err != nil {
		t.Fatal(err)
	}
	entries, names := unzip(t, buf.Bytes())
	wantNames := []string{"practice.json", "history.csv", "history.txt", "exceptions.csv",
		fmt.Sprintf("files/%d_morosi_20250301.csv", fx.files[0].ID),
		fmt.Sprintf("files/%d_CMOR_REQ_00488410010_20250310.csv", fx.files[1].ID),
		fmt.Sprintf("files/%d_CMOR_ESITO_20250315.csv", fx.files[2].ID), ManifestName}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("entries %v\nwant %v", names, wantNames)
	}
	// Every archived file byte for byte.
	for _, f := range fx.files[:3] {
		rc, _, err := fx.store.OpenFile(context.Background(), f.ID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(entries[DossierFileName(f)], want) {
			t.Errorf("%s differs from the archived content", DossierFileName(f))
		}
	}
	// The manifest lists every other entry with its recomputed SHA-256.
	lines := strings.Split(strings.TrimSuffix(string(entries[ManifestName]), "\n"), "\n")
	if len(lines) != len(names)-1 {
		t.Fatalf("manifest has %d lines for %d entries", len(lines), len(names)-1)
	}
	for _, l := range lines {
		sum, name, ok := strings.Cut(l, "  ")
		if !ok {
			t.Fatalf("manifest line %q is not sha256sum format", l)
		}
		h := sha256.Sum256(entries[name])
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("manifest hash of %s does not match its content", name)
		}
	}
	var rec Record
	if err := json.Unmarshal(entries["practice.json"], &rec); err != nil || rec.CPUtente != "E250000001" || rec.CMOR != "120.50" {
		t.Errorf("practice.json = %+v, %v", rec, err)
	}
	golden(t, tt.golden, entries["history.txt"])
	if tt.lang == "it" {
		golden(t, "dossier_E250000001_history.csv", entries["history.csv"])
		golden(t, "dossier_E250000001_exceptions.csv", entries["exceptions.csv"])
		sha256sumCheck(t, entries)
	}
	// The dossier's CSVs use the language's field separator too.
	sep := map[string]rune{"it": ';', "en": ','}[tt.lang]
	for _, name := range []string{"history.csv", "exceptions.csv"} {
		r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(entries[name], []byte("\xEF\xBB\xBF"))))
		r.Comma = sep
		recs, err := r.ReadAll()
		if err != nil || len(recs) < 2 || len(recs[0]) != map[string]int{"history.csv": 9, "exceptions.csv": 10}[name] {
			t.Errorf("%s (%s) read with %q: %d rows, %v", name, tt.lang, sep, len(recs), err)
		}
	}
}

// sha256sumCheck extracts the dossier and runs the real `sha256sum -c` on it.
func sha256sumCheck(t *testing.T, entries map[string][]byte) {
	bin, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Log("sha256sum not installed: manifest checked in Go only")
		return
	}
	dir := t.TempDir()
	for name, b := range entries {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-c", "--strict", ManifestName)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
}

func TestDossierSanitisesNamesAndIsStable(t *testing.T) {
	fx := newFixture(t)
	var a, b bytes.Buffer
	if err := Dossier(context.Background(), fx.store, "G77", &a, ""); err != nil {
		t.Fatal(err)
	}
	if err := Dossier(context.Background(), fx.store, "G77", &b, ""); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two dossiers of the same practice differ")
	}
	_, names := unzip(t, a.Bytes())
	want := fmt.Sprintf("files/%d__weird_name__1.csv", fx.files[3].ID)
	if !containsString(names, want) {
		t.Errorf("entries %v lack the sanitised %s", names, want)
	}
	for _, n := range names {
		if strings.Contains(n, "..") || strings.HasPrefix(n, "/") {
			t.Errorf("unsafe entry name %q", n)
		}
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestDossierErrors(t *testing.T) {
	fx := newFixture(t)
	if err := Dossier(context.Background(), fx.store, "NOPE", io.Discard, "it"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown practice: %v", err)
	}
	if err := Dossier(context.Background(), fx.store, "G77", io.Discard, "fr"); err == nil {
		t.Error("unknown language accepted")
	}
	// A tampered blob must not end up in a dossier: one of another size is refused
	// while read (the index's size), one of the same size by its hash, checked by the
	// blob's reader at its end (the dossier's own check stays behind it).
	path, _, err := fx.store.Blobs.StoredFile(fx.files[1].Hash)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		content []byte
		want    string
	}{
		{[]byte("tampered"), "ends after 8 bytes, the index says"},
		{bytes.Repeat([]byte("x"), int(fx.files[1].Size)), "content changed"},
	} {
		if err := os.WriteFile(path, tt.content, 0o644); err != nil {
			t.Fatal(err)
		}
		err = Dossier(context.Background(), fx.store, "E250000001", io.Discard, "it")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "run cmord archive verify") {
			t.Errorf("tampered blob (%d bytes): %v, want %q", len(tt.content), err, tt.want)
		}
	}
}

// benchStore opens the state directory of n synthetic practices shared with the
// archive benchmarks (os.TempDir()/cmord-bench-practices-N), generating it if absent.
func benchStore(b *testing.B, n int) *archive.Store {
	b.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("cmord-bench-practices-%d", n))
	if _, err := os.Stat(filepath.Join(dir, "index.db")); err != nil {
		tmp, err := os.MkdirTemp(os.TempDir(), "cmord-bench-gen-")
		if err != nil {
			b.Fatal(err)
		}
		s, err := archive.Open(tmp)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.BulkLoadPractices(context.Background(), n, archive.SyntheticPractice); err != nil {
			b.Fatal(err)
		}
		s.Close()
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
		}
	}
	s, err := archive.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkExport1M is `cmord export --format csv` of a million practices
// (EXPORT_ROWS=100000 for a quicker run on a store of that many): it reports rows/s
// and the peak heap seen during the export (sampled every 1000 rows), which must stay
// flat however many rows there are.
func BenchmarkExport1M(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("EXPORT_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("EXPORT_ROWS=%q: a positive number of rows", v)
		}
	}
	s := benchStore(b, n)
	ctx := context.Background()
	runtime.GC()
	var peak uint64
	var ms runtime.MemStats
	var rss float64
	for b.Loop() {
		w := &countingWriter{}
		resetPeakRSS(b)
		start := time.Now()
		got, err := Practices(ctx, s, archive.PracticeFilter{}, w, Options{DecimalComma: true, Progress: func(done, total int) {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}})
		if err != nil || got != n {
			b.Fatalf("exported %d, %v", got, err)
		}
		secs := time.Since(start).Seconds()
		rss = max(rss, peakRSS())
		b.ReportMetric(float64(n)/secs, "rows/s")
		b.ReportMetric(secs, "export-s")
		b.ReportMetric(float64(w.n)/(1<<20), "MB-out")
		if peer := sqlite3CSV(b, n); peer > 0 {
			b.ReportMetric(peer, "sqlite3-csv-s")
			b.ReportMetric(secs/peer, "ratio-vs-sqlite3-csv")
			b.Logf("cmord export %.2fs, sqlite3 -csv of the same rows %.2fs: %.2f×", secs, peer, secs/peer)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(rss, "peak-RSS-MiB")
}

// resetPeakRSS resets the process's peak resident set size (VmHWM), so that the next
// peakRSS measures only the export (Linux: clear_refs 5).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset VmHWM: %v", err)
	}
}

// peakRSS is the process's VmHWM in MiB: the Go heap, the runtime's unreturned
// memory and SQLite's page cache together (0 where /proc is not there).
func peakRSS() float64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, ln := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(ln, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// sqlite3CSV is the peer of the CSV export: the sqlite3 shell writing the practice
// columns the CSV has, as stored (cents, ISO dates), as CSV, in id order, into
// /dev/null. It returns the seconds it took (0 without /usr/bin/sqlite3).
func sqlite3CSV(b *testing.B, n int) float64 {
	if _, err := os.Stat("/usr/bin/sqlite3"); err != nil {
		return 0
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	db := filepath.Join(os.TempDir(), fmt.Sprintf("cmord-bench-practices-%d", n), "index.db")
	cmd := exec.Command("/usr/bin/sqlite3", "-readonly", "-csv", "-header", db, `SELECT cp_utente, cp_gestore, role, sector, point,
		customer_id, customer_name, switch_date, state, state_since, credit_cents, estimate_cents, previous_cents, cmor_cents,
		charged_cents, collected_cents, cause_code, motivation, window_open, window_close, suspension_term, request_date, answer_date
		FROM practices ORDER BY id`)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = devNull, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("sqlite3 -csv: %v %s", err, stderr.Bytes())
	}
	return time.Since(start).Seconds()
}

// BenchmarkExportXLSX100k is an XLSX export of 100,000 practices (of the million):
// excelize's stream writer spills to a temporary file, so the heap stays flat too.
func BenchmarkExportXLSX100k(b *testing.B) {
	s := benchStore(b, 1_000_000)
	ctx := context.Background()
	runtime.GC()
	var peak uint64
	var ms runtime.MemStats
	for b.Loop() {
		w := &countingWriter{}
		start := time.Now()
		got, err := Practices(ctx, s, archive.PracticeFilter{Limit: 100_000}, w, Options{Format: "xlsx", Progress: func(done, total int) {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}})
		if err != nil || got != 100_000 {
			b.Fatalf("exported %d, %v", got, err)
		}
		b.ReportMetric(float64(got)/time.Since(start).Seconds(), "rows/s")
		b.ReportMetric(float64(w.n)/(1<<20), "MB-out")
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// TestDossierCaseUnreadable: a practice whose stored case cannot be read is not
// silently left out of its evidence. The dossier carries the stored bytes as
// case.stored.bin (in the manifest), history.txt opens with the warning, practice.json
// says case_unreadable; a readable case gives none of these.
func TestDossierCaseUnreadable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage string // SQL on practice_data of practice ?; "" leaves the case as written
		lang   string
		want   string // history.txt's warning, "" for none
	}{
		{"readable case", "", "it", ""},
		{"compact case bytes edited", `UPDATE practice_data SET data = x'01ff00' WHERE id = ?`, "it", "ATTENZIONE: il caso archiviato"},
		{"deflated against a dictionary that is not there", `UPDATE practice_data SET data = x'02ffff0300' WHERE id = ?`, "en", "WARNING: this practice's stored case"},
		{"JSON case edited outside cmord", `UPDATE practice_data SET data = '{"righe": [' WHERE id = ?`, "it", "ATTENZIONE: il caso archiviato"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixtureForm(t, true)
			id := fx.ids["E|G77"]
			var stored []byte
			if err := fx.store.Write(ctx, func(tx *sql.Tx) error {
				p, err := fx.store.PracticeByCode(ctx, tx, "G77")
				if err != nil {
					return err
				}
				p.Data = json.RawMessage(`{"righe":[{"fattura":"F1","importo":"45.67"}]}`)
				if err := fx.store.SavePractice(ctx, tx, &p); err != nil {
					return err
				}
				if tc.damage != "" {
					if _, err := tx.ExecContext(ctx, tc.damage, id); err != nil {
						return err
					}
				}
				return tx.QueryRowContext(ctx, `SELECT data FROM practice_data WHERE id = ?`, id).Scan(&stored)
			}); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := Dossier(ctx, fx.store, "G77", &buf, tc.lang); err != nil {
				t.Fatal(err)
			}
			entries, names := unzip(t, buf.Bytes())
			var rec Record
			if err := json.Unmarshal(entries["practice.json"], &rec); err != nil {
				t.Fatal(err)
			}
			bin, hasBin := entries[CaseStoredName]
			text := string(entries["history.txt"])
			if tc.want == "" {
				if hasBin || rec.CaseUnreadable || strings.Contains(text, "ATTENZIONE") || len(rec.Data) == 0 {
					t.Fatalf("readable case: entries %v, case_unreadable %v, data %s", names, rec.CaseUnreadable, rec.Data)
				}
				return
			}
			if !hasBin || !bytes.Equal(bin, stored) {
				t.Fatalf("%s: %q, want the stored bytes %q (entries %v)", CaseStoredName, bin, stored, names)
			}
			if !rec.CaseUnreadable || rec.Data != nil {
				t.Errorf("practice.json: case_unreadable %v data %s, want true and no data", rec.CaseUnreadable, rec.Data)
			}
			if !strings.Contains(text, tc.want) || !strings.Contains(text, CaseStoredName) {
				t.Errorf("history.txt does not warn:\n%s", text)
			}
			if !bytes.Contains(entries[ManifestName], []byte("  "+CaseStoredName+"\n")) {
				t.Errorf("manifest does not list %s:\n%s", CaseStoredName, entries[ManifestName])
			}
		})
	}
}

// The Italian dossier gives an exception's amounts with the decimal comma (its
// exceptions.csv and history.txt carry the code's message as technical detail);
// English keeps the point.
func TestDossierExceptionAmounts(t *testing.T) {
	ex := []archive.Exception{{ID: 3, Kind: "refund_overdue", Severity: "high",
		Message: "practice E1 annulled on 02/11/2026 with the indemnity already paid: refund 120.50 to the customer by 02/12/2026"}}
	for _, c := range []struct{ lang, want, not string }{
		{"it", "refund 120,50 to the customer", "120.50"},
		{"en", "refund 120.50 to the customer", "120,50"},
	} {
		csv := string(exceptionsCSV(c.lang, ex))
		txt := string(historyText(c.lang, archive.Practice{ID: 1, CPUtente: "E1"}, nil, nil, nil, ex))
		for name, got := range map[string]string{"exceptions.csv": csv, "history.txt": txt} {
			if !strings.Contains(got, c.want) || strings.Contains(got, c.not) {
				t.Errorf("%s %s: want %q, not %q:\n%s", c.lang, name, c.want, c.not, got)
			}
		}
	}
}

// An entrante practice has no credit or 4-month estimate of its own (the uscente's
// computation, unknown to the entrante): the CSV and XLSX exports and the dossier
// leave those cells empty, where 0,00 read as "no credit"; its CMOR, previous CMOR,
// charged and collected are shown. An uscente practice's are shown, even 0,00.
func TestEntranteNoCreditCells(t *testing.T) {
	fx := newFixture(t)
	credit, estimate, cmor := -1, -1, -1
	for i, h := range Headers("it") {
		switch h {
		case "credito":
			credit = i
		case "stima 4 mesi":
			estimate = i
		case "CMOR":
			cmor = i
		}
	}
	for _, format := range []string{"csv", "xlsx"} {
		var buf bytes.Buffer
		if _, err := Practices(context.Background(), fx.store, archive.PracticeFilter{}, &buf, Options{Format: format}); err != nil {
			t.Fatal(err)
		}
		var rows [][]string
		if format == "csv" {
			r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(buf.Bytes(), []byte("\xEF\xBB\xBF"))))
			r.Comma = ';'
			var err error
			if rows, err = r.ReadAll(); err != nil {
				t.Fatal(err)
			}
		} else {
			x, err := excelize.OpenReader(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if rows, err = x.GetRows("Pratiche"); err != nil {
				t.Fatal(err)
			}
			x.Close()
		}
		for _, c := range []struct {
			role                   string
			credit, estimate, cmor string
		}{{"entrante", "", "", "45,67"}, {"uscente", "2500,00", "180,40", "120,50"}} {
			found := false
			for _, row := range rows[1:] {
				for len(row) < len(Headers("it")) {
					row = append(row, "")
				}
				if row[2] != c.role || found {
					continue
				}
				found = true
				got := [3]string{row[credit], row[estimate], row[cmor]}
				if format == "xlsx" { // the cell's shown text: 2,500.00 in excelize's locale
					for i := range got {
						got[i] = strings.NewReplacer(",", "", ".", ",").Replace(got[i])
					}
					c.credit = strings.ReplaceAll(c.credit, ".", "")
				}
				if want := [3]string{c.credit, c.estimate, c.cmor}; got != want {
					t.Errorf("%s %s: credit, estimate, CMOR = %q, want %q", format, c.role, got, want)
				}
			}
			if !found {
				t.Errorf("%s: no %s practice", format, c.role)
			}
		}
	}
	var buf bytes.Buffer
	if err := Dossier(context.Background(), fx.store, "G77", &buf, "it"); err != nil {
		t.Fatal(err)
	}
	entries, _ := unzip(t, buf.Bytes())
	txt := string(entries["history.txt"])
	if strings.Contains(txt, "credito") || strings.Contains(txt, "stima 4 mesi") || !strings.Contains(txt, "45,67") {
		t.Errorf("entrante dossier:\n%s", txt)
	}
}
