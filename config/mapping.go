package config

import (
	"fmt"

	"github.com/cmord/cmord/flows"
)

// ColumnMapping returns the folder's column mapping (billing header → our field name):
// the inline [folder.mapping] table, or the contents of mapping_file, a TOML file
// holding the same flat table ("Codice POD" = "pod"), or nil when neither is set
// (headers are then our field names). Problems in the file are a *Error with lines.
func (f Folder) ColumnMapping() (map[string]string, error) {
	if f.MappingFile == "" {
		return f.Mapping, nil
	}
	m, err := flows.LoadMapping(f.MappingFile)
	if err != nil {
		return nil, fmt.Errorf("folder %q mapping_file: %w", f.Name, err)
	}
	if m.Kind != "" && m.Kind != f.Kind {
		return nil, fmt.Errorf("folder %q mapping_file %s is for kind %q, the folder receives %q", f.Name, f.MappingFile, m.Kind, f.Kind)
	}
	if m.DecimalComma && !f.DecimalComma {
		return nil, fmt.Errorf("folder %q mapping_file %s says decimal_comma = true: set decimal_comma = true in the [[folder]] too", f.Name, f.MappingFile)
	}
	return m.Columns, nil
}
