// Package export writes practices out for people and other systems: typed XLSX for
// people (identifiers are text cells: a PDR 00881234567890 keeps its zeros), CSV for
// programs (Italian separators; a spreadsheet opening it by double-click reads such
// identifiers as numbers, TestIdentifiersInItalianLibreOffice shows it), JSON, and the
// per-practice dossier (a zip of every file behind a practice, its history and a
// SHA-256 manifest).
//
// Money stays flows.Amount (integer cents) end to end: CSV and JSON write it as
// decimal text; XLSX converts cents to a float64 only at the cell boundary (cents/100,
// one correctly rounded division of an exact integer, whose shortest representation
// is the exact decimal), and nothing is ever summed in floating point.
package export

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/flows"
)

// Options says how to write an export.
type Options struct {
	Format string // "csv" (default) | "xlsx" | "json"
	Lang   string // "it" (default) | "en": headers and sheet name, and the CSV separators below
	// CSV separators follow the language unless set: Italian (the default) writes
	// amounts as 1234,50 and separates fields with ';', which an Italian Excel opens
	// as numbers in columns; English writes 1234.50 and ','. DecimalComma or
	// DecimalPoint (not both) and Comma override the language's choice.
	DecimalComma bool // CSV only: amounts as 1234,50 whatever the language
	DecimalPoint bool // CSV only: amounts as 1234.50 whatever the language
	Comma        rune // CSV only: the field separator; 0 = by language (';' it, ',' en)
	// Progress, if set, is called now and then with the rows written so far and the
	// total expected (the total is counted first, which costs one more query).
	Progress func(done, total int)
}

// langOf is "en" or "it" (the default).
func langOf(lang string) string {
	if lang == "en" {
		return "en"
	}
	return "it"
}

// Formats are the accepted values of Options.Format.
var Formats = []string{"csv", "xlsx", "json"}

// cellKind says how a column is typed in XLSX and formatted in CSV.
type cellKind int

const (
	kindText cellKind = iota
	kindDate
	kindAmount
	kindInt
)

// row is one practice ready to be written: the practice, what is joined to it, and
// the language of the words in its cells.
type row struct {
	p          *archive.Practice
	openExcept int
	lang       string
	states     stateNames
}

// stateNames caches the words of each state in one language: a million-row export
// names the same twenty states over and over.
type stateNames map[string]string

func (c stateNames) of(state, lang string) string {
	if c == nil {
		return digest.StateName(state, lang)
	}
	n, ok := c[state]
	if !ok {
		n = digest.StateName(state, lang)
		c[state] = n
	}
	return n
}

// column is one column of a practice export.
type column struct {
	it, en string
	kind   cellKind
	width  float64 // XLSX column width, in characters
	// stored is the archive.PracticeTextColumns column the CSV writes this column
	// from, conv how (csv.go); the XLSX and JSON exports use the functions below.
	stored string
	conv   csvConv
	text   func(r row) string
	date   func(r row) flows.Date
	amount func(r row) flows.Amount
	num    func(r row) int
	// uscente: the amount is the uscente's own computation (credit, 4-month
	// estimate), unknown to an entrante practice, whose cell is left empty: 0,00
	// there read as "no credit".
	uscente bool
}

// RoleEntrante is the role of a practice where this company is the entrante seller.
const RoleEntrante = "entrante"

// blank: the column has no value for r's practice (an uscente-only amount of an
// entrante practice).
func (c column) blank(r row) bool { return c.uscente && r.p.Role == RoleEntrante }

func sinceDate(t time.Time) flows.Date {
	if t.IsZero() {
		return flows.Date{}
	}
	return flows.DateOf(t.In(flows.Rome))
}

