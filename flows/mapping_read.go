package flows

import (
	"fmt"
	"sort"
	"strings"
)

// rowMapping is a mapping file resolved against one file's header: what the reader does
// to each row between splitting it and checking it.
type rowMapping struct {
	m      *Mapping
	tables []map[string]string // per field: value table (nil: none)
	hints  map[string]string   // field label → the billing values its table knows
	consts []fieldValue
	routes []routeRun
	spend  *spendRun
}

type fieldValue struct {
	fi int
	v  string
}

type routeRun struct {
	col     int // file column
	name    string
	targets []routeTargetRun
}

type routeTargetRun struct {
	fi   int
	when string
	cond *condition
}

type spendRun struct {
	fi, switchFi int
	shape        string
	total        int // file columns; -1 when absent
	months       int
	cols         []int
	names        []string // header of each monthly column
	order        string
	totalName    string
	monthsName   string
	label        string // of the spend field
	// cache maps the cells and switch date of a row to the list they give: billing
	// repeats the spend on every row of a customer. Bounded: emptied when full.
	cache map[string]string
	key   []byte
}

const spendCacheMax = 4096

// Rules of the findings of a mapping applied to a row.
const (
	RuleRoute = "MAPPING-ROUTE" // no route (or more than one) of a routed column applies
	RuleSpend = "MAPPING-SPEND" // the spend's total, months or monthly columns cannot be read
)

// specialColumns returns the headers (normalised) a mapping reads other than through
// [mapping]: routed columns and spend columns.
func (m *Mapping) specialColumns() map[string]bool {
	out := map[string]bool{}
	if m == nil {
		return out
	}
	for _, r := range m.Routes {
		out[normHeader(r.Column)] = true
	}
	if s := m.Spend; s != nil {
		for _, c := range append([]string{s.Total, s.Months}, s.Columns...) {
			if c != "" {
				out[normHeader(c)] = true
			}
		}
	}
	return out
}

// resolveMapping prepares the mapping file's rules for a file whose header columns are
// cols (colField already set). It reports what the header lacks.
func (r *CSVReader) resolveMapping(cols []string, seenField []int) {
	m := r.opt.MappingFile
	if m == nil || (len(m.Values) == 0 && len(m.Constants) == 0 && len(m.Routes) == 0 && m.Spend == nil) {
		return
	}
	f := r.f
	for _, fd := range f.CheckMappingFile(m) {
		r.headerFindings = append(r.headerFindings, fd)
	}
	if HasErrors(r.headerFindings) {
		return
	}
	colIndex := map[string]int{}
	for i, h := range cols {
		if _, dup := colIndex[normHeader(h)]; !dup {
			colIndex[normHeader(h)] = i
		}
	}
	rm := &rowMapping{m: m, tables: make([]map[string]string, len(f.Fields)), hints: map[string]string{}}
	given := func(fi int, by string) {
		if prev := seenField[fi]; prev >= 0 {
			r.headerFinding(f.Fields[fi].label(), RuleCSVHeader, cols[prev],
				fmt.Sprintf("column %d (%s) gives %s, which the mapping file gives by %s too", prev+1, strings.TrimSpace(cols[prev]), f.Fields[fi].label(), by), false)
			r.colField[prev] = -1
		}
		r.absent[fi] = false
	}
	for field, t := range m.Values {
		fi := f.fieldIndexFold(field)
		rm.tables[fi] = t
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		rm.hints[f.Fields[fi].label()] = strings.Join(keys, ", ")
	}
	for _, field := range sortedKeys(m.Constants) {
		fi := f.fieldIndexFold(field)
		v := m.Constants[field]
		if t := rm.tables[fi]; t != nil {
			if w, ok := t[valueKey(v)]; ok {
				v = w
			}
		}
		given(fi, "constants."+field)
		rm.consts = append(rm.consts, fieldValue{fi, v})
	}
	for _, rt := range m.Routes {
		ci, ok := colIndex[normHeader(rt.Column)]
		if !ok {
			r.headerFinding(rt.Column, RuleCSVHeader, "", fmt.Sprintf("the mapping file routes column %q (line %d), which the file does not have", rt.Column, m.Line("route", rt.Column)), false)
			continue
		}
		run := routeRun{col: ci, name: rt.Column}
		for _, t := range rt.Targets {
			fi := f.fieldIndexFold(t.Field)
			cond, _ := parseCondition(t.When, f.layout.index) // checked by CheckMappingFile
			for _, term := range cond.terms {
				if r.absent[term.field] && seenField[term.field] < 0 && !rm.isConst(term.field) {
					r.headerFinding(rt.Column, RuleCSVHeader, t.When, fmt.Sprintf("the route of column %q depends on %s (%s), which no column of the file gives", rt.Column, term.name, t.When), false)
				}
			}
			given(fi, fmt.Sprintf("the route of column %q", rt.Column))
			run.targets = append(run.targets, routeTargetRun{fi: fi, when: t.When, cond: cond})
		}
		rm.routes = append(rm.routes, run)
	}
	if s := m.Spend; s != nil {
		sr := &spendRun{shape: s.Shape(), order: s.Order, total: -1, months: -1, totalName: s.Total, monthsName: s.Months}
		if s.Field != "" {
			sr.fi = f.fieldIndexFold(s.Field)
		} else {
			for i := range f.Fields {
				if f.Fields[i].Type == TypeMonthAmounts {
					sr.fi = i
				}
			}
		}
		sr.switchFi = f.fieldIndexFold(s.switchField())
		missing := func(c string) {
			r.headerFinding(c, RuleCSVHeader, "", fmt.Sprintf("the mapping file reads the 12-month spend from column %q (line %d), which the file does not have", c, m.Line("spend")), false)
		}
		if sr.shape == SpendShapeTotal {
			if ci, ok := colIndex[normHeader(s.Total)]; ok {
				sr.total = ci
			} else {
				missing(s.Total)
			}
			if ci, ok := colIndex[normHeader(s.Months)]; ok {
				sr.months = ci
			} else {
				missing(s.Months)
			}
		} else {
			for _, c := range s.Columns {
				ci, ok := colIndex[normHeader(c)]
				if !ok {
					missing(c)
					continue
				}
				sr.cols = append(sr.cols, ci)
				sr.names = append(sr.names, c)
			}
		}
		sr.label = f.Fields[sr.fi].label()
		given(sr.fi, "[spend]")
		rm.spend = sr
	}
	r.rm = rm
}

