package flows

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// readAll reads every row of data as input kind kind with opt, and renders rows and
// findings one per line, as the golden files keep them.
func readRows(t *testing.T, kind string, data []byte, opt ReadOptions) (string, []Record, []Finding) {
	t.Helper()
	f := DefaultCatalog().Input(kind)
	if f == nil {
		t.Fatalf("no input kind %s", kind)
	}
	rd := NewCSVReader(bytes.NewReader(data), f, opt)
	defer rd.Close()
	var b strings.Builder
	var recs []Record
	var all []Finding
	for {
		rec, fs, err := rd.Next()
		for _, fd := range fs {
			fmt.Fprintf(&b, "  finding %s\n", fd)
		}
		all = append(all, fs...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		recs = append(recs, rec)
		m := rec.Map()
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "line %d\n", rec.Line)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s = %s\n", k, m[k])
		}
	}
	return b.String(), recs, all
}

// The "Gamma" export (testdata/inputs/foreign) has its own headers, its own codes, rows
// sorted by invoice date, one point column for POD and PDR, the spend as a total and
// the months it covers, and no attestation columns: the mapping file alone reads it.
func TestForeignExportGolden(t *testing.T) {
	dir := filepath.Join("..", "testdata", "inputs", "foreign")
	m, err := LoadMapping(filepath.Join(dir, "morosi-gamma.mapping.toml"))
	if err != nil {
		t.Fatal(err)
	}
	f := DefaultCatalog().Input(m.Kind)
	if fs := f.CheckMappingFile(m); len(fs) > 0 {
		t.Fatalf("the sample mapping does not fit %s: %v", m.Kind, fs)
	}
	data, err := os.ReadFile(filepath.Join(dir, "morosi-gamma.csv"))
	if err != nil {
		t.Fatal(err)
	}
	out, recs, fs := readRows(t, m.Kind, data, ReadOptions{FileName: "morosi-gamma.csv", MappingFile: m, DecimalComma: m.DecimalComma})
	golden(t, "foreign_morosi_gamma.txt", []byte(out))

	// What the golden file shows, said as assertions a reader can check.
	if len(recs) != 7 {
		t.Fatalf("%d rows, want 7", len(recs))
	}
	condo := recs[1]
	for field, want := range map[string]string{
		"SETTORE": "G", "COD_PDR": "00881234567890", "COD_POD": "", "CF_CLIENTE": "07654321095",
		"USO_GAS": "condominio", "TIPO_LETTURA": "S", "MEZZO_MORA": "PE", "INFO_CMOR": "S",
		"FATTURA_CHIUSURA": "S", "DATA_MORA": "03/03/2025",
	} {
		if got := condo.Get(field); got != want {
			t.Errorf("condominium row: %s = %q, want %q", field, got, want)
		}
	}
	// 9,870.00 over 11 months ending February 2025 (switch 1 April): the months add up
	// to the total, so the average-based estimate is exactly 9,870.00 × 4 / 11.
	ms, err := ParseMonthAmounts(condo.Get("SPESA_12M"), false)
	if err != nil || len(ms) != 11 {
		t.Fatalf("spend %q: %v", condo.Get("SPESA_12M"), err)
	}
	var sum Amount
	for _, s := range ms {
		sum += s.Amount
	}
	if sum != MustAmount("9870.00") || ms[0].Month != D(2024, 5, 1) || ms[10].Month != D(2025, 3, 1) {
		t.Errorf("spend months %v (sum %s), want 11 months May 2024-March 2025 summing 9870.00", ms, sum)
	}
	if got := recs[0].Get("COD_POD"); got != "IT001E00004567" || recs[0].Get("COD_PDR") != "" {
		t.Errorf("electricity row: POD %q PDR %q", got, recs[0].Get("COD_PDR"))
	}
	// Line 7 (reading type X, not in the value table) is the only refused row; line 6's
	// unpaid 1100,00 of 1530,15 is fine.
	var lines []int
	for _, fd := range fs {
		if !fd.IsWarning() {
			lines = append(lines, fd.Line)
		}
	}
	if fmt.Sprint(lines) != "[8]" {
		t.Errorf("error findings on lines %v, want [8]: %v", lines, fs)
	}
}