// columns is the layout of every practice export, in order.
var columns = []column{
	{it: "codice pratica (CP_UTENTE)", en: "practice code (CP_UTENTE)", width: 17, stored: "cp_utente", text: func(r row) string { return r.p.CPUtente }},
	{it: "CP_GESTORE", en: "CP_GESTORE", width: 17, stored: "cp_gestore", text: func(r row) string { return r.p.CPGestore }},
	{it: "ruolo", en: "role", width: 10, stored: "role", text: func(r row) string { return r.p.Role }},
	{it: "settore", en: "sector", width: 8, stored: "sector", text: func(r row) string { return r.p.Sector }},
	{it: "POD/PDR", en: "POD/PDR", width: 17, stored: "point", text: func(r row) string { return r.p.Point }},
	{it: "CF/P.IVA cliente", en: "customer CF/VAT no.", width: 18, stored: "customer_id", text: func(r row) string { return r.p.CustomerID }},
	{it: "denominazione", en: "customer name", width: 30, stored: "customer_name", text: func(r row) string { return r.p.CustomerName }},
	{it: "data switch", en: "switch date", kind: kindDate, width: 11, stored: "switch_date", conv: csvDate, date: func(r row) flows.Date { return r.p.SwitchDate }},
	// The state in words, with the code `cmord practices --state` takes: the digest's
	// table (digest.StateName), so the mail and the spreadsheet say the same.
	{it: "stato", en: "state", width: 34, stored: "state", conv: csvState, text: func(r row) string { return r.states.of(r.p.State, r.lang) }},
	{it: "dal", en: "since", kind: kindDate, width: 11, stored: "state_since", conv: csvInstantDate, date: func(r row) flows.Date { return sinceDate(r.p.StateSince) }},
	{it: "credito", en: "credit", kind: kindAmount, width: 12, stored: "credit_cents", conv: csvCents, amount: func(r row) flows.Amount { return r.p.Credit }, uscente: true},
	{it: "stima 4 mesi", en: "4-month estimate", kind: kindAmount, width: 12, stored: "estimate_cents", conv: csvCents, amount: func(r row) flows.Amount { return r.p.Estimate }, uscente: true},
	{it: "CMOR precedente", en: "previous CMOR", kind: kindAmount, width: 12, stored: "previous_cents", conv: csvCents, amount: func(r row) flows.Amount { return r.p.Previous }},
	{it: "CMOR", en: "CMOR", kind: kindAmount, width: 12, stored: "cmor_cents", conv: csvCents, amount: func(r row) flows.Amount { return r.p.CMOR }},
	{it: "addebitato", en: "charged", kind: kindAmount, width: 12, stored: "charged_cents", conv: csvCents, amount: func(r row) flows.Amount { return r.p.Charged }},
	{it: "incassato", en: "collected", kind: kindAmount, width: 12, stored: "collected_cents", conv: csvCents, amount: func(r row) flows.Amount { return r.p.Collected }},
	{it: "causale", en: "cause code", width: 8, stored: "cause_code", text: func(r row) string { return r.p.CauseCode }},
	{it: "motivazione", en: "motivation", width: 40, stored: "motivation", text: func(r row) string { return r.p.Motivation }},
	{it: "finestra apertura", en: "window opens", kind: kindDate, width: 11, stored: "window_open", conv: csvDate, date: func(r row) flows.Date { return r.p.WindowOpen }},
	{it: "finestra chiusura", en: "window closes", kind: kindDate, width: 11, stored: "window_close", conv: csvDate, date: func(r row) flows.Date { return r.p.WindowClose }},
	{it: "termine sospensione", en: "suspension term", kind: kindDate, width: 11, stored: "suspension_term", conv: csvDate, date: func(r row) flows.Date { return r.p.SuspensionTerm }},
	{it: "data richiesta", en: "request date", kind: kindDate, width: 11, stored: "request_date", conv: csvDate, date: func(r row) flows.Date { return r.p.RequestDate }},
	{it: "data risposta", en: "answer date", kind: kindDate, width: 11, stored: "answer_date", conv: csvDate, date: func(r row) flows.Date { return r.p.AnswerDate }},
	{it: "eccezioni aperte", en: "open exceptions", kind: kindInt, width: 10, stored: "id", conv: csvOpenExceptions, num: func(r row) int { return r.openExcept }},
}

// Headers returns the column headers of a practice export in lang ("it" or "en").
func Headers(lang string) []string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = c.it
		if lang == "en" {
			out[i] = c.en
		}
	}
	return out
}

// Neutralise defuses CSV/formula injection: a text cell that a spreadsheet would read
// as a formula (it starts with = + - @, or a tab, carriage return or line feed that
// some spreadsheets skip before one; a CR- or LF-led cell also reads, once quoted,
// as a row of its own to a careless importer) gets a leading apostrophe, which Excel
// and LibreOffice show as text. Leading spaces are looked through for the same
// reason: some importers trim them. Only free text goes through here; amounts and
// dates we format ourselves are not text cells.
func Neutralise(s string) string {
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i == len(s) {
		return s
	}
	switch s[i] {
	case '=', '+', '-', '@', '\t', '\r', '\n':
		return "'" + s
	}
	return s
}

// CSVSeparators returns the CSV field separator and decimal separator these options
// give: the explicit ones, else the language's (';' and ',' in Italian, ',' and '.'
// in English).
func (o Options) CSVSeparators() (field rune, decimal byte) {
	field, decimal = ';', ','
	if o.Lang == "en" {
		field, decimal = ',', '.'
	}
	if o.Comma != 0 {
		field = o.Comma
	}
	switch {
	case o.DecimalComma:
		decimal = ','
	case o.DecimalPoint:
		decimal = '.'
	}
	return field, decimal
}

