package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cmord/cmord/config"
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
	cat := flows.DefaultCatalog()
	params := flows.DefaultCMORParams()
	opt := flows.ReadOptions{}
	var cfg *config.Config
	if env.ConfigPath != "" || os.Getenv("CMORD_CONFIG") != "" || *folderName != "" {
		var err error
		if cfg, err = env.Config(); err != nil {
			return env.fail(err)
		}
		if cfg.Catalog.Path != "" {
			if cat, err = flows.LoadCatalog(cfg.Catalog.Path, cfg.Catalog.Mode); err != nil {
				return env.fail(err)
			}
		}
		params = validateParams(cfg.CMOR)
	}
	if *folderName != "" {
		var folder *config.Folder
		for i := range cfg.Folders {
			if cfg.Folders[i].Name == *folderName {
				folder = &cfg.Folders[i]
			}
		}
		if folder == nil {
			return env.fail(usageError{fmt.Sprintf("no folder %q in %s", *folderName, cfg.File)})
		}
		m, err := folder.ColumnMapping()
		if err != nil {
			return env.fail(err)
		}
		opt.Mapping, opt.DecimalComma = m, folder.DecimalComma
		if *kind == "" {
			*kind = folder.Kind
		}
	}
	if *mappingFile != "" {
		m, err := flows.LoadMapping(*mappingFile)
		if err != nil {
			return env.fail(usageError{err.Error()})
		}
		opt.Mapping = m.Columns
		opt.DecimalComma = opt.DecimalComma || m.DecimalComma
		if *kind == "" {
			*kind = m.Kind
		}
	}
	today := flows.Today(time.Now())
	if *on != "" {
		d, err := flows.ParseDate(*on)
		if err != nil {
			return env.fail(usageError{"--on: " + err.Error()})
		}
		today = d
	}
	total := 0
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(env.Stderr, "%s: %v\n", path, err)
			total++
			continue
		}
		name := filepath.Base(path)
		f := cat.Identify(name, head(data))
		if f == nil || *kind != "" {
			switch {
			case *kind != "":
				f = cat.Input(*kind)
				if f == nil {
					return env.fail(usageError{fmt.Sprintf("unknown input kind %q", *kind)})
				}
			default:
				f = guessInput(cat, data, opt.Mapping)
			}
		}
		if f == nil {
			fmt.Fprintf(env.Stdout, "%s: rule KIND: neither a known SII flow nor a billing input kind (use --kind)\n", path)
			total++
			continue
		}
		format := "csv"
		if t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF}), " \t\r\n"); len(t) > 0 && t[0] == '<' {
			format = "xml"
		}
		o := opt
		o.FileName = path
		errs, warns := 0, 0
		rows, err := flows.ValidateFile(f, bytes.NewReader(data), format, o, today, params, func(fd flows.Finding) {
			if fd.IsWarning() {
				warns++
				fmt.Fprintf(env.Stdout, "%s (warning)\n", fd.String())
				return
			}
			errs++
			fmt.Fprintln(env.Stdout, fd.String())
		})
		if err != nil {
			fmt.Fprintf(env.Stdout, "%s: %v\n", path, err)
			errs++
		}
		fmt.Fprintf(env.Stdout, "%s: %s, %s, %s, %s\n", path, f.ID(), plural(rows, "row", "rows"), plural(errs, "error", "errors"),
			plural(warns, "warning", "warnings"))
		total += errs
	}
	if total > 0 {
		return exitFindings
	}
	return exitOK
}

func head(data []byte) []byte {
	if len(data) > 8192 {
		return data[:8192]
	}
	return data
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

func validateParams(c config.CMOR) flows.CMORParams {
	p := flows.DefaultCMORParams()
	p.CreditWindowMonths, p.SpendWindowMonths, p.EstimateMonths = c.CreditWindowMonths, c.SpendWindowMonths, c.EstimateMonths
	p.EstimateMethod, p.MinIndemnity, p.PreviousInsideCap = c.EstimateMethod, c.MinIndemnity, c.PreviousInsideCap
	p.PartialInvoice, p.ExcludeRAI, p.RequireActualReadings = c.PartialInvoice, c.ExcludeRAI, c.RequireActualReadings
	p.WindowOpenMonths, p.WindowRule = c.WindowOpenMonths, c.WindowRule
	if p.Validate() != nil {
		return flows.DefaultCMORParams()
	}
	return p
}
