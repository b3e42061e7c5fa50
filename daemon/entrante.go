package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/flows"
)

// The entrante side (docs/entrante.md): the SII's acceptance notices become entrante
// practices and a "CMOR to charge" export for billing; billing's suspensions become
// SUSP_REQ / SUSP_REVOKE requests while the term allows; billing's CMOR invoices and
// collections are accumulated and reported (REND) per month of arrival; annulments and
// amount updates become credit/debit note lines for billing.

func init() {
	flowSetups = append(flowSetups, setupEntrante)
	for _, key := range []string{"ANN_NOTIF", "UPD_NOTIF", "ANN_AMM"} {
		siiRowHooks[key] = entranteRowHook
	}
}

const roleEntrante = "entrante"

// Flow keys of the entrante side.
const (
	flowNOTIFENTR  = "NOTIF_ENTR"
	flowSUSPREQ    = "SUSP_REQ"
	flowSUSPREVOKE = "SUSP_REVOKE"
	flowSUSPAMM    = "SUSP_AMM"
	flowSUSPESITO  = "SUSP_ESITO"
	flowREND       = "REND"
	flowRENDAMM    = "REND_AMM"
)

// Billing exports.
const (
	exportCMORToCharge = "cmor_to_charge"
	exportCreditNotes  = "credit_notes"
)

// exportColumn is one column of a billing export: our field and its default header.
type exportColumn struct{ field, header string }

// exportColumns are the exports' columns in order, with Italian default headers;
// [outbound.exports.NAME] renames them (our field → billing header, "-" drops one).
var exportColumns = map[string][]exportColumn{
	exportCMORToCharge: {
		{"cp_gestore", "Codice pratica SII"}, {"settore", "Settore"}, {"pod", "POD"}, {"pdr", "PDR"},
		{"cf_cliente", "Codice fiscale cliente"}, {"piva_cliente", "Partita IVA cliente"},
		{"importo_cmor", "Importo CMOR"}, {"cmor_precedente_non_riscosso", "CMOR precedente non riscosso"},
		{"data_notifica", "Data notifica"}, {"termine_sospensione", "Termine sospensione"},
		{"file_origine", "File SII"}, {"riga_origine", "Riga"},
	},
	exportCreditNotes: {
		{"tipo_documento", "Tipo documento"}, {"causale", "Causale"}, {"cp_gestore", "Codice pratica SII"},
		{"settore", "Settore"}, {"pod", "POD"}, {"pdr", "PDR"}, {"cf_cliente", "Codice fiscale cliente"},
		{"piva_cliente", "Partita IVA cliente"}, {"importo_precedente", "Importo precedente"},
		{"importo_nuovo", "Importo nuovo"}, {"importo", "Importo nota"}, {"gia_addebitato", "Già addebitato"},
		{"fatture_cmor", "Fatture CMOR"}, {"data_evento", "Data evento"}, {"file_origine", "File SII"},
		{"riga_origine", "Riga"},
	},
}

// exportLayout returns the columns of an export after the configured renames, or an
// error naming an unknown field.
func exportLayout(cfg *config.Config, name string) ([]exportColumn, error) {
	cols := append([]exportColumn(nil), exportColumns[name]...)
	m := cfg.Outbound.Exports[name]
	for field, header := range m {
		found := false
		for i := range cols {
			if strings.EqualFold(cols[i].field, strings.TrimSpace(field)) {
				cols[i].header, found = header, true
			}
		}
		if !found {
			known := make([]string, 0, len(cols))
			for _, c := range exportColumns[name] {
				known = append(known, c.field)
			}
			return nil, fmt.Errorf("outbound.exports.%s: unknown field %q; the fields are %s", name, field, strings.Join(known, ", "))
		}
	}
	out := cols[:0]
	for _, c := range cols {
		if h := strings.TrimSpace(c.header); h != "" && h != "-" {
			out = append(out, c)
		}
	}
	return out, nil
}

// encodeExport writes an export as CSV: ';', CR+LF, UTF-8, a header row, fields
// quoted only when they need it.
func encodeExport(cols []exportColumn, rows []map[string]string) []byte {
	var b bytes.Buffer
	quote := func(s string) string {
		if strings.ContainsAny(s, ";\"\r\n") {
			return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
		}
		return s
	}
	line := func(vals []string) {
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteString(quote(v))
		}
		b.WriteString("\r\n")
	}
	hdr := make([]string, len(cols))
	for i, c := range cols {
		hdr[i] = c.header
	}
	line(hdr)
	for _, r := range rows {
		vals := make([]string, len(cols))
		for i, c := range cols {
			vals[i] = r[c.field]
		}
		line(vals)
	}
	return b.Bytes()
}

func setupEntrante(d *Daemon) error {
	cfg := d.Config()
	for _, name := range config.ExportNames {
		if _, ok := exportColumns[name]; !ok {
			continue
		}
		if _, err := exportLayout(cfg, name); err != nil {
			return err
		}
	}
	e := &entrante{d: d}
	d.Handle(flowNOTIFENTR, HandlerFunc(e.handleNotice))
	for _, key := range []string{flowSUSPAMM, flowSUSPESITO, flowRENDAMM} {
		key := key
		d.Handle(key, HandlerFunc(func(ctx context.Context, in *Input) (Result, error) { return e.handleAnswer(ctx, in, key) }))
	}
	d.Handle(config.KindEntranteSospensioni, e.guard(e.handleSospensioni))
	d.Handle(config.KindEntranteFatturato, e.guard(e.handleFatturato))
	d.Handle(kindEntranteAnnullamenti, e.guard(e.handleAnnullamenti))
	for _, key := range []string{flowSUSPREQ, flowSUSPREVOKE, flowANNREQ} {
		d.AddBuilder(&entranteBuilder{e: e, flow: key})
	}
	d.AddBuilder(&rendBuilder{e: e})
	d.AddBuilder(&notesBuilder{e: e})
	return nil
}

type entrante struct{ d *Daemon }

// notEntrante is the reason given for an entrante input or flow when the company does
// not hold the role.
func notEntrante(in *Input, what string) string {
	return fmt.Sprintf("company is not configured as entrante: %s is for the entrante role (company.roles = %v); refused",
		what, in.Config.Company.Roles)
}

// guard refuses entrante inputs when the company does not hold the entrante role.
func (e *entrante) guard(h HandlerFunc) Handler {
	return HandlerFunc(func(ctx context.Context, in *Input) (Result, error) {
		if !in.Config.Company.HasRole(roleEntrante) {
			return finishOnly(ctx, in, Result{Rejected: true, Reason: notEntrante(in, "input "+in.File.Kind)})
		}
		return h(ctx, in)
	})
}

// errRejectFile rolls back a file's effects when the folder refuses files with bad rows.
var errRejectFile = errors.New("reject file")

