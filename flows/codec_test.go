package flows

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// validValue is a valid value of fd for tests (its catalog constant if any).
func validValue(f *Flow, fd *Field) string {
	if fd.Const != "" {
		return fd.Const
	}
	if f.cause >= 0 && f.Fields[f.cause].Name == fd.Name && f.causes != nil {
		return f.causes.Codes[0].Code
	}
	switch fd.Name {
	case "PIVA_GESTORE":
		return "06655971007" // a valid check digit; the AU's real VAT comes from config
	case "VERIFICA_AMM", "ESITO":
		return "1"
	}
	v := map[string]string{
		TypeString: "Testo di prova; con \"virgolette\"", TypeAlnum: "ABC123", TypeInt: "1234",
		TypeAmount: "123.45", TypeDate: "15/03/2025", TypeTimestamp: "15/03/2025_10:20:30",
		TypeFlag01: "1", TypeFlagSN: "S", TypeCF: "RSSMRA85T10A562S", TypePIVA: "00488410010",
		TypeCFOrPIVA: "RSSMRA85T10A562S", TypePOD: "IT023E00121943", TypePDR: "00881234567890",
		TypePODOrPDR: "IT023E00121943", TypeCPUtente: "E250000001", TypeCPGestore: "SII2024A8588941",
		TypeMonthAmounts: "2024-03:85.20,2024-04:91.00",
	}[fd.Type]
	if fd.Type == TypeEnum {
		v = fd.Values[0]
	}
	if fd.Length > 0 && len(v) > fd.Length {
		v = v[:fd.Length]
	}
	return v
}

// sampleRows returns valid rows of f: two for a row-group flow (two invoices of one
// practice), one otherwise.
func sampleRows(f *Flow) []map[string]string {
	row := map[string]string{}
	for i := range f.Fields {
		row[f.Fields[i].Name] = validValue(f, &f.Fields[i])
	}
	if f.RowGroup == nil {
		return []map[string]string{row}
	}
	second := map[string]string{}
	for k, v := range row {
		second[k] = v
	}
	second["NUM_FATTURA"] = "FT2025-0002"
	second["IMPORTO_INSOLUTO"] = "10.5"
	for _, k := range []string{"DATA_COSTITUZIONE_MORA", "MEZZO", "DATA_RICEVIMENTO", "TERMINE_PAGAMENTO", "RIF_COMUNICAZIONE", "INFO_CMOR"} {
		delete(second, k) // the notice is given once, on the first row
	}
	return []map[string]string{row, second}
}

// canonical is what a reader gives back for a written row.
func canonical(t *testing.T, f *Flow, row map[string]string) map[string]string {
	t.Helper()
	rec, fs := f.CheckValues(row)
	if HasErrors(fs) {
		t.Fatalf("%s: sample row invalid: %v", f.Key, fs)
	}
	return rec.Map()
}

func writeFlow(t testing.TB, f *Flow, format string, rows []map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f, format)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatalf("%s/%s: %v", f.Key, format, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(t testing.TB, f *Flow, format string, data []byte, opt ReadOptions) ([]Record, []Finding) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), f, format, opt)
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	var all []Finding
	for {
		rec, fs, err := r.Next()
		all = append(all, fs...)
		if err == io.EOF {
			return recs, all
		}
		if err != nil {
			t.Fatalf("%s/%s: %v", f.Key, format, err)
		}
		recs = append(recs, rec)
	}
}

