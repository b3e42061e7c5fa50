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

// ---- ANN_REQ from the entrante side ----

// RequestAnnulment records an ANN_REQ for an entrante practice (brief §4.3:
// AN-07, the customer on the point is not the debtor, or AN-99 with a motivation),
// inside tx; the ANN_REQ builder files it. An operator list or the CLI calls it.
func RequestAnnulment(ctx context.Context, d family.Host, tx *sql.Tx, p *archive.Practice, cause, motivation string, event flows.Date, fileID int64, line int) ([]flows.Finding, error) {
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
	if !flows.EntranteLive(p.State) {
		fs = append(fs, flows.Finding{Field: flows.EntCPGestore, Rule: "ANN-STATE", Value: p.State, Message: "the practice is " + p.State + ": nothing to annul"})
	}
	if rs, err := d.Archive().Requests(ctx, tx, p.ID, flowANNREQ, "ready", 0); err != nil {
		return nil, err
	} else if len(rs) > 0 {
		fs = append(fs, flows.Finding{Field: flows.EntCPGestore, Rule: "ANN-DUPLICATE", Value: rs[0].CPUtente, Message: "an annulment request is already waiting to be sent"})
	}
	if len(fs) > 0 {
		return fs, nil
	}
	if event.IsZero() {
		event = flows.Today(d.Now())
	}
	tmpl, err := flows.ParseCodeTemplate(cfg.PracticeCode.Template)
	if err != nil {
		return nil, err
	}
	st, err := d.Archive().PreparePractices(ctx, tx)
	if err != nil {
		return nil, err
	}
	defer st.Close(ctx)
	code, err := family.NewCode(ctx, st, tmpl, cfg.Company.PIVA, p.Sector, flows.Today(d.Now()).Y)
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
	if err := d.Archive().CreateRequest(ctx, tx, &archive.Request{PracticeID: p.ID, Flow: flowANNREQ, CPUtente: code, Data: data}); err != nil {
		return nil, err
	}
	h := archive.HistoryEntry{Flow: flowANNREQ, FileID: fileID, Line: line, At: d.Now(), CauseCode: cause,
		Note: fmt.Sprintf("annulment requested by the entrante (ANN_REQ %s, cause %s): %s", code, cause, motivation)}
	if err := d.Archive().Note(ctx, tx, p, h); err != nil {
		return nil, err
	}
	if fileID != 0 {
		return nil, d.Archive().LinkPracticeFile(ctx, tx, p.ID, fileID, "input", line)
	}
	return nil, nil
}

// ---- linking (brief §5.3) ----

// LinkPreviousCMOR links an uscente practice that adds a previous uncollected CMOR to
// the earlier entrante practice that CMOR came from, both ways (LinkedID on both, a
// history note on each naming the other), inside tx. The entrante practice is the one
// of CP_GESTORE_CMOR_PRECEDENTE when the request gives it, else the customer's only
// entrante practice not fully collected (or the one whose uncollected amount equals
// the previous CMOR). Nothing to link, or no unambiguous match, is not an error: an
// exception tells a person.
func LinkPreviousCMOR(ctx context.Context, d family.Host, tx *sql.Tx, uscente *archive.Practice) error {
	if uscente.Role != "uscente" {
		return fmt.Errorf("link previous CMOR: practice #%d is %s, not uscente", uscente.ID, uscente.Role)
	}
	data, err := uscente.UscenteData() // a practice just created holds its case compact
	if err != nil {
		return err
	}
	prevCP := strings.TrimSpace(data.Case.PreviousCPGestore)
	if uscente.Previous == 0 && prevCP == "" {
		return nil
	}
	raise := func(kind, msg string) error {
		_, _, err := d.Archive().RaiseException(ctx, tx, archive.Exception{Fingerprint: fmt.Sprintf("%s|%d", kind, uscente.ID), Kind: kind,
			Severity: archive.SevNormal, Owner: "compliance", PracticeID: uscente.ID, Subject: uscente.CPUtente, LastSeen: d.Now(), Message: msg,
			Action: "Check the previous CMOR of the request against the entrante practices (`cmord practices --role entrante`)."})
		return err
	}
	var ent archive.Practice
	if prevCP != "" {
		ent, err = d.Archive().PracticeByKey(ctx, tx, flows.EntranteCaseKey(prevCP))
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
		cands, err := d.Archive().UncollectedEntrante(ctx, tx, uscente.CustomerID)
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
	if err := d.Archive().SavePractice(ctx, tx, uscente); err != nil {
		return err
	}
	if err := d.Archive().SavePractice(ctx, tx, &ent); err != nil {
		return err
	}
	uncollected := ent.CMOR - ent.Collected
	if err := d.Archive().Note(ctx, tx, uscente, archive.HistoryEntry{Flow: "LINK", At: d.Now(),
		Note: fmt.Sprintf("linked to entrante practice %s (#%d): its uncollected CMOR %s is the previous CMOR %s of this request", ent.CPGestore, ent.ID, uncollected, uscente.Previous)}); err != nil {
		return err
	}
	return d.Archive().Note(ctx, tx, &ent, archive.HistoryEntry{Flow: "LINK", At: d.Now(),
		Note: fmt.Sprintf("linked to uscente practice %s (#%d), which adds this uncollected CMOR (%s) as its previous CMOR", uscente.CPUtente, uscente.ID, uncollected)})
}
