package flows

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// The flow catalog (SPEC "Flows: a data-driven catalog"). The official layouts of the SI
// flows are not public, so every flow — codes, direction, roles, format, file names,
// ordered fields with their checks, cause tables, the practice-state change it drives —
// is data: a TOML file embedded as the default and replaceable or extendable by
// configuration. Correcting a column, its order or length, or adding a cause code needs
// no code change.

//go:embed catalog_default.toml
var defaultCatalogTOML []byte

// DefaultCatalogName is the name findings use for the embedded catalog.
const DefaultCatalogName = "catalog_default.toml"

// Catalog is the set of flows, billing input kinds, cause tables and practice states.
type Catalog struct {
	Version string                 `toml:"version"`
	Flows   []*Flow                `toml:"flows"`
	Inputs  []*Flow                `toml:"inputs"`
	Causes  map[string]*CauseTable `toml:"causes,omitempty"`
	States  []State                `toml:"states"`

	name string // file the catalog came from, for findings
}

// Flow is one SII flow (or one billing input kind, in Catalog.Inputs).
type Flow struct {
	Key         string   `toml:"key"`                   // "REQ"; for inputs the kind "uscente.morosi"
	Service     string   `toml:"service,omitempty"`     // "SI1"
	Code        string   `toml:"code,omitempty"`        // "0050"
	Placeholder bool     `toml:"placeholder,omitempty"` // service/code not confirmed by a source
	Direction   string   `toml:"direction"`             // "out": we produce it; "in": we consume it
	Roles       []string `toml:"roles,omitempty"`       // "uscente", "entrante"
	Format      string   `toml:"format"`                // "csv" or "xml" (configuration may override)
	// FileName is the pattern of files we produce: {FIELD} (a field of the first
	// record, e.g. {PIVA_UTENTE}), {SERVICE}, {CODE}, {KEY}, {EXT} (the format),
	// {DATE:YYYYMMDD} (any of YYYY MM DD hh mm ss, in Europe/Rome), {SEQ:n} (zero-padded).
	FileName string `toml:"file_name,omitempty"`
	// Match is a regular expression recognising received files of this flow by name.
	Match       string      `toml:"match,omitempty"`
	Description string      `toml:"description,omitempty"`
	Causes      string      `toml:"causes,omitempty"`      // cause table of CauseField
	CauseField  string      `toml:"cause_field,omitempty"` // default "COD_CAUSALE"
	XMLRoot     string      `toml:"xml_root,omitempty"`    // default "FlussoSI"
	XMLRecord   string      `toml:"xml_record,omitempty"`  // default "Richiesta"
	RowGroup    *RowGroup   `toml:"row_group,omitempty"`
	Transition  *Transition `toml:"transition,omitempty"`
	Fields      []Field     `toml:"fields"`

	input   bool // declared in Catalog.Inputs
	line    int  // line of the [[flows]] table in the catalog file
	compErr []Finding
	layout  *Layout
	conds   []*condition // per field, nil when no When
	bounds  []fieldBound // NotAbove / NotBefore, resolved
	match   *regexp.Regexp
	causes  *CauseTable
	cause   int // index of CauseField, -1 if absent
}

// Field is one column (CSV) or element (XML) of a flow. Name is the logical name the
// code reads and sets (IMPORTO_CMOR); Column, when set, is the name the file uses for
// it (header cell, XML element), so a counterpart that spells a column differently
// needs only a column = "..." and never a rename the code would not know about.
type Field struct {
	Name        string   `toml:"name"`
	Column      string   `toml:"column,omitempty"` // name in the file; "" = Name
	Type        string   `toml:"type"`
	Length      int      `toml:"length,omitempty"` // maximum characters, 0 = no limit
	Required    string   `toml:"required"`         // "M" mandatory, "C" conditional (When), "O" optional
	When        string   `toml:"when,omitempty"`   // for C: "VERIFICA_AMM=0", "SETTORE=E", "!PIVA_CLIENTE", "A=1&B"
	Values      []string `toml:"values,omitempty"` // for enum
	Const       string   `toml:"const,omitempty"`  // fixed value, filled in by writers
	Header      bool     `toml:"header,omitempty"` // XML: goes in IdentificativiRichiesta
	Description string   `toml:"description,omitempty"`

	// NotAbove names an amount field of the row this amount may not exceed (the unpaid
	// amount of an invoice is at most its total); NotBefore a date field this date may
	// not precede (the end of a billed period). Checked on billing inputs.
	NotAbove  string `toml:"not_above,omitempty"`
	NotBefore string `toml:"not_before,omitempty"`
	// Signed lets an amount of a billing input be negative (refused by default: an
	// unpaid amount, a payment, a spend below zero is a data error).
	Signed bool `toml:"signed,omitempty"`

	line int
}

