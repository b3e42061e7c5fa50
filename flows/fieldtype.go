package flows

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Field types of the catalog. A value is checked against its field's type and, when it
// passes, replaced by its canonical form (amounts "1234.50", dates GG/MM/AAAA,
// identifiers trimmed and upper-cased, flags upper-cased), so that every consumer of a
// Record sees one spelling whatever the file said.
const (
	TypeString       = "string"        // any text (no CR/LF when written)
	TypeAlnum        = "alnum"         // A-Z, a-z, 0-9 only
	TypeInt          = "int"           // digits only (Length = max digits)
	TypeAmount       = "amount"        // decimal, at most 2 decimals; Amount
	TypeDate         = "date"          // GG/MM/AAAA (AAAA-MM-GG accepted)
	TypeTimestamp    = "timestamp"     // GG/MM/AAAA_HH:MM:SS (AAAA-MM-GGTHH:MM:SS accepted)
	TypeFlag01       = "flag01"        // 0 or 1
	TypeFlagSN       = "flagSN"        // S or N (SI/NO accepted on input)
	TypeCF           = "cf"            // codice fiscale, 16 chars or 11 digits
	TypePIVA         = "piva"          // partita IVA, 11 digits ("IT" prefix removed)
	TypeCFOrPIVA     = "cf_or_piva"    // either
	TypePOD          = "pod"           // electricity point
	TypePDR          = "pdr"           // gas point, 14 digits
	TypePODOrPDR     = "pod_or_pdr"    // either, told apart by the "IT" prefix
	TypeCPUtente     = "cp_utente"     // our practice code
	TypeCPGestore    = "cp_gestore"    // the SII's practice code
	TypeEnum         = "enum"          // one of Values (case-insensitive on input)
	TypeMonthAmounts = "month_amounts" // "AAAA-MM:importo,AAAA-MM:importo,…" (12-month spend)
)

var knownTypes = map[string]bool{
	TypeString: true, TypeAlnum: true, TypeInt: true, TypeAmount: true, TypeDate: true,
	TypeTimestamp: true, TypeFlag01: true, TypeFlagSN: true, TypeCF: true, TypePIVA: true,
	TypeCFOrPIVA: true, TypePOD: true, TypePDR: true, TypePODOrPDR: true, TypeCPUtente: true,
	TypeCPGestore: true, TypeEnum: true, TypeMonthAmounts: true,
}

// Rules of the findings produced by the codecs.
const (
	RuleRequired   = "REQUIRED"
	RuleLength     = "LENGTH"
	RuleConst      = "CONST"
	RuleEnum       = "ENUM"
	RuleCause      = "CAUSE"
	RuleString     = "TYPE-STRING"
	RuleAlnum      = "TYPE-ALNUM"
	RuleInt        = "TYPE-INT"
	RuleAmount     = "TYPE-AMOUNT"
	RuleDate       = "TYPE-DATE"
	RuleTimestamp  = "TYPE-TIMESTAMP"
	RuleFlag       = "TYPE-FLAG"
	RuleMonths     = "TYPE-MONTHS"
	RuleIDCPUtente = "ID-CP-UTENTE"
	RuleCSVHeader  = "CSV-HEADER"
	RuleCSVColumns = "CSV-COLUMNS"
	RuleCSVColumn  = "CSV-COLUMN"
	RuleCSVQuote   = "CSV-QUOTE"
	RuleCSVLine    = "CSV-LINE"
	RuleXMLSyntax  = "XML-SYNTAX"
	RuleXMLRoot    = "XML-ROOT"
	RuleXMLElement = "XML-ELEMENT"
)

// valueOpts are the reading options that change how a value is understood.
type valueOpts struct {
	decimalComma bool // accept ',' as the decimal separator (billing extracts)
	lenientPOD   bool // accept a 15th POD character / letters, with a warning
}

// fieldProblem is a finding before it knows its file and line.
type fieldProblem struct {
	rule, msg string
	warning   bool
}

