package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/cmord/cmord/flows"
)

// ColumnMapping returns the folder's column mapping (billing header → our field name):
// the inline [folder.mapping] table, or the contents of mapping_file, a TOML file
// holding the same flat table ("Codice POD" = "pod"), or nil when neither is set
// (headers are then our field names). Problems in the file are a *Error with lines.
func (f Folder) ColumnMapping() (map[string]string, error) {
	m, err := f.FolderMapping()
	if m == nil {
		return nil, err
	}
	return m.Columns, err
}

// FolderMapping returns the folder's whole mapping: the mapping file with its value
// tables, constants, routes and spend shape, or the inline [folder.mapping] pairs, or
// nil when neither is set.
func (f Folder) FolderMapping() (*flows.Mapping, error) {
	if f.MappingFile == "" {
		return flows.ColumnsOnly(f.Mapping), nil
	}
	m, err := flows.LoadMapping(f.MappingFile)
	if err != nil {
		return nil, fmt.Errorf("folder %q mapping_file: %w", f.Name, err)
	}
	if msg := mappingAgreement(f, m); msg != "" {
		return nil, fmt.Errorf("folder %q %s", f.Name, msg)
	}
	return m, nil
}

// RuleFileMissing is the rule of a file the configuration names that does not exist.
const RuleFileMissing = "file_missing"

// mappingAgreement says what in the mapping file contradicts its folder, or "".
func mappingAgreement(f Folder, m *flows.Mapping) string {
	if m.Kind != "" && m.Kind != f.Kind {
		return fmt.Sprintf("mapping_file %s is for kind %q, the folder receives %q", f.MappingFile, m.Kind, f.Kind)
	}
	if m.DecimalComma && !f.DecimalComma {
		return fmt.Sprintf("mapping_file %s says decimal_comma = true: set decimal_comma = true in the [[folder]] too", f.MappingFile)
	}
	return ""
}

// CheckMappings loads every folder's column mapping the way the daemon does when the
// first file arrives, so that `cmord check` finds a typo before then: problems of a
// mapping file (at its file:line), mapping targets that are not fields of the
// folder's input kind (at the line of the mapping file, or of [folder.mapping] in
// the configuration), and a mapping file that disagrees with its folder on kind or
// decimal_comma. A mapping file that does not exist is a Problem of rule
// RuleFileMissing (the caller may take it as a warning). input returns the catalog's layout of a folder's input (nil: the
// targets are not checked).
func (c *Config) CheckMappings(input func(Folder) *flows.Flow) []Problem {
	var probs []Problem
	var cfgLines keyLines
	configLine := func(parts ...string) int {
		if cfgLines == nil {
			data, _ := os.ReadFile(c.File)
			cfgLines = scanKeyLines(data)
		}
		return cfgLines.line(parts)
	}
	for i, f := range c.Folders {
		el := fmt.Sprintf("folder[%d]", i)
		var layout *flows.Flow
		if input != nil {
			layout = input(f)
		}
		if f.MappingFile == "" {
			if layout == nil {
				continue
			}
			for _, fd := range layout.CheckMapping(f.Mapping) {
				probs = append(probs, Problem{File: c.File, Line: configLine(el, "mapping", fd.Field),
					Key: displayKey([]string{el, "mapping", fd.Field}), Rule: "mapping_target", Message: targetMessage(fd, f.Kind)})
			}
			continue
		}
		m, err := flows.LoadMapping(f.MappingFile)
		if errors.Is(err, fs.ErrNotExist) {
			probs = append(probs, Problem{File: c.File, Line: configLine(el, "mapping_file"), Key: displayKey([]string{el, "mapping_file"}),
				Rule: RuleFileMissing, Message: fmt.Sprintf("%s does not exist", f.MappingFile)})
			continue
		}
		if err != nil {
			probs = append(probs, mappingFileProblems(f.MappingFile, err, f.Name)...)
			continue
		}
		if msg := mappingAgreement(f, m); msg != "" {
			probs = append(probs, Problem{File: c.File, Line: configLine(el, "mapping_file"), Key: displayKey([]string{el, "mapping_file"}),
				Rule: "mapping_file", Message: msg})
		}
		if layout == nil {
			continue
		}
		for _, fd := range layout.CheckMappingFile(m) {
			rule, msg := "mapping_file", fd.Message
			if strings.HasPrefix(msg, "column ") && strings.Contains(msg, "which is not a field of") {
				rule, msg = "mapping_target", targetMessage(flows.Finding{Value: fd.Value}, f.Kind)
			}
			probs = append(probs, Problem{File: f.MappingFile, Line: fd.Line, Key: strconv.Quote(fd.Field), Rule: rule,
				Message: msg + fmt.Sprintf(" (mapping_file of folder %q)", f.Name)})
		}
		if m.Spend != nil && m.Spend.Shape() == flows.SpendShapeTotal && c.CMOR.EstimateMethod == flows.CMOREstimateTop {
			// A total says nothing of the single months: the 4 highest cannot be told.
			probs = append(probs, Problem{File: f.MappingFile, Line: m.Line("spend"), Key: "spend", Rule: "mapping_file",
				Message: fmt.Sprintf("the spend is given as a total, and [cmor] estimate_method = %q needs the single months: give them as columns, or use the average (mapping_file of folder %q)", flows.CMOREstimateTop, f.Name)})
		}
	}
	return probs
}

func targetMessage(fd flows.Finding, kind string) string {
	return fmt.Sprintf("maps to %q, which is not a field of %s (field names: docs/inputs.md, `cmord catalog show`)", fd.Value, kind)
}

// mappingFileLoc matches the "FILE:LINE: " that flows.ParseMapping puts before each
// problem it finds.
var mappingFileLoc = regexp.MustCompile(`^(.*?):(\d+): (.*)$`)

// mappingFileProblems splits flows.LoadMapping's error ("file:line: message; …") into
// one Problem per message, each at its own line of the mapping file.
func mappingFileProblems(path string, err error, folder string) []Problem {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "mapping: ") // LoadMapping's prefix for a file it cannot read
	of := fmt.Sprintf(" (mapping_file of folder %q)", folder)
	var probs []Problem
	for _, part := range strings.Split(msg, "; "+path+":") {
		if len(probs) > 0 {
			part = path + ":" + part
		}
		if m := mappingFileLoc.FindStringSubmatch(part); m != nil && m[1] == path {
			n, _ := strconv.Atoi(m[2])
			probs = append(probs, Problem{File: path, Line: n, Rule: "mapping_file", Message: m[3] + of})
			continue
		}
		probs = append(probs, Problem{File: path, Rule: "mapping_file", Message: part + of})
	}
	return probs
}
