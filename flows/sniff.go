package flows

import (
	"bytes"
	"io"
)

// Files that are not text CSV. Billing people save from Excel, zip what they mail and
// sometimes drop the wrong file: such a file is recognised by its first bytes and
// refused with one finding that says what it is and what to do, instead of a reason
// full of binary garbage or "line 10 has 1 value".

// RuleFileFormat is the rule of a file that is not a text CSV (or XML) file.
const RuleFileFormat = "FILE-FORMAT"

// File formats recognised by SniffFormat.
const (
	FormatText    = ""     // text: CSV or XML
	FormatXLSX    = "xlsx" // Excel workbook (Office Open XML)
	FormatXLS     = "xls"  // Excel 97-2003 workbook (OLE2)
	FormatODS     = "ods"  // OpenDocument spreadsheet
	FormatZip     = "zip"  // another zip archive
	FormatGzip    = "gzip" // gzip-compressed
	FormatArchive = "archive"
	FormatPDF     = "pdf"
	FormatUTF16LE = "utf16le"
	FormatUTF16BE = "utf16be"
	FormatBinary  = "binary"
)

// sniffLen is how many first bytes SniffFormat looks at.
const sniffLen = 1024

// SniffFormat tells from the first bytes of a file whether it is text (FormatText) or
// what else it is.
func SniffFormat(head []byte) string {
	if len(head) > sniffLen {
		head = head[:sniffLen]
	}
	switch {
	case len(head) == 0:
		return FormatText
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		switch {
		case bytes.Contains(head, []byte("xl/")) || bytes.Contains(head, []byte("[Content_Types].xml")):
			// Excel writes [Content_Types].xml first; a .docx would have word/ too.
			if bytes.Contains(head, []byte("word/")) || bytes.Contains(head, []byte("ppt/")) {
				return FormatZip
			}
			return FormatXLSX
		case bytes.Contains(head, []byte("opendocument.spreadsheet")):
			return FormatODS
		}
		return FormatZip
	case bytes.HasPrefix(head, []byte("PK\x05\x06")): // empty zip
		return FormatZip
	case bytes.HasPrefix(head, []byte{0x1F, 0x8B}):
		return FormatGzip
	case bytes.HasPrefix(head, []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}):
		return FormatXLS
	case bytes.HasPrefix(head, []byte("%PDF")):
		return FormatPDF
	case bytes.HasPrefix(head, []byte("7z\xBC\xAF\x27\x1C")), bytes.HasPrefix(head, []byte("Rar!")),
		bytes.HasPrefix(head, []byte("BZh")), bytes.HasPrefix(head, []byte{0xFD, '7', 'z', 'X', 'Z', 0}),
		bytes.HasPrefix(head, []byte{0x28, 0xB5, 0x2F, 0xFD}):
		return FormatArchive
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		return FormatUTF16LE
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return FormatUTF16BE
	}
	// UTF-16 without a byte-order mark: ASCII text has a zero byte in every other
	// position.
	if len(head) >= 4 {
		even, odd := 0, 0
		n := len(head) &^ 1
		for i := 0; i < n; i += 2 {
			if head[i] == 0 && head[i+1] != 0 {
				even++
			}
			if head[i+1] == 0 && head[i] != 0 {
				odd++
			}
		}
		pairs := n / 2
		switch {
		case odd*10 >= pairs*7:
			return FormatUTF16LE
		case even*10 >= pairs*7:
			return FormatUTF16BE
		}
	}
	// Binary: bytes no text file has (NUL and control characters other than tab,
	// line feed, form feed and carriage return). One NUL in a name is a row's
	// problem (TEXT-CONTROL), not the file's.
	ctl := 0
	for _, c := range head {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' || c == 0x7F {
			ctl++
		}
	}
	if ctl >= 4 && ctl*100 >= len(head)*3 {
		return FormatBinary
	}
	return FormatText
}

// formatAdvice is what a person reads when a file is refused for its format.
func formatAdvice(format string) string {
	switch format {
	case FormatXLSX:
		return "an Excel workbook (.xlsx), which this reader does not take: save it from Excel as \"CSV UTF-8 (delimitato da virgole)\" with ; as separator, or drop the .xlsx where workbooks are read"
	case FormatXLS:
		return "an Excel 97-2003 workbook (.xls) or another OLE2 document: open it in Excel and save it as .xlsx or as \"CSV UTF-8 (delimitato da virgole)\""
	case FormatODS:
		return "an OpenDocument spreadsheet (.ods): save it as CSV (UTF-8, ; as separator) or as .xlsx"
	case FormatZip:
		return "a zip archive: extract the CSV file it holds and drop that"
	case FormatGzip:
		return "a gzip-compressed file: decompress it (gunzip) and drop the CSV file inside"
	case FormatArchive:
		return "a compressed archive (7z, rar, bzip2, xz or zstd): extract the CSV file it holds and drop that"
	case FormatPDF:
		return "a PDF document, not a data extract: drop the CSV export of the billing system"
	case FormatUTF16LE, FormatUTF16BE:
		return "text in UTF-16 (Excel's \"Unicode text\"), which is not read: save it as \"CSV UTF-8 (delimitato da virgole)\" with ; as separator"
	case FormatBinary:
		return "a binary file, not text: drop the CSV export of the billing system"
	}
	return "not a text file"
}

// CellRows gives the rows of a workbook sheet as text cells, for reading a workbook
// with the same checks as a CSV file (see ReadOptions.Workbook).
type CellRows interface {
	// Next returns the cells of the next row and its 1-based row number, io.EOF after
	// the last row.
	Next() (cells []string, line int, err error)
	Close() error
}

// CellDates is implemented by the CellRows of a workbook that can tell which cells of
// the row Next returned last were date cells (a number with a date format). A date
// cell in a column of a field that is not a date is refused (RuleCellDate): the
// spreadsheet turned the value typed ("3/11", an invoice number) into a date.
type CellDates interface {
	DateCells() []bool
}

// RuleCellDate refuses a workbook's date cell in a column whose field is not a date.
const RuleCellDate = "CELL-DATE"

// OpenWorkbook opens a workbook (.xlsx) read from r as rows of text cells. flows does
// no file I/O, and a workbook library may need temporary files or random access: the
// caller provides the opener (daemon/xlsxrows.Open).
type OpenWorkbook func(r io.Reader) (CellRows, error)

// WorkbookRefusal is an error of an OpenWorkbook that refuses a readable workbook for
// what it holds (rows on a second sheet, which would otherwise be ignored): its text
// says what was found and what to do, and is the FILE-FORMAT reason as it is.
type WorkbookRefusal struct{ Reason string }

func (e *WorkbookRefusal) Error() string { return e.Reason }

// NotTextReason returns the message of a FILE-FORMAT finding among fs ("" when there is
// none): the reason to give for a refused file is then what the file is, not that its
// header does not fit.
func NotTextReason(fs []Finding) string {
	for _, f := range fs {
		if f.Rule == RuleFileFormat {
			return f.Message
		}
	}
	return ""
}
