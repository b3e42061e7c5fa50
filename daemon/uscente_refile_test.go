package daemon

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/flows"
)

// A case the SII refused (inadmissible, or rejected on verification) is filed again,
// corrected, as a new practice with a new CP_UTENTE; the refused practice keeps its
// state and history and points at the new one; the refusal's exception is closed. A
// case already filed and not refused is still refused (SI-D01), now against the
// newest filing.
func TestUscenteRefileAfterRefusal(t *testing.T) {
	sw := flows.D(2025, 3, 1)
	cf := testCF("VRDGPP70A01H501")
	extract := func(amount string) string {
		return strings.Join(morosiHeader, ";") + "\r\n" + morosiRow("IT001E00000042", cf, "Giuseppe Verdi", sw, "F2025-0100", amount, nil) + "\r\n"
	}
	amm := func(ok bool) string {
		row := "SI1;0100;" + ourPIVA + ";" + gestorePIVA + ";E250000001;SII2025A0000001;1;;\r\n"
		if !ok {
			row = "SI1;0100;" + ourPIVA + ";" + gestorePIVA + ";E250000001;;0;4;campo DATA_SWITCH non valorizzato correttamente\r\n"
		}
		return "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n" + row
	}
	esitoKO := "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;ESITO;COD_CAUSALE;MOTIVAZIONE;IMPORTO_CMOR_VALIDATO;DATA_ESITO\r\n" +
		"SI1;0150;" + ourPIVA + ";" + gestorePIVA + ";E250000001;SII2025A0000001;0;7;mora non documentata;;17/10/2025\r\n"

	tests := []struct {
		name    string
		answers map[string]string // SII answers, in name order
		refused string
	}{
		{"inadmissible", map[string]string{"SI10100_20251016_0001.csv": amm(false)}, flows.StateInadmissible},
		{"rejected", map[string]string{"SI10100_20251016_0001.csv": amm(true), "SI10150_20251017_0001.csv": esitoKO}, flows.StateRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			w.drop("morosi", "morosi_1.csv", extract("95.50"))
			w.runOnce()
			for _, name := range []string{"SI10100_20251016_0001.csv", "SI10150_20251017_0001.csv"} {
				if content, ok := tt.answers[name]; ok {
					w.answer(name, content)
					w.now = w.now.Add(24 * time.Hour)
					w.runOnce()
				}
			}
			old := w.practice("E250000001")
			if old.State != tt.refused {
				t.Fatalf("first filing is %s, want %s", old.State, tt.refused)
			}
			if es := w.exceptions("sii_refusal"); len(es) != 1 {
				t.Fatalf("sii_refusal exceptions before refiling: %d", len(es))
			}

			// The corrected case, dropped again: a new practice, a new code, sent.
			w.drop("morosi", "morosi_2.csv", extract("96.00"))
			w.now = w.now.Add(time.Hour)
			w.runOnce()
			again := w.practice("E250000002")
			if again.State != flows.StateSent || again.CaseKey != old.CaseKey+"#2" || again.CMOR == 0 {
				t.Fatalf("refiling: state %s key %q (first %q) CMOR %s", again.State, again.CaseKey, old.CaseKey, again.CMOR)
			}
			var data struct {
				RefileOf int64 `json:"refile_of"`
			}
			if err := json.Unmarshal(again.Data, &data); err != nil || data.RefileOf != old.ID {
				t.Errorf("refiling's refile_of = %d (%v), want %d", data.RefileOf, err, old.ID)
			}
			if o := w.practice("E250000001"); o.State != tt.refused {
				t.Errorf("the refused practice moved to %s", o.State)
			}
			hist, err := w.d.Store.PracticeHistory(context.Background(), old.ID)
			if err != nil {
				t.Fatal(err)
			}
			if last := hist[len(hist)-1]; !strings.Contains(last.Note, "filed again as CP_UTENTE E250000002") {
				t.Errorf("refused practice's last history note %q", last.Note)
			}
			if es := w.exceptions("sii_refusal"); len(es) != 0 {
				t.Errorf("sii_refusal still open after refiling: %+v", es)
			}
			var req string
			for name, content := range w.published() {
				if strings.Contains(name, "_SI10050_") && strings.Contains(content, "E250000002") {
					req = content
				}
			}
			if req == "" || strings.Contains(req, "E250000001") {
				t.Errorf("second SI1.0050 must carry E250000002 only:\n%s", req)
			}

			// The same case a third time: the refiling is SENT, so SI-D01.
			w.drop("morosi", "morosi_3.csv", extract("97.00"))
			w.now = w.now.Add(time.Hour)
			w.runOnce()
			found := false
			for _, e := range w.exceptions("row_refused") {
				if e.Rule == "SI-D01" && e.Value == "E250000002" {
					found = true
				}
			}
			if !found {
				t.Errorf("third drop: no SI-D01 against E250000002; row_refused: %+v", w.exceptions("row_refused"))
			}
			if _, err := w.d.Store.PracticeByCode(context.Background(), nil, "E250000003"); err == nil {
				t.Errorf("third drop created a practice")
			}
		})
	}
}

// A partial payment of a case not yet filed changes its credit: the practice is
// computed again (amounts, audit), stays in its state, and its history says why.
func TestUscentePartialPaymentRecomputesUnfiled(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	w.drop("morosi", "morosi_20251015.csv", e2eExtract())
	w.runOnce()
	c := w.practice("E250000003")
	if c.State != flows.StateWaitingWindow || c.Credit != flows.MustAmount("80.00") {
		t.Fatalf("C before: %s credit %s", c.State, c.Credit)
	}
	cfC := testCF("BNCLRA80A41F205")
	w.drop("incassi", "incassi_20251016.csv", "COD_POD;CF_CLIENTE;NUM_FATTURA;DATA_INCASSO;IMPORTO_INCASSATO;RESIDUO_INSOLUTO\r\n"+
		"IT001E00000043;"+cfC+";F2025-0200;16/10/2025;30.00;50.00\r\n")
	w.now = w.now.Add(24 * time.Hour)
	w.runOnce()
	c = w.practice("E250000003")
	if c.State != flows.StateWaitingWindow || c.Credit != flows.MustAmount("50.00") || c.CMOR > flows.MustAmount("50.00") || c.CMOR == 0 {
		t.Fatalf("C after a partial payment: %s credit %s CMOR %s; want WAITING_WINDOW, credit 50.00, CMOR ≤ 50.00", c.State, c.Credit, c.CMOR)
	}
	hist, err := w.d.Store.PracticeHistory(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := hist[len(hist)-1]; !strings.Contains(last.Note, "payment of 30,00") && !strings.Contains(last.Note, "payment of 30.00") || !strings.Contains(last.Note, "CMOR now") {
		t.Errorf("last history note %q", last.Note)
	}
}
