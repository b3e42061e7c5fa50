package flows

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// The readers take files from outside (billing drops, the SII): whatever the bytes,
// they must not panic, must end, must give every finding a rule, and must give back
// valid UTF-8 values whatever the input charset.

func FuzzReadCSV(f *testing.F) {
	c := DefaultCatalog()
	f.Add([]byte(morosiHead+"\r\n"+morosiRow+"\r\n"), uint8(0))
	f.Add([]byte("\xEF\xBB\xBFCOD_SERVIZIO;COD_FLUSSO\n\"a;\"\"b\";c\n\"open\n"), uint8(1))
	f.Add([]byte("COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE\r\nSI1;0100;IT00488410010\r\n;;\r\n\xe0\xf2;x"), uint8(2))
	f.Add([]byte(morosiHead+"\r\n\"open;"+morosiRow+"\r\n"+morosiRow+"\r\nx\"y;\r\n\x00\x1f\xc2\x85;\xe8\xff\r\n"), uint8(0))
	inputs := c.Inputs
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		var fl *Flow
		if int(which)%2 == 0 {
			fl = inputs[int(which/2)%len(inputs)]
		} else {
			fl = c.Flows[int(which/2)%len(c.Flows)]
		}
		r := NewCSVReader(bytes.NewReader(data), fl, ReadOptions{FileName: "f.csv", Mapping: morosiMapping, DecimalComma: which&4 != 0})
		for i := 0; ; i++ {
			if i > len(data)+2 {
				t.Fatal("reader does not end")
			}
			rec, fs, err := r.Next()
			for _, x := range fs {
				if x.Rule == "" || x.File != "f.csv" {
					t.Fatalf("finding without rule or file: %#v", x)
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				var fnd Finding
				if !errors.As(err, &fnd) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if rec.Line < 2 || len(rec.Values) != len(fl.Fields) {
				t.Fatalf("record line %d, %d values", rec.Line, len(rec.Values))
			}
			for _, v := range rec.Values {
				if !utf8.ValidString(v) {
					t.Fatalf("invalid UTF-8 value %q", v)
				}
			}
		}
	})
}

func FuzzReadXML(f *testing.F) {
	c := DefaultCatalog()
	for _, k := range []string{"REQ", "ANN_NOTIF"} {
		var buf bytes.Buffer
		w := NewXMLWriter(&buf, c.Flow(k))
		for _, row := range sampleRows(c.Flow(k)) {
			w.Write(row)
		}
		w.Close()
		f.Add(buf.Bytes(), uint8(0))
	}
	f.Add([]byte(`<FlussoSI COD_SERVIZIO="SI1" COD_FLUSSO="0100"><Richiesta><VERIFICA_AMM>1<x/></VERIFICA_AMM></Richiesta></FlussoSI>`), uint8(1))
	f.Add([]byte("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		fl := c.Flows[int(which)%len(c.Flows)]
		r := NewXMLReader(bytes.NewReader(data), fl, ReadOptions{FileName: "f.xml"})
		for i := 0; ; i++ {
			if i > len(data)+2 {
				t.Fatal("reader does not end")
			}
			rec, fs, err := r.Next()
			for _, x := range fs {
				if x.Rule == "" || x.File != "f.xml" {
					t.Fatalf("finding without rule or file: %#v", x)
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				var fnd Finding
				if !errors.As(err, &fnd) || !strings.HasPrefix(fnd.Rule, "XML-") {
					t.Fatalf("unexpected error %T: %v", err, err)
				}
				return
			}
			if len(rec.Values) != len(fl.Fields) {
				t.Fatalf("%d values", len(rec.Values))
			}
		}
	})
}
