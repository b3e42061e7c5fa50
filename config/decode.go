package config

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// decoder walks the generic TOML tree (map[string]any) so that a value of the wrong
// type is one more Problem instead of the end of decoding, and records which keys
// each table knows so that the rest are reported as unknown.
type decoder struct {
	file  string
	dir   string // relative paths resolve against this
	lines keyLines
	probs []Problem
	warns []Problem

	alertsToDefaulted bool
}

type table struct {
	d     *decoder
	path  []string // resolved parts ("folder[1]", "mapping")
	m     map[string]any
	known []string
	line  int
}

func (d *decoder) root(m map[string]any) *table { return &table{d: d, m: m} }

func (d *decoder) add(path []string, rule, format string, args ...any) {
	d.probs = append(d.probs, Problem{File: d.file, Line: d.lines.line(path), Key: displayKey(path), Rule: rule, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) warn(path []string, rule, format string, args ...any) {
	d.warns = append(d.warns, Problem{File: d.file, Line: d.lines.line(path), Key: displayKey(path), Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// displayKey renders path parts for people: folder[1].mapping."Codice POD".
func displayKey(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		base, idx := p, ""
		if j := strings.LastIndexByte(p, '['); j > 0 && strings.HasSuffix(p, "]") {
			base, idx = p[:j], p[j:]
		}
		if base == "" || strings.IndexFunc(base, func(r rune) bool { return r > 127 || !isBareKeyChar(byte(r)) }) >= 0 {
			base = strconv.Quote(base)
		}
		parts[i] = base + idx
	}
	return strings.Join(parts, ".")
}

func (t *table) sub(path ...string) []string {
	return append(append([]string{}, t.path...), path...)
}

// errorf reports a problem with key k of this table.
func (t *table) errorf(k, rule, format string, args ...any) {
	t.d.add(t.sub(k), rule, format, args...)
}

func (t *table) warnf(k, rule, format string, args ...any) {
	t.d.warn(t.sub(k), rule, format, args...)
}

// get marks k as known and returns its value.
func (t *table) get(k string) (any, bool) {
	t.known = append(t.known, k)
	v, ok := t.m[k]
	return v, ok
}

func (t *table) has(k string) bool { _, ok := t.m[k]; return ok }

// finish reports every key of the table that nothing asked for.
func (t *table) finish() {
	var unknown []string
	for k := range t.m {
		if !contains(t.known, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		p := t.sub(k)
		msg := fmt.Sprintf("unknown key %q", displayKey(p))
		if s := suggest(k, t.known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		t.d.probs = append(t.d.probs, Problem{File: t.d.file, Line: t.d.lines.line(p), Key: displayKey(p), Rule: RuleUnknownKey, Message: msg})
	}
}

// suggest returns the known key closest to k, if it is close enough to be a typo.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD && d < len(k) {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// table returns the sub-table k (an empty one when absent).
func (t *table) table(k string) *table {
	st := &table{d: t.d, path: t.sub(k), m: map[string]any{}}
	v, ok := t.get(k)
	if !ok {
		return st
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		t.errorf(k, "type", "expected a table ([%s]), found %s", displayKey(t.sub(k)), tomlType(v))
		return st
	}
	st.m = m
	return st
}

// array returns the elements of the array of tables k ([[k]]).
func (t *table) array(k string) []*table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	var maps []map[string]any
	switch v := v.(type) {
	case []map[string]any:
		maps = v
	case []any:
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				t.errorf(k, "type", "expected an array of tables ([[%s]]), found an array of %s", k, tomlType(e))
				return nil
			}
			maps = append(maps, m)
		}
	default:
		t.errorf(k, "type", "expected an array of tables ([[%s]]), found %s", k, tomlType(v))
		return nil
	}
	out := make([]*table, len(maps))
	for i, m := range maps {
		p := t.sub(k + "[" + strconv.Itoa(i) + "]")
		out[i] = &table{d: t.d, path: p, m: m}
	}
	return out
}

func tomlType(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the float %v", v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case map[string]any:
		return "a table"
	case []map[string]any, []any:
		return "an array"
	case time.Time:
		return "a date-time"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// str reads a string; ok is false when absent or of the wrong type.
func (t *table) str(k string, dst *string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	s, isStr := v.(string)
	if !isStr {
		t.errorf(k, "type", "expected a string, found %s", tomlType(v))
		return false
	}
	*dst = s
	return true
}

// required reads a non-empty string.
func (t *table) required(k string, dst *string, what string) bool {
	if !t.str(k, dst) {
		if !t.has(k) {
			t.d.add(t.sub(k), "required", "missing: %s", what)
		}
		return false
	}
	if strings.TrimSpace(*dst) == "" {
		t.errorf(k, "required", "must not be empty: %s", what)
		return false
	}
	return true
}

func (t *table) enum(k string, dst *string, allowed ...string) {
	var s string
	if !t.str(k, &s) {
		return
	}
	if s == "" && *dst == "" {
		return // an optional choice left empty
	}
	if !contains(allowed, s) {
		t.errorf(k, "enum", "%q is not allowed; expected one of %s", s, quoteList(allowed))
		return
	}
	*dst = s
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func (t *table) boolean(k string, dst *bool) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	b, isBool := v.(bool)
	if !isBool {
		t.errorf(k, "type", "expected true or false, found %s", tomlType(v))
		return
	}
	*dst = b
}

func (t *table) integer(k string, dst *int, lo, hi int) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	n, isInt := v.(int64)
	if !isInt {
		t.errorf(k, "type", "expected an integer, found %s", tomlType(v))
		return
	}
	if n < int64(lo) || n > int64(hi) {
		t.errorf(k, "range", "%d is out of range; expected %d to %d", n, lo, hi)
		return
	}
	*dst = int(n)
}

func (t *table) port(k string, dst *int) { t.integer(k, dst, 1, 65535) }

func (t *table) duration(k string, dst *time.Duration, lo, hi time.Duration) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		t.errorf(k, "duration", "expected a duration string like \"10s\", \"5m\" or \"1h30m\", found %s", tomlType(v))
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.errorf(k, "duration", "%q is not a duration; expected a value like \"10s\", \"5m\" or \"1h30m\"", s)
		return
	}
	if d < lo || d > hi {
		t.errorf(k, "range", "%s is out of range; expected %s to %s", s, fmtDur(lo), fmtDur(hi))
		return
	}
	*dst = d
}

// size reads a size, a number of bytes or a string like "512MiB", in [lo, hi].
func (t *table) size(k string, dst *int64, lo, hi int64) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	var n int64
	switch v := v.(type) {
	case int64:
		n = v
	case string:
		var err error
		if n, err = parseSize(v); err != nil {
			t.errorf(k, "size", "%v", err)
			return false
		}
	default:
		t.errorf(k, "size", "expected a size like 1048576 or \"512MiB\", found %s", tomlType(v))
		return false
	}
	if n < lo || n > hi {
		// As written: "2GiB", not 2147483648 bytes, for a value given with its unit.
		shown := FormatSize(n)
		if shown == strconv.FormatInt(n, 10) {
			shown += " bytes"
		}
		t.errorf(k, "range", "%s is out of range; expected %s to %s", shown, FormatSize(lo), FormatSize(hi))
		return false
	}
	*dst = n
	return true
}