const dirtyHeader = "SETTORE;COD_POD;COD_PDR;CF_CLIENTE;PIVA_CLIENTE;DENOMINAZIONE;DATA_SWITCH;TENSIONE;NUM_FATTURA;DATA_EMISSIONE;DATA_SCADENZA;PERIODO_DA;PERIODO_A;IMPORTO_FATTURA;IMPORTO_INSOLUTO;IMPORTO_RAI;TIPO_LETTURA;DATA_MORA;MEZZO_MORA;TERMINE_MORA;INFO_CMOR;SPESA_12M;FATTURA_CHIUSURA;INDENNIZZI_TIF_PAGATI;RECLAMI_EVASI;PUNTO_ATTIVO;VOLTURA\n"

// morosiRow is a clean row; edit replaces fields by position name.
func dirtyRow(edit map[string]string) string {
	vals := map[string]string{
		"SETTORE": "E", "COD_POD": "IT001E00004567", "CF_CLIENTE": "BNCLRA80A41F205G", "DENOMINAZIONE": "Laura Bianchi",
		"DATA_SWITCH": "01/03/2025", "TENSIONE": "BT", "NUM_FATTURA": "F1", "DATA_EMISSIONE": "15/11/2024",
		"DATA_SCADENZA": "05/12/2024", "PERIODO_DA": "01/10/2024", "PERIODO_A": "31/10/2024",
		"IMPORTO_FATTURA": "424.39", "IMPORTO_INSOLUTO": "424.39", "TIPO_LETTURA": "E", "DATA_MORA": "10/01/2025",
		"MEZZO_MORA": "RA", "TERMINE_MORA": "30/01/2025", "INFO_CMOR": "S", "SPESA_12M": "2024-12:100.00",
		"FATTURA_CHIUSURA": "S", "INDENNIZZI_TIF_PAGATI": "S", "RECLAMI_EVASI": "S", "PUNTO_ATTIVO": "S", "VOLTURA": "N",
	}
	for k, v := range edit {
		vals[k] = v
	}
	var out []string
	for _, h := range strings.Split(strings.TrimSpace(dirtyHeader), ";") {
		out = append(out, vals[h])
	}
	return strings.Join(out, ";") + "\n"
}

// Each silent change of a claim seen on real extracts is now a located error finding
// (file, line, field, rule, value): the grouping side holds the practice.
func TestRowFindings(t *testing.T) {
	clean := dirtyRow(nil)
	for _, tc := range []struct {
		name        string
		data        string
		line        int
		field, rule string
		value       string
	}{
		{"unpaid above invoice total", dirtyRow(map[string]string{"IMPORTO_INSOLUTO": "424.40"}), 2, "IMPORTO_INSOLUTO", RuleAmountAbove, "424.40"},
		{"RAI above invoice total", dirtyRow(map[string]string{"IMPORTO_RAI": "500.00"}), 2, "IMPORTO_RAI", RuleAmountAbove, "500.00"},
		{"inverted billed period", dirtyRow(map[string]string{"PERIODO_A": "30/09/2024"}), 2, "PERIODO_A", RuleDateOrder, "30/09/2024"},
		{"negative unpaid amount", dirtyRow(map[string]string{"IMPORTO_INSOLUTO": "-10.00"}), 2, "IMPORTO_INSOLUTO", RuleAmountNegative, "-10.00"},
		{"negative invoice total", dirtyRow(map[string]string{"IMPORTO_FATTURA": "-424.39", "IMPORTO_INSOLUTO": "0.00"}), 2, "IMPORTO_FATTURA", RuleAmountNegative, "-424.39"},
		{"NUL byte in a name", clean + dirtyRow(map[string]string{"DENOMINAZIONE": "Laura\x00Bianchi"}), 3, "DENOMINAZIONE", RuleTextControl, "Laura\x00Bianchi"},
		{"escape in an invoice number", dirtyRow(map[string]string{"NUM_FATTURA": "F\x1b1"}), 2, "NUM_FATTURA", RuleTextControl, "F\x1b1"},
		{"C1 control in a name", dirtyRow(map[string]string{"DENOMINAZIONE": "Laura\u0085Bianchi"}), 2, "DENOMINAZIONE", RuleTextControl, "Laura\u0085Bianchi"},
		{"line break in a quoted name", dirtyRow(map[string]string{"DENOMINAZIONE": "\"Laura\nBianchi\""}), 2, "DENOMINAZIONE", RuleTextControl, "Laura\nBianchi"},
		{"undecodable byte beside UTF-8 letters", clean + dirtyRow(map[string]string{"DENOMINAZIONE": "Societ\u00e0 \xff Coop"}), 3, "DENOMINAZIONE", RuleCharset, "0xFF"},
		{"replacement character from an earlier decoding", dirtyRow(map[string]string{"DENOMINAZIONE": "Societ\uFFFD Coop"}), 2, "DENOMINAZIONE", RuleCharset, "Societ\uFFFD Coop"},
		{"byte undefined in Windows-1252", dirtyRow(map[string]string{"DENOMINAZIONE": "Societ\xe0 \x81"}), 2, "DENOMINAZIONE", RuleCharset, "0x81"},
		{"unquoted ; in a name shifts the columns", clean + dirtyRow(map[string]string{"DENOMINAZIONE": "Rossi; Bianchi Snc"}) + clean, 3, "", RuleCSVColumns, "28"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, fs := readRows(t, "uscente.morosi", []byte(dirtyHeader+tc.data), ReadOptions{FileName: "x.csv"})
			var hit *Finding
			for i := range fs {
				if fs[i].Rule == tc.rule {
					hit = &fs[i]
				}
			}
			if hit == nil {
				t.Fatalf("no %s finding; got %v", tc.rule, fs)
			}
			if hit.File != "x.csv" || hit.Line != tc.line || hit.Field != tc.field || hit.Value != tc.value || hit.IsWarning() {
				t.Errorf("finding %+v, want x.csv line %d field %q value %q, severity error", *hit, tc.line, tc.field, tc.value)
			}
			for _, fd := range fs {
				if fd.Line != tc.line && !fd.IsWarning() {
					t.Errorf("a clean row got a finding: %v", fd)
				}
			}
		})
	}
}

