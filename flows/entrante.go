package flows

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The entrante side, pure: the suspension term, report periods and the credit/debit
// note a re-amounted or annulled CMOR asks billing to issue (brief §2.4–§2.6, §4.4).
// Field names are the canonical names of the catalog's flows and of the entrante
// input kinds; they are constants here because the domain needs to know what each
// one means.

// Entrante practice states. The names are the catalog's; the catalog's [[states]]
// table says which moves are allowed, and each flow's transition which move it drives.
const (
	EntranteNotified      = "NOTIFIED"       // acceptance notice received
	EntranteToCharge      = "TO_CHARGE"      // CMOR handed to billing to charge the customer
	EntranteCharged       = "CHARGED"        // CMOR billed to the customer, not (fully) collected
	EntranteCollected     = "COLLECTED"      // CMOR fully collected from the customer
	EntranteClosed        = "CLOSED"         // collection reported to the SII
	EntranteSuspRequested = "SUSP_REQUESTED" // SUSP_REQ sent, answer pending
	EntranteSuspended     = "SUSPENDED"      // the SII froze the indemnity
	EntranteAmountUpdated = "AMOUNT_UPDATED" // SI7.0200 re-amounted the CMOR
	EntranteAnnulled      = "ANNULLED"
)

// Fields of the entrante flows and inputs (catalog names).
const (
	EntCPGestore     = "CP_GESTORE"
	EntCPUtente      = "CP_UTENTE"
	EntPIVAUtente    = "PIVA_UTENTE"
	EntPIVAGestore   = "PIVA_GESTORE"
	EntSector        = "SETTORE"
	EntPOD           = "COD_POD"
	EntPDR           = "COD_PDR"
	EntCF            = "CF_CLIENTE"
	EntPIVA          = "PIVA_CLIENTE"
	EntName          = "DENOMINAZIONE"
	EntCMOR          = "IMPORTO_CMOR"
	EntPrevFlag      = "FLAG_CMOR_PRECEDENTE_NON_RISCOSSO"
	EntNoticeDate    = "DATA_NOTIFICA"
	EntSuspTerm      = "TERMINE_SOSPENSIONE"
	EntSuspCause     = "MOTIVO_SOSPENSIONE"
	EntSuspDate      = "DATA_RICHIESTA_SOSPENSIONE_FORNITURA"
	EntSuspDSORef    = "COD_PRATICA_SOSPENSIONE_DISTRIBUTORE"
	EntCMORCollected = "CMOR_INCASSATO"
	EntRevokeCause   = "MOTIVO_REVOCA"
	EntRevokeDate    = "DATA_REVOCA"
	EntReactivation  = "DATA_RIATTIVAZIONE"
	EntNote          = "NOTE"
	EntInvoice       = "NUM_FATTURA_CMOR"
	EntInvoiceDate   = "DATA_FATTURA"
	EntBilled        = "IMPORTO_FATTURATO"
	EntDueDate       = "DATA_SCADENZA"
	EntCollState     = "STATO_INCASSO"
	EntCollAmount    = "IMPORTO_INCASSATO"
	EntCollDate      = "DATA_INCASSO"
	EntAnnCause      = "COD_CAUSALE_ANNULLAMENTO"
	EntMotivation    = "MOTIVAZIONE"
	EntEventDate     = "DATA_EVENTO"
	EntAnnDate       = "DATA_ANNULLAMENTO"
	EntOldCMOR       = "IMPORTO_CMOR_PRECEDENTE"
	EntNewCMOR       = "IMPORTO_CMOR_AGGIORNATO"
	EntDelta         = "DELTA"
	EntUpdDate       = "DATA_AGGIORNAMENTO"
)

