package archive

import (
	"context"
	"testing"
	"time"
)

// TestUncleanStreak drives the run ledger through histories of runs and checks the
// streak of unclean exits a start would see: runs without a clean stop counted newest
// first, back to a clean stop (not counted) or to a run that had stayed up (counted:
// it worked, then died, and the loop began there).
func TestUncleanStreak(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	type run struct {
		clean, up bool
		err       string
	}
	tests := []struct {
		name      string
		runs      []run // oldest first
		exits     int
		sinceRun  int // index of the run whose start is Since
		lastError string
	}{
		{"no run", nil, 0, 0, ""},
		{"clean stop", []run{{clean: true}}, 0, 0, ""},
		{"one kill -9", []run{{clean: true}, {}}, 1, 1, ""},
		{"a panic recorded", []run{{clean: true}, {err: "panic: boom"}}, 1, 1, "panic: boom"},
		{"three in a row", []run{{clean: true}, {}, {}, {err: "fatal error: listen"}}, 3, 1, "fatal error: listen"},
		{"all unclean, no clean stop ever", []run{{}, {}}, 2, 0, ""},
		{"stopped cleanly after an unclean exit", []run{{}, {}, {clean: true}}, 0, 0, ""},
		{"a run up an hour ends the streak, counted", []run{{}, {up: true}, {}, {}}, 3, 1, ""},
		{"the last one was up an hour", []run{{}, {}, {up: true}}, 1, 2, ""},
		{"up, then stopped cleanly", []run{{}, {up: true, clean: true}}, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := openScheduleTest(t, t.TempDir())
			var starts []time.Time
			for i, r := range tt.runs {
				at := t0.Add(time.Duration(i) * time.Minute)
				starts = append(starts, at)
				id, err := st.StartRun(ctx, 1000+i, "test", at)
				if err != nil {
					t.Fatal(err)
				}
				if r.up {
					if err := st.MarkRunUp(ctx, id, at.Add(time.Hour)); err != nil {
						t.Fatal(err)
					}
				}
				if r.err != "" {
					if err := st.RunError(ctx, id, r.err, at.Add(time.Second)); err != nil {
						t.Fatal(err)
					}
				}
				if r.clean {
					if err := st.StopRun(ctx, id, at.Add(30*time.Second)); err != nil {
						t.Fatal(err)
					}
				}
			}
			// This start: the streak before it, and the same with no run running
			// (cmord alert --unit-failed).
			cur, err := st.StartRun(ctx, 4242, "test", t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			before, err := st.UncleanStreakBefore(ctx, cur)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.StopRun(ctx, cur, t0.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			// Stopped cleanly: now nothing is unclean whatever came before.
			if after, err := st.UncleanStreakBefore(ctx, 0); err != nil || after.Exits != 0 {
				t.Errorf("after a clean stop: %+v, %v", after, err)
			}
			if before.Exits != tt.exits {
				t.Fatalf("exits = %d, want %d (%+v)", before.Exits, tt.exits, before)
			}
			if tt.exits == 0 {
				return
			}
			if !before.Since.Equal(starts[tt.sinceRun]) {
				t.Errorf("since = %v, want %v", before.Since, starts[tt.sinceRun])
			}
			last := len(tt.runs) - 1
			if before.Last.PID != 1000+last || !before.Last.StartedAt.Equal(starts[last]) || before.Last.Error != tt.lastError || before.Last.Version != "test" {
				t.Errorf("last = %+v, want PID %d started %v error %q", before.Last, 1000+last, starts[last], tt.lastError)
			}
			if tt.lastError != "" && before.Last.ErrorAt.IsZero() {
				t.Error("the error's time was not kept")
			}
		})
	}
}

// TestRunLedgerSurvivesReopen: what a run recorded is there for the next process (the
// ledger is the only memory a restarted daemon has), and an abandoned run stays
// unclean across the reopen.
func TestRunLedgerSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.StartRun(ctx, 7, "v1", at)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RunError(ctx, id, "panic: nil map", at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	st.Close() // no StopRun: the process died
	st2 := openScheduleTest(t, dir)
	runs, err := st2.Runs(ctx, 0, 0)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	if r := runs[0]; r.Clean() || r.PID != 7 || r.Error != "panic: nil map" || !r.StartedAt.Equal(at) {
		t.Errorf("run = %+v", r)
	}
}

// TestRunLedgerPruned: the ledger keeps the newest RunsKept runs, whatever the number
// of starts, and the streak still counts the unclean exits of the runs it keeps.
func TestRunLedgerPruned(t *testing.T) {
	if RunsKept <= MaxUncleanStreak {
		t.Fatalf("RunsKept %d must exceed MaxUncleanStreak %d: the streak reads that far back", RunsKept, MaxUncleanStreak)
	}
	defer func(n int) { RunsKept = n }(RunsKept)
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		kept, starts int
		wantOldest   int64
	}{
		{5, 3, 1},
		{5, 5, 1},
		{5, 6, 2},
		{5, 12, 8},
		{1, 4, 4},
	} {
		RunsKept = tt.kept
		ctx := context.Background()
		st := openScheduleTest(t, t.TempDir())
		var last int64
		for i := 0; i < tt.starts; i++ {
			id, err := st.StartRun(ctx, 100+i, "test", t0.Add(time.Duration(i)*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			last = id
		}
		runs, err := st.Runs(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := min(tt.kept, tt.starts)
		if len(runs) != want || runs[0].ID != last || runs[len(runs)-1].ID != tt.wantOldest {
			t.Errorf("kept %d, %d starts: %d runs, newest %d oldest %d; want %d, newest %d, oldest %d",
				tt.kept, tt.starts, len(runs), runs[0].ID, runs[len(runs)-1].ID, want, last, tt.wantOldest)
		}
		streak, err := st.UncleanStreakBefore(ctx, last)
		if err != nil {
			t.Fatal(err)
		}
		if streak.Exits != want-1 {
			t.Errorf("kept %d, %d starts: streak before the last %d, want %d", tt.kept, tt.starts, streak.Exits, want-1)
		}
	}
}
