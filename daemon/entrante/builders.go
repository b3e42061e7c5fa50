package entrante

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// ---- builders: SUSP_REQ, SUSP_REVOKE, ANN_REQ (entrante), REND, credit_notes ----

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
	d := b.e.h
	cfg := d.Config()
	if !cfg.Company.HasRole(roleEntrante) {
		return 0, nil
	}
	f := d.Catalog().Flow(b.flow)
	if f == nil {
		return 0, fmt.Errorf("the flow catalog has no flow %s", b.flow)
	}
	format, maxRows, today := family.FlowFormat(cfg, f), family.BuildLimits(cfg), flows.Today(now)
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
		err := d.Archive().Write(ctx, func(tx *sql.Tx) error {
			reqs, err := d.Archive().ReadyEntranteRequests(ctx, tx, b.flow, after, maxRows)
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
	d := b.e.h
	cfg := d.Config()
	p, err := d.Archive().PracticeByID(ctx, tx, r.PracticeID)
	if err != nil {
		return nil, err
	}
	refuse := func(rule, msg string) (*builtRow, error) {
		if err := d.Archive().SetRequestState(ctx, tx, r.ID, "invalid"); err != nil {
			return nil, err
		}
		if err := d.Archive().Note(ctx, tx, &p, archive.HistoryEntry{Flow: b.flow, At: now, CauseCode: rule, Note: fmt.Sprintf("%s %s not sent: %s", b.flow, r.CPUtente, msg)}); err != nil {
			return nil, err
		}
		_, _, err := d.Archive().RaiseException(ctx, tx, archive.Exception{Fingerprint: fmt.Sprintf("build_refused|%s|%d", b.flow, r.ID), Kind: "build_refused",
			Severity: archive.SevHigh, Owner: "compliance", PracticeID: p.ID, Rule: rule, Subject: r.CPUtente, LastSeen: now,
			Message: fmt.Sprintf("%s %s for indemnity %s was not sent: %s", b.flow, r.CPUtente, p.CPGestore, msg),
			Action:  "Check the practice; a new request gets a NEW CP_UTENTE."})
		return nil, err
	}
	if b.flow != flowANNREQ {
		if _, ok := flows.FlowAllows(d.Catalog(), b.flow, p.State); !ok {
			return refuse(flows.RuleSuspState, fmt.Sprintf("the practice is now %s", p.State))
		}
	}
	if b.flow == FlowSUSPREQ {
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
	d := b.e.h
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
	name, err := family.FlowFileName(ctx, d.Archive(), tx, f, format, rows[0], now, today)
	if err != nil {
		return err
	}
	file, err := d.ArchiveBuilt(ctx, tx, family.Built{Name: name, Kind: b.flow, Content: content, Inputs: inputs,
		Meta: map[string]string{"requests": fmt.Sprint(len(batch)), "rows": fmt.Sprint(len(rows))}}, "built")
	if err != nil {
		return err
	}
	for _, br := range batch {
		p := br.p
		if err := d.Archive().MarkRequestSent(ctx, tx, br.req.ID, file.ID, now); err != nil {
			return err
		}
		h := archive.HistoryEntry{Flow: b.flow, FileID: file.ID, At: now, Note: fmt.Sprintf("%s %s written into %s", b.flow, br.req.CPUtente, name)}
		if b.flow == FlowSUSPREQ {
			data, err := flows.ParseEntranteData(p.Data)
			if err != nil {
				return err
			}
			data.StateBeforeSusp, data.SuspCause, data.SuspDSORef = p.State, br.row[flows.EntSuspCause], br.row[flows.EntSuspDSORef]
			p.Data = data.Marshal()
			p.RequestDate = today
			if err := d.Archive().SavePractice(ctx, tx, &p); err != nil {
				return err
			}
		}
		to, ok := flows.FlowAllows(d.Catalog(), b.flow, p.State)
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
			if err := d.Archive().DeferTransition(ctx, tx, archive.PendingTransition{FileID: file.ID, PracticeID: p.ID, From: p.State, To: to,
				Flow: b.flow, Note: fmt.Sprintf("%s %s published in %s", b.flow, br.req.CPUtente, name), At: now}); err != nil {
				return err
			}
		}
		if err := d.Archive().Note(ctx, tx, &p, h); err != nil {
			return err
		}
		if err := d.Archive().LinkPracticeFile(ctx, tx, p.ID, file.ID, "built", 0); err != nil {
			return err
		}
	}
	return d.QueueToSII(ctx, tx, file)
}
