package uscente

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/entrante"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// readCase is a case as the reader hands it over: with what it becomes if its key is
// new (nil for a held case).
type readCase struct {
	mc *flows.MorosiCase
	pc *preparedCase
}

// preparedCase is what a case becomes when no practice has its key yet: the decision,
// the practice's data and its encoding, the ready request's payload and the history
// note. The reader computes it on its own goroutine, so that the writing goroutine,
// which the handler waits for, only writes; the writer uses it for a case it finds
// new (flows.CaseNew) and decides any other case again, against its practice, as
// before. Everything in it is a pure function of the case and the job's parameters.
type preparedCase struct {
	out     flows.MorosiOutcome
	data    flows.UscenteData
	row     flows.CaseRow           // the practice row's fields the stored case leaves out
	encoded []byte                  // data's stored form for row, READY and WAITING_WINDOW only
	payload *archive.RequestPayload // READY only
	snap    map[string]string       // the request's reqSnapshot, READY only
	note    string                  // the creation history's note
	// deflated is encoded deflated against the chunk's dictionary as guessed by the
	// reader (archive.CasePredeflater): the writer then stores it without deflating
	// it on its own goroutine. nil when the archive deflates no case.
	deflated *archive.PredeflatedCase
}

// prepare computes what mc becomes if it is new (see preparedCase); nil when mc is
// held (so the writer need not ask again). It reads only the job's fixed fields: it
// runs on the reader's goroutine.
//
// chunkFirst says mc is the first case of a chunk (readCaseBatches): the first of
// them prepare encodes becomes the dictionary its other cases are deflated against.
func (j *morosiJob) prepare(mc *flows.MorosiCase, chunkFirst bool) *preparedCase {
	if chunkFirst {
		j.predeflate.NewChunk()
	}
	if mc.Held() {
		return nil
	}
	pc := &preparedCase{out: flows.DecideMorosi(mc, j.in.File.Name, j.today, j.params)}
	if pc.out.State == flows.StateDraft {
		return pc // refused: nothing is created
	}
	pc.data = j.newData(flows.UscenteData{}, mc, pc.out)
	// The row create gives the practice (the writer checks it is the same).
	pc.row = flows.CaseRow{Point: flows.CasePoint(&mc.Case), CustomerID: flows.CaseCustomer(&mc.Case), CustomerName: mc.Case.CustomerName, SwitchDate: mc.Case.SwitchDate}
	pc.encoded = flows.EncodeUscenteData(&pc.data, pc.row)
	if d, err := j.predeflate.Deflate(pc.encoded); err == nil {
		pc.deflated = d // else the writer deflates it, and meets the error there
	}
	if pc.out.State == flows.StateReady {
		pc.payload, pc.snap = j.u.reqPayload(&pc.data), reqSnapshot(pc.out.Result)
	}
	pc.note = j.creationNote(mc, pc.out)
	return pc
}

// newData is data (zero for a new practice) with the decision out of mc.
func (j *morosiJob) newData(data flows.UscenteData, mc *flows.MorosiCase, out flows.MorosiOutcome) flows.UscenteData {
	data.Case, data.Audit, data.Warnings, data.Refusals = mc.Case, flows.AuditOf(out.Result, j.today), out.Warnings, nil
	data.Inputs = appendInput(data.Inputs, j.in.File.ID, mc.Lines)
	if out.State == flows.StateDraft {
		data.Refusals = out.Refusals
	}
	return data
}

// creationNote is the history note of a practice created from mc, as stored: its
// creation row stands for its input link (archive.LinkInputCaseRead), and the note
// is read with archive.CaseReadPrefix before it ("case read from <file> lines "),
// the file's name rendered when read, not stored per practice.
func (j *morosiJob) creationNote(mc *flows.MorosiCase, out flows.MorosiOutcome) string {
	result := out.Result
	// What fmt's %s would write, without fmt (a note for every practice created).
	note := flows.LinesText(mc.Lines) + "; CMOR " + result.CMOR.String() +
		" (credit " + result.Credit.String() + ", estimate " + result.Estimate.String() + ")"
	if out.State == flows.StateWaitingWindow {
		note += "; request window opens " + out.WindowOpen.String()
	}
	return note
}

