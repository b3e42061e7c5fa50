package digest

import (
	"bytes"
	"embed"
	"encoding/csv"
	"fmt"
	htmltemplate "html/template"
	"io"
	"sort"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/logx"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/flows"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var (
	textTemplates = texttemplate.Must(texttemplate.New("").ParseFS(templateFS, "templates/*.txt.tmpl"))
	htmlTemplates = htmltemplate.Must(htmltemplate.New("").ParseFS(templateFS, "templates/*.html.tmpl"))
)

// labels are the fixed words of the digest and alerts per language.
var labels = map[string]map[string]string{
	"it": {
		"title": "Riepilogo CMOR", "alert_title": "CMOR — avviso urgente", "company": "Società",
		"period": "Periodo", "from": "dal", "to": "al", "first": "primo riepilogo: ultime 24 ore", "first_all": "primo riepilogo: dal primo record dell'archivio", "since_last": "dalla fine dell'ultimo riepilogo inviato",
		"summary": "Sintesi", "new": "Nuove eccezioni", "open": "Ancora aperte", "resolved": "Risolte", "deadlines": "Scadenze",
		"nothing": "Niente richiede la vostra attenzione: nessuna eccezione aperta, nessuna scadenza vicina, nessun file nel periodo.",
		"flows":   "Flussi nel periodo", "flow": "Flusso", "received": "Ricevuti", "rejected": "Rifiutati", "duplicates": "Duplicati",
		"rows_refused": "Righe scartate", "built": "Prodotti", "published": "Pubblicati", "no_flows": "Nessun file nel periodo.",
		"open_by_sev": "Eccezioni aperte per gravità", "open_by_kind": "Eccezioni aperte per tipo", "total": "Totale",
		"kind": "Tipo", "count": "Numero", "of_which_new": "di cui nuove", "muted": "silenziate (SII non raggiungibile)",
		"deadlines_next": "Scadenze nei prossimi giorni", "none_new": "Nessuna nuova eccezione.", "none_open": "Nessuna eccezione aperta da prima.",
		"none_resolved": "Nessuna eccezione risolta nel periodo.", "none_deadlines": "Nessuna scadenza nei prossimi giorni.",
		"practice": "Pratica", "customer": "Cliente", "file": "File", "line": "riga", "field": "campo", "rule": "regola", "value": "valore",
		"sii_cause": "causale SII", "motivation": "motivazione", "cause_unknown": "causale non presente nel catalogo", "detail": "Dettaglio tecnico",
		"dup_short": "dupl.", "not_raised": "(nuova)",
		"subject": "Oggetto", "first_seen": "Prima rilevazione", "last_seen": "Ultima", "age": "aperta da", "times": "occorrenze",
		"action": "Cosa fare", "due": "Scadenza", "auto": "automatica: condizione rientrata", "resolved_at": "Risolta il", "resolution": "Esito", "by": "da",
		"muted_by": "silenziata: SII non raggiungibile (eccezione #%d)", "more": "… e altre %d: elenco completo nell'allegato CSV.",
		"more_file": "… e altre %d: elenco completo nel file CSV %s.", "more_none": "… e altre %d, non elencate qui (elenco completo: cmord digest --preview --csv FILE).",
		"csv_file":     "Elenco completo in CSV nel file %s.",
		"attach_cut":   "Allegati parziali: contengono le prime %d eccezioni di %d, le più urgenti (prima le aperte per gravità, poi le risolte), perché l'elenco intero renderebbe il messaggio troppo grande per la posta (limiti [digest] attachment_max_rows e attachment_max_size). L'elenco completo, con le stesse colonne, si ottiene sul server con: %s",
		"preview_cut":  "Inviato ora, il riepilogo allegherebbe solo le prime %d eccezioni di %d, le più urgenti (limiti [digest] attachment_max_rows e attachment_max_size); l'elenco completo si ottiene con: %s",
		"attached_cut": "In allegato le prime %d eccezioni di %d in CSV (elenco parziale).", "attached_both_cut": "In allegato le prime %d eccezioni di %d in Excel (XLSX, per le persone) e in CSV (per i programmi): elenco parziale.",
		"more_cut":     "… e altre %d: negli allegati %d delle %d di questa sezione (allegati parziali, vedi Sintesi).",
		"act_xlsx_cut": "Aprire l'allegato Excel %s: le prime %d eccezioni di %d di questo riepilogo, le più urgenti, da filtrare e ordinare; POD, PDR, codici fiscali e partite IVA restano testo (zeri iniziali compresi). Il CSV allegato è lo stesso elenco per i programmi.",
		"sheet_note":   "Elenco parziale", "sheet_note_text": "Questo file contiene le prime %d eccezioni di %d del riepilogo del %s, le più urgenti (prima le aperte per gravità, poi le risolte): l'elenco intero renderebbe il messaggio troppo grande per la posta (limiti [digest] attachment_max_rows e attachment_max_size).", "sheet_note_cmd": "L'elenco completo, con le stesse colonne, si ottiene sul server con: %s",
		"days_left": "tra %d giorni (%d lavorativi)", "today": "oggi", "overdue": "scaduta da %d giorni", "tomorrow": "domani",
		"state": "stato", "attached": "In allegato l'elenco completo in CSV.", "attached_both": "In allegato l'elenco completo in Excel (XLSX, per le persone) e in CSV (per i programmi).", "personal_masked": "Dati personali mascherati (include_personal_data = false).",
		"footer":         "Generato da cmord il %s. Orari di Roma (UTC tra parentesi).",
		"alert_footer":   "Generato da cmord il %s. Orari di Roma (UTC tra parentesi). Per chiudere un'eccezione: cmord exceptions resolve ID --note \"...\".",
		"anchor":         "Ancora dell'archivio (da conservare fuori da questo server; cmord archive verify --anchor la controlla): %s",
		"rejected_files": "File rifiutati nel periodo", "rejected_intro": "Non sono stati elaborati: niente del file è stato acquisito. Il motivo completo è nel file NOME.reason.txt accanto al file, nella cartella rejected/.",
		"reason": "Dettaglio tecnico", "received_at": "ricevuto il",
		"actions":          "Cosa potete fare senza accedere al server",
		"act_xlsx":         "Aprire l'allegato Excel %s: tutte le eccezioni di questo riepilogo, da filtrare e ordinare; POD, PDR, codici fiscali e partite IVA restano testo (zeri iniziali compresi). Il CSV allegato è lo stesso elenco per i programmi.",
		"act_not_eligible": "Le righe «non ammissibile, nessuna correzione» non richiedono interventi: il caso non ha diritto all'indennizzo.",
		"act_contact":      "Per chiudere un'eccezione a mano, riprovare un invio o cambiare una cartella, contattare: %s.",
		"act_contact_none": "Per chiudere un'eccezione a mano, riprovare un invio o cambiare una cartella, contattare chi amministra cmord (il contatto si imposta in [digest] contact).",
		"act_manual":       "Il manuale per operatori e compliance (cartelle, ricevute, eccezioni, stati, scadenze) è installato con cmord (cmord manuale).",
		"urgent":           "urgente", "high": "alta", "normal": "normale", "low": "bassa", "severity": "Gravità",
		"alert_intro":  "Le seguenti eccezioni urgenti sono aperte e richiedono un intervento subito.",
		"alert_repeat": "Promemoria: ancora aperte.",
		"alert_more":   "… e altre %d, non elencate qui (elenco completo: cmord exceptions --severity urgent --owner %s).",
		// The _one forms, for a count of 1 (one): "le prime 1 eccezioni" is not Italian.
		"attach_cut_one":        "Allegati parziali: contengono solo la prima eccezione di %[2]d, la più urgente (prima le aperte per gravità, poi le risolte), perché l'elenco intero renderebbe il messaggio troppo grande per la posta (limiti [digest] attachment_max_rows e attachment_max_size). L'elenco completo, con le stesse colonne, si ottiene sul server con: %[3]s",
		"preview_cut_one":       "Inviato ora, il riepilogo allegherebbe solo la prima eccezione di %[2]d, la più urgente (limiti [digest] attachment_max_rows e attachment_max_size); l'elenco completo si ottiene con: %[3]s",
		"attached_cut_one":      "In allegato solo la prima eccezione di %[2]d in CSV (elenco parziale).",
		"attached_both_cut_one": "In allegato solo la prima eccezione di %[2]d in Excel (XLSX, per le persone) e in CSV (per i programmi): elenco parziale.",
		"act_xlsx_cut_one":      "Aprire l'allegato Excel %[1]s: la prima eccezione di %[3]d di questo riepilogo, la più urgente; POD, PDR, codici fiscali e partite IVA restano testo (zeri iniziali compresi). Il CSV allegato è lo stesso elenco per i programmi.",
		"sheet_note_text_one":   "Questo file contiene solo la prima eccezione di %[2]d del riepilogo del %[3]s, la più urgente (prima le aperte per gravità, poi le risolte): l'elenco intero renderebbe il messaggio troppo grande per la posta (limiti [digest] attachment_max_rows e attachment_max_size).",
		"more_one":              "… e %d altra: elenco completo nell'allegato CSV.",
		"more_file_one":         "… e %d altra: elenco completo nel file CSV %s.",
		"more_none_one":         "… e %d altra, non elencata qui (elenco completo: cmord digest --preview --csv FILE).",
		"more_cut_one":          "… e %d altra: negli allegati %d delle %d di questa sezione (allegati parziali, vedi Sintesi).",
		"alert_more_one":        "… e %d altra, non elencata qui (elenco completo: cmord exceptions --severity urgent --owner %s).",
	},
	"en": {
		"title": "CMOR digest", "alert_title": "CMOR — urgent alert", "company": "Company",
		"period": "Period", "from": "from", "to": "to", "first": "first digest: last 24 hours", "first_all": "first digest: since the archive's first record", "since_last": "since the end of the last digest sent",
		"summary": "Summary", "new": "New exceptions", "open": "Still open", "resolved": "Resolved", "deadlines": "Deadlines",
		"nothing": "Nothing needs you: no open exception, no deadline close, no file in the period.",
		"flows":   "Flows in the period", "flow": "Flow", "received": "Received", "rejected": "Rejected", "duplicates": "Duplicates",
		"rows_refused": "Rows refused", "built": "Built", "published": "Published", "no_flows": "No file in the period.",
		"open_by_sev": "Open exceptions by severity", "open_by_kind": "Open exceptions by kind", "total": "Total",
		"kind": "Kind", "count": "Count", "of_which_new": "of which new", "muted": "muted (SII unreachable)",
		"deadlines_next": "Deadlines in the next days", "none_new": "No new exception.", "none_open": "No exception open from before.",
		"none_resolved": "No exception resolved in the period.", "none_deadlines": "No deadline in the next days.",
		"practice": "Practice", "customer": "Customer", "file": "File", "line": "line", "field": "field", "rule": "rule", "value": "value",
		"sii_cause": "SII cause", "motivation": "motivation", "cause_unknown": "cause not in the catalog", "detail": "Technical detail",
		"dup_short": "dup.", "not_raised": "(new)",
		"subject": "Subject", "first_seen": "First seen", "last_seen": "Last", "age": "open for", "times": "times",
		"action": "Action", "due": "Due", "auto": "automatic: the condition cleared", "resolved_at": "Resolved", "resolution": "Resolution", "by": "by",
		"muted_by": "muted: SII unreachable (exception #%d)", "more": "… and %d more: the full list is in the CSV attachment.",
		"more_file": "… and %d more: the full list is in the CSV file %s.", "more_none": "… and %d more, not listed here (full list: cmord digest --preview --csv FILE).",
		"csv_file":     "The full list is in the CSV file %s.",
		"attach_cut":   "Partial attachments: they hold the first %d of %d exceptions, the most urgent (open ones by severity, then the resolved), because the whole list would make the message too big for mail (limits [digest] attachment_max_rows and attachment_max_size). The full list, same columns, is given on the server by: %s",
		"preview_cut":  "Sent now, the digest would attach only the first %d of %d exceptions, the most urgent (limits [digest] attachment_max_rows and attachment_max_size); the full list is given by: %s",
		"attached_cut": "The first %d of %d exceptions are attached as CSV (partial list).", "attached_both_cut": "The first %d of %d exceptions are attached as Excel (XLSX, for people) and CSV (for programs): partial list.",
		"more_cut":     "… and %d more: the attachments hold %d of this section's %d (partial attachments, see Summary).",
		"act_xlsx_cut": "Open the Excel attachment %s: the first %d of %d exceptions of this digest, the most urgent, to filter and sort; POD, PDR, codici fiscali and VAT numbers stay text (leading zeros included). The attached CSV is the same list for programs.",
		"sheet_note":   "Partial list", "sheet_note_text": "This file holds the first %d of %d exceptions of the digest of %s, the most urgent (open ones by severity, then the resolved): the whole list would make the message too big for mail (limits [digest] attachment_max_rows and attachment_max_size).", "sheet_note_cmd": "The full list, same columns, is given on the server by: %s",
		"days_left": "in %d days (%d working days)", "today": "today", "overdue": "overdue by %d days", "tomorrow": "tomorrow",
		"state": "state", "attached": "The full list is attached as CSV.", "attached_both": "The full list is attached as Excel (XLSX, for people) and CSV (for programs).", "personal_masked": "Personal data masked (include_personal_data = false).",
		"footer":         "Generated by cmord on %s. Times in Europe/Rome (UTC in parentheses).",
		"alert_footer":   "Generated by cmord on %s. Times in Europe/Rome (UTC in parentheses). To close an exception: cmord exceptions resolve ID --note \"...\".",
		"anchor":         "Archive anchor (keep it off this server; cmord archive verify --anchor checks it): %s",
		"rejected_files": "Files rejected in the period", "rejected_intro": "They were not processed: nothing of them was taken in. The full reason is in NAME.reason.txt beside the file, in the rejected/ folder.",
		"reason": "Reason", "received_at": "received",
		"actions":          "What you can do without the server",
		"act_xlsx":         "Open the Excel attachment %s: every exception of this digest, to filter and sort; POD, PDR, codici fiscali and VAT numbers stay text (leading zeros included). The attached CSV is the same list for programs.",
		"act_not_eligible": "Items \"not eligible, nothing to correct\" need no action: the case has no right to the indemnity.",
		"act_contact":      "To close an exception by hand, retry a delivery or change a folder, contact: %s.",
		"act_contact_none": "To close an exception by hand, retry a delivery or change a folder, contact whoever runs cmord (the contact is set in [digest] contact).",
		"act_manual":       "The manual for operators and compliance (folders, receipts, exceptions, states, deadlines) is installed with cmord (cmord manuale).",
		"urgent":           "urgent", "high": "high", "normal": "normal", "low": "low", "severity": "Severity",
		"alert_intro":  "The following urgent exceptions are open and need action now.",
		"alert_repeat": "Reminder: still open.",
		"alert_more":   "… and %d more, not listed here (full list: cmord exceptions --severity urgent --owner %s).",
		// The _one forms, for a count of 1 (one).
		"attach_cut_one":        "Partial attachments: they hold only the first of %[2]d exceptions, the most urgent (open ones by severity, then the resolved), because the whole list would make the message too big for mail (limits [digest] attachment_max_rows and attachment_max_size). The full list, same columns, is given on the server by: %[3]s",
		"preview_cut_one":       "Sent now, the digest would attach only the first of %[2]d exceptions, the most urgent (limits [digest] attachment_max_rows and attachment_max_size); the full list is given by: %[3]s",
		"attached_cut_one":      "Only the first of %[2]d exceptions is attached as CSV (partial list).",
		"attached_both_cut_one": "Only the first of %[2]d exceptions is attached as Excel (XLSX, for people) and CSV (for programs): partial list.",
		"act_xlsx_cut_one":      "Open the Excel attachment %[1]s: the first of %[3]d exceptions of this digest, the most urgent; POD, PDR, codici fiscali and VAT numbers stay text (leading zeros included). The attached CSV is the same list for programs.",
		"sheet_note_text_one":   "This file holds only the first of %[2]d exceptions of the digest of %[3]s, the most urgent (open ones by severity, then the resolved): the whole list would make the message too big for mail (limits [digest] attachment_max_rows and attachment_max_size).",
	},
}

// deadlineTitles name the deadline kinds in the Scadenze section.
var deadlineTitles = map[string]map[string]string{
	"it": {DeadlineWindowOpening: "apertura finestra di richiesta", DeadlineWindowClosing: "chiusura finestra di richiesta",
		DeadlineSuspensionTerm: "termine per la sospensione", DeadlineRefund: "rimborso al cliente (10 giorni)",
		DeadlineAck: "comunicazione rimborso al SII (2 giorni lavorativi)", DeadlineNoAnswer: "risposta attesa dal SII"},
	"en": {DeadlineWindowOpening: "request window opens", DeadlineWindowClosing: "request window closes",
		DeadlineSuspensionTerm: "suspension term ends", DeadlineRefund: "customer refund (10 days)",
		DeadlineAck: "refund acknowledgement to the SII (2 working days)", DeadlineNoAnswer: "SII answer expected"},
}

// sevStyle is the inline style of a severity badge: mail clients drop <style> blocks.
var sevStyle = map[string]string{
	"urgent": "background:#b91c1c;color:#ffffff",
	"high":   "background:#c2410c;color:#ffffff",
	"normal": "background:#1d4ed8;color:#ffffff",
	"low":    "background:#6b7280;color:#ffffff",
}

// sevBorder is the left border colour of an item card.
var sevBorder = map[string]string{"urgent": "#b91c1c", "high": "#c2410c", "normal": "#1d4ed8", "low": "#9ca3af"}

type view struct {
	L           map[string]string
	Lang        string
	Title       string
	Company     string
	PeriodStart string
	PeriodEnd   string
	PeriodNote  string // where the period starts, when it is not the previous digest's end
	Empty       bool
	Flows       []flowView
	FlowWidth   int // the text table's first column: the longest flow name
	Open        []sevView
	OpenTotal   int
	Muted       int
	ByKind      []kindView
	Sections    []sectionView
	Deadlines   []deadlineView
	DeadlineMax int
	DeadMore    int
	Masked      bool
	Footer      string
	Actions     []string       // the footer's "what you can do without the server"
	Rejected    []rejectedView // files refused whole in the period
	RejMore     int
	CSVNote     string // where the full list is: the attachment, a file (preview), or "" when nowhere
	AttachNote  string // the attachments carry part of the list (or a preview's would): how much, and the command for all of it
	// AttachNoteHead and AttachCmd are AttachNote split before its command (which
	// ends it), for the HTML body to show the command as code.
	AttachNoteHead, AttachCmd string
	Repeat                    bool // alerts: a reminder of something already mailed
}

type rejectedView struct {
	Name, Flow, At, Reason string
}

type flowView struct {
	Name                                                       string // "SI1.0050 — Richiesta indennizzo" (FlowName)
	Kind                                                       string
	Received, Rejected, Duplicates, RowsRefused, Built, Publ   int
	ReceivedS, RejectedS, DuplicatesS, RowsRefusedS, BuiltS, P string
}

type sevView struct {
	Sev, Label string
	Count      int
	Style      htmltemplate.CSS
}

type kindView struct {
	Kind, Title, Sev, SevLabel string
	Count, New                 int
	Style                      htmltemplate.CSS
}

type sectionView struct {
	Key, Title, None string
	Items            []itemView
	More             int
	MoreText         string
}

type itemView struct {
	L                    map[string]string
	ID                   int64
	Ref                  string // "#12", or "(nuova)" for one a preview would raise (no id yet)
	Sev, SevLabel, Kind  string
	Title                string
	Message              string // the main line: Italian explanation (it) or the exception's message (en)
	Detail               string // Italian only: the code's English message, as a technical detail
	Action               string
	Practice, Point      string
	Customer             string
	File                 string
	Where                string
	Subject              string
	FirstSeen, LastSeen  string
	Age                  string
	Count                int
	Due                  string
	Resolved, Resolution string
	Muted                string
	Style                htmltemplate.CSS
	Border               htmltemplate.CSS
}

type deadlineView struct {
	Due, When, Title, Kind string
	Practice, Point, State string
	Customer               string
	Sev, SevLabel          string
	Style                  htmltemplate.CSS
}

// FormatTime shows an instant in Europe/Rome with UTC in parentheses:
// "23/11/2026 07:30 (06:30 UTC)", with the UTC date when it differs.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	r, u := t.In(flows.Rome), t.UTC()
	utc := u.Format("15:04")
	if flows.DateOf(r) != flows.DateOf(u) {
		utc = u.Format("02/01 15:04")
	}
	return r.Format("02/01/2006 15:04") + " (" + utc + " UTC)"
}

