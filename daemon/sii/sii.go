// Package sii reads the SII's answers to the uscente's requests (REQ_AMM, REQ_ESITO,
// SUSP_NOTIF, ANN_AMM, ANN_NOTIF, UPD_NOTIF; docs/uscente.md) and identifies the SII
// files no flow was recognised in at download. A row that names an entrante practice
// goes to the entrante family's row hook (family.Host.SIIRowHook). The entrante's own
// answers (SUSP_AMM, SUSP_ESITO, REND_AMM) are in daemon/entrante.
package sii

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
)

// uscenteAnswerFlows are the SII flows the uscente consumes.
var uscenteAnswerFlows = []string{"REQ_AMM", "REQ_ESITO", "SUSP_NOTIF", "ANN_AMM", "ANN_NOTIF", "UPD_NOTIF"}

// Setup registers the handlers of the SII's answers to the uscente's requests, and
// of the SII files no flow was recognised in at download.
func Setup(h family.Host, r family.Registry) error {
	a := &answers{h: h}
	for _, key := range uscenteAnswerFlows {
		key := key
		r.Handle(key, family.HandlerFunc(func(ctx context.Context, in *family.Input) (family.Result, error) {
			return a.handleAnswer(ctx, in, key)
		}))
	}
	r.Handle(config.KindSII, family.HandlerFunc(a.handleUnidentified))
	return nil
}

// answers handles the SII's answers for the running daemon h.
type answers struct{ h family.Host }

// handleUnidentified takes a file no catalog flow was recognised in at download, or
// one dropped by hand in a folder of kind "sii": it is identified now by name and
// content, and handed to its flow's handler; otherwise it is refused.
func (a *answers) handleUnidentified(ctx context.Context, in *family.Input) (family.Result, error) {
	rc, err := in.Open()
	if err != nil {
		return family.Result{}, err
	}
	head := make([]byte, 8192)
	n, _ := io.ReadFull(rc, head)
	rc.Close()
	if f := in.Catalog.Identify(in.File.Name, head[:n]); f != nil && f.Direction == "in" {
		if h := a.h.HandlerOf(f.Key); h != nil {
			in.File.Kind = f.Key
			if err := in.Store.Write(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `UPDATE files SET kind = ? WHERE id = ?`, f.Key, in.File.ID)
				return err
			}); err != nil {
				return family.Result{}, err
			}
			return h.Handle(ctx, in)
		}
	}
	return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: fmt.Sprintf(
		"%s is not a known SII flow: neither its name nor its COD_SERVIZIO/COD_FLUSSO match a flow of the catalog (%s)", in.File.Name, in.Catalog.Name())})
}
