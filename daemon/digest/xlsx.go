package digest

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/cmord/cmord/flows"
)

// XLSX is the full list of the CSV as a workbook for people: one sheet, a bold frozen
// header with a filter, and every cell a text cell, so that a PDR 00881234567890 or a
// P.IVA 01234567897 opens in Excel or LibreOffice exactly as written (a CSV opened by
// double-click loses the leading zeros), and nothing is read as a formula.
func (d *Digest) XLSX(lang string, includePersonal bool) ([]byte, error) {
	if lang != "en" {
		lang = "it"
	}
	f := excelize.NewFile()
	defer f.Close()
	sheet := map[string]string{"it": "Eccezioni", "en": "Exceptions"}[lang]
	if err := f.SetSheetName("Sheet1", sheet); err != nil {
		return nil, err
	}
	text := "@"
	textStyle, err := f.NewStyle(&excelize.Style{CustomNumFmt: &text})
	if err != nil {
		return nil, err
	}
	headStyle, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, CustomNumFmt: &text,
		Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDE4EE"}}})
	if err != nil {
		return nil, err
	}
	sw, err := f.NewStreamWriter(sheet)
	if err != nil {
		return nil, err
	}
	cells := func(vals []string, style int) []any {
		out := make([]any, len(vals))
		for i, v := range vals {
			out[i] = excelize.Cell{StyleID: style, Value: v} // a Go string: a text cell, never a number or formula
		}
		return out
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return nil, err
	}
	headers := csvHeaders[lang]
	if err := sw.SetRow("A1", cells(headers, headStyle), excelize.RowOpts{}); err != nil {
		return nil, err
	}
	n := 0
	err = d.eachRow(lang, includePersonal, func(row []string) error {
		n++
		return sw.SetRow(fmt.Sprintf("A%d", n+1), cells(row, textStyle))
	})
	if err != nil {
		return nil, err
	}
	if err := sw.Flush(); err != nil {
		return nil, err
	}
	last, _ := excelize.CoordinatesToCellName(len(headers), max(n+1, 2))
	if err := f.AutoFilter(sheet, "A1:"+last, nil); err != nil {
		return nil, err
	}
	if d.Bounded() {
		// The rows stay data only: a second sheet, whose tab says the list is
		// partial, says how much of it this is and how to get it whole.
		if err := d.partialNote(f, lang); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// partialNote adds the sheet that says the workbook holds part of the list.
func (d *Digest) partialNote(f *excelize.File, lang string) error {
	L := labels[lang]
	name := L["sheet_note"]
	if _, err := f.NewSheet(name); err != nil {
		return err
	}
	wrap, err := f.NewStyle(&excelize.Style{Alignment: &excelize.Alignment{WrapText: true, Vertical: "top"}})
	if err != nil {
		return err
	}
	for i, v := range []string{
		fmt.Sprintf(one(L, "sheet_note_text", d.Attached()), d.Attached(), d.ListTotal(), flows.Today(d.PeriodEnd).String()),
		fmt.Sprintf(L["sheet_note_cmd"], FullListCommand(lang)),
	} {
		cell := fmt.Sprintf("A%d", i+1)
		if err := f.SetCellStr(name, cell, v); err != nil {
			return err
		}
		if err := f.SetCellStyle(name, cell, cell, wrap); err != nil {
			return err
		}
	}
	return f.SetColWidth(name, "A", "A", 100)
}

// XLSXName is the workbook attachment's file name.
func XLSXName(lang string, now time.Time) string {
	return strings.TrimSuffix(CSVName(lang, now), ".csv") + ".xlsx"
}
