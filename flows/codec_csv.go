package flows

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// ---- CSV reader ----

// maxLogicalLine bounds one CSV record (quoted fields may span lines): beyond it the
// file is refused rather than read into memory.
const maxLogicalLine = 1 << 20

// CSVReader streams the rows of a CSV file of a flow or input kind in constant memory.
type CSVReader struct {
	br   *bufio.Reader
	f    *Flow
	opt  ReadOptions
	vo   valueOpts
	dec  lineDecoder
	raw  []byte // a physical line longer than the bufio buffer
	rec  []byte // the logical record being assembled (UTF-8)
	line int    // physical lines consumed

	headerRead     bool
	headerErr      error
	headerFindings []Finding
	headerPending  bool // header findings not yet handed to the caller

	colField []int  // file column → field index, -1 = ignored
	absent   []bool // field has no column
	ncols    int
	unnamed  []int    // header columns with no name, between named ones
	cols     []string // scratch for split

	cells      CellRows    // a workbook's rows, instead of CSV text
	rm         *rowMapping // the mapping file's rules, nil when it has none
	lineStarts []int       // offsets in rec of each physical line of the record
	openQuote  bool        // the record ended with a quote still open
	pending    [][]byte    // lines to read again after an unclosed quote (decoded)
	noJoin     int         // lines up to this one are read one per record
	bad        []badLoc    // undecodable bytes of the lines read and not yet reported
	textOnly   []bool      // per field: line breaks and tabs are allowed (optional free text)
	only       []bool      // per field: normalised (NormalizeOnly); nil = every rule applies
	onlyAny    bool        // some field is in only
	onlyVals   []string    // the values of every row under NormalizeOnly (reused)
	memo       *normMemo   // each field's last value and its normalisation; nil = none (tests)
	noMemo     bool        // tests: normalise every value, the memo's slow twin
}

// badLoc is an undecodable byte at its physical line.
type badLoc struct {
	line int
	badByte
}

// NewCSVReader reads r as a CSV file of flow f (a flow of the catalog or an input kind).
func NewCSVReader(r io.Reader, f *Flow, opt ReadOptions) *CSVReader {
	return &CSVReader{br: bufio.NewReaderSize(r, 64<<10), f: f, opt: opt, vo: opt.values()}
}

// NormalizeOnly makes Next return rows in which only the named fields are normalised
// (each as its rule normalises it), with no findings of their own (the header's come
// as without it): for a pass over the file that needs a few values (the case keys)
// and not the verdict on each row. Rows, lines and the errors that stop the reading
// are those of a full read. Call it before Next. Under it, a row's Values are valid
// until the next call (one slice serves every row: such a pass reads and forgets),
// and with no name the rows are read for the errors that stop the reading alone.
func (r *CSVReader) NormalizeOnly(names ...string) {
	r.only, r.onlyAny = make([]bool, len(r.f.Fields)), false
	for _, n := range names {
		if i := r.f.layout.Index(n); i >= 0 {
			r.only[i], r.onlyAny = true, true
		}
	}
}

// Charset returns the character set detected so far (UTF-8 or windows-1252; "" when
// the file has been pure ASCII).
func (r *CSVReader) Charset() string { return r.dec.charset }

// ReadHeader reads and checks the header row. Calling it is optional: Next calls it,
// and then returns the header findings together with its own first result (even with
// io.EOF), so call ReadHeader first to handle them apart. The error is an I/O error.
func (r *CSVReader) ReadHeader() ([]Finding, error) {
	if !r.headerRead {
		r.readHeader()
	}
	r.headerPending = false
	return r.headerFindings, r.headerErr
}

func (r *CSVReader) headerFinding(field, rule, value, msg string, warning bool) {
	f := Finding{File: r.opt.FileName, Line: 1, Field: field, Rule: rule, Value: value, Message: msg}
	if warning {
		f.Severity = "warning"
	}
	r.headerFindings = append(r.headerFindings, f)
}

