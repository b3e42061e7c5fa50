// Package metrics holds cmord's Prometheus registry, the metrics the daemon updates,
// and the HTTP handler for /metrics and /healthz (served on `listen`, loopback).
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the registry and every metric cmord exports. A fresh one per daemon
// (and per test): nothing is registered globally.
type Metrics struct {
	Registry *prometheus.Registry

	FilesIn         *prometheus.CounterVec // {source}: files archived from a folder or endpoint
	FilesOut        *prometheus.CounterVec // {endpoint}: files delivered
	Failures        *prometheus.CounterVec // {kind}: sftp, smtp, parse, archive, …
	QueueDepth      *prometheus.GaugeVec   // {queue}: deliveries, outbox, intake…
	LastSFTPContact *prometheus.GaugeVec   // {endpoint}: Unix time of the last successful exchange
	ScheduleRuns    *prometheus.CounterVec // {job,status}: ok|failed|panic|missed|overlap|interrupted
	ExceptionsOpen  *prometheus.GaugeVec   // {severity}
	UncleanExits    prometheus.Gauge       // unclean exits in a row before this run (0 once it stayed up or if none)
}

// New returns the metrics registered in a new registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		FilesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmord_files_in_total", Help: "Files taken in and archived, by source (folder or SFTP endpoint).",
		}, []string{"source"}),
		FilesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmord_files_out_total", Help: "Files delivered, by endpoint.",
		}, []string{"endpoint"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmord_failures_total", Help: "Failures, by kind.",
		}, []string{"kind"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cmord_queue_depth", Help: "Items waiting, by queue.",
		}, []string{"queue"}),
		LastSFTPContact: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cmord_last_sftp_contact_timestamp_seconds", Help: "Unix time of the last successful SFTP exchange, by endpoint.",
		}, []string{"endpoint"}),
		ScheduleRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmord_schedule_runs_total", Help: "Scheduled job runs, by job and status: ok, failed, panic (runs); missed, overlap, interrupted (slots that did not run or did not finish).",
		}, []string{"job", "status"}),
		ExceptionsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cmord_exceptions_open", Help: "Open exceptions, by severity.",
		}, []string{"severity"}),
		UncleanExits: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cmord_unclean_exits", Help: "Runs in a row that ended without a clean stop (crash, OOM kill, kill -9) before this one; 0 when none, or once this run has stayed up an hour.",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.FilesIn, m.FilesOut, m.Failures, m.QueueDepth, m.LastSFTPContact, m.ScheduleRuns, m.ExceptionsOpen,
		m.UncleanExits,
	)
	return m
}

// SFTPContact records a successful exchange with endpoint at t.
func (m *Metrics) SFTPContact(endpoint string, t time.Time) {
	m.LastSFTPContact.WithLabelValues(endpoint).Set(float64(t.UnixNano()) / 1e9)
}

// Handler serves /metrics from the registry and /healthz: 200 "ok" when health
// (which may be nil) returns nil, else 503 with the reason. /metrics carries the same
// verdict as cmord_healthy (1 or 0, computed at each scrape), so that a setup that only
// scrapes Prometheus, and never probes /healthz, still sees a stall: mail down, a job
// failing run after run, the disk full. Of several handlers of one Metrics, the first
// health function is the one scraped.
func (m *Metrics) Handler(health func() error) http.Handler {
	if health != nil {
		healthy := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cmord_healthy", Help: "1 when /healthz answers ok, 0 when it answers 503 (its body says why).",
		}, func() float64 {
			if health() != nil {
				return 0
			}
			return 1
		})
		var already prometheus.AlreadyRegisteredError
		if err := m.Registry.Register(healthy); err != nil && !errors.As(err, &already) {
			panic(err) // a programming error: the gauge's options are constant
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if health != nil {
			if err := health(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Serve listens on addr and serves h until ctx ends, then shuts down gracefully
// (5 s at most). It returns the listen error, or nil after a clean shutdown.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h)
}

// ServeListener is Serve on an open listener (tests pass 127.0.0.1:0).
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
