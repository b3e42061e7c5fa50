package uscente

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/entrante"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// ---- small inputs: payments, operator annulments, refunds ----

// rowJob reads a whole small input file in one transaction, calling fn per good row.
// With on_bad_rows = "reject_file" a bad row rolls the whole transaction back and the
// file is finished as refused in a transaction of its own.
func (u *uscente) rowJob(ctx context.Context, in *family.Input, fn func(ctx context.Context, st *archive.PracticeStmts, rec flows.Record) ([]flows.Finding, error)) (family.Result, error) {
	src, done, err := openRows(ctx, in)
	if done != nil {
		return *done, err
	}
	if err != nil {
		return family.Result{}, err
	}
	defer src.rc.Close()
	rd, sink := src.rd, src.sink
	var res family.Result
	rows := 0
	errRefused := errors.New("refused file")
	err = in.Store.Write(ctx, func(tx *sql.Tx) error {
		st, err := in.Store.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return in.Now })
		for {
			rec, fs, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				st.Close(ctx)
				return err
			}
			rows++
			sink.Add(fs...)
			if flows.HasErrors(fs) {
				continue
			}
			more, err := fn(ctx, st, rec)
			if err != nil {
				st.Close(ctx)
				return err
			}
			for i := range more {
				if more[i].Line == 0 {
					more[i].Line = rec.Line
				}
			}
			sink.Add(more...)
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		res = family.Result{Findings: sink.Result(), Meta: map[string]string{"rows": fmt.Sprint(rows)}}
		if family.RejectFile(in) && sink.Errors > 0 {
			return errRefused // nothing of the file stands
		}
		return in.Finish(ctx, tx, res)
	})
	if errors.Is(err, errRefused) {
		res.Rejected = true
		res.Reason = fmt.Sprintf("%d refused %s and on_bad_rows = \"reject_file\": the whole file is refused, nothing was done", sink.Errors, family.Plural(sink.Errors, "row", "rows"))
		return family.FinishOnly(ctx, in, res)
	}
	return res, err
}

// practiceFor finds the uscente practice a row names: by CP_UTENTE or CP_GESTORE, else
// (payments) by point and customer, the most recent one.
func (u *uscente) practiceFor(ctx context.Context, tx *sql.Tx, rec flows.Record) (archive.Practice, error) {
	for _, code := range []string{rec.Get("CP_UTENTE"), rec.Get("CP_GESTORE")} {
		if code != "" {
			return u.h.Archive().PracticeByCode(ctx, tx, code)
		}
	}
	point := family.FirstNonEmpty(rec.Get("COD_POD"), rec.Get("COD_PDR"))
	cust := family.FirstNonEmpty(rec.Get("CF_CLIENTE"), rec.Get("PIVA_CLIENTE"))
	return u.h.Archive().UscentePracticeByPoint(ctx, tx, point, cust)
}

// RulePaymentRepeated refuses a payment row already applied to the practice;
// RuleRefundRepeated a refund row for a practice whose refund is already recorded.
const (
	RulePaymentRepeated = "PAYMENT-REPEATED"
	RuleRefundRepeated  = "REFUND-REPEATED"
)

