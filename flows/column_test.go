package flows

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// withColumns returns a fresh default catalog whose flow key names its fields in files
// as renames says (logical name → column).
func withColumns(t *testing.T, key string, renames map[string]string) (*Catalog, *Flow) {
	t.Helper()
	c := DefaultCatalog()
	f := c.Flow(key)
	if f == nil {
		f = c.Input(key)
	}
	if f == nil {
		t.Fatalf("no flow %s", key)
	}
	for name, col := range renames {
		fd := f.Field(name)
		if fd == nil {
			t.Fatalf("%s has no field %s", key, name)
		}
		fd.Column = col
	}
	c.compile()
	if fs := c.Check(); HasErrors(fs) {
		t.Fatalf("catalog with columns refused: %v", fs)
	}
	return c, f
}

// golden compares data with testdata/golden/name, rewriting it under -update.
func golden(t *testing.T, name string, data []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s--- want\n%s", path, data, want)
	}
}

func TestCodeFieldsExistInDefaultCatalog(t *testing.T) {
	c := DefaultCatalog()
	if len(CodeFieldKeys()) == 0 {
		t.Fatal("no code fields")
	}
	for _, key := range CodeFieldKeys() {
		f := c.Flow(key)
		if f == nil {
			f = c.Input(key)
		}
		if f == nil {
			t.Errorf("CodeFields names %s, which the default catalog does not have", key)
			continue
		}
		seen := map[string]bool{}
		for _, name := range CodeFields(key) {
			if f.Field(name) == nil {
				t.Errorf("CodeFields[%s] names %s, which is not a field of the default %s", key, name, key)
			}
			if seen[name] {
				t.Errorf("CodeFields[%s] names %s twice", key, name)
			}
			seen[name] = true
		}
	}
	// Every flow the code handles by key is covered.
	for _, f := range c.Flows {
		if CodeFields(f.Key) == nil {
			t.Errorf("default flow %s has no CodeFields entry", f.Key)
		}
	}
}

func TestColumnRoundTrip(t *testing.T) {
	cases := []struct {
		name    string
		key     string
		renames map[string]string
	}{
		{"notice amount and point", "NOTIF_ENTR", map[string]string{"IMPORTO_CMOR": "IMP_CMOR", "COD_POD": "POD"}},
		{"request header and invoice fields", "REQ", map[string]string{"CP_UTENTE": "COD_PRATICA_UTENTE", "NUM_FATTURA": "NUMERO_FATTURA", "DATA_SWITCH": "DataSwitch"}},
		{"root attributes and reason", "REQ_AMM", map[string]string{"COD_SERVIZIO": "SERVIZIO", "COD_FLUSSO": "FLUSSO", "MOTIVAZIONE": "MOTIVO"}},
		{"input kind", "uscente.incassi", map[string]string{"IMPORTO_INCASSATO": "Importo pagato"}},
	}
	for _, tc := range cases {
		for _, format := range []string{"csv", "xml"} {
			_, f := withColumns(t, tc.key, tc.renames)
			if f.IsInput() && format == "xml" {
				continue
			}
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				rows := sampleRows(f)
				data := writeFlow(t, f, format, rows)
				text := string(data)
				for name, col := range tc.renames {
					if !strings.Contains(text, col) {
						t.Errorf("output lacks the column %q", col)
					}
					// the logical name appears nowhere as a name (values are not names)
					if regexp.MustCompile(`(^|[;<\s/])` + name + `([;>=\r\n])`).MatchString(text) {
						t.Errorf("output still names %s:\n%s", name, text)
					}
				}
				if format == "csv" {
					hdr := text[:strings.Index(text, "\r\n")]
					var want []string
					for i := range f.Fields {
						want = append(want, f.Fields[i].WireName())
					}
					if hdr != strings.Join(want, ";") {
						t.Errorf("header %q, want %q", hdr, strings.Join(want, ";"))
					}
				}
				recs, fs := readAll(t, f, format, data, ReadOptions{FileName: "col." + format})
				if len(fs) > 0 {
					t.Fatalf("findings on our own output: %v\n%s", fs, data)
				}
				if len(recs) != len(rows) {
					t.Fatalf("%d records read, %d written", len(recs), len(rows))
				}
				for i, rec := range recs {
					if got, want := rec.Map(), canonical(t, f, rows[i]); !reflect.DeepEqual(got, want) {
						t.Errorf("row %d:\n got %v\nwant %v", i, got, want)
					}
					for name := range tc.renames {
						if rec.Get(name) == "" {
							t.Errorf("row %d: logical name %s reads nothing", i, name)
						}
					}
				}
				// the default layout (no columns) does not read the renamed file
				def := DefaultCatalog()
				df := def.Flow(tc.key)
				if df == nil {
					df = def.Input(tc.key)
				}
				if _, fs := readAll(t, df, format, data, ReadOptions{}); !HasErrors(fs) && !f.IsInput() {
					t.Errorf("the default layout read a renamed file without complaint")
				}
				golden(t, "column_"+f.Key+"."+format, data)
			})
		}
	}
}

