package uscente

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/daemon/xlsxrows"
	"github.com/cmord/cmord/flows"
)

const shortHeader = "SETTORE;COD_POD;CF_CLIENTE;DENOMINAZIONE;DATA_SWITCH\n"

func shortRow(pod int) string {
	return fmt.Sprintf("E;IT001E%08d;RSSMRA85T10A562S;Rossi;01/03/2025\n", pod)
}

// fullHeader and fullRow are a uscente.morosi header with every column and a clean
// row of it (practice pod, invoice inv).
const fullHeader = "SETTORE;COD_POD;COD_PDR;CF_CLIENTE;PIVA_CLIENTE;DENOMINAZIONE;DATA_SWITCH;TENSIONE;NUM_FATTURA;DATA_EMISSIONE;DATA_SCADENZA;PERIODO_DA;PERIODO_A;IMPORTO_FATTURA;IMPORTO_INSOLUTO;IMPORTO_RAI;TIPO_LETTURA;DATA_MORA;MEZZO_MORA;TERMINE_MORA;INFO_CMOR;SPESA_12M;FATTURA_CHIUSURA;INDENNIZZI_TIF_PAGATI;RECLAMI_EVASI;PUNTO_ATTIVO;VOLTURA\n"

func fullRow(pod int, inv, name string) string {
	return fmt.Sprintf("E;IT001E%08d;;BNCLRA80A41F205G;;%s;01/03/2025;BT;%s;15/11/2024;05/12/2024;01/10/2024;31/10/2024;424.39;424.39;;E;10/01/2025;RA;30/01/2025;S;2024-12:100.00;S;S;S;S;N\n", pod, name, inv)
}

// A file the reading proper stops on (a line longer than the reader takes) is
// "adjacent" to the row-order pass whatever its rows before: the reading proper says
// why it stops, in file order, after the practices before the line (as when the pass
// read the whole file). Stopping at the first key seen twice made such a file sorted:
// no practice before the line reached `cmord validate`, nor a chunk of the handler.
func TestKeyRunsUnreadableLaterIsAdjacent(t *testing.T) {
	data := fullHeader + fullRow(1, "F1", "Bianchi") + fullRow(2, "F2", "Bianchi") + fullRow(1, "F3", "Bianchi") + fullRow(3, "F4", "Bianchi") +
		fullRow(9, "F5", strings.Repeat("x", 2<<20)) + fullRow(4, "F6", "Bianchi")
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(data)), nil }
	rc, _ := open()
	adjacent, _, err := keyRuns(context.Background(), flows.NewCSVReader(rc, flow, flows.ReadOptions{FileName: "x.csv"}), 0)
	if err != nil || !adjacent {
		t.Fatalf("keyRuns: adjacent %v, err %v; want adjacent (the reading proper refuses the file)", adjacent, err)
	}
	var keys []string
	var stop []string
	_, err = ValidateMorosi(context.Background(), open, flow, flows.ReadOptions{FileName: "x.csv"}, flows.D(2025, 3, 20),
		family.CMORParams(config.CMOR{}), t.TempDir(), func(f flows.Finding) {
			if f.Rule == flows.RuleCSVLine {
				stop = append(stop, f.String())
			}
		}, func(r MorosiCaseReport) { keys = append(keys, r.Key) })
	if err != nil {
		t.Fatal(err)
	}
	if len(stop) != 1 {
		t.Errorf("findings of the unreadable line: %q, want one", stop)
	}
	if len(keys) != 3 {
		t.Errorf("practices reported before the unreadable line: %d (%q), want 3 (read in file order)", len(keys), keys)
	}
}

// panicReader gives its data, then panics: a fault of the reading code.
type panicReader struct{ r io.Reader }

func (p *panicReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err == io.EOF {
		panic("reading fault")
	}
	return n, err
}

// mustPanic runs f and returns what it panicked with on this goroutine (the one
// whose recover, intake's or the scheduler's, keeps the daemon up).
func mustPanic(t *testing.T, f func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	f()
	t.Fatal("no panic reached the calling goroutine")
	return nil
}

