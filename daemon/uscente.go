package daemon

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/xlsxrows"
	"github.com/cmord/cmord/flows"
)

// The uscente side (docs/uscente.md): billing extracts of defaulting customers become
// practices with a CP_UTENTE, eligible ones become REQ requests, and builders write the
// REQ / ANN_REQ / REFUND_ACK flow files. The SII's answers are in sii.go.

func init() { flowSetups = append(flowSetups, setupUscente) }

// Flow keys of the uscente side.
const (
	flowREQ       = "REQ"
	flowANNREQ    = "ANN_REQ"
	flowREFUNDACK = "REFUND_ACK"
)

// maxKeptFindings bounds the findings a handler keeps in memory for one file: a
// million bad rows must not take a million findings' worth of memory. The count of the
// rest goes in the file's meta and one summary finding.
const maxKeptFindings = 2000

func setupUscente(d *Daemon) error {
	u := &uscente{d: d}
	d.Handle(config.KindUscenteMorosi, u.guard(u.handleMorosi))
	d.Handle(config.KindUscenteIncassi, u.guard(u.handleIncassi))
	d.Handle(config.KindUscenteAnnullamenti, u.guard(u.handleAnnullamenti))
	d.Handle(config.KindUscenteRimborsi, u.guard(u.handleRimborsi))
	for _, key := range []string{flowREQ, flowANNREQ, flowREFUNDACK} {
		d.AddBuilder(&requestBuilder{u: u, flow: key})
	}
	setupSII(d, u)
	return nil
}

type uscente struct{ d *Daemon }

// guard refuses uscente inputs when the company does not hold the uscente role.
func (u *uscente) guard(h HandlerFunc) Handler {
	return HandlerFunc(func(ctx context.Context, in *Input) (Result, error) {
		if !in.Config.Company.HasRole("uscente") {
			return finishOnly(ctx, in, Result{Rejected: true, Reason: fmt.Sprintf(
				"%s is an uscente input, but the company does not hold the uscente role (company.roles = %v): refused",
				in.File.Kind, in.Config.Company.Roles)})
		}
		return h(ctx, in)
	})
}

// finishOnly records a result with no other effect.
func finishOnly(ctx context.Context, in *Input, res Result) (Result, error) {
	err := in.Store.Write(ctx, func(tx *sql.Tx) error { return in.Finish(ctx, tx, res) })
	return res, err
}

// cmorParams turns the [cmor] configuration into the computation's parameters.
func cmorParams(c config.CMOR) flows.CMORParams {
	p := flows.DefaultCMORParams()
	p.CreditWindowMonths, p.SpendWindowMonths, p.EstimateMonths = c.CreditWindowMonths, c.SpendWindowMonths, c.EstimateMonths
	p.EstimateMethod, p.MinIndemnity, p.PreviousInsideCap = c.EstimateMethod, c.MinIndemnity, c.PreviousInsideCap
	p.PartialInvoice, p.ExcludeRAI, p.RequireActualReadings = c.PartialInvoice, c.ExcludeRAI, c.RequireActualReadings
	p.WindowOpenMonths, p.WindowRule = c.WindowOpenMonths, c.WindowRule
	if p.Validate() != nil {
		return flows.DefaultCMORParams()
	}
	return p
}

// findingSink keeps the findings of one file, bounded.
type findingSink struct {
	file    string
	kept    []flows.Finding
	errors  int
	dropped int
}

func (s *findingSink) add(fs ...flows.Finding) {
	for _, f := range fs {
		if f.File == "" {
			f.File = s.file
		}
		if !f.IsWarning() {
			s.errors++
		}
		if len(s.kept) >= maxKeptFindings {
			s.dropped++
			continue
		}
		s.kept = append(s.kept, f)
	}
}

func (s *findingSink) result() []flows.Finding {
	// In line order: a case's findings are known only when its chunk is written,
	// after the findings of the rows read with that chunk.
	sort.SliceStable(s.kept, func(a, b int) bool { return s.kept[a].Line < s.kept[b].Line })
	if s.dropped == 0 {
		return s.kept
	}
	return append(s.kept, flows.Finding{File: s.file, Rule: "MORE", Message: fmt.Sprintf("%d more findings not listed; run `cmord validate` on the file for all of them", s.dropped)})
}

// openInput opens an input file for a reader, honouring the folder's encoding.
func openInput(in *Input) (io.ReadCloser, error) {
	rc, err := in.Open()
	if err != nil {
		return nil, err
	}
	if in.Folder != nil && strings.EqualFold(in.Folder.Encoding, "windows-1252") {
		// A workbook or a binary file is not text: the reader must see its own bytes
		// to say what it is.
		br := bufio.NewReader(rc)
		if head, _ := br.Peek(1024); flows.SniffFormat(head) != flows.FormatText {
			return struct {
				io.Reader
				io.Closer
			}{br, rc}, nil
		}
		return struct {
			io.Reader
			io.Closer
		}{charmap.Windows1252.NewDecoder().Reader(br), rc}, nil
	}
	return rc, nil
}

// readerCloser closes a reader (a workbook's temporary files) and then its file.
type readerCloser struct {
	rd *flows.CSVReader
	rc io.Closer
}

func (c readerCloser) Close() error {
	err := c.rd.Close()
	if err2 := c.rc.Close(); err == nil {
		err = err2
	}
	return err
}

// readOptions returns the reader options of a folder input.
func readOptions(in *Input) (flows.ReadOptions, error) {
	opt := flows.ReadOptions{FileName: in.File.Name}
	if in.Folder != nil {
		m, err := in.Folder.FolderMapping()
		if err != nil {
			return opt, err
		}
		opt.MappingFile, opt.DecimalComma = m, in.Folder.DecimalComma
		opt.Workbook = xlsxrows.Open // billing saves from Excel: .xlsx drops are read as they are
	}
	return opt, nil
}

func rejectFile(in *Input) bool { return in.Folder != nil && in.Folder.OnBadRows == "reject_file" }

// rowSource is an input file opened for reading row by row: the catalog's flow for its
// kind, the folder's column mapping and encoding, the header read and checked.
type rowSource struct {
	rd   *flows.CSVReader
	rc   io.Closer
	sink *findingSink
}

// openRows opens in for reading. done is set when the file cannot be read at all
// (no such input kind, a bad mapping, a header that does not fit): the file has been
// finished as refused and done is the handler's result.
func openRows(ctx context.Context, in *Input) (src *rowSource, done *Result, err error) {
	refuse := func(res Result) (*rowSource, *Result, error) {
		r, err := finishOnly(ctx, in, res)
		return nil, &r, err
	}
	flow := in.Catalog.Input(in.File.Kind)
	if flow == nil {
		return refuse(Result{Rejected: true, Reason: "the flow catalog has no input kind " + in.File.Kind})
	}
	opt, err := readOptions(in)
	if err != nil {
		return refuse(Result{Rejected: true, Reason: "column mapping: " + err.Error()})
	}
	rc, err := openInput(in)
	if err != nil {
		return nil, nil, err
	}
	rd := flows.NewCSVReader(rc, flow, opt)
	sink := &findingSink{file: in.File.Name}
	hdr, err := rd.ReadHeader()
	if err != nil {
		readerCloser{rd, rc}.Close()
		return nil, nil, err
	}
	sink.add(hdr...)
	if flows.HasErrors(hdr) {
		readerCloser{rd, rc}.Close()
		reason := "the header row does not fit " + in.File.Kind + " (see the findings); no row was read"
		if why := flows.NotTextReason(hdr); why != "" { // not a text CSV: say what it is
			reason = why
		}
		return refuse(Result{Rejected: true, Reason: reason, Findings: sink.result()})
	}
	return &rowSource{rd: rd, rc: readerCloser{rd, rc}, sink: sink}, nil, nil
}

// validateWhole reads the whole file once and writes nothing, for folders with
// on_bad_rows = "reject_file": a big file is committed chunk by chunk, so a file that
// will be refused must be known before the first chunk. refused reports that the file
// was finished as refused (res is the handler's result).
func validateWhole(ctx context.Context, in *Input) (res Result, refused bool, err error) {
	src, done, err := openRows(ctx, in)
	if done != nil {
		return *done, true, err
	}
	if err != nil {
		return Result{}, false, err
	}
	defer src.rc.Close()
	rows := 0
	for {
		if rows%4096 == 0 && ctx.Err() != nil {
			return Result{}, false, ctx.Err()
		}
		_, fs, err := src.rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Result{}, false, err
		}
		rows++
		src.sink.add(fs...)
	}
	if src.sink.errors == 0 {
		return Result{}, false, nil
	}
	res = Result{Rejected: true, Findings: src.sink.result(), Meta: map[string]string{"rows": fmt.Sprint(rows)},
		Reason: fmt.Sprintf("%d refused %s and on_bad_rows = \"reject_file\": the whole file is refused, nothing was done",
			src.sink.errors, plural(src.sink.errors, "row", "rows"))}
	res, err = finishOnly(ctx, in, res)
	return res, true, err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ---- uscente.morosi ----