// FormatSize writes a size as config accepts it: "512MiB" when exact, else bytes.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.s)
		}
	}
	return fmt.Sprint(n)
}

// fmtDur prints a duration without the trailing zero units of time.Duration.String.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func (t *table) stringList(k string, dst *[]string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	arr, isArr := v.([]any)
	if !isArr {
		t.errorf(k, "type", "expected an array of strings, found %s", tomlType(v))
		return false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			t.errorf(k, "type", "element %d: expected a string, found %s", i, tomlType(e))
			return false
		}
		out = append(out, s)
	}
	*dst = out
	return true
}

func (t *table) intList(k string, dst *[]int, lo, hi int) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	arr, isArr := v.([]any)
	if !isArr {
		t.errorf(k, "type", "expected an array of integers, found %s", tomlType(v))
		return
	}
	out := make([]int, 0, len(arr))
	for i, e := range arr {
		n, isInt := e.(int64)
		if !isInt {
			t.errorf(k, "type", "element %d: expected an integer, found %s", i, tomlType(e))
			return
		}
		if n < int64(lo) || n > int64(hi) {
			t.errorf(k, "range", "element %d: %d is out of range; expected %d to %d", i, n, lo, hi)
			return
		}
		out = append(out, int(n))
	}
	*dst = out
}

// subset reads a list whose elements must be distinct members of allowed.
func (t *table) subset(k string, dst *[]string, allowed ...string) {
	var list []string
	if !t.stringList(k, &list) {
		return
	}
	seen := map[string]bool{}
	for _, s := range list {
		if !contains(allowed, s) {
			t.errorf(k, "enum", "%q is not allowed; expected any of %s", s, quoteList(allowed))
			return
		}
		if seen[s] {
			t.errorf(k, "duplicate", "%q is listed twice", s)
			return
		}
		seen[s] = true
	}
	*dst = list
}

// stringMap reads a table of string values.
func (t *table) stringMap(k string) map[string]string {
	st := t.table(k)
	if len(st.m) == 0 {
		return nil
	}
	out := make(map[string]string, len(st.m))
	for key, v := range st.m {
		st.known = append(st.known, key)
		s, ok := v.(string)
		if !ok {
			st.errorf(key, "type", "expected a string, found %s", tomlType(v))
			continue
		}
		out[key] = s
	}
	return out
}

// path reads a filesystem path and resolves it against the config file's directory.
func (t *table) filePath(k string, dst *string) bool {
	var s string
	if !t.str(k, &s) {
		return false
	}
	if s == "" {
		*dst = "" // unset
		return true
	}
	if strings.ContainsRune(s, 0) {
		t.errorf(k, "path", "contains a NUL byte")
		return false
	}
	if strings.HasPrefix(s, "~") {
		t.errorf(k, "path", "%q: \"~\" is not expanded; write the absolute path", s)
		return false
	}
	*dst = t.d.abs(s)
	return true
}

// requiredPath reads a path that must be present and not empty.
func (t *table) requiredPath(k string, dst *string, what string) {
	if !t.has(k) {
		t.errorf(k, "required", "missing: %s", what)
	}
	if t.filePath(k, dst) && *dst == "" {
		t.errorf(k, "required", "must not be empty: %s", what)
	}
}

func (d *decoder) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.dir, p)
}
