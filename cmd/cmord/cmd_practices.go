package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"unicode/utf8"
	"unsafe"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/export"
	"github.com/cmord/cmord/flows"
)

func init() {
	register(&command{name: "practices", summary: "list practices matching filters (table, CSV or JSON)",
		usage: "[filters] [--format table|csv|json] [--limit N] [--lang it|en] [--decimal-comma|--decimal-point]", details: practicesJSONHelp, run: runPractices})
	show := &command{name: "practice show", summary: "one practice: amounts, deadlines, requests, whole history, files, exceptions",
		usage: "CODE (CP_UTENTE, CP_GESTORE or #id)", details: practiceShowJSONHelp, run: runPracticeShow}
	register(show)
	// People type the plural they just used for the list.
	alias := *show
	alias.name, alias.hidden = "practices show", true
	register(&alias)
}

// practiceFlags are the filters shared by `cmord practices` and `cmord export`.
type practiceFlags struct {
	role, sector, state, pod, pdr, customer, code, cpGestore, cause    string
	switchFrom, switchTo, requestFrom, requestTo, answerFrom, answerTo string
	amountMin, amountMax, order                                        string
	openExceptions                                                     bool
}

func addPracticeFilterFlags(fs *flag.FlagSet) *practiceFlags {
	pf := &practiceFlags{}
	fs.StringVar(&pf.role, "role", "", "uscente or entrante")
	fs.StringVar(&pf.sector, "sector", "", "E (electricity) or G (gas)")
	fs.StringVar(&pf.state, "state", "", "practice states, comma-separated: ACCEPTED, or as the exports word them, accolta (see cmord catalog show)")
	fs.StringVar(&pf.pod, "pod", "", "POD (electricity point)")
	fs.StringVar(&pf.pdr, "pdr", "", "PDR (gas point); same filter as --pod; leading zeros lost in a spreadsheet are put back")
	fs.StringVar(&pf.customer, "customer", "", "customer codice fiscale or partita IVA")
	fs.StringVar(&pf.code, "code", "", "our practice code CP_UTENTE (also of a follow-up request)")
	fs.StringVar(&pf.cpGestore, "cp-gestore", "", "the SII's practice code CP_GESTORE")
	fs.StringVar(&pf.cause, "cause", "", "last SII cause code")
	for _, d := range []struct {
		p          *string
		name, what string
	}{
		{&pf.switchFrom, "switch-from", "switch date from"}, {&pf.switchTo, "switch-to", "switch date to"},
		{&pf.requestFrom, "request-from", "request date from"}, {&pf.requestTo, "request-to", "request date to"},
		{&pf.answerFrom, "answer-from", "SII answer date from"}, {&pf.answerTo, "answer-to", "SII answer date to"},
	} {
		fs.StringVar(d.p, d.name, "", d.what+" (inclusive), `DATE` as GG/MM/AAAA or AAAA-MM-GG")
	}
	fs.StringVar(&pf.amountMin, "amount-min", "", "CMOR `AMOUNT` at least, e.g. 100,50 or 100.50")
	fs.StringVar(&pf.amountMax, "amount-max", "", "CMOR `AMOUNT` at most")
	fs.BoolVar(&pf.openExceptions, "open-exceptions", false, "only practices with at least one open exception")
	fs.StringVar(&pf.order, "order", "id", "sort by id, switch, request, answer, amount, state or updated; -KEY reverses")
	return pf
}

