package digest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/flows"
)

// TestLongBodiesStayDeliverable: attachment_max_size bounds the attachments, but the
// bodies are in the message too: 50 items of each section (new, still open, resolved)
// and 50 refused files, their texts at their longest, are megabytes of text and HTML,
// more when they are Italian prose (an accented letter is 6 bytes in quoted-printable,
// an apostrophe 5 in HTML). With the default bound the message must stay under
// Postfix's default limit all the same: the bodies' excess comes out of the
// attachments, which still carry the most urgent rows.
func TestLongBodiesStayDeliverable(t *testing.T) {
	for _, tc := range []struct{ name, unit string }{
		{"ascii", "m"},
		{"italian", "è l'"}, // accents and apostrophes
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := longDigest(tc.unit)
			msg, err := d.Message(Options{From: "cmord@example.it", To: []string{"compliance@example.it"}}, "digest:test")
			if err != nil {
				t.Fatal(err)
			}
			raw, _, err := mail.Build(msg)
			if err != nil {
				t.Fatal(err)
			}
			attachments := len(msg.Attachments[0].Data) + len(msg.Attachments[1].Data)
			t.Logf("%d of %d rows attached; attachments %d bytes; text %d, HTML %d; message %d bytes",
				d.Attached(), d.ListTotal(), attachments, len(msg.Text), len(msg.HTML), len(raw))
			if len(raw) > postfixMessageSizeLimit {
				t.Errorf("the digest is a message of %d bytes, over Postfix's default limit %d", len(raw), postfixMessageSizeLimit)
			}
			if attachments > config.DefaultDigestAttachmentMaxSize {
				t.Errorf("attachments of %d bytes, over the default bound", attachments)
			}
			if d.Attached() == 0 || d.sectionAttached(0) != min(d.Attached(), len(d.New)) {
				t.Errorf("attached %d rows (%d new): want the most urgent, the new ones first", d.Attached(), d.sectionAttached(0))
			}
		})
	}
}

// longDigest is a digest of 1,000 exceptions in each section and 60 refused files,
// every text at its longest, made of unit repeated.
func longDigest(unit string) *Digest {
	now := fixtureNow
	long := func(size int) string {
		return strings.Repeat(unit, size/len(unit))[:size/len(unit)*len(unit)]
	}
	items := func(n int, sev string, resolved bool) []Item {
		var out []Item
		for i := range n {
			e := archive.Exception{ID: int64(i + 1), Kind: "row_refused", Severity: sev, Owner: "operator",
				Subject: long(flows.MaxNameLen), Field: long(flows.MaxNameLen), Rule: long(flows.MaxNameLen),
				Value: long(flows.MaxValueLen), Message: long(flows.MaxMessageLen), Action: long(flows.MaxMessageLen),
				FirstSeen: now.Add(-time.Hour), LastSeen: now.Add(-time.Hour), Count: 1}
			if resolved {
				e.ResolvedAt, e.ResolvedBy, e.Resolution = now.Add(-time.Minute), "anna", long(flows.MaxMessageLen)
			}
			out = append(out, Item{Exception: e, FileName: long(flows.MaxNameLen), PracticeCode: "E260000001"})
		}
		return out
	}
	d := &Digest{Company: "Esempio Energia S.p.A.", PeriodStart: now.Add(-24 * time.Hour), PeriodEnd: now,
		AttachCSV: true, AttachXLSX: true,
		New: items(1000, archive.SevUrgent, false), StillOpen: items(1000, archive.SevHigh, false), Resolved: items(1000, archive.SevNormal, true)}
	for i := range 60 {
		d.Rejected = append(d.Rejected, RejectedFile{Name: fmt.Sprintf("%s%d", long(flows.MaxNameLen), i), Kind: "x", At: now, Reason: long(400)})
	}
	return d
}

// TestBoundKeepsTheMostUrgentRow: however small attachment_max_size is against the
// bodies (64 KiB, bodies of 2 MB), the attachments carry at least the most urgent
// exception, and the body says "la prima eccezione di 3000", never "le prime 0".
func TestBoundKeepsTheMostUrgentRow(t *testing.T) {
	d := longDigest("è l'")
	d.AttachMaxSize = 64 << 10
	msg, err := d.Message(Options{From: "cmord@example.it", To: []string{"compliance@example.it"}}, "digest:test")
	if err != nil {
		t.Fatal(err)
	}
	if d.Attached() != 1 || d.sectionAttached(0) != 1 {
		t.Errorf("attached %d rows (%d new), want the most urgent one", d.Attached(), d.sectionAttached(0))
	}
	if want := "contengono solo la prima eccezione di 3000"; !strings.Contains(msg.Text, want) {
		t.Errorf("the body does not say %q", want)
	}
	if err := d.PreviewBound("it", false); err != nil {
		t.Fatal(err)
	}
	if d.WouldAttach != 1 {
		t.Errorf("the preview says a send would attach %d rows, want 1", d.WouldAttach)
	}
}