func formatAge(d time.Duration, lang string) string {
	type unit struct{ it1, itN, en1, enN string }
	n, u := 0, unit{}
	switch {
	case d >= 48*time.Hour:
		n, u = int(d/(24*time.Hour)), unit{"giorno", "giorni", "day", "days"}
	case d >= time.Hour:
		n, u = int(d/time.Hour), unit{"ora", "ore", "hour", "hours"}
	default:
		n, u = max(int(d/time.Minute), 0), unit{"minuto", "minuti", "minute", "minutes"}
	}
	w := u.itN
	switch {
	case lang == "en" && n == 1:
		w = u.en1
	case lang == "en":
		w = u.enN
	case n == 1:
		w = u.it1
	}
	return strconv.Itoa(n) + " " + w
}

// maskID keeps the first 3 and last 2 characters of a CF or P.IVA.
func maskID(s string) string {
	if s == "" {
		return ""
	}
	if utf8.RuneCountInString(s) <= 5 {
		return strings.Repeat("*", utf8.RuneCountInString(s))
	}
	r := []rune(s)
	return string(r[:3]) + strings.Repeat("*", len(r)-5) + string(r[len(r)-2:])
}

// maskName keeps initials: "Mario Rossi" → "M. R.".
func maskName(s string) string {
	var parts []string
	for _, w := range strings.Fields(s) {
		r, _ := utf8.DecodeRuneInString(w)
		parts = append(parts, string(r)+".")
	}
	return strings.Join(parts, " ")
}

