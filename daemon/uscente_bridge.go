package daemon

import (
	"context"
	"database/sql"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/entrante"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// TEMPORARY, until the uscente family leaves the daemon root (issue 15, last step):
// the names uscente.go still calls on the daemon, now served by daemon/family and
// daemon/entrante.

func (d *Daemon) RequestEntranteAnnulment(ctx context.Context, tx *sql.Tx, p *archive.Practice, cause, motivation string, event flows.Date, fileID int64, line int) ([]flows.Finding, error) {
	return entrante.RequestAnnulment(ctx, d, tx, p, cause, motivation, event, fileID, line)
}

func (d *Daemon) LinkPreviousCMOR(ctx context.Context, tx *sql.Tx, uscente *archive.Practice) error {
	return entrante.LinkPreviousCMOR(ctx, d, tx, uscente)
}

func flowFileName(ctx context.Context, d *Daemon, tx *sql.Tx, f *flows.Flow, format string, first map[string]string, now time.Time, today flows.Date) (string, error) {
	return family.FlowFileName(ctx, d.Store, tx, f, format, first, now, today)
}

var (
	buildLimits = family.BuildLimits
	flowFormat  = family.FlowFormat
)
