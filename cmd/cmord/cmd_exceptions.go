package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/export"
	"github.com/cmord/cmord/flows"
)

func init() {
	register(&command{name: "exceptions", summary: "what needs a person: open exceptions (or all), with filters",
		usage: "[--open|--all] [--kind K] [--severity S] [--owner O] [--practice CODE] [--format table|csv|json]", run: runExceptions})
	register(&command{name: "exceptions resolve", summary: "close an exception by hand, with a note",
		usage: "ID --note TEXT", run: runExceptionsResolve})
}

var severities = []string{archive.SevUrgent, archive.SevHigh, archive.SevNormal, archive.SevLow}

func runExceptions(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	var f archive.ExceptionFilter
	openOnly := fs.Bool("open", false, "only open exceptions (the default)")
	all := fs.Bool("all", false, "open and resolved exceptions")
	fs.StringVar(&f.Kind, "kind", "", "exception kind, e.g. sii_refusal, no_answer, row_refused")
	fs.StringVar(&f.Severity, "severity", "", "urgent, high, normal or low")
	fs.StringVar(&f.Owner, "owner", "", "operator, compliance or sysadmin")
	practice := fs.String("practice", "", "practice code (CP_UTENTE, CP_GESTORE or #id)")
	format := fs.String("format", "table", "table, csv or json")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many (0 = all)")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	if f.Limit < 0 {
		return env.fail(usageError{fmt.Sprintf("--limit %d: want 0 (all) or more", f.Limit)})
	}
	if *openOnly && *all {
		return env.fail(usageError{"--open and --all exclude each other"})
	}
	if !*all {
		yes := true
		f.Open = &yes
	}
	if f.Severity != "" && !containsStr(severities, f.Severity) {
		return env.fail(usageError{fmt.Sprintf("--severity %q: want one of %s", f.Severity, strings.Join(severities, ", "))})
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return env.fail(usageError{fmt.Sprintf("--format %q: want table, csv or json", *format)})
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	if *practice != "" {
		p, err := st.PracticeByCode(ctx, nil, *practice)
		if errors.Is(err, archive.ErrNotFound) {
			fmt.Fprintf(env.Stderr, "cmord exceptions: no practice %s\n", *practice)
			return exitFindings
		}
		if err != nil {
			return env.fail(err)
		}
		f.PracticeID = p.ID
	}
	list, err := st.Exceptions(ctx, f)
	if err != nil {
		return env.fail(err)
	}
	// The practice code and file name a person needs, looked up once each.
	codes, names := map[int64]string{}, map[int64]string{}
	for _, e := range list {
		if _, ok := codes[e.PracticeID]; e.PracticeID != 0 && !ok {
			codes[e.PracticeID] = fmt.Sprintf("#%d", e.PracticeID)
			if p, err := st.PracticeByID(ctx, nil, e.PracticeID); err == nil {
				codes[e.PracticeID] = practiceCode(p)
			}
		}
		if _, ok := names[e.FileID]; e.FileID != 0 && !ok {
			names[e.FileID] = ""
			if fl, err := st.GetFile(ctx, e.FileID); err == nil {
				names[e.FileID] = fl.Name
			}
		}
	}
	switch *format {
	case "csv":
		return env.done(writeExceptionsCSV(env.Stdout, list, codes, names))
	case "json":
		return env.done(writeExceptionsJSON(env.Stdout, list, codes, names))
	}
	if len(list) == 0 {
		if *all {
			fmt.Fprintln(env.Stdout, "no exceptions match")
		} else {
			fmt.Fprintln(env.Stdout, "no open exceptions match")
		}
		return exitOK
	}
	t := newTable("ID", "SEVERITY", "KIND", "OWNER", "PRACTICE", "FILE:LINE", "FIRST SEEN (Rome)", "COUNT", "STATE", "MESSAGE")
	t.rightAlign("ID", "COUNT")
	t.dropOrder("OWNER", "COUNT", "FIRST SEEN (Rome)", "STATE", "FILE:LINE")
	for _, e := range list {
		state := "open"
		if !e.Open() {
			state = "resolved by " + e.ResolvedBy
		}
		where := fileLine(e, names)
		if e.FileID == 0 && e.PracticeID != 0 && where == codes[e.PracticeID] {
			where = "" // the subject is the practice, already in its column
		}
		t.add(strconv.FormatInt(e.ID, 10), e.Severity, e.Kind, e.Owner, codes[e.PracticeID], where,
			rome(e.FirstSeen), strconv.Itoa(e.Count), state, e.Message)
	}
	t.render(env.Stdout, terminalWidth(env.Stdout))
	return exitOK
}