func TestRoundTripEveryFlow(t *testing.T) {
	c := DefaultCatalog()
	for _, f := range append(append([]*Flow{}, c.Flows...), c.Inputs...) {
		for _, format := range []string{"csv", "xml"} {
			if f.IsInput() && format == "xml" {
				continue
			}
			t.Run(f.Key+"/"+format, func(t *testing.T) {
				rows := sampleRows(f)
				data := writeFlow(t, f, format, rows)
				recs, fs := readAll(t, f, format, data, ReadOptions{FileName: "rt." + format})
				if len(fs) > 0 {
					t.Fatalf("findings on our own output: %v\n%s", fs, data)
				}
				if len(recs) != len(rows) {
					t.Fatalf("%d records read, %d written", len(recs), len(rows))
				}
				for i, rec := range recs {
					want := canonical(t, f, rows[i])
					if got := rec.Map(); !reflect.DeepEqual(got, want) {
						t.Errorf("row %d:\n got %v\nwant %v", i, got, want)
					}
					if rec.Line < 2 {
						t.Errorf("row %d: line %d", i, rec.Line)
					}
				}
			})
		}
	}
}

func TestGoldenProducedFlows(t *testing.T) {
	c := DefaultCatalog()
	for _, f := range c.Flows {
		if f.Direction != "out" {
			continue
		}
		for _, format := range []string{"csv", "xml"} {
			data := writeFlow(t, f, format, sampleRows(f))
			path := filepath.Join("testdata", "golden", f.Key+"."+format)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(data, want) {
				t.Errorf("%s differs from the golden file:\n%s", path, data)
			}
		}
	}
}

func TestCSVWriterFormat(t *testing.T) {
	f := DefaultCatalog().Flow("REQ_AMM")
	data := writeFlow(t, f, "csv", []map[string]string{{
		"PIVA_UTENTE": "IT00488410010", "PIVA_GESTORE": "06655971007", "CP_UTENTE": "E250000001",
		"VERIFICA_AMM": "0", "COD_CAUSALE": "4", "MOTIVAZIONE": `campo "COD_POD"; mancante`,
	}})
	want := "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n" +
		"SI1;0100;00488410010;06655971007;E250000001;;0;4;\"campo \"\"COD_POD\"\"; mancante\"\r\n"
	if string(data) != want {
		t.Errorf("got\n%q\nwant\n%q", data, want)
	}
	if bytes.HasPrefix(data, utf8BOM) {
		t.Error("BOM written")
	}
}

func TestWriterRefusesInvalidValues(t *testing.T) {
	f := DefaultCatalog().Flow("REQ_AMM")
	good := func() map[string]string {
		return map[string]string{"PIVA_UTENTE": "00488410010", "PIVA_GESTORE": "06655971007", "CP_UTENTE": "E250000001",
			"CP_GESTORE": "SII2024A8588941", "VERIFICA_AMM": "1"}
	}
	cases := []struct {
		name, field, value, rule string
	}{
		{"bad piva", "PIVA_UTENTE", "00488410011", RuleIDPIVA},
		{"const", "COD_SERVIZIO", "SI2", RuleConst},
		{"flag", "VERIFICA_AMM", "2", RuleFlag},
		{"cp utente", "CP_UTENTE", "E_25", RuleIDCPUtente},
		{"missing conditional", "CP_GESTORE", "", RuleRequired},
		{"unknown field", "NOPE", "x", RuleCSVColumn},
		{"line break", "MOTIVAZIONE", "a\nb", RuleString},
	}
	for _, tc := range cases {
		for _, format := range []string{"csv", "xml"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				row := good()
				row[tc.field] = tc.value
				var buf bytes.Buffer
				w, _ := NewWriter(&buf, f, format)
				err := w.Write(row)
				var re *RecordError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want RecordError", err)
				}
				found := false
				for _, fd := range re.Findings {
					if fd.Rule == tc.rule && fd.Field == tc.field {
						found = true
					}
				}
				if !found {
					t.Errorf("findings %v lack %s on %s", re.Findings, tc.rule, tc.field)
				}
				if err := w.Write(good()); err != nil {
					t.Fatalf("a good row after a refused one: %v", err)
				}
				w.Close()
				recs, fs := readAll(t, f, format, buf.Bytes(), ReadOptions{})
				if len(recs) != 1 || len(fs) != 0 {
					t.Errorf("refused row was written: %d records, findings %v", len(recs), fs)
				}
			})
		}
	}
}

