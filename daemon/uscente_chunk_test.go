package daemon

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

// chunkRun is what processing an extract left, compared across chunk sizes and
// interruptions.
type chunkRun struct {
	practices []string // case key, CP_UTENTE, state, CMOR
	requests  []string
	result    Result
	progress  bool // a file_progress row is left
}

func processExtract(t *testing.T, chunk, batch, stopAfter int) chunkRun {
	t.Helper()
	return processExtractOf(t, e2eExtract()+extraCases(9), chunk, batch, stopAfter)
}

func processExtractOf(t *testing.T, content string, chunk, batch, stopAfter int) chunkRun {
	t.Helper()
	old, oldBatch, oldHook := uscente.ChunkCases, uscente.BatchCases, uscente.AfterChunk
	t.Cleanup(func() { uscente.ChunkCases, uscente.BatchCases, uscente.AfterChunk = old, oldBatch, oldHook })
	uscente.ChunkCases = chunk
	if batch > 0 {
		uscente.BatchCases = batch
	}
	w := newTestWorld(t, e2eNow, "")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "morosi.csv")
	writeFile(t, path, content)
	res, err := w.d.Store.Ingest(ctx, archive.IngestRequest{Source: "folder:morosi", Name: "morosi.csv", Direction: "in", Kind: "uscente.morosi", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	folder := w.d.folderByName("morosi")
	// Between chunks, the practices created so far wait for their customer and
	// amount lookups (migration 0042), and are found by both all the same.
	chunks := 0
	betweenChunks := func() {
		chunks++
		if n, err := w.d.Store.PendingLookups(ctx, nil); err != nil || n == 0 {
			t.Errorf("after chunk %d: %d practices pending their lookups (%v), want some", chunks, n, err)
		}
		findableByLookups(t, w.d.Store)
	}
	uscente.AfterChunk = func(int) { betweenChunks() }
	if stopAfter > 0 {
		// The first run stops after stopAfter committed chunks, as a crash or a
		// SIGTERM would stop it; the second continues from file_progress.
		stopCtx, cancel := context.WithCancel(ctx)
		n := 0
		uscente.AfterChunk = func(int) {
			betweenChunks()
			if n++; n == stopAfter {
				cancel()
			}
		}
		if _, err := w.d.process(stopCtx, res.File, folder); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: err %v, want context.Canceled", err)
		}
		cancel()
		uscente.AfterChunk = func(int) { betweenChunks() }
		if _, ok, err := w.d.Store.LoadProgress(ctx, nil, res.File.ID); err != nil || !ok {
			t.Fatalf("no progress recorded after %d chunks (%v)", stopAfter, err)
		}
		f, err := w.d.Store.GetFile(ctx, res.File.ID)
		if err != nil {
			t.Fatal(err)
		}
		res.File = f
	}
	out, err := w.d.process(ctx, res.File, folder)
	if err != nil {
		t.Fatal(err)
	}
	var run chunkRun
	run.result = out
	ps, err := w.d.Store.QueryPractices(ctx, archive.PracticeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		// With its case as every reader gets it: stored deflated against its chunk's
		// dictionary (a chunk of one is its own), it must read as in one transaction.
		run.practices = append(run.practices, fmt.Sprintf("%s %s %s %s %s", p.CaseKey, p.CPUtente, p.State, p.CMOR, p.Data))
		reqs, err := w.d.Store.Requests(ctx, nil, p.ID, "", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			run.requests = append(run.requests, fmt.Sprintf("%s %s %s", r.Flow, r.CPUtente, r.State))
		}
	}
	_, run.progress, err = w.d.Store.LoadProgress(ctx, nil, res.File.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.d.Store.PendingLookups(ctx, nil); err != nil || n != 0 {
		t.Errorf("the file ended with %d practices pending their lookups (%v), want none", n, err)
	}
	findableByLookups(t, w.d.Store)
	var deflated, dicts int
	if err := w.d.Store.Read().QueryRow(`SELECT (SELECT count(*) FROM practice_data WHERE substr(data, 1, 1) = x'02'),
		(SELECT count(*) FROM case_dicts)`).Scan(&deflated, &dicts); err != nil {
		t.Fatal(err)
	}
	if deflated == 0 || dicts == 0 {
		t.Errorf("%d cases stored deflated against %d dictionaries: want the handler's chunks to deflate them", deflated, dicts)
	}
	if rep, err := w.d.Store.Verify(ctx, nil); err != nil || !rep.OK() {
		t.Errorf("verify: %v %q", err, rep.Problems)
	}
	return run
}

// extraCases returns n more good one-invoice cases, so that small chunks make many.
func extraCases(n int) string {
	out := ""
	for i := 0; i < n; i++ {
		out += morosiRow(fmt.Sprintf("IT001E0000%04d", 100+i), testCF(fmt.Sprintf("RSSMRA85T10A%03d", 100+i)), "Cliente", flows.D(2025, 3, 1),
			fmt.Sprintf("F2025-9%03d", i), "55.00", nil) + "\r\n"
	}
	return out
}

// A file committed in chunks ends exactly as if it were one transaction — the same
// practices with the same codes, the same requests, the same counts and findings in
// the same order — also when the run is stopped after some chunks and the file is
// processed again: nothing is done twice and nothing is lost.
func TestMorosiChunksEqualOneTransaction(t *testing.T) {
	want := processExtract(t, 1<<30, 0, 0)
	if len(want.practices) < 10 || len(want.result.Findings) == 0 {
		t.Fatalf("reference run too small to prove anything: %d practices, %d findings", len(want.practices), len(want.result.Findings))
	}
	tests := []struct {
		name                    string
		chunk, batch, stopAfter int
	}{
		{"chunks of 1", 1, 0, 0},
		{"chunks of 3", 3, 0, 0},
		{"chunks of 5 read in batches of 2", 5, 2, 0},
		{"stopped after the first chunk", 2, 0, 1},
		{"stopped after the fourth chunk", 2, 0, 4},
		{"chunks of 4 in batches of 3, stopped after the second", 4, 3, 2},
		{"chunks of 1 stopped after the last but one", 1, 0, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := processExtract(t, tt.chunk, tt.batch, tt.stopAfter)
			if !reflect.DeepEqual(got.practices, want.practices) {
				t.Errorf("practices:\n got %v\nwant %v", got.practices, want.practices)
			}
			if !reflect.DeepEqual(got.requests, want.requests) {
				t.Errorf("requests:\n got %v\nwant %v", got.requests, want.requests)
			}
			if !reflect.DeepEqual(got.result.Meta, want.result.Meta) {
				t.Errorf("meta %v, want %v", got.result.Meta, want.result.Meta)
			}
			if !reflect.DeepEqual(got.result.Findings, want.result.Findings) {
				t.Errorf("findings:\n got %v\nwant %v", got.result.Findings, want.result.Findings)
			}
			if got.progress {
				t.Error("file_progress left behind after the file finished")
			}
		})
	}
}

