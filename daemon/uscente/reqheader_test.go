package uscente

import (
	"testing"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/flows"
)

// A REQ request's header names the company as the seller leaving; a company acting as
// CC (controparte commerciale) sends for its UDD, and is named as the CC leaving.
func TestReqHeader(t *testing.T) {
	for _, tc := range []struct {
		acting string
		want   flows.ReqHeader
	}{
		{"", flows.ReqHeader{PIVAUtente: "01234567890", PIVAGestore: "09876543210", CPUtente: "E250000001"}},
		{"UDD", flows.ReqHeader{PIVAUtente: "01234567890", PIVAGestore: "09876543210", CPUtente: "E250000001"}},
		{"CC", flows.ReqHeader{PIVAUtente: "11111111111", PIVAGestore: "09876543210", PIVACCUscita: "01234567890", CPUtente: "E250000001"}},
	} {
		cfg := &config.Config{}
		cfg.Company.PIVA, cfg.Company.PIVAGestore, cfg.Company.UDDPIVA, cfg.Company.ActingAs = "01234567890", "09876543210", "11111111111", tc.acting
		if got := reqHeader(cfg, "E250000001"); got != tc.want {
			t.Errorf("acting as %q: %+v, want %+v", tc.acting, got, tc.want)
		}
	}
}
