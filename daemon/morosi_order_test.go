package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// genRow is one generated uscente.morosi row and the practice it belongs to.
type genRow struct {
	key  string
	text string
}

// Shapes of generated practices: what billing gives, and what cmord must make of it.
const (
	genGood       = iota // 1-4 invoices, filed now
	genWaiting           // window not open yet
	genBadRow            // one of its rows refused (a date that does not exist): held
	genConflict          // one row says MT, the others BT: held
	genDupInv            // one invoice listed twice: held
	genNoCMORNote        // the mora notice did not mention the CMOR: E5, not eligible
	genNoMora            // never put in mora (mora columns empty): E5, not eligible
	genShapes
)

// genMorosi generates n practices (rows grouped by practice) from seed.
func genMorosi(seed uint64, n int) []genRow {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	sw, swLate := flows.D(2025, 3, 1), flows.D(2025, 6, 1)
	var rows []genRow
	for i := 0; i < n; i++ {
		shape := rng.IntN(genShapes)
		pod := fmt.Sprintf("IT%03dE%08d", 100+i%900, i)
		cf := testCF(fmt.Sprintf("RSSMRA%02dT%02dA%03d", 50+i%40, 10+i%18, i%1000))
		s := sw
		if shape == genWaiting {
			s = swLate
		}
		invs := 1 + rng.IntN(4)
		if shape == genBadRow || shape == genConflict || shape == genDupInv {
			invs = max(invs, 2)
		}
		special := rng.IntN(invs)
		for k := 0; k < invs; k++ {
			amount := fmt.Sprintf("%d.%02d", 20+rng.IntN(280), rng.IntN(100))
			over := map[string]string{}
			switch {
			case shape == genBadRow && k == special:
				over["DATA_SCADENZA"] = "31/02/2025"
			case shape == genConflict && k == special:
				over["TENSIONE"] = "MT"
			case shape == genNoCMORNote:
				over["INFO_CMOR"] = "N"
			case shape == genNoMora:
				for _, f := range []string{"DATA_MORA", "MEZZO_MORA", "TERMINE_MORA", "INFO_CMOR", "RIF_MORA"} {
					over[f] = ""
				}
			}
			key := flows.UscenteCaseKey(pod, cf, s)
			row := morosiRow(pod, cf, fmt.Sprintf("Cliente %d", i), s, fmt.Sprintf("F%d-%d", i, k), amount, over)
			rows = append(rows, genRow{key: key, text: row})
			if shape == genDupInv && k == special {
				rows = append(rows, genRow{key: key, text: row})
			}
		}
	}
	return rows
}

// orderFile writes rows as an extract; lineKey maps each line to its practice.
func orderFile(rows []genRow) (content string, lineKey map[int]string) {
	lines := []string{strings.Join(morosiHeader, ";")}
	lineKey = map[int]string{}
	for i, r := range rows {
		lines = append(lines, r.text)
		lineKey[i+2] = r.key
	}
	return strings.Join(lines, "\r\n") + "\r\n", lineKey
}

// orderRun is what processing an extract left, in terms that do not depend on the
// order of its rows or on practice codes: per practice key its state, amounts, case
// and audit as stored, its refusals; the findings with lines replaced by the
// practice of the line; the file's counts.
type orderRun struct {
	practices map[string]string
	findings  []string
	meta      map[string]string
	requests  int
	keys      []string // case keys in the order the practices were created (id order)
}

var lineRefs = regexp.MustCompile(`lines? [0-9][0-9,\-]*`)

