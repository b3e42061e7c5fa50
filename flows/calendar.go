package flows

import "time"

// Calendar is the Italian working-day calendar used for "giorni lavorativi" terms
// (e.g. the SII's 10 working days to annul a practice, brief §2.3): Monday to Friday,
// except national holidays and, optionally, the patron saint's day of the company's
// town (a local holiday that closes offices there).
//
// The national holiday list is the current one (valid from 2001, when 2 June became a
// public holiday again), plus 4 October from 2026 (Legge 151/2025 restored San
// Francesco d'Assisi as a national holiday). Earlier years are not modelled.
type Calendar struct {
	// PatronMonth and PatronDay give the patron saint's day; 0 means none.
	PatronMonth time.Month
	PatronDay   int
}

// NewCalendar returns a calendar with the given patron day (0, 0 = none). A date that
// does not exist (e.g. 30 February) simply never matches.
func NewCalendar(patronMonth time.Month, patronDay int) *Calendar {
	return &Calendar{PatronMonth: patronMonth, PatronDay: patronDay}
}

// Easter returns Easter Sunday of the Gregorian year (anonymous Gregorian algorithm,
// Meeus/Jones/Butcher), integer arithmetic only.
func Easter(year int) Date {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return Date{year, time.Month(month), day}
}

// Holiday names, in Italian as they appear on calendars and in regulations.
const (
	holidayNewYear       = "Capodanno"
	holidayEpiphany      = "Epifania"
	holidayEaster        = "Pasqua"
	holidayEasterMonday  = "Lunedì dell'Angelo"
	holidayLiberation    = "Festa della Liberazione"
	holidayLabour        = "Festa del Lavoro"
	holidayRepublic      = "Festa della Repubblica"
	holidayAssumption    = "Ferragosto"
	holidaySanFrancesco  = "San Francesco d'Assisi"
	holidayAllSaints     = "Ognissanti"
	holidayImmaculate    = "Immacolata Concezione"
	holidayChristmas     = "Natale"
	holidaySaintStephen  = "Santo Stefano"
	holidayPatronDayName = "Santo Patrono"
)

// nationalHoliday returns the name of the fixed-date national holiday on m/d of year y.
func nationalHoliday(y int, m time.Month, d int) string {
	switch {
	case m == time.January && d == 1:
		return holidayNewYear
	case m == time.January && d == 6:
		return holidayEpiphany
	case m == time.April && d == 25:
		return holidayLiberation
	case m == time.May && d == 1:
		return holidayLabour
	case m == time.June && d == 2:
		return holidayRepublic
	case m == time.August && d == 15:
		return holidayAssumption
	case m == time.October && d == 4 && y >= 2026:
		return holidaySanFrancesco
	case m == time.November && d == 1:
		return holidayAllSaints
	case m == time.December && d == 8:
		return holidayImmaculate
	case m == time.December && d == 25:
		return holidayChristmas
	case m == time.December && d == 26:
		return holidaySaintStephen
	}
	return ""
}

// IsHoliday reports whether d is a national holiday or the patron day, and its name.
// Ordinary Sundays are not holidays here (IsWorkingDay excludes weekends separately).
func (c *Calendar) IsHoliday(d Date) (bool, string) {
	if name := nationalHoliday(d.Y, d.M, d.D); name != "" {
		return true, name
	}
	if d.M == time.March || d.M == time.April { // Easter falls 22 March – 25 April
		easter := Easter(d.Y)
		switch d {
		case easter:
			return true, holidayEaster
		case easter.AddDays(1):
			return true, holidayEasterMonday
		}
	}
	if c != nil && c.PatronDay != 0 && d.M == c.PatronMonth && d.D == c.PatronDay {
		return true, holidayPatronDayName
	}
	return false, ""
}

// calendarWeekday returns the day of the week of d.
func calendarWeekday(d Date) time.Weekday { return d.utcNoon().Weekday() }

// IsWorkingDay reports whether d is Monday to Friday and not a holiday.
func (c *Calendar) IsWorkingDay(d Date) bool {
	switch calendarWeekday(d) {
	case time.Saturday, time.Sunday:
		return false
	}
	holiday, _ := c.IsHoliday(d)
	return !holiday
}

// AddWorkingDays returns the n-th working day after d (d itself is not counted, so the
// result of n = 1 is the next working day even when d is a working day). Negative n
// counts backwards the same way; n = 0 returns d unchanged, working day or not.
func (c *Calendar) AddWorkingDays(d Date, n int) Date {
	step := 1
	if n < 0 {
		step, n = -1, -n
	}
	for n > 0 {
		d = d.AddDays(step)
		if c.IsWorkingDay(d) {
			n--
		}
	}
	return d
}

// WorkingDaysBetween counts the working days in (a, b]: after a, up to and including
// b. If b is before a the result is minus the count over [b, a). Either way
// WorkingDaysBetween(d, AddWorkingDays(d, n)) == n for every d and n.
func (c *Calendar) WorkingDaysBetween(a, b Date) int {
	from, to, sign := a.AddDays(1), b, 1
	if b.Before(a) {
		from, to, sign = b, a.AddDays(-1), -1
	}
	count := 0
	for d := from; !d.After(to); d = d.AddDays(1) {
		if c.IsWorkingDay(d) {
			count++
		}
	}
	return sign * count
}
