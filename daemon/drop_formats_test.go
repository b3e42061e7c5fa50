package daemon

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
)

// A billing person saves the extract from Excel and drops the .xlsx: it is read as it
// is, with the same checks as the CSV. A gzip dropped by mistake is refused with a
// reason that says what it is and what to do, not binary garbage.
func TestMorosiDropFormats(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	// The e2e extract as a workbook: every cell text, as the billing person typed it.
	x := excelize.NewFile()
	sh := x.GetSheetName(0)
	for r, line := range strings.Split(strings.TrimRight(e2eExtract(), "\r\n"), "\r\n") {
		for c, v := range strings.Split(line, ";") {
			cell, _ := excelize.CoordinatesToCellName(c+1, r+1)
			x.SetCellStr(sh, cell, v)
		}
	}
	var book bytes.Buffer
	if err := x.Write(&book); err != nil {
		t.Fatal(err)
	}
	x.Close()
	w.drop("morosi", "morosi.xlsx", book.String())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(e2eExtract()))
	zw.Close()
	w.drop("morosi", "morosi2.csv.gz", gz.String())
	w.d.ScanFoldersOnce(context.Background())

	w.practice("E250000001") // case A of the workbook became a practice
	reason, err := os.ReadFile(filepath.Join(w.folders["morosi"], "rejected", "morosi2.csv.gz.reason.txt"))
	if err != nil {
		t.Fatalf("no reason file for the gzip: %v", err)
	}
	if !strings.Contains(string(reason), "gzip") || strings.ContainsRune(string(reason), '\uFFFD') || strings.ContainsRune(string(reason), 0) {
		t.Errorf("reason for the gzip:\n%s", reason)
	}
}

// A folder whose mapping_file is the Gamma mapping (value tables, constants, a routed
// point column, the spend as a total) reads Gamma's export as it is: the daemon uses
// the whole mapping file, not only its column pairs.
func TestMorosiForeignMappingFile(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	cfg := *w.d.Config()
	cfg.Folders = append([]config.Folder(nil), cfg.Folders...)
	for i := range cfg.Folders {
		if cfg.Folders[i].Name == "morosi" {
			cfg.Folders[i].MappingFile = "../testdata/inputs/foreign/morosi-gamma.mapping.toml"
			cfg.Folders[i].DecimalComma = true
		}
	}
	if err := w.d.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../testdata/inputs/foreign/morosi-gamma.csv")
	if err != nil {
		t.Fatal(err)
	}
	w.drop("morosi", "gamma.csv", string(data))
	w.d.ScanFoldersOnce(context.Background())

	for _, tc := range []struct{ point, customer, sector string }{
		{"00881234567890", "07654321095", "G"}, // PDR routed from Punto; IT prefix removed
		{"IT001E00004567", "BNCLRA80A41F205G", "E"},
	} {
		ps, err := w.d.Store.QueryPractices(context.Background(), archive.PracticeFilter{Point: tc.point})
		if err != nil || len(ps) == 0 {
			t.Fatalf("no practice for point %s: %v", tc.point, err)
		}
		if ps[0].CustomerID != tc.customer || ps[0].Sector != tc.sector {
			t.Errorf("practice for %s: customer %q sector %q, want %q %q", tc.point, ps[0].CustomerID, ps[0].Sector, tc.customer, tc.sector)
		}
	}
}

// An SII answer that arrives compressed is refused with what it is, not taken as an
// empty file with no answers in it.
func TestSIIAnswerNotText(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;PIVA_GESTORE;CP_UTENTE;CP_GESTORE;VERIFICA_AMM;COD_CAUSALE;MOTIVAZIONE\r\n"))
	zw.Close()
	w.answer("SI10100_20251016_0001.csv", gz.String())
	w.d.PollSII(context.Background())
	fs, err := w.d.Store.ListFiles(context.Background(), archive.FileFilter{Name: "SI10100_20251016_0001.csv"})
	if err != nil || len(fs) != 1 {
		t.Fatalf("files %v, %v", fs, err)
	}
	if fs[0].State != archive.StateRejected || !strings.Contains(fs[0].Reason, "gzip-compressed") {
		t.Errorf("state %s, reason %q", fs[0].State, fs[0].Reason)
	}
}

// A workbook saved without compression (some tools write .xlsx with stored zip
// entries) compresses well, so the blob store keeps it compressed: the handler reads
// it through the store's decompression as it reads any workbook.
func TestMorosiWorkbookStoredCompressed(t *testing.T) {
	w := newTestWorld(t, e2eNow, "")
	x := excelize.NewFile()
	sh := x.GetSheetName(0)
	for r, line := range strings.Split(strings.TrimRight(e2eExtract(), "\r\n"), "\r\n") {
		for c, v := range strings.Split(line, ";") {
			cell, _ := excelize.CoordinatesToCellName(c+1, r+1)
			x.SetCellStr(sh, cell, v)
		}
	}
	var book bytes.Buffer
	if err := x.Write(&book); err != nil {
		t.Fatal(err)
	}
	x.Close()
	// The same workbook, its entries stored instead of deflated.
	zr, err := zip.NewReader(bytes.NewReader(book.Bytes()), int64(book.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var stored bytes.Buffer
	zw := zip.NewWriter(&stored)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(fw, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	w.drop("morosi", "morosi.xlsx", stored.String())
	w.d.ScanFoldersOnce(context.Background())

	w.practice("E250000001") // case A of the workbook became a practice
	fs, err := w.d.Store.ListFiles(context.Background(), archive.FileFilter{Name: "morosi.xlsx"})
	if err != nil || len(fs) != 1 {
		t.Fatalf("archived %+v %v", fs, err)
	}
	if _, compressed, err := w.d.Store.Blobs.StoredFile(fs[0].Hash); err != nil || !compressed {
		t.Errorf("the workbook's blob: compressed %v, %v; want compressed", compressed, err)
	}
}
