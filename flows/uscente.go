package flows

import (
	"errors"
	"fmt"
	"io"
	"slices"
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

// CaseLabel names a case for people, as its key does for the archive: point,
// customer and switch date (the key's U| and ISO date are internal).
func CaseLabel(c *Case) string {
	return strings.TrimSpace(CasePoint(c) + " " + CaseCustomer(c) + " " + c.SwitchDate.String())
}

// CasePoint returns the case's POD, else its PDR.
func CasePoint(c *Case) string { return firstNonEmpty(c.POD, c.PDR) }

// CaseCustomer returns the case's CF, else its P.IVA.
func CaseCustomer(c *Case) string { return firstNonEmpty(c.CustomerCF, c.CustomerPIVA) }

// MorosiKey returns the case key of one uscente.morosi row, "" when the row lacks the
// point, the customer or the switch date (it reads MorosiKeyFields alone).
func MorosiKey(r Record) string {
	point := firstNonEmpty(r.mor(mPOD), r.mor(mPDR))
	cust := firstNonEmpty(r.mor(mCF), r.mor(mPIVA))
	sw := r.morDate(mSwitch)
	if point == "" || cust == "" || sw.IsZero() {
		return ""
	}
	return UscenteCaseKey(point, cust, sw)
}

// MorosiKeyer is MorosiKey that remembers the last row's key: the rows of one
// practice come together and give the same point, customer and switch date, and the
// key is then the same string, not built again. The zero value is ready.
type MorosiKeyer struct {
	point, customer, switchDate, key string
}

// Key returns MorosiKey(r).
func (k *MorosiKeyer) Key(r Record) string {
	point := firstNonEmpty(r.mor(mPOD), r.mor(mPDR))
	cust := firstNonEmpty(r.mor(mCF), r.mor(mPIVA))
	sw := r.mor(mSwitch)
	if k.key != "" && point == k.point && cust == k.customer && sw == k.switchDate {
		return k.key
	}
	key := MorosiKey(r)
	k.point, k.customer, k.switchDate, k.key = point, cust, sw, key
	return key
}

// MorosiKeyFields are the fields MorosiKey reads: a pass that only needs the keys
// normalises these alone (CSVReader.NormalizeOnly).
var MorosiKeyFields = []string{MorPOD, MorPDR, MorCF, MorPIVA, MorSwitch}

// Rules of the findings about a case as a whole (one practice gathered from several
// rows): each holds the practice, so that nothing is filed with content different
// from what billing gave without a person being told.
const (
	// RuleCaseRows: some rows of the case were refused; the rest is not filed alone.
	RuleCaseRows = "CASE-ROWS"
	// RuleCaseConflict: a practice-level value (voltage, spend, mora attestation, ...)
	// differs between two rows of one case.
	RuleCaseConflict = "CASE-CONFLICT"
	// RuleCaseDupInvoice: the same invoice is listed twice in the case's rows.
	RuleCaseDupInvoice = "CASE-DUP-INVOICE"
)

// morosiCaseFields are the columns that describe the practice rather than one invoice:
// every row repeats them, and two rows of one case that give two different values are
// a conflict (the first row no longer silently wins).
var morosiCaseFields = [...]string{MorSector, MorPOD, MorPDR, MorCF, MorPIVA, MorName, MorVoltage, MorGasUse, MorAnnualSmc,
	MorAllLost, MorClosing, MorTIF, MorComplaints, MorActive, MorVoltura, MorSpend, MorPrevious, MorPrevCP}

// morosiCaseIDs are morosiCaseFields by position (morField).
var morosiCaseIDs = [len(morosiCaseFields)]morField{mSector, mPOD, mPDR, mCF, mPIVA, mName, mVoltage, mGasUse, mAnnualSmc,
	mAllLost, mClosing, mTIF, mComplaints, mActive, mVoltura, mSpend, mPrevious, mPrevCP}

// MorosiCase is one case gathered from the rows with the same key.
type MorosiCase struct {
	Key   string
	Case  Case
	Lines []int // input lines of its rows
	// Bad is true when one of its rows had an error finding: the case is refused as a
	// whole, because a missing invoice would change the credit.
	Bad      bool
	BadLines []int // the lines of those rows

	// rows is what the rows gave that the case's conflicts are made of, while its
	// rows are added (the Grouper's, reused from one case to the next); nil once the
	// case is done, its conflicts then in conflicts.
	rows      *caseRows
	conflicts []Finding
	spend     string // the spend list merged last (rows repeat it)
}

// caseRows is what the rows of a case being read gave besides the case itself: the
// distinct values of its practice-level fields, of each mora notice's details and the
// lines of each invoice, for its conflicts; and the lists the case is built in (its
// lines, invoices and mora notices), copied out at their size when it is done. The
// Grouper keeps one and reuses it for every case: a case's rows cost no allocation
// of their own for what only its conflicts need.
type caseRows struct {
	values   [len(morosiCaseFields)]valueSet // distinct values of each case field
	mora     []moraSeen                      // the details each mora notice is given with
	invLines []lineSet                       // lines of each invoice of Case.Invoices, parallel
	lines    []int
	invoices []Invoice
	notices  []MoraNotice
}

// reset empties r for the next case, keeping its memory.
func (r *caseRows) reset() {
	for i := range r.values {
		r.values[i].reset()
	}
	for i := range r.mora {
		r.mora[i].reset()
	}
	for i := range r.invLines {
		r.invLines[i].reset()
	}
	r.mora, r.invLines = r.mora[:0], r.invLines[:0]
	r.lines, r.invoices, r.notices = r.lines[:0], r.invoices[:0], r.notices[:0]
}

// moraSeen is one mora notice (date, reference, channel) and the distinct values its
// details take on the rows that name it: rows that name one notice must describe it
// alike, or which term, which receipt date, whether it mentioned the CMOR is unknown.
type moraSeen struct {
	key     string // date (ISO), reference and channel (upper case), "|" between
	details [len(moraDetailFields)]valueSet
}

func (s *moraSeen) reset() {
	s.key = ""
	for i := range s.details {
		s.details[i].reset()
	}
}

var moraDetailFields = [...]string{MorMoraTerm, MorMoraReceived, MorMoraCMOR}

// moraDetailIDs are moraDetailFields by position (morField).
var moraDetailIDs = [len(moraDetailFields)]morField{mMoraTerm, mMoraReceived, mMoraCMOR}

func (m *MorosiCase) addMoraDetails(r Record, n MoraNotice) {
	rows := m.rows
	// The notice's key, made in place: a string only for a notice not seen yet.
	var buf [80]byte
	key := append(n.Date.appendISO(buf[:0]), '|')
	key = append(append(append(key, n.Ref...), '|'), strings.ToUpper(n.Channel)...)
	k := -1
	for i := range rows.mora {
		if rows.mora[i].key == string(key) {
			k = i
			break
		}
	}
	if k < 0 {
		if len(rows.mora) < cap(rows.mora) {
			rows.mora = rows.mora[:len(rows.mora)+1] // reset when the last case was done
		} else {
			rows.mora = append(rows.mora, moraSeen{})
		}
		k = len(rows.mora) - 1
		rows.mora[k].key = string(key)
	}
	for i, field := range moraDetailIDs {
		v := r.mor(field)
		if field == mMoraCMOR && v != "" {
			v = "N"
			if r.morFlag(field) {
				v = "S"
			}
		}
		if v == "" {
			continue
		}
		rows.mora[k].details[i].add(v, r.Line)
	}
}

// caseValue is one value a case field takes, and the lines that give it.
type caseValue struct {
	v     string
	lines lineSet
}

// valueSet is the distinct values a case field takes, each with its lines. The rows
// of a practice nearly always agree: the first value is kept in place, and a set of
// one value with a few lines costs no allocation of its own (the case holds one set
// per field, and allocating them was a good part of grouping a row).
type valueSet struct {
	n     int       // distinct values
	first caseValue // the first value given
	more  []caseValue
}

func (s *valueSet) reset() {
	s.n, s.first.v = 0, ""
	s.first.lines.reset()
	clear(s.more)
	s.more = s.more[:0]
}

// add records that the row at line gives v.
func (s *valueSet) add(v string, line int) {
	switch {
	case s.n == 0:
		s.first.v, s.n = v, 1
		s.first.lines.add(line)
		return
	case s.first.v == v:
		s.first.lines.add(line)
		return
	}
	for i := range s.more {
		if s.more[i].v == v {
			s.more[i].lines.add(line)
			return
		}
	}
	s.more = append(s.more, caseValue{v: v})
	s.more[len(s.more)-1].lines.add(line)
	s.n++
}

// values lists the distinct values in the order they came.
func (s *valueSet) values() []caseValue {
	if s.n == 0 {
		return nil
	}
	return append([]caseValue{s.first}, s.more...)
}

// lineSet is the lines of the rows that give something, in the order they came: the
// first few in place, the others in rest.
type lineSet struct {
	n     int
	first [3]int
	rest  []int
}

func (l *lineSet) reset() { l.n, l.rest = 0, l.rest[:0] }

func (l *lineSet) add(line int) {
	if l.n < len(l.first) {
		l.first[l.n] = line
	} else {
		l.rest = append(l.rest, line)
	}
	l.n++
}

// list returns the lines (a new slice).
func (l *lineSet) list() []int {
	out := make([]int, 0, l.n)
	out = append(out, l.first[:min(l.n, len(l.first))]...)
	return append(out, l.rest...)
}

// Held reports whether the case must not be filed from this file: a row was refused,
// or its rows disagree.
func (m *MorosiCase) Held() bool {
	if m.rows == nil {
		return m.Bad || len(m.conflicts) > 0
	}
	return m.Bad || len(m.Conflicts()) > 0
}

// Conflicts are the findings about the rows of the case together: a practice-level
// value that differs between rows (RuleCaseConflict), an invoice listed twice
// (RuleCaseDupInvoice). Each holds the case. They do not depend on the order of the
// rows: values are listed sorted, and each finding is located at the last line of
// the rows involved.
//
// A case the Grouper gave is done: its conflicts were found when its last row came,
// and are the same on every call.
func (m *MorosiCase) Conflicts() []Finding {
	if m.rows == nil {
		return slices.Clone(m.conflicts)
	}
	return m.rows.conflicts(m.Case.Invoices, nil)
}

// conflicts are the findings of Conflicts; order, when not nil, lists the invoices
// (indexes of invoices and r.invLines) in the order their findings come.
func (r *caseRows) conflicts(invoices []Invoice, order []int) []Finding {
	var fs []Finding
	for i := range r.values {
		if f, ok := conflictFinding(morosiCaseFields[i], &r.values[i]); ok {
			fs = append(fs, f)
		}
	}
	slices.SortFunc(r.mora, func(a, b moraSeen) int { return strings.Compare(a.key, b.key) })
	for k := range r.mora {
		ms := &r.mora[k]
		for i := range ms.details {
			if f, ok := conflictFinding(moraDetailFields[i], &ms.details[i]); ok {
				f.Message = "for one mora notice (" + strings.ReplaceAll(ms.key, "|", " ") + "), " + f.Message
				fs = append(fs, f)
			}
		}
	}
	n := len(r.invLines)
	if order != nil {
		n = len(order)
	}
	for j := range n {
		k := j
		if order != nil {
			k = order[j]
		}
		if k >= len(r.invLines) || k >= len(invoices) || r.invLines[k].n < 2 {
			continue
		}
		num := invoices[k].Number
		lines := slices.Sorted(slices.Values(r.invLines[k].list()))
		fs = append(fs, Finding{Line: slices.Max(lines), Field: MorInvNumber, Rule: RuleCaseDupInvoice, Value: num,
			Message: fmt.Sprintf("invoice %s is listed %d times (lines %s); list each invoice once, the practice is held", num, len(lines), LinesText(lines))})
	}
	return fs
}

// conflictFinding is the RuleCaseConflict finding of a field that takes several
// values, independent of the order they came in; ok is false for one value or none.
func conflictFinding(field string, set *valueSet) (Finding, bool) {
	if set.n < 2 {
		return Finding{}, false
	}
	sorted := set.values()
	slices.SortFunc(sorted, func(a, b caseValue) int { return strings.Compare(a.v, b.v) })
	parts, values, last := make([]string, len(sorted)), make([]string, len(sorted)), 0
	for k, cv := range sorted {
		lines := slices.Sorted(slices.Values(cv.lines.list()))
		parts[k] = fmt.Sprintf("%q on %s %s", cv.v, plural(len(lines), "line", "lines"), LinesText(lines))
		values[k] = cv.v
		last = max(last, slices.Max(lines))
	}
	return Finding{Line: last, Field: field, Rule: RuleCaseConflict, Value: strings.Join(values, " / "),
		Message: fmt.Sprintf("%s differs between the rows of one practice: %s; billing must give one value, the practice is held", field, strings.Join(parts, ", "))}, true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// FirstLine returns the line of its first row.
func (m *MorosiCase) FirstLine() int {
	if len(m.Lines) == 0 {
		return 0
	}
	return m.Lines[0]
}

// normalize puts what the rows gave in an order that does not depend on the order of
// the rows: invoices by number, mora notices by date and reference, spend by month.
// The practice, its request and its findings are then the same for a shuffled file.
//
// It also ends the reading of the case: its conflicts are found, and its lists are
// copied out of the Grouper's memory (caseRows), which the next case reuses.
func (m *MorosiCase) normalize() {
	c := &m.Case
	rows := m.rows
	if rows == nil {
		rows = &caseRows{}
	}
	var order []int // of the invoices, when they are not in order already
	invoices := c.Invoices
	if !slices.IsSortedFunc(invoices, func(a, b Invoice) int { return strings.Compare(a.Number, b.Number) }) {
		order = make([]int, len(invoices))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(invoices[a].Number, invoices[b].Number) })
		c.Invoices = make([]Invoice, len(order))
		for i, k := range order {
			c.Invoices[i] = invoices[k]
		}
	} else {
		c.Invoices = clone(invoices)
	}
	m.conflicts = rows.conflicts(invoices, order)
	slices.SortStableFunc(c.Mora, func(a, b MoraNotice) int {
		if a.Date != b.Date {
			if a.Date.Before(b.Date) {
				return -1
			}
			return 1
		}
		if x := strings.Compare(a.Ref, b.Ref); x != 0 {
			return x
		}
		return strings.Compare(strings.ToUpper(a.Channel), strings.ToUpper(b.Channel))
	})
	slices.SortStableFunc(c.Spend, func(a, b MonthSpend) int {
		if a.Month == b.Month {
			return 0
		}
		if a.Month.Before(b.Month) {
			return -1
		}
		return 1
	})
	slices.Sort(m.Lines)
	// Keep the lists' memory for the next case.
	rows.lines, rows.invoices, rows.notices = m.Lines[:0], invoices[:0], c.Mora[:0]
	m.Lines, c.Mora = clone(m.Lines), clone(c.Mora)
	m.rows = nil
}

