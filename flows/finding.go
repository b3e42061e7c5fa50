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

// String renders "file:line: field FIELD: rule RULE: message (value "V")".
func (f Finding) String() string {
	s := f.File
	if f.Line > 0 {
		s += fmt.Sprintf(":%d", f.Line)
	}
	if s != "" {
		s += ": "
	}
	if f.Field != "" {
		s += "field " + f.Field + ": "
	}
	s += "rule " + f.Rule + ": " + f.Message
	if f.Value != "" {
		s += fmt.Sprintf(" (value %q)", f.Value)
	}
	return s
}

// IsWarning reports whether the finding is only a warning (the row still goes on).
func (f Finding) IsWarning() bool { return f.Severity == "warning" }
