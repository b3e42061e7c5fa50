// Package logx sets up cmord's log/slog logger: text on a terminal, JSON under systemd
// (journald keeps the fields), and redaction of personal data in records at info level
// and above, so that what reaches the journal carries no codice fiscale or name.
// Debug records are left as they are: an operator turns debug on to see them.
package logx

import (
	"github.com/cmord/cmord/flows"

	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
)

// New returns a logger writing to w. level is debug|info|warn|error (anything else is
// info); format is auto|text|json, where auto means JSON under systemd and text
// otherwise; redact masks personal data in records at info level and above.
func New(w io.Writer, level, format string, redact bool) *slog.Logger {
	lv := new(slog.LevelVar)
	lv.Set(ParseLevel(level))
	return NewLeveled(w, lv, format, redact)
}

// NewLeveled is New with a level that can be changed later (on reload).
func NewLeveled(w io.Writer, level *slog.LevelVar, format string, redact bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: boundAttr}
	var h slog.Handler
	if useJSON(format) {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	if redact {
		h = NewRedactHandler(h)
	}
	return slog.New(h)
}

// MaxLogValue bounds one string of a log line (the message, a field, an error): a
// value from outside (a file name, an SII text) is cut with its size noted, and its
// control characters are escaped, whatever the handler (JSON leaves U+202E raw).
const MaxLogValue = 4096

func boundAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); len(s) > 0 {
			if b := flows.Shown(s, MaxLogValue); b != s {
				return slog.String(a.Key, b)
			}
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			if s := err.Error(); flows.Shown(s, MaxLogValue) != s {
				return slog.String(a.Key, flows.Shown(s, MaxLogValue))
			}
		}
	}
	return a
}

// ParseLevel maps debug|info|warn|error to a slog.Level (info when unknown).
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func useJSON(format string) bool {
	switch format {
	case "json":
		return true
	case "text":
		return false
	}
	return UnderSystemd()
}

// UnderSystemd reports whether the process runs as a systemd service (its output goes
// to the journal): systemd sets JOURNAL_STREAM and INVOCATION_ID for services.
func UnderSystemd() bool {
	return os.Getenv("JOURNAL_STREAM") != "" || os.Getenv("INVOCATION_ID") != ""
}

// Redacted replaces the value of an attribute holding personal data.
const Redacted = "[redacted]"

// PersonalKeys are attribute keys (compared lowercased) whose values are personal data.
var PersonalKeys = map[string]bool{
	"cf": true, "codice_fiscale": true, "cf_cliente": true, "piva_cliente": true,
	"name": true, "nome": true, "cognome": true, "customer": true, "cliente": true,
	"customer_name": true, "denominazione": true, "ragione_sociale": true,
	"email": true, "mail": true, "pec": true, "phone": true, "telefono": true,
	"address": true, "indirizzo": true, "iban": true,
}

// RedactHandler wraps a handler and masks personal data in records at info level and
// above: values of PersonalKeys become "[redacted]", and any codice fiscale inside a
// string (message, attribute, error text) is masked as RSS***********2S.
type RedactHandler struct {
	raw, masked slog.Handler // the same handler with raw and with masked WithAttrs
}

// NewRedactHandler wraps h.
func NewRedactHandler(h slog.Handler) *RedactHandler { return &RedactHandler{raw: h, masked: h} }

func (h *RedactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.raw.Enabled(ctx, l)
}

func (h *RedactHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		return h.raw.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, MaskCF(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.masked.Handle(ctx, out)
}

func (h *RedactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = redactAttr(a)
	}
	return &RedactHandler{raw: h.raw.WithAttrs(attrs), masked: h.masked.WithAttrs(masked)}
}

func (h *RedactHandler) WithGroup(name string) slog.Handler {
	return &RedactHandler{raw: h.raw.WithGroup(name), masked: h.masked.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if PersonalKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, Redacted)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, MaskCF(v.String()))
	case slog.KindGroup:
		group := v.Group()
		out := make([]any, len(group))
		for i, g := range group {
			out[i] = redactAttr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []string:
			s = strings.Join(x, " ")
		default:
			return slog.Attr{Key: a.Key, Value: v}
		}
		if m := MaskCF(s); m != s {
			return slog.String(a.Key, m)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// cfPattern is a codice fiscale with omocodia (brief §6.3), any case.
var cfPattern = regexp.MustCompile(`(?i)[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]`)

// MaskCF masks every 16-character codice fiscale in s that stands alone (not inside a
// longer run of letters and digits), keeping the first 3 and last 2 characters:
// RSSMRA85T10A562S → RSS***********2S. Enough remains to tell two people apart in a
// log, too little to identify one.
func MaskCF(s string) string {
	locs := cfPattern.FindAllStringIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, l := range locs {
		if (l[0] > 0 && isAlnum(s[l[0]-1])) || (l[1] < len(s) && isAlnum(s[l[1]])) {
			continue
		}
		b.WriteString(s[prev:l[0]])
		b.WriteString(s[l[0] : l[0]+3])
		b.WriteString(strings.Repeat("*", 11))
		b.WriteString(s[l[1]-2 : l[1]])
		prev = l[1]
	}
	b.WriteString(s[prev:])
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
