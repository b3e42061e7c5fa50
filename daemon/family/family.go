// Package family is what a flow family (daemon/uscente, daemon/entrante, daemon/sii)
// and the running daemon share: the input a handler is given and the result it
// returns, the builder interface, the registration of both, and the few services a
// family asks of the running daemon (Host). It imports archive, config and flows only,
// so the imports stay one way: daemon → the families → family → archive, config → flows.
//
// The flow logic plugs in through two interfaces, so the plumbing never changes when a
// flow is added: a Handler consumes one archived input file of its kind, and a Builder
// produces flow files on schedule.
package family

import (
	"context"
	"database/sql"
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
func (in *Input) Open() (io.ReadCloser, error) {
	return in.Store.Blobs.OpenSized(in.File.Hash, in.File.Size)
}

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

// Built is a flow or export file made by a builder, ready to be archived.
type Built struct {
	Name    string  // file name as published
	Kind    string  // catalog flow key (REQ, ANN_REQ, ...) or export name
	Content []byte  // the whole file
	Inputs  []int64 // provenance: archived files it was made from
	Meta    map[string]string
	// At is when it is archived (files.received_at); zero: the daemon's clock now. A
	// builder that marks its requests sent at its own time passes that time, so that
	// a request's sent_at is its file's received_at and is stored as such (migration
	// 0043, archive.PracticeStmts.MarkSentAll), not written out again.
	At time.Time
	// Hash and Size, when Hash is set: Content is already in the blob store under
	// that hash (archive.BlobStore.Put, as a builder does on a goroutine of its own
	// meanwhile); ArchiveBuilt indexes it without putting it again.
	Hash string
	Size int64
}

// SIIRowHook lets a family handle the rows of a shared SII flow (ANN_NOTIF, UPD_NOTIF,
// ANN_AMM) that name one of its practices, when another family's handler reads the
// file. It runs inside the file's transaction.
type SIIRowHook func(ctx context.Context, tx *sql.Tx, in *Input, f *flows.Flow, rec flows.Record, p archive.Practice) ([]flows.Finding, error)

// Host is what a family needs from the running daemon. Everything here reads the
// configuration in force at the time of the call (a reload replaces it).
type Host interface {
	Archive() *archive.Store
	Config() *config.Config
	Catalog() *flows.Catalog
	Calendar() *flows.Calendar // working days: national holidays + patron day
	Now() time.Time            // the daemon's clock (a test's or the demo's fake one too)

	// ArchiveBuilt stores a built file and indexes it (direction out) inside tx.
	ArchiveBuilt(ctx context.Context, tx *sql.Tx, b Built, source string) (archive.File, error)
	// QueueToSII queues the publication of an archived flow file to every SFTP
	// endpoint with an outbound directory, inside tx.
	QueueToSII(ctx context.Context, tx *sql.Tx, f archive.File) error
	// QueueToBilling queues an archived export into the billing folder, inside tx.
	QueueToBilling(ctx context.Context, tx *sql.Tx, f archive.File) error

	// HandlerOf returns the handler registered for an input kind or flow key (nil if
	// none): a file identified late is handed to it.
	HandlerOf(kind string) Handler
	// SIIRowHook returns the hook a family registered for a shared SII flow (nil if none).
	SIIRowHook(flowKey string) SIIRowHook
}

// Registry is where a family registers its handlers, builders and row hooks when the
// daemon applies a configuration (at start and on every reload).
type Registry interface {
	Handle(kind string, h Handler)
	AddBuilder(b Builder)
	HookSIIRows(flowKey string, h SIIRowHook)
}

// Setup registers one family with the daemon.
type Setup func(h Host, r Registry) error
