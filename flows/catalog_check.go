package flows

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ---- checks ----

func (c *Catalog) finding(f *Flow, fd *Field, rule, value, msg string) Finding {
	where, line := "", 0
	if f != nil {
		where, line = f.Key, f.line
		if fd != nil {
			where += "." + fd.Name
			if fd.line > 0 {
				line = fd.line
			}
		}
	}
	return Finding{File: c.name, Line: line, Field: where, Rule: rule, Value: value, Message: msg}
}

// Check reports semantic problems of the catalog: duplicate keys, codes or fields,
// unknown types, enums without values, conditional fields without a condition,
// conditions or patterns that do not parse, file-name patterns with unknown
// placeholders or that their own Match would not recognise, unknown cause tables, and
// transitions or states naming unknown states, columns that are not usable names or
// that two fields share, and (CATALOG-CODE-FIELD) fields the code reads or writes by
// name that a custom catalog dropped or renamed (see CodeFields). Findings with Severity "warning" do not
// make the catalog unusable.
func (c *Catalog) Check() []Finding {
	var fs []Finding
	add := func(f Finding) { fs = append(fs, f) }
	warn := func(f Finding) { f.Severity = "warning"; fs = append(fs, f) }
	states := c.checkStates(add)
	c.checkCauseTables(add)
	keys, codes := map[string]bool{}, map[string]string{}
	check := func(f *Flow) {
		if f.Key == "" {
			add(c.finding(f, nil, "CATALOG-KEY", "", "flow without key"))
		} else if keys[f.Key] {
			add(c.finding(f, nil, "CATALOG-DUP", f.Key, "key declared twice"))
		}
		keys[f.Key] = true
		fs = append(fs, f.compErr...)
		c.checkFlowKind(f, codes, add)
		c.checkFields(f, add)
		c.checkFlowRefs(f, add)
		if f.Transition != nil {
			c.checkTransition(f, states, add, warn)
		}
		if !f.input {
			c.checkFileName(f, add)
		}
	}
	for _, f := range c.Flows {
		check(f)
	}
	keys = map[string]bool{}
	for _, f := range c.Inputs {
		check(f)
	}
	c.checkCodeFields(add)
	return fs
}

// checkStates checks the [[states]] table and returns the names declared.
func (c *Catalog) checkStates(add func(Finding)) map[string]bool {
	states := map[string]bool{}
	for _, s := range c.States {
		if states[s.Name] {
			add(Finding{File: c.name, Line: s.line, Field: "states", Rule: "CATALOG-DUP", Value: s.Name, Message: "state declared twice"})
		}
		states[s.Name] = true
		switch s.Role {
		case "uscente", "entrante", "both":
		default:
			add(Finding{File: c.name, Line: s.line, Field: "states." + s.Name, Rule: "CATALOG-ROLE", Value: s.Role, Message: "role must be uscente, entrante or both"})
		}
	}
	for _, s := range c.States {
		for _, t := range s.To {
			if !states[t] {
				add(Finding{File: c.name, Line: s.line, Field: "states." + s.Name, Rule: "CATALOG-STATE", Value: t, Message: "transition to an unknown state"})
			}
		}
		if s.Terminal && len(s.To) > 0 {
			add(Finding{File: c.name, Line: s.line, Field: "states." + s.Name, Rule: "CATALOG-STATE", Message: "a terminal state has outgoing transitions"})
		}
	}
	return states
}

// checkCauseTables checks the cause tables: codes unique, includes known.
func (c *Catalog) checkCauseTables(add func(Finding)) {
	names := make([]string, 0, len(c.Causes))
	for n := range c.Causes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := c.Causes[n]
		seen := map[string]bool{}
		for _, code := range t.Codes {
			k := causeKey(code.Code)
			if code.Code == "" || seen[k] {
				add(Finding{File: c.name, Line: t.line, Field: "causes." + n, Rule: "CATALOG-DUP", Value: code.Code, Message: "cause code empty or declared twice"})
			}
			seen[k] = true
		}
		for _, inc := range t.Include {
			if c.Causes[inc] == nil {
				add(Finding{File: c.name, Line: t.line, Field: "causes." + n, Rule: "CATALOG-CAUSES", Value: inc, Message: "includes an unknown cause table"})
			}
		}
	}
}

