package flows

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"
)

// estimateByMap is estimate as it was written first, with a map of the months: the
// slow twin of the list estimate keeps now.
func estimateByMap(r *CMORResult, switchDate Date, spend []MonthSpend, p CMORParams) Amount {
	last := switchDate.AddDays(-1).FirstOfMonth()
	first := last.AddMonths(-(p.SpendWindowMonths - 1))
	byMonth := make(map[Date]Amount)
	for _, s := range spend {
		m := s.Month.FirstOfMonth()
		if m.Before(first) || m.After(last) {
			continue
		}
		if prev, ok := byMonth[m]; ok {
			if prev != s.Amount {
				r.Findings = append(r.Findings, Finding{Rule: "E6", Field: "SPESA_MESE", Value: m.ISO()[:7], Severity: "warning",
					Message: fmt.Sprintf("month given twice with different spend (%s and %s); using %s", prev, s.Amount, prev)})
			}
			continue
		}
		if s.Amount < 0 {
			r.Findings = append(r.Findings, Finding{Rule: "E6", Field: "SPESA_MESE", Value: m.ISO()[:7], Severity: "warning",
				Message: fmt.Sprintf("negative spend %s ignored", s.Amount)})
		}
		byMonth[m] = s.Amount
	}
	var months []Amount
	for _, a := range byMonth {
		if a > 0 {
			months = append(months, a)
		}
	}
	if len(months) == 0 {
		r.Findings = append(r.Findings, Finding{Rule: "E6", Field: "SPESA_MESE", Severity: "warning",
			Message: fmt.Sprintf("no monthly spend with supply between %s and %s; the estimate is 0", first, last.EndOfMonth())})
		return 0
	}
	switch p.EstimateMethod {
	case CMOREstimateTop:
		sort.Slice(months, func(i, j int) bool { return months[i] > months[j] })
		var sum Amount
		for i := 0; i < len(months) && i < p.EstimateMonths; i++ {
			sum += months[i]
		}
		return sum
	default:
		var sum Amount
		for _, a := range months {
			sum += a
		}
		return sum.MulRat(int64(p.EstimateMonths), int64(len(months)))
	}
}

// The estimate keeps the months of its window in a list, not a map: the same
// estimate and the same findings, in the same order, as the map gave, for both
// methods, with months outside the window, repeated (same and different figures),
// negative, zero, more than 24, none; and on random lists.
func TestEstimateAsByMap(t *testing.T) {
	sw := D(2025, 3, 1)
	ms := func(pairs ...any) []MonthSpend {
		var out []MonthSpend
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, MonthSpend{Month: pairs[i].(Date), Amount: Amount(pairs[i+1].(int))})
		}
		return out
	}
	var many []MonthSpend
	for k := range 40 {
		many = append(many, MonthSpend{Month: D(2022, time.Month(1+k%12), 1).AddMonths(k / 12 * 12), Amount: Amount(1000 + 37*k)})
	}
	cases := map[string][]MonthSpend{
		"none":               nil,
		"one year":           ms(D(2024, 3, 1), 100, D(2024, 4, 1), 200, D(2025, 2, 1), 300),
		"outside the window": ms(D(2023, 1, 1), 999, D(2025, 3, 1), 999, D(2024, 6, 1), 50),
		"repeated":           ms(D(2024, 6, 1), 50, D(2024, 6, 1), 50, D(2024, 6, 1), 70, D(2024, 7, 1), 10, D(2024, 7, 1), -5),
		"negative and zero":  ms(D(2024, 6, 1), -50, D(2024, 7, 1), 0, D(2024, 8, 1), -1),
		"more than 24":       many,
		"ties":               ms(D(2024, 5, 1), 100, D(2024, 6, 1), 100, D(2024, 7, 1), 100, D(2024, 8, 1), 100, D(2024, 9, 1), 100),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range 200 {
		var l []MonthSpend
		for range rng.IntN(30) {
			l = append(l, MonthSpend{Month: D(2023+rng.IntN(3), time.Month(1+rng.IntN(12)), 1), Amount: Amount(rng.IntN(2000) - 200)})
		}
		cases[fmt.Sprintf("random %d", k)] = l
	}
	for _, method := range []string{CMOREstimateTop, DefaultCMORParams().EstimateMethod} {
		p := DefaultCMORParams()
		p.EstimateMethod = method
		for name, spend := range cases {
			var got, want CMORResult
			if g, w := got.estimate(sw, spend, p), estimateByMap(&want, sw, spend, p); g != w || !reflect.DeepEqual(got.Findings, want.Findings) {
				t.Errorf("%s, %s: %s %v; the map gave %s %v", method, name, g, got.Findings, w, want.Findings)
			}
		}
	}
}
