package flows

import (
	"fmt"
	"strings"
)

// Record is one row of a flow or input file: Values[i] is the canonical value of the
// flow's i-th field ("" when absent). All records of a flow share one Layout, so a row
// costs one slice and one string, not a map.
type Record struct {
	Line   int      // 1-based line of the row (the header is line 1); XML: the element's line
	Values []string // parallel to Layout().Names()
	layout *Layout
}

// NewRecord returns an empty record of the flow, to fill with Set.
func NewRecord(f *Flow) Record {
	return Record{Values: make([]string, len(f.Fields)), layout: f.layout}
}

// Get returns the value of a field ("" if absent or unknown).
func (r Record) Get(name string) string {
	if r.layout == nil {
		return ""
	}
	if i, ok := r.layout.index[name]; ok && i < len(r.Values) {
		return r.Values[i]
	}
	return ""
}

// Set sets a field; it fails for a name the flow does not have.
func (r Record) Set(name, value string) error {
	if r.layout == nil {
		return fmt.Errorf("record without layout")
	}
	i, ok := r.layout.index[name]
	if !ok {
		return fmt.Errorf("no field %q", name)
	}
	r.Values[i] = value
	return nil
}

// Fields returns the field names, in order.
func (r Record) Fields() []string {
	if r.layout == nil {
		return nil
	}
	return r.layout.names
}

// Map returns the non-empty values by field name (allocates; for tests and tooling).
func (r Record) Map() map[string]string {
	m := make(map[string]string, len(r.Values))
	for i, v := range r.Values {
		if v != "" && r.layout != nil {
			m[r.layout.names[i]] = v
		}
	}
	return m
}

// Amount returns an amount field (0 when empty; values in a Record are already valid).
func (r Record) Amount(name string) Amount {
	a, _ := ParseAmount(r.Get(name), false)
	return a
}

// Date returns a date field (zero Date when empty).
func (r Record) Date(name string) Date {
	d, _ := ParseDate(r.Get(name))
	return d
}

// Flag reports whether a flag field is set ("1" or "S").
func (r Record) Flag(name string) bool {
	v := r.Get(name)
	return v == "1" || v == "S"
}

// ReadOptions tune a reader.
type ReadOptions struct {
	FileName string // used in findings
	// Mapping maps a header in the file to our field name, for billing inputs whose
	// headers differ from ours. Keys are compared ignoring case and repeated spaces;
	// a target of "" or "-" ignores the column on purpose.
	Mapping      map[string]string
	DecimalComma bool // accept ',' as decimal separator (Italian billing extracts)
	LenientPOD   bool // accept a 15-character POD with a warning (default strict)
	// MappingFile is a whole mapping file: its column pairs (added to Mapping), value
	// tables, constants, routes and spend shape (docs/inputs.md, "Mapping file").
	MappingFile *Mapping
	// Workbook, when set, reads a file whose first bytes say it is an .xlsx workbook
	// (its first sheet, cells as text); without it such a file is refused like any
	// other file that is not text.
	Workbook OpenWorkbook
}

func (o ReadOptions) values() valueOpts {
	return valueOpts{decimalComma: o.DecimalComma, lenientPOD: o.LenientPOD}
}

// RecordError is a record refused by a writer; nothing of it was written.
type RecordError struct {
	Findings []Finding
}

func (e *RecordError) Error() string {
	msgs := make([]string, 0, len(e.Findings))
	for _, f := range e.Findings {
		msgs = append(msgs, f.String())
	}
	return "record refused: " + strings.Join(msgs, "; ")
}

