package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// `cmord validate --mapping` reads a foreign export with its mapping file alone,
// refuses a mapping file that does not fit its kind before reading (exit 2, each
// problem at its file:line), and says what a file that is not text is.
func TestValidateMappingFile(t *testing.T) {
	dir := t.TempDir()
	gamma := "../../testdata/inputs/foreign/morosi-gamma.mapping.toml"
	data, err := os.ReadFile(gamma)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(data), `COD_PDR = "SETTORE=G"`, `COD_PDR = "COMMODITY=G"`, 1)
	broken = strings.Replace(broken, `[values.USO_GAS]`, `[values.USO]`, 1)
	brokenPath := filepath.Join(dir, "broken.toml")
	os.WriteFile(brokenPath, []byte(broken), 0o600)
	csv, _ := os.ReadFile("../../testdata/inputs/foreign/morosi-gamma.csv")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(csv)
	zw.Close()
	gzPath := filepath.Join(dir, "morosi-gamma.csv.gz")
	os.WriteFile(gzPath, gz.Bytes(), 0o600)

	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		want    []string
		notWant []string
	}{
		{"foreign export", []string{"validate", "--mapping", gamma, "--on", "15/10/2025", "../../testdata/inputs/foreign/morosi-gamma.csv"}, exitFindings,
			[]string{"morosi-gamma.csv:8: field TIPO_LETTURA: rule ENUM", "translates only: C, R, S", "7 rows"},
			[]string{"rule MAPPING", "rule CSV-", "rule REQUIRED", "morosi-gamma.csv:3: field COD_PDR"}},
		{"mapping that does not fit", []string{"validate", "--mapping", brokenPath, "../../testdata/inputs/foreign/morosi-gamma.csv"}, exitUsage,
			[]string{"broken.toml:45: field USO: rule MAPPING: value table for USO, which is not a field of uscente.morosi",
				`broken.toml:72: field COD_PDR: rule MAPPING: route of column "Punto": condition "COMMODITY=G" names unknown field "COMMODITY"`, "does not fit uscente.morosi (2 problems)"},
			[]string{"7 rows"}},
		{"gzip", []string{"validate", "--mapping", gamma, gzPath}, exitFindings,
			[]string{"morosi-gamma.csv.gz: rule FILE-FORMAT: not a text CSV file: a gzip-compressed file", "0 rows, 1 error"}, []string{"\uFFFD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, nil, &out, &errb)
			all := out.String() + errb.String()
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q\n%s", w, all)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(all, w) {
					t.Errorf("output has %q\n%s", w, all)
				}
			}
		})
	}
}

// A workbook saved from Excel is validated like its CSV: the same findings, line for
// line (a sheet's row numbers are the CSV's line numbers).
func TestValidateWorkbook(t *testing.T) {
	csv, err := os.ReadFile("../../testdata/inputs/uscente.incassi.csv")
	if err != nil {
		t.Fatal(err)
	}
	x := excelize.NewFile()
	sh := x.GetSheetName(0)
	for r, line := range strings.Split(strings.TrimRight(strings.ReplaceAll(string(csv), "\r", ""), "\n"), "\n") {
		for c, v := range strings.Split(line, ";") {
			cell, _ := excelize.CoordinatesToCellName(c+1, r+1)
			x.SetCellStr(sh, cell, v)
		}
	}
	path := filepath.Join(t.TempDir(), "incassi.xlsx")
	if err := x.SaveAs(path); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	run([]string{"validate", "--mapping", "../../testdata/inputs/uscente.incassi.mapping.toml", path}, nil, &out, &errb)
	viaCSV, errc := bytes.Buffer{}, bytes.Buffer{}
	run([]string{"validate", "--mapping", "../../testdata/inputs/uscente.incassi.mapping.toml", "../../testdata/inputs/uscente.incassi.csv"}, nil, &viaCSV, &errc)
	// Same findings, line for line, whichever file they came from.
	norm := func(s, name string) string { return strings.ReplaceAll(s, name, "FILE") }
	if got, want := norm(out.String(), path), norm(viaCSV.String(), "../../testdata/inputs/uscente.incassi.csv"); got != want {
		t.Errorf("workbook:\n%s\nCSV:\n%s", got, want)
	}
}
