package digest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
)

// TestDigestPeriod pins where a digest's period starts, the same for a preview and for
// a digest sent: the previous digest's end when there is one; with none, the archive's
// first record when it is older than a day — a digest first enabled after days of
// work, or the demo's, whose script is dated in the recent past, covered only the last
// 24 hours and said "no file in the period" — else the last 24 hours. The period line
// says which.
func TestDigestPeriod(t *testing.T) {
	now := fixtureNow
	type file struct {
		name, state string
		at          time.Time
	}
	for _, tt := range []struct {
		name         string
		files        []file
		lastDigest   time.Time // the previous digest's end, zero: none
		wantStart    time.Time
		wantFirst    bool
		wantFlows    bool // the period holds files
		wantRejected []string
		wantNote     string
	}{
		{name: "empty archive", wantStart: now.Add(-24 * time.Hour), wantFirst: true, wantNote: "(primo riepilogo: ultime 24 ore)"},
		{name: "archive younger than a day", files: []file{{"morosi_1.csv", archive.StateProcessed, now.Add(-2 * time.Hour)}},
			wantStart: now.Add(-24 * time.Hour), wantFirst: true, wantFlows: true, wantNote: "(primo riepilogo: ultime 24 ore)"},
		{name: "archive older than a day", files: []file{
			{"morosi_1.csv", archive.StateRejected, now.Add(-72 * time.Hour)},
			{"morosi_2.csv", archive.StateProcessed, now.Add(-48 * time.Hour)},
		}, wantStart: now.Add(-72 * time.Hour), wantFirst: true, wantFlows: true, wantRejected: []string{"morosi_1.csv"},
			wantNote: "(primo riepilogo: dal primo record dell'archivio)"},
		{name: "after a digest", files: []file{
			{"morosi_1.csv", archive.StateRejected, now.Add(-72 * time.Hour)},
			{"morosi_2.csv", archive.StateProcessed, now.Add(-2 * time.Hour)},
		}, lastDigest: now.Add(-24 * time.Hour), wantStart: now.Add(-24 * time.Hour), wantFlows: true,
			wantNote: "(dalla fine dell'ultimo riepilogo inviato)"},
		{name: "just after a digest", files: []file{{"morosi_1.csv", archive.StateRejected, now.Add(-72 * time.Hour)}},
			lastDigest: now.Add(-time.Minute), wantStart: now.Add(-time.Minute),
			wantNote: "(dalla fine dell'ultimo riepilogo inviato)"},
	} {
		for _, preview := range []bool{true, false} {
			name := tt.name + "/sent"
			if preview {
				name = tt.name + "/preview"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				st := openStore(t, t.TempDir())
				st.Now = func() time.Time { return now }
				for _, f := range tt.files {
					in := ingest(t, st, "folder:morosi", f.name, "in", "uscente.morosi", f.state, f.name+"\n", f.at)
					if f.state == archive.StateRejected {
						write(t, st, func(tx *sql.Tx) error {
							return st.SetFileState(ctx, tx, in.ID, archive.StateRejected, "refused whole", nil)
						})
					}
				}
				if !tt.lastDigest.IsZero() {
					write(t, st, func(tx *sql.Tx) error {
						_, err := st.RecordDigest(ctx, tx, archive.DigestRecord{DedupKey: "digest:last", PeriodStart: tt.lastDigest.Add(-24 * time.Hour),
							PeriodEnd: tt.lastDigest, Lang: "it", CreatedAt: tt.lastDigest})
						return err
					})
				}
				d, err := Build(ctx, st, Options{Company: "Esempio Energia S.p.A.", ReadOnly: preview}, now)
				if err != nil {
					t.Fatal(err)
				}
				if !d.PeriodStart.Equal(tt.wantStart) || d.FirstDigest != tt.wantFirst {
					t.Errorf("period from %v (first %v), want from %v (first %v)", d.PeriodStart, d.FirstDigest, tt.wantStart, tt.wantFirst)
				}
				if (len(d.Flows) > 0) != tt.wantFlows {
					t.Errorf("flows in the period: %+v, want some: %v", d.Flows, tt.wantFlows)
				}
				var rejected []string
				for _, r := range d.Rejected {
					rejected = append(rejected, r.Name)
				}
				if strings.Join(rejected, ",") != strings.Join(tt.wantRejected, ",") {
					t.Errorf("files refused in the period: %v, want %v", rejected, tt.wantRejected)
				}
				_, text, html, _, err := d.Render("it", false)
				if err != nil {
					t.Fatal(err)
				}
				period := strings.SplitN(text[strings.Index(text, "Periodo: "):], "\n", 2)[0]
				if !strings.HasSuffix(period, tt.wantNote) {
					t.Errorf("period line %q, want it to end with %q", period, tt.wantNote)
				}
				if !strings.Contains(html, strings.NewReplacer("'", "&#39;").Replace(tt.wantNote)) {
					t.Errorf("the HTML digest lacks %q", tt.wantNote)
				}
			})
		}
	}
}
