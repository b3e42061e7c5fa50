// Package receipt writes what an operator reads after dropping a file: the receipt
// beside a file taken (done/NAME.esito.txt, optionally .esito.html) saying, per
// practice, what became of it, and the body of the reason file beside a file refused
// (rejected/NAME.reason.txt). Italian by default ([general] lang), English with "en".
//
// A receipt is built from the archive after the file's transaction has committed
// (the practices the file touched, in their state now) and from the handler's findings;
// a restart that finds the file already processed rebuilds it from the archive alone
// (findings from the file's exceptions), so kill -9 at any point still leaves a receipt.
package receipt

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/flows"
)

// Suffixes of the receipt files written beside a file in done/.
const (
	TextSuffix = ".esito.txt"
	HTMLSuffix = ".esito.html"
)

// Outcome of one practice (or refused case) of a file.
type Outcome string

const (
	Filed       Outcome = "filed"        // eligible, in the window: goes into the next request flow
	Held        Outcome = "held"         // eligible, waits for its request window to open
	NotEligible Outcome = "not_eligible" // fails an eligibility rule: nothing to correct
	ToCorrect   Outcome = "to_correct"   // refused: data to correct in billing
	Updated     Outcome = "updated"      // an existing practice updated (payments, annulments, …)
)

// outcomeOrder lists the outcomes as the receipt groups them: what needs a person first.
var outcomeOrder = []Outcome{ToCorrect, NotEligible, Held, Filed, Updated}

// Entry is one practice, or one refused case (no practice), of the file.
type Entry struct {
	PracticeID int64 // 0 for a case refused before it became a practice
	Line       int
	LastLine   int // the practice's last line in the file, when it has more than one
	Lines      int // how many lines of the file are the practice's (0 or 1: Line alone)
	CPUtente   string
	Point      string
	Customer   string
	State      string
	WindowOpen flows.Date
	Outcome    Outcome
	Errors     []flows.Finding
	Warnings   []flows.Finding
	Pending    []string // flows of the practice's requests waiting for the next build (Pending)
}

// Receipt is what became of one file taken.
type Receipt struct {
	File       string // name in done/
	Folder     string
	Kind       string
	At         time.Time
	Rows       int // rows read (from the file's meta), 0 if unknown
	Entries    []Entry
	FileLevel  []flows.Finding // header or whole-file findings (line <= 1)
	Warnings   int
	NotListed  int // findings the handler counted but did not keep (huge files)
	Rebuilt    bool
	totals     map[Outcome]int
	warnLoose  []flows.Finding // warnings on lines without an entry
	errorLines int
}

// Build makes the receipt of file from the practices it touched and its findings.
func Build(file archive.File, folder string, practices []archive.PracticeAt, findings []flows.Finding, at time.Time) Receipt {
	r := Receipt{File: file.Name, Folder: folder, Kind: file.Kind, At: at, totals: map[Outcome]int{}}
	fmt.Sscan(file.Meta["rows"], &r.Rows)
	fmt.Sscan(file.Meta["findings_not_listed"], &r.NotListed)
	errs, warns := map[int][]flows.Finding{}, map[int][]flows.Finding{}
	for _, f := range findings {
		switch {
		case f.IsWarning():
			r.Warnings++
			if f.Rule == flows.RuleWindowWait {
				continue // the entry says it: held to the window
			}
			warns[f.Line] = append(warns[f.Line], f)
		case f.Line <= 1:
			r.FileLevel = append(r.FileLevel, f)
		default:
			errs[f.Line] = append(errs[f.Line], f)
		}
	}
	byLine := map[int]bool{}
	for _, p := range practices {
		e := Entry{PracticeID: p.ID, Line: p.Line, LastLine: p.LastLine, Lines: p.Lines, CPUtente: p.CPUtente, Point: p.Point, Customer: p.CustomerID, State: p.State, WindowOpen: p.WindowOpen}
		e.Errors, e.Warnings = errs[p.Line], warns[p.Line]
		byLine[p.Line] = true
		e.Outcome = practiceOutcome(file.Kind, p.State, e.Errors)
		r.add(e)
	}
	for line, fs := range errs {
		if byLine[line] {
			continue
		}
		e := Entry{Line: line, Errors: fs, Warnings: warns[line], Outcome: refusalOutcome(fs)}
		for _, f := range fs { // a case refused whole names its point by its key
			if point, customer, ok := keyParts(f.Value); ok {
				e.Point, e.Customer = point, customer
			}
		}
		byLine[line] = true
		r.add(e)
	}
	for line, fs := range warns {
		if !byLine[line] {
			r.warnLoose = append(r.warnLoose, fs...)
		}
	}
	sort.Slice(r.warnLoose, func(i, j int) bool { return r.warnLoose[i].Line < r.warnLoose[j].Line })
	sort.SliceStable(r.Entries, func(i, j int) bool {
		a, b := r.Entries[i], r.Entries[j]
		if oa, ob := rank(a.Outcome), rank(b.Outcome); oa != ob {
			return oa < ob
		}
		return a.Line < b.Line
	})
	return r
}

