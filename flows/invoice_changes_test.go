package flows

import (
	"slices"
	"strings"
	"testing"
)

// What a later extract of a filed case adds to its claim: new invoices and changed
// amounts are listed; invoices it leaves out, and a plain repeat, are not.
func TestInvoiceChanges(t *testing.T) {
	inv := func(n, amount, unpaid, rai string) Invoice {
		i := Invoice{Number: n, Amount: MustAmount(amount), Unpaid: MustAmount(unpaid)}
		if rai != "" {
			i.RAI = MustAmount(rai)
		}
		return i
	}
	filed := []Invoice{inv("F1", "150.00", "150.00", ""), inv("F2", "120.00", "120.00", "9.00")}
	for _, tc := range []struct {
		name string
		now  []Invoice
		want []string
	}{
		{"the same invoices", filed, nil},
		{"part of them", filed[1:], nil},
		{"one more invoice", []Invoice{filed[0], inv("F3", "141.30", "141.30", "9.00")},
			[]string{"invoice F3 (unpaid 141.30) is not in the filed claim"}},
		{"a changed unpaid amount", []Invoice{inv("F1", "150.00", "100.00", "")},
			[]string{"invoice F1: unpaid 100.00, filed as 150.00"}},
		{"a canone RAI now given, a total changed", []Invoice{inv("F1", "151.00", "150.00", "9.00")},
			[]string{"invoice F1: total 151.00, filed as 150.00", "invoice F1: canone RAI 9.00, filed as 0.00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := InvoiceChanges(filed, tc.now); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// Dates as a spreadsheet writes them with a short format are refused, never completed,
// and the refusal says what the spreadsheet did.
func TestParseDateSpreadsheetHint(t *testing.T) {
	for _, tc := range []struct{ in, hint string }{
		{"01/03/25", "two-digit year"},
		{"1/3/25", "two-digit year"},
		{"1/3/2025", "day and month need two digits"},
		{"01/3/2025", "day and month need two digits"},
		{"2025/03/01", ""},
		{"01.03.2025", ""},
		{"yesterday", ""},
	} {
		_, err := ParseDate(tc.in)
		if err == nil {
			t.Errorf("%q read as a date", tc.in)
			continue
		}
		if tc.hint == "" && strings.Contains(err.Error(), "(") || !strings.Contains(err.Error(), tc.hint) {
			t.Errorf("%q: %v, want hint %q", tc.in, err, tc.hint)
		}
	}
}
