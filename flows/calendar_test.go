package flows

import (
	"testing"
	"time"
)

func TestEaster(t *testing.T) {
	tests := []struct {
		year int
		want Date
	}{
		{2011, D(2011, time.April, 24)}, // the year the sistema indennitario started
		{2019, D(2019, time.April, 21)},
		{2024, D(2024, time.March, 31)},
		{2025, D(2025, time.April, 20)},
		{2026, D(2026, time.April, 5)},
		{2027, D(2027, time.March, 28)},
		{2028, D(2028, time.April, 16)},
		{2029, D(2029, time.April, 1)},
		{2030, D(2030, time.April, 21)},
		{2038, D(2038, time.April, 25)}, // latest possible
		{2285, D(2285, time.March, 22)}, // earliest possible
	}
	for _, tt := range tests {
		if got := Easter(tt.year); got != tt.want {
			t.Errorf("Easter(%d) = %s, want %s", tt.year, got, tt.want)
		}
	}
}

func TestIsHoliday(t *testing.T) {
	milan := NewCalendar(time.December, 7)
	none := NewCalendar(0, 0)
	tests := []struct {
		cal  *Calendar
		d    Date
		want string // "" = not a holiday
	}{
		{none, D(2025, time.January, 1), "Capodanno"},
		{none, D(2025, time.January, 6), "Epifania"},
		{none, D(2025, time.April, 20), "Pasqua"},
		{none, D(2025, time.April, 21), "Lunedì dell'Angelo"},
		{none, D(2024, time.April, 1), "Lunedì dell'Angelo"},
		{none, D(2027, time.March, 29), "Lunedì dell'Angelo"},
		{none, D(2030, time.April, 22), "Lunedì dell'Angelo"},
		{none, D(2025, time.April, 22), ""},
		{none, D(2025, time.April, 25), "Festa della Liberazione"},
		{none, D(2025, time.May, 1), "Festa del Lavoro"},
		{none, D(2025, time.June, 2), "Festa della Repubblica"},
		{none, D(2025, time.August, 15), "Ferragosto"},
		{none, D(2025, time.October, 4), ""}, // not yet: Legge 151/2025 applies from 2026
		{none, D(2026, time.October, 4), "San Francesco d'Assisi"},
		{none, D(2027, time.October, 4), "San Francesco d'Assisi"},
		{none, D(2025, time.November, 1), "Ognissanti"},
		{none, D(2025, time.November, 2), ""},
		{none, D(2025, time.December, 8), "Immacolata Concezione"},
		{none, D(2025, time.December, 25), "Natale"},
		{none, D(2025, time.December, 26), "Santo Stefano"},
		{none, D(2025, time.December, 7), ""},
		{milan, D(2025, time.December, 7), "Santo Patrono"},
		{milan, D(2025, time.December, 8), "Immacolata Concezione"},
		{(*Calendar)(nil), D(2025, time.December, 25), "Natale"}, // nil calendar = national only
	}
	for _, tt := range tests {
		got, name := tt.cal.IsHoliday(tt.d)
		if got != (tt.want != "") || name != tt.want {
			t.Errorf("IsHoliday(%s) = %v, %q; want %q", tt.d, got, name, tt.want)
		}
	}
}

func TestIsWorkingDay(t *testing.T) {
	cal := NewCalendar(0, 0)
	tests := []struct {
		d    Date
		want bool
	}{
		{D(2025, time.March, 3), true},    // Monday
		{D(2025, time.March, 8), false},   // Saturday
		{D(2025, time.March, 9), false},   // Sunday
		{D(2025, time.April, 21), false},  // Easter Monday
		{D(2024, time.October, 4), true},  // Friday, San Francesco not yet a holiday
		{D(2027, time.October, 4), false}, // Monday, San Francesco
		{D(2025, time.December, 26), false},
	}
	for _, tt := range tests {
		if got := cal.IsWorkingDay(tt.d); got != tt.want {
			t.Errorf("IsWorkingDay(%s) = %v, want %v", tt.d, got, tt.want)
		}
	}
}

