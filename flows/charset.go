package flows

import (
	"encoding/binary"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Character sets of text files. SII files and what we write are UTF-8; billing
// extracts made on Windows are often Windows-1252. A line that is not valid UTF-8 is
// decoded as Windows-1252 (every byte is defined there, so decoding never fails); the
// decision is per line so that a file can be streamed in constant memory, and a file
// whose non-ASCII bytes are valid UTF-8 is read as UTF-8 — the only possible reading
// of a mixed file that a person would agree with.
const (
	CharsetUTF8        = "UTF-8"
	CharsetWindows1252 = "windows-1252"
)

// utf8BOM is the byte-order mark some Windows tools put at the start of UTF-8 files.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// lineDecoder turns raw lines into UTF-8, remembering whether 1252 was needed.
type lineDecoder struct {
	buf     []byte
	charset string // "" until a non-ASCII line decides it
	// bad lists the bytes of the last line that are text in neither character set
	// (offsets in the raw line): a line mixing UTF-8 letters with stray bytes, or one
	// of the five bytes Windows-1252 leaves undefined. They become U+FFFD, and the
	// reader reports them: a byte is never dropped without a person being told.
	bad []badByte
}

// badByte is one undecodable byte: its 0-based offset in the raw line and its value.
type badByte struct {
	off int
	b   byte
}

// decode returns line as UTF-8. The result may alias line or the decoder's buffer; it
// is valid until the next call.
func (d *lineDecoder) decode(line []byte) []byte {
	d.bad = d.bad[:0]
	if ascii := isASCII(line); ascii || utf8.Valid(line) {
		if d.charset == "" && !ascii {
			d.charset = CharsetUTF8
		}
		return line
	}
	d.buf = d.buf[:0]
	if hasUTF8Sequence(line) {
		// UTF-8 letters and stray bytes in one line: reading it as 1252 would turn
		// every "è" into "Ã¨". Keep the UTF-8 and report the rest.
		for i := 0; i < len(line); {
			r, n := utf8.DecodeRune(line[i:])
			if r == utf8.RuneError && n <= 1 {
				d.bad = append(d.bad, badByte{i, line[i]})
				d.buf = utf8.AppendRune(d.buf, utf8.RuneError)
				i++
				continue
			}
			d.buf = append(d.buf, line[i:i+n]...)
			i += n
		}
		return d.buf
	}
	d.charset = CharsetWindows1252
	for i, c := range line {
		if c < utf8.RuneSelf {
			d.buf = append(d.buf, c)
			continue
		}
		r := charmap.Windows1252.DecodeByte(c)
		if r == utf8.RuneError {
			d.bad = append(d.bad, badByte{i, c})
		}
		d.buf = utf8.AppendRune(d.buf, r)
	}
	return d.buf
}

// hasUTF8Sequence reports whether b holds at least one valid multi-byte UTF-8
// sequence. Two or three Windows-1252 letters in a row rarely make one ("Ã¨" does,
// but a name is not written that way).
func hasUTF8Sequence(b []byte) bool {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && n > 1 {
			return true
		}
		i++
	}
	return false
}

// isASCII reports whether every byte of b is below 0x80, eight bytes at a time (every
// line of a file is checked).
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