// entranteJob is one entrante file being processed inside its transaction.
type entranteJob struct {
	e     *entrante
	in    *Input
	f     *flows.Flow
	tx    *sql.Tx
	st    *archive.PracticeStmts
	tmpl  *flows.CodeTemplate
	sink  *findingSink
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
	return newCode(ctx, j.st, j.tmpl, j.in.Config.Company.PIVA, sector, j.today.Y)
}

// run reads the input in one transaction and calls row for each record without
// errors; rows' findings get the file and line.
func (e *entrante) run(ctx context.Context, in *Input, f *flows.Flow, opt flows.ReadOptions, format string, row func(ctx context.Context, j *entranteJob, rec flows.Record) ([]flows.Finding, error)) (Result, error) {
	tmpl, err := flows.ParseCodeTemplate(in.Config.PracticeCode.Template)
	if err != nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: err.Error()})
	}
	var rc io.ReadCloser
	if f.IsInput() {
		rc, err = openInput(in)
	} else {
		rc, err = in.Open()
	}
	if err != nil {
		return Result{}, err
	}
	defer rc.Close()
	rd, err := flows.NewReader(rc, f, format, opt)
	if err != nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: err.Error()})
	}
	if c, ok := rd.(io.Closer); ok {
		defer c.Close() // a workbook's temporary files
	}
	j := &entranteJob{e: e, in: in, f: f, tmpl: tmpl, sink: &findingSink{file: in.File.Name}, today: flows.Today(in.Now)}
	reject := rejectFile(in)
	var res Result
	err = in.Store.Write(ctx, func(tx *sql.Tx) error {
		st, err := in.Store.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		defer st.Close(ctx)
		st.SetClock(func() time.Time { return in.Now })
		j.tx, j.st = tx, st
		rows, headerBad := 0, false
		for {
			rec, fs, err := rd.Next()
			if err == io.EOF {
				// A file without rows still has its header's findings (not text, no
				// header row): they refuse it, never an empty success.
				j.sink.add(fs...)
				headerBad = headerBad || flows.HasErrors(fs)
				break
			}
			if err != nil {
				var fd flows.Finding
				if errors.As(err, &fd) {
					j.sink.add(fd)
					headerBad = true
					break
				}
				return err
			}
			j.sink.add(fs...)
			for _, fd := range fs {
				if fd.Line <= 1 && !fd.IsWarning() && format == "csv" {
					headerBad = true
				}
			}
			if headerBad {
				break
			}
			rows++
			if flows.HasErrors(fs) {
				continue
			}
			more, err := row(ctx, j, rec)
			if err != nil {
				return err
			}
			for i := range more {
				if more[i].Line == 0 {
					more[i].Line = rec.Line
				}
			}
			j.sink.add(more...)
		}
		res = Result{Findings: j.sink.result(), Meta: map[string]string{"rows": fmt.Sprint(rows), "practices_moved": fmt.Sprint(j.moved)}}
		if headerBad {
			res.Rejected = true
			res.Reason = fmt.Sprintf("the file does not have the layout of %s: see the findings; it is kept in the archive", f.ID())
			if why := flows.NotTextReason(res.Findings); why != "" {
				res.Reason = why
			}
			return errRejectFile
		}
		if reject && j.sink.errors > 0 {
			res.Rejected = true
			res.Reason = fmt.Sprintf("%d refused rows and the folder refuses files with bad rows (on_bad_rows = \"reject_file\"): nothing of the file was applied", j.sink.errors)
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
		return finishOnly(ctx, in, res)
	}
	return res, err
}

// ---- NOTIF_ENTR ----

// handleNotice creates one entrante practice per acceptance notice and hands the CMOR
// to billing in one "CMOR to charge" export for the file.
func (e *entrante) handleNotice(ctx context.Context, in *Input) (Result, error) {
	if !in.Config.Company.HasRole(roleEntrante) {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: notEntrante(in, "the acceptance notice NOTIF_ENTR")})
	}
	f := in.Catalog.Flow(flowNOTIFENTR)
	if f == nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: "the flow catalog has no flow " + flowNOTIFENTR})
	}
	cols, err := exportLayout(in.Config, exportCMORToCharge)
	if err != nil {
		return Result{}, err
	}
	format, err := sniffFormat(in)
	if err != nil {
		return Result{}, err
	}
	exportName := fmt.Sprintf("CMOR_DA_ADDEBITARE_%s_%06d.csv", in.Now.In(flows.Rome).Format("20060102"), in.File.ID)
	var rows []map[string]string
	var created []*archive.Practice
	start := flows.EntranteNotified
	if t := flows.TransitionOf(f); t != nil && t.To != "" {
		start = t.To
	}
	res, err := e.run(ctx, in, f, flows.ReadOptions{FileName: in.File.Name}, format, func(ctx context.Context, j *entranteJob, rec flows.Record) ([]flows.Finding, error) {
		if fs := checkAddressee(in, rec); fs != nil {
			return fs, nil
		}
		cpg := rec.Get(flows.EntCPGestore)
		key := flows.EntranteCaseKey(cpg)
		if old, err := in.Store.PracticeByKey(ctx, j.tx, key); err == nil {
			return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntDuplicate, Value: cpg,
				Message: fmt.Sprintf("a notice for %s was already received (practice #%d, %s): no second practice", cpg, old.ID, old.State)}}, nil
		} else if !errors.Is(err, archive.ErrNotFound) {
			return nil, err
		}
		data := flows.EntranteData{NoticeDate: rec.Date(flows.EntNoticeDate).ISO(), PreviousFlag: rec.Flag(flows.EntPrevFlag),
			NoticeFile: in.File.ID, NoticeLine: rec.Line}
		p := &archive.Practice{CaseKey: key, Role: roleEntrante, Sector: rec.Get(flows.EntSector), CompanyPIVA: in.Config.Company.PIVA,
			CPGestore: cpg, Point: firstNonEmptyStr(rec.Get(flows.EntPOD), rec.Get(flows.EntPDR)),
			CustomerID: firstNonEmptyStr(rec.Get(flows.EntCF), rec.Get(flows.EntPIVA)), CMOR: rec.Amount(flows.EntCMOR),
			SuspensionTerm: rec.Date(flows.EntSuspTerm), AnswerDate: j.today, State: start, Data: data.Marshal()}
		prev := "N"
		if data.PreviousFlag {
			prev = "S"
		}
		h := j.history(p, rec.Line, fmt.Sprintf("acceptance notice: CMOR %s, suspension term %s, previous uncollected CMOR included: %s",
			p.CMOR, p.SuspensionTerm, prev))
		if err := in.Store.CreatePractice(ctx, j.tx, p, h); err != nil {
			return nil, err
		}
		if _, err := j.move(ctx, p, flows.EntranteToCharge, rec.Line, "CMOR "+p.CMOR.String()+" handed to billing in "+exportName); err != nil {
			return nil, err
		}
		created = append(created, p)
		rows = append(rows, exportRow(p, in.File.Name, rec.Line, map[string]string{
			"importo_cmor": p.CMOR.String(), "cmor_precedente_non_riscosso": prev,
			"data_notifica": rec.Get(flows.EntNoticeDate), "termine_sospensione": rec.Get(flows.EntSuspTerm)}))
		if len(rows) == 1 {
			// The export is written with the file's other effects, at its end.
			j.finish = func(ctx context.Context) error {
				_, err := e.publishExport(ctx, j.tx, exportCMORToCharge, exportName, cols, rows, created, []int64{in.File.ID})
				return err
			}
		}
		return nil, nil
	})
	return res, err
}