func hasFinding(fs []Finding, line int, field, rule string) bool {
	for _, f := range fs {
		if f.Line == line && f.Field == field && f.Rule == rule {
			return true
		}
	}
	return false
}

func TestCSVReaderFindings(t *testing.T) {
	f := DefaultCatalog().Flow("REQ_AMM")
	head := "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\n"
	cases := []struct {
		name, row   string
		field, rule string
		warning     bool
	}{
		{"ok", "SI1;0100;00488410010;06655971007;E250000001;SII2024A8588941;1;;", "", "", false},
		{"required", "SI1;0100;00488410010;06655971007;;SII2024A8588941;1;;", "CP_UTENTE", RuleRequired, false},
		{"conditional", "SI1;0100;00488410010;06655971007;E250000001;;0;;", "COD_CAUSALE", RuleRequired, false},
		{"const", "SI2;0100;00488410010;06655971007;E250000001;SII2024A8588941;1;;", "COD_SERVIZIO", RuleConst, false},
		{"length", "SI1;0100;00488410010;06655971007;E250000001;SII2024A8588941;0;1234;x", "COD_CAUSALE", RuleLength, false},
		{"cp gestore", "SI1;0100;00488410010;06655971007;E250000001;XII2024A8588941;1;;", "CP_GESTORE", RuleIDCPGest, false},
		{"unknown cause is a warning inbound", "SI1;0100;00488410010;06655971007;E250000001;;0;77;boh", "COD_CAUSALE", RuleCause, true},
		{"leading zeros of a cause", "SI1;0100;00488410010;06655971007;E250000001;;0;005;dup", "", "", false},
		{"columns", "SI1;0100;00488410010", "", RuleCSVColumns, false},
		{"quote", `SI1;0100;00488410010;06655971007;E250000001;;0;4;"a"b`, "", RuleCSVQuote, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, fs := readAll(t, f, "csv", []byte(head+tc.row+"\n"), ReadOptions{FileName: "amm.csv"})
			if tc.rule == "" {
				if len(fs) != 0 {
					t.Fatalf("unexpected findings %v", fs)
				}
				return
			}
			if !hasFinding(fs, 2, tc.field, tc.rule) {
				t.Fatalf("findings %v lack line 2 %s %s", fs, tc.field, tc.rule)
			}
			for _, x := range fs {
				if x.Rule == tc.rule && x.IsWarning() != tc.warning {
					t.Errorf("%v: warning=%v, want %v", x, x.IsWarning(), tc.warning)
				}
				if x.File != "amm.csv" {
					t.Errorf("finding without file: %v", x)
				}
			}
		})
	}
}

func TestCSVHeaderMustMatchForSIIFlows(t *testing.T) {
	f := DefaultCatalog().Flow("REQ_AMM")
	row := "\nSI1;0100;00488410010;06655971007;E250000001;SII2024A8588941;1;;\n"
	cases := map[string]string{
		"order":   "COD_FLUSSO;COD_SERVIZIO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE",
		"missing": "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE",
		"unknown": "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVO",
	}
	for name, head := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewCSVReader(strings.NewReader(head+row), f, ReadOptions{FileName: "x.csv"})
			fs, err := r.ReadHeader()
			if err != nil {
				t.Fatal(err)
			}
			ok := false
			for _, x := range fs {
				ok = ok || (x.Rule == RuleCSVHeader && x.Line == 1 && !x.IsWarning())
			}
			if !ok {
				t.Fatalf("no CSV-HEADER error: %v", fs)
			}
			if _, _, err := r.Next(); err != nil {
				t.Fatalf("rows are still readable: %v", err)
			}
		})
	}
	if _, fs := readAll(t, f, "csv", nil, ReadOptions{}); !hasFinding(fs, 1, "", RuleCSVHeader) {
		t.Errorf("empty file: %v", fs)
	}
}

