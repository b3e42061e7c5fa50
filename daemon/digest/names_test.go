package digest

import (
	stdhtml "html"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/flows"
)

func TestFlowName(t *testing.T) {
	cat := flows.DefaultCatalog()
	for _, c := range []struct{ key, lang, want string }{
		{"REQ", "it", "SI1.0050 — Richiesta indennizzo"},
		{"REQ", "en", "SI1.0050 — Indemnity request"},
		{"ANN_NOTIF", "", "AI2.0200 — Notifica annullamento"},
		{"uscente.morosi", "it", "Fatturazione — Crediti insoluti"},
		{"entrante.sospensioni", "en", "Billing — Suspensions for non-payment"},
		{"cmor_to_charge", "it", "Export per la fatturazione — CMOR da addebitare ai clienti"},
		{"credit_notes", "en", "Export for billing — Credit notes to customers"},
		{"digest", "it", "digest"},
		{"", "it", ""},
	} {
		if got := FlowName(cat, c.key, c.lang); got != c.want {
			t.Errorf("FlowName(%q, %q) = %q, want %q", c.key, c.lang, got, c.want)
		}
	}
	// A flow the operator's catalog adds has no title: its SII code and key.
	own := flows.DefaultCatalog()
	own.Flows = append(own.Flows, &flows.Flow{Key: "MY_FLOW", Service: "XX1", Code: "0001"})
	if got := FlowName(own, "MY_FLOW", "it"); got != "XX1.0001 (MY_FLOW)" {
		t.Errorf("operator flow: %q", got)
	}
}

// Every flow and billing input of the embedded catalog, every folder kind and every
// export for billing has a name in both languages: no raw key (cmor_to_charge) among
// the Italian names of the digest's per-flow table.
func TestFlowTitlesCoverCatalog(t *testing.T) {
	cat := flows.DefaultCatalog()
	for _, key := range append(append([]string{}, config.ExportNames...), config.FolderKinds...) {
		if key == config.KindSII {
			continue // a folder of SII files: each file counts under its own flow
		}
		if tt := FlowTitles[key]; tt.IT == "" || tt.EN == "" {
			t.Errorf("FlowTitles lacks %q", key)
		}
		for _, lang := range []string{"it", "en"} {
			if name := FlowName(cat, key, lang); name == key || strings.Contains(name, "_") || !strings.Contains(name, " — ") {
				t.Errorf("FlowName(%q, %s) = %q: a raw key, not a name", key, lang, name)
			}
		}
	}
	for _, list := range [][]*flows.Flow{cat.Flows, cat.Inputs} {
		for _, f := range list {
			if tt := FlowTitles[f.Key]; tt.IT == "" || tt.EN == "" {
				t.Errorf("FlowTitles lacks %q", f.Key)
			}
		}
	}
}

func TestSeverityAndStateNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{SeverityName(archive.SevUrgent, "it"), "urgente"},
		{SeverityName(archive.SevLow, "en"), "low"},
		{SeverityName("weird", "it"), "weird"},
		{StateName(flows.StateSent, "it"), "inviata al SII (SENT)"},
		{StateName(flows.StateSent, "en"), "sent to the SII (SENT)"},
		{StateName("NOPE", "it"), "NOPE"},
		{KindTitle("no_answer", "it"), "Nessuna risposta del SII"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// The body says where the full list is only where it is: attached to the mail, in the
// file a preview wrote, or nowhere (a preview without --csv attaches nothing).
func TestCSVWhereaboutsWording(t *testing.T) {
	for _, c := range []struct {
		name    string
		attach  bool
		file    string
		want    []string
		notWant []string
	}{
		{"mail with attachments", true, "", []string{"In allegato l'elenco completo in Excel (XLSX, per le persone) e in CSV (per i programmi).", "elenco completo nell'allegato CSV"}, nil},
		{"preview with --csv", false, "/tmp/x.csv", []string{"Elenco completo in CSV nel file /tmp/x.csv.", "nel file CSV /tmp/x.csv"}, []string{"allegato"}},
		{"preview without --csv", false, "", []string{"non elencate qui"}, []string{"allegato", "Elenco completo in CSV nel file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := fixtureDigest(t)
			d.AttachCSV, d.AttachXLSX, d.CSVFile, d.MaxItems = c.attach, c.attach, c.file, 1
			_, text, html, _, err := d.Render("it", false)
			if err != nil {
				t.Fatal(err)
			}
			// html/template escapes the apostrophe: the HTML is compared unescaped.
			for _, body := range []string{text, stdhtml.UnescapeString(html)} {
				for _, w := range c.want {
					if !strings.Contains(body, w) {
						t.Errorf("body lacks %q", w)
					}
				}
				for _, w := range c.notWant {
					if strings.Contains(body, w) {
						t.Errorf("body says %q", w)
					}
				}
			}
		})
	}
}
