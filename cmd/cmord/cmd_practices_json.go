package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/cmord/cmord/archive"
)

// practicesJSONHelp documents the JSON of `cmord practices --format json` and
// `cmord practice show --format json`. The shape is a contract: fields are only ever
// added, never renamed or removed, and every field is always present.
const practicesJSONHelp = `JSON (--format json): an array with one object per practice, every field always present:
  id                 integer  archive id (cmord practice show '#ID')
  cp_utente          string   our practice code CP_UTENTE ("" if none)
  cp_gestore         string   the SII's practice code CP_GESTORE ("" if none)
  role               string   uscente | entrante
  sector             string   E | G
  point              string   POD or PDR
  customer_id        string   customer codice fiscale or partita IVA
  customer_name      string
  company_piva       string   the company the practice belongs to
  switch_date        string   AAAA-MM-GG ("" if unknown)
  state              string   practice state (see cmord catalog show)
  state_since        string   RFC 3339 in Europe/Rome
  credit, estimate, previous_cmor, cmor, charged, collected
                     string   euros as an exact decimal with a dot, e.g. "120.50"
  cause_code         string   last SII cause code
  motivation         string   last SII motivation
  window_open, window_close, suspension_term, request_date, answer_date
                     string   AAAA-MM-GG ("" if not set)
  linked_practice_id integer  previous practice it is linked to (0 if none)
  open_exceptions    integer  unresolved exceptions about the practice
These are the CSV columns plus id, company_piva and linked_practice_id.`

// practiceShowJSONHelp documents `cmord practice show --format json`.
const practiceShowJSONHelp = `JSON (--format json): one object, every field always present:
  practice    the practice, as one element of cmord practices --format json
  requests    [{flow, cp_utente, state, sent_at, answered_at, cause_code, motivation, file_id}]
  history     [{at, from, to, flow, file_id, file, line, cause_code, note}]  oldest first
  files       [{id, name, direction, kind, relations, lines, state, received_at, sha256}]
              each file once; relations: input, answer, built, sent, export
  exceptions  [{id, severity, kind, owner, message, action, file_id, line, due_on}]  the open ones
Times are RFC 3339 in Europe/Rome ("" if not yet); file_id and line are 0 when none.`

// practiceJSON is one practice in JSON: the export columns, typed for machines.
type practiceJSON struct {
	ID               int64  `json:"id"`
	CPUtente         string `json:"cp_utente"`
	CPGestore        string `json:"cp_gestore"`
	Role             string `json:"role"`
	Sector           string `json:"sector"`
	Point            string `json:"point"`
	CustomerID       string `json:"customer_id"`
	CustomerName     string `json:"customer_name"`
	CompanyPIVA      string `json:"company_piva"`
	SwitchDate       string `json:"switch_date"`
	State            string `json:"state"`
	StateSince       string `json:"state_since"`
	Credit           string `json:"credit"`
	Estimate         string `json:"estimate"`
	PreviousCMOR     string `json:"previous_cmor"`
	CMOR             string `json:"cmor"`
	Charged          string `json:"charged"`
	Collected        string `json:"collected"`
	CauseCode        string `json:"cause_code"`
	Motivation       string `json:"motivation"`
	WindowOpen       string `json:"window_open"`
	WindowClose      string `json:"window_close"`
	SuspensionTerm   string `json:"suspension_term"`
	RequestDate      string `json:"request_date"`
	AnswerDate       string `json:"answer_date"`
	LinkedPracticeID int64  `json:"linked_practice_id"`
	OpenExceptions   int    `json:"open_exceptions"`
	CaseUnreadable   bool   `json:"case_unreadable,omitempty"` // its stored case cannot be read: archive verify
}

func newPracticeJSON(p archive.Practice, openExceptions int) practiceJSON {
	return practiceJSON{ID: p.ID, CPUtente: p.CPUtente, CPGestore: p.CPGestore, Role: p.Role, Sector: p.Sector, Point: p.Point,
		CustomerID: p.CustomerID, CustomerName: p.CustomerName, CompanyPIVA: p.CompanyPIVA, SwitchDate: p.SwitchDate.ISO(),
		State: p.State, StateSince: romeRFC3339(p.StateSince), Credit: p.Credit.String(), Estimate: p.Estimate.String(),
		PreviousCMOR: p.Previous.String(), CMOR: p.CMOR.String(), Charged: p.Charged.String(), Collected: p.Collected.String(),
		CauseCode: p.CauseCode, Motivation: p.Motivation, WindowOpen: p.WindowOpen.ISO(), WindowClose: p.WindowClose.ISO(),
		SuspensionTerm: p.SuspensionTerm.ISO(), RequestDate: p.RequestDate.ISO(), AnswerDate: p.AnswerDate.ISO(),
		LinkedPracticeID: p.LinkedID, OpenExceptions: openExceptions, CaseUnreadable: p.CaseUnreadable()}
}

