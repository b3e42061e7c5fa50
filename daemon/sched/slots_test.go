package sched

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/cmord/cmord/flows"
)

func romeDay(t *testing.T, day string) (start, end time.Time) {
	t.Helper()
	d, err := time.ParseInLocation("2006-01-02", day, flows.Rome)
	if err != nil {
		t.Fatal(err)
	}
	return d.Add(-time.Nanosecond), d.AddDate(0, 0, 1).Add(-time.Nanosecond)
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDaySlotsAcrossDST(t *testing.T) {
	tests := []struct {
		name string
		spec string
		day  string
		want []string // UTC instants, or nil with wantN
		n    int
	}{
		{"daily fall-back 2025 runs once at 02:30 CEST", "30 2 * * *", "2025-10-26", []string{"2025-10-26T00:30:00Z"}, 1},
		{"daily fall-back 2026 runs once at 02:30 CEST", "30 2 * * *", "2026-10-25", []string{"2026-10-25T00:30:00Z"}, 1},
		{"daily spring-forward 2025 runs at 03:00 CEST", "30 2 * * *", "2025-03-30", []string{"2025-03-30T01:00:00Z"}, 1},
		{"daily spring-forward 2026 runs at 03:00 CEST", "30 2 * * *", "2026-03-29", []string{"2026-03-29T01:00:00Z"}, 1},
		{"daily normal summer day", "30 2 * * *", "2025-06-15", []string{"2025-06-15T00:30:00Z"}, 1},
		{"daily normal winter day", "30 2 * * *", "2025-12-15", []string{"2025-12-15T01:30:00Z"}, 1},
		{"daily outside the DST hour on fall-back", "30 7 * * *", "2025-10-26", []string{"2025-10-26T06:30:00Z"}, 1},
		{"two gap times collapse into one slot", "15,45 2 * * *", "2025-03-30", []string{"2025-03-30T01:00:00Z"}, 1},
		{"gap slot collides with 03:00 slot", "0 2,3 * * *", "2025-03-30", []string{"2025-03-30T01:00:00Z"}, 1},
		{"fixed hours on fall-back run once each", "0 2,3 * * *", "2025-10-26", []string{"2025-10-26T00:00:00Z", "2025-10-26T02:00:00Z"}, 2},
		{"hourly on fall-back: 25 runs, both 02:00", "0 * * * *", "2025-10-26", nil, 25},
		{"hourly on spring-forward: 23 runs, no 02:00", "0 * * * *", "2025-03-30", nil, 23},
		{"hourly on a normal day", "0 * * * *", "2025-06-15", nil, 24},
		{"every 15 minutes on fall-back", "*/15 * * * *", "2026-10-25", nil, 100},
		{"every 15 minutes on spring-forward", "*/15 * * * *", "2026-03-29", nil, 92},
		{"weekday spec skips Sunday", "30 7 * * 1-5", "2025-10-26", nil, 0},
		{"@daily at midnight", "@daily", "2025-10-26", []string{"2025-10-25T22:00:00Z"}, 1},
		{"explicit CRON_TZ=UTC", "CRON_TZ=UTC 30 2 * * *", "2025-10-26", []string{"2025-10-26T02:30:00Z"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			from, to := romeDay(t, tt.day)
			got := s.Between(from, to, 0)
			if len(got) != tt.n {
				t.Fatalf("%d slots, want %d: %v", len(got), tt.n, got)
			}
			for i, w := range tt.want {
				if !got[i].Equal(utc(w)) {
					t.Errorf("slot %d = %s, want %s", i, got[i].UTC().Format(time.RFC3339), w)
				}
			}
		})
	}
}

// Every-hour specs follow elapsed time: consecutive slots are exactly one hour apart
// across both transitions.
func TestHourlyIntervalsAcrossDST(t *testing.T) {
	s, _ := Parse("0 * * * *", nil)
	for _, day := range []string{"2025-03-30", "2025-10-26", "2026-03-29", "2026-10-25"} {
		from, to := romeDay(t, day)
		slots := s.Between(from.Add(-3*time.Hour), to.Add(3*time.Hour), 0)
		for i := 1; i < len(slots); i++ {
			if d := slots[i].Sub(slots[i-1]); d != time.Hour {
				t.Errorf("%s: %s → %s is %s", day, slots[i-1], slots[i], d)
			}
		}
	}
}

// The reason this package computes slots itself (anchors §2.3): robfig's Next fires the
// daily job twice on fall-back and skips it on spring-forward. If a future robfig fixes
// this, the test tells us the workaround may go.
func TestRobfigNextIsWrongOnDSTDays(t *testing.T) {
	spec, err := cron.ParseStandard("30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	spec.(*cron.SpecSchedule).Location = flows.Rome
	count := func(day string) int {
		from, to := romeDay(t, day)
		n := 0
		for x := spec.Next(from); !x.After(to); x = spec.Next(x) {
			n++
		}
		return n
	}
	if n := count("2025-10-26"); n != 2 {
		t.Errorf("robfig fall-back runs = %d (measured 2)", n)
	}
	if n := count("2025-03-30"); n != 0 {
		t.Errorf("robfig spring-forward runs = %d (measured 0)", n)
	}
}

func TestNextPrevConsistent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := utc("2025-01-01T00:00:00Z")
	for _, spec := range []string{"30 2 * * *", "0 * * * *", "*/7 1-3 * * *", "0 0 1 * *", "30 7 * * 1-5", "@every 5m"} {
		s, err := Parse(spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 300; i++ {
			at := base.Add(time.Duration(r.Int64N(int64(2 * 365 * 24 * time.Hour))))
			n := s.Next(at)
			if !n.After(at) {
				t.Fatalf("%s: Next(%s) = %s not after", spec, at, n)
			}
			if p := s.Prev(n); !p.Equal(n) {
				t.Fatalf("%s: Prev(Next(%s)) = %s, want %s", spec, at, p, n)
			}
			if p := s.Prev(at); !p.IsZero() && (p.After(at) || !s.Next(p).Equal(n)) {
				t.Fatalf("%s: Prev(%s) = %s, Next of it %s, want %s", spec, at, p, s.Next(p), n)
			}
			if b := s.Between(at, n, 0); len(b) != 1 || !b[0].Equal(n) {
				t.Fatalf("%s: Between(%s, %s) = %v", spec, at, n, b)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, spec := range []string{"", "61 * * * *", "* * *", "@sometimes"} {
		if _, err := Parse(spec, nil); err == nil {
			t.Errorf("Parse(%q) accepted", spec)
		}
	}
}

func TestBetweenLimitKeepsNewest(t *testing.T) {
	s, _ := Parse("* * * * *", nil)
	from := utc("2025-06-01T00:00:00Z")
	got := s.Between(from, from.Add(30*24*time.Hour), 1000)
	if len(got) != 1000 {
		t.Fatalf("len = %d", len(got))
	}
	if !got[999].Equal(from.Add(30 * 24 * time.Hour)) {
		t.Errorf("last = %s", got[999])
	}
}
