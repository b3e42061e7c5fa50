package digest

import (
	"slices"
	"strings"

	"github.com/cmord/cmord/config"

	"github.com/cmord/cmord/flows"
)

// The names below are what a compliance officer reads in the digest and in the exports
// (daemon/export): one table per thing, here, so the two never disagree.

// FlowTitles name the flows and billing input kinds of the embedded catalog for
// people. The catalog's own descriptions are English notes for whoever maintains it;
// the SII's service and code come from the catalog in force (FlowName).
var FlowTitles = map[string]Text{
	"REQ":         {"Richiesta indennizzo", "Indemnity request"},
	"REQ_AMM":     {"Ammissibilità richiesta", "Request admissibility"},
	"REQ_ESITO":   {"Esito richiesta", "Request outcome"},
	"NOTIF_ENTR":  {"Notifica CMOR all'entrante", "CMOR notice to the entrante"},
	"SUSP_REQ":    {"Richiesta sospensione", "Suspension request"},
	"SUSP_AMM":    {"Ammissibilità sospensione", "Suspension admissibility"},
	"SUSP_ESITO":  {"Esito sospensione", "Suspension outcome"},
	"SUSP_REVOKE": {"Revoca sospensione", "Suspension revocation"},
	"SUSP_NOTIF":  {"Notifica sospensione o ripresa", "Suspension or resumption notice"},
	"ANN_REQ":     {"Richiesta annullamento", "Annulment request"},
	"ANN_AMM":     {"Ammissibilità annullamento", "Annulment admissibility"},
	"ANN_NOTIF":   {"Notifica annullamento", "Annulment notice"},
	"REFUND_ACK":  {"Comunicazione rimborso", "Refund acknowledgement"},
	"UPD_NOTIF":   {"Aggiornamento CMOR", "CMOR update"},
	"REND":        {"Rendicontazione CMOR", "CMOR report"},
	"REND_AMM":    {"Ammissibilità rendicontazione", "Report admissibility"},
	// Billing inputs (the catalog's [[inputs]]).
	"uscente.morosi":        {"Crediti insoluti", "Unpaid invoices"},
	"uscente.incassi":       {"Incassi dai clienti", "Customer payments"},
	"uscente.annullamenti":  {"Annullamenti dell'operatore", "Operator annulments"},
	"uscente.rimborsi":      {"Rimborsi ai clienti", "Customer refunds"},
	"entrante.fatturato":    {"CMOR fatturati e incassati", "CMOR billed and collected"},
	"entrante.sospensioni":  {"Sospensioni per morosità", "Suspensions for non-payment"},
	"entrante.annullamenti": {"Annullamenti entranti dell'operatore", "Operator entrante annulments"},
	// Exports for billing (config.ExportNames): files cmord writes for the billing system.
	"cmor_to_charge": {"CMOR da addebitare ai clienti", "CMOR to charge to customers"},
	"credit_notes":   {"Note di credito ai clienti", "Credit notes to customers"},
	// Files the SII sent that match no flow of the catalog.
	"unknown": {"File non riconosciuti", "Unrecognised files"},
}

// exportPrefix names where an export goes, as billingPrefix names where an input comes from.
var exportPrefix = Text{"Export per la fatturazione", "Export for billing"}

// billingPrefix names where an input kind comes from, as the SII code names a flow.
var billingPrefix = Text{"Fatturazione", "Billing"}

// FlowName names a flow or input kind for people in lang: "SI1.0050 — Richiesta
// indennizzo" for an SII flow (service and code from cat, the catalog in force; nil:
// the embedded one), "Fatturazione — Crediti insoluti" for a billing input. A key
// neither the catalog nor FlowTitles knows is returned as it is.
func FlowName(cat *flows.Catalog, key, lang string) string {
	if cat == nil {
		cat = defaultCatalog()
	}
	title := textOf(FlowTitles, key, lang)
	if f := cat.Flow(key); f != nil && f.Service != "" && f.Code != "" {
		if title == "" {
			return f.Service + "." + f.Code + " (" + key + ")"
		}
		return f.Service + "." + f.Code + " — " + title
	}
	if title == "" {
		return key
	}
	if cat.Input(key) != nil || strings.Contains(key, ".") {
		return billingPrefix.In(lang) + " — " + title
	}
	if slices.Contains(config.ExportNames, key) {
		return exportPrefix.In(lang) + " — " + title
	}
	return title
}

// flowGroup orders the rows of the digest's flow table: 0 billing inputs, 1 SII flows,
// 2 exports, 3 anything else.
func flowGroup(cat *flows.Catalog, key string) int {
	if cat == nil {
		cat = defaultCatalog()
	}
	switch {
	case cat.Input(key) != nil || strings.Contains(key, "."):
		return 0
	case cat.Flow(key) != nil:
		return 1
	case slices.Contains(config.ExportNames, key):
		return 2
	}
	return 3
}

// StateName names a practice state for people: "inviata al SII (SENT)", the words
// from StateTexts and the code that `cmord practices --state` takes. An unknown state
// is returned as it is.
func StateName(state, lang string) string { return stateLabel(state, lang) }

// SeverityName names a severity in lang ("urgente", "alta", "normale", "bassa").
func SeverityName(sev, lang string) string {
	if s := labels[langOf(lang)][sev]; s != "" && sev != "" {
		return s
	}
	return sev
}

// KindTitle is the title of an exception kind in lang, as the digest shows it.
func KindTitle(kind, lang string) string { return Info(kind).Title(lang) }
