package digest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// Deadline kinds (each is also the kind of the exception it raises).
const (
	DeadlineWindowOpening  = "window_opening"
	DeadlineWindowClosing  = "window_closing"
	DeadlineSuspensionTerm = "suspension_term_closing"
	DeadlineRefund         = "refund_overdue"
	DeadlineAck            = "ack_overdue"
	DeadlineNoAnswer       = "no_answer"
)

// Keys of the practice's data JSON that the deadlines read. Whoever records the event
// (a refund, the acknowledgement to the SII, a suspension request) sets the key, and
// the deadline clears at the next run.
const (
	DataRefundDue           = "refund_due"           // date: overrides the computed 10-day term
	DataAckDue              = "ack_due"              // date: overrides the computed 2-working-day term
	DataRefundedOn          = "refunded_on"          // date: refund made (clears refund_overdue)
	DataAckSentOn           = "ack_sent_on"          // date: SII told of the refund (clears ack_overdue)
	DataIndemnityPaid       = "indemnity_paid"       // bool: CSEA paid us before the annulment
	DataSuspensionRequested = "suspension_requested" // bool or date: the entrante asked for suspension
)

// DeadlineConfig holds the terms ([deadlines] and [alerts] of the configuration).
type DeadlineConfig struct {
	NoAnswerDays            int   // working days after the request with no SII answer (default 5)
	RefundDays              int   // calendar days to refund after an annulment (default 10)
	AckDays                 int   // working days to tell the SII (default 2)
	WarnDays                []int // calendar days ahead to raise reminders (default 30, 7, 2)
	UrgentWithinWorkingDays int   // a deadline this close (or past) is urgent (default 2)
}

// DefaultDeadlineConfig returns the documented defaults.
func DefaultDeadlineConfig() DeadlineConfig {
	return DeadlineConfig{NoAnswerDays: 5, RefundDays: 10, AckDays: 2, WarnDays: []int{30, 7, 2}, UrgentWithinWorkingDays: 2}
}

func (c DeadlineConfig) withDefaults() DeadlineConfig {
	d := DefaultDeadlineConfig()
	if c.NoAnswerDays > 0 {
		d.NoAnswerDays = c.NoAnswerDays
	}
	if c.RefundDays > 0 {
		d.RefundDays = c.RefundDays
	}
	if c.AckDays > 0 {
		d.AckDays = c.AckDays
	}
	if len(c.WarnDays) > 0 {
		d.WarnDays = append([]int(nil), c.WarnDays...)
	}
	if c.UrgentWithinWorkingDays > 0 {
		d.UrgentWithinWorkingDays = c.UrgentWithinWorkingDays
	}
	sort.Sort(sort.Reverse(sort.IntSlice(d.WarnDays)))
	return d
}

// Deadline is one term of one practice.
type Deadline struct {
	Kind       string
	Due        flows.Date
	PracticeID int64
	Basis      string // why this date, in English ("request sent 02/11/2026 + 5 working days")
}

// ComputeDeadlines returns the open deadlines of p (brief §2.3). The annulment date of a
// refund term is the time p entered its current state; use ComputeDeadlinesWithHistory
// to take it from the ANN_NOTIF history entry instead.
func ComputeDeadlines(p archive.Practice, cal *flows.Calendar, cfg DeadlineConfig, today flows.Date) []Deadline {
	return ComputeDeadlinesWithHistory(p, nil, cal, cfg, today)
}