func (rm *rowMapping) isConst(fi int) bool {
	for _, c := range rm.consts {
		if c.fi == fi {
			return true
		}
	}
	return false
}

// apply fills vals from the row's columns as the mapping file says: value tables,
// constants, routes, the spend shape. spendFailed reports that the spend could not be
// built because another field is wrong (so its REQUIRED finding is noise).
func (rm *rowMapping) apply(cols []string, vals []string, f *Flow, o valueOpts, file string, line int, fs []Finding) ([]Finding, bool) {
	for fi, t := range rm.tables {
		if t == nil || vals[fi] == "" && t[""] == "" {
			continue
		}
		if w, ok := t[valueKey(vals[fi])]; ok {
			vals[fi] = w
		}
	}
	for _, c := range rm.consts {
		vals[c.fi] = c.v
	}
	for _, rt := range rm.routes {
		v := ""
		if rt.col < len(cols) {
			v = strings.TrimSpace(cols[rt.col])
		}
		if v == "" {
			continue
		}
		to := -1
		var holds []string
		for _, t := range rt.targets {
			if t.cond.holds(vals) {
				to = t.fi
				holds = append(holds, f.Fields[t.fi].Name)
			}
		}
		switch {
		case len(holds) == 1:
			if t := rm.tables[to]; t != nil {
				if w, ok := t[valueKey(v)]; ok {
					v = w
				}
			}
			vals[to] = v
		case len(holds) == 0:
			fs = append(fs, Finding{File: file, Line: line, Field: rt.name, Rule: RuleRoute, Value: v,
				Message: fmt.Sprintf("no route of this column applies (%s): the value goes to no field", rt.describe(f, vals))})
		default:
			fs = append(fs, Finding{File: file, Line: line, Field: rt.name, Rule: RuleRoute, Value: v,
				Message: fmt.Sprintf("more than one route of this column applies (%s): fix the conditions of the mapping file", strings.Join(holds, ", "))})
		}
	}
	spendFailed := false
	if sr := rm.spend; sr != nil {
		fs, spendFailed = sr.build(cols, vals, f, o, file, line, fs)
	}
	return fs, spendFailed
}

func (rt routeRun) describe(f *Flow, vals []string) string {
	var parts, facts []string
	shown := map[int]bool{}
	for _, t := range rt.targets {
		parts = append(parts, f.Fields[t.fi].Name+" when "+t.when)
		for _, term := range t.cond.terms {
			if !shown[term.field] {
				shown[term.field] = true
				facts = append(facts, fmt.Sprintf("%s is %q", term.name, vals[term.field]))
			}
		}
	}
	return strings.Join(append(parts, facts...), "; ")
}

