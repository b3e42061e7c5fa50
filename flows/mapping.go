package flows

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// ---- column mappings of billing inputs ----
//
// A billing system writes its own headers and its own codes. A mapping file says, as
// data, how to read such an export without a pre-processing script: which column is
// which field ([mapping]), how billing's codes translate to ours ([values.FIELD]),
// fields billing has no column for ([constants]), a column that is one field or another
// depending on the row ([route."Column"]), and the shape of the 12-month spend when it
// is not our one list column ([spend]). docs/inputs.md describes the format.

// Mapping is a billing drop folder's mapping file.
type Mapping struct {
	Kind         string            // optional: the input kind the mapping is for
	DecimalComma bool              // amounts use ',' as decimal separator
	Columns      map[string]string // billing header → our field name ("" or "-" = ignore)
	// Values are value tables: field → billing value (upper-cased, trimmed) → our value.
	Values map[string]map[string]string
	// Constants are fields billing has no column for, with the value of every row.
	Constants map[string]string
	// Routes send one billing column to one of several fields by a condition on the
	// row (a "point" column is COD_POD for electricity and COD_PDR for gas).
	Routes []Route
	// Spend is the shape of the 12-month spend when it is not one list column.
	Spend *SpendShape

	file  string
	lines map[string]int // key path ("values\x00TIPO_LETTURA\x00R") → line
}

// Route sends the value of Column to the first (and only) target whose condition holds.
type Route struct {
	Column  string
	Targets []RouteTarget // sorted by field name
}

// RouteTarget is one field a routed column may go to, and when.
type RouteTarget struct {
	Field string
	When  string // a condition on our fields, as in the catalog: "SETTORE=E"
}

// Shapes of the 12-month spend in a billing export ([spend] of a mapping file).
const (
	SpendShapeTotal  = "total"  // a total and the number of months with supply
	SpendShapeMonths = "months" // one column per month
)

// Orders of the monthly columns of SpendShapeMonths.
const (
	SpendOldestFirst = "oldest_first" // the last column is the last month of supply
	SpendNewestFirst = "newest_first" // the first column is the last month of supply
	SpendCalendar    = "calendar"     // 12 columns January…December, each the latest such month of supply
)

// SpendShape says how an export gives the 12-month spend field (SPESA_12M).
type SpendShape struct {
	Field   string   // the month_amounts field; "" = the kind's only one
	Switch  string   // the date field whose day before is in the last month of supply; "" = DATA_SWITCH
	Total   string   // column with the spend of the months with supply (shape total)
	Months  string   // column with the number of months with supply (shape total)
	Columns []string // monthly columns (shape months)
	Order   string   // of Columns: oldest_first (default), newest_first, calendar
}

// Shape returns SpendShapeTotal or SpendShapeMonths.
func (s *SpendShape) Shape() string {
	if len(s.Columns) > 0 {
		return SpendShapeMonths
	}
	return SpendShapeTotal
}

func (s *SpendShape) switchField() string {
	if s.Switch != "" {
		return s.Switch
	}
	return "DATA_SWITCH"
}

// mappingSections are the tables a mapping file may have; any other top-level table is
// refused, and a top-level string pair is a column pair (the flat form).
var mappingSections = "mapping, values, constants, route, spend"

// ParseMapping reads a mapping file (docs/inputs.md, "Mapping file"): a [mapping]
// table of "billing header" = "FIELD", optional kind and decimal_comma, and the tables
// [values.FIELD], [constants], [route."Column"] and [spend]. The flat form (column
// pairs at top level, as the first mapping files had them) is accepted too. Every
// problem is reported at its file:line; the targets are checked against an input kind
// by Flow.CheckMappingFile.
func ParseMapping(name string, data []byte) (*Mapping, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	mp := &mappingParser{m: &Mapping{Columns: map[string]string{}, file: name, lines: scanTOMLLines(data)}, byField: map[string]string{}}
	m := mp.m
	for _, k := range sortedKeys(raw) {
		v := raw[k]
		switch k {
		case "mapping":
			t, ok := v.(map[string]any)
			if !ok {
				mp.bad([]string{k}, "mapping must be a table")
				continue
			}
			for _, h := range sortedKeys(t) {
				mp.put([]string{k, h}, h, t[h])
			}
		case "decimal_comma":
			b, ok := v.(bool)
			if !ok {
				mp.bad([]string{k}, "decimal_comma must be true or false")
			}
			m.DecimalComma = b
		case "kind":
			s, ok := v.(string)
			if !ok {
				mp.bad([]string{k}, "kind must be a string (an input kind, e.g. \"uscente.morosi\")")
			}
			m.Kind = s
		case "values":
			mp.values(k, v)
		case "constants":
			mp.constants(k, v)
		case "route":
			mp.routes(k, v)
		case "spend":
			mp.spend(k, v)
		default:
			mp.put([]string{k}, k, v)
		}
	}
	if len(mp.problems) > 0 {
		return nil, errors.New(strings.Join(mp.problems, "; "))
	}
	sort.Slice(m.Routes, func(i, j int) bool { return m.Routes[i].Column < m.Routes[j].Column })
	return m, nil
}