const morosiHead = "Settore;Codice POD;Codice PDR;Codice Fiscale;Partita IVA;Ragione Sociale;Data Switch Out;Tensione;Uso Gas;Consumo Annuo Smc;" +
	"Numero Fattura;Data Emissione;Data Scadenza;Periodo Dal;Periodo Al;Importo Fattura;Importo Insoluto;Canone RAI;Tipo Lettura;Conguaglio;Ricostruzione;" +
	"Data Messa in Mora;Mezzo Mora;Data Ricezione Mora;Termine Pagamento;Informativa CMOR;Rif Mora;Spesa 12 Mesi;CMOR Precedente;CP Gestore Precedente;" +
	"Fattura Chiusura;Indennizzi TIF Pagati;Reclami Evasi;Punto Attivo;Voltura"

var morosiMapping = map[string]string{
	"Settore": "SETTORE", "Codice POD": "COD_POD", "Codice PDR": "COD_PDR", "Codice Fiscale": "CF_CLIENTE",
	"Partita IVA": "PIVA_CLIENTE", "Ragione Sociale": "DENOMINAZIONE", "Data Switch Out": "DATA_SWITCH",
	"Tensione": "TENSIONE", "Uso Gas": "USO_GAS", "Consumo Annuo Smc": "CONSUMO_ANNUO_SMC",
	"Numero Fattura": "NUM_FATTURA", "Data Emissione": "DATA_EMISSIONE", "Data Scadenza": "DATA_SCADENZA",
	"Periodo Dal": "PERIODO_DA", "Periodo Al": "PERIODO_A", "Importo Fattura": "IMPORTO_FATTURA",
	"Importo Insoluto": "IMPORTO_INSOLUTO", "Canone RAI": "IMPORTO_RAI", "Tipo Lettura": "TIPO_LETTURA",
	"Conguaglio": "CONGUAGLIO", "Ricostruzione": "RICOSTRUZIONE", "Data Messa in Mora": "DATA_MORA",
	"Mezzo Mora": "MEZZO_MORA", "Data Ricezione Mora": "DATA_RICEVIMENTO_MORA", "Termine Pagamento": "TERMINE_MORA",
	"Informativa CMOR": "INFO_CMOR", "Rif Mora": "RIF_MORA", "Spesa 12 Mesi": "SPESA_12M",
	"CMOR Precedente": "CMOR_PRECEDENTE", "CP Gestore Precedente": "CP_GESTORE_PRECEDENTE",
	"Fattura Chiusura": "FATTURA_CHIUSURA", "Indennizzi TIF Pagati": "INDENNIZZI_TIF_PAGATI",
	"Reclami Evasi": "RECLAMI_EVASI", "Punto Attivo": "PUNTO_ATTIVO", "Voltura": "VOLTURA",
}

const morosiRow = "E;IT023E00121943;;RSSMRA85T10A562S;;Mario Rossi;01/03/2025;BT;;;FT-2024/0911;15/11/2024;05/12/2024;01/10/2024;31/10/2024;" +
	"123,45;123,45;9,00;E;;N;10/01/2025;RA;14/01/2025;30/01/2025;SI;RA-2025-17;2024-03:85,20,2024-04:91,00;;;S;S;S;S;N"

