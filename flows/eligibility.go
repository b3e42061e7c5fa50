package flows

import (
	"fmt"
	"strings"
)

// Eligibility of an indemnity request (brief §5.4, conditions E1–E11), checked before a
// practice is built. CheckEligibility reports every failed condition, not just the
// first, so that one look at an exception tells a person everything to fix.

// MoraNotice is one written notice putting the customer in mora (costituzione in mora).
type MoraNotice struct {
	Date         Date   `json:",omitzero"` // date of the notice
	Channel      string `json:",omitzero"` // "RA" raccomandata A/R, "PE" PEC
	Received     Date   `json:",omitzero"` // date the customer received it (zero if unknown)
	Term         Date   `json:",omitzero"` // payment term given in the notice
	MentionsCMOR bool   `json:",omitzero"` // the notice informed the customer about a possible CMOR
	Ref          string `json:",omitzero"` // our reference of the notice
}

// Case is what an indemnity request needs: the point, the customer, the switch, the
// preconditions billing attests and the invoices behind the credit.
type Case struct {
	Sector        string `json:",omitzero"` // "E" electricity, "G" gas
	POD           string `json:",omitzero"` // electricity point (Sector E)
	PDR           string `json:",omitzero"` // gas point (Sector G)
	CustomerCF    string `json:",omitzero"` // 16-char CF of a person, or 11-digit CF of an entity
	CustomerPIVA  string `json:",omitzero"` // VAT number of a business customer
	CustomerName  string `json:",omitzero"`
	SwitchDate    Date   `json:",omitzero"` // T_sw: first day without supply by us
	Voltage       string `json:",omitzero"` // electricity: "BT", "MT" (or "AT", not eligible)
	GasUse        string `json:",omitzero"` // gas: "domestico", "condominio", "altri"
	AnnualSmc     int64  `json:",omitzero"` // gas: annual consumption in standard cubic metres
	AllPointsLost bool   `json:",omitzero"` // we lost every point of this customer (E4)

	Mora []MoraNotice `json:",omitzero"`

	ClosingInvoiceIssued bool `json:",omitzero"` // fattura di chiusura issued per TIF (E7)
	TIFIndemnitiesPaid   bool `json:",omitzero"` // TIF art. 18 automatic indemnities paid (E7)
	ComplaintsAnswered   bool `json:",omitzero"` // complaints, rectification requests answered, TIQV paid (E8)
	PointActive          bool `json:",omitzero"` // the point is still active (E10)
	Voltura              bool `json:",omitzero"` // the point changed holder (E10)

	Invoices          []Invoice    `json:",omitzero"`
	Spend             []MonthSpend `json:",omitzero"`
	PreviousCMOR      Amount       `json:",omitzero"` // uncollected CMOR previously charged to the customer
	PreviousCPGestore string       `json:",omitzero"` // CP_GESTORE of that earlier practice
}

// Gas consumption limits of E2, in Smc per year.
const (
	GasLimitCondominioSmc = 200_000
	GasLimitAltriSmc      = 50_000
)

// Rule ids used by CheckEligibility besides E1–E11.
const (
	RuleWindowWait = "E3-WAIT" // the window is not open yet: hold, not refuse
	RuleIDSector   = "ID-SECTOR"
	RuleIDPOD      = "ID-POD"
	RuleIDPDR      = "ID-PDR"
	RuleIDCF       = "ID-CF"
	RuleIDPIVA     = "ID-PIVA"
	RuleIDCPGest   = "ID-CP-GESTORE"
)