func TestAddWorkingDays(t *testing.T) {
	none := NewCalendar(0, 0)
	milan := NewCalendar(time.December, 7)
	tests := []struct {
		name string
		cal  *Calendar
		d    Date
		n    int
		want Date
	}{
		{"next day", none, D(2025, time.March, 3), 1, D(2025, time.March, 4)},
		{"over a weekend", none, D(2025, time.March, 7), 1, D(2025, time.March, 10)},
		{"from a Saturday", none, D(2025, time.March, 8), 1, D(2025, time.March, 10)},
		{"over Easter", none, D(2025, time.April, 18), 1, D(2025, time.April, 22)},
		{"over Easter and 25 April", none, D(2025, time.April, 18), 4, D(2025, time.April, 28)},
		{"10 working days over 8 Dec", none, D(2025, time.December, 1), 10, D(2025, time.December, 16)},
		{"over Christmas", none, D(2026, time.December, 24), 1, D(2026, time.December, 28)},
		{"over San Francesco 2027", none, D(2027, time.October, 1), 1, D(2027, time.October, 5)},
		{"patron day then Immacolata", milan, D(2026, time.December, 4), 1, D(2026, time.December, 9)},
		{"same without patron", none, D(2026, time.December, 4), 1, D(2026, time.December, 7)},
		{"backwards over Easter", none, D(2025, time.April, 22), -1, D(2025, time.April, 18)},
		{"zero", none, D(2025, time.March, 8), 0, D(2025, time.March, 8)},
		{"over New Year", none, D(2025, time.December, 31), 2, D(2026, time.January, 5)},
	}
	for _, tt := range tests {
		if got := tt.cal.AddWorkingDays(tt.d, tt.n); got != tt.want {
			t.Errorf("%s: AddWorkingDays(%s, %d) = %s, want %s", tt.name, tt.d, tt.n, got, tt.want)
		}
	}
}

func TestWorkingDaysBetween(t *testing.T) {
	cal := NewCalendar(0, 0)
	tests := []struct {
		a, b Date
		want int
	}{
		{D(2023, time.December, 31), D(2024, time.December, 31), 254},
		{D(2024, time.December, 31), D(2025, time.December, 31), 251},
		{D(2025, time.December, 31), D(2026, time.December, 31), 254}, // with 4 October (a Sunday in 2026)
		{D(2026, time.December, 31), D(2027, time.December, 31), 254},
		{D(2025, time.March, 3), D(2025, time.March, 3), 0},
		{D(2025, time.March, 7), D(2025, time.March, 10), 1},
		{D(2025, time.March, 10), D(2025, time.March, 7), -1},
	}
	for _, tt := range tests {
		if got := cal.WorkingDaysBetween(tt.a, tt.b); got != tt.want {
			t.Errorf("WorkingDaysBetween(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestWorkingDaysRoundTrip(t *testing.T) {
	cal := NewCalendar(time.June, 29) // Rome
	for d := D(2024, time.December, 1); d.Before(D(2027, time.February, 1)); d = d.AddDays(3) {
		for _, n := range []int{-12, -1, 1, 2, 5, 10, 23} {
			e := cal.AddWorkingDays(d, n)
			if !cal.IsWorkingDay(e) {
				t.Fatalf("AddWorkingDays(%s, %d) = %s, not a working day", d, n, e)
			}
			if got := cal.WorkingDaysBetween(d, e); got != n {
				t.Fatalf("WorkingDaysBetween(%s, AddWorkingDays(%s, %d) = %s) = %d", d, d, n, e, got)
			}
		}
	}
}

func BenchmarkAddWorkingDays10(b *testing.B) {
	cal := NewCalendar(time.June, 29)
	d := D(2025, time.December, 1)
	for b.Loop() {
		_ = cal.AddWorkingDays(d, 10)
	}
}