// masker hides personal data when the recipients' role does not need it.
type masker struct{ on bool }

func (m masker) id(s string) string {
	if m.on {
		return maskID(s)
	}
	return s
}

func (m masker) name(s string) string {
	if m.on {
		return maskName(s)
	}
	return s
}

// text masks every codice fiscale and the named customer in free text.
func (m masker) text(s, cid, name string) string {
	if !m.on {
		return s
	}
	if cid != "" {
		s = strings.ReplaceAll(s, cid, maskID(cid))
	}
	if strings.TrimSpace(name) != "" {
		s = strings.ReplaceAll(s, name, maskName(name))
	}
	return logx.MaskCF(s)
}

func customer(m masker, id, name string) string {
	id, name = m.id(id), m.name(name)
	switch {
	case id != "" && name != "":
		return name + " (" + id + ")"
	case id != "":
		return id
	}
	return name
}

// whenText says how far a due date is: "tra 3 giorni (2 lavorativi)", "domani",
// "oggi", "scaduta da 4 giorni".
func whenText(L map[string]string, days, workingDays int) string {
	switch {
	case days == 0:
		return L["today"]
	case days == 1:
		return L["tomorrow"]
	case days < 0:
		return fmt.Sprintf(L["overdue"], -days)
	}
	return fmt.Sprintf(L["days_left"], days, workingDays)
}

