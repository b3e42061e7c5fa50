package uscente

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/failpoint"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
	"slices"
)

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

// BuildPage is how many ready requests one read brings into a build (a variable so
// that tests can make pages of one or two requests).
var BuildPage = 256

// BuildReadAhead lets a REQ build read its next page of ready requests while the page
// before is computed (readAhead). Off, each page is read once the one before is
// decided: the slow twin the tests compare it with.
var BuildReadAhead = true

func (b *requestBuilder) Build(ctx context.Context, now time.Time) (int, error) {
	d := b.u.h
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
	if b.flow == FlowREQ {
		if err := b.openWindows(ctx, now); err != nil {
			return 0, err
		}
	}
	enc, err := flows.NewBodyEncoder(f, format)
	if err != nil {
		return 0, err
	}
	enc2, err := flows.NewBodyEncoder(f, format) // the second goroutine's (startPrecompute)
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
		err := d.Archive().Write(ctx, func(tx *sql.Tx) error {
			st, err := d.Archive().PreparePractices(ctx, tx)
			if err != nil {
				return err
			}
			st.SetClock(d.Now)
			defer st.Close(ctx)
			// Pages of a few hundred requests until the file is full: a page as big as
			// the file's row limit would decode three times what one file takes.
			var batch []*pendingRequest
			rows, size := 0, len(prefix)+len(suffix)
			var ahead *readyPage // the next page, read while this one was computed
		pages:
			for {
				var pg readyPage
				if ahead != nil {
					pg, ahead = *ahead, nil
				} else if pg.reqs, pg.practices, err = st.ReadyRequestsWithPractices(ctx, b.flow, after, BuildPage); err != nil {
					return err
				}
				reqs, practices := pg.reqs, pg.practices
				if len(reqs) == 0 {
					break
				}
				more = true
				pc := b.startPrecompute(f, enc2, reqs, practices)
				var aheadErr error
				if b.readAhead(batch, rows, size, len(reqs), maxRows, maxBytes) {
					// SQLite reads the next page on this goroutine while the second one
					// computes this page: nothing this page's requests do touches what
					// it reads, unless one of them is left out (below).
					ahead = new(readyPage)
					ahead.reqs, ahead.practices, aheadErr = st.ReadyRequestsWithPractices(ctx, b.flow, reqs[len(reqs)-1].ID, BuildPage)
				}
				pre := pc.wait(enc)
				if aheadErr != nil {
					return aheadErr
				}
				for i, r := range reqs {
					pr, err := b.prepare(ctx, st, f, enc, r, practices[i], now, pre[i])
					if err != nil {
						return err
					}
					if pr == nil {
						after = r.ID // skipped (waits, or refused): look past it
						// A REQ request left out was cancelled, refused (its practice
						// back to DRAFT) or held: what it wrote may be a practice the
						// page read ahead holds too. Read that page again.
						ahead = nil
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
	if b.flow == FlowREQ {
		if err := b.flagClosing(ctx, now); err != nil {
			return built, err
		}
	}
	return built, nil
}

// prepare loads a request's practice and encodes its rows, once: the bytes size the
// batch, go into the file as they are, and a request the flow does not accept is
// refused here. nil means "not in this file".
func (b *requestBuilder) prepare(ctx context.Context, st *archive.PracticeStmts, f *flows.Flow, enc *flows.BodyEncoder, r archive.Request, p archive.Practice, now time.Time, pre *form3) (*pendingRequest, error) {
	d := b.u.h
	cfg := d.Config()
	pr := &pendingRequest{req: r, p: p}
	pr.p.Data = nil
	if pre == nil && b.isForm3(f, r, p) { // Build computes these with the page (startPrecompute)
		pre = form3Of(cfg, f, enc, r, p)
	}
	data, err := pr.caseOf(b.flow, r, p, pre)
	if err != nil {
		// One practice whose stored case does not decode (edited outside cmord, or its
		// dictionary edited or deleted: form 2) must not stop the build of every other
		// request: this one stays ready, unsent, and a person is told.
		return nil, b.holdUnreadable(ctx, st, pr, err)
	}
	encoded := false // REQ from records; the other flows (and REQ form 1) from rows
	switch b.flow {
	case FlowREQ:
		var stop bool
		if stop, encoded, err = b.prepareREQ(ctx, st, f, enc, pr, data, now, pre); stop {
			return nil, err
		}
	default:
		if p.CPGestore == "" {
			return nil, nil // the SII has not admitted the practice yet: the request waits
		}
		row := map[string]string{"CP_GESTORE": p.CPGestore, "PIVA_UTENTE": cfg.Company.PIVA, "PIVA_GESTORE": cfg.Company.PIVAGestore, "CP_UTENTE": r.CPUtente}
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

// caseOf is the case a request is built from, and the input files it came from:
// computed with the page (forms 3 and 4: the rows' hash), none when the payload
// carries the rows (forms 1 and 2), else decoded from the practice.
func (pr *pendingRequest) caseOf(flow string, r archive.Request, p archive.Practice, pre *form3) (*flows.UscenteData, error) {
	data := new(flows.UscenteData)
	switch {
	case pre != nil:
		if pre.decodeErr != nil {
			return nil, pre.decodeErr
		}
		*data, pr.inputs = pre.data, pre.inputs
		if data.Refund != nil {
			pr.data = data
		}
	case r.Payload != nil && r.Payload.Hash == "" && flow == FlowREQ:
		pr.inputs = r.Payload.Inputs // the payload carries the rows (forms 1, 2): no case to decode
	default:
		var err error
		if *data, err = p.UscenteData(); err != nil {
			return nil, fmt.Errorf("practice %d data: %w", p.ID, err)
		}
		for _, in := range data.Inputs {
			pr.inputs = append(pr.inputs, in.FileID)
		}
		if data.Refund != nil {
			pr.data = data
		}
	}
	return data, nil
}

// prepareREQ computes a REQ request's rows into pr (encoded reports that pr.body
// holds them). stop: the request is not built this time (cancelled, refused, held,
// or err), and prepare returns err as it is.
func (b *requestBuilder) prepareREQ(ctx context.Context, st *archive.PracticeStmts, f *flows.Flow, enc *flows.BodyEncoder, pr *pendingRequest, data *flows.UscenteData, now time.Time, pre *form3) (stop, encoded bool, err error) {
	r, p := pr.req, pr.p
	if p.State != flows.StateReady {
		return true, false, st.SetRequest(ctx, r.ID, "cancelled", r.Data)
	}
	if today := flows.Today(now); !p.WindowClose.IsZero() && today.After(p.WindowClose) {
		return true, false, b.refuse(ctx, st, pr, "E3", fmt.Sprintf("request window closed on %s before the request could be sent", p.WindowClose))
	}
	h := reqHeader(b.u.h.Config(), r.CPUtente)
	var recs []flows.Record
	switch pl := r.Payload; {
	case pl != nil && pl.Values != nil && pl.Layout == f.Layout().Signature():
		recs = make([]flows.Record, 0, len(pl.Values))
		for _, vals := range pl.Values {
			rec, ok := flows.RecordOf(f, vals)
			if !ok {
				return true, false, fmt.Errorf("request %d: a payload row of %d values for %d fields", r.ID, len(vals), len(f.Fields))
			}
			recs = append(recs, rec)
		}
		err = flows.FillReqHeader(recs, h)
	case pre != nil:
		// Form 3: only the hash of the rows decided is stored; the rows computed again
		// from the case (form3Of) are sent only if they are the ones decided.
		if pre.changed {
			return true, false, b.holdChanged(ctx, st, pr)
		}
		if pre.err != nil {
			err = pre.err
			break
		}
		pr.body, pr.nrows, encoded = pre.body, len(pre.recs), true
		if len(pre.recs) > 0 {
			pr.firstR = pre.recs[0]
		}
	case pl != nil && pl.Values == nil && pl.Hash == "":
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
		if pl != nil && pl.Hash == "" {
			full, err := st.ByID(ctx, p.ID)
			if err != nil {
				return true, false, err
			}
			if *data, err = flows.ParseUscenteData(full.Data); err != nil {
				return true, false, b.holdUnreadable(ctx, st, pr, fmt.Errorf("practice %d data: %w", p.ID, err))
			}
		}
		recs, err = flows.ReqRecords(f, h, data.Case, data.Audit)
	}
	if err == nil && pr.rows == nil && !encoded {
		pr.body, err = enc.EncodeRecords(recs)
		pr.nrows, encoded = len(recs), true
		if len(recs) > 0 {
			pr.firstR = recs[0]
		}
	}
	return false, encoded, err
}

// errLineChanged: the rows computed now from a case do not hash to the decided ones.
var errLineChanged = errors.New("the request's rows changed since it was decided")

// form3Records computes a form-3 request's rows again from its case, checks them
// against the decided hash (errLineChanged) and fills in the header.
func form3Records(f *flows.Flow, data flows.UscenteData, hash string, h flows.ReqHeader) ([]flows.Record, error) {
	recs, err := flows.ReqRecords(f, flows.ReqHeader{}, data.Case, data.Audit)
	if err != nil {
		return nil, err
	}
	vals := make([][]string, len(recs))
	for i, rec := range recs {
		vals[i] = rec.Values
	}
	if archive.PayloadHash(vals) != hash {
		return nil, errLineChanged
	}
	return recs, flows.FillReqHeader(recs, h)
}

// form3 is what prepare does for a REQ request of form 3 or 4 (the rows' hash, stored
// as text or as bytes: the same archive.RequestPayload) that touches no state: its
// case decoded, its rows computed again, checked against the decided hash and
// encoded. startPrecompute computes a page's on two goroutines; prepare then decides,
// in order and on the transaction's goroutine, what each request becomes.
type form3 struct {
	data      flows.UscenteData
	inputs    []int64
	decodeErr error // the case cannot be decoded
	recs      []flows.Record
	body      []byte
	changed   bool  // errLineChanged
	err       error // from computing or encoding the rows (a refusal when a *RecordError)
}

// isForm3 reports whether r is a ready REQ request of form 3 or 4 (only the hash of its
// rows stored, under today's layout) whose practice is still READY: what form3Of
// computes.
func (b *requestBuilder) isForm3(f *flows.Flow, r archive.Request, p archive.Practice) bool {
	pl := r.Payload
	return b.flow == FlowREQ && pl != nil && pl.Values == nil && pl.Hash != "" && pl.Layout == f.Layout().Signature() && p.State == flows.StateReady
}

// form3Of computes form3 for request r and its practice p, encoding with enc.
func form3Of(cfg *config.Config, f *flows.Flow, enc *flows.BodyEncoder, r archive.Request, p archive.Practice) *form3 {
	c := &form3{}
	var err error
	if c.data, err = p.UscenteData(); err != nil {
		c.decodeErr = fmt.Errorf("practice %d data: %w", p.ID, err)
		return c
	}
	for _, in := range c.data.Inputs {
		c.inputs = append(c.inputs, in.FileID)
	}
	c.recs, err = form3Records(f, c.data, r.Payload.Hash, reqHeader(cfg, r.CPUtente))
	switch {
	case errors.Is(err, errLineChanged):
		c.changed = true
	case err != nil:
		c.err = err
	default:
		c.body, c.err = enc.EncodeRecords(c.recs)
	}
	return c
}

// reqHeader is the header of a REQ request's rows, from the configuration: the
// company, or for a CC the UDD with the company as the CC leaving.
func reqHeader(cfg *config.Config, cpUtente string) flows.ReqHeader {
	h := flows.ReqHeader{PIVAUtente: cfg.Company.PIVA, PIVAGestore: cfg.Company.PIVAGestore, CPUtente: cpUtente}
	if cfg.Company.ActingAs == "CC" {
		h.PIVAUtente, h.PIVACCUscita = cfg.Company.UDDPIVA, cfg.Company.PIVA
	}
	return h
}

// readyPage is one read of ready requests with their practices.
type readyPage struct {
	reqs      []archive.Request
	practices []archive.Practice
}

// readAhead reports whether a build reads its next page while it computes the page of
// n requests it has just read: for REQ (the flow whose pages are computed on a
// goroutine of their own), unless the file is expected to be full within this page
// (the requests so far, as many rows and bytes each on average, would fill it), where
// the page read ahead would be thrown away.
func (b *requestBuilder) readAhead(batch []*pendingRequest, rows, size, n, maxRows int, maxBytes int64) bool {
	if !BuildReadAhead || b.flow != FlowREQ {
		return false
	}
	if len(batch) == 0 {
		return true
	}
	k := len(batch)
	return rows+rows*n/k < maxRows && int64(size)+int64(size)*int64(n)/int64(k) < maxBytes
}

// pageCompute is a page's form3 being computed: the case decoding, the rows, their
// hash and their encoding are the build's Go work, and they depend on the request and
// its practice as read, nothing else. A goroutine of its own starts at once (with its
// own encoder); the build's goroutine joins in wait, once it has read ahead. Each
// takes the next computeChunk requests no one has taken.
type pageCompute struct {
	b         *requestBuilder
	f         *flows.Flow
	cfg       *config.Config
	reqs      []archive.Request
	practices []archive.Practice
	out       []*form3
	next      atomic.Int64 // the first request not taken yet
	done      chan struct{}
	mu        sync.Mutex
	panicked  *goPanic // the first panic of either goroutine, raised by wait
}

// computeChunk is how many requests a goroutine of pageCompute takes at a time.
const computeChunk = 16

// startPrecompute starts computing form3 for each REQ request of form 3 or 4 in the page
// (nil for the others) on a goroutine of its own, encoding with enc2; wait joins in
// and returns them.
func (b *requestBuilder) startPrecompute(f *flows.Flow, enc2 *flows.BodyEncoder, reqs []archive.Request, practices []archive.Practice) *pageCompute {
	pc := &pageCompute{b: b, f: f, cfg: b.u.h.Config(), reqs: reqs, practices: practices, out: make([]*form3, len(reqs)), done: make(chan struct{})}
	if b.flow != FlowREQ {
		close(pc.done)
		return pc
	}
	go func() {
		defer close(pc.done)
		pc.run(enc2)
	}()
	return pc
}

// run computes chunks of the page with enc until none is left, or a panic (kept
// for wait; the other goroutine then takes no new chunk).
func (pc *pageCompute) run(enc *flows.BodyEncoder) {
	n := int64(len(pc.reqs))
	defer func() {
		if v := recover(); v != nil {
			pc.next.Store(n)
			pc.mu.Lock()
			if pc.panicked == nil {
				pc.panicked = &goPanic{v}
			}
			pc.mu.Unlock()
		}
	}()
	if pc.b.flow != FlowREQ {
		return
	}
	for {
		from := pc.next.Add(computeChunk) - computeChunk
		if from >= n {
			return
		}
		for i := from; i < min(from+computeChunk, n); i++ {
			if pc.b.isForm3(pc.f, pc.reqs[i], pc.practices[i]) { // the others (and a cancelled one): prepare does them itself
				pc.out[i] = form3Of(pc.cfg, pc.f, enc, pc.reqs[i], pc.practices[i])
			}
		}
	}
}

// wait computes what is left of the page with enc, waits for the other goroutine
// and returns the page's form3. A panic on either goroutine is raised here, where the
// scheduler's recover fails the run, once both have stopped.
func (pc *pageCompute) wait(enc *flows.BodyEncoder) []*form3 {
	pc.run(enc)
	<-pc.done
	if pc.panicked != nil {
		pc.panicked.raise()
	}
	return pc.out
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
	h := archive.HistoryEntry{Flow: b.flow, CauseCode: rule, Note: "not sent: " + msg, At: b.u.h.Now()}
	if b.flow == FlowREQ && b.u.h.Catalog().CanTransition(pr.p.State, flows.StateDraft) {
		if err := st.Transition(ctx, &pr.p, flows.StateDraft, "", h); err != nil {
			return err
		}
	} else {
		h.PracticeID, h.From, h.To = pr.p.ID, pr.p.State, pr.p.State
		if err := st.History(ctx, h); err != nil {
			return err
		}
	}
	if b.flow == FlowREQ { // held by an earlier build: build_refused says it all now
		if _, err := b.u.h.Archive().ResolveByFingerprint(ctx, st.Tx(), fmt.Sprintf("build_line_changed|%s|%d", b.flow, pr.req.ID), "request not sent: "+rule); err != nil {
			return err
		}
	}
	if _, err := b.u.h.Archive().ResolveByFingerprint(ctx, st.Tx(), fmt.Sprintf("build_case_unreadable|%s|%d", b.flow, pr.req.ID), "request not sent: "+rule); err != nil {
		return err
	}
	_, _, err := b.u.h.Archive().RaiseException(ctx, st.Tx(), archive.Exception{Fingerprint: fmt.Sprintf("build_refused|%s|%d", b.flow, pr.req.ID),
		Kind: "build_refused", Severity: archive.SevHigh, Owner: "compliance", PracticeID: pr.p.ID, Rule: rule, Subject: pr.req.CPUtente,
		Message: fmt.Sprintf("%s %s for practice %s was not sent: %s", b.flow, pr.req.CPUtente, pr.p.CPUtente, msg),
		Action:  "Correct the data in billing and drop the case again; a new request gets a NEW CP_UTENTE.", LastSeen: b.u.h.Now()})
	return err
}

// holdChanged keeps a ready request out of the build because the rows computed now
// from its practice's case are not the ones decided when it was made ready (their
// hash differs: the configuration or the code that computes them changed since). It
// stays ready, unsent, and a person is told; it goes out with a later build once the
// configuration is put back, or once a new extract of the case decides it again.
func (b *requestBuilder) holdChanged(ctx context.Context, st *archive.PracticeStmts, pr *pendingRequest) error {
	_, _, err := b.u.h.Archive().RaiseException(ctx, st.Tx(), archive.Exception{Fingerprint: fmt.Sprintf("build_line_changed|%s|%d", b.flow, pr.req.ID),
		Kind: "build_line_changed", Severity: archive.SevHigh, Owner: "compliance", PracticeID: pr.p.ID, Rule: "LINE_CHANGED", Subject: pr.req.CPUtente,
		Message: fmt.Sprintf("%s %s for practice %s (%s %s) was not sent: the line computed now from its case differs from the one stored when the case was last decided (its case changed outside cmord, or cmord computes the line differently since an update)",
			b.flow, pr.req.CPUtente, pr.p.CPUtente, pr.p.Point, pr.p.CustomerID),
		Action:   "Run `cmord archive verify` (a case changed outside cmord shows there); otherwise drop the case again in an extract so it is decided anew; the request stays ready until then.",
		LastSeen: b.u.h.Now()})
	return err
}

// holdUnreadable keeps a ready request out of the build because its practice's stored
// case cannot be decoded (cause): it stays ready, unsent, and a person is told; it goes
// out with a later build once the case reads again (restored from a backup).
func (b *requestBuilder) holdUnreadable(ctx context.Context, st *archive.PracticeStmts, pr *pendingRequest, cause error) error {
	_, _, err := b.u.h.Archive().RaiseException(ctx, st.Tx(), archive.Exception{Fingerprint: fmt.Sprintf("build_case_unreadable|%s|%d", b.flow, pr.req.ID),
		Kind: "build_case_unreadable", Severity: archive.SevHigh, Owner: "compliance", PracticeID: pr.p.ID, Rule: "CASE_UNREADABLE", Subject: pr.req.CPUtente,
		Message: fmt.Sprintf("%s %s for practice %s (%s %s) was not sent: its stored case cannot be read (%v)",
			b.flow, pr.req.CPUtente, pr.p.CPUtente, pr.p.Point, pr.p.CustomerID, cause),
		Action:   "Run `cmord archive verify` (it names what was changed outside cmord) and restore the archive from a backup; the request stays ready and goes out with the next build once its case reads again.",
		LastSeen: b.u.h.Now()})
	return err
}

// writeFile encodes a batch, archives it with provenance, marks its requests sent,
// moves the practices and queues the delivery, all in tx.
func (b *requestBuilder) writeFile(ctx context.Context, tx *sql.Tx, st *archive.PracticeStmts, f *flows.Flow, format string, enc *flows.BodyEncoder, batch []*pendingRequest, now time.Time, today flows.Date) error {
	d := b.u.h
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
	// The file's blob (compressed, hashed, written: Go work, no SQLite) is put on a
	// goroutine of its own while this one, which holds the transaction, moves the
	// practices (below); the file is indexed once both are done.
	put := putBlob(d.Archive().Blobs, content)
	defer func() { <-put.done }() // a return before put.wait leaves nothing running
	name, err := family.FlowFileName(ctx, d.Archive(), tx, f, format, first, now, today)
	if err != nil {
		return err
	}
	// The bookkeeping of the batch is set-based: one statement for all its requests,
	// one for the practices it moves, multi-row inserts for history (whose rows stand
	// for the built links, archive.LinkBuilt), in the order the requests are in the
	// file. A REQ under its practice's own code writes no history row: the row is
	// derived from its request when read (archive.BuiltRequest).
	t := flows.TransitionOf(f)
	reqIDs := make([]int64, 0, len(batch))
	var derived []archive.BuiltRequest
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
	if b.flow == FlowREQ && d.Catalog().State(flows.StateBuilt) != nil {
		built = flows.StateBuilt
	}
	deferFrom := map[string]bool{}
	for _, pr := range batch {
		practices = append(practices, &pr.p)
		// The row stands for the built link, and its note is archive.BuildNote, as
		// written before: per practice, no link row and no copy of the file's name.
		// For a request under its practice's own code the note is rendered when read
		// from the row, the code and the file: only the state is stored.
		h := archive.HistoryEntry{PracticeID: pr.p.ID, From: pr.p.State, To: pr.p.State, Flow: b.flow, At: now,
			Link: archive.LinkBuilt} // FileID once the file is indexed
		moves := ""
		if to != "" && to != pr.p.State && (len(t.From) == 0 || slices.Contains(t.From, pr.p.State)) {
			moves = to
			if built != "" && d.Catalog().CanTransition(pr.p.State, built) {
				moved = append(moved, pr.p.ID)
				h.To = built
				pr.p.State, pr.p.StateSince = built, now
			}
			deferFrom[pr.p.State] = true
		}
		switch {
		case pr.req.CPUtente != "" && pr.req.CPUtente == pr.p.CPUtente && b.flow == FlowREQ:
			// Its practice is rewritten below (moved, or its request date set), so
			// its seal in the state chain covers the request's derived row.
			derived = append(derived, archive.BuiltRequest{ID: pr.req.ID, From: h.From, To: h.To, Moves: moves})
			continue
		case pr.req.CPUtente != "" && pr.req.CPUtente == pr.p.CPUtente:
			h.Link, h.Note = archive.LinkBuiltRequest, moves
		default:
			h.Note = archive.BuildNote(b.flow, pr.req.CPUtente, archive.FileName, moves)
		}
		reqIDs = append(reqIDs, pr.req.ID)
		hs = append(hs, h)
	}
	moveTo := to
	if built != "" {
		moveTo = built // what the practices move to now
	}
	// The practices' moves need not the file's id: they run while the blob is put.
	// What they write is the same in any order with the statements below (the
	// chain seals the rows by table and id).
	switch {
	case b.flow == FlowREQ && len(moved) == len(practices):
		if err := st.SendAll(ctx, practices, moveTo, now, today); err != nil { // the usual case: each row rewritten once
			return err
		}
	case b.flow == FlowREQ:
		if err := st.SetStateAll(ctx, moved, moveTo, now); err != nil {
			return err
		}
		if err := st.SetRequestDateAll(ctx, practices, today); err != nil {
			return err
		}
	default:
		if err := st.SetStateAll(ctx, moved, moveTo, now); err != nil {
			return err
		}
	}
	hash, size, err := put.wait()
	if err != nil {
		return err
	}
	failpoint.Hit("after_built_blob") // the blob stored, its file not indexed yet
	// Archived at the build's time, the time its requests are marked sent: their
	// sent_at is then stored as the file's (migration 0043), not written out again.
	file, err := d.ArchiveBuilt(ctx, tx, family.Built{Name: name, Kind: b.flow, Content: content, Inputs: inputIDs,
		Meta: map[string]string{"requests": fmt.Sprint(len(batch)), "rows": fmt.Sprint(nrows)}, Hash: hash, Size: size, At: now}, "built")
	if err != nil {
		return err
	}
	for i := range hs {
		hs[i].FileID = file.ID
	}
	froms := make([]string, 0, len(deferFrom))
	for from := range deferFrom {
		froms = append(froms, from)
	}
	sort.Strings(froms)
	for _, from := range froms {
		if err := d.Archive().DeferTransition(ctx, tx, archive.PendingTransition{FileID: file.ID, From: from, To: to, Flow: b.flow,
			Note: fmt.Sprintf("%s published in %s", b.flow, name), At: now}); err != nil {
			return err
		}
	}
	if err := st.MarkSentAll(ctx, reqIDs, file.ID, now); err != nil {
		return err
	}
	if err := st.MarkBuiltAll(ctx, derived, file.ID, now); err != nil {
		return err
	}
	if err := st.HistoryAll(ctx, hs); err != nil {
		return err
	}
	if err := b.settleSent(ctx, tx, st, batch, name, today); err != nil {
		return err
	}
	return d.QueueToSII(ctx, tx, file)
}

// settleSent resolves what the requests written into name settle: a REQ practice's
// window_closing warning, a REFUND_ACK's ack_overdue (its refund marked acknowledged).
func (b *requestBuilder) settleSent(ctx context.Context, tx *sql.Tx, st *archive.PracticeStmts, batch []*pendingRequest, name string, today flows.Date) error {
	d := b.u.h
	ids := make([]int64, len(batch))
	for i, pr := range batch {
		ids[i] = pr.p.ID
	}
	if b.flow == FlowREQ {
		// A request held by an earlier build (build_line_changed) went out: decided
		// again since, or its line is the decided one again.
		if _, err := d.Archive().ResolvePracticesKind(ctx, tx, "build_line_changed", ids, "request sent in "+name); err != nil {
			return err
		}
	}
	// A request held because its case could not be read (build_case_unreadable) went
	// out: its case reads again.
	if _, err := d.Archive().ResolvePracticesKind(ctx, tx, "build_case_unreadable", ids, "request sent in "+name); err != nil {
		return err
	}
	for _, pr := range batch {
		switch b.flow {
		case FlowREQ:
			// Only a practice close to its window's end can have been flagged.
			if !pr.p.WindowClose.IsZero() && today.DaysUntil(pr.p.WindowClose) <= d.Config().CMOR.WindowWarnDays {
				if _, err := d.Archive().ResolveByFingerprint(ctx, tx, fmt.Sprintf("window_closing|%d", pr.p.ID), "request sent in "+name); err != nil {
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
			if _, err := d.Archive().ResolveByFingerprint(ctx, tx, fmt.Sprintf("ack_overdue|%d", pr.p.ID), "REFUND_ACK sent in "+name); err != nil {
				return err
			}
		}
	}
	return nil
}

// blobPut is a built file's content being put in the blob store on a goroutine of
// its own (putBlob).
type blobPut struct {
	done     chan struct{}
	hash     string
	size     int64
	err      error
	panicked *goPanic
}

// putBlob puts content in blobs on a goroutine of its own; wait returns its hash
// and size.
func putBlob(blobs *archive.BlobStore, content []byte) *blobPut {
	p := &blobPut{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer func() {
			if v := recover(); v != nil {
				p.panicked = &goPanic{v}
			}
		}()
		p.hash, p.size, p.err = blobs.Put(bytes.NewReader(content))
	}()
	return p
}

// wait waits for the put; a panic of its goroutine is raised here, where the
// scheduler's recover fails the run.
func (p *blobPut) wait() (string, int64, error) {
	<-p.done
	if p.panicked != nil {
		p.panicked.raise()
	}
	return p.hash, p.size, p.err
}