// mappingParser is a mapping file being read: the mapping so far and its problems.
type mappingParser struct {
	m        *Mapping
	problems []string
	byField  map[string]string // field (upper case) → the billing header mapped to it
}

// bad records a problem at the line of the key path.
func (mp *mappingParser) bad(path []string, format string, args ...any) {
	mp.problems = append(mp.problems, fmt.Sprintf("%s:%d: %s", mp.m.file, mp.m.Line(path...), fmt.Sprintf(format, args...)))
}

// put maps billing header h to the field named by v.
func (mp *mappingParser) put(path []string, h string, v any) {
	s, ok := v.(string)
	if !ok {
		if _, table := v.(map[string]any); table && len(path) == 1 {
			mp.bad(path, "unknown table [%s]: a mapping file has %s", h, mappingSections)
			return
		}
		mp.bad(path, "%q: expected a field name (string), found %s", h, tomlKind(v))
		return
	}
	s = strings.TrimSpace(s)
	if s != "" && s != "-" {
		if prev, dup := mp.byField[strings.ToUpper(s)]; dup {
			mp.bad(path, "headers %q and %q both map to field %s", prev, h, s)
			return
		}
		mp.byField[strings.ToUpper(s)] = h
	}
	mp.m.Columns[h] = s
}

// values reads the [values.FIELD] tables.
func (mp *mappingParser) values(k string, v any) {
	m := mp.m
	t, ok := v.(map[string]any)
	if !ok {
		mp.bad([]string{k}, "values must be a table of tables: [values.FIELD] with \"billing value\" = \"our value\"")
		return
	}
	m.Values = map[string]map[string]string{}
	for _, field := range sortedKeys(t) {
		tab, ok := t[field].(map[string]any)
		if !ok {
			mp.bad([]string{k, field}, "values.%s must be a table of \"billing value\" = \"our value\"", field)
			continue
		}
		out := map[string]string{}
		seen := map[string]string{}
		for _, from := range sortedKeys(tab) {
			to, ok := tab[from].(string)
			if !ok {
				mp.bad([]string{k, field, from}, "values.%s.%q: expected our value (string), found %s", field, from, tomlKind(tab[from]))
				continue
			}
			key := valueKey(from)
			if prev, dup := seen[key]; dup {
				at := []string{k, field, from}
				if m.Line(k, field, prev) > m.Line(at...) {
					at = []string{k, field, prev}
				}
				mp.bad(at, "values.%s: %q and %q are the same billing value (compared ignoring case and spaces)", field, prev, from)
				continue
			}
			seen[key] = from
			out[key] = strings.TrimSpace(to)
		}
		m.Values[field] = out
	}
}

// constants reads the [constants] table.
func (mp *mappingParser) constants(k string, v any) {
	t, ok := v.(map[string]any)
	if !ok {
		mp.bad([]string{k}, "constants must be a table of FIELD = \"value\"")
		return
	}
	mp.m.Constants = map[string]string{}
	for _, field := range sortedKeys(t) {
		s, ok := t[field].(string)
		if !ok {
			mp.bad([]string{k, field}, "constants.%s: expected a value (string), found %s", field, tomlKind(t[field]))
			continue
		}
		mp.m.Constants[field] = strings.TrimSpace(s)
	}
}

// routes reads the [route."Column"] tables.
func (mp *mappingParser) routes(k string, v any) {
	t, ok := v.(map[string]any)
	if !ok {
		mp.bad([]string{k}, "route must be a table of tables: [route.\"Column\"] with FIELD = \"condition\"")
		return
	}
	for _, col := range sortedKeys(t) {
		tab, ok := t[col].(map[string]any)
		if !ok {
			mp.bad([]string{k, col}, "route.%q must be a table of FIELD = \"condition\"", col)
			continue
		}
		r := Route{Column: col}
		for _, field := range sortedKeys(tab) {
			when, ok := tab[field].(string)
			if !ok || strings.TrimSpace(when) == "" {
				mp.bad([]string{k, col, field}, "route.%q.%s: expected a condition such as \"SETTORE=E\"", col, field)
				continue
			}
			r.Targets = append(r.Targets, RouteTarget{Field: field, When: strings.TrimSpace(when)})
		}
		if len(r.Targets) < 2 {
			mp.bad([]string{k, col}, "route.%q: a route sends a column to one of at least two fields (for one field, use [mapping])", col)
		}
		mp.m.Routes = append(mp.m.Routes, r)
	}
}