// handleIncassi applies payments. A payment that clears the practice's counted debt
// withdraws a practice not yet filed (ANNULLED locally, no flow) or files an annulment
// (ANN_REQ, cause AN-02) for one the SII already has.
func (u *uscente) handleIncassi(ctx context.Context, in *family.Input) (family.Result, error) {
	return u.rowJob(ctx, in, func(ctx context.Context, st *archive.PracticeStmts, rec flows.Record) ([]flows.Finding, error) {
		p, err := u.practiceFor(ctx, st.Tx(), rec)
		if errors.Is(err, archive.ErrNotFound) {
			if rec.Get("CP_UTENTE") != "" {
				return []flows.Finding{{Field: "CP_UTENTE", Rule: "NO-PRACTICE", Value: rec.Get("CP_UTENTE"), Message: "no practice has this code"}}, nil
			}
			return nil, nil // a payment of a customer with no CMOR practice: nothing to do
		}
		if err != nil {
			return nil, err
		}
		data, err := flows.ParseUscenteData(p.Data)
		if err != nil {
			return nil, err
		}
		paid, on := rec.Amount("IMPORTO_INCASSATO"), rec.Date("DATA_INCASSO")
		num := rec.Get("NUM_FATTURA")
		key := flows.PaymentKey(num, on, paid, rec.Get("RIF_INCASSO"))
		residual := rec.Get("RESIDUO_INSOLUTO") != ""
		// A payment without the residual is subtracted: listed again (a row copied, a
		// cumulative export), it would be subtracted twice. A row with the residual
		// sets the unpaid amount, which a repeat does not change.
		//
		// Listed again in the same file, it is a row copied or a second payment that
		// billing did not tell apart: refused, a person says which. Applied from an
		// earlier file, it is that file's payment listed again (billing's export is
		// cumulative, or a file whose refused row was corrected was dropped again
		// whole, as its reason file asks): a warning, nothing to correct; refused, each
		// day's cumulative export raised every earlier payment again.
		if prev, ok := data.AppliedPaymentOf(key); ok && !residual {
			if prev.FileID != in.File.ID {
				return []flows.Finding{{Field: "IMPORTO_INCASSATO", Rule: RulePaymentRepeated, Value: paid.String(), Severity: "warning",
					Message: fmt.Sprintf("payment of %s on %s for invoice %s of practice %s was already applied (line %d of file #%d): not applied again",
						paid, on, num, p.CPUtente, prev.Line, prev.FileID)}}, nil
			}
			return []flows.Finding{{Field: "IMPORTO_INCASSATO", Rule: RulePaymentRepeated, Value: paid.String(),
				Message: fmt.Sprintf("payment of %s on %s for invoice %s of practice %s was already applied (line %d of this file): not applied again; "+
					"if it is another payment, give each its own RIF_INCASSO, or give RESIDUO_INSOLUTO", paid, on, num, p.CPUtente, prev.Line)}}, nil
		}
		found := false
		for i := range data.Case.Invoices {
			inv := &data.Case.Invoices[i]
			if inv.Number != num {
				continue
			}
			found = true
			if rec.Get("RESIDUO_INSOLUTO") != "" {
				inv.Unpaid = rec.Amount("RESIDUO_INSOLUTO")
			} else if inv.Unpaid -= paid; inv.Unpaid < 0 {
				inv.Unpaid = 0
			}
		}
		if !found {
			return []flows.Finding{{Field: "NUM_FATTURA", Rule: "NO-INVOICE", Value: num, Severity: "warning",
				Message: fmt.Sprintf("practice %s has no invoice %s: payment noted only", p.CPUtente, num)}}, nil
		}
		if _, ok := data.AppliedPaymentOf(key); !ok {
			data.Payments = append(data.Payments, flows.AppliedPayment{Key: key, FileID: in.File.ID, Line: rec.Line})
		}
		remaining := countedUnpaid(data)
		h := archive.HistoryEntry{Flow: in.File.Kind, FileID: in.File.ID, Line: rec.Line, At: in.Now}
		if remaining > 0 && flows.StateUnfiled(p.State) {
			// Not filed yet: the credit, so the CMOR and perhaps the case's eligibility,
			// changed. Checked again as of today, like a new extract of the case.
			return u.recheckUnfiled(ctx, st, in, &p, &data, h, fmt.Sprintf("payment of %s on %s for invoice %s; still unpaid %s", paid, on, num, remaining))
		}
		p.Data = data.Marshal()
		if err := st.Save(ctx, &p); err != nil {
			return nil, err
		}
		if remaining > 0 {
			h.PracticeID, h.From, h.To = p.ID, p.State, p.State
			h.Note = fmt.Sprintf("payment of %s on %s for invoice %s; still unpaid %s", paid, on, num, remaining)
			if err := st.History(ctx, h); err != nil {
				return nil, err
			}
			return nil, st.Link(ctx, p.ID, in.File.ID, "input", rec.Line)
		}
		return u.annul(ctx, st, in, &p, "AN-02", fmt.Sprintf("debt paid on %s (invoice %s, %s)", on, num, paid), on, h)
	})
}

