// Package xlsxrows reads the first sheet of an .xlsx workbook dropped by billing as rows
// of text cells, for the same reader and checks as a CSV extract (flows.CellRows).
//
// It lives outside flows because flows is pure (no I/O but io.Reader/Writer) and
// excelize is not: it keeps the whole workbook in memory and unzips a sheet or a
// shared-string table larger than 16 MiB into temporary files. Callers hand Open to
// flows.ReadOptions.Workbook; flows recognises a workbook by its first bytes and calls
// it.
//
// Cells are given as billing typed them, not as Excel displays them: text cells
// exactly (leading zeros of a PDR or P.IVA stored as text survive), numbers as the
// number Excel shows in General format (15 significant digits, no thousands
// separators, whatever the cell's number format), and date cells — numbers with a date
// format — as GG/MM/AAAA from their serial (so a locale's short-date format such as
// m/d/yy cannot be misread).
package xlsxrows

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"

	"github.com/cmord/cmord/flows"
)

// MaxUnzipped bounds the uncompressed size of a workbook's parts: a sheet of Excel's
// 1,048,576 rows of an extract stays well below it, and a zip bomb is refused instead
// of filling the disk or the memory.
const MaxUnzipped = 1 << 30

// Open reads a workbook from r and returns its first sheet's rows. A workbook with a
// value on any other sheet is refused (*flows.WorkbookRefusal): those rows would not
// be read.
func Open(r io.Reader) (flows.CellRows, error) {
	data, err := io.ReadAll(r) // excelize reads it all too; the formula scan needs the zip
	if err != nil {
		return nil, err
	}
	f, err := excelize.OpenReader(bytes.NewReader(data), excelize.Options{UnzipSizeLimit: MaxUnzipped})
	if err != nil {
		return nil, fmt.Errorf("not a readable workbook: %w", err)
	}
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		f.Close()
		return nil, fmt.Errorf("the workbook has no sheet")
	}
	if err := otherSheetsEmpty(f, sheets); err != nil {
		f.Close()
		return nil, err
	}
	if err := formulasComputed(data, sheets[0]); err != nil {
		f.Close()
		return nil, err
	}
	raw, err := f.Rows(sheets[0])
	if err != nil {
		f.Close()
		return nil, err
	}
	shown, err := f.Rows(sheets[0])
	if err != nil {
		raw.Close()
		f.Close()
		return nil, err
	}
	w := &workbook{f: f, raw: raw, shown: shown}
	if p, err := f.GetWorkbookProps(); err == nil && p.Date1904 != nil {
		w.date1904 = *p.Date1904
	}
	return w, nil
}

// otherSheetsEmpty refuses a workbook whose sheets after the first hold a value: only
// the first sheet is read, so rows put on a second sheet (an extract longer than a
// sheet, the rest of a practice's invoices, the real data behind a hidden first sheet)
// would be left out without a word, and a practice filed with a smaller claim. Empty
// sheets (Excel's and Calc's default Foglio2, Foglio3) are fine. Each other sheet is
// read up to its first value only.
func otherSheetsEmpty(f *excelize.File, sheets []string) error {
	var full []string
	for _, name := range sheets[1:] {
		has, err := sheetHasValue(f, name)
		if err != nil {
			return fmt.Errorf("sheet %q: %w", name, err)
		}
		if has {
			full = append(full, strconv.Quote(name))
		}
	}
	if len(full) == 0 {
		return nil
	}
	return &flows.WorkbookRefusal{Reason: fmt.Sprintf("with values on more than one sheet: sheet %s is read and sheet %s "+
		"would be ignored; nothing of it was read. Put every row on the first sheet (one header), "+
		"or save each sheet as its own file (CSV UTF-8), and drop it again",
		strconv.Quote(sheets[0]), strings.Join(full, ", "))}
}