// unreadable refuses case mc because the stored case of its practice, which it would
// update, cannot be read (changed outside cmord, or its dictionary edited or
// deleted): the case is left out with a finding that says so, and the rest of the
// file goes on; before, the whole file failed on that one practice.
func (j *morosiJob) unreadable(mc *flows.MorosiCase, existing archive.Practice, cause error) error {
	j.refused++
	j.sink.Add(flows.Finding{Line: mc.FirstLine(), Field: flows.MorSwitch, Rule: "CASE_UNREADABLE", Value: existing.CPUtente,
		Message: fmt.Sprintf("case %s: the stored case of practice %s cannot be read (%v): not updated; run `cmord archive verify` and restore the archive from a backup, then drop the case again",
			mc.Key, existing.CPUtente, cause)})
	return nil
}

// process decides what one case does: a new practice, an update of one not yet filed,
// a duplicate of one filed (SI-D01), or a refusal. mayExist false means the case key
// is known to be new. pc is what the reader prepared for it if it is new.
func (j *morosiJob) process(ctx context.Context, mc *flows.MorosiCase, pc *preparedCase, mayExist bool) error {
	line := mc.FirstLine()
	var existing archive.Practice
	found := false
	if mayExist {
		var err error
		existing, err = j.st.LatestByKey(ctx, mc.Key)
		found = err == nil
		if err != nil && !errors.Is(err, archive.ErrNotFound) {
			return err
		}
	}
	var data flows.UscenteData
	action := flows.CaseAgainst(existing.State, found)
	// The SII refused the filed request (inadmissible, or rejected on verification):
	// the corrected case is filed again as a new practice with a NEW CP_UTENTE (the
	// SII refuses a code twice, brief §7.3), linked to the refused one both ways.
	var refiled *archive.Practice
	if action == flows.CaseRefile {
		refiled = &existing
	}
	if pc == nil && mc.Held() { // a prepared case is not held (prepare tells)
		return j.hold(ctx, mc, existing, action == flows.CaseUpdate || action == flows.CaseDuplicate)
	}
	if action == flows.CaseUpdate || action == flows.CaseDuplicate {
		var err error
		if data, err = flows.ParseUscenteData(existing.Data); err != nil {
			return j.unreadable(mc, existing, err)
		}
		if action == flows.CaseDuplicate {
			j.refused++
			msg := fmt.Sprintf("case %s was already filed as CP_UTENTE %s (state %s): not filed again", mc.Key, existing.CPUtente, existing.State)
			// A later extract that adds to the filed claim is not a mere repeat: say
			// what the filed claim lacks, so that no one reads it as a harmless duplicate.
			if ch := flows.InvoiceChanges(data.Case.Invoices, mc.Case.Invoices); len(ch) > 0 {
				if len(ch) > 10 {
					ch = append(ch[:10:10], fmt.Sprintf("and %d more", len(ch)-10))
				}
				msg = fmt.Sprintf("case %s was already filed as CP_UTENTE %s (state %s, CMOR %s), and this extract differs from the filed claim: %s. "+
					"The filed claim is not changed: if billing's debt is what this extract says, compliance decides whether to annul the practice "+
					"(uscente.annullamenti) and file the case again", mc.Key, existing.CPUtente, existing.State, existing.CMOR, strings.Join(ch, "; "))
			}
			j.sink.Add(flows.Finding{Line: line, Field: "CP_UTENTE", Rule: "SI-D01", Value: existing.CPUtente, Message: msg})
			return nil
		}
		mc.MergeCase(data.Case) // the same case again: this extract corrects and completes it
	}
	if action != flows.CaseNew {
		pc = nil // prepared for a new practice: this case meets one
	}
	// The same decision `cmord validate` shows for the case.
	var out flows.MorosiOutcome
	if pc != nil {
		out, data = pc.out, pc.data
	} else {
		out = flows.DecideMorosi(mc, j.in.File.Name, j.today, j.params)
		data = j.newData(data, mc, out)
	}
	result, state, errs, open, closeDay := out.Result, out.State, out.Refusals, out.WindowOpen, out.WindowClose
	switch state {
	case flows.StateDraft:
		j.sink.Add(errs...)
		j.refused++
	case flows.StateWaitingWindow:
		j.waiting++
	default:
		j.ready++
	}
	hist := archive.HistoryEntry{Flow: config.KindUscenteMorosi, FileID: j.in.File.ID, Line: line, At: j.now}
	if action != flows.CaseUpdate {
		if state == flows.StateDraft {
			return nil // refused before it existed: no practice, no code consumed; the findings say why
		}
		return j.create(ctx, mc, &data, pc, out, hist, refiled)
	}
	// An update of a practice not yet filed.
	j.updated++
	p := &existing
	setAmounts(p, result)
	p.WindowOpen, p.WindowClose, p.CustomerName = open, closeDay, mc.Case.CustomerName
	p.Data = data.Marshal()
	if err := j.st.Save(ctx, p); err != nil {
		return err
	}
	if err := j.st.Link(ctx, p.ID, j.in.File.ID, "input", line); err != nil {
		return err
	}
	if err := j.linkPrevious(ctx, p, mc); err != nil {
		return err
	}
	return j.u.settleReady(ctx, j.st, p, state, result, j.u.reqPayload(&data), hist)
}

