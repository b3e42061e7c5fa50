package daemon

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/failpoint"
	"github.com/cmord/cmord/daemon/intake"
	"github.com/cmord/cmord/flows"
)

// The poison-file policy (docs/architecture.md, "When processing fails"): what
// becomes of a file whose processing returned an error instead of a Result.
//
//   - permanent: the same input fails the same way every time (a line too long, a
//     parse error, a source that cannot be read, a constraint the handler's data
//     breaks): the file is refused at once, with the error as its reason;
//   - transient: the machine's problem, not the file's (the disk is full, the database
//     is locked by another process, shutdown cancelled the work): retried with backoff
//     for as long as it takes, and after max_attempts an exception (file_retrying)
//     says that the file waits and why;
//   - anything else: retried, and refused after max_attempts failures (counted in the
//     archive, so a restart continues the count).
type failureClass int

const (
	failUnknown failureClass = iota
	failTransient
	failPermanent
)

func (c failureClass) String() string {
	return [...]string{"unknown", "transient", "permanent"}[c]
}

// classifyFailure sorts a processing error. source is the path the file was read
// from ("" once it is archived): an error opening or reading it is permanent (the file
// is unreadable), while the same error on the state directory is not the file's.
func classifyFailure(err error, source string) failureClass {
	var fd flows.Finding
	var pe *fs.PathError
	var csvErr *csv.ParseError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT),
		archive.IsBusy(err), archive.IsStorageFull(err):
		return failTransient
	case source != "" && errors.As(err, &pe) && pe.Path == source:
		return failPermanent // the dropped file itself cannot be opened or read
	case errors.As(err, &fd), errors.As(err, &csvErr), errors.Is(err, bufio.ErrTooLong),
		archive.IsDataRefused(err), errors.As(err, new(*handlerPanic)):
		return failPermanent
	case archive.IsPermission(err), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO):
		return failTransient // the state directory: a sysadmin fixes it, the file waits
	}
	return failUnknown
}

// maxAttemptsOr is n, or the default when n is 0 (a Config built by hand).
func maxAttemptsOr(n int) int {
	if n <= 0 {
		return config.DefaultMaxAttempts
	}
	return n
}

// failed applies the poison-file policy to an archived file f whose processing failed
// with cause. It returns the refusal to record (the file is rejected) or an error (the
// file stays and is retried). where names the file for people ("folder morosi",
// "SFTP sii").
func (d *Daemon) failed(ctx context.Context, f archive.File, where string, maxAttempts int, cause error) (Result, error) {
	maxAttempts = maxAttemptsOr(maxAttempts)
	class := classifyFailure(cause, "")
	if ctx.Err() != nil && (errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded)) {
		return Result{}, cause // shutdown interrupted the work: not a failure of the file
	}
	ctx = context.WithoutCancel(ctx) // the outcome is recorded even during shutdown
	n, nerr := d.Store.NoteFailedAttempt(ctx, f.ID, cause, class == failTransient)
	failpoint.Hit("after_failed_attempt")
	if nerr != nil {
		// The count cannot be kept (the database itself fails): the machine's problem.
		return Result{}, d.retryLater(f, where, cause, "class", class, "count_err", nerr)
	}
	var reason string
	switch {
	case class == failPermanent:
		reason = fmt.Sprintf("processing failed with an error that would repeat at every attempt, so it was not retried: %v", cause)
	case class == failUnknown && n >= maxAttempts:
		reason = fmt.Sprintf("processing failed %d times (max_attempts = %d); the last error: %v", n, maxAttempts, cause)
	default:
		if n >= maxAttempts {
			// Transient, and for long: the file waits, and a person knows why.
			d.raise(ctx, archive.Exception{Fingerprint: fmt.Sprintf("file_retrying|%d", f.ID), Kind: "file_retrying",
				Severity: archive.SevHigh, Owner: "sysadmin", FileID: f.ID, Subject: f.Name,
				Message: fmt.Sprintf("%s: %s has not been processed after %d attempts: %v; it is kept and retried", where, f.Name, n, cause),
				Action:  "Fix the cause on the machine (free disk space in the state directory, stop whatever holds the database); the file goes on by itself."})
		}
		return Result{}, d.retryLater(f, where, cause, "class", class, "failures", n, "max_attempts", maxAttempts)
	}
	if p, ok, err := d.Store.LoadProgress(ctx, nil, f.ID); err == nil && ok && p.Line > 0 {
		reason += fmt.Sprintf(" (the rows up to line %d had been applied before the failure)", p.Line)
	}
	res := Result{Rejected: true, Reason: reason}
	action := "Read the reason file next to it in rejected/; once the cause is fixed (the file, or cmord: report it with the file), drop it again."
	if !strings.HasPrefix(f.Source, "folder:") {
		action = fmt.Sprintf("The file is kept in the archive (`cmord archive show %d`, `cmord archive cat %d`); once the cause is fixed, drop it into a folder of kind \"sii\" to process it again.", f.ID, f.ID)
	}
	err := d.Store.Write(ctx, func(tx *sql.Tx) error {
		if err := d.Store.SetFileState(ctx, tx, f.ID, archive.StateRejected, reason, nil); err != nil {
			return err
		}
		// A file refused after some of its chunks were committed never reaches the
		// end that moves their practices' lookups (migration 0042): moved here.
		if _, err := archive.MovePendingLookups(ctx, tx); err != nil {
			return err
		}
		_, _, err := d.Store.RaiseException(ctx, tx, archive.Exception{Kind: "file_rejected", Severity: archive.SevHigh, Owner: "operator",
			FileID: f.ID, Subject: f.Name, Message: fmt.Sprintf("%s: %s refused: %s", where, f.Name, reason), Action: action})
		return err
	})
	if err != nil {
		return Result{}, errors.Join(cause, err)
	}
	d.resolve(ctx, fmt.Sprintf("file_retrying|%d", f.ID), "the file was refused")
	d.Metrics.Failures.WithLabelValues("poison").Inc()
	d.Log.Error("file refused after failed processing", "where", where, "file", flows.Escape(f.Name), "class", class, "attempts", n, "err", cause, "kind", f.Kind, "file_id", f.ID)
	return res, nil
}

