package uscente

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/failpoint"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// ChunkCases is how many cases one transaction commits. A million-row extract
// in one transaction spilled SQLite's page cache (every dirty page written to the WAL
// and read back) and held the writer for minutes; in chunks, each commit is bounded,
// the intake and the scheduler get the writer between chunks, and file_progress (in
// the same transaction) lets a restart continue after the last committed chunk. A
// file smaller than a chunk is still one transaction, finish included.
//
// The size is a trade: every commit writes again the pages of the indexes whose keys
// its cases bring in no order (the customer's and the CMOR's until migration 0042,
// whose lookups the last chunk now writes once; the case key and the point come in
// order when a big file is read sorted), so small chunks multiply the
// bytes written (2,048 cases: 10 GB for a million rows; 8,192: 1,217 MiB for the
// handler at a million rows, 32,768: 991 MiB, 65,536: 958 MiB, with the handler's
// peak memory 89, 94 and 108 MiB: docs/benchmarks-uscente.md, "Commit size"), while a
// bigger chunk holds the writer longer (about 3 s for 32,768 cases) and is what a
// kill -9 makes the restart do again. Tests (daemon's chunk and kill-and-restart
// tests) set it smaller.
var ChunkCases = 32768

// BatchCases is how many cases the reader hands over at a time: a transaction
// takes several batches, and only a few batches are in memory whatever the chunk size.
// Each case comes with what it becomes (its encoded data and payload, preparedCase):
// batches of 1,024 of them took the peak Go heap from 50 to 80 MiB at 100,000 rows.
// Tests set it smaller.
var BatchCases = 256

// morosiJob is the processing of one uscente.morosi file, chunk after chunk.
type morosiJob struct {
	u      *uscente
	in     *family.Input
	st     *archive.PracticeStmts // of the chunk's transaction
	tmpl   *flows.CodeTemplate
	params flows.CMORParams
	today  flows.Date
	now    time.Time
	sink   *family.FindingSink
	saved  int // sink.Kept[:saved] are recorded in file_progress_findings

	// predeflate deflates the cases the reader prepares, on the reader's goroutine
	// (prepare): nil when the archive deflates no case.
	predeflate *archive.CasePredeflater

	pending []readCase // cases read, waiting for drain
	sorted  bool       // the rows are read sorted by key (progress counts cases, not lines)

	rows, created, updated, ready, waiting, refused, refiled, held int
}

// caseBatch is a run of whole cases the reader hands over, with the findings of the
// rows read meanwhile. through is the position after its last case (caseStep).
type caseBatch struct {
	cases    []readCase
	findings []flows.Finding
	rows     int
	through  int
	last     bool
	err      error
	panicked *goPanic // the reader's panic, raised again by the writer
}

func (u *uscente) handleMorosi(ctx context.Context, in *family.Input) (family.Result, error) {
	tmpl, err := flows.ParseCodeTemplate(in.Config.PracticeCode.Template)
	if err != nil {
		return family.FinishOnly(ctx, in, family.Result{Rejected: true, Reason: err.Error()})
	}
	prog, resumed, err := in.Store.LoadProgress(ctx, nil, in.File.ID)
	if err != nil {
		return family.Result{}, err
	}
	if family.RejectFile(in) && !resumed {
		if res, refused, err := validateWhole(ctx, in); err != nil || refused {
			return res, err
		}
	}
	// Row order: read as it is when the rows of each practice are adjacent, sorted by
	// key otherwise or when the file is big (morosi_cases.go). A restart goes on the
	// way the first run went.
	sorted := resumed && prog.Counters["sorted"] == 1
	adjacent := true
	if !resumed {
		var cases int
		if adjacent, cases, err = inputKeyRuns(ctx, in); err != nil {
			return family.Result{}, err
		}
		sorted = sortByKey(adjacent, cases)
	}
	src, done, err := openRows(ctx, in)
	if done != nil {
		return *done, err
	}
	if err != nil {
		return family.Result{}, err
	}
	defer src.rc.Close()
	job := &morosiJob{u: u, in: in, tmpl: tmpl, params: family.CMORParams(in.Config.CMOR), today: flows.Today(in.Now), now: in.Now, sink: src.sink, sorted: sorted,
		predeflate: in.Store.CasePredeflater()}
	if resumed {
		job.restore(prog)
		in.Log.Info("resuming a file after its last committed chunk", "after", prog.Line, "sorted", sorted, "practices_created", job.created)
	}
	switch {
	case sorted && !resumed && !adjacent:
		in.Log.Info("rows of one practice are not adjacent: sorting the file by practice first", "file", in.File.Name)
	case sorted && !resumed:
		in.Log.Info("a big extract: sorting the file by practice first, to insert its practices in key order", "file", in.File.Name)
	}
	sortDir := morosiSortDir(in)
	if sorted {
		// Runs left by a run of this file that was killed are of no use: sorted again.
		if err := os.RemoveAll(sortDir); err != nil {
			return family.Result{}, err
		}
		defer os.Remove(sortDir)
	}
	cases, err := newMorosiCases(ctx, src.rd, in.Catalog.Input(in.File.Kind), sorted, prog.Line, sortDir, func(fs []flows.Finding) {
		if !resumed { // a restart has them from file_progress
			job.rows++
			job.sink.Add(fs...)
		}
	})
	if err != nil {
		return family.Result{}, err
	}
	defer cases.Close()
	// The reader decodes and checks the next batch on one core while this goroutine
	// writes the current one on the other. It has stopped before cases.Close (the
	// defers run last first): the merge's files and decoder are closed under no reader.
	batches, stop := readCasesAhead(ctx, cases, min(BatchCases, ChunkCases), job.prepare)
	defer stop()
	for {
		res, last, err := job.commit(ctx, batches)
		if err != nil || last {
			return res, err
		}
	}
}