func normHeader(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

func (r *CSVReader) readHeader() {
	r.headerRead, r.headerPending = true, true
	if !r.sniff() {
		return
	}
	cols, ok := r.headerCells()
	if !ok {
		return
	}
	// The header ends at its last name: the empty names after it are a spreadsheet's
	// leftovers (Calc pads every line to the widest row), and a value under one of
	// them is a row wider than the header (CSV-COLUMNS), as in a workbook — not a
	// column ignored without a word.
	for len(cols) > 0 && strings.TrimSpace(cols[len(cols)-1]) == "" {
		cols = cols[:len(cols)-1]
	}
	f := r.f
	mapping := make(map[string]string, len(r.opt.Mapping))
	if mf := r.opt.MappingFile; mf != nil {
		for k, v := range mf.Columns {
			mapping[normHeader(k)] = strings.TrimSpace(v)
		}
	}
	for k, v := range r.opt.Mapping {
		mapping[normHeader(k)] = strings.TrimSpace(v)
	}
	special := r.opt.MappingFile.specialColumns()
	// Columns are matched by the name the file uses (Field.Column, else Name).
	byName := make(map[string]int, len(f.Fields))
	for i := range f.Fields {
		byName[normHeader(f.Fields[i].WireName())] = i
	}
	r.ncols = len(cols)
	r.unnamed = r.unnamed[:0]
	r.colField = make([]int, len(cols))
	seenField := make([]int, len(f.Fields))
	for i := range seenField {
		seenField[i] = -1
	}
	for i, h := range cols {
		r.colField[i] = -1
		name := strings.TrimSpace(h)
		if name == "" {
			// A column with no name between named ones (a pandas index, a header cell
			// deleted): its values go to no field, so a row with one is refused
			// (CSV-COLUMNS), as a value beyond the header's last name is.
			r.unnamed = append(r.unnamed, i)
			continue
		}
		target, mapped := mapping[normHeader(name)]
		if mapped && (target == "" || target == "-") || !mapped && special[normHeader(name)] {
			continue
		}
		var fi int
		var ok bool
		if mapped {
			fi = f.fieldIndexFold(target)
			if ok = fi >= 0; !ok {
				r.headerFinding(name, RuleCSVHeader, target, "the mapping sends this column to "+target+", which is not a field of "+f.Key, false)
				continue
			}
		} else if fi, ok = byName[normHeader(name)]; !ok {
			if f.input {
				r.headerFinding(name, RuleCSVColumn, name, "unknown column, ignored (add it to the mapping if it matters)", true)
			} else {
				r.headerFinding(name, RuleCSVHeader, name, "column not in the layout of "+f.ID(), false)
			}
			continue
		}
		if prev := seenField[fi]; prev >= 0 {
			r.headerFinding(f.Fields[fi].label(), RuleCSVHeader, name, fmt.Sprintf("columns %d and %d both give field %s", prev+1, i+1, f.Fields[fi].label()), false)
			continue
		}
		seenField[fi] = i
		r.colField[i] = fi
	}
	r.absent = make([]bool, len(f.Fields))
	for i := range f.Fields {
		r.absent[i] = seenField[i] < 0
	}
	r.resolveMapping(cols, seenField)
	r.textOnly = make([]bool, len(f.Fields))
	for i := range f.Fields {
		fd := &f.Fields[i]
		r.textOnly[i] = (fd.Type == TypeString || fd.Type == "") && fd.Required == "O"
		if !r.absent[i] {
			continue
		}
		switch {
		case !f.input:
			r.headerFinding(fd.label(), RuleCSVHeader, "", "column missing from the layout of "+f.ID(), false)
		case fd.Required == "M":
			r.headerFinding(fd.label(), RuleCSVHeader, "", "mandatory column missing", false)
		}
	}
	if !f.input && !HasErrors(r.headerFindings) {
		for i, fi := range r.colField {
			if fi >= 0 && fi != i {
				r.headerFinding(f.Fields[fi].label(), RuleCSVHeader, cols[i],
					fmt.Sprintf("column %d is %s, the layout of %s has it at %d", i+1, f.Fields[fi].WireName(), f.ID(), fi+1), false)
				break
			}
		}
	}
}

// headerCells reads the header row: the first row that is not empty (a workbook's
// first sheet, or the file's first logical CSV line). ok false: no header (a finding
// or headerErr says why).
func (r *CSVReader) headerCells() (cols []string, ok bool) {
	for {
		var err error
		if r.cells != nil {
			cols, _, err = r.cells.Next()
			if err == io.EOF {
				r.headerFinding("", RuleCSVHeader, "", "empty workbook: the first sheet has no header row", false)
				return nil, false
			}
			if err != nil {
				r.headerErr = err
				return nil, false
			}
			if !allEmpty(cols) {
				break
			}
			continue
		}
		_, err = r.readLogical()
		if err == io.EOF {
			r.headerFinding("", RuleCSVHeader, "", "empty file: no header row", false)
			return nil, false
		}
		if err != nil {
			r.headerErr = err
			return nil, false
		}
		var bad bool
		cols, bad = splitCSV(string(r.rec), nil)
		if len(cols) == 1 {
			// No ';' at all: a file saved with another field separator (Excel in
			// English, Calc's default tab) would only show as missing columns.
			for _, sep := range []struct{ c, name string }{{"\t", "tabs"}, {",", "commas"}} {
				if strings.Count(string(r.rec), sep.c) >= 2 {
					r.headerFinding("", RuleFileFormat, "", "the header has no ';' between its columns but "+sep.name+
						": the file was saved with another field separator; save it again as CSV with ';' as the field separator", false)
					break
				}
			}
		}
		if bad {
			r.headerFinding("", RuleCSVQuote, "", "badly quoted header", false)
		}
		if !allEmpty(cols) {
			break
		}
	}
	return cols, true
}

func allEmpty(cols []string) bool {
	for _, c := range cols {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// readPhysical appends the next physical line (without its line ending, as UTF-8) to
// r.rec.
func (r *CSVReader) readPhysical() error {
	r.lineStarts = append(r.lineStarts, len(r.rec))
	if len(r.pending) > 0 {
		r.line++
		r.rec = append(r.rec, r.pending[0]...)
		r.pending = r.pending[1:]
		return nil
	}
	r.raw = r.raw[:0]
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			r.raw = append(r.raw, chunk...)
			if len(r.raw) > maxLogicalLine {
				return Finding{File: r.opt.FileName, Line: r.line + 1, Rule: RuleCSVLine, Message: fmt.Sprintf("line longer than %d bytes", maxLogicalLine)}
			}
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		if len(r.raw) > 0 {
			r.raw = append(r.raw, chunk...)
			line = r.raw
		} else {
			line = chunk
		}
		if err == io.EOF && len(line) == 0 {
			return io.EOF
		}
		break
	}
	r.line++
	if r.line == 1 && len(line) >= 3 && line[0] == 0xEF && line[1] == 0xBB && line[2] == 0xBF {
		line = line[3:]
	}
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
	}
	if n > 0 && line[n-1] == '\r' {
		n--
	}
	r.rec = append(r.rec, r.dec.decode(line[:n])...)
	for _, b := range r.dec.bad {
		r.bad = append(r.bad, badLoc{r.line, b})
	}
	return nil
}

// readLogical assembles the next record in r.rec, joining physical lines while a quoted
// field is open, and returns its first line number.
func (r *CSVReader) readLogical() (int, error) {
	r.rec = r.rec[:0]
	r.lineStarts = r.lineStarts[:0]
	r.openQuote = false
	if err := r.readPhysical(); err != nil {
		return 0, err
	}
	start := r.line
	if start <= r.noJoin {
		return start, nil // read again after an unclosed quote: one line, one record
	}
	for countQuotes(r.rec)%2 == 1 {
		if len(r.rec) > maxLogicalLine {
			r.openQuote = true // Next reads the lines after the first again
			break
		}
		r.rec = append(r.rec, '\n')
		if err := r.readPhysical(); err == io.EOF {
			r.lineStarts = r.lineStarts[:len(r.lineStarts)-1]
			r.rec = r.rec[:len(r.rec)-1]
			r.openQuote = true
			break
		} else if err != nil {
			return 0, err
		}
	}
	return start, nil
}

// unjoin cuts the record being read back to its first line and queues the lines after
// it to be read again, one record each: a quote opened on the first line that does not
// close where a value could end must not swallow the rows that follow.
func (r *CSVReader) unjoin(start int) {
	var pend [][]byte
	for k := 1; k < len(r.lineStarts); k++ {
		from := r.lineStarts[k]
		to := len(r.rec)
		if k+1 < len(r.lineStarts) {
			to = r.lineStarts[k+1] - 1 // without the '\n' joined in
		}
		pend = append(pend, append([]byte(nil), r.rec[from:to]...))
	}
	r.noJoin = r.line
	r.pending = append(pend, r.pending...)
	r.line = start
	r.rec = r.rec[:r.lineStarts[1]-1]
	r.lineStarts = r.lineStarts[:1]
}

func countQuotes(b []byte) int { return bytes.Count(b, quote) }

var quote = []byte{'"'}

// splitCSV splits one record at ';'. Unquoted values are trimmed of spaces; quoted
// values keep everything between the quotes with "" unescaped. bad reports a quote
// problem (text after a closing quote, or a quote never closed); the values are still
// returned as well as can be.
func splitCSV(s string, out []string) (cols []string, bad bool) {
	for {
		i := 0
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			j := i + 1
			closed := false
			seg := j
			for j < len(s) {
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteString(s[seg : j+1])
						j += 2
						seg = j
						continue
					}
					closed = true
					break
				}
				j++
			}
			var v string
			if b.Len() == 0 {
				v = s[seg:j]
			} else {
				b.WriteString(s[seg:j])
				v = b.String()
			}
			if !closed {
				return append(out, v), true
			}
			j++ // past the closing quote
			k := strings.IndexByte(s[j:], ';')
			rest := s[j:]
			if k >= 0 {
				rest = s[j : j+k]
			}
			if strings.TrimSpace(rest) != "" {
				bad = true
				v += rest
			}
			out = append(out, v)
			if k < 0 {
				return out, bad
			}
			s = s[j+k+1:]
			continue
		}
		k := strings.IndexByte(s, ';')
		if k < 0 {
			return append(out, trimSpace(s)), bad
		}
		out = append(out, trimSpace(s[:k]))
		s = s[k+1:]
	}
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Next returns the next row, its findings (errors and warnings; a row with an error
// finding must not be used) and io.EOF after the last row. Rows whose cells are all
// empty are skipped. Record.Values is the row's own slice: keep it freely.
func (r *CSVReader) Next() (Record, []Finding, error) {
	var fs []Finding
	if !r.headerRead {
		r.readHeader()
	}
	if r.headerPending {
		r.headerPending = false
		fs = append(fs, r.headerFindings...)
	}
	if r.headerErr != nil {
		return Record{}, fs, r.headerErr
	}
	if r.colField == nil {
		return Record{}, fs, io.EOF
	}
	for {
		var cols []string
		var start int
		if r.cells != nil {
			var err error
			cols, start, err = r.cells.Next()
			if err != nil {
				return Record{}, fs, err
			}
			if allEmpty(cols) {
				continue
			}
			// A workbook leaves out the empty cells at the end of a row.
			if len(cols) > r.ncols && !allEmpty(cols[r.ncols:]) {
				fs = append(fs, Finding{File: r.opt.FileName, Line: start, Rule: RuleCSVColumns, Value: fmt.Sprint(len(cols)),
					Message: fmt.Sprintf("row %d has values in %d columns, the header has %d%s", start, len(cols), r.ncols, beyondHeader(cols, r.ncols))})
			}
		} else {
			var err error
			start, err = r.readLogical()
			if err != nil {
				return Record{}, fs, err
			}
			var bad bool
			cols, bad = splitCSV(string(r.rec), r.cols[:0])
			r.cols = cols[:0]
			if len(r.lineStarts) > 1 && (r.openQuote || bad || !r.fits(cols)) {
				// A quote opened on this line and closed lines later (or never): the
				// lines in between are rows, not a value. This row is refused; the
				// others are read again.
				end := r.line
				how := fmt.Sprintf("closes only on line %d", end)
				if r.openQuote {
					how = "is never closed"
				}
				r.unjoin(start)
				cols, _ = splitCSV(string(r.rec), r.cols[:0])
				r.cols = cols[:0]
				fs = append(fs, Finding{File: r.opt.FileName, Line: start, Rule: RuleCSVQuote,
					Message: fmt.Sprintf("a quote opened on line %d %s: the row is refused and lines %d-%d are read as rows of their own (a quote inside a value is written \"\")", start, how, start+1, end)})
				bad = false
			} else if r.openQuote {
				fs = append(fs, Finding{File: r.opt.FileName, Line: start, Rule: RuleCSVQuote,
					Message: fmt.Sprintf("a quote opened on line %d is never closed", start)})
				bad = false
			}
			if allEmpty(cols) {
				r.dropBad(r.line)
				continue
			}
			if bad {
				fs = append(fs, Finding{File: r.opt.FileName, Line: start, Rule: RuleCSVQuote, Message: "badly quoted value (text after a closing quote, or a quote never closed)"})
			}
			if !r.fits(cols) {
				fs = append(fs, Finding{File: r.opt.FileName, Line: start, Rule: RuleCSVColumns, Value: fmt.Sprint(len(cols)),
					Message: fmt.Sprintf("line %d has %d values, the header has %d columns%s (a ; inside a value must be in quotes)", start, len(cols), r.ncols, beyondHeader(cols, r.ncols))})
			}
		}
		var vals []string
		if r.only != nil {
			if r.onlyVals == nil {
				r.onlyVals = make([]string, len(r.f.Fields))
			}
			vals = r.onlyVals
			clear(vals)
		} else {
			vals = make([]string, len(r.f.Fields))
		}
		for i, c := range cols {
			if i < len(r.colField) {
				if fi := r.colField[i]; fi >= 0 {
					vals[fi] = c
				}
			}
		}
		if cd, ok := r.cells.(CellDates); ok && r.only == nil {
			fs = r.dateCellFindings(cd.DateCells(), vals, start, fs)
		}
		if r.only != nil {
			return r.normalizedOnly(cols, vals, start)
		}
		if len(r.unnamed) > 0 {
			fs = r.unnamedFindings(cols, start, fs)
		}
		fs = r.charsetFindings(cols, start, fs)
		spendFailed := false
		if r.rm != nil {
			fs, spendFailed = r.rm.apply(cols, vals, r.f, r.vo, r.opt.FileName, start, fs)
		}
		if r.f.input {
			fs = r.controlFindings(vals, start, fs)
		}
		n := len(fs)
		fs = r.f.checkRow(vals, r.absent, r.vo, r.opt.FileName, start, fs, r.normMemo())
		if r.rm != nil && len(fs) > n {
			fs = r.rm.explain(fs, n, spendFailed)
		}
		return Record{Line: start, Values: vals, layout: r.f.layout}, fs, nil
	}
}

// normalizedOnly is Next's row under NormalizeOnly: the mapping's rules applied as in
// a full read (they may give the fields asked for), then only those fields normalised.
func (r *CSVReader) normalizedOnly(cols, vals []string, start int) (Record, []Finding, error) {
	r.dropBad(r.line)
	if !r.onlyAny {
		return Record{Line: start, Values: vals, layout: r.f.layout}, nil, nil
	}
	if r.rm != nil {
		r.rm.apply(cols, vals, r.f, r.vo, r.opt.FileName, start, nil)
	}
	memo := r.normMemo()
	for i, v := range vals {
		if v != "" && r.only[i] {
			vals[i], _ = memo.normalize(&r.f.Fields[i], i, v, r.vo)
		}
	}
	return Record{Line: start, Values: vals, layout: r.f.layout}, nil, nil
}

// normMemo returns the reader's memo of normalised values (made on first use).
func (r *CSVReader) normMemo() *normMemo {
	if r.memo == nil && !r.noMemo {
		r.memo = newNormMemo(len(r.f.Fields))
	}
	return r.memo
}

// dateCellFindings refuses a workbook's date cells in the columns of fields that are
// not dates: the spreadsheet made a date of what was typed, and the value read (the
// date as GG/MM/AAAA) is not billing's.
func (r *CSVReader) dateCellFindings(dates []bool, vals []string, line int, fs []Finding) []Finding {
	for i, d := range dates {
		if !d || i >= len(r.colField) || r.colField[i] < 0 {
			continue
		}
		fd := &r.f.Fields[r.colField[i]]
		if fd.Type == TypeDate || fd.Type == TypeTimestamp {
			continue
		}
		if r.unusedField(fd.Name) {
			// A column cmord reads for nothing (billing's NOTE): the date is what
			// was meant ("3/11", a reminder's day) and decides nothing; refusing the
			// row held a case whose data were right.
			fs = append(fs, Finding{File: r.opt.FileName, Line: line, Field: fd.Name, Rule: RuleCellDate, Value: vals[r.colField[i]], Severity: "warning",
				Message: fmt.Sprintf("a date cell (%s) in a column of %s, which is not a date: kept as the date; cmord does not use the column", vals[r.colField[i]], fd.label())})
			continue
		}
		fs = append(fs, Finding{File: r.opt.FileName, Line: line, Field: fd.Name, Rule: RuleCellDate, Value: vals[r.colField[i]],
			Message: fmt.Sprintf("a date cell (%s) in a column of %s, which is not a date: the spreadsheet turned what was typed (\"3/11\", \"1-12\") into a date; format the column as text, type the value again and save", vals[r.colField[i]], fd.label())})
	}
	return fs
}

// unusedField reports whether the code reads field of r's input kind for nothing
// (codeFields lists what it reads; an unknown kind: every field counts as read).
func (r *CSVReader) unusedField(field string) bool {
	used, ok := codeFields[r.f.Key]
	return ok && !slices.Contains(used, field)
}

// unnamedFindings refuses a row with a value under a column whose header cell is
// empty, between named ones: one finding, for the first such value.
func (r *CSVReader) unnamedFindings(cols []string, line int, fs []Finding) []Finding {
	for _, i := range r.unnamed {
		if i >= len(cols) {
			break
		}
		if v := strings.TrimSpace(cols[i]); v != "" {
			return append(fs, Finding{File: r.opt.FileName, Line: line, Rule: RuleCSVColumns, Value: Truncate(v, 60),
				Message: fmt.Sprintf("column %d has no header and holds %q: the value would go to no field; give the column its name in the header (or delete the column) and drop the file again",
					i+1, Truncate(v, 60))})
		}
	}
	return fs
}

// beyondHeader names the first value of a row after the header's last column (a note
// typed beside the table, or the tail of a value split by an unquoted ;), "" if none.
func beyondHeader(cols []string, ncols int) string {
	for i := ncols; i < len(cols); i++ {
		if v := strings.TrimSpace(cols[i]); v != "" {
			return fmt.Sprintf(": column %d, which has no header, holds %q", i+1, Truncate(v, 60))
		}
	}
	return ""
}

// fits reports whether a row has the header's number of columns (empty cells after the
// last column are spreadsheet leftovers).
func (r *CSVReader) fits(cols []string) bool {
	return len(cols) == r.ncols || len(cols) > r.ncols && allEmpty(cols[r.ncols:])
}

// dropBad forgets the undecodable bytes of lines up to last.
func (r *CSVReader) dropBad(last int) {
	k := 0
	for _, b := range r.bad {
		if b.line > last {
			r.bad[k] = b
			k++
		}
	}
	r.bad = r.bad[:k]
}

// RuleCharset is the rule of bytes that are text in neither UTF-8 nor Windows-1252.
const RuleCharset = "CHARSET"

// charsetFindings reports the undecodable bytes of the record's lines (one finding a
// row, at the column whose value holds them).
func (r *CSVReader) charsetFindings(cols []string, start int, fs []Finding) []Finding {
	if len(r.bad) == 0 {
		return fs
	}
	var mine []badLoc
	for _, b := range r.bad {
		if b.line >= start && b.line <= r.line {
			mine = append(mine, b)
		}
	}
	r.dropBad(r.line)
	if len(mine) == 0 {
		return fs
	}
	field := ""
	for i, c := range cols {
		if strings.ContainsRune(c, utf8.RuneError) {
			if i < len(r.colField) && r.colField[i] >= 0 {
				field = r.f.Fields[r.colField[i]].label()
			}
			break
		}
	}
	b := mine[0]
	more := ""
	if len(mine) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(mine)-1)
	}
	return append(fs, Finding{File: r.opt.FileName, Line: b.line, Field: field, Rule: RuleCharset, Value: fmt.Sprintf("0x%02X", b.b),
		Message: fmt.Sprintf("byte 0x%02X at position %d of line %d%s is a character in neither UTF-8 nor Windows-1252: the value cannot be read as billing wrote it; save the extract as UTF-8", b.b, b.off+1, b.line, more)})
}