// checkFlowKind checks what kind of flow f is: an SII flow's service, code (unique
// across the catalog, in codes) and roles; the direction and format of any flow.
func (c *Catalog) checkFlowKind(f *Flow, codes map[string]string, add func(Finding)) {
	if !f.input {
		if f.Service == "" || f.Code == "" {
			add(c.finding(f, nil, "CATALOG-CODE", "", "an SII flow needs service and code"))
		} else if k := f.ID(); codes[strings.TrimLeft(f.Code, "0")+"/"+f.Service] != "" {
			add(c.finding(f, nil, "CATALOG-DUP", k, "code already used by flow "+codes[strings.TrimLeft(f.Code, "0")+"/"+f.Service]))
		} else {
			codes[strings.TrimLeft(f.Code, "0")+"/"+f.Service] = f.Key
		}
		for _, r := range f.Roles {
			if r != "uscente" && r != "entrante" {
				add(c.finding(f, nil, "CATALOG-ROLE", r, "role must be uscente or entrante"))
			}
		}
		if len(f.Roles) == 0 {
			add(c.finding(f, nil, "CATALOG-ROLE", "", "flow without roles"))
		}
	}
	switch f.Direction {
	case "in", "out":
	default:
		add(c.finding(f, nil, "CATALOG-DIRECTION", f.Direction, "direction must be in or out"))
	}
	switch f.Format {
	case "csv", "xml":
	default:
		add(c.finding(f, nil, "CATALOG-FORMAT", f.Format, "format must be csv or xml"))
	}
}

// checkFields checks f's fields: names and columns unique and usable, types, enums,
// lengths, requiredness and conditions, constants that pass their own field.
func (c *Catalog) checkFields(f *Flow, add func(Finding)) {
	if len(f.Fields) == 0 {
		add(c.finding(f, nil, "CATALOG-FIELDS", "", "flow without fields"))
	}
	seen, wire := map[string]bool{}, map[string]bool{}
	for i := range f.Fields {
		fd := &f.Fields[i]
		if fd.Name == "" || seen[strings.ToUpper(fd.Name)] {
			add(c.finding(f, fd, "CATALOG-DUP", fd.Name, "field name empty or declared twice"))
		} else if wire[strings.ToUpper(fd.WireName())] {
			add(c.finding(f, fd, "CATALOG-DUP", fd.WireName(), "column name already used by another field of the flow"))
		}
		seen[strings.ToUpper(fd.Name)] = true
		wire[strings.ToUpper(fd.WireName())] = true
		if fd.Column != "" {
			if msg := columnProblem(fd.Column, f.input); msg != "" {
				add(c.finding(f, fd, "CATALOG-COLUMN", fd.Column, msg))
			}
		}
		if !knownTypes[fd.Type] {
			add(c.finding(f, fd, "CATALOG-TYPE", fd.Type, "unknown field type"))
		}
		if fd.Type == TypeEnum && len(fd.Values) == 0 {
			add(c.finding(f, fd, "CATALOG-ENUM", "", "enum without values"))
		}
		if fd.Type != TypeEnum && len(fd.Values) > 0 {
			add(c.finding(f, fd, "CATALOG-ENUM", "", "values given for a field that is not an enum"))
		}
		if fd.Length < 0 {
			add(c.finding(f, fd, "CATALOG-LENGTH", strconv.Itoa(fd.Length), "negative length"))
		}
		switch fd.Required {
		case "M", "O":
			if fd.When != "" {
				add(c.finding(f, fd, "CATALOG-WHEN", fd.When, "a condition on a field that is not C"))
			}
		case "C":
			if fd.When == "" {
				add(c.finding(f, fd, "CATALOG-WHEN", "", "conditional (C) field without when"))
			}
		default:
			add(c.finding(f, fd, "CATALOG-REQUIRED", fd.Required, "required must be M, C or O"))
		}
		if fd.Const != "" {
			if _, p := (&Field{Type: fd.Type, Values: fd.Values, Length: fd.Length}).normalize(fd.Const, valueOpts{}); p != nil && !p.warning {
				add(c.finding(f, fd, "CATALOG-CONST", fd.Const, "constant fails its own field: "+p.msg))
			}
		}
	}
}

// checkFlowRefs checks what f names elsewhere: its cause table and cause field, the
// fields of its row group.
func (c *Catalog) checkFlowRefs(f *Flow, add func(Finding)) {
	if f.Causes != "" {
		if c.Causes[f.Causes] == nil {
			add(c.finding(f, nil, "CATALOG-CAUSES", f.Causes, "unknown cause table"))
		}
		if f.cause < 0 {
			add(c.finding(f, nil, "CATALOG-CAUSES", f.causeField(), "the cause field is not a field of the flow"))
		}
	}
	if g := f.RowGroup; g != nil {
		for _, n := range append(append([]string{}, g.Key...), g.Repeat...) {
			if f.layout.Index(n) < 0 {
				add(c.finding(f, nil, "CATALOG-ROWGROUP", n, "row group names an unknown field"))
			}
		}
		if len(g.Key) == 0 || len(g.Repeat) == 0 || g.Element == "" {
			add(c.finding(f, nil, "CATALOG-ROWGROUP", "", "row group needs key, repeat and element"))
		}
	}
}