// recheckUnfiled recomputes a practice not yet filed after its case changed (a partial
// payment): amounts, audit, state (READY / WAITING_WINDOW / DRAFT) and its ready
// request, with the refusals as findings of the input line.
func (u *uscente) recheckUnfiled(ctx context.Context, st *archive.PracticeStmts, in *family.Input, p *archive.Practice, data *flows.UscenteData, h archive.HistoryEntry, why string) ([]flows.Finding, error) {
	today := flows.Today(in.Now)
	result, fs := flows.CheckEligibility(data.Case, today, family.CMORParams(in.Config.CMOR))
	state, refusals, warns := flows.SplitEligibility(fs)
	data.Audit, data.Warnings, data.Refusals = flows.AuditOf(result, today), warns, refusals
	data.Inputs = appendInput(data.Inputs, in.File.ID, []int{h.Line})
	setAmounts(p, result)
	p.Data = data.Marshal()
	if err := st.Save(ctx, p); err != nil {
		return nil, err
	}
	if err := st.Link(ctx, p.ID, in.File.ID, "input", h.Line); err != nil {
		return nil, err
	}
	h.Note = fmt.Sprintf("%s; CMOR now %s (credit %s, estimate %s)", why, result.CMOR, result.Credit, result.Estimate)
	if state == flows.StateDraft {
		h.Note += "; no longer eligible: " + refusals[0].String()
		h.CauseCode = refusals[0].Rule
	}
	if err := u.settleReady(ctx, st, p, state, result, u.reqPayload(data), h); err != nil {
		return nil, err
	}
	if state != flows.StateDraft {
		return nil, nil
	}
	// The payment row itself is fine: what needs a person is the practice.
	_, _, err := in.Store.RaiseException(ctx, st.Tx(), archive.Exception{Fingerprint: fmt.Sprintf("case_refused|%d", p.ID),
		Kind: "case_refused", Severity: archive.SevNormal, Owner: "compliance", PracticeID: p.ID, FileID: in.File.ID, Line: h.Line,
		Rule: refusals[0].Rule, Field: refusals[0].Field, Subject: p.CPUtente, Message: h.Note, LastSeen: in.Now,
		Action: "Check the case: after the payment it no longer qualifies for a CMOR request; nothing is filed."})
	return nil, err
}

// countedUnpaid sums what is still unpaid on the invoices the request counted.
func countedUnpaid(d flows.UscenteData) flows.Amount {
	counted := map[string]bool{}
	if d.Audit != nil {
		for _, n := range d.Audit.Counted {
			counted[n] = true
		}
	}
	var sum flows.Amount
	for _, inv := range d.Case.Invoices {
		if d.Audit == nil || counted[inv.Number] {
			sum += inv.Unpaid
		}
	}
	return sum
}

// annul withdraws a practice not yet filed, or records an ANN_REQ for one the SII has.
func (u *uscente) annul(ctx context.Context, st *archive.PracticeStmts, in *family.Input, p *archive.Practice, cause, why string, event flows.Date, h archive.HistoryEntry) ([]flows.Finding, error) {
	switch {
	case !flows.StateSentOrLater(p.State):
		reqs, err := u.h.Archive().Requests(ctx, st.Tx(), p.ID, FlowREQ, "ready", 0)
		if err != nil {
			return nil, err
		}
		for _, r := range reqs {
			if err := st.SetRequest(ctx, r.ID, "cancelled", r.Data); err != nil {
				return nil, err
			}
		}
		h.CauseCode = cause
		h.Note = "withdrawn before filing (no flow sent to the SII): " + why
		return nil, st.Transition(ctx, p, flows.StateAnnulled, "input", h)
	case !flows.StateOpen(p.State) && p.State != "AMOUNT_UPDATED":
		return []flows.Finding{{Field: "CP_UTENTE", Rule: "STATE", Value: p.CPUtente, Severity: "warning",
			Message: fmt.Sprintf("practice %s is %s: no annulment to request", p.CPUtente, p.State)}}, nil
	}
	for _, state := range []string{"ready", "sent"} {
		if rs, err := u.h.Archive().Requests(ctx, st.Tx(), p.ID, FlowANNREQ, state, 0); err != nil {
			return nil, err
		} else if len(rs) > 0 {
			return []flows.Finding{{Field: "CP_UTENTE", Rule: "ANN-DUP", Value: p.CPUtente, Severity: "warning",
				Message: fmt.Sprintf("an annulment of %s is already %s (%s)", p.CPUtente, state, rs[0].CPUtente)}}, nil
		}
	}
	tmpl, err := flows.ParseCodeTemplate(in.Config.PracticeCode.Template)
	if err != nil {
		return nil, err
	}
	code, err := family.NewCode(ctx, st, tmpl, in.Config.Company.PIVA, p.Sector, flows.Today(in.Now).Y)
	if err != nil {
		return nil, err
	}
	motiv := why
	if len(motiv) > 255 {
		motiv = motiv[:255]
	}
	r := &archive.Request{PracticeID: p.ID, Flow: FlowANNREQ, CPUtente: code,
		Data: map[string]string{"COD_CAUSALE_ANNULLAMENTO": cause, "MOTIVAZIONE": motiv, "DATA_EVENTO": event.String()}}
	if err := st.CreateRequest(ctx, r); err != nil {
		return nil, err
	}
	h.PracticeID, h.From, h.To, h.CauseCode = p.ID, p.State, p.State, cause
	h.Note = fmt.Sprintf("annulment requested (ANN_REQ %s, cause %s): %s", code, cause, why)
	if err := st.History(ctx, h); err != nil {
		return nil, err
	}
	return nil, st.Link(ctx, p.ID, in.File.ID, "input", h.Line)
}