// writePracticesJSON streams the practices matching f as a JSON array, one practice a
// line, so that memory does not grow with the archive. It returns how many it wrote.
func writePracticesJSON(ctx context.Context, st *archive.Store, f archive.PracticeFilter, w io.Writer) (int, error) {
	open, err := st.OpenExceptionCounts(ctx)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	n := 0
	err = st.EachPractice(ctx, f, func(p archive.Practice) error {
		b, err := json.Marshal(newPracticeJSON(p, open[p.ID]))
		if err != nil {
			return err
		}
		if n > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
		bw.Write(b)
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	if n > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	return n, bw.Flush()
}

// practiceFileRow is one file behind a practice, listed once however many times (and
// lines, and ways) it touched the practice.
type practiceFileRow struct {
	File      archive.File
	Relations []string
	Lines     []int
}

// relationLabel names how a file touched a practice as a person reads it: a file we
// wrote is "built", or "sent" once published, whatever role the link was recorded
// with (a built request linked as an "answer" to a follow-up is still our file).
func relationLabel(l archive.PracticeFile) string {
	if l.File.Direction != "out" || l.Relation == "export" {
		return l.Relation
	}
	if l.File.State == archive.StatePublished {
		return "sent"
	}
	return "built"
}

// practiceFileRows folds the links of a practice into one row per file, in file order.
func practiceFileRows(links []archive.PracticeFile) []practiceFileRow {
	var rows []practiceFileRow
	at := map[int64]int{}
	for _, l := range links {
		i, ok := at[l.File.ID]
		if !ok {
			i = len(rows)
			at[l.File.ID] = i
			rows = append(rows, practiceFileRow{File: l.File})
		}
		r := &rows[i]
		if rel := relationLabel(l); rel != "" && !containsStr(r.Relations, rel) {
			r.Relations = append(r.Relations, rel)
		}
		if l.Line != 0 && !containsInt(r.Lines, l.Line) {
			r.Lines = append(r.Lines, l.Line)
		}
	}
	for i := range rows {
		sort.Ints(rows[i].Lines)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].File.ID < rows[j].File.ID })
	return rows
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

// joinLines is "2, 3, 4", or "2-40" for a run of consecutive lines.
func joinLines(lines []int) string {
	if len(lines) > 3 && lines[len(lines)-1]-lines[0] == len(lines)-1 {
		return strconv.Itoa(lines[0]) + "-" + strconv.Itoa(lines[len(lines)-1])
	}
	s := make([]string, len(lines))
	for i, l := range lines {
		s[i] = strconv.Itoa(l)
	}
	return strings.Join(s, ",")
}

type practiceShowJSON struct {
	Practice   practiceJSON          `json:"practice"`
	Requests   []requestJSON         `json:"requests"`
	History    []historyJSON         `json:"history"`
	Files      []practiceFileJSON    `json:"files"`
	Exceptions []practiceExceptionJS `json:"exceptions"`
}

type requestJSON struct {
	Flow       string `json:"flow"`
	CPUtente   string `json:"cp_utente"`
	State      string `json:"state"`
	SentAt     string `json:"sent_at"`
	AnsweredAt string `json:"answered_at"`
	CauseCode  string `json:"cause_code"`
	Motivation string `json:"motivation"`
	FileID     int64  `json:"file_id"`
}

type historyJSON struct {
	At        string `json:"at"`
	From      string `json:"from"`
	To        string `json:"to"`
	Flow      string `json:"flow"`
	FileID    int64  `json:"file_id"`
	File      string `json:"file"`
	Line      int    `json:"line"`
	CauseCode string `json:"cause_code"`
	Note      string `json:"note"`
}

type practiceFileJSON struct {
	ID         int64    `json:"id"`
	Name       string   `json:"name"`
	Direction  string   `json:"direction"`
	Kind       string   `json:"kind"`
	Relations  []string `json:"relations"`
	Lines      []int    `json:"lines"`
	State      string   `json:"state"`
	ReceivedAt string   `json:"received_at"`
	SHA256     string   `json:"sha256"`
}

type practiceExceptionJS struct {
	ID       int64  `json:"id"`
	Severity string `json:"severity"`
	Kind     string `json:"kind"`
	Owner    string `json:"owner"`
	Message  string `json:"message"`
	Action   string `json:"action"`
	FileID   int64  `json:"file_id"`
	Line     int    `json:"line"`
	DueOn    string `json:"due_on"`
}

func writePracticeShowJSON(w io.Writer, p archive.Practice, history []archive.HistoryEntry, links []archive.PracticeFile,
	files map[int64]archive.File, requests []archive.Request, exceptions []archive.Exception) error {
	out := practiceShowJSON{Practice: newPracticeJSON(p, len(exceptions)),
		Requests: []requestJSON{}, History: []historyJSON{}, Files: []practiceFileJSON{}, Exceptions: []practiceExceptionJS{}}
	for _, r := range requests {
		out.Requests = append(out.Requests, requestJSON{Flow: r.Flow, CPUtente: r.CPUtente, State: r.State, SentAt: romeRFC3339(r.SentAt),
			AnsweredAt: romeRFC3339(r.AnsweredAt), CauseCode: r.CauseCode, Motivation: r.Motivation, FileID: r.FileID})
	}
	for _, h := range history {
		out.History = append(out.History, historyJSON{At: romeRFC3339(h.At), From: h.From, To: h.To, Flow: h.Flow, FileID: h.FileID,
			File: files[h.FileID].Name, Line: h.Line, CauseCode: h.CauseCode, Note: h.Note})
	}
	for _, r := range practiceFileRows(links) {
		f := practiceFileJSON{ID: r.File.ID, Name: r.File.Name, Direction: r.File.Direction, Kind: r.File.Kind,
			Relations: r.Relations, Lines: r.Lines, State: r.File.State, ReceivedAt: romeRFC3339(r.File.ReceivedAt), SHA256: r.File.Hash}
		if f.Relations == nil {
			f.Relations = []string{}
		}
		if f.Lines == nil {
			f.Lines = []int{}
		}
		out.Files = append(out.Files, f)
	}
	for _, e := range exceptions {
		out.Exceptions = append(out.Exceptions, practiceExceptionJS{ID: e.ID, Severity: e.Severity, Kind: e.Kind, Owner: e.Owner,
			Message: e.Message, Action: e.Action, FileID: e.FileID, Line: e.Line, DueOn: e.DueOn})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
