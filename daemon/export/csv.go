package export

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// The CSV export writes each practice from the stored text of its columns
// (archive.EachPracticeText) into one reused line, instead of scanning a Practice
// (dates, instants, amounts parsed) and formatting it back through encoding/csv: at a
// million practices that was the half of the time the driver did not take. The bytes
// are those encoding/csv writes from a Practice (TestCSVSameAsFromPractices holds
// the two side by side).

// csvConv says how a CSV column is written from its stored text.
type csvConv int

const (
	csvText           csvConv = iota // free text, neutralised (Neutralise)
	csvState                         // the state's words in the export's language
	csvDate                          // an ISO date (AAAA-MM-GG) as GG/MM/AAAA
	csvInstantDate                   // an instant (archive.TS) as its day in Rome, GG/MM/AAAA
	csvCents                         // cents as units, decimal separator, two decimals
	csvOpenExceptions                // the practice's open exceptions, from its id
)

// csvSource is, for each of columns, its index in archive.PracticeTextColumns.
var csvSource = func() []int {
	src := make([]int, len(columns))
	for i, c := range columns {
		src[i] = -1
		for j, name := range archive.PracticeTextColumns {
			if name == c.stored {
				src[i] = j
			}
		}
		if src[i] < 0 {
			panic(fmt.Sprintf("export: column %q reads %q, not among archive.PracticeTextColumns", c.it, c.stored))
		}
	}
	return src
}()

// roleSource is the index of the practice's role in archive.PracticeTextColumns.
var roleSource = func() int {
	for j, name := range archive.PracticeTextColumns {
		if name == "role" {
			return j
		}
	}
	panic("export: role is not among archive.PracticeTextColumns")
}()

// cacheLimit bounds each of the csvWriter's caches: real stores have a few thousand
// distinct dates, twenty states; past the bound a value is formatted every time.
const cacheLimit = 1 << 14

// csvWriter writes CSV a spreadsheet opens right: UTF-8 with a BOM (else Excel reads it
// as Windows-1252), the language's separators (Italian: ';' between fields because ','
// is the decimal separator there), CRLF, dates GG/MM/AAAA, formula-like text
// neutralised. Quoting is encoding/csv's (appendField).
type csvWriter struct {
	bw    *bufio.Writer
	comma byte
	dec   byte
	lang  string // for the headers: "en", else Italian
	words string // for the states: "en" or "it"
	open  map[int64]int
	line  []byte // the record being written, reused

	states map[string][]byte // stored state → its words, neutralised
	dates  map[string][]byte // a stored date not AAAA-MM-GG → GG/MM/AAAA or ""
	hours  map[string][]byte // an instant's UTC hour (AAAA-MM-GGTHH) → its day in Rome
}

func newCSVWriter(w io.Writer, opt Options, open map[int64]int) *csvWriter {
	field, dec := opt.CSVSeparators() // validate allows only ASCII separators
	return &csvWriter{bw: bufio.NewWriterSize(w, 64<<10), comma: byte(field), dec: dec, lang: opt.Lang,
		words: langOf(opt.Lang), open: open, line: make([]byte, 0, 512),
		states: map[string][]byte{}, dates: map[string][]byte{}, hours: map[string][]byte{}}
}

func (c *csvWriter) header() error {
	b := append(c.line[:0], "\uFEFF"...)
	for i, h := range Headers(c.lang) {
		if i > 0 {
			b = append(b, c.comma)
		}
		b = appendField(b, false, []byte(h), c.comma)
	}
	b = append(b, '\r', '\n')
	c.line = b
	_, err := c.bw.Write(b)
	return err
}

