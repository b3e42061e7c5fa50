package flows

import (
	"fmt"
	"slices"
	"strings"
)

// The state decisions of the flow families that need no I/O: whether an outbound
// flow may move a practice now, where a published row moves it, what state an SII
// answer gives the request it answers. The handlers and builders (daemon/uscente,
// daemon/entrante, daemon/sii) only read, decide through these, and write.

// FlowAllows reports whether the catalog lets the outbound flow key move a practice
// now in state from (the flow's transition From list and the states' allowed moves),
// and to which state. A flow that drives no state allows any practice (to = from).
func FlowAllows(cat *Catalog, key, from string) (to string, ok bool) {
	f := cat.Flow(key)
	if f == nil {
		return "", false
	}
	t := TransitionOf(f)
	if t == nil || t.To == "" {
		return from, true
	}
	if len(t.From) > 0 && !slices.Contains(t.From, from) {
		return t.To, false
	}
	return t.To, cat.CanTransition(from, t.To)
}

// FlowStateRefusal is the finding for a row whose practice is in a state the outbound
// flow key does not accept (FlowAllows said no).
func FlowStateRefusal(cat *Catalog, key, field, rule, state string) Finding {
	from := ""
	if f := cat.Flow(key); f != nil && TransitionOf(f) != nil {
		from = strings.Join(TransitionOf(f).From, ", ")
	}
	return Finding{Field: field, Rule: rule, Value: state,
		Message: fmt.Sprintf("the catalog allows %s only for practices in %s; this one is %s", key, from, state)}
}

// MoveOnPublish is the state a practice now in state from reaches once a row of a
// file of the flow with transition t is confirmed on the SII side: t's target (by the
// row's value of t.Field when the transition depends on it), if t accepts from and
// the catalog allows the move; "" when the practice stays where it is.
func MoveOnPublish(cat *Catalog, t *Transition, row map[string]string, from string) string {
	if t == nil {
		return ""
	}
	to := t.To
	if t.Field != "" {
		to = t.On[row[t.Field]]
	}
	if to == "" || to == from || (len(t.From) > 0 && !slices.Contains(t.From, from)) || !cat.CanTransition(from, to) {
		return ""
	}
	return to
}

// EntranteLive reports whether the SII still considers an entrante practice open:
// billing's rows may name it, an annulment may be requested for it.
func EntranteLive(state string) bool {
	switch state {
	case EntranteAnnulled, EntranteClosed, "REFUNDED":
		return false
	}
	return true
}

// EntranteRequestAnswered is the state of an entrante request (SUSP_REQ,
// SUSP_REVOKE, ANN_REQ, REND) once the SII answered it with the flow answerKey:
// SUSP_ESITO accepts or rejects a suspension; the admissibility answers admit it or
// find it inadmissible.
func EntranteRequestAnswered(answerKey string, refusal bool) string {
	switch {
	case answerKey == "SUSP_ESITO" && refusal:
		return "rejected"
	case answerKey == "SUSP_ESITO":
		return "accepted"
	case refusal:
		return "inadmissible"
	}
	return "admitted"
}

// EntranteAfterRefusedSuspension is where an SII answer moves an entrante practice:
// the decision's target, except that a refused suspension returns the practice to
// the state it had before the request (it may not have been billed yet) when the
// catalog allows it, not to the catalog's generic CHARGED.
func EntranteAfterRefusedSuspension(cat *Catalog, dec AnswerDecision, state, before string) string {
	if dec.Refusal && state == EntranteSuspRequested && before != "" && cat.CanTransition(state, before) {
		return before
	}
	return dec.To
}

// UscenteRequestAnswered is the state of an uscente REQ request once an answer moved
// its practice to practiceState ("" when the answer says nothing of the request).
func UscenteRequestAnswered(practiceState string) string {
	switch practiceState {
	case StateAdmitted:
		return "admitted"
	case StateInadmissible:
		return "inadmissible"
	case StateAccepted:
		return "accepted"
	case StateRejected:
		return "rejected"
	}
	return ""
}

// StateUnfiled reports whether an uscente practice in state s has not been filed yet
// (DRAFT, WAITING_WINDOW, READY): a new extract of its case corrects it, a payment
// re-checks it, a refusal holds it.
func StateUnfiled(s string) bool {
	switch s {
	case StateDraft, StateReady, StateWaitingWindow:
		return true
	}
	return false
}

// What a billing case does against the latest practice of the same case key.
const (
	CaseNew       = "new"       // no practice: a new one (unless the case is refused)
	CaseUpdate    = "update"    // a practice not yet filed: the case corrects and completes it
	CaseRefile    = "refile"    // the SII refused the filed one: a new practice, NEW CP_UTENTE, linked
	CaseDuplicate = "duplicate" // filed already: not filed again (rule SI-D01)
)

// CaseAgainst decides what a case does given the state of the latest practice of its
// key (found false: there is none).
func CaseAgainst(state string, found bool) string {
	switch {
	case !found:
		return CaseNew
	case state == StateInadmissible || state == StateRejected:
		return CaseRefile
	case StateUnfiled(state):
		return CaseUpdate
	}
	return CaseDuplicate
}