// handleAnnullamenti files the annulments an operator decided.
func (u *uscente) handleAnnullamenti(ctx context.Context, in *family.Input) (family.Result, error) {
	return u.rowJob(ctx, in, func(ctx context.Context, st *archive.PracticeStmts, rec flows.Record) ([]flows.Finding, error) {
		p, err := u.practiceFor(ctx, st.Tx(), rec)
		if errors.Is(err, archive.ErrNotFound) {
			return []flows.Finding{{Field: "CP_UTENTE", Rule: "NO-PRACTICE", Value: family.FirstNonEmpty(rec.Get("CP_UTENTE"), rec.Get("CP_GESTORE")),
				Message: "no practice has this code"}}, nil
		}
		if err != nil {
			return nil, err
		}
		if p.State == flows.StateAnnulled {
			return []flows.Finding{{Field: "CP_UTENTE", Rule: "STATE", Value: p.CPUtente, Severity: "warning", Message: "already annulled"}}, nil
		}
		why := family.FirstNonEmpty(rec.Get("MOTIVAZIONE"), "operator annulment")
		if by := rec.Get("RICHIESTO_DA"); by != "" {
			why += " (requested by " + by + ")"
		}
		if p.Role == "entrante" { // one list may name practices of both sides
			return entrante.RequestAnnulment(ctx, u.h, st.Tx(), &p, rec.Get("COD_CAUSALE_ANNULLAMENTO"), why, rec.Date("DATA_EVENTO"), in.File.ID, rec.Line)
		}
		h := archive.HistoryEntry{Flow: in.File.Kind, FileID: in.File.ID, Line: rec.Line, At: in.Now}
		return u.annul(ctx, st, in, &p, rec.Get("COD_CAUSALE_ANNULLAMENTO"), why, rec.Date("DATA_EVENTO"), h)
	})
}