// filter turns the flags into an archive filter, refusing bad values with a message
// that names the flag.
//
// states are the practice states of the flow catalog in force: --state takes them
// in any case and refuses any other.
func (pf *practiceFlags) filter(states []flows.State) (archive.PracticeFilter, error) {
	var f archive.PracticeFilter
	f.Role = strings.ToLower(strings.TrimSpace(pf.role))
	if f.Role != "" && f.Role != "uscente" && f.Role != "entrante" {
		return f, usageError{fmt.Sprintf("--role %q: want uscente or entrante", pf.role)}
	}
	f.Sector = strings.ToUpper(strings.TrimSpace(pf.sector))
	if f.Sector != "" && f.Sector != "E" && f.Sector != "G" {
		return f, usageError{fmt.Sprintf("--sector %q: want E or G", pf.sector)}
	}
	for _, s := range strings.Split(pf.state, ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.State = append(f.State, s)
		}
	}
	if len(f.State) > 0 {
		if len(states) == 0 {
			return f, usageError{"--state: the flow catalog declares no practice states"}
		}
		for i, s := range f.State {
			st := stateNamed(states, s)
			if st == nil || (f.Role != "" && st.Role != f.Role && st.Role != "both") {
				return f, usageError{unknownStateMessage(states, s, f.Role, st != nil)}
			}
			f.State[i] = st.Name
		}
	}
	pod, pdr := strings.ToUpper(strings.TrimSpace(pf.pod)), strings.TrimSpace(pf.pdr)
	if pod != "" && pdr != "" && pod != pdr {
		return f, usageError{"--pod and --pdr are the same filter (the point): give one"}
	}
	f.Point = pod + pdr
	if pod != "" && pdr != "" {
		f.Point = pod
	}
	f.Point = pointWithZeros(f.Point)
	f.Customer = strings.ToUpper(strings.TrimSpace(pf.customer))
	f.CPUtente = strings.TrimSpace(pf.code)
	f.CPGestore = strings.TrimSpace(pf.cpGestore)
	f.CauseCode = strings.TrimSpace(pf.cause)
	dates := []struct {
		flag string
		in   string
		out  *flows.Date
	}{
		{"switch-from", pf.switchFrom, &f.SwitchFrom}, {"switch-to", pf.switchTo, &f.SwitchTo},
		{"request-from", pf.requestFrom, &f.RequestFrom}, {"request-to", pf.requestTo, &f.RequestTo},
		{"answer-from", pf.answerFrom, &f.AnswerFrom}, {"answer-to", pf.answerTo, &f.AnswerTo},
	}
	for _, d := range dates {
		if s := strings.TrimSpace(d.in); s != "" {
			v, err := flows.ParseDate(s)
			if err != nil {
				return f, usageError{fmt.Sprintf("--%s: %v (want GG/MM/AAAA or AAAA-MM-GG)", d.flag, err)}
			}
			*d.out = v
		}
	}
	for _, r := range []struct {
		name     string
		from, to flows.Date
	}{{"switch", f.SwitchFrom, f.SwitchTo}, {"request", f.RequestFrom, f.RequestTo}, {"answer", f.AnswerFrom, f.AnswerTo}} {
		if !r.from.IsZero() && !r.to.IsZero() && r.to.Before(r.from) {
			return f, usageError{fmt.Sprintf("--%s-to %s is before --%s-from %s", r.name, r.to, r.name, r.from)}
		}
	}
	for _, a := range []struct {
		flag string
		in   string
		out  **flows.Amount
	}{{"amount-min", pf.amountMin, &f.AmountMin}, {"amount-max", pf.amountMax, &f.AmountMax}} {
		if s := strings.TrimSpace(a.in); s != "" {
			v, err := flows.ParseAmount(s, true)
			if err != nil {
				return f, usageError{fmt.Sprintf("--%s: %v (want a decimal like 100,50 or 100.50)", a.flag, err)}
			}
			*a.out = &v
		}
	}
	if f.AmountMin != nil && f.AmountMax != nil && *f.AmountMax < *f.AmountMin {
		return f, usageError{fmt.Sprintf("--amount-max %s is below --amount-min %s", f.AmountMax, f.AmountMin)}
	}
	if pf.openExceptions {
		yes := true
		f.HasOpenException = &yes
	}
	key := strings.TrimPrefix(pf.order, "-")
	if _, ok := archive.PracticeOrders[key]; !ok && key != "" {
		return f, usageError{fmt.Sprintf("--order %q: want id, switch, request, answer, amount, state or updated (prefix - to reverse)", pf.order)}
	}
	f.Order = pf.order
	return f, nil
}

// stateNamed finds a catalog state by name, in any case, or by the words the exports,
// receipts and digest show for it, in Italian or English ("accolta", "accolta
// (ACCEPTED)", "accepted"): what a person copies from a spreadsheet.
func stateNamed(states []flows.State, name string) *flows.State {
	name = strings.Join(strings.Fields(name), " ")
	for i := range states {
		if strings.EqualFold(states[i].Name, name) {
			return &states[i]
		}
	}
	for i := range states {
		for _, lang := range []string{"it", "en"} {
			label := digest.StateName(states[i].Name, lang) // "accolta (ACCEPTED)"
			words, _, _ := strings.Cut(label, " ("+states[i].Name+")")
			if label != states[i].Name && (strings.EqualFold(label, name) || strings.EqualFold(words, name)) {
				return &states[i]
			}
		}
	}
	return nil
}