// A panic while the sort pass reads the file (on its own goroutine) is the caller's,
// as when the pass read on the handler's goroutine: intake refuses the file instead
// of the process ending; the temporary runs are removed.
func TestSortRowsByKeyPanicIsTheCallers(t *testing.T) {
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	var rows strings.Builder
	for i := range 3000 {
		rows.WriteString(shortRow(i * 7919 % 1000))
	}
	rd := flows.NewCSVReader(&panicReader{strings.NewReader(shortHeader + rows.String())}, flow, flows.ReadOptions{FileName: "x.csv"})
	dir := t.TempDir()
	v := mustPanic(t, func() { sortRowsByKey(context.Background(), rd, flow, dir, func([]flows.Finding) {}) })
	if fmt.Sprint(v) != "reading fault" {
		t.Errorf("panic %v, want the reader's", v)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left under the sort directory: %v", left)
	}
}

// A panic while the reader prepares a case (on the reader's goroutine) reaches the
// goroutine that takes the batches, as when the writer decided every case itself.
func TestReadCaseBatchesPanicIsTheCallers(t *testing.T) {
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	data := shortHeader + shortRow(1) + shortRow(2) + shortRow(3)
	cases, err := newMorosiCases(context.Background(), flows.NewCSVReader(strings.NewReader(data), flow, flows.ReadOptions{FileName: "x.csv"}),
		flow, false, 0, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan caseBatch, 1)
	n := 0
	go readCaseBatches(context.Background(), cases, 1, func(*flows.MorosiCase, bool) *preparedCase {
		if n++; n == 2 {
			panic("prepare fault")
		}
		return nil
	}, out)
	var got []caseBatch
	for b := range out {
		got = append(got, b)
	}
	last := got[len(got)-1]
	if last.panicked == nil || fmt.Sprint(last.panicked.value) != "prepare fault" {
		t.Fatalf("batches %+v: the last does not carry the reader's panic", got)
	}
	v := mustPanic(t, last.panicked.raise)
	if fmt.Sprint(v) != "prepare fault" {
		t.Errorf("raised %v, want the reader's panic", v)
	}
}

// The reader tells prepare which cases start a chunk as the writer (commit) cuts
// them: a chunk takes batches until it holds ChunkCases cases, so with batches of 2
// and chunks of 3 cases, chunks start at cases 0, 4, 8 (the cases a chunk's case
// dictionary is guessed from: archive.CasePredeflater).
func TestReadCaseBatchesChunkFirst(t *testing.T) {
	defer func(c int) { ChunkCases = c }(ChunkCases)
	ChunkCases = 3
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	var data strings.Builder
	data.WriteString(shortHeader)
	for i := range 10 {
		data.WriteString(shortRow(i))
	}
	cases, err := newMorosiCases(context.Background(), flows.NewCSVReader(strings.NewReader(data.String()), flow, flows.ReadOptions{FileName: "x.csv"}),
		flow, false, 0, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan caseBatch, 1)
	var firsts []int
	n := 0
	go readCaseBatches(context.Background(), cases, 2, func(_ *flows.MorosiCase, chunkFirst bool) *preparedCase {
		if chunkFirst {
			firsts = append(firsts, n)
		}
		n++
		return nil
	}, out)
	// As commit takes them.
	var starts []int
	seen, inChunk := 0, 0
	for b := range out {
		if b.err != nil || b.panicked != nil {
			t.Fatalf("batch: %v %v", b.err, b.panicked)
		}
		if inChunk == 0 && len(b.cases) > 0 {
			starts = append(starts, seen)
		}
		seen += len(b.cases)
		if inChunk += len(b.cases); inChunk >= ChunkCases {
			inChunk = 0
		}
	}
	if n != 10 || !slices.Equal(firsts, starts) || !slices.Equal(firsts, []int{0, 4, 8}) {
		t.Errorf("%d cases, chunk starts told %v, the writer's %v; want [0 4 8]", n, firsts, starts)
	}
}

// buildHost is the Host the build's page computation reads (its configuration).
type buildHost struct {
	family.Host
	cfg *config.Config
}

