package logx

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestMaskCF(t *testing.T) {
	cases := []struct{ in, want string }{
		{"RSSMRA85T10A562S", "RSS***********2S"},
		{"cf=RSSMRA85T10A562S;x", "cf=RSS***********2S;x"},
		{"omocodic RSSMRA85T10A56NH here", "omocodic RSS***********NH here"},
		{"lower rssmra85t10a562s", "lower rss***********2s"},
		{"two RSSMRA85T10A562S VRDLGU70A01H501Z", "two RSS***********2S VRD***********1Z"},
		{"file_RSSMRA85T10A562S.csv", "file_RSS***********2S.csv"},
		{"inside XRSSMRA85T10A562S", "inside XRSSMRA85T10A562S"}, // part of a longer code
		{"POD IT001E12345678", "POD IT001E12345678"},
		{"piva 00488410010", "piva 00488410010"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := MaskCF(tc.in); got != tc.want {
			t.Errorf("MaskCF(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

func TestRedactJSON(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "debug", "json", true)
	log = log.With("cf", "RSSMRA85T10A562S", "file", "morosi.csv")
	log.Info("row refused for RSSMRA85T10A562S",
		"name", "Mario Rossi",
		"Email", "mario@example.it",
		"line", 3,
		"detail", "customer RSSMRA85T10A562S has no POD",
		"err", errors.New("bad CF RSSMRA85T10A562T"),
		"who", stringer{"VRDLGU70A01H501Z"},
		slog.Group("row", "denominazione", "Rossi S.r.l.", "pod", "IT001E12345678"),
	)
	log.Debug("debug shows", "cf", "RSSMRA85T10A562S", "name", "Mario Rossi")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), buf.String())
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &info); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"msg":    "row refused for RSS***********2S",
		"cf":     Redacted,
		"file":   "morosi.csv",
		"name":   Redacted,
		"Email":  Redacted,
		"line":   float64(3),
		"detail": "customer RSS***********2S has no POD",
		"err":    "bad CF RSS***********2T",
		"who":    "VRD***********1Z",
		"row":    map[string]any{"denominazione": Redacted, "pod": "IT001E12345678"},
	}
	for k, v := range want {
		if got := info[k]; !equalJSON(got, v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	if strings.Contains(lines[0], "Mario") || strings.Contains(lines[0], "A562S") {
		t.Errorf("personal data leaked at info: %s", lines[0])
	}
	if !strings.Contains(lines[1], "RSSMRA85T10A562S") || !strings.Contains(lines[1], "Mario Rossi") {
		t.Errorf("debug record should be raw: %s", lines[1])
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestNoRedaction(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "info", "text", false).Info("x", "cf", "RSSMRA85T10A562S")
	if !strings.Contains(buf.String(), "cf=RSSMRA85T10A562S") {
		t.Errorf("redact=false changed the record: %s", buf.String())
	}
}

func TestLevelAndFormat(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		env           map[string]string
		wantJSON      bool
		debugShown    bool
	}{
		{"info", "text", nil, false, false},
		{"debug", "json", nil, true, true},
		{"warn", "auto", nil, false, false},
		{"info", "auto", map[string]string{"JOURNAL_STREAM": "8:1234"}, true, false},
		{"info", "auto", map[string]string{"INVOCATION_ID": "abc"}, true, false},
		{"info", "text", map[string]string{"INVOCATION_ID": "abc"}, false, false},
		{"bogus", "auto", nil, false, false},
	} {
		t.Setenv("JOURNAL_STREAM", "")
		t.Setenv("INVOCATION_ID", "")
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		var buf bytes.Buffer
		log := New(&buf, tc.level, tc.format, true)
		log.Debug("d")
		log.Error("e")
		out := buf.String()
		if gotJSON := strings.HasPrefix(out, "{"); gotJSON != tc.wantJSON {
			t.Errorf("%+v: JSON=%v: %s", tc, gotJSON, out)
		}
		if shown := strings.Contains(out, `"d"`) || strings.Contains(out, "msg=d"); shown != tc.debugShown {
			t.Errorf("%+v: debug shown=%v: %s", tc, shown, out)
		}
	}
}

func TestLeveledChange(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	log := NewLeveled(&buf, lv, "text", true)
	log.Debug("hidden")
	lv.Set(slog.LevelDebug)
	log.Debug("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Errorf("level change not applied: %s", buf.String())
	}
}

func BenchmarkRedactedInfo(b *testing.B) {
	log := New(&bytes.Buffer{}, "info", "json", true)
	for b.Loop() {
		log.Info("row refused", "file", "morosi.csv", "line", 3, "cf", "RSSMRA85T10A562S", "detail", "customer RSSMRA85T10A562S has no POD")
	}
}

// TestLogValuesBounded: a log line never carries a raw control character or an
// unbounded value from outside, in text or JSON.
func TestLogValuesBounded(t *testing.T) {
	huge := strings.Repeat("v", 1<<20)
	tests := []struct {
		name   string
		log    func(l *slog.Logger)
		want   string
		absent string
	}{
		{"escape in a field", func(l *slog.Logger) { l.Info("file finished", "file", "a\x1b[2J.csv") }, `a\\x1b[2J.csv`, "\x1b"},
		{"bidi override in a field", func(l *slog.Logger) { l.Info("x", "file", "a\u202egpj.exe") }, `a\\u202egpj.exe`, "\u202e"},
		{"huge value", func(l *slog.Logger) { l.Warn("x", "value", huge) }, "…(1,048,576 bytes)", strings.Repeat("v", MaxLogValue+1)},
		{"huge error", func(l *slog.Logger) { l.Error("x", "err", errors.New(huge)) }, "…(1,048,576 bytes)", strings.Repeat("v", MaxLogValue+1)},
		{"control in the message", func(l *slog.Logger) { l.Info("got \x07") }, `got \\x07`, "\x07"},
	}
	for _, format := range []string{"json", "text"} {
		for _, tc := range tests {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				var b strings.Builder
				tc.log(New(&b, "info", format, true))
				out := b.String()
				// JSON (and text, when it quotes) doubles the escape's backslash.
				single := strings.ReplaceAll(tc.want, `\\`, `\`)
				if !(strings.Contains(out, tc.want) || strings.Contains(out, single)) || strings.Contains(out, tc.absent) {
					t.Errorf("%.300q: want %q, not %.20q", out, tc.want, tc.absent)
				}
			})
		}
	}
}