// pointWithZeros gives a PDR back the leading zeros a spreadsheet took from it: a
// point of digits only, shorter than a PDR's 14, is read as that PDR ("881234567890"
// copied from a CSV opened in Excel is 00881234567890). A POD starts with IT.
func pointWithZeros(point string) string {
	if point == "" || len(point) >= 14 || strings.Trim(point, "0123456789") != "" {
		return point
	}
	return strings.Repeat("0", 14-len(point)) + point
}

// unknownStateMessage says why --state NAME is refused and lists the valid states,
// per role (of the --role given, if any).
func unknownStateMessage(states []flows.State, name, role string, otherRole bool) string {
	var b strings.Builder
	if otherRole {
		fmt.Fprintf(&b, "--state %q: not a state of %s practices;", name, role)
	} else {
		fmt.Fprintf(&b, "--state %q: unknown practice state;", name)
	}
	for _, r := range []string{"uscente", "entrante"} {
		if role != "" && role != r {
			continue
		}
		var names []string
		for _, s := range states {
			if s.Role == r || s.Role == "both" || s.Role == "" {
				names = append(names, s.Name)
			}
		}
		fmt.Fprintf(&b, " %s: %s;", r, strings.Join(names, ", "))
	}
	return strings.TrimSuffix(b.String(), ";")
}

// practiceFilter checks the filter flags, the states against the catalog in force.
func practiceFilter(env *Env, pf *practiceFlags) (archive.PracticeFilter, error) {
	var states []flows.State
	if strings.TrimSpace(pf.state) != "" {
		cat, err := env.Catalog()
		if err != nil {
			return archive.PracticeFilter{}, err
		}
		states = cat.States
	}
	return pf.filter(states)
}

