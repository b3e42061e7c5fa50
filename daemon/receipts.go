package daemon

import (
	"context"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/receipt"
	"github.com/cmord/cmord/daemon/uscente"
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
		ids, err := uscente.IdentifyLines(ctx, &Input{File: f, Folder: folder, Store: d.Store, Catalog: d.Catalog(), Config: d.Config()}, lines)
		if err != nil {
			d.Log.Warn("receipt: cannot name the refused cases", "file", f.Name, "err", err)
		}
		r.Name(ids)
	}
	if ids := r.Updated(); len(ids) > 0 {
		// A payment that cleared the debt, a suspension: the request it queued.
		pending, err := d.Store.ReadyRequestFlows(ctx, ids)
		if err != nil {
			return nil, err
		}
		r.Pending(pending)
	}
	lang := d.lang()
	files := map[string][]byte{receipt.TextSuffix: []byte(r.Text(lang))}
	if folder.ReceiptHTML {
		files[receipt.HTMLSuffix] = []byte(r.HTML(lang))
	}
	return files, nil
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
