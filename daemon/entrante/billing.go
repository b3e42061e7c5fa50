package entrante

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// ---- entrante.sospensioni ----

// findPractice finds the entrante practice a billing row names: by CP_GESTORE, else by
// point (and customer, when the row has one) among the live ones.
func (j *entranteJob) findPractice(ctx context.Context, rec flows.Record) (archive.Practice, []flows.Finding, error) {
	if cpg := rec.Get(flows.EntCPGestore); cpg != "" {
		p, err := j.in.Store.PracticeByKey(ctx, j.tx, flows.EntranteCaseKey(cpg))
		if errors.Is(err, archive.ErrNotFound) {
			return p, []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntNoPractice, Value: cpg,
				Message: "no acceptance notice (NOTIF_ENTR) was received for this indemnity"}}, nil
		}
		if err != nil {
			return p, nil, err
		}
		if point := family.FirstNonEmpty(rec.Get(flows.EntPOD), rec.Get(flows.EntPDR)); point != "" && point != p.Point {
			return p, []flows.Finding{{Field: flows.EntPOD, Rule: flows.RuleEntNoPractice, Value: point,
				Message: fmt.Sprintf("the indemnity %s concerns point %s, not this one", cpg, p.Point)}}, nil
		}
		return p, nil, nil
	}
	point := family.FirstNonEmpty(rec.Get(flows.EntPOD), rec.Get(flows.EntPDR))
	customer := family.FirstNonEmpty(rec.Get(flows.EntCF), rec.Get(flows.EntPIVA))
	ps, err := j.in.Store.EntrantePracticesByPoint(ctx, j.tx, point, customer)
	if err != nil {
		return archive.Practice{}, nil, err
	}
	ps = slices.DeleteFunc(ps, func(p archive.Practice) bool { return !flows.EntranteLive(p.State) })
	switch len(ps) {
	case 0:
		return archive.Practice{}, []flows.Finding{{Field: flows.EntPOD, Rule: flows.RuleEntNoPractice, Value: point,
			Message: "no open entrante practice for this point" + map[bool]string{true: " and customer", false: ""}[customer != ""]}}, nil
	case 1:
		return ps[0], nil, nil
	}
	codes := make([]string, len(ps))
	for i, p := range ps {
		codes[i] = p.CPGestore
	}
	return archive.Practice{}, []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntAmbiguous, Value: point,
		Message: fmt.Sprintf("%d open entrante practices for this point (%s): give CP_GESTORE", len(ps), strings.Join(codes, ", "))}}, nil
}

// pending returns the ready requests of a flow for a practice.
func (j *entranteJob) pending(ctx context.Context, p *archive.Practice, flow string) ([]archive.Request, error) {
	return j.in.Store.Requests(ctx, j.tx, p.ID, flow, "ready", 0)
}

