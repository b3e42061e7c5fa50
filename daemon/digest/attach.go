package digest

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"sort"

	"github.com/cmord/cmord/config"
)

// The attachments are bounded so that a digest always stays deliverable: the full list
// of a backlog of 100,000 open exceptions made a 53 MB CSV and an 11.8 MB XLSX, an 89
// MB message that most mail servers refuse (Postfix's default message_size_limit is 10
// MB): the digest stayed in the outbox, retried, and was dead-lettered, so compliance
// never got it exactly when it mattered. Over the bound the attachments carry the most
// urgent rows, the body says how many of how many and the command that gives the whole
// list (`cmord digest --preview --csv FILE`, not bounded: it writes a file).

// FullListCommand is the command, run on the server, that writes the digest's whole
// list (same columns, language and masking as the attachments) to a file. A preview
// writes the list whole: only the mail is bounded.
func FullListCommand(lang string) string {
	if lang == "en" {
		return "cmord digest --preview --csv exceptions.csv"
	}
	return "cmord digest --preview --csv eccezioni.csv"
}

// sections are the list's sections in the order of the CSV and XLSX.
func (d *Digest) sections() [3][]Item { return [3][]Item{d.New, d.StillOpen, d.Resolved} }

// ListTotal is the number of rows of the full list: every new, still-open and resolved
// exception.
func (d *Digest) ListTotal() int { return len(d.New) + len(d.StillOpen) + len(d.Resolved) }

// Attached is the number of rows the attachments carry: ListTotal unless Attachments
// bounded them.
func (d *Digest) Attached() int {
	if d.cut == nil {
		return d.ListTotal()
	}
	return d.cut[0] + d.cut[1] + d.cut[2]
}

// Bounded reports whether the attachments carry fewer rows than the list.
func (d *Digest) Bounded() bool { return d.Attached() < d.ListTotal() }

// sectionAttached is how many rows of section i the attachments carry.
func (d *Digest) sectionAttached(i int) int {
	if d.cut == nil {
		return len(d.sections()[i])
	}
	return d.cut[i]
}

// urgencyOrder is the list's rows, most urgent first: the open ones (new and still
// open) by severity, the new before the still open of the same severity, each section
// in its own order; then the resolved ones. Each section being sorted by severity
// first, the first n rows of this order are, in every section, the section's first
// rows: a bounded CSV or XLSX is the full one with each section cut short, in the same
// order.
func (d *Digest) urgencyOrder() [][2]int {
	var open [][2]int
	for s, items := range [][]Item{d.New, d.StillOpen} {
		for i := range items {
			open = append(open, [2]int{s, i})
		}
	}
	secs := d.sections()
	sort.SliceStable(open, func(a, b int) bool {
		return SevRank(secs[open[a][0]][open[a][1]].Severity) < SevRank(secs[open[b][0]][open[b][1]].Severity)
	})
	for i := range d.Resolved {
		open = append(open, [2]int{2, i})
	}
	return open
}

// cutAt sets the bound to the first n rows of urgencyOrder.
func (d *Digest) cutAt(order [][2]int, n int) {
	var cut [3]int
	for _, r := range order[:n] {
		cut[r[0]]++
	}
	d.cut = &cut
}

// Attachments returns the XLSX and the CSV the mail carries (nil for one not asked
// for: AttachXLSX, AttachCSV), each holding at most AttachMaxRows rows and together at
// most AttachMaxSize bytes (before the mail's base64, which adds a third; less the
// bodies' excess over bodyAllowance, rendered as the mail will carry them): when the
// list is longer, the most urgent rows (urgencyOrder), one at least. The body rendered afterwards
// says how many rows of how many the attachments carry and how to get them all. The
// CSV stays pure data (no trailer row a program could read as an exception); the XLSX
// gets a second sheet saying the list is partial.
func (d *Digest) Attachments(lang string, includePersonal bool) (xlsx, csvData []byte, err error) {
	d.cut = nil
	if !d.AttachCSV && !d.AttachXLSX {
		return nil, nil, nil
	}
	maxRows, maxSize := d.AttachMaxRows, d.AttachMaxSize
	if maxRows <= 0 {
		maxRows = config.DefaultDigestAttachmentMaxRows
	}
	if maxSize <= 0 {
		maxSize = config.DefaultDigestAttachmentMaxSize
	}
	// The bodies travel with the attachments: past bodyAllowance they take their
	// excess from the attachments' bound, so the message stays deliverable.
	excess, err := d.bodyExcess(lang, includePersonal)
	if err != nil {
		return nil, nil, err
	}
	maxSize -= excess
	total := d.ListTotal()
	order := d.urgencyOrder()
	n := min(total, maxRows)
	if n < total {
		d.cutAt(order, n)
	}
	var weights []int // a row's CSV size: what the bytes of both attachments grow with
	for {
		if xlsx, csvData, err = d.buildAttachments(lang, includePersonal); err != nil {
			return nil, nil, err
		}
		size := int64(len(xlsx) + len(csvData))
		// The most urgent row always: a row is a few KiB, and "the first 0 of M"
		// would hide even the one that matters most.
		if size <= maxSize || n <= 1 {
			return xlsx, csvData, nil
		}
		// Too big: keep the most urgent rows that fit, estimating each row's share of
		// the size by its CSV size; a little under, as the estimate may be off, and
		// strictly fewer rows each time.
		if weights == nil {
			if weights, err = d.rowSizes(order[:n], lang, includePersonal); err != nil {
				return nil, nil, err
			}
		}
		var w int64
		for _, x := range weights[:n] {
			w += int64(x)
		}
		perWeight := float64(size) / float64(max(w, 1))
		budget := float64(maxSize) * 0.97
		k, acc := 0, 0.0
		for k < n-1 {
			acc += float64(weights[k]) * perWeight
			if acc > budget {
				break
			}
			k++
		}
		n = max(k, 1)
		d.cutAt(order, n)
	}
}

