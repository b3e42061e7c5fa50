package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/receipt"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

// ingestAndProcess archives content as a uscente.morosi drop and runs the handler on it.
func ingestAndProcess(t *testing.T, w *testWorld, name, content string) Result {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), name)
	writeFile(t, path, content)
	res, err := w.d.Store.Ingest(ctx, archive.IngestRequest{Source: "folder:morosi", Name: name, Direction: "in", Kind: "uscente.morosi", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.d.process(ctx, res.File, w.d.folderByName("morosi"))
	if err != nil {
		t.Fatalf("process %s: %v", name, err)
	}
	return out
}

func extract(rows ...string) string {
	return strings.Join(append([]string{strings.Join(morosiHeader, ";")}, rows...), "\r\n") + "\r\n"
}

// Every way billing can give a practice that is not what it seems is told to a person
// and holds the practice: nothing of it reaches SI1.0050 with content different from
// what billing gave, while the other practices of the file go out unchanged. Rows of
// one practice that are not adjacent are simply one practice.
func TestMorosiSilentCasesHeld(t *testing.T) {
	sw := flows.D(2025, 3, 1)
	podA, podB := "IT023E00121943", "IT001E00000042"
	cfA, cfB := testCF("RSSMRA85T10A562"), testCF("VRDGPP70A01H501")
	a := func(inv, amount string, over map[string]string) string {
		return morosiRow(podA, cfA, "Mario Rossi", sw, inv, amount, over)
	}
	b := func(inv, amount string) string { return morosiRow(podB, cfB, "Giuseppe Verdi", sw, inv, amount, nil) }
	noMora := map[string]string{"DATA_MORA": "", "MEZZO_MORA": "", "TERMINE_MORA": "", "INFO_CMOR": "", "RIF_MORA": ""}
	otherSpend := spend12(sw)[:len(spend12(sw))-5] + "90.00"
	tests := []struct {
		name    string
		rows    []string
		filedA  string   // A's credit in SI1.0050, "" when A must not be there
		want    []string // "rule@line field value" findings that must be there
		notWant []string // rules that must not be among the findings
		kind    string   // the exception kind A's finding raises
	}{
		{name: "interleaved rows: one practice each, whole", rows: []string{a("F1", "150.00", nil), b("F3", "95.50"), a("F2", "120.00", nil), b("F4", "10.00")},
			filedA: "270.00"},
		{name: "voltage differs between rows", rows: []string{a("F1", "150.00", nil), b("F3", "95.50"), a("F2", "120.00", map[string]string{"TENSIONE": "MT"})},
			want: []string{"CASE-CONFLICT@4 TENSIONE BT / MT"}, kind: "row_refused"},
		{name: "12-month spend differs between rows", rows: []string{a("F1", "150.00", nil), a("F2", "120.00", map[string]string{"SPESA_12M": otherSpend}), b("F3", "95.50")},
			want: []string{"CASE-CONFLICT@3 SPESA_12M"}, kind: "row_refused"},
		{name: "closing-invoice attestation differs between rows", rows: []string{a("F1", "150.00", map[string]string{"FATTURA_CHIUSURA": "N"}), b("F3", "95.50"), a("F2", "120.00", nil)},
			want: []string{"CASE-CONFLICT@4 FATTURA_CHIUSURA N / S"}, kind: "row_refused"},
		{name: "one mora notice given two payment terms", rows: []string{a("F1", "150.00", map[string]string{"RIF_MORA": "RA-1"}), b("F3", "95.50"),
			a("F2", "120.00", map[string]string{"RIF_MORA": "RA-1", "TERMINE_MORA": "15/05/2025"})},
			want: []string{"CASE-CONFLICT@4 TERMINE_MORA 15/05/2025 / 30/04/2025"}, kind: "row_refused"},
		{name: "the same invoice listed twice", rows: []string{a("F1", "150.00", nil), a("F1", "150.00", nil), b("F3", "95.50")},
			want: []string{"CASE-DUP-INVOICE@3 NUM_FATTURA F1"}, kind: "row_refused"},
		{name: "one refused row holds the whole practice", rows: []string{a("F1", "150.00", nil), b("F3", "95.50"), a("F2", "120.00", map[string]string{"DATA_SCADENZA": "31/02/2025"})},
			want: []string{"TYPE-DATE@4 DATA_SCADENZA", "CASE-ROWS@2 DATA_SWITCH"}, kind: "row_refused"},
		{name: "never put in mora: E5, not a missing value", rows: []string{a("F1", "150.00", noMora), b("F3", "95.50")},
			want: []string{"E5@2 DATA_COSTITUZIONE_MORA"}, notWant: []string{flows.RuleRequired}, kind: "case_not_eligible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			res := ingestAndProcess(t, w, "morosi.csv", extract(tt.rows...))
			if res.Rejected {
				t.Fatalf("file refused: %s", res.Reason)
			}
			var got []string
			for _, f := range res.Findings {
				got = append(got, fmt.Sprintf("%s@%d %s %s", f.Rule, f.Line, f.Field, f.Value))
				if slices.Contains(tt.notWant, f.Rule) {
					t.Errorf("finding %s", f)
				}
				if f.File == "" || f.Line < 2 {
					t.Errorf("finding not located: %+v", f)
				}
			}
			for _, wf := range tt.want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, wf) }) {
					t.Errorf("no finding %q among %q", wf, got)
				}
			}
			if tt.want == nil && len(got) > 0 {
				t.Errorf("findings %q, want none", got)
			}
			if tt.kind != "" {
				found := false
				for _, e := range w.exceptions(tt.kind) {
					found = found || e.Rule == strings.SplitN(tt.want[0], "@", 2)[0]
				}
				if !found {
					t.Errorf("no %s exception for %s", tt.kind, tt.want[0])
				}
			}
			w.runOnce()
			pub := strings.Join(mapValues(w.published()), "\n")
			if !strings.Contains(pub, podB) {
				t.Errorf("practice B (good) not filed: %q", pub)
			}
			for _, line := range strings.Split(pub, "\n") {
				if !strings.Contains(line, podA) {
					continue
				}
				if tt.filedA == "" {
					t.Errorf("held practice A reached SI1.0050: %s", line)
				} else if !strings.Contains(line, ";"+tt.filedA+";") {
					t.Errorf("practice A filed without its whole credit %s: %s", tt.filedA, line)
				}
			}
			if tt.filedA != "" && !strings.Contains(pub, podA) {
				t.Errorf("practice A not filed")
			}
		})
	}
}