// handleRimborsi records refunds to customers after an annulment of a paid indemnity
// and files REFUND_ACK; the refund exception is resolved, the acknowledgement one raised
// until the REFUND_ACK is built.
func (u *uscente) handleRimborsi(ctx context.Context, in *family.Input) (family.Result, error) {
	cal := u.h.Calendar()
	return u.rowJob(ctx, in, func(ctx context.Context, st *archive.PracticeStmts, rec flows.Record) ([]flows.Finding, error) {
		p, err := u.practiceFor(ctx, st.Tx(), rec)
		if errors.Is(err, archive.ErrNotFound) {
			return []flows.Finding{{Field: "CP_GESTORE", Rule: "NO-PRACTICE", Value: rec.Get("CP_GESTORE"), Message: "no practice has this code"}}, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := flows.ParseUscenteData(p.Data)
		if err != nil {
			return nil, err
		}
		on, amount := rec.Date("DATA_RESTITUZIONE"), rec.Amount("IMPORTO_RESTITUITO")
		if r := data.Refund; r != nil && !r.RefundedOn.IsZero() && r.RefundedOn == on && r.Refunded == amount {
			// The very refund recorded (a cumulative refunds export, a file dropped
			// again whole after a row was corrected), before or after its REFUND_ACK was
			// delivered: nothing to file and nothing to correct, as an annulment
			// listed again. Refused, it raised row_refused 'Correct the row in billing'.
			return []flows.Finding{{Field: "IMPORTO_RESTITUITO", Rule: RuleRefundRepeated, Value: amount.String(), Severity: "warning",
				Message: fmt.Sprintf("practice %s: this refund of %s on %s is already recorded and its REFUND_ACK filed or queued: not recorded again",
					p.CPUtente, amount, on)}}, nil
		}
		if p.State != flows.StateAnnulled {
			return []flows.Finding{{Field: "CP_GESTORE", Rule: "STATE", Value: p.CPGestore,
				Message: fmt.Sprintf("practice %s is %s, not ANNULLED: no refund is due", p.CPUtente, p.State)}}, nil
		}
		if data.Refund == nil {
			data.Refund = &flows.Refund{}
		}
		if r := data.Refund; !r.RefundedOn.IsZero() {
			// Another refund than the one recorded (another date or amount): a second
			// REFUND_ACK for the practice is not filed; which is right, a person says.
			return []flows.Finding{{Field: "IMPORTO_RESTITUITO", Rule: RuleRefundRepeated, Value: rec.Get("IMPORTO_RESTITUITO"),
				Message: fmt.Sprintf("practice %s: a refund of %s on %s (%s) is already recorded and its REFUND_ACK filed or queued: not recorded again",
					p.CPUtente, r.Refunded, r.RefundedOn, r.Mode)}}, nil
		}
		data.Refund.RefundedOn, data.Refund.Refunded, data.Refund.Mode = on, amount, rec.Get("MODALITA")
		data.Refund.AckDueBy = cal.AddWorkingDays(on, in.Config.Deadlines.AckDays)
		p.Data = data.Marshal()
		if err := st.Save(ctx, &p); err != nil {
			return nil, err
		}
		tmpl, err := flows.ParseCodeTemplate(in.Config.PracticeCode.Template)
		if err != nil {
			return nil, err
		}
		code, err := family.NewCode(ctx, st, tmpl, in.Config.Company.PIVA, p.Sector, flows.Today(in.Now).Y)
		if err != nil {
			return nil, err
		}
		r := &archive.Request{PracticeID: p.ID, Flow: flowREFUNDACK, CPUtente: code, Data: map[string]string{
			"DATA_RESTITUZIONE": on.String(), "IMPORTO_RESTITUITO": data.Refund.Refunded.String(), "MODALITA": data.Refund.Mode}}
		if err := st.CreateRequest(ctx, r); err != nil {
			return nil, err
		}
		h := archive.HistoryEntry{PracticeID: p.ID, From: p.State, To: p.State, Flow: in.File.Kind, FileID: in.File.ID, Line: rec.Line, At: in.Now,
			Note: fmt.Sprintf("refund of %s to the customer on %s (%s); REFUND_ACK %s due by %s", data.Refund.Refunded, on, data.Refund.Mode, code, data.Refund.AckDueBy)}
		if err := st.History(ctx, h); err != nil {
			return nil, err
		}
		if err := st.Link(ctx, p.ID, in.File.ID, "input", rec.Line); err != nil {
			return nil, err
		}
		if _, err := in.Store.ResolveByFingerprint(ctx, st.Tx(), fmt.Sprintf("refund_overdue|%d", p.ID), "refund recorded from "+in.File.Name); err != nil {
			return nil, err
		}
		_, _, err = in.Store.RaiseException(ctx, st.Tx(), archive.Exception{Fingerprint: fmt.Sprintf("ack_overdue|%d", p.ID), Kind: "ack_overdue",
			Severity: archive.SevNormal, Owner: "compliance", PracticeID: p.ID, Subject: p.CPUtente, DueOn: data.Refund.AckDueBy.ISO(),
			Message: fmt.Sprintf("practice %s: the refund of %s must be acknowledged to the SII (REFUND_ACK) by %s", p.CPUtente, data.Refund.Refunded, data.Refund.AckDueBy),
			Action:  "cmord builds and publishes REFUND_ACK at the next build; check that it goes out.", LastSeen: in.Now})
		return nil, err
	})
}
