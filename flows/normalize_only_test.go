package flows

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// keyLines reads data as uscente.morosi and renders each row's line and case key, and
// the error that stops the reading: with every rule, or (only) with only the key's
// fields normalised.
func keyLines(data []byte, opt ReadOptions, only bool) string {
	rd := NewCSVReader(bytes.NewReader(data), DefaultCatalog().Input("uscente.morosi"), opt)
	defer rd.Close()
	if only {
		rd.NormalizeOnly(MorosiKeyFields...)
	}
	var b bytes.Buffer
	for i := 0; i <= len(data)+2; i++ {
		rec, fs, err := rd.Next()
		if only && err == nil && len(fs) > 0 && fs[len(fs)-1].Line != 1 {
			fmt.Fprintf(&b, "row findings %v\n", fs) // NormalizeOnly gives none (the header's may come with the first row)
		}
		if err != nil {
			fmt.Fprintf(&b, "end %v\n", err)
			return b.String()
		}
		fmt.Fprintf(&b, "%d %s\n", rec.Line, MorosiKey(rec))
	}
	return b.String() + "reader does not end\n"
}

// A pass that reads only the case keys (the row-order pass of the uscente.morosi
// handler) sees the rows, lines, keys and stopping errors of a full read: the key's
// fields are normalised by their own rules, the mapping file's tables and routes
// apply, and the quote handling that decides where rows start is the same.
func TestNormalizeOnlyKeysAsFullRead(t *testing.T) {
	dir := filepath.Join("..", "testdata", "inputs", "foreign")
	m, err := LoadMapping(filepath.Join(dir, "morosi-gamma.mapping.toml"))
	if err != nil {
		t.Fatal(err)
	}
	gamma, err := os.ReadFile(filepath.Join(dir, "morosi-gamma.csv"))
	if err != nil {
		t.Fatal(err)
	}
	gammaOpt := ReadOptions{FileName: "g.csv", MappingFile: m, DecimalComma: true}
	row := func(edit map[string]string) string { return dirtyRow(edit) }
	for _, tc := range []struct {
		name string
		data string
		opt  ReadOptions
		keys int // rows with a key, at least
	}{
		{"clean rows", dirtyHeader + row(nil) + row(map[string]string{"NUM_FATTURA": "F2"}), ReadOptions{FileName: "x.csv"}, 2},
		{"keys written differently", dirtyHeader +
			row(map[string]string{"COD_POD": " it001e00004567 ", "CF_CLIENTE": "bnclra80a41f205g"}) +
			row(map[string]string{"DATA_SWITCH": "1/3/2025"}) +
			row(map[string]string{"DATA_SWITCH": "2025-03-01"}) +
			row(map[string]string{"CF_CLIENTE": "", "PIVA_CLIENTE": "07654321095"}) +
			row(map[string]string{"SETTORE": "G", "COD_POD": "", "COD_PDR": "00881234567890"}), ReadOptions{FileName: "x.csv"}, 3},
		{"refused rows", dirtyHeader +
			row(map[string]string{"DATA_SWITCH": "31/02/2025"}) +
			row(map[string]string{"COD_POD": ""}) +
			row(map[string]string{"CF_CLIENTE": "NOTACF", "IMPORTO_INSOLUTO": "abc"}) +
			row(map[string]string{"DENOMINAZIONE": "a\x01b"}), ReadOptions{FileName: "x.csv"}, 1},
		{"quotes over lines, empty rows", dirtyHeader + row(nil) + ";;;\n\n" +
			row(map[string]string{"DENOMINAZIONE": "\"Bianchi\nLaura\""}) +
			row(map[string]string{"DENOMINAZIONE": "\"never closed"}) + row(nil), ReadOptions{FileName: "x.csv"}, 2},
		{"windows-1252 bytes", dirtyHeader + row(map[string]string{"DENOMINAZIONE": "Nicol\xe0"}), ReadOptions{FileName: "x.csv"}, 1},
		{"mapping file (Gamma export)", string(gamma), gammaOpt, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full, only := keyLines([]byte(tc.data), tc.opt, false), keyLines([]byte(tc.data), tc.opt, true)
			if full != only {
				t.Errorf("keys-only read differs:\nfull:\n%s\nkeys only:\n%s", full, only)
			}
			if n := bytes.Count([]byte(full), []byte(" U|")); n < tc.keys {
				t.Errorf("%d rows with a key, want at least %d:\n%s", n, tc.keys, full)
			}
		})
	}
}

// FuzzNormalizeOnly: on any input the keys-only read gives the full read's rows and keys.
func FuzzNormalizeOnly(f *testing.F) {
	f.Add([]byte(dirtyHeader + dirtyRow(nil) + dirtyRow(map[string]string{"COD_POD": "it001e00004567", "DATA_SWITCH": "1/3/25"})))
	f.Add([]byte(dirtyHeader + "E;\"IT001E00004567\n;x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		opt := ReadOptions{FileName: "f.csv"}
		if full, only := keyLines(data, opt, false), keyLines(data, opt, true); full != only {
			t.Fatalf("keys-only read differs:\nfull:\n%s\nkeys only:\n%s", full, only)
		}
	})
}
