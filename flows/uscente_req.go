package flows

import (
	"strings"
)

// ReqHeader is what a REQ request needs besides the case: who files it and its code.
type ReqHeader struct {
	PIVAUtente   string
	PIVAGestore  string
	PIVACCUscita string // the CC when it files through a UDD (PIVA_CC_USCENTE)
	CPUtente     string
}

// Fields is the header as REQ field names and values (empty values included), in the
// order the fields are set: the one list ReqRows, FillReqHeader and the build share.
func (h ReqHeader) Fields() [4][2]string {
	return [4][2]string{{"PIVA_UTENTE", h.PIVAUtente}, {"PIVA_GESTORE", h.PIVAGestore}, {"CP_UTENTE", h.CPUtente}, {"PIVA_CC_USCENTE", h.PIVACCUscita}}
}

// ReqRows returns the values of the REQ rows of one request, brief §3.4 CSV shape (a):
// one row per invoice, with the header, customer, amounts and mora columns repeated.
// Only invoices counted in the credit are sent (the others are in the audit trail).
// The mora notice given is the first that satisfies E5 (or the first one).
func ReqRows(h ReqHeader, c Case, a *CMORAudit) []map[string]string {
	base := map[string]string{}
	var rows []map[string]string
	reqFields(h, c, a, func(row int, id reqField, value string) {
		name := reqFieldNames[id]
		if row < 0 {
			base[name] = value
			return
		}
		if row == len(rows) {
			m := make(map[string]string, len(base)+8)
			for k, v := range base {
				m[k] = v
			}
			rows = append(rows, m)
		}
		if value != "" {
			rows[row][name] = value
		}
	})
	return rows
}

// ReqRecords returns ReqRows as records of f, the REQ flow of the catalog in use: the
// form the handler stores with a ready request and the build encodes, without a map
// per row. A value for a field f does not have is refused as the flow's writer refuses
// it (a *RecordError naming the field), so a catalog without it refuses the request.
func ReqRecords(f *Flow, h ReqHeader, c Case, a *CMORAudit) ([]Record, error) {
	tmpl := NewRecord(f)
	var recs []Record
	var fs []Finding
	reqFields(h, c, a, func(row int, id reqField, value string) {
		i := f.layout.req[id]
		if i < 0 {
			fs = append(fs, Finding{Field: reqFieldNames[id], Rule: RuleCSVColumn, Value: value, Message: "flow " + f.Key + " has no such field"})
			return
		}
		if row < 0 {
			tmpl.Values[i] = value
			return
		}
		if row == len(recs) {
			r := NewRecord(f)
			copy(r.Values, tmpl.Values)
			recs = append(recs, r)
		}
		recs[row].Values[i] = value
	})
	if len(fs) > 0 {
		return nil, &RecordError{Findings: fs}
	}
	return recs, nil
}

// FillReqHeader sets the header fields of REQ records (as ReqRows sets them from h):
// the handler stores records without them, the build fills them from the
// configuration of the day it writes the file.
func FillReqHeader(recs []Record, h ReqHeader) error {
	var fs []Finding
	for _, kv := range h.Fields() {
		if kv[1] == "" {
			continue
		}
		for _, r := range recs {
			if err := r.Set(kv[0], kv[1]); err != nil {
				fs = append(fs, Finding{Field: kv[0], Rule: RuleCSVColumn, Value: kv[1], Message: "flow has no such field"})
				break
			}
		}
	}
	if len(fs) > 0 {
		return &RecordError{Findings: fs}
	}
	return nil
}

