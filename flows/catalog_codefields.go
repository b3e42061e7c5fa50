package flows

import (
	"fmt"
	"sort"
	"sync"
)

// The catalog is data, but the code reads and sets some fields by their logical name
// (rec.Get("IMPORTO_CMOR"), the rows the builders write). A custom catalog that drops
// or renames one of them would not fail: Record.Get would return "" and a builder would
// leave the value out, and the daemon would quietly do the wrong thing. So Check
// compares a loaded catalog with this table, which lists, per flow of the default
// catalog (SII flows and billing input kinds), the field names the code uses. A
// counterpart that spells a column differently is served by Field.Column, which keeps
// the logical name.
//
// Keep it in step with the code: the names come from the string constants used
// against records in flows/*.go (Mor*, Ent*, ReqRows, DecideAnswer) and daemon/*.go
// (sii.go, uscente.go, entrante.go). TestCodeFieldsExistInDefaultCatalog checks that
// every name is a field of its flow in the default catalog.

// codeFields: flow or input key → logical field names the code uses. Every SII answer
// handler reads the addressee (PIVA_UTENTE), the practice codes and DecideAnswer's
// cause, reason and refusal flags; each flow lists those of them it has.
var codeFields = map[string][]string{
	// ---- uscente, produced (flows/uscente.go ReqRows; daemon/uscente.go requestBuilder)
	"REQ": sii("PIVA_UTENTE", "PIVA_GESTORE", "CP_UTENTE", "PIVA_CC_USCENTE", "SETTORE", "COD_POD", "COD_PDR",
		"CF_CLIENTE", "PIVA_CLIENTE", "DENOMINAZIONE", "DATA_SWITCH", "IMPORTO_CREDITO", "IMPORTO_INDENNIZZO",
		"STIMA_SPESA_4_MESI", "IMPORTO_CMOR_PRECEDENTE", "CP_GESTORE_CMOR_PRECEDENTE", "NUM_FATTURA",
		"DATA_EMISSIONE", "DATA_SCADENZA", "PERIODO_DA", "PERIODO_A", "IMPORTO_FATTURA", "IMPORTO_INSOLUTO",
		"TIPO_LETTURA", "DATA_COSTITUZIONE_MORA", "MEZZO", "DATA_RICEVIMENTO", "TERMINE_PAGAMENTO",
		"RIF_COMUNICAZIONE", "INFO_CMOR"),
	"ANN_REQ": sii("PIVA_UTENTE", "PIVA_GESTORE", "CP_UTENTE", "CP_GESTORE", "COD_CAUSALE_ANNULLAMENTO",
		"MOTIVAZIONE", "DATA_EVENTO"),
	"REFUND_ACK": sii("PIVA_UTENTE", "PIVA_GESTORE", "CP_UTENTE", "CP_GESTORE", "DATA_RESTITUZIONE",
		"IMPORTO_RESTITUITO", "MODALITA"),

	// ---- uscente answers (daemon/sii.go; flows/practice_state.go DecideAnswer)
	"REQ_AMM": sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "VERIFICA_AMM", "COD_CAUSALE", "MOTIVAZIONE"),
	"REQ_ESITO": sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "ESITO", "COD_CAUSALE", "MOTIVAZIONE",
		"IMPORTO_CMOR_VALIDATO"),
	"SUSP_NOTIF": sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "MOTIVO_SOSPENSIONE", "DATA_EVENTO"),
	"ANN_AMM":    sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "VERIFICA_AMM", "COD_CAUSALE", "MOTIVAZIONE"),
	"ANN_NOTIF": sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "COD_CAUSALE_ANNULLAMENTO", "MOTIVAZIONE",
		"DATA_ANNULLAMENTO", "FLAG_INDENNIZZO_GIA_EROGATO"),
	"UPD_NOTIF": sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "IMPORTO_CMOR_PRECEDENTE",
		"IMPORTO_CMOR_AGGIORNATO", "DELTA", "DATA_AGGIORNAMENTO"),

	// ---- entrante (flows/entrante.go Ent*; daemon/entrante.go)
	"NOTIF_ENTR": sii("PIVA_UTENTE", "CP_GESTORE", "SETTORE", "COD_POD", "COD_PDR", "CF_CLIENTE", "PIVA_CLIENTE",
		"IMPORTO_CMOR", "FLAG_CMOR_PRECEDENTE_NON_RISCOSSO", "DATA_NOTIFICA", "TERMINE_SOSPENSIONE"),
	"SUSP_REQ": sii("PIVA_UTENTE", "PIVA_GESTORE", "CP_UTENTE", "CP_GESTORE", "COD_POD", "COD_PDR",
		"MOTIVO_SOSPENSIONE", "DATA_RICHIESTA_SOSPENSIONE_FORNITURA", "COD_PRATICA_SOSPENSIONE_DISTRIBUTORE",
		"CMOR_INCASSATO"),
	"SUSP_AMM":   sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "VERIFICA_AMM", "COD_CAUSALE", "MOTIVAZIONE"),
	"SUSP_ESITO": sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "ESITO", "COD_CAUSALE", "MOTIVAZIONE"),
	"SUSP_REVOKE": sii("PIVA_UTENTE", "PIVA_GESTORE", "CP_UTENTE", "CP_GESTORE", "MOTIVO_REVOCA", "DATA_REVOCA",
		"NOTE"),
	"REND": sii("PIVA_UTENTE", "PIVA_GESTORE", "CP_UTENTE", "CP_GESTORE", "NUM_FATTURA_CMOR", "DATA_FATTURA",
		"IMPORTO_FATTURATO", "DATA_SCADENZA", "STATO_INCASSO", "IMPORTO_INCASSATO", "DATA_INCASSO"),
	"REND_AMM": sii("PIVA_UTENTE", "CP_UTENTE", "CP_GESTORE", "VERIFICA_AMM", "COD_CAUSALE", "MOTIVAZIONE"),

	// ---- billing input kinds (flows/uscente.go Mor*; daemon/uscente.go, daemon/entrante.go)
	"uscente.morosi": {MorSector, MorPOD, MorPDR, MorCF, MorPIVA, MorName, MorSwitch, MorVoltage, MorGasUse,
		MorAnnualSmc, MorAllLost, MorInvNumber, MorInvIssued, MorInvDue, MorInvFrom, MorInvTo, MorInvAmount,
		MorInvUnpaid, MorInvRAI, MorInvReading, MorInvCong, MorInvRecon, MorMoraDate, MorMoraChannel,
		MorMoraReceived, MorMoraTerm, MorMoraCMOR, MorMoraRef, MorClosing, MorTIF, MorComplaints, MorActive,
		MorVoltura, MorSpend, MorPrevious, MorPrevCP},
	"uscente.incassi": {"CP_UTENTE", "COD_POD", "COD_PDR", "CF_CLIENTE", "PIVA_CLIENTE", "NUM_FATTURA",
		"DATA_INCASSO", "IMPORTO_INCASSATO", "RESIDUO_INSOLUTO", "RIF_INCASSO"},
	"uscente.annullamenti": {"CP_UTENTE", "CP_GESTORE", "COD_CAUSALE_ANNULLAMENTO", "MOTIVAZIONE", "DATA_EVENTO",
		"RICHIESTO_DA"},
	"uscente.rimborsi": {"CP_UTENTE", "CP_GESTORE", "DATA_RESTITUZIONE", "IMPORTO_RESTITUITO", "MODALITA"},
	"entrante.fatturato": {EntCPGestore, EntPOD, EntPDR, EntCF, EntPIVA, EntInvoice, EntInvoiceDate, EntBilled,
		EntDueDate, EntCollState, EntCollAmount, EntCollDate},
	// Also read when present, not in the default layout: CF_CLIENTE, PIVA_CLIENTE,
	// MOTIVO_REVOCA, DATA_REVOCA.
	"entrante.sospensioni": {EntCPGestore, EntPOD, EntPDR, EntSuspCause, EntSuspDate, EntSuspDSORef,
		EntCMORCollected, EntReactivation, EntNote},
}