// morosiChunkCases is how many cases one transaction commits. A million-row extract
// in one transaction spilled SQLite's page cache (every dirty page written to the WAL
// and read back) and held the writer for minutes; in chunks, each commit is bounded,
// the intake and the scheduler get the writer between chunks, and file_progress (in
// the same transaction) lets a restart continue after the last committed chunk. A
// file smaller than a chunk is still one transaction, finish included.
//
// The size is a trade: every commit writes again the pages of the case-key, point and
// customer indexes that its cases touched (their keys come in no order), so small
// chunks multiply the bytes written (2,048 cases: 10 GB for a million rows), while a
// chunk whose dirty pages outgrow the 32 MiB page cache spills them mid-transaction.
var morosiChunkCases = 8192

// morosiBatchCases is how many cases the reader hands over at a time: a transaction
// takes several batches, and only a few batches are in memory whatever the chunk size.
var morosiBatchCases = 1024

// morosiJob is the processing of one uscente.morosi file, chunk after chunk.
type morosiJob struct {
	u      *uscente
	in     *Input
	st     *archive.PracticeStmts // of the chunk's transaction
	tmpl   *flows.CodeTemplate
	params flows.CMORParams
	today  flows.Date
	now    time.Time
	sink   *findingSink
	saved  int // sink.kept[:saved] are recorded in file_progress_findings

	pending []*flows.MorosiCase // cases read, waiting for drain
	sorted  bool                // the rows are read sorted by key (progress counts cases, not lines)

	rows, created, updated, ready, waiting, refused, refiled, held int
}

// caseBatch is a run of whole cases the reader hands over, with the findings of the
// rows read meanwhile. through is the position after its last case (caseStep).
type caseBatch struct {
	cases    []*flows.MorosiCase
	findings []flows.Finding
	rows     int
	through  int
	last     bool
	err      error
}

func (u *uscente) handleMorosi(ctx context.Context, in *Input) (Result, error) {
	tmpl, err := flows.ParseCodeTemplate(in.Config.PracticeCode.Template)
	if err != nil {
		return finishOnly(ctx, in, Result{Rejected: true, Reason: err.Error()})
	}
	prog, resumed, err := in.Store.LoadProgress(ctx, nil, in.File.ID)
	if err != nil {
		return Result{}, err
	}
	if rejectFile(in) && !resumed {
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
			return Result{}, err
		}
		sorted = morosiSortByKey(adjacent, cases)
	}
	src, done, err := openRows(ctx, in)
	if done != nil {
		return *done, err
	}
	if err != nil {
		return Result{}, err
	}
	defer src.rc.Close()
	job := &morosiJob{u: u, in: in, tmpl: tmpl, params: cmorParams(in.Config.CMOR), today: flows.Today(in.Now), now: in.Now, sink: src.sink, sorted: sorted}
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
			return Result{}, err
		}
		defer os.Remove(sortDir)
	}
	cases, err := newMorosiCases(ctx, src.rd, in.Catalog.Input(in.File.Kind), sorted, prog.Line, sortDir, func(fs []flows.Finding) {
		if !resumed { // a restart has them from file_progress
			job.rows++
			job.sink.add(fs...)
		}
	})
	if err != nil {
		return Result{}, err
	}
	defer cases.Close()
	// The reader decodes and checks the next batch on one core while this goroutine
	// writes the current one on the other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan caseBatch, 1)
	go readCaseBatches(ctx, cases, min(morosiBatchCases, morosiChunkCases), batches)
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
func morosiSortDir(in *Input) string {
	return filepath.Join(in.Store.Dir(), "tmp", "sort", fmt.Sprintf("file-%d", in.File.ID))
}

// inputKeyRuns reads the input once and reports whether the rows of each practice
// are adjacent, and how many runs of one practice's rows there are (morosiKeyRuns).
// A file that cannot be read at all is "adjacent": the reading proper refuses it.
func inputKeyRuns(ctx context.Context, in *Input) (bool, int, error) {
	flow := in.Catalog.Input(in.File.Kind)
	opt, err := readOptions(in)
	if flow == nil || err != nil {
		return true, 0, nil
	}
	rc, err := openInput(in)
	if err != nil {
		return false, 0, err
	}
	rd := flows.NewCSVReader(rc, flow, opt)
	defer readerCloser{rd, rc}.Close() // a workbook's reader holds it in memory and in temporary files
	return morosiKeyRuns(ctx, rd)
}

