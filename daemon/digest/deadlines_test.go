package digest

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

func TestComputeDeadlines(t *testing.T) {
	d := flows.D
	js := func(s string) json.RawMessage { return json.RawMessage(s) }
	annulled := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 11, 0, 0, 0, flows.Rome) }
	cases := []struct {
		name  string
		p     archive.Practice
		hist  []archive.HistoryEntry
		cal   *flows.Calendar
		cfg   DeadlineConfig
		today flows.Date
		want  string // kind=due, ...
	}{
		{"uscente waiting: opening and closing", archive.Practice{Role: "uscente", State: flows.StateWaitingWindow,
			WindowOpen: d(2026, 12, 1), WindowClose: d(2027, 6, 30)}, nil, nil, DeadlineConfig{}, d(2026, 11, 20),
			"window_opening=01/12/2026 window_closing=30/06/2027"},
		{"uscente ready: closing only", archive.Practice{Role: "uscente", State: flows.StateReady,
			WindowOpen: d(2026, 5, 1), WindowClose: d(2026, 11, 30)}, nil, nil, DeadlineConfig{}, d(2026, 11, 20), "window_closing=30/11/2026"},
		{"uscente admitted: no window any more", archive.Practice{Role: "uscente", State: flows.StateAccepted,
			WindowClose: d(2026, 11, 30)}, nil, nil, DeadlineConfig{}, d(2026, 11, 20), ""},
		{"no answer across Easter Monday and 25 April (2025)", archive.Practice{Role: "uscente", State: flows.StateSent,
			RequestDate: d(2025, 4, 17)}, nil, nil, DeadlineConfig{}, d(2025, 4, 18), "no_answer=28/04/2025"},
		{"no answer across Ferragosto (2025)", archive.Practice{Role: "uscente", State: flows.StateSent,
			RequestDate: d(2025, 8, 12)}, nil, nil, DeadlineConfig{}, d(2025, 8, 12), "no_answer=20/08/2025"},
		{"no answer across 8 December (2026)", archive.Practice{Role: "uscente", State: flows.StateSent,
			RequestDate: d(2026, 12, 3)}, nil, nil, DeadlineConfig{}, d(2026, 12, 3), "no_answer=11/12/2026"},
		{"no answer across 4 October (holiday from 2026; 2027 a Monday)", archive.Practice{Role: "uscente", State: flows.StateSent,
			RequestDate: d(2027, 9, 29)}, nil, nil, DeadlineConfig{}, d(2027, 9, 29), "no_answer=07/10/2027"},
		{"no answer, patron day 29 June, 2 days", archive.Practice{Role: "uscente", State: flows.StateSent,
			RequestDate: d(2026, 6, 26)}, nil, flows.NewCalendar(time.June, 29), DeadlineConfig{NoAnswerDays: 2}, d(2026, 6, 26), "no_answer=01/07/2026"},
		{"no answer after admission counts from the answer", archive.Practice{Role: "uscente", State: flows.StateAdmitted,
			RequestDate: d(2026, 3, 2), AnswerDate: d(2026, 3, 4)}, nil, nil, DeadlineConfig{}, d(2026, 3, 5), "no_answer=11/03/2026"},
		{"annulled after payment: refund and ack across the month end", archive.Practice{Role: "uscente", State: flows.StateAnnulled,
			StateSince: annulled(2026, 1, 30)}, []archive.HistoryEntry{{To: flows.StateIndemnityPaid}, {From: flows.StateIndemnityPaid,
			To: flows.StateAnnulled, Flow: "ANN_NOTIF", At: annulled(2026, 1, 30)}}, nil, DeadlineConfig{}, d(2026, 1, 30),
			"refund_overdue=09/02/2026 ack_overdue=03/02/2026"},
		{"annulled at Christmas: ack skips 25-26 December and the weekend", archive.Practice{Role: "uscente", State: flows.StateAnnulled,
			StateSince: annulled(2026, 12, 24), Data: js(`{"indemnity_paid": true}`)}, nil, nil, DeadlineConfig{}, d(2026, 12, 24),
			"refund_overdue=03/01/2027 ack_overdue=29/12/2026"},
		{"annulled, never paid: nothing to refund", archive.Practice{Role: "uscente", State: flows.StateAnnulled,
			StateSince: annulled(2026, 3, 2)}, []archive.HistoryEntry{{To: flows.StateAdmitted}}, nil, DeadlineConfig{}, d(2026, 3, 2), ""},
		{"data overrides the computed dates", archive.Practice{Role: "uscente", State: flows.StateAnnulled, StateSince: annulled(2026, 3, 2),
			Data: js(`{"refund_due": "15/03/2026", "ack_due": "2026-03-17"}`)}, nil, nil, DeadlineConfig{}, d(2026, 3, 2),
			"refund_overdue=15/03/2026 ack_overdue=17/03/2026"},
		{"refund made: ack counts from the refund", archive.Practice{Role: "uscente", State: flows.StateAnnulled, StateSince: annulled(2026, 3, 2),
			Data: js(`{"indemnity_paid": true, "refunded_on": "2026-03-06"}`)}, nil, nil, DeadlineConfig{}, d(2026, 3, 6), "ack_overdue=10/03/2026"},
		{"refund and ack recorded: nothing left", archive.Practice{Role: "uscente", State: flows.StateAnnulled, StateSince: annulled(2026, 3, 2),
			Data: js(`{"indemnity_paid": true, "refunded_on": "2026-03-06", "ack_sent_on": "2026-03-09"}`)}, nil, nil, DeadlineConfig{}, d(2026, 3, 9), ""},
		{"entrante: suspension term", archive.Practice{Role: "entrante", State: flows.EntranteNotified, SuspensionTerm: d(2026, 12, 4)},
			nil, nil, DeadlineConfig{}, d(2026, 11, 20), "suspension_term_closing=04/12/2026"},
		{"entrante charged: suspension term", archive.Practice{Role: "entrante", State: flows.EntranteCharged, SuspensionTerm: d(2026, 12, 4)},
			nil, nil, DeadlineConfig{}, d(2026, 11, 20), "suspension_term_closing=04/12/2026"},
		{"entrante collected: nothing to suspend", archive.Practice{Role: "entrante", State: flows.EntranteCollected, SuspensionTerm: d(2026, 12, 4)},
			nil, nil, DeadlineConfig{}, d(2026, 11, 20), ""},
		{"entrante closed: nothing to suspend", archive.Practice{Role: "entrante", State: flows.EntranteClosed, SuspensionTerm: d(2026, 12, 4)},
			nil, nil, DeadlineConfig{}, d(2026, 11, 20), ""},
		{"entrante: suspension requested", archive.Practice{Role: "entrante", State: flows.EntranteCharged, SuspensionTerm: d(2026, 12, 4),
			Data: js(`{"suspension_requested": "2026-11-21"}`)}, nil, nil, DeadlineConfig{}, d(2026, 11, 22), ""},
		{"entrante: suspension request delivered, no answer expected before its term", archive.Practice{Role: "entrante", State: flows.EntranteSuspRequested,
			SuspensionTerm: d(2026, 12, 4), StateSince: annulled(2026, 11, 20)}, nil, nil, DeadlineConfig{}, d(2026, 11, 22), "no_answer=27/11/2026"},
		{"entrante: suspended", archive.Practice{Role: "entrante", State: flows.StateSuspended, SuspensionTerm: d(2026, 12, 4)},
			nil, nil, DeadlineConfig{}, d(2026, 11, 22), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cal := tc.cal
			if cal == nil {
				cal = flows.NewCalendar(0, 0)
			}
			got := ""
			for i, dl := range ComputeDeadlinesWithHistory(tc.p, tc.hist, cal, tc.cfg, tc.today) {
				if i > 0 {
					got += " "
				}
				got += dl.Kind + "=" + dl.Due.String()
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDeadlineSeverity(t *testing.T) {
	cal := flows.NewCalendar(0, 0)
	cfg := DeadlineConfig{}.withDefaults()
	d := flows.D
	cases := []struct {
		kind       string
		due, today flows.Date
		want       string // "" = not raised
	}{
		{DeadlineWindowClosing, d(2026, 12, 31), d(2026, 11, 23), ""},       // 38 days
		{DeadlineWindowClosing, d(2026, 12, 23), d(2026, 11, 23), "normal"}, // 30 days
		{DeadlineWindowClosing, d(2026, 11, 30), d(2026, 11, 23), "high"},   // 7 days
		{DeadlineWindowClosing, d(2026, 11, 25), d(2026, 11, 23), "urgent"}, // 2 working days
		{DeadlineWindowClosing, d(2026, 11, 20), d(2026, 11, 23), "urgent"}, // past
		{DeadlineSuspensionTerm, d(2026, 12, 9), d(2026, 12, 4), "urgent"},  // Fri → Wed over 8 Dec: 7 and 9 = 2 working days
		{DeadlineRefund, d(2026, 4, 7), d(2026, 4, 3), "urgent"},            // Easter Monday 6 April 2026: 1 working day
		{DeadlineAck, d(2026, 8, 18), d(2026, 8, 13), "high"},               // 14, 17, 18 = 3 working days (15 Aug Sat)
		{DeadlineNoAnswer, d(2026, 11, 23), d(2026, 11, 23), ""},            // due today: not yet late
		{DeadlineNoAnswer, d(2026, 11, 20), d(2026, 11, 23), "high"},        // late
		{DeadlineWindowOpening, d(2026, 12, 1), d(2026, 11, 23), ""},        // 8 days
		{DeadlineWindowOpening, d(2026, 11, 24), d(2026, 11, 23), "low"},    // never urgent
	}
	for _, tc := range cases {
		sev, ok := deadlineSeverity(tc.kind, tc.due, tc.today, cal, cfg)
		if !ok {
			sev = ""
		}
		if sev != tc.want {
			t.Errorf("%s due %s seen %s: %q, want %q", tc.kind, tc.due, tc.today, sev, tc.want)
		}
	}
}

func TestRunDeadlinesRaiseEscalateResolve(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	cal := flows.NewCalendar(0, 0)
	p := &archive.Practice{CaseKey: "U|IT001E1|X|2026", Role: "uscente", Sector: "E", CompanyPIVA: "00488410010", CPUtente: "E260000001",
		Point: "IT001E1", CustomerID: "X", State: flows.StateReady, WindowOpen: flows.D(2026, 5, 1), WindowClose: flows.D(2026, 12, 9)}
	createPractice(t, st, p, rome(2026, 10, 1, 9, 0))
	run := func(at time.Time) (int, int) {
		t.Helper()
		r, s, err := RunDeadlines(ctx, st, cal, DeadlineConfig{}, at)
		if err != nil {
			t.Fatal(err)
		}
		return r, s
	}
	open := func() []archive.Exception {
		yes := true
		ex, err := st.Exceptions(ctx, archive.ExceptionFilter{Open: &yes})
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
	if r, _ := run(rome(2026, 11, 1, 6, 0)); r != 0 { // 38 days ahead
		t.Fatalf("raised %d 38 days ahead", r)
	}
	rows, _ := st.DeadlinesBetween(ctx, flows.Date{}, flows.D(2027, 1, 1))
	if len(rows) != 1 || rows[0].Kind != DeadlineWindowClosing {
		t.Fatalf("deadlines table = %+v", rows)
	}
	for _, step := range []struct {
		at   time.Time
		want string
	}{{rome(2026, 11, 10, 6, 0), "normal"}, {rome(2026, 12, 2, 6, 0), "high"}, {rome(2026, 12, 4, 6, 0), "urgent"}} {
		run(step.at)
		ex := open()
		if len(ex) != 1 || ex[0].Severity != step.want || ex[0].DueOn != "2026-12-09" || ex[0].PracticeID != p.ID {
			t.Fatalf("at %v: %+v, want one %s", step.at, ex, step.want)
		}
	}
	// The practice is filed: window_closing clears, no_answer is computed (not yet due).
	p.RequestDate = flows.D(2026, 12, 4)
	write(t, st, func(tx *sql.Tx) error { return st.SavePractice(ctx, tx, p) })
	transition(t, st, p, flows.StateSent, "REQ", rome(2026, 12, 4, 10, 0))
	if _, s := run(rome(2026, 12, 4, 11, 0)); s != 1 || len(open()) != 0 {
		t.Fatalf("resolved %d, open %+v", s, open())
	}
	// 5 working days after Friday 4 December, skipping 8 December: Monday 14; late on the 15th.
	if r, _ := run(rome(2026, 12, 14, 6, 0)); r != 0 {
		t.Fatal("no_answer raised on its due day")
	}
	if r, _ := run(rome(2026, 12, 15, 6, 0)); r != 1 {
		t.Fatal("no_answer not raised once late")
	}
	if ex := open(); len(ex) != 1 || ex[0].Kind != DeadlineNoAnswer || ex[0].DueOn != "2026-12-14" {
		t.Fatalf("open = %+v", ex)
	}
	// A second run the same day bumps, does not duplicate.
	if r, _ := run(rome(2026, 12, 15, 18, 0)); r != 0 || len(open()) != 1 || open()[0].Count != 2 {
		t.Fatalf("repeat run: %+v", open())
	}
}
