package uscente

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
)

// The sort pass reads the file on a goroutine of its own: every row before a row that
// stops the reading still gives its findings, in file order, and the error is the
// reader's; a cancelled context stops it; a whole file gives every row, sorted by key.
func TestSortRowsByKeyAcrossBatches(t *testing.T) {
	const header = "SETTORE;COD_POD;CF_CLIENTE;DENOMINAZIONE;DATA_SWITCH\n"
	row := func(i int) string {
		return fmt.Sprintf("E;IT001E%08d;RSSMRA85T10A562S;Rossi;01/03/2025\n", (i*7919)%1000)
	}
	var rows strings.Builder
	for i := range 1000 {
		rows.WriteString(row(i))
	}
	long := "E;IT001E00000001;RSSMRA85T10A562S;" + strings.Repeat("x", 2<<20) + ";01/03/2025\n"
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	for _, tc := range []struct {
		name     string
		data     string
		cancel   bool
		wantRows int    // rows handed to rowFindings
		wantErr  string // "" = the merge opens
	}{
		{"whole file", header + rows.String(), false, 1000, ""},
		{"a line too long after 600 rows", header + rows.String()[:strings.Index(rows.String(), row(600))] + long + row(601), false, 600, "longer than"},
		{"cancelled", header + rows.String(), true, 0, context.Canceled.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			rd := flows.NewCSVReader(strings.NewReader(tc.data), flow, flows.ReadOptions{FileName: "x.csv"})
			var lines []int
			n := 0
			dir := t.TempDir()
			m, err := sortRowsByKey(ctx, rd, flow, dir, func(fs []flows.Finding) { n++ })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if left, _ := os.ReadDir(dir); len(left) != 0 {
					t.Errorf("runs left by a sort that stopped: %v", left)
				}
				var fd flows.Finding
				if tc.wantRows > 0 && !errors.As(err, &fd) {
					t.Errorf("the reader's finding is lost: %T %v", err, err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				prev := ""
				for {
					rec, _, ok, err := m.next()
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					key := flows.MorosiKey(rec)
					if pod := fmt.Sprintf("IT001E%08d", ((rec.Line-2)*7919)%1000); rec.Get(flows.MorPOD) != pod {
						t.Fatalf("line %d: POD %q, the line has %q", rec.Line, rec.Get(flows.MorPOD), pod)
					}
					if key < prev {
						t.Fatalf("line %d: key %s after %s", rec.Line, key, prev)
					}
					prev = key
					lines = append(lines, rec.Line)
				}
				if len(lines) != tc.wantRows {
					t.Errorf("%d rows merged, want %d", len(lines), tc.wantRows)
				}
			}
			if n != tc.wantRows {
				t.Errorf("%d rows gave their findings, want %d", n, tc.wantRows)
			}
		})
	}
}

