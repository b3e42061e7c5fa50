package flows

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRequestWindow(t *testing.T) {
	def := DefaultCMORParams()
	switchMonth := def
	switchMonth.WindowRule = CMORWindowSwitchMonth
	exclusive := def
	exclusive.WindowOpenInclusive = false
	tests := []struct {
		name      string
		sw        Date
		p         CMORParams
		open, end Date
	}{
		// brief §2.3 worked example
		{"1 Mar 2025 strict", D(2025, time.March, 1), def, D(2025, time.September, 1), D(2026, time.February, 28)},
		{"1 Mar 2025 switch_month", D(2025, time.March, 1), switchMonth, D(2025, time.September, 1), D(2026, time.March, 31)},
		{"1 Mar 2025 open exclusive", D(2025, time.March, 1), exclusive, D(2025, time.September, 2), D(2026, time.February, 28)},
		// leap years: last supply day 29 Feb 2024; the close falls in a non-leap February
		{"1 Mar 2024 strict", D(2024, time.March, 1), def, D(2024, time.September, 1), D(2025, time.February, 28)},
		{"1 Mar 2027 strict → Feb 2028", D(2027, time.March, 1), def, D(2027, time.September, 1), D(2028, time.February, 29)},
		{"1 Jan 2025 strict", D(2025, time.January, 1), def, D(2025, time.July, 1), D(2025, time.December, 31)},
		{"1 Jan 2025 switch_month", D(2025, time.January, 1), switchMonth, D(2025, time.July, 1), D(2026, time.January, 31)},
		// month ends: +6 months clamps to the end of a shorter month
		{"31 Aug 2025", D(2025, time.August, 31), def, D(2026, time.February, 28), D(2026, time.August, 31)},
		{"31 Aug 2023 → 29 Feb", D(2023, time.August, 31), def, D(2024, time.February, 29), D(2024, time.August, 31)},
		{"31 Jan 2025", D(2025, time.January, 31), def, D(2025, time.July, 31), D(2026, time.January, 31)},
		// mid-month: the last month of supply is the switch month itself
		{"15 Mar 2025 strict", D(2025, time.March, 15), def, D(2025, time.September, 15), D(2026, time.March, 31)},
	}
	for _, tt := range tests {
		open, end := RequestWindow(tt.sw, tt.p)
		if open != tt.open || end != tt.end {
			t.Errorf("%s: RequestWindow(%s) = %s-%s, want %s-%s", tt.name, tt.sw, open, end, tt.open, tt.end)
		}
	}
}

// Worked example used by most CMOR cases: switch 1 March 2025, credit window
// 01/10/2024-28/02/2025, spend window March 2024 - February 2025.
var (
	cmorSwitch = D(2025, time.March, 1)
	invNovDec  = Invoice{Number: "F1", Issued: D(2025, time.January, 10), Due: D(2025, time.February, 10),
		PeriodFrom: D(2024, time.November, 1), PeriodTo: D(2024, time.December, 31),
		Amount: MustAmount("200.00"), Unpaid: MustAmount("200.00"), RAI: MustAmount("18.00"), Reading: "E"}
	invJanFeb = Invoice{Number: "F2", Issued: D(2025, time.March, 10), Due: D(2025, time.April, 10),
		PeriodFrom: D(2025, time.January, 1), PeriodTo: D(2025, time.February, 28),
		Amount: MustAmount("150.00"), Unpaid: MustAmount("150.00"), Reading: "E"}
	// 15/09/2024-14/10/2024: 30 days, 14 inside the window
	invSepOct = Invoice{Number: "F0", PeriodFrom: D(2024, time.September, 15), PeriodTo: D(2024, time.October, 14),
		Amount: MustAmount("100.00"), Unpaid: MustAmount("100.00"), Reading: "E"}
	// 15/02/2025-14/03/2025: 28 days, 14 inside the window
	invFebMar = Invoice{Number: "F3", PeriodFrom: D(2025, time.February, 15), PeriodTo: D(2025, time.March, 14),
		Amount: MustAmount("50.01"), Unpaid: MustAmount("50.01"), Reading: "E"}
	invJunJul = Invoice{Number: "F9", PeriodFrom: D(2024, time.June, 1), PeriodTo: D(2024, time.July, 31),
		Amount: MustAmount("80.00"), Unpaid: MustAmount("80.00"), Reading: "E"}
)