// The same for an extract whose rows of one practice are not adjacent: the daemon
// reads it sorted by practice, and a run stopped between chunks continues after the
// last committed practice and ends exactly as the uninterrupted run (same codes, same
// findings in the same order).
func TestMorosiShuffledChunksEqualOneTransaction(t *testing.T) {
	lines := strings.Split(strings.TrimRight(e2eExtract()+extraCases(9), "\r\n"), "\r\n")
	rand.New(rand.NewPCG(4, 2)).Shuffle(len(lines)-1, func(i, j int) { lines[i+1], lines[j+1] = lines[j+1], lines[i+1] })
	content := strings.Join(lines, "\r\n") + "\r\n"
	if adjacent, _ := uscente.KeysAdjacent(context.Background(), flows.NewCSVReader(strings.NewReader(content),
		flows.DefaultCatalog().Input("uscente.morosi"), flows.ReadOptions{})); adjacent {
		t.Fatal("the shuffled extract still has the rows of each practice adjacent: it proves nothing")
	}
	want := processExtractOf(t, content, 1<<30, 0, 0)
	if len(want.practices) < 10 || len(want.result.Findings) == 0 {
		t.Fatalf("reference run too small to prove anything: %d practices, %d findings", len(want.practices), len(want.result.Findings))
	}
	for _, tt := range []struct {
		name                    string
		chunk, batch, stopAfter int
	}{
		{"chunks of 1", 1, 0, 0},
		{"chunks of 3 in batches of 2", 3, 2, 0},
		{"stopped after the first chunk", 2, 0, 1},
		{"chunks of 1 stopped after the last but one", 1, 0, 11},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := processExtractOf(t, content, tt.chunk, tt.batch, tt.stopAfter)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// findableByLookups fails the test unless every practice is found by its customer
// and by its CMOR amount (the lookups of migration 0042, pending or moved).
func findableByLookups(t *testing.T, st *archive.Store) {
	t.Helper()
	ctx := context.Background()
	ps, err := st.QueryPractices(ctx, archive.PracticeFilter{WithoutCase: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		byCustomer, err := st.QueryPractices(ctx, archive.PracticeFilter{Customer: p.CustomerID, WithoutCase: true})
		if err != nil {
			t.Fatal(err)
		}
		amount := p.CMOR
		byAmount, err := st.QueryPractices(ctx, archive.PracticeFilter{AmountMin: &amount, AmountMax: &amount, WithoutCase: true})
		if err != nil {
			t.Fatal(err)
		}
		in := func(ps []archive.Practice) bool {
			for _, q := range ps {
				if q.ID == p.ID {
					return true
				}
			}
			return false
		}
		if !in(byCustomer) || !in(byAmount) {
			t.Errorf("practice #%d (%s) found by its customer: %v, by its amount: %v", p.ID, p.CaseKey, in(byCustomer), in(byAmount))
		}
	}
}

// A file refused after some of its chunks were committed (here stopped by a panic
// between chunks, then refused by the poison policy) never reaches the end that moves its
// practices' lookups: the refusal moves them, so none wait for the next big extract.
func TestRefusedFileMovesPendingLookups(t *testing.T) {
	old, oldHook := uscente.ChunkCases, uscente.AfterChunk
	t.Cleanup(func() { uscente.ChunkCases, uscente.AfterChunk = old, oldHook })
	uscente.ChunkCases = 2
	w := newTestWorld(t, e2eNow, "")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "morosi.csv")
	writeFile(t, path, e2eExtract()+extraCases(9))
	res, err := w.d.Store.Ingest(ctx, archive.IngestRequest{Source: "folder:morosi", Name: "morosi.csv", Direction: "in", Kind: "uscente.morosi", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	uscente.AfterChunk = func(int) {
		if n++; n == 2 {
			if p, err := w.d.Store.PendingLookups(ctx, nil); err != nil || p == 0 {
				t.Errorf("after 2 chunks: %d pending (%v), want some", p, err)
			}
			panic("killed by the test between chunks")
		}
	}
	func() {
		defer func() {
			if v := recover(); v == nil {
				t.Fatal("the handler did not stop between chunks")
			}
		}()
		w.d.process(ctx, res.File, w.d.folderByName("morosi"))
	}()
	// The poison policy (max_attempts 1): the file refused, its progress left behind.
	out, err := w.d.failed(ctx, res.File, "folder morosi", 1, errors.New("simulated failure between chunks"))
	if err != nil || !out.Rejected {
		t.Fatalf("the file was not refused: %+v %v", out, err)
	}
	if p, err := w.d.Store.PendingLookups(ctx, nil); err != nil || p != 0 {
		t.Errorf("refused file: %d practices left pending their lookups (%v)", p, err)
	}
	findableByLookups(t, w.d.Store)
	if rep, err := w.d.Store.Verify(ctx, nil); err != nil || !rep.OK() {
		t.Errorf("verify: %v %q", err, rep.Problems)
	}
}
