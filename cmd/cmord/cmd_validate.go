package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/daemon/xlsxrows"
	"github.com/cmord/cmord/flows"
)

func init() {
	register(&command{name: "validate", summary: "check billing inputs or SII flow files offline (exit 1 on findings)",
		usage: "[--kind K] [--mapping FILE] [--folder NAME] [--on DATE] FILE...", run: runValidate})
}

// runValidate checks files with the daemon's own readers and rules, touching no state:
// an SII flow is recognised by the catalog (name, COD_SERVIZIO/COD_FLUSSO); anything
// else is a billing input of --kind, of --folder's kind, or of the kind whose columns
// its header matches best.
func runValidate(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	kind := fs.String("kind", "", "billing input kind (uscente.morosi, uscente.incassi, ...); default: recognised from the header")
	mappingFile := fs.String("mapping", "", "TOML `FILE` with the column mapping (billing header = our field)")
	folderName := fs.String("folder", "", "use this configured folder `NAME`'s kind, mapping and decimal comma")
	on := fs.String("on", "", "check eligibility as of this request `DATE` (GG/MM/AAAA or AAAA-MM-GG; default today in Europe/Rome)")
	paths, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	if len(paths) == 0 {
		return env.fail(usageError{"name at least one FILE"})
	}
	v, code := newValidation(env, *kind, *mappingFile, *folderName, *on)
	if v == nil {
		return code
	}
	total := 0
	for _, path := range paths {
		errs, err := v.file(ctx, env, path)
		if err != nil {
			return env.fail(err)
		}
		total += errs
	}
	if total > 0 {
		return exitFindings
	}
	return exitOK
}

// validation is what `cmord validate` reads every file with: the catalog, the CMOR
// parameters, the reader options (mapping, decimal comma), the kind named (by --kind,
// --folder or the mapping) and the request date.
type validation struct {
	cat    *flows.Catalog
	params flows.CMORParams
	opt    flows.ReadOptions
	kind   string
	today  flows.Date
}

// newValidation reads the options; nil: refused, code is the exit code.
func newValidation(env *Env, kind, mappingFile, folderName, on string) (*validation, int) {
	v := &validation{kind: kind}
	cat := flows.DefaultCatalog()
	params := flows.DefaultCMORParams()
	opt := flows.ReadOptions{Workbook: xlsxrows.Open}
	var cfg *config.Config
	if env.ConfigPath != "" || os.Getenv("CMORD_CONFIG") != "" || folderName != "" {
		var err error
		if cfg, err = env.Config(); err != nil {
			return nil, env.fail(err)
		}
		if cfg.Catalog.Path != "" {
			if cat, err = flows.LoadCatalog(cfg.Catalog.Path, cfg.Catalog.Mode); err != nil {
				return nil, env.fail(err)
			}
		}
		params = family.CMORParams(cfg.CMOR)
	}
	if folderName != "" {
		var folder *config.Folder
		for i := range cfg.Folders {
			if cfg.Folders[i].Name == folderName {
				folder = &cfg.Folders[i]
			}
		}
		if folder == nil {
			return nil, env.fail(usageError{fmt.Sprintf("no folder %q in %s", folderName, cfg.File)})
		}
		m, err := folder.FolderMapping()
		if err != nil {
			return nil, env.fail(err)
		}
		opt.MappingFile, opt.DecimalComma = m, folder.DecimalComma
		if v.kind == "" {
			v.kind = folder.Kind
		}
	}
	if mappingFile != "" {
		m, err := flows.LoadMapping(mappingFile)
		if err != nil {
			return nil, env.fail(usageError{err.Error()})
		}
		opt.MappingFile = m
		opt.DecimalComma = opt.DecimalComma || m.DecimalComma
		if v.kind == "" {
			v.kind = m.Kind
		}
		// The whole mapping file is checked against its kind before any file is read:
		// a value table, constant or route that does not fit is the mapping's error,
		// at its line, not a finding on every row.
		if in := cat.Input(v.kind); in != nil {
			if fs := in.CheckMappingFile(m); len(fs) > 0 {
				for _, fd := range fs {
					fmt.Fprintln(env.Stderr, fd.String())
				}
				return nil, env.fail(usageError{fmt.Sprintf("%s does not fit %s (%s)", mappingFile, v.kind, plural(len(fs), "problem", "problems"))})
			}
		}
	}
	today := flows.Today(time.Now())
	if on != "" {
		d, err := flows.ParseDate(on)
		if err != nil {
			return nil, env.fail(usageError{"--on: " + err.Error()})
		}
		today = d
	}
	v.cat, v.params, v.opt, v.today = cat, params, opt, today
	return v, 0
}