func TestColumnFindingsNameTheWireColumn(t *testing.T) {
	_, f := withColumns(t, "NOTIF_ENTR", map[string]string{"IMPORTO_CMOR": "IMP_CMOR", "COD_POD": "POD"})
	good := sampleRows(f)[0]
	csvWith := func(mut func(hdr, row []string)) []byte {
		var hdr, row []string
		for i := range f.Fields {
			hdr = append(hdr, f.Fields[i].WireName())
			row = append(row, good[f.Fields[i].Name])
		}
		mut(hdr, row)
		return []byte(strings.Join(hdr, ";") + "\r\n" + strings.Join(row, ";") + "\r\n")
	}
	amt := f.Layout().Index("IMPORTO_CMOR")
	xmlData := bytes.Replace(writeFlow(t, f, "xml", []map[string]string{good}),
		[]byte("<IMP_CMOR>123.45</IMP_CMOR>"), []byte("<IMP_CMOR>12x</IMP_CMOR>"), 1)
	cases := []struct {
		name, format string
		data         []byte
		line         int
		field, rule  string
	}{
		{"bad amount, CSV", "csv", csvWith(func(h, r []string) { r[amt] = "12x" }), 2, "IMP_CMOR (IMPORTO_CMOR)", RuleAmount},
		{"missing amount, CSV", "csv", csvWith(func(h, r []string) { r[amt] = "" }), 2, "IMP_CMOR (IMPORTO_CMOR)", RuleRequired},
		{"column under its logical name, CSV", "csv", csvWith(func(h, r []string) { h[amt] = "IMPORTO_CMOR" }), 1, "IMP_CMOR (IMPORTO_CMOR)", RuleCSVHeader},
		{"bad amount, XML", "xml", xmlData, 0, "IMP_CMOR (IMPORTO_CMOR)", RuleAmount},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, fs := readAll(t, f, tc.format, tc.data, ReadOptions{FileName: "n." + tc.format})
			found := false
			for _, fnd := range fs {
				if fnd.Field == tc.field && fnd.Rule == tc.rule && (tc.line == 0 || fnd.Line == tc.line) {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s finding on %s line %d: %v", tc.rule, tc.field, tc.line, fs)
			}
		})
	}
	// A writer refusing a value names the wire column too.
	bad := map[string]string{}
	for k, v := range good {
		bad[k] = v
	}
	bad["IMPORTO_CMOR"] = "12x"
	var buf bytes.Buffer
	err := NewCSVWriter(&buf, f).Write(bad)
	if err == nil || !strings.Contains(err.Error(), "field IMP_CMOR (IMPORTO_CMOR)") {
		t.Errorf("writer error %v", err)
	}
}

// editedCatalog loads the default catalog text with one edit, as a replacing site file.
func editedCatalog(t *testing.T, from, to string) *Catalog {
	t.Helper()
	def := string(DefaultCatalogTOML())
	doc := strings.Replace(def, from, to, 1)
	if doc == def {
		t.Fatalf("%q not found in the default catalog", from)
	}
	path := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCatalog(path, "replace")
	if err != nil {
		t.Fatal(err)
	}
	c.name = "site.toml" // stable findings for the golden file
	return c
}

func TestCheckCodeFields(t *testing.T) {
	cases := []struct {
		name, from, to string
		refused        bool
		msg            string // in the CATALOG-CODE-FIELD finding
	}{
		{"IMPORTO_CMOR renamed", `name = "IMPORTO_CMOR"` + "\n", `name = "IMP_CMOR"` + "\n", true,
			`flow NOTIF_ENTR (SI2.0200) has no field IMPORTO_CMOR, which cmord reads or writes by that name; field IMP_CMOR looks like it renamed it: keep the name IMPORTO_CMOR and set column = "IMP_CMOR" to rename it on the wire`},
		{"IMPORTO_CMOR with column", `name = "IMPORTO_CMOR"` + "\n", `name = "IMPORTO_CMOR"` + "\ncolumn = \"IMP_CMOR\"\n", false, ""},
		{"IMPORTO_CMOR_VALIDATO dropped", "[[flows.fields]]\nname = \"IMPORTO_CMOR_VALIDATO\"\ntype = \"amount\"\nlength = 12\nrequired = \"C\"\nwhen = \"ESITO=1\"\ndescription = \"CMOR validated by the SII\"\n", "", true,
			`flow REQ_ESITO (SI1.0150) has no field IMPORTO_CMOR_VALIDATO, which cmord reads or writes by that name: keep the name IMPORTO_CMOR_VALIDATO and set column = "..." to rename it on the wire`},
		{"input column renamed", `name = "IMPORTO_INCASSATO"` + "\ntype = \"amount\"\nlength = 12\nrequired = \"M\"\ndescription = \"amount paid\"", `name = "IMPORTO_PAGATO"` + "\ntype = \"amount\"\nlength = 12\nrequired = \"M\"\ndescription = \"amount paid\"", true,
			`input kind uscente.incassi has no field IMPORTO_INCASSATO`},
	}
	var report strings.Builder
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := editedCatalog(t, tc.from, tc.to)
			fs := c.Check()
			var code []Finding
			for _, f := range fs {
				if f.Rule == RuleCatalogCodeField {
					code = append(code, f)
				}
			}
			if !tc.refused {
				if HasErrors(fs) {
					t.Fatalf("refused: %v", fs)
				}
				return
			}
			if len(code) != 1 || code[0].IsWarning() || !strings.Contains(code[0].Message, tc.msg) {
				t.Fatalf("want one CATALOG-CODE-FIELD error containing %q, got %v", tc.msg, code)
			}
			if code[0].File != "site.toml" || code[0].Line == 0 {
				t.Errorf("finding not located: %v", code[0])
			}
			report.WriteString(code[0].String() + "\n")
		})
	}
	if !t.Failed() {
		golden(t, "catalog_code_field.txt", []byte(report.String()))
	}
}

