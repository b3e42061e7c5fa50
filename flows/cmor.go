package flows

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CMOR rules (brief §2.3, §5.1–§5.3). The regulation is known only through secondary
// sources, so every debatable reading is a parameter of CMORParams with the default the
// brief proposes; the comments on each field say what the alternatives mean.
//
// All money arithmetic is on Amount (integer cents). The only divisions are pro-rating
// and averaging, both done with Amount.MulRat in a single step (round half away from
// zero, which is "half up" for the positive amounts involved) so that rounding happens
// once, at the end, never on intermediate values.

// Values of CMORParams.EstimateMethod.
const (
	// CMOREstimateAverage: 4 × the average of the months with supply in the 12-month
	// window — "spesa stimata di 4 mesi" read as a typical 4 months.
	CMOREstimateAverage = "average"
	// CMOREstimateTop: the sum of the 4 highest months ("even non-consecutive" in the
	// sources could also mean the 4 chosen months).
	CMOREstimateTop = "top"
)

// Values of CMORParams.PartialInvoice.
const (
	// CMORPartialWhole counts the whole unpaid amount of an invoice whose period overlaps
	// the credit window (the 2011 ARERA FAQ reading).
	CMORPartialWhole = "whole"
	// CMORPartialProrate counts the unpaid amount × days inside the window / days of the
	// billed period.
	CMORPartialProrate = "prorate"
)

// Values of CMORParams.WindowRule.
const (
	// CMORWindowStrict: the request window closes at the end of the 12th month counted
	// from the last month of supply (the month of the day before T_sw).
	CMORWindowStrict = "strict"
	// CMORWindowSwitchMonth: it closes at the end of the 12th month after the month of
	// T_sw (one month later for a switch on the 1st).
	CMORWindowSwitchMonth = "switch_month"
)

// CMORParams holds every parameter of the CMOR computation and of the request window.
type CMORParams struct {
	CreditWindowMonths int    // months before T_sw whose invoices make the credit (5)
	SpendWindowMonths  int    // months of supply before T_sw used for the estimate (12)
	EstimateMonths     int    // months of spend the indemnity is worth (4)
	EstimateMethod     string // CMOREstimateAverage (default) or CMOREstimateTop
	// MinIndemnity is the smallest admissible CMOR (10.00 €). Sources say both "at
	// least" and "more than": >= is admitted, exactly the minimum gives a warning.
	MinIndemnity Amount
	// PreviousInsideCap: false (default) adds a previous uncollected CMOR on top of the
	// capped estimate, cmor = min(estimate, credit) + previous; true caps the sum,
	// cmor = min(estimate + previous, credit).
	PreviousInsideCap bool
	PartialInvoice    string // CMORPartialWhole (default) or CMORPartialProrate
	// ExcludeRAI subtracts an invoice's canone RAI (TV licence) from its unpaid amount:
	// it is not a charge for energy (default true).
	ExcludeRAI bool
	// RequireActualReadings counts invoices on estimated readings ("S") only when their
	// conguaglio has been issued (default true).
	RequireActualReadings bool
	WindowOpenMonths      int    // the request window opens this many months after T_sw (6)
	WindowRule            string // CMORWindowStrict (default) or CMORWindowSwitchMonth
	// WindowOpenInclusive: true (default) allows the request on T_sw + 6 months itself
	// ("decorsi 6 mesi" read as "6 months have passed by that day"); false from the day
	// after.
	WindowOpenInclusive bool
	// StrictPOD selects strict POD validation in CheckEligibility (default true: exactly
	// 14 characters); false accepts a 15th character with a warning.
	StrictPOD bool
}

// DefaultCMORParams returns the defaults proposed by the brief.
func DefaultCMORParams() CMORParams {
	return CMORParams{
		CreditWindowMonths:    5,
		SpendWindowMonths:     12,
		EstimateMonths:        4,
		EstimateMethod:        CMOREstimateAverage,
		MinIndemnity:          Euros(10, 0),
		PreviousInsideCap:     false,
		PartialInvoice:        CMORPartialWhole,
		ExcludeRAI:            true,
		RequireActualReadings: true,
		WindowOpenMonths:      6,
		WindowRule:            CMORWindowStrict,
		WindowOpenInclusive:   true,
		StrictPOD:             true,
	}
}