func (o Options) validate() error {
	switch o.Format {
	case "", "csv", "xlsx", "json":
	default:
		return fmt.Errorf("export: unknown format %q (csv, xlsx or json)", o.Format)
	}
	switch o.Lang {
	case "", "it", "en":
	default:
		return fmt.Errorf("export: unknown language %q (it or en)", o.Lang)
	}
	if o.DecimalComma && o.DecimalPoint {
		return errors.New("export: decimal comma and decimal point both asked for")
	}
	switch o.Comma {
	case 0, ';', ',', '\t', '|':
	default:
		return fmt.Errorf("export: CSV separator %q not supported (';', ',', tab or '|')", o.Comma)
	}
	return nil
}

// rowWriter is one output format.
type rowWriter interface {
	header() error
	write(r row) error
	close() error
}

// Practices writes the practices matching f to w in opt.Format and returns how many
// it wrote. Rows stream from the archive: memory does not grow with the number of
// practices (XLSX spills to a temporary file past 16 MB, as excelize does).
func Practices(ctx context.Context, store *archive.Store, f archive.PracticeFilter, w io.Writer, opt Options) (n int, err error) {
	if err := opt.validate(); err != nil {
		return 0, err
	}
	total := 0
	if opt.Progress != nil {
		if total, err = store.CountPractices(ctx, f); err != nil {
			return 0, err
		}
		total = max(total-f.Offset, 0)
		if f.Limit > 0 {
			total = min(total, f.Limit)
		}
		opt.Progress(0, total)
	}
	// Open exceptions are few (hundreds) however many practices there are: one
	// grouped query instead of one per row.
	open, err := store.OpenExceptionCounts(ctx)
	if err != nil {
		return 0, err
	}
	// counted counts a row written, reports progress now and then, and stops a
	// cancelled export.
	counted := func() error {
		n++
		if opt.Progress != nil && n%1000 == 0 {
			opt.Progress(n, total)
		}
		if n%4096 == 0 {
			return ctx.Err()
		}
		return nil
	}
	if opt.Format == "" || opt.Format == "csv" {
		// The CSV is written from the stored text of each practice (csv.go): the
		// same bytes as from a Practice, without building one per row.
		cw := newCSVWriter(w, opt, open)
		if err := cw.header(); err != nil {
			return 0, err
		}
		err = store.EachPracticeText(ctx, f, func(cols [][]byte) error {
			if err := cw.write(cols); err != nil {
				return err
			}
			return counted()
		})
		if err == nil {
			err = cw.close()
		}
	} else {
		err = eachRow(ctx, store, f, w, opt, open, counted)
	}
	if err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	if opt.Progress != nil {
		opt.Progress(n, total)
	}
	return n, nil
}

// eachRow writes the XLSX or JSON export of the practices matching f, calling counted
// after each row.
func eachRow(ctx context.Context, store *archive.Store, f archive.PracticeFilter, w io.Writer, opt Options,
	open map[int64]int, counted func() error) error {
	var rw rowWriter
	var err error
	switch opt.Format {
	case "xlsx":
		if rw, err = newXLSXWriter(w, opt); err != nil {
			return err
		}
	default:
		rw = newJSONWriter(w)
	}
	if err := rw.header(); err != nil {
		return err
	}
	lang, states := langOf(opt.Lang), stateNames{}
	f.WithoutCase = opt.Format != "json" // only the JSON record carries the case
	err = store.EachPractice(ctx, f, func(p archive.Practice) error {
		if err := rw.write(row{p: &p, openExcept: open[p.ID], lang: lang, states: states}); err != nil {
			return err
		}
		return counted()
	})
	if err != nil {
		return err
	}
	return rw.close()
}

// Record is a practice as JSON: amounts as decimal strings ("120.50", never floats),
// dates ISO (AAAA-MM-GG), instants RFC 3339 in Europe/Rome.
type Record struct {
	ID             int64           `json:"id"`
	CPUtente       string          `json:"cp_utente,omitempty"`
	CPGestore      string          `json:"cp_gestore,omitempty"`
	Role           string          `json:"role"`
	Sector         string          `json:"sector"`
	CompanyPIVA    string          `json:"company_piva"`
	Point          string          `json:"point"`
	CustomerID     string          `json:"customer_id"`
	CustomerName   string          `json:"customer_name,omitempty"`
	SwitchDate     string          `json:"switch_date,omitempty"`
	State          string          `json:"state"`
	StateSince     string          `json:"state_since"`
	Credit         string          `json:"credit"`
	Estimate       string          `json:"estimate"`
	Previous       string          `json:"previous_cmor"`
	CMOR           string          `json:"cmor"`
	Charged        string          `json:"charged"`
	Collected      string          `json:"collected"`
	CauseCode      string          `json:"cause_code,omitempty"`
	Motivation     string          `json:"motivation,omitempty"`
	WindowOpen     string          `json:"window_open,omitempty"`
	WindowClose    string          `json:"window_close,omitempty"`
	SuspensionTerm string          `json:"suspension_term,omitempty"`
	RequestDate    string          `json:"request_date,omitempty"`
	AnswerDate     string          `json:"answer_date,omitempty"`
	LinkedID       int64           `json:"linked_id,omitempty"`
	OpenExceptions int             `json:"open_exceptions"`
	CaseKey        string          `json:"case_key"`
	Data           json.RawMessage `json:"data,omitempty"`
	CaseUnreadable bool            `json:"case_unreadable,omitempty"` // the stored case cannot be read (Data left out): archive verify
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
}