// checkTransition checks f's transition against the declared states and their
// allowed moves (a move the states do not allow is a warning).
func (c *Catalog) checkTransition(f *Flow, states map[string]bool, add, warn func(Finding)) {
	t := f.Transition
	for _, s := range append(append([]string{}, t.From...), t.To) {
		if s != "" && !states[s] {
			add(c.finding(f, nil, "CATALOG-STATE", s, "transition names an unknown state"))
		}
	}
	for v, s := range t.On {
		if !states[s] {
			add(c.finding(f, nil, "CATALOG-STATE", s, "transition on "+v+" names an unknown state"))
		}
	}
	if t.Field != "" && f.layout.Index(t.Field) < 0 {
		add(c.finding(f, nil, "CATALOG-STATE", t.Field, "transition field is not a field of the flow"))
	}
	if (t.Field == "") == (len(t.On) > 0) && t.To == "" {
		add(c.finding(f, nil, "CATALOG-STATE", "", "transition needs either to, or field with on"))
	}
	for _, from := range t.From {
		// A keyed transition (SUSP_NOTIF: S suspends, R resumes) need only
		// have one of its targets allowed from each source state.
		targets := []string{t.To}
		if t.Field != "" {
			targets = targets[:0]
			for _, s := range t.On {
				targets = append(targets, s)
			}
		}
		ok := !states[from]
		for _, to := range targets {
			if to == "" || from == to || !states[to] || c.CanTransition(from, to) {
				ok = true
			}
		}
		if !ok {
			warn(c.finding(f, nil, "CATALOG-STATE", from+"->"+strings.Join(targets, "|"), "the flow's transition is not among the states' allowed transitions"))
		}
	}
}

// columnProblem says why a column name cannot be used, or "". For an SII flow the same
// name is a CSV header cell and, since configuration may switch a flow to XML, an
// element name. A billing input kind is only ever CSV: any header cell will do
// ("Importo pagato"), as long as it survives the split at ';'.
func columnProblem(s string, csvOnly bool) string {
	if strings.TrimSpace(s) != s {
		return "column with leading or trailing spaces"
	}
	if csvOnly {
		if strings.ContainsAny(s, ";\"\r\n") {
			return "a column cannot contain ';', '\"' or a line break"
		}
		return ""
	}
	for i, r := range s {
		switch {
		case unicode.IsLetter(r) || r == '_':
		case i > 0 && (unicode.IsDigit(r) || r == '-' || r == '.'):
		default:
			return fmt.Sprintf("character %q not allowed in a column: it is also an XML element name (letters, digits, _ - . ; not first a digit, - or .)", r)
		}
	}
	return ""
}

func (c *Catalog) checkFileName(f *Flow, add func(Finding)) {
	if f.Direction == "out" && f.FileName == "" {
		add(c.finding(f, nil, "CATALOG-PATTERN", "", "an outbound flow needs file_name"))
		return
	}
	if f.FileName == "" {
		return
	}
	sample := map[string]string{}
	for _, m := range placeholderRe.FindAllStringSubmatch(f.FileName, -1) {
		switch m[1] {
		case "SERVICE", "CODE", "KEY", "EXT", "DATE", "SEQ":
			continue
		}
		fd := f.Field(m[1])
		if fd == nil {
			add(c.finding(f, nil, "CATALOG-PATTERN", m[0], "file_name placeholder is neither a field nor SERVICE/CODE/KEY/EXT/DATE/SEQ"))
			return
		}
		sample[m[1]] = sampleValue(fd)
	}
	name, err := f.BuildFileName(sample, time.Date(2026, 1, 2, 3, 4, 5, 0, Rome), 1, f.Format)
	if err != nil {
		add(c.finding(f, nil, "CATALOG-PATTERN", f.FileName, err.Error()))
		return
	}
	if f.match != nil && !f.match.MatchString(name) {
		add(c.finding(f, nil, "CATALOG-PATTERN", name, "a file named by file_name would not be recognised by match "+f.Match))
	}
}

// sampleValue is a plausible value of a field, for checking file-name patterns.
func sampleValue(fd *Field) string {
	if fd.Const != "" {
		return fd.Const
	}
	switch fd.Type {
	case TypePIVA, TypeCFOrPIVA:
		return "00488410010"
	case TypeCF:
		return "RSSMRA85T10A562S"
	case TypeCPUtente:
		return "E260000001"
	case TypeCPGestore:
		return "SII2024A8588941"
	case TypeEnum:
		if len(fd.Values) > 0 {
			return fd.Values[0]
		}
	}
	return "X"
}
