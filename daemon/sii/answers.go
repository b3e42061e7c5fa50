package sii

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// The SII's answers to the uscente (docs/uscente.md): each record names a practice by
// CP_UTENTE (of the request it answers) or CP_GESTORE and moves it through the state
// machine of the catalog. An answer that names no practice, or that the state machine
// forbids, becomes an exception and the rest of the file goes on; the file is archived
// either way.

// answerJob is one SII answer file being applied.
type answerJob struct {
	h     family.Host
	in    *family.Input
	f     *flows.Flow
	tx    *sql.Tx
	st    *archive.PracticeStmts
	sink  *family.FindingSink
	moved int
}

func (a *answers) handleAnswer(ctx context.Context, in *family.Input, key string) (family.Result, error) {
	f := in.Catalog.Flow(key)
	if f == nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: "the flow catalog has no flow " + key})
	}
	roles := in.Config.Company.Roles
	holds := false
	for _, r := range f.Roles {
		holds = holds || in.Config.Company.HasRole(r)
	}
	if !holds {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: fmt.Sprintf("%s (%s) is a flow for the %s role, which the company does not hold (company.roles = %v): refused",
			f.ID(), key, strings.Join(f.Roles, "/"), roles)})
	}
	format, err := family.SniffFormat(in)
	if err != nil {
		return family.Result{}, err
	}
	rc, err := in.Open()
	if err != nil {
		return family.Result{}, err
	}
	defer rc.Close()
	rd, err := flows.NewReader(rc, f, format, flows.ReadOptions{FileName: in.File.Name})
	if err != nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: err.Error()})
	}
	job := &answerJob{h: a.h, in: in, f: f, sink: family.NewFindingSink(in.File.Name)}
	var res family.Result
	err = in.Store.Write(ctx, func(tx *sql.Tx) error {
		st, err := in.Store.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return in.Now })
		job.tx, job.st = tx, st
		rows, headerBad, err := family.ApplyRows(ctx, rd, format, job.sink, job.apply)
		if err != nil {
			st.Close(ctx)
			return err
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		res = family.Result{Findings: job.sink.Result(), Meta: map[string]string{"rows": fmt.Sprint(rows), "practices_moved": fmt.Sprint(job.moved)}}
		if headerBad {
			res.Rejected = true
			res.Reason = fmt.Sprintf("the file does not have the layout of %s (%s): see the findings; it is kept in the archive", f.ID(), key)
			if why := flows.NotTextReason(res.Findings); why != "" {
				res.Reason = why
			}
		}
		return in.Finish(ctx, tx, res)
	})
	return res, err
}

// raise records an exception in the file's transaction.
func (j *answerJob) raise(ctx context.Context, e archive.Exception) error {
	e.FileID, e.LastSeen = j.in.File.ID, j.in.Now
	_, _, err := j.in.Store.RaiseException(ctx, j.tx, e)
	return err
}

// find returns the practice a record names and the request it answers (if named by
// CP_UTENTE). ok false: nothing matches (an orphan_answer was raised).
func (j *answerJob) find(ctx context.Context, rec flows.Record) (archive.Practice, *archive.Request, bool, error) {
	if code := rec.Get("CP_UTENTE"); code != "" {
		r, err := j.in.Store.RequestByCPUtente(ctx, j.tx, code)
		switch {
		case err == nil:
			p, err := j.st.ByID(ctx, r.PracticeID)
			return p, &r, err == nil, err
		case !errors.Is(err, archive.ErrNotFound):
			return archive.Practice{}, nil, false, err
		}
	}
	if code := rec.Get("CP_GESTORE"); code != "" {
		p, err := j.in.Store.PracticeByCode(ctx, j.tx, code)
		switch {
		case err == nil:
			return p, nil, true, nil
		case !errors.Is(err, archive.ErrNotFound):
			return p, nil, false, err
		}
	}
	codes := strings.Trim(rec.Get("CP_UTENTE")+"/"+rec.Get("CP_GESTORE"), "/")
	return archive.Practice{}, nil, false, j.raise(ctx, archive.Exception{Kind: "orphan_answer", Severity: archive.SevHigh, Owner: "compliance",
		Line: rec.Line, Field: "CP_UTENTE", Value: codes, Subject: j.in.File.Name,
		Message: fmt.Sprintf("%s line %d (%s) names %s, which matches no practice of ours", j.in.File.Name, rec.Line, j.f.ID(), codes),
		Action:  "Check whether the answer belongs to a request filed outside cmord or to another company; the file is kept in the archive."})
}

