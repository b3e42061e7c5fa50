package config

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultPracticeCodeTemplate gives codes like "E250000042": sector, two-digit year,
// seven-digit sequence.
const DefaultPracticeCodeTemplate = "{SECTOR}{YY}{SEQ:7}"

// PracticeCode is the template of our practice codes (CP_UTENTE): at most 15
// alphanumerics, unique forever (brief §6.5). Tokens: {SECTOR} (E or G), {YY}, {YYYY},
// {SEQ:n} (the sequence, zero-padded to n digits, exactly once), {PREFIX:literal};
// uppercase letters and digits outside braces are literal too.
type PracticeCode struct {
	Template string
}

// MaxPracticeCodeLen is the SII limit for CP_UTENTE.
const MaxPracticeCodeLen = 15

type codePart struct {
	token   string // "SECTOR", "YY", "YYYY", "SEQ" or "" for literal text
	literal string
	width   int // SEQ digits
}

func (p PracticeCode) parts() ([]codePart, error) {
	var parts []codePart
	s := p.Template
	if s == "" {
		return nil, fmt.Errorf("the template is empty; the default is %q", DefaultPracticeCodeTemplate)
	}
	for s != "" {
		if s[0] != '{' {
			j := strings.IndexByte(s, '{')
			if j < 0 {
				j = len(s)
			}
			parts = append(parts, codePart{literal: s[:j]})
			s = s[j:]
			continue
		}
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return nil, fmt.Errorf("%q: unclosed '{'", p.Template)
		}
		tok := s[1:end]
		s = s[end+1:]
		name, arg, hasArg := strings.Cut(tok, ":")
		switch {
		case (name == "SECTOR" || name == "YY" || name == "YYYY") && !hasArg:
			parts = append(parts, codePart{token: name})
		case name == "SEQ" && hasArg:
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > MaxPracticeCodeLen {
				return nil, fmt.Errorf("{SEQ:%s}: the width must be 1 to %d digits", arg, MaxPracticeCodeLen)
			}
			parts = append(parts, codePart{token: "SEQ", width: n})
		case name == "PREFIX" && hasArg:
			parts = append(parts, codePart{literal: arg})
		default:
			return nil, fmt.Errorf("unknown token {%s}; expected {SECTOR}, {YY}, {YYYY}, {SEQ:n} or {PREFIX:literal}", tok)
		}
	}
	return parts, nil
}

func (p PracticeCode) check() error {
	parts, err := p.parts()
	if err != nil {
		return err
	}
	length, seqs := 0, 0
	for _, c := range parts {
		switch c.token {
		case "":
			for _, r := range c.literal {
				if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
					return fmt.Errorf("%q: literal text %q may hold only uppercase letters and digits (SII codes are alphanumeric)", p.Template, c.literal)
				}
			}
			length += len(c.literal)
		case "SECTOR":
			length++
		case "YY":
			length += 2
		case "YYYY":
			length += 4
		case "SEQ":
			seqs++
			length += c.width
		}
	}
	if seqs != 1 {
		return fmt.Errorf("%q: needs exactly one {SEQ:n} so that codes are unique", p.Template)
	}
	if length > MaxPracticeCodeLen {
		return fmt.Errorf("%q makes codes of %d characters; the SII allows at most %d", p.Template, length, MaxPracticeCodeLen)
	}
	return nil
}

// Format renders the code for sector ("E" or "G"), year and sequence number seq (≥ 1).
// It fails when seq does not fit the {SEQ:n} width: codes are never truncated or reused.
func (p PracticeCode) Format(sector string, year int, seq int64) (string, error) {
	return p.render(sector, year, &seq)
}

// SeqKey names the sequence that Format's seq must be drawn from for sector and year:
// the code with the sequence left out. Drawing seq from one counter per SeqKey makes
// every code unique even when the template omits the year or the sector.
func (p PracticeCode) SeqKey(sector string, year int) (string, error) {
	return p.render(sector, year, nil)
}

func (p PracticeCode) render(sector string, year int, seq *int64) (string, error) {
	if sector != "E" && sector != "G" {
		return "", fmt.Errorf("practice code: sector %q is not E or G", sector)
	}
	if year < 2000 || year > 9999 {
		return "", fmt.Errorf("practice code: year %d out of range", year)
	}
	parts, err := p.parts()
	if err != nil {
		return "", fmt.Errorf("practice code: %w", err)
	}
	var b strings.Builder
	for _, c := range parts {
		switch c.token {
		case "":
			b.WriteString(c.literal)
		case "SECTOR":
			b.WriteString(sector)
		case "YY":
			fmt.Fprintf(&b, "%02d", year%100)
		case "YYYY":
			fmt.Fprintf(&b, "%04d", year)
		case "SEQ":
			if seq == nil {
				b.WriteString("{SEQ}")
				continue
			}
			s := fmt.Sprintf("%0*d", c.width, *seq)
			if *seq < 1 || len(s) > c.width {
				return "", fmt.Errorf("practice code: sequence %d does not fit {SEQ:%d}", *seq, c.width)
			}
			b.WriteString(s)
		}
	}
	return b.String(), nil
}