func (d *Digest) calendar() *flows.Calendar {
	if d.cal == nil {
		return flows.NewCalendar(0, 0)
	}
	return d.cal
}

func (d *Digest) catalog() *flows.Catalog {
	if d.cat == nil {
		return defaultCatalog()
	}
	return d.cat
}

// ruleText names the rule of an item: "causale SII SI-W02: <description>" for an SII
// refusal (the rule is the SII's cause code), "regola E5" otherwise.
func (d *Digest) ruleText(it Item, lang string, L map[string]string) string {
	if it.Rule == "" {
		return ""
	}
	if it.Kind != "sii_refusal" {
		return L["rule"] + " " + it.Rule
	}
	if desc := CauseDescription(d.catalog(), it.Rule, lang); desc != "" {
		return L["sii_cause"] + " " + it.Rule + ": " + desc
	}
	return L["sii_cause"] + " " + it.Rule + " (" + L["cause_unknown"] + ")"
}

// explanation is the main line of an item in Italian (and the CSV's explanation in
// both languages): the finding rule's text, the deadline with how far it is, or what
// the kind means. "" for a kind and rule the tables do not know.
func (d *Digest) explanation(it Item, lang string, L map[string]string) string {
	if it.Rule != "" && it.Kind != "sii_refusal" {
		if t := textOf(RuleTexts, it.Rule, lang); t != "" {
			return t
		}
	}
	if title := deadlineTitles[lang][it.Kind]; title != "" && it.DueOn != "" {
		if due, err := flows.ParseDate(it.DueOn); err == nil {
			today := flows.Today(d.PeriodEnd)
			when := whenText(L, today.DaysUntil(due), d.calendar().WorkingDaysBetween(today, due))
			return strings.ToUpper(title[:1]) + title[1:] + ": " + due.String() + " — " + when + "."
		}
	}
	if it.Kind == "mail_late" {
		if t := mailLateText(it.Value, lang); t != "" {
			return t
		}
	}
	return textOf(KindExplanations, it.Kind, lang)
}