// retryError is a processing failure the poison-file policy retries, with what the
// policy knows of it for the log.
type retryError struct {
	cause  error
	fields []any
}

func (e *retryError) Error() string    { return e.cause.Error() }
func (e *retryError) Unwrap() error    { return e.cause }
func (e *retryError) LogFields() []any { return e.fields }

// retryLater returns the error that makes f wait for another attempt, and logs the
// failure unless f came from a drop folder: there intake logs it, once, with these
// fields (intake.LogFields) beside its own (folder, attempt, retry_in).
func (d *Daemon) retryLater(f archive.File, where string, cause error, fields ...any) error {
	fields = append(fields, "kind", f.Kind, "file_id", f.ID)
	if !strings.HasPrefix(f.Source, "folder:") {
		d.Log.Warn("processing failed; will retry", append([]any{"where", where, "file", flows.Escape(f.Name), "err", cause}, fields...)...)
	}
	return &retryError{cause: cause, fields: fields}
}

// handlerPanic is a handler's panic turned into an error: the same input panics the
// same way again, so it is permanent.
type handlerPanic struct{ value any }

func (p *handlerPanic) Error() string {
	return fmt.Sprintf("internal error while processing (panic): %v", p.value)
}

// processInbound is processOrRefuse for files that no intake goroutine guards (SII
// files fetched over SFTP): a handler's panic refuses the file instead of killing the
// poll at every attempt, for ever.
func (d *Daemon) processInbound(ctx context.Context, f archive.File, where string, maxAttempts int) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			d.Log.Error("panic while processing", "where", where, "file", f.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			d.Metrics.Failures.WithLabelValues("panic").Inc()
			res, err = d.failed(ctx, f, where, maxAttempts, &handlerPanic{r})
		}
	}()
	return d.processOrRefuse(ctx, f, nil, where, maxAttempts)
}

// processOrRefuse runs the handler of an archived file and applies the poison-file
// policy to an error. An error return means "retry later".
func (d *Daemon) processOrRefuse(ctx context.Context, f archive.File, folder *config.Folder, where string, maxAttempts int) (Result, error) {
	out, err := d.process(ctx, f, folder)
	if err != nil {
		return d.failed(ctx, f, where, maxAttempts, err)
	}
	if f.Attempts() > 0 {
		d.resolve(ctx, fmt.Sprintf("file_retrying|%d", f.ID), "processed")
	}
	return out, nil
}