// Unnamed lists the lines of the cases refused before they became practices (no
// practice, no point known from a finding): the caller may read their point and
// customer back from the archived file (Name).
func (r Receipt) Unnamed() map[int]bool {
	out := map[int]bool{}
	for _, e := range r.Entries {
		if e.CPUtente == "" && e.Point == "" {
			out[e.Line] = true
		}
	}
	return out
}

// Ident is what a person knows a case by.
type Ident struct{ Point, Customer string }

// Name gives the entries of those lines their point and customer.
func (r *Receipt) Name(ids map[int]Ident) {
	for i := range r.Entries {
		if id, ok := ids[r.Entries[i].Line]; ok && r.Entries[i].Point == "" {
			r.Entries[i].Point, r.Entries[i].Customer = id.Point, id.Customer
		}
	}
}

func (r *Receipt) add(e Entry) {
	r.Entries = append(r.Entries, e)
	r.totals[e.Outcome]++
}

// Total is how many entries of the receipt have outcome o.
func (r Receipt) Total(o Outcome) int { return r.totals[o] }

func rank(o Outcome) int {
	for i, x := range outcomeOrder {
		if x == o {
			return i
		}
	}
	return len(outcomeOrder)
}

// practiceOutcome reads what a file did to a practice from the state it is in now.
func practiceOutcome(kind, state string, errs []flows.Finding) Outcome {
	switch {
	case len(errs) > 0 || state == flows.StateDraft:
		return refusalOutcome(errs)
	case kind != "uscente.morosi":
		return Updated
	case state == flows.StateWaitingWindow:
		return Held
	}
	return Filed // READY, or already on its way (sent since)
}

// refusalOutcome: not eligible when every error is an eligibility rule, else to correct.
func refusalOutcome(errs []flows.Finding) Outcome {
	if len(errs) == 0 {
		return ToCorrect
	}
	for _, f := range errs {
		if !f.Eligibility() {
			return ToCorrect
		}
	}
	return NotEligible
}

// keyParts reads an uscente case key "U|POD|CF|switch" (CASE-ROWS, SI-D01 values).
func keyParts(v string) (point, customer string, ok bool) {
	parts := strings.Split(v, "|")
	if len(parts) != 4 || parts[0] != "U" {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// FindingsFromExceptions turns the row exceptions raised for a file back into findings:
// what a restart has when the handler's in-memory result is gone.
func FindingsFromExceptions(es []archive.Exception) []flows.Finding {
	es = append([]archive.Exception(nil), es...)
	sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID }) // the order they were raised in
	var out []flows.Finding
	for _, e := range es {
		// Rows refused for their data, and cases refused as not eligible (their own kind
		// since eligibility is told apart from data errors).
		if (e.Kind != "row_refused" && e.Kind != "case_not_eligible") || e.Rule == "MORE" {
			continue
		}
		out = append(out, flows.Finding{Line: e.Line, Field: e.Field, Rule: e.Rule, Value: e.Value, Message: findingMessage(e)})
	}
	return out
}

// findingMessage is the finding's own message from a row exception's, which is the
// finding said whole (flows.Finding.String: "f.csv:12: field X: rule E3: MESSAGE
// (value \"V\")"): a receipt rebuilt after a restart says the finding's facts as the
// uninterrupted run's does.
func findingMessage(e archive.Exception) string {
	msg := e.Message
	marker := "rule " + flows.Shown(e.Rule, flows.MaxNameLen) + ": "
	i := strings.Index(msg, marker)
	if i < 0 {
		return msg
	}
	msg = msg[i+len(marker):]
	if e.Value != "" {
		msg = strings.TrimSuffix(msg, fmt.Sprintf(" (value %q)", flows.Truncate(e.Value, flows.MaxValueLen)))
	}
	return msg
}

// ---- words ----

