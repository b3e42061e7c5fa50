package daemon

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/entrante"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/daemon/sii"
	"github.com/cmord/cmord/daemon/uscente"
)

// The flow families plug into the daemon through daemon/family: the daemon is their
// Host (the store, the configuration in force, the clock, publication) and their
// Registry (handlers by input kind or flow key, builders, SII row hooks).

// The pipeline's types are the families'; the names stay here for the CLI.
type (
	Input       = family.Input
	Result      = family.Result
	Handler     = family.Handler
	HandlerFunc = family.HandlerFunc
	Builder     = family.Builder
	Built       = family.Built
)

// familySetups register the flow families, in this order, whenever a configuration
// is applied (start and reload).
var familySetups = []family.Setup{entrante.Setup, sii.Setup, uscente.Setup}

var _ family.Host = (*Daemon)(nil)
var _ family.Registry = (*Daemon)(nil)

// Archive returns the archive (family.Host).
func (d *Daemon) Archive() *archive.Store { return d.Store }

// HandlerOf returns the handler registered for kind, nil if none (family.Host).
func (d *Daemon) HandlerOf(kind string) Handler {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.handlers[kind]
}

// HookSIIRows registers a family's hook for the rows of a shared SII flow that name
// one of its practices (family.Registry).
func (d *Daemon) HookSIIRows(flowKey string, h family.SIIRowHook) { d.siiRowHooks[flowKey] = h }

// SIIRowHook returns the hook registered for a shared SII flow, nil if none (family.Host).
func (d *Daemon) SIIRowHook(flowKey string) family.SIIRowHook {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.siiRowHooks[flowKey]
}

// unknownKind is the handler for a kind no flow handles (yet): the file is archived,
// refused with a clear reason and reported.
func unknownKind(ctx context.Context, in *Input) (Result, error) {
	res := Result{Rejected: true, Reason: fmt.Sprintf("no handler for input kind %q: the file is archived (#%d) but not processed", in.File.Kind, in.File.ID)}
	err := in.Store.Write(ctx, func(tx *sql.Tx) error { return in.Finish(ctx, tx, res) })
	return res, err
}