// spend reads the [spend] table.
func (mp *mappingParser) spend(k string, v any) {
	m := mp.m
	t, ok := v.(map[string]any)
	if !ok {
		mp.bad([]string{k}, "spend must be a table")
		return
	}
	m.Spend = parseSpend(t, func(key, format string, args ...any) { mp.bad([]string{k, key}, format, args...) })
	if m.Spend == nil {
		return
	}
	switch hasTotal, hasCols := m.Spend.Total != "" || m.Spend.Months != "", len(m.Spend.Columns) > 0; {
	case hasTotal && hasCols:
		mp.bad([]string{k}, "spend: give either total and months, or columns, not both")
	case !hasTotal && !hasCols:
		mp.bad([]string{k}, "spend: give total and months (the spend of the months with supply, and how many they are), or columns (one per month)")
	case hasTotal && (m.Spend.Total == "" || m.Spend.Months == ""):
		mp.bad([]string{k}, "spend: total and months go together (the spend, and the number of months with supply it covers)")
	case hasCols && m.Spend.Order == SpendCalendar && len(m.Spend.Columns) != 12:
		mp.bad([]string{k, "columns"}, "spend: order = \"calendar\" needs 12 columns, January to December; found %d", len(m.Spend.Columns))
	case hasCols && len(m.Spend.Columns) > 24:
		mp.bad([]string{k, "columns"}, "spend: at most 24 monthly columns; found %d", len(m.Spend.Columns))
	}
}

func parseSpend(t map[string]any, bad func(key, format string, args ...any)) *SpendShape {
	s := &SpendShape{}
	str := func(key string, dst *string) {
		v, ok := t[key].(string)
		if !ok {
			bad(key, "spend.%s: expected a string, found %s", key, tomlKind(t[key]))
			return
		}
		*dst = strings.TrimSpace(v)
	}
	for _, key := range sortedKeys(t) {
		switch key {
		case "field":
			str(key, &s.Field)
		case "switch":
			str(key, &s.Switch)
		case "total":
			str(key, &s.Total)
		case "months":
			str(key, &s.Months)
		case "order":
			str(key, &s.Order)
			switch s.Order {
			case SpendOldestFirst, SpendNewestFirst, SpendCalendar:
			default:
				bad(key, "spend.order %q: must be %s, %s or %s", s.Order, SpendOldestFirst, SpendNewestFirst, SpendCalendar)
			}
		case "columns":
			arr, ok := t[key].([]any)
			if !ok {
				bad(key, "spend.columns: expected a list of column names, found %s", tomlKind(t[key]))
				continue
			}
			for _, c := range arr {
				cs, ok := c.(string)
				if !ok || strings.TrimSpace(cs) == "" {
					bad(key, "spend.columns: every item must be a column name")
					continue
				}
				s.Columns = append(s.Columns, strings.TrimSpace(cs))
			}
		default:
			bad(key, "spend: unknown key %q (keys: field, switch, total, months, columns, order)", key)
		}
	}
	if s.Order == "" {
		s.Order = SpendOldestFirst
	}
	return s
}

func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// valueKey is how a billing value is looked up in a value table: trimmed, repeated
// spaces collapsed, upper case ("pec " and "PEC" are one code).
func valueKey(s string) string {
	return strings.ToUpper(strings.Join(strings.Fields(s), " "))
}

// File returns the name the mapping was read from.
func (m *Mapping) File() string { return m.file }

// Line returns the line of a key of the mapping file (0 when unknown), e.g.
// Line("values", "TIPO_LETTURA", "R") or Line("mapping", "Codice POD"); for a column
// pair it also finds the flat form.
func (m *Mapping) Line(path ...string) int {
	if m == nil || m.lines == nil {
		return 0
	}
	if n := m.lines[strings.Join(path, "\x00")]; n > 0 {
		return n
	}
	if len(path) == 2 && path[0] == "mapping" {
		return m.lines[path[1]]
	}
	for len(path) > 1 { // the nearest enclosing table
		path = path[:len(path)-1]
		if n := m.lines[strings.Join(path, "\x00")]; n > 0 {
			return n
		}
	}
	return 0
}

