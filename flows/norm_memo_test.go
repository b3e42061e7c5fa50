package flows

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// morosiFlow is the default catalog's uscente.morosi, parsed once (fuzz targets read
// thousands of inputs).
var morosiFlow = sync.OnceValue(func() *Flow { return DefaultCatalog().Input("uscente.morosi") })

// readMemo reads data as uscente.morosi and renders every row (line and values) with
// its findings, and the error that stops the reading; noMemo normalises every value
// again (the memo's slow twin); only reads the key fields alone (NormalizeOnly).
func readMemo(data []byte, opt ReadOptions, noMemo, only bool) string {
	rd := NewCSVReader(bytes.NewReader(data), morosiFlow(), opt)
	defer rd.Close()
	rd.noMemo = noMemo
	if only {
		rd.NormalizeOnly(MorosiKeyFields...)
	}
	var b strings.Builder
	for i := 0; i <= len(data)+2; i++ {
		rec, fs, err := rd.Next()
		for _, f := range fs {
			fmt.Fprintf(&b, "  finding %+v\n", f)
		}
		if err != nil {
			fmt.Fprintf(&b, "end %v\n", err)
			return b.String()
		}
		fmt.Fprintf(&b, "%d %q\n", rec.Line, rec.Values)
	}
	return b.String() + "reader does not end\n"
}

// rowLines reads data as uscente.morosi and renders the line of every row and the
// error that stops the reading; none reads under NormalizeOnly with no field.
func rowLines(data []byte, opt ReadOptions, none bool) string {
	rd := NewCSVReader(bytes.NewReader(data), morosiFlow(), opt)
	defer rd.Close()
	if none {
		rd.NormalizeOnly()
	}
	var b strings.Builder
	for i := 0; i <= len(data)+2; i++ {
		rec, _, err := rd.Next()
		if err != nil {
			fmt.Fprintf(&b, "end %v\n", err)
			return b.String()
		}
		fmt.Fprintf(&b, "%d\n", rec.Line)
	}
	return b.String() + "reader does not end\n"
}

