package entrante

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// ---- SII answers to the entrante: SUSP_AMM, SUSP_ESITO, REND_AMM ----

func (e *entrante) handleAnswer(ctx context.Context, in *family.Input, key string) (family.Result, error) {
	if !in.Config.Company.HasRole(roleEntrante) {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: notEntrante(in, key)})
	}
	f := in.Catalog.Flow(key)
	if f == nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: "the flow catalog has no flow " + key})
	}
	format, err := family.SniffFormat(in)
	if err != nil {
		return family.Result{}, err
	}
	return e.run(ctx, in, f, flows.ReadOptions{FileName: in.File.Name}, format, func(ctx context.Context, j *entranteJob, rec flows.Record) ([]flows.Finding, error) {
		if fs := checkAddressee(in, rec); fs != nil {
			return fs, nil
		}
		var req *archive.Request
		var p archive.Practice
		if code := rec.Get(flows.EntCPUtente); code != "" {
			r, err := in.Store.RequestByCPUtente(ctx, j.tx, code)
			if err == nil {
				req = &r
				if p, err = in.Store.PracticeByID(ctx, j.tx, r.PracticeID); err != nil {
					return nil, err
				}
			} else if !errors.Is(err, archive.ErrNotFound) {
				return nil, err
			}
		}
		if req == nil {
			codes := strings.Trim(rec.Get(flows.EntCPUtente)+"/"+rec.Get(flows.EntCPGestore), "/")
			_, _, err := in.Store.RaiseException(ctx, j.tx, archive.Exception{Kind: "orphan_answer", Severity: archive.SevHigh, Owner: "compliance",
				FileID: in.File.ID, Line: rec.Line, Field: flows.EntCPUtente, Value: codes, Subject: in.File.Name, LastSeen: in.Now,
				Message: fmt.Sprintf("%s line %d (%s) answers %s, which is no request of ours", in.File.Name, rec.Line, f.ID(), codes),
				Action:  "Check whether the answer belongs to a request filed outside cmord; the file is kept in the archive."})
			return []flows.Finding{{Field: flows.EntCPUtente, Rule: "ORPHAN", Value: codes, Severity: "warning",
				Message: "answers no request of ours (exception orphan_answer raised)"}}, err
		}
		return j.applyAnswer(ctx, &p, req, rec)
	})
}