// formulasComputed refuses a workbook whose first sheet has a formula cell with no
// value stored: a workbook written by a program (a report tool, a script) and never
// opened in Excel or Calc since has its formulas but not their results, and such a
// cell reads as empty — an optional amount (IMPORTO_RAI, CMOR_PRECEDENTE) or flag
// (RICOSTRUZIONE) taken as absent changes the claim without a word. The sheet's XML
// is read once more, as a stream.
func formulasComputed(data []byte, sheet string) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("not a readable workbook: %w", err)
	}
	part, err := sheetPart(zr, sheet)
	if err != nil {
		return err
	}
	rc, err := zr.Open(part)
	if err != nil {
		return fmt.Errorf("sheet %q (%s): %w", sheet, part, err)
	}
	defer rc.Close()
	dec := xml.NewDecoder(io.LimitReader(rc, MaxUnzipped))
	var first string
	n := 0
	var ref string
	var formula, value bool
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("sheet %q: %w", sheet, err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			switch e.Name.Local {
			case "c":
				ref, formula, value = "", false, false
				for _, a := range e.Attr {
					if a.Name.Local == "r" {
						ref = a.Value
					}
				}
			case "f":
				formula = true
			case "v":
				value = true
			}
		case xml.EndElement:
			if e.Name.Local == "c" && formula && !value {
				if n == 0 {
					first = ref
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	return &flows.WorkbookRefusal{Reason: fmt.Sprintf("whose formulas were never computed: %d formula cell(s) of sheet %q have no value stored "+
		"(the first: %s), so they would read as empty; nothing of it was read. The workbook was written by a program and not "+
		"opened since: open it in Excel or Calc, save it, and drop it again (or save it as CSV UTF-8)", n, sheet, first)}
}

// sheetPart returns the zip path of the named sheet's XML, from the workbook's sheet
// list and its relationships.
func sheetPart(zr *zip.Reader, sheet string) (string, error) {
	var wb struct {
		Sheets []struct {
			Name string `xml:"name,attr"`
			ID   string `xml:"http://schemas.openxmlformats.org/officeDocument/2006/relationships id,attr"`
		} `xml:"sheets>sheet"`
	}
	var rels struct {
		Rel []struct {
			ID     string `xml:"Id,attr"`
			Target string `xml:"Target,attr"`
		} `xml:"Relationship"`
	}
	if err := readXMLPart(zr, "xl/workbook.xml", &wb); err != nil {
		return "", err
	}
	if err := readXMLPart(zr, "xl/_rels/workbook.xml.rels", &rels); err != nil {
		return "", err
	}
	for _, s := range wb.Sheets {
		if s.Name != sheet {
			continue
		}
		for _, r := range rels.Rel {
			if r.ID == s.ID {
				if strings.HasPrefix(r.Target, "/") {
					return strings.TrimPrefix(r.Target, "/"), nil
				}
				return path.Join("xl", r.Target), nil
			}
		}
	}
	return "", fmt.Errorf("sheet %q: its part is not in the workbook", sheet)
}

// readXMLPart decodes one small part of the workbook (bounded to 16 MiB).
func readXMLPart(zr *zip.Reader, name string, v any) error {
	rc, err := zr.Open(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer rc.Close()
	if err := xml.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// sheetHasValue reports whether a sheet has a cell that is not empty or blank.
func sheetHasValue(f *excelize.File, name string) (bool, error) {
	rows, err := f.Rows(name)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		cols, err := rows.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return false, err
		}
		for _, c := range cols {
			if strings.TrimSpace(c) != "" {
				return true, nil
			}
		}
	}
	return false, rows.Error()
}

// workbook walks the sheet twice in step: the raw values (what the cell holds) and the
// displayed ones (which tell a date cell from a number).
type workbook struct {
	f          *excelize.File
	raw, shown *excelize.Rows
	line       int
	date1904   bool
	dates      []bool // the date cells of the row Next returned last
}

// DateCells tells which cells of the row Next returned last were date cells
// (flows.CellDates).
func (w *workbook) DateCells() []bool { return w.dates }

func (w *workbook) Next() ([]string, int, error) {
	if !w.raw.Next() {
		if err := w.raw.Error(); err != nil {
			return nil, 0, err
		}
		return nil, 0, io.EOF
	}
	w.shown.Next()
	w.line++
	raw, err := w.raw.Columns(excelize.Options{RawCellValue: true})
	if err != nil {
		return nil, 0, fmt.Errorf("row %d: %w", w.line, err)
	}
	shown, _ := w.shown.Columns()
	cells := make([]string, len(raw))
	w.dates = w.dates[:0]
	for i, v := range raw {
		s := ""
		if i < len(shown) {
			s = shown[i]
		}
		var date bool
		cells[i], date = w.cell(v, s)
		w.dates = append(w.dates, date)
	}
	return cells, w.line, nil
}

// cell turns a cell's raw value into the text billing typed, using its displayed form
// only to tell whether a number is a date.
// It reports whether the cell was a date cell.
func (w *workbook) cell(raw, shown string) (string, bool) {
	if raw == shown || raw == "" {
		return tidyNumber(raw), false
	}
	n, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return raw, false
	}
	if looksLikeDate(shown) {
		t, err := excelize.ExcelDateToTime(n, w.date1904)
		if err == nil && t.Year() >= 1900 && t.Year() <= 2200 {
			return t.Format("02/01/2006"), true
		}
	}
	return tidyNumber(raw), false
}

// tidyNumber writes a number stored with binary noise (424.39000000000004, the result
// of a formula) as Excel shows it: 15 significant digits. Anything that is not such a
// number — text, a number without a decimal point or exponent, leading zeros — is kept
// as it is.
func tidyNumber(s string) string {
	if !strings.ContainsAny(s, ".eE") || strings.ContainsAny(s, " ,/:") {
		return s
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
		return s
	}
	n, _ = strconv.ParseFloat(strconv.FormatFloat(n, 'g', 15, 64), 64)
	return strconv.FormatFloat(n, 'f', -1, 64)
}

// looksLikeDate reports whether a displayed value is a date: it starts with a digit and
// has two of one date separator (15/10/2025, 10-15-25, 15.10.2025), or has a month
// name (15-Oct-25). A negative number (-1.50) or a number with thousands separators
// (1,234.50) is not.
func looksLikeDate(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	letters := 0
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			letters++
		}
	}
	for _, sep := range []string{"/", "-", "."} {
		if strings.Count(s, sep) == 2 && letters == 0 && !strings.Contains(s, ",") {
			return true
		}
	}
	return letters >= 3 && strings.ContainsAny(s, "-/ ")
}

func (w *workbook) Close() error {
	w.raw.Close()
	w.shown.Close()
	return w.f.Close()
}
