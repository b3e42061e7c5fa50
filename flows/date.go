package flows

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Rome must resolve on a bare machine too
)

// Rome is Europe/Rome: every deadline and every date shown to a person is computed here.
var Rome = mustLoad("Europe/Rome")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// Date is a civil date (no time of day, no zone), as in GG/MM/AAAA fields.
type Date struct {
	Y int
	M time.Month
	D int
}

// D builds a Date; it normalises out-of-range values the way time.Date does.
func D(y int, m time.Month, d int) Date {
	return DateOf(time.Date(y, m, d, 12, 0, 0, 0, time.UTC))
}

// DateOf returns the civil date of t in t's own location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// Today returns today's date in Europe/Rome.
func Today(now time.Time) Date { return DateOf(now.In(Rome)) }

// IsZero reports whether d is the zero Date (field absent).
func (d Date) IsZero() bool { return d == Date{} }

// Time returns midnight of d in Europe/Rome.
func (d Date) Time() time.Time { return time.Date(d.Y, d.M, d.D, 0, 0, 0, 0, Rome) }

func (d Date) utcNoon() time.Time { return time.Date(d.Y, d.M, d.D, 12, 0, 0, 0, time.UTC) }

// AddDays adds n calendar days.
func (d Date) AddDays(n int) Date { return DateOf(d.utcNoon().AddDate(0, 0, n)) }

// AddMonths adds n months, clamping the day to the end of the target month
// (31 March + 1 month = 30 April), which is how Italian regulatory terms are counted.
func (d Date) AddMonths(n int) Date {
	y, m := d.Y, int(d.M)-1+n
	y += m / 12
	m %= 12
	if m < 0 {
		m += 12
		y--
	}
	last := DaysIn(y, time.Month(m+1))
	day := d.D
	if day > last {
		day = last
	}
	return Date{y, time.Month(m + 1), day}
}

// FirstOfMonth returns the first day of d's month.
func (d Date) FirstOfMonth() Date { return Date{d.Y, d.M, 1} }

// EndOfMonth returns the last day of d's month.
func (d Date) EndOfMonth() Date { return Date{d.Y, d.M, DaysIn(d.Y, d.M)} }

// DaysIn returns the number of days of month m of year y.
func DaysIn(y int, m time.Month) int {
	switch m {
	case time.April, time.June, time.September, time.November:
		return 30
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.January, time.March, time.May, time.July, time.August, time.October, time.December:
		return 31
	}
	// Out of range: time.Date normalises it (month 13 is January of the next year).
	return time.Date(y, m+1, 0, 12, 0, 0, 0, time.UTC).Day()
}

// Before, After and Compare order dates.
func (d Date) Before(e Date) bool { return d.Compare(e) < 0 }
func (d Date) After(e Date) bool  { return d.Compare(e) > 0 }
func (d Date) Compare(e Date) int {
	switch {
	case d.Y != e.Y:
		return cmpInt(d.Y, e.Y)
	case d.M != e.M:
		return cmpInt(int(d.M), int(e.M))
	default:
		return cmpInt(d.D, e.D)
	}
}

// DaysUntil returns the number of calendar days from d to e (negative if e is before d).
func (d Date) DaysUntil(e Date) int {
	return int(e.utcNoon().Sub(d.utcNoon()).Hours() / 24)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String formats as GG/MM/AAAA, the SII CSV date format.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	if d.inDigits() { // the hot path (every date of every row and case): no fmt
		var b [10]byte
		put2(b[0:], d.D)
		b[2] = '/'
		put2(b[3:], int(d.M))
		b[5] = '/'
		put4(b[6:], d.Y)
		return string(b[:])
	}
	return fmt.Sprintf("%02d/%02d/%04d", d.D, int(d.M), d.Y)
}

// inDigits reports whether the date's parts fit the digits String and ISO give them
// (%02d, %04d) without fmt.
func (d Date) inDigits() bool {
	return d.Y >= 0 && d.Y <= 9999 && d.M >= 0 && d.M <= 99 && d.D >= 0 && d.D <= 99
}

func put2(b []byte, n int) { b[0], b[1] = byte('0'+n/10), byte('0'+n%10) }

func put4(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10)
}

// ISO formats as AAAA-MM-GG (XML, JSON, SQLite).
func (d Date) ISO() string {
	if d.IsZero() {
		return ""
	}
	if d.inDigits() {
		b := d.isoDigits()
		return string(b[:])
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Y, int(d.M), d.D)
}

