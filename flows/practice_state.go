package flows

import (
	"fmt"
	"strings"
)

// Practice states (brief §2.5). The names are ours; the catalog's [[states]] table says
// which moves are allowed, and each inbound flow's [flows.transition] which move it
// drives. fallbackTransitions below is used only for a flow the catalog gives no
// transition, so a catalog file that corrects a transition wins without a rebuild.
const (
	StateDraft         = "DRAFT"          // refused by our own checks; kept with the reasons
	StateWaitingWindow = "WAITING_WINDOW" // eligible, the request window is not open yet
	StateReady         = "READY"          // eligible and inside the window: goes into the next REQ file
	StateBuilt         = "BUILT"          // written into an SI1.0050 file not yet confirmed on the SII side (upload, size check, rename)
	StateSent          = "SENT"           // its SI1.0050 file confirmed on the SII side (uploaded, size checked, renamed)
	StateInadmissible  = "INADMISSIBLE"   // SII admissibility KO (terminal; refile with a NEW CP_UTENTE)
	StateAdmitted      = "ADMITTED"       // SII admissibility OK, CP_GESTORE known
	StateRejected      = "REJECTED"       // SII verification KO (terminal)
	StateAccepted      = "ACCEPTED"       // SII verification OK
	StateSuspended     = "SUSPENDED"      // the entrante's suspension holds the flow
	StateNotifiedDSO   = "NOTIFIED_TO_DSO"
	StateBilledUDDE    = "BILLED_TO_UDD_E"
	StatePaidCSEA      = "PAID_TO_CSEA"
	StateIndemnityPaid = "INDEMNITY_PAID"
	StateAnnulled      = "ANNULLED"
)

// StateSentOrLater reports whether a practice in state s has reached the SII (a new
// extract of the same case must not file it again: rule SI-D01).
func StateSentOrLater(s string) bool {
	switch s {
	case StateDraft, StateWaitingWindow, StateReady, "":
		return false
	}
	return true
}

// StateOpen reports whether the SII still considers the practice alive (an annulment
// can be requested for it).
func StateOpen(s string) bool {
	switch s {
	case StateBuilt, StateSent, StateAdmitted, StateAccepted, StateSuspended, StateNotifiedDSO, StateBilledUDDE, StatePaidCSEA, StateIndemnityPaid:
		return true
	}
	return false
}

// fallbackTransitions are the moves of the uscente's inbound flows when the catalog
// does not give one.
var fallbackTransitions = map[string]*Transition{
	"REQ_AMM":   {From: []string{StateSent, StateBuilt}, Field: "VERIFICA_AMM", On: map[string]string{"1": StateAdmitted, "0": StateInadmissible}},
	"REQ_ESITO": {From: []string{StateAdmitted}, Field: "ESITO", On: map[string]string{"1": StateAccepted, "0": StateRejected}},
	"ANN_NOTIF": {From: []string{StateBuilt, StateSent, StateAdmitted, StateAccepted, StateSuspended, StateNotifiedDSO, StateBilledUDDE, StatePaidCSEA, StateIndemnityPaid}, To: StateAnnulled},
}

// AnswerDecision is what one SII answer record does to a practice.
type AnswerDecision struct {
	From, To  string // To == From: no state change (a note only)
	Refusal   bool   // the SII refused (inadmissible, rejected, annulment refused)
	CauseCode string
	Reason    string // MOTIVAZIONE, verbatim
}

// Changes reports whether the decision moves the practice.
func (d AnswerDecision) Changes() bool { return d.To != d.From }

// StateConflict is an answer the state machine forbids (e.g. an outcome for a
// practice never admitted): the practice is left alone and a person looks.
type StateConflict struct {
	Flow, From, To string
	Why            string
}

func (e *StateConflict) Error() string {
	return fmt.Sprintf("%s cannot move a practice from %s to %s: %s", e.Flow, e.From, e.To, e.Why)
}

// TransitionOf returns the transition a flow drives: the catalog's, else the built-in
// one for the uscente answers, else nil.
func TransitionOf(f *Flow) *Transition {
	if f.Transition != nil {
		return f.Transition
	}
	return fallbackTransitions[f.Key]
}

// DecideAnswer decides what an SII answer record of flow f does to a practice now in
// state current. Refusals are recognised by their target state (INADMISSIBLE,
// REJECTED) or, for flows that drive no state (ANN_AMM), by VERIFICA_AMM/ESITO = 0.
// A re-delivered answer whose target is the current state is not a conflict.
func DecideAnswer(cat *Catalog, f *Flow, rec Record, current string) (AnswerDecision, error) {
	d := AnswerDecision{From: current, To: current, CauseCode: firstNonEmpty(rec.Get("COD_CAUSALE"), rec.Get("COD_CAUSALE_ANNULLAMENTO")),
		Reason: rec.Get("MOTIVAZIONE")}
	for _, fld := range []string{"VERIFICA_AMM", "ESITO"} {
		if rec.Get(fld) == "0" {
			d.Refusal = true
		}
	}
	t := TransitionOf(f)
	if t == nil {
		return d, nil
	}
	to, ok := t.Target(rec)
	if !ok {
		return d, nil
	}
	if to == StateInadmissible || to == StateRejected {
		d.Refusal = true
	}
	if to == current {
		return d, nil // the same answer again
	}
	if len(t.From) > 0 && !containsString(t.From, current) {
		return d, &StateConflict{Flow: f.Key, From: current, To: to,
			Why: "the flow applies only to practices in " + strings.Join(t.From, ", ")}
	}
	if cat != nil && cat.State(current) != nil && cat.State(to) != nil && !cat.CanTransition(current, to) {
		return d, &StateConflict{Flow: f.Key, From: current, To: to, Why: "the catalog's state machine does not allow it"}
	}
	if cat != nil && cat.State(current) != nil && cat.State(current).Terminal {
		return d, &StateConflict{Flow: f.Key, From: current, To: to, Why: current + " is terminal"}
	}
	d.To = to
	return d, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
