package flows

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// The uscente side, pure: from uscente.morosi rows to cases, from a case to the rows of
// an SI1.0050 request. Field names are the canonical names of the catalog's input kind
// "uscente.morosi" (a folder's mapping turns billing headers into them) and of the REQ
// flow; they are constants here because the domain needs to know what each one means.

// uscente.morosi fields.
const (
	MorSector       = "SETTORE"
	MorPOD          = "COD_POD"
	MorPDR          = "COD_PDR"
	MorCF           = "CF_CLIENTE"
	MorPIVA         = "PIVA_CLIENTE"
	MorName         = "DENOMINAZIONE"
	MorSwitch       = "DATA_SWITCH"
	MorVoltage      = "TENSIONE"
	MorGasUse       = "USO_GAS"
	MorAnnualSmc    = "CONSUMO_ANNUO_SMC"
	MorAllLost      = "TUTTI_PUNTI_PERSI"
	MorInvNumber    = "NUM_FATTURA"
	MorInvIssued    = "DATA_EMISSIONE"
	MorInvDue       = "DATA_SCADENZA"
	MorInvFrom      = "PERIODO_DA"
	MorInvTo        = "PERIODO_A"
	MorInvAmount    = "IMPORTO_FATTURA"
	MorInvUnpaid    = "IMPORTO_INSOLUTO"
	MorInvRAI       = "IMPORTO_RAI"
	MorInvReading   = "TIPO_LETTURA"
	MorInvCong      = "CONGUAGLIO"
	MorInvRecon     = "RICOSTRUZIONE"
	MorMoraDate     = "DATA_MORA"
	MorMoraChannel  = "MEZZO_MORA"
	MorMoraReceived = "DATA_RICEVIMENTO_MORA"
	MorMoraTerm     = "TERMINE_MORA"
	MorMoraCMOR     = "INFO_CMOR"
	MorMoraRef      = "RIF_MORA"
	MorClosing      = "FATTURA_CHIUSURA"
	MorTIF          = "INDENNIZZI_TIF_PAGATI"
	MorComplaints   = "RECLAMI_EVASI"
	MorActive       = "PUNTO_ATTIVO"
	MorVoltura      = "VOLTURA"
	MorSpend        = "SPESA_12M"
	MorPrevious     = "CMOR_PRECEDENTE"
	MorPrevCP       = "CP_GESTORE_PRECEDENTE"
)

// UscenteCaseKey is the identity of an uscente case: one point, one customer, one
// switch date ("U|point|customer|AAAA-MM-GG").
func UscenteCaseKey(point, customer string, switchDate Date) string {
	return "U|" + point + "|" + customer + "|" + switchDate.ISO()
}

// CasePoint returns the case's POD, else its PDR.
func CasePoint(c *Case) string { return firstNonEmpty(c.POD, c.PDR) }

// CaseCustomer returns the case's CF, else its P.IVA.
func CaseCustomer(c *Case) string { return firstNonEmpty(c.CustomerCF, c.CustomerPIVA) }

// MorosiKey returns the case key of one uscente.morosi row, "" when the row lacks the
// point, the customer or the switch date.
func MorosiKey(r Record) string {
	point := firstNonEmpty(r.Get(MorPOD), r.Get(MorPDR))
	cust := firstNonEmpty(r.Get(MorCF), r.Get(MorPIVA))
	sw := r.Date(MorSwitch)
	if point == "" || cust == "" || sw.IsZero() {
		return ""
	}
	return UscenteCaseKey(point, cust, sw)
}

// MorosiCase is one case gathered from consecutive rows with the same key.
type MorosiCase struct {
	Key   string
	Case  Case
	Lines []int // input lines of its rows
	// Bad is true when one of its rows had an error finding: the case is refused as a
	// whole, because a missing invoice would change the credit.
	Bad bool
}

// FirstLine returns the line of its first row.
func (m *MorosiCase) FirstLine() int {
	if len(m.Lines) == 0 {
		return 0
	}
	return m.Lines[0]
}