func TestCheckColumns(t *testing.T) {
	cases := []struct {
		name, from, to, rule string
	}{
		{"column with a semicolon", `name = "IMPORTO_CMOR"` + "\n", `name = "IMPORTO_CMOR"` + "\ncolumn = \"IMP;CMOR\"\n", "CATALOG-COLUMN"},
		{"column with a space", `name = "IMPORTO_CMOR"` + "\n", `name = "IMPORTO_CMOR"` + "\ncolumn = \"IMP CMOR\"\n", "CATALOG-COLUMN"},
		{"column starting with a digit", `name = "IMPORTO_CMOR"` + "\n", `name = "IMPORTO_CMOR"` + "\ncolumn = \"1CMOR\"\n", "CATALOG-COLUMN"},
		{"column of another field", `name = "IMPORTO_CMOR"` + "\n", `name = "IMPORTO_CMOR"` + "\ncolumn = \"DATA_NOTIFICA\"\n", "CATALOG-DUP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := editedCatalog(t, tc.from, tc.to).Check()
			found := false
			for _, f := range fs {
				found = found || (f.Rule == tc.rule && strings.HasPrefix(f.Field, "NOTIF_ENTR.") && f.Line > 0 && !f.IsWarning())
			}
			if !found {
				t.Errorf("no %s error on NOTIF_ENTR: %v", tc.rule, fs)
			}
		})
	}
}

func TestColumnSurvivesWriteTOML(t *testing.T) {
	c, _ := withColumns(t, "NOTIF_ENTR", map[string]string{"IMPORTO_CMOR": "IMP_CMOR"})
	var buf bytes.Buffer
	if err := c.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ParseCatalog("shown.toml", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Flow("NOTIF_ENTR").Field("IMPORTO_CMOR").WireName(); got != "IMP_CMOR" {
		t.Errorf("column after WriteTOML: %q", got)
	}
	if strings.Count(buf.String(), "column = ") != 1 {
		t.Errorf("column written for fields without one")
	}
}

func TestIdentifyWithRenamedCodeColumns(t *testing.T) {
	c, f := withColumns(t, "REQ_AMM", map[string]string{"COD_SERVIZIO": "SERVIZIO", "COD_FLUSSO": "FLUSSO"})
	for _, format := range []string{"csv", "xml"} {
		data := writeFlow(t, f, format, sampleRows(f))
		if got := c.Identify("unnamed."+format, data); got != f {
			t.Errorf("%s: identified %v", format, got)
		}
	}
}

// A site file that extends the default with its own NOTIF_ENTR: the usual way a
// custom catalog renames a column.
func TestCheckCodeFieldsExtend(t *testing.T) {
	def := string(DefaultCatalogTOML())
	i := strings.Index(def, "[[flows]]\nkey = \"NOTIF_ENTR\"")
	j := strings.Index(def[i+1:], "[[flows]]") + i + 1
	block := def[i:j]
	for _, tc := range []struct {
		name, to string
		refused  bool
	}{
		{"renamed", `name = "IMP_CMOR"`, true},
		{"column", "name = \"IMPORTO_CMOR\"\ncolumn = \"IMP_CMOR\"", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "site.toml")
			site := strings.Replace(block, `name = "IMPORTO_CMOR"`, tc.to, 1)
			if err := os.WriteFile(path, []byte(site), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadCatalog(path, "extend")
			if err != nil {
				t.Fatal(err)
			}
			fs := c.Check()
			if HasErrors(fs) != tc.refused {
				t.Fatalf("refused=%v, findings %v", HasErrors(fs), fs)
			}
			if tc.refused && (len(fs) != 1 || fs[0].Rule != RuleCatalogCodeField || !strings.Contains(fs[0].Message, `set column = "IMP_CMOR"`)) {
				t.Errorf("findings %v", fs)
			}
			if !tc.refused {
				f := c.Flow("NOTIF_ENTR")
				data := writeFlow(t, f, "csv", sampleRows(f))
				recs, fs := readAll(t, f, "csv", data, ReadOptions{})
				if len(fs) > 0 || len(recs) != 1 || recs[0].Amount("IMPORTO_CMOR") != 12345 || !strings.Contains(string(data), ";IMP_CMOR;") {
					t.Errorf("read back %v %v\n%s", recs, fs, data)
				}
			}
		})
	}
}