// create queues a new practice for a case that passed (READY or WAITING_WINDOW), with
// its REQ request when READY; refiled is the practice the SII refused that it files
// again, linked to it. pc, when not nil, holds data's encoding, payload and note.
func (j *morosiJob) create(ctx context.Context, mc *flows.MorosiCase, data *flows.UscenteData, pc *preparedCase, out flows.MorosiOutcome, hist archive.HistoryEntry, refiled *archive.Practice) error {
	result, state, open, closeDay := out.Result, out.State, out.WindowOpen, out.WindowClose
	line := hist.Line
	var err error
	key := mc.Key
	if refiled != nil {
		key, data.RefileOf = archive.RefileKey(refiled.CaseKey), refiled.ID
		pc = nil // data changed
	}
	p := &archive.Practice{CaseKey: key, Role: "uscente", Sector: mc.Case.Sector, CompanyPIVA: j.in.Config.Company.PIVA,
		Point: flows.CasePoint(&mc.Case), CustomerID: flows.CaseCustomer(&mc.Case), CustomerName: mc.Case.CustomerName,
		SwitchDate: mc.Case.SwitchDate, State: state, WindowOpen: open, WindowClose: closeDay}
	setAmounts(p, result)
	p.CPUtente, err = j.newCode(ctx, mc.Case.Sector)
	if err != nil {
		return err
	}
	hist.Link = archive.LinkInputCaseRead // the note: creationNote
	var deflated *archive.PredeflatedCase
	if pc != nil && pc.row == p.CaseRow() {
		p.Data, hist.Note, deflated = pc.encoded, pc.note, pc.deflated
	} else {
		p.Data = flows.EncodeUscenteData(data, p.CaseRow()) // compact, without what the row holds
		hist.Note = j.creationNote(mc, out)
	}
	if refiled != nil {
		hist.Note += fmt.Sprintf("; files again the case of CP_UTENTE %s (%s)", refiled.CPUtente, refiled.State)
	}
	var req *archive.Request
	if state == flows.StateReady {
		req = &archive.Request{Flow: FlowREQ, CPUtente: p.CPUtente}
		if pc != nil {
			req.Data, req.Payload = pc.snap, pc.payload
		} else {
			req.Data, req.Payload = reqSnapshot(result), j.u.reqPayload(data)
		}
	}
	// Queued: inserted with other new practices in multi-row statements.
	if err := j.st.QueueCreateCase(ctx, p, hist, req, deflated); err != nil {
		return err
	}
	j.created++
	if refiled != nil {
		j.refiled++
		if err := j.st.Flush(ctx); err != nil {
			return err
		}
		if err := j.st.History(ctx, archive.HistoryEntry{PracticeID: refiled.ID, From: refiled.State, To: refiled.State,
			Flow: config.KindUscenteMorosi, FileID: j.in.File.ID, Line: line, At: j.now,
			Note: fmt.Sprintf("case filed again as CP_UTENTE %s (practice #%d) from %s", p.CPUtente, p.ID, j.in.File.Name)}); err != nil {
			return err
		}
		if err := j.st.Link(ctx, refiled.ID, j.in.File.ID, "input", line); err != nil {
			return err
		}
		if _, err := j.in.Store.ResolvePracticeKind(ctx, j.st.Tx(), "sii_refusal", refiled.ID,
			fmt.Sprintf("case filed again as CP_UTENTE %s from %s", p.CPUtente, j.in.File.Name)); err != nil {
			return err
		}
	}
	return j.linkPrevious(ctx, p, mc)
}

