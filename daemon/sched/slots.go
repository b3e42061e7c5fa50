// Package sched runs cmord's periodic jobs (SFTP polls, flow builders, the digest) on
// cron specifications in Europe/Rome, with a run ledger so that a slot runs once even
// across DST changes and restarts, missed slots are reported, panics are recovered and
// a job never overlaps itself.
//
// Specs are parsed by robfig/cron/v3 (cron.ParseStandard), but slots are computed here:
// robfig's Schedule.Next fires a daily 02:30 job twice on the autumn fall-back day and
// not at all on the spring-forward day (anchors §2.3, measured for Europe/Rome).
//
// Slot rules (ISC/Vixie cron behaviour):
//   - A slot is identified by its UTC instant; the ledger deduplicates on it.
//   - Fixed-hour jobs (the hour field lists hours, e.g. "30 2 * * *"): on fall-back the
//     repeated wall time runs once, at its first occurrence (CEST); on spring-forward a
//     wall time inside the gap runs once at the transition (03:00 CEST); several gap
//     times collapse into that one slot.
//   - Every-hour jobs (hour field "*" or all 24 hours, e.g. "0 * * * *", "*/15 * * * *")
//     follow elapsed time: on fall-back both 02:00 CEST and 02:00 CET run (25 runs that
//     day), on spring-forward the non-existent 02:xx slots do not exist (23 runs), so
//     the interval between runs is never longer or shorter than the spec implies.
//   - "@every D" schedules are aligned to multiples of D since the Unix epoch.
package sched

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// starBit is robfig's marker for a field written as "*".
const starBit = 1 << 63

// maxSearchDays bounds the search for a matching day (a spec like "0 0 30 2 *" never
// matches); 8 years covers every leap-day spec.
const maxSearchDays = 366 * 8

// Schedule is a parsed cron spec with DST-correct slot computation.
type Schedule struct {
	spec  string
	loc   *time.Location
	cs    *cron.SpecSchedule          // nil for @every
	every *cron.ConstantDelaySchedule // nil for specs
}

// Parse parses a standard 5-field spec (or @daily, @hourly, @every 5m, CRON_TZ=Zone ...).
// loc is used unless the spec names its own zone with CRON_TZ= or TZ=.
func Parse(spec string, loc *time.Location) (*Schedule, error) {
	if loc == nil {
		loc = defaultLocation()
	}
	parsed, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("sched: spec %q: %w", spec, err)
	}
	s := &Schedule{spec: spec, loc: loc}
	switch v := parsed.(type) {
	case *cron.SpecSchedule:
		s.cs = v
		if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
			s.loc = v.Location
		}
		if v.Second != 1 {
			return nil, fmt.Errorf("sched: spec %q: seconds are not supported", spec)
		}
	case cron.ConstantDelaySchedule:
		s.every = &v
	default:
		return nil, fmt.Errorf("sched: spec %q: unsupported schedule type %T", spec, parsed)
	}
	return s, nil
}

// String returns the spec as written.
func (s *Schedule) String() string { return s.spec }

// Location returns the zone the spec is read in.
func (s *Schedule) Location() *time.Location { return s.loc }

// everyHour reports whether the hour field covers all 24 hours.
func (s *Schedule) everyHour() bool {
	const all = 1<<24 - 1
	return s.cs.Hour&starBit != 0 || s.cs.Hour&all == all
}