// readCaseBatches hands over the cases of the file in batches of size cases (the last
// batch marked), after the ones a previous run committed. It stops when ctx is
// cancelled.
func readCaseBatches(ctx context.Context, cases *morosiCases, size int, out chan<- caseBatch) {
	defer close(out)
	send := func(c caseBatch) bool {
		select {
		case out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var cur caseBatch
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
		cur.cases = append(cur.cases, st.mc)
		cur.through = st.through
		if len(cur.cases) >= size {
			if !send(cur) {
				return
			}
			cur = caseBatch{}
		}
	}
	cur.last = true
	send(cur)
}

// commit processes the reader's batches in one transaction until it holds
// morosiChunkCases cases or the file ends, with the file's progress (or, at the end,
// the file's finish) in the same transaction.
func (j *morosiJob) commit(ctx context.Context, batches <-chan caseBatch) (res Result, last bool, err error) {
	var ch caseBatch
	err = j.in.Store.Write(ctx, func(tx *sql.Tx) error {
		st, err := j.in.Store.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return j.in.Now })
		j.st = st
		for cases := 0; !ch.last && cases < morosiChunkCases; cases += len(ch.cases) {
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
			if ch.err != nil {
				st.Close(ctx)
				return ch.err
			}
			j.rows += ch.rows
			j.sink.add(ch.findings...)
			for _, mc := range ch.cases {
				if err := j.add(ctx, mc); err != nil {
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
			return j.in.Store.SaveProgress(ctx, tx, j.in.File.ID, ch.through, j.counters(), j.sink.kept[j.saved:])
		}
		res = j.result()
		if err := j.in.Store.ClearProgress(ctx, tx, j.in.File.ID); err != nil {
			return err
		}
		return j.in.Finish(ctx, tx, res)
	})
	if err != nil {
		return Result{}, false, err // the in-memory counters are ahead of the database: the caller stops
	}
	j.saved = len(j.sink.kept)
	if !ch.last {
		failpoint("after_chunk")
		afterMorosiChunk(ch.through)
	}
	return res, ch.last, nil
}

// afterMorosiChunk is called after each committed chunk but the last (tests stop a
// file there).
var afterMorosiChunk = func(through int) {}

// counters are the job's counts, kept in file_progress between chunks.
func (j *morosiJob) counters() map[string]int {
	c := map[string]int{"rows": j.rows, "created": j.created, "updated": j.updated, "ready": j.ready, "waiting": j.waiting,
		"refused": j.refused, "refiled": j.refiled, "held": j.held, "errors": j.sink.errors, "dropped": j.sink.dropped}
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
	j.sink.kept, j.sink.errors, j.sink.dropped = p.Findings, c["errors"], c["dropped"]
	j.saved = len(j.sink.kept)
}

// result is the handler's result once the last chunk is in.
func (j *morosiJob) result() Result {
	res := Result{Findings: j.sink.result(), Meta: map[string]string{"rows": fmt.Sprint(j.rows),
		"practices_created": fmt.Sprint(j.created), "practices_updated": fmt.Sprint(j.updated),
		"ready": fmt.Sprint(j.ready), "waiting_window": fmt.Sprint(j.waiting), "cases_refused": fmt.Sprint(j.refused)}}
	if j.refiled > 0 {
		res.Meta["practices_refiled"] = fmt.Sprint(j.refiled)
	}
	if j.held > 0 {
		res.Meta["cases_held"] = fmt.Sprint(j.held)
	}
	if j.sink.dropped > 0 {
		res.Meta["findings_not_listed"] = fmt.Sprint(j.sink.dropped)
	}
	return res
}

// morosiBatch is how many cases wait before their case keys are looked up together.
const morosiBatch = 256

// add queues a case; drain processes the queue in order.
func (j *morosiJob) add(ctx context.Context, mc *flows.MorosiCase) error {
	j.pending = append(j.pending, mc)
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
	for _, mc := range j.pending {
		keys = append(keys, mc.Key)
	}
	existing, err := j.st.ExistingKeys(ctx, keys)
	if err != nil {
		return err
	}
	for _, mc := range j.pending {
		if err := j.process(ctx, mc, existing[mc.Key] || j.st.Queued(mc.Key)); err != nil {
			return err
		}
	}
	clear(j.pending)
	j.pending = j.pending[:0]
	return nil
}

// process decides what one case does: a new practice, an update of one not yet filed,
// a duplicate of one filed (SI-D01), or a refusal. mayExist false means the case key
// is known to be new.
func (j *morosiJob) process(ctx context.Context, mc *flows.MorosiCase, mayExist bool) error {
	line := mc.FirstLine()
	var existing archive.Practice
	found := false
	if mayExist {
		var err error
		existing, err = j.st.LatestByKey(ctx, mc.Key)
		found = err == nil
		if err != nil && !errors.Is(err, archive.ErrNotFound) {
			return err
		}
	}
	var err error
	var data flows.UscenteData
	// The SII refused the filed request (inadmissible, or rejected on verification):
	// the corrected case is filed again as a new practice with a NEW CP_UTENTE (the
	// SII refuses a code twice, brief §7.3), linked to the refused one both ways.
	var refiled *archive.Practice
	if found && (existing.State == flows.StateInadmissible || existing.State == flows.StateRejected) {
		refiled, found = &existing, false
	}
	if mc.Held() {
		return j.hold(ctx, mc, existing, found && refiled == nil)
	}
	if found {
		if data, err = flows.ParseUscenteData(existing.Data); err != nil {
			return fmt.Errorf("practice %d data: %w", existing.ID, err)
		}
		switch {
		case existing.State == flows.StateDraft || existing.State == flows.StateReady || existing.State == flows.StateWaitingWindow:
			mc.MergeCase(data.Case) // the same case again: this extract corrects and completes it
		default:
			j.refused++
			j.sink.add(flows.Finding{Line: line, Field: "CP_UTENTE", Rule: "SI-D01", Value: existing.CPUtente,
				Message: fmt.Sprintf("case %s was already filed as CP_UTENTE %s (state %s): not filed again", mc.Key, existing.CPUtente, existing.State)})
			return nil
		}
	}
	// The same decision `cmord validate` shows for the case.
	out := flows.DecideMorosi(mc, j.in.File.Name, j.today, j.params)
	result, state, errs, warns, open, closeDay := out.Result, out.State, out.Refusals, out.Warnings, out.WindowOpen, out.WindowClose
	data.Case, data.Audit, data.Warnings, data.Refusals = mc.Case, flows.AuditOf(result, j.today), warns, nil
	data.Inputs = appendInput(data.Inputs, j.in.File.ID, mc.Lines)
	switch state {
	case flows.StateDraft:
		data.Refusals = errs
		j.sink.add(errs...)
		j.refused++
	case flows.StateWaitingWindow:
		j.waiting++
	default:
		j.ready++
	}
	hist := archive.HistoryEntry{Flow: config.KindUscenteMorosi, FileID: j.in.File.ID, Line: line, At: j.now}
	if !found {
		if state == flows.StateDraft {
			return nil // refused before it existed: no practice, no code consumed; the findings say why
		}
		key := mc.Key
		if refiled != nil {
			key, data.RefileOf = archive.RefileKey(refiled.CaseKey), refiled.ID
		}
		p := &archive.Practice{CaseKey: key, Role: "uscente", Sector: mc.Case.Sector, CompanyPIVA: j.in.Config.Company.PIVA,
			Point: flows.CasePoint(&mc.Case), CustomerID: flows.CaseCustomer(&mc.Case), CustomerName: mc.Case.CustomerName,
			SwitchDate: mc.Case.SwitchDate, State: state, WindowOpen: open, WindowClose: closeDay}
		setAmounts(p, result)
		p.CPUtente, err = j.newCode(ctx, mc.Case.Sector)
		if err != nil {
			return err
		}
		p.Data = data.Marshal()
		hist.Note = fmt.Sprintf("case read from %s lines %s; CMOR %s (credit %s, estimate %s)", j.in.File.Name, flows.LinesText(mc.Lines), result.CMOR, result.Credit, result.Estimate)
		if state == flows.StateWaitingWindow {
			hist.Note += fmt.Sprintf("; request window opens %s", open)
		}
		if refiled != nil {
			hist.Note += fmt.Sprintf("; files again the case of CP_UTENTE %s (%s)", refiled.CPUtente, refiled.State)
		}
		var req *archive.Request
		if state == flows.StateReady {
			req = &archive.Request{Flow: flowREQ, CPUtente: p.CPUtente, Data: reqSnapshot(result), Payload: j.u.reqPayload(&data)}
		}
		// Queued: inserted with other new practices in multi-row statements.
		if err := j.st.QueueCreate(ctx, p, hist, req); err != nil {
			return err
		}
		j.created++
		if refiled != nil {
			j.refiled++
			if err := j.st.Flush(ctx); err != nil {
				return err
			}
			if err := j.st.History(ctx, archive.HistoryEntry{PracticeID: refiled.ID, From: refiled.State, To: refiled.State,
				Flow: config.KindUscenteMorosi, FileID: j.in.File.ID, Line: line, At: j.now,
				Note: fmt.Sprintf("case filed again as CP_UTENTE %s (practice #%d) from %s", p.CPUtente, p.ID, j.in.File.Name)}); err != nil {
				return err
			}
			if err := j.st.Link(ctx, refiled.ID, j.in.File.ID, "input", line); err != nil {
				return err
			}
			if _, err := j.in.Store.ResolvePracticeKind(ctx, j.st.Tx(), "sii_refusal", refiled.ID,
				fmt.Sprintf("case filed again as CP_UTENTE %s from %s", p.CPUtente, j.in.File.Name)); err != nil {
				return err
			}
		}
		return j.linkPrevious(ctx, p, mc)
	}
	// An update of a practice not yet filed.
	j.updated++
	p := &existing
	setAmounts(p, result)
	p.WindowOpen, p.WindowClose, p.CustomerName = open, closeDay, mc.Case.CustomerName
	p.Data = data.Marshal()
	if err := j.st.Save(ctx, p); err != nil {
		return err
	}
	if err := j.st.Link(ctx, p.ID, j.in.File.ID, "input", line); err != nil {
		return err
	}
	if err := j.linkPrevious(ctx, p, mc); err != nil {
		return err
	}
	return j.u.settleReady(ctx, j.st, p, state, result, j.u.reqPayload(&data), hist)
}

// hold keeps a case whose rows were refused or disagree from being filed with content
// different from what billing gave: no practice is created, and a practice of the same
// case not yet filed goes back to DRAFT with the reasons (its ready request cancelled).
// The findings (each row, each conflict, and the case) reach a person as exceptions.
func (j *morosiJob) hold(ctx context.Context, mc *flows.MorosiCase, existing archive.Practice, found bool) error {
	out := flows.DecideMorosi(mc, j.in.File.Name, j.today, j.params)
	j.held++
	j.refused++
	j.sink.add(out.Refusals...)
	if !found {
		return nil
	}
	switch existing.State {
	case flows.StateDraft, flows.StateReady, flows.StateWaitingWindow:
	default:
		return nil // filed already: this extract changes nothing of it, its findings say why
	}
	data, err := flows.ParseUscenteData(existing.Data)
	if err != nil {
		return fmt.Errorf("practice %d data: %w", existing.ID, err)
	}
	data.Refusals = out.Refusals
	if len(data.Refusals) == 0 {
		// Every row of it was refused (their findings are the file's): the practice
		// still says why it left READY.
		f := flows.Finding{File: j.in.File.Name, Line: mc.FirstLine(), Field: flows.MorSwitch, Rule: flows.RuleCaseRows, Value: flows.CaseLabel(&mc.Case),
			Message: fmt.Sprintf("practice held, not filed: its rows in %s (%s %s) were refused; correct them and drop the whole practice again",
				j.in.File.Name, plural(len(mc.Lines), "line", "lines"), flows.LinesText(mc.Lines))}
		data.Refusals = []flows.Finding{f}
		j.sink.add(f)
	}
	data.Inputs = appendInput(data.Inputs, j.in.File.ID, mc.Lines)
	p := &existing
	p.Data = data.Marshal()
	if err := j.st.Save(ctx, p); err != nil {
		return err
	}
	if err := j.st.Link(ctx, p.ID, j.in.File.ID, "input", mc.FirstLine()); err != nil {
		return err
	}
	h := archive.HistoryEntry{Flow: config.KindUscenteMorosi, FileID: j.in.File.ID, Line: mc.FirstLine(), At: j.now,
		Note: fmt.Sprintf("held: rows of %s (lines %s) refused or in conflict, not filed until billing sends the practice again", j.in.File.Name, flows.LinesText(mc.Lines))}
	return j.u.settleReady(ctx, j.st, p, flows.StateDraft, flows.CMORResult{Credit: p.Credit, Estimate: p.Estimate, Previous: p.Previous, CMOR: p.CMOR}, nil, h)
}

// linkPrevious links a request that carries a previous uncollected CMOR to our
// earlier entrante practice for that customer, both ways (brief §5.3).
func (j *morosiJob) linkPrevious(ctx context.Context, p *archive.Practice, mc *flows.MorosiCase) error {
	if p.Previous <= 0 && mc.Case.PreviousCPGestore == "" || p.LinkedID != 0 {
		return nil
	}
	if err := j.st.Flush(ctx); err != nil { // LinkPreviousCMOR runs on the transaction itself
		return err
	}
	return j.u.d.LinkPreviousCMOR(ctx, j.st.Tx(), p)
}

// settleReady moves a practice not yet filed to state (READY, WAITING_WINDOW or DRAFT)
// and keeps its one ready REQ request in step: created when READY, cancelled otherwise.
func (u *uscente) settleReady(ctx context.Context, st *archive.PracticeStmts, p *archive.Practice, state string, r flows.CMORResult, payload *archive.RequestPayload, h archive.HistoryEntry) error {
	reqs, err := u.d.Store.Requests(ctx, st.Tx(), p.ID, flowREQ, "ready", 0)
	if err != nil {
		return err
	}
	if state != p.State {
		if h.Note == "" {
			h.Note = fmt.Sprintf("CMOR %s", r.CMOR)
		}
		if err := st.Transition(ctx, p, state, "", h); err != nil {
			return err
		}
	} else {
		h.From, h.To, h.PracticeID = p.State, p.State, p.ID
		if h.Note == "" {
			h.Note = fmt.Sprintf("case updated: CMOR %s (credit %s, estimate %s)", r.CMOR, r.Credit, r.Estimate)
		}
		if err := st.History(ctx, h); err != nil {
			return err
		}
	}
	switch {
	case state == flows.StateReady && len(reqs) == 0:
		return st.CreateRequest(ctx, &archive.Request{PracticeID: p.ID, Flow: flowREQ, CPUtente: p.CPUtente, Data: reqSnapshot(r), Payload: payload})
	case state == flows.StateReady:
		if err := st.SetRequest(ctx, reqs[0].ID, "ready", reqSnapshot(r)); err != nil {
			return err
		}
		return st.SetRequestPayload(ctx, reqs[0].ID, payload)
	default:
		for _, rq := range reqs {
			if err := st.SetRequest(ctx, rq.ID, "cancelled", rq.Data); err != nil {
				return err
			}
		}
	}
	return nil
}

// reqPayload is what the practice's REQ request becomes in SI1.0050, without the
// header fields: computed once here, where the case is at hand, instead of decoding
// the case again for every request the build writes. Its values are positional in
// today's REQ layout; nil when the REQ flow refuses them (the build then refuses the
// request from the case, naming the field).
func (u *uscente) reqPayload(data *flows.UscenteData) *archive.RequestPayload {
	f := u.d.Catalog().Flow(flowREQ)
	if f == nil {
		return nil
	}
	recs, err := flows.ReqRecords(f, flows.ReqHeader{}, data.Case, data.Audit)
	if err != nil {
		return nil
	}
	pl := &archive.RequestPayload{Layout: f.Layout().Signature(), Values: make([][]string, len(recs))}
	for i, r := range recs {
		pl.Values[i] = r.Values
	}
	for _, in := range data.Inputs {
		pl.Inputs = append(pl.Inputs, in.FileID)
	}
	return pl
}

func setAmounts(p *archive.Practice, r flows.CMORResult) {
	p.Credit, p.Estimate, p.Previous, p.CMOR = r.Credit, r.Estimate, r.Previous, r.CMOR
}

func reqSnapshot(r flows.CMORResult) map[string]string {
	return map[string]string{"IMPORTO_CREDITO": r.Credit.String(), "IMPORTO_INDENNIZZO": r.CMOR.String(), "STIMA_SPESA_4_MESI": r.Estimate.String()}
}

func appendInput(refs []flows.InputRef, fileID int64, lines []int) []flows.InputRef {
	for i := range refs {
		if refs[i].FileID == fileID {
			refs[i].Lines = append(refs[i].Lines, lines...)
			return refs
		}
	}
	return append(refs, flows.InputRef{FileID: fileID, Lines: append([]int(nil), lines...)})
}

// newCode allocates a CP_UTENTE inside the job's transaction.
func (j *morosiJob) newCode(ctx context.Context, sector string) (string, error) {
	return newCode(ctx, j.st, j.tmpl, j.in.Config.Company.PIVA, sector, j.today.Y)
}

func newCode(ctx context.Context, st *archive.PracticeStmts, tmpl *flows.CodeTemplate, company, sector string, year int) (string, error) {
	return st.NewCode(ctx, tmpl.SequenceName(company, sector, year), func(seq int64) (string, error) {
		return tmpl.Render(sector, year, seq)
	})
}

// ---- small inputs: payments, operator annulments, refunds ----

// rowJob reads a whole small input file in one transaction, calling fn per good row.
// With on_bad_rows = "reject_file" a bad row rolls the whole transaction back and the
// file is finished as refused in a transaction of its own.
func (u *uscente) rowJob(ctx context.Context, in *Input, fn func(ctx context.Context, st *archive.PracticeStmts, rec flows.Record) ([]flows.Finding, error)) (Result, error) {
	src, done, err := openRows(ctx, in)
	if done != nil {
		return *done, err
	}
	if err != nil {
		return Result{}, err
	}
	defer src.rc.Close()
	rd, sink := src.rd, src.sink
	var res Result
	rows := 0
	errRefused := errors.New("refused file")
	err = in.Store.Write(ctx, func(tx *sql.Tx) error {
		st, err := in.Store.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return in.Now })
		for {
			rec, fs, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				st.Close(ctx)
				return err
			}
			rows++
			sink.add(fs...)
			if flows.HasErrors(fs) {
				continue
			}
			more, err := fn(ctx, st, rec)
			if err != nil {
				st.Close(ctx)
				return err
			}
			for i := range more {
				if more[i].Line == 0 {
					more[i].Line = rec.Line
				}
			}
			sink.add(more...)
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		res = Result{Findings: sink.result(), Meta: map[string]string{"rows": fmt.Sprint(rows)}}
		if rejectFile(in) && sink.errors > 0 {
			return errRefused // nothing of the file stands
		}
		return in.Finish(ctx, tx, res)
	})
	if errors.Is(err, errRefused) {
		res.Rejected = true
		res.Reason = fmt.Sprintf("%d refused %s and on_bad_rows = \"reject_file\": the whole file is refused, nothing was done", sink.errors, plural(sink.errors, "row", "rows"))
		return finishOnly(ctx, in, res)
	}
	return res, err
}