// hold keeps a case whose rows were refused or disagree from being filed with content
// different from what billing gave: no practice is created, and a practice of the same
// case not yet filed goes back to DRAFT with the reasons (its ready request cancelled).
// The findings (each row, each conflict, and the case) reach a person as exceptions.
func (j *morosiJob) hold(ctx context.Context, mc *flows.MorosiCase, existing archive.Practice, found bool) error {
	out := flows.DecideMorosi(mc, j.in.File.Name, j.today, j.params)
	j.held++
	j.refused++
	j.sink.Add(out.Refusals...)
	if !found {
		return nil
	}
	if !flows.StateUnfiled(existing.State) {
		return nil // filed already: this extract changes nothing of it, its findings say why
	}
	data, err := flows.ParseUscenteData(existing.Data)
	if err != nil {
		return j.unreadable(mc, existing, err)
	}
	data.Refusals = out.Refusals
	if len(data.Refusals) == 0 {
		// Every row of it was refused (their findings are the file's): the practice
		// still says why it left READY.
		f := flows.Finding{File: j.in.File.Name, Line: mc.FirstLine(), Field: flows.MorSwitch, Rule: flows.RuleCaseRows, Value: flows.CaseLabel(&mc.Case),
			Message: fmt.Sprintf("practice held, not filed: its rows in %s (%s %s) were refused; correct them and drop the whole practice again",
				j.in.File.Name, family.Plural(len(mc.Lines), "line", "lines"), flows.LinesText(mc.Lines))}
		data.Refusals = []flows.Finding{f}
		j.sink.Add(f)
	}
	data.Inputs = appendInput(data.Inputs, j.in.File.ID, mc.Lines)
	p := &existing
	p.Data = data.Marshal()
	if err := j.st.Save(ctx, p); err != nil {
		return err
	}
	if err := j.st.Link(ctx, p.ID, j.in.File.ID, "input", mc.FirstLine()); err != nil {
		return err
	}
	h := archive.HistoryEntry{Flow: config.KindUscenteMorosi, FileID: j.in.File.ID, Line: mc.FirstLine(), At: j.now,
		Note: fmt.Sprintf("held: rows of %s (lines %s) refused or in conflict, not filed until billing sends the practice again", j.in.File.Name, flows.LinesText(mc.Lines))}
	return j.u.settleReady(ctx, j.st, p, flows.StateDraft, flows.CMORResult{Credit: p.Credit, Estimate: p.Estimate, Previous: p.Previous, CMOR: p.CMOR}, nil, h)
}

// linkPrevious links a request that carries a previous uncollected CMOR to our
// earlier entrante practice for that customer, both ways (brief §5.3).
func (j *morosiJob) linkPrevious(ctx context.Context, p *archive.Practice, mc *flows.MorosiCase) error {
	if p.Previous <= 0 && mc.Case.PreviousCPGestore == "" || p.LinkedID != 0 {
		return nil
	}
	if err := j.st.Flush(ctx); err != nil { // LinkPreviousCMOR runs on the transaction itself
		return err
	}
	return entrante.LinkPreviousCMOR(ctx, j.u.h, j.st.Tx(), p)
}

