package flows

import (
	"fmt"
	"strconv"
	"strings"
)

// CP_UTENTE templates (SPEC "Practices", brief §6.5): our practice codes are at most 15
// letters and digits, unique per company forever. A template says how to spell them:
//
//	{SECTOR}      E or G
//	{YY} {YYYY}   the year of allocation
//	{SEQ:n}       the sequence number, zero-padded to n digits (exactly once)
//	{PREFIX:XYZ}  literal text (so is any A–Z0–9 outside braces)
//
// The sequence behind {SEQ:n} is scoped by company and by whatever the template varies
// on (sector, year), so two codes can only be equal if their sequence numbers are; the
// daemon also checks each new code against every code ever issued before using it.

// MaxCPUtenteLen is the SII limit for CP_UTENTE (Alfanumerico 15).
const MaxCPUtenteLen = 15

// DefaultCodeTemplate gives codes like "E250000042".
const DefaultCodeTemplate = "{SECTOR}{YY}{SEQ:7}"

// CodeTemplate is a parsed CP_UTENTE template.
type CodeTemplate struct {
	src      string
	parts    []codeTemplatePart
	seqWidth int
	bySector bool
	byYear   bool
}

type codeTemplatePart struct {
	token   string // "SECTOR", "YY", "YYYY", "SEQ", or "" for literal text
	literal string
	width   int // SEQ digits
}

// ParseCodeTemplate parses and checks a template: known tokens only, literals A–Z0–9,
// exactly one {SEQ:n}, and codes never longer than MaxCPUtenteLen.
func ParseCodeTemplate(s string) (*CodeTemplate, error) {
	t := &CodeTemplate{src: s}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("practice code template is empty; the default is %q", DefaultCodeTemplate)
	}
	rest := s
	for rest != "" {
		if rest[0] != '{' {
			j := strings.IndexByte(rest, '{')
			if j < 0 {
				j = len(rest)
			}
			t.parts = append(t.parts, codeTemplatePart{literal: rest[:j]})
			rest = rest[j:]
			continue
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("practice code template %q: unclosed '{'", s)
		}
		tok := rest[1:end]
		rest = rest[end+1:]
		name, arg, hasArg := strings.Cut(tok, ":")
		switch {
		case name == "SECTOR" && !hasArg:
			t.parts = append(t.parts, codeTemplatePart{token: name})
			t.bySector = true
		case (name == "YY" || name == "YYYY") && !hasArg:
			t.parts = append(t.parts, codeTemplatePart{token: name})
			t.byYear = true
		case name == "SEQ" && hasArg:
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > MaxCPUtenteLen {
				return nil, fmt.Errorf("practice code template %q: {SEQ:%s}: the width must be 1 to %d digits", s, arg, MaxCPUtenteLen)
			}
			if t.seqWidth != 0 {
				return nil, fmt.Errorf("practice code template %q: {SEQ:n} appears more than once", s)
			}
			t.seqWidth = n
			t.parts = append(t.parts, codeTemplatePart{token: "SEQ", width: n})
		case name == "PREFIX" && hasArg:
			t.parts = append(t.parts, codeTemplatePart{literal: arg})
		default:
			return nil, fmt.Errorf("practice code template %q: unknown token {%s}; expected {SECTOR}, {YY}, {YYYY}, {SEQ:n} or {PREFIX:literal}", s, tok)
		}
	}
	if t.seqWidth == 0 {
		return nil, fmt.Errorf("practice code template %q: needs exactly one {SEQ:n} so that codes are unique", s)
	}
	for _, p := range t.parts {
		if p.token != "" {
			continue
		}
		if p.literal == "" {
			return nil, fmt.Errorf("practice code template %q: empty literal", s)
		}
		for i := 0; i < len(p.literal); i++ {
			if c := p.literal[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return nil, fmt.Errorf("practice code template %q: literal %q may hold only uppercase letters and digits (found %q)", s, p.literal, c)
			}
		}
	}
	if n := t.MaxLen(); n > MaxCPUtenteLen {
		return nil, fmt.Errorf("practice code template %q makes codes of %d characters; the SII allows at most %d", s, n, MaxCPUtenteLen)
	}
	return t, nil
}

// String returns the template as written.
func (t *CodeTemplate) String() string { return t.src }

// MaxLen returns the length of the codes the template makes.
func (t *CodeTemplate) MaxLen() int {
	n := 0
	for _, p := range t.parts {
		switch p.token {
		case "":
			n += len(p.literal)
		case "SECTOR":
			n++
		case "YY":
			n += 2
		case "YYYY":
			n += 4
		case "SEQ":
			n += p.width
		}
	}
	return n
}

// SequenceName names the sequence a code for (company, sector, year) draws from: one
// per company, and per sector and year only when the template shows them (a template
// without {YY} must not restart its numbering every January). The name also carries
// the template's fixed shape, so that changing the template starts a fresh sequence
// only when the new codes cannot collide with the old ones' spelling.
func (t *CodeTemplate) SequenceName(company, sector string, year int) string {
	var b strings.Builder
	b.WriteString("cp_utente|")
	b.WriteString(company)
	b.WriteByte('|')
	for _, p := range t.parts {
		switch p.token {
		case "":
			b.WriteString(p.literal)
		case "SECTOR":
			b.WriteString(sector)
		case "YY":
			fmt.Fprintf(&b, "%02d", year%100)
		case "YYYY":
			fmt.Fprintf(&b, "%04d", year)
		case "SEQ":
			fmt.Fprintf(&b, "{SEQ:%d}", p.width)
		}
	}
	return b.String()
}

// Render spells the code for sector ("E" or "G"), year and sequence number seq (≥ 1).
// A seq that does not fit {SEQ:n} is an error: codes are never truncated or wrapped.
func (t *CodeTemplate) Render(sector string, year int, seq int64) (string, error) {
	if t.bySector && sector != "E" && sector != "G" {
		return "", fmt.Errorf("practice code: sector %q is not E or G", sector)
	}
	if t.byYear && (year < 1000 || year > 9999) {
		return "", fmt.Errorf("practice code: year %d out of range", year)
	}
	if seq < 1 {
		return "", fmt.Errorf("practice code: sequence %d is not positive", seq)
	}
	b := make([]byte, 0, MaxCPUtenteLen)
	for _, p := range t.parts {
		switch p.token {
		case "":
			b = append(b, p.literal...)
		case "SECTOR":
			b = append(b, sector...)
		case "YY":
			b = appendPadded(b, int64(year%100), 2)
		case "YYYY":
			b = appendPadded(b, int64(year), 4)
		case "SEQ":
			s := strconv.FormatInt(seq, 10)
			if len(s) > p.width {
				return "", fmt.Errorf("practice code: sequence %d does not fit {SEQ:%d}; widen the template (codes are never reused)", seq, p.width)
			}
			b = appendPadded(b, seq, p.width)
		}
	}
	return string(b), nil
}

func appendPadded(b []byte, v int64, width int) []byte {
	s := strconv.FormatInt(v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
