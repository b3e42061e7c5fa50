package flows

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultCatalogIsClean(t *testing.T) {
	c := DefaultCatalog()
	for _, f := range c.Check() {
		t.Errorf("%v", f)
	}
	for _, k := range []string{"REQ", "REQ_AMM", "REQ_ESITO", "NOTIF_ENTR", "SUSP_REQ", "SUSP_AMM", "SUSP_ESITO", "SUSP_REVOKE",
		"SUSP_NOTIF", "ANN_REQ", "ANN_AMM", "ANN_NOTIF", "REFUND_ACK", "UPD_NOTIF", "REND", "REND_AMM"} {
		if c.Flow(k) == nil {
			t.Errorf("flow %s missing", k)
		}
	}
	for _, k := range []string{"uscente.morosi", "uscente.incassi", "uscente.annullamenti", "uscente.rimborsi", "entrante.fatturato", "entrante.sospensioni"} {
		if c.Input(k) == nil {
			t.Errorf("input %s missing", k)
		}
	}
	for _, s := range []string{"DRAFT", "WAITING_WINDOW", "READY", "SENT", "INADMISSIBLE", "ADMITTED", "REJECTED", "ACCEPTED",
		"SUSPENDED", "NOTIFIED_TO_DSO", "BILLED_TO_UDD_E", "PAID_TO_CSEA", "INDEMNITY_PAID", "ANNULLED", "AMOUNT_UPDATED",
		"NOTIFIED", "TO_CHARGE", "CHARGED", "COLLECTED", "SUSP_REQUESTED", "CLOSED"} {
		if c.State(s) == nil {
			t.Errorf("state %s missing", s)
		}
	}
	// The real *.0100 layout.
	var names []string
	for _, fd := range c.Flow("REQ_AMM").Fields {
		names = append(names, fd.Name)
	}
	if got := strings.Join(names, ";"); got != "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE" {
		t.Errorf("REQ_AMM layout: %s", got)
	}
	if c.Flow("REQ").ID() != "SI1.0050" || c.Flow("ANN_NOTIF").ID() != "AI2.0200" || c.Flow("UPD_NOTIF").ID() != "SI7.0200" {
		t.Error("confirmed codes changed")
	}
}

func TestCanTransitionAndTargets(t *testing.T) {
	c := DefaultCatalog()
	cases := []struct {
		from, to string
		ok       bool
	}{
		{"READY", "SENT", true}, {"SENT", "ADMITTED", true}, {"SENT", "ACCEPTED", false},
		{"INADMISSIBLE", "READY", false}, {"SUSPENDED", "ACCEPTED", true}, {"INDEMNITY_PAID", "ANNULLED", true},
		{"CHARGED", "SUSP_REQUESTED", true}, {"NOPE", "SENT", false}, {"READY", "NOPE", false},
	}
	for _, tc := range cases {
		if got := c.CanTransition(tc.from, tc.to); got != tc.ok {
			t.Errorf("%s→%s = %v", tc.from, tc.to, got)
		}
	}
	f := c.Flow("REQ_AMM")
	rec := NewRecord(f)
	rec.Set("VERIFICA_AMM", "0")
	if to, ok := f.Transition.Target(rec); !ok || to != "INADMISSIBLE" {
		t.Errorf("VERIFICA_AMM=0 → %q %v", to, ok)
	}
	rec.Set("VERIFICA_AMM", "1")
	if to, _ := f.Transition.Target(rec); to != "ADMITTED" {
		t.Errorf("VERIFICA_AMM=1 → %q", to)
	}
	if to, ok := c.Flow("ANN_NOTIF").Transition.Target(rec); !ok || to != "ANNULLED" {
		t.Errorf("ANN_NOTIF → %q", to)
	}
}