// settleReady moves a practice not yet filed to state (READY, WAITING_WINDOW or DRAFT)
// and keeps its one ready REQ request in step: created when READY, cancelled otherwise.
func (u *uscente) settleReady(ctx context.Context, st *archive.PracticeStmts, p *archive.Practice, state string, r flows.CMORResult, payload *archive.RequestPayload, h archive.HistoryEntry) error {
	reqs, err := u.h.Archive().Requests(ctx, st.Tx(), p.ID, FlowREQ, "ready", 0)
	if err != nil {
		return err
	}
	if state != p.State {
		if h.Note == "" {
			h.Note = fmt.Sprintf("CMOR %s", r.CMOR)
		}
		if err := st.Transition(ctx, p, state, "", h); err != nil {
			return err
		}
	} else {
		h.From, h.To, h.PracticeID = p.State, p.State, p.ID
		if h.Note == "" {
			h.Note = fmt.Sprintf("case updated: CMOR %s (credit %s, estimate %s)", r.CMOR, r.Credit, r.Estimate)
		}
		if err := st.History(ctx, h); err != nil {
			return err
		}
	}
	switch {
	case state == flows.StateReady && len(reqs) == 0:
		return st.CreateRequest(ctx, &archive.Request{PracticeID: p.ID, Flow: FlowREQ, CPUtente: p.CPUtente, Data: reqSnapshot(r), Payload: payload})
	case state == flows.StateReady:
		if err := st.SetRequest(ctx, reqs[0].ID, "ready", reqSnapshot(r)); err != nil {
			return err
		}
		return st.SetRequestPayload(ctx, reqs[0].ID, payload)
	default:
		for _, rq := range reqs {
			if err := st.SetRequest(ctx, rq.ID, "cancelled", rq.Data); err != nil {
				return err
			}
		}
		if len(reqs) > 0 {
			// A build that held the request (build_line_changed) has nothing left to send.
			if _, err := u.h.Archive().ResolvePracticeKind(ctx, st.Tx(), "build_line_changed", p.ID, "request cancelled: practice "+state); err != nil {
				return err
			}
		}
	}
	return nil
}

// reqPayload is what the practice's REQ request becomes in SI1.0050, without the
// header fields: computed once here, where the case is at hand, instead of decoding
// the case again for every request the build writes. Its values are positional in
// today's REQ layout; nil when the REQ flow refuses them (the build then refuses the
// request from the case, naming the field).
//
// What is stored of the values is their hash (form 4): it is computed here, and the
// values dropped, so that the writing goroutine has only to store it when the reader
// prepared the case (preparedCase).
func (u *uscente) reqPayload(data *flows.UscenteData) *archive.RequestPayload {
	f := u.h.Catalog().Flow(FlowREQ)
	if f == nil {
		return nil
	}
	recs, err := flows.ReqRecords(f, flows.ReqHeader{}, data.Case, data.Audit)
	if err != nil {
		return nil
	}
	values := make([][]string, len(recs))
	for i, r := range recs {
		values[i] = r.Values
	}
	pl := &archive.RequestPayload{Layout: f.Layout().Signature(), Hash: archive.PayloadHash(values)}
	for _, in := range data.Inputs {
		pl.Inputs = append(pl.Inputs, in.FileID)
	}
	return pl
}

func setAmounts(p *archive.Practice, r flows.CMORResult) {
	p.Credit, p.Estimate, p.Previous, p.CMOR = r.Credit, r.Estimate, r.Previous, r.CMOR
}

func reqSnapshot(r flows.CMORResult) map[string]string {
	return map[string]string{"IMPORTO_CREDITO": r.Credit.String(), "IMPORTO_INDENNIZZO": r.CMOR.String(), "STIMA_SPESA_4_MESI": r.Estimate.String()}
}

func appendInput(refs []flows.InputRef, fileID int64, lines []int) []flows.InputRef {
	for i := range refs {
		if refs[i].FileID == fileID {
			refs[i].Lines = append(refs[i].Lines, lines...)
			return refs
		}
	}
	return append(refs, flows.InputRef{FileID: fileID, Lines: append([]int(nil), lines...)})
}

// newCode allocates a CP_UTENTE inside the job's transaction.
func (j *morosiJob) newCode(ctx context.Context, sector string) (string, error) {
	return family.NewCode(ctx, j.st, j.tmpl, j.in.Config.Company.PIVA, sector, j.today.Y)
}