// file validates one file and prints its findings, practices and summary; it returns
// the errors found, or a usage error that ends the command.
func (v *validation) file(ctx context.Context, env *Env, path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", path, err)
		return 1, nil
	}
	name := filepath.Base(path)
	f := v.cat.IdentifyReader(name, bytes.NewReader(data))
	// recognisedBy says how validate chose the kind when the operator did not
	// (--kind, --folder, a mapping's kind): only then can a wrong guess explain
	// the findings, and only then is --kind worth suggesting.
	recognisedBy := "its name or COD_SERVIZIO/COD_FLUSSO"
	sniffed := flows.SniffFormat(head(data))
	if sniffed != flows.FormatText && f == nil && v.kind == "" {
		if sniffed != flows.FormatXLSX {
			f = v.cat.Inputs[0] // the reader refuses it, saying what it is
		}
	}
	if f == nil || v.kind != "" {
		switch {
		case v.kind != "":
			f = v.cat.Input(v.kind)
			if f == nil {
				return 0, usageError{fmt.Sprintf("unknown input kind %q", v.kind)}
			}
			recognisedBy = ""
		default:
			var columns map[string]string
			if v.opt.MappingFile != nil {
				columns = v.opt.MappingFile.Columns
			}
			header := data
			if sniffed == flows.FormatXLSX {
				header = workbookHeader(data) // the first sheet's header row, as a CSV line
			}
			f = guessInput(v.cat, header, columns)
			recognisedBy = "its header"
		}
	}
	if f == nil {
		fmt.Fprintf(env.Stdout, "%s: rule KIND: not an SII flow by name or COD_SERVIZIO/COD_FLUSSO, and its header has "+
			"under half the mandatory columns of every billing input kind; name the kind with --kind or --folder\n", path)
		return 1, nil
	}
	format := "csv"
	if t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF}), " \t\r\n"); len(t) > 0 && t[0] == '<' {
		format = "xml"
	}
	o := v.opt
	o.FileName = path
	// Findings arrive in reading order, but a case's eligibility findings only
	// when the case ends (at a later row): collect, then print in line order.
	var found []flows.Finding
	collect := func(fd flows.Finding) { found = append(found, fd) }
	var rows int
	var practices []uscente.MorosiCaseReport
	if f.IsInput() && f.Key == config.KindUscenteMorosi && format == "csv" {
		// The daemon's own code: rows grouped by practice whatever their order,
		// each practice decided as the daemon decides it.
		open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		rows, err = uscente.ValidateMorosi(ctx, open, f, o, v.today, v.params, os.TempDir(), collect, func(r uscente.MorosiCaseReport) {
			practices = append(practices, r)
		})
	} else {
		rows, err = flows.ValidateFile(f, bytes.NewReader(data), format, o, collect)
	}
	sortFindings(found)
	errs, warns := 0, 0
	for _, fd := range found {
		if fd.IsWarning() {
			warns++
			fmt.Fprintf(env.Stdout, "%s (warning)\n", fd.String())
			continue
		}
		errs++
		fmt.Fprintln(env.Stdout, fd.String())
	}
	if err != nil {
		fmt.Fprintf(env.Stdout, "%s: %v\n", path, err)
		errs++
	}
	// In the order of their first line, whichever order the daemon takes them in.
	sort.SliceStable(practices, func(i, j int) bool { return practices[i].Lines[0] < practices[j].Lines[0] })
	for _, pr := range practices {
		fmt.Fprintln(env.Stdout, practiceLine(path, pr))
	}
	fmt.Fprintf(env.Stdout, "%s: %s, %s, %s, %s\n", path, f.ID(), plural(rows, "row", "rows"), plural(errs, "error", "errors"),
		plural(warns, "warning", "warnings"))
	if len(practices) > 0 {
		fmt.Fprintf(env.Stdout, "%s: %s\n", path, practiceSummary(practices))
	}
	if errs > 0 && recognisedBy != "" {
		if better := kindsReadingBetter(v.cat, f, data, format, o); len(better) > 0 {
			fmt.Fprintf(env.Stdout, "%s: read as %s, recognised by %s; as %s it reads with fewer errors: if that is its kind, "+
				"name it with --kind %s\n", path, f.ID(), recognisedBy, strings.Join(better, " or "), better[0])
		}
	}
	return errs, nil
}