// clone is s copied to a slice of its length, nil when empty.
func clone[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

// caseFieldValue is the value of a practice-level field as it counts: flags as S/N
// (an empty TUTTI_PUNTI_PERSI means every point was lost), others as read.
func caseFieldValue(r Record, field morField) string {
	v := r.mor(field)
	switch field {
	case mAllLost:
		if v == "N" {
			return "N"
		}
		return "S"
	case mClosing, mTIF, mComplaints, mActive, mVoltura:
		if v == "" {
			return ""
		}
		if r.morFlag(field) {
			return "S"
		}
		return "N"
	}
	return v
}

// AddRow merges one row into the case: case-level columns fill what is still empty,
// the mora notice and the spend months are added unless already there. A case-level
// value that differs from an earlier row's, or an invoice already listed, is a
// conflict (Conflicts): rows of one extract must agree.
func (m *MorosiCase) AddRow(r Record) {
	if m.rows == nil {
		m.rows = &caseRows{}
	}
	m.Lines = append(m.Lines, r.Line)
	for i, field := range morosiCaseIDs {
		v := caseFieldValue(r, field)
		if v == "" {
			continue
		}
		m.rows.values[i].add(v, r.Line)
	}
	c := &m.Case
	set := func(dst *string, field morField) {
		if *dst == "" {
			*dst = r.mor(field)
		}
	}
	set(&c.Sector, mSector)
	set(&c.POD, mPOD)
	set(&c.PDR, mPDR)
	set(&c.CustomerCF, mCF)
	set(&c.CustomerPIVA, mPIVA)
	set(&c.CustomerName, mName)
	set(&c.Voltage, mVoltage)
	set(&c.GasUse, mGasUse)
	set(&c.PreviousCPGestore, mPrevCP)
	if c.SwitchDate.IsZero() {
		c.SwitchDate = r.morDate(mSwitch)
	}
	if v := r.mor(mAnnualSmc); v != "" && c.AnnualSmc == 0 {
		c.AnnualSmc, _ = strconv.ParseInt(v, 10, 64)
	}
	if len(m.Lines) == 1 {
		// Yes/no attestations come from the first row of the case; billing repeats them
		// (a row that says otherwise is a conflict, above).
		// TUTTI_PUNTI_PERSI is optional: billing flags only the customers it still
		// supplies elsewhere, so an empty value means every point was lost.
		c.AllPointsLost = r.mor(mAllLost) != "N"
		c.ClosingInvoiceIssued = r.morFlag(mClosing)
		c.TIFIndemnitiesPaid = r.morFlag(mTIF)
		c.ComplaintsAnswered = r.morFlag(mComplaints)
		c.PointActive = r.morFlag(mActive)
		c.Voltura = r.morFlag(mVoltura)
	}
	if c.PreviousCMOR == 0 {
		c.PreviousCMOR = r.morAmount(mPrevious)
	}
	if num := r.mor(mInvNumber); num != "" {
		inv := Invoice{Number: num, Issued: r.morDate(mInvIssued), Due: r.morDate(mInvDue),
			PeriodFrom: r.morDate(mInvFrom), PeriodTo: r.morDate(mInvTo), Amount: r.morAmount(mInvAmount),
			Unpaid: r.morAmount(mInvUnpaid), RAI: r.morAmount(mInvRAI), Reading: r.mor(mInvReading),
			Conguagliata: r.morFlag(mInvCong), Reconstruction: r.morFlag(mInvRecon)}
		if i := invoiceIndex(c.Invoices, num); i >= 0 {
			// Listed twice: which one is the claim? Neither is filed until billing says
			// (Conflicts); the first listing is kept meanwhile.
			m.rows.invLines[i].add(r.Line)
		} else {
			c.Invoices = append(c.Invoices, inv)
			if il := m.rows.invLines; len(il) < cap(il) {
				m.rows.invLines = il[:len(il)+1] // reset when the last case was done
			} else {
				m.rows.invLines = append(il, lineSet{})
			}
			m.rows.invLines[len(m.rows.invLines)-1].add(r.Line)
		}
	}
	if d := r.morDate(mMoraDate); !d.IsZero() || r.mor(mMoraRef) != "" {
		n := MoraNotice{Date: d, Channel: r.mor(mMoraChannel), Received: r.morDate(mMoraReceived),
			Term: r.morDate(mMoraTerm), MentionsCMOR: r.morFlag(mMoraCMOR), Ref: r.mor(mMoraRef)}
		c.Mora = mergeMora(c.Mora, n)
		m.addMoraDetails(r, n)
	}
	// Every row of a case repeats its spend list: merging the list merged last again
	// would change nothing, so it is not parsed again.
	if s := r.mor(mSpend); s != "" && s != m.spend {
		if ms, err := ParseMonthAmounts(s, false); err == nil {
			c.Spend = mergeSpend(c.Spend, ms)
			m.spend = s
		}
	}
}

func invoiceIndex(list []Invoice, number string) int {
	for i := range list {
		if list[i].Number == number {
			return i
		}
	}
	return -1
}

// mergeMora adds a row's notice, or completes the same notice named by an earlier row
// (what one row leaves empty another may give; two different values are a conflict,
// reported by Conflicts, so which one is kept does not matter).
func mergeMora(list []MoraNotice, n MoraNotice) []MoraNotice {
	for i := range list {
		if o := &list[i]; o.Date == n.Date && o.Ref == n.Ref && strings.EqualFold(o.Channel, n.Channel) {
			if o.Received.IsZero() {
				o.Received = n.Received
			}
			if o.Term.IsZero() {
				o.Term = n.Term
			}
			o.MentionsCMOR = o.MentionsCMOR || n.MentionsCMOR
			return list
		}
	}
	return append(list, n)
}

func mergeSpend(list []MonthSpend, add []MonthSpend) []MonthSpend {
	if len(list) == 0 {
		// The first list of the case: add is the caller's own, of distinct months
		// (ParseMonthAmounts refuses a month twice), so merging it adds every month.
		return add
	}
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

// InvoiceChanges says how the invoices of a later extract differ from those of a case
// already filed: invoices the filed case does not have, and invoices whose total,
// unpaid amount or canone RAI differ (invoices the extract leaves out are not listed:
// an extract may hold part of a customer's invoices). Empty when the extract adds
// nothing to the filed claim.
func InvoiceChanges(filed, now []Invoice) []string {
	var out []string
	for _, inv := range now {
		i := slices.IndexFunc(filed, func(f Invoice) bool { return f.Number == inv.Number })
		if i < 0 {
			out = append(out, fmt.Sprintf("invoice %s (unpaid %s) is not in the filed claim", inv.Number, inv.Unpaid))
			continue
		}
		f := filed[i]
		for _, d := range []struct {
			what       string
			was, isNow Amount
		}{{"total", f.Amount, inv.Amount}, {"unpaid", f.Unpaid, inv.Unpaid}, {"canone RAI", f.RAI, inv.RAI}} {
			if d.was != d.isNow {
				out = append(out, fmt.Sprintf("invoice %s: %s %s, filed as %s", inv.Number, d.what, d.isNow, d.was))
			}
		}
	}
	return out
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

// Grouper turns a stream of uscente.morosi rows in which the rows of one case are
// adjacent into cases: consecutive rows with the same key make one case. It holds one
// case at a time, so memory does not grow with the file. Billing extracts need not be
// in that order: the daemon (and `cmord validate`, through the same code) first checks
// whether a file's keys are adjacent and otherwise feeds the Grouper the rows sorted
// by key (docs/uscente.md, "Row order").
type Grouper struct {
	cur  *MorosiCase
	keys MorosiKeyer
	rows caseRows // the current case's, reused from one case to the next
}

// Add adds a row (bad: the row had an error finding). It returns the previous case
// when this row starts a new one, else nil. Rows without a key are refused by the
// reader's required-field checks and are only marked on the current case if they
// cannot be told apart; they never start a case.
func (g *Grouper) Add(r Record, bad bool) *MorosiCase {
	key := g.keys.Key(r)
	if key == "" {
		return nil
	}
	var done *MorosiCase
	if g.cur != nil && g.cur.Key != key {
		done = g.cur
		done.normalize()
		g.cur = nil
	}
	if g.cur == nil {
		g.rows.reset()
		g.cur = &MorosiCase{Key: key, rows: &g.rows, Lines: g.rows.lines}
		g.cur.Case.Invoices, g.cur.Case.Mora = g.rows.invoices, g.rows.notices
	}
	g.cur.AddRow(r)
	if bad {
		g.cur.Bad = true
		g.cur.BadLines = append(g.cur.BadLines, r.Line)
	}
	return done
}

// Flush returns the last case (nil if none) and empties the grouper.
func (g *Grouper) Flush() *MorosiCase {
	c := g.cur
	g.cur = nil
	if c != nil {
		c.normalize()
	}
	return c
}

// MorosiOutcome is what one case of a billing extract becomes, decided by DecideMorosi
// for the daemon and for `cmord validate` alike.
type MorosiOutcome struct {
	// Held: rows of the case were refused or disagree; it is not evaluated, not filed,
	// and Refusals say which rows and why.
	Held bool
	// State is READY, WAITING_WINDOW or DRAFT (refused: Refusals say why); DRAFT when Held.
	State    string
	Result   CMORResult
	Refusals []Finding
	Warnings []Finding
	// The request window of the case's switch date.
	WindowOpen, WindowClose Date
}

// Eligible reports whether every refusal is an eligibility refusal (nothing to correct
// in billing); false when there are none.
func (o MorosiOutcome) Eligible() bool {
	for _, f := range o.Refusals {
		if !f.Eligibility() {
			return false
		}
	}
	return len(o.Refusals) > 0
}

// DecideMorosi decides one case read from file (the name, for the findings) as of
// requestDate: held when its rows were refused or disagree, else its eligibility and
// CMOR. Findings of the eligibility checks are located at the case's first line.
func DecideMorosi(mc *MorosiCase, file string, requestDate Date, p CMORParams) MorosiOutcome {
	var o MorosiOutcome
	if !mc.Case.SwitchDate.IsZero() {
		o.WindowOpen, o.WindowClose = RequestWindow(mc.Case.SwitchDate, p)
	}
	if mc.Held() {
		o.Held, o.State = true, StateDraft
		if good := goodLines(mc); mc.Bad && len(good) > 0 {
			// Only when rows of it would otherwise have gone out: a practice whose
			// every row was refused is told by the rows' own findings.
			bad := slices.Sorted(slices.Values(mc.BadLines))
			o.Refusals = append(o.Refusals, Finding{File: file, Line: mc.FirstLine(), Field: MorSwitch, Rule: RuleCaseRows, Value: CaseLabel(&mc.Case),
				Message: fmt.Sprintf("practice held, not filed: its %s %s %s refused, and %s %s %s not filed alone; correct the refused rows and drop the whole practice again",
					plural(len(bad), "row on line", "rows on lines"), LinesText(bad), plural(len(bad), "was", "were"),
					plural(len(good), "the row on line", "the rows on lines"), LinesText(good), plural(len(good), "is", "are"))})
		}
		for _, f := range mc.Conflicts() {
			f.File = file
			o.Refusals = append(o.Refusals, f)
		}
		return o
	}
	result, fs := CheckEligibility(mc.Case, requestDate, p)
	for i := range fs {
		fs[i].File, fs[i].Line = file, mc.FirstLine()
	}
	o.Result = result
	o.State, o.Refusals, o.Warnings = SplitEligibility(fs)
	return o
}

// goodLines are the lines of mc's rows that were not refused.
func goodLines(mc *MorosiCase) []int {
	var good []int
	for _, l := range mc.Lines {
		if !slices.Contains(mc.BadLines, l) {
			good = append(good, l)
		}
	}
	return good
}

// SplitEligibility turns CheckEligibility's findings into a state (READY,
// WAITING_WINDOW when the window is not open yet, DRAFT when anything is refused), the
// refusals and the warnings.
func SplitEligibility(fs []Finding) (state string, refusals, warns []Finding) {
	state = StateReady
	for _, f := range fs {
		switch {
		case f.Rule == RuleWindowWait:
			state = StateWaitingWindow
			warns = append(warns, f)
		case f.IsWarning():
			warns = append(warns, f)
		default:
			refusals = append(refusals, f)
		}
	}
	if len(refusals) > 0 {
		state = StateDraft
	}
	return state, refusals, warns
}

// LinesText renders input lines compactly: "7", "7-9", or "7,12,30".
func LinesText(lines []int) string {
	if len(lines) == 0 {
		return ""
	}
	if len(lines) == 1 {
		return strconv.Itoa(lines[0])
	}
	contiguous := true
	for i := 1; i < len(lines); i++ {
		if lines[i] != lines[i-1]+1 {
			contiguous = false
		}
	}
	if contiguous {
		return strconv.Itoa(lines[0]) + "-" + strconv.Itoa(lines[len(lines)-1])
	}
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strconv.Itoa(l)
	}
	return strings.Join(parts, ",")
}

// ValidateFile reads a file of flow or input kind f offline, with the same reader the
// daemon uses, and emits every finding of its rows. It returns the number of data rows.
// The cases of uscente.morosi (rows grouped by key, their eligibility and CMOR) are the
// daemon's to decide: `cmord validate` asks the daemon's code for them.
func ValidateFile(f *Flow, r io.Reader, format string, opt ReadOptions, emit func(Finding)) (int, error) {
	rd, err := NewReader(r, f, format, opt)
	if err != nil {
		return 0, err
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
	}
	return rows, nil
}