// CheckEligibility checks a case on requestDate (the day the request would be filed)
// and computes its CMOR. It returns the computation and every finding: identifier
// problems (ID-*), failed conditions (E1–E11, severity "error") and warnings. A case
// whose window is not open yet gets a single RuleWindowWait warning on DATA_SWITCH
// whose Value, as for every finding on that field, is the switch date as read
// (GG/MM/AAAA); its message gives the opening date, until which the caller holds the
// practice.
func CheckEligibility(c Case, requestDate Date, p CMORParams) (CMORResult, []Finding) {
	var fl findingList
	fail, warn := fl.fail, fl.warn
	checkPoint(&fl, c, p)
	checkCustomer(&fl, c)

	// E3: the request window around the switch.
	if c.SwitchDate.IsZero() {
		fail("E11", "DATA_SWITCH", "", "switch date missing")
	} else {
		open, end := RequestWindow(c.SwitchDate, p)
		switch {
		case requestDate.Before(open):
			warn(RuleWindowWait, "DATA_SWITCH", c.SwitchDate.String(),
				"request window opens on %s (switch %s + %d months); hold the practice until then", open, c.SwitchDate, p.WindowOpenMonths)
		case requestDate.After(end):
			fail("E3", "DATA_SWITCH", c.SwitchDate.String(),
				"request window closed on %s (%s rule); a request on %s is too late", end, p.WindowRule, requestDate)
		}
	}

	// E4: every point of the customer lost.
	if !c.AllPointsLost {
		fail("E4", "TUTTI_PUNTI_PERSI", "NO", "the customer still has points supplied by us; the indemnity needs the loss of all of them")
	}

	// E5: at least one notice that is in writing, mentions the CMOR, predates the
	// request and whose payment term has expired.
	// A case held for its window is filed when the window opens: judge the notice
	// as of the day the request will go out, not today.
	moraDay := requestDate
	if !c.SwitchDate.IsZero() {
		if open, _ := RequestWindow(c.SwitchDate, p); open.After(moraDay) {
			moraDay = open
		}
	}
	fl = append(fl, checkMora(c.Mora, moraDay)...)

	// E6, E9: the computation itself.
	// Without a switch date there is no window to compute in (E11 above says so).
	var r CMORResult
	if !c.SwitchDate.IsZero() {
		r = ComputeCMOR(c.SwitchDate, c.Invoices, c.Spend, c.PreviousCMOR, p)
	}
	if len(c.Invoices) == 0 {
		fail("E11", "NUM_FATTURA", "", "no invoices: the request must list the unpaid invoices behind the credit")
	}
	fl = append(fl, r.Findings...)
	if c.PreviousCMOR > 0 {
		if strings.TrimSpace(c.PreviousCPGestore) == "" {
			warn("E11", "CP_GESTORE_CMOR_PRECEDENTE", "", "previous CMOR %s given without the CP_GESTORE of its practice", c.PreviousCMOR)
		}
	}
	if strings.TrimSpace(c.PreviousCPGestore) != "" {
		if err := ValidateCPGestore(c.PreviousCPGestore, false); err != nil {
			fail(RuleIDCPGest, "CP_GESTORE_CMOR_PRECEDENTE", c.PreviousCPGestore, "%v", err)
		}
	}

	checkAttested(&fl, c)
	return r, fl
}

// findingList collects the findings of an eligibility check.
type findingList []Finding

func (l *findingList) fail(rule, field, value, format string, args ...any) {
	*l = append(*l, Finding{Rule: rule, Field: field, Value: value, Severity: "error", Message: fmt.Sprintf(format, args...)})
}

func (l *findingList) warn(rule, field, value, format string, args ...any) {
	*l = append(*l, Finding{Rule: rule, Field: field, Value: value, Severity: "warning", Message: fmt.Sprintf(format, args...)})
}

// checkPoint checks the point (POD or PDR) and, with E1/E2, what the sector asks of it.
func checkPoint(fl *findingList, c Case, p CMORParams) {
	// Identifiers and the point, with E1/E2 for the sector.
	sector := strings.ToUpper(strings.TrimSpace(c.Sector))
	switch sector {
	case "E":
		if strings.TrimSpace(c.POD) == "" {
			fl.fail("E11", "COD_POD", "", "electricity case without a POD")
		} else if w, err := ValidatePOD(c.POD, p.StrictPOD); err != nil {
			fl.fail(RuleIDPOD, "COD_POD", c.POD, "%v", err)
		} else if w != "" {
			fl.warn(RuleIDPOD, "COD_POD", c.POD, "%s", w)
		}
		if strings.TrimSpace(c.PDR) != "" {
			fl.fail(RuleIDPDR, "COD_PDR", c.PDR, "electricity case also carries a PDR; give exactly one point")
		}
		switch v := strings.ToUpper(strings.TrimSpace(c.Voltage)); v {
		case "BT", "MT":
		case "":
			fl.fail("E1", "TENSIONE", "", "voltage level missing; only BT and MT points are eligible")
		default:
			fl.fail("E1", "TENSIONE", c.Voltage, "voltage level %s is not eligible; only BT and MT points are", v)
		}
	case "G":
		if strings.TrimSpace(c.PDR) == "" {
			fl.fail("E11", "COD_PDR", "", "gas case without a PDR")
		} else if err := ValidatePDR(c.PDR); err != nil {
			fl.fail(RuleIDPDR, "COD_PDR", c.PDR, "%v", err)
		}
		if strings.TrimSpace(c.POD) != "" {
			fl.fail(RuleIDPOD, "COD_POD", c.POD, "gas case also carries a POD; give exactly one point")
		}
		smc := fmt.Sprint(c.AnnualSmc)
		switch use := strings.ToLower(strings.TrimSpace(c.GasUse)); {
		case c.AnnualSmc < 0:
			fl.fail("E2", "CONSUMO_ANNUO_SMC", smc, "annual consumption is negative")
		case use == "domestico":
		case use == "condominio":
			if c.AnnualSmc > GasLimitCondominioSmc {
				fl.fail("E2", "CONSUMO_ANNUO_SMC", smc, "condominio uso domestico consumes %d Smc/year, above the %d limit", c.AnnualSmc, GasLimitCondominioSmc)
			}
		case use == "altri":
			if c.AnnualSmc > GasLimitAltriSmc {
				fl.fail("E2", "CONSUMO_ANNUO_SMC", smc, "other uses consume %d Smc/year, above the %d limit", c.AnnualSmc, GasLimitAltriSmc)
			}
		case use == "":
			fl.fail("E2", "USO_GAS", "", "gas use missing; expected domestico, condominio or altri")
		default:
			fl.fail("E2", "USO_GAS", c.GasUse, "gas use %q is not domestico, condominio or altri", c.GasUse)
		}
	default:
		fl.fail(RuleIDSector, "SETTORE", c.Sector, "sector must be E (electricity) or G (gas)")
	}
}