// done maps a write error to the exit code.
func (e *Env) done(err error) int {
	if err != nil {
		return e.fail(err)
	}
	return exitOK
}

func practiceCode(p archive.Practice) string {
	if p.CPUtente != "" {
		return p.CPUtente
	}
	if p.CPGestore != "" {
		return p.CPGestore
	}
	return fmt.Sprintf("#%d", p.ID)
}

func fileLine(e archive.Exception, names map[int64]string) string {
	if e.FileID == 0 {
		return e.Subject
	}
	s := fmt.Sprintf("#%d %s", e.FileID, names[e.FileID])
	if e.Line != 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	return s
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func writeExceptionsCSV(w io.Writer, list []archive.Exception, codes, names map[int64]string) error {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.Comma, cw.UseCRLF = ';', true
	_ = cw.Write([]string{"id", "severity", "kind", "owner", "practice", "file id", "file", "line", "field", "rule", "value",
		"subject", "message", "action", "due on", "first seen (Rome)", "last seen (Rome)", "count", "resolved at (Rome)",
		"resolved by", "resolution"})
	for _, e := range list {
		fid, line := "", ""
		if e.FileID != 0 {
			fid = strconv.FormatInt(e.FileID, 10)
		}
		if e.Line != 0 {
			line = strconv.Itoa(e.Line)
		}
		due := ""
		if d, err := flows.ParseDate(e.DueOn); err == nil {
			due = d.String()
		}
		resolved := ""
		if !e.Open() {
			resolved = rome(e.ResolvedAt)
		}
		n := export.Neutralise
		_ = cw.Write([]string{strconv.FormatInt(e.ID, 10), e.Severity, e.Kind, e.Owner, n(codes[e.PracticeID]), fid,
			n(names[e.FileID]), line, n(e.Field), n(e.Rule), n(e.Value), n(e.Subject), n(e.Message), n(e.Action), due,
			rome(e.FirstSeen), rome(e.LastSeen), strconv.Itoa(e.Count), resolved, n(e.ResolvedBy), n(e.Resolution)})
	}
	cw.Flush()
	return cw.Error()
}

// exceptionJSON is an exception as `cmord exceptions --format json` prints it.
type exceptionJSON struct {
	ID         int64  `json:"id"`
	Kind       string `json:"kind"`
	Severity   string `json:"severity"`
	Owner      string `json:"owner"`
	Practice   string `json:"practice,omitempty"`
	PracticeID int64  `json:"practice_id,omitempty"`
	FileID     int64  `json:"file_id,omitempty"`
	File       string `json:"file,omitempty"`
	Line       int    `json:"line,omitempty"`
	Field      string `json:"field,omitempty"`
	Rule       string `json:"rule,omitempty"`
	Value      string `json:"value,omitempty"`
	Subject    string `json:"subject,omitempty"`
	Message    string `json:"message"`
	Action     string `json:"action,omitempty"`
	DueOn      string `json:"due_on,omitempty"`
	FirstSeen  string `json:"first_seen"`
	LastSeen   string `json:"last_seen"`
	Count      int    `json:"count"`
	ResolvedAt string `json:"resolved_at,omitempty"`
	ResolvedBy string `json:"resolved_by,omitempty"`
	Resolution string `json:"resolution,omitempty"`
}

func romeRFC3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(flows.Rome).Format(time.RFC3339)
}