type words struct {
	title, folder, at, rows, summary, listed, none, validate, more, fileLevel, warnings, rebuilt, notListed string
	outcome                                                                                                 map[Outcome]string
	heading                                                                                                 map[Outcome]string
	held, line, lines, pending, field, value, rule, notEligible, correct, warning, state                    string
}

var lexicon = map[string]words{
	"it": {
		title: "Esito del file", folder: "Cartella", at: "Elaborato il", rows: "Righe lette",
		summary: "Riepilogo", none: "Nessuna pratica in questo file.",
		validate:  "Per rivedere il file riga per riga prima di inviarlo di nuovo: cmord validate --folder %s FILE",
		more:      "… e altre %d pratiche, non elencate qui (cmord practices le elenca tutte).",
		fileLevel: "Problemi dell'intestazione o dell'intero file", warnings: "Avvisi (il file è stato acquisito comunque)",
		rebuilt:   "Ricevuta ricostruita dall'archivio dopo un riavvio: gli avvisi non sono elencati.",
		notListed: "Altri %d rilievi non elencati uno per uno: vedere cmord validate.",
		outcome: map[Outcome]string{Filed: "accettate, da inviare al SII", Held: "in attesa dell'apertura della finestra",
			NotEligible: "non ammissibili, nessuna correzione necessaria", ToCorrect: "rifiutate, da correggere in fatturazione",
			Updated: "pratiche aggiornate"},
		heading: map[Outcome]string{Filed: "Accettate: entrano nel prossimo flusso di richiesta al SII",
			Held:        "In attesa: partono da sole all'apertura della finestra di richiesta",
			NotEligible: "Non ammissibili: nessuna correzione necessaria (il caso non ha diritto all'indennizzo)",
			ToCorrect:   "Rifiutate: correggere in fatturazione e inviare di nuovo il caso",
			Updated:     "Pratiche aggiornate"},
		held: "la finestra di richiesta apre il %s", line: "riga", lines: "righe", field: "campo", value: "valore", rule: "regola",
		notEligible: "non ammissibile, nessuna correzione necessaria", correct: "da correggere in fatturazione", warning: "avviso", state: "stato",
		pending: "da inviare al SII",
	},
	"en": {
		title: "Outcome of the file", folder: "Folder", at: "Processed on", rows: "Rows read",
		summary: "Summary", none: "No practice in this file.",
		validate:  "To review the file row by row before sending it again: cmord validate --folder %s FILE",
		more:      "… and %d more practices, not listed here (cmord practices lists them all).",
		fileLevel: "Problems of the header or of the whole file", warnings: "Warnings (the file was taken anyway)",
		rebuilt:   "Receipt rebuilt from the archive after a restart: warnings are not listed.",
		notListed: "%d more findings not listed one by one: see cmord validate.",
		outcome: map[Outcome]string{Filed: "accepted, to be sent to the SII", Held: "waiting for the window to open",
			NotEligible: "not eligible, no correction needed", ToCorrect: "refused, to correct in billing", Updated: "practices updated"},
		heading: map[Outcome]string{Filed: "Accepted: they go into the next request flow to the SII",
			Held:        "Waiting: they go out by themselves when the request window opens",
			NotEligible: "Not eligible: no correction needed (the case has no right to the indemnity)",
			ToCorrect:   "Refused: correct in billing and send the case again",
			Updated:     "Practices updated"},
		held: "the request window opens on %s", line: "line", lines: "lines", field: "field", value: "value", rule: "rule",
		notEligible: "not eligible, no correction needed", correct: "to correct in billing", warning: "warning", state: "state",
		pending: "to be sent to the SII",
	},
}

func wordsOf(lang string) words {
	if lang == "en" {
		return lexicon["en"]
	}
	return lexicon["it"]
}

// MaxEntries bounds the practices listed one by one (the totals count them all).
var MaxEntries = 2000

