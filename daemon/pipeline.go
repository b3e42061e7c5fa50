// Package daemon is the running system: it wires drop folders, the SII exchange over
// SFTP, the archive, the flow handlers and builders, the scheduler and the mail outbox.
//
// The flow logic plugs in through two interfaces, so the plumbing never changes when a
// flow is added: a Handler consumes one archived input file of its kind, and a Builder
// produces flow files on schedule.
package daemon

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/flows"
)

// Input is one archived file handed to a Handler.
type Input struct {
	File    archive.File
	Folder  *config.Folder // the drop folder it came from; nil for SII downloads
	Store   *archive.Store
	Catalog *flows.Catalog
	Config  *config.Config
	Log     *slog.Logger
	Now     time.Time
}

// Open opens the archived content (never the original, which may be gone).
func (in *Input) Open() (io.ReadCloser, error) { return in.Store.Blobs.Open(in.File.Hash) }

// Result is what a handler decided about a file.
type Result struct {
	Rejected bool            // the whole file is refused
	Reason   string          // one line for the operator (rejected/NAME.reason.txt)
	Findings []flows.Finding // rows refused (or warnings); each becomes an exception
	Meta     map[string]string
}

// Handler consumes one archived input file. It must make all of its effects and the
// file's outcome in ONE store transaction by calling Finish inside it, so that a
// crash leaves either nothing or everything. An error return means "transient": the
// file stays claimed and is retried; a refusal is a Result, not an error.
type Handler interface {
	Handle(ctx context.Context, in *Input) (Result, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, in *Input) (Result, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, in *Input) (Result, error) { return f(ctx, in) }

// Builder produces flow files on schedule (archived with provenance, deliveries queued
// in the same transaction).
type Builder interface {
	Name() string
	Build(ctx context.Context, now time.Time) (built int, err error)
}

// maxRowExceptions bounds the exceptions raised for one file: past it, one summary
// exception says how many more rows were refused (the reason file lists them all).
const maxRowExceptions = 200

// Finish records the outcome of processing in.File inside tx: the file's state, an
// exception for each refused row (bounded) and one for a refused file.
func (in *Input) Finish(ctx context.Context, tx *sql.Tx, res Result) error {
	state := archive.StateProcessed
	if res.Rejected {
		state = archive.StateRejected
	}
	meta := map[string]string{}
	for k, v := range res.Meta {
		meta[k] = v
	}
	errorsN, warnings := 0, 0
	for _, f := range res.Findings {
		if f.IsWarning() {
			warnings++
		} else {
			errorsN++
		}
	}
	meta["findings"] = fmt.Sprint(errorsN)
	if warnings > 0 {
		meta["warnings"] = fmt.Sprint(warnings)
	}
	if err := in.Store.SetFileState(ctx, tx, in.File.ID, state, res.Reason, meta); err != nil {
		return err
	}
	// Problems of the header (line 1) or of the whole file are one exception, not one
	// per missing column: the reason file lists them all.
	var fileLevel []flows.Finding
	for _, f := range res.Findings {
		if !f.IsWarning() && f.Line <= 1 {
			fileLevel = append(fileLevel, f)
		}
	}
	if len(fileLevel) > 0 && !res.Rejected {
		msg := fileLevel[0].String()
		if len(fileLevel) > 1 {
			msg = fmt.Sprintf("%d problems in the header of %s; first: %s", len(fileLevel), in.File.Name, msg)
		}
		if _, _, err := in.Store.RaiseException(ctx, tx, archive.Exception{Kind: "row_refused", Severity: archive.SevNormal, Owner: "operator",
			FileID: in.File.ID, Line: 1, Rule: "HEADER", Subject: in.File.Name, Message: msg,
			Action: "Check the extract's columns against the folder's mapping (docs/inputs.md)."}); err != nil {
			return err
		}
	}
	raised := 0
	for _, f := range res.Findings {
		if f.IsWarning() || f.Line <= 1 {
			continue
		}
		if raised == maxRowExceptions {
			_, _, err := in.Store.RaiseException(ctx, tx, archive.Exception{
				Kind: "row_refused", Severity: archive.SevNormal, Owner: "operator", FileID: in.File.ID,
				Subject: in.File.Name, Rule: "MORE",
				Message: fmt.Sprintf("%d more refused rows in %s: see the reason file and `cmord validate`", errorsN-raised, in.File.Name),
				Action:  "Correct the rows in billing and drop a corrected extract.",
			})
			if err != nil {
				return err
			}
			break
		}
		e := archive.Exception{
			Kind: "row_refused", Severity: archive.SevNormal, Owner: "operator", FileID: in.File.ID,
			Line: f.Line, Field: f.Field, Rule: f.Rule, Value: f.Value, Subject: in.File.Name,
			Message: f.String(), Action: "Correct the row in billing and drop a corrected extract.",
		}
		if f.Eligibility() {
			// The data are right and the case is not entitled: nothing to correct.
			e.Kind, e.Severity, e.Owner = "case_not_eligible", archive.SevLow, "compliance"
			e.Action = "Nothing to do in billing (" + flows.EligibilityNoteEN + "): the case is not entitled to a CMOR under the rule given."
		}
		_, _, err := in.Store.RaiseException(ctx, tx, e)
		if err != nil {
			return err
		}
		raised++
	}
	if res.Rejected {
		_, _, err := in.Store.RaiseException(ctx, tx, archive.Exception{
			Kind: "file_rejected", Severity: archive.SevHigh, Owner: "operator", FileID: in.File.ID,
			Subject: in.File.Name, Message: fmt.Sprintf("%s refused: %s", in.File.Name, res.Reason),
			Action: "Read the reason file next to it in rejected/, correct the extract and drop it again.",
		})
		return err
	}
	return nil
}

// unknownKind is the handler for a kind no flow handles (yet): the file is archived,
// refused with a clear reason and reported.
func unknownKind(ctx context.Context, in *Input) (Result, error) {
	res := Result{Rejected: true, Reason: fmt.Sprintf("no handler for input kind %q: the file is archived (#%d) but not processed", in.File.Kind, in.File.ID)}
	err := in.Store.Write(ctx, func(tx *sql.Tx) error { return in.Finish(ctx, tx, res) })
	return res, err
}