// AddRow merges one row into the case: case-level columns fill what is still empty,
// the invoice replaces one with the same number (a re-extract corrects it), the mora
// notice and the spend months are added unless already there.
func (m *MorosiCase) AddRow(r Record) {
	m.Lines = append(m.Lines, r.Line)
	c := &m.Case
	set := func(dst *string, field string) {
		if *dst == "" {
			*dst = r.Get(field)
		}
	}
	set(&c.Sector, MorSector)
	set(&c.POD, MorPOD)
	set(&c.PDR, MorPDR)
	set(&c.CustomerCF, MorCF)
	set(&c.CustomerPIVA, MorPIVA)
	set(&c.CustomerName, MorName)
	set(&c.Voltage, MorVoltage)
	set(&c.GasUse, MorGasUse)
	set(&c.PreviousCPGestore, MorPrevCP)
	if c.SwitchDate.IsZero() {
		c.SwitchDate = r.Date(MorSwitch)
	}
	if v := r.Get(MorAnnualSmc); v != "" && c.AnnualSmc == 0 {
		c.AnnualSmc, _ = strconv.ParseInt(v, 10, 64)
	}
	if len(m.Lines) == 1 {
		// Yes/no attestations come from the first row of the case; billing repeats them.
		// TUTTI_PUNTI_PERSI is optional: billing flags only the customers it still
		// supplies elsewhere, so an empty value means every point was lost.
		c.AllPointsLost = r.Get(MorAllLost) != "N"
		c.ClosingInvoiceIssued = r.Flag(MorClosing)
		c.TIFIndemnitiesPaid = r.Flag(MorTIF)
		c.ComplaintsAnswered = r.Flag(MorComplaints)
		c.PointActive = r.Flag(MorActive)
		c.Voltura = r.Flag(MorVoltura)
	}
	if c.PreviousCMOR == 0 {
		c.PreviousCMOR = r.Amount(MorPrevious)
	}
	if num := r.Get(MorInvNumber); num != "" {
		inv := Invoice{Number: num, Issued: r.Date(MorInvIssued), Due: r.Date(MorInvDue),
			PeriodFrom: r.Date(MorInvFrom), PeriodTo: r.Date(MorInvTo), Amount: r.Amount(MorInvAmount),
			Unpaid: r.Amount(MorInvUnpaid), RAI: r.Amount(MorInvRAI), Reading: r.Get(MorInvReading),
			Conguagliata: r.Flag(MorInvCong), Reconstruction: r.Flag(MorInvRecon)}
		c.Invoices = mergeInvoice(c.Invoices, inv)
	}
	if d := r.Date(MorMoraDate); !d.IsZero() || r.Get(MorMoraRef) != "" {
		n := MoraNotice{Date: d, Channel: r.Get(MorMoraChannel), Received: r.Date(MorMoraReceived),
			Term: r.Date(MorMoraTerm), MentionsCMOR: r.Flag(MorMoraCMOR), Ref: r.Get(MorMoraRef)}
		c.Mora = mergeMora(c.Mora, n)
	}
	if s := r.Get(MorSpend); s != "" {
		if ms, err := ParseMonthAmounts(s, false); err == nil {
			c.Spend = mergeSpend(c.Spend, ms)
		}
	}
}

func mergeInvoice(list []Invoice, inv Invoice) []Invoice {
	for i := range list {
		if list[i].Number == inv.Number {
			list[i] = inv
			return list
		}
	}
	return append(list, inv)
}

func mergeMora(list []MoraNotice, n MoraNotice) []MoraNotice {
	for i := range list {
		if list[i].Date == n.Date && list[i].Ref == n.Ref && strings.EqualFold(list[i].Channel, n.Channel) {
			list[i] = n
			return list
		}
	}
	return append(list, n)
}

func mergeSpend(list []MonthSpend, add []MonthSpend) []MonthSpend {
	for _, s := range add {
		found := false
		for i := range list {
			if list[i].Month == s.Month {
				list[i], found = s, true
				break
			}
		}
		if !found {
			list = append(list, s)
		}
	}
	return list
}

// MergeCase merges a case read earlier (e.g. stored in a practice) into m: m's rows
// win for what both have, so a new extract corrects an old one.
func (m *MorosiCase) MergeCase(old Case) {
	c := &m.Case
	for _, inv := range old.Invoices {
		if !hasInvoice(c.Invoices, inv.Number) {
			c.Invoices = append(c.Invoices, inv)
		}
	}
	for _, n := range old.Mora {
		c.Mora = mergeMoraKeep(c.Mora, n)
	}
	for _, s := range old.Spend {
		found := false
		for _, t := range c.Spend {
			if t.Month == s.Month {
				found = true
			}
		}
		if !found {
			c.Spend = append(c.Spend, s)
		}
	}
	if c.PreviousCMOR == 0 {
		c.PreviousCMOR, c.PreviousCPGestore = old.PreviousCMOR, firstNonEmpty(c.PreviousCPGestore, old.PreviousCPGestore)
	}
}

func hasInvoice(list []Invoice, number string) bool {
	for _, inv := range list {
		if inv.Number == number {
			return true
		}
	}
	return false
}