// The row-order pass counts the runs of one practice's rows up to a limit (the
// handler's KeyOrderCases): beyond it the file is sorted whatever else it holds, so
// the pass stops counting there, and reads on only for the error that would stop the
// reading proper. The handler's decision (sortByKey) is the one counting every run
// gives, for adjacent and scattered rows, a repeat before or after the limit, and a
// file refused at a later line.
func TestKeyRunsLimit(t *testing.T) {
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	rows := func(pods ...int) string {
		var b strings.Builder
		b.WriteString(fullHeader)
		for i, p := range pods {
			b.WriteString(fullRow(p, fmt.Sprintf("F%d", i), "Bianchi"))
		}
		return b.String()
	}
	long := fullRow(99, "FX", strings.Repeat("x", 2<<20))
	for _, tc := range []struct {
		name          string
		data          string
		limit         int
		adjacent      bool
		runs          int
		wantAdjacent  bool // counting every run (limit 0)
		wantRuns      int
		sortedByLimit bool // sortByKey with the limit as KeyOrderCases
	}{
		{"adjacent, under the limit", rows(1, 1, 2, 2, 3), 3, true, 3, true, 3, false},
		{"adjacent, over the limit", rows(1, 1, 2, 3, 3, 4, 5), 3, true, 4, true, 5, true},
		{"a repeat before the limit", rows(1, 2, 1, 3, 4, 5), 3, false, 2, false, 2, true},
		{"a repeat after the limit", rows(1, 2, 3, 4, 5, 1), 3, true, 4, false, 5, true},
		{"refused at a later line, after the limit", rows(1, 2, 3, 4, 5) + long + fullRow(6, "F9", "Bianchi"), 3, true, 0, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := func(limit int) (bool, int) {
				adjacent, runs, err := keyRuns(context.Background(), flows.NewCSVReader(strings.NewReader(tc.data), flow, flows.ReadOptions{FileName: "x.csv"}), limit)
				if err != nil {
					t.Fatal(err)
				}
				return adjacent, runs
			}
			adjacent, runs := read(tc.limit)
			if adjacent != tc.adjacent || runs != tc.runs {
				t.Errorf("limit %d: adjacent %v, %d runs; want %v, %d", tc.limit, adjacent, runs, tc.adjacent, tc.runs)
			}
			allAdjacent, allRuns := read(0)
			if allAdjacent != tc.wantAdjacent || allRuns != tc.wantRuns {
				t.Errorf("no limit: adjacent %v, %d runs; want %v, %d", allAdjacent, allRuns, tc.wantAdjacent, tc.wantRuns)
			}
			old := KeyOrderCases
			KeyOrderCases = tc.limit
			defer func() { KeyOrderCases = old }()
			if got, all := sortByKey(adjacent, runs), sortByKey(allAdjacent, allRuns); got != tc.sortedByLimit || got != all {
				t.Errorf("sorted %v with the limit, %v counting every run; want %v", got, all, tc.sortedByLimit)
			}
		})
	}
}

// The sort's runs are zstd-compressed blocks, smaller than the rows they hold (a run is
// a sorted copy of part of the extract, and at a million rows the runs reach the
// disk), and a run damaged on disk stops the merge with an error instead of losing
// rows.
func TestSortRunsCompressed(t *testing.T) {
	defer func(n int) { SortRunBytes = n }(SortRunBytes)
	SortRunBytes = 64 << 10
	const header = "SETTORE;COD_POD;CF_CLIENTE;DENOMINAZIONE;DATA_SWITCH\n"
	var rows strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&rows, "E;IT001E%08d;RSSMRA85T10A562S;Rossi Mario %d;01/03/2025\n", (i*7919)%5000, i%17)
	}
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	for _, damage := range []bool{false, true} {
		t.Run(fmt.Sprintf("damaged=%v", damage), func(t *testing.T) {
			dir := t.TempDir()
			var runs []string
			w := &runWriter{dir: dir}
			rd := flows.NewCSVReader(strings.NewReader(header+rows.String()), flow, flows.ReadOptions{FileName: "x.csv"})
			defer rd.Close()
			encoded := 0
			for {
				rec, _, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				key := flows.MorosiKey(rec)
				encoded += len(key) // what the rows hold, at least: their key and values
				for _, v := range rec.Values {
					encoded += len(v)
				}
				if err := w.add(key, rec.Line, false, rec.Values); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
			runs = w.runs
			if len(runs) < 2 {
				t.Fatalf("%d runs, want several", len(runs))
			}
			stored := 0
			for _, p := range runs {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if i := bytes.Index(b, []byte("\x28\xb5\x2f\xfd")); i < 0 || i > 2*binary.MaxVarintLen64 {
					t.Fatalf("run %s does not start with a zstd frame: % x", p, b[:min(len(b), 16)])
				}
				stored += len(b)
			}
			if stored*2 > encoded {
				t.Errorf("runs hold %d bytes on disk for %d bytes of rows: not compressed", stored, encoded)
			}
			if damage {
				b, _ := os.ReadFile(runs[1])
				b[len(b)/2] ^= 0xff
				if err := os.WriteFile(runs[1], b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			m, err := openMerge(dir, runs, w.rows, flow)
			if err == nil {
				defer m.Close()
				n := 0
				for {
					_, _, ok, err2 := m.next()
					if err2 != nil {
						err = err2
						break
					}
					if !ok {
						break
					}
					n++
				}
				if err == nil && n != 5000 {
					t.Fatalf("%d rows merged, want 5000", n)
				}
			}
			if damage != (err != nil) {
				t.Fatalf("damaged %v: merge error %v", damage, err)
			}
		})
	}
}
