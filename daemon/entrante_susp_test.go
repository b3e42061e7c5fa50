package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/cmord/cmord/daemon/entrante"
	"github.com/cmord/cmord/flows"
)

// TestEntranteSuspensionBeforeBilling: art. 15 asks only that the CMOR is not
// collected; the suspension term normally ends before the CMOR reaches our invoice, so
// a practice still TO_CHARGE may be suspended, and a refused suspension puts it back
// where it was (not "charged").
func TestEntranteSuspensionBeforeBilling(t *testing.T) {
	w := noticed(t, `["entrante"]`)
	if s := w.practice(cpgA).State; s != flows.EntranteToCharge {
		t.Fatalf("A after the notice: %s", s)
	}
	w.now = time.Date(2025, 1, 30, 9, 0, 0, 0, flows.Rome)
	w.drop("sospensioni", sospensioniHeader,
		map[string]string{"CP_GESTORE": cpgA, "COD_POD": podA, "MOTIVO_SOSPENSIONE": "SO-02", "DATA_RICHIESTA_SOSPENSIONE_FORNITURA": "27/01/2025",
			"CMOR_INCASSATO": "N"})
	w.runOnce()
	a := w.practice(cpgA)
	if a.State != flows.EntranteSuspRequested {
		t.Fatalf("A: %s, want SUSP_REQUESTED\n%s", a.State, w.history(a))
	}
	reqs, _ := w.d.Store.Requests(context.Background(), nil, a.ID, entrante.FlowSUSPREQ, "", 0)
	if len(reqs) != 1 || reqs[0].State != "sent" {
		t.Fatalf("SUSP_REQ requests %+v", reqs)
	}
	w.sii("SUSP_AMM", map[string]string{"CP_UTENTE": reqs[0].CPUtente, "CP_GESTORE": cpgA, "VERIFICA_AMM": "0",
		"COD_CAUSALE": "15", "MOTIVAZIONE": "Richiesta non eseguibile"})
	w.runOnce()
	if s := w.practice(cpgA).State; s != flows.EntranteToCharge {
		t.Fatalf("A after a refused suspension: %s, want back to TO_CHARGE\n%s", s, w.history(w.practice(cpgA)))
	}
}