// mailLateText words a mail_late's Value ("count;first queued;last sent;max delay
// seconds", daemon.mailLate): "Posta in ritardo: 3 messaggi accodati dalle 14:05 del
// 03/12/2026 sono partiti in ritardo, l'ultimo alle 19:10 del 03/12/2026 (ritardo
// massimo 5 h 5 min)." "" if it does not parse.
func mailLateText(value, lang string) string {
	f := strings.Split(value, ";")
	if len(f) != 4 {
		return ""
	}
	n, err1 := strconv.Atoi(f[0])
	from, err2 := archive.ParseTS(f[1])
	to, err3 := archive.ParseTS(f[2])
	secs, err4 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || n <= 0 {
		return ""
	}
	fr, tr := from.In(flows.Rome), to.In(flows.Rome)
	delay := mail.FormatDelay(time.Duration(secs)*time.Second, lang)
	if lang == "en" {
		what := fmt.Sprintf("%d mails", n)
		if n == 1 {
			what = "1 mail"
		}
		return fmt.Sprintf("Mail sent late: %s queued from %s on %s went out late, the last at %s on %s (up to %s late): the mail server did not answer, or cmord was not running.",
			what, fr.Format("15:04"), fr.Format("02/01/2006"), tr.Format("15:04"), tr.Format("02/01/2006"), delay)
	}
	what := fmt.Sprintf("%d messaggi accodati", n)
	verb := "sono partiti"
	if n == 1 {
		what, verb = "1 messaggio accodato", "è partito"
	}
	return fmt.Sprintf("Posta in ritardo: %s dalle %s del %s %s in ritardo, l'ultimo alle %s del %s (ritardo massimo %s): il server di posta non rispondeva, o cmord non era in esecuzione.",
		what, fr.Format("15:04"), fr.Format("02/01/2006"), verb, tr.Format("15:04"), tr.Format("02/01/2006"), delay)
}

// notEligibleAction is what a refusal for an eligibility rule asks: nothing to correct.
var notEligibleAction = Text{
	"Non ammissibile, nessuna correzione: il caso non ha diritto all'indennizzo (condizione non soddisfatta). Nessuna azione, salvo che il dato in fatturazione sia sbagliato.",
	"Not eligible, nothing to correct: the case has no right to the indemnity (a condition is not met). No action, unless the billing data is wrong.",
}

// itemAction is the action an item asks for: the catalogue's in Italian (the
// exception's own, specific, in English), and for a row or case refused for an
// eligibility rule "not eligible, nothing to correct" rather than "correct the row".
func itemAction(it Item, lang string) string {
	if (it.Kind == "row_refused" || it.Kind == "case_refused") && (flows.Finding{Rule: it.Rule, Value: it.Value}).Eligibility() {
		return notEligibleAction.In(lang)
	}
	if lang == "en" && it.Action != "" {
		return it.Action
	}
	return Info(it.Kind).Action(lang)
}

