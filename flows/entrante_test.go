package flows

import (
	"strings"
	"testing"
	"time"
)

func TestEffectiveSuspensionTerm(t *testing.T) {
	cal := NewCalendar(0, 0)
	patron := NewCalendar(time.June, 29) // Rome: Santi Pietro e Paolo
	cases := []struct {
		name string
		cal  *Calendar
		term Date
		want Date
	}{
		{"working day stays", cal, D(2025, 12, 31), D(2025, 12, 31)},
		{"saturday at month end, then Sunday and 2 June", cal, D(2025, 5, 31), D(2025, 6, 3)},
		{"Liberation Day (Friday)", cal, D(2025, 4, 25), D(2025, 4, 28)},
		{"Saturday 31 October, 1 November on Sunday", cal, D(2026, 10, 31), D(2026, 11, 2)},
		{"San Francesco from 2026", cal, D(2026, 10, 4), D(2026, 10, 5)},
		{"Christmas and Santo Stefano", cal, D(2025, 12, 25), D(2025, 12, 29)},
		{"Easter Monday 2025", cal, D(2025, 4, 21), D(2025, 4, 22)},
		{"New Year's Day", cal, D(2026, 1, 1), D(2026, 1, 2)},
		{"Saturday 28 February (not leap)", cal, D(2026, 2, 28), D(2026, 3, 2)},
		{"patron day", patron, D(2026, 6, 29), D(2026, 6, 30)},
		{"patron day off elsewhere", cal, D(2026, 6, 29), D(2026, 6, 29)},
		{"zero term", cal, Date{}, Date{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := EffectiveSuspensionTerm(c.term, c.cal); got != c.want {
				t.Errorf("EffectiveSuspensionTerm(%s) = %s, want %s", c.term, got, c.want)
			}
		})
	}
}

func rules(fs []Finding) string {
	var r []string
	for _, f := range fs {
		r = append(r, f.Rule)
	}
	return strings.Join(r, ",")
}

func TestCheckSuspension(t *testing.T) {
	cal := NewCalendar(0, 0)
	base := SuspensionCase{Sector: "E", Cause: SuspPointSuspended, EventDate: D(2025, 5, 20), Today: D(2025, 5, 30),
		Term: D(2025, 5, 31), CMOR: MustAmount("45.00"), State: EntranteCharged}
	cases := []struct {
		name string
		mod  func(c *SuspensionCase)
		want string
	}{
		{"in time", func(c *SuspensionCase) {}, ""},
		{"on the term itself", func(c *SuspensionCase) { c.Today = D(2025, 5, 31) }, ""},
		{"term on Saturday extended past 2 June", func(c *SuspensionCase) { c.Today = D(2025, 6, 3) }, ""},
		{"a day after the extended term", func(c *SuspensionCase) { c.Today = D(2025, 6, 4) }, RuleSuspTerm},
		{"late across the month end", func(c *SuspensionCase) { c.Term, c.Today, c.EventDate = D(2025, 1, 31), D(2025, 2, 1), D(2025, 1, 20) }, RuleSuspTerm},
		{"no term", func(c *SuspensionCase) { c.Term = Date{} }, RuleSuspNoTerm},
		{"collected flag", func(c *SuspensionCase) { c.CollectedFlag = true }, RuleSuspCollected},
		{"collected amounts", func(c *SuspensionCase) { c.Collected = MustAmount("45.00") }, RuleSuspCollected},
		{"partly collected is fine", func(c *SuspensionCase) { c.Collected = MustAmount("10.00") }, ""},
		{"collected state", func(c *SuspensionCase) { c.State = EntranteCollected }, RuleSuspCollected},
		{"annulled", func(c *SuspensionCase) { c.State = EntranteAnnulled }, RuleSuspState},
		{"already suspended", func(c *SuspensionCase) { c.State = EntranteSuspended }, RuleSuspState},
		{"gas cause on electricity", func(c *SuspensionCase) { c.Cause = SuspGasClosed }, RuleSuspCause},
		{"electricity cause on gas", func(c *SuspensionCase) { c.Sector = "G" }, RuleSuspCause},
		{"gas cause on gas", func(c *SuspensionCase) { c.Sector, c.Cause = "G", SuspGasClosed }, ""},
		{"unknown cause", func(c *SuspensionCase) { c.Cause = "SO-09" }, RuleSuspCause},
		{"future event", func(c *SuspensionCase) { c.EventDate = D(2025, 6, 1) }, RuleSuspDate},
		{"no event date", func(c *SuspensionCase) { c.EventDate = Date{} }, RuleSuspDate},
		{"late and collected", func(c *SuspensionCase) { c.Today, c.CollectedFlag = D(2025, 7, 1), true }, RuleSuspCollected + "," + RuleSuspTerm},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := base
			c.mod(&sc)
			fs := CheckSuspension(sc, cal)
			if got := rules(fs); got != c.want {
				t.Errorf("rules = %q, want %q (%v)", got, c.want, fs)
			}
			for _, f := range fs {
				if f.Field == "" || f.Message == "" {
					t.Errorf("finding without field or message: %+v", f)
				}
			}
		})
	}
}