// RuleTextControl is the rule of a value holding control characters (NUL, escape,
// line breaks in a field that is not free text…): the SII would receive them.
const RuleTextControl = "TEXT-CONTROL"

func (r *CSVReader) controlFindings(vals []string, line int, fs []Finding) []Finding {
	for i, v := range vals {
		if v == "" {
			continue
		}
		if c, at := controlChar(v, r.textOnly[i]); at >= 0 {
			if c == utf8.RuneError {
				if !rowHasRule(fs, line, RuleCharset) {
					// Decoded before it reached us (a folder read as windows-1252, a
					// workbook): the bytes are lost all the same, so a person is told.
					fs = append(fs, Finding{File: r.opt.FileName, Line: line, Field: r.f.Fields[i].label(), Rule: RuleCharset, Value: v,
						Message: "the value holds the replacement character \uFFFD: bytes of the extract could not be read as characters; save the extract as UTF-8"})
				}
				continue
			}
			fs = append(fs, Finding{File: r.opt.FileName, Line: line, Field: r.f.Fields[i].label(), Rule: RuleTextControl, Value: v,
				Message: fmt.Sprintf("control character %s at position %d: values go into SII files, which must not contain it", controlName(c), utf8.RuneCountInString(v[:at])+1)})
		}
	}
	return fs
}