// exportRow fills the practice columns of an export row.
func exportRow(p *archive.Practice, file string, line int, more map[string]string) map[string]string {
	r := map[string]string{"cp_gestore": p.CPGestore, "settore": p.Sector, "file_origine": file, "riga_origine": fmt.Sprint(line)}
	if strings.HasPrefix(p.Point, "IT") || p.Sector == "E" {
		r["pod"] = p.Point
	} else {
		r["pdr"] = p.Point
	}
	if len(p.CustomerID) == 16 {
		r["cf_cliente"] = p.CustomerID
	} else {
		r["piva_cliente"] = p.CustomerID
	}
	for k, v := range more {
		r[k] = v
	}
	return r
}

// publishExport archives a billing export with its provenance, links it to the
// practices and queues it to the billing folder, all in tx.
func (e *entrante) publishExport(ctx context.Context, tx *sql.Tx, export, name string, cols []exportColumn, rows []map[string]string, ps []*archive.Practice, inputs []int64) (archive.File, error) {
	d := e.d
	file, err := d.ArchiveBuilt(ctx, tx, Built{Name: name, Kind: export, Content: encodeExport(cols, rows), Inputs: inputs,
		Meta: map[string]string{"rows": fmt.Sprint(len(rows))}}, "export")
	if err != nil {
		return file, err
	}
	seen := map[int64]bool{}
	for _, p := range ps {
		if seen[p.ID] {
			continue
		}
		seen[p.ID] = true
		if err := d.Store.LinkPracticeFile(ctx, tx, p.ID, file.ID, "export", 0); err != nil {
			return file, err
		}
	}
	if d.Config().Outbound.BillingDir == "" {
		_, _, err := d.Store.RaiseException(ctx, tx, archive.Exception{Fingerprint: "export_unpublished|" + name, Kind: "export_unpublished",
			Severity: archive.SevHigh, Owner: "sysadmin", FileID: file.ID, Subject: export, LastSeen: d.now(),
			Message: fmt.Sprintf("%s (%s) is archived (file #%d) but outbound.billing_dir is not configured: billing does not get it", name, export, file.ID),
			Action:  "Set outbound.billing_dir; meanwhile `cmord archive cat` gives the file."})
		return file, err
	}
	return file, d.QueueToBilling(ctx, tx, file)
}

// checkAddressee refuses a record addressed to another company.
func checkAddressee(in *Input, rec flows.Record) []flows.Finding {
	v := rec.Get(flows.EntPIVAUtente)
	if v == "" || v == in.Config.Company.PIVA || (in.Config.Company.UDDPIVA != "" && v == in.Config.Company.UDDPIVA) {
		return nil
	}
	return []flows.Finding{{Field: flows.EntPIVAUtente, Rule: flows.RuleEntPIVA, Value: v,
		Message: fmt.Sprintf("addressed to another company (ours is %s)", in.Config.Company.PIVA)}}
}

// ---- entrante.sospensioni ----

// livePractices keeps the practices the SII still considers open.
func livePractices(ps []archive.Practice) []archive.Practice {
	out := ps[:0]
	for _, p := range ps {
		switch p.State {
		case flows.EntranteAnnulled, flows.EntranteClosed, "REFUNDED":
			continue
		}
		out = append(out, p)
	}
	return out
}

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
		if point := firstNonEmptyStr(rec.Get(flows.EntPOD), rec.Get(flows.EntPDR)); point != "" && point != p.Point {
			return p, []flows.Finding{{Field: flows.EntPOD, Rule: flows.RuleEntNoPractice, Value: point,
				Message: fmt.Sprintf("the indemnity %s concerns point %s, not this one", cpg, p.Point)}}, nil
		}
		return p, nil, nil
	}
	point := firstNonEmptyStr(rec.Get(flows.EntPOD), rec.Get(flows.EntPDR))
	customer := firstNonEmptyStr(rec.Get(flows.EntCF), rec.Get(flows.EntPIVA))
	ps, err := j.in.Store.EntrantePracticesByPoint(ctx, j.tx, point, customer)
	if err != nil {
		return archive.Practice{}, nil, err
	}
	ps = livePractices(ps)
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

// flowAllows reports whether the catalog lets an outbound flow move a practice now in
// state `from` (the flow's transition From list and the states' allowed moves).
func flowAllows(cat *flows.Catalog, key, from string) (to string, ok bool) {
	f := cat.Flow(key)
	if f == nil {
		return "", false
	}
	t := flows.TransitionOf(f)
	if t == nil || t.To == "" {
		return from, true
	}
	if len(t.From) > 0 && !containsState(t.From, from) {
		return t.To, false
	}
	return t.To, cat.CanTransition(from, t.To)
}

func stateFinding(cat *flows.Catalog, key, field, rule, state string) flows.Finding {
	f := cat.Flow(key)
	from := ""
	if f != nil && flows.TransitionOf(f) != nil {
		from = strings.Join(flows.TransitionOf(f).From, ", ")
	}
	return flows.Finding{Field: field, Rule: rule, Value: state,
		Message: fmt.Sprintf("the catalog allows %s only for practices in %s; this one is %s", key, from, state)}
}

// handleSospensioni turns suspension rows into SUSP_REQ and revocation rows (or rows
// saying the customer paid or supply resumed) into SUSP_REVOKE.
func (e *entrante) handleSospensioni(ctx context.Context, in *Input) (Result, error) {
	f := in.Catalog.Input(config.KindEntranteSospensioni)
	if f == nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: "the flow catalog has no input kind " + config.KindEntranteSospensioni})
	}
	opt, err := readOptions(in)
	if err != nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: err.Error()})
	}
	cal := e.d.Calendar()
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
			if _, ok := flowAllows(in.Catalog, flowSUSPREQ, p.State); !ok {
				fs = append(fs, stateFinding(in.Catalog, flowSUSPREQ, flows.EntCPGestore, flows.RuleSuspState, p.State))
			}
		}
		if len(fs) == 0 {
			if rs, err := j.pending(ctx, &p, flowSUSPREQ); err != nil {
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
		if err := in.Store.CreateRequest(ctx, j.tx, &archive.Request{PracticeID: p.ID, Flow: flowSUSPREQ, CPUtente: code, Data: data}); err != nil {
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
	ready, err := j.pending(ctx, p, flowSUSPREQ)
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
		if _, ok := flowAllows(j.in.Catalog, flowSUSPREVOKE, p.State); !ok {
			fs = append(fs, stateFinding(j.in.Catalog, flowSUSPREVOKE, flows.EntCPGestore, flows.RuleRevokeState, p.State))
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
func (e *entrante) handleFatturato(ctx context.Context, in *Input) (Result, error) {
	f := in.Catalog.Input(config.KindEntranteFatturato)
	if f == nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: "the flow catalog has no input kind " + config.KindEntranteFatturato})
	}
	opt, err := readOptions(in)
	if err != nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: err.Error()})
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

