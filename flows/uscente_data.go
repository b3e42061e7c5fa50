package flows

import (
	"encoding/json"
)

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
	// Payments are the payment rows (uscente.incassi) applied to the case, so that the
	// same payment listed again is not subtracted twice.
	Payments []AppliedPayment `json:"payments,omitempty"`
}

// AppliedPayment is one payment applied to a practice: its key (PaymentKey) and the
// input line it came from.
type AppliedPayment struct {
	Key    string `json:"key"`
	FileID int64  `json:"file_id"`
	Line   int    `json:"line"`
}

// PaymentKey identifies a payment row: the invoice, the payment date, the amount and
// billing's reference (empty when billing gives none).
func PaymentKey(invoice string, on Date, paid Amount, ref string) string {
	return invoice + "|" + on.ISO() + "|" + paid.String() + "|" + ref
}

// AppliedPaymentOf returns the payment of d with key, if any.
func (d *UscenteData) AppliedPaymentOf(key string) (AppliedPayment, bool) {
	for _, p := range d.Payments {
		if p.Key == key {
			return p, true
		}
	}
	return AppliedPayment{}, false
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
