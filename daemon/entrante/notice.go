package entrante

import (
	"context"
	"errors"
	"fmt"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// ---- NOTIF_ENTR ----

// handleNotice creates one entrante practice per acceptance notice and hands the CMOR
// to billing in one "CMOR to charge" export for the file.
func (e *entrante) handleNotice(ctx context.Context, in *family.Input) (family.Result, error) {
	if !in.Config.Company.HasRole(roleEntrante) {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: notEntrante(in, "the acceptance notice NOTIF_ENTR")})
	}
	f := in.Catalog.Flow(flowNOTIFENTR)
	if f == nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: "the flow catalog has no flow " + flowNOTIFENTR})
	}
	cols, err := ExportLayout(in.Config, ExportCMORToCharge)
	if err != nil {
		return family.Result{}, err
	}
	format, err := family.SniffFormat(in)
	if err != nil {
		return family.Result{}, err
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
			CPGestore: cpg, Point: family.FirstNonEmpty(rec.Get(flows.EntPOD), rec.Get(flows.EntPDR)),
			CustomerID: family.FirstNonEmpty(rec.Get(flows.EntCF), rec.Get(flows.EntPIVA)), CMOR: rec.Amount(flows.EntCMOR),
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
				_, err := e.publishExport(ctx, j.tx, ExportCMORToCharge, exportName, cols, rows, created, []int64{in.File.ID})
				return err
			}
		}
		return nil, nil
	})
	return res, err
}

// checkAddressee refuses a record addressed to another company.
func checkAddressee(in *family.Input, rec flows.Record) []flows.Finding {
	v := rec.Get(flows.EntPIVAUtente)
	if v == "" || v == in.Config.Company.PIVA || (in.Config.Company.UDDPIVA != "" && v == in.Config.Company.UDDPIVA) {
		return nil
	}
	return []flows.Finding{{Field: flows.EntPIVAUtente, Rule: flows.RuleEntPIVA, Value: v,
		Message: fmt.Sprintf("addressed to another company (ours is %s)", in.Config.Company.PIVA)}}
}
