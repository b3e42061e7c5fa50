package config

import (
	"fmt"
	"strings"

	"github.com/cmord/cmord/flows"
)

// Problem is one thing wrong with a configuration file: where (file and 1-based line;
// 0 when the problem concerns the file as a whole, such as a required key that is
// absent), which key, which rule, and what to do about it.
type Problem struct {
	File    string
	Line    int
	Key     string // "company.piva", "folder[1].settle"
	Rule    string // "unknown_key", "duration", "piva", "required", …
	Message string
}

// String renders "file:line: unknown key "x.y"" for unknown keys and
// "file:line: key: message (rule R)" for everything else.
func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += fmt.Sprintf(":%d", p.Line)
	}
	if loc != "" {
		loc += ": "
	}
	if p.Rule == RuleUnknownKey {
		return loc + p.Message
	}
	if p.Key != "" {
		loc += p.Key + ": "
	}
	return loc + p.Message + " (rule " + p.Rule + ")"
}

// Finding returns the problem as a flows.Finding, the shape every refusal of input
// takes in cmord.
func (p Problem) Finding() flows.Finding {
	return flows.Finding{File: p.File, Line: p.Line, Field: p.Key, Rule: p.Rule, Message: p.Message}
}

// RuleUnknownKey is the rule of a key the configuration does not know (usually a typo).
const RuleUnknownKey = "unknown_key"

// Error is every problem found in a configuration, in file order. Load and Parse
// return it (as *Error) so that one run of `cmord check` shows them all.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Findings returns the problems as flows.Findings.
func (e *Error) Findings() []flows.Finding {
	out := make([]flows.Finding, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.Finding()
	}
	return out
}