// WireName returns the name of the field in files: Column if set, else Name.
func (fd *Field) WireName() string {
	if fd.Column != "" {
		return fd.Column
	}
	return fd.Name
}

// label names the field as a person reading the file sees it: the wire name, followed
// by the logical name in parentheses when they differ ("IMP_CMOR (IMPORTO_CMOR)").
func (fd *Field) label() string {
	if fd.Column == "" || fd.Column == fd.Name {
		return fd.Name
	}
	return fd.Column + " (" + fd.Name + ")"
}

// RowGroup says that several rows make one logical record (REQ, brief §3.4 "CSV shape
// (a)"): rows with equal Key fields belong together, the Repeat fields vary per row
// (one row per invoice, with the header and customer columns repeated). In XML the
// Repeat fields of each row become a child element named Element.
type RowGroup struct {
	Key     []string `toml:"key"`
	Repeat  []string `toml:"repeat"`
	Element string   `toml:"element"`
}

// Transition is the practice-state change a flow drives. With Field empty, every record
// moves a practice from one of From to To. With Field set, the record's value of Field
// picks the target in On (a value not in On changes nothing). Empty From means the
// record creates the practice (entrante notifications).
type Transition struct {
	From  []string          `toml:"from,omitempty"`
	To    string            `toml:"to,omitempty"`
	Field string            `toml:"field,omitempty"`
	On    map[string]string `toml:"on,omitempty"`
}

// CauseTable is one table of cause codes (brief §4).
type CauseTable struct {
	Description string   `toml:"description,omitempty"`
	Include     []string `toml:"include,omitempty"` // other tables whose codes are valid too
	Codes       []Cause  `toml:"codes"`

	line int
	all  map[string]*Cause
}

// Cause is one code of a cause table.
type Cause struct {
	Code        string `toml:"code"`
	Description string `toml:"description"`
	Who         string `toml:"who,omitempty"`
	Placeholder bool   `toml:"placeholder,omitempty"` // proposed code, not an official one
}

// State is one practice state and the states it may move to.
type State struct {
	Name        string   `toml:"name"`
	Role        string   `toml:"role"` // "uscente", "entrante" or "both"
	Terminal    bool     `toml:"terminal,omitempty"`
	To          []string `toml:"to,omitempty"`
	Description string   `toml:"description,omitempty"`

	line int
}

// Layout is the ordered list of field names shared by all records of one flow.
type Layout struct {
	names []string
	index map[string]int
	sig   string
	mor   [numMorFields]int // positions of the uscente.morosi fields (morPositions)
	req   [numReqFields]int // positions of the REQ fields (reqPositions)
}

// NewLayout builds a layout from field names.
func NewLayout(names []string) *Layout {
	l := &Layout{names: names, index: make(map[string]int, len(names))}
	for i, n := range names {
		if _, dup := l.index[n]; !dup {
			l.index[n] = i
		}
	}
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	l.sig = strconv.FormatUint(h.Sum64(), 36)
	l.mor, l.req = morPositions(l.index), reqPositions(l.index)
	return l
}

// Signature identifies the field names and their order: values stored by position
// (a ready request's payload) are read back only under the same signature.
func (l *Layout) Signature() string { return l.sig }

// Names returns the field names in order; do not modify.
func (l *Layout) Names() []string { return l.names }

// Index returns the position of a field, or -1.
func (l *Layout) Index(name string) int {
	if i, ok := l.index[name]; ok {
		return i
	}
	return -1
}

