package flows

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// String and ISO write their digits by hand on the hot path: the same text as the
// fmt forms they replace, for every day of years around the ones in use and for the
// edges (zero parts, years of one to four digits, parts fmt would widen or sign).
func TestDateTextAsFmt(t *testing.T) {
	check := func(d Date) {
		t.Helper()
		if d.IsZero() {
			return
		}
		if got, want := d.String(), fmt.Sprintf("%02d/%02d/%04d", d.D, int(d.M), d.Y); got != want {
			t.Errorf("%#v String %q, want %q", d, got, want)
		}
		if got, want := d.ISO(), fmt.Sprintf("%04d-%02d-%02d", d.Y, int(d.M), d.D); got != want {
			t.Errorf("%#v ISO %q, want %q", d, got, want)
		}
	}
	for day := D(1999, 1, 1); day.Y < 2031; day = day.AddDays(1) {
		check(day)
	}
	for _, y := range []int{0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 12345, -1, -2025} {
		for _, m := range []int{0, 1, 9, 10, 12, 99, 100, -1} {
			for _, dd := range []int{0, 1, 9, 10, 31, 99, 100, -1} {
				check(Date{Y: y, M: time.Month(m), D: dd})
			}
		}
	}
}

// Amount.Format writes its digits by hand on the hot path: the same text as the fmt
// form it replaces, for both separators and the edges (cents only, negatives, the
// extremes of int64, a separator that is not ASCII).
func TestAmountFormatAsFmt(t *testing.T) {
	viaFmt := func(a Amount, decimal byte) string {
		v := int64(a)
		sign := ""
		if v < 0 {
			sign = "-"
			v = -v
		}
		return fmt.Sprintf("%s%d%c%02d", sign, v/100, decimal, v%100)
	}
	amounts := []Amount{0, 1, 9, 10, 99, 100, 101, 4239, 42439, 100000, -1, -9, -10, -100, -4239, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for v := Amount(-2500); v <= 2500; v += 7 {
		amounts = append(amounts, v)
	}
	for _, a := range amounts {
		for _, dec := range []byte{'.', ',', 0xB7} {
			if got, want := a.Format(dec), viaFmt(a, dec); got != want {
				t.Errorf("%d Format(%q) = %q, want %q", int64(a), dec, got, want)
			}
		}
	}
}
