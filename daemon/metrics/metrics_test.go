package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsExposition(t *testing.T) {
	m := New()
	m.FilesIn.WithLabelValues("morosi").Add(3)
	m.FilesOut.WithLabelValues("sii").Inc()
	m.Failures.WithLabelValues("sftp").Inc()
	m.QueueDepth.WithLabelValues("deliveries").Set(7)
	m.SFTPContact("sii", time.Unix(1700000000, 500_000_000))
	m.ScheduleRuns.WithLabelValues("digest", "ok").Inc()
	m.ExceptionsOpen.WithLabelValues("urgent").Set(2)

	srv := httptest.NewServer(m.Handler(nil))
	defer srv.Close()
	code, body := get(t, srv.URL+"/metrics")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		`cmord_files_in_total{source="morosi"} 3`,
		`cmord_files_out_total{endpoint="sii"} 1`,
		`cmord_failures_total{kind="sftp"} 1`,
		`cmord_queue_depth{queue="deliveries"} 7`,
		`cmord_last_sftp_contact_timestamp_seconds{endpoint="sii"} 1.7000000005e+09`,
		`cmord_schedule_runs_total{job="digest",status="ok"} 1`,
		`cmord_exceptions_open{severity="urgent"} 2`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestHealthz(t *testing.T) {
	var healthErr error
	srv := httptest.NewServer(New().Handler(func() error { return healthErr }))
	defer srv.Close()
	for _, tc := range []struct {
		err  error
		code int
		body string
	}{
		{nil, 200, "ok\n"},
		{errors.New("archive: database is locked"), 503, "archive: database is locked\n"},
	} {
		healthErr = tc.err
		code, body := get(t, srv.URL+"/healthz")
		if code != tc.code || body != tc.body {
			t.Errorf("healthz = %d %q, want %d %q", code, body, tc.code, tc.body)
		}
		// The same verdict on /metrics, for a setup that only scrapes.
		want := "cmord_healthy 1\n"
		if tc.err != nil {
			want = "cmord_healthy 0\n"
		}
		if _, metrics := get(t, srv.URL+"/metrics"); !strings.Contains(metrics, want) {
			t.Errorf("/metrics with health %v lacks %q", tc.err, want)
		}
	}
	if code, _ := get(t, srv.URL+"/other"); code != 404 {
		t.Errorf("/other = %d", code)
	}
}

// Two daemons in one test process must not collide on registration.
func TestIndependentRegistries(t *testing.T) {
	a, b := New(), New()
	a.FilesIn.WithLabelValues("x").Inc()
	if n, _ := b.Registry.Gather(); len(n) == 0 {
		t.Fatal("empty registry")
	}
}

func TestServeShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, New().Handler(nil)) }()
	if code, body := get(t, "http://"+ln.Addr().String()+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz = %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