// Clean rows, and the freedoms a clean row keeps: unpaid equal to the total, a one-day
// period, a line break in an optional free-text field (NOTE), a P.IVA with its IT
// prefix in the customer column.
func TestRowFindingsCleanCases(t *testing.T) {
	hdr := strings.TrimSuffix(dirtyHeader, "\n") + ";NOTE\n"
	data := hdr +
		strings.TrimSuffix(dirtyRow(nil), "\n") + ";\"riga uno\nriga due\"\n" +
		strings.TrimSuffix(dirtyRow(map[string]string{"PERIODO_A": "01/10/2024", "CF_CLIENTE": "IT01234567897"}), "\n") + ";\n"
	_, recs, fs := readRows(t, "uscente.morosi", []byte(data), ReadOptions{FileName: "x.csv"})
	if HasErrors(fs) || len(recs) != 2 {
		t.Fatalf("%d rows, findings %v", len(recs), fs)
	}
	if got := recs[1].Get("CF_CLIENTE"); got != "01234567897" {
		t.Errorf("CF_CLIENTE %q, want the P.IVA without its IT prefix", got)
	}
	if got := recs[0].Get("NOTE"); got != "riga uno\nriga due" {
		t.Errorf("NOTE %q", got)
	}
}

// An unclosed quote is reported at the line where it opened, and the lines it would
// have swallowed are read as rows (their own findings included), not lost.
func TestUnclosedQuote(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		rows []int // lines of the rows read
	}{
		{"never closed", dirtyRow(nil) + dirtyRow(map[string]string{"DENOMINAZIONE": "\"Laura Bianchi"}) + dirtyRow(nil) + dirtyRow(nil), []int{2, 3, 4, 5}},
		{"closed by a later stray quote", dirtyRow(map[string]string{"DENOMINAZIONE": "\"Laura"}) + dirtyRow(nil) + dirtyRow(map[string]string{"NUM_FATTURA": "F\"2"}) + dirtyRow(nil), []int{2, 3, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, recs, fs := readRows(t, "uscente.morosi", []byte(dirtyHeader+tc.data), ReadOptions{FileName: "x.csv"})
			var lines []int
			for _, r := range recs {
				lines = append(lines, r.Line)
			}
			if fmt.Sprint(lines) != fmt.Sprint(tc.rows) {
				t.Errorf("rows at lines %v, want %v", lines, tc.rows)
			}
			var quote []Finding
			for _, fd := range fs {
				if fd.Rule == RuleCSVQuote {
					quote = append(quote, fd)
				}
			}
			if len(quote) == 0 || quote[0].Line != 2 && tc.name == "closed by a later stray quote" || quote[0].Line != 3 && tc.name == "never closed" {
				t.Errorf("quote findings %v", quote)
			}
			if !strings.Contains(quote[0].Message, "quote opened on line") {
				t.Errorf("message %q does not say where the quote opened", quote[0].Message)
			}
		})
	}
}

