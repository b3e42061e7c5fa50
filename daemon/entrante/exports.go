package entrante

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// Billing exports.
const (
	ExportCMORToCharge = "cmor_to_charge"
	exportCreditNotes  = "credit_notes"
)

// exportColumn is one column of a billing export: our field and its default header.
type exportColumn struct{ field, header string }

// exportColumns are the exports' columns in order, with Italian default headers;
// [outbound.exports.NAME] renames them (our field → billing header, "-" drops one).
var exportColumns = map[string][]exportColumn{
	ExportCMORToCharge: {
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
func ExportLayout(cfg *config.Config, name string) ([]exportColumn, error) {
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
	d := e.h
	file, err := d.ArchiveBuilt(ctx, tx, family.Built{Name: name, Kind: export, Content: encodeExport(cols, rows), Inputs: inputs,
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
		if err := d.Archive().LinkPracticeFile(ctx, tx, p.ID, file.ID, "export", 0); err != nil {
			return file, err
		}
	}
	if d.Config().Outbound.BillingDir == "" {
		_, _, err := d.Archive().RaiseException(ctx, tx, archive.Exception{Fingerprint: "export_unpublished|" + name, Kind: "export_unpublished",
			Severity: archive.SevHigh, Owner: "sysadmin", FileID: file.ID, Subject: export, LastSeen: d.Now(),
			Message: fmt.Sprintf("%s (%s) is archived (file #%d) but outbound.billing_dir is not configured: billing does not get it", name, export, file.ID),
			Action:  "Set outbound.billing_dir; meanwhile `cmord archive cat` gives the file."})
		return file, err
	}
	return file, d.QueueToBilling(ctx, tx, file)
}

// notesBuilder exports the queued credit/debit note lines to billing in one file.
type notesBuilder struct{ e *entrante }

func (b *notesBuilder) Name() string { return "entrante.credit_notes" }

func (b *notesBuilder) Build(ctx context.Context, now time.Time) (int, error) {
	d := b.e.h
	cfg := d.Config()
	cols, err := ExportLayout(cfg, exportCreditNotes)
	if err != nil {
		return 0, err
	}
	built := 0
	for {
		n := 0
		err := d.Archive().Write(ctx, func(tx *sql.Tx) error {
			lines, err := d.Archive().PendingBillingLines(ctx, tx, exportCreditNotes, family.BuildLimits(cfg))
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
			seq, err := d.Archive().NextSequence(ctx, tx, "export|"+exportCreditNotes+"|"+day.ISO())
			if err != nil {
				return err
			}
			name := fmt.Sprintf("NOTE_CREDITO_DEBITO_%s_%04d.csv", now.In(flows.Rome).Format("20060102"), seq)
			file, err := b.e.publishExport(ctx, tx, exportCreditNotes, name, cols, rows, ps, inputs)
			if err != nil {
				return err
			}
			return d.Archive().MarkBillingLinesExported(ctx, tx, ids, file.ID)
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
