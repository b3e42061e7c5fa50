// Package entrante is the entrante family (docs/entrante.md): the SII's acceptance
// notices become entrante practices and a "CMOR to charge" export for billing;
// billing's suspensions become SUSP_REQ / SUSP_REVOKE requests while the term allows;
// billing's CMOR invoices and collections are accumulated and reported (REND) per month
// of arrival; annulments and amount updates become credit/debit note lines for billing.
//
// Where things are: notice.go (NOTIF_ENTR), billing.go (billing's drops: suspensions,
// invoices, annulment lists), answers.go (the SII's answers: SUSP_AMM, SUSP_ESITO,
// REND_AMM, and the shared ANN_NOTIF / UPD_NOTIF / ANN_AMM rows), annulment.go (what
// the uscente family calls: an entrante ANN_REQ, the link of a previous CMOR),
// builders.go (SUSP_REQ, SUSP_REVOKE, ANN_REQ files), rend.go (REND), exports.go (the
// billing exports). The decisions without I/O are in package flows.
package entrante

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

const roleEntrante = "entrante"

// Flow keys of the entrante side.
const (
	flowNOTIFENTR  = "NOTIF_ENTR"
	FlowSUSPREQ    = "SUSP_REQ"
	flowANNREQ     = "ANN_REQ"
	flowSUSPREVOKE = "SUSP_REVOKE"
	flowSUSPAMM    = "SUSP_AMM"
	flowSUSPESITO  = "SUSP_ESITO"
	FlowREND       = "REND"
	flowRENDAMM    = "REND_AMM"
)

// Setup registers the entrante family: its handlers (acceptance notices, billing's
// suspensions, invoices and annulments, the SII's answers to its requests), its row
// hook for the shared SII flows, and its builders.
func Setup(h family.Host, r family.Registry) error {
	cfg := h.Config()
	for _, name := range config.ExportNames {
		if _, ok := exportColumns[name]; !ok {
			continue
		}
		if _, err := ExportLayout(cfg, name); err != nil {
			return err
		}
	}
	e := &entrante{h: h}
	r.Handle(flowNOTIFENTR, family.HandlerFunc(e.handleNotice))
	for _, key := range []string{flowSUSPAMM, flowSUSPESITO, flowRENDAMM} {
		key := key
		r.Handle(key, family.HandlerFunc(func(ctx context.Context, in *family.Input) (family.Result, error) {
			return e.handleAnswer(ctx, in, key)
		}))
	}
	r.Handle(config.KindEntranteSospensioni, e.guard(e.handleSospensioni))
	r.Handle(config.KindEntranteFatturato, e.guard(e.handleFatturato))
	r.Handle(KindAnnullamenti, e.guard(e.handleAnnullamenti))
	for _, key := range []string{FlowSUSPREQ, flowSUSPREVOKE, flowANNREQ} {
		r.AddBuilder(&entranteBuilder{e: e, flow: key})
	}
	r.AddBuilder(&rendBuilder{e: e})
	r.AddBuilder(&notesBuilder{e: e})
	for _, key := range []string{"ANN_NOTIF", "UPD_NOTIF", "ANN_AMM"} {
		r.HookSIIRows(key, rowHook)
	}
	return nil
}

type entrante struct{ h family.Host }

// notEntrante is the reason given for an entrante input or flow when the company does
// not hold the role.
func notEntrante(in *family.Input, what string) string {
	return fmt.Sprintf("company is not configured as entrante: %s is for the entrante role (company.roles = %v); refused",
		what, in.Config.Company.Roles)
}

// guard refuses entrante inputs when the company does not hold the entrante role.
func (e *entrante) guard(h family.HandlerFunc) family.Handler {
	return family.HandlerFunc(func(ctx context.Context, in *family.Input) (family.Result, error) {
		if !in.Config.Company.HasRole(roleEntrante) {
			return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: notEntrante(in, "input "+in.File.Kind)})
		}
		return h(ctx, in)
	})
}

// errRejectFile rolls back a file's effects when the folder refuses files with bad rows.
var errRejectFile = errors.New("reject file")

// entranteJob is one entrante file being processed inside its transaction.
type entranteJob struct {
	e     *entrante
	in    *family.Input
	f     *flows.Flow
	tx    *sql.Tx
	st    *archive.PracticeStmts
	tmpl  *flows.CodeTemplate
	sink  *family.FindingSink
	today flows.Date
	moved int
	// finish runs at the end of the file, in its transaction (e.g. the export of
	// everything the file produced).
	finish func(ctx context.Context) error
}