// apply applies one answer record: to an uscente practice here, to another family's
// practice through its row hook.
func (j *answerJob) apply(ctx context.Context, rec flows.Record) ([]flows.Finding, error) {
	cfg := j.in.Config
	if v := rec.Get("PIVA_UTENTE"); v != "" && v != cfg.Company.PIVA && v != cfg.Company.UDDPIVA {
		return []flows.Finding{{Field: "PIVA_UTENTE", Rule: "PIVA_UTENTE", Value: v, Message: "the answer is addressed to another company (PIVA_UTENTE is not ours)"}}, nil
	}
	p, req, ok, err := j.find(ctx, rec)
	if err != nil || !ok {
		if !ok && err == nil {
			return []flows.Finding{{Field: "CP_UTENTE", Rule: "ORPHAN", Severity: "warning", Value: strings.Trim(rec.Get("CP_UTENTE")+"/"+rec.Get("CP_GESTORE"), "/"),
				Message: "names no practice of ours (exception orphan_answer raised)"}}, nil
		}
		return nil, err
	}
	if p.Role != "uscente" {
		if hook := j.h.SIIRowHook(j.f.Key); hook != nil {
			return hook(ctx, j.tx, j.in, j.f, rec, p)
		}
		return nil, j.raise(ctx, archive.Exception{Kind: "orphan_answer", Severity: archive.SevHigh, Owner: "compliance", PracticeID: p.ID,
			Line: rec.Line, Subject: j.in.File.Name, Message: fmt.Sprintf("%s line %d names %s practice %d, which no handler of %s serves", j.in.File.Name, rec.Line, p.Role, p.ID, j.f.Key),
			Action: "Report to the cmord maintainers."})
	}
	dec, err := flows.DecideAnswer(j.in.Catalog, j.f, rec, p.State)
	var conflict *flows.StateConflict
	if errors.As(err, &conflict) {
		return nil, j.conflict(ctx, rec, p, dec, conflict)
	}
	if err != nil {
		return nil, err
	}
	return nil, j.applyUscente(ctx, rec, p, req, dec)
}

// conflict records an answer the state machine forbids: a history entry that keeps
// the state, the link to the file, and a state_conflict exception for compliance.
func (j *answerJob) conflict(ctx context.Context, rec flows.Record, p archive.Practice, dec flows.AnswerDecision, conflict *flows.StateConflict) error {
	h := archive.HistoryEntry{PracticeID: p.ID, From: p.State, To: p.State, Flow: j.f.Key, FileID: j.in.File.ID, Line: rec.Line, At: j.in.Now,
		CauseCode: dec.CauseCode, Note: "answer not applied: " + conflict.Error()}
	if err := j.st.History(ctx, h); err != nil {
		return err
	}
	if err := j.st.Link(ctx, p.ID, j.in.File.ID, "answer", rec.Line); err != nil {
		return err
	}
	return j.raise(ctx, archive.Exception{Fingerprint: fmt.Sprintf("state_conflict|%d|%d|%d", j.in.File.ID, rec.Line, p.ID), Kind: "state_conflict",
		Severity: archive.SevHigh, Owner: "compliance", PracticeID: p.ID, Line: rec.Line, Subject: p.CPUtente,
		Message: fmt.Sprintf("%s line %d: %v (practice %s)", j.in.File.Name, rec.Line, conflict, p.CPUtente),
		Action:  "Check the practice on the SII portal; the answer is kept in the archive and in the practice's history."})
}