// notArchived applies the poison-file policy to a claimed file that could not be
// archived: a source that cannot be read is refused at once (it will not read better
// next time); anything else (the state directory's disk, the database) is the
// machine's problem, retried, and after max_attempts in this run an exception says
// that the file waits and why.
func (d *Daemon) notArchived(ctx context.Context, c intake.Claimed, folder *config.Folder, err error) (intake.Outcome, error) {
	fp := "file_retrying|folder:" + folder.Name + "|" + c.Name
	if classifyFailure(err, c.Path) == failPermanent {
		reason := fmt.Sprintf("the file cannot be read, so it was not archived nor processed: %v", err)
		d.raise(context.WithoutCancel(ctx), archive.Exception{Fingerprint: fmt.Sprintf("file_rejected|folder:%s|%s|%d", folder.Name, c.Name, c.ModTime.UnixNano()),
			Kind: "file_rejected", Severity: archive.SevHigh, Owner: "operator", Subject: c.Name,
			Message: fmt.Sprintf("folder %s: %s refused: %s", folder.Name, c.Name, reason),
			Action:  "Check the file's permissions and content (it is in rejected/ with its reason), then drop it again."})
		d.resolve(ctx, fp, "the file was refused")
		d.Metrics.Failures.WithLabelValues("poison").Inc()
		d.Log.Error("file refused: cannot be read", "folder", folder.Name, "file", c.Name, "err", err)
		return intake.Outcome{Rejected: true, Reason: d.reasonText(folder, Result{Rejected: true, Reason: reason}), Lang: d.lang()}, nil
	}
	if max := maxAttemptsOr(folder.MaxAttempts); c.Attempt >= max {
		d.raise(context.WithoutCancel(ctx), archive.Exception{Fingerprint: fp, Kind: "file_retrying", Severity: archive.SevHigh, Owner: "sysadmin",
			Subject: c.Name, Message: fmt.Sprintf("folder %s: %s cannot be archived after %d attempts: %v; it stays in %s and is retried", folder.Name, c.Name, c.Attempt, err, intake.InProgressDir),
			Action: "Fix the cause on the machine (free disk space in the state directory, stop whatever holds the database); the file goes on by itself."})
	}
	return intake.Outcome{}, err
}

// checkGrowth looks at the claimed file again once it has been archived and
// processed: a writer still appending (a settle time shorter than its pauses) has
// made it longer than what was read, and the rest would otherwise be ignored in
// silence. A file of the same name that appeared in the folder meanwhile may be the
// rest written under the name again. Either way a person is told, with both sizes;
// it reports whether it told.
func (d *Daemon) checkGrowth(ctx context.Context, c intake.Claimed, folder *config.Folder, f archive.File) bool {
	var what string
	if fi, err := os.Lstat(c.Path); err == nil && (fi.Size() != f.Size || !fi.ModTime().Equal(c.ModTime)) {
		what = fmt.Sprintf("%s changed after it was taken: %d bytes were archived and processed, the file now has %d bytes (modified %s); the rest was not read",
			c.Name, f.Size, fi.Size(), fi.ModTime().In(flows.Rome).Format("02/01/2006 15:04:05"))
	} else if fi, err := os.Lstat(filepath.Join(folder.Path, c.Name)); err == nil && fi.Mode().IsRegular() && !fi.ModTime().Before(c.ModTime) {
		what = fmt.Sprintf("a new %s (%d bytes) appeared in the folder while the one taken (%d bytes archived) was processed: if the writer went on under the same name, it is the rest of the same file",
			c.Name, fi.Size(), f.Size)
	}
	if what == "" {
		return false
	}
	d.Log.Warn("file changed after it was taken", "folder", folder.Name, "file", c.Name, "detail", what)
	d.raise(context.WithoutCancel(ctx), grewException(folder, c.Name, c.ModTime, f.ID, what))
	return true
}

// grewException is the file_grew exception of a file taken from folder; the
// fingerprint is the drop (name and mtime when taken), so that the check after
// processing and the later watch of done/ make one exception, and a later drop of
// the same name another.
func grewException(folder *config.Folder, name string, taken time.Time, fileID int64, what string) archive.Exception {
	return archive.Exception{Fingerprint: fmt.Sprintf("file_grew|folder:%s|%s|%d", folder.Name, name, taken.UnixNano()), Kind: "file_grew",
		Severity: archive.SevHigh, Owner: "operator", FileID: fileID, Subject: folder.Name + "/" + name, Message: fmt.Sprintf("folder %s: %s", folder.Name, what),
		Action: fmt.Sprintf("Drop the complete file again (processed as a new version), and make the writer finish before cmord takes it: write under a temporary name (.part) and rename, use done_marker, or raise settle (now %s) above the writer's longest pause.", folder.Settle)}
}

// intakeGrew records a finished file that kept growing (intake's later look at
// done/ or rejected/), on the archived version it was taken as.
func (d *Daemon) intakeGrew(ev intake.Event) {
	folder := d.folderByName(ev.Folder)
	if folder == nil {
		return
	}
	var fileID int64
	if fs, err := d.Store.ListFiles(context.Background(), archive.FileFilter{Source: "folder:" + folder.Name, Name: ev.File}); err == nil && len(fs) > 0 {
		fileID = fs[0].ID // the latest version
	}
	d.raise(context.Background(), grewException(folder, ev.File, ev.ModTime, fileID, ev.Detail))
}
