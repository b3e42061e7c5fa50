package flows

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The compact form of a uscente practice's data (UscenteData), as stored for new
// practices: about a third of its JSON. JSON repeats every key in every invoice, spells
// numbers and dates in text, and repeats the point, the customer, the name and the
// switch date that the practice's own row already holds. The compact form writes the
// fields in a fixed order, numbers as varints, and leaves out those four when they are
// the row's (CaseRow), so it is read back only with the row.
//
// Layout, version 1 (every count is n+1, 0 for a nil slice, so nil and empty survive):
//
//	0x01                      the form and its version (JSON begins with '{')
//	uvarint                   which case fields are the row's (rowPOD...rowSwitch)
//	Case                      flags (its bools), Sector, POD, PDR, CustomerCF,
//	                          CustomerPIVA, CustomerName, SwitchDate (each left out
//	                          when the row's), Voltage, GasUse, AnnualSmc, Mora,
//	                          Invoices, Spend, PreviousCMOR, PreviousCPGestore
//	Audit                     0 absent, 1 then its fields in order
//	Inputs, Warnings, Refusals
//	Refund                    0 absent, 1 then its fields in order
//	RefileOf
//
// A string is its length (uvarint) and its bytes; an amount or an int a zigzag varint;
// a date a uvarint of year<<9 | month<<5 | day (0 for the zero date).
const compactV1 = 0x01

// CaseRow is what a practice's row holds of its case: the compact form leaves these out
// of the case when they are equal.
type CaseRow struct {
	Point, CustomerID, CustomerName string
	SwitchDate                      Date
}

// Which case fields the compact form takes from the row.
const (
	rowPOD = 1 << iota
	rowPDR
	rowCF
	rowPIVA
	rowName
	rowSwitch
)

// IsCompactUscenteData reports whether b is practice data in the compact form (else it
// is JSON, or empty).
func IsCompactUscenteData(b []byte) bool { return len(b) > 0 && b[0] == compactV1 }

// AppendCompact appends d's compact form, for a practice whose row is row, to dst. ok
// is false (dst unchanged) for data the form cannot hold exactly (a date outside its
// range): store it as JSON (Marshal) then.
func (d *UscenteData) AppendCompact(dst []byte, row CaseRow) (out []byte, ok bool) {
	e := compactEncoder{b: dst}
	e.b = append(e.b, compactV1)
	c := &d.Case
	from := 0
	if c.POD != "" && c.POD == row.Point {
		from |= rowPOD
	} else if c.PDR != "" && c.PDR == row.Point {
		from |= rowPDR
	}
	if c.CustomerCF != "" && c.CustomerCF == row.CustomerID {
		from |= rowCF
	} else if c.CustomerPIVA != "" && c.CustomerPIVA == row.CustomerID {
		from |= rowPIVA
	}
	if c.CustomerName != "" && c.CustomerName == row.CustomerName {
		from |= rowName
	}
	if !c.SwitchDate.IsZero() && c.SwitchDate == row.SwitchDate {
		from |= rowSwitch
	}
	e.uint(uint64(from))
	e.uint(bits(c.AllPointsLost, c.ClosingInvoiceIssued, c.TIFIndemnitiesPaid, c.ComplaintsAnswered, c.PointActive, c.Voltura))
	e.str(c.Sector)
	if from&rowPOD == 0 {
		e.str(c.POD)
	}
	if from&rowPDR == 0 {
		e.str(c.PDR)
	}
	if from&rowCF == 0 {
		e.str(c.CustomerCF)
	}
	if from&rowPIVA == 0 {
		e.str(c.CustomerPIVA)
	}
	if from&rowName == 0 {
		e.str(c.CustomerName)
	}
	if from&rowSwitch == 0 {
		e.date(c.SwitchDate)
	}
	e.str(c.Voltage)
	e.str(c.GasUse)
	e.int(c.AnnualSmc)
	e.count(len(c.Mora), c.Mora == nil)
	for i := range c.Mora {
		m := &c.Mora[i]
		e.date(m.Date)
		e.str(m.Channel)
		e.date(m.Received)
		e.date(m.Term)
		e.uint(bits(m.MentionsCMOR))
		e.str(m.Ref)
	}
	e.count(len(c.Invoices), c.Invoices == nil)
	for i := range c.Invoices {
		v := &c.Invoices[i]
		e.str(v.Number)
		e.date(v.Issued)
		e.date(v.Due)
		e.date(v.PeriodFrom)
		e.date(v.PeriodTo)
		e.int(int64(v.Amount))
		e.int(int64(v.Unpaid))
		e.int(int64(v.RAI))
		e.str(v.Reading)
		e.uint(bits(v.Conguagliata, v.Reconstruction))
	}
	e.count(len(c.Spend), c.Spend == nil)
	for _, s := range c.Spend {
		e.date(s.Month)
		e.int(int64(s.Amount))
	}
	e.int(int64(c.PreviousCMOR))
	e.str(c.PreviousCPGestore)

	if a := d.Audit; a == nil {
		e.uint(0)
	} else {
		e.uint(1)
		e.date(a.RequestDate)
		e.int(int64(a.Credit))
		e.int(int64(a.Estimate))
		e.int(int64(a.Base))
		e.int(int64(a.Previous))
		e.int(int64(a.CMOR))
		e.date(a.CreditWindowFrom)
		e.date(a.CreditWindowTo)
		e.strs(a.Counted)
		e.count(len(a.Excluded), a.Excluded == nil)
		for _, x := range a.Excluded {
			e.str(x.Invoice)
			e.str(x.Reason)
		}
	}
	e.count(len(d.Inputs), d.Inputs == nil)
	for _, in := range d.Inputs {
		e.int(in.FileID)
		e.count(len(in.Lines), in.Lines == nil)
		for _, l := range in.Lines {
			e.int(int64(l))
		}
	}
	e.findings(d.Warnings)
	e.findings(d.Refusals)
	if r := d.Refund; r == nil {
		e.uint(0)
	} else {
		e.uint(1)
		e.date(r.AnnulledOn)
		e.date(r.DueBy)
		e.int(int64(r.Amount))
		e.date(r.RefundedOn)
		e.int(int64(r.Refunded))
		e.str(r.Mode)
		e.date(r.AckDueBy)
		e.uint(bits(r.AckSent))
	}
	e.int(d.RefileOf)
	if e.bad || len(d.Payments) > 0 { // payments have no compact form: the case stays JSON
		return dst, false
	}
	return e.b, true
}