// practiceOutcome names what the daemon would do with a practice: ready (filed with
// the next SI1.0050), waiting (its request window is not open yet), not eligible
// (nothing to correct), refused (data to correct in billing) or held (rows refused or
// in conflict: correct them in billing and send the practice again).
func practiceOutcome(o flows.MorosiOutcome) string {
	switch {
	case o.Held:
		return "held"
	case o.State == flows.StateReady:
		return "ready"
	case o.State == flows.StateWaitingWindow:
		return "waiting"
	case o.Eligible():
		return "not eligible"
	}
	return "refused"
}

// practiceLine is one practice of a validated extract: the outcome, the rules behind
// it, the amounts and the request window.
func practiceLine(path string, pr uscente.MorosiCaseReport) string {
	o := pr.Outcome
	lines := "line"
	if len(pr.Lines) > 1 {
		lines = "lines"
	}
	s := fmt.Sprintf("%s: practice %s (%s %s): %s", path, flows.CaseLabel(&pr.Case), lines, flows.LinesText(pr.Lines), practiceOutcome(o))
	var rules []string
	for _, f := range o.Refusals {
		if !slices.Contains(rules, f.Rule) {
			rules = append(rules, f.Rule)
		}
	}
	switch {
	case len(rules) > 0:
		s += " (" + strings.Join(rules, ", ") + ")"
	case o.Held:
		s += " (its rows were refused, see above)"
	}
	switch {
	case o.Held:
		s += "; correct the rows in billing and send the whole practice again"
		return s
	case o.Eligible():
		s += ": no correction needed"
	case len(o.Refusals) > 0:
		s += ": correct the data in billing"
	}
	s += fmt.Sprintf("; credit %s, estimate %s", o.Result.Credit, o.Result.Estimate)
	if o.Result.Previous > 0 {
		s += fmt.Sprintf(", previous CMOR %s", o.Result.Previous)
	}
	s += fmt.Sprintf(", CMOR %s", o.Result.CMOR)
	if !o.WindowOpen.IsZero() {
		s += fmt.Sprintf("; request window %s-%s", o.WindowOpen, o.WindowClose)
	}
	return s
}

// practiceSummary counts the practices by outcome.
func practiceSummary(prs []uscente.MorosiCaseReport) string {
	order := []string{"ready", "waiting", "not eligible", "refused", "held"}
	n := map[string]int{}
	for _, pr := range prs {
		n[practiceOutcome(pr.Outcome)]++
	}
	parts := []string{plural(len(prs), "practice", "practices")}
	for _, k := range order {
		if n[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
		}
	}
	return strings.Join(parts, ", ")
}

// sortFindings orders findings by file, line, then field; findings of one field keep
// the order the reader gave them.
func sortFindings(fs []flows.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Field < b.Field
	})
}

