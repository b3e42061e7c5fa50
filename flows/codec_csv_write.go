package flows

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ---- CSV writer ----

// CSVWriter writes a flow file: header row from the catalog (wire names), ';', CR+LF, UTF-8 without
// BOM. Every row is validated first; a refused row is an error and nothing of it is
// written.
type CSVWriter struct {
	w      *bufio.Writer
	f      *Flow
	line   int
	header bool
	err    error
	memo   *normMemo // each field's last value and its normalisation (rows repeat them)
}

// NewCSVWriter writes CSV rows of flow f to w. Call Close (or Flush) at the end.
func NewCSVWriter(w io.Writer, f *Flow) *CSVWriter {
	return &CSVWriter{w: bufio.NewWriter(w), f: f, line: 1, memo: newNormMemo(len(f.Fields))}
}

func (w *CSVWriter) writeHeader() {
	if w.header {
		return
	}
	w.header = true
	for i := range w.f.Fields {
		if i > 0 {
			w.w.WriteByte(';')
		}
		w.w.WriteString(w.f.Fields[i].WireName())
	}
	w.w.WriteString("\r\n")
}

// Write validates and writes one row given as field → value.
func (w *CSVWriter) Write(values map[string]string) error {
	if w.err != nil {
		return w.err
	}
	vals, err := w.f.prepareMap(values, w.line+1, w.memo)
	if err != nil {
		return err
	}
	return w.writeRow(vals)
}

// WriteRecord validates and writes one row.
func (w *CSVWriter) WriteRecord(r Record) error {
	if w.err != nil {
		return w.err
	}
	vals, err := w.f.prepareRecord(r, w.line+1, w.memo)
	if err != nil {
		return err
	}
	return w.writeRow(vals)
}

func (w *CSVWriter) writeRow(vals []string) error {
	w.writeHeader()
	for i, v := range vals {
		if i > 0 {
			w.w.WriteByte(';')
		}
		if strings.ContainsAny(v, ";\"") {
			w.w.WriteByte('"')
			w.w.WriteString(strings.ReplaceAll(v, `"`, `""`))
			w.w.WriteByte('"')
		} else {
			w.w.WriteString(v)
		}
	}
	_, err := w.w.WriteString("\r\n")
	w.line++
	if err != nil {
		w.err = fmt.Errorf("write %s: %w", w.f.Key, err)
	}
	return w.err
}

// Rows returns the number of data rows written.
func (w *CSVWriter) Rows() int { return w.line - 1 }

// Flush writes the header if no row was written and flushes.
func (w *CSVWriter) Flush() error {
	if w.err != nil {
		return w.err
	}
	w.writeHeader()
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("write %s: %w", w.f.Key, err)
	}
	return w.err
}

// Close is Flush; it does not close the underlying writer.
func (w *CSVWriter) Close() error { return w.Flush() }

// fieldBound is a check between two fields of a row (Field.NotAbove, NotBefore).
type fieldBound struct {
	field, other int
	date         bool // other is a date the field may not precede; else an amount it may not exceed
}

// Rules of the checks of billing input amounts and dates against each other.
const (
	RuleAmountNegative = "AMOUNT-NEGATIVE" // a negative amount where none can be
	RuleAmountAbove    = "AMOUNT-ABOVE"    // an amount above the one that bounds it (unpaid > invoice total)
	RuleDateOrder      = "DATE-ORDER"      // a date before the one it follows (end of a period before its start)
)

// checkBounds reports negative amounts and the NotAbove / NotBefore checks of a billing
// input row (values already canonical; a value that failed its type is skipped).
func (f *Flow) checkBounds(vals []string, file string, line int, fs []Finding) []Finding {
	for i := range f.Fields {
		if len(vals[i]) < 2 || vals[i][0] != '-' {
			continue
		}
		fd := &f.Fields[i]
		if fd.Type == TypeAmount && !fd.Signed && isCanonicalAmount(vals[i]) {
			fs = append(fs, Finding{File: file, Line: line, Field: fd.label(), Rule: RuleAmountNegative, Value: vals[i],
				Message: "negative amount: correct the row in billing (a credit note is not an unpaid invoice)"})
		}
	}
	for _, b := range f.bounds {
		v, w := vals[b.field], vals[b.other]
		if v == "" || w == "" {
			continue
		}
		fd, od := &f.Fields[b.field], &f.Fields[b.other]
		if b.date {
			// Canonical dates (GG/MM/AAAA) compare as AAAAMMGG without parsing; a value
			// that failed its type is not canonical and is skipped.
			if dateShaped(v) && dateShaped(w) && canonicalDateBefore(v, w) {
				fs = append(fs, Finding{File: file, Line: line, Field: fd.label(), Rule: RuleDateOrder, Value: v,
					Message: fmt.Sprintf("%s %s is before %s %s", fd.Name, v, od.Name, w)})
			}
			continue
		}
		if v == w {
			continue
		}
		a, err1 := ParseAmount(v, false)
		c, err2 := ParseAmount(w, false)
		if err1 == nil && err2 == nil && a > c {
			fs = append(fs, Finding{File: file, Line: line, Field: fd.label(), Rule: RuleAmountAbove, Value: v,
				Message: fmt.Sprintf("%s %s is above %s %s", fd.Name, v, od.Name, w)})
		}
	}
	return fs
}