// Files that are not text CSV are refused by their first bytes, with one finding that
// names what they are and what to do, and nothing of their bytes.
func TestNotTextFiles(t *testing.T) {
	utf16 := func(s string, le bool) []byte {
		var b []byte
		for _, c := range []byte(s) {
			if le {
				b = append(b, c, 0)
			} else {
				b = append(b, 0, c)
			}
		}
		return b
	}
	text := dirtyHeader + dirtyRow(nil)
	for _, tc := range []struct {
		name, format, says string
		data               []byte
	}{
		{"gzip", FormatGzip, "gzip", append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, []byte("\x01\x02\xff\xfe garbage")...)},
		{"zip", FormatZip, "zip archive", []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00report.csv\x00\xff\x01")},
		{"xlsx without a workbook reader", FormatXLSX, "Excel workbook (.xlsx)", []byte("PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml\xff\x00")},
		{"xls", FormatXLS, "Excel 97-2003", []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0xff}},
		{"utf-16 LE with BOM", FormatUTF16LE, "UTF-16", append([]byte{0xFF, 0xFE}, utf16(text, true)...)},
		{"utf-16 BE with BOM", FormatUTF16BE, "UTF-16", append([]byte{0xFE, 0xFF}, utf16(text, false)...)},
		{"utf-16 LE without BOM", FormatUTF16LE, "UTF-16", utf16(text, true)},
		{"utf-16 BE without BOM", FormatUTF16BE, "UTF-16", utf16(text, false)},
		{"pdf", FormatPDF, "PDF", []byte("%PDF-1.7\n\x00\x01\x02")},
		{"binary", FormatBinary, "binary", bytes.Repeat([]byte{0x00, 0x13, 0x88, 0x02, 0xfe, 0x7f, 0x10, 0x41}, 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SniffFormat(tc.data); got != tc.format {
				t.Errorf("SniffFormat = %q, want %q", got, tc.format)
			}
			_, recs, fs := readRows(t, "uscente.morosi", tc.data, ReadOptions{FileName: "x.csv"})
			if len(recs) != 0 || len(fs) != 1 {
				t.Fatalf("%d rows, findings %v; want no row and one finding", len(recs), fs)
			}
			fd := fs[0]
			if fd.Rule != RuleFileFormat || fd.IsWarning() || !strings.Contains(fd.Message, tc.says) || !strings.Contains(fd.Message, "drop") && !strings.Contains(fd.Message, "save") {
				t.Errorf("finding %v: want rule %s naming %q and what to do", fd, RuleFileFormat, tc.says)
			}
			for _, r := range fd.String() {
				if r == 0xFFFD || r < 0x20 {
					t.Errorf("the finding carries bytes of the file: %q", fd.String())
					break
				}
			}
		})
	}
	// Text files stay text: a CSV with one NUL in a name is a row's problem.
	for _, data := range []string{text, "\xef\xbb\xbf" + text, dirtyHeader + dirtyRow(map[string]string{"DENOMINAZIONE": "A\x00B"})} {
		if got := SniffFormat([]byte(data)); got != FormatText {
			t.Errorf("SniffFormat(%.30q) = %q, want text", data, got)
		}
	}
}