// bodyAllowance is how big the text and HTML bodies may be, encoded as the mail
// carries them (quoted-printable), before they take room from attachment_max_size. The
// bodies list at most 50 items a section, but an item's texts may be long: three
// sections of items at their longest made 2 MB of text and HTML, more once encoded
// when they are Italian prose (an accented letter is 6 bytes in quoted-printable, an
// apostrophe 5 in HTML), and with 6 MiB of attachments (8.6 MB in base64) the message
// was 11.5 MB, over Postfix's default limit. With the default bound and bodies of 1
// MiB the message is at most about 9.7 MB.
const bodyAllowance = 1 << 20

// bodyNotesMargin is what the notes of bounded attachments (the Sintesi's box, "N of
// M" in the footer and the sections) add to the bodies measured before the bound.
const bodyNotesMargin = 16 << 10

// bodyExcess is how much the bodies, as the mail will carry them, exceed bodyAllowance
// (0 when they do not).
func (d *Digest) bodyExcess(lang string, includePersonal bool) (int64, error) {
	_, text, html, err := d.renderBodies(lang, includePersonal)
	if err != nil {
		return 0, err
	}
	n := qpSize(text) + qpSize(html) + bodyNotesMargin
	return max(0, n-bodyAllowance), nil
}

// qpSize is the size of s in quoted-printable, as the mail encodes a body.
func qpSize(s string) int64 {
	var c countWriter
	w := quotedprintable.NewWriter(&c)
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return int64(c)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// buildAttachments renders the attachments asked for, bounded by d.cut.
func (d *Digest) buildAttachments(lang string, includePersonal bool) (xlsx, csvData []byte, err error) {
	if d.AttachXLSX {
		if xlsx, err = d.XLSX(lang, includePersonal); err != nil {
			return nil, nil, err
		}
	}
	if d.AttachCSV {
		if csvData, err = d.CSV(lang, includePersonal); err != nil {
			return nil, nil, err
		}
	}
	return xlsx, csvData, nil
}

// rowSizes is the CSV size of each row of order, in that order; order is the rows
// within the current bound (d.cut), which are the only ones rendered.
func (d *Digest) rowSizes(order [][2]int, lang string, includePersonal bool) ([]int, error) {
	if lang != "en" {
		lang = "it"
	}
	index := map[[2]int]int{}
	for i, r := range order {
		index[r] = i
	}
	sizes := make([]int, len(order))
	var buf bytes.Buffer
	w := newCSVWriter(&buf)
	err := d.eachRowAt(lang, includePersonal, func(sec, i int, row []string) error {
		k, ok := index[[2]int{sec, i}]
		if !ok {
			return nil
		}
		buf.Reset()
		if err := writeCSVRow(w, row); err != nil {
			return err
		}
		w.Flush()
		sizes[k] = buf.Len()
		return w.Error()
	})
	return sizes, err
}

// PreviewBound records in WouldAttach how many rows a digest sent now would attach
// when the bound would cut the list, so that a preview's body says so; the list stays
// whole (a preview's CSV file is not mailed). Call it before clearing AttachCSV and
// AttachXLSX.
func (d *Digest) PreviewBound(lang string, includePersonal bool) error {
	if _, _, err := d.Attachments(lang, includePersonal); err != nil {
		return err
	}
	if d.Bounded() {
		d.WouldAttach = d.Attached()
	}
	d.cut = nil
	return nil
}