func normFinding(f flows.Finding, lineKey map[int]string) string {
	at := lineKey[f.Line]
	if at == "" {
		at = fmt.Sprint(f.Line)
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s", at, f.Rule, f.Field, f.Value, f.Severity, lineRefs.ReplaceAllString(f.Message, "line #"))
}

// processOrdered processes content as one file with the given commit sizes; with
// stopAfter > 0 the first run stops after that many chunks and a second run resumes.
func processOrdered(t *testing.T, content string, lineKey map[int]string, chunk, batch, stopAfter int) orderRun {
	t.Helper()
	old, oldBatch, oldHook, oldRun := morosiChunkCases, morosiBatchCases, afterMorosiChunk, sortRunBytes
	t.Cleanup(func() {
		morosiChunkCases, morosiBatchCases, afterMorosiChunk, sortRunBytes = old, oldBatch, oldHook, oldRun
	})
	morosiChunkCases = chunk
	if batch > 0 {
		morosiBatchCases = batch
	}
	sortRunBytes = 4 << 10 // many runs, so that the merge is exercised
	w := newTestWorld(t, e2eNow, "")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "morosi.csv")
	writeFile(t, path, content)
	res, err := w.d.Store.Ingest(ctx, archive.IngestRequest{Source: "folder:morosi", Name: "morosi.csv", Direction: "in", Kind: "uscente.morosi", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	folder := w.d.folderByName("morosi")
	if stopAfter > 0 {
		stopCtx, cancel := context.WithCancel(ctx)
		n := 0
		afterMorosiChunk = func(int) {
			if n++; n == stopAfter {
				cancel()
			}
		}
		if _, err := w.d.process(stopCtx, res.File, folder); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: err %v, want context.Canceled", err)
		}
		cancel()
		afterMorosiChunk = func(int) {}
		if f, err := w.d.Store.GetFile(ctx, res.File.ID); err != nil {
			t.Fatal(err)
		} else {
			res.File = f
		}
	}
	out, err := w.d.process(ctx, res.File, folder)
	if err != nil {
		t.Fatal(err)
	}
	run := orderRun{practices: map[string]string{}, meta: out.Meta}
	for _, f := range out.Findings {
		run.findings = append(run.findings, normFinding(f, lineKey))
	}
	sort.Strings(run.findings)
	ps, err := w.d.Store.QueryPractices(ctx, archive.PracticeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		run.keys = append(run.keys, p.CaseKey)
		data, err := flows.ParseUscenteData(p.Data)
		if err != nil {
			t.Fatal(err)
		}
		var refusals []string
		for _, f := range data.Refusals {
			refusals = append(refusals, normFinding(f, lineKey))
		}
		run.practices[p.CaseKey] = fmt.Sprintf("%s credit %s estimate %s CMOR %s window %s-%s\ncase %s\naudit %s\nrefusals %v", p.State, p.Credit, p.Estimate, p.CMOR,
			p.WindowOpen, p.WindowClose, jsonOf(data.Case), jsonOf(data.Audit), refusals)
		reqs, err := w.d.Store.Requests(ctx, nil, p.ID, "", "ready", 0)
		if err != nil {
			t.Fatal(err)
		}
		run.requests += len(reqs)
	}
	if _, left, _ := w.d.Store.LoadProgress(ctx, nil, res.File.ID); left {
		t.Error("file_progress left behind after the file finished")
	}
	if ents, _ := os.ReadDir(filepath.Join(w.d.Store.Dir(), "tmp", "sort")); len(ents) != 0 {
		t.Errorf("sorted runs left behind: %v", ents)
	}
	return run
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Row order is free: the same practices written grouped, shuffled, reversed, and
// shuffled again with commits of 2 practices stopped after the second chunk and
// resumed, give the same practices (state, amounts, case and audit as stored), the
// same findings (lines aside: a line is named by its practice) and the same counts.
// A property over seeds: each seed is another mix of good, waiting, not eligible and
// held practices.
func TestMorosiRowOrderIsFree(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rows := genMorosi(seed, 30)
			rng := rand.New(rand.NewPCG(seed, 7))
			shuffled := slices.Clone(rows)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			reversed := slices.Clone(rows)
			slices.Reverse(reversed)

			content, lk := orderFile(rows)
			want := processOrdered(t, content, lk, 1<<30, 0, 0)
			held, ready := 0, 0
			for _, p := range want.practices {
				if strings.HasPrefix(p, flows.StateReady) {
					ready++
				}
			}
			for _, f := range want.findings {
				if strings.Contains(f, "|"+flows.RuleCaseConflict+"|") || strings.Contains(f, "|"+flows.RuleCaseDupInvoice+"|") || strings.Contains(f, "|"+flows.RuleCaseRows+"|") {
					held++
				}
			}
			t.Logf("%d practices, %d ready, %d held findings, %d findings, meta %v", len(want.practices), ready, held, len(want.findings), want.meta)
			if ready == 0 || held == 0 {
				t.Fatalf("seed %d: the grouped run proves little: %d ready, %d held findings", seed, ready, held)
			}
			tests := []struct {
				name                    string
				rows                    []genRow
				chunk, batch, stopAfter int
				big                     bool // more practices than morosiKeyOrderCases: read in key order though grouped
			}{
				{"shuffled", shuffled, 1 << 30, 0, 0, false},
				{"reversed", reversed, 1 << 30, 0, 0, false},
				{"shuffled, chunks of 2 stopped after the second", shuffled, 2, 1, 2, false},
				{"grouped, chunks of 3 stopped after the first", rows, 3, 2, 1, false},
				{"reversed, a big extract", reversed, 1 << 30, 0, 0, true},
				{"grouped, a big extract, chunks of 3 stopped after the second", rows, 3, 2, 2, true},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if tt.big {
						old := morosiKeyOrderCases
						t.Cleanup(func() { morosiKeyOrderCases = old })
						morosiKeyOrderCases = 1
					}
					content, lk := orderFile(tt.rows)
					got := processOrdered(t, content, lk, tt.chunk, tt.batch, tt.stopAfter)
					// A big extract's practices are inserted in case-key order; a small
					// grouped one's in file order (reversed: against key order).
					if inKeyOrder := slices.IsSorted(got.keys); (tt.big && !inKeyOrder) || (tt.name == "reversed" && inKeyOrder) {
						t.Errorf("practices created in key order: %v (%q)", inKeyOrder, got.keys)
					}
					if !reflect.DeepEqual(got.practices, want.practices) {
						for k, v := range want.practices {
							if got.practices[k] != v {
								t.Errorf("practice %s:\n got %s\nwant %s", k, got.practices[k], v)
							}
						}
						for k := range got.practices {
							if _, ok := want.practices[k]; !ok {
								t.Errorf("practice %s made only here", k)
							}
						}
					}
					if !reflect.DeepEqual(got.findings, want.findings) {
						t.Errorf("findings:\n got %q\nwant %q", got.findings, want.findings)
					}
					if !reflect.DeepEqual(got.meta, want.meta) {
						t.Errorf("meta %v, want %v", got.meta, want.meta)
					}
					if got.requests != want.requests {
						t.Errorf("%d ready requests, want %d", got.requests, want.requests)
					}
				})
			}
		})
	}
}

