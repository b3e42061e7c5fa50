package entrante

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// rendBuilder reports, for every closed month, the billing data that arrived in it:
// one REND row per practice and invoice (the latest state the month saw), each with
// its own CP_UTENTE.
type rendBuilder struct{ e *entrante }

func (b *rendBuilder) Name() string { return "entrante.REND" }

func (b *rendBuilder) Build(ctx context.Context, now time.Time) (int, error) {
	d := b.e.h
	cfg := d.Config()
	if !cfg.Company.HasRole(roleEntrante) {
		return 0, nil
	}
	f := d.Catalog().Flow(FlowREND)
	if f == nil {
		return 0, fmt.Errorf("the flow catalog has no flow %s", FlowREND)
	}
	tmpl, err := flows.ParseCodeTemplate(cfg.PracticeCode.Template)
	if err != nil {
		return 0, err
	}
	periods, err := d.Archive().PendingReportPeriods(ctx, nil)
	if err != nil {
		return 0, err
	}
	format, today := family.FlowFormat(cfg, f), flows.Today(now)
	limits := rendLimits{rows: family.BuildLimits(cfg), bytes: cfg.Build.MaxFileBytes}
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

// rendItem is a REND row of the file being written, with its practice and the
// request recorded for it.
type rendItem struct {
	rendRow
	p   archive.Practice
	req archive.Request
}

// buildOne writes the next REND file of period in one transaction: the pending lines in
// order, up to max_rows_per_file rows and max_file_bytes bytes (a line bigger than the
// limit alone still goes, alone). It returns the rows written and the line that did not
// fit, already measured: the next file of the same run starts with it, with the code
// drawn for it (the sequence is past it, so nothing else takes it) and the same bytes.
func (b *rendBuilder) buildOne(ctx context.Context, f *flows.Flow, enc *flows.BodyEncoder, tmpl *flows.CodeTemplate, format, period string, limits rendLimits, carry *rendRow, now time.Time, today flows.Date) (int, *rendRow, error) {
	d := b.e.h
	n := 0
	var next *rendRow
	err := d.Archive().Write(ctx, func(tx *sql.Tx) error {
		next = nil // a retried transaction measures again
		lines, err := d.Archive().PendingReportLines(ctx, tx, period)
		if err != nil || len(lines) == 0 {
			return err
		}
		if len(lines) > limits.rows {
			lines = lines[:limits.rows]
		}
		var items []rendItem
		items, next, err = b.fill(ctx, tx, f, enc, tmpl, period, lines, limits, carry, today)
		if err != nil {
			return err
		}
		n = len(items)
		return b.write(ctx, tx, f, enc, format, period, items, now, today)
	})
	if err != nil {
		return n, nil, err
	}
	return n, next, nil
}

// fill makes the rows of the next file from lines, drawing a CP_UTENTE for each (but
// carry's, drawn already), until max_file_bytes; next is the first line left out.
func (b *rendBuilder) fill(ctx context.Context, tx *sql.Tx, f *flows.Flow, enc *flows.BodyEncoder, tmpl *flows.CodeTemplate, period string, lines []archive.ReportLine, limits rendLimits, carry *rendRow, today flows.Date) (items []rendItem, next *rendRow, err error) {
	d := b.e.h
	cfg := d.Config()
	st, err := d.Archive().PreparePractices(ctx, tx)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close(ctx)
	prefix, suffix := enc.Envelope()
	size := int64(len(prefix) + len(suffix))
	for _, l := range lines {
		p, err := d.Archive().PracticeByID(ctx, tx, l.PracticeID)
		if err != nil {
			return nil, nil, err
		}
		var rr rendRow
		if carry != nil && carry.line.ID == l.ID {
			rr = *carry
		} else {
			code, err := family.NewCode(ctx, st, tmpl, cfg.Company.PIVA, p.Sector, today.Y)
			if err != nil {
				return nil, nil, err
			}
			row := map[string]string{"PIVA_UTENTE": cfg.Company.PIVA, "PIVA_GESTORE": cfg.Company.PIVAGestore, "CP_UTENTE": code}
			for k, v := range l.Data {
				if f.Field(k) != nil {
					row[k] = v
				}
			}
			body, err := enc.Encode([]map[string]string{row})
			if err != nil {
				return nil, nil, fmt.Errorf("REND %s: line %d of file %d (practice %s, invoice %s): %w", period, l.Line, l.FileID, p.CPGestore, l.Invoice, err)
			}
			rr = rendRow{line: l, code: code, row: row, body: body}
		}
		// [build] max_file_bytes, as the other builders count it: envelope + records.
		if len(items) > 0 && size+int64(len(rr.body)) > limits.bytes {
			next = &rr
			break // the next file starts with this line
		}
		size += int64(len(rr.body))
		items = append(items, rendItem{rendRow: rr, p: p})
	}
	return items, next, st.Close(ctx)
}

// write records a REND request per item, archives the file with provenance, defers
// the practices' moves to its delivery and queues it, all in tx.
func (b *rendBuilder) write(ctx context.Context, tx *sql.Tx, f *flows.Flow, enc *flows.BodyEncoder, format, period string, items []rendItem, now time.Time, today flows.Date) error {
	d := b.e.h
	var inputs []int64
	seen := map[int64]bool{}
	rows := make([]map[string]string, len(items))
	bodies := make([][]byte, len(items))
	for i := range items {
		it := &items[i]
		it.req = archive.Request{PracticeID: it.p.ID, Flow: FlowREND, CPUtente: it.code, Data: it.line.Data}
		if err := d.Archive().CreateRequest(ctx, tx, &it.req); err != nil {
			return err
		}
		if err := d.Archive().MarkReportLine(ctx, tx, it.line.ID, it.req.ID); err != nil {
			return err
		}
		if !seen[it.line.FileID] {
			seen[it.line.FileID] = true
			inputs = append(inputs, it.line.FileID)
		}
		rows[i], bodies[i] = it.row, it.body
	}
	prefix, suffix := enc.Envelope()
	content := flows.Assemble(prefix, suffix, bodies)
	name, err := family.FlowFileName(ctx, d.Archive(), tx, f, format, rows[0], now, today)
	if err != nil {
		return err
	}
	file, err := d.ArchiveBuilt(ctx, tx, family.Built{Name: name, Kind: FlowREND, Content: content, Inputs: inputs,
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
		if err := d.Archive().MarkRequestSent(ctx, tx, it.req.ID, file.ID, now); err != nil {
			return err
		}
		h := archive.HistoryEntry{Flow: FlowREND, FileID: file.ID, At: now,
			Note: fmt.Sprintf("reported for %s in %s (REND %s, invoice %s, %s)", period, name, it.req.CPUtente, it.line.Invoice, it.row[flows.EntCollState])}
		// Re-read: an earlier row of the same file may have moved the practice.
		cur, err := d.Archive().PracticeByID(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if to := flows.MoveOnPublish(d.Catalog(), t, it.row, cur.State); to != "" {
			// The state changes once the file is confirmed on the SII side, not now.
			h.Note += fmt.Sprintf("; %s once %s is delivered", to, name)
			if err := d.Archive().DeferTransition(ctx, tx, archive.PendingTransition{FileID: file.ID, PracticeID: cur.ID, From: cur.State, To: to,
				Flow: FlowREND, Note: fmt.Sprintf("reported for %s in %s", period, name), At: now}); err != nil {
				return err
			}
		}
		if err := d.Archive().Note(ctx, tx, &cur, h); err != nil {
			return err
		}
		if err := d.Archive().LinkPracticeFile(ctx, tx, cur.ID, file.ID, "built", 0); err != nil {
			return err
		}
	}
	return d.QueueToSII(ctx, tx, file)
}