// checkRow normalises vals in place and appends the findings of the row to fs. absent
// marks fields whose column is missing from the file (reported once in the header, so
// not again on every row). memo, when not nil, remembers each field's last value and
// its normalisation (a reader's rows repeat their practice's values).
func (f *Flow) checkRow(vals []string, absent []bool, o valueOpts, file string, line int, fs []Finding, memo *normMemo) []Finding {
	for i := range f.Fields {
		v := vals[i]
		if v == "" {
			continue
		}
		fd := &f.Fields[i]
		norm, p := memo.normalize(fd, i, v, o)
		if p != nil {
			fnd := Finding{File: file, Line: line, Field: fd.label(), Rule: p.rule, Value: v, Message: p.msg}
			if p.warning {
				fnd.Severity = "warning"
			}
			fs = append(fs, fnd)
		}
		vals[i] = norm
	}
	for i := range f.Fields {
		if vals[i] != "" {
			continue
		}
		fd := &f.Fields[i]
		switch fd.Required {
		case "M":
			if absent == nil || !absent[i] {
				fs = append(fs, Finding{File: file, Line: line, Field: fd.label(), Rule: RuleRequired, Message: "mandatory value missing"})
			}
		case "C":
			if c := f.conds[i]; c != nil && c.holds(vals) {
				msg := "value required when " + c.words()
				if absent != nil && absent[i] {
					msg += " (the file has no such column)"
				}
				fs = append(fs, Finding{File: file, Line: line, Field: fd.label(), Rule: RuleRequired, Message: msg})
			}
		}
	}
	if f.input {
		fs = f.checkBounds(vals, file, line, fs)
	}
	if f.cause >= 0 && f.causes != nil {
		if v := vals[f.cause]; v != "" && f.causes.Lookup(v) == nil {
			fnd := Finding{File: file, Line: line, Field: f.Fields[f.cause].label(), Rule: RuleCause, Value: v,
				Message: "code not in cause table " + f.Causes}
			if f.Direction == "in" && !f.input {
				// The SII may use codes we have not heard of: keep the row and its
				// MOTIVAZIONE, and let a person look.
				fnd.Severity = "warning"
			}
			fs = append(fs, fnd)
		}
	}
	return fs
}

// CheckValues validates values for the flow as a writer would, without writing. It
// returns the canonical record and every finding.
func (f *Flow) CheckValues(values map[string]string) (Record, []Finding) {
	rec := NewRecord(f)
	var fs []Finding
	for k, v := range values {
		i := f.layout.Index(k)
		if i < 0 {
			fs = append(fs, Finding{Field: k, Rule: RuleCSVColumn, Value: v, Message: "flow " + f.Key + " has no such field"})
			continue
		}
		rec.Values[i] = v
	}
	fs = append(fs, f.prepare(rec.Values, 0, nil)...)
	return rec, fs
}

// prepare fills constants, trims, refuses line breaks and validates a row to write
// (memo: a writer's, or nil).
func (f *Flow) prepare(vals []string, line int, memo *normMemo) []Finding {
	var fs []Finding
	for i := range f.Fields {
		fd := &f.Fields[i]
		v := strings.TrimSpace(vals[i])
		if v == "" && fd.Const != "" {
			v = fd.Const
		}
		if strings.ContainsAny(v, "\r\n") {
			fs = append(fs, Finding{Line: line, Field: fd.label(), Rule: RuleString, Value: v, Message: "line breaks are not allowed in a value"})
			v = ""
		}
		vals[i] = v
	}
	fs = f.checkRow(vals, nil, valueOpts{}, "", line, fs, memo)
	return fs
}

func (f *Flow) prepareMap(values map[string]string, line int, memo *normMemo) ([]string, error) {
	vals := make([]string, len(f.Fields))
	var fs []Finding
	for k, v := range values {
		i := f.layout.Index(k)
		if i < 0 {
			fs = append(fs, Finding{Line: line, Field: k, Rule: RuleCSVColumn, Value: v, Message: "flow " + f.Key + " has no such field"})
			continue
		}
		vals[i] = v
	}
	fs = append(fs, f.prepare(vals, line, memo)...)
	if HasErrors(fs) {
		return nil, &RecordError{Findings: fs}
	}
	return vals, nil
}

func (f *Flow) prepareRecord(r Record, line int, memo *normMemo) ([]string, error) {
	if r.layout == f.layout {
		vals := append([]string(nil), r.Values...)
		fs := f.prepare(vals, line, memo)
		if HasErrors(fs) {
			return nil, &RecordError{Findings: fs}
		}
		return vals, nil
	}
	return f.prepareMap(r.Map(), line, memo)
}

// normMemo remembers, per field, the last value a reader normalised and what its
// rule made of it. The rows of one practice repeat its values (point, customer, spend
// list...), and a field's rule is a pure function of the value and the reading
// options, which are fixed for a reader: the same value gives the same canonical form
// and the same problem, without checking a codice fiscale or parsing a spend list
// again. A nil memo normalises every value.
type normMemo struct {
	raw, norm []string
	prob      []*fieldProblem
}

func newNormMemo(fields int) *normMemo {
	return &normMemo{raw: make([]string, fields), norm: make([]string, fields), prob: make([]*fieldProblem, fields)}
}

// normalize is fd.normalize(v, o) for the field at index i.
func (m *normMemo) normalize(fd *Field, i int, v string, o valueOpts) (string, *fieldProblem) {
	if m == nil {
		return fd.normalize(v, o)
	}
	if v != "" && m.raw[i] == v {
		return m.norm[i], m.prob[i]
	}
	norm, p := fd.normalize(v, o)
	m.raw[i], m.norm[i], m.prob[i] = v, norm, p
	return norm, p
}