// applyAnswer applies one SII answer to an entrante request and its practice.
func (j *entranteJob) applyAnswer(ctx context.Context, p *archive.Practice, req *archive.Request, rec flows.Record) ([]flows.Finding, error) {
	in, f := j.in, j.f
	dec, err := flows.DecideAnswer(in.Catalog, f, rec, p.State)
	var conflict *flows.StateConflict
	if errors.As(err, &conflict) {
		if err := j.note(ctx, p, rec.Line, "answer not applied: "+conflict.Error(), dec.CauseCode); err != nil {
			return nil, err
		}
		_, _, err := in.Store.RaiseException(ctx, j.tx, archive.Exception{Fingerprint: fmt.Sprintf("state_conflict|%d|%d|%d", in.File.ID, rec.Line, p.ID),
			Kind: "state_conflict", Severity: archive.SevHigh, Owner: "compliance", PracticeID: p.ID, FileID: in.File.ID, Line: rec.Line,
			Subject: p.CPGestore, LastSeen: in.Now, Message: fmt.Sprintf("%s line %d: %v (entrante practice %s)", in.File.Name, rec.Line, conflict, p.CPGestore),
			Action: "Check the practice on the SII portal; the answer is kept in the archive and in the practice's history."})
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	state := flows.EntranteRequestAnswered(f.Key, dec.Refusal)
	if err := in.Store.AnswerRequest(ctx, j.tx, req.ID, state, dec.CauseCode, dec.Reason, in.Now); err != nil {
		return nil, err
	}
	p.AnswerDate = j.today
	if dec.CauseCode != "" || dec.Reason != "" {
		p.CauseCode, p.Motivation = dec.CauseCode, dec.Reason
	}
	if err := in.Store.SavePractice(ctx, j.tx, p); err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%s %s %s by the SII", req.Flow, req.CPUtente, state)
	if dec.Reason != "" {
		note += "; MOTIVAZIONE: " + dec.Reason
	}
	if dec.Changes() {
		h := j.history(p, rec.Line, note)
		h.CauseCode = dec.CauseCode
		// A refused suspension returns the practice where it was (it may not have
		// been billed yet), not to the catalog's generic CHARGED.
		before := ""
		if data, err := flows.ParseEntranteData(p.Data); err == nil {
			before = data.StateBeforeSusp
		}
		to := flows.EntranteAfterRefusedSuspension(in.Catalog, dec, p.State, before)
		if err := in.Store.Transition(ctx, j.tx, p, to, h); err != nil {
			return nil, err
		}
		j.moved++
	} else if err := j.note(ctx, p, rec.Line, note, dec.CauseCode); err != nil {
		return nil, err
	}
	if !dec.Refusal {
		return nil, nil
	}
	_, _, err = in.Store.RaiseException(ctx, j.tx, archive.Exception{Fingerprint: fmt.Sprintf("sii_refusal|%s|%d|%d", f.Key, p.ID, in.File.ID), Kind: "sii_refusal",
		Severity: archive.SevHigh, Owner: "compliance", PracticeID: p.ID, FileID: in.File.ID, Line: rec.Line, Rule: dec.CauseCode, Value: dec.Reason,
		Subject: req.CPUtente, LastSeen: in.Now,
		Message: fmt.Sprintf("the SII refused %s %s for indemnity %s (%s, cause %s): %s", req.Flow, req.CPUtente, p.CPGestore, f.ID(), dec.CauseCode, dec.Reason),
		Action:  "Check the cause; a corrected request goes with a NEW CP_UTENTE (cmord allocates one)."})
	return nil, err
}

// ---- ANN_NOTIF, UPD_NOTIF, ANN_AMM on an entrante practice (read by daemon/sii) ----

// rowHook applies the rows of the shared SII flows (ANN_NOTIF, UPD_NOTIF, ANN_AMM)
// that name an entrante practice, for the SII answers' handler (daemon/sii).
func rowHook(ctx context.Context, tx *sql.Tx, in *family.Input, f *flows.Flow, rec flows.Record, p archive.Practice) ([]flows.Finding, error) {
	return entranteApply(ctx, tx, in, f, rec, &p)
}

func entranteApply(ctx context.Context, tx *sql.Tx, in *family.Input, f *flows.Flow, rec flows.Record, p *archive.Practice) ([]flows.Finding, error) {
	if !in.Config.Company.HasRole(roleEntrante) {
		return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntRole, Value: p.CPGestore,
			Message: "company is not configured as entrante: the entrante practice is left alone"}}, nil
	}
	j := &entranteJob{in: in, f: f, tx: tx, sink: family.NewFindingSink(in.File.Name), today: flows.Today(in.Now)}
	switch f.Key {
	case "ANN_AMM":
		code := rec.Get(flows.EntCPUtente)
		r, err := in.Store.RequestByCPUtente(ctx, tx, code)
		if errors.Is(err, archive.ErrNotFound) {
			return []flows.Finding{{Field: flows.EntCPUtente, Rule: "ORPHAN", Value: code, Severity: "warning",
				Message: "answers no annulment request of ours"}}, nil
		}
		if err != nil {
			return nil, err
		}
		return j.applyAnswer(ctx, p, &r, rec)
	case "ANN_NOTIF":
		return j.annulled(ctx, p, rec)
	case "UPD_NOTIF":
		return j.updated(ctx, p, rec)
	}
	return nil, fmt.Errorf("entrante: no handling of %s", f.Key)
}

// queueNote queues a credit/debit note line for billing.
func (j *entranteJob) queueNote(ctx context.Context, p *archive.Practice, n flows.NoteLine, event string, line int) error {
	data, err := flows.ParseEntranteData(p.Data)
	if err != nil {
		return err
	}
	var invoices []string
	for _, inv := range data.Invoices {
		invoices = append(invoices, inv.Number)
	}
	charged := "N"
	if n.Charged {
		charged = "S"
	}
	row := exportRow(p, j.in.File.Name, line, map[string]string{"tipo_documento": n.Type, "causale": n.Reason,
		"importo_precedente": n.Old.String(), "importo_nuovo": n.New.String(), "importo": n.Amount.String(),
		"gia_addebitato": charged, "fatture_cmor": strings.Join(invoices, ","), "data_evento": event})
	_, err = j.in.Store.AddBillingLine(ctx, j.tx, &archive.BillingLine{Export: exportCreditNotes, PracticeID: p.ID, FileID: j.in.File.ID,
		Line: line, Data: row, CreatedAt: j.in.Now})
	return err
}

func noteText(n flows.NoteLine) string {
	switch n.Type {
	case flows.NoteCredit:
		return fmt.Sprintf("credit note of %s queued for billing", n.Amount)
	case flows.NoteDebit:
		return fmt.Sprintf("debit note of %s queued for billing", n.Amount)
	}
	return fmt.Sprintf("billing told to change the CMOR to charge from %s to %s", n.Old, n.New)
}

// cancelPending withdraws the requests not yet sent for a practice that is closing.
func (j *entranteJob) cancelPending(ctx context.Context, p *archive.Practice) error {
	for _, flow := range []string{FlowSUSPREQ, flowSUSPREVOKE, flowANNREQ} {
		rs, err := j.pending(ctx, p, flow)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := j.in.Store.SetRequestState(ctx, j.tx, r.ID, "cancelled"); err != nil {
				return err
			}
		}
	}
	// An annulment request delivered (sent) or admitted by the SII is answered by the
	// notice: left "admitted", no_answer said for good that the SII never answered it.
	for _, state := range []string{"sent", "admitted"} {
		rs, err := j.in.Store.Requests(ctx, j.tx, p.ID, flowANNREQ, state, 0)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := j.in.Store.AnswerRequest(ctx, j.tx, r.ID, "accepted", "", "", j.in.Now); err != nil {
				return err
			}
		}
	}
	return nil
}