// Rules of the entrante findings.
const (
	RuleEntRole       = "ENT-ROLE"        // the company is not configured as entrante
	RuleEntPIVA       = "ENT-PIVA-UTENTE" // a notice addressed to another company
	RuleEntDuplicate  = "ENT-DUPLICATE"   // a second notice for the same CP_GESTORE
	RuleEntNoPractice = "ENT-NO-PRACTICE" // no entrante practice matches the row
	RuleEntAmbiguous  = "ENT-AMBIGUOUS"   // several practices match point + customer
	RuleSuspTerm      = "SUSP-TERM"       // the suspension term has expired
	RuleSuspNoTerm    = "SUSP-NO-TERM"    // the practice has no suspension term
	RuleSuspCollected = "SUSP-COLLECTED"  // the CMOR is already collected
	RuleSuspCause     = "SUSP-CAUSE"      // unknown cause, or not for the point's sector
	RuleSuspDate      = "SUSP-DATE"       // event date missing or in the future
	RuleSuspState     = "SUSP-STATE"      // the practice cannot be suspended (annulled, already suspended…)
	RuleRevokeState   = "SUSP-REVOKE-STATE"
	RuleRevokeCause   = "SUSP-REVOKE-CAUSE"
	RuleRendAmount    = "REND-AMOUNT" // collected more than billed, or billed more than the CMOR
	RuleRendState     = "REND-STATE"  // billing data for an annulled practice
)

// Suspension causes (brief §4.4) and revocation causes.
const (
	SuspPointSuspended = "SO-01" // point suspended for non-payment of the entrante's invoices
	SuspRequested      = "SO-02" // suspension request sent to the distributor
	SuspAttemptFailed  = "SO-03" // suspension attempted without success
	SuspGasClosed      = "SO-G1" // gas: PDR closed / closure requested for non-payment
	RevokePaid         = "RV-01" // the customer paid the entrante
	RevokeResumed      = "RV-02" // supply reactivated
	RevokeOther        = "RV-99"
)

// EntranteCaseKey is the identity of an entrante practice: the SII's code of the
// indemnity ("E|<CP_GESTORE>"); the same indemnity notified twice is one practice.
func EntranteCaseKey(cpGestore string) string {
	return "E|" + strings.ToUpper(strings.TrimSpace(cpGestore))
}

// EffectiveSuspensionTerm is the last day a suspension request is in time: the
// notified term, moved to the next working day when it falls on a Saturday, Sunday or
// holiday (a term ending on a non-working day is extended to the next working one, as
// for every Italian administrative term).
func EffectiveSuspensionTerm(term Date, cal *Calendar) Date {
	if term.IsZero() || cal == nil {
		return term
	}
	for !cal.IsWorkingDay(term) {
		term = term.AddDays(1)
	}
	return term
}

// SuspensionCase is what the suspension rules look at.
type SuspensionCase struct {
	Sector    string // E or G
	Cause     string // SO-01, SO-02, SO-03, SO-G1
	EventDate Date   // when the supply was suspended / the suspension requested / attempted
	Today     Date   // the day the request is filed (Europe/Rome)
	Term      Date   // TERMINE_SOSPENSIONE of the notice
	// CollectedFlag is billing's CMOR_INCASSATO on the row; Collected and CMOR are what
	// the practice knows from entrante.fatturato.
	CollectedFlag   bool
	Collected, CMOR Amount
	State           string
}