func (s *Schedule) dayMatches(d time.Time) bool {
	if s.cs.Month&(1<<uint(d.Month())) == 0 {
		return false
	}
	domMatch := s.cs.Dom&(1<<uint(d.Day())) != 0
	dowMatch := s.cs.Dow&(1<<uint(d.Weekday())) != 0
	if s.cs.Dom&starBit != 0 || s.cs.Dow&starBit != 0 {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

// daySlots returns the sorted, distinct slot instants of one civil day (y, m, d in loc).
func (s *Schedule) daySlots(y int, m time.Month, d int) []time.Time {
	var out []time.Time
	everyHour := s.everyHour()
	// Most days have no transition: one offset all day, no ambiguity, no gap.
	// The zone period containing noon must cover the whole day with margin.
	noon := time.Date(y, m, d, 12, 0, 0, 0, s.loc)
	zs, ze := noon.ZoneBounds()
	plain := (zs.IsZero() || noon.Sub(zs) > 15*time.Hour) && (ze.IsZero() || ze.Sub(noon) > 15*time.Hour)
	for h := 0; h < 24; h++ {
		if s.cs.Hour&(1<<uint(h)) == 0 {
			continue
		}
		for mi := 0; mi < 60; mi++ {
			if s.cs.Minute&(1<<uint(mi)) == 0 {
				continue
			}
			if plain {
				out = append(out, time.Date(y, m, d, h, mi, 0, 0, s.loc))
				continue
			}
			inst := resolveWall(y, m, d, h, mi, s.loc)
			switch {
			case len(inst) == 0:
				// Inside a spring-forward gap.
				if !everyHour {
					out = append(out, gapEnd(y, m, d, h, mi, s.loc))
				}
			case len(inst) == 1 || !everyHour:
				out = append(out, inst[0])
			default:
				out = append(out, inst...)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return dedupe(out)
}

func dedupe(ts []time.Time) []time.Time {
	if len(ts) < 2 {
		return ts
	}
	out := ts[:1]
	for _, t := range ts[1:] {
		if !t.Equal(out[len(out)-1]) {
			out = append(out, t)
		}
	}
	return out
}

// resolveWall returns the instants (0, 1 or 2, ascending) whose wall clock in loc is
// y-m-d h:mi. Go's time.Date picks one of two ambiguous instants without saying which,
// so both candidate offsets are tried explicitly.
func resolveWall(y int, m time.Month, d, h, mi int, loc *time.Location) []time.Time {
	wall := time.Date(y, m, d, h, mi, 0, 0, time.UTC)
	probe := time.Date(y, m, d, h, mi, 0, 0, loc)
	offsets := map[int]bool{}
	for _, delta := range []time.Duration{-26 * time.Hour, -3 * time.Hour, 0, 3 * time.Hour, 26 * time.Hour} {
		_, off := probe.Add(delta).Zone()
		offsets[off] = true
	}
	var out []time.Time
	for off := range offsets {
		t := wall.Add(-time.Duration(off) * time.Second).In(loc)
		ty, tm, td := t.Date()
		if ty == y && tm == m && td == d && t.Hour() == h && t.Minute() == mi {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return dedupe(out)
}

// gapEnd returns the first instant after a spring-forward gap containing the wall time.
func gapEnd(y int, m time.Month, d, h, mi int, loc *time.Location) time.Time {
	probe := time.Date(y, m, d, h, mi, 0, 0, loc)
	start, end := probe.ZoneBounds()
	if !start.IsZero() && probe.Sub(start) >= 0 && probe.Sub(start) < 4*time.Hour {
		return start.In(loc)
	}
	return end.In(loc)
}

// Next returns the first slot strictly after t, or the zero time if the spec never fires.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every != nil {
		step := s.every.Delay
		return time.Unix(0, 0).Add(t.Sub(time.Unix(0, 0)).Truncate(step) + step).In(s.loc)
	}
	// Start one day early: a gap slot of the previous civil day cannot be later than t's
	// day, but a fall-back duplicate can straddle midnight-adjacent arithmetic; one day of
	// slack keeps the search simple and correct.
	lt := t.In(s.loc)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	for i := 0; i < maxSearchDays; i++ {
		dd := day.AddDate(0, 0, i)
		if !s.dayMatches(dd) {
			continue
		}
		for _, slot := range s.daySlots(dd.Year(), dd.Month(), dd.Day()) {
			if slot.After(t) {
				return slot
			}
		}
	}
	return time.Time{}
}

// Prev returns the latest slot at or before t, or the zero time if none in the search window.
func (s *Schedule) Prev(t time.Time) time.Time {
	if s.every != nil {
		step := s.every.Delay
		return time.Unix(0, 0).Add(t.Sub(time.Unix(0, 0)).Truncate(step)).In(s.loc)
	}
	lt := t.In(s.loc)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	for i := 0; i < maxSearchDays; i++ {
		dd := day.AddDate(0, 0, -i)
		if !s.dayMatches(dd) {
			continue
		}
		slots := s.daySlots(dd.Year(), dd.Month(), dd.Day())
		for j := len(slots) - 1; j >= 0; j-- {
			if !slots[j].After(t) {
				return slots[j]
			}
		}
	}
	return time.Time{}
}

// Between returns the slots in (after, until], oldest first, at most limit of them
// (the most recent ones are kept when there are more; limit <= 0 means no limit).
func (s *Schedule) Between(after, until time.Time, limit int) []time.Time {
	var out []time.Time
	keep := func(t time.Time) {
		out = append(out, t)
		if limit > 0 && len(out) > 2*limit {
			out = append(out[:0], out[len(out)-limit:]...)
		}
	}
	if s.every != nil {
		for t := s.Next(after); !t.After(until); t = s.Next(t) {
			keep(t)
		}
	} else if until.After(after) {
		la, lu := after.In(s.loc), until.In(s.loc)
		day := time.Date(la.Year(), la.Month(), la.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
		last := time.Date(lu.Year(), lu.Month(), lu.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
		for ; !day.After(last); day = day.AddDate(0, 0, 1) {
			if !s.dayMatches(day) {
				continue
			}
			for _, t := range s.daySlots(day.Year(), day.Month(), day.Day()) {
				if t.After(after) && !t.After(until) {
					keep(t)
				}
			}
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}
