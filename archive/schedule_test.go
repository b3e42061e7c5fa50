package archive

import (
	"context"
	"errors"
	"testing"
	"time"
)

func openScheduleTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestScheduleLedger(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openScheduleTest(t, dir).ScheduleLedger()
	slot1 := time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC)
	slot2 := slot1.Add(24*time.Hour + time.Hour)

	if _, ok, err := l.LastSlot(ctx, "digest"); ok || err != nil {
		t.Fatalf("empty ledger: ok=%v err=%v", ok, err)
	}
	steps := []struct {
		name string
		do   func() (bool, error)
		want bool
	}{
		{"begin slot1", func() (bool, error) { return l.Begin(ctx, "digest", slot1, false) }, true},
		{"begin slot1 again refused", func() (bool, error) { return l.Begin(ctx, "digest", slot1, false) }, false},
		{"same instant in another zone refused", func() (bool, error) {
			return l.Begin(ctx, "digest", slot1.In(time.FixedZone("CEST", 7200)), false)
		}, false},
		{"other job same slot", func() (bool, error) { return l.Begin(ctx, "poll", slot1, false) }, true},
		{"finish slot1", func() (bool, error) { return true, l.Finish(ctx, "digest", slot1, nil) }, true},
		{"begin finished slot refused", func() (bool, error) { return l.Begin(ctx, "digest", slot1, false) }, false},
		{"skip slot1 keeps ok row", func() (bool, error) { return true, l.Skipped(ctx, "digest", []time.Time{slot1, slot2}, "missed") }, true},
		{"begin skipped slot refused", func() (bool, error) { return l.Begin(ctx, "digest", slot2, false) }, false},
		{"manual run", func() (bool, error) { return l.Begin(ctx, "digest", slot2.Add(time.Hour), true) }, true},
	}
	for _, st := range steps {
		got, err := st.do()
		if err != nil || got != st.want {
			t.Fatalf("%s: got %v, %v; want %v", st.name, got, err, st.want)
		}
	}
	if err := l.Finish(ctx, "digest", slot1, errors.New("again")); err == nil {
		t.Error("finishing a finished slot accepted")
	}
	last, ok, err := l.LastSlot(ctx, "digest")
	if err != nil || !ok || !last.Equal(slot2) {
		t.Errorf("LastSlot = %s %v %v, want %s (manual runs ignored)", last, ok, err, slot2)
	}
	runs, err := l.ScheduleRuns(ctx, "digest", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ state, errText string }{{"running", ""}, {"skipped", "missed"}, {"ok", ""}}
	if len(runs) != len(want) {
		t.Fatalf("runs %+v", runs)
	}
	for i, w := range want {
		if runs[i].State != w.state || runs[i].Error != w.errText {
			t.Errorf("run %d = %+v, want %+v", i, runs[i], w)
		}
	}

	// The process dies: reopening and recovering marks the running rows failed.
	l.s.Close()
	l = openScheduleTest(t, dir).ScheduleLedger()
	lost, err := l.MarkInterrupted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(lost["digest"]) != 1 || len(lost["poll"]) != 1 || !lost["poll"][0].Equal(slot1) {
		t.Errorf("interrupted %v", lost)
	}
	runs, _ = l.ScheduleRuns(ctx, "", 0)
	for _, r := range runs {
		if r.State == "running" {
			t.Errorf("still running after recovery: %+v", r)
		}
	}
}
