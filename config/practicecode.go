package config

import "github.com/cmord/cmord/flows"

// DefaultPracticeCodeTemplate gives codes like "E250000042": sector, two-digit year,
// seven-digit sequence.
const DefaultPracticeCodeTemplate = "{SECTOR}{YY}{SEQ:7}"

// PracticeCode is the template of our practice codes (CP_UTENTE): at most 15
// alphanumerics, unique forever (brief §6.5). Tokens: {SECTOR} (E or G), {YY}, {YYYY},
// {SEQ:n} (the sequence, zero-padded to n digits, exactly once), {PREFIX:literal};
// uppercase letters and digits outside braces are literal too.
type PracticeCode struct {
	Template string
}

// MaxPracticeCodeLen is the SII limit for CP_UTENTE.
const MaxPracticeCodeLen = flows.MaxCPUtenteLen

// check refuses a template that could produce a code longer than 15 characters, or
// characters the SII does not allow. The one implementation of templates is in flows
// (the daemon renders codes with it), so that what `cmord check` accepts is exactly
// what the daemon can render.
func (p PracticeCode) check() error {
	_, err := flows.ParseCodeTemplate(p.Template)
	return err
}
