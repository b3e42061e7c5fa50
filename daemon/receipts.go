package daemon

import (
	"context"
	"io"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/daemon/receipt"
	"github.com/cmord/cmord/flows"
)

// receipts renders the receipt of a file taken, from the archive once the handler's
// transaction has committed: the practices the file touched (in their state now) and
// the handler's findings, or, when the file was processed by a run that died before
// finishing it (rebuilt), the row exceptions raised for it.
func (d *Daemon) receipts(ctx context.Context, fileID int64, folder *config.Folder, out Result, rebuilt bool) (map[string][]byte, error) {
	f, err := d.Store.GetFile(ctx, fileID) // with the meta the handler recorded
	if err != nil {
		return nil, err
	}
	practices, err := d.Store.PracticesOfFile(ctx, fileID)
	if err != nil {
		return nil, err
	}
	findings := out.Findings
	if rebuilt {
		es, err := d.Store.Exceptions(ctx, archive.ExceptionFilter{FileID: fileID})
		if err != nil {
			return nil, err
		}
		findings = receipt.FindingsFromExceptions(es)
	}
	// When: the daemon's clock (a test's or the demo's fake one too); a rebuilt receipt
	// says when the file was processed, not when the restart rebuilt it.
	at := d.now()
	if rebuilt && !f.ProcessedAt.IsZero() {
		at = f.ProcessedAt
	}
	r := receipt.Build(f, folder.Name, practices, findings, at)
	r.Rebuilt = rebuilt
	if lines := r.Unnamed(); len(lines) > 0 && f.Kind == config.KindUscenteMorosi {
		// A case refused before it became a practice is known only by its line: read
		// its point and customer back from the archived file, so the operator finds it.
		ids, err := d.identifyLines(ctx, f, folder, lines)
		if err != nil {
			d.Log.Warn("receipt: cannot name the refused cases", "file", f.Name, "err", err)
		}
		r.Name(ids)
	}
	lang := d.lang()
	files := map[string][]byte{receipt.TextSuffix: []byte(r.Text(lang))}
	if folder.ReceiptHTML {
		files[receipt.HTMLSuffix] = []byte(r.HTML(lang))
	}
	return files, nil
}

// identifyLines reads the archived extract (the same reader, mapping and encoding as
// the handler) and returns the point and customer of the rows at lines.
func (d *Daemon) identifyLines(ctx context.Context, f archive.File, folder *config.Folder, lines map[int]bool) (map[int]receipt.Ident, error) {
	d.mu.RLock()
	cat := d.catalog
	d.mu.RUnlock()
	flow := cat.Input(f.Kind)
	if flow == nil {
		return nil, nil
	}
	in := &Input{File: f, Folder: folder, Store: d.Store, Catalog: cat, Config: d.Config()}
	opt, err := family.ReadOptions(in)
	if err != nil {
		return nil, err
	}
	rc, err := family.OpenInput(in)
	if err != nil {
		return nil, err
	}
	rd := flows.NewCSVReader(rc, flow, opt)
	defer family.ReaderCloser{Reader: rd, File: rc}.Close() // a workbook's reader holds it in memory and in temporary files
	if _, err := rd.ReadHeader(); err != nil {
		return nil, err
	}
	ids := map[int]receipt.Ident{}
	for n := 0; len(ids) < len(lines); n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return ids, ctx.Err()
		}
		rec, _, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ids, err
		}
		if lines[rec.Line] {
			ids[rec.Line] = receipt.Ident{Point: family.FirstNonEmpty(rec.Get(flows.MorPOD), rec.Get(flows.MorPDR)),
				Customer: family.FirstNonEmpty(rec.Get(flows.MorCF), rec.Get(flows.MorPIVA))}
		}
	}
	return ids, nil
}

// reasonText is the body of a refused file's reason file, in the operator's language.
func (d *Daemon) reasonText(folder *config.Folder, res Result) string {
	name := ""
	if folder != nil {
		name = folder.Name
	}
	return receipt.ReasonText(name, res.Reason, res.Findings, d.lang())
}

// lang is the operators' language: [general] lang, Italian unless "en".
func (d *Daemon) lang() string {
	if d.Config().Lang == "en" {
		return "en"
	}
	return "it"
}
