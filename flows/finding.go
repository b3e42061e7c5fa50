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