// Validate reports the first parameter out of range or with an unknown value.
func (p CMORParams) Validate() error {
	switch {
	case p.CreditWindowMonths < 1 || p.CreditWindowMonths > 24:
		return fmt.Errorf("credit window of %d months is not within 1-24", p.CreditWindowMonths)
	case p.SpendWindowMonths < 1 || p.SpendWindowMonths > 24:
		return fmt.Errorf("spend window of %d months is not within 1-24", p.SpendWindowMonths)
	case p.EstimateMonths < 1 || p.EstimateMonths > p.SpendWindowMonths:
		return fmt.Errorf("estimate of %d months is not within 1-%d (the spend window)", p.EstimateMonths, p.SpendWindowMonths)
	case p.EstimateMethod != CMOREstimateAverage && p.EstimateMethod != CMOREstimateTop:
		return fmt.Errorf("estimate method %q is neither %q nor %q", p.EstimateMethod, CMOREstimateAverage, CMOREstimateTop)
	case p.MinIndemnity < 0:
		return fmt.Errorf("minimum indemnity %s is negative", p.MinIndemnity)
	case p.PartialInvoice != CMORPartialWhole && p.PartialInvoice != CMORPartialProrate:
		return fmt.Errorf("partial invoice rule %q is neither %q nor %q", p.PartialInvoice, CMORPartialWhole, CMORPartialProrate)
	case p.WindowOpenMonths < 0 || p.WindowOpenMonths > 24:
		return fmt.Errorf("window opening after %d months is not within 0-24", p.WindowOpenMonths)
	case p.WindowRule != CMORWindowStrict && p.WindowRule != CMORWindowSwitchMonth:
		return fmt.Errorf("window rule %q is neither %q nor %q", p.WindowRule, CMORWindowStrict, CMORWindowSwitchMonth)
	}
	return nil
}

// Invoice is one invoice of the defaulting customer, as billing gives it.
type Invoice struct {
	Number               string `json:",omitzero"`
	Issued, Due          Date   `json:",omitzero"`
	PeriodFrom, PeriodTo Date   `json:",omitzero"` // billed consumption period, both days included
	Amount, Unpaid, RAI  Amount `json:",omitzero"` // total, still unpaid, of which canone RAI
	Reading              string `json:",omitzero"` // "E" effettiva/rilevata, "S" stimata
	Conguagliata         bool   `json:",omitzero"` // for "S": the conguaglio has been issued
	Reconstruction       bool   `json:",omitzero"` // consumption reconstructed after a meter fault
}

// MonthSpend is the billed spend of one month of supply.
type MonthSpend struct {
	Month  Date // first of the month (any day is read as its month)
	Amount Amount
}

// MarshalJSON writes a month's spend as ["AAAA-MM-GG",cents]: a practice keeps a year
// of them, and the object form took twice the bytes of every practice's row.
func (m MonthSpend) MarshalJSON() ([]byte, error) {
	month, err := m.Month.MarshalText()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 32)
	b = append(b, '[', '"')
	b = append(b, month...)
	b = append(b, '"', ',')
	b = strconv.AppendInt(b, int64(m.Amount), 10)
	return append(b, ']'), nil
}

// UnmarshalJSON reads what MarshalJSON writes and the object form
// {"Month":..,"Amount":..} that practices stored before.
func (m *MonthSpend) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		var pair [2]json.RawMessage
		if err := json.Unmarshal(b, &pair); err != nil {
			return fmt.Errorf("month spend: %w", err)
		}
		if err := m.Month.UnmarshalJSON(pair[0]); err != nil {
			return fmt.Errorf("month spend: %w", err)
		}
		var cents int64
		if err := json.Unmarshal(pair[1], &cents); err != nil {
			return fmt.Errorf("month spend: %w", err)
		}
		m.Amount = Amount(cents)
		return nil
	}
	var legacy struct {
		Month  Date
		Amount Amount
	}
	if err := json.Unmarshal(b, &legacy); err != nil {
		return fmt.Errorf("month spend: %w", err)
	}
	m.Month, m.Amount = legacy.Month, legacy.Amount
	return nil
}

// Exclusion says why an invoice does not count towards the credit.
type Exclusion struct {
	Invoice string
	Reason  string
}

// CMORResult is the computation with its audit trail.
type CMORResult struct {
	Credit   Amount // credito rilevante: countable unpaid amount of the credit window
	Estimate Amount // estimated spend of EstimateMonths months
	Base     Amount // min(Estimate, Credit)
	Previous Amount // previous uncollected CMOR added (0 if none or negative)
	CMOR     Amount // the indemnity to request

	// CreditWindowFrom and CreditWindowTo are the first and last day (both included)
	// of the credit window [T_sw − CreditWindowMonths, T_sw).
	CreditWindowFrom, CreditWindowTo Date

	Counted  []string    // numbers of the invoices counted in the credit
	Excluded []Exclusion // invoices not counted, with the reason
	Findings []Finding   // rule failures (E6, E9) and warnings
}

