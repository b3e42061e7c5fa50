package flows

import (
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"
)

// Bounds of an XML file as it is read. No SII field is longer than a few hundred
// bytes: a longer text is cut here, before encoding/xml (which holds a whole text in
// memory) sees it, and the field's length check refuses it with its size noted.
const (
	MaxXMLText = 64 << 10 // one run of text between two tags
	MaxXMLTag  = 64 << 10 // one tag, its attributes included (also comments, CDATA)
)

// boundedXML passes an XML stream through, cutting every text run longer than
// MaxXMLText to MaxXMLText bytes followed by "…(N bytes)", and failing on a tag
// longer than MaxXMLTag. Memory stays bounded whatever the file holds.
type boundedXML struct {
	src   io.Reader
	chunk []byte
	out   []byte
	off   int
	inTag bool
	run   int   // bytes of the current text run or tag so far
	pos   int64 // bytes read from src
	err   error
	// held are the bytes of a character split by the end of a read, held for the
	// next one so that a cut is never made inside a character
	held []byte
}

func newBoundedXML(r io.Reader) *boundedXML {
	return &boundedXML{src: r, chunk: make([]byte, 64<<10), out: make([]byte, 0, 64<<10+64)}
}

func (b *boundedXML) Read(p []byte) (int, error) {
	for b.off == len(b.out) {
		if b.err != nil {
			return 0, b.err
		}
		b.fill()
	}
	n := copy(p, b.out[b.off:])
	b.off += n
	return n, nil
}

func (b *boundedXML) fill() {
	b.out, b.off = b.out[:0], 0
	n, err := b.src.Read(b.chunk)
	data := b.chunk[:n]
	b.pos += int64(n)
	if len(b.held) > 0 {
		data = append(b.held, data...)
		b.held = nil
	}
	for len(data) > 0 {
		if b.inTag {
			i := bytes.IndexByte(data, '>')
			seg := data
			if i >= 0 {
				seg = data[:i+1]
			}
			b.run += len(seg)
			if b.run > MaxXMLTag {
				b.err = fmt.Errorf("a tag longer than %d bytes (before byte %d): not an SII flow file", MaxXMLTag, b.pos)
				return
			}
			b.out = append(b.out, seg...)
			data = data[len(seg):]
			if i >= 0 {
				b.inTag, b.run = false, 0
			}
			continue
		}
		i := bytes.IndexByte(data, '<')
		seg := data
		if i >= 0 {
			seg = data[:i]
		} else if err == nil {
			// The run goes on in the next read: hold back a split character.
			for t := 1; t <= utf8.UTFMax-1 && t <= len(seg); t++ {
				if utf8.RuneStart(seg[len(seg)-t]) {
					if !utf8.FullRune(seg[len(seg)-t:]) {
						b.held = append([]byte(nil), seg[len(seg)-t:]...)
						seg = seg[:len(seg)-t]
						data = data[:len(data)-t]
					}
					break
				}
			}
		}
		keep := min(len(seg), max(MaxXMLText-b.run, 0))
		for keep > 0 && keep < len(seg) && !utf8.RuneStart(seg[keep]) {
			keep-- // never cut inside a character
		}
		b.out = append(b.out, seg[:keep]...)
		b.run += len(seg)
		data = data[len(seg):]
		if i >= 0 {
			b.endText()
			b.out = append(b.out, '<')
			data = data[1:]
			b.inTag, b.run = true, 1
		}
	}
	if err != nil {
		if !b.inTag {
			b.endText()
		}
		b.err = err
	}
}

// endText notes the size of a text run that was cut.
func (b *boundedXML) endText() {
	if b.run > MaxXMLText {
		b.out = append(b.out, "…("+GroupThousands(int64(b.run))+" bytes)"...)
	}
	b.run = 0
}