// EncodeUscenteData is the stored form of d for a practice whose row is row: compact
// when it can hold d, else JSON.
func EncodeUscenteData(d *UscenteData, row CaseRow) []byte {
	if b, ok := d.AppendCompact(make([]byte, 0, 384), row); ok {
		return b
	}
	return d.Marshal()
}

// DecodeUscenteData reads practice data in either stored form: compact (with the row
// it was written for) or JSON ("{}" and empty give a zero value).
func DecodeUscenteData(b []byte, row CaseRow) (UscenteData, error) {
	if !IsCompactUscenteData(b) {
		return ParseUscenteData(b)
	}
	var d UscenteData
	r := compactDecoder{b: b[1:]}
	c := &d.Case
	from := r.uint()
	if from >= rowSwitch<<1 {
		return UscenteData{}, fmt.Errorf("compact practice data: row fields %#x", from)
	}
	f := r.uint()
	c.AllPointsLost, c.ClosingInvoiceIssued, c.TIFIndemnitiesPaid = f&1 != 0, f&2 != 0, f&4 != 0
	c.ComplaintsAnswered, c.PointActive, c.Voltura = f&8 != 0, f&16 != 0, f&32 != 0
	c.Sector = r.str()
	c.POD = r.strOr(from&rowPOD != 0, row.Point)
	c.PDR = r.strOr(from&rowPDR != 0, row.Point)
	c.CustomerCF = r.strOr(from&rowCF != 0, row.CustomerID)
	c.CustomerPIVA = r.strOr(from&rowPIVA != 0, row.CustomerID)
	c.CustomerName = r.strOr(from&rowName != 0, row.CustomerName)
	if from&rowSwitch != 0 {
		c.SwitchDate = row.SwitchDate
	} else {
		c.SwitchDate = r.date()
	}
	c.Voltage = r.str()
	c.GasUse = r.str()
	c.AnnualSmc = r.int()
	if n, ok := r.count(); ok {
		c.Mora = make([]MoraNotice, n)
		for i := range c.Mora {
			m := &c.Mora[i]
			m.Date, m.Channel, m.Received, m.Term = r.date(), r.str(), r.date(), r.date()
			m.MentionsCMOR = r.uint()&1 != 0
			m.Ref = r.str()
		}
	}
	if n, ok := r.count(); ok {
		c.Invoices = make([]Invoice, n)
		for i := range c.Invoices {
			v := &c.Invoices[i]
			v.Number = r.str()
			v.Issued, v.Due, v.PeriodFrom, v.PeriodTo = r.date(), r.date(), r.date(), r.date()
			v.Amount, v.Unpaid, v.RAI = Amount(r.int()), Amount(r.int()), Amount(r.int())
			v.Reading = r.str()
			fl := r.uint()
			v.Conguagliata, v.Reconstruction = fl&1 != 0, fl&2 != 0
		}
	}
	if n, ok := r.count(); ok {
		c.Spend = make([]MonthSpend, n)
		for i := range c.Spend {
			c.Spend[i].Month = r.date()
			c.Spend[i].Amount = Amount(r.int())
		}
	}
	c.PreviousCMOR = Amount(r.int())
	c.PreviousCPGestore = r.str()

	if r.present() {
		a := &CMORAudit{}
		a.RequestDate = r.date()
		a.Credit, a.Estimate, a.Base = Amount(r.int()), Amount(r.int()), Amount(r.int())
		a.Previous, a.CMOR = Amount(r.int()), Amount(r.int())
		a.CreditWindowFrom, a.CreditWindowTo = r.date(), r.date()
		a.Counted = r.strs()
		if n, ok := r.count(); ok {
			a.Excluded = make([]Exclusion, n)
			for i := range a.Excluded {
				a.Excluded[i].Invoice, a.Excluded[i].Reason = r.str(), r.str()
			}
		}
		d.Audit = a
	}
	if n, ok := r.count(); ok {
		d.Inputs = make([]InputRef, n)
		for i := range d.Inputs {
			d.Inputs[i].FileID = r.int()
			if m, ok := r.count(); ok {
				d.Inputs[i].Lines = make([]int, m)
				for j := range d.Inputs[i].Lines {
					d.Inputs[i].Lines[j] = int(r.int())
				}
			}
		}
	}
	d.Warnings = r.findings()
	d.Refusals = r.findings()
	if r.present() {
		f := &Refund{}
		f.AnnulledOn, f.DueBy, f.Amount = r.date(), r.date(), Amount(r.int())
		f.RefundedOn, f.Refunded, f.Mode = r.date(), Amount(r.int()), r.str()
		f.AckDueBy = r.date()
		f.AckSent = r.uint()&1 != 0
		d.Refund = f
	}
	d.RefileOf = r.int()
	if r.err != nil {
		return UscenteData{}, fmt.Errorf("compact practice data: %w", r.err)
	}
	if len(r.b) != 0 {
		return UscenteData{}, fmt.Errorf("compact practice data: %d bytes after the end", len(r.b))
	}
	return d, nil
}