// sii adds the fields the codecs themselves use by name in every SII flow: the XML root
// attributes and the content-based recognition of a received file.
func sii(names ...string) []string {
	return append([]string{"COD_SERVIZIO", "COD_FLUSSO"}, names...)
}

// CodeFields returns the logical field names the code reads or sets for a flow or
// input kind of the default catalog (nil for a key the code does not know). The slice
// is a copy.
func CodeFields(key string) []string {
	return append([]string(nil), codeFields[key]...)
}

// CodeFieldKeys returns the flow and input keys CodeFields knows, sorted.
func CodeFieldKeys() []string {
	keys := make([]string, 0, len(codeFields))
	for k := range codeFields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	pristineOnce sync.Once
	pristine     *Catalog
)

// pristineDefault is the embedded catalog parsed once, read-only (never handed out:
// DefaultCatalog gives callers their own copy).
func pristineDefault() *Catalog {
	pristineOnce.Do(func() { pristine = DefaultCatalog() })
	return pristine
}

// RuleCatalogCodeField is the rule of a catalog that lacks a field the code uses.
const RuleCatalogCodeField = "CATALOG-CODE-FIELD"

// checkCodeFields reports, for each flow of the default catalog that c still has,
// every field the code uses that c's flow lacks: the custom catalog dropped it or
// renamed it. When a field of c's flow looks like the renamed one (a name the default
// flow does not have, of the same type, preferably at the same position) the message
// names it and the column to set.
func (c *Catalog) checkCodeFields(add func(Finding)) {
	def := pristineDefault()
	for _, key := range CodeFieldKeys() {
		f, df := c.Flow(key), def.Flow(key)
		if f == nil {
			f, df = c.Input(key), def.Input(key)
		}
		if f == nil || f.layout == nil {
			continue // a replacing catalog without the flow: the daemon refuses its files by name
		}
		for _, name := range codeFields[key] {
			if f.layout.Index(name) >= 0 {
				continue
			}
			what := "flow " + f.Key
			if f.input {
				what = "input kind " + f.Key
			} else if f.Service != "" {
				what += " (" + f.ID() + ")"
			}
			msg := fmt.Sprintf("%s has no field %s, which cmord reads or writes by that name", what, name)
			if cand := renamedCandidate(f, df, name); cand != nil {
				add(c.finding(f, cand, RuleCatalogCodeField, name, fmt.Sprintf(
					"%s; field %s looks like it renamed it: keep the name %s and set column = %q to rename it on the wire",
					msg, cand.Name, name, cand.WireName())))
				continue
			}
			fnd := c.finding(f, nil, RuleCatalogCodeField, name,
				msg+": keep the name "+name+" and set column = \"...\" to rename it on the wire")
			fnd.Field = f.Key + "." + name
			add(fnd)
		}
	}
}

// renamedCandidate guesses which field of f replaced the default flow's field name: a
// field whose name the default flow does not have, with the same type, at the same
// position if there is one, else the only such field.
func renamedCandidate(f, df *Flow, name string) *Field {
	if df == nil || df.layout == nil {
		return nil
	}
	pos := df.layout.Index(name)
	if pos < 0 {
		return nil
	}
	typ := df.Fields[pos].Type
	var only *Field
	n := 0
	for i := range f.Fields {
		fd := &f.Fields[i]
		if df.layout.Index(fd.Name) >= 0 || fd.Type != typ {
			continue
		}
		if i == pos {
			return fd
		}
		only = fd
		n++
	}
	if n == 1 {
		return only
	}
	return nil
}