func (d *Digest) itemView(it Item, lang string, m masker, L map[string]string) itemView {
	info := Info(it.Kind)
	// Case keys first (they carry the customer, masked here), then every CF left.
	raw := m.text(humanizeCaseKeys(it.Message, m, lang), it.CustomerID, it.CustomerName)
	v := itemView{L: L, ID: it.ID, Ref: exceptionRef(it.ID, L), Sev: it.Severity, SevLabel: L[it.Severity], Kind: it.Kind, Title: info.Title(lang),
		Message: raw, Practice: it.PracticeCode,
		Subject: humanizeCaseKeys(it.Subject, m, lang), FirstSeen: FormatTime(it.FirstSeen), LastSeen: FormatTime(it.LastSeen),
		Age: formatAge(it.Age, lang), Count: it.Count, Style: htmltemplate.CSS(sevStyle[it.Severity]),
		Border: htmltemplate.CSS("border-left:4px solid " + sevBorder[it.Severity])}
	// In Italian the main line is ours, from the tables; the code's English message
	// follows as a technical detail. In English the message is specific and readable.
	if lang != "en" {
		if ex := d.explanation(it, lang, L); ex != "" {
			v.Message = ex
			if raw != "" && raw != ex {
				v.Detail = AmountsIT(raw) // an Italian reader reads 6,40, not 6.40
			}
		}
	}
	// The Italian digest gives the catalogue's action; the exception's own (English,
	// specific) action is used in English.
	v.Action = itemAction(it, lang)
	if it.Point != "" {
		v.Point = it.PointLabel + " " + it.Point
	}
	v.Customer = customer(m, it.CustomerID, it.CustomerName)
	if it.FileName != "" {
		v.File = it.FileName
		if it.Line > 0 {
			v.File += fmt.Sprintf(", %s %d", L["line"], it.Line)
		}
	}
	var where []string
	if it.Field != "" {
		where = append(where, L["field"]+" "+it.Field)
	}
	if r := d.ruleText(it, lang, L); r != "" {
		where = append(where, r)
	}
	if it.Value != "" && it.Kind != "mail_late" { // mail_late's Value is data, worded by explanation
		label := L["value"]
		if it.Kind == "sii_refusal" {
			label = L["motivation"] // the SII's MOTIVAZIONE, verbatim
		}
		val := it.Value
		if lang != "en" && IsAmountField(it.Field, it.Rule) {
			val = AmountIT(val)
		}
		where = append(where, label+" «"+m.text(humanizeCaseKeys(val, m, lang), it.CustomerID, it.CustomerName)+"»")
	}
	v.Where = strings.Join(where, ", ")
	if v.Subject == v.Practice || v.Subject == it.FileName {
		v.Subject = ""
	}
	if it.DueOn != "" {
		if due, err := flows.ParseDate(it.DueOn); err == nil {
			v.Due = due.String()
		}
	}
	if !it.ResolvedAt.IsZero() {
		v.Resolved = FormatTime(it.ResolvedAt)
		v.Resolution = it.Resolution
		switch it.ResolvedBy {
		case "":
		case "auto":
			// The note of an automatic resolution is the code's English; the CSV keeps it.
			if lang != "en" {
				v.Resolution = L["auto"]
			} else {
				v.Resolution = strings.TrimSpace(v.Resolution + " (" + L["auto"] + ")")
			}
		default:
			v.Resolution = strings.TrimSpace(v.Resolution + " (" + L["by"] + " " + it.ResolvedBy + ")")
		}
	}
	if it.Muted {
		v.Muted = fmt.Sprintf(L["muted_by"], it.MutedBy)
	}
	return v
}

// periodNote says where a first digest's period, or a preview's, starts ("" for a
// digest that follows another: its period starts where that one ended, as always).
func periodNote(L map[string]string, d *Digest) string {
	switch {
	case d.FromFirst:
		return L["first_all"]
	case d.FirstDigest:
		return L["first"]
	case d.SinceLast:
		return L["since_last"]
	}
	return ""
}

// one is label key of L, or its singular form (key_one) when n is 1 and L has one:
// Italian "le prime 1 eccezioni" and "e altre 1" are not Italian.
func one(L map[string]string, key string, n int) string {
	if s, ok := L[key+"_one"]; ok && n == 1 {
		return s
	}
	return L[key]
}

