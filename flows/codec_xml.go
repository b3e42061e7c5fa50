package flows

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// XML flows (brief §3.1): UTF-8; the root element carries COD_SERVIZIO and COD_FLUSSO
// as attributes; each record is one element (Flow.XMLRecord) whose header identifiers
// (fields marked header = true) sit in an IdentificativiRichiesta section, followed by
// the other fields as elements named like the field in files (Field.Column, else its
// name; the root attributes likewise take the wire names of the COD_SERVIZIO and
// COD_FLUSSO fields). For a flow with a row group the
// repeating fields of each row form a child element (RowGroup.Element), so one record
// element holds a whole practice with all its invoices. Element names are matched
// ignoring case (the distribution XMLs use lower case, the TO specs upper case).
// Dates and timestamps are written in XSD form (AAAA-MM-GG, AAAA-MM-GGTHH:MM:SS) and
// both forms are read; Records always hold the CSV forms.

const xmlIdentSection = "IdentificativiRichiesta"

// XMLReader streams the records of an XML flow file.
type XMLReader struct {
	d     *xml.Decoder
	f     *Flow
	opt   ReadOptions
	vo    valueOpts
	queue []readRow
	root  bool // root element seen
	done  bool
	err   error
	// root attributes, standing for the COD_SERVIZIO/COD_FLUSSO fields
	rootSvc, rootCode string
	// pending findings about the file itself, handed out with the next result
	fileFindings []Finding
}

type readRow struct {
	rec Record
	fs  []Finding
}

// NewXMLReader reads r as an XML file of flow f.
func NewXMLReader(r io.Reader, f *Flow, opt ReadOptions) *XMLReader {
	// Bounded before the decoder: encoding/xml keeps a whole text run in memory.
	d := xml.NewDecoder(bufio.NewReaderSize(newBoundedXML(r), 64<<10))
	d.Strict = true
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		// Only UTF-8 is allowed (brief §3.1); say so instead of failing obscurely.
		return nil, fmt.Errorf("encoding %q: SII XML files must be UTF-8", label)
	}
	return &XMLReader{d: d, f: f, opt: opt, vo: opt.values()}
}

func (r *XMLReader) line() int {
	l, _ := r.d.InputPos()
	return l
}

func (r *XMLReader) finding(line int, field, rule, value, msg string) Finding {
	return Finding{File: r.opt.FileName, Line: line, Field: field, Rule: rule, Value: value, Message: msg}
}

// fatal turns a decoder error into a Finding (XML-SYNTAX with its line) returned as the
// error: the rest of the file cannot be read.
func (r *XMLReader) fatal(err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return r.finding(se.Line, "", RuleXMLSyntax, "", se.Msg)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		return r.finding(r.line(), "", RuleXMLSyntax, "", "file ends inside an element")
	}
	return r.finding(r.line(), "", RuleXMLSyntax, "", err.Error())
}

// Next returns the next record, its findings and io.EOF after the last one. A fatal
// problem (malformed XML, wrong encoding) is returned as an error of type Finding.
func (r *XMLReader) Next() (Record, []Finding, error) {
	for len(r.queue) == 0 {
		if r.err != nil {
			fs := r.fileFindings
			r.fileFindings = nil
			return Record{}, fs, r.err
		}
		r.err = r.parseRecord()
	}
	row := r.queue[0]
	r.queue = r.queue[1:]
	if len(r.fileFindings) > 0 {
		row.fs = append(r.fileFindings, row.fs...)
		r.fileFindings = nil
	}
	return row.rec, row.fs, nil
}