func TestParseCatalogStrict(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"unknown key", "version = \"x\"\n[[flows]]\nkey = \"A\"\nlenght = 3\n", "c.toml:4: unknown key \"flows.lenght\""},
		{"unknown field key", "[[flows]]\nkey = \"A\"\n[[flows.fields]]\nname = \"X\"\nmandatory = true\n", "c.toml:5: unknown key"},
		{"syntax", "version = \"x\"\n[[flows]\n", "delimiter"},
		{"type", "version = 3\n", "c.toml"},
	}
	for _, tc := range cases {
		_, err := ParseCatalog("c.toml", []byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCatalogCheckFindings(t *testing.T) {
	base := `version = "t"
[[states]]
name = "A"
role = "uscente"
to = ["B"]
[[states]]
name = "B"
role = "uscente"
terminal = true
[[flows]]
key = "F"
service = "XX1"
code = "0050"
direction = "out"
roles = ["uscente"]
format = "csv"
file_name = "{PIVA_UTENTE}_{SERVICE}{CODE}_{SEQ:4}.{EXT}"
match = '^[0-9]{11}_XX10050_[0-9]{4}\.csv$'
[flows.transition]
from = ["A"]
to = "B"
[[flows.fields]]
name = "PIVA_UTENTE"
type = "piva"
required = "M"
[[flows.fields]]
name = "E"
type = "enum"
values = ["1", "2"]
required = "C"
when = "PIVA_UTENTE"
`
	if fs := mustParse(t, base).Check(); len(fs) != 0 {
		t.Fatalf("base catalog: %v", fs)
	}
	cases := []struct{ name, from, to, rule string }{
		{"dup key", "[[flows.fields]]\nname = \"E\"", "[[flows.fields]]\nname = \"PIVA_UTENTE\"", "CATALOG-DUP"},
		{"unknown type", `type = "piva"`, `type = "vat"`, "CATALOG-TYPE"},
		{"enum without values", `values = ["1", "2"]`, `values = []`, "CATALOG-ENUM"},
		{"C without when", `when = "PIVA_UTENTE"`, ``, "CATALOG-WHEN"},
		{"when on unknown field", `when = "PIVA_UTENTE"`, `when = "NOPE=1"`, "CATALOG-WHEN"},
		{"bad regexp", `match = '^[0-9]{11}`, `match = '^[0-9{11}`, "CATALOG-PATTERN"},
		{"pattern not matched", `_{SEQ:4}`, `-{SEQ:4}`, "CATALOG-PATTERN"},
		{"unknown placeholder", `{SERVICE}`, `{SERVIZIO}`, "CATALOG-PATTERN"},
		{"unknown state", `to = "B"`, `to = "Z"`, "CATALOG-STATE"},
		{"state to unknown", `to = ["B"]`, `to = ["Q"]`, "CATALOG-STATE"},
		{"required letter", `required = "M"`, `required = "X"`, "CATALOG-REQUIRED"},
		{"format", `format = "csv"`, `format = "json"`, "CATALOG-FORMAT"},
		{"unknown cause table", `format = "csv"`, "format = \"csv\"\ncauses = \"NOPE\"", "CATALOG-CAUSES"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(base, tc.from, tc.to, 1)
			if doc == base {
				t.Fatal("replacement did not apply")
			}
			fs := mustParse(t, doc).Check()
			for _, f := range fs {
				if f.Rule == tc.rule {
					if f.File != "c.toml" || f.Line == 0 {
						t.Errorf("finding without position: %v", f)
					}
					return
				}
			}
			t.Errorf("no %s in %v", tc.rule, fs)
		})
	}
}

func mustParse(t *testing.T, doc string) *Catalog {
	t.Helper()
	c, err := ParseCatalog("c.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWriteTOMLRoundTrip(t *testing.T) {
	c := DefaultCatalog()
	var a bytes.Buffer
	if err := c.WriteTOML(&a); err != nil {
		t.Fatal(err)
	}
	c2, err := ParseCatalog("shown.toml", a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if fs := c2.Check(); len(fs) != 0 {
		t.Errorf("re-read catalog: %v", fs)
	}
	var b bytes.Buffer
	c2.WriteTOML(&b)
	strip := func(s string) string { _, rest, _ := strings.Cut(s, "\n"); return rest }
	if strip(a.String()) != strip(b.String()) {
		t.Error("WriteTOML → ParseCatalog → WriteTOML is not stable")
	}
}

func TestLoadCatalogModes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cat.toml")
	ext := `version = "site"
[causes.SII_AMM]
[[causes.SII_AMM.codes]]
code = "77"
description = "new cause"
`
	os.WriteFile(path, []byte(ext), 0o644)
	c, err := LoadCatalog(path, "extend")
	if err != nil {
		t.Fatal(err)
	}
	if c.Flow("REQ") == nil || c.Version != "2026.1+site" || c.Flow("REQ_AMM").CauseTable().Lookup("077") == nil {
		t.Errorf("extend: version %q", c.Version)
	}
	if c.Flow("REQ_AMM").CauseTable().Lookup("950") != nil {
		t.Error("extend replaces a cause table by name")
	}
	if _, err := LoadCatalog(path, "replace"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCatalog(path, "merge"); err == nil {
		t.Error("bad mode accepted")
	}
	if _, err := LoadCatalog(filepath.Join(dir, "none.toml"), "extend"); err == nil {
		t.Error("missing file accepted")
	}
}

// TestCatalogDrivesTheCodecs proves that a catalog file alone changes what is written
// and what is accepted: renaming a column, moving it, changing a length, adding a cause.
func TestCatalogDrivesTheCodecs(t *testing.T) {
	def := DefaultCatalogTOML()
	amm := map[string]string{"PIVA_UTENTE": "00488410010", "PIVA_GESTORE": "06655971007", "CP_UTENTE": "E250000001",
		"VERIFICA_AMM": "0", "COD_CAUSALE": "4", "MOTIVAZIONE": "campo mancante"}
	edit := func(t *testing.T, from, to string) *Catalog {
		t.Helper()
		doc := strings.Replace(string(def), from, to, 1)
		if doc == string(def) {
			t.Fatalf("%q not found in the default catalog", from)
		}
		path := filepath.Join(t.TempDir(), "site.toml")
		os.WriteFile(path, []byte(doc), 0o644)
		c, err := LoadCatalog(path, "replace")
		if err != nil {
			t.Fatal(err)
		}
		if fs := c.Check(); HasErrors(fs) {
			t.Fatal(fs)
		}
		return c
	}
	header := func(c *Catalog, key string) string {
		f := c.Flow(key)
		var buf bytes.Buffer
		w := NewCSVWriter(&buf, f)
		w.Close()
		return strings.TrimSpace(buf.String())
	}

	t.Run("rename a column", func(t *testing.T) {
		// the first MOTIVAZIONE is REQ_AMM's; the code keeps reading MOTIVAZIONE
		c := edit(t, `name = "MOTIVAZIONE"`, "name = \"MOTIVAZIONE\"\ncolumn = \"MOTIVO\"")
		if h := header(c, "REQ_AMM"); !strings.HasSuffix(h, ";COD_CAUSALE;MOTIVO") {
			t.Errorf("header %s", h)
		}
		// a file with the old name is now refused, one with the new accepted
		old := writeFlow(t, DefaultCatalog().Flow("REQ_AMM"), "csv", []map[string]string{amm})
		if _, fs := readAll(t, c.Flow("REQ_AMM"), "csv", old, ReadOptions{}); !hasFinding(fs, 1, "MOTIVAZIONE", RuleCSVHeader) {
			t.Errorf("old header accepted: %v", fs)
		}
		data := writeFlow(t, c.Flow("REQ_AMM"), "csv", []map[string]string{amm})
		recs, fs := readAll(t, c.Flow("REQ_AMM"), "csv", data, ReadOptions{})
		if len(fs) != 0 || len(recs) != 1 || recs[0].Get("MOTIVAZIONE") != "campo mancante" {
			t.Errorf("new header: %v %v", recs, fs)
		}
	})
	t.Run("reorder columns", func(t *testing.T) {
		doc := string(def)
		i := strings.Index(doc, "[[flows.fields]]\nname = \"COD_CAUSALE\"\ntype = \"alnum\"")
		j := strings.Index(doc[i:], "[[flows.fields]]\nname = \"MOTIVAZIONE\"") + i
		k := strings.Index(doc[j+10:], "[[") + j + 10
		swapped := doc[:i] + doc[j:k] + doc[i:j] + doc[k:]
		path := filepath.Join(t.TempDir(), "site.toml")
		os.WriteFile(path, []byte(swapped), 0o644)
		c, err := LoadCatalog(path, "replace")
		if err != nil {
			t.Fatal(err)
		}
		if h := header(c, "REQ_AMM"); !strings.HasSuffix(h, ";VERIFICA_AMM;MOTIVAZIONE;COD_CAUSALE") {
			t.Errorf("header %s", h)
		}
		data := writeFlow(t, c.Flow("REQ_AMM"), "csv", []map[string]string{amm})
		if !strings.Contains(string(data), ";0;campo mancante;4\r\n") {
			t.Errorf("row not reordered: %q", data)
		}
	})
	t.Run("change a length", func(t *testing.T) {
		c := edit(t, "name = \"MOTIVAZIONE\"\ntype = \"string\"\nlength = 255", "name = \"MOTIVAZIONE\"\ntype = \"string\"\nlength = 5")
		var buf bytes.Buffer
		if err := NewCSVWriter(&buf, c.Flow("REQ_AMM")).Write(amm); err == nil {
			t.Error("a 14-character MOTIVAZIONE was written with length 5")
		}
		data := writeFlow(t, DefaultCatalog().Flow("REQ_AMM"), "csv", []map[string]string{amm})
		if _, fs := readAll(t, c.Flow("REQ_AMM"), "csv", data, ReadOptions{}); !hasFinding(fs, 2, "MOTIVAZIONE", RuleLength) {
			t.Errorf("findings %v", fs)
		}
	})
	t.Run("add a cause code", func(t *testing.T) {
		row := map[string]string{"PIVA_UTENTE": "00488410010", "PIVA_GESTORE": "06655971007", "CP_UTENTE": "E250000001",
			"CP_GESTORE": "SII2024A8588941", "COD_CAUSALE_ANNULLAMENTO": "AN-08", "DATA_EVENTO": "02/02/2026"}
		var buf bytes.Buffer
		if err := NewCSVWriter(&buf, DefaultCatalog().Flow("ANN_REQ")).Write(row); err == nil {
			t.Fatal("unknown cause written by the default catalog")
		}
		c := edit(t, "[[causes.ANNULLAMENTO.codes]]\ncode = \"AN-99\"",
			"[[causes.ANNULLAMENTO.codes]]\ncode = \"AN-08\"\ndescription = \"new\"\n\n[[causes.ANNULLAMENTO.codes]]\ncode = \"AN-99\"")
		data := writeFlow(t, c.Flow("ANN_REQ"), "csv", []map[string]string{row})
		if _, fs := readAll(t, c.Flow("ANN_REQ"), "csv", data, ReadOptions{}); len(fs) != 0 {
			t.Errorf("findings %v", fs)
		}
	})
}

func TestIdentify(t *testing.T) {
	c := DefaultCatalog()
	amm := writeFlow(t, c.Flow("REQ_AMM"), "csv", []map[string]string{{"PIVA_UTENTE": "00488410010",
		"PIVA_GESTORE": "06655971007", "CP_UTENTE": "E250000001", "CP_GESTORE": "SII2024A8588941", "VERIFICA_AMM": "1"}})
	ann := writeFlow(t, c.Flow("ANN_NOTIF"), "xml", sampleRows(c.Flow("ANN_NOTIF")))
	cases := []struct {
		name string
		head []byte
		want string
	}{
		{"00488410010_SI10100_20260105_0001.csv", nil, "REQ_AMM"},
		{"inbox/SI7.0200_20260105.CSV", nil, "UPD_NOTIF"},
		{"00488410010_SI10050_20260105_0001.csv", nil, "REQ"},
		{"esito.csv", amm, "REQ_AMM"},
		{"notifica.xml", ann, "ANN_NOTIF"},
		{"x.csv", []byte("COD_FLUSSO;COD_SERVIZIO\r\n200;si7\r\n"), "UPD_NOTIF"},
		{"x.csv", []byte("a;b\n"), ""},
		{"x.xml", []byte(`<FlussoSI COD_SERVIZIO="ZZ9" COD_FLUSSO="0100">`), ""},
	}
	for _, tc := range cases {
		got := ""
		if f := c.Identify(tc.name, tc.head); f != nil {
			got = f.Key
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if f := c.IdentifyReader("esito.csv", bytes.NewReader(amm)); f == nil || f.Key != "REQ_AMM" {
		t.Errorf("IdentifyReader: %v", f)
	}
	// Only the head counts: codes past IdentifyHead do not identify a file.
	late := append(bytes.Repeat([]byte("\r\n"), IdentifyHead), amm...)
	if f := c.IdentifyReader("esito.csv", bytes.NewReader(late)); f != nil {
		t.Errorf("IdentifyReader read past the head: %v", f.Key)
	}
}

func TestBuildFileName(t *testing.T) {
	f := DefaultCatalog().Flow("REQ")
	at := time.Date(2026, 1, 4, 23, 30, 0, 0, time.UTC) // 5 January in Rome
	name, err := f.BuildFileName(map[string]string{"PIVA_UTENTE": "00488410010"}, at, 7, "xml")
	if err != nil || name != "00488410010_SI10050_20260105_0007.xml" {
		t.Errorf("%q %v", name, err)
	}
	if _, err := f.BuildFileName(nil, at, 7, ""); err == nil {
		t.Error("missing PIVA_UTENTE accepted")
	}
	if _, err := f.BuildFileName(map[string]string{"PIVA_UTENTE": "00488410010"}, at, 12345, ""); err == nil {
		t.Error("sequence overflow accepted")
	}
}

func TestParseMapping(t *testing.T) {
	m, err := ParseMapping("m.toml", []byte("kind = \"uscente.morosi\"\ndecimal_comma = true\n[mapping]\n\"Codice POD\" = \"COD_POD\"\n\"Vecchia\" = \"-\"\n"))
	if err != nil || !m.DecimalComma || m.Columns["Codice POD"] != "COD_POD" || m.Kind != "uscente.morosi" {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := ParseMapping("m.toml", []byte("[mapping]\n\"A\" = \"COD_POD\"\n\"B\" = \"cod_pod\"\n")); err == nil || !strings.Contains(err.Error(), "m.toml:3") {
		t.Errorf("duplicate target: %v", err)
	}
	if fs := DefaultCatalog().Input("uscente.morosi").CheckMapping(map[string]string{"A": "COD_POD", "B": "NOPE", "C": "-"}); len(fs) != 1 || fs[0].Value != "NOPE" {
		t.Errorf("CheckMapping: %v", fs)
	}
}
