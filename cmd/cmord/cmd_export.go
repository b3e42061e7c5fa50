package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/export"
)

func init() {
	register(&command{name: "export", summary: "export filtered practices as CSV or XLSX, or one practice's dossier as a zip",
		usage: "[filters as for practices] --format csv|xlsx -o FILE [--lang it|en] [--decimal-comma|--decimal-point] | --dossier CODE -o FILE.zip",
		run:   runExport})
}

func runExport(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	pf := addPracticeFilterFlags(fs)
	format := fs.String("format", "", "xlsx (for people: codes stay text) or csv (for programs) (default: from the -o extension, else csv)")
	out := fs.String("o", "", "output `FILE` (required); - writes to stdout (CSV only, or when stdout is not a terminal)")
	lang := fs.String("lang", "it", "headers: it or en")
	decimal := addDecimalFlags(fs)
	limit := fs.Int("limit", 0, "at most this many practices (0 = all)")
	dossier := fs.String("dossier", "", "practice code (CP_UTENTE, CP_GESTORE or #id): write its dossier zip instead")
	noArchive := fs.Bool("no-archive", false, "do not keep a copy of the export in the archive")
	if code, ok := noArgs(env, fs, args, " (filters are flags, e.g. --pod IT001E...)"); !ok {
		return code
	}
	if *out == "" {
		return env.fail(usageError{"-o FILE is required"})
	}
	if *lang != "it" && *lang != "en" {
		return env.fail(usageError{fmt.Sprintf("--lang %q: want it or en", *lang)})
	}
	if err := decimal.check(); err != nil {
		return env.fail(err)
	}
	if *dossier == "" && *format == "" {
		*format = "csv"
		if strings.EqualFold(filepath.Ext(*out), ".xlsx") {
			*format = "xlsx"
		}
	}
	if *dossier != "" && *format != "" {
		return env.fail(usageError{"--dossier writes a zip: --format does not apply"})
	}
	if *dossier == "" && *format != "csv" && *format != "xlsx" {
		return env.fail(usageError{fmt.Sprintf("--format %q: want csv or xlsx", *format)})
	}
	binary := *dossier != "" || *format == "xlsx"
	if *out == "-" && binary && isTerminal(env.Stdout) {
		return env.fail(usageError{"refusing to write a binary file to the terminal: give -o FILE"})
	}
	if *out != "-" {
		if st, err := os.Stat(filepath.Dir(*out)); err != nil || !st.IsDir() {
			return env.fail(usageError{fmt.Sprintf("-o %s: directory %s does not exist", *out, filepath.Dir(*out))})
		}
	}
	f, err := practiceFilter(env, pf)
	if err != nil {
		return env.fail(err)
	}
	if *limit < 0 {
		return env.fail(usageError{fmt.Sprintf("--limit %d: want 0 (all) or more", *limit)})
	}
	f.Limit = *limit
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}

	var practiceID int64
	if *dossier != "" {
		p, err := st.PracticeByCode(ctx, nil, *dossier)
		if errors.Is(err, archive.ErrNotFound) {
			fmt.Fprintf(env.Stderr, "cmord export: no practice %s\n", *dossier)
			return exitFindings
		}
		if err != nil {
			return env.fail(err)
		}
		practiceID = p.ID
		if p.CaseUnreadable() {
			fmt.Fprintf(env.Stderr, "cmord export: warning: practice %s (#%d): its stored case cannot be read (damaged, or its dictionary edited or deleted); "+
				"the dossier carries it as stored in %s and says so in history.txt; run cmord archive verify\n", *dossier, p.ID, export.CaseStoredName)
		}
	}
	var bar *progressBar
	if isTerminal(env.Stderr) {
		bar = &progressBar{w: env.Stderr, what: "practices"}
	}
	write := func(w io.Writer) (int, error) {
		if *dossier != "" {
			return 1, export.Dossier(ctx, st, fmt.Sprintf("#%d", practiceID), w, *lang)
		}
		opt := export.Options{Format: *format, Lang: *lang, DecimalComma: *decimal.comma, DecimalPoint: *decimal.point}
		if bar != nil {
			opt.Progress = bar.update
		}
		return export.Practices(ctx, st, f, w, opt)
	}

	if *out == "-" {
		n, err := write(env.Stdout)
		bar.finish()
		if err != nil {
			return env.fail(err)
		}
		if *dossier == "" {
			fmt.Fprintf(env.Stderr, "%s exported\n", practicesN(n))
		}
		return exitOK
	}
	n, err := writeReplacing(*out, write, bar)
	if err != nil {
		return env.fail(err)
	}
	what := fmt.Sprintf("%s exported to %s", practicesN(n), *out)
	kind := "export." + *format
	if *dossier != "" {
		what, kind = fmt.Sprintf("dossier of practice %s written to %s", *dossier, *out), "export.dossier"
	}
	if !*noArchive {
		// SPEC: every file in or out, exports included, is archived.
		res, err := st.Ingest(ctx, archive.IngestRequest{Source: "export", Name: filepath.Base(*out), Direction: "out", Kind: kind,
			State: archive.StatePublished, Path: *out, At: time.Now(),
			Meta: map[string]string{"rows": strconv.Itoa(n), "by": cliUser(), "args": strings.Join(args, " ")}})
		if err != nil {
			return env.fail(fmt.Errorf("%s, but archiving it failed: %w", what, err))
		}
		what += fmt.Sprintf(" (archived as file #%d)", res.File.ID)
	}
	fmt.Fprintln(env.Stdout, what)
	return exitOK
}

// writeReplacing writes out beside the target and renames it: the file appears whole
// or not at all, and not world-readable (personal data).
func writeReplacing(out string, write func(io.Writer) (int, error), bar *progressBar) (int, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.part")
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", out, err)
	}
	defer os.Remove(tmp.Name())
	n, err := write(tmp)
	bar.finish()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil { // personal data: not world-readable
		return n, err
	}
	return n, os.Rename(tmp.Name(), out)
}

// progressBar draws "[=====>    ] 42% 420000/1000000 practices" on a terminal,
// redrawn at most ten times a second. A nil bar draws nothing.
type progressBar struct {
	w     io.Writer
	what  string
	last  time.Time
	drawn bool
}

func (b *progressBar) update(done, total int) {
	if b == nil || (time.Since(b.last) < 100*time.Millisecond && done != total) {
		return
	}
	b.last = time.Now()
	const width = 30
	filled, pct := width, 100
	if total > 0 {
		filled, pct = width*done/total, 100*done/total
	}
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	fmt.Fprintf(b.w, "\r[%s] %3d%% %d/%d %s", bar, pct, done, total, b.what)
	b.drawn = true
}

func (b *progressBar) finish() {
	if b != nil && b.drawn {
		fmt.Fprintln(b.w)
	}
}

func practicesN(n int) string {
	if n == 1 {
		return "1 practice"
	}
	return strconv.Itoa(n) + " practices"
}