func TestCSVInputMappingDecimalCommaAndCharsets(t *testing.T) {
	f := DefaultCatalog().Input("uscente.morosi")
	utf := morosiHead + "\r\n" + morosiRow + "\r\n" + strings.Replace(morosiRow, "Mario Rossi", "Niccolò Società", 1) + "\r\n"
	// Windows-1252: ò is 0xF2, à is 0xE0.
	cp1252 := strings.ReplaceAll(strings.ReplaceAll(utf, "ò", "\xf2"), "à", "\xe0")
	cases := map[string]string{
		"utf8":         utf,
		"utf8 BOM":     "\xEF\xBB\xBF" + utf,
		"windows-1252": cp1252,
		"LF only":      strings.ReplaceAll(utf, "\r\n", "\n"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewCSVReader(strings.NewReader(data), f, ReadOptions{FileName: "morosi.csv", Mapping: morosiMapping, DecimalComma: true})
			var recs []Record
			for {
				rec, fs, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(fs) > 0 {
					t.Fatalf("findings: %v", fs)
				}
				recs = append(recs, rec)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records", len(recs))
			}
			if got := recs[1].Get("DENOMINAZIONE"); got != "Niccolò Società" {
				t.Errorf("name = %q", got)
			}
			if recs[0].Amount("IMPORTO_INSOLUTO") != Euros(123, 45) || recs[0].Get("IMPORTO_RAI") != "9.00" {
				t.Errorf("amounts: %v", recs[0].Map())
			}
			if got := recs[0].Get("SPESA_12M"); got != "2024-03:85.20,2024-04:91.00" {
				t.Errorf("spend = %q", got)
			}
			if recs[0].Get("INFO_CMOR") != "S" || recs[0].Date("DATA_SWITCH") != D(2025, 3, 1) || recs[1].Line != 3 {
				t.Errorf("record: %v line %d", recs[0].Map(), recs[1].Line)
			}
			want := map[string]string{"windows-1252": CharsetWindows1252}[name]
			if want == "" {
				want = CharsetUTF8
			}
			if r.Charset() != want {
				t.Errorf("charset %q, want %q", r.Charset(), want)
			}
		})
	}
}

func TestCSVInputHeaderProblems(t *testing.T) {
	f := DefaultCatalog().Input("uscente.morosi")
	head := strings.Replace(morosiHead, "Data Switch Out", "Data Cambio", 1) + ";Colonna Extra"
	r := NewCSVReader(strings.NewReader(head+"\n"+morosiRow+";x\n"), f, ReadOptions{FileName: "m.csv", Mapping: morosiMapping, DecimalComma: true})
	fs, _ := r.ReadHeader()
	if !hasFinding(fs, 1, "DATA_SWITCH", RuleCSVHeader) {
		t.Errorf("missing mandatory column not reported: %v", fs)
	}
	var extra *Finding
	for i := range fs {
		if fs[i].Rule == RuleCSVColumn {
			extra = &fs[i]
		}
	}
	if extra == nil || !extra.IsWarning() {
		t.Errorf("unknown column should be a warning: %v", fs)
	}
	_, rowFs, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range rowFs {
		if x.Field == "DATA_SWITCH" {
			t.Errorf("a missing column is reported once, not per row: %v", x)
		}
	}
}

func TestCSVQuotedMultilineAndBlankRows(t *testing.T) {
	f := DefaultCatalog().Flow("REQ_AMM")
	data := "COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n" +
		"\r\n;;;;;;;;\r\n" +
		"SI1;0100;00488410010;06655971007;E250000001;;0;4;\"riga uno\r\nriga \"\"due\"\"\"\r\n" +
		"SI1;0100;00488410010;06655971007;E250000002;SII2024A8588941;1;;\r\n"
	recs, fs := readAll(t, f, "csv", []byte(data), ReadOptions{})
	if len(fs) > 0 || len(recs) != 2 {
		t.Fatalf("%d records, findings %v", len(recs), fs)
	}
	if got := recs[0].Get("MOTIVAZIONE"); got != "riga uno\nriga \"due\"" {
		t.Errorf("MOTIVAZIONE = %q", got)
	}
	if recs[0].Line != 4 || recs[1].Line != 6 {
		t.Errorf("lines %d, %d; want 4, 6", recs[0].Line, recs[1].Line)
	}
}