// ---- SII answers to the entrante: SUSP_AMM, SUSP_ESITO, REND_AMM ----

func (e *entrante) handleAnswer(ctx context.Context, in *Input, key string) (Result, error) {
	if !in.Config.Company.HasRole(roleEntrante) {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: notEntrante(in, key)})
	}
	f := in.Catalog.Flow(key)
	if f == nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: "the flow catalog has no flow " + key})
	}
	format, err := sniffFormat(in)
	if err != nil {
		return Result{}, err
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
	state := "admitted"
	switch {
	case f.Key == flowSUSPESITO && dec.Refusal:
		state = "rejected"
	case f.Key == flowSUSPESITO:
		state = "accepted"
	case dec.Refusal:
		state = "inadmissible"
	}
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
		to := dec.To
		// A refused suspension returns the practice where it was (it may not have
		// been billed yet), not to the catalog's generic CHARGED.
		if dec.Refusal && p.State == flows.EntranteSuspRequested {
			if data, err := flows.ParseEntranteData(p.Data); err == nil && data.StateBeforeSusp != "" &&
				in.Catalog.CanTransition(p.State, data.StateBeforeSusp) {
				to = data.StateBeforeSusp
			}
		}
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

// ---- ANN_NOTIF, UPD_NOTIF, ANN_AMM on an entrante practice (called from sii.go) ----

// entranteRowHook adapts entranteNotice to sii.go's row hook.
func entranteRowHook(ctx context.Context, tx *sql.Tx, in *Input, f *flows.Flow, rec flows.Record, p archive.Practice) ([]flows.Finding, error) {
	return entranteApply(ctx, tx, in, f, rec, &p)
}

// entranteNotice applies one record of a shared SII flow (ANN_NOTIF, UPD_NOTIF,
// ANN_AMM) to an entrante practice, inside the file's transaction: the practice moves
// (ANNULLED, AMOUNT_UPDATED) and the credit/debit note line billing must act on is
// queued for the next credit_notes export.
func (d *Daemon) entranteNotice(ctx context.Context, tx *sql.Tx, in *Input, p *archive.Practice, flowKey string, values map[string]string, line int) ([]flows.Finding, error) {
	f := in.Catalog.Flow(flowKey)
	if f == nil {
		return nil, fmt.Errorf("the flow catalog has no flow %s", flowKey)
	}
	rec := flows.NewRecord(f)
	rec.Line = line
	for k, v := range values {
		if err := rec.Set(k, v); err != nil {
			return nil, err
		}
	}
	return entranteApply(ctx, tx, in, f, rec, p)
}

func entranteApply(ctx context.Context, tx *sql.Tx, in *Input, f *flows.Flow, rec flows.Record, p *archive.Practice) ([]flows.Finding, error) {
	if !in.Config.Company.HasRole(roleEntrante) {
		return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntRole, Value: p.CPGestore,
			Message: "company is not configured as entrante: the entrante practice is left alone"}}, nil
	}
	j := &entranteJob{in: in, f: f, tx: tx, sink: &findingSink{file: in.File.Name}, today: flows.Today(in.Now)}
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
	for _, flow := range []string{flowSUSPREQ, flowSUSPREVOKE, flowANNREQ} {
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
	rs, err := j.in.Store.Requests(ctx, j.tx, p.ID, flowANNREQ, "sent", 0)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := j.in.Store.AnswerRequest(ctx, j.tx, r.ID, "accepted", "", "", j.in.Now); err != nil {
			return err
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

// ---- ANN_REQ from the entrante side ----

// RequestEntranteAnnulment records an ANN_REQ for an entrante practice (brief §4.3:
// AN-07, the customer on the point is not the debtor, or AN-99 with a motivation),
// inside tx; the ANN_REQ builder files it. An operator list or the CLI calls it.
func (d *Daemon) RequestEntranteAnnulment(ctx context.Context, tx *sql.Tx, p *archive.Practice, cause, motivation string, event flows.Date, fileID int64, line int) ([]flows.Finding, error) {
	cfg := d.Config()
	if !cfg.Company.HasRole(roleEntrante) {
		return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntRole, Value: p.CPGestore, Message: "company is not configured as entrante"}}, nil
	}
	if p.Role != roleEntrante {
		return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntRole, Value: p.CPGestore, Message: "not an entrante practice"}}, nil
	}
	cause = strings.ToUpper(strings.TrimSpace(cause))
	var fs []flows.Finding
	if c := d.Catalog().Causes["ANNULLAMENTO"]; c != nil {
		if k := c.Lookup(cause); k == nil || (k.Who != "entrante" && k.Who != "any") {
			fs = append(fs, flows.Finding{Field: flows.EntAnnCause, Rule: "ANN-CAUSE", Value: cause,
				Message: "the entrante may request an annulment only with an entrante cause (AN-07) or AN-99 with a motivation"})
		}
	}
	if cause == "AN-99" && strings.TrimSpace(motivation) == "" {
		fs = append(fs, flows.Finding{Field: flows.EntMotivation, Rule: "ANN-MOTIVATION", Message: "AN-99 needs a motivation"})
	}
	switch p.State {
	case flows.EntranteAnnulled, flows.EntranteClosed, "REFUNDED":
		fs = append(fs, flows.Finding{Field: flows.EntCPGestore, Rule: "ANN-STATE", Value: p.State, Message: "the practice is " + p.State + ": nothing to annul"})
	}
	if rs, err := d.Store.Requests(ctx, tx, p.ID, flowANNREQ, "ready", 0); err != nil {
		return nil, err
	} else if len(rs) > 0 {
		fs = append(fs, flows.Finding{Field: flows.EntCPGestore, Rule: "ANN-DUPLICATE", Value: rs[0].CPUtente, Message: "an annulment request is already waiting to be sent"})
	}
	if len(fs) > 0 {
		return fs, nil
	}
	if event.IsZero() {
		event = flows.Today(d.now())
	}
	tmpl, err := flows.ParseCodeTemplate(cfg.PracticeCode.Template)
	if err != nil {
		return nil, err
	}
	st, err := d.Store.PreparePractices(ctx, tx)
	if err != nil {
		return nil, err
	}
	defer st.Close(ctx)
	code, err := newCode(ctx, st, tmpl, cfg.Company.PIVA, p.Sector, flows.Today(d.now()).Y)
	if err != nil {
		return nil, err
	}
	if err := st.Close(ctx); err != nil {
		return nil, err
	}
	data := map[string]string{flows.EntAnnCause: cause, flows.EntEventDate: event.String()}
	if motivation != "" {
		data[flows.EntMotivation] = motivation
	}
	if err := d.Store.CreateRequest(ctx, tx, &archive.Request{PracticeID: p.ID, Flow: flowANNREQ, CPUtente: code, Data: data}); err != nil {
		return nil, err
	}
	h := archive.HistoryEntry{Flow: flowANNREQ, FileID: fileID, Line: line, At: d.now(), CauseCode: cause,
		Note: fmt.Sprintf("annulment requested by the entrante (ANN_REQ %s, cause %s): %s", code, cause, motivation)}
	if err := d.Store.Note(ctx, tx, p, h); err != nil {
		return nil, err
	}
	if fileID != 0 {
		return nil, d.Store.LinkPracticeFile(ctx, tx, p.ID, fileID, "input", line)
	}
	return nil, nil
}