// cmorSpend: 12 months March 2024 - February 2025, sum 670.00; 4 × average = 223.33;
// top 4 = 100 + 90 + 80 + 70 = 340.00.
func cmorSpend() []MonthSpend {
	amounts := []string{"60", "50", "40", "30", "30", "30", "40", "50", "70", "80", "90", "100"}
	var s []MonthSpend
	for i, a := range amounts {
		s = append(s, MonthSpend{Month: D(2024, time.March, 1).AddMonths(i), Amount: MustAmount(a)})
	}
	return s
}

func withParams(p CMORParams, f func(*CMORParams)) CMORParams { f(&p); return p }

func withInv(inv Invoice, f func(*Invoice)) Invoice { f(&inv); return inv }

// The parameters and invoices the cases of TestComputeCMOR vary.
var (
	cmorDef     = DefaultCMORParams()
	cmorTop     = withParams(cmorDef, func(p *CMORParams) { p.EstimateMethod = CMOREstimateTop })
	cmorProrate = withParams(cmorDef, func(p *CMORParams) { p.PartialInvoice = CMORPartialProrate })
	cmorBase    = []Invoice{invNovDec, invJanFeb}
)

// cmorOne is the January-February invoice alone, with the unpaid amount given.
func cmorOne(unpaid string) []Invoice {
	return []Invoice{withInv(invJanFeb, func(i *Invoice) { i.Unpaid = MustAmount(unpaid) })}
}

// computeCMORCase is one computation and what it must give.
type computeCMORCase struct {
	name                 string
	sw                   Date
	inv                  []Invoice
	spend                []MonthSpend
	prev                 Amount
	p                    CMORParams
	credit, est, cmor    string
	counted              []string
	excluded             []string // "number: reason substring"
	errRules, warnRules  []string
	windowFrom, windowTo Date
}