// reqFields calls set with every non-empty value of the REQ rows of one request: first
// the values every row repeats (row -1), then each counted invoice's own (rows 0, 1,
// ... in order; a row's first value starts it).
func reqFields(h ReqHeader, c Case, a *CMORAudit, set func(row int, id reqField, value string)) {
	put := func(row int, id reqField, value string) {
		if value != "" {
			set(row, id, value)
		}
	}
	put(-1, rPIVAUtente, h.PIVAUtente)
	put(-1, rPIVAGestore, h.PIVAGestore)
	put(-1, rCPUtente, h.CPUtente)
	put(-1, rPIVACCUscente, h.PIVACCUscita)
	put(-1, rSector, c.Sector)
	put(-1, rPOD, c.POD)
	put(-1, rPDR, c.PDR)
	put(-1, rCF, c.CustomerCF)
	put(-1, rPIVA, c.CustomerPIVA)
	put(-1, rName, c.CustomerName)
	put(-1, rSwitch, c.SwitchDate.String())
	if a != nil {
		put(-1, rCredit, a.Credit.String())
		put(-1, rCMOR, a.CMOR.String())
		put(-1, rEstimate, a.Estimate.String())
		if a.Previous > 0 {
			put(-1, rPrevious, a.Previous.String())
			put(-1, rPrevCP, c.PreviousCPGestore)
		}
	}
	if n, ok := chosenMora(c.Mora, a); ok {
		put(-1, rMoraDate, n.Date.String())
		put(-1, rMoraChannel, strings.ToUpper(n.Channel))
		put(-1, rMoraReceived, n.Received.String())
		put(-1, rMoraTerm, n.Term.String())
		put(-1, rMoraRef, n.Ref)
		if n.MentionsCMOR {
			put(-1, rMoraCMOR, "S")
		} else {
			put(-1, rMoraCMOR, "N")
		}
	}
	row := 0
	for i := range c.Invoices {
		inv := &c.Invoices[i]
		if a != nil && !counted(a.Counted, inv.Number) {
			continue
		}
		// NUM_FATTURA first, even when empty, so that every counted invoice is a row.
		set(row, rInvNumber, inv.Number)
		put(row, rInvIssued, inv.Issued.String())
		put(row, rInvDue, inv.Due.String())
		put(row, rInvFrom, inv.PeriodFrom.String())
		put(row, rInvTo, inv.PeriodTo.String())
		put(row, rInvAmount, inv.Amount.String())
		put(row, rInvUnpaid, inv.Unpaid.String())
		put(row, rInvReading, strings.ToUpper(inv.Reading))
		row++
	}
}

func counted(numbers []string, n string) bool {
	for _, x := range numbers {
		if x == n {
			return true
		}
	}
	return false
}

func chosenMora(ns []MoraNotice, a *CMORAudit) (MoraNotice, bool) {
	if len(ns) == 0 {
		return MoraNotice{}, false
	}
	if a != nil {
		for _, n := range ns {
			if len(checkMora([]MoraNotice{n}, a.RequestDate)) == 0 {
				return n, true
			}
		}
	}
	return ns[0], true
}

// reqField is a field of the REQ rows reqFields gives, by its place in reqFieldNames:
// ReqRecords finds its position in the flow's layout once (Layout.req), not by name
// for every value of every request.
type reqField uint8

const (
	rPIVAUtente reqField = iota
	rPIVAGestore
	rCPUtente
	rPIVACCUscente
	rSector
	rPOD
	rPDR
	rCF
	rPIVA
	rName
	rSwitch
	rCredit
	rCMOR
	rEstimate
	rPrevious
	rPrevCP
	rMoraDate
	rMoraChannel
	rMoraReceived
	rMoraTerm
	rMoraRef
	rMoraCMOR
	rInvNumber
	rInvIssued
	rInvDue
	rInvFrom
	rInvTo
	rInvAmount
	rInvUnpaid
	rInvReading
	numReqFields
)

var reqFieldNames = [numReqFields]string{
	rPIVAUtente: "PIVA_UTENTE", rPIVAGestore: "PIVA_GESTORE", rCPUtente: "CP_UTENTE", rPIVACCUscente: "PIVA_CC_USCENTE",
	rSector: "SETTORE", rPOD: "COD_POD", rPDR: "COD_PDR", rCF: "CF_CLIENTE", rPIVA: "PIVA_CLIENTE", rName: "DENOMINAZIONE",
	rSwitch: "DATA_SWITCH", rCredit: "IMPORTO_CREDITO", rCMOR: "IMPORTO_INDENNIZZO", rEstimate: "STIMA_SPESA_4_MESI",
	rPrevious: "IMPORTO_CMOR_PRECEDENTE", rPrevCP: "CP_GESTORE_CMOR_PRECEDENTE", rMoraDate: "DATA_COSTITUZIONE_MORA",
	rMoraChannel: "MEZZO", rMoraReceived: "DATA_RICEVIMENTO", rMoraTerm: "TERMINE_PAGAMENTO", rMoraRef: "RIF_COMUNICAZIONE",
	rMoraCMOR: "INFO_CMOR", rInvNumber: "NUM_FATTURA", rInvIssued: "DATA_EMISSIONE", rInvDue: "DATA_SCADENZA",
	rInvFrom: "PERIODO_DA", rInvTo: "PERIODO_A", rInvAmount: "IMPORTO_FATTURA", rInvUnpaid: "IMPORTO_INSOLUTO",
	rInvReading: "TIPO_LETTURA",
}

// reqPositions are the positions of the REQ fields in a layout of names, -1 for a
// field it does not have.
func reqPositions(index map[string]int) (pos [numReqFields]int) {
	for f, name := range reqFieldNames {
		pos[f] = -1
		if i, ok := index[name]; ok {
			pos[f] = i
		}
	}
	return pos
}