// findingText says one finding in lang: the rule in words, then field, value and rule code.
func findingText(f flows.Finding, lang string) string {
	w := wordsOf(lang)
	// Italian: the rule in words (the code's messages are English); English: the
	// message itself, which says more than the rule's name.
	text := digest.RuleText(f.Rule, lang)
	if text == "" || lang == "en" && f.Message != "" {
		text = flows.Shown(f.Message, 300)
	} else if lang != "en" && f.Message != "" {
		// The rule's wording is general; the message has this finding's facts (which
		// rows, which value, where the payment was already applied). Said in Italian
		// when the table knows it, else kept in English as the technical detail.
		if d := digest.DetailIT(f.Message); d != "" {
			text += " " + flows.Shown(d, 400)
		} else if !ruleSaysAll(f) && !digest.Known(f.Message) {
			text += " Dettaglio tecnico: " + digest.AmountsIT(flows.Shown(f.Message, 300))
		}
	}
	var parts []string
	if f.Field != "" {
		parts = append(parts, w.field+" "+flows.Shown(f.Field, 40))
	}
	if f.Value != "" && !strings.Contains(f.Value, "|") {
		v := f.Value
		if lang != "en" && digest.IsAmountField(f.Field, f.Rule) {
			v = digest.AmountIT(v) // 6.40 is cmord's own; an Italian reader reads 6,40
		}
		// %q escapes what Shown would (control characters, undecodable bytes) and the quotes.
		parts = append(parts, fmt.Sprintf("%s %q", w.value, flows.Truncate(v, 60)))
	}
	if f.Rule != "" {
		parts = append(parts, w.rule+" "+f.Rule)
	}
	if len(parts) > 0 {
		text += " (" + strings.Join(parts, ", ") + ")"
	}
	return digest.HumanizeKeys(text, lang)
}

// ruleSaysAll: findings whose English message adds nothing the Italian rule text and
// the field and value do not already say (the message restates the rule).
func ruleSaysAll(f flows.Finding) bool {
	switch f.Rule {
	case flows.RuleIDPOD, flows.RuleIDPDR, flows.RuleIDCF, flows.RuleIDPIVA, flows.RuleIDCPGest, flows.RuleIDCPUtente,
		flows.RuleString, flows.RuleAlnum, flows.RuleInt, flows.RuleAmount, flows.RuleDate, flows.RuleTimestamp,
		flows.RuleFlag, flows.RuleMonths, flows.RuleLength, flows.RuleEnum, flows.RuleConst, flows.RuleCSVColumn, flows.RuleWindowWait:
		return true
	}
	return false
}

// where names the entry's line, or its lines when the practice has several in the
// file (three payments of one customer: "righe 2-4", not "riga 2" with the other two
// rows of "Righe lette: 3" unaccounted for).
func (e Entry) where(lang string) string {
	w := wordsOf(lang)
	switch {
	case e.Lines <= 1 || e.LastLine <= e.Line:
		return fmt.Sprintf("%s %d", w.line, e.Line)
	case e.Lines == e.LastLine-e.Line+1:
		return fmt.Sprintf("%s %d-%d", w.lines, e.Line, e.LastLine)
	case lang == "en":
		return fmt.Sprintf("%d lines from %d to %d", e.Lines, e.Line, e.LastLine)
	}
	return fmt.Sprintf("%d righe dalla %d alla %d", e.Lines, e.Line, e.LastLine)
}

func (e Entry) who(lang string) string {
	parts := []string{e.where(lang)}
	if e.CPUtente != "" {
		parts = append(parts, "CP_UTENTE "+e.CPUtente)
	}
	if e.Point != "" {
		label := "POD"
		if !strings.HasPrefix(e.Point, "IT") {
			label = "PDR"
		}
		parts = append(parts, label+" "+flows.Shown(e.Point, 40))
	}
	if e.Customer != "" {
		parts = append(parts, map[bool]string{true: "customer ", false: "cliente "}[lang == "en"]+flows.Shown(e.Customer, 40))
	}
	return strings.Join(parts, " — ")
}

func (e Entry) detail(lang string) string {
	w := wordsOf(lang)
	switch e.Outcome {
	case Held:
		return fmt.Sprintf(w.held, e.WindowOpen)
	case NotEligible:
		return w.notEligible
	case ToCorrect:
		return w.correct
	case Updated, Filed:
		if e.State == "" {
			return ""
		}
		d := w.state + ": " + digest.StateName(e.State, lang)
		if e.Outcome == Updated && len(e.Pending) > 0 {
			var names []string
			for _, f := range e.Pending {
				names = append(names, digest.FlowName(nil, f, lang))
			}
			d += "; " + w.pending + ": " + strings.Join(names, ", ")
		}
		return d
	}
	return ""
}

// Updated lists the practices of the entries an existing practice's update touched
// (payments, suspensions, annulments, …), at most MaxEntries: those whose waiting
// requests Pending adds.
func (r Receipt) Updated() []int64 {
	var ids []int64
	for _, e := range r.Entries {
		if e.Outcome == Updated && e.PracticeID != 0 && len(ids) < MaxEntries {
			ids = append(ids, e.PracticeID)
		}
	}
	return ids
}