func romeTS(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(flows.Rome).Format(time.RFC3339)
}

// NewRecord converts a practice (and its number of open exceptions) to its JSON form.
func NewRecord(p archive.Practice, openExceptions int) Record {
	data := p.Data
	unreadable := p.CaseUnreadable()
	if len(data) == 0 || string(data) == "{}" || unreadable {
		data = nil
	}
	return Record{
		ID: p.ID, CPUtente: p.CPUtente, CPGestore: p.CPGestore, Role: p.Role, Sector: p.Sector, CompanyPIVA: p.CompanyPIVA,
		Point: p.Point, CustomerID: p.CustomerID, CustomerName: p.CustomerName, SwitchDate: p.SwitchDate.ISO(), State: p.State,
		StateSince: romeTS(p.StateSince), Credit: p.Credit.String(), Estimate: p.Estimate.String(), Previous: p.Previous.String(),
		CMOR: p.CMOR.String(), Charged: p.Charged.String(), Collected: p.Collected.String(), CauseCode: p.CauseCode,
		Motivation: p.Motivation, WindowOpen: p.WindowOpen.ISO(), WindowClose: p.WindowClose.ISO(),
		SuspensionTerm: p.SuspensionTerm.ISO(), RequestDate: p.RequestDate.ISO(), AnswerDate: p.AnswerDate.ISO(),
		LinkedID: p.LinkedID, OpenExceptions: openExceptions, CaseKey: p.CaseKey, Data: data, CaseUnreadable: unreadable,
		CreatedAt: romeTS(p.CreatedAt), UpdatedAt: romeTS(p.UpdatedAt),
	}
}

// jsonWriter writes a JSON array, one record per line, streaming.
type jsonWriter struct {
	bw    *bufio.Writer
	first bool
}

func newJSONWriter(w io.Writer) *jsonWriter {
	return &jsonWriter{bw: bufio.NewWriterSize(w, 64<<10), first: true}
}

func (j *jsonWriter) header() error { _, err := j.bw.WriteString("["); return err }

func (j *jsonWriter) write(r row) error {
	b, err := json.Marshal(NewRecord(*r.p, r.openExcept))
	if err != nil {
		return err
	}
	sep := ",\n"
	if j.first {
		sep, j.first = "\n", false
	}
	j.bw.WriteString(sep)
	_, err = j.bw.Write(b)
	return err
}

func (j *jsonWriter) close() error {
	if !j.first {
		j.bw.WriteString("\n")
	}
	j.bw.WriteString("]\n")
	return j.bw.Flush()
}

// columnLetter returns the spreadsheet letter of column i (0-based; < 702).
func columnLetter(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return string(rune('A'+i/26-1)) + string(rune('A'+i%26))
}

// dateIT is flows.Date.String (GG/MM/AAAA, "" for no date) without fmt: a million-row
// export formats six dates per row.
func dateIT(d flows.Date) string {
	if d.IsZero() {
		return ""
	}
	b := [10]byte{'0' + byte(d.D/10), '0' + byte(d.D%10), '/', '0' + byte(d.M/10), '0' + byte(d.M%10), '/'}
	y := d.Y
	for i := 9; i >= 6; i-- {
		b[i] = '0' + byte(y%10)
		y /= 10
	}
	return string(b[:])
}

// amountText is flows.Amount.Format without fmt (same output: sign, units, the
// decimal separator, two decimals, no grouping).
func amountText(a flows.Amount, dec byte) string {
	var b [24]byte
	return string(appendAmount(b[:0], a.Cents(), dec))
}

// appendAmount appends amountText of v cents to b.
func appendAmount(b []byte, v int64, dec byte) []byte {
	var t [24]byte
	i := len(t)
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	cents := u % 100
	u /= 100
	i -= 3
	t[i], t[i+1], t[i+2] = dec, '0'+byte(cents/10), '0'+byte(cents%10)
	for {
		i--
		t[i] = '0' + byte(u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	if neg {
		i--
		t[i] = '-'
	}
	return append(b, t[i:]...)
}
