package flows

import (
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
}

// decode returns line as UTF-8. The result may alias line or the decoder's buffer; it
// is valid until the next call.
func (d *lineDecoder) decode(line []byte) []byte {
	if isASCII(line) || utf8.Valid(line) {
		if d.charset == "" && !isASCII(line) {
			d.charset = CharsetUTF8
		}
		return line
	}
	d.charset = CharsetWindows1252
	d.buf = d.buf[:0]
	for _, c := range line {
		if c < utf8.RuneSelf {
			d.buf = append(d.buf, c)
			continue
		}
		d.buf = utf8.AppendRune(d.buf, charmap.Windows1252.DecodeByte(c))
	}
	return d.buf
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