// The reader remembers each field's last value and its normalisation (normMemo): rows
// of one practice repeat its values. Reading with the memo gives what normalising
// every value gives, row by row, on hostile input: a repeated bad value is refused
// again on every row, at its own line; a value repeated after a different one, the
// same value in two fields, quotes, a BOM, CRLF, Windows-1252, empty and huge fields,
// a decimal comma, a mapping file's tables and routes.
func TestNormMemoAsEveryValue(t *testing.T) {
	dir := filepath.Join("..", "testdata", "inputs", "foreign")
	m, err := LoadMapping(filepath.Join(dir, "morosi-gamma.mapping.toml"))
	if err != nil {
		t.Fatal(err)
	}
	gamma, err := os.ReadFile(filepath.Join(dir, "morosi-gamma.csv"))
	if err != nil {
		t.Fatal(err)
	}
	row := func(edit map[string]string) string { return dirtyRow(edit) }
	huge := strings.Repeat("x", 300<<10)
	plain := ReadOptions{FileName: "x.csv"}
	for _, tc := range []struct {
		name string
		data string
		opt  ReadOptions
	}{
		{"the same row three times", dirtyHeader + row(nil) + row(nil) + row(nil), plain},
		{"a bad value repeated", dirtyHeader +
			row(map[string]string{"CF_CLIENTE": "NOTACF", "IMPORTO_INSOLUTO": "abc", "DATA_SWITCH": "31/02/2025"}) +
			row(map[string]string{"CF_CLIENTE": "NOTACF", "IMPORTO_INSOLUTO": "abc", "DATA_SWITCH": "31/02/2025"}) +
			row(nil) +
			row(map[string]string{"CF_CLIENTE": "NOTACF"}), plain},
		{"values written differently, then again", dirtyHeader +
			row(map[string]string{"COD_POD": " it001e00004567 ", "DATA_SWITCH": "1/3/2025", "IMPORTO_FATTURA": "424,39"}) +
			row(map[string]string{"COD_POD": "it001e00004567", "DATA_SWITCH": "1/3/2025"}) +
			row(nil) +
			row(map[string]string{"COD_POD": "it001e00004567", "SPESA_12M": "2024-12:100,00,2024-11:90"}) +
			row(map[string]string{"SPESA_12M": "2024-12:100,00,2024-11:90"}), ReadOptions{FileName: "x.csv", DecimalComma: true}},
		{"empty fields between repeats", dirtyHeader +
			row(map[string]string{"TENSIONE": ""}) + row(nil) + row(map[string]string{"TENSIONE": ""}) + row(nil) +
			row(map[string]string{"COD_POD": "", "CF_CLIENTE": ""}) + row(nil), plain},
		{"a warning repeated (lenient POD)", dirtyHeader +
			row(map[string]string{"COD_POD": "IT001E0000456"}) + row(map[string]string{"COD_POD": "IT001E0000456"}), ReadOptions{FileName: "x.csv", LenientPOD: true}},
		{"quotes, BOM, CRLF", "\xef\xbb\xbf" + strings.ReplaceAll(dirtyHeader+
			row(map[string]string{"DENOMINAZIONE": `"Bianchi; ""Laura"""`})+
			row(map[string]string{"DENOMINAZIONE": `"Bianchi; ""Laura"""`})+
			row(map[string]string{"DENOMINAZIONE": "\"Bianchi\nLaura\""})+
			row(map[string]string{"DENOMINAZIONE": "\"never closed"})+row(nil), "\n", "\r\n"), plain},
		{"windows-1252 bytes", dirtyHeader +
			row(map[string]string{"DENOMINAZIONE": "Nicol\xe0"}) + row(map[string]string{"DENOMINAZIONE": "Nicol\xe0"}) +
			row(map[string]string{"DENOMINAZIONE": "Nicol\xe0 \x80"}), plain},
		{"huge fields", dirtyHeader +
			row(map[string]string{"DENOMINAZIONE": huge}) + row(map[string]string{"DENOMINAZIONE": huge}) +
			row(map[string]string{"DENOMINAZIONE": huge + "y"}) + row(map[string]string{"NUM_FATTURA": huge}), plain},
		{"mapping file (Gamma export)", string(gamma) + string(gamma[bytes.IndexByte(gamma, '\n')+1:]),
			ReadOptions{FileName: "g.csv", MappingFile: m, DecimalComma: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if full, none := rowLines([]byte(tc.data), tc.opt, false), rowLines([]byte(tc.data), tc.opt, true); full != none {
				t.Errorf("read for its errors alone (NormalizeOnly with no field):\n%s\nfull read:\n%s", none, full)
			}
			for _, only := range []bool{false, true} {
				fast, slow := readMemo([]byte(tc.data), tc.opt, false, only), readMemo([]byte(tc.data), tc.opt, true, only)
				if fast != slow {
					t.Errorf("keys only %v: with the memo:\n%s\nevery value normalised:\n%s", only, fast, slow)
				}
				if !only && strings.Count(fast, "\n") < 3 {
					t.Errorf("too little read:\n%s", fast)
				}
			}
		})
	}
}

// FuzzNormMemo: on any input, reading with the memo gives what normalising every
// value gives.
func FuzzNormMemo(f *testing.F) {
	f.Add([]byte(dirtyHeader + dirtyRow(nil) + dirtyRow(nil) + dirtyRow(map[string]string{"CF_CLIENTE": "NOTACF"})))
	f.Add([]byte(dirtyHeader + dirtyRow(map[string]string{"IMPORTO_INSOLUTO": "1,5"}) + dirtyRow(map[string]string{"IMPORTO_INSOLUTO": "1,5"})))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opt := range []ReadOptions{{FileName: "f.csv"}, {FileName: "f.csv", DecimalComma: true, LenientPOD: true}} {
			if fast, slow := readMemo(data, opt, false, false), readMemo(data, opt, true, false); fast != slow {
				t.Fatalf("with the memo:\n%s\nevery value normalised:\n%s", fast, slow)
			}
			if full, none := rowLines(data, opt, false), rowLines(data, opt, true); full != none {
				t.Fatalf("read for its errors alone:\n%s\nfull read:\n%s", none, full)
			}
		}
	})
}

