package flows

import (
	"errors"
	"fmt"
	"strings"
)

// Identifier validation (brief §6). Every Validate* function first applies the matching
// normalisation (trim, ASCII upper case, and for P.IVA the "IT" prefix), so callers may
// pass raw billing values; store the Normalize* form. Errors say what is wrong and wrap
// one of the ErrID* sentinels (see IdentError) so callers can classify them with errors.Is.

var (
	// ErrIDEmpty: the identifier is missing.
	ErrIDEmpty = errors.New("empty")
	// ErrIDLength: the identifier has the wrong number of characters.
	ErrIDLength = errors.New("wrong length")
	// ErrIDCharacter: a character is not allowed at its position.
	ErrIDCharacter = errors.New("bad character")
	// ErrIDCheck: the check character or digit does not match.
	ErrIDCheck = errors.New("check character mismatch")
)

// IdentError is an identifier refusal: Error() says what is wrong in words a person can
// act on, and errors.Is(err, ErrID…) tells which kind of problem it is.
type IdentError struct {
	Kind error // ErrIDEmpty, ErrIDLength, ErrIDCharacter or ErrIDCheck
	Msg  string
}

func (e *IdentError) Error() string { return e.Msg }
func (e *IdentError) Unwrap() error { return e.Kind }

func identErr(kind error, format string, args ...any) error {
	return &IdentError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// normalizeIdent trims Unicode white space and upper-cases ASCII letters only, so the
// result is idempotent for any input (full Unicode case mapping is not).
func normalizeIdent(s string) string {
	s = strings.TrimSpace(s)
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// charAt describes the character at 0-based index i of s for an error message, with
// its 1-based position as people count.
func idCharAt(s string, i int) string {
	return fmt.Sprintf("character %d (%q)", i+1, s[i])
}

func idUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func idDigit(c byte) bool { return c >= '0' && c <= '9' }

// ---- codice fiscale ----

// NormalizeCF trims and upper-cases a codice fiscale.
func NormalizeCF(s string) string { return normalizeIdent(s) }

// cfOmocodia maps the omocodia substitute letters back to digits: L=0 … V=9.
const cfOmocodia = "LMNPQRSTUV"

// cfMonths are the month letters of a codice fiscale, January to December.
const cfMonths = "ABCDEHLMPRST"

// cfOdd is the "dispari" table: the value of each digit (index 0–9) and of each letter
// (index 10–35) when it stands at an odd 1-based position (0-based even index).
var cfOdd = [36]int{
	1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
	1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // A-J share the digits' values
	2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23, // K-Z
}

// cfDigitPositions are the 0-based indexes that hold digits (or omocodia letters).
var cfDigitPositions = [...]int{6, 7, 9, 10, 12, 13, 14}

// CFCheckChar computes the check character of the first 15 characters of a 16-char
// codice fiscale (digits and upper-case letters only; anything else yields 0).
func CFCheckChar(first15 string) byte {
	if len(first15) < 15 {
		return 0
	}
	sum := 0
	for i := 0; i < 15; i++ {
		c := first15[i]
		var idx int
		switch {
		case idDigit(c):
			idx = int(c - '0')
		case idUpper(c):
			idx = 10 + int(c-'A')
		default:
			return 0
		}
		if i%2 == 0 { // odd 1-based position
			sum += cfOdd[idx]
		} else if idx < 10 { // even position: digits are worth themselves…
			sum += idx
		} else { // …and letters A=0 … Z=25
			sum += idx - 10
		}
	}
	return byte('A' + sum%26)
}

// ValidateCF checks a codice fiscale: either the 16-character code of a natural person
// (shape, omocodia substitutes, month letter, day, check character) or the 11-digit
// numeric code of a legal entity, which follows the partita IVA algorithm.
func ValidateCF(s string) error {
	cf := NormalizeCF(s)
	switch {
	case cf == "":
		return identErr(ErrIDEmpty, "codice fiscale is empty")
	case len(cf) == 11 && allDigits(cf):
		return validatePIVADigits("numeric codice fiscale", cf)
	case len(cf) != 16:
		return identErr(ErrIDLength, "codice fiscale %q has %d characters, expected 16 (person) or 11 digits (legal entity)", cf, len(cf))
	}
	for i := 0; i < 16; i++ {
		c := cf[i]
		switch i {
		case 6, 7, 9, 10, 12, 13, 14:
			if !idDigit(c) && strings.IndexByte(cfOmocodia, c) < 0 {
				return identErr(ErrIDCharacter, "codice fiscale %q: %s must be a digit or an omocodia letter (%s)", cf, idCharAt(cf, i), cfOmocodia)
			}
		case 8:
			if strings.IndexByte(cfMonths, c) < 0 {
				return identErr(ErrIDCharacter, "codice fiscale %q: %s must be a month letter (%s)", cf, idCharAt(cf, i), cfMonths)
			}
		default:
			if !idUpper(c) {
				return identErr(ErrIDCharacter, "codice fiscale %q: %s must be a letter A-Z", cf, idCharAt(cf, i))
			}
		}
	}
	// Day of birth: 01–31 for men, 41–71 for women (day + 40).
	day := cfDigit(cf[9])*10 + cfDigit(cf[10])
	if !(day >= 1 && day <= 31) && !(day >= 41 && day <= 71) {
		return identErr(ErrIDCharacter, "codice fiscale %q: day of birth %02d is neither 01-31 nor 41-71", cf, day)
	}
	if want := CFCheckChar(cf[:15]); cf[15] != want {
		return identErr(ErrIDCheck, "codice fiscale %q: check character is %c, expected %c", cf, cf[15], want)
	}
	return nil
}

// cfDigit decodes a digit position, undoing omocodia.
func cfDigit(c byte) int {
	if idDigit(c) {
		return int(c - '0')
	}
	return strings.IndexByte(cfOmocodia, c)
}

// ---- partita IVA ----

// NormalizePIVA trims, upper-cases and removes an "IT" country prefix when what follows
// is all digits ("IT00488410010" → "00488410010"). It is idempotent.
func NormalizePIVA(s string) string {
	p := normalizeIdent(s)
	if len(p) > 2 && strings.HasPrefix(p, "IT") && allDigits(p[2:]) {
		p = p[2:]
	}
	return p
}

// ValidatePIVA checks an Italian partita IVA: 11 digits after normalisation, with the
// Luhn-like check digit of brief §6.4.
func ValidatePIVA(s string) error {
	p := NormalizePIVA(s)
	if p == "" {
		return identErr(ErrIDEmpty, "partita IVA is empty")
	}
	return validatePIVADigits("partita IVA", p)
}

// PIVACheckDigit computes the check digit of the first 10 digits of a partita IVA.
func PIVACheckDigit(first10 string) byte {
	sum := 0
	for i := 0; i < 10; i++ {
		d := int(first10[i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

func validatePIVADigits(label, p string) error {
	if len(p) != 11 {
		return identErr(ErrIDLength, "%s %q has %d characters, expected 11 digits", label, p, len(p))
	}
	for i := 0; i < len(p); i++ {
		if !idDigit(p[i]) {
			return identErr(ErrIDCharacter, "%s %q: %s is not a digit", label, p, idCharAt(p, i))
		}
	}
	if p == "00000000000" {
		return identErr(ErrIDCharacter, "%s %q is all zeros, a placeholder rather than a number", label, p)
	}
	if want := PIVACheckDigit(p); p[10] != want {
		return identErr(ErrIDCheck, "%s %q: check digit is %c, expected %c", label, p, p[10], want)
	}
	return nil
}

// ---- POD ----

// NormalizePOD trims and upper-cases a POD.
func NormalizePOD(s string) string { return normalizeIdent(s) }

// ValidatePOD checks an electricity POD: "IT" + 3-digit distributor + "E" + 8
// characters. Strict (the default in configuration) wants exactly 14 characters with 8
// digits, as CSEA declares it; lenient also accepts letters in the point part and an
// optional 15th check character, and reports them as a warning instead of an error.
func ValidatePOD(s string, strict bool) (warning string, err error) {
	pod := NormalizePOD(s)
	if pod == "" {
		return "", identErr(ErrIDEmpty, "POD is empty")
	}
	if len(pod) != 14 && (strict || len(pod) != 15) {
		want := "14"
		if !strict {
			want = "14 (or 15)"
		}
		return "", identErr(ErrIDLength, "POD %q has %d characters, expected %s", pod, len(pod), want)
	}
	if pod[0] != 'I' || pod[1] != 'T' {
		return "", identErr(ErrIDCharacter, "POD %q must start with \"IT\"", pod)
	}
	for i := 2; i < 5; i++ {
		if !idDigit(pod[i]) {
			return "", identErr(ErrIDCharacter, "POD %q: %s must be a digit of the distributor code", pod, idCharAt(pod, i))
		}
	}
	if pod[5] != 'E' {
		return "", identErr(ErrIDCharacter, "POD %q: %s must be \"E\"", pod, idCharAt(pod, 5))
	}
	var warnings []string
	for i := 6; i < len(pod); i++ {
		c := pod[i]
		switch {
		case idDigit(c):
		case idUpper(c) && !strict:
			if i < 14 {
				warnings = append(warnings, fmt.Sprintf("%s is a letter where a digit is usual", idCharAt(pod, i)))
			}
		case strict:
			return "", identErr(ErrIDCharacter, "POD %q: %s must be a digit", pod, idCharAt(pod, i))
		default:
			return "", identErr(ErrIDCharacter, "POD %q: %s must be a digit or a letter", pod, idCharAt(pod, i))
		}
	}
	if len(pod) == 15 {
		warnings = append(warnings, "15th character accepted as a check character; CSEA declares POD as 14 characters")
	}
	if len(warnings) > 0 {
		warning = fmt.Sprintf("POD %q: %s", pod, strings.Join(warnings, "; "))
	}
	return warning, nil
}

// ---- PDR ----

// NormalizePDR trims a PDR. Leading zeros are significant: a PDR is a string.
func NormalizePDR(s string) string { return strings.TrimSpace(s) }

// ValidatePDR checks a gas PDR: exactly 14 digits, leading zeros kept.
func ValidatePDR(s string) error {
	pdr := NormalizePDR(s)
	if pdr == "" {
		return identErr(ErrIDEmpty, "PDR is empty")
	}
	for i := 0; i < len(pdr); i++ {
		if !idDigit(pdr[i]) {
			return identErr(ErrIDCharacter, "PDR %q: %s is not a digit", pdr, idCharAt(pdr, i))
		}
	}
	if len(pdr) != 14 {
		hint := ""
		if len(pdr) < 14 {
			hint = " (leading zeros lost in a spreadsheet?)"
		}
		return identErr(ErrIDLength, "PDR %q has %d digits, expected 14%s", pdr, len(pdr), hint)
	}
	return nil
}

// ---- pratica codes ----

// ValidateCPGestore checks a CP_GESTORE, the SII's practice code: always "SII" + 12
// upper-case alphanumerics (15 in all). strict also requires the layout observed on a
// real practice (SII2024A8588941: "SII", 4-digit year, a letter, 7 digits), which is
// not confirmed by a specification (brief §6.5), hence off by default.
func ValidateCPGestore(s string, strict bool) error {
	cp := strings.TrimSpace(s)
	if cp == "" {
		return identErr(ErrIDEmpty, "CP_GESTORE is empty")
	}
	if len(cp) != 15 {
		return identErr(ErrIDLength, "CP_GESTORE %q has %d characters, expected 15", cp, len(cp))
	}
	if !strings.HasPrefix(cp, "SII") {
		return identErr(ErrIDCharacter, "CP_GESTORE %q must start with \"SII\"", cp)
	}
	for i := 3; i < 15; i++ {
		c := cp[i]
		if !idDigit(c) && !idUpper(c) {
			return identErr(ErrIDCharacter, "CP_GESTORE %q: %s must be A-Z or 0-9", cp, idCharAt(cp, i))
		}
		if strict {
			wantLetter := i == 7
			if wantLetter && !idUpper(c) {
				return identErr(ErrIDCharacter, "CP_GESTORE %q: %s must be a letter (layout SII+year+letter+7 digits)", cp, idCharAt(cp, i))
			}
			if !wantLetter && !idDigit(c) {
				return identErr(ErrIDCharacter, "CP_GESTORE %q: %s must be a digit (layout SII+year+letter+7 digits)", cp, idCharAt(cp, i))
			}
		}
	}
	return nil
}

// ValidateCPUtente checks a CP_UTENTE, our own practice code: 1 to 15 characters A-Z
// and 0-9 only (SII file names forbid spaces, '_' and other symbols). It is not
// normalised: we generate it, so anything else is a bug or a bad template.
func ValidateCPUtente(s string) error {
	if s == "" {
		return identErr(ErrIDEmpty, "CP_UTENTE is empty")
	}
	if len(s) > 15 {
		return identErr(ErrIDLength, "CP_UTENTE %q has %d characters, at most 15 allowed", s, len(s))
	}
	for i := 0; i < len(s); i++ {
		if !idDigit(s[i]) && !idUpper(s[i]) {
			return identErr(ErrIDCharacter, "CP_UTENTE %q: %s is not allowed, only A-Z and 0-9", s, idCharAt(s, i))
		}
	}
	return nil
}
