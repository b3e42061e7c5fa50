package flows

import "fmt"

// Finding is one refusal of input: which file, which line, which field, which rule,
// which value, and a message a person can act on. Line is 1-based and counts the
// header row; 0 means the finding concerns the whole file.
type Finding struct {
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Field    string `json:"field,omitempty"`
	Rule     string `json:"rule"`
	Value    string `json:"value,omitempty"`
	Message  string `json:"message"`
	Severity string `json:"severity,omitempty"` // "error" (default) or "warning"
}

func (f Finding) Error() string { return f.String() }

// String renders "file:line: field FIELD: rule RULE: message (value "V")". Every part
// that may come from outside is bounded (Truncate) and escaped (Escape): the line goes
// to terminals, logs, reason files and mails.
func (f Finding) String() string {
	s := Shown(f.File, MaxNameLen)
	if f.Line > 0 {
		s += fmt.Sprintf(":%d", f.Line)
	}
	if s != "" {
		s += ": "
	}
	if f.Field != "" {
		s += "field " + Shown(f.Field, MaxNameLen) + ": "
	}
	s += "rule " + Shown(f.Rule, MaxNameLen) + ": " + Shown(f.Message, MaxMessageLen)
	if f.Value != "" {
		s += fmt.Sprintf(" (value %q)", Truncate(f.Value, MaxValueLen))
	}
	return s
}

// IsWarning reports whether the finding is only a warning (the row still goes on).
func (f Finding) IsWarning() bool { return f.Severity == "warning" }

// Eligibility reports whether the finding is an eligibility refusal: the data are
// right and the case is simply not entitled to a CMOR (a customer never put in mora,
// a closed request window, an AT voltage, an indemnity under 10 euro, ...). Nothing is
// to be corrected in billing, unlike a data error (a malformed or missing value, rows
// that disagree), which says what to correct. A condition whose value is missing
// (no voltage, no gas use) is a data error: billing must give it.
func (f Finding) Eligibility() bool {
	switch f.Rule {
	case "E3", "E4", "E5", "E6", "E7", "E8", "E9", "E10":
		return !f.IsWarning()
	case "E1", "E2":
		return !f.IsWarning() && f.Value != ""
	}
	return false
}

// EligibilityNote is how an eligibility refusal is told apart wherever a person reads
// it (reason files, exceptions, the digest): not eligible, nothing to correct.
const (
	EligibilityNoteIT = "non ammissibile, nessuna correzione necessaria"
	EligibilityNoteEN = "not eligible, no correction needed"
)

// CountFindings sorts findings into refusals (errors) and warnings and counts each:
// the counts a processed file records, and what decides a "with errors" receipt.
func CountFindings(fs []Finding) (errors, warnings int) {
	for _, f := range fs {
		if f.IsWarning() {
			warnings++
		} else {
			errors++
		}
	}
	return errors, warnings
}

// FileLevelErrors are the refusals of the header (line 1) or of the whole file (line
// 0): one exception tells them, not one per missing column.
func FileLevelErrors(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if !f.IsWarning() && f.Line <= 1 {
			out = append(out, f)
		}
	}
	return out
}
