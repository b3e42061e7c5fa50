// Package uscente is the uscente family (docs/uscente.md): billing extracts of
// defaulting customers become practices with a CP_UTENTE, eligible ones become REQ
// requests, and builders write the REQ / ANN_REQ / REFUND_ACK flow files.
//
// Where things are: morosi.go (uscente.morosi, chunk by chunk) and morosi_case.go (one
// case: new practice, update, refusal, hold), morosi_cases.go (the rows grouped into
// cases, sorted when they are not adjacent; ValidateMorosi for `cmord validate`),
// inputs.go (payments, operator annulments, refunds), read.go (opening an input),
// builder.go (the REQ / ANN_REQ / REFUND_ACK files), windows.go (request windows that
// open or close). The decisions without I/O are in package flows (DecideMorosi,
// CheckEligibility, ComputeCMOR); the SII's answers are read by daemon/sii.
package uscente

import (
	"context"
	"fmt"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
)

// Flow keys of the uscente side.
const (
	FlowREQ       = "REQ"
	FlowANNREQ    = "ANN_REQ"
	flowREFUNDACK = "REFUND_ACK"
)

// Setup registers the uscente family: the handlers of billing's uscente inputs and
// the builders of the uscente's requests.
func Setup(h family.Host, r family.Registry) error {
	u := &uscente{h: h}
	r.Handle(config.KindUscenteMorosi, u.guard(u.handleMorosi))
	r.Handle(config.KindUscenteIncassi, u.guard(u.handleIncassi))
	r.Handle(config.KindUscenteAnnullamenti, u.guard(u.handleAnnullamenti))
	r.Handle(config.KindUscenteRimborsi, u.guard(u.handleRimborsi))
	for _, key := range []string{FlowREQ, FlowANNREQ, flowREFUNDACK} {
		r.AddBuilder(&requestBuilder{u: u, flow: key})
	}
	return nil
}

type uscente struct{ h family.Host }

// guard refuses uscente inputs when the company does not hold the uscente role.
func (u *uscente) guard(h family.HandlerFunc) family.Handler {
	return family.HandlerFunc(func(ctx context.Context, in *family.Input) (family.Result, error) {
		if !in.Config.Company.HasRole("uscente") {
			return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: fmt.Sprintf(
				"%s is an uscente input, but the company does not hold the uscente role (company.roles = %v): refused",
				in.File.Kind, in.Config.Company.Roles)})
		}
		return h(ctx, in)
	})
}

// ---- uscente.morosi ----