func TestXMLReader(t *testing.T) {
	c := DefaultCatalog()
	f := c.Flow("REQ_AMM")
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<flussosi cod_servizio="SI1" cod_flusso="100">
  <richiesta>
    <identificativirichiesta>
      <piva_utente>00488410010</piva_utente>
      <piva_gestore>06655971007</piva_gestore>
      <cp_utente>E250000001</cp_utente>
    </identificativirichiesta>
    <verifica_amm>0</verifica_amm>
    <cod_causale>4</cod_causale>
    <motivazione>campo &lt;COD_POD&gt;</motivazione>
  </richiesta>
  <Richiesta>
    <IdentificativiRichiesta><PIVA_UTENTE>00488410010</PIVA_UTENTE><PIVA_GESTORE>06655971007</PIVA_GESTORE><CP_UTENTE>E25</CP_UTENTE></IdentificativiRichiesta>
    <VERIFICA_AMM>1</VERIFICA_AMM>
    <Sconosciuto>x</Sconosciuto>
  </Richiesta>
</flussosi>
`
	recs, fs := readAll(t, f, "xml", []byte(doc), ReadOptions{FileName: "a.xml"})
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	if got := recs[0].Map(); got["MOTIVAZIONE"] != "campo <COD_POD>" || got["COD_FLUSSO"] != "0100" || recs[0].Line != 3 {
		t.Errorf("record 0: %v line %d", got, recs[0].Line)
	}
	if len(fs) != 2 || !hasFinding(fs, 13, "CP_GESTORE", RuleRequired) || !hasFinding(fs, 16, "Sconosciuto", RuleXMLElement) {
		t.Errorf("findings: %v", fs)
	}

	bad := []struct{ name, doc, rule string }{
		{"syntax", "<FlussoSI COD_SERVIZIO=\"SI1\" COD_FLUSSO=\"0100\">\n<Richiesta>\n<VERIFICA_AMM>1</VERIFICA_AMM\n</FlussoSI>", RuleXMLSyntax},
		{"truncated", "<FlussoSI COD_SERVIZIO=\"SI1\" COD_FLUSSO=\"0100\">\n<Richiesta>\n", RuleXMLSyntax},
		{"encoding", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<FlussoSI/>", RuleXMLSyntax},
	}
	for _, b := range bad {
		r := NewXMLReader(strings.NewReader(b.doc), f, ReadOptions{FileName: "b.xml"})
		var err error
		for err == nil {
			_, _, err = r.Next()
		}
		var fnd Finding
		if !errors.As(err, &fnd) || fnd.Rule != b.rule || fnd.File != "b.xml" || fnd.Line == 0 {
			t.Errorf("%s: err = %#v", b.name, err)
		}
	}
	_, fs = readAll(t, f, "xml", []byte(`<Other COD_SERVIZIO="AI1" COD_FLUSSO="0100"></Other>`), ReadOptions{})
	if !hasFinding(fs, 1, "", RuleXMLRoot) || !hasFinding(fs, 1, "COD_SERVIZIO", RuleXMLRoot) {
		t.Errorf("root findings: %v", fs)
	}
}

func TestXMLRowGroupIsOneElementPerPractice(t *testing.T) {
	f := DefaultCatalog().Flow("REQ")
	rows := sampleRows(f)
	third := map[string]string{}
	for k, v := range rows[1] {
		third[k] = v
	}
	third["CP_UTENTE"] = "E250000002"
	data := writeFlow(t, f, "xml", append(rows, third))
	if n := bytes.Count(data, []byte("<Richiesta>")); n != 2 {
		t.Errorf("%d Richiesta elements, want 2:\n%s", n, data)
	}
	if n := bytes.Count(data, []byte("<DettaglioCredito>")); n != 3 {
		t.Errorf("%d DettaglioCredito elements, want 3", n)
	}
	recs, fs := readAll(t, f, "xml", data, ReadOptions{})
	if len(fs) > 0 || len(recs) != 3 || recs[2].Get("CP_UTENTE") != "E250000002" || recs[1].Get("NUM_FATTURA") != "FT2025-0002" {
		t.Fatalf("%d records, %v", len(recs), fs)
	}
}

func TestMonthAmounts(t *testing.T) {
	cases := []struct {
		in    string
		comma bool
		want  string
		bad   bool
	}{
		{"2024-03:85.20,2024-04:91", false, "2024-03:85.20,2024-04:91.00", false},
		{"2024-03:85,20,2024-04:91,00", true, "2024-03:85.20,2024-04:91.00", false},
		{"2024-03:85.20, 2024-04:1", false, "", true}, // space before the month
		{"2024-13:1", false, "", true},
		{"2024-03:1,2024-03:2", false, "", true},
		{"85.20", false, "", true},
		{"2024-03:85.201", false, "", true},
	}
	for _, tc := range cases {
		ms, err := ParseMonthAmounts(tc.in, tc.comma)
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if !tc.bad && FormatMonthAmounts(ms) != tc.want {
			t.Errorf("%q → %q", tc.in, FormatMonthAmounts(ms))
		}
	}
}

func TestInputSamples(t *testing.T) {
	// The samples under /testdata/inputs carry rows that must be refused; their README
	// lists them. Here: which lines, which fields, which rules.
	want := map[string][]string{
		"uscente.morosi":       {"5 CF_CLIENTE ID-CF", "6 COD_POD ID-POD", "7 DATA_SCADENZA TYPE-DATE", "8 IMPORTO_INSOLUTO TYPE-AMOUNT", "9 COD_PDR ID-PDR", "10 CONGUAGLIO REQUIRED"},
		"uscente.incassi":      {"4 PIVA_CLIENTE ID-PIVA", "5 IMPORTO_INCASSATO TYPE-AMOUNT"},
		"uscente.annullamenti": {"4 COD_CAUSALE_ANNULLAMENTO CAUSE", "5 MOTIVAZIONE REQUIRED"},
		"uscente.rimborsi":     {"3 CP_GESTORE ID-CP-GESTORE"},
		"entrante.fatturato":   {"4 DATA_INCASSO REQUIRED", "5 STATO_INCASSO ENUM"},
		"entrante.sospensioni": {"4 MOTIVO_SOSPENSIONE CAUSE", "5 COD_POD REQUIRED", "5 COD_PDR REQUIRED"},
	}
	c := DefaultCatalog()
	for kind, exp := range want {
		t.Run(kind, func(t *testing.T) {
			f := c.Input(kind)
			data, err := os.ReadFile(filepath.Join("..", "testdata", "inputs", kind+".csv"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := LoadMapping(filepath.Join("..", "testdata", "inputs", kind+".mapping.toml"))
			if err != nil {
				t.Fatal(err)
			}
			recs, fs := readAll(t, f, "csv", data, ReadOptions{FileName: kind + ".csv", Mapping: m.Columns, DecimalComma: m.DecimalComma})
			var got []string
			for _, x := range fs {
				if !x.IsWarning() {
					got = append(got, fmt.Sprintf("%d %s %s", x.Line, x.Field, x.Rule))
				}
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("errors:\n got %q\nwant %q\nall: %v", got, exp, fs)
			}
			if len(recs) < len(exp)+2 {
				t.Errorf("only %d rows", len(recs))
			}
		})
	}
}

func BenchmarkReadCSV(b *testing.B) {
	f := DefaultCatalog().Input("uscente.morosi")
	var buf bytes.Buffer
	buf.WriteString(morosiHead + "\r\n")
	const rows = 100_000
	for i := 0; i < rows; i++ {
		fmt.Fprintln(&buf, strings.Replace(morosiRow, "FT-2024/0911", fmt.Sprintf("FT-2024/%06d", i), 1)+"\r")
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewCSVReader(bytes.NewReader(data), f, ReadOptions{Mapping: morosiMapping, DecimalComma: true})
		n := 0
		for {
			_, fs, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil || len(fs) > 0 {
				b.Fatal(err, fs)
			}
			n++
		}
		if n != rows {
			b.Fatalf("%d rows", n)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(0, "ns/op")
}