// A practice made ready by one extract and contradicted by the next (its rows now
// disagree) goes back to DRAFT with the reason, its request cancelled: the earlier
// content is not filed as if nothing had happened.
func TestMorosiHeldPracticeLeavesReady(t *testing.T) {
	sw := flows.D(2025, 3, 1)
	pod, cf := "IT023E00121943", testCF("RSSMRA85T10A562")
	w := newTestWorld(t, e2eNow, "")
	first := ingestAndProcess(t, w, "morosi_1.csv", extract(morosiRow(pod, cf, "Mario Rossi", sw, "F1", "150.00", nil)))
	if first.Meta["ready"] != "1" {
		t.Fatalf("first extract: %v %v", first.Meta, first.Findings)
	}
	second := ingestAndProcess(t, w, "morosi_2.csv", extract(
		morosiRow(pod, cf, "Mario Rossi", sw, "F1", "150.00", nil),
		morosiRow(pod, cf, "Mario Rossi", sw, "F2", "80.00", map[string]string{"TENSIONE": "MT"})))
	if second.Meta["cases_held"] != "1" {
		t.Fatalf("second extract: %v %v", second.Meta, second.Findings)
	}
	p := w.practice("E250000001")
	if p.State != flows.StateDraft {
		t.Errorf("practice %s, want DRAFT (held)", p.State)
	}
	data, _ := flows.ParseUscenteData(p.Data)
	if len(data.Refusals) == 0 || data.Refusals[0].Rule != flows.RuleCaseConflict {
		t.Errorf("refusals %v, want the CASE-CONFLICT", data.Refusals)
	}
	reqs, err := w.d.Store.Requests(context.Background(), nil, p.ID, uscente.FlowREQ, "ready", 0)
	if err != nil || len(reqs) != 0 {
		t.Errorf("ready requests %v (%v), want none", reqs, err)
	}
	w.runOnce()
	for name, content := range w.published() {
		if strings.Contains(content, pod) {
			t.Errorf("%s files the held practice: %s", name, content)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Eligibility refusals and data errors read differently wherever a person reads them:
// the digest (its own kind, wording and severity) and the reason file ("non
// ammissibile, nessuna correzione necessaria" beside the finding, never beside a
// data error, which says to correct the row).
func TestEligibilityToldApartFromDataErrors(t *testing.T) {
	sw := flows.D(2025, 3, 1)
	noMora := map[string]string{"DATA_MORA": "", "MEZZO_MORA": "", "TERMINE_MORA": "", "INFO_CMOR": "", "RIF_MORA": ""}
	w := newTestWorld(t, e2eNow, "")
	res := ingestAndProcess(t, w, "morosi.csv", extract(
		morosiRow("IT023E00121943", testCF("RSSMRA85T10A562"), "Mario Rossi", sw, "F1", "150.00", noMora),
		morosiRow("IT001E00000042", testCF("VRDGPP70A01H501"), "Giuseppe Verdi", sw, "F2", "95.50", map[string]string{"DATA_SCADENZA": "31/02/2025"})))
	var elig, data []flows.Finding
	for _, f := range res.Findings {
		if f.Eligibility() {
			elig = append(elig, f)
		} else {
			data = append(data, f)
		}
	}
	if len(elig) != 1 || elig[0].Rule != "E5" || len(data) != 1 {
		t.Fatalf("eligibility %v, data %v: want one E5 and the bad date (its one-row practice needs no CASE-ROWS)", elig, data)
	}
	reason := receipt.ReasonText("", res.Reason, res.Findings, "en") // English: the daemon's own is in [general] lang
	for _, line := range strings.Split(reason, "\n") {
		marked := strings.Contains(line, flows.EligibilityNoteEN)
		if strings.Contains(line, "rule E5") != marked {
			t.Errorf("reason line %q: marked %v", line, marked)
		}
	}
	d, err := digest.Build(context.Background(), w.d.Store, w.d.digestOptions(), w.now)
	if err != nil {
		t.Fatal(err)
	}
	_, text, _, _, err := d.Render("it", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Pratiche non ammissibili", "nessuna correzione necessaria", "Righe scartate", "Correggere la riga nel gestionale"} {
		if !strings.Contains(text, want) {
			t.Errorf("digest lacks %q:\n%s", want, text)
		}
	}
}