// kindEntranteAnnullamenti is the operator's list of entrante annulments (CP_GESTORE,
// cause, motivation, event date). config has no such folder kind yet: the handler is
// ready for when it does, and reads the catalog's input of that name or, failing it,
// the layout of uscente.annullamenti.
const kindEntranteAnnullamenti = "entrante.annullamenti"

// handleAnnullamenti files an ANN_REQ for each listed entrante practice.
func (e *entrante) handleAnnullamenti(ctx context.Context, in *Input) (Result, error) {
	f := in.Catalog.Input(kindEntranteAnnullamenti)
	if f == nil {
		f = in.Catalog.Input(config.KindUscenteAnnullamenti)
	}
	if f == nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: "the flow catalog has no input kind " + kindEntranteAnnullamenti})
	}
	opt, err := readOptions(in)
	if err != nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: err.Error()})
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
			return []flows.Finding{{Field: flows.EntCPGestore, Rule: flows.RuleEntNoPractice, Value: firstNonEmptyStr(rec.Get(flows.EntCPGestore), rec.Get(flows.EntCPUtente)),
				Message: "no entrante practice has this code"}}, nil
		}
		if err != nil {
			return nil, err
		}
		why := rec.Get(flows.EntMotivation)
		if by := rec.Get("RICHIESTO_DA"); by != "" {
			why = strings.TrimSpace(why + " (requested by " + by + ")")
		}
		return e.d.RequestEntranteAnnulment(ctx, j.tx, &p, rec.Get(flows.EntAnnCause), why, rec.Date(flows.EntEventDate), in.File.ID, rec.Line)
	})
}

// ---- linking (brief §5.3) ----

// LinkPreviousCMOR links an uscente practice that adds a previous uncollected CMOR to
// the earlier entrante practice that CMOR came from, both ways (LinkedID on both, a
// history note on each naming the other), inside tx. The entrante practice is the one
// of CP_GESTORE_CMOR_PRECEDENTE when the request gives it, else the customer's only
// entrante practice not fully collected (or the one whose uncollected amount equals
// the previous CMOR). Nothing to link, or no unambiguous match, is not an error: an
// exception tells a person.
func (d *Daemon) LinkPreviousCMOR(ctx context.Context, tx *sql.Tx, uscente *archive.Practice) error {
	if uscente.Role != "uscente" {
		return fmt.Errorf("link previous CMOR: practice #%d is %s, not uscente", uscente.ID, uscente.Role)
	}
	data, err := flows.ParseUscenteData(uscente.Data)
	if err != nil {
		return err
	}
	prevCP := strings.TrimSpace(data.Case.PreviousCPGestore)
	if uscente.Previous == 0 && prevCP == "" {
		return nil
	}
	raise := func(kind, msg string) error {
		_, _, err := d.Store.RaiseException(ctx, tx, archive.Exception{Fingerprint: fmt.Sprintf("%s|%d", kind, uscente.ID), Kind: kind,
			Severity: archive.SevNormal, Owner: "compliance", PracticeID: uscente.ID, Subject: uscente.CPUtente, LastSeen: d.now(), Message: msg,
			Action: "Check the previous CMOR of the request against the entrante practices (`cmord practices --role entrante`)."})
		return err
	}
	var ent archive.Practice
	if prevCP != "" {
		ent, err = d.Store.PracticeByKey(ctx, tx, flows.EntranteCaseKey(prevCP))
		if errors.Is(err, archive.ErrNotFound) {
			return raise("previous_cmor_unknown", fmt.Sprintf("practice %s adds a previous CMOR of %s from %s, which is no entrante practice of ours", uscente.CPUtente, uscente.Previous, prevCP))
		}
		if err != nil {
			return err
		}
		if ent.CustomerID != uscente.CustomerID {
			return raise("previous_cmor_mismatch", fmt.Sprintf("practice %s adds the previous CMOR of %s, which concerns another customer", uscente.CPUtente, prevCP))
		}
		if ent.Collected >= ent.CMOR && ent.CMOR > 0 {
			return raise("previous_cmor_collected", fmt.Sprintf("practice %s adds the previous CMOR of %s, but we collected it in full (%s)", uscente.CPUtente, prevCP, ent.Collected))
		}
	} else {
		cands, err := d.Store.UncollectedEntrante(ctx, tx, uscente.CustomerID)
		if err != nil {
			return err
		}
		if len(cands) > 1 {
			var exact []archive.Practice
			for _, c := range cands {
				if c.CMOR-c.Collected == uscente.Previous {
					exact = append(exact, c)
				}
			}
			cands = exact
		}
		switch len(cands) {
		case 0:
			return raise("previous_cmor_unknown", fmt.Sprintf("practice %s adds a previous CMOR of %s, but the customer has no uncollected entrante practice of ours", uscente.CPUtente, uscente.Previous))
		case 1:
			ent = cands[0]
		default:
			return raise("previous_cmor_ambiguous", fmt.Sprintf("practice %s adds a previous CMOR of %s, and several entrante practices of the customer match: give CP_GESTORE_CMOR_PRECEDENTE", uscente.CPUtente, uscente.Previous))
		}
	}
	if uscente.LinkedID == ent.ID && ent.LinkedID == uscente.ID {
		return nil
	}
	uscente.LinkedID, ent.LinkedID = ent.ID, uscente.ID
	ed, err := flows.ParseEntranteData(ent.Data)
	if err != nil {
		return err
	}
	ed.LinkedUscente = uscente.CPUtente
	ent.Data = ed.Marshal()
	if err := d.Store.SavePractice(ctx, tx, uscente); err != nil {
		return err
	}
	if err := d.Store.SavePractice(ctx, tx, &ent); err != nil {
		return err
	}
	uncollected := ent.CMOR - ent.Collected
	if err := d.Store.Note(ctx, tx, uscente, archive.HistoryEntry{Flow: "LINK", At: d.now(),
		Note: fmt.Sprintf("linked to entrante practice %s (#%d): its uncollected CMOR %s is the previous CMOR %s of this request", ent.CPGestore, ent.ID, uncollected, uscente.Previous)}); err != nil {
		return err
	}
	return d.Store.Note(ctx, tx, &ent, archive.HistoryEntry{Flow: "LINK", At: d.now(),
		Note: fmt.Sprintf("linked to uscente practice %s (#%d), which adds this uncollected CMOR (%s) as its previous CMOR", uscente.CPUtente, uscente.ID, uncollected)})
}