func (j *entranteJob) history(p *archive.Practice, line int, note string) archive.HistoryEntry {
	return archive.HistoryEntry{Flow: j.f.Key, FileID: j.in.File.ID, Line: line, At: j.in.Now, Note: note}
}

// note records a history entry that keeps the state, and links the file.
func (j *entranteJob) note(ctx context.Context, p *archive.Practice, line int, note, cause string) error {
	h := j.history(p, line, note)
	h.CauseCode = cause
	if err := j.in.Store.Note(ctx, j.tx, p, h); err != nil {
		return err
	}
	return j.in.Store.LinkPracticeFile(ctx, j.tx, p.ID, j.in.File.ID, relationOf(j.f), line)
}

func relationOf(f *flows.Flow) string {
	if f.IsInput() {
		return "input"
	}
	return "answer"
}

// move transitions p to `to` if the catalog allows it, going through CHARGED when
// needed (TO_CHARGE → CHARGED → COLLECTED); it reports whether p reached `to`.
func (j *entranteJob) move(ctx context.Context, p *archive.Practice, to string, line int, note string) (bool, error) {
	if p.State == to {
		return true, nil
	}
	cat := j.in.Catalog
	path := []string{to}
	if !cat.CanTransition(p.State, to) {
		if to != flows.EntranteCharged && cat.CanTransition(p.State, flows.EntranteCharged) && cat.CanTransition(flows.EntranteCharged, to) {
			path = []string{flows.EntranteCharged, to}
		} else {
			return false, nil
		}
	}
	for _, s := range path {
		if err := j.in.Store.Transition(ctx, j.tx, p, s, j.history(p, line, note)); err != nil {
			return false, err
		}
	}
	j.moved++
	return true, nil
}

// newCode allocates a CP_UTENTE for a request, from the same sequence as the uscente
// side's codes, so that no code is ever issued twice.
func (j *entranteJob) newCode(ctx context.Context, sector string) (string, error) {
	return family.NewCode(ctx, j.st, j.tmpl, j.in.Config.Company.PIVA, sector, j.today.Y)
}

// run reads the input in one transaction and calls row for each record without
// errors; rows' findings get the file and line.
func (e *entrante) run(ctx context.Context, in *family.Input, f *flows.Flow, opt flows.ReadOptions, format string, row func(ctx context.Context, j *entranteJob, rec flows.Record) ([]flows.Finding, error)) (family.Result, error) {
	tmpl, err := flows.ParseCodeTemplate(in.Config.PracticeCode.Template)
	if err != nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: err.Error()})
	}
	var rc io.ReadCloser
	if f.IsInput() {
		rc, err = family.OpenInput(in)
	} else {
		rc, err = in.Open()
	}
	if err != nil {
		return family.Result{}, err
	}
	defer rc.Close()
	rd, err := flows.NewReader(rc, f, format, opt)
	if err != nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: err.Error()})
	}
	if c, ok := rd.(io.Closer); ok {
		defer c.Close() // a workbook's temporary files
	}
	j := &entranteJob{e: e, in: in, f: f, tmpl: tmpl, sink: family.NewFindingSink(in.File.Name), today: flows.Today(in.Now)}
	reject := family.RejectFile(in)
	var res family.Result
	err = in.Store.Write(ctx, func(tx *sql.Tx) error {
		st, err := in.Store.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		defer st.Close(ctx)
		st.SetClock(func() time.Time { return in.Now })
		j.tx, j.st = tx, st
		rows, headerBad, err := family.ApplyRows(ctx, rd, format, j.sink, func(ctx context.Context, rec flows.Record) ([]flows.Finding, error) {
			return row(ctx, j, rec)
		})
		if err != nil {
			return err
		}
		res = family.Result{Findings: j.sink.Result(), Meta: map[string]string{"rows": fmt.Sprint(rows), "practices_moved": fmt.Sprint(j.moved)}}
		if headerBad {
			res.Rejected = true
			res.Reason = fmt.Sprintf("the file does not have the layout of %s: see the findings; it is kept in the archive", f.ID())
			if why := flows.NotTextReason(res.Findings); why != "" {
				res.Reason = why
			}
			return errRejectFile
		}
		if reject && j.sink.Errors > 0 {
			res.Rejected = true
			res.Reason = fmt.Sprintf("%d refused rows and the folder refuses files with bad rows (on_bad_rows = \"reject_file\"): nothing of the file was applied", j.sink.Errors)
			return errRejectFile
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		if j.finish != nil {
			if err := j.finish(ctx); err != nil {
				return err
			}
		}
		return in.Finish(ctx, tx, res)
	})
	if errors.Is(err, errRejectFile) {
		return family.FinishOnly(ctx, in, res)
	}
	return res, err
}
