package flows

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds for values that come from outside (file names, field values, texts of the
// SII) wherever they are stored or shown: an exception, a finding, a reason file, a log
// line, the digest. Past the bound a value is cut and its full size noted, so that a
// 500 MB field costs at most this much everywhere after the parser.
const (
	MaxNameLen    = 255  // a file name or a subject
	MaxValueLen   = 256  // one field's value
	MaxMessageLen = 2048 // a message that may quote values
)

// Truncate returns s cut to at most max bytes (at a UTF-8 boundary, when s is valid
// there) followed by "…(N bytes)" with the full size, or s itself when it fits.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && cut > max-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + GroupThousands(int64(len(s))) + " bytes)"
}

// GroupThousands writes n as 524,288,000 (sizes and counts shown to people).
func GroupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Escape makes an outside string safe to show on one line of a terminal, a log, a
// text file or a mail: control characters (C0, DEL, C1), Unicode line and paragraph
// separators and the bidirectional overrides become Go-style escapes (\x1b, \n,
// \u202e) and bytes that are not UTF-8 become \xNN. Printable text, accents and
// backslashes included, is unchanged, so that escaping twice changes nothing (values
// are escaped when stored and again where shown).
func Escape(s string) string {
	if !needsEscape(s, false) {
		return s
	}
	return escape(s, false)
}

// EscapeText is Escape for a text of several lines (a reason file's body, a message):
// newlines and tabs stay, everything else Escape escapes is escaped.
func EscapeText(s string) string {
	if !needsEscape(s, true) {
		return s
	}
	return escape(s, true)
}

// Shown is a value from outside as it may be shown: bounded to max bytes, then escaped.
func Shown(s string, max int) string { return Escape(Truncate(s, max)) }

func needsEscape(s string, text bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(text && (c == '\n' || c == '\t')) {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafeRune(r) {
			return true
		}
		i += n
	}
	return false
}

// unsafeRune: C1 controls, line/paragraph separators, bidi embeddings, overrides and
// isolates (a name that reads backwards on a terminal), and the BOM inside a text.
func unsafeRune(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || r == 0x2028 || r == 0x2029 ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0xfeff
}

func escape(s string, text bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case text && (c == '\n' || c == '\t'):
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20 || c == 0x7f:
				b.WriteString(`\x`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		case unsafeRune(r):
			b.WriteString(`\u`)
			b.WriteString(strconv.FormatInt(int64(r)|0x10000, 16)[1:])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
