package uscente

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmord/cmord/flows"
)

// BenchmarkSortMergeRuns sorts a benchmark extract of daemon's BenchmarkMorosi1M into
// runs and merges them back, nothing else: the sort's own CPU and the runs' size
// (docs/benchmarks-uscente.md, "Seventh round"). MOROSI_SORT_FILE names the file
// (cmord-bench-morosi-v2-shuffled-300000.csv in $TMPDIR by default; skipped when
// absent). MOROSI_SORT_MERGE_S=N paces the merge to last about N seconds, as it does
// inside the handler (whose chunks take their time between the rows): the runs then
// live as long as in the handler, and runs-written-MiB says how much of them reached
// the disk (write_bytes less cancelled_write_bytes over the sort and merge).
// MOROSI_SORT_KEEP_READ=1 leaves the runs whole until the merge ends (freeReadRuns).
func BenchmarkSortMergeRuns(b *testing.B) {
	if os.Getenv("MOROSI_SORT_KEEP_READ") == "1" {
		defer func(v bool) { freeReadRuns = v }(freeReadRuns)
		freeReadRuns = false
	}
	var pace time.Duration
	if v := os.Getenv("MOROSI_SORT_MERGE_S"); v != "" {
		var s float64
		fmt.Sscan(v, &s)
		pace = time.Duration(s * float64(time.Second))
	}
	file := os.Getenv("MOROSI_SORT_FILE")
	if file == "" {
		file = filepath.Join(os.TempDir(), "cmord-bench-morosi-v2-shuffled-300000.csv")
	}
	if _, err := os.Stat(file); err != nil {
		b.Skipf("no extract: %v (run the daemon's BenchmarkMorosi1M first)", err)
	}
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	st, _ := os.Stat(file)
	rowsGuess := st.Size() / 376 // the benchmark's extract: about 376 bytes a row
	for b.Loop() {
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		ioBefore := procWritten()
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		rd := flows.NewCSVReader(f, flow, flows.ReadOptions{FileName: filepath.Base(file)})
		if _, err := rd.ReadHeader(); err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		m, err := sortRowsByKey(context.Background(), rd, flow, dir, func([]flows.Finding) {})
		if err != nil {
			b.Fatal(err)
		}
		var runBytes int64
		ents, _ := os.ReadDir(m.dir)
		for _, e := range ents {
			if st, err := e.Info(); err == nil {
				runBytes += st.Size()
			}
		}
		n, start := 0, time.Now()
		for {
			if pace > 0 && n%1000 == 0 {
				// The rows are not counted before the end: paced by the extract's size.
				if d := time.Duration(float64(pace)*float64(n)/float64(rowsGuess)) - time.Since(start); d > 0 {
					time.Sleep(d)
				}
			}
			_, _, ok, err := m.next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			n++
		}
		m.Close()
		written := procWritten() - ioBefore
		b.ReportMetric(float64(written)/(1<<20), "runs-written-MiB")
		rd.Close()
		f.Close()
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := float64(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / 1e9
		b.ReportMetric(float64(runBytes)/(1<<20), "runs-MiB")
		b.ReportMetric(cpu, "cpu-s")
		b.ReportMetric(float64(n), "rows")
	}
}

// procWritten is the process's write_bytes less cancelled_write_bytes (/proc/self/io):
// what reached or will reach the disk.
func procWritten() int64 {
	st, _ := os.ReadFile("/proc/self/io")
	var w, c int64
	for _, ln := range strings.Split(string(st), "\n") {
		k, v, _ := strings.Cut(ln, ": ")
		var n int64
		fmt.Sscan(v, &n)
		switch k {
		case "write_bytes":
			w = n
		case "cancelled_write_bytes":
			c = n
		}
	}
	return w - c
}