// ComputeDeadlinesWithHistory is ComputeDeadlines with the practice's history, which
// tells when the annulment was notified and whether the indemnity had been paid.
func ComputeDeadlinesWithHistory(p archive.Practice, hist []archive.HistoryEntry, cal *flows.Calendar, cfg DeadlineConfig, today flows.Date) []Deadline {
	cfg = cfg.withDefaults()
	data := practiceData(p.Data)
	var out []Deadline
	add := func(kind string, due flows.Date, basis string) {
		if !due.IsZero() {
			out = append(out, Deadline{Kind: kind, Due: due, PracticeID: p.ID, Basis: basis})
		}
	}
	switch p.Role {
	case "uscente":
		switch p.State {
		case flows.StateWaitingWindow:
			add(DeadlineWindowOpening, p.WindowOpen, fmt.Sprintf("window %s – %s", p.WindowOpen, p.WindowClose))
		}
		switch p.State {
		case flows.StateDraft, flows.StateWaitingWindow, flows.StateReady, flows.StateBuilt: // BUILT: the SII does not have it yet
			add(DeadlineWindowClosing, p.WindowClose, fmt.Sprintf("window %s – %s, not yet filed", p.WindowOpen, p.WindowClose))
		case flows.StateSent:
			if !p.RequestDate.IsZero() && !p.RequestDate.After(today) {
				add(DeadlineNoAnswer, cal.AddWorkingDays(p.RequestDate, cfg.NoAnswerDays),
					fmt.Sprintf("request sent %s + %d working days", p.RequestDate, cfg.NoAnswerDays))
			}
		case flows.StateAdmitted:
			base := p.AnswerDate
			if base.IsZero() {
				base = p.RequestDate
			}
			if !base.IsZero() && !base.After(today) {
				add(DeadlineNoAnswer, cal.AddWorkingDays(base, cfg.NoAnswerDays),
					fmt.Sprintf("admitted %s + %d working days without an outcome", base, cfg.NoAnswerDays))
			}
		case flows.StateAnnulled:
			if !indemnityPaid(data, hist) && data.date(DataRefundDue).IsZero() {
				break
			}
			annulled := annulmentDate(p, hist)
			if data.date(DataRefundedOn).IsZero() {
				due, basis := data.date(DataRefundDue), "refund_due recorded on the practice"
				if due.IsZero() {
					due, basis = annulled.AddDays(cfg.RefundDays), fmt.Sprintf("annulment notified %s + %d days", annulled, cfg.RefundDays)
				}
				add(DeadlineRefund, due, basis)
			}
			if data.date(DataAckSentOn).IsZero() {
				due, basis := data.date(DataAckDue), "ack_due recorded on the practice"
				if due.IsZero() {
					from, what := annulled, "annulment notified"
					if r := data.date(DataRefundedOn); !r.IsZero() {
						from, what = r, "refund made"
					}
					due, basis = cal.AddWorkingDays(from, cfg.AckDays), fmt.Sprintf("%s %s + %d working days", what, from, cfg.AckDays)
				}
				add(DeadlineAck, due, basis)
			}
		}
	case "entrante":
		// The term matters only while the CMOR may still need suspending: not once it
		// is requested, suspended, collected or the practice is over.
		switch p.State {
		case flows.EntranteNotified, flows.EntranteToCharge, flows.EntranteCharged:
			if !data.truthy(DataSuspensionRequested) {
				add(DeadlineSuspensionTerm, p.SuspensionTerm, "suspension term (TISIND 8.4)")
			}
		case flows.EntranteSuspRequested:
			// The SUSP_REQ is on the SII's side (the practice enters the state when its
			// file is delivered): a suspension the SII never answers must not wait
			// unseen, since its term no longer reminds anyone.
			if since := flows.Today(p.StateSince); !p.StateSince.IsZero() && !since.After(today) {
				add(DeadlineNoAnswer, cal.AddWorkingDays(since, cfg.NoAnswerDays),
					fmt.Sprintf("suspension request delivered %s + %d working days", since, cfg.NoAnswerDays))
			}
		}
	}
	return out
}

// practiceDataMap is the practice's data JSON, read leniently.
type practiceDataMap map[string]any

func practiceData(raw json.RawMessage) practiceDataMap {
	m := practiceDataMap{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &m)
	}
	return m
}

func (m practiceDataMap) date(key string) flows.Date {
	s, _ := m[key].(string)
	if s == "" {
		return flows.Date{}
	}
	d, err := flows.ParseDate(s)
	if err != nil && len(s) > 10 {
		d, _ = flows.ParseDate(s[:10]) // an RFC 3339 instant
	}
	return d
}

func (m practiceDataMap) truthy(key string) bool {
	switch v := m[key].(type) {
	case bool:
		return v
	case string:
		return v != "" && v != "0" && !strings.EqualFold(v, "false")
	case float64:
		return v != 0
	}
	return false
}