func runPractices(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	pf := addPracticeFilterFlags(fs)
	format := fs.String("format", "table", "table, csv or json (fields below)")
	limit := fs.Int("limit", -1, "at most this many practices (default 100 for table, all for csv and json; 0 = all)")
	lang := fs.String("lang", "it", "CSV headers and separators: it (';', amounts as 1234,50) or en (',', amounts as 1234.50)")
	decimal := addDecimalFlags(fs)
	if code, ok := noArgs(env, fs, args, " (filters are flags, e.g. --pod IT001E...)"); !ok {
		return code
	}
	f, err := practiceFilter(env, pf)
	if err != nil {
		return env.fail(err)
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return env.fail(usageError{fmt.Sprintf("--format %q: want table, csv or json", *format)})
	}
	if *lang != "it" && *lang != "en" {
		return env.fail(usageError{fmt.Sprintf("--lang %q: want it or en", *lang)})
	}
	if err := decimal.check(); err != nil {
		return env.fail(err)
	}
	if (*decimal.comma || *decimal.point) && *format != "csv" {
		return env.fail(usageError{fmt.Sprintf("--decimal-comma and --decimal-point apply to --format csv, not %s", *format)})
	}
	if *limit < -1 {
		return env.fail(usageError{fmt.Sprintf("--limit %d: want 0 (all) or more", *limit)})
	}
	f.Limit = *limit
	if f.Limit < 0 {
		f.Limit = 0
		if *format == "table" {
			f.Limit = 100
		}
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	if *format == "json" {
		if _, err := writePracticesJSON(ctx, st, f, env.Stdout); err != nil {
			return env.fail(err)
		}
		return exitOK
	}
	if *format != "table" {
		if _, err := export.Practices(ctx, st, f, env.Stdout, export.Options{Format: *format, Lang: *lang,
			DecimalComma: *decimal.comma, DecimalPoint: *decimal.point}); err != nil {
			return env.fail(err)
		}
		return exitOK
	}
	ps, err := st.QueryPractices(ctx, f)
	if err != nil {
		return env.fail(err)
	}
	if len(ps) == 0 {
		fmt.Fprintln(env.Stdout, "no practices match")
		return exitOK
	}
	open, err := st.OpenExceptionCounts(ctx)
	if err != nil {
		return env.fail(err)
	}
	t := newTable("CODE", "ROLE", "S", "POD/PDR", "CUSTOMER", "SWITCH", "STATE", "CMOR", "REQUEST", "ANSWER", "CAUSE", "EXC", "NAME")
	t.rightAlign("CMOR", "EXC")
	// When the terminal is narrow, these go first (most droppable first).
	t.dropOrder("NAME", "REQUEST", "CAUSE", "ROLE", "ANSWER", "S")
	for _, p := range ps {
		code := p.CPUtente
		if code == "" {
			code = p.CPGestore
		}
		exc := ""
		if n := open[p.ID]; n > 0 {
			exc = strconv.Itoa(n)
		}
		t.add(code, p.Role, p.Sector, p.Point, p.CustomerID, p.SwitchDate.String(), p.State, p.CMOR.Format(','),
			p.RequestDate.String(), p.AnswerDate.String(), p.CauseCode, exc, p.CustomerName)
	}
	t.render(env.Stdout, terminalWidth(env.Stdout))
	if f.Limit > 0 && len(ps) == f.Limit {
		if total, err := st.CountPractices(ctx, f); err == nil && total > len(ps) {
			fmt.Fprintf(env.Stdout, "(first %d of %d practices: use --limit 0 for all, or --format csv)\n", len(ps), total)
		}
	}
	return exitOK
}

// table renders aligned columns and, on a terminal narrower than the table, drops the
// least important columns and truncates the last one instead of wrapping lines.
type table struct {
	head  []string
	rows  [][]string
	right map[int]bool
	drop  []int
}

func newTable(head ...string) *table { return &table{head: head, right: map[int]bool{}} }

func (t *table) col(name string) int {
	for i, h := range t.head {
		if h == name {
			return i
		}
	}
	panic("table: no column " + name)
}

func (t *table) rightAlign(names ...string) {
	for _, n := range names {
		t.right[t.col(n)] = true
	}
}

func (t *table) dropOrder(names ...string) {
	for _, n := range names {
		t.drop = append(t.drop, t.col(n))
	}
}

// add appends a row. Every cell is escaped: names, values and the SII's texts come
// from outside, and a control character would reach the terminal.
func (t *table) add(cells ...string) {
	for i, c := range cells {
		cells[i] = flows.Escape(c)
	}
	t.rows = append(t.rows, cells)
}

// render writes the table; width 0 means no limit (not a terminal).
func (t *table) render(w io.Writer, width int) {
	const gap = 2
	widths := make([]int, len(t.head))
	for i, h := range t.head {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	keep := make([]bool, len(t.head))
	for i := range keep {
		keep[i] = true
	}
	total := func() int {
		n := 0
		for i, k := range keep {
			if k {
				n += widths[i] + gap
			}
		}
		return n - gap
	}
	if width > 0 {
		for _, d := range t.drop {
			if total() <= width {
				break
			}
			keep[d] = false
		}
	}
	var cols []int
	for i, k := range keep {
		if k {
			cols = append(cols, i)
		}
	}
	// The last column may still be too wide: truncate it with an ellipsis.
	lastMax := -1
	if width > 0 && total() > width {
		last := cols[len(cols)-1]
		lastMax = max(widths[last]-(total()-width), 4)
		widths[last] = min(widths[last], lastMax)
	}
	line := func(cells []string) {
		var b strings.Builder
		for j, i := range cols {
			c := cells[i]
			if j == len(cols)-1 && lastMax > 0 && utf8.RuneCountInString(c) > lastMax {
				c = string([]rune(c)[:lastMax-1]) + "…"
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if t.right[i] {
				b.WriteString(pad + c)
			} else if j < len(cols)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
			if j < len(cols)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.head)
	for _, r := range t.rows {
		line(r)
	}
}

// terminalWidth is the width of the terminal w writes to, or 0 (no limit) when w is
// not a terminal, so that piped output is never cut. $COLUMNS wins when set.
func terminalWidth(w io.Writer) int {
	if !isTerminal(w) {
		return 0
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 20 {
		return n
	}
	if f, ok := w.(*os.File); ok {
		if n := ttyColumns(f); n > 20 {
			return n
		}
	}
	return 100
}

func runPracticeShow(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	format := fs.String("format", "text", "text or json (fields below)")
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return env.fail(usageError{"expects one practice code: CP_UTENTE, CP_GESTORE or #id"})
	}
	if *format != "text" && *format != "json" {
		return env.fail(usageError{fmt.Sprintf("--format %q: want text or json", *format)})
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	p, err := st.PracticeByCode(ctx, nil, pos[0])
	if errors.Is(err, archive.ErrNotFound) {
		fmt.Fprintf(env.Stderr, "cmord %s: no practice %s (try cmord practices --code/--cp-gestore/--pod)\n", env.command.name, pos[0])
		return exitFindings
	}
	if err != nil {
		return env.fail(err)
	}
	history, err := st.PracticeHistory(ctx, p.ID)
	if err != nil {
		return env.fail(err)
	}
	links, err := st.PracticeFiles(ctx, p.ID)
	if err != nil {
		return env.fail(err)
	}
	requests, err := st.Requests(ctx, nil, p.ID, "", "", 0)
	if err != nil {
		return env.fail(err)
	}
	yes := true
	exceptions, err := st.Exceptions(ctx, archive.ExceptionFilter{PracticeID: p.ID, Open: &yes})
	if err != nil {
		return env.fail(err)
	}
	files := map[int64]archive.File{}
	for _, l := range links {
		files[l.File.ID] = l.File
	}
	for _, h := range history {
		if _, ok := files[h.FileID]; h.FileID != 0 && !ok {
			if f, err := st.GetFile(ctx, h.FileID); err == nil {
				files[f.ID] = f
			}
		}
	}
	if *format == "json" {
		return env.done(writePracticeShowJSON(env.Stdout, p, history, links, files, requests, exceptions))
	}
	var buf bytes.Buffer
	printPractice(&buf, p, history, links, files, requests, exceptions)
	env.Stdout.Write(trimTrailingSpace(buf.Bytes()))
	return exitOK
}

func printPractice(w io.Writer, p archive.Practice, history []archive.HistoryEntry, links []archive.PracticeFile,
	files map[int64]archive.File, requests []archive.Request, exceptions []archive.Exception) {
	code := p.CPUtente
	if code == "" {
		code = p.CPGestore
	}
	fmt.Fprintf(w, "Practice %s (#%d) — %s, sector %s, state %s since %s\n\n", code, p.ID, p.Role, p.Sector, p.State, rome(p.StateSince))
	if p.CaseUnreadable() {
		fmt.Fprintf(w, "WARNING: the stored case (the billing rows this practice was decided from) cannot be read: damaged, or its\n"+
			"dictionary edited or deleted. Run cmord archive verify; cmord export --dossier %s keeps it as stored.\n\n", code)
	}
	kv := func(tw *tabwriter.Writer, k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, flows.Escape(v)) // customer names, SII texts: from outside
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	kv(tw, "CP_UTENTE", p.CPUtente)
	kv(tw, "CP_GESTORE", p.CPGestore)
	kv(tw, "POD/PDR", p.Point)
	kv(tw, "customer", strings.TrimSpace(p.CustomerID+"  "+p.CustomerName))
	kv(tw, "switch date", p.SwitchDate.String())
	kv(tw, "company", p.CompanyPIVA)
	if p.LinkedID != 0 {
		kv(tw, "linked practice", fmt.Sprintf("#%d", p.LinkedID))
	}
	if p.CauseCode != "" || p.Motivation != "" {
		kv(tw, "last SII answer", strings.TrimSpace("cause "+p.CauseCode+"  "+p.Motivation))
	}
	tw.Flush()

	printPracticeAmounts(w, p)

	fmt.Fprintln(w, "\nDeadlines and dates")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	n := 0
	for _, d := range []struct {
		k string
		v flows.Date
	}{{"request window opens", p.WindowOpen}, {"request window closes", p.WindowClose}, {"suspension term", p.SuspensionTerm},
		{"request sent", p.RequestDate}, {"SII answer", p.AnswerDate}} {
		if !d.v.IsZero() {
			kv(tw, d.k, d.v.String())
			n++
		}
	}
	tw.Flush()
	if n == 0 {
		fmt.Fprintln(w, "  none yet")
	}

	printPracticeRequests(w, requests)

	fmt.Fprintln(w, "\nHistory")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT (Rome)\tFROM → TO\tFLOW\tFILE:LINE\tNOTE")
	for _, h := range history {
		from := h.From
		if from == "" {
			from = "·"
		}
		file := ""
		if h.FileID != 0 {
			file = fmt.Sprintf("#%d %s", h.FileID, flows.Escape(files[h.FileID].Name))
			if h.Line != 0 {
				file += ":" + strconv.Itoa(h.Line)
			}
		}
		note := h.Note
		if h.CauseCode != "" {
			note = strings.TrimSpace("cause " + h.CauseCode + " " + note)
		}
		fmt.Fprintf(tw, "  %s\t%s → %s\t%s\t%s\t%s\n", rome(h.At), from, h.To, h.Flow, file, flows.Escape(note))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nFiles")
	if len(links) == 0 {
		fmt.Fprintln(w, "  none")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tDIR\tRELATION\tLINES\tKIND\tRECEIVED (Rome)\tSHA256\tNAME")
		for _, r := range practiceFileRows(links) {
			fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.File.ID, r.File.Direction, strings.Join(r.Relations, ", "),
				joinLines(r.Lines), r.File.Kind, rome(r.File.ReceivedAt), shortHash(r.File.Hash), flows.Escape(r.File.Name))
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nOpen exceptions")
	if len(exceptions) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range exceptions {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\n", e.ID, e.Severity, e.Kind, flows.Escape(e.Message), flows.Escape(e.Action))
	}
	tw.Flush()
}

// printPracticeAmounts is the "Amounts (EUR)" section of a practice.
func printPracticeAmounts(w io.Writer, p archive.Practice) {
	fmt.Fprintln(w, "\nAmounts (EUR)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	type labelled struct {
		k string
		v flows.Amount
	}
	amounts := []labelled{{"credit", p.Credit}, {"4-month estimate", p.Estimate}, {"previous CMOR", p.Previous}, {"CMOR", p.CMOR}}
	if p.Role == "entrante" {
		// The credit and the 4-month estimate are the uscente's computation: the SII's
		// notice gives the entrante the CMOR alone, so 0,00 there read as "no credit".
		amounts = []labelled{{"previous CMOR", p.Previous}, {"CMOR", p.CMOR}, {"charged", p.Charged}, {"collected", p.Collected}}
	}
	for _, a := range amounts {
		fmt.Fprintf(tw, "  %s\t%s\t\n", a.k, a.v.Format(','))
	}
	tw.Flush()
}

// printPracticeRequests is the "Requests" section of a practice (none: no section).
func printPracticeRequests(w io.Writer, requests []archive.Request) {
	if len(requests) == 0 {
		return
	}
	fmt.Fprintln(w, "\nRequests")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FLOW\tCP_UTENTE\tSTATE\tSENT (Rome)\tANSWERED (Rome)\tCAUSE\tFILE")
	for _, r := range requests {
		file := ""
		if r.FileID != 0 {
			file = fmt.Sprintf("#%d", r.FileID)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Flow, flows.Escape(r.CPUtente), r.State, rome(r.SentAt), rome(r.AnsweredAt),
			flows.Escape(strings.TrimSpace(r.CauseCode+" "+r.Motivation)), file)
	}
	tw.Flush()
}

// trimTrailingSpace drops the padding tabwriter leaves after a short last cell.
func trimTrailingSpace(b []byte) []byte {
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimRight(l, " ")
	}
	return bytes.Join(lines, []byte("\n"))
}

// ttyColumns asks the terminal behind f for its width (TIOCGWINSZ); 0 if it cannot.
func ttyColumns(f *os.File) int {
	var ws struct{ rows, cols, x, y uint16 }
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws)))
	if errno != 0 {
		return 0
	}
	return int(ws.cols)
}

// decimalFlags are --decimal-comma and --decimal-point of the CSV outputs (practices,
// export). The separator follows --lang (export.Options.CSVSeparators): the help says
// so, or an Italian user adds --decimal-comma believing the default is a point.
type decimalFlags struct{ comma, point *bool }

func addDecimalFlags(fs *flag.FlagSet) decimalFlags {
	return decimalFlags{
		comma: fs.Bool("decimal-comma", false, "CSV amounts as 1234,50 whatever --lang (already so with --lang it, the default)"),
		point: fs.Bool("decimal-point", false, "CSV amounts as 1234.50 whatever --lang (already so with --lang en)"),
	}
}

// check refuses the two flags together.
func (d decimalFlags) check() error {
	if *d.comma && *d.point {
		return usageError{"--decimal-comma and --decimal-point: choose one"}
	}
	return nil
}