// write writes one practice from cols, its archive.PracticeTextColumns.
func (c *csvWriter) write(cols [][]byte) error {
	b := c.line[:0]
	for i, col := range columns {
		if i > 0 {
			b = append(b, c.comma)
		}
		v := cols[csvSource[i]]
		switch col.conv {
		case csvText:
			b = appendField(b, needsApostrophe(v), v, c.comma)
		case csvState:
			b = appendField(b, false, c.state(v), c.comma)
		case csvDate:
			b = c.appendDate(b, v)
		case csvInstantDate:
			b = appendField(b, false, c.instantDate(v), c.comma)
		case csvCents:
			if col.uscente && string(cols[roleSource]) == RoleEntrante {
				continue // an entrante practice has no credit or estimate of its own: empty, not 0,00
			}
			cents, ok := parseCents(v)
			if !ok {
				return fmt.Errorf("practice #%s: %s is %q, not a whole number of cents", cols[0], col.stored, v)
			}
			// Quoted only where the decimal separator is the field separator.
			start := len(b)
			b = appendAmount(b, cents, c.dec)
			if c.comma == c.dec {
				var tmp [24]byte
				b = appendField(b[:start], false, append(tmp[:0], b[start:]...), c.comma)
			}
		case csvOpenExceptions:
			n := 0
			if len(c.open) > 0 {
				id, ok := parseCents(v)
				if !ok {
					return fmt.Errorf("practice id %q is not a number", v)
				}
				n = c.open[id]
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
	}
	b = append(b, '\r', '\n')
	c.line = b
	_, err := c.bw.Write(b)
	return err
}

func (c *csvWriter) close() error { return c.bw.Flush() }

// state returns the words of a stored state, neutralised like any text cell.
func (c *csvWriter) state(v []byte) []byte {
	if w, ok := c.states[string(v)]; ok {
		return w
	}
	w := []byte(Neutralise(stateNames(nil).of(string(v), c.words)))
	if len(c.states) < cacheLimit {
		c.states[string(v)] = w
	}
	return w
}

// appendDate appends a stored ISO date as GG/MM/AAAA: what a Practice's date gives
// (the archive reads it with flows.ParseDate, "" or anything unreadable as no date).
// The dates cmord stores (AAAA-MM-GG, existing) are turned around in place; anything
// else goes through flows.ParseDate, once per distinct text.
func (c *csvWriter) appendDate(b, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	if isoDate(v) {
		return append(b, v[8], v[9], '/', v[5], v[6], '/', v[0], v[1], v[2], v[3])
	}
	d, ok := c.dates[string(v)]
	if !ok {
		pd, _ := flows.ParseDate(string(v))
		d = []byte(dateIT(pd))
		if len(c.dates) < cacheLimit {
			c.dates[string(v)] = d
		}
	}
	return appendField(b, false, d, c.comma)
}

// isoDate reports whether v is AAAA-MM-GG, a day that exists, in the years
// flows.ParseDate takes (1900–2999).
func isoDate(v []byte) bool {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9} {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	y := int(v[0]-'0')*1000 + int(v[1]-'0')*100 + int(v[2]-'0')*10 + int(v[3]-'0')
	m := int(v[5]-'0')*10 + int(v[6]-'0')
	d := int(v[8]-'0')*10 + int(v[9]-'0')
	return y >= 1900 && y <= 2999 && m >= 1 && m <= 12 && d >= 1 && d <= flows.DaysIn(y, time.Month(m))
}

// instantDate returns the day in Rome of a stored instant, GG/MM/AAAA, as a Practice's
// StateSince gives it (archive.ParseTS, an unreadable one as no date). Instants are
// all different, their hours are not: Rome is a whole number of hours from UTC and
// changes offset on the hour, so all the instants of one UTC hour fall on one day in
// Rome, which is computed once per hour, and checked at both ends of the hour.
func (c *csvWriter) instantDate(v []byte) []byte {
	if !utcInstant(v) {
		return []byte(instantDateText(string(v)))
	}
	hour := v[:13]
	if d, ok := c.hours[string(hour)]; ok {
		return d
	}
	first := instantDateText(string(hour) + ":00:00Z")
	if last := instantDateText(string(hour) + ":59:59.999999999Z"); last != first {
		return []byte(instantDateText(string(v))) // not one day: not cached
	}
	d := []byte(first)
	if len(c.hours) < cacheLimit {
		c.hours[string(hour)] = d
	}
	return d
}

// instantDateText is a stored instant's day in Rome, "" if it does not parse.
func instantDateText(s string) string {
	t, _ := archive.ParseTS(s)
	return dateIT(sinceDate(t))
}

// utcInstant reports whether v is an instant as archive.TS writes it
// (AAAA-MM-GGTHH:MM:SS, up to nine decimals, Z) with minutes and seconds in range:
// what follows the hour then cannot make it another hour, nor unreadable.
func utcInstant(v []byte) bool {
	if len(v) < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[len(v)-1] != 'Z' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	if v[14] > '5' || v[17] > '5' {
		return false
	}
	frac := v[19 : len(v)-1]
	if len(frac) == 0 {
		return true
	}
	if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
		return false
	}
	for _, d := range frac[1:] {
		if d < '0' || d > '9' {
			return false
		}
	}
	return true
}

// parseCents reads an integer as SQLite writes one (an optional '-', digits).
func parseCents(v []byte) (int64, bool) {
	digits := v
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		// 19 digits may overflow: let strconv say (rare: ±10^17 euros).
		n, err := strconv.ParseInt(string(v), 10, 64)
		return n, err == nil
	}
	var n int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	if len(digits) < len(v) {
		n = -n
	}
	return n, true
}

// needsApostrophe says whether Neutralise would prefix v with an apostrophe.
func needsApostrophe(v []byte) bool {
	i := 0
	for i < len(v) && v[i] == ' ' {
		i++
	}
	if i == len(v) {
		return false
	}
	switch v[i] {
	case '=', '+', '-', '@', '\t', '\r', '\n':
		return true
	}
	return false
}

// appendField appends the field (an apostrophe first if asked, then v) as
// encoding/csv's Writer (UseCRLF, an ASCII Comma) writes it: quoted if it holds the
// separator, a quote, a CR or LF, starts with a space (unicode.IsSpace) or is `\.`;
// inside quotes a quote doubled, a CR dropped, a LF written CRLF.
func appendField(b []byte, apostrophe bool, v []byte, comma byte) []byte {
	if !fieldNeedsQuotes(apostrophe, v, comma) {
		if apostrophe {
			b = append(b, '\'')
		}
		return append(b, v...)
	}
	b = append(b, '"')
	if apostrophe {
		b = append(b, '\'')
	}
	for _, ch := range v {
		switch ch {
		case '"':
			b = append(b, '"', '"')
		case '\r':
		case '\n':
			b = append(b, '\r', '\n')
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}

// fieldNeedsQuotes is encoding/csv's rule for the field apostrophe+v.
func fieldNeedsQuotes(apostrophe bool, v []byte, comma byte) bool {
	if !apostrophe && len(v) == 0 {
		return false
	}
	if !apostrophe && len(v) == 2 && v[0] == '\\' && v[1] == '.' {
		return true
	}
	for _, ch := range v {
		if ch == '\n' || ch == '\r' || ch == '"' || ch == comma {
			return true
		}
	}
	if apostrophe {
		return false // starts with the apostrophe, not a space
	}
	if v[0] < utf8.RuneSelf {
		return asciiSpace[v[0]]
	}
	r, _ := utf8.DecodeRune(v)
	return unicode.IsSpace(r)
}

// asciiSpace is unicode.IsSpace for the ASCII bytes.
var asciiSpace = func() (t [utf8.RuneSelf]bool) {
	for i := range t {
		t[i] = unicode.IsSpace(rune(i))
	}
	return t
}()
