// Package mail sends cmord's digests and alerts through a persistent outbox
// (archive.Outbox): a message is built once into RFC 5322 bytes with a fixed
// Message-ID, queued under a dedup key, and sent by Flush with retries and backoff. It
// is never dropped; a crash between "sending" and "sent" resends the identical bytes.
package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/cmord/cmord/flows"
)

// Attachment is a file attached to a message.
type Attachment struct {
	Name        string
	ContentType string // default application/octet-stream
	Data        []byte
}

// Message is what the digest and alert builders hand to the sender.
type Message struct {
	From        string // default: the SMTP config's From
	To          []string
	Subject     string
	Text        string // text/plain part (required)
	HTML        string // optional text/html alternative
	Attachments []Attachment
	Headers     map[string]string // extra headers, e.g. X-Cmord-Digest-Date
	Date        time.Time         // default: now
	MessageID   string            // without angle brackets; default: random @ the From domain
}

// reservedHeaders are set by Build from Message fields and may not be overridden.
var reservedHeaders = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "date": true, "message-id": true,
	"mime-version": true, "content-type": true, "content-transfer-encoding": true, "sender": true,
}

// Build renders msg as RFC 5322 bytes (multipart/alternative text+HTML, multipart/mixed
// with attachments) using go-mail, and returns them with the Message-ID (no brackets).
func Build(msg Message) ([]byte, string, error) {
	if len(msg.To) == 0 {
		return nil, "", fmt.Errorf("mail: build %q: no recipients", msg.Subject)
	}
	if msg.Text == "" {
		return nil, "", fmt.Errorf("mail: build %q: empty text part", msg.Subject)
	}
	from, err := mail.ParseAddress(msg.From)
	if err != nil {
		return nil, "", fmt.Errorf("mail: build %q: from %q: %w", msg.Subject, msg.From, err)
	}
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.From(msg.From); err != nil {
		return nil, "", fmt.Errorf("mail: build %q: from: %w", msg.Subject, err)
	}
	if err := m.To(msg.To...); err != nil {
		return nil, "", fmt.Errorf("mail: build %q: to: %w", msg.Subject, err)
	}
	if strings.ContainsAny(msg.Subject, "\r\n") {
		return nil, "", fmt.Errorf("mail: build %q: subject contains a line break", msg.Subject)
	}
	m.Subject(msg.Subject)
	id := msg.MessageID
	if id == "" {
		id, err = newMessageID(from.Address)
		if err != nil {
			return nil, "", err
		}
	}
	if strings.ContainsAny(id, "<>\r\n \t") || !strings.Contains(id, "@") {
		return nil, "", fmt.Errorf("mail: build %q: bad message id %q", msg.Subject, id)
	}
	m.SetMessageIDWithValue(id)
	date := msg.Date
	if date.IsZero() {
		date = time.Now()
	}
	m.SetDateWithValue(date.In(flows.Rome)) // Italian readers; the offset keeps it unambiguous
	m.SetUserAgent("cmord")
	keys := make([]string, 0, len(msg.Headers))
	for k := range msg.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := msg.Headers[k]
		if reservedHeaders[strings.ToLower(k)] || k == "" || strings.ContainsAny(k, ": \r\n\t") || strings.ContainsAny(v, "\r\n") {
			return nil, "", fmt.Errorf("mail: build %q: header %q not allowed", msg.Subject, k)
		}
		m.SetGenHeader(gomail.Header(k), v)
	}
	m.SetBodyString(gomail.TypeTextPlain, msg.Text)
	if msg.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	}
	for _, a := range msg.Attachments {
		if a.Name == "" || strings.ContainsAny(a.Name, "/\\\r\n\"") {
			return nil, "", fmt.Errorf("mail: build %q: attachment name %q", msg.Subject, a.Name)
		}
		ct := a.ContentType
		if ct == "" {
			ct = string(gomail.TypeAppOctetStream)
		}
		// A ReadSeeker is written from a.Data as it is; AttachReader copied it whole
		// (io.ReadAll) first, a second copy of a digest's full list.
		m.AttachReadSeeker(a.Name, bytes.NewReader(a.Data), gomail.WithFileContentType(gomail.ContentType(ct)))
	}
	// Sized once for the encoded message (base64 lines of 76 characters and CRLF; the
	// bodies' quoted-printable at worst 78 bytes for 25): a buffer grown by doubling
	// held up to twice the message, 89 MB for the digest of a 100,000-exception backlog.
	var buf bytes.Buffer
	buf.Grow(encodedSize(msg))
	if _, err := m.WriteTo(&buf); err != nil {
		return nil, "", fmt.Errorf("mail: build %q: %w", msg.Subject, err)
	}
	return buf.Bytes(), id, nil
}

// encodedSize is an upper bound of msg's size once built: the bodies in
// quoted-printable (at worst a line of 76 characters and CRLF for 25 bytes, each
// "=XX"), the attachments in base64 (76 characters and CRLF for 57 bytes), the headers
// (recipients, subject and extra headers at worst 4 bytes a byte, word-encoded and
// folded) and 64 KiB for the rest.
func encodedSize(msg Message) int {
	n := 64<<10 + (len(msg.Text)+len(msg.HTML))*78/25 + 2*78 + 4*(len(msg.Subject)+len(msg.From))
	for _, to := range msg.To {
		n += 2*len(to) + 16
	}
	for k, v := range msg.Headers {
		n += 4*(len(k)+len(v)) + 16
	}
	for _, a := range msg.Attachments {
		n += (len(a.Data)+2)/3*4*78/76 + 78 + 1<<10 + 4*len(a.Name)
	}
	return n
}

// newMessageID returns "<32 hex>@<domain of from>" without brackets.
func newMessageID(from string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mail: message id: %w", err)
	}
	domain := "cmord.invalid"
	if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 {
		domain = from[at+1:]
	}
	return hex.EncodeToString(b[:]) + "@" + domain, nil
}