// applyUscente applies a decided answer to an uscente practice: the flow's own
// effects, the practice saved and moved (or a note), and a refusal told to compliance.
func (j *answerJob) applyUscente(ctx context.Context, rec flows.Record, p archive.Practice, req *archive.Request, dec flows.AnswerDecision) error {
	h := archive.HistoryEntry{Flow: j.f.Key, FileID: j.in.File.ID, Line: rec.Line, At: j.in.Now, CauseCode: dec.CauseCode}
	var notes []string
	if dec.Reason != "" {
		notes = append(notes, "MOTIVAZIONE: "+dec.Reason)
	}
	p.AnswerDate = flows.Today(j.in.Now)
	if dec.CauseCode != "" || dec.Reason != "" {
		p.CauseCode, p.Motivation = dec.CauseCode, dec.Reason
	}
	after, notes, err := j.flowEffects(ctx, rec, &p, req, dec, notes)
	if err != nil {
		return err
	}
	if err := j.st.Save(ctx, &p); err != nil {
		return err
	}
	h.Note = strings.Join(notes, "; ")
	if dec.Changes() {
		if err := j.st.Transition(ctx, &p, dec.To, "answer", h); err != nil {
			return err
		}
		j.moved++
	} else {
		h.PracticeID, h.From, h.To = p.ID, p.State, p.State
		if err := j.st.History(ctx, h); err != nil {
			return err
		}
		if err := j.st.Link(ctx, p.ID, j.in.File.ID, "answer", rec.Line); err != nil {
			return err
		}
	}
	if after != nil {
		if err := after(); err != nil {
			return err
		}
	}
	if !dec.Refusal {
		return nil
	}
	what := "request"
	if j.f.Key == "ANN_AMM" {
		what = "annulment request"
	}
	return j.raise(ctx, archive.Exception{Fingerprint: fmt.Sprintf("sii_refusal|%s|%d|%d", j.f.Key, p.ID, j.in.File.ID), Kind: "sii_refusal",
		Severity: archive.SevHigh, Owner: "compliance", PracticeID: p.ID, Line: rec.Line, Rule: dec.CauseCode, Value: dec.Reason, Subject: p.CPUtente,
		Message: fmt.Sprintf("the SII refused the %s %s (%s, cause %s): %s", what, family.FirstNonEmpty(rec.Get("CP_UTENTE"), p.CPUtente), j.f.ID(), dec.CauseCode, dec.Reason),
		Action:  "Correct the cause and resubmit with a NEW CP_UTENTE (cmord allocates one); a code is never reused."})
}

// flowEffects applies what each answer flow does besides the move: the codes and
// amounts it carries, the requests it answers. It returns the notes for the history
// and the effects that need the practice in its new state (after).
func (j *answerJob) flowEffects(ctx context.Context, rec flows.Record, p *archive.Practice, req *archive.Request, dec flows.AnswerDecision, notes []string) (after func() error, _ []string, err error) {
	switch j.f.Key {
	case "REQ_AMM", "REQ_ESITO":
		notes, err = j.requestAnswered(ctx, rec, p, req, dec, notes)
	case "SUSP_NOTIF":
		if m := rec.Get("MOTIVO_SOSPENSIONE"); m != "" {
			notes = append(notes, "suspension cause "+m)
		}
		if ev := rec.Get("DATA_EVENTO"); ev != "" {
			notes = append(notes, "event date "+ev)
		}
	case "ANN_AMM":
		if req != nil {
			state := "admitted"
			if dec.Refusal {
				state = "inadmissible"
			}
			if err := j.in.Store.AnswerRequest(ctx, j.tx, req.ID, state, dec.CauseCode, dec.Reason, j.in.Now); err != nil {
				return nil, nil, err
			}
			if dec.Refusal {
				notes = append([]string{fmt.Sprintf("annulment %s refused by the SII", req.CPUtente)}, notes...)
			} else {
				notes = append([]string{fmt.Sprintf("annulment %s admitted by the SII", req.CPUtente)}, notes...)
			}
		}
	case "ANN_NOTIF":
		after, notes, err = j.annulled(ctx, rec, p, dec, notes)
	case "UPD_NOTIF":
		old, upd, delta := rec.Amount("IMPORTO_CMOR_PRECEDENTE"), rec.Amount("IMPORTO_CMOR_AGGIORNATO"), rec.Amount("DELTA")
		notes = append(notes, fmt.Sprintf("CMOR updated on %s: old %s, new %s, delta %s", rec.Get("DATA_AGGIORNAMENTO"), old, upd, delta))
		if old != p.CMOR {
			notes = append(notes, fmt.Sprintf("our amount was %s, not %s", p.CMOR, old))
		}
		p.CMOR = upd
	}
	return after, notes, err
}