// normalize checks v (already trimmed, not empty) against the field and returns its
// canonical form. A warning problem still returns the value.
func (fd *Field) normalize(v string, o valueOpts) (string, *fieldProblem) {
	bad := func(rule, format string, args ...any) (string, *fieldProblem) {
		return v, &fieldProblem{rule: rule, msg: fmt.Sprintf(format, args...)}
	}
	var warn *fieldProblem
	switch fd.Type {
	case TypeString, "":
		if !utf8.ValidString(v) {
			return bad(RuleString, "not valid text")
		}
	case TypeAlnum:
		for i := 0; i < len(v); i++ {
			c := v[i]
			if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
				return bad(RuleAlnum, "only letters and digits are allowed, found %q", c)
			}
		}
	case TypeInt:
		if !allDigits(v) {
			return bad(RuleInt, "not a whole number of digits")
		}
	case TypeAmount:
		if !isCanonicalAmount(v) { // the fast path keeps "123.45" as it is
			a, err := ParseAmount(v, o.decimalComma)
			if err != nil {
				return bad(RuleAmount, "%v", err)
			}
			var buf [24]byte
			v = string(appendAmount(buf[:0], a))
		}
	case TypeDate:
		if !isCanonicalDate(v) { // the fast path keeps a valid GG/MM/AAAA as it is
			d, err := ParseDate(v)
			if err != nil {
				return bad(RuleDate, "%v", err)
			}
			v = d.String()
		}
	case TypeTimestamp:
		t, ok := parseTimestamp(v)
		if !ok {
			return bad(RuleTimestamp, "not a timestamp GG/MM/AAAA_HH:MM:SS")
		}
		v = t
	case TypeFlag01:
		if v != "0" && v != "1" {
			return bad(RuleFlag, "must be 0 or 1")
		}
	case TypeFlagSN:
		switch strings.ToUpper(v) {
		case "S", "SI", "SÌ":
			v = "S"
		case "N", "NO":
			v = "N"
		default:
			return bad(RuleFlag, "must be S or N")
		}
	case TypeCF, TypePIVA, TypeCFOrPIVA, TypePOD, TypePDR, TypePODOrPDR, TypeCPUtente, TypeCPGestore:
		var p *fieldProblem
		if v, warn, p = normalizeIdentValue(fd.Type, v, o); p != nil {
			return v, p
		}
	case TypeEnum:
		found := false
		for _, e := range fd.Values {
			if strings.EqualFold(e, v) {
				v, found = e, true
				break
			}
		}
		if !found {
			return bad(RuleEnum, "must be one of %s", strings.Join(fd.Values, ", "))
		}
	case TypeMonthAmounts:
		ms, err := ParseMonthAmounts(v, o.decimalComma)
		if err != nil {
			return bad(RuleMonths, "%v", err)
		}
		var buf [24 * 24]byte
		if b := appendMonthAmounts(buf[:0], ms); string(b) != v { // canonical already: kept as it is
			v = string(b)
		}
	default:
		return bad("CATALOG-TYPE", "unknown field type %q", fd.Type)
	}
	if fd.Const != "" && v != fd.Const {
		return bad(RuleConst, "must be %q", fd.Const)
	}
	if fd.Length > 0 {
		n := len(v)
		if n > fd.Length { // only count runes when the bytes already exceed the limit
			n = utf8.RuneCountInString(v)
		}
		if n > fd.Length {
			return bad(RuleLength, "%d characters, at most %d allowed", n, fd.Length)
		}
	}
	return v, warn
}

// normalizeIdentValue is normalize for the identifier types (codice fiscale, partita
// IVA, POD, PDR, CP_UTENTE, CP_GESTORE): the canonical value and a warning, or v as
// given and the problem.
func normalizeIdentValue(typ, v string, o valueOpts) (string, *fieldProblem, *fieldProblem) {
	bad := func(rule, format string, args ...any) *fieldProblem {
		return &fieldProblem{rule: rule, msg: fmt.Sprintf(format, args...)}
	}
	var warn *fieldProblem
	switch typ {
	case TypeCF:
		if err := ValidateCF(v); err != nil {
			// The codice fiscale of a company is its partita IVA: billing often
			// writes it with the "IT" prefix of the VAT number (docs/inputs.md).
			if p := NormalizePIVA(v); len(p) == 11 && p != normalizeIdent(v) && ValidatePIVA(p) == nil {
				v = p
				break
			}
			return v, nil, bad(RuleIDCF, "%v", err)
		}
		v = canonicalIdent(v, NormalizeCF)
	case TypePIVA:
		if err := ValidatePIVA(v); err != nil {
			return v, nil, bad(RuleIDPIVA, "%v", err)
		}
		v = canonicalIdent(v, NormalizePIVA)
	case TypeCFOrPIVA:
		if errCF := ValidateCF(v); errCF == nil {
			v = NormalizeCF(v)
		} else if errP := ValidatePIVA(v); errP == nil {
			v = NormalizePIVA(v)
		} else {
			return v, nil, bad(RuleIDCF, "neither a codice fiscale (%v) nor a partita IVA (%v)", errCF, errP)
		}
	case TypePOD:
		w, err := ValidatePOD(v, !o.lenientPOD)
		if err != nil {
			return v, nil, bad(RuleIDPOD, "%v", err)
		}
		v = canonicalIdent(v, NormalizePOD)
		if w != "" {
			warn = &fieldProblem{rule: RuleIDPOD, msg: w, warning: true}
		}
	case TypePDR:
		if err := ValidatePDR(v); err != nil {
			return v, nil, bad(RuleIDPDR, "%v", err)
		}
		v = NormalizePDR(v)
	case TypePODOrPDR:
		if len(v) >= 2 && strings.EqualFold(v[:2], "IT") {
			w, err := ValidatePOD(v, !o.lenientPOD)
			if err != nil {
				return v, nil, bad(RuleIDPOD, "%v", err)
			}
			v = NormalizePOD(v)
			if w != "" {
				warn = &fieldProblem{rule: RuleIDPOD, msg: w, warning: true}
			}
		} else {
			if err := ValidatePDR(v); err != nil {
				return v, nil, bad(RuleIDPDR, "%v", err)
			}
			v = NormalizePDR(v)
		}
	case TypeCPUtente:
		if err := ValidateCPUtente(v); err != nil {
			return v, nil, bad(RuleIDCPUtente, "%v", err)
		}
	case TypeCPGestore:
		if err := ValidateCPGestore(v, false); err != nil {
			return v, nil, bad(RuleIDCPGest, "%v", err)
		}
	}
	return v, warn, nil
}

