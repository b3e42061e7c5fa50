// Package manuale embeds the Italian manual for operators and compliance
// (manuale.md), so that the binary carries it: `cmord manuale` prints it.
package manuale

import _ "embed"

// Text is the manual, Markdown.
//
//go:embed manuale.md
var Text string