func (d *Digest) view(lang string, includePersonal bool) view {
	if lang != "en" {
		lang = "it"
	}
	L := labels[lang]
	m := masker{on: !includePersonal}
	limit := d.MaxItems
	if limit <= 0 {
		limit = 50
	}
	v := view{L: L, Lang: lang, Title: L["title"] + " — " + flows.Today(d.PeriodEnd).String(), Company: d.Company,
		PeriodStart: FormatTime(d.PeriodStart), PeriodEnd: FormatTime(d.PeriodEnd), PeriodNote: periodNote(L, d), Empty: d.Empty(),
		OpenTotal: d.OpenTotal(), Muted: d.Muted, Masked: !includePersonal,
		Footer: fmt.Sprintf(L["footer"], FormatTime(d.PeriodEnd))}
	if d.Anchor != "" {
		v.Footer += " " + fmt.Sprintf(L["anchor"], d.Anchor)
	}
	// Say where the full list is only where it really is: a preview attaches nothing,
	// and bounded attachments carry only its most urgent rows.
	attached, total := d.Attached(), d.ListTotal()
	bounded := (d.AttachCSV || d.AttachXLSX) && attached < total
	switch {
	case d.AttachCSV && d.AttachXLSX && bounded:
		v.CSVNote = fmt.Sprintf(one(L, "attached_both_cut", attached), attached, total)
	case d.AttachCSV && d.AttachXLSX:
		v.CSVNote = L["attached_both"]
	case d.AttachCSV && bounded:
		v.CSVNote = fmt.Sprintf(one(L, "attached_cut", attached), attached, total)
	case d.AttachCSV:
		v.CSVNote = L["attached"]
	case d.CSVFile != "":
		v.CSVNote = fmt.Sprintf(L["csv_file"], d.CSVFile)
	}
	switch {
	case bounded:
		v.AttachNote = fmt.Sprintf(one(L, "attach_cut", attached), attached, total, FullListCommand(lang))
	case d.WouldAttach > 0 && d.WouldAttach < total:
		v.AttachNote = fmt.Sprintf(one(L, "preview_cut", d.WouldAttach), d.WouldAttach, total, FullListCommand(lang))
	}
	if cmd := FullListCommand(lang); v.AttachNote != "" && strings.HasSuffix(v.AttachNote, cmd) {
		v.AttachNoteHead, v.AttachCmd = strings.TrimSuffix(v.AttachNote, cmd), cmd
	}
	if !v.Empty {
		switch {
		case d.AttachXLSX && bounded:
			v.Actions = append(v.Actions, fmt.Sprintf(one(L, "act_xlsx_cut", attached), XLSXName(lang, d.PeriodEnd), attached, total))
		case d.AttachXLSX:
			v.Actions = append(v.Actions, fmt.Sprintf(L["act_xlsx"], XLSXName(lang, d.PeriodEnd)))
		}
		v.Actions = append(v.Actions, L["act_not_eligible"])
	}
	if d.Contact != "" {
		v.Actions = append(v.Actions, fmt.Sprintf(L["act_contact"], d.Contact))
	} else {
		v.Actions = append(v.Actions, L["act_contact_none"])
	}
	v.Actions = append(v.Actions, L["act_manual"])
	for i, r := range d.Rejected {
		if i == limit {
			v.RejMore = len(d.Rejected) - limit
			break
		}
		reason := r.Reason
		if rs := []rune(reason); len(rs) > 400 {
			reason = string(rs[:400]) + "…"
		}
		v.Rejected = append(v.Rejected, rejectedView{Name: r.Name, Flow: FlowName(d.cat, r.Kind, lang), At: FormatTime(r.At),
			Reason: m.text(humanizeCaseKeys(reason, m, lang), "", "")})
	}
	moreText := func(sec, n int) string {
		switch {
		case bounded && d.sectionAttached(sec) < len(d.sections()[sec]):
			return fmt.Sprintf(one(L, "more_cut", n), n, d.sectionAttached(sec), len(d.sections()[sec]))
		case d.AttachCSV:
			return fmt.Sprintf(one(L, "more", n), n)
		case d.CSVFile != "":
			return fmt.Sprintf(one(L, "more_file", n), n, d.CSVFile)
		}
		return fmt.Sprintf(one(L, "more_none", n), n)
	}
	dash := func(n int) string {
		if n == 0 {
			return "–"
		}
		return strconv.Itoa(n)
	}
	for _, f := range d.Flows {
		v.Flows = append(v.Flows, flowView{Name: FlowName(d.cat, f.Kind, lang), Kind: f.Kind, Received: f.Received, Rejected: f.Rejected, Duplicates: f.Duplicates,
			RowsRefused: f.RowsRefused, Built: f.Built, Publ: f.Published, ReceivedS: dash(f.Received), RejectedS: dash(f.Rejected),
			DuplicatesS: dash(f.Duplicates), RowsRefusedS: dash(f.RowsRefused), BuiltS: dash(f.Built), P: dash(f.Published)})
	}
	// In the order a reader follows: billing's drops, then the SII's flows by code
	// (AI1.0050, AI1.0100, AI2.0200, RE1.0050, …: a request next to its answers), then
	// the exports; the archive lists them by internal key, which scattered them.
	sort.SliceStable(v.Flows, func(i, j int) bool {
		a, b := v.Flows[i], v.Flows[j]
		if ga, gb := flowGroup(d.cat, a.Kind), flowGroup(d.cat, b.Kind); ga != gb {
			return ga < gb
		}
		return a.Name < b.Name
	})
	v.FlowWidth = utf8.RuneCountInString(L["flow"])
	for _, f := range v.Flows {
		v.FlowWidth = max(v.FlowWidth, utf8.RuneCountInString(f.Name))
	}
	for _, s := range d.Open {
		v.Open = append(v.Open, sevView{Sev: s.Severity, Label: L[s.Severity], Count: s.Count, Style: htmltemplate.CSS(sevStyle[s.Severity])})
	}
	for _, k := range d.ByKind {
		v.ByKind = append(v.ByKind, kindView{Kind: k.Kind, Title: Info(k.Kind).Title(lang), Sev: k.Severity, SevLabel: L[k.Severity],
			Count: k.Count, New: k.New, Style: htmltemplate.CSS(sevStyle[k.Severity])})
	}
	for si, s := range []struct {
		key   string
		items []Item
	}{{"new", d.New}, {"open", d.StillOpen}, {"resolved", d.Resolved}} {
		sec := sectionView{Key: s.key, Title: L[s.key], None: L["none_"+s.key]}
		for i, it := range s.items {
			if i == limit {
				sec.More = len(s.items) - limit
				sec.MoreText = moreText(si, sec.More)
				break
			}
			sec.Items = append(sec.Items, d.itemView(it, lang, m, L))
		}
		v.Sections = append(v.Sections, sec)
	}
	for i, dl := range d.Deadlines {
		if i == limit {
			v.DeadMore = len(d.Deadlines) - limit
			break
		}
		sev := dl.Severity
		when := whenText(L, dl.DaysLeft, dl.WorkingDaysLeft)
		dv := deadlineView{Due: dl.Due.String(), When: when, Title: deadlineTitles[lang][dl.Kind], Kind: dl.Kind,
			Practice: dl.PracticeCode, State: stateLabel(dl.State, lang), Customer: customer(m, dl.CustomerID, dl.CustomerName),
			Sev: sev, SevLabel: L[sev], Style: htmltemplate.CSS(sevStyle[sev])}
		if dl.Point != "" {
			dv.Point = dl.PointLabel + " " + dl.Point
		}
		v.Deadlines = append(v.Deadlines, dv)
	}
	return v
}

// Render returns the subject, the text and HTML bodies and the CSV attachment in lang
// ("it" by default, "en"). Personal data (customer CF/P.IVA and name) appear only with
// includePersonal; otherwise they are masked everywhere, the CSV included.
func (d *Digest) Render(lang string, includePersonal bool) (subject, text, html string, csvData []byte, err error) {
	if subject, text, html, err = d.renderBodies(lang, includePersonal); err != nil {
		return "", "", "", nil, err
	}
	if csvData, err = d.CSV(lang, includePersonal); err != nil {
		return "", "", "", nil, err
	}
	return subject, text, html, csvData, nil
}

