package export

import (
	"fmt"
	"io"
	"time"

	"github.com/cmord/cmord/flows"
	"github.com/xuri/excelize/v2"
)

// Number formats of typed XLSX cells.
const (
	xlsxDateFormat   = "dd/mm/yyyy"
	xlsxAmountFormat = "#,##0.00"
)

// xlsxWriter writes one sheet through excelize's stream writer: a bold header row,
// frozen; typed cells (dates are date serials with a dd/mm/yyyy format, amounts are
// numbers with #,##0.00, counts are integers, everything else is a string cell,
// which a spreadsheet never evaluates as a formula); an autofilter over the data.
type xlsxWriter struct {
	out    io.Writer
	f      *excelize.File
	sw     *excelize.StreamWriter
	sheet  string
	lang   string
	rowNum int
	styles struct{ header, date, amount, text int }
	values []any
	cells  []excelize.Cell
	closed bool
}

func newXLSXWriter(w io.Writer, opt Options) (*xlsxWriter, error) {
	x := &xlsxWriter{out: w, f: excelize.NewFile(), sheet: "Pratiche", lang: opt.Lang}
	if opt.Lang == "en" {
		x.sheet = "Practices"
	}
	if err := x.f.SetSheetName("Sheet1", x.sheet); err != nil {
		return nil, x.fail(err)
	}
	var err error
	if x.styles.header, err = x.f.NewStyle(&excelize.Style{
		Font:      &excelize.Font{Bold: true},
		Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDE4EE"}},
		Alignment: &excelize.Alignment{Vertical: "center", WrapText: true},
		Border:    []excelize.Border{{Type: "bottom", Color: "7F7F7F", Style: 1}},
	}); err != nil {
		return nil, x.fail(err)
	}
	dateFmt, amountFmt := xlsxDateFormat, xlsxAmountFormat
	if x.styles.date, err = x.f.NewStyle(&excelize.Style{CustomNumFmt: &dateFmt}); err != nil {
		return nil, x.fail(err)
	}
	if x.styles.amount, err = x.f.NewStyle(&excelize.Style{CustomNumFmt: &amountFmt}); err != nil {
		return nil, x.fail(err)
	}
	// "@" (text) keeps codes such as a PDR's leading zeros from being read as numbers
	// when someone edits the cell.
	if x.styles.text, err = x.f.NewStyle(&excelize.Style{NumFmt: 49}); err != nil {
		return nil, x.fail(err)
	}
	if x.sw, err = x.f.NewStreamWriter(x.sheet); err != nil {
		return nil, x.fail(err)
	}
	// Widths and panes must be set before the first row.
	for i, c := range columns {
		if err := x.sw.SetColWidth(i+1, i+1, c.width); err != nil {
			return nil, x.fail(err)
		}
	}
	if err := x.sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft",
		Selection: []excelize.Selection{{SQRef: "A2", ActiveCell: "A2", Pane: "bottomLeft"}}}); err != nil {
		return nil, x.fail(err)
	}
	x.values = make([]any, len(columns))
	x.cells = make([]excelize.Cell, len(columns))
	return x, nil
}

// fail releases the workbook's temporary files after an error.
func (x *xlsxWriter) fail(err error) error {
	x.closed = true
	_ = x.f.Close()
	return fmt.Errorf("xlsx: %w", err)
}

func (x *xlsxWriter) header() error {
	for i, h := range Headers(x.lang) {
		x.cells[i] = excelize.Cell{StyleID: x.styles.header, Value: h}
		x.values[i] = x.cells[i]
	}
	x.rowNum = 1
	if err := x.sw.SetRow("A1", x.values, excelize.RowOpts{Height: 30}); err != nil {
		return x.fail(err)
	}
	return nil
}

// excelDate is the date at midnight UTC: excelize turns a time.Time's wall clock into
// the serial, so a zone could shift it by a day.
func excelDate(d flows.Date) time.Time { return time.Date(d.Y, d.M, d.D, 0, 0, 0, 0, time.UTC) }

// amountValue is the one place where money becomes a float: cents (an exact integer
// in a float64 below 2^53) divided by 100, correctly rounded, is the double nearest
// the decimal amount, and excelize writes its shortest representation, which is that
// decimal ("1234.5" for 123450 cents). The number is only displayed, never summed here.
func amountValue(a flows.Amount) float64 { return float64(a.Cents()) / 100 }

func (x *xlsxWriter) write(r row) error {
	x.rowNum++
	for i, col := range columns {
		var v any
		style := 0
		switch col.kind {
		case kindText:
			if s := col.text(r); s != "" {
				v, style = s, x.styles.text
			}
		case kindDate:
			if d := col.date(r); !d.IsZero() {
				v, style = excelDate(d), x.styles.date
			}
		case kindAmount:
			if !col.blank(r) {
				v, style = amountValue(col.amount(r)), x.styles.amount
			}
		case kindInt:
			v = col.num(r)
		}
		if v == nil {
			x.values[i] = nil
			continue
		}
		x.cells[i] = excelize.Cell{StyleID: style, Value: v}
		x.values[i] = &x.cells[i]
	}
	cell, err := excelize.CoordinatesToCellName(1, x.rowNum)
	if err != nil {
		return x.fail(err)
	}
	if err := x.sw.SetRow(cell, x.values); err != nil {
		return x.fail(err)
	}
	return nil
}

func (x *xlsxWriter) close() error {
	if x.closed {
		return fmt.Errorf("xlsx: writer already failed")
	}
	last := columnLetter(len(columns) - 1)
	// The autofilter is recorded on the worksheet the stream writer holds and written
	// by Flush, so it must come after the rows and before Flush.
	if err := x.f.AutoFilter(x.sheet, fmt.Sprintf("A1:%s%d", last, max(x.rowNum, 2)), nil); err != nil {
		return x.fail(err)
	}
	if err := x.sw.Flush(); err != nil {
		return x.fail(err)
	}
	if err := x.f.SetDocProps(&excelize.DocProperties{Creator: "cmord", Title: x.sheet}); err != nil {
		return x.fail(err)
	}
	if err := x.f.Write(x.out); err != nil {
		return x.fail(err)
	}
	x.closed = true
	return x.f.Close()
}
