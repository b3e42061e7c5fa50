package uscente

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// openWindows moves WAITING_WINDOW practices whose window opened to READY (with their
// REQ request) after checking them again as of today, or to DRAFT if they no longer
// pass.
func (b *requestBuilder) openWindows(ctx context.Context, now time.Time) error {
	d := b.u.h
	cfg := d.Config()
	params := family.CMORParams(cfg.CMOR)
	today := flows.Today(now)
	for {
		changed := 0
		err := d.Archive().Write(ctx, func(tx *sql.Tx) error {
			due, err := d.Archive().UscentePracticesDue(ctx, tx, flows.StateWaitingWindow, "window_open", today, 500)
			if err != nil || len(due) == 0 {
				return err
			}
			st, err := d.Archive().PreparePractices(ctx, tx)
			if err != nil {
				return err
			}
			st.SetClock(d.Now)
			for i := range due {
				p := &due[i]
				data, err := flows.ParseUscenteData(p.Data)
				if err != nil {
					st.Close(ctx)
					return err
				}
				res, fs := flows.CheckEligibility(data.Case, today, params)
				state, refusals, _ := flows.SplitEligibility(fs)
				if state == flows.StateWaitingWindow {
					continue
				}
				changed++
				data.Audit, data.Refusals = flows.AuditOf(res, today), refusals
				setAmounts(p, res)
				p.Data = data.Marshal()
				if err := st.Save(ctx, p); err != nil {
					st.Close(ctx)
					return err
				}
				h := archive.HistoryEntry{Flow: "window", At: now, Note: fmt.Sprintf("request window opened on %s; CMOR %s", p.WindowOpen, res.CMOR)}
				if state == flows.StateDraft {
					h.Note = fmt.Sprintf("request window opened on %s, but the case no longer passes: %s", p.WindowOpen, refusals[0].String())
					h.CauseCode = refusals[0].Rule
					if _, _, err := d.Archive().RaiseException(ctx, tx, archive.Exception{Fingerprint: fmt.Sprintf("case_refused|%d", p.ID),
						Kind: "case_refused", Severity: archive.SevNormal, Owner: "compliance", PracticeID: p.ID, Rule: refusals[0].Rule,
						Field: refusals[0].Field, Subject: p.CPUtente, Message: h.Note, LastSeen: now,
						Action: "Correct the case in billing and drop it again."}); err != nil {
						st.Close(ctx)
						return err
					}
				}
				if err := b.u.settleReady(ctx, st, p, state, res, b.u.reqPayload(&data), h); err != nil {
					st.Close(ctx)
					return err
				}
			}
			return st.Close(ctx)
		})
		if err != nil || changed == 0 {
			return err
		}
	}
}

// flagClosing raises window_closing for practices not yet filed whose request window
// closes within [cmor] window_warn_days.
func (b *requestBuilder) flagClosing(ctx context.Context, now time.Time) error {
	d := b.u.h
	cfg := d.Config()
	today := flows.Today(now)
	limit := today.AddDays(cfg.CMOR.WindowWarnDays)
	return d.Archive().Write(ctx, func(tx *sql.Tx) error {
		for _, state := range []string{flows.StateReady, flows.StateWaitingWindow, flows.StateDraft} {
			ps, err := d.Archive().UscentePracticesDue(ctx, tx, state, "window_close", limit, 0)
			if err != nil {
				return err
			}
			for _, p := range ps {
				days := today.DaysUntil(p.WindowClose)
				sev := archive.SevHigh
				if days <= 2 {
					sev = archive.SevUrgent
				}
				msg := fmt.Sprintf("practice %s (%s) is %s and its request window closes on %s (%d days)", p.CPUtente, p.Point, p.State, p.WindowClose, days)
				if days < 0 {
					msg = fmt.Sprintf("practice %s (%s) is %s and its request window closed on %s: the indemnity can no longer be requested", p.CPUtente, p.Point, p.State, p.WindowClose)
				}
				if _, _, err := d.Archive().RaiseException(ctx, tx, archive.Exception{Fingerprint: fmt.Sprintf("window_closing|%d", p.ID),
					Kind: "window_closing", Severity: sev, Owner: "compliance", PracticeID: p.ID, Subject: p.CPUtente,
					DueOn: p.WindowClose.ISO(), Message: msg, LastSeen: now,
					Action: "Make sure the request goes out before the window closes: fix what holds the practice, or accept the loss."}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