// UscenteDataJSON is stored practice data as JSON: compact data decoded (with its
// row) and encoded as Marshal encodes it, anything else as it is.
func UscenteDataJSON(b []byte, row CaseRow) (json.RawMessage, error) {
	if !IsCompactUscenteData(b) {
		return b, nil
	}
	d, err := DecodeUscenteData(b, row)
	if err != nil {
		return nil, err
	}
	return d.Marshal(), nil
}

func bits(flags ...bool) uint64 {
	var v uint64
	for i, f := range flags {
		if f {
			v |= 1 << i
		}
	}
	return v
}

type compactEncoder struct {
	b   []byte
	bad bool // a value the form cannot hold
}

func (e *compactEncoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *compactEncoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *compactEncoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

// count writes a slice's length, n+1, or 0 for a nil slice.
func (e *compactEncoder) count(n int, isNil bool) {
	if isNil {
		e.uint(0)
		return
	}
	e.uint(uint64(n) + 1)
}

func (e *compactEncoder) date(d Date) {
	if d.Y < 0 || d.Y > 1<<31 || d.M < 0 || d.M > 15 || d.D < 0 || d.D > 31 { // the decoder's range
		e.bad = true
		return
	}
	e.uint(uint64(d.Y)<<9 | uint64(d.M)<<5 | uint64(d.D))
}

func (e *compactEncoder) strs(ss []string) {
	e.count(len(ss), ss == nil)
	for _, s := range ss {
		e.str(s)
	}
}

func (e *compactEncoder) findings(fs []Finding) {
	e.count(len(fs), fs == nil)
	for i := range fs {
		f := &fs[i]
		e.str(f.File)
		e.int(int64(f.Line))
		e.str(f.Field)
		e.str(f.Rule)
		e.str(f.Value)
		e.str(f.Message)
		e.str(f.Severity)
	}
}

var errCompactShort = errors.New("truncated")

// compactDecoder reads what compactEncoder writes; after the first error every read
// gives a zero value and err says why.
type compactDecoder struct {
	b   []byte
	err error
}

func (r *compactDecoder) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *compactDecoder) uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errCompactShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactDecoder) int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errCompactShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactDecoder) str() string {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.fail(errCompactShort)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// strOr is the row's value when fromRow, else the next string.
func (r *compactDecoder) strOr(fromRow bool, rowValue string) string {
	if fromRow {
		return rowValue
	}
	return r.str()
}

func (r *compactDecoder) date() Date {
	v := r.uint()
	if v>>9 > 1<<31 {
		r.fail(fmt.Errorf("date %d out of range", v))
		return Date{}
	}
	return Date{Y: int(v >> 9), M: time.Month(v >> 5 & 15), D: int(v & 31)}
}

// count reads a slice's length; ok is false for a nil slice. A length longer than the
// bytes left (each element takes at least one) is an error, not an allocation.
func (r *compactDecoder) count() (int, bool) {
	v := r.uint()
	if v == 0 {
		return 0, false
	}
	if v-1 > uint64(len(r.b)) {
		r.fail(fmt.Errorf("%d elements in %d bytes", v-1, len(r.b)))
		return 0, false
	}
	return int(v - 1), true
}

func (r *compactDecoder) present() bool {
	switch r.uint() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail(errors.New("bad presence mark"))
	return false
}

func (r *compactDecoder) strs() []string {
	n, ok := r.count()
	if !ok {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

func (r *compactDecoder) findings() []Finding {
	n, ok := r.count()
	if !ok {
		return nil
	}
	out := make([]Finding, n)
	for i := range out {
		f := &out[i]
		f.File = r.str()
		f.Line = int(r.int())
		f.Field, f.Rule, f.Value, f.Message, f.Severity = r.str(), r.str(), r.str(), r.str(), r.str()
	}
	return out
}