// handleSospensioni turns suspension rows into SUSP_REQ and revocation rows (or rows
// saying the customer paid or supply resumed) into SUSP_REVOKE.
func (e *entrante) handleSospensioni(ctx context.Context, in *family.Input) (family.Result, error) {
	f := in.Catalog.Input(config.KindEntranteSospensioni)
	if f == nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: "the flow catalog has no input kind " + config.KindEntranteSospensioni})
	}
	opt, err := family.ReadOptions(in)
	if err != nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: err.Error()})
	}
	cal := e.h.Calendar()
	return e.run(ctx, in, f, opt, "csv", func(ctx context.Context, j *entranteJob, rec flows.Record) ([]flows.Finding, error) {
		p, fs, err := j.findPractice(ctx, rec)
		if err != nil || fs != nil {
			return fs, err
		}
		if cause, on, ok := flows.Revocation(rec, p.State); ok {
			return j.revoke(ctx, &p, rec, cause, on)
		}
		sc := flows.SuspensionCase{Sector: p.Sector, Cause: strings.ToUpper(rec.Get(flows.EntSuspCause)), EventDate: rec.Date(flows.EntSuspDate),
			Today: j.today, Term: p.SuspensionTerm, CollectedFlag: rec.Flag(flows.EntCMORCollected), Collected: p.Collected, CMOR: p.CMOR, State: p.State}
		fs = flows.CheckSuspension(sc, cal)
		if len(fs) == 0 {
			if _, ok := flows.FlowAllows(in.Catalog, FlowSUSPREQ, p.State); !ok {
				fs = append(fs, flows.FlowStateRefusal(in.Catalog, FlowSUSPREQ, flows.EntCPGestore, flows.RuleSuspState, p.State))
			}
		}
		if len(fs) == 0 {
			if rs, err := j.pending(ctx, &p, FlowSUSPREQ); err != nil {
				return nil, err
			} else if len(rs) > 0 {
				fs = append(fs, flows.Finding{Field: flows.EntCPGestore, Rule: flows.RuleSuspState, Value: p.CPGestore,
					Message: fmt.Sprintf("a suspension request (%s) is already waiting to be sent for this indemnity", rs[0].CPUtente)})
			}
		}
		if len(fs) > 0 {
			msgs := make([]string, len(fs))
			for i, fd := range fs {
				msgs[i] = fd.Rule + ": " + fd.Message
			}
			if err := j.note(ctx, &p, rec.Line, "suspension refused: "+strings.Join(msgs, "; "), fs[0].Rule); err != nil {
				return nil, err
			}
			return fs, nil
		}
		code, err := j.newCode(ctx, p.Sector)
		if err != nil {
			return nil, err
		}
		data := map[string]string{flows.EntSuspCause: sc.Cause, flows.EntSuspDate: sc.EventDate.String(),
			flows.EntSuspDSORef: rec.Get(flows.EntSuspDSORef), flows.EntCMORCollected: "N", "_src": fmt.Sprint(in.File.ID)}
		setPoint(data, &p)
		if err := in.Store.CreateRequest(ctx, j.tx, &archive.Request{PracticeID: p.ID, Flow: FlowSUSPREQ, CPUtente: code, Data: data}); err != nil {
			return nil, err
		}
		return nil, j.note(ctx, &p, rec.Line, fmt.Sprintf("suspension requested (SUSP_REQ %s, cause %s, event %s, term %s): goes into the next SUSP_REQ file",
			code, sc.Cause, sc.EventDate, flows.EffectiveSuspensionTerm(p.SuspensionTerm, cal)), sc.Cause)
	})
}

func setPoint(data map[string]string, p *archive.Practice) {
	if strings.HasPrefix(p.Point, "IT") {
		data[flows.EntPOD] = p.Point
	} else {
		data[flows.EntPDR] = p.Point
	}
}

// revoke files a SUSP_REVOKE, or withdraws a SUSP_REQ not yet sent.
func (j *entranteJob) revoke(ctx context.Context, p *archive.Practice, rec flows.Record, cause string, on flows.Date) ([]flows.Finding, error) {
	if on.IsZero() {
		on = j.today
	}
	ready, err := j.pending(ctx, p, FlowSUSPREQ)
	if err != nil {
		return nil, err
	}
	if len(ready) > 0 {
		for _, r := range ready {
			if err := j.in.Store.SetRequestState(ctx, j.tx, r.ID, "cancelled"); err != nil {
				return nil, err
			}
		}
		return nil, j.note(ctx, p, rec.Line, fmt.Sprintf("suspension request %s withdrawn before sending (%s)", ready[0].CPUtente, cause), cause)
	}
	fs := flows.CheckRevocation(cause, p.State)
	if len(fs) == 0 {
		if _, ok := flows.FlowAllows(j.in.Catalog, flowSUSPREVOKE, p.State); !ok {
			fs = append(fs, flows.FlowStateRefusal(j.in.Catalog, flowSUSPREVOKE, flows.EntCPGestore, flows.RuleRevokeState, p.State))
		}
	}
	if len(fs) == 0 {
		if rs, err := j.pending(ctx, p, flowSUSPREVOKE); err != nil {
			return nil, err
		} else if len(rs) > 0 {
			return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleRevokeState, Value: p.CPGestore, Severity: "warning",
				Message: fmt.Sprintf("a revocation (%s) is already waiting to be sent", rs[0].CPUtente)}}, nil
		}
	}
	if len(fs) > 0 {
		return fs, j.note(ctx, p, rec.Line, "revocation refused: "+fs[0].Message, fs[0].Rule)
	}
	code, err := j.newCode(ctx, p.Sector)
	if err != nil {
		return nil, err
	}
	data := map[string]string{flows.EntRevokeCause: cause, flows.EntRevokeDate: on.String(), "_src": fmt.Sprint(j.in.File.ID)}
	if n := rec.Get(flows.EntNote); n != "" {
		data[flows.EntNote] = n
	}
	if err := j.in.Store.CreateRequest(ctx, j.tx, &archive.Request{PracticeID: p.ID, Flow: flowSUSPREVOKE, CPUtente: code, Data: data}); err != nil {
		return nil, err
	}
	return nil, j.note(ctx, p, rec.Line, fmt.Sprintf("suspension revocation requested (SUSP_REVOKE %s, cause %s, on %s)", code, cause, on), cause)
}

