package digest

import (
	"fmt"
	stdhtml "html"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/xuri/excelize/v2"
)

// TestBoundTextsSingular: when one row is attached (attachment_max_rows = 1), or one
// more exception is left out of a list, the texts say so in the singular: "le prime 1
// eccezioni di 18" and "… e altre 1, non elencate" are not Italian, "the first 1 of 18"
// not English.
func TestBoundTextsSingular(t *testing.T) {
	for _, tc := range []struct {
		lang      string
		want, bad []string
	}{
		{"it", []string{
			"Allegati parziali: contengono solo la prima eccezione di 18, la più urgente (prima le aperte per gravità",
			"In allegato solo la prima eccezione di 18 in Excel (XLSX, per le persone) e in CSV (per i programmi): elenco parziale.",
			": la prima eccezione di 18 di questo riepilogo, la più urgente;",
			"… e 1 altra: negli allegati 1 delle 9 di questa sezione (allegati parziali, vedi Sintesi).",
			"… e 1 altra: negli allegati 0 delle 7 di questa sezione (allegati parziali, vedi Sintesi).",
			"Questo file contiene solo la prima eccezione di 18 del riepilogo del 23/11/2026, la più urgente",
		}, []string{"prime 1 ", "e altre 1:", "e altre 1,", "%!"}},
		{"en", []string{
			"Partial attachments: they hold only the first of 18 exceptions, the most urgent (open ones by severity",
			"Only the first of 18 exceptions is attached as Excel (XLSX, for people) and CSV (for programs): partial list.",
			": the first of 18 exceptions of this digest, the most urgent;",
			"This file holds only the first of 18 exceptions of the digest of 23/11/2026, the most urgent",
		}, []string{"first 1 ", "%!"}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			d := fixtureDigest(t)
			// New has 9 items, still open 7: a body cap of 8 leaves one of New out (its one
			// row attached), a cap of 6 (below) one of still open (none attached).
			d.AttachMaxRows, d.MaxItems = 1, 8
			msg, err := d.Message(Options{Lang: tc.lang, From: "cmord@example.it", To: []string{"compliance@example.it"}}, "digest:test")
			if err != nil {
				t.Fatal(err)
			}
			if d.Attached() != 1 || d.ListTotal() != 18 {
				t.Fatalf("attached %d of %d, want 1 of 18", d.Attached(), d.ListTotal())
			}
			f, err := excelize.OpenReader(strings.NewReader(string(msg.Attachments[0].Data)))
			if err != nil {
				t.Fatal(err)
			}
			note, err := f.GetCellValue(labels[tc.lang]["sheet_note"], "A1")
			if err != nil {
				t.Fatal(err)
			}
			d.MaxItems = 6
			_, text6, html6, err := d.renderBodies(tc.lang, false)
			if err != nil {
				t.Fatal(err)
			}
			all := msg.Text + "\n" + stdhtml.UnescapeString(msg.HTML) + "\n" + text6 + "\n" + stdhtml.UnescapeString(html6) + "\n" + note
			for _, want := range tc.want {
				if !strings.Contains(all, want) {
					t.Errorf("no %q", want)
				}
			}
			for _, bad := range tc.bad {
				if strings.Contains(all, bad) {
					t.Errorf("%q in the texts", bad)
				}
			}
			// A preview that would attach one row.
			d.WouldAttach, d.AttachCSV, d.AttachXLSX, d.cut = 1, false, false, nil
			_, text, _, err := d.renderBodies(tc.lang, false)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"it": "Inviato ora, il riepilogo allegherebbe solo la prima eccezione di 18, la più urgente",
				"en": "Sent now, the digest would attach only the first of 18 exceptions, the most urgent"}[tc.lang]
			if !strings.Contains(text, want) {
				t.Errorf("preview: no %q", want)
			}
		})
	}
	// An urgent alert with one exception more than it lists.
	at := rome(2026, time.November, 20, 9, 0)
	var items []Item
	for i := range alertMaxItems + 1 {
		items = append(items, Item{Exception: archive.Exception{ID: int64(i + 1), Kind: "case_not_eligible", Severity: archive.SevUrgent,
			Owner: OwnerCompliance, Message: fmt.Sprintf("eccezione numero %d", i+1), FirstSeen: at, LastSeen: at, Count: 1}})
	}
	_, text, _, err := AlertGroup{Key: OwnerCompliance, Items: items}.Render("it", false, "Esempio Energia S.p.A.", at)
	if err != nil {
		t.Fatal(err)
	}
	if want := "… e 1 altra, non elencata qui (elenco completo: cmord exceptions --severity urgent --owner compliance)."; !strings.Contains(text, want) {
		t.Errorf("alert: no %q", want)
	}
}