// Pending sets, per practice, the flows of its requests waiting for the next build,
// as ReadyRequestFlows reads them: the receipt of a payment that cleared the debt says
// that the annulment goes to the SII, not only that the practice is still "ammessa".
func (r *Receipt) Pending(ready map[int64][]string) {
	for i := range r.Entries {
		if e := &r.Entries[i]; e.Outcome == Updated {
			e.Pending = ready[e.PracticeID]
		}
	}
}

// Text renders the receipt as plain text (done/NAME.esito.txt).
func (r Receipt) Text(lang string) string {
	w := wordsOf(lang)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", w.title, flows.Shown(r.File, 255))
	fmt.Fprintf(&b, "%s: %s (%s)\n", w.folder, r.Folder, digest.FlowName(nil, r.Kind, lang))
	fmt.Fprintf(&b, "%s: %s\n", w.at, r.At.In(flows.Rome).Format("02/01/2006 15:04")+map[bool]string{true: " (Europe/Rome)", false: " (ora di Roma)"}[lang == "en"])
	if r.Rows > 0 {
		fmt.Fprintf(&b, "%s: %d\n", w.rows, r.Rows)
	}
	fmt.Fprintf(&b, "\n%s\n", w.summary)
	for _, o := range outcomeOrder {
		if n := r.totals[o]; n > 0 || o != Updated && r.Kind == "uscente.morosi" {
			fmt.Fprintf(&b, "  %-48s %6d\n", w.outcome[o]+":", n)
		}
	}
	if r.Warnings > 0 {
		fmt.Fprintf(&b, "  %-48s %6d\n", strings.ToLower(w.warnings[:strings.Index(w.warnings, " (")])+":", r.Warnings)
	}
	if len(r.Entries) == 0 {
		fmt.Fprintf(&b, "\n%s\n", w.none)
	}
	if len(r.FileLevel) > 0 {
		fmt.Fprintf(&b, "\n%s\n", w.fileLevel)
		for _, f := range r.FileLevel {
			fmt.Fprintf(&b, "  - %s\n", findingText(f, lang))
		}
	}
	listed := 0
	for _, o := range outcomeOrder {
		if r.totals[o] == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s (%d)\n", w.heading[o], r.totals[o])
		for _, e := range r.Entries {
			if e.Outcome != o {
				continue
			}
			if listed == MaxEntries {
				break
			}
			listed++
			fmt.Fprintf(&b, "  %s", e.who(lang))
			if d := e.detail(lang); d != "" {
				fmt.Fprintf(&b, ": %s", d)
			}
			b.WriteString("\n")
			for _, f := range e.Errors {
				fmt.Fprintf(&b, "      %s\n", findingText(f, lang))
			}
			for _, f := range e.Warnings {
				fmt.Fprintf(&b, "      %s: %s\n", w.warning, findingText(f, lang))
			}
		}
	}
	if n := len(r.Entries) - listed; n > 0 {
		fmt.Fprintf(&b, "\n"+w.more+"\n", n)
	}
	if len(r.warnLoose) > 0 {
		fmt.Fprintf(&b, "\n%s\n", w.warnings)
		for i, f := range r.warnLoose {
			if i == MaxEntries {
				fmt.Fprintf(&b, "  … %d\n", len(r.warnLoose)-i)
				break
			}
			fmt.Fprintf(&b, "  %s %d: %s\n", w.line, f.Line, findingText(f, lang))
		}
	}
	if r.NotListed > 0 {
		fmt.Fprintf(&b, "\n"+w.notListed+"\n", r.NotListed)
	}
	if r.Rebuilt {
		fmt.Fprintf(&b, "\n%s\n", w.rebuilt)
	}
	if r.totals[ToCorrect] > 0 || len(r.FileLevel) > 0 {
		fmt.Fprintf(&b, "\n"+w.validate+"\n", r.Folder)
	}
	return b.String()
}