// CheckSuspension returns why a suspension request may not be filed (nil when it
// may). The findings name field and rule; the caller adds file and line.
func CheckSuspension(c SuspensionCase, cal *Calendar) []Finding {
	var fs []Finding
	add := func(field, rule, value, format string, args ...any) {
		fs = append(fs, Finding{Field: field, Rule: rule, Value: value, Message: fmt.Sprintf(format, args...)})
	}
	switch c.Cause {
	case SuspPointSuspended, SuspRequested, SuspAttemptFailed:
		if c.Sector == "G" {
			add(EntSuspCause, RuleSuspCause, c.Cause, "cause %s is for electricity points; a gas PDR uses %s", c.Cause, SuspGasClosed)
		}
	case SuspGasClosed:
		if c.Sector == "E" {
			add(EntSuspCause, RuleSuspCause, c.Cause, "cause %s is for gas points; an electricity POD uses %s, %s or %s",
				c.Cause, SuspPointSuspended, SuspRequested, SuspAttemptFailed)
		}
	default:
		add(EntSuspCause, RuleSuspCause, c.Cause, "unknown suspension cause: expected %s, %s, %s or %s",
			SuspPointSuspended, SuspRequested, SuspAttemptFailed, SuspGasClosed)
	}
	switch {
	case c.EventDate.IsZero():
		add(EntSuspDate, RuleSuspDate, "", "the date of the suspension (or of its request or attempt) is missing")
	case c.EventDate.After(c.Today):
		add(EntSuspDate, RuleSuspDate, c.EventDate.String(), "the suspension date is in the future (today is %s)", c.Today)
	}
	switch c.State {
	case EntranteAnnulled:
		add(EntCPGestore, RuleSuspState, c.State, "the indemnity was annulled: there is nothing to suspend")
	case EntranteSuspRequested, EntranteSuspended:
		add(EntCPGestore, RuleSuspState, c.State, "a suspension is already requested or in force for this indemnity")
	case EntranteCollected:
		add(EntCMORCollected, RuleSuspCollected, c.State, "the CMOR is already collected from the customer: art. 15 allows a suspension only while it is not")
	}
	if c.CollectedFlag {
		add(EntCMORCollected, RuleSuspCollected, "S", "billing says the CMOR is collected: art. 15 allows a suspension only while it is not")
	} else if c.CMOR > 0 && c.Collected >= c.CMOR && c.State != EntranteCollected {
		add(EntCMORCollected, RuleSuspCollected, c.Collected.String(), "the CMOR (%s) is already collected (%s): art. 15 allows a suspension only while it is not", c.CMOR, c.Collected)
	}
	if c.Term.IsZero() {
		add(EntSuspTerm, RuleSuspNoTerm, "", "the acceptance notice gave no suspension term: the request cannot be checked for time")
	} else if eff := EffectiveSuspensionTerm(c.Term, cal); c.Today.After(eff) {
		msg := fmt.Sprintf("the suspension term expired on %s", eff)
		if eff != c.Term {
			msg = fmt.Sprintf("the suspension term (%s, moved to the next working day %s) has expired", c.Term, eff)
		}
		add(EntSuspTerm, RuleSuspTerm, c.Term.String(), "%s; today is %s: the SII would refuse the request", msg, c.Today)
	}
	return fs
}

// CheckRevocation returns why a revocation may not be filed (nil when it may): there
// must be a suspension requested or in force, and a known cause.
func CheckRevocation(cause, state string) []Finding {
	var fs []Finding
	switch cause {
	case RevokePaid, RevokeResumed, RevokeOther:
	default:
		fs = append(fs, Finding{Field: EntRevokeCause, Rule: RuleRevokeCause, Value: cause,
			Message: fmt.Sprintf("unknown revocation cause: expected %s (customer paid), %s (supply resumed) or %s", RevokePaid, RevokeResumed, RevokeOther)})
	}
	if state != EntranteSuspRequested && state != EntranteSuspended {
		fs = append(fs, Finding{Field: EntCPGestore, Rule: RuleRevokeState, Value: state,
			Message: fmt.Sprintf("no suspension is requested or in force (practice is %s): there is nothing to revoke", state)})
	}
	return fs
}

// Revocation tells a revocation row of entrante.sospensioni from a suspension row,
// for a practice now in state: an explicit revocation cause (RV-…, in MOTIVO_REVOCA
// or MOTIVO_SOSPENSIONE); a reactivation date (RV-02, supply resumed); or, for a
// practice whose suspension is requested or in force, CMOR_INCASSATO = S (RV-01, the
// customer paid). It returns the cause and the date of the event.
func Revocation(r Record, state string) (cause string, on Date, ok bool) {
	on = r.Date(EntRevokeDate)
	if on.IsZero() {
		on = r.Date(EntReactivation)
	}
	if on.IsZero() {
		on = r.Date(EntSuspDate)
	}
	for _, f := range []string{EntRevokeCause, EntSuspCause} {
		if v := strings.ToUpper(r.Get(f)); strings.HasPrefix(v, "RV-") {
			return v, on, true
		}
	}
	if !r.Date(EntReactivation).IsZero() {
		return RevokeResumed, on, true
	}
	if r.Flag(EntCMORCollected) && (state == EntranteSuspRequested || state == EntranteSuspended) {
		return RevokePaid, on, true
	}
	return "", Date{}, false
}