var computeCMORCases = []computeCMORCase{
	{name: "worked example: average, RAI excluded", inv: cmorBase, p: cmorDef,
		credit: "332.00", est: "223.33", cmor: "223.33", counted: []string{"F1", "F2"},
		windowFrom: D(2024, time.October, 1), windowTo: D(2025, time.February, 28)},
	{name: "top 4 months, capped by credit", inv: cmorBase, p: cmorTop,
		credit: "332.00", est: "340.00", cmor: "332.00", counted: []string{"F1", "F2"}},
	{name: "RAI included", inv: cmorBase, p: withParams(cmorDef, func(p *CMORParams) { p.ExcludeRAI = false }),
		credit: "350.00", est: "223.33", cmor: "223.33", counted: []string{"F1", "F2"}},
	{name: "invoice all RAI", inv: []Invoice{withInv(invNovDec, func(i *Invoice) { i.Unpaid = MustAmount("18.00") }), invJanFeb}, p: cmorDef,
		credit: "150.00", est: "223.33", cmor: "150.00", counted: []string{"F2"}, excluded: []string{"F1: all canone RAI"}},
	{name: "partially inside, whole", inv: []Invoice{invSepOct, invNovDec, invJanFeb, invFebMar}, p: cmorDef,
		credit: "482.01", est: "223.33", cmor: "223.33", counted: []string{"F0", "F1", "F2", "F3"}},
	// 100.00 × 14/30 = 46.666… → 46.67; 50.01 × 14/28 = 25.005 → 25.01 (half up)
	{name: "partially inside, prorate", inv: []Invoice{invSepOct, invNovDec, invJanFeb, invFebMar}, p: cmorProrate,
		credit: "403.68", est: "223.33", cmor: "223.33", counted: []string{"F0", "F1", "F2", "F3"}},
	{name: "outside the window", inv: []Invoice{invJunJul, invJanFeb}, p: cmorDef,
		credit: "150.00", est: "223.33", cmor: "150.00", counted: []string{"F2"}, excluded: []string{"F9: outside the credit window"}},
	{name: "estimated reading not conguagliata", p: cmorDef,
		inv:    []Invoice{invNovDec, withInv(invJanFeb, func(i *Invoice) { i.Reading = "S" })},
		credit: "182.00", est: "223.33", cmor: "182.00", counted: []string{"F1"},
		excluded: []string{"F2: not yet conguagliata"}, warnRules: []string{"E6"}},
	{name: "estimated reading conguagliata", p: cmorDef,
		inv:    []Invoice{invNovDec, withInv(invJanFeb, func(i *Invoice) { i.Reading = "s"; i.Conguagliata = true })},
		credit: "332.00", est: "223.33", cmor: "223.33", counted: []string{"F1", "F2"}},
	{name: "estimated reading allowed by parameter", p: withParams(cmorDef, func(p *CMORParams) { p.RequireActualReadings = false }),
		inv:    []Invoice{invNovDec, withInv(invJanFeb, func(i *Invoice) { i.Reading = "S" })},
		credit: "332.00", est: "223.33", cmor: "223.33", counted: []string{"F1", "F2"}},
	{name: "unknown reading type", p: cmorDef,
		inv:    []Invoice{invNovDec, withInv(invJanFeb, func(i *Invoice) { i.Reading = "X" })},
		credit: "182.00", est: "223.33", cmor: "182.00", counted: []string{"F1"},
		excluded: []string{"F2: neither E"}, warnRules: []string{"E6"}},
	{name: "reconstruction excluded", p: cmorDef,
		inv:    []Invoice{withInv(invNovDec, func(i *Invoice) { i.Reconstruction = true }), invJanFeb},
		credit: "150.00", est: "223.33", cmor: "150.00", counted: []string{"F2"},
		excluded: []string{"F1: reconstructed"}, warnRules: []string{"E6"}},
	{name: "partly paid", p: cmorDef,
		inv:    []Invoice{withInv(invNovDec, func(i *Invoice) { i.Unpaid = MustAmount("100.00") }), invJanFeb},
		credit: "232.00", est: "223.33", cmor: "223.33", counted: []string{"F1", "F2"}},
	{name: "paid", p: cmorDef,
		inv:    []Invoice{withInv(invNovDec, func(i *Invoice) { i.Unpaid = 0 }), invJanFeb},
		credit: "150.00", est: "223.33", cmor: "150.00", counted: []string{"F2"}, excluded: []string{"F1: nothing unpaid"}},
	{name: "unpaid above amount", p: cmorDef,
		inv:    []Invoice{withInv(invNovDec, func(i *Invoice) { i.Unpaid = MustAmount("200.01") }), invJanFeb},
		credit: "150.00", est: "223.33", cmor: "150.00", counted: []string{"F2"},
		excluded: []string{"F1: exceeds the invoice amount"}, warnRules: []string{"E6"}},
	{name: "duplicate invoice", p: cmorDef, inv: []Invoice{invNovDec, invJanFeb, invJanFeb},
		credit: "332.00", est: "223.33", cmor: "223.33", counted: []string{"F1", "F2"},
		excluded: []string{"F2: duplicate"}, warnRules: []string{"E6"}},
	{name: "period missing", p: cmorDef, inv: []Invoice{withInv(invNovDec, func(i *Invoice) { i.PeriodTo = Date{} }), invJanFeb},
		credit: "150.00", est: "223.33", cmor: "150.00", counted: []string{"F2"},
		excluded: []string{"F1: period missing"}, warnRules: []string{"E6"}},
	{name: "previous CMOR outside the cap", inv: cmorBase, p: cmorTop, prev: MustAmount("50.00"),
		credit: "332.00", est: "340.00", cmor: "382.00", counted: []string{"F1", "F2"}},
	{name: "previous CMOR inside the cap", inv: cmorBase, prev: MustAmount("50.00"),
		p:      withParams(cmorTop, func(p *CMORParams) { p.PreviousInsideCap = true }),
		credit: "332.00", est: "340.00", cmor: "332.00", counted: []string{"F1", "F2"}},
	{name: "previous CMOR inside the cap, under it", inv: cmorBase, prev: MustAmount("50.00"),
		p:      withParams(cmorDef, func(p *CMORParams) { p.PreviousInsideCap = true }),
		credit: "332.00", est: "223.33", cmor: "273.33", counted: []string{"F1", "F2"}},
	{name: "previous CMOR negative", inv: cmorBase, prev: MustAmount("-5.00"), p: cmorDef,
		credit: "332.00", est: "223.33", cmor: "223.33", counted: []string{"F1", "F2"}, warnRules: []string{"E11"}},
	{name: "threshold 9.99", inv: cmorOne("9.99"), p: cmorDef,
		credit: "9.99", est: "223.33", cmor: "9.99", counted: []string{"F2"}, errRules: []string{"E9"}},
	{name: "threshold 10.00", inv: cmorOne("10.00"), p: cmorDef,
		credit: "10.00", est: "223.33", cmor: "10.00", counted: []string{"F2"}, warnRules: []string{"E9"}},
	{name: "threshold 10.01", inv: cmorOne("10.01"), p: cmorDef,
		credit: "10.01", est: "223.33", cmor: "10.01", counted: []string{"F2"}},
	{name: "no credit, previous CMOR alone", inv: []Invoice{invJunJul}, prev: MustAmount("30.00"), p: cmorDef,
		credit: "0.00", est: "223.33", cmor: "30.00", excluded: []string{"F9: outside"}, errRules: []string{"E6"}},
	{name: "no spend data", inv: cmorBase, spend: []MonthSpend{}, p: cmorDef,
		credit: "332.00", est: "0.00", cmor: "0.00", counted: []string{"F1", "F2"},
		errRules: []string{"E9"}, warnRules: []string{"E6"}},
	// months without supply (0) do not lower the average; months outside the window
	// (February 2024, March 2025) are ignored
	{name: "average over months with supply", inv: cmorBase, p: cmorDef,
		spend: []MonthSpend{
			{D(2024, time.February, 1), MustAmount("999")}, {D(2024, time.March, 1), MustAmount("100")},
			{D(2024, time.April, 15), MustAmount("200")}, {D(2024, time.May, 1), 0},
			{D(2025, time.March, 1), MustAmount("999")}},
		credit: "332.00", est: "600.00", cmor: "332.00", counted: []string{"F1", "F2"}},
	{name: "average with one-third cents", inv: cmorBase, p: cmorDef,
		spend: []MonthSpend{
			{D(2024, time.March, 1), MustAmount("10.00")}, {D(2024, time.April, 1), MustAmount("10.00")},
			{D(2024, time.May, 1), MustAmount("10.01")}},
		// 4 × 30.01 / 3 = 40.0133… → 40.01
		credit: "332.00", est: "40.01", cmor: "40.01", counted: []string{"F1", "F2"}},
	{name: "top with fewer months than 4", inv: cmorBase, p: cmorTop,
		spend:  []MonthSpend{{D(2024, time.March, 1), MustAmount("10.00")}, {D(2024, time.April, 1), MustAmount("20.00")}},
		credit: "332.00", est: "30.00", cmor: "30.00", counted: []string{"F1", "F2"}},
	{name: "spend month repeated: same value once, different value warned", inv: cmorBase, p: cmorDef,
		spend: []MonthSpend{
			{D(2024, time.March, 1), MustAmount("100")}, {D(2024, time.March, 1), MustAmount("100")},
			{D(2024, time.April, 1), MustAmount("50")}, {D(2024, time.April, 1), MustAmount("70")}},
		credit: "332.00", est: "300.00", cmor: "300.00", counted: []string{"F1", "F2"}, warnRules: []string{"E6"}},
	// leap year: switch 1 March 2024, credit window 01/10/2023-29/02/2024
	{name: "leap year", sw: D(2024, time.March, 1), p: cmorDef,
		inv: []Invoice{
			{Number: "L1", PeriodFrom: D(2024, time.February, 1), PeriodTo: D(2024, time.February, 29), Amount: MustAmount("80.00"), Unpaid: MustAmount("80.00"), Reading: "E"},
			{Number: "L2", PeriodFrom: D(2024, time.March, 1), PeriodTo: D(2024, time.March, 31), Amount: MustAmount("80.00"), Unpaid: MustAmount("80.00"), Reading: "E"},
			{Number: "L3", PeriodFrom: D(2023, time.September, 1), PeriodTo: D(2023, time.September, 30), Amount: MustAmount("80.00"), Unpaid: MustAmount("80.00"), Reading: "E"}},
		spend: []MonthSpend{
			{D(2023, time.February, 1), MustAmount("500")}, {D(2023, time.March, 1), MustAmount("40")},
			{D(2024, time.February, 1), MustAmount("60")}, {D(2024, time.March, 1), MustAmount("500")}},
		credit: "80.00", est: "200.00", cmor: "80.00", counted: []string{"L1"},
		excluded:   []string{"L2: outside", "L3: outside"},
		windowFrom: D(2023, time.October, 1), windowTo: D(2024, time.February, 29)},
	// month end: switch 31 July 2024 → window from 29 February 2024 (31 Feb clamped)
	{name: "month end 31 Jul", sw: D(2024, time.July, 31), p: cmorDef,
		inv: []Invoice{
			{Number: "M1", PeriodFrom: D(2024, time.February, 1), PeriodTo: D(2024, time.February, 28), Amount: MustAmount("10.00"), Unpaid: MustAmount("10.00"), Reading: "E"},
			{Number: "M2", PeriodFrom: D(2024, time.February, 29), PeriodTo: D(2024, time.February, 29), Amount: MustAmount("11.00"), Unpaid: MustAmount("11.00"), Reading: "E"},
			{Number: "M3", PeriodFrom: D(2024, time.July, 30), PeriodTo: D(2024, time.July, 31), Amount: MustAmount("12.00"), Unpaid: MustAmount("12.00"), Reading: "E"}},
		spend:  []MonthSpend{{D(2024, time.July, 1), MustAmount("100")}},
		credit: "23.00", est: "400.00", cmor: "23.00", counted: []string{"M2", "M3"}, excluded: []string{"M1: outside"},
		windowFrom: D(2024, time.February, 29), windowTo: D(2024, time.July, 30)},
	{name: "month end 31 Jan + 5 months back", sw: D(2025, time.January, 31), p: cmorDef,
		inv:    []Invoice{{Number: "J1", PeriodFrom: D(2024, time.August, 31), PeriodTo: D(2024, time.August, 31), Amount: MustAmount("15.00"), Unpaid: MustAmount("15.00"), Reading: "E"}},
		spend:  []MonthSpend{{D(2025, time.January, 1), MustAmount("100")}},
		credit: "15.00", est: "400.00", cmor: "15.00", counted: []string{"J1"},
		windowFrom: D(2024, time.August, 31), windowTo: D(2025, time.January, 30)},
}

