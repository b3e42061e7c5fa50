package flows

import (
	"strings"
	"testing"
)

// Fuzz targets for the identifier validators. Seeds live in code (f.Add) and in
// testdata/fuzz/<FuzzName>/; run one with e.g.
//
//	go test ./flows -run '^$' -fuzz '^FuzzValidateCF$' -fuzztime 30s

func FuzzValidateCF(f *testing.F) {
	for _, s := range []string{
		"RSSMRA85T10A562S", "RSSMRA85T10A56NH", "RSSMRA85T10A562T", "rssmra80a01h501u",
		"RSSMRAURTMLARUNN", "00488410010", "00488410011", "", " ", "RSSMRA85T10A562",
		"RSSMRA85T72A562S", "\xff\xfe", "RSSMRA85T10A562S\u00a0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateCF(s) // must not panic on any input
		norm := NormalizeCF(s)
		if NormalizeCF(norm) != norm {
			t.Fatalf("NormalizeCF not idempotent: %q → %q → %q", s, norm, NormalizeCF(norm))
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ValidateCF(%q) returned an empty error message", s)
			}
			return
		}
		// Valid ⇒ the normalised form is valid, canonical and has a legal length.
		if err := ValidateCF(norm); err != nil {
			t.Fatalf("ValidateCF(%q) ok but normalised %q fails: %v", s, norm, err)
		}
		if len(norm) != 16 && len(norm) != 11 {
			t.Fatalf("ValidateCF(%q) accepted length %d", s, len(norm))
		}
		// Valid ⇒ any other check character is refused.
		last := norm[len(norm)-1]
		alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		if len(norm) == 11 {
			alphabet = "0123456789"
		}
		for i := 0; i < len(alphabet); i++ {
			if alphabet[i] == last {
				continue
			}
			mut := norm[:len(norm)-1] + alphabet[i:i+1]
			if ValidateCF(mut) == nil {
				t.Fatalf("ValidateCF accepts both %q and %q", norm, mut)
			}
		}
	})
}

func FuzzValidatePIVA(f *testing.F) {
	for _, s := range []string{
		"00488410010", "IT00488410010", "it00488410010", "00488410011", "12345678903",
		"ITIT00488410010", "IT", "", "00000000000", "0048841001", "DE123456789", "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidatePIVA(s)
		norm := NormalizePIVA(s)
		if NormalizePIVA(norm) != norm {
			t.Fatalf("NormalizePIVA not idempotent: %q → %q → %q", s, norm, NormalizePIVA(norm))
		}
		if err != nil {
			return
		}
		if len(norm) != 11 || !allDigits(norm) {
			t.Fatalf("ValidatePIVA(%q) accepted non-canonical %q", s, norm)
		}
		if err := ValidatePIVA(norm); err != nil {
			t.Fatalf("ValidatePIVA(%q) ok but normalised %q fails: %v", s, norm, err)
		}
		// With the prefix it is the same number.
		if err := ValidatePIVA("IT" + norm); err != nil {
			t.Fatalf("ValidatePIVA(IT%s) fails: %v", norm, err)
		}
		for d := byte('0'); d <= '9'; d++ {
			if d != norm[10] && ValidatePIVA(norm[:10]+string(d)) == nil {
				t.Fatalf("ValidatePIVA accepts both %q and %q", norm, norm[:10]+string(d))
			}
		}
		// A numeric CF follows the same rule.
		if err := ValidateCF(norm); err != nil {
			t.Fatalf("valid P.IVA %q refused as numeric CF: %v", norm, err)
		}
	})
}

func FuzzValidatePOD(f *testing.F) {
	for _, s := range []string{
		"IT023E00121943", " it001e12345678 ", "IT023E001219431", "IT023E0012194A",
		"IT023E0012194", "FR023E00121943", "", "IT", "IT023E0012194\xff",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, strict bool) {
		warn, err := ValidatePOD(s, strict)
		norm := NormalizePOD(s)
		if NormalizePOD(norm) != norm {
			t.Fatalf("NormalizePOD not idempotent: %q → %q", s, norm)
		}
		if err != nil {
			if warn != "" {
				t.Fatalf("ValidatePOD(%q) returned both an error and a warning", s)
			}
			return
		}
		if strict && warn != "" {
			t.Fatalf("strict ValidatePOD(%q) accepted with a warning %q", s, warn)
		}
		if !strings.HasPrefix(norm, "IT") || (len(norm) != 14 && len(norm) != 15) || norm[5] != 'E' {
			t.Fatalf("ValidatePOD(%q) accepted %q", s, norm)
		}
		if w2, err2 := ValidatePOD(norm, strict); err2 != nil || w2 != warn {
			t.Fatalf("ValidatePOD(%q) = (%q, nil) but normalised gives (%q, %v)", s, warn, w2, err2)
		}
		// Strict acceptance implies lenient acceptance without a warning.
		if strict {
			if w, err := ValidatePOD(norm, false); err != nil || w != "" {
				t.Fatalf("strict accepts %q but lenient gives (%q, %v)", norm, w, err)
			}
		}
	})
}