// ---- report periods ----

// ReportPeriod is the calendar month in which billing data arrived; a practice's
// billing data is reported (REND) in the period it arrived in.
type ReportPeriod struct {
	Y int
	M time.Month
}

// ReportPeriodOf returns the period of an arrival instant, in Europe/Rome: 31 January
// 23:30 UTC is 1 February in Rome, so it belongs to February.
func ReportPeriodOf(at time.Time) ReportPeriod {
	r := at.In(Rome)
	return ReportPeriod{r.Year(), r.Month()}
}

// ParseReportPeriod reads "AAAA-MM".
func ParseReportPeriod(s string) (ReportPeriod, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return ReportPeriod{}, fmt.Errorf("report period %q: want AAAA-MM", s)
	}
	return ReportPeriod{t.Year(), t.Month()}, nil
}

// String is "AAAA-MM".
func (p ReportPeriod) String() string { return fmt.Sprintf("%04d-%02d", p.Y, int(p.M)) }

// First and Last are the period's first and last days.
func (p ReportPeriod) First() Date { return Date{p.Y, p.M, 1} }

// Last is the period's last day.
func (p ReportPeriod) Last() Date { return Date{p.Y, p.M, DaysIn(p.Y, p.M)} }

// Next returns the following period.
func (p ReportPeriod) Next() ReportPeriod {
	d := p.First().AddMonths(1)
	return ReportPeriod{d.Y, d.M}
}

// Closed reports whether the period is over at instant now (Europe/Rome): only a
// closed period is reported, so a report never misses data that arrives later in the
// same month.
func (p ReportPeriod) Closed(now time.Time) bool {
	return ReportPeriodOf(now).First().After(p.Last())
}

// ---- collection state ----

// Collection states of STATO_INCASSO (brief §3.4 REND).
const (
	CollCollected = "I" // incassato
	CollPartial   = "P" // parziale
	CollNone      = "N" // non incassato
)

// CollectionState derives STATO_INCASSO from amounts when billing left it empty, and
// checks it when given: collected ≥ billed is I, 0 < collected < billed is P, else N.
func CollectionState(given string, billed, collected Amount) (string, *Finding) {
	derived := CollNone
	switch {
	case collected > 0 && collected >= billed:
		derived = CollCollected
	case collected > 0:
		derived = CollPartial
	}
	given = strings.ToUpper(strings.TrimSpace(given))
	if given == "" {
		return derived, nil
	}
	if given != derived {
		return given, &Finding{Field: EntCollState, Rule: RuleRendAmount, Value: given,
			Message: fmt.Sprintf("collection state %s does not match the amounts (billed %s, collected %s: %s)", given, billed, collected, derived)}
	}
	return given, nil
}

// EntranteStateFor is the state a practice's billing totals call for: nothing billed
// is TO_CHARGE, collected in full is COLLECTED, billed and not (fully) collected is
// CHARGED.
func EntranteStateFor(charged, collected, cmor Amount) string {
	target := cmor
	if charged > target {
		target = charged
	}
	switch {
	case charged == 0 && collected == 0:
		return EntranteToCharge
	case collected > 0 && collected >= target:
		return EntranteCollected
	}
	return EntranteCharged
}

// ---- credit and debit notes ----

// Note types of the credit_notes export.
const (
	NoteCredit     = "NC" // nota di credito: the customer was billed too much
	NoteDebit      = "ND" // nota di debito: the customer was billed too little
	NoteAdjustment = "RA" // rettifica dell'addebito non ancora fatturato: change the amount to charge
)

// Note reasons of the credit_notes export.
const (
	NoteReasonAnnulment = "ANNULLAMENTO"
	NoteReasonUpdate    = "AGGIORNAMENTO_IMPORTO"
)

// NoteLine is one line billing must act on after an annulment or an amount update.
type NoteLine struct {
	Type    string // NC, ND or RA
	Reason  string // ANNULLAMENTO or AGGIORNAMENTO_IMPORTO
	Old     Amount // the amount before (billed, or to bill)
	New     Amount // the amount after
	Amount  Amount // what the note is for (always > 0)
	Charged bool   // the customer had already been billed
}