func TestComputeCMOR(t *testing.T) {
	tests := computeCMORCases
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw := tt.sw
			if sw.IsZero() {
				sw = cmorSwitch
			}
			spend := tt.spend
			if spend == nil {
				spend = cmorSpend()
			}
			r := ComputeCMOR(sw, tt.inv, spend, tt.prev, tt.p)
			if r.Credit.String() != tt.credit || r.Estimate.String() != tt.est || r.CMOR.String() != tt.cmor {
				t.Errorf("credit/estimate/cmor = %s/%s/%s, want %s/%s/%s", r.Credit, r.Estimate, r.CMOR, tt.credit, tt.est, tt.cmor)
			}
			if r.Base != Min(r.Estimate, r.Credit) {
				t.Errorf("base %s != min(estimate, credit)", r.Base)
			}
			if !reflect.DeepEqual(r.Counted, tt.counted) {
				t.Errorf("counted = %v, want %v", r.Counted, tt.counted)
			}
			if len(r.Excluded) != len(tt.excluded) {
				t.Errorf("excluded = %+v, want %v", r.Excluded, tt.excluded)
			} else {
				for i, want := range tt.excluded {
					num, reason, _ := strings.Cut(want, ": ")
					if r.Excluded[i].Invoice != num || !strings.Contains(r.Excluded[i].Reason, reason) {
						t.Errorf("excluded[%d] = %+v, want %s", i, r.Excluded[i], want)
					}
				}
			}
			errs, warns := rulesBySeverity(r.Findings)
			if !reflect.DeepEqual(errs, tt.errRules) || !reflect.DeepEqual(warns, tt.warnRules) {
				t.Errorf("findings = %v, want errors %v warnings %v", r.Findings, tt.errRules, tt.warnRules)
			}
			if !tt.windowFrom.IsZero() && (r.CreditWindowFrom != tt.windowFrom || r.CreditWindowTo != tt.windowTo) {
				t.Errorf("credit window = %s-%s, want %s-%s", r.CreditWindowFrom, r.CreditWindowTo, tt.windowFrom, tt.windowTo)
			}
		})
	}
}