// RequestWindow returns the first and the last day (both included) on which the
// indemnity request for a switch effective on switchDate may be filed (TISIND art. 7.1:
// "decorsi 6 mesi … entro la fine del dodicesimo mese successivo").
//
// Worked example (brief §2.3): switch 1 March 2025 (last day of supply 28 February)
// → opens 1 September 2025; closes 28 February 2026 (strict: 12th month after February
// 2025) or 31 March 2026 (switch_month: 12th month after March 2025).
func RequestWindow(switchDate Date, p CMORParams) (open, close Date) {
	open = switchDate.AddMonths(p.WindowOpenMonths)
	if !p.WindowOpenInclusive {
		open = open.AddDays(1)
	}
	monthZero := switchDate.AddDays(-1).FirstOfMonth() // last month of supply
	if p.WindowRule == CMORWindowSwitchMonth {
		monthZero = switchDate.FirstOfMonth()
	}
	close = monthZero.AddMonths(12).EndOfMonth()
	return open, close
}

// ComputeCMOR computes credit, 4-month estimate and indemnity for a switch effective on
// switchDate, from the customer's invoices, the monthly spend of the months before the
// switch and a previous uncollected CMOR (0 if none). It never fails: what it cannot
// use is listed in Excluded and Findings, and a result below the minimum carries an E9
// finding.
func ComputeCMOR(switchDate Date, invoices []Invoice, spend []MonthSpend, previous Amount, p CMORParams) CMORResult {
	r := CMORResult{
		CreditWindowFrom: switchDate.AddMonths(-p.CreditWindowMonths),
		CreditWindowTo:   switchDate.AddDays(-1),
	}
	r.Credit = r.countCredit(invoices, p)
	r.Estimate = r.estimate(switchDate, spend, p)

	if previous < 0 {
		r.Findings = append(r.Findings, Finding{Rule: "E11", Field: "IMPORTO_CMOR_PRECEDENTE", Value: previous.String(),
			Severity: "warning", Message: "previous CMOR is negative; ignored"})
		previous = 0
	}
	r.Previous = previous
	// §5.2: the indemnity is the 4-month estimate but never more than the credit; a
	// previous uncollected CMOR is added on top (default) or inside the cap.
	r.Base = Min(r.Estimate, r.Credit)
	if p.PreviousInsideCap {
		r.CMOR = Min(r.Estimate+previous, r.Credit)
	} else {
		r.CMOR = r.Base + previous
	}

	if r.Credit <= 0 {
		r.Findings = append(r.Findings, Finding{Rule: "E6", Field: "IMPORTO_CREDITO", Value: r.Credit.String(),
			Message: fmt.Sprintf("no countable unpaid amount in the credit window %s-%s", r.CreditWindowFrom, r.CreditWindowTo)})
	}
	switch {
	case r.CMOR < p.MinIndemnity:
		r.Findings = append(r.Findings, Finding{Rule: "E9", Field: "IMPORTO_INDENNIZZO", Value: r.CMOR.String(),
			Message: fmt.Sprintf("indemnity %s is below the minimum %s", r.CMOR, p.MinIndemnity)})
	case r.CMOR == p.MinIndemnity:
		r.Findings = append(r.Findings, Finding{Rule: "E9", Field: "IMPORTO_INDENNIZZO", Value: r.CMOR.String(), Severity: "warning",
			Message: fmt.Sprintf("indemnity is exactly the minimum %s; admitted, but sources differ between \"at least\" and \"more than\"", p.MinIndemnity)})
	}
	return r
}

