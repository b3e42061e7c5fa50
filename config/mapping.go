package config

import (
	"fmt"
	"os"

	"github.com/BurntSushi/toml"
)

// ColumnMapping returns the folder's column mapping (billing header → our field name):
// the inline [folder.mapping] table, or the contents of mapping_file, a TOML file
// holding the same flat table ("Codice POD" = "pod"), or nil when neither is set
// (headers are then our field names). Problems in the file are a *Error with lines.
func (f Folder) ColumnMapping() (map[string]string, error) {
	if f.MappingFile == "" {
		return f.Mapping, nil
	}
	data, err := os.ReadFile(f.MappingFile)
	if err != nil {
		return nil, fmt.Errorf("folder %q mapping_file: %w", f.Name, err)
	}
	return parseMapping(f.MappingFile, data)
}

func parseMapping(name string, data []byte) (map[string]string, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		line := 0
		if pe, ok := err.(toml.ParseError); ok {
			line = pe.Position.Line
		}
		return nil, &Error{Problems: []Problem{{File: name, Line: line, Rule: "syntax", Message: "TOML syntax: " + err.Error()}}}
	}
	d := &decoder{file: name, lines: scanKeyLines(data)}
	// The documented shape is a [mapping] table (as in testdata/inputs/*.mapping.toml);
	// flat top-level pairs are accepted too.
	if t, ok := raw["mapping"].(map[string]any); ok && len(raw) == 1 {
		raw = t
	}
	out := map[string]string{}
	seen := map[string]string{}
	for _, h := range sortedKeys(raw) {
		s, ok := raw[h].(string)
		switch {
		case !ok:
			d.add([]string{h}, "type", "expected a string (our field name), found %s", tomlType(raw[h]))
		case s == "":
			d.add([]string{h}, "mapping", "header %q maps to an empty field name", h)
		case seen[s] != "":
			d.add([]string{h}, "mapping", "headers %q and %q both map to field %q", seen[s], h, s)
		default:
			seen[s] = h
			out[h] = s
		}
	}
	if len(d.probs) > 0 {
		sortProblems(d.probs)
		return nil, &Error{Problems: d.probs}
	}
	return out, nil
}
