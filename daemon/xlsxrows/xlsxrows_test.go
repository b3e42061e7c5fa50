package xlsxrows

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/cmord/cmord/flows"
)

// makeWorkbook writes an .xlsx as Excel users make them: text cells for codes (leading
// zeros kept), dates as serial numbers with a date format (an Italian one and the
// built-in short date, which excelize would display m-d-yy), amounts with a
// thousands-separator format and a formula's binary noise.
func makeWorkbook(t *testing.T) []byte {
	t.Helper()
	x := excelize.NewFile()
	defer x.Close()
	sh := x.GetSheetName(0)
	header := []string{"SETTORE", "COD_PDR", "PIVA_CLIENTE", "DENOMINAZIONE", "DATA_SWITCH", "USO_GAS", "NUM_FATTURA",
		"DATA_EMISSIONE", "DATA_SCADENZA", "PERIODO_DA", "PERIODO_A", "IMPORTO_FATTURA", "IMPORTO_INSOLUTO", "TIPO_LETTURA",
		"DATA_MORA", "MEZZO_MORA", "TERMINE_MORA", "INFO_CMOR", "SPESA_12M", "FATTURA_CHIUSURA", "INDENNIZZI_TIF_PAGATI",
		"RECLAMI_EVASI", "PUNTO_ATTIVO", "VOLTURA"}
	for i, h := range header {
		cell, _ := excelize.CoordinatesToCellName(i+1, 1)
		x.SetCellStr(sh, cell, h)
	}
	italian, err := x.NewStyle(&excelize.Style{CustomNumFmt: ptr("dd/mm/yyyy")})
	if err != nil {
		t.Fatal(err)
	}
	shortDate, _ := x.NewStyle(&excelize.Style{NumFmt: 14})
	thousands, _ := x.NewStyle(&excelize.Style{NumFmt: 4}) // #,##0.00
	set := func(col, row int, v any, style int) {
		cell, _ := excelize.CoordinatesToCellName(col, row)
		switch v := v.(type) {
		case string:
			x.SetCellStr(sh, cell, v)
		case float64:
			x.SetCellFloat(sh, cell, v, -1, 64)
		}
		if style != 0 {
			x.SetCellStyle(sh, cell, cell, style)
		}
	}
	// 1 April 2025 is serial 45748; 31/01/2025 is 45688.
	row := []any{"G", "00881234567890", "01234567897", "Acme Società Cooperativa", 45748.0, "domestico", "FG-2025/0077",
		45688.0, 45708.0, 45627.0, 45688.0, 1204.8, 424.39000000000004, "E",
		45719.0, "PE", 45734.0, "S", "2024-03:140.00,2025-02:118.90", "S", "S", "S", "S", "N"}
	styles := map[int]int{5: italian, 8: shortDate, 9: italian, 10: italian, 11: shortDate, 12: thousands, 15: italian, 17: shortDate}
	for i, v := range row {
		set(i+1, 2, v, styles[i+1])
	}
	var buf bytes.Buffer
	if err := x.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ptr[T any](v T) *T { return &v }

func TestOpenCellsAsTyped(t *testing.T) {
	rows, err := Open(bytes.NewReader(makeWorkbook(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if _, line, err := rows.Next(); err != nil || line != 1 {
		t.Fatalf("header: line %d, %v", line, err)
	}
	cells, line, err := rows.Next()
	if err != nil || line != 2 {
		t.Fatalf("row: line %d, %v", line, err)
	}
	for i, want := range map[int]string{
		1: "00881234567890", 2: "01234567897", 3: "Acme Società Cooperativa",
		4: "01/04/2025", 7: "31/01/2025", 10: "31/01/2025", // dd/mm/yyyy and the built-in short date
		11: "1204.8", 12: "424.39", // #,##0.00 shows "1,204.80"; the formula's noise is dropped
	} {
		if cells[i] != want {
			t.Errorf("cell %d = %q, want %q", i+1, cells[i], want)
		}
	}
	if _, _, err := rows.Next(); err != io.EOF {
		t.Errorf("after the last row: %v, want io.EOF", err)
	}
}

// A workbook dropped where uscente.morosi is read goes through the same checks as a
// CSV file: one clean row, codes with leading zeros intact.
func TestWorkbookThroughTheReader(t *testing.T) {
	f := flows.DefaultCatalog().Input("uscente.morosi")
	rd := flows.NewCSVReader(bytes.NewReader(makeWorkbook(t)), f, flows.ReadOptions{FileName: "morosi.xlsx", Workbook: Open})
	defer rd.Close()
	rec, fs, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	if flows.HasErrors(fs) {
		t.Fatalf("findings: %v", fs)
	}
	if rec.Line != 2 || rec.Get("COD_PDR") != "00881234567890" || rec.Get("PIVA_CLIENTE") != "01234567897" ||
		rec.Get("DATA_SWITCH") != "01/04/2025" || rec.Get("IMPORTO_INSOLUTO") != "424.39" || rec.Get("IMPORTO_FATTURA") != "1204.80" {
		t.Errorf("record %v", rec.Map())
	}
	if _, _, err := rd.Next(); err != io.EOF {
		t.Errorf("second Next: %v, want io.EOF", err)
	}
	// Without a workbook reader the same bytes are refused, with what they are.
	rd = flows.NewCSVReader(bytes.NewReader(makeWorkbook(t)), f, flows.ReadOptions{FileName: "morosi.xlsx"})
	_, fs, err = rd.Next()
	if err != io.EOF || len(fs) != 1 || fs[0].Rule != flows.RuleFileFormat {
		t.Errorf("without Workbook: %v %v", fs, err)
	}
}

func TestLooksLikeDate(t *testing.T) {
	for s, want := range map[string]bool{
		"15/10/2025": true, "10-15-25": true, "2025-10-15": true, "15.10.2025": true, "15-Oct-25": true,
		"-1.50": false, "1,234.50": false, "424.39": false, "12%": false, "": false, "€ 12.00": false,
	} {
		if got := looksLikeDate(s); got != want {
			t.Errorf("looksLikeDate(%q) = %v", s, got)
		}
	}
}

// Only the first sheet is read: a workbook with a value on any other sheet is refused
// whole, naming the sheets, instead of reading the first and leaving the rest out (an
// extract split over two sheets would file its practices with the first sheet's
// invoices only). Empty sheets, as Excel and Calc add them, are fine.
func TestOpenRefusesRowsOnOtherSheets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		others map[string][]string // sheet → cells of its A1, B1…
		refuse string              // "" = read; else in the error
	}{
		{name: "one sheet"},
		{name: "empty sheets", others: map[string][]string{"Foglio2": nil, "Foglio3": {"", "  "}}},
		{name: "rows on a second sheet", others: map[string][]string{"Foglio2": {"G", "00881234567890"}}, refuse: `sheet "Foglio2" would be ignored`},
		{name: "a note far down a third sheet", others: map[string][]string{"Foglio2": nil, "Note": {"", "", "see invoice 7"}}, refuse: `sheet "Note"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := excelize.OpenReader(bytes.NewReader(makeWorkbook(t)))
			if err != nil {
				t.Fatal(err)
			}
			for name, cells := range tc.others {
				if _, err := x.NewSheet(name); err != nil {
					t.Fatal(err)
				}
				for i, v := range cells {
					cell, _ := excelize.CoordinatesToCellName(i+1, 40)
					x.SetCellStr(name, cell, v)
				}
			}
			var buf bytes.Buffer
			if err := x.Write(&buf); err != nil {
				t.Fatal(err)
			}
			x.Close()
			rows, err := Open(bytes.NewReader(buf.Bytes()))
			if tc.refuse == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				defer rows.Close()
				n := 0
				for {
					if _, _, err := rows.Next(); err != nil {
						break
					}
					n++
				}
				if n != 2 {
					t.Errorf("read %d rows, want 2", n)
				}
				return
			}
			var ref *flows.WorkbookRefusal
			if !errors.As(err, &ref) || !strings.Contains(ref.Reason, tc.refuse) || !strings.Contains(ref.Reason, `sheet "Sheet1" is read`) {
				t.Fatalf("error %v, want a WorkbookRefusal with %q", err, tc.refuse)
			}
		})
	}
}

// A formula cell with no stored value (a workbook written by a program, never opened
// since) read as an empty cell: an optional amount or flag taken as absent. Such a
// workbook is refused, naming the cell; the same workbook saved by Calc (which
// computes and stores the value) is read. Fixtures: testdata/README.md.
func TestOpenRefusesUncomputedFormulas(t *testing.T) {
	for _, tc := range []struct {
		file, refuse, b2 string
	}{
		{file: "formula-no-value.xlsx", refuse: "1 formula cell(s) of sheet \"Sheet1\" have no value stored (the first: B2)"},
		{file: "formula-saved-by-calc.xlsx", b2: "18"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			rows, err := Open(bytes.NewReader(data))
			if tc.refuse != "" {
				var ref *flows.WorkbookRefusal
				if !errors.As(err, &ref) || !strings.Contains(ref.Reason, tc.refuse) {
					t.Fatalf("error %v, want a WorkbookRefusal with %q", err, tc.refuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			rows.Next()
			cells, _, err := rows.Next()
			if err != nil || len(cells) < 2 || cells[1] != tc.b2 {
				t.Errorf("row 2: %q, %v; want B2 %q", cells, err, tc.b2)
			}
		})
	}
}

// The reader tells date cells from numbers and text, so that flows can refuse a date
// cell in a column that is not a date (flows.RuleCellDate).
func TestDateCells(t *testing.T) {
	rows, err := Open(bytes.NewReader(makeWorkbook(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	rows.Next()
	if _, _, err := rows.Next(); err != nil {
		t.Fatal(err)
	}
	dates := rows.(flows.CellDates).DateCells()
	for i, want := range map[int]bool{0: false, 1: false, 4: true, 7: true, 8: true, 10: true, 11: false, 12: false, 14: true} {
		if i >= len(dates) || dates[i] != want {
			t.Errorf("cell %d: date %v, want %v", i+1, i < len(dates) && dates[i], want)
		}
	}
}

// A workbook's column with no header cell between named ones (a pandas index, a
// header cell deleted) is read as in a CSV file: a row with a value under it is
// refused (CSV-COLUMNS) rather than the value dropped without a word.
func TestWorkbookUnnamedColumnInTheMiddle(t *testing.T) {
	f := flows.DefaultCatalog().Input("uscente.morosi")
	for _, tc := range []struct {
		name  string
		index string // the value under the unnamed first column of the data row
		want  string // in the CSV-COLUMNS message, "" for none
	}{
		{"empty column", "", ""},
		{"pandas index", "0", `column 1 has no header and holds "0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			book := shiftedWorkbook(t, tc.index)
			rd := flows.NewCSVReader(bytes.NewReader(book), f, flows.ReadOptions{FileName: "morosi.xlsx", Workbook: Open})
			defer rd.Close()
			_, fs, err := rd.Next()
			if err != nil {
				t.Fatal(err)
			}
			var got []flows.Finding
			for _, x := range fs {
				if x.Rule == flows.RuleCSVColumns {
					got = append(got, x)
				}
			}
			switch {
			case tc.want == "" && (len(got) > 0 || flows.HasErrors(fs)):
				t.Errorf("findings %v", fs)
			case tc.want != "" && (len(got) != 1 || got[0].Line != 2 || !strings.Contains(got[0].Message, tc.want)):
				t.Errorf("findings %v, want one CSV-COLUMNS on row 2 with %q", fs, tc.want)
			}
		})
	}
}

// shiftedWorkbook is makeWorkbook's sheet with a first column whose header cell is
// empty and whose data cell holds index.
func shiftedWorkbook(t *testing.T, index string) []byte {
	t.Helper()
	x, err := excelize.OpenReader(bytes.NewReader(makeWorkbook(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	sh := x.GetSheetName(0)
	if err := x.InsertCols(sh, "A", 1); err != nil {
		t.Fatal(err)
	}
	if index != "" {
		x.SetCellStr(sh, "A2", index)
	}
	var buf bytes.Buffer
	if err := x.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