func rowHasRule(fs []Finding, line int, rule string) bool {
	for _, f := range fs {
		if f.Line == line && f.Rule == rule {
			return true
		}
	}
	return false
}

// dateShaped reports whether a value normalised as a date has the canonical shape
// GG/MM/AAAA (it passed its type; a value that failed keeps its own shape).
func dateShaped(v string) bool { return len(v) == 10 && v[2] == '/' && v[5] == '/' }

// canonicalDateBefore compares two canonical GG/MM/AAAA dates without parsing them.
func canonicalDateBefore(v, w string) bool {
	if v[6:10] != w[6:10] {
		return v[6:10] < w[6:10]
	}
	if v[3:5] != w[3:5] {
		return v[3:5] < w[3:5]
	}
	return v[0:2] < w[0:2]
}

// controlChar finds the first control character of v (C0, DEL, C1); line breaks and
// tabs are allowed in free text when freeText is set. at is -1 when there is none.
func controlChar(v string, freeText bool) (rune, int) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x20 && c != 0x7F && c != 0xC2 && c != 0xEF {
			continue
		}
		switch {
		case c == 0xEF && i+2 < len(v) && v[i+1] == 0xBF && v[i+2] == 0xBD:
			return utf8.RuneError, i
		case c < 0x20:
			if freeText && (c == '\n' || c == '\r' || c == '\t') {
				continue
			}
			return rune(c), i
		case c == 0x7F:
			return rune(c), i
		case c == 0xC2 && i+1 < len(v) && v[i+1] >= 0x80 && v[i+1] <= 0x9F:
			return rune(v[i+1]), i
		}
	}
	return 0, -1
}