func indemnityPaid(data practiceDataMap, hist []archive.HistoryEntry) bool {
	if data.truthy(DataIndemnityPaid) {
		return true
	}
	for _, h := range hist {
		if h.To == flows.StateIndemnityPaid || h.From == flows.StateIndemnityPaid {
			return true
		}
	}
	return false
}

// annulmentDate is the Rome date of the last ANN_NOTIF history entry (or of the move to
// ANNULLED), else the date p entered its current state.
func annulmentDate(p archive.Practice, hist []archive.HistoryEntry) flows.Date {
	for i := len(hist) - 1; i >= 0; i-- {
		h := hist[i]
		if h.Flow == "ANN_NOTIF" || (h.To == flows.StateAnnulled && h.From != flows.StateAnnulled) {
			return flows.Today(h.At)
		}
	}
	return flows.Today(p.StateSince)
}

// PracticeCode is how a person names a practice: our CP_UTENTE, else the SII's
// CP_GESTORE, else its row id (the case key carries the customer's CF).
func PracticeCode(p archive.Practice) string {
	switch {
	case p.CPUtente != "":
		return p.CPUtente
	case p.CPGestore != "":
		return p.CPGestore
	}
	return fmt.Sprintf("#%d", p.ID)
}

// deadlineSeverity decides whether a deadline due on due is raised today and how
// severe it is: reminders from the largest warn_days on (normal, high from the second
// largest), urgent within UrgentWithinWorkingDays working days or past. no_answer is
// raised only once its term has passed; window_opening is a low heads-up from the
// smallest warn_days on.
func deadlineSeverity(kind string, due, today flows.Date, cal *flows.Calendar, cfg DeadlineConfig) (string, bool) {
	days := today.DaysUntil(due)
	switch kind {
	case DeadlineNoAnswer:
		return archive.SevHigh, today.After(due)
	case DeadlineWindowOpening:
		return archive.SevLow, days <= cfg.WarnDays[len(cfg.WarnDays)-1]
	}
	if days > cfg.WarnDays[0] {
		return "", false
	}
	if cal.WorkingDaysBetween(today, due) <= cfg.UrgentWithinWorkingDays {
		return archive.SevUrgent, true
	}
	if len(cfg.WarnDays) > 1 && days <= cfg.WarnDays[1] {
		return archive.SevHigh, true
	}
	return archive.SevNormal, true
}

// DeadlineFingerprint identifies the exception of one deadline: a new due date is a new
// exception (the old one resolves).
func DeadlineFingerprint(d Deadline) string {
	return fmt.Sprintf("%s%s|%d|%s", deadlineFingerprintPrefix, d.Kind, d.PracticeID, d.Due.ISO())
}

// deadlineFingerprintPrefix starts the fingerprint of every deadline exception.
const deadlineFingerprintPrefix = "deadline|"

func deadlineMessage(d Deadline, p archive.Practice, today flows.Date, cal *flows.Calendar) string {
	what := map[string]string{
		DeadlineWindowOpening:  "request window opens",
		DeadlineWindowClosing:  "request window closes",
		DeadlineSuspensionTerm: "suspension term ends",
		DeadlineRefund:         "customer refund due",
		DeadlineAck:            "refund acknowledgement to the SII due",
		DeadlineNoAnswer:       "SII answer expected",
	}[d.Kind]
	days := today.DaysUntil(d.Due)
	var when string
	switch {
	case days > 0:
		when = fmt.Sprintf("in %s, %s", plural(days, "day"), plural(cal.WorkingDaysBetween(today, d.Due), "working day"))
	case days == 0:
		when = "today"
	default:
		when = plural(-days, "day") + " ago"
	}
	return fmt.Sprintf("practice %s (%s %s, %s): %s on %s (%s; %s)", PracticeCode(p), pointLabel(p.Sector), p.Point, p.State,
		what, d.Due, when, d.Basis)
}

func pointLabel(sector string) string {
	if sector == "G" {
		return "PDR"
	}
	return "POD"
}

