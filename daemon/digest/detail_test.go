package digest

import (
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// Amounts reach Italian readers with the decimal comma; what is not an amount of
// cmord's own (a value quoted from the file, a file name, a version, a date) stays.
func TestAmountsIT(t *testing.T) {
	for in, want := range map[string]string{
		"indemnity 6.40 is below the minimum 10.00":                  "indemnity 6,40 is below the minimum 10,00",
		"refund 12.50 to the customer by 02/12/2026.":                "refund 12,50 to the customer by 02/12/2026.",
		"billed in total 30.00, more than the CMOR notified (25.00)": "billed in total 30,00, more than the CMOR notified (25,00)",
		"total -3.10.":          "total -3,10.",
		`holds "6.40" as typed`: `holds "6.40" as typed`,
		"file a_2026.11.csv":    "file a_2026.11.csv",
		"version 1.20.3":        "version 1.20.3",
		"host 10.0.0.10":        "host 10.0.0.10",
		"at 12.11.2026":         "at 12.11.2026",
		"v1.20 and 3.141":       "v1.20 and 3.141",
		"6.40":                  "6,40",
	} {
		if got := AmountsIT(in); got != want {
			t.Errorf("AmountsIT(%q) = %q, want %q", in, got, want)
		}
	}
}

// The Italian digest says the amounts of an item with the decimal comma: the value of
// a computed indemnity (E9) and the amounts of the technical detail; a typed amount
// refused for its form is shown as typed. English keeps the point.
func TestDigestAmountsDecimalComma(t *testing.T) {
	d := &Digest{}
	for _, c := range []struct {
		name, lang string
		ex         archive.Exception
		want       []string
		not        []string
	}{
		{"E9 in Italian", "it", archive.Exception{Kind: "case_not_eligible", Rule: "E9", Field: "IMPORTO_INDENNIZZO", Value: "6.40", Severity: "normal",
			Message: "indemnity 6.40 is below the minimum 10.00"}, []string{"«6,40»", "indemnity 6,40 is below the minimum 10,00"}, []string{"6.40", "10.00"}},
		{"refund in Italian", "it", archive.Exception{Kind: "refund_overdue", Severity: "high",
			Message: "practice E1: refund 12.50 to the customer by 02/12/2026"}, []string{"refund 12,50 to the customer"}, []string{"12.50"}},
		{"typed amount", "it", archive.Exception{Kind: "row_refused", Rule: flows.RuleAmount, Field: "IMPORTO_FATTURA", Value: "1.020,00", Severity: "normal",
			Message: "not an amount"}, []string{"«1.020,00»"}, nil},
		{"E9 in English", "en", archive.Exception{Kind: "case_not_eligible", Rule: "E9", Field: "IMPORTO_INDENNIZZO", Value: "6.40", Severity: "normal",
			Message: "indemnity 6.40 is below the minimum 10.00"}, []string{"6.40", "10.00"}, []string{"6,40"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := d.itemView(Item{Exception: c.ex}, c.lang, masker{}, labels[c.lang])
			got := v.Message + " | " + v.Detail + " | " + v.Where
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("item %q lacks %q", got, w)
				}
			}
			for _, w := range c.not {
				if strings.Contains(got, w) {
					t.Errorf("item %q holds %q", got, w)
				}
			}
		})
	}
}
