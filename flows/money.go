package flows

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Amount is a sum of money in euro cents. Money is never a float: amounts are parsed
// from and written to text exactly, and arithmetic is integer arithmetic.
type Amount int64

// Cents returns the amount in euro cents.
func (a Amount) Cents() int64 { return int64(a) }

// Euros builds an amount from whole euros and cents (cents keep the sign of euros).
func Euros(euros, cents int64) Amount {
	if euros < 0 {
		return Amount(euros*100 - cents)
	}
	return Amount(euros*100 + cents)
}

// ParseAmount reads a decimal amount with '.' as the decimal separator and at most two
// decimals ("12", "12.3", "12.34", "-0.50"). A ',' decimal separator is accepted only
// when comma is true (Italian billing extracts); thousands separators are refused
// because they are ambiguous.
func ParseAmount(s string, comma bool) (Amount, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty amount")
	}
	neg := false
	switch t[0] {
	case '-':
		neg = true
		t = t[1:]
	case '+':
		t = t[1:]
	}
	sep := "."
	if comma && strings.Contains(t, ",") {
		if strings.Contains(t, ".") {
			return 0, fmt.Errorf("amount %q mixes ',' and '.'", s)
		}
		sep = ","
	}
	intPart, frac, hasFrac := strings.Cut(t, sep)
	if intPart == "" || !allDigits(intPart) {
		return 0, fmt.Errorf("amount %q is not a decimal number", s)
	}
	if hasFrac {
		if frac == "" || !allDigits(frac) {
			return 0, fmt.Errorf("amount %q is not a decimal number", s)
		}
		if len(frac) > 2 {
			return 0, fmt.Errorf("amount %q has more than 2 decimals", s)
		}
	}
	if len(intPart) > 15 {
		return 0, fmt.Errorf("amount %q is too large", s)
	}
	var v int64
	for _, c := range intPart {
		v = v*10 + int64(c-'0')
	}
	v *= 100
	switch len(frac) {
	case 1:
		v += int64(frac[0]-'0') * 10
	case 2:
		v += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	if neg {
		v = -v
	}
	return Amount(v), nil
}

// MustAmount is ParseAmount for constants in code and tests; it panics on bad input.
func MustAmount(s string) Amount {
	a, err := ParseAmount(s, false)
	if err != nil {
		panic(err)
	}
	return a
}

// String formats with '.' and two decimals, as SII flows want ("1234.50").
func (a Amount) String() string { return a.Format('.') }

// Format formats with the given decimal separator and two decimals, no grouping.
func (a Amount) Format(decimal byte) string {
	v := int64(a)
	sign := ""
	if v < 0 {
		sign = "-"
		v = -v
	}
	if v >= 0 && decimal < utf8.RuneSelf { // the hot path (payloads, notes, exports): no fmt
		var buf [24]byte
		b := append(buf[:0], sign...)
		b = strconv.AppendInt(b, v/100, 10)
		return string(append(b, decimal, byte('0'+v%100/10), byte('0'+v%10)))
	}
	return fmt.Sprintf("%s%d%c%02d", sign, v/100, decimal, v%100)
}

// MulRat returns a*num/den rounded half away from zero, for pro-rating and averages.
// den must be positive.
func (a Amount) MulRat(num, den int64) Amount {
	if den <= 0 {
		panic("flows: MulRat needs a positive denominator")
	}
	p := int64(a) * num
	q, r := p/den, p%den
	if r < 0 {
		r = -r
	}
	if 2*r >= den {
		if p < 0 {
			q--
		} else {
			q++
		}
	}
	return Amount(q)
}

// Min returns the smaller of a and b.
func Min(a, b Amount) Amount {
	if a < b {
		return a
	}
	return b
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
