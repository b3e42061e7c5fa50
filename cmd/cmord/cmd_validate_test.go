package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestValidate checks billing extracts and SII flows offline, as an operator would
// before dropping them: line-level findings and exit 1, or exit 0 when clean.
func TestValidate(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"billing extract with refused rows", []string{"validate", "--on", "01/12/2025", "--mapping", "../../testdata/inputs/uscente.morosi.mapping.toml", "../../testdata/inputs/uscente.morosi.csv"},
			exitFindings, []string{
				"uscente.morosi.csv:5: field CF_CLIENTE: rule ID-CF",
				"uscente.morosi.csv:6: field COD_POD: rule ID-POD",
				"uscente.morosi.csv:7: field DATA_SCADENZA: rule TYPE-DATE",
				"uscente.morosi.csv:8: field IMPORTO_INSOLUTO: rule TYPE-AMOUNT",
				"uscente.morosi.csv:9: field COD_PDR: rule ID-PDR",
				"uscente.morosi.csv:10: field CONGUAGLIO: rule REQUIRED",
				"9 rows, 6 errors",
			}},
		{"an SII flow we built is clean", []string{"validate", "../../daemon/testdata/uscente/REQ_e2e.csv"}, exitOK, []string{"0 errors"}},
		{"missing file", []string{"validate", "no-such-file.csv"}, exitFindings, []string{"no-such-file.csv"}},
		{"no file", []string{"validate"}, exitUsage, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, nil, &out, &errb)
			all := out.String() + errb.String()
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", code, tc.wantCode, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}