// LoadMapping reads a mapping file from disk.
func LoadMapping(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	return ParseMapping(path, data)
}

// ColumnsOnly returns a mapping of column pairs alone (an inline [folder.mapping]).
func ColumnsOnly(columns map[string]string) *Mapping {
	if columns == nil {
		return nil
	}
	return &Mapping{Columns: columns}
}

// CheckMapping reports mapping targets that are not fields of the input kind.
func (f *Flow) CheckMapping(m map[string]string) []Finding {
	var fs []Finding
	for h, target := range m {
		if target == "" || target == "-" {
			continue
		}
		if f.fieldIndexFold(target) < 0 {
			fs = append(fs, Finding{Field: h, Rule: "MAPPING", Value: target, Message: "not a field of " + f.Key})
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].Field < fs[j].Field })
	return fs
}

// RuleMapping is the rule of a mapping file that does not fit its input kind.
const RuleMapping = "MAPPING"

// CheckMappingFile checks a whole mapping file against the input kind, as `cmord
// check` and `cmord validate --mapping` do before any file arrives: column targets,
// value tables (field exists, every value of ours passes the field's type), constants
// (field exists, value passes the type, no column gives the field too), routes (target
// fields exist, conditions name fields of the kind, no field given twice) and the
// spend shape. Each finding has the mapping file and the line of the key.
func (f *Flow) CheckMappingFile(m *Mapping) []Finding {
	if m == nil {
		return nil
	}
	var fs []Finding
	add := func(line int, field, value, format string, args ...any) {
		fs = append(fs, Finding{File: m.file, Line: line, Field: field, Rule: RuleMapping, Value: value, Message: fmt.Sprintf(format, args...)})
	}
	vo := valueOpts{decimalComma: m.DecimalComma, lenientPOD: true}
	given := map[int]string{} // field index → what gives it, to refuse a field given twice
	give := func(fi int, by string, line int) {
		if prev, ok := given[fi]; ok {
			add(line, f.Fields[fi].Name, "", "%s is given twice: by %s and by %s", f.Fields[fi].Name, prev, by)
			return
		}
		given[fi] = by
	}
	for _, h := range sortedKeys(m.Columns) {
		target := m.Columns[h]
		if target == "" || target == "-" {
			continue
		}
		fi := f.fieldIndexFold(target)
		if fi < 0 {
			add(m.Line("mapping", h), h, target, "column %q maps to %s, which is not a field of %s", h, target, f.Key)
			continue
		}
		give(fi, fmt.Sprintf("column %q", h), m.Line("mapping", h))
	}
	for _, field := range sortedKeys(m.Values) {
		fi := f.fieldIndexFold(field)
		if fi < 0 {
			add(m.Line("values", field), field, "", "value table for %s, which is not a field of %s", field, f.Key)
			continue
		}
		fd := f.Fields[fi]
		fd.Const = ""
		for _, from := range sortedKeys(m.Values[field]) {
			to := m.Values[field][from]
			if to == "" {
				continue // the billing value means "empty"
			}
			if _, p := fd.normalize(to, vo); p != nil && !p.warning {
				add(m.Line("values", field, from), field, to, "values.%s: %q is not a value of %s: %s", field, to, field, p.msg)
			}
		}
	}
	for _, field := range sortedKeys(m.Constants) {
		fi := f.fieldIndexFold(field)
		if fi < 0 {
			add(m.Line("constants", field), field, "", "constant for %s, which is not a field of %s", field, f.Key)
			continue
		}
		v := m.Constants[field]
		if t := m.Values[f.Fields[fi].Name]; t != nil {
			if w, ok := t[valueKey(v)]; ok {
				v = w
			}
		}
		if v != "" {
			fd := f.Fields[fi]
			if _, p := fd.normalize(v, vo); p != nil && !p.warning {
				add(m.Line("constants", field), field, v, "constants.%s = %q fails the field's type: %s", field, v, p.msg)
			}
		}
		give(fi, "constants."+field, m.Line("constants", field))
	}
	for _, r := range m.Routes {
		if t, ok := m.Columns[r.Column]; ok && t != "-" && t != "" {
			add(m.Line("route", r.Column), r.Column, "", "column %q is both in [mapping] and routed", r.Column)
		}
		for _, t := range r.Targets {
			line := m.Line("route", r.Column, t.Field)
			fi := f.fieldIndexFold(t.Field)
			if fi < 0 {
				add(line, t.Field, "", "route of column %q goes to %s, which is not a field of %s", r.Column, t.Field, f.Key)
				continue
			}
			if _, err := parseCondition(t.When, f.layout.index); err != nil {
				add(line, t.Field, t.When, "route of column %q: %v", r.Column, err)
			}
			give(fi, fmt.Sprintf("the route of column %q", r.Column), line)
		}
	}
	if m.Spend != nil {
		f.checkSpendMapping(m, add, give)
	}
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Line < fs[j].Line })
	return fs
}