// parseRecord reads tokens until one record element has been read (queueing its rows)
// or the file ends (returning io.EOF or a fatal error).
func (r *XMLReader) parseRecord() error {
	for {
		tok, err := r.d.Token()
		if err == io.EOF {
			if !r.root {
				r.fileFindings = append(r.fileFindings, r.finding(1, "", RuleXMLRoot, "", "empty file: no root element"))
			} else if !r.done {
				return r.fatal(io.ErrUnexpectedEOF)
			}
			return io.EOF
		}
		if err != nil {
			return r.fatal(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !r.root {
				r.root = true
				r.checkRoot(t)
				continue
			}
			if !strings.EqualFold(t.Name.Local, r.f.xmlRecord()) {
				r.fileFindings = append(r.fileFindings, r.finding(r.line(), t.Name.Local, RuleXMLElement, "",
					"unexpected element, expected "+r.f.xmlRecord()))
				if err := r.d.Skip(); err != nil {
					return r.fatal(err)
				}
				continue
			}
			return r.readRecordElement(t)
		case xml.EndElement:
			r.done = true // the root closed
		}
	}
}

func (r *XMLReader) checkRoot(t xml.StartElement) {
	line := r.line()
	if !strings.EqualFold(t.Name.Local, r.f.xmlRoot()) {
		r.fileFindings = append(r.fileFindings, r.finding(line, "", RuleXMLRoot, t.Name.Local, "root element should be "+r.f.xmlRoot()))
	}
	var svc, code string
	svcAttr, codeAttr := r.f.rootAttrs()
	for _, a := range t.Attr {
		switch {
		case strings.EqualFold(a.Name.Local, svcAttr):
			svc = strings.TrimSpace(a.Value)
		case strings.EqualFold(a.Name.Local, codeAttr):
			code = strings.TrimSpace(a.Value)
		}
	}
	if !strings.EqualFold(svc, r.f.Service) || strings.TrimLeft(code, "0") != strings.TrimLeft(r.f.Code, "0") {
		r.fileFindings = append(r.fileFindings, r.finding(line, svcAttr, RuleXMLRoot, svc+"."+code,
			"root attributes "+svcAttr+"/"+codeAttr+" should be "+r.f.ID()))
	} else {
		// Some producers drop the left padding of the flow code ("100"): same flow.
		svc, code = r.f.Service, r.f.Code
	}
	r.rootSvc, r.rootCode = svc, code
}

// readRecordElement reads one record element (its start already consumed).
func (r *XMLReader) readRecordElement(start xml.StartElement) error {
	f := r.f
	recLine := r.line()
	parent := make([]string, len(f.Fields))
	el := &recordElement{r: r, f: f}
	if f.RowGroup != nil {
		el.groupEl = f.RowGroup.Element
	}
	if err := el.section(parent, true, true); err != nil {
		return err
	}
	fs, children := el.fs, el.children
	// Root attributes stand for the COD_SERVIZIO/COD_FLUSSO fields.
	for i, fd := range f.Fields {
		switch fd.Name {
		case "COD_SERVIZIO":
			if parent[i] == "" {
				parent[i] = r.rootSvc
			}
		case "COD_FLUSSO":
			if parent[i] == "" {
				parent[i] = r.rootCode
			}
		}
	}
	if len(children) == 0 {
		row := readRow{rec: Record{Line: recLine, Values: parent, layout: f.layout}}
		row.fs = f.checkRow(parent, nil, r.vo, r.opt.FileName, recLine, fs, nil)
		r.queue = append(r.queue, row)
		return nil
	}
	for k, c := range children {
		vals := c.vals
		for i, v := range parent {
			if vals[i] == "" {
				vals[i] = v
			}
		}
		var own []Finding
		if k == 0 {
			own = fs
		}
		row := readRow{rec: Record{Line: c.line, Values: vals, layout: f.layout}}
		row.fs = f.checkRow(vals, nil, r.vo, r.opt.FileName, c.line, own, nil)
		r.queue = append(r.queue, row)
	}
	return nil
}

// recordElement is one record element being read: the findings so far and the
// repeated child elements (a row group) met.
type recordElement struct {
	r        *XMLReader
	f        *Flow
	groupEl  string // the row group's element, "" if the flow has none
	fs       []Finding
	children []recordChild
}

// recordChild is one element of a row group: its line and its own values.
type recordChild struct {
	line int
	vals []string
}

// leaf reads the text of the element of field i.
func (el *recordElement) leaf(i int, into []string) error {
	r, f := el.r, el.f
	line := r.line()
	var text strings.Builder
	for {
		tok, err := r.d.Token()
		if err != nil {
			return r.fatal(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			text.Write(t)
		case xml.StartElement:
			el.fs = append(el.fs, r.finding(r.line(), f.Fields[i].label(), RuleXMLElement, t.Name.Local, "a field element cannot contain elements"))
			if err := r.d.Skip(); err != nil {
				return r.fatal(err)
			}
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			if into[i] != "" {
				el.fs = append(el.fs, r.finding(line, f.Fields[i].label(), RuleXMLElement, v, "field given twice"))
			}
			into[i] = v
			return nil
		}
	}
}

// fieldIndex finds the field an element stands for, by the name files use.
func (el *recordElement) fieldIndex(local string) int {
	for i := range el.f.Fields {
		if strings.EqualFold(el.f.Fields[i].WireName(), local) {
			return i
		}
	}
	return -1
}

// section reads the elements of a container until its end.
func (el *recordElement) section(into []string, allowGroup, allowIdent bool) error {
	r := el.r
	for {
		tok, err := r.d.Token()
		if err != nil {
			return r.fatal(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			local := t.Name.Local
			switch {
			case allowIdent && strings.EqualFold(local, xmlIdentSection):
				if err := el.section(into, false, false); err != nil {
					return err
				}
			case allowGroup && el.groupEl != "" && strings.EqualFold(local, el.groupEl):
				c := recordChild{line: r.line(), vals: make([]string, len(el.f.Fields))}
				if err := el.section(c.vals, false, false); err != nil {
					return err
				}
				el.children = append(el.children, c)
			default:
				if i := el.fieldIndex(local); i >= 0 {
					if err := el.leaf(i, into); err != nil {
						return err
					}
					continue
				}
				el.fs = append(el.fs, r.finding(r.line(), local, RuleXMLElement, "", "element not in the layout of "+el.f.ID()))
				if err := r.d.Skip(); err != nil {
					return r.fatal(err)
				}
			}
		case xml.EndElement:
			return nil
		}
	}
}

// ---- XML writer ----

// XMLWriter writes an XML flow file. Rows of a row-group flow that share the group key
// and follow one another are written as one record element with one child per row.
type XMLWriter struct {
	w       *bufio.Writer
	f       *Flow
	rows    int
	started bool
	group   [][]string // rows of the open group
	err     error
	repeat  []bool // field index is a repeating (child) field
	key     []int
}

// NewXMLWriter writes records of flow f to w. Call Close at the end (it closes the root
// element; it does not close w).
func NewXMLWriter(w io.Writer, f *Flow) *XMLWriter {
	x := &XMLWriter{w: bufio.NewWriter(w), f: f, repeat: make([]bool, len(f.Fields))}
	if g := f.RowGroup; g != nil {
		for _, n := range g.Repeat {
			if i := f.layout.Index(n); i >= 0 {
				x.repeat[i] = true
			}
		}
		for _, n := range g.Key {
			if i := f.layout.Index(n); i >= 0 {
				x.key = append(x.key, i)
			}
		}
	}
	return x
}

// Write validates and writes one row given as field → value.
func (x *XMLWriter) Write(values map[string]string) error {
	if x.err != nil {
		return x.err
	}
	vals, err := x.f.prepareMap(values, x.rows+1, nil)
	if err != nil {
		return err
	}
	return x.add(vals)
}

// WriteRecord validates and writes one row.
func (x *XMLWriter) WriteRecord(r Record) error {
	if x.err != nil {
		return x.err
	}
	vals, err := x.f.prepareRecord(r, x.rows+1, nil)
	if err != nil {
		return err
	}
	return x.add(vals)
}

func (x *XMLWriter) add(vals []string) error {
	x.rows++
	if x.f.RowGroup == nil {
		x.writeGroup([][]string{vals})
		return x.err
	}
	if len(x.group) > 0 && !x.sameKey(x.group[0], vals) {
		x.writeGroup(x.group)
		x.group = x.group[:0]
	}
	x.group = append(x.group, vals)
	return x.err
}

func (x *XMLWriter) sameKey(a, b []string) bool {
	for _, i := range x.key {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (x *XMLWriter) start() {
	if x.started {
		return
	}
	x.started = true
	var svc, code string
	if i := x.f.layout.Index("COD_SERVIZIO"); i >= 0 {
		svc = x.f.Fields[i].Const
	}
	if i := x.f.layout.Index("COD_FLUSSO"); i >= 0 {
		code = x.f.Fields[i].Const
	}
	if svc == "" {
		svc = x.f.Service
	}
	if code == "" {
		code = x.f.Code
	}
	svcAttr, codeAttr := x.f.rootAttrs()
	fmt.Fprintf(x.w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%s %s=\"%s\" %s=\"%s\">\n",
		x.f.xmlRoot(), svcAttr, xmlEscape(svc), codeAttr, xmlEscape(code))
}

func (x *XMLWriter) writeGroup(rows [][]string) {
	x.start()
	f := x.f
	first := rows[0]
	fmt.Fprintf(x.w, "  <%s>\n", f.xmlRecord())
	hasHeader := false
	for i, fd := range f.Fields {
		if fd.Header && first[i] != "" {
			hasHeader = true
			break
		}
	}
	if hasHeader {
		fmt.Fprintf(x.w, "    <%s>\n", xmlIdentSection)
		for i, fd := range f.Fields {
			if fd.Header && first[i] != "" {
				x.element(6, &f.Fields[i], first[i])
			}
		}
		fmt.Fprintf(x.w, "    </%s>\n", xmlIdentSection)
	}
	for i, fd := range f.Fields {
		if fd.Header || x.repeat[i] || first[i] == "" || fd.Name == "COD_SERVIZIO" || fd.Name == "COD_FLUSSO" {
			continue
		}
		x.element(4, &f.Fields[i], first[i])
	}
	if f.RowGroup != nil {
		for _, row := range rows {
			fmt.Fprintf(x.w, "    <%s>\n", f.RowGroup.Element)
			for i := range f.Fields {
				if x.repeat[i] && row[i] != "" {
					x.element(6, &f.Fields[i], row[i])
				}
			}
			fmt.Fprintf(x.w, "    </%s>\n", f.RowGroup.Element)
		}
	}
	if _, err := fmt.Fprintf(x.w, "  </%s>\n", f.xmlRecord()); err != nil && x.err == nil {
		x.err = fmt.Errorf("write %s: %w", f.Key, err)
	}
}

func (x *XMLWriter) element(indent int, fd *Field, v string) {
	switch fd.Type {
	case TypeDate:
		if d, err := ParseDate(v); err == nil {
			v = d.ISO()
		}
	case TypeTimestamp:
		v = timestampISO(v)
	}
	name := fd.WireName()
	fmt.Fprintf(x.w, "%*s<%s>%s</%s>\n", indent, "", name, xmlEscape(v), name)
}

// rootAttrs returns the names of the root attributes that carry the service and flow
// codes: the wire names of the COD_SERVIZIO and COD_FLUSSO fields.
func (f *Flow) rootAttrs() (svc, code string) {
	svc, code = "COD_SERVIZIO", "COD_FLUSSO"
	if fd := f.Field("COD_SERVIZIO"); fd != nil {
		svc = fd.WireName()
	}
	if fd := f.Field("COD_FLUSSO"); fd != nil {
		code = fd.WireName()
	}
	return svc, code
}

func xmlEscape(s string) string {
	var b strings.Builder
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return s
	}
	return b.String()
}

// Rows returns the number of rows written.
func (x *XMLWriter) Rows() int { return x.rows }

// Close writes the pending group and the end of the root element, and flushes.
func (x *XMLWriter) Close() error {
	if x.err != nil {
		return x.err
	}
	if len(x.group) > 0 {
		x.writeGroup(x.group)
		x.group = nil
	}
	x.start()
	fmt.Fprintf(x.w, "</%s>\n", x.f.xmlRoot())
	if err := x.w.Flush(); err != nil {
		x.err = fmt.Errorf("write %s: %w", x.f.Key, err)
	}
	return x.err
}

// ---- format-independent helpers ----

// FlowReader is what both readers offer.
type FlowReader interface {
	Next() (Record, []Finding, error)
}

// FlowWriter is what both writers offer.
type FlowWriter interface {
	Write(values map[string]string) error
	WriteRecord(r Record) error
	Close() error
}

// NewReader returns a CSV or XML reader; format "" means the flow's own.
func NewReader(r io.Reader, f *Flow, format string, opt ReadOptions) (FlowReader, error) {
	switch pickFormat(f, format) {
	case "csv":
		return NewCSVReader(r, f, opt), nil
	case "xml":
		return NewXMLReader(r, f, opt), nil
	}
	return nil, fmt.Errorf("flow %s: unknown format %q", f.Key, format)
}

// NewWriter returns a CSV or XML writer; format "" means the flow's own.
func NewWriter(w io.Writer, f *Flow, format string) (FlowWriter, error) {
	switch pickFormat(f, format) {
	case "csv":
		return NewCSVWriter(w, f), nil
	case "xml":
		return NewXMLWriter(w, f), nil
	}
	return nil, fmt.Errorf("flow %s: unknown format %q", f.Key, format)
}

func pickFormat(f *Flow, format string) string {
	if format == "" {
		return f.Format
	}
	return strings.ToLower(format)
}