// isCanonicalAmount reports whether v is already "digits.dd" (optionally negative),
// the form Amount.String writes, so that the hot path needs no parse and no allocation.
func isCanonicalAmount(v string) bool {
	n := len(v)
	if n < 4 || v[n-3] != '.' || !allDigits(v[n-2:]) {
		return false
	}
	ip := v[:n-3]
	if ip[0] == '-' {
		ip = ip[1:]
	}
	return ip != "" && len(ip) <= 15 && allDigits(ip) && (len(ip) == 1 || ip[0] != '0') && v != "-0.00"
}

// isCanonicalDate reports whether v is a valid GG/MM/AAAA date, without fmt.
func isCanonicalDate(v string) bool {
	if len(v) != 10 || v[2] != '/' || v[5] != '/' || !allDigits(v[0:2]) || !allDigits(v[3:5]) || !allDigits(v[6:10]) {
		return false
	}
	d := int(v[0]-'0')*10 + int(v[1]-'0')
	m := int(v[3]-'0')*10 + int(v[4]-'0')
	y := int(v[6]-'0')*1000 + int(v[7]-'0')*100 + int(v[8]-'0')*10 + int(v[9]-'0')
	return m >= 1 && m <= 12 && y >= 1900 && y <= 2999 && d >= 1 && d <= DaysIn(y, time.Month(m))
}

// canonicalIdent returns v itself when normalising would not change it (no allocation).
func canonicalIdent(v string, norm func(string) string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 'a' && c <= 'z' || c >= 0x80 {
			return norm(v)
		}
	}
	if len(v) > 2 && v[0] == 'I' && v[1] == 'T' {
		return norm(v) // a P.IVA may lose its "IT" prefix
	}
	return v
}