// checkSpendMapping checks a mapping's [spend] against the flow: the month spend field
// it fills, the date the months are placed before, and its columns.
func (f *Flow) checkSpendMapping(m *Mapping, add func(line int, field, value, format string, args ...any), give func(fi int, by string, line int)) {
	s := m.Spend
	fi := -1
	if s.Field != "" {
		if fi = f.fieldIndexFold(s.Field); fi < 0 {
			add(m.Line("spend", "field"), s.Field, "", "spend.field %s is not a field of %s", s.Field, f.Key)
		}
	} else {
		for i := range f.Fields {
			if f.Fields[i].Type == TypeMonthAmounts {
				fi = i
			}
		}
		if fi < 0 {
			add(m.Line("spend"), "", "", "[spend] given, but %s has no 12-month spend field", f.Key)
		}
	}
	if fi >= 0 && f.Fields[fi].Type != TypeMonthAmounts {
		add(m.Line("spend", "field"), s.Field, "", "spend.field %s is not a month spend list (type %s)", s.Field, f.Fields[fi].Type)
	} else if fi >= 0 {
		give(fi, "[spend]", m.Line("spend"))
	}
	if si := f.fieldIndexFold(s.switchField()); si < 0 || f.Fields[si].Type != TypeDate {
		add(m.Line("spend", "switch"), s.switchField(), "", "spend: the months are placed before the date field %s, which %s does not have", s.switchField(), f.Key)
	}
	spendCols := append([]string{s.Total, s.Months}, s.Columns...)
	seen := map[string]bool{}
	for _, c := range spendCols {
		if c == "" {
			continue
		}
		if seen[normHeader(c)] {
			add(m.Line("spend"), c, "", "spend: column %q named twice", c)
		}
		seen[normHeader(c)] = true
		for h, t := range m.Columns {
			if normHeader(h) == normHeader(c) && t != "-" && t != "" {
				add(m.Line("spend"), c, "", "spend: column %q is also in [mapping] (to %s)", c, t)
			}
		}
	}
}

// scanTOMLLines maps the key paths of a TOML file to their lines: table headers
// ([values.TIPO_LETTURA], [route."Punto"]) and key = value lines under them. It
// reads the simple TOML a mapping file is (no inline tables across lines).
func scanTOMLLines(data []byte) map[string]int {
	lines := map[string]int{}
	var table []string
	inArray := 0
	for n, ln := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(ln)
		if inArray > 0 {
			inArray += strings.Count(t, "[") - strings.Count(t, "]")
			continue
		}
		if t == "" || t[0] == '#' {
			continue
		}
		if t[0] == '[' {
			inner := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(t, "["), "["), "]")
			if i := strings.LastIndex(inner, "]"); i >= 0 {
				inner = inner[:i]
			}
			table = splitTOMLKey(inner)
			for k := 1; k <= len(table); k++ { // [values.X] also opens "values"
				if _, ok := lines[strings.Join(table[:k], "\x00")]; !ok {
					lines[strings.Join(table[:k], "\x00")] = n + 1
				}
			}
			continue
		}
		eq := tomlKeyEnd(t)
		if eq < 0 {
			continue
		}
		key := append(append([]string{}, table...), splitTOMLKey(t[:eq])...)
		lines[strings.Join(key, "\x00")] = n + 1
		rest := strings.TrimSpace(t[eq+1:])
		if strings.HasPrefix(rest, "[") {
			inArray = strings.Count(rest, "[") - strings.Count(rest, "]")
		}
	}
	return lines
}

// tomlKeyEnd returns the index of the '=' after a key (outside quotes), or -1.
func tomlKeyEnd(s string) int {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '=':
			return i
		}
	}
	return -1
}

// splitTOMLKey splits a dotted key, unquoting its quoted parts.
func splitTOMLKey(s string) []string {
	var out []string
	var cur strings.Builder
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			} else if c == q {
				q = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			q = c
		case c == '.':
			out = append(out, cur.String())
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}

// monthsCount parses the number of months with supply of the spend's total shape.
func monthsCount(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 24 {
		return 0, fmt.Errorf("%q is not a number of months from 1 to 24", s)
	}
	return n, nil
}
