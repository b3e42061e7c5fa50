package digest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/cmord/cmord/flows"
)

// XLSX is the full list of the CSV as a workbook for people: one sheet, a bold frozen
// header with a filter, and every cell a text cell, so that a PDR 00881234567890 or a
// P.IVA 01234567897 opens in Excel or LibreOffice exactly as written (a CSV opened by
// double-click loses the leading zeros), and nothing is read as a formula; except the
// columns xlsxTyped names: the ID, line and count are numbers, the due date a date
// and the times date-times (Rome), so that they sort and filter as such (a date as
// text "24/11/2026" sorts by day of the month).
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
	dateFmt, timeFmt := "dd/mm/yyyy", "dd/mm/yyyy hh:mm:ss"
	dateStyle, err := f.NewStyle(&excelize.Style{CustomNumFmt: &dateFmt})
	if err != nil {
		return nil, err
	}
	timeStyle, err := f.NewStyle(&excelize.Style{CustomNumFmt: &timeFmt})
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
	typed := func(vals []string) []any {
		out := cells(vals, textStyle)
		for i, v := range vals {
			if i >= len(xlsxTyped) || xlsxTyped[i] == xlsxText {
				continue
			}
			if v == "" {
				out[i] = nil
				continue
			}
			switch xlsxTyped[i] {
			case xlsxInt:
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[i] = excelize.Cell{Value: n}
				}
			case xlsxDate:
				// The wall clock as UTC: excelize turns it into the serial as it is.
				if t, err := time.Parse("02/01/2006", v); err == nil {
					out[i] = excelize.Cell{StyleID: dateStyle, Value: t}
				}
			case xlsxTime:
				if t, err := time.Parse("02/01/2006 15:04:05", v); err == nil {
					out[i] = excelize.Cell{StyleID: timeStyle, Value: t}
				}
			}
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
		return sw.SetRow(fmt.Sprintf("A%d", n+1), typed(row))
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

// Cell types of the XLSX's columns (csvHeaders), in order; a column past the list is text.
const (
	xlsxText = iota
	xlsxInt
	xlsxDate
	xlsxTime
)

var xlsxTyped = []int{
	xlsxInt,                                                                                                      // ID
	xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, // section … file
	xlsxInt,                                                    // line
	xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, xlsxText, // field … action
	xlsxDate,           // due
	xlsxTime, xlsxTime, // first seen, last seen (Rome)
	xlsxInt,  // count
	xlsxTime, // resolved (Rome)
	xlsxText, // resolution
	xlsxInt,  // muted by (an exception's ID)
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