// renderBodies returns the subject and the text and HTML bodies.
func (d *Digest) renderBodies(lang string, includePersonal bool) (subject, text, html string, err error) {
	v := d.view(lang, includePersonal)
	var tb, hb bytes.Buffer
	if err := textTemplates.ExecuteTemplate(&tb, "digest.txt.tmpl", v); err != nil {
		return "", "", "", fmt.Errorf("digest: render text: %w", err)
	}
	if err := htmlTemplates.ExecuteTemplate(&hb, "digest.html.tmpl", v); err != nil {
		return "", "", "", fmt.Errorf("digest: render html: %w", err)
	}
	return v.Title, tb.String(), hb.String(), nil
}

var csvHeaders = map[string][]string{
	"it": {"ID", "Sezione", "Gravità", "Tipo", "Descrizione", "Spiegazione", "Responsabile", "Pratica", "POD/PDR", "CF/P.IVA cliente", "Cliente",
		"File", "Riga", "Campo", "Regola / causale SII", "Valore / motivazione", "Oggetto", "Dettaglio tecnico", "Cosa fare", "Scadenza",
		"Prima rilevazione (Roma)", "Ultima rilevazione (Roma)", "Occorrenze", "Risolta il (Roma)", "Esito", "Silenziata"},
	"en": {"ID", "Section", "Severity", "Kind", "Description", "Explanation", "Owner", "Practice", "POD/PDR", "Customer CF/VAT", "Customer",
		"File", "Line", "Field", "Rule / SII cause", "Value / motivation", "Subject", "Message", "Action", "Due",
		"First seen (Rome)", "Last seen (Rome)", "Count", "Resolved (Rome)", "Resolution", "Muted"},
}

// csvSafe neutralises a cell a spreadsheet would read as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// newCSVWriter writes the digest's CSV dialect: semicolons and CRLF, as an Italian
// Excel or LibreOffice opens it.
func newCSVWriter(w io.Writer) *csv.Writer {
	cw := csv.NewWriter(w)
	cw.Comma, cw.UseCRLF = ';', true
	return cw
}

// writeCSVRow writes a row of the list, each cell made safe from formula injection.
func writeCSVRow(w *csv.Writer, row []string) error {
	for i := range row {
		row[i] = csvSafe(row[i])
	}
	return w.Write(row)
}

// CSV is the full list (every new, still-open and resolved exception, without the
// body's per-section cap), or its most urgent rows once Attachments bounded it, for
// programs: ';' separated, UTF-8 with BOM, CRLF, cells a spreadsheet would read as
// formulas neutralised; data only, no trailer (the body says when it is partial).
// People get the same list as XLSX (XLSX), where identifiers are text cells and keep
// their leading zeros.
func (d *Digest) CSV(lang string, includePersonal bool) ([]byte, error) {
	if lang != "en" {
		lang = "it"
	}
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	w := newCSVWriter(&buf)
	if err := w.Write(csvHeaders[lang]); err != nil {
		return nil, err
	}
	err := d.eachRow(lang, includePersonal, func(row []string) error { return writeCSVRow(w, row) })
	if err != nil {
		return nil, err
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// eachRow calls fn with the full list's rows, one per exception, in the columns of
// csvHeaders; it stops at fn's first error. The rows are made one at a time: the CSV
// and the XLSX of a backlog of 100,000 exceptions held every row's 26 cells at once
// besides the file being written.
func (d *Digest) eachRow(lang string, includePersonal bool, fn func(row []string) error) error {
	return d.eachRowAt(lang, includePersonal, func(_, _ int, row []string) error { return fn(row) })
}

// eachRowAt is eachRow telling fn each row's section (0 new, 1 still open, 2
// resolved) and index in it. Only the rows within the attachments' bound (d.cut, set
// by Attachments) are made.
func (d *Digest) eachRowAt(lang string, includePersonal bool, fn func(sec, i int, row []string) error) error {
	L := labels[lang]
	m := masker{on: !includePersonal}
	rome := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(flows.Rome).Format("02/01/2006 15:04:05")
	}
	for sec, s := range []struct {
		key   string
		items []Item
	}{{"new", d.New}, {"open", d.StillOpen}, {"resolved", d.Resolved}} {
		for i, it := range s.items[:d.sectionAttached(sec)] {
			info := Info(it.Kind)
			point, line, due, muted := "", "", "", ""
			if it.Point != "" {
				point = it.Point
			}
			if it.Line > 0 {
				line = strconv.Itoa(it.Line)
			}
			if dd, err := flows.ParseDate(it.DueOn); err == nil {
				due = dd.String()
			}
			if it.Muted {
				muted = strconv.FormatInt(it.MutedBy, 10)
			}
			action := itemAction(it, lang)
			rule := it.Rule
			if it.Kind == "sii_refusal" && it.Rule != "" {
				rule = strings.TrimPrefix(d.ruleText(it, lang, L), L["sii_cause"]+" ")
			}
			clean := func(s string) string { return m.text(humanizeCaseKeys(s, m, lang), it.CustomerID, it.CustomerName) }
			value, message := it.Value, it.Message
			if lang != "en" { // amounts with the decimal comma, as an Italian Excel reads them
				message = AmountsIT(message)
				if IsAmountField(it.Field, it.Rule) {
					value = AmountIT(value)
				}
			}
			row := []string{csvID(it.ID), L[s.key], L[it.Severity], it.Kind, info.Title(lang), d.explanation(it, lang, L),
				ownerLabel(it.Owner, lang), it.PracticeCode, point, m.id(it.CustomerID), m.name(it.CustomerName), it.FileName, line, it.Field,
				rule, clean(value), clean(it.Subject), clean(message),
				action, due, rome(it.FirstSeen), rome(it.LastSeen), strconv.Itoa(it.Count), rome(it.ResolvedAt), it.Resolution, muted}
			if err := fn(sec, i, row); err != nil {
				return err
			}
		}
	}
	return nil
}

// exceptionRef names an exception by its id; a preview shows an exception it would
// raise, which has no id yet, as new.
func exceptionRef(id int64, L map[string]string) string {
	if id == 0 {
		return L["not_raised"]
	}
	return "#" + strconv.FormatInt(id, 10)
}

func csvID(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}
