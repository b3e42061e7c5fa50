package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

func init() {
	register(&command{name: "archive ls", summary: "list archived files (newest first)", usage: "[--source S] [--kind K] [--direction in|out] [--state S] [--limit N]", run: runArchiveLs})
	register(&command{name: "archive show", summary: "one archived file: metadata, provenance, deliveries, events", usage: "ID", run: runArchiveShow})
	register(&command{name: "archive history", summary: "every version of a logical file, named or given by the ID of one version", usage: "NAME|ID [--source S]", run: runArchiveHistory})
	register(&command{name: "archive cat", summary: "write an archived file's content to stdout", usage: "ID", run: runArchiveCat})
	register(&command{name: "archive verify", summary: "check every page, blob, event and row against the hash chains (and an anchor); exit 1 on any mismatch", usage: "[--anchor ANCHOR]", run: runArchiveVerify})
	register(&command{name: "archive anchor", summary: "print the state chain's head, to keep outside this machine (notary, log, mail)", usage: "", run: runArchiveAnchor})
}

func rome(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(flows.Rome).Format("02/01/2006 15:04:05")
}

func runArchiveLs(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	var f archive.FileFilter
	fs.StringVar(&f.Source, "source", "", "source, e.g. folder:morosi or sftp:sii")
	fs.StringVar(&f.Kind, "kind", "", "input kind or flow key")
	fs.StringVar(&f.Direction, "direction", "", "in or out")
	fs.StringVar(&f.State, "state", "", strings.Join(fileStates, ", "))
	fs.IntVar(&f.Limit, "limit", 50, "at most this many rows (0 = all)")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	f.Direction = strings.ToLower(strings.TrimSpace(f.Direction))
	if f.Direction != "" && f.Direction != "in" && f.Direction != "out" {
		return env.fail(usageError{fmt.Sprintf("--direction %q: want in or out", f.Direction)})
	}
	f.State = strings.ToLower(strings.TrimSpace(f.State))
	if f.State != "" && !containsStr(fileStates, f.State) {
		return env.fail(usageError{fmt.Sprintf("--state %q: want one of %s", f.State, strings.Join(fileStates, ", "))})
	}
	if f.Limit < 0 {
		return env.fail(usageError{fmt.Sprintf("--limit %d: want 0 (all) or more", f.Limit)})
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	files, err := st.ListFiles(ctx, f)
	if err != nil {
		return env.fail(err)
	}
	if len(files) == 0 {
		fmt.Fprintln(env.Stdout, "no files match")
		return exitOK
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED (Rome)\tDIR\tSOURCE\tNAME\tV\tKIND\tSTATE\tSIZE\tSHA256")
	for _, fl := range files {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", fl.ID, rome(fl.ReceivedAt), fl.Direction, flows.Escape(fl.Source), flows.Escape(fl.Name),
			fl.Version, fl.Kind, fl.State, fl.Size, shortHash(fl.Hash))
	}
	tw.Flush()
	return exitOK
}

// fileStates are the states of an archived file, for --state.
var fileStates = []string{archive.StateReceived, archive.StateProcessed, archive.StateRejected, archive.StateDuplicate,
	archive.StateBuilt, archive.StatePublished}

func fileID(fsArgs []string) (int64, error) {
	if len(fsArgs) != 1 {
		return 0, usageError{"expects one file ID (see cmord archive ls)"}
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(fsArgs[0], "#"), 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError{fmt.Sprintf("%q is not a file ID", fsArgs[0])}
	}
	return id, nil
}

func runArchiveShow(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	id, err := fileID(pos)
	if err != nil {
		return env.fail(err)
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	f, err := st.GetFile(ctx, id)
	if err != nil {
		return env.fail(err)
	}
	w := env.Stdout
	// Names, reasons and meta come from outside: escaped (terminal escapes, bidi).
	fmt.Fprintf(w, "File #%d  %s\n", f.ID, flows.Escape(f.Name))
	// The fields are one table, its labels padded to the longest (a meta key such as
	// practices_created is longer than the fixed labels).
	var rows [][2]string
	row := func(label, format string, args ...any) {
		rows = append(rows, [2]string{label, fmt.Sprintf(format, args...)})
	}
	row("source", "%s (%s)", flows.Escape(f.Source), f.Direction)
	row("kind", "%s", f.Kind)
	row("version", "%d", f.Version)
	state := f.State
	if f.Reason != "" {
		state += " — " + flows.Escape(f.Reason)
	}
	row("state", "%s", state)
	row("size", "%s", plural(f.Size, "byte", "bytes"))
	row("sha256", "%s", cmp.Or(f.Hash, "none: refused from its listed size, never read"))
	row("received", "%s (Europe/Rome)", rome(f.ReceivedAt))
	if !f.ProcessedAt.IsZero() {
		row("processed", "%s", rome(f.ProcessedAt))
	}
	keys := make([]string, 0, len(f.Meta))
	for k := range f.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys) // map order would change the output from one run to the next
	for _, k := range keys {
		v := flows.Shown(f.Meta[k], flows.MaxMessageLen)
		if k == "path" && strings.HasPrefix(f.Source, "folder:") {
			// Where the file was dropped, not where it is: once taken it moved to the
			// folder's done/ or rejected/ (under another name if that one was taken).
			if f.State != archive.StateReceived {
				v += " (moved to done/ or rejected/ once taken)"
			}
			row("dropped as", "%s", v)
			continue
		}
		row(flows.Escape(k), "%s", v)
	}
	inputs, outputs, err := st.Provenance(ctx, id)
	if err != nil {
		return env.fail(err)
	}
	refs := func(label string, ids []int64) {
		for _, ref := range ids {
			if rf, err := st.GetFile(ctx, ref); err == nil {
				row(label, "#%d %s (%s)", rf.ID, flows.Escape(rf.Name), rf.Kind)
			}
		}
	}
	refs("made from", inputs)
	refs("made into", outputs)
	if ds, err := st.Deliveries(ctx, id); err == nil {
		for _, d := range ds {
			line := fmt.Sprintf("%s %s/%s %s (attempts %d)", d.Target, d.RemoteDir, d.RemoteName, d.State, d.Attempts)
			if d.LastError != "" {
				line += " last error: " + d.LastError
			}
			row("delivery", "%s", line)
		}
	}
	printAligned(w, rows, len("processed "))
	evs, err := st.Events(ctx, archive.EventFilter{FileID: id})
	if err != nil {
		return env.fail(err)
	}
	fmt.Fprintln(w, "Events:")
	evRows := make([][2]string, 0, len(evs))
	for _, e := range evs {
		evRows = append(evRows, [2]string{rome(e.At) + "  " + e.Type, flows.Escape(e.Detail)})
	}
	printAligned(w, evRows, len("02/01/2006 15:04:05  PUBLISHED "))
	return exitOK
}

// printAligned prints label-value rows indented by two, the values in one column, one
// space past the longest label (at least minWidth wide); a row with an empty value is
// its label alone, with no trailing blanks.
func printAligned(w io.Writer, rows [][2]string, minWidth int) {
	width := minWidth
	for _, r := range rows {
		width = max(width, utf8.RuneCountInString(r[0]))
	}
	for _, r := range rows {
		if r[1] == "" {
			fmt.Fprintf(w, "  %s\n", r[0])
			continue
		}
		fmt.Fprintf(w, "  %s%s %s\n", r[0], strings.Repeat(" ", width-utf8.RuneCountInString(r[0])), r[1])
	}
}

func runArchiveHistory(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	source := fs.String("source", "", "only this source")
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return env.fail(usageError{"expects one file name or file ID (see cmord archive ls)"})
	}
	name := pos[0]
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	// A file ID, as show and cat take it ("12" or "#12"), stands for its logical file
	// (its source and name). A bare number that is no file's ID is taken as a name.
	byID := int64(0)
	if id, err := strconv.ParseInt(strings.TrimPrefix(name, "#"), 10, 64); err == nil && id > 0 {
		f, err := st.GetFile(ctx, id)
		switch {
		case err == nil:
			if *source != "" && *source != f.Source {
				return env.fail(usageError{fmt.Sprintf("file #%d comes from %s, not %s", id, f.Source, *source)})
			}
			byID, name, *source = id, f.Name, f.Source
		case !errors.Is(err, archive.ErrNotFound):
			return env.fail(err)
		case strings.HasPrefix(name, "#"):
			fmt.Fprintf(env.Stderr, "cmord archive history: no archived file #%d\n", id)
			return exitFindings
		}
	}
	hist, err := st.History(ctx, *source, name)
	if err != nil {
		return env.fail(err)
	}
	if len(hist) == 0 {
		fmt.Fprintf(env.Stdout, "no archived file is named %q\n", name)
		return exitFindings
	}
	if byID != 0 {
		fmt.Fprintf(env.Stdout, "file #%d is %s from %s; all its versions:\n", byID, flows.Escape(name), flows.Escape(*source))
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tVERSION\tID\tRECEIVED (Rome)\tSTATE\tSIZE\tSHA256")
	for _, f := range hist {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\n", flows.Escape(f.Source), f.Version, f.ID, rome(f.ReceivedAt), f.State, f.Size, shortHash(f.Hash))
	}
	tw.Flush()
	return exitOK
}

func runArchiveCat(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	id, err := fileID(pos)
	if err != nil {
		return env.fail(err)
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	rc, _, err := st.OpenFile(ctx, id)
	if err != nil {
		return env.fail(err)
	}
	defer rc.Close()
	if _, err := io.Copy(env.Stdout, rc); err != nil {
		return env.fail(err)
	}
	return exitOK
}

func runArchiveVerify(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	anchorText := fs.String("anchor", "", "a head printed earlier by `cmord archive anchor` (or in a digest): the chain must extend it")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	var anchor *archive.Anchor
	if *anchorText != "" {
		a, err := archive.ParseAnchor(*anchorText)
		if err != nil {
			return env.fail(usageError{"--anchor: " + err.Error()})
		}
		anchor = &a
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	var progress func(done, total int)
	if isTerminal(env.Stderr) {
		last := time.Time{}
		progress = func(done, total int) {
			if time.Since(last) < 100*time.Millisecond && done != total {
				return
			}
			last = time.Now()
			fmt.Fprintf(env.Stderr, "\rverifying blobs %d/%d", done, total)
			if done == total {
				fmt.Fprintln(env.Stderr)
			}
		}
	}
	rep, err := st.VerifyWith(ctx, archive.VerifyOptions{Anchor: anchor, Progress: progress})
	if err != nil {
		return env.fail(err)
	}
	fmt.Fprintf(env.Stdout, "checked %s (%s) and %s\n", plural(rep.Blobs, "blob", "blobs"), plural(rep.Bytes, "byte", "bytes"),
		plural(rep.Events, "event", "events"))
	fmt.Fprintf(env.Stdout, "checked %s against %s of the state chain\n", plural(rep.Rows, "row", "rows"), plural(rep.Records, "record", "records"))
	if rep.Head.Seq > 0 {
		fmt.Fprintf(env.Stdout, "head: %s\n", rep.Head)
	}
	if rep.Anchored {
		fmt.Fprintf(env.Stdout, "the chain extends the anchor (record %d)\n", anchor.Seq)
	} else if anchor == nil {
		fmt.Fprintln(env.Stdout, "no --anchor: a chain rewritten consistently cannot be told from the real one (docs/tamper.md)")
	}
	if n := len(rep.Orphans); n == 1 {
		fmt.Fprintln(env.Stdout, "1 blob on disk is not indexed (left by an interrupted ingest; harmless)")
	} else if n > 1 {
		fmt.Fprintf(env.Stdout, "%d blobs on disk are not indexed (left by an interrupted ingest; harmless)\n", n)
	}
	if rep.OK() {
		fmt.Fprintln(env.Stdout, "archive OK")
		return exitOK
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(env.Stdout, "PROBLEM: "+p)
	}
	fmt.Fprintf(env.Stdout, "%s found\n", plural(len(rep.Problems), "problem", "problems"))
	return exitFindings
}

// runArchiveAnchor prints the state chain's head on one line. Kept anywhere the
// archive's writer cannot reach (a notary, a transparency log, a mail archive, a
// ticket), it lets `cmord archive verify --anchor` later prove that the archive still
// extends that state: nothing recorded up to it was rewritten or cut off.
func runArchiveAnchor(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	head, ok, err := st.ChainHead(ctx)
	if err != nil {
		return env.fail(err)
	}
	if !ok {
		return env.fail(errors.New("the state chain has no record yet"))
	}
	fmt.Fprintln(env.Stdout, head)
	return exitOK
}

// shortHash is the first 12 hex digits of a file's SHA-256, "-" for a file refused
// unread (an SII file over its size limit has no hash).
func shortHash(h string) string {
	if h == "" {
		return "-"
	}
	return h[:min(12, len(h))]
}