// ---- builders: SUSP_REQ, SUSP_REVOKE, ANN_REQ (entrante), REND, credit_notes ----

// buildLimits returns [build] max rows per file.
func buildLimits(cfg *config.Config) int {
	if cfg.Build.MaxRowsPerFile > 0 {
		return cfg.Build.MaxRowsPerFile
	}
	return 10000
}

func flowFormat(cfg *config.Config, f *flows.Flow) string {
	if v := cfg.Build.Format[f.Key]; v != "" {
		return v
	}
	return f.Format
}

// entranteBuilder writes the ready requests of one flow filed for entrante practices.
type entranteBuilder struct {
	e    *entrante
	flow string
}

func (b *entranteBuilder) Name() string { return "entrante." + b.flow }

type builtRow struct {
	req  archive.Request
	p    archive.Practice
	row  map[string]string
	src  int64
	body []byte // the row in the file, encoded once
}

func (b *entranteBuilder) Build(ctx context.Context, now time.Time) (int, error) {
	d := b.e.d
	cfg := d.Config()
	if !cfg.Company.HasRole(roleEntrante) {
		return 0, nil
	}
	f := d.Catalog().Flow(b.flow)
	if f == nil {
		return 0, fmt.Errorf("the flow catalog has no flow %s", b.flow)
	}
	format, maxRows, today := flowFormat(cfg, f), buildLimits(cfg), flows.Today(now)
	maxBytes := cfg.Build.MaxFileBytes
	if maxBytes <= 0 {
		maxBytes = 10 << 20
	}
	enc, err := flows.NewBodyEncoder(f, format)
	if err != nil {
		return 0, err
	}
	prefix, suffix := enc.Envelope()
	built := 0
	var after int64
	for {
		more := false
		err := d.Store.Write(ctx, func(tx *sql.Tx) error {
			reqs, err := d.Store.ReadyEntranteRequests(ctx, tx, b.flow, after, maxRows)
			if err != nil || len(reqs) == 0 {
				return err
			}
			more = true
			var batch []builtRow
			size := len(prefix) + len(suffix)
			for _, r := range reqs {
				br, err := b.prepare(ctx, tx, f, r, now, today)
				if err != nil {
					return err
				}
				if br == nil {
					after = r.ID
					continue
				}
				// [build] max_file_bytes: the row's size alone, without the envelope.
				if br.body, err = enc.Encode([]map[string]string{br.row}); err != nil {
					return err
				}
				rowBytes := len(br.body)
				if len(batch) > 0 && int64(size+rowBytes) > maxBytes {
					break // the next file starts with this request
				}
				batch = append(batch, *br)
				size += rowBytes
				after = r.ID
			}
			if len(batch) == 0 {
				return nil
			}
			built++
			return b.write(ctx, tx, f, format, enc, batch, now, today)
		})
		if err != nil {
			return built, err
		}
		if !more {
			return built, nil
		}
	}
}

// prepare checks that a request can still go and makes its row; nil = not in this file.
func (b *entranteBuilder) prepare(ctx context.Context, tx *sql.Tx, f *flows.Flow, r archive.Request, now time.Time, today flows.Date) (*builtRow, error) {
	d := b.e.d
	cfg := d.Config()
	p, err := d.Store.PracticeByID(ctx, tx, r.PracticeID)
	if err != nil {
		return nil, err
	}
	refuse := func(rule, msg string) (*builtRow, error) {
		if err := d.Store.SetRequestState(ctx, tx, r.ID, "invalid"); err != nil {
			return nil, err
		}
		if err := d.Store.Note(ctx, tx, &p, archive.HistoryEntry{Flow: b.flow, At: now, CauseCode: rule, Note: fmt.Sprintf("%s %s not sent: %s", b.flow, r.CPUtente, msg)}); err != nil {
			return nil, err
		}
		_, _, err := d.Store.RaiseException(ctx, tx, archive.Exception{Fingerprint: fmt.Sprintf("build_refused|%s|%d", b.flow, r.ID), Kind: "build_refused",
			Severity: archive.SevHigh, Owner: "compliance", PracticeID: p.ID, Rule: rule, Subject: r.CPUtente, LastSeen: now,
			Message: fmt.Sprintf("%s %s for indemnity %s was not sent: %s", b.flow, r.CPUtente, p.CPGestore, msg),
			Action:  "Check the practice; a new request gets a NEW CP_UTENTE."})
		return nil, err
	}
	if b.flow != flowANNREQ {
		if _, ok := flowAllows(d.Catalog(), b.flow, p.State); !ok {
			return refuse(flows.RuleSuspState, fmt.Sprintf("the practice is now %s", p.State))
		}
	}
	if b.flow == flowSUSPREQ {
		if eff := flows.EffectiveSuspensionTerm(p.SuspensionTerm, d.Calendar()); !eff.IsZero() && today.After(eff) {
			return refuse(flows.RuleSuspTerm, fmt.Sprintf("the suspension term expired on %s before the request could be sent", eff))
		}
	}
	row := map[string]string{"PIVA_UTENTE": cfg.Company.PIVA, "PIVA_GESTORE": cfg.Company.PIVAGestore, "CP_UTENTE": r.CPUtente, "CP_GESTORE": p.CPGestore}
	if cfg.Company.ActingAs == "CC" && cfg.Company.UDDPIVA != "" {
		row["PIVA_UTENTE"] = cfg.Company.UDDPIVA
	}
	var src int64
	for k, v := range r.Data {
		if strings.HasPrefix(k, "_") {
			if k == "_src" {
				fmt.Sscan(v, &src)
			}
			continue
		}
		if f.Field(k) != nil {
			row[k] = v
		}
	}
	if _, fs := f.CheckValues(row); flows.HasErrors(fs) {
		msgs := make([]string, 0, len(fs))
		for _, fd := range fs {
			if !fd.IsWarning() {
				msgs = append(msgs, fd.String())
			}
		}
		return refuse("BUILD", "the flow refuses the request: "+strings.Join(msgs, "; "))
	}
	return &builtRow{req: r, p: p, row: row, src: src}, nil
}