// rulesBySeverity returns the distinct rule ids of error and of warning findings, in
// order of first appearance (nil when none).
func rulesBySeverity(fs []Finding) (errs, warns []string) {
	seen := map[string]bool{}
	for _, f := range fs {
		key := f.Severity + "/" + f.Rule
		if seen[key] {
			continue
		}
		seen[key] = true
		if f.IsWarning() {
			warns = append(warns, f.Rule)
		} else {
			errs = append(errs, f.Rule)
		}
	}
	return errs, warns
}

func TestCMORParamsValidate(t *testing.T) {
	if err := DefaultCMORParams().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	bad := []CMORParams{
		withParams(DefaultCMORParams(), func(p *CMORParams) { p.CreditWindowMonths = 0 }),
		withParams(DefaultCMORParams(), func(p *CMORParams) { p.EstimateMonths = 13 }),
		withParams(DefaultCMORParams(), func(p *CMORParams) { p.EstimateMethod = "median" }),
		withParams(DefaultCMORParams(), func(p *CMORParams) { p.PartialInvoice = "split" }),
		withParams(DefaultCMORParams(), func(p *CMORParams) { p.WindowRule = "loose" }),
		withParams(DefaultCMORParams(), func(p *CMORParams) { p.MinIndemnity = -1 }),
	}
	for i, p := range bad {
		if p.Validate() == nil {
			t.Errorf("bad params %d accepted: %+v", i, p)
		}
	}
}

func BenchmarkComputeCMOR(b *testing.B) {
	p := DefaultCMORParams()
	inv := []Invoice{invSepOct, invNovDec, invJanFeb, invFebMar}
	spend := cmorSpend()
	for b.Loop() {
		_ = ComputeCMOR(cmorSwitch, inv, spend, 0, p)
	}
}
