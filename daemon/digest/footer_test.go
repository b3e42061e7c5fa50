package digest

import (
	"bytes"
	"context"
	stdhtml "html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
	"github.com/xuri/excelize/v2"
)

// A refusal for an eligibility rule (E1–E11) asks for nothing to correct; a data error
// asks to correct the row in billing.
func TestEligibilityRefusalWording(t *testing.T) {
	d := fixtureDigest(t)
	L := labels["it"]
	for _, c := range []struct {
		kind, rule string
		want       string
	}{
		{"row_refused", "E5", "Non ammissibile, nessuna correzione"},
		{"case_refused", "E3", "Non ammissibile, nessuna correzione"},
		{"row_refused", "ID-CF", "Correggere la riga"},
		{"row_refused", "E3-WAIT", "Correggere la riga"},
		{"build_refused", "E3", "Correggere i dati"},
	} {
		v := d.itemView(Item{Exception: archive.Exception{Kind: c.kind, Rule: c.rule, Severity: "normal"}}, "it", masker{on: true}, L)
		if !strings.HasPrefix(v.Action, c.want) {
			t.Errorf("%s %s: action %q, want it to start with %q", c.kind, c.rule, v.Action, c.want)
		}
	}
	if got := itemAction(Item{Exception: archive.Exception{Kind: "row_refused", Rule: "E10"}}, "en"); !strings.HasPrefix(got, "Not eligible, nothing to correct") {
		t.Errorf("English: %q", got)
	}
}

// The digest names every file refused whole in the period with its reason, and its
// footer says what a person can do without a shell: the Excel attachment, whom to call.
func TestDigestRejectedFilesAndFooter(t *testing.T) {
	d := fixtureDigest(t)
	_, text, html, _, err := d.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{text, stdhtml.UnescapeString(html)} {
		for _, want := range []string{
			"File rifiutati nel periodo", "morosi_20261122_bis.csv", "the header has no column POD (line 1)",
			"Cosa potete fare senza accedere al server", "cmord-eccezioni-2026-11-23.xlsx", "Ufficio sistemi, 06 1234567",
			"non ammissibile, nessuna correzione",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("digest lacks %q", want)
			}
		}
		if strings.Contains(body, "cmord exceptions resolve") {
			t.Errorf("the footer asks compliance to run a command on the server")
		}
	}
	d.Contact = ""
	_, text, _, _, _ = d.Render("it", false)
	if !strings.Contains(text, "[digest] contact") {
		t.Errorf("without a contact the footer does not say where to set one")
	}
}

// The XLSX attachment keeps its cells text: a PDR or P.IVA with leading zeros comes
// back as written, and nothing is a formula; the ID, line and count are numbers and
// the times date cells, which sort and filter as such.
func TestDigestXLSXCellsAreText(t *testing.T) {
	d := fixtureDigest(t)
	d.New[0].Point, d.New[0].CustomerID = "00881234567890", "01234567897"
	data, err := d.XLSX("it", true)
	if err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := f.GetRows("Eccezioni")
	if err != nil || len(rows) < 2 {
		t.Fatalf("rows %d, %v", len(rows), err)
	}
	if rows[0][8] != "POD/PDR" || rows[1][8] != "00881234567890" || rows[1][9] != "01234567897" {
		t.Errorf("identifiers: header %q, row %q", rows[0][8:10], rows[1][8:10])
	}
	for _, cell := range []string{"I2", "J2", "B2", "S2"} {
		typ, err := f.GetCellType("Eccezioni", cell)
		if err != nil || (typ != excelize.CellTypeSharedString && typ != excelize.CellTypeInlineString) {
			t.Errorf("cell %s is of type %v (%v), want a string", cell, typ, err)
		}
	}
	if len(xlsxTyped) != len(csvHeaders["it"]) {
		t.Fatalf("xlsxTyped has %d columns, csvHeaders %d", len(xlsxTyped), len(csvHeaders["it"]))
	}
	// A2 the ID, U2 the first time seen (Rome), W2 the count.
	for _, cell := range []string{"A2", "U2", "W2"} {
		if typ, err := f.GetCellType("Eccezioni", cell); err != nil || typ != excelize.CellTypeUnset && typ != excelize.CellTypeNumber {
			t.Errorf("cell %s is of type %v (%v), want a number", cell, typ, err)
		}
	}
	first, _ := f.GetCellValue("Eccezioni", "U2")
	if want := d.New[0].FirstSeen.In(flows.Rome).Format("02/01/2006 15:04:05"); rows[0][20] != "Prima rilevazione (Roma)" || first != want ||
		!regexp.MustCompile(`^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d$`).MatchString(first) {
		t.Errorf("first seen shown as %q (header %q), want dd/mm/yyyy hh:mm:ss", first, rows[0][20])
	}
	raw, _ := f.GetCellValue("Eccezioni", "U2", excelize.Options{RawCellValue: true})
	if _, err := strconv.ParseFloat(raw, 64); err != nil {
		t.Errorf("first seen stored as %q, want a date serial", raw)
	}
}

// The digest's XLSX attachment, opened by LibreOffice in the Italian locale, shows a
// PDR and a P.IVA with their leading zeros (daemon/export has the same check for the
// practices export, and shows the CSV losing them).
func TestDigestXLSXInItalianLibreOffice(t *testing.T) {
	var soffice string
	for _, name := range []string{"soffice", "libreoffice"} {
		if p, err := exec.LookPath(name); err == nil {
			soffice = p
			break
		}
	}
	if soffice == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("LibreOffice is required in CI (apt-get install libreoffice-calc-nogui)")
		}
		t.Skip("LibreOffice not installed; skipping the Italian-office read-back")
	}
	d := fixtureDigest(t)
	d.New[0].Point, d.New[0].CustomerID = "00881234567890", "01234567897"
	data, err := d.XLSX("it", true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "eccezioni.xlsx")
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, soffice, "--headless", "--norestore", "-env:UserInstallation=file://"+filepath.Join(dir, "lo"),
		"--convert-to", "csv", "--outdir", filepath.Join(dir, "out"), in)
	cmd.Env = append(os.Environ(), "LANG=it_IT.UTF-8", "LC_ALL=it_IT.UTF-8")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("soffice: %v\n%s", err, out)
	}
	out, err := os.ReadFile(filepath.Join(dir, "out", "eccezioni.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// The first time seen is a date cell, shown as it was written in Rome's time.
	first := d.New[0].FirstSeen.In(flows.Rome).Format("02/01/2006 15:04:05")
	for _, id := range []string{",00881234567890,", ",01234567897,", "," + first + ","} {
		if !strings.Contains(string(out), id) {
			t.Errorf("LibreOffice shows the attachment without %s:\n%.1500s", id, out)
		}
	}
}