func controlName(c rune) string {
	switch c {
	case 0:
		return "NUL (0x00)"
	case '\n':
		return "line feed"
	case '\r':
		return "carriage return"
	case '\t':
		return "tab"
	}
	return fmt.Sprintf("U+%04X", c)
}

// sniff looks at the first bytes: text goes on; a workbook is read through
// opt.Workbook when set; anything else is refused with what it is. It reports whether
// the header can be read.
func (r *CSVReader) sniff() bool {
	head, err := r.br.Peek(sniffLen)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull && len(head) == 0 {
		if err != io.EOF {
			r.headerErr = err
		}
		return true
	}
	format := SniffFormat(head)
	if format == FormatText {
		return true
	}
	if format == FormatXLSX && r.opt.Workbook != nil {
		cells, err := r.opt.Workbook(r.br)
		if err != nil {
			msg := "an Excel workbook (.xlsx) that cannot be read (" + err.Error() + "): open it in Excel and save it again, or save it as CSV UTF-8"
			if ref := (*WorkbookRefusal)(nil); errors.As(err, &ref) {
				msg = "an Excel workbook (.xlsx) " + ref.Reason
			}
			r.headerFindings = append(r.headerFindings, Finding{File: r.opt.FileName, Rule: RuleFileFormat, Value: FormatXLSX, Message: msg})
			return false
		}
		r.cells = cells
		return true
	}
	// Line 0: the whole file, not its first line.
	r.headerFindings = append(r.headerFindings, Finding{File: r.opt.FileName, Rule: RuleFileFormat, Value: format,
		Message: "not a text CSV file: " + formatAdvice(format)})
	return false
}

// Close releases a workbook's resources (nothing for CSV text).
func (r *CSVReader) Close() error {
	if r.cells != nil {
		return r.cells.Close()
	}
	return nil
}