func TestCheckSuspensionTermMessageNamesDates(t *testing.T) {
	fs := CheckSuspension(SuspensionCase{Sector: "E", Cause: "SO-02", EventDate: D(2025, 5, 2), Today: D(2025, 6, 4),
		Term: D(2025, 5, 31), State: EntranteCharged}, NewCalendar(0, 0))
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "03/06/2025") || !strings.Contains(fs[0].Message, "31/05/2025") {
		t.Fatalf("message should name the term and the extended term: %v", fs)
	}
}

func TestCheckRevocation(t *testing.T) {
	cases := []struct {
		cause, state, want string
	}{
		{RevokePaid, EntranteSuspended, ""},
		{RevokeResumed, EntranteSuspRequested, ""},
		{RevokeOther, EntranteSuspended, ""},
		{"RV-07", EntranteSuspended, RuleRevokeCause},
		{RevokePaid, EntranteCharged, RuleRevokeState},
	}
	for _, c := range cases {
		if got := rules(CheckRevocation(c.cause, c.state)); got != c.want {
			t.Errorf("CheckRevocation(%s, %s) = %q, want %q", c.cause, c.state, got, c.want)
		}
	}
}

func TestReportPeriodOf(t *testing.T) {
	cases := []struct {
		at   time.Time
		want string
	}{
		{time.Date(2025, 1, 31, 22, 59, 59, 0, time.UTC), "2025-01"}, // 23:59:59 in Rome (CET)
		{time.Date(2025, 1, 31, 23, 30, 0, 0, time.UTC), "2025-02"},  // 00:30 on 1 February in Rome
		{time.Date(2025, 6, 30, 21, 59, 0, 0, time.UTC), "2025-06"},  // 23:59 CEST
		{time.Date(2025, 6, 30, 22, 0, 0, 0, time.UTC), "2025-07"},   // midnight CEST
		{time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC), "2026-01"},  // New Year in Rome
		{time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC), "2024-02"},   // leap day
		{time.Date(2025, 3, 31, 21, 30, 0, 0, time.UTC), "2025-03"},  // after the spring DST change
		{time.Date(2025, 10, 31, 23, 0, 0, 0, time.UTC), "2025-11"},  // after the autumn DST change (CET)
		{time.Date(2025, 10, 31, 22, 59, 0, 0, time.UTC), "2025-10"},
	}
	for _, c := range cases {
		if got := ReportPeriodOf(c.at).String(); got != c.want {
			t.Errorf("ReportPeriodOf(%s) = %s, want %s", c.at, got, c.want)
		}
	}
}

func TestReportPeriodClosed(t *testing.T) {
	jan := ReportPeriod{2025, time.January}
	cases := []struct {
		now  time.Time
		want bool
	}{
		{time.Date(2025, 1, 31, 22, 59, 0, 0, time.UTC), false},
		{time.Date(2025, 1, 31, 23, 0, 0, 0, time.UTC), true}, // 1 February 00:00 in Rome
		{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC), false},
	}
	for _, c := range cases {
		if got := jan.Closed(c.now); got != c.want {
			t.Errorf("Closed(%s) = %v, want %v", c.now, got, c.want)
		}
	}
	if n := (ReportPeriod{2025, time.December}).Next(); n.String() != "2026-01" {
		t.Errorf("Next of 2025-12 = %s", n)
	}
	if p, err := ParseReportPeriod("2025-02"); err != nil || p.Last() != D(2025, 2, 28) || p.First() != D(2025, 2, 1) {
		t.Errorf("ParseReportPeriod: %v %v", p, err)
	}
	if _, err := ParseReportPeriod("2025/02"); err == nil {
		t.Error("bad period accepted")
	}
}

func TestCollectionState(t *testing.T) {
	a := MustAmount
	cases := []struct {
		given             string
		billed, collected Amount
		want              string
		bad               bool
	}{
		{"", a("45.00"), 0, CollNone, false},
		{"", a("45.00"), a("45.00"), CollCollected, false},
		{"", a("45.00"), a("20.00"), CollPartial, false},
		{"I", a("45.00"), a("45.00"), CollCollected, false},
		{"i", a("45.00"), a("50.00"), CollCollected, false},
		{"I", a("45.00"), a("20.00"), "I", true},
		{"N", a("45.00"), a("20.00"), "N", true},
	}
	for _, c := range cases {
		got, f := CollectionState(c.given, c.billed, c.collected)
		if got != c.want || (f != nil) != c.bad {
			t.Errorf("CollectionState(%q, %s, %s) = %s, %v", c.given, c.billed, c.collected, got, f)
		}
	}
}