// morosiSortDir is where a file's rows are sorted when they need to be: under the
// state directory (the daemon's own space), one folder per input file, so that a
// restart of the same file clears what a killed run left.
func morosiSortDir(in *family.Input) string {
	return filepath.Join(SortRoot(in.Store.Dir()), fmt.Sprintf("file-%d", in.File.ID))
}

// SortRoot is where the files of the state directory stateDir are sorted
// (morosiSortDir): nothing there outlives the handler that made it, and the daemon
// empties it when it starts (runs a killed daemon left).
func SortRoot(stateDir string) string {
	return filepath.Join(stateDir, "tmp", "sort")
}

// inputKeyRuns reads the input once and reports whether the rows of each practice
// are adjacent, and how many runs of one practice's rows there are, counted up to
// KeyOrderCases + 1 (keyRuns: beyond, the file is sorted either way). A file
// that cannot be read at all is "adjacent": the reading proper refuses it.
func inputKeyRuns(ctx context.Context, in *family.Input) (bool, int, error) {
	flow := in.Catalog.Input(in.File.Kind)
	opt, err := family.ReadOptions(in)
	if flow == nil || err != nil {
		return true, 0, nil
	}
	rc, err := family.OpenInput(in)
	if err != nil {
		return false, 0, err
	}
	rd := flows.NewCSVReader(rc, flow, opt)
	defer family.ReaderCloser{Reader: rd, File: rc}.Close() // a workbook's reader holds it in memory and in temporary files
	return keyRuns(ctx, rd, KeyOrderCases)
}

// readCasesAhead runs readCaseBatches on a goroutine of its own, batches in a channel
// of one, and returns stop: it cancels the reader and returns once the reader has
// returned, whatever it was doing (reading a run, preparing a case, waiting to hand
// a batch over), so that the caller may close cases. Closed under a reader, the
// sort's merge would close its decoder while a block is decoded (the decoder's
// pool closed under DecodeAll) and its runs' files while one is read or freed.
func readCasesAhead(ctx context.Context, cases *morosiCases, size int, prepare func(mc *flows.MorosiCase, chunkFirst bool) *preparedCase) (<-chan caseBatch, func()) {
	ctx, cancel := context.WithCancel(ctx)
	batches := make(chan caseBatch, 1)
	go readCaseBatches(ctx, cases, size, prepare, batches)
	return batches, func() {
		cancel()
		for range batches { // until readCaseBatches closes it, returning
		}
	}
}