func mergeMoraKeep(list []MoraNotice, n MoraNotice) []MoraNotice {
	for _, m := range list {
		if m.Date == n.Date && m.Ref == n.Ref && strings.EqualFold(m.Channel, n.Channel) {
			return list
		}
	}
	return append(list, n)
}

// Grouper turns a stream of uscente.morosi rows, sorted by case as billing extracts
// are, into cases: consecutive rows with the same key make one case. It holds one case
// at a time, so memory does not grow with the file. A key that comes back later makes
// a second case with the same key: the caller merges it into the practice the first
// one created.
type Grouper struct {
	cur *MorosiCase
}

// Add adds a row (bad: the row had an error finding). It returns the previous case
// when this row starts a new one, else nil. Rows without a key are refused by the
// reader's required-field checks and are only marked on the current case if they
// cannot be told apart; they never start a case.
func (g *Grouper) Add(r Record, bad bool) *MorosiCase {
	key := MorosiKey(r)
	if key == "" {
		return nil
	}
	var done *MorosiCase
	if g.cur != nil && g.cur.Key != key {
		done = g.cur
		g.cur = nil
	}
	if g.cur == nil {
		g.cur = &MorosiCase{Key: key}
	}
	g.cur.AddRow(r)
	if bad {
		g.cur.Bad = true
	}
	return done
}

// Flush returns the last case (nil if none) and empties the grouper.
func (g *Grouper) Flush() *MorosiCase {
	c := g.cur
	g.cur = nil
	return c
}

// UscenteData is what a uscente practice keeps in its Data column: the case as read
// (invoices, mora notices, spend, attestations), the computation's audit trail, the
// input lines behind it and the warnings; the refund sub-workflow after an annulment.
type UscenteData struct {
	Case     Case       `json:"case"`
	Audit    *CMORAudit `json:"audit,omitempty"`
	Inputs   []InputRef `json:"inputs,omitempty"`
	Warnings []Finding  `json:"warnings,omitempty"`
	Refusals []Finding  `json:"refusals,omitempty"` // DRAFT: why it is not filed
	Refund   *Refund    `json:"refund,omitempty"`
	RefileOf int64      `json:"refile_of,omitempty"` // the practice (id) the SII refused, that this one files again
}

// InputRef is one input file (archive id) and the lines of it that made the case.
type InputRef struct {
	FileID int64 `json:"file_id"`
	Lines  []int `json:"lines"`
}

// CMORAudit is the computation's trail, kept with the practice.
type CMORAudit struct {
	RequestDate      Date        `json:"request_date"`
	Credit           Amount      `json:"credit"`
	Estimate         Amount      `json:"estimate"`
	Base             Amount      `json:"base"`
	Previous         Amount      `json:"previous"`
	CMOR             Amount      `json:"cmor"`
	CreditWindowFrom Date        `json:"credit_window_from"`
	CreditWindowTo   Date        `json:"credit_window_to"`
	Counted          []string    `json:"counted,omitempty"`
	Excluded         []Exclusion `json:"excluded,omitempty"`
}

// AuditOf builds the audit trail of a computation.
func AuditOf(r CMORResult, requestDate Date) *CMORAudit {
	return &CMORAudit{RequestDate: requestDate, Credit: r.Credit, Estimate: r.Estimate, Base: r.Base, Previous: r.Previous,
		CMOR: r.CMOR, CreditWindowFrom: r.CreditWindowFrom, CreditWindowTo: r.CreditWindowTo, Counted: r.Counted, Excluded: r.Excluded}
}

// Refund tracks the refund owed to the customer after an annulment of an indemnity
// already paid (brief §2.6): refund within 10 days, tell the SII within 2 working days.
type Refund struct {
	AnnulledOn Date   `json:"annulled_on"`
	DueBy      Date   `json:"due_by"`
	Amount     Amount `json:"amount"`
	RefundedOn Date   `json:"refunded_on,omitempty"`
	Refunded   Amount `json:"refunded,omitempty"`
	Mode       string `json:"mode,omitempty"`
	AckDueBy   Date   `json:"ack_due_by,omitempty"`
	AckSent    bool   `json:"ack_sent,omitempty"`
}

// Marshal encodes practice data.
func (d *UscenteData) Marshal() []byte {
	b, _ := json.Marshal(d)
	return b
}