func TestEntranteStateFor(t *testing.T) {
	a := MustAmount
	cases := []struct {
		charged, collected, cmor Amount
		want                     string
	}{
		{0, 0, a("45.00"), EntranteToCharge},
		{a("45.00"), 0, a("45.00"), EntranteCharged},
		{a("45.00"), a("10.00"), a("45.00"), EntranteCharged},
		{a("45.00"), a("45.00"), a("45.00"), EntranteCollected},
		{a("30.00"), a("30.00"), a("45.00"), EntranteCharged}, // billed in two invoices, one still out
	}
	for _, c := range cases {
		if got := EntranteStateFor(c.charged, c.collected, c.cmor); got != c.want {
			t.Errorf("EntranteStateFor(%s, %s, %s) = %s, want %s", c.charged, c.collected, c.cmor, got, c.want)
		}
	}
}

func TestNotes(t *testing.T) {
	a := MustAmount
	cases := []struct {
		name               string
		line               NoteLine
		ok                 bool
		wantType, wantAmnt string
	}{
		{"annulled after billing", must(AnnulmentNote(a("45.00"), a("45.00"))), true, NoteCredit, "45.00"},
		{"annulled before billing", must(AnnulmentNote(a("45.00"), 0)), true, NoteAdjustment, "45.00"},
		{"update down after billing", must(UpdateNote(a("45.00"), a("30.00"), a("45.00"))), true, NoteCredit, "15.00"},
		{"update up after billing", must(UpdateNote(a("45.00"), a("52.50"), a("45.00"))), true, NoteDebit, "7.50"},
		{"update before billing", must(UpdateNote(a("45.00"), a("30.00"), 0)), true, NoteAdjustment, "15.00"},
		{"update vs what was billed", must(UpdateNote(a("45.00"), a("40.00"), a("40.00"))), false, "", "0.00"},
		{"no change", must(UpdateNote(a("45.00"), a("45.00"), 0)), false, "", "0.00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.line.Type != c.wantType || c.line.Amount.String() != c.wantAmnt {
				t.Errorf("got %+v, want %s %s", c.line, c.wantType, c.wantAmnt)
			}
		})
	}
	if _, ok := AnnulmentNote(0, 0); ok {
		t.Error("annulment of nothing produced a note")
	}
}

func must(n NoteLine, ok bool) NoteLine {
	if !ok {
		return NoteLine{Amount: 0}
	}
	return n
}

func TestEntranteDataInvoices(t *testing.T) {
	var d EntranteData
	d.SetInvoice(EntranteInvoice{Number: "F1", Billed: MustAmount("45.00"), State: CollNone})
	b, c := d.SetInvoice(EntranteInvoice{Number: "F1", Billed: MustAmount("45.00"), Collected: MustAmount("45.00"), State: CollCollected})
	if b.String() != "45.00" || c.String() != "45.00" || len(d.Invoices) != 1 {
		t.Fatalf("totals %s %s %d", b, c, len(d.Invoices))
	}
	back, err := ParseEntranteData(d.Marshal())
	if err != nil || len(back.Invoices) != 1 || back.Invoices[0].Collected != MustAmount("45.00") {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if EntranteCaseKey(" sii2024a8588941 ") != "E|SII2024A8588941" {
		t.Error("case key")
	}
}

func TestRevocation(t *testing.T) {
	names := []string{EntSuspCause, EntSuspDate, EntCMORCollected, EntReactivation}
	f := &Flow{Key: "x"}
	for _, n := range names {
		f.Fields = append(f.Fields, Field{Name: n})
	}
	f.layout = NewLayout(names)
	row := func(vals ...string) Record {
		r := NewRecord(f)
		for i := 0; i+1 < len(vals); i += 2 {
			_ = r.Set(vals[i], vals[i+1])
		}
		return r
	}
	cases := []struct {
		name  string
		r     Record
		state string
		cause string
		on    Date
	}{
		{"explicit cause", row(EntSuspCause, "rv-99", EntSuspDate, "02/06/2025"), EntranteSuspended, "RV-99", D(2025, 6, 2)},
		{"reactivated", row(EntSuspCause, "SO-01", EntReactivation, "03/06/2025"), EntranteSuspended, RevokeResumed, D(2025, 6, 3)},
		{"paid while suspended", row(EntSuspCause, "SO-01", EntCMORCollected, "S", EntSuspDate, "01/06/2025"), EntranteSuspended, RevokePaid, D(2025, 6, 1)},
		{"paid while requested", row(EntCMORCollected, "S"), EntranteSuspRequested, RevokePaid, Date{}},
		{"paid, never suspended: a (refused) suspension", row(EntSuspCause, "SO-01", EntCMORCollected, "S"), EntranteCharged, "", Date{}},
		{"a suspension", row(EntSuspCause, "SO-01", EntCMORCollected, "N"), EntranteSuspended, "", Date{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cause, on, ok := Revocation(c.r, c.state)
			if cause != c.cause || ok != (c.cause != "") || on != c.on {
				t.Errorf("Revocation = %q %s %v, want %q %s", cause, on, ok, c.cause, c.on)
			}
		})
	}
}