// ---- loading ----

// DefaultCatalog returns a fresh copy of the embedded catalog (callers may modify it).
func DefaultCatalog() *Catalog {
	c, err := ParseCatalog(DefaultCatalogName, defaultCatalogTOML)
	if err != nil {
		panic("flows: embedded catalog: " + err.Error())
	}
	return c
}

// DefaultCatalogTOML returns the embedded catalog text.
func DefaultCatalogTOML() []byte { return bytes.Clone(defaultCatalogTOML) }

// LoadCatalog reads a catalog file. mode "replace" uses it alone; "extend" (also "")
// starts from the default and lets the file's flows, inputs, cause tables and states
// replace the default's of the same key/name and add new ones.
func LoadCatalog(path string, mode string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c, err := ParseCatalog(path, data)
	if err != nil {
		return nil, err
	}
	switch mode {
	case "replace":
		return c, nil
	case "extend", "":
		base := DefaultCatalog()
		base.Extend(c)
		return base, nil
	}
	return nil, fmt.Errorf("catalog %s: mode %q is neither \"replace\" nor \"extend\"", path, mode)
}

// Extend merges ext into c: entries with the same key replace c's, new ones are added.
func (c *Catalog) Extend(ext *Catalog) {
	replace := func(list []*Flow, add []*Flow) []*Flow {
		for _, f := range add {
			done := false
			for i, g := range list {
				if g.Key == f.Key {
					list[i], done = f, true
					break
				}
			}
			if !done {
				list = append(list, f)
			}
		}
		return list
	}
	c.Flows = replace(c.Flows, ext.Flows)
	c.Inputs = replace(c.Inputs, ext.Inputs)
	if c.Causes == nil {
		c.Causes = map[string]*CauseTable{}
	}
	for k, t := range ext.Causes {
		c.Causes[k] = t
	}
	for _, s := range ext.States {
		done := false
		for i := range c.States {
			if c.States[i].Name == s.Name {
				c.States[i], done = s, true
				break
			}
		}
		if !done {
			c.States = append(c.States, s)
		}
	}
	if ext.Version != "" {
		c.Version += "+" + ext.Version
	}
	c.name = c.name + "+" + ext.name
	c.compile()
}