// ---- entrante.fatturato ----

// handleFatturato accumulates the CMOR invoices and collections per practice, moves
// the practices (TO_CHARGE → CHARGED → COLLECTED), and keeps each row for the REND of
// the month it arrived in.
func (e *entrante) handleFatturato(ctx context.Context, in *family.Input) (family.Result, error) {
	f := in.Catalog.Input(config.KindEntranteFatturato)
	if f == nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: "the flow catalog has no input kind " + config.KindEntranteFatturato})
	}
	opt, err := family.ReadOptions(in)
	if err != nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: err.Error()})
	}
	period := flows.ReportPeriodOf(in.Now).String()
	return e.run(ctx, in, f, opt, "csv", func(ctx context.Context, j *entranteJob, rec flows.Record) ([]flows.Finding, error) {
		p, fs, err := j.findPractice(ctx, rec)
		if err != nil || fs != nil {
			return fs, err
		}
		if p.State == flows.EntranteAnnulled {
			return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleRendState, Value: p.CPGestore,
				Message: "the indemnity was annulled: the CMOR must not be billed (a credit note was queued for billing if it had been)"}}, nil
		}
		billed, collected := rec.Amount(flows.EntBilled), rec.Amount(flows.EntCollAmount)
		state, bad := flows.CollectionState(rec.Get(flows.EntCollState), billed, collected)
		if bad != nil {
			return []flows.Finding{*bad}, nil
		}
		data, err := flows.ParseEntranteData(p.Data)
		if err != nil {
			return nil, err
		}
		inv := flows.EntranteInvoice{Number: rec.Get(flows.EntInvoice), Date: rec.Date(flows.EntInvoiceDate).ISO(), Billed: billed,
			Due: rec.Date(flows.EntDueDate).ISO(), State: state, Collected: collected, CollDate: rec.Date(flows.EntCollDate).ISO()}
		p.Charged, p.Collected = data.SetInvoice(inv)
		p.Data = data.Marshal()
		var out []flows.Finding
		if p.Charged > p.CMOR {
			out = append(out, flows.Finding{Field: flows.EntBilled, Rule: flows.RuleRendAmount, Value: p.Charged.String(), Severity: "warning",
				Message: fmt.Sprintf("billed in total %s, more than the CMOR notified (%s)", p.Charged, p.CMOR)})
		}
		if err := in.Store.SavePractice(ctx, j.tx, &p); err != nil {
			return nil, err
		}
		line := map[string]string{flows.EntCPGestore: p.CPGestore, flows.EntInvoice: inv.Number, flows.EntInvoiceDate: rec.Get(flows.EntInvoiceDate),
			flows.EntBilled: billed.String(), flows.EntDueDate: rec.Get(flows.EntDueDate), flows.EntCollState: state}
		if state != flows.CollNone {
			line[flows.EntCollAmount], line[flows.EntCollDate] = collected.String(), rec.Get(flows.EntCollDate)
		}
		setPoint(line, &p)
		if err := in.Store.AddReportLine(ctx, j.tx, &archive.ReportLine{PracticeID: p.ID, Period: period, FileID: in.File.ID, Line: rec.Line,
			Invoice: inv.Number, Data: line, ArrivedAt: in.Now}); err != nil {
			return nil, err
		}
		note := fmt.Sprintf("CMOR invoice %s of %s: billed %s, collected %s (%s); totals billed %s, collected %s; reported in %s",
			inv.Number, rec.Get(flows.EntInvoiceDate), billed, collected, state, p.Charged, p.Collected, period)
		switch p.State {
		case flows.EntranteSuspended, flows.EntranteSuspRequested:
			if err := j.note(ctx, &p, rec.Line, note, ""); err != nil {
				return nil, err
			}
			if state == flows.CollCollected && p.State == flows.EntranteSuspended {
				more, err := j.revoke(ctx, &p, rec, flows.RevokePaid, rec.Date(flows.EntCollDate))
				return append(out, more...), err
			}
			return out, nil
		}
		target := flows.EntranteStateFor(p.Charged, p.Collected, p.CMOR)
		ok, err := j.move(ctx, &p, target, rec.Line, note)
		if err != nil {
			return nil, err
		}
		if !ok || p.State != target {
			if err := j.note(ctx, &p, rec.Line, note, ""); err != nil {
				return nil, err
			}
		} else if err := in.Store.LinkPracticeFile(ctx, j.tx, p.ID, in.File.ID, "input", rec.Line); err != nil {
			return nil, err
		}
		return out, nil
	})
}