// write encodes a batch, archives it with provenance, marks its requests sent, moves
// the practices and queues the delivery, all in tx.
func (b *entranteBuilder) write(ctx context.Context, tx *sql.Tx, f *flows.Flow, format string, enc *flows.BodyEncoder, batch []builtRow, now time.Time, today flows.Date) error {
	d := b.e.d
	rows := make([]map[string]string, len(batch))
	bodies := make([][]byte, len(batch))
	var inputs []int64
	seen := map[int64]bool{}
	for i, br := range batch {
		rows[i], bodies[i] = br.row, br.body
		if br.src != 0 && !seen[br.src] {
			seen[br.src] = true
			inputs = append(inputs, br.src)
		}
	}
	prefix, suffix := enc.Envelope()
	content := flows.Assemble(prefix, suffix, bodies)
	name, err := flowFileName(ctx, d, tx, f, format, rows[0], now, today)
	if err != nil {
		return err
	}
	file, err := d.ArchiveBuilt(ctx, tx, Built{Name: name, Kind: b.flow, Content: content, Inputs: inputs,
		Meta: map[string]string{"requests": fmt.Sprint(len(batch)), "rows": fmt.Sprint(len(rows))}}, "built")
	if err != nil {
		return err
	}
	for _, br := range batch {
		p := br.p
		if err := d.Store.MarkRequestSent(ctx, tx, br.req.ID, file.ID, now); err != nil {
			return err
		}
		h := archive.HistoryEntry{Flow: b.flow, FileID: file.ID, At: now, Note: fmt.Sprintf("%s %s written into %s", b.flow, br.req.CPUtente, name)}
		if b.flow == flowSUSPREQ {
			data, err := flows.ParseEntranteData(p.Data)
			if err != nil {
				return err
			}
			data.StateBeforeSusp, data.SuspCause, data.SuspDSORef = p.State, br.row[flows.EntSuspCause], br.row[flows.EntSuspDSORef]
			p.Data = data.Marshal()
			p.RequestDate = today
			if err := d.Store.SavePractice(ctx, tx, &p); err != nil {
				return err
			}
		}
		to, ok := flowAllows(d.Catalog(), b.flow, p.State)
		if b.flow == flowSUSPREVOKE && ok {
			// a revoked suspension returns the practice where it was before it
			if data, err := flows.ParseEntranteData(p.Data); err == nil && data.StateBeforeSusp != "" &&
				d.Catalog().CanTransition(p.State, data.StateBeforeSusp) {
				to = data.StateBeforeSusp
			}
		}
		if ok && to != p.State {
			// The state changes once the file is confirmed on the SII side, not now.
			h.Note += fmt.Sprintf("; %s once %s is delivered", to, name)
			if err := d.Store.DeferTransition(ctx, tx, archive.PendingTransition{FileID: file.ID, PracticeID: p.ID, From: p.State, To: to,
				Flow: b.flow, Note: fmt.Sprintf("%s %s published in %s", b.flow, br.req.CPUtente, name), At: now}); err != nil {
				return err
			}
		}
		if err := d.Store.Note(ctx, tx, &p, h); err != nil {
			return err
		}
		if err := d.Store.LinkPracticeFile(ctx, tx, p.ID, file.ID, "built", 0); err != nil {
			return err
		}
	}
	return d.QueueToSII(ctx, tx, file)
}

// flowFileName names a new file of flow f, drawing the flow's daily file sequence.
func flowFileName(ctx context.Context, d *Daemon, tx *sql.Tx, f *flows.Flow, format string, first map[string]string, now time.Time, today flows.Date) (string, error) {
	seq, err := d.Store.NextSequence(ctx, tx, "file|"+f.Key+"|"+today.ISO())
	if err != nil {
		return "", err
	}
	return f.BuildFileName(first, now, int(seq), format)
}

// rendBuilder reports, for every closed month, the billing data that arrived in it:
// one REND row per practice and invoice (the latest state the month saw), each with
// its own CP_UTENTE.
type rendBuilder struct{ e *entrante }

func (b *rendBuilder) Name() string { return "entrante.REND" }

func (b *rendBuilder) Build(ctx context.Context, now time.Time) (int, error) {
	d := b.e.d
	cfg := d.Config()
	if !cfg.Company.HasRole(roleEntrante) {
		return 0, nil
	}
	f := d.Catalog().Flow(flowREND)
	if f == nil {
		return 0, fmt.Errorf("the flow catalog has no flow %s", flowREND)
	}
	tmpl, err := flows.ParseCodeTemplate(cfg.PracticeCode.Template)
	if err != nil {
		return 0, err
	}
	periods, err := d.Store.PendingReportPeriods(ctx, nil)
	if err != nil {
		return 0, err
	}
	format, today := flowFormat(cfg, f), flows.Today(now)
	limits := rendLimits{rows: buildLimits(cfg), bytes: cfg.Build.MaxFileBytes}
	if limits.bytes <= 0 {
		limits.bytes = 10 << 20
	}
	enc, err := flows.NewBodyEncoder(f, format)
	if err != nil {
		return 0, err
	}
	built := 0
	for _, ps := range periods {
		period, err := flows.ParseReportPeriod(ps)
		if err != nil {
			return built, err
		}
		if !period.Closed(now) {
			continue
		}
		var carry *rendRow
		for {
			n, next, err := b.buildOne(ctx, f, enc, tmpl, format, ps, limits, carry, now, today)
			if err != nil {
				return built, err
			}
			if n == 0 {
				break
			}
			built++
			carry = next
		}
	}
	return built, nil
}

// rendLimits are [build] max_rows_per_file and max_file_bytes.
type rendLimits struct {
	rows  int
	bytes int64
}

// rendRow is a report line made into its REND row: the CP_UTENTE drawn for it and the
// row's records, encoded once.
type rendRow struct {
	line archive.ReportLine
	code string
	row  map[string]string
	body []byte
}