// countCredit sums the countable unpaid amounts (§5.1) and fills Counted/Excluded.
func (r *CMORResult) countCredit(invoices []Invoice, p CMORParams) Amount {
	var credit Amount
	seen := make(map[string]bool, len(invoices))
	exclude := func(inv Invoice, warn bool, format string, args ...any) {
		reason := fmt.Sprintf(format, args...)
		r.Excluded = append(r.Excluded, Exclusion{Invoice: inv.Number, Reason: reason})
		if warn {
			r.Findings = append(r.Findings, Finding{Rule: "E6", Field: "NUM_FATTURA", Value: inv.Number, Severity: "warning",
				Message: "invoice not counted in the credit: " + reason})
		}
	}
	for _, inv := range invoices {
		switch {
		case seen[inv.Number]:
			exclude(inv, true, "duplicate invoice number")
			continue
		case inv.PeriodFrom.IsZero() || inv.PeriodTo.IsZero():
			exclude(inv, true, "billing period missing")
			continue
		case inv.PeriodTo.Before(inv.PeriodFrom):
			exclude(inv, true, "billing period ends (%s) before it starts (%s)", inv.PeriodTo, inv.PeriodFrom)
			continue
		}
		seen[inv.Number] = true
		// Overlap of [PeriodFrom, PeriodTo] with the credit window, both inclusive.
		from, to := inv.PeriodFrom, inv.PeriodTo
		if from.Before(r.CreditWindowFrom) {
			from = r.CreditWindowFrom
		}
		if to.After(r.CreditWindowTo) {
			to = r.CreditWindowTo
		}
		if to.Before(from) {
			exclude(inv, false, "billing period %s-%s is outside the credit window", inv.PeriodFrom, inv.PeriodTo)
			continue
		}
		// §4.1: reconstructions after a meter fault never count; estimated readings only
		// once conguagliate.
		if inv.Reconstruction {
			exclude(inv, true, "consumption reconstructed after a meter fault")
			continue
		}
		reading := strings.ToUpper(strings.TrimSpace(inv.Reading))
		if p.RequireActualReadings {
			switch {
			case reading == "S" && !inv.Conguagliata:
				exclude(inv, true, "estimated reading not yet conguagliata")
				continue
			case reading != "E" && reading != "S":
				exclude(inv, true, "reading type %q is neither E (actual) nor S (estimated)", inv.Reading)
				continue
			}
		}
		switch {
		case inv.Unpaid <= 0:
			exclude(inv, false, "nothing unpaid")
			continue
		case inv.Amount > 0 && inv.Unpaid > inv.Amount:
			exclude(inv, true, "unpaid %s exceeds the invoice amount %s", inv.Unpaid, inv.Amount)
			continue
		case inv.RAI < 0:
			exclude(inv, true, "canone RAI %s is negative", inv.RAI)
			continue
		}
		countable := inv.Unpaid
		if p.ExcludeRAI && inv.RAI > 0 {
			// Payments are not allocated to lines in billing extracts, so the whole RAI
			// is taken out of the unpaid amount: we never claim the licence fee.
			countable -= inv.RAI
			if countable <= 0 {
				exclude(inv, false, "unpaid %s is all canone RAI (%s)", inv.Unpaid, inv.RAI)
				continue
			}
		}
		if p.PartialInvoice == CMORPartialProrate {
			inside := int64(from.DaysUntil(to) + 1)
			total := int64(inv.PeriodFrom.DaysUntil(inv.PeriodTo) + 1)
			countable = countable.MulRat(inside, total)
		}
		credit += countable
		r.Counted = append(r.Counted, inv.Number)
	}
	return credit
}

// estimate computes the spend of EstimateMonths months (§5.2) from the months of supply
// in the SpendWindowMonths months ending with the last month of supply.
func (r *CMORResult) estimate(switchDate Date, spend []MonthSpend, p CMORParams) Amount {
	last := switchDate.AddDays(-1).FirstOfMonth()
	first := last.AddMonths(-(p.SpendWindowMonths - 1))
	// The months in the window and their spend, first figure of each: a list, not a
	// map (a case has a year of months or two, and a map per case was a good part of
	// deciding it); what is computed from it does not depend on its order.
	type monthSpend struct {
		month Date
		spend Amount
	}
	var seenBuf [24]monthSpend
	byMonth := seenBuf[:0]
	for _, s := range spend {
		m := s.Month.FirstOfMonth()
		if m.Before(first) || m.After(last) {
			continue
		}
		k := slices.IndexFunc(byMonth, func(e monthSpend) bool { return e.month == m })
		if k >= 0 {
			prev := byMonth[k].spend
			// The same month twice: identical figures are the same datum repeated on
			// several input rows; different ones are a data error, first one wins.
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
		byMonth = append(byMonth, monthSpend{m, s.Amount})
	}
	var monthsBuf [24]Amount
	months := monthsBuf[:0] // months with supply
	for _, e := range byMonth {
		if e.spend > 0 {
			months = append(months, e.spend)
		}
	}
	if len(months) == 0 {
		r.Findings = append(r.Findings, Finding{Rule: "E6", Field: "SPESA_MESE", Severity: "warning",
			Message: fmt.Sprintf("no monthly spend with supply between %s and %s; the estimate is 0",
				first, last.EndOfMonth())})
		return 0
	}
	switch p.EstimateMethod {
	case CMOREstimateTop:
		slices.SortFunc(months, func(a, b Amount) int { return cmp.Compare(b, a) })
		var sum Amount
		for i := 0; i < len(months) && i < p.EstimateMonths; i++ {
			sum += months[i]
		}
		return sum
	default: // average: EstimateMonths × Σ / n, one rounding
		var sum Amount
		for _, a := range months {
			sum += a
		}
		return sum.MulRat(int64(p.EstimateMonths), int64(len(months)))
	}
}