// practiceFor finds the uscente practice a row names: by CP_UTENTE or CP_GESTORE, else
// (payments) by point and customer, the most recent one.
func (u *uscente) practiceFor(ctx context.Context, tx *sql.Tx, rec flows.Record) (archive.Practice, error) {
	for _, code := range []string{rec.Get("CP_UTENTE"), rec.Get("CP_GESTORE")} {
		if code != "" {
			return u.d.Store.PracticeByCode(ctx, tx, code)
		}
	}
	point := firstNonEmptyStr(rec.Get("COD_POD"), rec.Get("COD_PDR"))
	cust := firstNonEmptyStr(rec.Get("CF_CLIENTE"), rec.Get("PIVA_CLIENTE"))
	return u.d.Store.UscentePracticeByPoint(ctx, tx, point, cust)
}

func firstNonEmptyStr(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// handleIncassi applies payments. A payment that clears the practice's counted debt
// withdraws a practice not yet filed (ANNULLED locally, no flow) or files an annulment
// (ANN_REQ, cause AN-02) for one the SII already has.
func (u *uscente) handleIncassi(ctx context.Context, in *Input) (Result, error) {
	return u.rowJob(ctx, in, func(ctx context.Context, st *archive.PracticeStmts, rec flows.Record) ([]flows.Finding, error) {
		p, err := u.practiceFor(ctx, st.Tx(), rec)
		if errors.Is(err, archive.ErrNotFound) {
			if rec.Get("CP_UTENTE") != "" {
				return []flows.Finding{{Field: "CP_UTENTE", Rule: "NO-PRACTICE", Value: rec.Get("CP_UTENTE"), Message: "no practice has this code"}}, nil
			}
			return nil, nil // a payment of a customer with no CMOR practice: nothing to do
		}
		if err != nil {
			return nil, err
		}
		data, err := flows.ParseUscenteData(p.Data)
		if err != nil {
			return nil, err
		}
		paid, on := rec.Amount("IMPORTO_INCASSATO"), rec.Date("DATA_INCASSO")
		num := rec.Get("NUM_FATTURA")
		found := false
		for i := range data.Case.Invoices {
			inv := &data.Case.Invoices[i]
			if inv.Number != num {
				continue
			}
			found = true
			if rec.Get("RESIDUO_INSOLUTO") != "" {
				inv.Unpaid = rec.Amount("RESIDUO_INSOLUTO")
			} else if inv.Unpaid -= paid; inv.Unpaid < 0 {
				inv.Unpaid = 0
			}
		}
		if !found {
			return []flows.Finding{{Field: "NUM_FATTURA", Rule: "NO-INVOICE", Value: num, Severity: "warning",
				Message: fmt.Sprintf("practice %s has no invoice %s: payment noted only", p.CPUtente, num)}}, nil
		}
		remaining := countedUnpaid(data)
		h := archive.HistoryEntry{Flow: in.File.Kind, FileID: in.File.ID, Line: rec.Line, At: in.Now}
		if remaining > 0 && (p.State == flows.StateReady || p.State == flows.StateWaitingWindow || p.State == flows.StateDraft) {
			// Not filed yet: the credit, so the CMOR and perhaps the case's eligibility,
			// changed. Checked again as of today, like a new extract of the case.
			return u.recheckUnfiled(ctx, st, in, &p, &data, h, fmt.Sprintf("payment of %s on %s for invoice %s; still unpaid %s", paid, on, num, remaining))
		}
		p.Data = data.Marshal()
		if err := st.Save(ctx, &p); err != nil {
			return nil, err
		}
		if remaining > 0 {
			h.PracticeID, h.From, h.To = p.ID, p.State, p.State
			h.Note = fmt.Sprintf("payment of %s on %s for invoice %s; still unpaid %s", paid, on, num, remaining)
			if err := st.History(ctx, h); err != nil {
				return nil, err
			}
			return nil, st.Link(ctx, p.ID, in.File.ID, "input", rec.Line)
		}
		return u.annul(ctx, st, in, &p, "AN-02", fmt.Sprintf("debt paid on %s (invoice %s, %s)", on, num, paid), on, h)
	})
}

// recheckUnfiled recomputes a practice not yet filed after its case changed (a partial
// payment): amounts, audit, state (READY / WAITING_WINDOW / DRAFT) and its ready
// request, with the refusals as findings of the input line.
func (u *uscente) recheckUnfiled(ctx context.Context, st *archive.PracticeStmts, in *Input, p *archive.Practice, data *flows.UscenteData, h archive.HistoryEntry, why string) ([]flows.Finding, error) {
	today := flows.Today(in.Now)
	result, fs := flows.CheckEligibility(data.Case, today, cmorParams(in.Config.CMOR))
	state, refusals, warns := flows.SplitEligibility(fs)
	data.Audit, data.Warnings, data.Refusals = flows.AuditOf(result, today), warns, refusals
	data.Inputs = appendInput(data.Inputs, in.File.ID, []int{h.Line})
	setAmounts(p, result)
	p.Data = data.Marshal()
	if err := st.Save(ctx, p); err != nil {
		return nil, err
	}
	if err := st.Link(ctx, p.ID, in.File.ID, "input", h.Line); err != nil {
		return nil, err
	}
	h.Note = fmt.Sprintf("%s; CMOR now %s (credit %s, estimate %s)", why, result.CMOR, result.Credit, result.Estimate)
	if state == flows.StateDraft {
		h.Note += "; no longer eligible: " + refusals[0].String()
		h.CauseCode = refusals[0].Rule
	}
	if err := u.settleReady(ctx, st, p, state, result, u.reqPayload(data), h); err != nil {
		return nil, err
	}
	if state != flows.StateDraft {
		return nil, nil
	}
	// The payment row itself is fine: what needs a person is the practice.
	_, _, err := in.Store.RaiseException(ctx, st.Tx(), archive.Exception{Fingerprint: fmt.Sprintf("case_refused|%d", p.ID),
		Kind: "case_refused", Severity: archive.SevNormal, Owner: "compliance", PracticeID: p.ID, FileID: in.File.ID, Line: h.Line,
		Rule: refusals[0].Rule, Field: refusals[0].Field, Subject: p.CPUtente, Message: h.Note, LastSeen: in.Now,
		Action: "Check the case: after the payment it no longer qualifies for a CMOR request; nothing is filed."})
	return nil, err
}

// countedUnpaid sums what is still unpaid on the invoices the request counted.
func countedUnpaid(d flows.UscenteData) flows.Amount {
	counted := map[string]bool{}
	if d.Audit != nil {
		for _, n := range d.Audit.Counted {
			counted[n] = true
		}
	}
	var sum flows.Amount
	for _, inv := range d.Case.Invoices {
		if d.Audit == nil || counted[inv.Number] {
			sum += inv.Unpaid
		}
	}
	return sum
}

// annul withdraws a practice not yet filed, or records an ANN_REQ for one the SII has.
func (u *uscente) annul(ctx context.Context, st *archive.PracticeStmts, in *Input, p *archive.Practice, cause, why string, event flows.Date, h archive.HistoryEntry) ([]flows.Finding, error) {
	switch {
	case !flows.StateSentOrLater(p.State):
		reqs, err := u.d.Store.Requests(ctx, st.Tx(), p.ID, flowREQ, "ready", 0)
		if err != nil {
			return nil, err
		}
		for _, r := range reqs {
			if err := st.SetRequest(ctx, r.ID, "cancelled", r.Data); err != nil {
				return nil, err
			}
		}
		h.CauseCode = cause
		h.Note = "withdrawn before filing (no flow sent to the SII): " + why
		return nil, st.Transition(ctx, p, flows.StateAnnulled, "input", h)
	case !flows.StateOpen(p.State) && p.State != "AMOUNT_UPDATED":
		return []flows.Finding{{Field: "CP_UTENTE", Rule: "STATE", Value: p.CPUtente, Severity: "warning",
			Message: fmt.Sprintf("practice %s is %s: no annulment to request", p.CPUtente, p.State)}}, nil
	}
	for _, state := range []string{"ready", "sent"} {
		if rs, err := u.d.Store.Requests(ctx, st.Tx(), p.ID, flowANNREQ, state, 0); err != nil {
			return nil, err
		} else if len(rs) > 0 {
			return []flows.Finding{{Field: "CP_UTENTE", Rule: "ANN-DUP", Value: p.CPUtente, Severity: "warning",
				Message: fmt.Sprintf("an annulment of %s is already %s (%s)", p.CPUtente, state, rs[0].CPUtente)}}, nil
		}
	}
	tmpl, err := flows.ParseCodeTemplate(in.Config.PracticeCode.Template)
	if err != nil {
		return nil, err
	}
	code, err := newCode(ctx, st, tmpl, in.Config.Company.PIVA, p.Sector, flows.Today(in.Now).Y)
	if err != nil {
		return nil, err
	}
	motiv := why
	if len(motiv) > 255 {
		motiv = motiv[:255]
	}
	r := &archive.Request{PracticeID: p.ID, Flow: flowANNREQ, CPUtente: code,
		Data: map[string]string{"COD_CAUSALE_ANNULLAMENTO": cause, "MOTIVAZIONE": motiv, "DATA_EVENTO": event.String()}}
	if err := st.CreateRequest(ctx, r); err != nil {
		return nil, err
	}
	h.PracticeID, h.From, h.To, h.CauseCode = p.ID, p.State, p.State, cause
	h.Note = fmt.Sprintf("annulment requested (ANN_REQ %s, cause %s): %s", code, cause, why)
	if err := st.History(ctx, h); err != nil {
		return nil, err
	}
	return nil, st.Link(ctx, p.ID, in.File.ID, "input", h.Line)
}

// handleAnnullamenti files the annulments an operator decided.
func (u *uscente) handleAnnullamenti(ctx context.Context, in *Input) (Result, error) {
	return u.rowJob(ctx, in, func(ctx context.Context, st *archive.PracticeStmts, rec flows.Record) ([]flows.Finding, error) {
		p, err := u.practiceFor(ctx, st.Tx(), rec)
		if errors.Is(err, archive.ErrNotFound) {
			return []flows.Finding{{Field: "CP_UTENTE", Rule: "NO-PRACTICE", Value: firstNonEmptyStr(rec.Get("CP_UTENTE"), rec.Get("CP_GESTORE")),
				Message: "no practice has this code"}}, nil
		}
		if err != nil {
			return nil, err
		}
		if p.State == flows.StateAnnulled {
			return []flows.Finding{{Field: "CP_UTENTE", Rule: "STATE", Value: p.CPUtente, Severity: "warning", Message: "already annulled"}}, nil
		}
		why := firstNonEmptyStr(rec.Get("MOTIVAZIONE"), "operator annulment")
		if by := rec.Get("RICHIESTO_DA"); by != "" {
			why += " (requested by " + by + ")"
		}
		if p.Role == "entrante" { // one list may name practices of both sides
			return u.d.RequestEntranteAnnulment(ctx, st.Tx(), &p, rec.Get("COD_CAUSALE_ANNULLAMENTO"), why, rec.Date("DATA_EVENTO"), in.File.ID, rec.Line)
		}
		h := archive.HistoryEntry{Flow: in.File.Kind, FileID: in.File.ID, Line: rec.Line, At: in.Now}
		return u.annul(ctx, st, in, &p, rec.Get("COD_CAUSALE_ANNULLAMENTO"), why, rec.Date("DATA_EVENTO"), h)
	})
}

// handleRimborsi records refunds to customers after an annulment of a paid indemnity
// and files REFUND_ACK; the refund exception is resolved, the acknowledgement one raised
// until the REFUND_ACK is built.
func (u *uscente) handleRimborsi(ctx context.Context, in *Input) (Result, error) {
	cal := u.d.Calendar()
	return u.rowJob(ctx, in, func(ctx context.Context, st *archive.PracticeStmts, rec flows.Record) ([]flows.Finding, error) {
		p, err := u.practiceFor(ctx, st.Tx(), rec)
		if errors.Is(err, archive.ErrNotFound) {
			return []flows.Finding{{Field: "CP_GESTORE", Rule: "NO-PRACTICE", Value: rec.Get("CP_GESTORE"), Message: "no practice has this code"}}, nil
		}
		if err != nil {
			return nil, err
		}
		if p.State != flows.StateAnnulled {
			return []flows.Finding{{Field: "CP_GESTORE", Rule: "STATE", Value: p.CPGestore,
				Message: fmt.Sprintf("practice %s is %s, not ANNULLED: no refund is due", p.CPUtente, p.State)}}, nil
		}
		data, err := flows.ParseUscenteData(p.Data)
		if err != nil {
			return nil, err
		}
		if data.Refund == nil {
			data.Refund = &flows.Refund{}
		}
		on := rec.Date("DATA_RESTITUZIONE")
		data.Refund.RefundedOn, data.Refund.Refunded, data.Refund.Mode = on, rec.Amount("IMPORTO_RESTITUITO"), rec.Get("MODALITA")
		data.Refund.AckDueBy = cal.AddWorkingDays(on, in.Config.Deadlines.AckDays)
		p.Data = data.Marshal()
		if err := st.Save(ctx, &p); err != nil {
			return nil, err
		}
		tmpl, err := flows.ParseCodeTemplate(in.Config.PracticeCode.Template)
		if err != nil {
			return nil, err
		}
		code, err := newCode(ctx, st, tmpl, in.Config.Company.PIVA, p.Sector, flows.Today(in.Now).Y)
		if err != nil {
			return nil, err
		}
		r := &archive.Request{PracticeID: p.ID, Flow: flowREFUNDACK, CPUtente: code, Data: map[string]string{
			"DATA_RESTITUZIONE": on.String(), "IMPORTO_RESTITUITO": data.Refund.Refunded.String(), "MODALITA": data.Refund.Mode}}
		if err := st.CreateRequest(ctx, r); err != nil {
			return nil, err
		}
		h := archive.HistoryEntry{PracticeID: p.ID, From: p.State, To: p.State, Flow: in.File.Kind, FileID: in.File.ID, Line: rec.Line, At: in.Now,
			Note: fmt.Sprintf("refund of %s to the customer on %s (%s); REFUND_ACK %s due by %s", data.Refund.Refunded, on, data.Refund.Mode, code, data.Refund.AckDueBy)}
		if err := st.History(ctx, h); err != nil {
			return nil, err
		}
		if err := st.Link(ctx, p.ID, in.File.ID, "input", rec.Line); err != nil {
			return nil, err
		}
		if _, err := in.Store.ResolveByFingerprint(ctx, st.Tx(), fmt.Sprintf("refund_overdue|%d", p.ID), "refund recorded from "+in.File.Name); err != nil {
			return nil, err
		}
		_, _, err = in.Store.RaiseException(ctx, st.Tx(), archive.Exception{Fingerprint: fmt.Sprintf("ack_overdue|%d", p.ID), Kind: "ack_overdue",
			Severity: archive.SevNormal, Owner: "compliance", PracticeID: p.ID, Subject: p.CPUtente, DueOn: data.Refund.AckDueBy.ISO(),
			Message: fmt.Sprintf("practice %s: the refund of %s must be acknowledged to the SII (REFUND_ACK) by %s", p.CPUtente, data.Refund.Refunded, data.Refund.AckDueBy),
			Action:  "cmord builds and publishes REFUND_ACK at the next build; check that it goes out.", LastSeen: in.Now})
		return nil, err
	})
}

// ---- builders: REQ, ANN_REQ, REFUND_ACK ----

// requestBuilder writes the ready requests of one flow into flow files, batched by
// [build] max_rows_per_file and max_file_bytes, each file in one transaction with its
// archiving, the requests marked sent, the practices moved and the delivery queued.
type requestBuilder struct {
	u    *uscente
	flow string
}

func (b *requestBuilder) Name() string { return "uscente." + b.flow }

// pendingRequest is one request with what it becomes in the file.
type pendingRequest struct {
	req    archive.Request
	p      archive.Practice    // without its Data (the batch holds thousands)
	inputs []int64             // the input files behind the practice (provenance)
	data   *flows.UscenteData  // REFUND_ACK only: saved back with the refund acknowledged
	rows   []map[string]string // until encoded (flows other than REQ)
	first  map[string]string   // its first row (the file name may use its values), or
	firstR flows.Record        // the same as a record
	nrows  int
	body   []byte // its records in the file, encoded once
}

// buildPage is how many ready requests one read brings into a build.
const buildPage = 256

func (b *requestBuilder) Build(ctx context.Context, now time.Time) (int, error) {
	d := b.u.d
	cfg := d.Config()
	if !cfg.Company.HasRole("uscente") {
		return 0, nil
	}
	f := d.Catalog().Flow(b.flow)
	if f == nil {
		return 0, fmt.Errorf("the flow catalog has no flow %s", b.flow)
	}
	format := f.Format
	if v := cfg.Build.Format[b.flow]; v != "" {
		format = v
	}
	today := flows.Today(now)
	if b.flow == flowREQ {
		if err := b.openWindows(ctx, now); err != nil {
			return 0, err
		}
	}
	enc, err := flows.NewBodyEncoder(f, format)
	if err != nil {
		return 0, err
	}
	prefix, suffix := enc.Envelope()
	maxRows, maxBytes := cfg.Build.MaxRowsPerFile, cfg.Build.MaxFileBytes
	if maxRows <= 0 {
		maxRows = 10000
	}
	if maxBytes <= 0 {
		maxBytes = 10 << 20
	}
	built := 0
	var after int64
	for {
		more := false
		err := d.Store.Write(ctx, func(tx *sql.Tx) error {
			st, err := d.Store.PreparePractices(ctx, tx)
			if err != nil {
				return err
			}
			st.SetClock(d.now)
			defer st.Close(ctx)
			// Pages of a few hundred requests until the file is full: a page as big as
			// the file's row limit would decode three times what one file takes.
			var batch []*pendingRequest
			rows, size := 0, len(prefix)+len(suffix)
		pages:
			for {
				reqs, practices, err := d.Store.ReadyRequestsWithPractices(ctx, tx, b.flow, after, buildPage)
				if err != nil {
					return err
				}
				if len(reqs) == 0 {
					break
				}
				more = true
				for i, r := range reqs {
					pr, err := b.prepare(ctx, st, f, enc, r, practices[i], now)
					if err != nil {
						return err
					}
					if pr == nil {
						after = r.ID // skipped (waits, or refused): look past it
						continue
					}
					if len(batch) > 0 && (rows+pr.nrows > maxRows || int64(size+len(pr.body)) > maxBytes) {
						break pages // the next file starts with this request
					}
					batch = append(batch, pr)
					rows, size = rows+pr.nrows, size+len(pr.body)
					after = r.ID
				}
			}
			if len(batch) == 0 {
				return st.Close(ctx)
			}
			if err := b.writeFile(ctx, tx, st, f, format, enc, batch, now, today); err != nil {
				return err
			}
			built++
			return st.Close(ctx)
		})
		if err != nil {
			return built, err
		}
		if !more {
			break
		}
	}
	if b.flow == flowREQ {
		if err := b.flagClosing(ctx, now); err != nil {
			return built, err
		}
	}
	return built, nil
}

// prepare loads a request's practice and encodes its rows, once: the bytes size the
// batch, go into the file as they are, and a request the flow does not accept is
// refused here. nil means "not in this file".
func (b *requestBuilder) prepare(ctx context.Context, st *archive.PracticeStmts, f *flows.Flow, enc *flows.BodyEncoder, r archive.Request, p archive.Practice, now time.Time) (*pendingRequest, error) {
	d := b.u.d
	cfg := d.Config()
	var data flows.UscenteData
	pr := &pendingRequest{req: r, p: p}
	pr.p.Data = nil
	if r.Payload != nil && b.flow == flowREQ {
		pr.inputs = r.Payload.Inputs
	} else {
		var err error
		if data, err = flows.ParseUscenteData(p.Data); err != nil {
			return nil, err
		}
		for _, in := range data.Inputs {
			pr.inputs = append(pr.inputs, in.FileID)
		}
		if data.Refund != nil {
			pr.data = &data
		}
	}
	hdr := map[string]string{"PIVA_UTENTE": cfg.Company.PIVA, "PIVA_GESTORE": cfg.Company.PIVAGestore, "CP_UTENTE": r.CPUtente}
	var err error
	encoded := false // REQ from records; the other flows (and REQ form 1) from rows
	switch b.flow {
	case flowREQ:
		if p.State != flows.StateReady {
			return nil, st.SetRequest(ctx, r.ID, "cancelled", r.Data)
		}
		if today := flows.Today(now); !p.WindowClose.IsZero() && today.After(p.WindowClose) {
			return nil, b.refuse(ctx, st, pr, "E3", fmt.Sprintf("request window closed on %s before the request could be sent", p.WindowClose))
		}
		cc := ""
		if cfg.Company.ActingAs == "CC" {
			cc = cfg.Company.PIVA
			hdr["PIVA_UTENTE"] = cfg.Company.UDDPIVA
		}
		h := flows.ReqHeader{PIVAUtente: hdr["PIVA_UTENTE"], PIVAGestore: hdr["PIVA_GESTORE"], PIVACCUscita: cc, CPUtente: r.CPUtente}
		var recs []flows.Record
		switch pl := r.Payload; {
		case pl != nil && pl.Values != nil && pl.Layout == f.Layout().Signature():
			recs = make([]flows.Record, 0, len(pl.Values))
			for _, vals := range pl.Values {
				rec, ok := flows.RecordOf(f, vals)
				if !ok {
					return nil, fmt.Errorf("request %d: a payload row of %d values for %d fields", r.ID, len(vals), len(f.Fields))
				}
				recs = append(recs, rec)
			}
			err = flows.FillReqHeader(recs, h)
		case pl != nil && pl.Values == nil:
			// Form 1 (requests made ready by an earlier version): rows by field name,
			// the header fields as flows.ReqRows sets them, from today's configuration.
			for _, row := range pl.Rows {
				for _, kv := range h.Fields() {
					if kv[1] != "" {
						row[kv[0]] = kv[1]
					}
				}
			}
			pr.rows = pl.Rows
		default:
			// No payload, or one stored under another REQ layout (the catalog changed
			// since the request was made ready): from the case, in today's layout.
			if pl != nil {
				full, err := st.ByID(ctx, p.ID)
				if err != nil {
					return nil, err
				}
				if data, err = flows.ParseUscenteData(full.Data); err != nil {
					return nil, fmt.Errorf("practice %d data: %w", p.ID, err)
				}
			}
			recs, err = flows.ReqRecords(f, h, data.Case, data.Audit)
		}
		if err == nil && pr.rows == nil {
			pr.body, err = enc.EncodeRecords(recs)
			pr.nrows, encoded = len(recs), true
			if len(recs) > 0 {
				pr.firstR = recs[0]
			}
		}
	default:
		if p.CPGestore == "" {
			return nil, nil // the SII has not admitted the practice yet: the request waits
		}
		row := map[string]string{"CP_GESTORE": p.CPGestore}
		for k, v := range hdr {
			row[k] = v
		}
		for k, v := range r.Data {
			row[k] = v
		}
		pr.rows = []map[string]string{row}
	}
	if !encoded && err == nil {
		pr.body, err = enc.Encode(pr.rows)
		pr.nrows = len(pr.rows)
		if len(pr.rows) > 0 {
			pr.first = pr.rows[0]
		}
	}
	if err != nil {
		var re *flows.RecordError
		if errors.As(err, &re) {
			msgs := make([]string, 0, len(re.Findings))
			for _, fd := range re.Findings {
				msgs = append(msgs, fd.String())
			}
			return nil, b.refuse(ctx, st, pr, "BUILD", "the flow refuses the request: "+strings.Join(msgs, "; "))
		}
		return nil, err
	}
	pr.rows = nil
	return pr, nil
}

// firstRow is the values of the request's first row, by field name.
func (pr *pendingRequest) firstRow() map[string]string {
	if pr.first == nil && pr.firstR.Values != nil {
		pr.first = pr.firstR.Map()
	}
	return pr.first
}

// refuse takes a request out of the build: the request is cancelled, a REQ practice goes
// back to DRAFT, and a person is told.
func (b *requestBuilder) refuse(ctx context.Context, st *archive.PracticeStmts, pr *pendingRequest, rule, msg string) error {
	if err := st.SetRequest(ctx, pr.req.ID, "invalid", pr.req.Data); err != nil {
		return err
	}
	h := archive.HistoryEntry{Flow: b.flow, CauseCode: rule, Note: "not sent: " + msg, At: b.u.d.now()}
	if b.flow == flowREQ && b.u.d.Catalog().CanTransition(pr.p.State, flows.StateDraft) {
		if err := st.Transition(ctx, &pr.p, flows.StateDraft, "", h); err != nil {
			return err
		}
	} else {
		h.PracticeID, h.From, h.To = pr.p.ID, pr.p.State, pr.p.State
		if err := st.History(ctx, h); err != nil {
			return err
		}
	}
	_, _, err := b.u.d.Store.RaiseException(ctx, st.Tx(), archive.Exception{Fingerprint: fmt.Sprintf("build_refused|%s|%d", b.flow, pr.req.ID),
		Kind: "build_refused", Severity: archive.SevHigh, Owner: "compliance", PracticeID: pr.p.ID, Rule: rule, Subject: pr.req.CPUtente,
		Message: fmt.Sprintf("%s %s for practice %s was not sent: %s", b.flow, pr.req.CPUtente, pr.p.CPUtente, msg),
		Action:  "Correct the data in billing and drop the case again; a new request gets a NEW CP_UTENTE.", LastSeen: b.u.d.now()})
	return err
}

// writeFile encodes a batch, archives it with provenance, marks its requests sent,
// moves the practices and queues the delivery, all in tx.
func (b *requestBuilder) writeFile(ctx context.Context, tx *sql.Tx, st *archive.PracticeStmts, f *flows.Flow, format string, enc *flows.BodyEncoder, batch []*pendingRequest, now time.Time, today flows.Date) error {
	d := b.u.d
	inputs := map[int64]bool{}
	var inputIDs []int64
	bodies := make([][]byte, 0, len(batch))
	var first map[string]string
	nrows := 0
	for _, pr := range batch {
		bodies, nrows = append(bodies, pr.body), nrows+pr.nrows
		if first == nil {
			first = pr.firstRow()
		}
		for _, id := range pr.inputs {
			if !inputs[id] {
				inputs[id] = true
				inputIDs = append(inputIDs, id)
			}
		}
	}
	prefix, suffix := enc.Envelope()
	content := flows.Assemble(prefix, suffix, bodies)
	name, err := flowFileName(ctx, d, tx, f, format, first, now, today)
	if err != nil {
		return err
	}
	file, err := d.ArchiveBuilt(ctx, tx, Built{Name: name, Kind: b.flow, Content: content, Inputs: inputIDs,
		Meta: map[string]string{"requests": fmt.Sprint(len(batch)), "rows": fmt.Sprint(nrows)}}, "built")
	if err != nil {
		return err
	}
	// The bookkeeping of the batch is set-based: one statement for all its requests,
	// one for the practices it moves, multi-row inserts for history and links, in the
	// order the requests are in the file.
	t := flows.TransitionOf(f)
	reqIDs := make([]int64, 0, len(batch))
	practiceIDs := make([]int64, 0, len(batch))
	practices := make([]*archive.Practice, 0, len(batch))
	var moved []int64
	hs := make([]archive.HistoryEntry, 0, len(batch))
	to := ""
	if t != nil {
		to = t.To
	}
	// The flow's state (SENT for a REQ) is reached only once the file is confirmed on
	// the SII side: archive.MarkDelivered applies it. Meanwhile a REQ practice is
	// BUILT (when the catalog has that state), the others stay where they are.
	built := ""
	if b.flow == flowREQ && d.Catalog().State(flows.StateBuilt) != nil {
		built = flows.StateBuilt
	}
	deferFrom := map[string]bool{}
	for _, pr := range batch {
		reqIDs, practiceIDs, practices = append(reqIDs, pr.req.ID), append(practiceIDs, pr.p.ID), append(practices, &pr.p)
		h := archive.HistoryEntry{PracticeID: pr.p.ID, From: pr.p.State, To: pr.p.State, Flow: b.flow, FileID: file.ID, At: now,
			Note: fmt.Sprintf("%s %s written into %s", b.flow, pr.req.CPUtente, name)}
		if to != "" && to != pr.p.State && (len(t.From) == 0 || containsState(t.From, pr.p.State)) {
			h.Note += fmt.Sprintf("; %s once %s is delivered", to, name)
			if built != "" && d.Catalog().CanTransition(pr.p.State, built) {
				moved = append(moved, pr.p.ID)
				h.To = built
				pr.p.State, pr.p.StateSince = built, now
			}
			deferFrom[pr.p.State] = true
		}
		hs = append(hs, h)
	}
	froms := make([]string, 0, len(deferFrom))
	for from := range deferFrom {
		froms = append(froms, from)
	}
	sort.Strings(froms)
	for _, from := range froms {
		if err := d.Store.DeferTransition(ctx, tx, archive.PendingTransition{FileID: file.ID, From: from, To: to, Flow: b.flow,
			Note: fmt.Sprintf("%s published in %s", b.flow, name), At: now}); err != nil {
			return err
		}
	}
	if built != "" {
		to = built // what the practices move to now
	}
	if err := st.MarkSentAll(ctx, reqIDs, file.ID, now); err != nil {
		return err
	}
	switch {
	case b.flow == flowREQ && len(moved) == len(practices):
		if err := st.SendAll(ctx, practices, to, now, today); err != nil { // the usual case: each row rewritten once
			return err
		}
	case b.flow == flowREQ:
		if err := st.SetStateAll(ctx, moved, to, now); err != nil {
			return err
		}
		if err := st.SetRequestDateAll(ctx, practices, today); err != nil {
			return err
		}
	default:
		if err := st.SetStateAll(ctx, moved, to, now); err != nil {
			return err
		}
	}
	if err := st.HistoryAll(ctx, hs); err != nil {
		return err
	}
	if err := st.LinkAll(ctx, practiceIDs, file.ID, "built", 0); err != nil {
		return err
	}
	for _, pr := range batch {
		switch b.flow {
		case flowREQ:
			// Only a practice close to its window's end can have been flagged.
			if !pr.p.WindowClose.IsZero() && today.DaysUntil(pr.p.WindowClose) <= d.Config().CMOR.WindowWarnDays {
				if _, err := d.Store.ResolveByFingerprint(ctx, tx, fmt.Sprintf("window_closing|%d", pr.p.ID), "request sent in "+name); err != nil {
					return err
				}
			}
		case flowREFUNDACK:
			if pr.data != nil && pr.data.Refund != nil {
				pr.data.Refund.AckSent = true
				pr.p.Data = pr.data.Marshal()
				if err := st.Save(ctx, &pr.p); err != nil {
					return err
				}
			}
			if _, err := d.Store.ResolveByFingerprint(ctx, tx, fmt.Sprintf("ack_overdue|%d", pr.p.ID), "REFUND_ACK sent in "+name); err != nil {
				return err
			}
		}
	}
	return d.QueueToSII(ctx, tx, file)
}

func containsState(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// openWindows moves WAITING_WINDOW practices whose window opened to READY (with their
// REQ request) after checking them again as of today, or to DRAFT if they no longer
// pass.
func (b *requestBuilder) openWindows(ctx context.Context, now time.Time) error {
	d := b.u.d
	cfg := d.Config()
	params := cmorParams(cfg.CMOR)
	today := flows.Today(now)
	for {
		changed := 0
		err := d.Store.Write(ctx, func(tx *sql.Tx) error {
			due, err := d.Store.UscentePracticesDue(ctx, tx, flows.StateWaitingWindow, "window_open", today, 500)
			if err != nil || len(due) == 0 {
				return err
			}
			st, err := d.Store.PreparePractices(ctx, tx)
			if err != nil {
				return err
			}
			st.SetClock(d.now)
			for i := range due {
				p := &due[i]
				data, err := flows.ParseUscenteData(p.Data)
				if err != nil {
					st.Close(ctx)
					return err
				}
				res, fs := flows.CheckEligibility(data.Case, today, params)
				state, refusals, _ := flows.SplitEligibility(fs)
				if state == flows.StateWaitingWindow {
					continue
				}
				changed++
				data.Audit, data.Refusals = flows.AuditOf(res, today), refusals
				setAmounts(p, res)
				p.Data = data.Marshal()
				if err := st.Save(ctx, p); err != nil {
					st.Close(ctx)
					return err
				}
				h := archive.HistoryEntry{Flow: "window", At: now, Note: fmt.Sprintf("request window opened on %s; CMOR %s", p.WindowOpen, res.CMOR)}
				if state == flows.StateDraft {
					h.Note = fmt.Sprintf("request window opened on %s, but the case no longer passes: %s", p.WindowOpen, refusals[0].String())
					h.CauseCode = refusals[0].Rule
					if _, _, err := d.Store.RaiseException(ctx, tx, archive.Exception{Fingerprint: fmt.Sprintf("case_refused|%d", p.ID),
						Kind: "case_refused", Severity: archive.SevNormal, Owner: "compliance", PracticeID: p.ID, Rule: refusals[0].Rule,
						Field: refusals[0].Field, Subject: p.CPUtente, Message: h.Note, LastSeen: now,
						Action: "Correct the case in billing and drop it again."}); err != nil {
						st.Close(ctx)
						return err
					}
				}
				if err := b.u.settleReady(ctx, st, p, state, res, b.u.reqPayload(&data), h); err != nil {
					st.Close(ctx)
					return err
				}
			}
			return st.Close(ctx)
		})
		if err != nil || changed == 0 {
			return err
		}
	}
}

// flagClosing raises window_closing for practices not yet filed whose request window
// closes within [cmor] window_warn_days.
func (b *requestBuilder) flagClosing(ctx context.Context, now time.Time) error {
	d := b.u.d
	cfg := d.Config()
	today := flows.Today(now)
	limit := today.AddDays(cfg.CMOR.WindowWarnDays)
	return d.Store.Write(ctx, func(tx *sql.Tx) error {
		for _, state := range []string{flows.StateReady, flows.StateWaitingWindow, flows.StateDraft} {
			ps, err := d.Store.UscentePracticesDue(ctx, tx, state, "window_close", limit, 0)
			if err != nil {
				return err
			}
			for _, p := range ps {
				days := today.DaysUntil(p.WindowClose)
				sev := archive.SevHigh
				if days <= 2 {
					sev = archive.SevUrgent
				}
				msg := fmt.Sprintf("practice %s (%s) is %s and its request window closes on %s (%d days)", p.CPUtente, p.Point, p.State, p.WindowClose, days)
				if days < 0 {
					msg = fmt.Sprintf("practice %s (%s) is %s and its request window closed on %s: the indemnity can no longer be requested", p.CPUtente, p.Point, p.State, p.WindowClose)
				}
				if _, _, err := d.Store.RaiseException(ctx, tx, archive.Exception{Fingerprint: fmt.Sprintf("window_closing|%d", p.ID),
					Kind: "window_closing", Severity: sev, Owner: "compliance", PracticeID: p.ID, Subject: p.CPUtente,
					DueOn: p.WindowClose.ISO(), Message: msg, LastSeen: now,
					Action: "Make sure the request goes out before the window closes: fix what holds the practice, or accept the loss."}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