// ParseCatalog decodes a catalog strictly: a syntax error or an unknown key is an error
// naming file and line. Semantic problems are left to Check.
func ParseCatalog(name string, data []byte) (*Catalog, error) {
	c := &Catalog{name: name}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var msgs []string
		for _, k := range und {
			msgs = append(msgs, fmt.Sprintf("%s:%d: unknown key %q", name, keyLine(data, k), k.String()))
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	c.locate(data)
	c.compile()
	return c, nil
}

// keyLine finds, best effort, the line where the last part of key k is set.
func keyLine(data []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	last := regexp.QuoteMeta(k[len(k)-1])
	re := regexp.MustCompile(`^\s*(` + last + `|"` + last + `")\s*=|^\s*\[\[?\s*([\w.]+\.)?` + last + `\s*\]`)
	for i, ln := range strings.Split(string(data), "\n") {
		if re.MatchString(ln) {
			return i + 1
		}
	}
	return 0
}

var tableHeaderRe = regexp.MustCompile(`^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?`)

// locate records the line of each flow, field, state and cause table, counting array
// tables in file order (the decoder fills slices in the same order).
func (c *Catalog) locate(data []byte) {
	var cur *Flow
	fi, ii, si, fldi := 0, 0, 0, 0
	for n, ln := range strings.Split(string(data), "\n") {
		m := tableHeaderRe.FindStringSubmatch(ln)
		if m == nil {
			continue
		}
		line := n + 1
		switch name := m[2]; {
		case name == "flows" && m[1] == "[[":
			if fi < len(c.Flows) {
				cur = c.Flows[fi]
				cur.line = line
			}
			fi, fldi = fi+1, 0
		case name == "inputs" && m[1] == "[[":
			if ii < len(c.Inputs) {
				cur = c.Inputs[ii]
				cur.line = line
			}
			ii, fldi = ii+1, 0
		case (name == "flows.fields" || name == "inputs.fields") && cur != nil:
			if fldi < len(cur.Fields) {
				cur.Fields[fldi].line = line
			}
			fldi++
		case name == "states":
			if si < len(c.States) {
				c.States[si].line = line
			}
			si++
		case strings.HasPrefix(name, "causes."):
			key := strings.TrimPrefix(name, "causes.")
			key = strings.TrimSuffix(key, ".codes")
			key = strings.Trim(key, `"`)
			if t := c.Causes[key]; t != nil && t.line == 0 {
				t.line = line
			}
		}
	}
}

// compile prepares lookups; problems are kept for Check, never panics.
func (c *Catalog) compile() {
	for name, t := range c.Causes {
		if t == nil {
			c.Causes[name] = &CauseTable{}
			continue
		}
		t.all = map[string]*Cause{}
	}
	for _, t := range c.Causes {
		t.collect(c.Causes, t.all, 0)
	}
	for _, f := range c.Flows {
		f.input = false
		f.compile(c)
	}
	for _, f := range c.Inputs {
		f.input = true
		f.compile(c)
	}
}

func (t *CauseTable) collect(all map[string]*CauseTable, into map[string]*Cause, depth int) {
	if depth > 8 {
		return
	}
	for i := range t.Codes {
		k := causeKey(t.Codes[i].Code)
		if _, ok := into[k]; !ok {
			into[k] = &t.Codes[i]
		}
	}
	for _, inc := range t.Include {
		if u := all[inc]; u != nil {
			u.collect(all, into, depth+1)
		}
	}
}

// causeKey compares codes without leading zeros: the SII tables list "5" where the
// field is Alfanumerico(3), and a file may well say "005".
func causeKey(code string) string {
	k := strings.TrimLeft(strings.TrimSpace(code), "0")
	if k == "" && code != "" {
		return "0"
	}
	return strings.ToUpper(k)
}

// Lookup finds a code in the table (and its included tables), ignoring leading zeros.
func (t *CauseTable) Lookup(code string) *Cause {
	if t == nil || t.all == nil {
		return nil
	}
	return t.all[causeKey(code)]
}

func (f *Flow) compile(c *Catalog) {
	f.compErr = nil
	names := make([]string, len(f.Fields))
	for i, fd := range f.Fields {
		names[i] = fd.Name
	}
	f.layout = NewLayout(names)
	f.conds = make([]*condition, len(f.Fields))
	for i, fd := range f.Fields {
		if fd.When == "" {
			continue
		}
		cond, err := parseCondition(fd.When, f.layout.index)
		if err != nil {
			f.compErr = append(f.compErr, c.finding(f, &f.Fields[i], "CATALOG-WHEN", fd.When, err.Error()))
			continue
		}
		f.conds[i] = cond
	}
	f.bounds = nil
	for i, fd := range f.Fields {
		for _, b := range []struct{ name, kind string }{{fd.NotAbove, "not_above"}, {fd.NotBefore, "not_before"}} {
			if b.name == "" {
				continue
			}
			j := f.layout.Index(b.name)
			want := TypeAmount
			if b.kind == "not_before" {
				want = TypeDate
			}
			if j < 0 || fd.Type != want || f.Fields[j].Type != want {
				f.compErr = append(f.compErr, c.finding(f, &f.Fields[i], "CATALOG-BOUND", b.name,
					fmt.Sprintf("%s needs a %s field naming another %s field of the flow", b.kind, want, want)))
				continue
			}
			f.bounds = append(f.bounds, fieldBound{field: i, other: j, date: want == TypeDate})
		}
	}
	f.match = nil
	if f.Match != "" {
		re, err := regexp.Compile(f.Match)
		if err != nil {
			f.compErr = append(f.compErr, c.finding(f, nil, "CATALOG-PATTERN", f.Match, "match: "+err.Error()))
		} else {
			f.match = re
		}
	}
	f.causes = nil
	if f.Causes != "" {
		f.causes = c.Causes[f.Causes]
	}
	f.cause = -1
	if f.Causes != "" {
		f.cause = f.layout.Index(f.causeField())
	}
}

func (f *Flow) causeField() string {
	if f.CauseField != "" {
		return f.CauseField
	}
	return "COD_CAUSALE"
}

// Layout returns the flow's field layout (shared by its records).
func (f *Flow) Layout() *Layout { return f.layout }

// IsInput reports whether the flow is a billing input kind.
func (f *Flow) IsInput() bool { return f.input }

// CauseTable returns the table of the flow's cause field, or nil.
func (f *Flow) CauseTable() *CauseTable { return f.causes }

// Field returns the field named name, or nil.
func (f *Flow) Field(name string) *Field {
	if i := f.layout.Index(name); i >= 0 {
		return &f.Fields[i]
	}
	return nil
}

// HasRole reports whether role (uscente/entrante) uses the flow.
func (f *Flow) HasRole(role string) bool {
	for _, r := range f.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// ID returns "SI1.0050" (or the key for input kinds).
func (f *Flow) ID() string {
	if f.Service == "" {
		return f.Key
	}
	return f.Service + "." + f.Code
}

func (f *Flow) xmlRoot() string {
	if f.XMLRoot != "" {
		return f.XMLRoot
	}
	return "FlussoSI"
}

func (f *Flow) xmlRecord() string {
	if f.XMLRecord != "" {
		return f.XMLRecord
	}
	return "Richiesta"
}

// Target returns the state a record of this flow moves a practice to, if any.
func (t *Transition) Target(r Record) (string, bool) {
	if t == nil {
		return "", false
	}
	if t.Field == "" {
		return t.To, t.To != ""
	}
	to, ok := t.On[r.Get(t.Field)]
	return to, ok && to != ""
}

// ---- lookups ----

// Flow returns the SII flow with the given key, or nil.
func (c *Catalog) Flow(key string) *Flow {
	for _, f := range c.Flows {
		if f.Key == key {
			return f
		}
	}
	return nil
}

// Input returns the billing input kind, or nil.
func (c *Catalog) Input(kind string) *Flow {
	for _, f := range c.Inputs {
		if f.Key == kind {
			return f
		}
	}
	return nil
}

// FlowByCode returns the flow with the given service and code ("SI1", "0050"); codes
// are compared ignoring left padding ("50" = "0050") because some parsers strip it.
func (c *Catalog) FlowByCode(service, code string) *Flow {
	service = strings.ToUpper(strings.TrimSpace(service))
	code = strings.TrimLeft(strings.TrimSpace(code), "0")
	for _, f := range c.Flows {
		if strings.EqualFold(f.Service, service) && strings.TrimLeft(f.Code, "0") == code {
			return f
		}
	}
	return nil
}

// State returns the named state, or nil.
func (c *Catalog) State(name string) *State {
	for i := range c.States {
		if c.States[i].Name == name {
			return &c.States[i]
		}
	}
	return nil
}

// CanTransition reports whether a practice may move from one state to another.
func (c *Catalog) CanTransition(from, to string) bool {
	s := c.State(from)
	if s == nil || c.State(to) == nil {
		return false
	}
	for _, t := range s.To {
		if t == to {
			return true
		}
	}
	return false
}

// Name returns the file the catalog came from.
func (c *Catalog) Name() string { return c.name }

var (
	xmlServiceRe = regexp.MustCompile(`(?i)\bCOD_SERVIZIO\s*=\s*["']([A-Z0-9]{3})["']`)
	xmlFlowRe    = regexp.MustCompile(`(?i)\bCOD_FLUSSO\s*=\s*["']([A-Z0-9]{1,4})["']`)
)

// Identify recognises a received SII file by its name (each flow's Match), or else by
// its content: the COD_SERVIZIO/COD_FLUSSO root attributes of an XML file, or the
// values of those columns in the first data row of a CSV file. head is the beginning of
// the file (a few KB are enough). Inbound flows are preferred over our own outbound
// ones when both would match. It returns nil when nothing matches.
func (c *Catalog) Identify(fileName string, head []byte) *Flow {
	base := fileName
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	for _, dir := range []string{"in", "out"} {
		for _, f := range c.Flows {
			if f.Direction == dir && f.match != nil && f.match.MatchString(base) {
				return f
			}
		}
	}
	head = bytes.TrimPrefix(head, utf8BOM)
	trim := bytes.TrimLeft(head, " \t\r\n")
	svcNames, codeNames := c.codeColumns()
	if bytes.HasPrefix(trim, []byte("<")) {
		s, fl := xmlServiceRe.FindSubmatch(head), xmlFlowRe.FindSubmatch(head)
		if s != nil && fl != nil {
			return c.FlowByCode(string(s[1]), string(fl[1]))
		}
		// A catalog that renames the root attributes (column of COD_SERVIZIO/COD_FLUSSO).
		for i := range svcNames {
			if svcNames[i] == "COD_SERVIZIO" && codeNames[i] == "COD_FLUSSO" {
				continue
			}
			s := attrRe(svcNames[i], 3).FindSubmatch(head)
			fl := attrRe(codeNames[i], 4).FindSubmatch(head)
			if s != nil && fl != nil {
				if f := c.FlowByCode(string(s[1]), string(fl[1])); f != nil {
					return f
				}
			}
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(head))
	var dec lineDecoder
	if !sc.Scan() {
		return nil
	}
	header := splitSimple(string(dec.decode(sc.Bytes())))
	si, fi := 0, 1
	for i, h := range header {
		h = strings.ToUpper(strings.Trim(strings.TrimSpace(h), `"`))
		for k := range svcNames {
			switch h {
			case strings.ToUpper(svcNames[k]):
				si = i
			case strings.ToUpper(codeNames[k]):
				fi = i
			}
		}
	}
	for sc.Scan() {
		row := splitSimple(string(dec.decode(sc.Bytes())))
		if len(row) <= si || len(row) <= fi {
			continue
		}
		return c.FlowByCode(strings.Trim(row[si], `" `), strings.Trim(row[fi], `" `))
	}
	return nil
}

// codeColumns returns the wire names of the COD_SERVIZIO and COD_FLUSSO fields of the
// catalog's SII flows, pairwise, the standard pair first.
func (c *Catalog) codeColumns() (svc, code []string) {
	svc, code = []string{"COD_SERVIZIO"}, []string{"COD_FLUSSO"}
	seen := map[string]bool{"COD_SERVIZIO|COD_FLUSSO": true}
	for _, f := range c.Flows {
		s, k := f.rootAttrs()
		if !seen[s+"|"+k] {
			seen[s+"|"+k] = true
			svc, code = append(svc, s), append(code, k)
		}
	}
	return svc, code
}

// attrRe matches an XML attribute named name with a value of up to n letters/digits.
func attrRe(name string, n int) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`(?i)\b%s\s*=\s*["']([A-Z0-9]{1,%d})["']`, regexp.QuoteMeta(name), n))
}