// requestAnswered applies REQ_AMM / REQ_ESITO: CP_GESTORE and the validated amount,
// and the state of the REQ request answered.
func (j *answerJob) requestAnswered(ctx context.Context, rec flows.Record, p *archive.Practice, req *archive.Request, dec flows.AnswerDecision, notes []string) ([]string, error) {
	if g := rec.Get("CP_GESTORE"); g != "" {
		if p.CPGestore != "" && p.CPGestore != g {
			notes = append(notes, fmt.Sprintf("CP_GESTORE changed from %s to %s", p.CPGestore, g))
		}
		p.CPGestore = g
	}
	if v := rec.Get("IMPORTO_CMOR_VALIDATO"); v != "" {
		if a := rec.Amount("IMPORTO_CMOR_VALIDATO"); a != p.CMOR {
			notes = append(notes, fmt.Sprintf("CMOR validated by the SII %s (requested %s, delta %s)", a, p.CMOR, a-p.CMOR))
			p.CMOR = a
		}
	}
	if req == nil {
		if rs, err := j.in.Store.Requests(ctx, j.tx, p.ID, "REQ", "", 0); err == nil && len(rs) > 0 {
			req = &rs[len(rs)-1]
		}
	}
	if req != nil {
		if state := flows.UscenteRequestAnswered(dec.To); state != "" {
			if err := j.in.Store.AnswerRequest(ctx, j.tx, req.ID, state, dec.CauseCode, dec.Reason, j.in.Now); err != nil {
				return nil, err
			}
		}
	}
	return notes, nil
}

// annulled applies ANN_NOTIF: the annulment requests it settles, and, when the
// indemnity was already paid, the refund the customer is owed (raised once the
// practice is ANNULLED).
func (j *answerJob) annulled(ctx context.Context, rec flows.Record, p *archive.Practice, dec flows.AnswerDecision, notes []string) (func() error, []string, error) {
	cfg := j.in.Config
	on := rec.Date("DATA_ANNULLAMENTO")
	notes = append(notes, "annulled on "+on.String())
	for _, state := range []string{"sent", "admitted", "ready"} {
		rs, err := j.in.Store.Requests(ctx, j.tx, p.ID, "ANN_REQ", state, 0)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rs {
			to := "accepted"
			if state == "ready" {
				to = "cancelled"
			}
			if err := j.in.Store.AnswerRequest(ctx, j.tx, r.ID, to, dec.CauseCode, dec.Reason, j.in.Now); err != nil {
				return nil, nil, err
			}
		}
	}
	if rec.Get("FLAG_INDENNIZZO_GIA_EROGATO") != "S" {
		return nil, notes, nil
	}
	data, err := flows.ParseUscenteData(p.Data)
	if err != nil {
		return nil, nil, err
	}
	due := on.AddDays(cfg.Deadlines.RefundDays)
	data.Refund = &flows.Refund{AnnulledOn: on, DueBy: due, Amount: p.CMOR}
	p.Data = data.Marshal()
	notes = append(notes, fmt.Sprintf("indemnity already paid: refund %s to the customer by %s, then REFUND_ACK within %d working days", p.CMOR, due, cfg.Deadlines.AckDays))
	after := func() error {
		return j.raise(ctx, archive.Exception{Fingerprint: fmt.Sprintf("refund_overdue|%d", p.ID), Kind: "refund_overdue", Severity: archive.SevHigh,
			Owner: "compliance", PracticeID: p.ID, Subject: p.CPUtente, DueOn: due.ISO(), Line: rec.Line,
			Message: fmt.Sprintf("practice %s annulled on %s with the indemnity already paid: refund %s to the customer by %s", p.CPUtente, on, p.CMOR, due),
			Action:  "Refund the customer and drop the refund in the uscente.rimborsi folder: cmord then files REFUND_ACK."})
	}
	return after, notes, nil
}
