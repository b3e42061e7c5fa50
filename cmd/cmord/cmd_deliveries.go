package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
)

func init() {
	register(&command{name: "deliveries ls", summary: "publications of built files: state, attempts, last error, the remote name conflict",
		usage: "[--all|--state pending|failed|abandoned|delivered] [--target T] [--format table|json]", run: runDeliveriesLs})
	register(&command{name: "deliveries retry", summary: "re-queue a delivery that failed for good (optionally under a new remote name)",
		usage: "ID [--as NEW_NAME]", run: runDeliveriesRetry})
	register(&command{name: "deliveries abandon", summary: "close a delivery for good, with a note (the file stays unpublished there)",
		usage: "ID --note TEXT", run: runDeliveriesAbandon})
}

var deliveryStates = []string{archive.DeliveryPending, archive.DeliveryFailed, archive.DeliveryAbandoned, archive.DeliveryDelivered}

// deliveryJSON is a delivery as `cmord deliveries ls --format json` prints it.
type deliveryJSON struct {
	ID          int64  `json:"id"`
	State       string `json:"state"`
	Target      string `json:"target"`
	RemoteDir   string `json:"remote_dir"`
	RemoteName  string `json:"remote_name"`
	FileID      int64  `json:"file_id"`
	File        string `json:"file"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	BuiltAt     string `json:"built_at"`
	Attempts    int    `json:"attempts"`
	LastError   string `json:"last_error,omitempty"`
	NextAttempt string `json:"next_attempt,omitempty"`
	DeliveredAt string `json:"delivered_at,omitempty"`
	// The remote name conflict: what the server holds under our name.
	RemoteSize  *int64 `json:"remote_size,omitempty"`
	RemoteMTime string `json:"remote_mtime,omitempty"`
	AbandonedAt string `json:"abandoned_at,omitempty"`
	AbandonedBy string `json:"abandoned_by,omitempty"`
	Note        string `json:"note,omitempty"`
}

func runDeliveriesLs(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	all := fs.Bool("all", false, "every delivery, delivered and abandoned ones too")
	state := fs.String("state", "", "only this state: "+strings.Join(deliveryStates, ", "))
	target := fs.String("target", "", "only this target, e.g. sftp:sii")
	format := fs.String("format", "table", "table or json")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	var f archive.DeliveryFilter
	f.Target = *target
	switch {
	case *state != "" && *all:
		return env.fail(usageError{"--state and --all exclude each other"})
	case *state != "":
		if !containsStr(deliveryStates, *state) {
			return env.fail(usageError{fmt.Sprintf("--state %q: want one of %s", *state, strings.Join(deliveryStates, ", "))})
		}
		f.States = []string{*state}
	case !*all:
		f.States = []string{archive.DeliveryPending, archive.DeliveryFailed}
	}
	if *format != "table" && *format != "json" {
		return env.fail(usageError{fmt.Sprintf("--format %q: want table or json", *format)})
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	list, err := st.ListDeliveries(ctx, f)
	if err != nil {
		return env.fail(err)
	}
	files := map[int64]archive.File{}
	for _, d := range list {
		if _, ok := files[d.FileID]; !ok {
			fl, err := st.GetFile(ctx, d.FileID)
			if err != nil {
				return env.fail(err)
			}
			files[d.FileID] = fl
		}
	}
	if *format == "json" {
		return env.done(writeDeliveriesJSON(env.Stdout, list, files))
	}
	if len(list) == 0 {
		if *all || *state != "" {
			fmt.Fprintln(env.Stdout, "no deliveries match")
		} else {
			fmt.Fprintln(env.Stdout, "nothing waiting: every delivery is published (or abandoned; see --all)")
		}
		return exitOK
	}
	t := newTable("ID", "STATE", "TARGET", "REMOTE NAME", "FILE", "ATTEMPTS", "WHEN (Rome)", "ON THE SERVER vs OURS", "LAST ERROR / NOTE")
	t.rightAlign("ID", "ATTEMPTS")
	t.dropOrder("TARGET", "FILE", "WHEN (Rome)")
	for _, d := range list {
		fl := files[d.FileID]
		when := ""
		switch d.State {
		case archive.DeliveryPending:
			when = "next " + rome(d.NextAttemptAt)
		case archive.DeliveryDelivered:
			when = "published " + rome(d.DeliveredAt)
		case archive.DeliveryAbandoned:
			when = "abandoned " + rome(d.ClosedAt)
		case archive.DeliveryFailed:
			when = "waiting for a person"
		}
		last := d.LastError
		if d.State == archive.DeliveryAbandoned {
			last = fmt.Sprintf("abandoned by %s: %s", d.ClosedBy, d.CloseNote)
		}
		t.add(strconv.FormatInt(d.ID, 10), d.State, d.Target, d.RemoteName, fmt.Sprintf("#%d %s", fl.ID, fl.Name),
			strconv.Itoa(d.Attempts), when, conflictText(d, fl), last)
	}
	t.render(env.Stdout, terminalWidth(env.Stdout))
	if n := countState(list, archive.DeliveryFailed); n > 0 {
		fmt.Fprintf(env.Stdout, "\n%d failed for good (the remote name is taken by other content): check the file on the server, then\n"+
			"  cmord deliveries retry ID               once the server's file is removed or renamed\n"+
			"  cmord deliveries retry ID --as NAME     to publish ours under another name (same flow naming, next progressive)\n"+
			"  cmord deliveries abandon ID --note T    if the server's file is the right one\n", n)
	}
	return exitOK
}

func countState(list []archive.Delivery, state string) int {
	n := 0
	for _, d := range list {
		if d.State == state {
			n++
		}
	}
	return n
}

// conflictText is what the server holds under the delivery's name against our file.
func conflictText(d archive.Delivery, fl archive.File) string {
	if !d.Conflict {
		return ""
	}
	remote := "size unknown"
	if d.ConflictSize >= 0 {
		remote = fmt.Sprintf("%d B", d.ConflictSize)
	}
	if !d.ConflictMTime.IsZero() {
		remote += " modified " + rome(d.ConflictMTime)
	}
	return fmt.Sprintf("server: %s; ours: %d B built %s sha256 %.12s", remote, fl.Size, rome(fl.ReceivedAt), fl.Hash)
}

func writeDeliveriesJSON(w io.Writer, list []archive.Delivery, files map[int64]archive.File) error {
	out := make([]deliveryJSON, 0, len(list))
	for _, d := range list {
		fl := files[d.FileID]
		j := deliveryJSON{ID: d.ID, State: d.State, Target: d.Target, RemoteDir: d.RemoteDir, RemoteName: d.RemoteName,
			FileID: d.FileID, File: fl.Name, Size: fl.Size, SHA256: fl.Hash, BuiltAt: romeRFC3339(fl.ReceivedAt),
			Attempts: d.Attempts, LastError: d.LastError, DeliveredAt: romeRFC3339(d.DeliveredAt),
			AbandonedAt: romeRFC3339(d.ClosedAt), AbandonedBy: d.ClosedBy, Note: d.CloseNote}
		if d.State == archive.DeliveryPending {
			j.NextAttempt = romeRFC3339(d.NextAttemptAt)
		}
		if d.Conflict {
			size := d.ConflictSize
			j.RemoteSize, j.RemoteMTime = &size, romeRFC3339(d.ConflictMTime)
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// deliveryID parses the one positional argument of retry and abandon.
func deliveryID(env *Env, pos []string) (int64, int, bool) {
	if len(pos) != 1 {
		return 0, env.fail(usageError{"expects one delivery ID (see cmord deliveries ls)"}), false
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(pos[0], "#"), 10, 64)
	if err != nil || id <= 0 {
		return 0, env.fail(usageError{fmt.Sprintf("%q is not a delivery ID", pos[0])}), false
	}
	return id, 0, true
}

// deliveryRefused reports a retry/abandon the archive refused: a finding (exit 1).
func deliveryRefused(env *Env, verb string, err error) int {
	if errors.Is(err, archive.ErrNotFound) || errors.Is(err, archive.ErrDeliveryState) {
		fmt.Fprintf(env.Stderr, "cmord deliveries %s: %v\n", verb, err)
		return exitFindings
	}
	if hint := env.needsWriteHint(err); hint != "" {
		fmt.Fprintf(env.Stderr, "cmord deliveries %s: %v\n%s\n", verb, err, hint)
		return exitFindings
	}
	return env.fail(err)
}

func runDeliveriesRetry(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	as := fs.String("as", "", "publish under this `NEW_NAME` (the name is taken on the server); it must follow the flow's naming")
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	id, code, ok := deliveryID(env, pos)
	if !ok {
		return code
	}
	newName := strings.TrimSpace(*as)
	if newName != "" && (strings.ContainsAny(newName, "/\\") || newName == "." || newName == ".." || strings.HasPrefix(newName, ".")) {
		return env.fail(usageError{fmt.Sprintf("--as %q: a plain file name, not a path or a dot-file", newName)})
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	d, err := st.GetDelivery(ctx, id)
	if err != nil {
		return deliveryRefused(env, "retry", err)
	}
	if newName != "" {
		// The SII recognises a flow by its file name: refuse a name that is not one of
		// the same flow, rather than publish a file the SII would discard.
		cat, err := env.Catalog()
		if err != nil {
			return env.fail(err)
		}
		if was := cat.Identify(d.RemoteName, nil); was != nil {
			if now := cat.Identify(newName, nil); now == nil || now.Key != was.Key {
				fmt.Fprintf(env.Stderr, "cmord deliveries retry: --as %s is not named as a %s flow file (like %s): refused\n", newName, was.Key, d.RemoteName)
				return exitFindings
			}
		}
	}
	by := cliUser()
	old := d.RemoteName
	d, err = st.RetryDelivery(ctx, id, by, newName, time.Now())
	if err != nil {
		return deliveryRefused(env, "retry", err)
	}
	if d.RemoteName != old {
		fmt.Fprintf(env.Stdout, "delivery %d re-queued by %s as %s (was %s): the daemon publishes it at its next delivery cycle\n", id, by, d.RemoteName, old)
	} else {
		fmt.Fprintf(env.Stdout, "delivery %d (%s) re-queued by %s: the daemon publishes it at its next delivery cycle\n", id, d.RemoteName, by)
	}
	fmt.Fprintf(env.Stdout, "to %s %s; `cmord deliveries ls --all` shows the outcome\n", d.Target, filepath.ToSlash(d.RemoteDir))
	return exitOK
}

func runDeliveriesAbandon(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	note := fs.String("note", "", "`TEXT` saying why (required; kept in the audit log)")
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	id, code, ok := deliveryID(env, pos)
	if !ok {
		return code
	}
	if strings.TrimSpace(*note) == "" {
		return env.fail(usageError{"--note is required: say why the delivery is abandoned"})
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	by := cliUser()
	d, err := st.AbandonDelivery(ctx, id, by, strings.TrimSpace(*note), time.Now())
	if err != nil {
		return deliveryRefused(env, "abandon", err)
	}
	fmt.Fprintf(env.Stdout, "delivery %d (%s to %s) abandoned by %s; it will not be attempted again\n", id, d.RemoteName, d.Target, by)
	return exitOK
}