func splitSimple(line string) []string {
	return strings.Split(strings.TrimRight(line, "\r\n"), ";")
}

// IdentifyHead is how much of a file's beginning Identify needs (and reads).
const IdentifyHead = 8192

// IdentifyReader is Identify on the first IdentifyHead bytes of r (what it can read of
// them: a read error leaves the name and what was read to decide).
func (c *Catalog) IdentifyReader(fileName string, r io.Reader) *Flow {
	head := make([]byte, IdentifyHead)
	n, _ := io.ReadFull(r, head)
	return c.Identify(fileName, head[:n])
}

// HasErrors reports whether any finding is an error (not a warning).
func HasErrors(fs []Finding) bool {
	for _, f := range fs {
		if !f.IsWarning() {
			return true
		}
	}
	return false
}

// WriteTOML writes the catalog as TOML that ParseCatalog reads back to the same catalog
// (`cmord catalog show`).
func (c *Catalog) WriteTOML(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "# cmord flow catalog (effective), from %s\n\n", c.name); err != nil {
		return err
	}
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	return nil
}

// fieldIndexFold finds a field by name ignoring case.
func (f *Flow) fieldIndexFold(name string) int {
	if i := f.layout.Index(name); i >= 0 {
		return i
	}
	for i := range f.Fields {
		if strings.EqualFold(f.Fields[i].Name, strings.TrimSpace(name)) {
			return i
		}
	}
	return -1
}