func (h buildHost) Config() *config.Config { return h.cfg }

// A panic while the second goroutine computes its half of a page is the build's
// goroutine's, as when one goroutine computed the whole page: the scheduler's recover
// turns it into a failed run instead of the process ending.
func TestPrecomputeREQPanicIsTheBuilds(t *testing.T) {
	f := flows.DefaultCatalog().Flow(FlowREQ)
	b := &requestBuilder{u: &uscente{h: buildHost{cfg: &config.Config{}}}, flow: FlowREQ}
	enc, err := flows.NewBodyEncoder(f, "")
	if err != nil {
		t.Fatal(err)
	}
	enc2, _ := flows.NewBodyEncoder(f, "")
	// A practice missing for the page's second half: the second goroutine faults.
	reqs := []archive.Request{{ID: 1}, {ID: 2}}
	practices := []archive.Practice{{ID: 1}}
	mustPanic(t, func() { b.startPrecompute(f, enc2, reqs, practices).wait(enc) })
}

// A workbook cell may be longer than a CSV line may (Excel stops at 32,767
// characters, a workbook written by a program does not): its row goes through the
// sort's runs and comes back as it went in, as before runs bounded what they read
// back to 2 MiB a value; the full read then refuses it by its field's rule.
func TestSortRowsByKeyLongWorkbookCell(t *testing.T) {
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	long := strings.Repeat("R", 3<<20)
	x := excelize.NewFile()
	rows := [][]string{strings.Split(strings.TrimSpace(shortHeader), ";")}
	for _, pod := range []int{1, 2, 1} {
		rows = append(rows, strings.Split(strings.TrimSpace(shortRow(pod)), ";"))
	}
	rows[2][3] = "LONGNAME"
	for i, r := range rows {
		for j, v := range r {
			cell, _ := excelize.CoordinatesToCellName(j+1, i+1)
			if err := x.SetCellStr("Sheet1", cell, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	var buf bytes.Buffer
	if err := x.Write(&buf); err != nil {
		t.Fatal(err)
	}
	book := replaceInZip(t, buf.Bytes(), "LONGNAME", long)
	rd := flows.NewCSVReader(bytes.NewReader(book), flow, flows.ReadOptions{FileName: "x.xlsx", Workbook: xlsxrows.Open})
	defer rd.Close()
	m, err := sortRowsByKey(context.Background(), rd, flow, t.TempDir(), func([]flows.Finding) {})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	found := false
	for {
		rec, _, ok, err := m.next()
		if err != nil {
			t.Fatalf("reading the runs back: %v", err)
		}
		if !ok {
			break
		}
		found = found || rec.Get(flows.MorName) == long
	}
	if !found {
		t.Error("the row with the long cell did not come back as it went in")
	}
}

// replaceInZip rewrites every entry of a zip with old replaced by new.
func replaceInZip(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	replaced := false
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(old)) {
			data, replaced = bytes.ReplaceAll(data, []byte(old), []byte(new)), true
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if !replaced {
		t.Fatalf("%q is in no part of the workbook", old)
	}
	return out.Bytes()
}

// A panic on the page's own goroutine while the build's goroutine reads the next page
// ahead (it has not joined in yet), or on either once it has, is raised by wait on
// the build's goroutine, once both have stopped; wherever the faulty request falls
// in the page (the first chunk, a later one, the last request).
func TestPageComputePanicIsTheBuilds(t *testing.T) {
	f := flows.DefaultCatalog().Flow(FlowREQ)
	b := &requestBuilder{u: &uscente{h: buildHost{cfg: &config.Config{}}}, flow: FlowREQ}
	tests := []struct {
		name      string
		missing   int  // the first request without its practice: it faults
		readFirst bool // the build's goroutine joins only once the other has stopped
	}{
		{"first request, while reading ahead", 0, true},
		{"a later chunk, while reading ahead", 17, true},
		{"last request, while reading ahead", 39, true},
		{"first request, both computing", 0, false},
		{"a later chunk, both computing", 17, false},
		{"last request, both computing", 39, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, _ := flows.NewBodyEncoder(f, "")
			enc2, _ := flows.NewBodyEncoder(f, "")
			reqs := make([]archive.Request, 40)
			for i := range reqs {
				reqs[i].ID = int64(i + 1)
			}
			practices := make([]archive.Practice, tt.missing)
			pc := b.startPrecompute(f, enc2, reqs, practices)
			if tt.readFirst {
				<-pc.done
			}
			v := mustPanic(t, func() { pc.wait(enc) })
			if !strings.Contains(fmt.Sprint(v), "index out of range") {
				t.Errorf("raised %v, want the fault of the request without its practice", v)
			}
			select {
			case <-pc.done:
			default:
				t.Error("wait raised the panic while the page's own goroutine was still computing")
			}
		})
	}
}

// A panic on the sort pass's own goroutine (in what it does with a row's findings,
// or in writing a run) reaches the caller as the parser's does: with the runs
// removed, and the parser stopped (the reader is the caller's again once the panic
// reaches it: its deferred Close does not race the parser's reads).
func TestSortRowsByKeyCallerPanicRemovesRuns(t *testing.T) {
	defer func(n int) { SortRunBytes = n }(SortRunBytes)
	SortRunBytes = 16 << 10 // runs written before the panic
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	var rows strings.Builder
	for i := range 3000 {
		rows.WriteString(shortRow(i * 7919 % 1000))
	}
	rd := flows.NewCSVReader(strings.NewReader(shortHeader+rows.String()), flow, flows.ReadOptions{FileName: "x.csv"})
	dir := t.TempDir()
	n := 0
	v := mustPanic(t, func() {
		sortRowsByKey(context.Background(), rd, flow, dir, func([]flows.Finding) {
			if n++; n == 2000 {
				panic("findings fault")
			}
		})
	})
	if fmt.Sprint(v) != "findings fault" {
		t.Errorf("panic %v, want the caller's", v)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left under the sort directory: %v", left)
	}
}

// The handler stops its reader (readCasesAhead's stop) before it closes the cases:
// stop returns once the reader has returned, whether it was preparing a case, reading
// the merge's runs or waiting to hand a batch over, so that the merge's files and
// decoder are closed under no reader (run with -race).
func TestReadCasesAheadStopWaitsForTheReader(t *testing.T) {
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	var data strings.Builder
	data.WriteString(shortHeader)
	for i := range 20000 {
		fmt.Fprintf(&data, "E;IT001E%08d;RSSMRA85T10A562S;Rossi Mario %d;01/03/2025\n", (i*7919)%20000, i)
	}
	for _, tc := range []struct {
		name    string
		blockAt int // the case prepare waits at; 0: it does not
	}{
		{"while preparing a case", 300},
		{"while handing a batch over", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := flows.NewCSVReader(strings.NewReader(data.String()), flow, flows.ReadOptions{FileName: "x.csv"})
			defer rd.Close()
			cases, err := newMorosiCases(context.Background(), rd, flow, true, 0, t.TempDir(), func([]flows.Finding) {})
			if err != nil {
				t.Fatal(err)
			}
			entered, release := make(chan struct{}), make(chan struct{})
			n := 0
			batches, stop := readCasesAhead(context.Background(), cases, 100, func(*flows.MorosiCase, bool) *preparedCase {
				if n++; n == tc.blockAt {
					close(entered)
					<-release
				}
				return nil
			})
			<-batches // the writer took one batch, then failed
			if tc.blockAt > 0 {
				<-entered
			}
			stopped := make(chan struct{})
			go func() { stop(); close(stopped) }()
			close(release)
			<-stopped
			select {
			case _, open := <-batches:
				if open {
					t.Fatal("a batch left after stop returned")
				}
			default:
				t.Fatal("stop returned before the reader did")
			}
			if err := cases.Close(); err != nil {
				t.Fatal(err)
			}
			if n >= 20000 {
				t.Errorf("the reader prepared all %d cases: it was not stopped", n)
			}
		})
	}
}
