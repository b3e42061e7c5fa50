package family

import (
	"context"
	"database/sql"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/flows"
)

// What every family's builders share.

// BuildLimits returns [build] max rows per file.
func BuildLimits(cfg *config.Config) int {
	if cfg.Build.MaxRowsPerFile > 0 {
		return cfg.Build.MaxRowsPerFile
	}
	return 10000
}

// FlowFormat is the format a flow is built in: [build] format, else the catalog's.
func FlowFormat(cfg *config.Config, f *flows.Flow) string {
	if v := cfg.Build.Format[f.Key]; v != "" {
		return v
	}
	return f.Format
}

// FlowFileName names a new file of flow f, drawing the flow's daily file sequence.
func FlowFileName(ctx context.Context, store *archive.Store, tx *sql.Tx, f *flows.Flow, format string, first map[string]string, now time.Time, today flows.Date) (string, error) {
	seq, err := store.NextSequence(ctx, tx, "file|"+f.Key+"|"+today.ISO())
	if err != nil {
		return "", err
	}
	return f.BuildFileName(first, now, int(seq), format)
}

// NewCode allocates a CP_UTENTE inside st's transaction, from the one sequence of the
// company, sector and year, so that no code is ever issued twice whichever family asks.
func NewCode(ctx context.Context, st *archive.PracticeStmts, tmpl *flows.CodeTemplate, company, sector string, year int) (string, error) {
	return st.NewCode(ctx, tmpl.SequenceName(company, sector, year), func(seq int64) (string, error) {
		return tmpl.Render(sector, year, seq)
	})
}