// `cmord validate` shows what the daemon does: on the same file, grouped and
// shuffled, ValidateMorosi's outcome for every practice (filed now, waiting, or not
// filed, with the same amounts) and its findings are the daemon's.
func TestValidateMorosiEqualsDaemon(t *testing.T) {
	rows := genMorosi(11, 30)
	shuffled := slices.Clone(rows)
	rand.New(rand.NewPCG(11, 3)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	cat := flows.DefaultCatalog()
	for _, tt := range []struct {
		name string
		rows []genRow
	}{{"grouped", rows}, {"shuffled", shuffled}} {
		t.Run(tt.name, func(t *testing.T) {
			content, lk := orderFile(tt.rows)
			var vFindings []string
			vPractices := map[string]string{}
			n, err := ValidateMorosi(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil },
				cat.Input("uscente.morosi"), flows.ReadOptions{FileName: "morosi.csv"}, flows.Today(e2eNow), flows.DefaultCMORParams(), t.TempDir(),
				func(f flows.Finding) {
					if !f.IsWarning() {
						vFindings = append(vFindings, normFinding(f, lk))
					}
				},
				func(r MorosiCaseReport) {
					o := r.Outcome
					if o.Held || o.State == flows.StateDraft {
						vPractices[r.Key] = "not filed"
						return
					}
					vPractices[r.Key] = fmt.Sprintf("%s credit %s estimate %s CMOR %s window %s-%s", o.State, o.Result.Credit, o.Result.Estimate, o.Result.CMOR, o.WindowOpen, o.WindowClose)
				})
			if err != nil || n != len(tt.rows) {
				t.Fatalf("validate: %d rows, %v", n, err)
			}
			sort.Strings(vFindings)

			w := newTestWorld(t, e2eNow, "")
			res := ingestAndProcess(t, w, "morosi.csv", content)
			var dFindings []string
			for _, f := range res.Findings {
				if !f.IsWarning() {
					dFindings = append(dFindings, normFinding(f, lk))
				}
			}
			sort.Strings(dFindings)
			dPractices := map[string]string{}
			for k := range vPractices {
				dPractices[k] = "not filed"
			}
			ps, err := w.d.Store.QueryPractices(context.Background(), archive.PracticeFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				dPractices[p.CaseKey] = fmt.Sprintf("%s credit %s estimate %s CMOR %s window %s-%s", p.State, p.Credit, p.Estimate, p.CMOR, p.WindowOpen, p.WindowClose)
			}
			if len(ps) == 0 || len(ps) == len(vPractices) {
				t.Fatalf("%d practices filed of %d: the file proves little", len(ps), len(vPractices))
			}
			if !reflect.DeepEqual(vPractices, dPractices) {
				for k, v := range vPractices {
					if dPractices[k] != v {
						t.Errorf("practice %s: validate %q, daemon %q", k, v, dPractices[k])
					}
				}
				for k := range dPractices {
					if _, ok := vPractices[k]; !ok {
						t.Errorf("practice %s: only the daemon made it", k)
					}
				}
			}
			if !reflect.DeepEqual(vFindings, dFindings) {
				t.Errorf("findings:\nvalidate %q\n  daemon %q", vFindings, dFindings)
			}
		})
	}
}