// buildOne writes the next REND file of period in one transaction: the pending lines in
// order, up to max_rows_per_file rows and max_file_bytes bytes (a line bigger than the
// limit alone still goes, alone). It returns the rows written and the line that did not
// fit, already measured: the next file of the same run starts with it, with the code
// drawn for it (the sequence is past it, so nothing else takes it) and the same bytes.
func (b *rendBuilder) buildOne(ctx context.Context, f *flows.Flow, enc *flows.BodyEncoder, tmpl *flows.CodeTemplate, format, period string, limits rendLimits, carry *rendRow, now time.Time, today flows.Date) (int, *rendRow, error) {
	d := b.e.d
	cfg := d.Config()
	n := 0
	var next *rendRow
	err := d.Store.Write(ctx, func(tx *sql.Tx) error {
		next = nil // a retried transaction measures again
		lines, err := d.Store.PendingReportLines(ctx, tx, period)
		if err != nil || len(lines) == 0 {
			return err
		}
		if len(lines) > limits.rows {
			lines = lines[:limits.rows]
		}
		st, err := d.Store.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		defer st.Close(ctx)
		type item struct {
			rendRow
			p   archive.Practice
			req archive.Request
		}
		var items []item
		var inputs []int64
		seen := map[int64]bool{}
		prefix, suffix := enc.Envelope()
		size := int64(len(prefix) + len(suffix))
		for _, l := range lines {
			p, err := d.Store.PracticeByID(ctx, tx, l.PracticeID)
			if err != nil {
				return err
			}
			var rr rendRow
			if carry != nil && carry.line.ID == l.ID {
				rr = *carry
			} else {
				code, err := newCode(ctx, st, tmpl, cfg.Company.PIVA, p.Sector, today.Y)
				if err != nil {
					return err
				}
				row := map[string]string{"PIVA_UTENTE": cfg.Company.PIVA, "PIVA_GESTORE": cfg.Company.PIVAGestore, "CP_UTENTE": code}
				for k, v := range l.Data {
					if f.Field(k) != nil {
						row[k] = v
					}
				}
				body, err := enc.Encode([]map[string]string{row})
				if err != nil {
					return fmt.Errorf("REND %s: line %d of file %d (practice %s, invoice %s): %w", period, l.Line, l.FileID, p.CPGestore, l.Invoice, err)
				}
				rr = rendRow{line: l, code: code, row: row, body: body}
			}
			// [build] max_file_bytes, as the other builders count it: envelope + records.
			if len(items) > 0 && size+int64(len(rr.body)) > limits.bytes {
				next = &rr
				break // the next file starts with this line
			}
			size += int64(len(rr.body))
			items = append(items, item{rendRow: rr, p: p})
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		rows := make([]map[string]string, len(items))
		bodies := make([][]byte, len(items))
		for i := range items {
			it := &items[i]
			it.req = archive.Request{PracticeID: it.p.ID, Flow: flowREND, CPUtente: it.code, Data: it.line.Data}
			if err := d.Store.CreateRequest(ctx, tx, &it.req); err != nil {
				return err
			}
			if err := d.Store.MarkReportLine(ctx, tx, it.line.ID, it.req.ID); err != nil {
				return err
			}
			if !seen[it.line.FileID] {
				seen[it.line.FileID] = true
				inputs = append(inputs, it.line.FileID)
			}
			rows[i], bodies[i] = it.row, it.body
		}
		content := flows.Assemble(prefix, suffix, bodies)
		name, err := flowFileName(ctx, d, tx, f, format, rows[0], now, today)
		if err != nil {
			return err
		}
		file, err := d.ArchiveBuilt(ctx, tx, Built{Name: name, Kind: flowREND, Content: content, Inputs: inputs,
			Meta: map[string]string{"period": period, "rows": fmt.Sprint(len(rows))}}, "built")
		if err != nil {
			return err
		}
		t := flows.TransitionOf(f)
		for _, it := range items {
			p := it.p
			if p.ID != it.line.PracticeID {
				continue
			}
			if err := d.Store.MarkRequestSent(ctx, tx, it.req.ID, file.ID, now); err != nil {
				return err
			}
			h := archive.HistoryEntry{Flow: flowREND, FileID: file.ID, At: now,
				Note: fmt.Sprintf("reported for %s in %s (REND %s, invoice %s, %s)", period, name, it.req.CPUtente, it.line.Invoice, it.row[flows.EntCollState])}
			// Re-read: an earlier row of the same file may have moved the practice.
			cur, err := d.Store.PracticeByID(ctx, tx, p.ID)
			if err != nil {
				return err
			}
			to := ""
			if t != nil {
				if t.Field != "" {
					to = t.On[it.row[t.Field]]
				} else {
					to = t.To
				}
				if to != "" && len(t.From) > 0 && !containsState(t.From, cur.State) {
					to = ""
				}
			}
			if to != "" && to != cur.State && d.Catalog().CanTransition(cur.State, to) {
				// The state changes once the file is confirmed on the SII side, not now.
				h.Note += fmt.Sprintf("; %s once %s is delivered", to, name)
				if err := d.Store.DeferTransition(ctx, tx, archive.PendingTransition{FileID: file.ID, PracticeID: cur.ID, From: cur.State, To: to,
					Flow: flowREND, Note: fmt.Sprintf("reported for %s in %s", period, name), At: now}); err != nil {
					return err
				}
			}
			if err := d.Store.Note(ctx, tx, &cur, h); err != nil {
				return err
			}
			if err := d.Store.LinkPracticeFile(ctx, tx, cur.ID, file.ID, "built", 0); err != nil {
				return err
			}
		}
		n = len(items)
		return d.QueueToSII(ctx, tx, file)
	})
	if err != nil {
		return n, nil, err
	}
	return n, next, nil
}

// notesBuilder exports the queued credit/debit note lines to billing in one file.
type notesBuilder struct{ e *entrante }

func (b *notesBuilder) Name() string { return "entrante.credit_notes" }

func (b *notesBuilder) Build(ctx context.Context, now time.Time) (int, error) {
	d := b.e.d
	cfg := d.Config()
	cols, err := exportLayout(cfg, exportCreditNotes)
	if err != nil {
		return 0, err
	}
	built := 0
	for {
		n := 0
		err := d.Store.Write(ctx, func(tx *sql.Tx) error {
			lines, err := d.Store.PendingBillingLines(ctx, tx, exportCreditNotes, buildLimits(cfg))
			if err != nil || len(lines) == 0 {
				return err
			}
			n = len(lines)
			rows := make([]map[string]string, len(lines))
			ids := make([]int64, len(lines))
			var inputs []int64
			seen := map[int64]bool{}
			var ps []*archive.Practice
			for i, l := range lines {
				rows[i], ids[i] = l.Data, l.ID
				if !seen[l.FileID] {
					seen[l.FileID] = true
					inputs = append(inputs, l.FileID)
				}
				ps = append(ps, &archive.Practice{ID: l.PracticeID})
			}
			sort.Slice(inputs, func(a, b int) bool { return inputs[a] < inputs[b] })
			day := flows.Today(now)
			seq, err := d.Store.NextSequence(ctx, tx, "export|"+exportCreditNotes+"|"+day.ISO())
			if err != nil {
				return err
			}
			name := fmt.Sprintf("NOTE_CREDITO_DEBITO_%s_%04d.csv", now.In(flows.Rome).Format("20060102"), seq)
			file, err := b.e.publishExport(ctx, tx, exportCreditNotes, name, cols, rows, ps, inputs)
			if err != nil {
				return err
			}
			return d.Store.MarkBillingLinesExported(ctx, tx, ids, file.ID)
		})
		if err != nil {
			return built, err
		}
		if n == 0 {
			return built, nil
		}
		built++
	}
}