// readCaseBatches hands over the cases of the file in batches of size cases (the last
// batch marked), after the ones a previous run committed, each with what prepare
// computes for it on this goroutine. prepare is told which case is the first of a
// chunk: the writer (commit) takes batches into a chunk until it holds ChunkCases
// cases, and so does this count. It stops when ctx is cancelled.
func readCaseBatches(ctx context.Context, cases *morosiCases, size int, prepare func(mc *flows.MorosiCase, chunkFirst bool) *preparedCase, out chan<- caseBatch) {
	defer close(out)
	send := func(c caseBatch) bool {
		select {
		case out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	defer func() {
		if v := recover(); v != nil {
			send(caseBatch{panicked: &goPanic{v}})
		}
	}()
	var cur caseBatch
	inChunk, chunkFirst := 0, true // cases sent in the writer's chunk under way
	for {
		st, err := cases.next(ctx)
		if err != nil {
			send(caseBatch{err: err})
			return
		}
		cur.rows += st.rows
		cur.findings = append(cur.findings, st.findings...)
		if st.mc == nil {
			break
		}
		cur.cases = append(cur.cases, readCase{mc: st.mc, pc: prepare(st.mc, chunkFirst)})
		chunkFirst = false
		cur.through = st.through
		if len(cur.cases) >= size {
			if !send(cur) {
				return
			}
			if inChunk += len(cur.cases); inChunk >= ChunkCases {
				inChunk, chunkFirst = 0, true
			}
			cur = caseBatch{}
		}
	}
	cur.last = true
	send(cur)
}

// commit processes the reader's batches in one transaction until it holds
// ChunkCases cases or the file ends, with the file's progress (or, at the end,
// the file's finish) in the same transaction.
func (j *morosiJob) commit(ctx context.Context, batches <-chan caseBatch) (res family.Result, last bool, err error) {
	var ch caseBatch
	err = j.in.Store.Write(ctx, func(tx *sql.Tx) error {
		st, err := j.in.Store.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return j.in.Now })
		// The customer and amount lookups of the practices it creates are written
		// once, sorted, by the file's last chunk (below), not by every chunk in no
		// order (migration 0042).
		st.DeferLookups()
		j.st = st
		for cases := 0; !ch.last && cases < ChunkCases; cases += len(ch.cases) {
			var ok bool
			select {
			case ch, ok = <-batches:
			case <-ctx.Done():
				st.Close(ctx)
				return ctx.Err()
			}
			if !ok {
				st.Close(ctx)
				return ctx.Err() // the reader stopped: cancelled
			}
			if ch.panicked != nil {
				st.Close(ctx)
				ch.panicked.raise() // here, where intake's recover refuses the file
			}
			if ch.err != nil {
				st.Close(ctx)
				return ch.err
			}
			j.rows += ch.rows
			j.sink.Add(ch.findings...)
			for _, rc := range ch.cases {
				if err := j.add(ctx, rc); err != nil {
					st.Close(ctx)
					return err
				}
			}
		}
		if err := j.drain(ctx); err != nil {
			st.Close(ctx)
			return err
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		if !ch.last {
			return j.in.Store.SaveProgress(ctx, tx, j.in.File.ID, ch.through, j.counters(), j.sink.Kept[j.saved:])
		}
		res = j.result()
		// Every pending practice, this file's (a run killed before included) and any
		// another left (archive.MovePendingLookups).
		if _, err := archive.MovePendingLookups(ctx, tx); err != nil {
			return err
		}
		if err := j.in.Store.ClearProgress(ctx, tx, j.in.File.ID); err != nil {
			return err
		}
		return j.in.Finish(ctx, tx, res)
	})
	if err != nil {
		return family.Result{}, false, err // the in-memory counters are ahead of the database: the caller stops
	}
	j.saved = len(j.sink.Kept)
	if !ch.last {
		failpoint.Hit("after_chunk")
		AfterChunk(ch.through)
	}
	return res, ch.last, nil
}

// AfterChunk is called after each committed chunk but the last (tests stop a
// file there).
var AfterChunk = func(through int) {}

// counters are the job's counts, kept in file_progress between chunks.
func (j *morosiJob) counters() map[string]int {
	c := map[string]int{"rows": j.rows, "created": j.created, "updated": j.updated, "ready": j.ready, "waiting": j.waiting,
		"refused": j.refused, "refiled": j.refiled, "held": j.held, "errors": j.sink.Errors, "dropped": j.sink.Dropped}
	if j.sorted {
		c["sorted"] = 1
	}
	return c
}

// restore continues from a previous run's committed chunks.
func (j *morosiJob) restore(p archive.FileProgress) {
	c := p.Counters
	j.rows, j.created, j.updated, j.ready, j.waiting = c["rows"], c["created"], c["updated"], c["ready"], c["waiting"]
	j.refused, j.refiled, j.held = c["refused"], c["refiled"], c["held"]
	j.sink.Kept, j.sink.Errors, j.sink.Dropped = p.Findings, c["errors"], c["dropped"]
	j.saved = len(j.sink.Kept)
}

// result is the handler's result once the last chunk is in.
func (j *morosiJob) result() family.Result {
	res := family.Result{Findings: j.sink.Result(), Meta: map[string]string{"rows": fmt.Sprint(j.rows),
		"practices_created": fmt.Sprint(j.created), "practices_updated": fmt.Sprint(j.updated),
		"ready": fmt.Sprint(j.ready), "waiting_window": fmt.Sprint(j.waiting), "cases_refused": fmt.Sprint(j.refused)}}
	if j.refiled > 0 {
		res.Meta["practices_refiled"] = fmt.Sprint(j.refiled)
	}
	if j.held > 0 {
		res.Meta["cases_held"] = fmt.Sprint(j.held)
	}
	if j.sink.Dropped > 0 {
		res.Meta["findings_not_listed"] = fmt.Sprint(j.sink.Dropped)
	}
	return res
}

// morosiBatch is how many cases wait before their case keys are looked up together.
const morosiBatch = 256

// add queues a case; drain processes the queue in order.
func (j *morosiJob) add(ctx context.Context, rc readCase) error {
	j.pending = append(j.pending, rc)
	if len(j.pending) < morosiBatch {
		return nil
	}
	return j.drain(ctx)
}

// drain looks up the queued cases' keys in one query, then processes each case in
// file order. A key that is neither in the table nor queued for creation is new: its
// case needs no lookup of its own.
func (j *morosiJob) drain(ctx context.Context) error {
	if len(j.pending) == 0 {
		return nil
	}
	keys := make([]string, 0, len(j.pending))
	for _, rc := range j.pending {
		keys = append(keys, rc.mc.Key)
	}
	existing, err := j.st.ExistingKeys(ctx, keys)
	if err != nil {
		return err
	}
	for _, rc := range j.pending {
		if err := j.process(ctx, rc.mc, rc.pc, existing[rc.mc.Key] || j.st.Queued(rc.mc.Key)); err != nil {
			return err
		}
	}
	clear(j.pending)
	j.pending = j.pending[:0]
	return nil
}
