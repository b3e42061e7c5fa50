package flows

import (
	"strings"
	"testing"
)

// TestFlowAllows: an outbound flow moves a practice only from the states of its
// transition and only along the catalog's allowed moves; a flow without a target
// state (ANN_REQ) allows any practice and leaves its state.
func TestFlowAllows(t *testing.T) {
	cat := DefaultCatalog()
	for _, tc := range []struct {
		key, from string
		to        string
		ok        bool
	}{
		{"SUSP_REQ", EntranteToCharge, EntranteSuspRequested, true},
		{"SUSP_REQ", EntranteCharged, EntranteSuspRequested, true},
		{"SUSP_REQ", EntranteCollected, EntranteSuspRequested, false}, // not in From
		{"SUSP_REQ", EntranteSuspended, EntranteSuspRequested, false},
		{"SUSP_REVOKE", EntranteSuspended, EntranteCharged, true},
		{"SUSP_REVOKE", EntranteCharged, EntranteCharged, false},
		{"ANN_REQ", EntranteCharged, EntranteCharged, true}, // no target: stays
		{"NO_SUCH_FLOW", EntranteCharged, "", false},
	} {
		to, ok := FlowAllows(cat, tc.key, tc.from)
		if to != tc.to || ok != tc.ok {
			t.Errorf("FlowAllows(%s, %s) = %q, %v; want %q, %v", tc.key, tc.from, to, ok, tc.to, tc.ok)
		}
	}
	f := FlowStateRefusal(cat, "SUSP_REQ", EntCPGestore, RuleSuspState, EntranteCollected)
	if f.Rule != RuleSuspState || f.Value != EntranteCollected || !strings.Contains(f.Message, "NOTIFIED, TO_CHARGE, CHARGED") {
		t.Errorf("FlowStateRefusal = %+v", f)
	}
}

// TestMoveOnPublish: where a confirmed row moves its practice, by the row's field when
// the transition depends on one (REND: STATO_INCASSO "I" closes a collected practice).
func TestMoveOnPublish(t *testing.T) {
	cat := DefaultCatalog()
	rend := TransitionOf(cat.Flow("REND"))
	susp := TransitionOf(cat.Flow("SUSP_REQ"))
	for _, tc := range []struct {
		name string
		t    *Transition
		row  map[string]string
		from string
		want string
	}{
		{"REND collected in full closes", rend, map[string]string{"STATO_INCASSO": "I"}, EntranteCollected, EntranteClosed},
		{"REND partly collected stays", rend, map[string]string{"STATO_INCASSO": "P"}, EntranteCollected, ""},
		{"REND of a practice not collected stays", rend, map[string]string{"STATO_INCASSO": "I"}, EntranteCharged, ""},
		{"fixed target", susp, nil, EntranteCharged, EntranteSuspRequested},
		{"already there", susp, nil, EntranteSuspRequested, ""},
		{"not allowed from", susp, nil, EntranteSuspended, ""},
		{"no transition", nil, nil, EntranteCharged, ""},
	} {
		if got := MoveOnPublish(cat, tc.t, tc.row, tc.from); got != tc.want {
			t.Errorf("%s: MoveOnPublish = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestAnswerRequestStates: the state an SII answer gives the request it answers, and
// where a refused suspension returns its practice.
func TestAnswerRequestStates(t *testing.T) {
	for _, tc := range []struct {
		key     string
		refusal bool
		want    string
	}{
		{"SUSP_ESITO", false, "accepted"}, {"SUSP_ESITO", true, "rejected"},
		{"SUSP_AMM", false, "admitted"}, {"SUSP_AMM", true, "inadmissible"},
		{"REND_AMM", false, "admitted"}, {"ANN_AMM", true, "inadmissible"},
	} {
		if got := EntranteRequestAnswered(tc.key, tc.refusal); got != tc.want {
			t.Errorf("EntranteRequestAnswered(%s, %v) = %q, want %q", tc.key, tc.refusal, got, tc.want)
		}
	}
	for state, want := range map[string]string{StateAdmitted: "admitted", StateInadmissible: "inadmissible",
		StateAccepted: "accepted", StateRejected: "rejected", StateSent: "", StateAnnulled: ""} {
		if got := UscenteRequestAnswered(state); got != want {
			t.Errorf("UscenteRequestAnswered(%s) = %q, want %q", state, got, want)
		}
	}
	cat := DefaultCatalog()
	for _, tc := range []struct {
		name          string
		dec           AnswerDecision
		state, before string
		want          string
	}{
		{"refused suspension back to TO_CHARGE", AnswerDecision{From: EntranteSuspRequested, To: EntranteCharged, Refusal: true}, EntranteSuspRequested, EntranteToCharge, EntranteToCharge},
		{"refused, nothing remembered", AnswerDecision{From: EntranteSuspRequested, To: EntranteCharged, Refusal: true}, EntranteSuspRequested, "", EntranteCharged},
		{"refused, state not allowed", AnswerDecision{From: EntranteSuspRequested, To: EntranteCharged, Refusal: true}, EntranteSuspRequested, EntranteCollected, EntranteCharged},
		{"admitted", AnswerDecision{From: EntranteSuspRequested, To: EntranteSuspended}, EntranteSuspRequested, EntranteToCharge, EntranteSuspended},
		{"refusal elsewhere", AnswerDecision{From: EntranteSuspended, To: EntranteSuspended, Refusal: true}, EntranteSuspended, EntranteToCharge, EntranteSuspended},
	} {
		if got := EntranteAfterRefusedSuspension(cat, tc.dec, tc.state, tc.before); got != tc.want {
			t.Errorf("%s: EntranteAfterRefusedSuspension = %q, want %q", tc.name, got, tc.want)
		}
	}
	for state, live := range map[string]bool{EntranteCharged: true, EntranteSuspended: true, EntranteAnnulled: false, EntranteClosed: false, "REFUNDED": false} {
		if EntranteLive(state) != live {
			t.Errorf("EntranteLive(%s) = %v", state, !live)
		}
	}
}

// TestCaseAgainst: a billing case against the latest practice of its key.
func TestCaseAgainst(t *testing.T) {
	for _, tc := range []struct {
		state string
		found bool
		want  string
	}{
		{"", false, CaseNew},
		{StateDraft, true, CaseUpdate}, {StateWaitingWindow, true, CaseUpdate}, {StateReady, true, CaseUpdate},
		{StateInadmissible, true, CaseRefile}, {StateRejected, true, CaseRefile},
		{StateBuilt, true, CaseDuplicate}, {StateSent, true, CaseDuplicate}, {StateAdmitted, true, CaseDuplicate},
		{StateAccepted, true, CaseDuplicate}, {StateAnnulled, true, CaseDuplicate},
	} {
		if got := CaseAgainst(tc.state, tc.found); got != tc.want {
			t.Errorf("CaseAgainst(%q, %v) = %s, want %s", tc.state, tc.found, got, tc.want)
		}
		if tc.found && StateUnfiled(tc.state) != (tc.want == CaseUpdate) {
			t.Errorf("StateUnfiled(%s) = %v", tc.state, StateUnfiled(tc.state))
		}
	}
}