// isASCII reads eight bytes at a time: it says what a byte-by-byte look says, for
// every length around the word size and a high byte at every place.
func TestIsASCIIAsByteByByte(t *testing.T) {
	byByte := func(b []byte) bool {
		for _, c := range b {
			if c >= 0x80 {
				return false
			}
		}
		return true
	}
	for n := 0; n <= 33; n++ {
		b := bytes.Repeat([]byte{'a'}, n)
		if got := isASCII(b); got != byByte(b) {
			t.Errorf("%d ASCII bytes: %v", n, got)
		}
		for i := range n {
			for _, c := range []byte{0x80, 0xe0, 0xff} {
				b[i] = c
				if got := isASCII(b); got != byByte(b) {
					t.Errorf("%d bytes, %#x at %d: %v", n, c, i, got)
				}
				b[i] = 0x7f
				if got := isASCII(b); got != byByte(b) {
					t.Errorf("%d bytes, 0x7f at %d: %v", n, i, got)
				}
				b[i] = 'a'
			}
		}
	}
}

// A CSV writer remembers each field's last value and its normalisation as the reader
// does (the rows of one request repeat its case): it writes what normalising every
// value writes, and refuses what it refuses, row by row, for rows that repeat good
// and bad values, values to quote, constants left empty, line breaks and long text.
func TestWriterNormMemoAsEveryValue(t *testing.T) {
	f := DefaultCatalog().Flow("REQ")
	good := map[string]string{"PIVA_UTENTE": "01234567897", "PIVA_GESTORE": "07654321095", "CP_UTENTE": "E250000001", "SETTORE": "E",
		"COD_POD": "IT001E00004567", "CF_CLIENTE": "BNCLRA80A41F205G", "DENOMINAZIONE": "Laura Bianchi", "DATA_SWITCH": "01/03/2025",
		"IMPORTO_CREDITO": "424.39", "IMPORTO_INDENNIZZO": "20.00", "STIMA_SPESA_4_MESI": "400.00", "NUM_FATTURA": "F1",
		"DATA_EMISSIONE": "15/11/2024", "DATA_SCADENZA": "05/12/2024", "PERIODO_DA": "01/10/2024", "PERIODO_A": "31/10/2024",
		"IMPORTO_FATTURA": "424.39", "IMPORTO_INSOLUTO": "424.39", "TIPO_LETTURA": "E"}
	with := func(edit map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range edit {
			m[k] = v
		}
		return m
	}
	rows := []map[string]string{
		good, good, with(map[string]string{"NUM_FATTURA": "F2"}),
		with(map[string]string{"CF_CLIENTE": "NOTACF"}), with(map[string]string{"CF_CLIENTE": "NOTACF"}), good,
		with(map[string]string{"DENOMINAZIONE": `Bianchi; "Laura"`}), with(map[string]string{"DENOMINAZIONE": `Bianchi; "Laura"`}),
		with(map[string]string{"DATA_SWITCH": "1/3/2025"}), with(map[string]string{"DATA_SWITCH": "1/3/2025"}), with(map[string]string{"DATA_SWITCH": "31/02/2025"}),
		with(map[string]string{"IMPORTO_CREDITO": " 424.39 "}), with(map[string]string{"IMPORTO_CREDITO": "424.390"}), with(map[string]string{"IMPORTO_CREDITO": "424.390"}),
		with(map[string]string{"COD_SERVIZIO": ""}), with(map[string]string{"DENOMINAZIONE": "Laura\nBianchi"}), with(map[string]string{"DENOMINAZIONE": "Laura\nBianchi"}),
		with(map[string]string{"DENOMINAZIONE": strings.Repeat("Bianchi ", 40)}), with(map[string]string{"DENOMINAZIONE": strings.Repeat("Bianchi ", 40)}), good,
	}
	write := func(memo bool) string {
		var out bytes.Buffer
		w := NewCSVWriter(&out, f)
		if !memo {
			w.memo = nil
		}
		var b strings.Builder
		for i, r := range rows {
			if err := w.Write(r); err != nil {
				fmt.Fprintf(&b, "row %d: %v\n", i, err)
			}
			rec, _ := f.CheckValues(r)
			if err := w.WriteRecord(rec); err != nil {
				fmt.Fprintf(&b, "record %d: %v\n", i, err)
			}
		}
		if err := w.Close(); err != nil {
			fmt.Fprintf(&b, "close: %v\n", err)
		}
		return b.String() + out.String()
	}
	fast, slow := write(true), write(false)
	if fast != slow {
		t.Errorf("with the memo:\n%s\nevery value normalised:\n%s", fast, slow)
	}
	if strings.Count(fast, "refused") < 6 || strings.Count(fast, "\r\n") < 10 {
		t.Errorf("not the rows expected (some refused, most written):\n%s", fast)
	}
}