// KindAnnullamenti is the operator's list of entrante annulments (CP_GESTORE,
// cause, motivation, event date). config has no such folder kind yet: the handler is
// ready for when it does, and reads the catalog's input of that name or, failing it,
// the layout of uscente.annullamenti.
const KindAnnullamenti = "entrante.annullamenti"

// handleAnnullamenti files an ANN_REQ for each listed entrante practice.
func (e *entrante) handleAnnullamenti(ctx context.Context, in *family.Input) (family.Result, error) {
	f := in.Catalog.Input(KindAnnullamenti)
	if f == nil {
		f = in.Catalog.Input(config.KindUscenteAnnullamenti)
	}
	if f == nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: "the flow catalog has no input kind " + KindAnnullamenti})
	}
	opt, err := family.ReadOptions(in)
	if err != nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: err.Error()})
	}
	return e.run(ctx, in, f, opt, "csv", func(ctx context.Context, j *entranteJob, rec flows.Record) ([]flows.Finding, error) {
		var p archive.Practice
		var err error
		if code := rec.Get(flows.EntCPGestore); code != "" {
			p, err = in.Store.PracticeByKey(ctx, j.tx, flows.EntranteCaseKey(code))
		} else {
			p, err = in.Store.PracticeByCode(ctx, j.tx, rec.Get(flows.EntCPUtente))
		}
		if errors.Is(err, archive.ErrNotFound) || (err == nil && p.Role != roleEntrante) {
			return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntNoPractice, Value: family.FirstNonEmpty(rec.Get(flows.EntCPGestore), rec.Get(flows.EntCPUtente)),
				Message: "no entrante practice has this code"}}, nil
		}
		if err != nil {
			return nil, err
		}
		why := rec.Get(flows.EntMotivation)
		if by := rec.Get("RICHIESTO_DA"); by != "" {
			why = strings.TrimSpace(why + " (requested by " + by + ")")
		}
		return RequestAnnulment(ctx, e.h, j.tx, &p, rec.Get(flows.EntAnnCause), why, rec.Date(flows.EntEventDate), in.File.ID, rec.Line)
	})
}