// ParseUscenteData decodes practice data ("{}" and empty give a zero value).
func ParseUscenteData(b []byte) (UscenteData, error) {
	var d UscenteData
	if len(b) == 0 {
		return d, nil
	}
	err := json.Unmarshal(b, &d)
	return d, err
}

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
	reqFields(h, c, a, func(row int, name, value string) {
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
	reqFields(h, c, a, func(row int, name, value string) {
		i := f.layout.Index(name)
		if i < 0 {
			fs = append(fs, Finding{Field: name, Rule: RuleCSVColumn, Value: value, Message: "flow " + f.Key + " has no such field"})
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
func reqFields(h ReqHeader, c Case, a *CMORAudit, set func(row int, name, value string)) {
	put := func(row int, name, value string) {
		if value != "" {
			set(row, name, value)
		}
	}
	for _, kv := range h.Fields() {
		put(-1, kv[0], kv[1])
	}
	put(-1, "SETTORE", c.Sector)
	put(-1, "COD_POD", c.POD)
	put(-1, "COD_PDR", c.PDR)
	put(-1, "CF_CLIENTE", c.CustomerCF)
	put(-1, "PIVA_CLIENTE", c.CustomerPIVA)
	put(-1, "DENOMINAZIONE", c.CustomerName)
	put(-1, "DATA_SWITCH", c.SwitchDate.String())
	if a != nil {
		put(-1, "IMPORTO_CREDITO", a.Credit.String())
		put(-1, "IMPORTO_INDENNIZZO", a.CMOR.String())
		put(-1, "STIMA_SPESA_4_MESI", a.Estimate.String())
		if a.Previous > 0 {
			put(-1, "IMPORTO_CMOR_PRECEDENTE", a.Previous.String())
			put(-1, "CP_GESTORE_CMOR_PRECEDENTE", c.PreviousCPGestore)
		}
	}
	if n, ok := chosenMora(c.Mora, a); ok {
		put(-1, "DATA_COSTITUZIONE_MORA", n.Date.String())
		put(-1, "MEZZO", strings.ToUpper(n.Channel))
		put(-1, "DATA_RICEVIMENTO", n.Received.String())
		put(-1, "TERMINE_PAGAMENTO", n.Term.String())
		put(-1, "RIF_COMUNICAZIONE", n.Ref)
		if n.MentionsCMOR {
			put(-1, "INFO_CMOR", "S")
		} else {
			put(-1, "INFO_CMOR", "N")
		}
	}
	row := 0
	for i := range c.Invoices {
		inv := &c.Invoices[i]
		if a != nil && !counted(a.Counted, inv.Number) {
			continue
		}
		// NUM_FATTURA first, even when empty, so that every counted invoice is a row.
		set(row, "NUM_FATTURA", inv.Number)
		put(row, "DATA_EMISSIONE", inv.Issued.String())
		put(row, "DATA_SCADENZA", inv.Due.String())
		put(row, "PERIODO_DA", inv.PeriodFrom.String())
		put(row, "PERIODO_A", inv.PeriodTo.String())
		put(row, "IMPORTO_FATTURA", inv.Amount.String())
		put(row, "IMPORTO_INSOLUTO", inv.Unpaid.String())
		put(row, "TIPO_LETTURA", strings.ToUpper(inv.Reading))
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

// ValidateFile reads a file of flow or input kind f offline, with the same reader the
// daemon uses, and emits every finding; for uscente.morosi it also groups the rows
// into cases and checks each case's eligibility as of requestDate (no state: a case
// already filed is not known here). It returns the number of data rows.
func ValidateFile(f *Flow, r io.Reader, format string, opt ReadOptions, requestDate Date, p CMORParams, emit func(Finding)) (int, error) {
	rd, err := NewReader(r, f, format, opt)
	if err != nil {
		return 0, err
	}
	morosi := f.IsInput() && f.Key == "uscente.morosi"
	var g Grouper
	check := func(mc *MorosiCase) {
		if mc == nil || mc.Bad {
			return
		}
		_, fs := CheckEligibility(mc.Case, requestDate, p)
		for _, fd := range fs {
			if fd.IsWarning() && fd.Rule != RuleWindowWait {
				continue
			}
			fd.File, fd.Line = opt.FileName, mc.FirstLine()
			emit(fd)
		}
	}
	rows := 0
	for {
		rec, fs, err := rd.Next()
		if err == io.EOF {
			for _, fd := range fs { // the header's, when the file has no row
				emit(fd)
			}
			break
		}
		if err != nil {
			var fd Finding
			if errors.As(err, &fd) {
				emit(fd)
				return rows, nil
			}
			return rows, err
		}
		for _, fd := range fs {
			emit(fd)
		}
		if rec.Values == nil {
			continue
		}
		rows++
		if morosi {
			check(g.Add(rec, HasErrors(fs)))
		}
	}
	if morosi {
		check(g.Flush())
	}
	return rows, nil
}
