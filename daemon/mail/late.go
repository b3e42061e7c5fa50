package mail

import (
	"bufio"
	"bytes"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"time"

	"github.com/cmord/cmord/flows"
)

// DefaultLateAfter is how long after it was queued a message is sent late: its body
// then opens with a line that says so (Late), and the daemon records the outage
// (mail_late). Four failed attempts of the outbox's backoff (1+2+4+8 minutes).
const DefaultLateAfter = 15 * time.Minute

// Late says why and how late a message goes out.
type Late struct {
	QueuedAt, SentAt time.Time
	FailedAttempts   int    // attempts that failed before this one; 0: cmord did not try (it was not running)
	Lang             string // "en", else Italian
}

// Line is the sentence that opens a late message's text, in Rome time: "Inviato in
// ritardo: accodato alle 14:05 del 03/12/2026, inviato alle 19:10 del 03/12/2026 (5 h
// 5 min dopo): il server di posta non rispondeva. Il contenuto è quello di allora."
func (l Late) Line() string {
	q, s := l.QueuedAt.In(flows.Rome), l.SentAt.In(flows.Rome)
	delay := FormatDelay(l.SentAt.Sub(l.QueuedAt), l.Lang)
	if l.Lang == "en" {
		why := "the mail server did not answer"
		if l.FailedAttempts == 0 {
			why = "cmord could not send it earlier (it was not running)"
		}
		return fmt.Sprintf("Sent late: queued at %s on %s, sent at %s on %s (%s later): %s. What it says is as of then.",
			q.Format("15:04"), q.Format("02/01/2006"), s.Format("15:04"), s.Format("02/01/2006"), delay, why)
	}
	why := "il server di posta non rispondeva"
	if l.FailedAttempts == 0 {
		why = "cmord non ha potuto inviarlo prima (non era in esecuzione)"
	}
	return fmt.Sprintf("Inviato in ritardo: accodato alle %s del %s, inviato alle %s del %s (%s dopo): %s. Il contenuto è quello di allora.",
		q.Format("15:04"), q.Format("02/01/2006"), s.Format("15:04"), s.Format("02/01/2006"), delay, why)
}

// FormatDelay writes d as "5 h 5 min", "40 min", "2 g 3 h" ("2 d 3 h" in English).
func FormatDelay(d time.Duration, lang string) string {
	m := int(d.Round(time.Minute) / time.Minute)
	days, hours, mins := m/(24*60), m/60%24, m%60
	day := "g"
	if lang == "en" {
		day = "d"
	}
	switch {
	case days > 0:
		return fmt.Sprintf("%d %s %d h", days, day, hours)
	case hours > 0 && mins > 0:
		return fmt.Sprintf("%d h %d min", hours, mins)
	case hours > 0:
		return fmt.Sprintf("%d h", hours)
	}
	return fmt.Sprintf("%d min", mins)
}

// MarkLate returns eml, as Build wrote it, with l's line at the top of its text and
// HTML bodies and its Date header set to l.SentAt (the queue time stays in the line and
// in X-Cmord-Queued-At): a mail clients sort by Date is shown with the mail that
// arrives now, not hours down the inbox. The rest (Message-ID, attachments) is kept
// byte for byte. The outbox keeps eml as queued.
func MarkLate(eml []byte, l Late) ([]byte, error) {
	head, body, ok := bytes.Cut(eml, []byte("\r\n\r\n"))
	if !ok {
		return nil, fmt.Errorf("mail: mark late: no end of header")
	}
	hdr, err := readHeader(head)
	if err != nil {
		return nil, err
	}
	newBody, err := markPart(hdr, body, l, false)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(eml) + 1024)
	for _, line := range strings.Split(string(head), "\r\n") {
		if strings.HasPrefix(strings.ToLower(line), "date:") {
			out.WriteString("Date: " + l.SentAt.In(flows.Rome).Format(time.RFC1123Z) + "\r\n")
			out.WriteString("X-Cmord-Queued-At: " + l.QueuedAt.In(flows.Rome).Format(time.RFC1123Z) + "\r\n")
			continue
		}
		out.WriteString(line + "\r\n")
	}
	out.WriteString("\r\n")
	out.Write(newBody)
	return out.Bytes(), nil
}

func readHeader(head []byte) (textproto.MIMEHeader, error) {
	r := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(head), strings.NewReader("\r\n\r\n"))))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("mail: mark late: header: %w", err)
	}
	return h, nil
}

// markPart puts the line at the top of a text/plain or text/html body, or of every
// alternative of a multipart/alternative, or of the first part of another multipart
// (the message; the attachments follow it).
func markPart(h textproto.MIMEHeader, body []byte, l Late, done bool) ([]byte, error) {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, fmt.Errorf("mail: mark late: %w", err)
	}
	switch {
	case mt == "text/plain" || mt == "text/html":
		return markText(h, body, mt == "text/html", l)
	case strings.HasPrefix(mt, "multipart/"):
		b := params["boundary"]
		if b == "" {
			return nil, fmt.Errorf("mail: mark late: multipart without boundary")
		}
		delim := []byte("--" + b)
		chunks := bytes.Split(body, delim)
		// chunks[0] is the preamble; each next starts "\r\n<part>\r\n" or "--" (the end).
		for i := 1; i < len(chunks); i++ {
			c := chunks[i]
			if bytes.HasPrefix(c, []byte("--")) || !bytes.HasPrefix(c, []byte("\r\n")) {
				break
			}
			part := bytes.TrimSuffix(c[2:], []byte("\r\n"))
			ph, pb, ok := bytes.Cut(part, []byte("\r\n\r\n"))
			if !ok {
				return nil, fmt.Errorf("mail: mark late: part without header")
			}
			phdr, err := readHeader(ph)
			if err != nil {
				return nil, err
			}
			nb, err := markPart(phdr, pb, l, false)
			if err != nil {
				return nil, err
			}
			var nc bytes.Buffer
			nc.WriteString("\r\n")
			nc.Write(ph)
			nc.WriteString("\r\n\r\n")
			nc.Write(nb)
			nc.WriteString("\r\n")
			chunks[i] = nc.Bytes()
			if mt != "multipart/alternative" {
				break
			}
		}
		return bytes.Join(chunks, delim), nil
	}
	return body, nil
}

func markText(h textproto.MIMEHeader, body []byte, isHTML bool, l Late) ([]byte, error) {
	qp := strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable")
	text := body
	if qp {
		dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return nil, fmt.Errorf("mail: mark late: %w", err)
		}
		text = dec
	} else if cte := strings.ToLower(h.Get("Content-Transfer-Encoding")); cte != "" && cte != "7bit" && cte != "8bit" {
		return body, nil // base64 text: not written by Build; left as it is
	}
	var s string
	if isHTML {
		p := `<p style="background:#fff3cd;border:1px solid #e0a800;padding:6px"><strong>` + html.EscapeString(l.Line()) + `</strong></p>`
		t := string(text)
		if i := strings.Index(strings.ToLower(t), "<body"); i >= 0 {
			if j := strings.IndexByte(t[i:], '>'); j >= 0 {
				s = t[:i+j+1] + p + t[i+j+1:]
			}
		}
		if s == "" {
			s = p + t
		}
	} else {
		s = l.Line() + "\n\n" + string(text)
	}
	if !qp {
		return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")), nil
	}
	var out bytes.Buffer
	w := quotedprintable.NewWriter(&out)
	if _, err := w.Write([]byte(s)); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
