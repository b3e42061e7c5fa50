package family

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// MaxRowExceptions bounds the exceptions raised for one file: past it, one summary
// exception says how many more rows were refused (the reason file lists them all).
const MaxRowExceptions = 200

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
	errorsN, warnings := flows.CountFindings(res.Findings)
	meta["findings"] = fmt.Sprint(errorsN)
	if warnings > 0 {
		meta["warnings"] = fmt.Sprint(warnings)
	}
	if err := in.Store.SetFileState(ctx, tx, in.File.ID, state, res.Reason, meta); err != nil {
		return err
	}
	for _, e := range findingExceptions(in.File, res, errorsN) {
		if _, _, err := in.Store.RaiseException(ctx, tx, e); err != nil {
			return err
		}
	}
	return nil
}

// findingExceptions are the exceptions a result raises: one for the problems of the
// header or of the whole file, one per refused row up to MaxRowExceptions and a
// summary past it, one for a refused file.
func findingExceptions(f archive.File, res Result, errorsN int) []archive.Exception {
	var out []archive.Exception
	// Problems of the header (line 1) or of the whole file are one exception, not one
	// per missing column: the reason file lists them all.
	if fileLevel := flows.FileLevelErrors(res.Findings); len(fileLevel) > 0 && !res.Rejected {
		msg := fileLevel[0].String()
		if len(fileLevel) > 1 {
			msg = fmt.Sprintf("%d problems in the header of %s; first: %s", len(fileLevel), f.Name, msg)
		}
		out = append(out, archive.Exception{Kind: "row_refused", Severity: archive.SevNormal, Owner: "operator",
			FileID: f.ID, Line: 1, Rule: "HEADER", Subject: f.Name, Message: msg,
			Action: "Check the extract's columns against the folder's mapping (docs/inputs.md)."})
	}
	raised := 0
	for _, fd := range res.Findings {
		if fd.IsWarning() || fd.Line <= 1 {
			continue
		}
		if raised == MaxRowExceptions {
			out = append(out, archive.Exception{
				Kind: "row_refused", Severity: archive.SevNormal, Owner: "operator", FileID: f.ID,
				Subject: f.Name, Rule: "MORE",
				Message: fmt.Sprintf("%d more refused rows in %s: see the reason file and `cmord validate`", errorsN-raised, f.Name),
				Action:  "Correct the rows in billing and drop a corrected extract.",
			})
			break
		}
		e := archive.Exception{
			Kind: "row_refused", Severity: archive.SevNormal, Owner: "operator", FileID: f.ID,
			Line: fd.Line, Field: fd.Field, Rule: fd.Rule, Value: fd.Value, Subject: f.Name,
			Message: fd.String(), Action: "Correct the row in billing and drop a corrected extract.",
		}
		if fd.Eligibility() {
			// The data are right and the case is not entitled: nothing to correct.
			e.Kind, e.Severity, e.Owner = "case_not_eligible", archive.SevLow, "compliance"
			e.Action = "Nothing to do in billing (" + flows.EligibilityNoteEN + "): the case is not entitled to a CMOR under the rule given."
		}
		out = append(out, e)
		raised++
	}
	if res.Rejected {
		out = append(out, archive.Exception{
			Kind: "file_rejected", Severity: archive.SevHigh, Owner: "operator", FileID: f.ID,
			Subject: f.Name, Message: fmt.Sprintf("%s refused: %s", f.Name, res.Reason),
			Action: "Read the reason file next to it in rejected/, correct the extract and drop it again.",
		})
	}
	return out
}

// FinishOnly records a result with no other effect.
func FinishOnly(ctx context.Context, in *Input, res Result) (Result, error) {
	err := in.Store.Write(ctx, func(tx *sql.Tx) error { return in.Finish(ctx, tx, res) })
	return res, err
}