// A mapping file is strict: every problem is refused at its file:line, before any
// billing file is read (ParseMapping for the format, CheckMappingFile for the kind).
func TestMappingFileProblems(t *testing.T) {
	morosi := DefaultCatalog().Input("uscente.morosi")
	for _, tc := range []struct {
		name, toml string
		line       int
		says       string
	}{
		{"unknown table", "kind = \"uscente.morosi\"\n[value.TIPO_LETTURA]\nR = \"E\"\n", 2, "unknown table [value]"},
		{"unknown spend key", "[spend]\ntotal = \"T\"\nmonths = \"M\"\nmonth = \"x\"\n", 4, `unknown key "month"`},
		{"spend both shapes", "[spend]\ntotal = \"T\"\nmonths = \"M\"\ncolumns = [\"A\", \"B\"]\n", 1, "not both"},
		{"spend total without months", "[spend]\ntotal = \"T\"\n", 1, "go together"},
		{"spend calendar with 11 columns", "[spend]\norder = \"calendar\"\ncolumns = [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\"]\n", 3, "needs 12 columns"},
		{"bad order", "[spend]\norder = \"random\"\ncolumns = [\"A\"]\n", 2, "must be oldest_first"},
		{"route to one field", "[route.\"Punto\"]\nCOD_POD = \"SETTORE=E\"\n", 1, "at least two fields"},
		{"value table value not a string", "[values.TIPO_LETTURA]\nR = 1\n", 2, "found a number"},
		{"same billing value twice", "[values.MEZZO_MORA]\n\"pec\" = \"PE\"\n\"PEC \" = \"PE\"\n", 3, "same billing value"},
		{"value table for a field that does not exist", "[values.TIPO_LETURA]\nR = \"E\"\n", 1, "TIPO_LETURA, which is not a field"},
		{"value table value fails the type", "[values.TIPO_LETTURA]\nR = \"E\"\nC = \"conguaglio\"\n", 3, "must be one of E, S"},
		{"constant fails the type", "[constants]\nFATTURA_CHIUSURA = \"si certo\"\n", 2, "fails the field's type"},
		{"constant for a missing field", "[constants]\nATTESTATO = \"S\"\n", 2, "not a field"},
		{"constant and a column give one field", "[mapping]\n\"Chiusura\" = \"FATTURA_CHIUSURA\"\n[constants]\nFATTURA_CHIUSURA = \"S\"\n", 4, "given twice"},
		{"routing condition on a missing field", "[route.\"Punto\"]\nCOD_POD = \"COMMODITY=E\"\nCOD_PDR = \"SETTORE=G\"\n", 2, `unknown field "COMMODITY"`},
		{"route to a missing field", "[route.\"Punto\"]\nCOD_POD = \"SETTORE=E\"\nCOD_PDRR = \"SETTORE=G\"\n", 3, "COD_PDRR, which is not a field"},
		{"routed column also mapped", "[mapping]\n\"Punto\" = \"COD_POD\"\n[route.\"Punto\"]\nCOD_POD = \"SETTORE=E\"\nCOD_PDR = \"SETTORE=G\"\n", 3, "both in [mapping] and routed"},
		{"spend field not a spend list", "[spend]\nfield = \"NOTE\"\ncolumns = [\"A\"]\n", 2, "not a month spend list"},
		{"spend with SPESA_12M also mapped", "[mapping]\n\"Spesa\" = \"SPESA_12M\"\n[spend]\ncolumns = [\"A\"]\n", 3, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMapping("m.toml", []byte(tc.toml))
			var msg string
			if err != nil {
				msg = err.Error()
			} else {
				fs := morosi.CheckMappingFile(m)
				if len(fs) == 0 {
					t.Fatal("accepted")
				}
				msg = fs[0].String()
			}
			if want := fmt.Sprintf("m.toml:%d: ", tc.line); !strings.HasPrefix(msg, want) || !strings.Contains(msg, tc.says) {
				t.Errorf("got %q, want it to start with %q and say %q", msg, want, tc.says)
			}
		})
	}
}

