package logx

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// A Reloadable logger changes level and format for the loggers already handed out,
// including those derived with With (the daemon's per-component loggers), and keeps
// their attributes across the change.
func TestReloadableSet(t *testing.T) {
	var buf bytes.Buffer
	r := NewReloadable(&buf, "info", "text", true)
	comp := r.Logger().With("component", "intake")
	comp.Debug("hidden at info")
	comp.Info("first", "cf", "RSSMRA85T10A562S")
	if !r.Set("debug", "json", true) {
		t.Fatal("Set reported no change")
	}
	if r.Set("debug", "json", true) {
		t.Error("Set of the same settings reported a change")
	}
	comp.Debug("second")
	r.Set("warn", "text", true)
	comp.Info("third: hidden at warn")
	comp.Warn("fourth")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (first, second, fourth), got %d:\n%s", len(lines), buf.String())
	}
	tests := []struct {
		line      string
		json      bool
		msg       string
		wantAttrs []string
	}{
		{lines[0], false, "msg=first", []string{"component=intake", "cf=[redacted]"}},
		{lines[1], true, `"msg":"second"`, []string{`"component":"intake"`, `"level":"DEBUG"`}},
		{lines[2], false, "msg=fourth", []string{"component=intake", "level=WARN"}},
	}
	for i, tt := range tests {
		var m map[string]any
		isJSON := json.Unmarshal([]byte(tt.line), &m) == nil
		if isJSON != tt.json {
			t.Errorf("line %d: JSON %v, want %v: %s", i, isJSON, tt.json, tt.line)
		}
		for _, w := range append(tt.wantAttrs, tt.msg) {
			if !strings.Contains(tt.line, w) {
				t.Errorf("line %d lacks %q: %s", i, w, tt.line)
			}
		}
	}
	if lv, f := r.Settings(); lv.String() != "WARN" || f != "text" {
		t.Errorf("Settings() = %s %s, want WARN text", lv, f)
	}
}

// Records logged while the settings change are each written whole, in one format or
// the other (run with -race to check the switch).
func TestReloadableConcurrent(t *testing.T) {
	var buf syncBuf
	r := NewReloadable(&buf, "info", "text", true)
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			l := r.Logger().With("g", g)
			for i := 0; i < 200; i++ {
				l.Info("record", "i", i)
			}
		}()
	}
	for i := 0; i < 50; i++ {
		if i%2 == 0 {
			r.Set("info", "json", true)
		} else {
			r.Set("info", "text", true)
		}
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") && !strings.HasPrefix(l, "time=") {
			t.Fatalf("a record cut or mixed: %q", l)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