func (j *entranteJob) annulled(ctx context.Context, p *archive.Practice, rec flows.Record) ([]flows.Finding, error) {
	in := j.in
	cause, on := rec.Get(flows.EntAnnCause), rec.Date(flows.EntAnnDate)
	if p.State == flows.EntranteAnnulled {
		return nil, j.note(ctx, p, rec.Line, "annulment notice received again: already annulled", cause)
	}
	dec, err := flows.DecideAnswer(in.Catalog, j.f, rec, p.State)
	var conflict *flows.StateConflict
	if errors.As(err, &conflict) {
		// The SII has annulled it whatever our state says: billing must still not keep
		// the money, so the note goes out and a person looks at the state.
		_, _, rerr := in.Store.RaiseException(ctx, j.tx, archive.Exception{Fingerprint: fmt.Sprintf("state_conflict|%d|%d|%d", in.File.ID, rec.Line, p.ID),
			Kind: "state_conflict", Severity: archive.SevHigh, Owner: "compliance", PracticeID: p.ID, FileID: in.File.ID, Line: rec.Line,
			Subject: p.CPGestore, LastSeen: in.Now, Message: fmt.Sprintf("%s line %d: %v (entrante practice %s)", in.File.Name, rec.Line, conflict, p.CPGestore),
			Action: "Check the practice on the SII portal; the credit note for billing was queued anyway."})
		if rerr != nil {
			return nil, rerr
		}
	} else if err != nil {
		return nil, err
	}
	p.CauseCode, p.Motivation, p.AnswerDate = cause, rec.Get(flows.EntMotivation), j.today
	if err := in.Store.SavePractice(ctx, j.tx, p); err != nil {
		return nil, err
	}
	if err := j.cancelPending(ctx, p); err != nil {
		return nil, err
	}
	note := fmt.Sprintf("indemnity annulled by the SII on %s (cause %s)", on, cause)
	if m := rec.Get(flows.EntMotivation); m != "" {
		note += "; MOTIVAZIONE: " + m
	}
	if n, ok := flows.AnnulmentNote(p.CMOR, p.Charged); ok {
		if err := j.queueNote(ctx, p, n, on.String(), rec.Line); err != nil {
			return nil, err
		}
		note += "; " + noteText(n)
	}
	if conflict == nil && dec.To != p.State {
		h := j.history(p, rec.Line, note)
		h.CauseCode = cause
		return nil, in.Store.Transition(ctx, j.tx, p, dec.To, h)
	}
	return nil, j.note(ctx, p, rec.Line, note, cause)
}

func (j *entranteJob) updated(ctx context.Context, p *archive.Practice, rec flows.Record) ([]flows.Finding, error) {
	in := j.in
	old, upd, delta := rec.Amount(flows.EntOldCMOR), rec.Amount(flows.EntNewCMOR), rec.Amount(flows.EntDelta)
	var fs []flows.Finding
	if upd-old != delta {
		fs = append(fs, flows.Finding{Field: flows.EntDelta, Rule: flows.RuleRendAmount, Value: delta.String(), Severity: "warning",
			Message: fmt.Sprintf("DELTA %s is not IMPORTO_CMOR_AGGIORNATO − IMPORTO_CMOR_PRECEDENTE (%s); the new amount is used", delta, upd-old)})
	}
	note := fmt.Sprintf("CMOR updated by the SII on %s: %s → %s", rec.Get(flows.EntUpdDate), p.CMOR, upd)
	if old != p.CMOR {
		note += fmt.Sprintf(" (the notice says the old amount was %s)", old)
	}
	n, hasNote := flows.UpdateNote(p.CMOR, upd, p.Charged)
	p.CMOR, p.AnswerDate = upd, j.today
	if err := in.Store.SavePractice(ctx, j.tx, p); err != nil {
		return nil, err
	}
	if hasNote {
		if err := j.queueNote(ctx, p, n, rec.Get(flows.EntUpdDate), rec.Line); err != nil {
			return nil, err
		}
		note += "; " + noteText(n)
	}
	dec, err := flows.DecideAnswer(in.Catalog, j.f, rec, p.State)
	var conflict *flows.StateConflict
	if errors.As(err, &conflict) || (err == nil && !dec.Changes()) {
		return fs, j.note(ctx, p, rec.Line, note, "")
	}
	if err != nil {
		return nil, err
	}
	if err := in.Store.Transition(ctx, j.tx, p, dec.To, j.history(p, rec.Line, note)); err != nil {
		return nil, err
	}
	// Back to where the billing totals put it, so that charging and reporting go on.
	back := flows.EntranteStateFor(p.Charged, p.Collected, p.CMOR)
	if _, err := j.move(ctx, p, back, rec.Line, "billing state after the amount update"); err != nil {
		return nil, err
	}
	return fs, nil
}