var htmlTmpl = template.Must(template.New("receipt").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:1.45;color:#111827;max-width:760px;margin:16px auto;padding:0 12px;">
<h1 style="font-size:20px;color:#1e3a8a;margin:0 0 4px;word-break:normal;overflow-wrap:anywhere;">{{.Title}}</h1>
<div style="color:#4b5563;font-size:13px;">{{range .Meta}}<div>{{.}}</div>{{end}}</div>
<table style="border-collapse:collapse;margin:12px 0;font-size:14px;">
{{- range .Totals}}<tr><td style="padding:3px 12px 3px 0;"><span style="display:inline-block;width:10px;height:10px;border-radius:5px;background:{{.Colour}};"></span> {{.Label}}</td><td align="right" style="padding:3px 0;font-weight:bold;">{{.N}}</td></tr>{{end}}
</table>
{{- range .Groups}}
<h2 style="font-size:16px;margin:18px 0 6px;border-left:4px solid {{.Colour}};padding-left:8px;">{{.Heading}} ({{.N}})</h2>
<ul style="margin:0;padding-left:18px;">
{{- range .Entries}}<li style="margin-bottom:6px;word-break:normal;overflow-wrap:break-word;"><b>{{.Who}}</b>{{if .Detail}}: {{.Detail}}{{end}}
{{- if .Lines}}<ul style="margin:2px 0 0;padding-left:18px;color:#374151;font-size:13px;">{{range .Lines}}<li>{{.}}</li>{{end}}</ul>{{end}}</li>
{{- end}}
</ul>
{{- end}}
{{- range .Notes}}<p style="color:#4b5563;font-size:13px;">{{.}}</p>{{end}}
</body></html>
`))

var outcomeColour = map[Outcome]string{ToCorrect: "#b91c1c", NotEligible: "#6b7280", Held: "#1d4ed8", Filed: "#047857", Updated: "#1d4ed8"}

// HTML renders the receipt as a page (done/NAME.esito.html), for a shared folder
// opened in a browser: the same content as the text, grouped and coloured.
func (r Receipt) HTML(lang string) string {
	if lang != "en" {
		lang = "it"
	}
	w := wordsOf(lang)
	type entry struct {
		Who, Detail string
		Lines       []string
	}
	type group struct {
		Heading, Colour string
		N               int
		Entries         []entry
	}
	type total struct {
		Label, Colour string
		N             int
	}
	data := struct {
		Lang, Title string
		Meta, Notes []string
		Totals      []total
		Groups      []group
	}{Lang: lang, Title: w.title + ": " + flows.Shown(r.File, 255)}
	data.Meta = append(data.Meta, w.folder+": "+r.Folder+" ("+digest.FlowName(nil, r.Kind, lang)+")",
		w.at+": "+r.At.In(flows.Rome).Format("02/01/2006 15:04")+map[bool]string{true: " (Europe/Rome)", false: " (ora di Roma)"}[lang == "en"])
	if r.Rows > 0 {
		data.Meta = append(data.Meta, fmt.Sprintf("%s: %d", w.rows, r.Rows))
	}
	for _, o := range outcomeOrder {
		if n := r.totals[o]; n > 0 || o != Updated && r.Kind == "uscente.morosi" {
			data.Totals = append(data.Totals, total{Label: w.outcome[o], Colour: outcomeColour[o], N: n})
		}
	}
	if r.Warnings > 0 {
		data.Totals = append(data.Totals, total{Label: strings.ToLower(w.warnings[:strings.Index(w.warnings, " (")]), Colour: "#9ca3af", N: r.Warnings})
	}
	if len(r.FileLevel) > 0 {
		g := group{Heading: w.fileLevel, Colour: outcomeColour[ToCorrect], N: len(r.FileLevel)}
		for _, f := range r.FileLevel {
			g.Entries = append(g.Entries, entry{Who: findingText(f, lang)})
		}
		data.Groups = append(data.Groups, g)
	}
	listed := 0
	for _, o := range outcomeOrder {
		if r.totals[o] == 0 {
			continue
		}
		g := group{Heading: w.heading[o], Colour: outcomeColour[o], N: r.totals[o]}
		for _, e := range r.Entries {
			if e.Outcome != o || listed == MaxEntries {
				continue
			}
			listed++
			en := entry{Who: e.who(lang), Detail: e.detail(lang)}
			for _, f := range e.Errors {
				en.Lines = append(en.Lines, findingText(f, lang))
			}
			for _, f := range e.Warnings {
				en.Lines = append(en.Lines, w.warning+": "+findingText(f, lang))
			}
			g.Entries = append(g.Entries, en)
		}
		data.Groups = append(data.Groups, g)
	}
	if len(r.warnLoose) > 0 {
		g := group{Heading: w.warnings, Colour: "#9ca3af", N: len(r.warnLoose)}
		for i, f := range r.warnLoose {
			if i == MaxEntries {
				break
			}
			g.Entries = append(g.Entries, entry{Who: fmt.Sprintf("%s %d", w.line, f.Line), Detail: findingText(f, lang)})
		}
		data.Groups = append(data.Groups, g)
	}
	if len(r.Entries) == 0 {
		data.Notes = append(data.Notes, w.none)
	}
	if n := len(r.Entries) - listed; n > 0 {
		data.Notes = append(data.Notes, fmt.Sprintf(w.more, n))
	}
	if r.NotListed > 0 {
		data.Notes = append(data.Notes, fmt.Sprintf(w.notListed, r.NotListed))
	}
	if r.Rebuilt {
		data.Notes = append(data.Notes, w.rebuilt)
	}
	if r.totals[ToCorrect] > 0 || len(r.FileLevel) > 0 {
		data.Notes = append(data.Notes, fmt.Sprintf(w.validate, r.Folder))
	}
	var b strings.Builder
	_ = htmlTmpl.Execute(&b, data)
	return b.String()
}

// reasonLines are the lines of a reason file for findings, in their order: one per
// finding, except the header's missing columns (CSV-HEADER, "mandatory column
// missing") and its unknown columns (CSV-COLUMN, ignored), each said once on the
// first one's line with the columns named: an extract with billing's own headers and
// no mapping otherwise gives one identical line per column, 15 errors and 31 warnings
// for the sample of testdata/inputs, where the operator needs to read "the folder
// needs a mapping file" once.
func reasonLines(fs []flows.Finding, lang string) []string {
	missing, unknown := headerColumns(fs)
	var out []string
	for i, f := range fs {
		switch {
		case len(missing) > 1 && isMissingColumn(f):
			if i == missing[0] {
				out = append(out, columnsLine(fs, missing, lang, true))
			}
			continue
		case len(unknown) > 1 && isUnknownColumn(f):
			if i == unknown[0] {
				out = append(out, columnsLine(fs, unknown, lang, false))
			}
			continue
		}
		where := ""
		if f.Line > 0 {
			where = fmt.Sprintf("%s %d: ", wordsOf(lang).line, f.Line)
		}
		note := ""
		if f.Eligibility() {
			// Told apart from data errors: nothing to correct in billing.
			note = " — " + flows.EligibilityNoteIT
			if lang == "en" {
				note = " — " + flows.EligibilityNoteEN
			}
		}
		out = append(out, where+findingText(f, lang)+note)
	}
	return out
}

// isMissingColumn: a header finding for a mandatory column the file does not have.
func isMissingColumn(f flows.Finding) bool {
	return f.Line <= 1 && f.Rule == flows.RuleCSVHeader &&
		(f.Message == "mandatory column missing" || strings.HasPrefix(f.Message, "column missing from the layout of "))
}

// isUnknownColumn: a header warning for a column the layout does not have (ignored).
func isUnknownColumn(f flows.Finding) bool {
	return f.Line <= 1 && f.Rule == flows.RuleCSVColumn && f.IsWarning()
}

// headerColumns indexes the missing-column and unknown-column findings of fs.
func headerColumns(fs []flows.Finding) (missing, unknown []int) {
	for i, f := range fs {
		switch {
		case isMissingColumn(f):
			missing = append(missing, i)
		case isUnknownColumn(f):
			unknown = append(unknown, i)
		}
	}
	return missing, unknown
}

// maxColumnsNamed bounds the columns one line of a reason file names.
const maxColumnsNamed = 40

// columnsLine says in one line which columns are missing (our field names) or not
// in the layout (billing's headers, quoted: they come from the file).
func columnsLine(fs []flows.Finding, idx []int, lang string, missing bool) string {
	var names []string
	for k, i := range idx {
		if k == maxColumnsNamed {
			names = append(names, "…")
			break
		}
		if missing {
			names = append(names, flows.Shown(fs[i].Field, 40))
		} else {
			names = append(names, fmt.Sprintf("%q", flows.Truncate(fs[i].Field, 40)))
		}
	}
	line := fs[idx[0]].Line
	if line < 1 {
		line = 1
	}
	w := wordsOf(lang)
	var text string
	switch {
	case missing && lang == "en":
		text = fmt.Sprintf("%d mandatory columns missing: %s. If the extract has headers of its own, the folder needs a mapping file (docs/inputs.md) (rule %s)",
			len(idx), strings.Join(names, ", "), flows.RuleCSVHeader)
	case missing:
		text = fmt.Sprintf("Mancano %d colonne obbligatorie: %s. Se l'estrazione ha intestazioni proprie, alla cartella serve un file di mappatura (docs/inputs.md) (regola %s)",
			len(idx), strings.Join(names, ", "), flows.RuleCSVHeader)
	case lang == "en":
		text = fmt.Sprintf("%d columns not in the layout, ignored: %s (rule %s)", len(idx), strings.Join(names, ", "), flows.RuleCSVColumn)
	default:
		text = fmt.Sprintf("%d colonne non previste dal tracciato, ignorate: %s (regola %s)", len(idx), strings.Join(names, ", "), flows.RuleCSVColumn)
	}
	return fmt.Sprintf("%s %d: %s", w.line, line, text)
}

// MaxReasonLines bounds the findings a reason file lists one by one.
var MaxReasonLines = 50

var reasonWords = map[string]struct{ refused, detail, errors, warnings, more, validate, because, duplicateOf, duplicateDo string }{
	"it": {"Il file è stato rifiutato per intero e non è stato elaborato: niente del file è stato acquisito.",
		"Motivo (dettaglio tecnico)", "Errori (%d)", "Avvisi (%d)", "… e altri %d, non elencati qui.",
		"Per vedere tutti i rilievi riga per riga: cmord validate --folder %s FILE. Corretto il file, lasciarlo di nuovo nella cartella.",
		"Motivo", "(già ricevuto come %s)",
		"Nessuna correzione necessaria: quei dati sono già stati acquisiti, e depositare di nuovo questo file lo fa rifiutare di nuovo. Se doveva contenere dati nuovi, esportarlo di nuovo dal gestionale."},
	"en": {"The whole file was refused and not processed: nothing of it was taken in.",
		"Reason (technical detail)", "Errors (%d)", "Warnings (%d)", "… and %d more, not listed here.",
		"To see every finding row by row: cmord validate --folder %s FILE. Once corrected, drop the file in the folder again.",
		"Reason", "(already received as %s)",
		"Nothing to correct: those data were already taken in, and dropping this file again gets it refused again. If it was meant to hold new data, export it again from billing."},
}

// ReasonText is the body of rejected/NAME.reason.txt in lang: what happened, the
// reason, then the errors before the warnings, at most MaxReasonLines of them with
// "e altri N", and the command that lists them all.
func ReasonText(folder, reason string, findings []flows.Finding, lang string) string {
	if lang != "en" {
		lang = "it"
	}
	w := reasonWords[lang]
	var b strings.Builder
	b.WriteString(w.refused + "\n")
	// A file whose content was already received: said in the operator's language,
	// with nothing to correct (dropping it again is refused again).
	duplicate := false
	for _, f := range findings {
		if f.Rule == RuleDuplicate {
			duplicate = true
			fmt.Fprintf(&b, "%s: %s %s\n", w.because, digest.RuleText(RuleDuplicate, lang), fmt.Sprintf(w.duplicateOf, flows.Shown(f.Value, 300)))
		}
	}
	if reason != "" {
		shown := digest.HumanizeKeys(flows.Shown(reason, 500), lang)
		if lang != "en" {
			// The reason in Italian when the table knows it (the workbook's sheets, the
			// separator…), the English kept as the technical detail, its amounts with
			// the decimal comma.
			if it := digest.DetailIT(reason); it != "" {
				it = strings.TrimPrefix(flows.Shown(it, 500), "Qui: ")
				fmt.Fprintf(&b, "%s: %s\n", w.because, strings.ToUpper(it[:1])+it[1:])
			}
			shown = digest.AmountsIT(shown)
		}
		fmt.Fprintf(&b, "%s: %s\n", w.detail, shown)
	}
	var errs, warns []flows.Finding
	for _, f := range findings {
		if f.Rule == RuleDuplicate {
			continue
		}
		if f.IsWarning() {
			warns = append(warns, f)
		} else {
			errs = append(errs, f)
		}
	}
	budget := MaxReasonLines
	for _, g := range []struct {
		head string
		fs   []flows.Finding
	}{{w.errors, errs}, {w.warnings, warns}} {
		if len(g.fs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n"+g.head+":\n", len(g.fs))
		lines := reasonLines(g.fs, lang)
		for i, l := range lines {
			if budget == 0 {
				fmt.Fprintf(&b, "  "+w.more+"\n", len(lines)-i)
				break
			}
			budget--
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	switch {
	case duplicate && len(errs) == 0:
		fmt.Fprintf(&b, "\n%s\n", w.duplicateDo)
	case folder != "":
		fmt.Fprintf(&b, "\n"+w.validate+"\n", folder)
	}
	return b.String()
}

// RuleDuplicate is the finding of a file refused because its content was already
// received (Value: the earlier file, with its ID and when it came).
const RuleDuplicate = "DUPLICATE"
