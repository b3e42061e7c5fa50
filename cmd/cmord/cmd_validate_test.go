package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
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
				// what the daemon would do, practice by practice
				"practice IT001E12345678 RSSMRA85T10A562S 01/03/2025 (lines 2-3): ready; credit 246.75, estimate 387.80, CMOR 246.75; request window 01/09/2025-28/02/2026",
				"practice IT001E87654321 VRDGPP75M12H501U 01/03/2025 (lines 7-8): held (its rows were refused, see above)",
				"9 rows, 6 errors",
				"7 practices, 2 ready, 5 held",
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

// TestValidateGolden compares validate's whole output with testdata/validate/*.golden
// (rewritten under -update): findings in line order even when a case's eligibility
// finding is only known rows later, and the --kind hint only where a guessed kind is
// wrong and another kind explains the findings.
func TestValidateGolden(t *testing.T) {
	const (
		morosiMapping  = "../../testdata/inputs/uscente.morosi.mapping.toml" // names its kind
		columnsMapping = "testdata/validate/morosi_columns_only.mapping.toml"
	)
	cases := []struct {
		golden   string
		args     []string
		wantCode int
	}{
		// Line 2's case fails E8, known only when line 4 starts the next case.
		{"out_of_order.golden", []string{"--on", "01/12/2025", "--mapping", morosiMapping, "testdata/validate/out_of_order.csv"}, exitFindings},
		// Rows of one practice not adjacent (A1 B A2 C): each practice with all of its
		// rows, as the daemon files them; nothing to correct.
		{"interleaved.golden", []string{"--on", "15/10/2025", "--kind", "uscente.morosi", "testdata/validate/interleaved.csv"}, exitOK},
		// The header covers uscente.incassi's mandatory columns as well as
		// entrante.fatturato's; incassi comes first, fatturato reads it clean.
		{"guessed_wrong_kind.golden", []string{"testdata/validate/fatturato_canonical.csv"}, exitFindings},
		// The same findings under --kind: the operator chose, no hint.
		{"given_kind.golden", []string{"--kind", "uscente.incassi", "testdata/validate/fatturato_canonical.csv"}, exitFindings},
		{"given_kind_clean.golden", []string{"--kind", "entrante.fatturato", "testdata/validate/fatturato_canonical.csv"}, exitOK},
		// Kind from the mapping file: no hint.
		{"mapping_kind.golden", []string{"--on", "01/12/2025", "--mapping", morosiMapping, "testdata/validate/one_bad_row.csv"}, exitFindings},
		// Kind guessed from the header, right, with a bad row no other kind explains: no hint.
		{"guessed_right_kind.golden", []string{"--on", "01/12/2025", "--mapping", columnsMapping, "testdata/validate/one_bad_row.csv"}, exitFindings},
		{"unknown_kind.golden", []string{"testdata/validate/unknown.csv"}, exitFindings},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"validate"}, tc.args...), nil, &out, &errb)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.wantCode, out.String(), errb.String())
			}
			if errb.Len() > 0 {
				t.Errorf("stderr: %s", errb.String())
			}
			path := filepath.Join("testdata", "validate", tc.golden)
			if updating() {
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("%s differs (run with -update to accept):\n--- got\n%s--- want\n%s", path, out.Bytes(), want)
			}
		})
	}
}

// TestSortFindings: file, then line, then field; one field's findings keep their order.
func TestSortFindings(t *testing.T) {
	fs := []flows.Finding{
		{File: "b.csv", Line: 1, Field: "A", Rule: "1"},
		{File: "a.csv", Line: 9, Field: "A", Rule: "2"},
		{File: "a.csv", Line: 2, Field: "Z", Rule: "3"},
		{File: "a.csv", Line: 2, Field: "B", Rule: "4"},
		{File: "a.csv", Line: 2, Field: "B", Rule: "5"},
	}
	sortFindings(fs)
	var got []string
	for _, f := range fs {
		got = append(got, f.Rule)
	}
	if strings.Join(got, "") != "45321" {
		t.Errorf("order %v, want [4 5 3 2 1]", got)
	}
}
