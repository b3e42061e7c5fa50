package logx

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Reloadable is a logger whose level, format and redaction can be changed while the
// program runs (SIGHUP re-reads [log]). Loggers derived from it with With or WithGroup
// (the daemon's per-component loggers) follow the change too: each rebuilds its
// handler from the current base the first time it logs after a change.
type Reloadable struct {
	w    io.Writer
	mu   sync.Mutex // serialises Set
	cur  atomic.Pointer[generation]
	base *slog.Logger
}

type generation struct {
	n       uint64
	handler slog.Handler
	level   slog.Level
	format  string
	redact  bool
}

// NewReloadable returns a Reloadable logger writing to w with the given settings (as
// New takes them).
func NewReloadable(w io.Writer, level, format string, redact bool) *Reloadable {
	r := &Reloadable{w: w}
	r.Set(level, format, redact)
	r.base = slog.New(&switchHandler{root: r})
	return r
}

// Logger is the logger to hand out; it and every logger derived from it follow Set.
func (r *Reloadable) Logger() *slog.Logger { return r.base }

// Set applies new settings to every record logged from now on. It reports whether
// anything changed.
func (r *Reloadable) Set(level, format string, redact bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	lv := ParseLevel(level)
	old := r.cur.Load()
	if !r.Changes(level, format, redact) {
		return false
	}
	g := &generation{level: lv, format: format, redact: redact}
	if old != nil {
		g.n = old.n + 1
	}
	v := new(slog.LevelVar)
	v.Set(lv)
	g.handler = NewLeveled(r.w, v, format, redact).Handler()
	r.cur.Store(g)
	return true
}

// Changes reports whether Set with these settings would change anything.
func (r *Reloadable) Changes(level, format string, redact bool) bool {
	old := r.cur.Load()
	return old == nil || old.level != ParseLevel(level) || useJSON(old.format) != useJSON(format) || old.redact != redact
}

// Settings are the level and format in force ("json" or "text").
func (r *Reloadable) Settings() (level slog.Level, format string) {
	g := r.cur.Load()
	format = "text"
	if useJSON(g.format) {
		format = "json"
	}
	return g.level, format
}

// switchHandler hands each record to the current generation's handler, with the
// attributes and groups of its With/WithGroup chain applied.
type switchHandler struct {
	root  *Reloadable
	ops   []func(slog.Handler) slog.Handler
	cache atomic.Pointer[derived]
}

type derived struct {
	n       uint64
	handler slog.Handler
}

func (h *switchHandler) current() slog.Handler {
	g := h.root.cur.Load()
	if len(h.ops) == 0 {
		return g.handler
	}
	if c := h.cache.Load(); c != nil && c.n == g.n {
		return c.handler
	}
	out := g.handler
	for _, op := range h.ops {
		out = op(out)
	}
	h.cache.Store(&derived{n: g.n, handler: out})
	return out
}

func (h *switchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.root.cur.Load().level
}

func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h *switchHandler) with(op func(slog.Handler) slog.Handler) *switchHandler {
	ops := append(append([]func(slog.Handler) slog.Handler{}, h.ops...), op)
	return &switchHandler{root: h.root, ops: ops}
}

func (h *switchHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(func(x slog.Handler) slog.Handler { return x.WithAttrs(attrs) })
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	return h.with(func(x slog.Handler) slog.Handler { return x.WithGroup(name) })
}