// The other shapes of the 12-month spend give the list our one column would: 12
// monthly columns in each order, and a total over its months.
func TestSpendShapes(t *testing.T) {
	months := []string{"M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8", "M9", "M10", "M11", "M12"}
	cols := `columns = ["M1","M2","M3","M4","M5","M6","M7","M8","M9","M10","M11","M12"]`
	hdr := strings.TrimSuffix(dirtyHeader, "\n")
	hdr = strings.Replace(hdr, ";SPESA_12M", "", 1)
	row := func(spend []string) string {
		r := strings.TrimSuffix(dirtyRow(nil), "\n")
		r = strings.Replace(r, ";2024-12:100.00", "", 1)
		return r + ";" + strings.Join(spend, ";") + "\n"
	}
	// Switch 01/03/2025: the last month of supply is February 2025.
	twelve := []string{"1,00", "2,00", "3,00", "4,00", "5,00", "6,00", "7,00", "8,00", "9,00", "10,00", "11,00", ""}
	for _, tc := range []struct {
		name, spend string
		header      []string
		cells       []string
		want        string
	}{
		{"oldest first", "[spend]\n" + cols + "\n", months, twelve,
			"2024-03:1.00,2024-04:2.00,2024-05:3.00,2024-06:4.00,2024-07:5.00,2024-08:6.00,2024-09:7.00,2024-10:8.00,2024-11:9.00,2024-12:10.00,2025-01:11.00"},
		{"newest first", "[spend]\norder = \"newest_first\"\n" + cols + "\n", months, twelve,
			"2024-04:11.00,2024-05:10.00,2024-06:9.00,2024-07:8.00,2024-08:7.00,2024-09:6.00,2024-10:5.00,2024-11:4.00,2024-12:3.00,2025-01:2.00,2025-02:1.00"},
		{"calendar", "[spend]\norder = \"calendar\"\n" + cols + "\n", months, twelve,
			"2024-03:3.00,2024-04:4.00,2024-05:5.00,2024-06:6.00,2024-07:7.00,2024-08:8.00,2024-09:9.00,2024-10:10.00,2024-11:11.00,2025-01:1.00,2025-02:2.00"},
		{"total over 3 months", "[spend]\ntotal = \"Totale\"\nmonths = \"Mesi\"\n", []string{"Totale", "Mesi"}, []string{"100,00", "3"},
			"2024-12:33.33,2025-01:33.33,2025-02:33.34"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMapping("m.toml", []byte("decimal_comma = true\n"+tc.spend))
			if err != nil {
				t.Fatal(err)
			}
			data := hdr + ";" + strings.Join(tc.header, ";") + "\n" + row(tc.cells)
			_, recs, fs := readRows(t, "uscente.morosi", []byte(data), ReadOptions{FileName: "x.csv", MappingFile: m, DecimalComma: true})
			if HasErrors(fs) || len(recs) != 1 {
				t.Fatalf("findings %v", fs)
			}
			if got := recs[0].Get("SPESA_12M"); got != tc.want {
				t.Errorf("SPESA_12M\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	// A bad cell is located at its own column; a bad switch date does not add a
	// "spend missing" finding to its own.
	m, _ := ParseMapping("m.toml", []byte("decimal_comma = true\n[spend]\ntotal = \"Totale\"\nmonths = \"Mesi\"\n"))
	for _, tc := range []struct {
		cells       []string
		edit        map[string]string
		field, rule string
	}{
		{[]string{"100,00", "tredici"}, nil, "Mesi", RuleSpend},
		{[]string{"-5,00", "3"}, nil, "Totale", RuleSpend},
		{[]string{"100,00", "3"}, map[string]string{"DATA_SWITCH": "31/02/2025"}, "DATA_SWITCH", RuleDate},
	} {
		r := strings.TrimSuffix(dirtyRow(tc.edit), "\n")
		r = strings.Replace(r, ";2024-12:100.00", "", 1)
		data := hdr + ";Totale;Mesi\n" + r + ";" + strings.Join(tc.cells, ";") + "\n"
		_, _, fs := readRows(t, "uscente.morosi", []byte(data), ReadOptions{FileName: "x.csv", MappingFile: m, DecimalComma: true})
		if len(fs) != 1 || fs[0].Field != tc.field || fs[0].Rule != tc.rule || fs[0].Line != 2 {
			t.Errorf("cells %v: findings %v, want one %s on %s", tc.cells, fs, tc.rule, tc.field)
		}
	}
}

// A routed column goes to the field whose condition holds; when none holds, the row
// says so at the column, and a file without the column a condition needs is refused
// at its header.
func TestRouteFindings(t *testing.T) {
	m, err := ParseMapping("m.toml", []byte("[values.SETTORE]\nEE = \"E\"\nGAS = \"G\"\n[route.\"Punto\"]\nCOD_POD = \"SETTORE=E\"\nCOD_PDR = \"SETTORE=G\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	hdr := strings.Replace(dirtyHeader, "COD_POD;COD_PDR", "Punto;Altro", 1)
	_, recs, fs := readRows(t, "uscente.morosi", []byte(hdr+dirtyRow(map[string]string{"SETTORE": "EE"})+dirtyRow(map[string]string{"SETTORE": "ACQUA"})), ReadOptions{FileName: "x.csv", MappingFile: m})
	if len(recs) != 2 || recs[0].Get("COD_POD") != "IT001E00004567" {
		t.Fatalf("rows %v", recs)
	}
	var route *Finding
	for i := range fs {
		if fs[i].Rule == RuleRoute {
			route = &fs[i]
		}
	}
	if route == nil || route.Line != 3 || route.Field != "Punto" || !strings.Contains(route.Message, `SETTORE is "ACQUA"`) {
		t.Errorf("route finding %v (all: %v)", route, fs)
	}
	noSector := strings.Replace(hdr, "SETTORE;", "SECTOR;", 1)
	_, recs, fs = readRows(t, "uscente.morosi", []byte(noSector+dirtyRow(nil)), ReadOptions{FileName: "x.csv", MappingFile: m})
	found := false
	for _, fd := range fs {
		if fd.Line == 1 && fd.Rule == RuleCSVHeader && strings.Contains(fd.Message, "depends on SETTORE") {
			found = true
		}
	}
	if !found {
		t.Errorf("no header finding for the missing SETTORE column: %v", fs)
	}
}

// BenchmarkReadMappingFile reads the Gamma export's rows, repeated, through its mapping
// file (value tables, constants, a routed column, the spend as a total): the cost of
// the mapping features beside BenchmarkReadCSV.
func BenchmarkReadMappingFile(b *testing.B) {
	dir := filepath.Join("..", "testdata", "inputs", "foreign")
	m, err := LoadMapping(filepath.Join(dir, "morosi-gamma.mapping.toml"))
	if err != nil {
		b.Fatal(err)
	}
	sample, err := os.ReadFile(filepath.Join(dir, "morosi-gamma.csv"))
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(sample), "\r\n"), "\r\n")
	body := lines[1 : len(lines)-1] // the clean rows
	var buf bytes.Buffer
	buf.WriteString(lines[0] + "\r\n")
	const rows = 100_000
	for i := 0; i < rows; i++ {
		buf.WriteString(body[i%len(body)] + "\r\n")
	}
	data := buf.Bytes()
	f := DefaultCatalog().Input("uscente.morosi")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewCSVReader(bytes.NewReader(data), f, ReadOptions{MappingFile: m, DecimalComma: true})
		n := 0
		for {
			_, fs, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil || HasErrors(fs) {
				b.Fatal(err, fs)
			}
			n++
		}
		if n != rows {
			b.Fatalf("%d rows", n)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(0, "ns/op")
}

// FuzzParseMapping: any mapping file is either refused with file:line problems or
// accepted and checkable against a kind, never a panic.
func FuzzParseMapping(f *testing.F) {
	seed, _ := os.ReadFile(filepath.Join("..", "testdata", "inputs", "foreign", "morosi-gamma.mapping.toml"))
	f.Add(seed)
	f.Add([]byte("[route.\"a.b\"]\nX = \"Y=1&!Z\"\n[spend]\ncolumns = [\n\"a\",\n]\n"))
	f.Add([]byte("[\n\"=\n[values.]\n"))
	morosi := DefaultCatalog().Input("uscente.morosi")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMapping("m.toml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "m.toml") {
				t.Fatalf("problem without its file: %v", err)
			}
			return
		}
		for _, fd := range morosi.CheckMappingFile(m) {
			if fd.File != "m.toml" || fd.Rule != RuleMapping {
				t.Fatalf("finding %+v", fd)
			}
		}
	})
}

// FuzzReadWithMappingFile reads anything through the Gamma mapping (value tables,
// constants, a route, the spend as a total): findings are located, records complete,
// values valid text, and the reader ends.
func FuzzReadWithMappingFile(f *testing.F) {
	dir := filepath.Join("..", "testdata", "inputs", "foreign")
	m, err := LoadMapping(filepath.Join(dir, "morosi-gamma.mapping.toml"))
	if err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(filepath.Join(dir, "morosi-gamma.csv"))
	f.Add(seed)
	f.Add(bytes.Replace(seed, []byte(";GAS;"), []byte(";ACQUA;"), 1))
	f.Add(bytes.Replace(seed, []byte(";12;"), []byte(";\"12\n;"), 1))
	morosi := DefaultCatalog().Input("uscente.morosi")
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewCSVReader(bytes.NewReader(data), morosi, ReadOptions{FileName: "f.csv", MappingFile: m, DecimalComma: true})
		for i := 0; ; i++ {
			if i > len(data)+2 {
				t.Fatal("reader does not end")
			}
			rec, fs, err := r.Next()
			for _, x := range fs {
				if x.Rule == "" || x.File != "f.csv" && x.File != m.File() {
					t.Fatalf("finding without rule or file: %#v", x)
				}
			}
			if err != nil {
				return
			}
			if rec.Line < 2 || len(rec.Values) != len(morosi.Fields) {
				t.Fatalf("record line %d, %d values", rec.Line, len(rec.Values))
			}
		}
	})
}