// checkCustomer checks the customer: a CF or a P.IVA (E11), each valid if present.
func checkCustomer(fl *findingList, c Case) {
	// The customer: a CF or a P.IVA (E11), each valid if present.
	cf, piva := strings.TrimSpace(c.CustomerCF), strings.TrimSpace(c.CustomerPIVA)
	if cf == "" && piva == "" {
		fl.fail("E11", "CF_CLIENTE", "", "customer has neither codice fiscale nor partita IVA")
	}
	if cf != "" {
		if err := ValidateCF(cf); err != nil {
			fl.fail(RuleIDCF, "CF_CLIENTE", c.CustomerCF, "%v", err)
		}
	}
	if piva != "" {
		if err := ValidatePIVA(piva); err != nil {
			fl.fail(RuleIDPIVA, "PIVA_CLIENTE", c.CustomerPIVA, "%v", err)
		}
	}
}

// checkAttested checks the preconditions billing attests (E7, E8, E10).
func checkAttested(fl *findingList, c Case) {
	// E7, E8, E10: preconditions billing attests.
	if !c.ClosingInvoiceIssued {
		fl.fail("E7", "FATTURA_CHIUSURA", "NO", "closing invoice (fattura di chiusura, TIF) not issued")
	}
	if !c.TIFIndemnitiesPaid {
		fl.fail("E7", "INDENNIZZI_TIF", "NO", "TIF art. 18 automatic indemnities not paid")
	}
	if !c.ComplaintsAnswered {
		fl.fail("E8", "RECLAMI_EVASI", "NO", "complaints or rectification requests unanswered, or TIQV indemnities unpaid")
	}
	if !c.PointActive {
		fl.fail("E10", "PUNTO_ATTIVO", "NO", "the point is no longer active")
	}
	if c.Voltura {
		fl.fail("E10", "VOLTURA", "SI", "the point changed holder (voltura)")
	}
}

// checkMora returns nothing when at least one notice satisfies E5, otherwise an E5
// finding for every problem of every notice.
func checkMora(notices []MoraNotice, requestDate Date) []Finding {
	if len(notices) == 0 {
		return []Finding{{Rule: "E5", Field: "DATA_COSTITUZIONE_MORA", Severity: "error",
			Message: "no mora notice: the customer must be put in mora in writing before the request"}}
	}
	var fs []Finding
	for i, n := range notices {
		label := fmt.Sprintf("mora notice %d", i+1)
		if n.Ref != "" {
			label += " (" + n.Ref + ")"
		}
		var problems []Finding
		bad := func(field, value, format string, args ...any) {
			problems = append(problems, Finding{Rule: "E5", Field: field, Value: value, Severity: "error",
				Message: label + ": " + fmt.Sprintf(format, args...)})
		}
		switch {
		case n.Date.IsZero():
			bad("DATA_COSTITUZIONE_MORA", "", "date missing")
		case !n.Date.Before(requestDate):
			bad("DATA_COSTITUZIONE_MORA", n.Date.String(), "dated %s, not before the request date %s", n.Date, requestDate)
		}
		switch ch := strings.ToUpper(strings.TrimSpace(n.Channel)); ch {
		case "RA", "PE":
		default:
			bad("MEZZO", n.Channel, "channel %q is neither RA (raccomandata A/R) nor PE (PEC)", n.Channel)
		}
		if !n.MentionsCMOR {
			bad("INFO_CMOR", "NO", "the notice did not inform the customer about the CMOR")
		}
		switch {
		case n.Term.IsZero():
			bad("TERMINE_PAGAMENTO", "", "payment term missing")
		case !n.Term.Before(requestDate):
			bad("TERMINE_PAGAMENTO", n.Term.String(), "payment term %s has not expired before the request date %s", n.Term, requestDate)
		case !n.Date.IsZero() && n.Term.Before(n.Date):
			bad("TERMINE_PAGAMENTO", n.Term.String(), "payment term %s is before the notice date %s", n.Term, n.Date)
		}
		if !n.Received.IsZero() {
			switch {
			case !n.Received.Before(requestDate):
				bad("DATA_RICEVIMENTO", n.Received.String(), "received on %s, not before the request date %s", n.Received, requestDate)
			case !n.Date.IsZero() && n.Received.Before(n.Date):
				bad("DATA_RICEVIMENTO", n.Received.String(), "received on %s, before the notice date %s", n.Received, n.Date)
			}
		}
		if len(problems) == 0 {
			return nil // one good notice is enough
		}
		fs = append(fs, problems...)
	}
	return fs
}