// build computes the spend list from the export's shape. The months are placed before
// the switch: the last month of supply is the month of the day before it.
func (sr *spendRun) build(cols []string, vals []string, f *Flow, o valueOpts, file string, line int, fs []Finding) ([]Finding, bool) {
	cell := func(i int) string {
		if i >= 0 && i < len(cols) {
			return strings.TrimSpace(cols[i])
		}
		return ""
	}
	bad := func(field, value, format string, args ...any) {
		fs = append(fs, Finding{File: file, Line: line, Field: field, Rule: RuleSpend, Value: value, Message: fmt.Sprintf(format, args...)})
	}
	anyGiven := false
	if sr.shape == SpendShapeTotal {
		anyGiven = cell(sr.total) != "" || cell(sr.months) != ""
	} else {
		for _, c := range sr.cols {
			if cell(c) != "" {
				anyGiven = true
				break
			}
		}
	}
	if !anyGiven {
		return fs, false // REQUIRED says it
	}
	sr.key = append(sr.key[:0], vals[sr.switchFi]...)
	if sr.shape == SpendShapeTotal {
		sr.key = append(append(append(append(sr.key, 0), cell(sr.total)...), 0), cell(sr.months)...)
	} else {
		for _, c := range sr.cols {
			sr.key = append(append(sr.key, 0), cell(c)...)
		}
	}
	if v, ok := sr.cache[string(sr.key)]; ok {
		vals[sr.fi] = v
		return fs, false
	}
	n0 := len(fs)
	defer func() {
		if len(fs) == n0 && vals[sr.fi] != "" {
			if sr.cache == nil || len(sr.cache) >= spendCacheMax {
				sr.cache = make(map[string]string)
			}
			sr.cache[string(sr.key)] = vals[sr.fi]
		}
	}()
	sw, err := ParseDate(vals[sr.switchFi])
	if err != nil {
		// The switch date's own finding says what is wrong; without it the months
		// cannot be placed.
		return fs, true
	}
	last := sw.AddDays(-1).FirstOfMonth()
	var ms []MonthSpend
	if sr.shape == SpendShapeTotal {
		totalS, monthsS := cell(sr.total), cell(sr.months)
		total, err := ParseAmount(totalS, o.decimalComma)
		if err != nil {
			bad(sr.totalName, totalS, "spend total: %v", err)
			return fs, true
		}
		n, err := monthsCount(monthsS)
		if err != nil {
			bad(sr.monthsName, monthsS, "months with supply: %v", err)
			return fs, true
		}
		if total < 0 {
			bad(sr.totalName, totalS, "negative spend total")
			return fs, true
		}
		if int64(total) < int64(n) && total != 0 {
			bad(sr.totalName, totalS, "a total of %s cannot be spread over %d months of supply (under 1 cent a month)", total, n)
			return fs, true
		}
		// The estimate averages the months with supply: n months that add up to the
		// total give exactly total × 4 / n, rounded once. Cents that do not divide go to
		// the most recent months.
		base, rest := int64(total)/int64(n), int64(total)%int64(n)
		for i := 0; i < n; i++ {
			a := base
			if int64(i) >= int64(n)-rest {
				a++
			}
			ms = append(ms, MonthSpend{Month: last.AddMonths(i - (n - 1)), Amount: Amount(a)})
		}
	} else {
		n := len(sr.cols)
		for k, c := range sr.cols {
			v := cell(c)
			if v == "" {
				continue // no supply that month
			}
			a, err := ParseAmount(v, o.decimalComma)
			if err != nil {
				bad(sr.names[k], v, "monthly spend: %v", err)
				continue
			}
			if a < 0 {
				bad(sr.names[k], v, "negative monthly spend")
				continue
			}
			var month Date
			switch sr.order {
			case SpendNewestFirst:
				month = last.AddMonths(-k)
			case SpendCalendar:
				// Column k is month k+1 of the calendar: the latest such month up to
				// the last month of supply.
				month = last.AddMonths(-((int(last.M) - (k + 1) + 12) % 12))
			default:
				month = last.AddMonths(k - (n - 1))
			}
			ms = append(ms, MonthSpend{Month: month, Amount: a})
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].Month.Before(ms[j].Month) })
	}
	if len(ms) > 0 {
		vals[sr.fi] = FormatMonthAmounts(ms)
	}
	return fs, false
}

// explain adds to the findings from index n on what the mapping file knows: a value
// outside a field's type that the field's value table does not translate, and drops
// the REQUIRED of a spend that could not be built because of another field.
func (rm *rowMapping) explain(fs []Finding, n int, spendFailed bool) []Finding {
	out := fs[:n]
	for _, fd := range fs[n:] {
		if spendFailed && fd.Rule == RuleRequired && rm.spend != nil && fd.Field == rm.spend.label {
			continue
		}
		if h, ok := rm.hints[fd.Field]; ok && fd.Rule != RuleRequired && !fd.IsWarning() {
			fd.Message += "; the mapping file's value table for this field translates only: " + h
		}
		out = append(out, fd)
	}
	return out
}
