package flows

import (
	"testing"
	"time"
)

func TestDaysInMatchesTime(t *testing.T) {
	for y := 1899; y <= 2401; y++ {
		for m := time.Month(0); m <= 13; m++ {
			if DaysIn(y, m) != time.Date(y, m+1, 0, 12, 0, 0, 0, time.UTC).Day() {
				t.Fatal(y, m)
			}
		}
	}
}