// pendingAnnulment is the SII answer an annulment request (ANN_REQ) still waits for.
type pendingAnnulment struct {
	due   flows.Date
	basis string
}

// pendingAnnulments returns, by practice, the no_answer deadline of its annulment
// request delivered to the SII (sent, or admitted without its notice) and not
// answered: the practice's state does not change until the SII answers, so nothing
// else would say that it never did. The earliest when a practice has several.
func pendingAnnulments(ctx context.Context, store *archive.Store, cal *flows.Calendar, cfg DeadlineConfig, today flows.Date) (map[int64]pendingAnnulment, error) {
	out := map[int64]pendingAnnulment{}
	for _, state := range []string{"sent", "admitted"} {
		rs, err := store.Requests(ctx, nil, 0, "ANN_REQ", state, 0)
		if err != nil {
			return nil, fmt.Errorf("deadlines: annulment requests: %w", err)
		}
		for _, r := range rs {
			from, what := r.SentAt, "annulment request "+r.CPUtente+" delivered"
			if state == "admitted" && !r.AnsweredAt.IsZero() {
				from, what = r.AnsweredAt, "annulment request "+r.CPUtente+" admitted"
			}
			if from.IsZero() {
				continue
			}
			day := flows.Today(from)
			if day.After(today) {
				continue
			}
			a := pendingAnnulment{due: cal.AddWorkingDays(day, cfg.NoAnswerDays),
				basis: fmt.Sprintf("%s %s + %d working days", what, day, cfg.NoAnswerDays)}
			if prev, ok := out[r.PracticeID]; !ok || a.due.Before(prev.due) {
				out[r.PracticeID] = a
			}
		}
	}
	return out, nil
}

// admittedSuspensions returns, by practice, its suspension request (SUSP_REQ) the SII
// admitted (SUSP_AMM) and has not yet given the outcome of (SUSP_ESITO): the latest.
func admittedSuspensions(ctx context.Context, store *archive.Store) (map[int64]archive.Request, error) {
	rs, err := store.Requests(ctx, nil, 0, "SUSP_REQ", "admitted", 0)
	if err != nil {
		return nil, fmt.Errorf("deadlines: suspension requests: %w", err)
	}
	out := map[int64]archive.Request{}
	for _, r := range rs {
		if prev, ok := out[r.PracticeID]; !r.AnsweredAt.IsZero() && (!ok || r.AnsweredAt.After(prev.AnsweredAt)) {
			out[r.PracticeID] = r
		}
	}
	return out, nil
}

// replaceNoAnswer puts d in place of ds's no_answer, if it has one.
func replaceNoAnswer(ds []Deadline, d Deadline) []Deadline {
	for i, e := range ds {
		if e.Kind == DeadlineNoAnswer {
			ds[i] = d
		}
	}
	return ds
}

// withNoAnswer adds d, a no_answer deadline, to ds, keeping one no_answer per
// practice (the deadlines table holds one per kind): the earlier.
func withNoAnswer(ds []Deadline, d Deadline) []Deadline {
	for i, e := range ds {
		if e.Kind == DeadlineNoAnswer {
			if d.Due.Before(e.Due) {
				ds[i] = d
			}
			return ds
		}
	}
	return append(ds, d)
}

// deadlinePlan is what the deadline job computes from the practices at one instant:
// the deadline rows to store and the exceptions due now.
type deadlinePlan struct {
	rows  []archive.DeadlineRow
	raise []archive.Exception
}

