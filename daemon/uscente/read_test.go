package uscente

import (
	"context"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/daemon/receipt"
	"github.com/cmord/cmord/flows"
)

// TestIdentifyLines reads the point and customer of given lines back from an archived
// extract, through the folder's column mapping and encoding as the handler reads it:
// the family on its own, over a real archive, without a daemon.
func TestIdentifyLines(t *testing.T) {
	st, err := archive.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Billing's own headers, mapped to our fields; the folder's encoding is windows-1252
	// ("Società" ends in the byte 0xE0).
	extract := "Settore;POD;PDR;Codice fiscale;P.IVA;Ragione sociale\r\n" +
		"E;IT001E00000001;;RSSMRA85T10A562S;;Rossi\r\n" +
		"G;;00881234567890;;01234567897;Societ\xe0 Gas\r\n" +
		"E;IT001E00000003;;VRDLGU70A01H501Z;;Verdi\r\n"
	folder := &config.Folder{Name: "morosi", Kind: config.KindUscenteMorosi, Encoding: "windows-1252",
		Mapping: map[string]string{"Settore": "SETTORE", "POD": "COD_POD", "PDR": "COD_PDR", "Codice fiscale": "CF_CLIENTE",
			"P.IVA": "PIVA_CLIENTE", "Ragione sociale": "DENOMINAZIONE"}}
	res, err := st.Ingest(context.Background(), archive.IngestRequest{Source: "folder:morosi", Name: "morosi.csv", Direction: "in",
		Kind: config.KindUscenteMorosi, Reader: strings.NewReader(extract)})
	if err != nil {
		t.Fatal(err)
	}
	in := &family.Input{File: res.File, Folder: folder, Store: st, Catalog: flows.DefaultCatalog(), Config: &config.Config{}}
	for _, tc := range []struct {
		name  string
		lines map[int]bool
		want  map[int]receipt.Ident
	}{
		{"one line", map[int]bool{2: true}, map[int]receipt.Ident{2: {Point: "IT001E00000001", Customer: "RSSMRA85T10A562S"}}},
		{"a gas point, a company", map[int]bool{3: true, 4: true}, map[int]receipt.Ident{
			3: {Point: "00881234567890", Customer: "01234567897"}, 4: {Point: "IT001E00000003", Customer: "VRDLGU70A01H501Z"}}},
		{"a line past the end", map[int]bool{9: true}, map[int]receipt.Ident{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IdentifyLines(context.Background(), in, tc.lines)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for line, id := range tc.want {
				if got[line] != id {
					t.Errorf("line %d: %+v, want %+v", line, got[line], id)
				}
			}
		})
	}
}