// kindsReadingBetter returns the billing input kinds, other than guessed, that read
// the start of the file with every mandatory column present and fewer errors than
// guessed does: the kinds that would explain the findings of a wrong guess. Only the
// reader's own checks count (not eligibility), on the first sampleBytes of the file.
func kindsReadingBetter(cat *flows.Catalog, guessed *flows.Flow, data []byte, format string, opt flows.ReadOptions) []string {
	sample := data
	if len(sample) > sampleBytes {
		sample = sample[:sampleBytes]
		if i := bytes.LastIndexByte(sample, '\n'); i > 0 && format == "csv" {
			sample = sample[:i+1]
		}
	}
	base, _ := readErrors(guessed, sample, format, opt)
	var better []string
	for _, k := range cat.Inputs {
		if k == guessed {
			continue
		}
		if n, headerOK := readErrors(k, sample, format, opt); headerOK && n < base {
			better = append(better, k.Key)
		}
	}
	return better
}

// sampleBytes bounds the re-reading kindsReadingBetter does per candidate kind.
const sampleBytes = 64 << 10

// readErrors counts the errors (not warnings) the reader of kind f finds in data, and
// whether none of them is about the header or root element.
func readErrors(f *flows.Flow, data []byte, format string, opt flows.ReadOptions) (errs int, headerOK bool) {
	rd, err := flows.NewReader(bytes.NewReader(data), f, format, opt)
	if err != nil {
		return 1, false
	}
	headerOK = true
	count := func(fd flows.Finding) {
		if fd.IsWarning() {
			return
		}
		errs++
		switch fd.Rule {
		case flows.RuleCSVHeader, flows.RuleXMLRoot:
			headerOK = false
		}
	}
	for {
		_, fs, err := rd.Next()
		for _, fd := range fs {
			count(fd)
		}
		if err == io.EOF {
			return errs, headerOK
		}
		if err != nil {
			var fd flows.Finding
			if errors.As(err, &fd) {
				count(fd)
			} else {
				errs++
			}
			return errs, headerOK
		}
	}
}

func head(data []byte) []byte {
	return data[:min(len(data), flows.IdentifyHead)]
}

// guessInput picks the billing input kind whose mandatory fields the header covers
// best (after the mapping).
func guessInput(cat *flows.Catalog, data []byte, mapping map[string]string) *flows.Flow {
	line := data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		line = data[:i]
	}
	line = bytes.TrimPrefix(bytes.TrimRight(line, "\r"), []byte{0xEF, 0xBB, 0xBF})
	cols := map[string]bool{}
	for _, h := range strings.Split(string(line), ";") {
		h = strings.Trim(strings.TrimSpace(h), `"`)
		for k, v := range mapping {
			if strings.EqualFold(strings.Join(strings.Fields(k), " "), strings.Join(strings.Fields(h), " ")) {
				h = v
			}
		}
		cols[strings.ToUpper(h)] = true
	}
	var best *flows.Flow
	bestScore := 0.0
	for _, f := range cat.Inputs {
		hit, mand := 0, 0
		for _, fd := range f.Fields {
			if fd.Required == "M" {
				mand++
				if cols[strings.ToUpper(fd.Name)] {
					hit++
				}
			}
		}
		if mand == 0 {
			continue
		}
		if score := float64(hit) / float64(mand); score > bestScore {
			best, bestScore = f, score
		}
	}
	if bestScore < 0.5 {
		return nil
	}
	return best
}

// workbookHeader returns the first non-empty row of a workbook's first sheet as a CSV
// header line, for recognising its kind (nil when it cannot be read: the reader then
// says why).
func workbookHeader(data []byte) []byte {
	rows, err := xlsxrows.Open(bytes.NewReader(data))
	if err != nil {
		return nil
	}
	defer rows.Close()
	for {
		cells, _, err := rows.Next()
		if err != nil {
			return nil
		}
		if strings.TrimSpace(strings.Join(cells, "")) != "" {
			return []byte(strings.Join(cells, ";") + "\n")
		}
	}
}
