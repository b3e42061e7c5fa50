package daemon

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cmord/cmord/daemon/sched"
)

// cmord_schedule_runs_total counts successful runs and failed ones, not only missed
// slots: the SII poll job of the daemon run through the real scheduler, once against
// the SFTP server, once with the server gone.
func TestScheduleRunsMetric(t *testing.T) {
	w := newTestWorld(t, time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), "[schedule]\npoll_sii = \"0 6 * * *\"\n")
	d := w.d
	s := sched.New(d.Config().Location, d.Store.ScheduleLedger(), slog.New(slog.NewTextHandler(io.Discard, nil)), d.schedEvent)
	for _, j := range d.jobs() {
		if err := s.Add(j); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	count := func(status string) float64 {
		fams, err := d.Metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "cmord_schedule_runs_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["job"] == JobPollSII && labels["status"] == status {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	if err := s.RunNow(ctx, JobPollSII); err != nil {
		t.Fatalf("poll against the SFTP server: %v", err)
	}
	if ok, failed := count("ok"), count("failed"); ok != 1 || failed != 0 {
		t.Errorf("after a good run: ok %v failed %v, want 1 0", ok, failed)
	}
	w.srv.Close()
	if err := s.RunNow(ctx, JobPollSII); err == nil {
		t.Fatal("poll with the SFTP server gone succeeded")
	}
	if ok, failed := count("ok"), count("failed"); ok != 1 || failed != 1 {
		t.Errorf("after a failed run: ok %v failed %v, want 1 1", ok, failed)
	}
}