// Calc pads every line of a CSV to its widest row, the header too: a note typed beside
// the table gives the header empty names at its end. A value under one of them is a
// row wider than the header, refused (as in a workbook), not a column ignored without
// a word; the padding alone is no error.
func TestHeaderEmptyNamesAtTheEnd(t *testing.T) {
	row := func(tail string) string { return strings.TrimSuffix(dirtyRow(nil), "\n") + tail + "\n" }
	hdr := strings.TrimSuffix(dirtyHeader, "\n")
	for _, tc := range []struct {
		name, data string
		line       int    // 0: no error
		msg        string // in the CSV-COLUMNS message
	}{
		{"padding only", hdr + ";;\n" + row(";;") + row(";;"), 0, ""},
		{"a note beside the table", hdr + ";;\n" + row(";;") + row(";;ATTENZIONE: importo contestato"), 3,
			`column 29, which has no header, holds "ATTENZIONE: importo contestato"`},
		{"a note, header not padded", hdr + "\n" + row("") + row(";nota"), 3, `column 28, which has no header, holds "nota"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, fs := readRows(t, "uscente.morosi", []byte(tc.data), ReadOptions{FileName: "x.csv"})
			var errs []Finding
			for _, f := range fs {
				if !f.IsWarning() {
					errs = append(errs, f)
				}
			}
			if tc.line == 0 {
				if len(errs) > 0 {
					t.Errorf("findings %v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Rule != RuleCSVColumns || errs[0].Line != tc.line || !strings.Contains(errs[0].Message, tc.msg) {
				t.Errorf("findings %v, want one CSV-COLUMNS at line %d with %q", errs, tc.line, tc.msg)
			}
		})
	}
}

// A column with no name between named ones (a pandas index written first, a header
// cell deleted): a value under it would go to no field, so the row is refused
// (CSV-COLUMNS), as a value beyond the header's last name is; the empty column alone
// is no error.
func TestHeaderEmptyNamesInTheMiddle(t *testing.T) {
	hdr := strings.TrimSuffix(dirtyHeader, "\n")
	row := strings.TrimSuffix(dirtyRow(nil), "\n")
	for _, tc := range []struct {
		name, data string
		line       int    // 0: no error
		msg        string // in the CSV-COLUMNS message
	}{
		{"an empty column", strings.Replace(hdr, ";", ";;", 1) + "\n" + strings.Replace(row, ";", ";;", 1) + "\n", 0, ""},
		{"a pandas index", ";" + hdr + "\n0;" + row + "\n1;" + row + "\n", 2, `column 1 has no header and holds "0"`},
		{"a header cell deleted", strings.Replace(hdr, "DENOMINAZIONE", "", 1) + "\n" + row + "\n", 2,
			`column 6 has no header and holds "Laura Bianchi"`},
		{"a value on the second row only", strings.Replace(hdr, ";", ";;", 1) + "\n" + strings.Replace(row, ";", ";;", 1) + "\n" +
			strings.Replace(row, ";", ";nota;", 1) + "\n", 3, `column 2 has no header and holds "nota"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, fs := readRows(t, "uscente.morosi", []byte(tc.data), ReadOptions{FileName: "x.csv"})
			var errs []Finding
			for _, f := range fs {
				if !f.IsWarning() && f.Rule != RuleCSVHeader { // a deleted DENOMINAZIONE is also missing
					errs = append(errs, f)
				}
			}
			if tc.line == 0 {
				if len(errs) > 0 {
					t.Errorf("findings %v", errs)
				}
				return
			}
			if len(errs) == 0 || errs[0].Rule != RuleCSVColumns || errs[0].Line != tc.line || !strings.Contains(errs[0].Message, tc.msg) {
				t.Errorf("findings %v, want a CSV-COLUMNS at line %d with %q", errs, tc.line, tc.msg)
			}
		})
	}
}

// A file saved with another field separator is refused whole saying so (FILE-FORMAT,
// the reason of the refused file), not only with every mandatory column "missing".
func TestHeaderOtherSeparator(t *testing.T) {
	hdr := strings.TrimSuffix(dirtyHeader, "\n")
	for _, tc := range []struct{ name, sep, want string }{
		{"tabs", "\t", "no ';' between its columns but tabs"},
		{"commas", ",", "no ';' between its columns but commas"},
		{"semicolons", ";", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.ReplaceAll(hdr, ";", tc.sep) + "\n" + strings.ReplaceAll(dirtyRow(nil), ";", tc.sep)
			_, _, fs := readRows(t, "uscente.morosi", []byte(data), ReadOptions{FileName: "x.csv"})
			found := false
			for _, f := range fs {
				found = found || f.Rule == RuleFileFormat && strings.Contains(f.Message, "another field separator")
			}
			if tc.want == "" {
				if HasErrors(fs) {
					t.Errorf("findings %v", fs)
				}
				return
			}
			if !found || !strings.Contains(fmt.Sprint(fs), tc.want) {
				t.Errorf("findings %v, want %q", fs, tc.want)
			}
		})
	}
}