func writeExceptionsJSON(w io.Writer, list []archive.Exception, codes, names map[int64]string) error {
	out := make([]exceptionJSON, 0, len(list))
	for _, e := range list {
		out = append(out, exceptionJSON{ID: e.ID, Kind: e.Kind, Severity: e.Severity, Owner: e.Owner, Practice: codes[e.PracticeID],
			PracticeID: e.PracticeID, FileID: e.FileID, File: names[e.FileID], Line: e.Line, Field: e.Field, Rule: e.Rule,
			Value: e.Value, Subject: e.Subject, Message: e.Message, Action: e.Action, DueOn: e.DueOn,
			FirstSeen: romeRFC3339(e.FirstSeen), LastSeen: romeRFC3339(e.LastSeen), Count: e.Count,
			ResolvedAt: romeRFC3339(e.ResolvedAt), ResolvedBy: e.ResolvedBy, Resolution: e.Resolution})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// cliUser is who resolves an exception by hand, for the audit log: the operator
// behind sudo ($SUDO_USER: `sudo -u cmord cmord exceptions resolve` would otherwise
// record "cmord" for everyone), else $USER, else $LOGNAME, else the name of our uid,
// else "cli".
func cliUser() string {
	return resolverName(os.Getenv, func() (string, error) {
		u, err := user.Current()
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

// resolverName is cliUser with the environment and the uid lookup passed in (tests).
func resolverName(getenv func(string) string, uidName func() (string, error)) string {
	for _, k := range []string{"SUDO_USER", "USER", "LOGNAME"} {
		if u := strings.TrimSpace(getenv(k)); u != "" {
			return u
		}
	}
	if name, err := uidName(); err == nil && strings.TrimSpace(name) != "" {
		return strings.TrimSpace(name)
	}
	return "cli"
}

func runExceptionsResolve(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	note := fs.String("note", "", "`TEXT` saying why it is resolved (required; kept in the audit log)")
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return env.fail(usageError{"expects one exception ID (see cmord exceptions)"})
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(pos[0], "#"), 10, 64)
	if err != nil || id <= 0 {
		return env.fail(usageError{fmt.Sprintf("%q is not an exception ID", pos[0])})
	}
	if strings.TrimSpace(*note) == "" {
		return env.fail(usageError{"--note is required: say why the exception is resolved"})
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	e, err := st.GetException(ctx, id)
	if errors.Is(err, archive.ErrNotFound) {
		fmt.Fprintf(env.Stderr, "cmord exceptions resolve: no exception %d\n", id)
		return exitFindings
	}
	if err != nil {
		return env.fail(err)
	}
	by := cliUser()
	err = st.Write(ctx, func(tx *sql.Tx) error {
		if err := st.ResolveException(ctx, tx, id, by, strings.TrimSpace(*note)); err != nil {
			return err
		}
		return st.AppendEvent(tx, archive.Event{Type: "EXCEPTION_RESOLVED", PracticeID: e.PracticeID, FileID: e.FileID,
			Actor: "cli:" + by, Detail: fmt.Sprintf("exception %d (%s): %s", id, e.Kind, strings.TrimSpace(*note))})
	})
	if err != nil {
		// Already resolved (by a person or automatically) is a finding, not a usage error.
		fmt.Fprintf(env.Stderr, "cmord exceptions resolve: %v\n", err)
		if hint := env.needsWriteHint(err); hint != "" {
			fmt.Fprintln(env.Stderr, hint)
		}
		return exitFindings
	}
	fmt.Fprintf(env.Stdout, "exception %d (%s) resolved by %s\n", id, e.Kind, by)
	return exitOK
}