// isoDigits is ISO() of a date in digits, in an array (by value: nothing escapes).
func (d Date) isoDigits() [10]byte {
	var b [10]byte
	put4(b[0:], d.Y)
	b[4] = '-'
	put2(b[5:], int(d.M))
	b[7] = '-'
	put2(b[8:], d.D)
	return b
}

// appendISO appends ISO() to b (without allocating, for dates in digits).
func (d Date) appendISO(b []byte) []byte {
	if d.IsZero() {
		return b
	}
	if !d.inDigits() {
		return append(b, d.ISO()...)
	}
	t := d.isoDigits()
	return append(b, t[:]...)
}

// ParseDate reads GG/MM/AAAA, and also AAAA-MM-GG (XML, ISO exports). The date must
// exist (no 31/02). It is on the hot path of every billing row, so it parses by hand.
func ParseDate(s string) (Date, error) {
	var d, m, y int
	switch {
	case len(s) == 10 && s[2] == '/' && s[5] == '/' && allDigits(s[0:2]) && allDigits(s[3:5]) && allDigits(s[6:10]):
		d, m, y = atoi2(s[0:2]), atoi2(s[3:5]), atoi2(s[6:8])*100+atoi2(s[8:10])
	case len(s) == 10 && s[4] == '-' && s[7] == '-' && allDigits(s[0:4]) && allDigits(s[5:7]) && allDigits(s[8:10]):
		y, m, d = atoi2(s[0:2])*100+atoi2(s[2:4]), atoi2(s[5:7]), atoi2(s[8:10])
	default:
		return Date{}, fmt.Errorf("date %q is not GG/MM/AAAA%s", s, dateHint(s))
	}
	if m < 1 || m > 12 || d < 1 || d > DaysIn(y, time.Month(m)) || y < 1900 || y > 2999 {
		return Date{}, fmt.Errorf("date %q does not exist", s)
	}
	return Date{y, time.Month(m), d}, nil
}

// dateHint says why a date a spreadsheet wrote is not read: a two-digit year (Calc's
// and Excel's short date format in Italy, "01/03/25") or a day or month without its
// leading zero ("1/3/2025"). Neither is guessed: a year is never completed.
func dateHint(s string) string {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return ""
	}
	for i, p := range parts {
		if p == "" || len(p) > 4 || i < 2 && len(p) > 2 || !allDigits(p) {
			return ""
		}
	}
	switch {
	case len(parts[2]) == 2:
		return " (a two-digit year: the column has a short date format; format it as GG/MM/AAAA and save again)"
	case len(parts[2]) == 4 && (len(parts[0]) == 1 || len(parts[1]) == 1):
		return " (day and month need two digits: format the column as GG/MM/AAAA and save again)"
	}
	return ""
}

func atoi2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

// MarshalText writes d as AAAA-MM-GG ("" for the zero Date): JSON stores dates as
// strings, which reads better and decodes several times faster than {"Y":..,"M":..,"D":..}.
func (d Date) MarshalText() ([]byte, error) {
	if d.IsZero() {
		return []byte{}, nil
	}
	if d.Y < 0 || d.Y > 9999 {
		return nil, fmt.Errorf("date %d-%d-%d: year out of range", d.Y, d.M, d.D)
	}
	b := make([]byte, 10)
	b[0], b[1], b[2], b[3] = byte('0'+d.Y/1000), byte('0'+d.Y/100%10), byte('0'+d.Y/10%10), byte('0'+d.Y%10)
	b[4], b[5], b[6] = '-', byte('0'+int(d.M)/10), byte('0'+int(d.M)%10)
	b[7], b[8], b[9] = '-', byte('0'+d.D/10), byte('0'+d.D%10)
	return b, nil
}

// UnmarshalJSON reads what MarshalText writes, null, and the object form
// {"Y":..,"M":..,"D":..} that practices stored before dates were strings.
func (d *Date) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null" || string(b) == `""`:
		*d = Date{}
		return nil
	case len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"':
		v, err := ParseDate(string(b[1 : len(b)-1]))
		if err != nil {
			return err
		}
		*d = v
		return nil
	}
	var legacy struct {
		Y int
		M time.Month
		D int
	}
	if err := json.Unmarshal(b, &legacy); err != nil {
		return fmt.Errorf("date: %w", err)
	}
	*d = Date(legacy)
	return nil
}
