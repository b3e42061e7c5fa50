package sched

import (
	"testing"
	"time"
)

func BenchmarkNextDaily(b *testing.B) {
	s, _ := Parse("30 2 * * *", nil)
	t := utc("2025-10-25T12:00:00Z")
	for b.Loop() {
		t = s.Next(t)
	}
}

func BenchmarkBetweenMinutelyMonth(b *testing.B) {
	s, _ := Parse("* * * * *", nil)
	from := utc("2025-10-01T00:00:00Z")
	for b.Loop() {
		if n := len(s.Between(from, from.Add(31*24*time.Hour), maxMissed)); n != maxMissed {
			b.Fatal(n)
		}
	}
}