// AnnulmentNote is what billing must do when the indemnity is annulled: a credit note
// for what was billed, or (nothing billed yet) cancel the charge. ok is false when
// nothing was billed and nothing is left to bill.
func AnnulmentNote(cmor, charged Amount) (NoteLine, bool) {
	if charged > 0 {
		return NoteLine{Type: NoteCredit, Reason: NoteReasonAnnulment, Old: charged, New: 0, Amount: charged, Charged: true}, true
	}
	if cmor > 0 {
		return NoteLine{Type: NoteAdjustment, Reason: NoteReasonAnnulment, Old: cmor, New: 0, Amount: cmor}, true
	}
	return NoteLine{}, false
}

// UpdateNote is what billing must do when SI7.0200 re-amounts the CMOR from old to
// new: with the customer already billed, a credit note (new below what was billed) or
// a debit note (above); not billed yet, an adjustment of the amount to charge. ok is
// false when nothing changes.
func UpdateNote(old, new, charged Amount) (NoteLine, bool) {
	base, typ := old, NoteAdjustment
	if charged > 0 {
		base = charged
	}
	delta := new - base
	if delta == 0 {
		return NoteLine{}, false
	}
	n := NoteLine{Reason: NoteReasonUpdate, Old: base, New: new, Charged: charged > 0}
	switch {
	case charged == 0:
		n.Type = typ
		n.Amount = abs(delta)
	case delta < 0:
		n.Type, n.Amount = NoteCredit, -delta
	default:
		n.Type, n.Amount = NoteDebit, delta
	}
	return n, true
}

func abs(a Amount) Amount {
	if a < 0 {
		return -a
	}
	return a
}

// ---- practice data ----

// EntranteData is the JSON kept in an entrante practice's Data.
type EntranteData struct {
	NoticeDate      string            `json:"notice_date,omitempty"`       // DATA_NOTIFICA (ISO)
	PreviousFlag    bool              `json:"previous_uncollected"`        // FLAG_CMOR_PRECEDENTE_NON_RISCOSSO
	NoticeFile      int64             `json:"notice_file,omitempty"`       // archived NOTIF_ENTR
	NoticeLine      int               `json:"notice_line,omitempty"`       //
	StateBeforeSusp string            `json:"state_before_susp,omitempty"` // where a revoked suspension returns
	SuspCause       string            `json:"susp_cause,omitempty"`
	SuspDSORef      string            `json:"susp_dso_ref,omitempty"`
	Invoices        []EntranteInvoice `json:"invoices,omitempty"`       // CMOR invoices billed to the customer
	LinkedUscente   string            `json:"linked_uscente,omitempty"` // code of the uscente practice that carries this CMOR as previous
}

// EntranteInvoice is one CMOR invoice to the customer as billing last reported it.
type EntranteInvoice struct {
	Number    string `json:"number"`
	Date      string `json:"date,omitempty"`
	Billed    Amount `json:"billed"`
	Due       string `json:"due,omitempty"`
	State     string `json:"state"`
	Collected Amount `json:"collected"`
	CollDate  string `json:"coll_date,omitempty"`
}

// ParseEntranteData reads a practice's Data ("{}" and empty are fine).
func ParseEntranteData(b []byte) (EntranteData, error) {
	var d EntranteData
	if len(b) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("entrante practice data: %w", err)
	}
	return d, nil
}

// Marshal writes the Data JSON.
func (d *EntranteData) Marshal() []byte {
	b, _ := json.Marshal(d)
	return b
}

// SetInvoice replaces the invoice with the same number or adds it, and returns the
// totals billed and collected over every invoice.
func (d *EntranteData) SetInvoice(inv EntranteInvoice) (billed, collected Amount) {
	done := false
	for i := range d.Invoices {
		if d.Invoices[i].Number == inv.Number {
			d.Invoices[i], done = inv, true
		}
	}
	if !done {
		d.Invoices = append(d.Invoices, inv)
	}
	for _, v := range d.Invoices {
		billed += v.Billed
		collected += v.Collected
	}
	return billed, collected
}