// parseTimestamp reads GG/MM/AAAA_HH:MM:SS (SII CSV) or AAAA-MM-GGTHH:MM:SS (XML) and
// returns the SII CSV form.
func parseTimestamp(s string) (string, bool) {
	if len(s) != 19 {
		return "", false
	}
	d, err := ParseDate(s[:10])
	if err != nil || (s[10] != '_' && s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':' {
		return "", false
	}
	hh, mm, ss := s[11:13], s[14:16], s[17:19]
	if !allDigits(hh) || !allDigits(mm) || !allDigits(ss) || hh > "23" || mm > "59" || ss > "59" {
		return "", false
	}
	return d.String() + "_" + hh + ":" + mm + ":" + ss, true
}

// timestampISO turns a canonical timestamp into the XML form AAAA-MM-GGTHH:MM:SS.
func timestampISO(s string) string {
	if len(s) != 19 {
		return s
	}
	return s[6:10] + "-" + s[3:5] + "-" + s[0:2] + "T" + s[11:]
}

// ParseMonthAmounts reads the 12-month spend list of uscente.morosi:
// "AAAA-MM:importo,AAAA-MM:importo,…" (e.g. "2024-03:85.20,2024-04:91.00"). An item
// starts at "AAAA-MM:", so with decimalComma the amounts may use ',' as well
// ("2024-03:85,20,2024-04:91,00" is read unambiguously). Months must not repeat; at
// most 24 items.
func ParseMonthAmounts(s string, decimalComma bool) ([]MonthSpend, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var startsBuf [25]int
	starts := startsBuf[:0]
	for i := 0; i+8 <= len(s); i++ {
		if (i == 0 || s[i-1] == ',') && isMonthTag(s[i:i+8]) {
			starts = append(starts, i)
		}
	}
	if len(starts) == 0 || starts[0] != 0 {
		return nil, fmt.Errorf("spend list %q must be AAAA-MM:importo items separated by ','", s)
	}
	if len(starts) > 24 {
		return nil, fmt.Errorf("spend list has %d months, at most 24", len(starts))
	}
	out := make([]MonthSpend, 0, len(starts))
	for k, st := range starts {
		end := len(s)
		if k+1 < len(starts) {
			end = starts[k+1] - 1 // the ',' before the next item
		}
		item := strings.TrimSpace(s[st:end])
		y := int(item[0]-'0')*1000 + int(item[1]-'0')*100 + int(item[2]-'0')*10 + int(item[3]-'0')
		m := int(item[5]-'0')*10 + int(item[6]-'0')
		if m < 1 || m > 12 || y < 1900 || y > 2999 {
			return nil, fmt.Errorf("month %q does not exist", item[:7])
		}
		a, err := ParseAmount(item[8:], decimalComma)
		if err != nil {
			return nil, fmt.Errorf("month %s: %w", item[:7], err)
		}
		month := Date{y, time.Month(m), 1}
		for _, prev := range out {
			if prev.Month == month {
				return nil, fmt.Errorf("month %s appears twice", item[:7])
			}
		}
		out = append(out, MonthSpend{Month: month, Amount: a})
	}
	return out, nil
}

// appendAmount appends Amount.String() without fmt.
func appendAmount(b []byte, a Amount) []byte {
	v := int64(a)
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/100, 10)
	return append(b, '.', byte('0'+v%100/10), byte('0'+v%10))
}

func isMonthTag(s string) bool {
	return allDigits(s[0:4]) && s[4] == '-' && allDigits(s[5:7]) && s[7] == ':'
}

// FormatMonthAmounts writes the canonical spend list ("2024-03:85.20,2024-04:91.00").
func FormatMonthAmounts(ms []MonthSpend) string {
	return string(appendMonthAmounts(make([]byte, 0, len(ms)*16), ms))
}

func appendMonthAmounts(b []byte, ms []MonthSpend) []byte {
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(m.Month.Y), 10)
		b = append(b, '-', byte('0'+int(m.Month.M)/10), byte('0'+int(m.Month.M)%10), ':')
		b = appendAmount(b, m.Amount)
	}
	return b
}

// ---- conditions ("When") ----

// condition is a parsed When expression: terms joined by '&', all must hold.
// A term is "FIELD=V" (V may be "V1|V2"), "FIELD!=V", "FIELD" (not empty) or
// "!FIELD" (empty).
type condition struct {
	terms []condTerm
}

type condTerm struct {
	field  int // index in the flow's fields
	name   string
	negate bool
	values []string // nil: presence test
}

func parseCondition(expr string, index map[string]int) (*condition, error) {
	c := &condition{}
	for _, part := range strings.Split(expr, "&") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("empty term in condition %q", expr)
		}
		var t condTerm
		name := part
		switch {
		case strings.Contains(part, "!="):
			name, _, _ = strings.Cut(part, "!=")
			_, vals, _ := strings.Cut(part, "!=")
			t.negate = true
			t.values = splitValues(vals)
		case strings.Contains(part, "="):
			var vals string
			name, vals, _ = strings.Cut(part, "=")
			t.values = splitValues(vals)
		case strings.HasPrefix(part, "!"):
			name = part[1:]
			t.negate = true
		}
		name = strings.TrimSpace(name)
		i, ok := index[name]
		if !ok {
			return nil, fmt.Errorf("condition %q names unknown field %q", expr, name)
		}
		t.field, t.name = i, name
		c.terms = append(c.terms, t)
	}
	return c, nil
}

func splitValues(s string) []string {
	vs := strings.Split(s, "|")
	for i := range vs {
		vs[i] = strings.TrimSpace(vs[i])
	}
	return vs
}

// holds evaluates the condition on a row's values (canonical forms).
func (c *condition) holds(vals []string) bool {
	for _, t := range c.terms {
		v := vals[t.field]
		var ok bool
		if t.values == nil {
			ok = v != ""
		} else {
			for _, w := range t.values {
				if strings.EqualFold(v, w) {
					ok = true
					break
				}
			}
		}
		if ok == t.negate {
			return false
		}
	}
	return true
}