// planDeadlines computes every practice's deadlines and the exceptions due at now,
// reading only: RunDeadlines stores the plan, a preview overlays it in memory.
func planDeadlines(ctx context.Context, store *archive.Store, cal *flows.Calendar, cfg DeadlineConfig, now time.Time) (deadlinePlan, error) {
	cfg = cfg.withDefaults()
	today := flows.Today(now)
	var plan deadlinePlan
	annulments, err := pendingAnnulments(ctx, store, cal, cfg, today)
	if err != nil {
		return deadlinePlan{}, err
	}
	suspensions, err := admittedSuspensions(ctx, store)
	if err != nil {
		return deadlinePlan{}, err
	}
	err = store.EachPractice(ctx, archive.PracticeFilter{}, func(p archive.Practice) error {
		var hist []archive.HistoryEntry
		if p.State == flows.StateAnnulled {
			h, err := store.PracticeHistory(ctx, p.ID)
			if err != nil {
				return err
			}
			hist = h
		}
		ds := ComputeDeadlinesWithHistory(p, hist, cal, cfg, today)
		if r, ok := suspensions[p.ID]; ok && p.State == flows.EntranteSuspRequested {
			// The SII answered (admitted it): the outcome is awaited from then, as an
			// uscente request ADMITTED is.
			day := flows.Today(r.AnsweredAt)
			ds = replaceNoAnswer(ds, Deadline{Kind: DeadlineNoAnswer, Due: cal.AddWorkingDays(day, cfg.NoAnswerDays), PracticeID: p.ID,
				Basis: fmt.Sprintf("suspension request %s admitted %s + %d working days", r.CPUtente, day, cfg.NoAnswerDays)})
		}
		// An annulled practice's annulment request is answered, whatever state an
		// archive written before that was recorded left the request in.
		if a, ok := annulments[p.ID]; ok && p.State != flows.StateAnnulled {
			ds = withNoAnswer(ds, Deadline{Kind: DeadlineNoAnswer, Due: a.due, PracticeID: p.ID, Basis: a.basis})
		}
		for _, d := range ds {
			plan.rows = append(plan.rows, archive.DeadlineRow{PracticeID: p.ID, Kind: d.Kind, DueOn: d.Due})
			sev, ok := deadlineSeverity(d.Kind, d.Due, today, cal, cfg)
			if !ok {
				continue
			}
			info := Info(d.Kind)
			plan.raise = append(plan.raise, archive.Exception{Fingerprint: DeadlineFingerprint(d), Kind: d.Kind, Severity: sev,
				Owner: info.Owner, PracticeID: p.ID, Subject: PracticeCode(p), DueOn: d.Due.ISO(), LastSeen: now,
				Message: deadlineMessage(d, p, today, cal), Action: info.ActionEN})
		}
		return nil
	})
	if err != nil {
		return deadlinePlan{}, fmt.Errorf("deadlines: read practices: %w", err)
	}
	return plan, nil
}

// deadlineClearedNote is the resolution note of a deadline exception whose condition
// cleared.
const deadlineClearedNote = "condition cleared: the practice moved on or the term changed"

// RunDeadlines recomputes every practice's deadlines, stores them, raises the
// exceptions that are due (reminders warn_days ahead, urgent within
// urgent_within_working_days) and resolves those whose condition cleared (the practice
// moved on, the date changed). It returns how many exceptions were newly raised (or
// reopened) and how many were resolved.
func RunDeadlines(ctx context.Context, store *archive.Store, cal *flows.Calendar, cfg DeadlineConfig, now time.Time) (raised, resolved int, err error) {
	plan, err := planDeadlines(ctx, store, cal, cfg, now)
	if err != nil {
		return 0, 0, err
	}
	rows, raise := plan.rows, plan.raise
	err = store.Write(ctx, func(tx *sql.Tx) error {
		raised, resolved = 0, 0
		if err := store.SyncDeadlines(ctx, tx, rows, now); err != nil {
			return err
		}
		want := make(map[string]bool, len(raise))
		for _, e := range raise {
			want[e.Fingerprint] = true
			_, isNew, err := store.RaiseException(ctx, tx, e)
			if err != nil {
				return err
			}
			if isNew {
				raised++
			}
		}
		open, err := store.OpenExceptionsWithPrefix(ctx, tx, deadlineFingerprintPrefix)
		if err != nil {
			return err
		}
		for _, e := range open {
			if want[e.Fingerprint] {
				continue
			}
			ok, err := store.ResolveByFingerprintAt(ctx, tx, e.Fingerprint, deadlineClearedNote, now)
			if err != nil {
				return err
			}
			if ok {
				resolved++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("deadlines: %w", err)
	}
	return raised, resolved, nil
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
