package daemon

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/entrante"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

// The [build] limits split a flow into files: a file takes requests in order while it
// stays within max_rows_per_file rows and max_file_bytes bytes (envelope included); a
// request is never split, and one that alone exceeds a limit goes out in a file of its
// own. These tests check that on what the SII receives, for the SI1.0050 builder and
// the REND builder, and that a request the flow refuses at build time leaves the build
// without stopping the others.

// flowRequest is one request as a published flow file holds it: its consecutive
// records of one CP_UTENTE.
type flowRequest struct {
	code  string
	rows  int
	bytes int
}

// flowFile is one published flow file, parsed.
type flowFile struct {
	name     string
	seq      int
	size     int
	envelope int // the CSV header line
	reqs     []flowRequest
}

func (f flowFile) rows() int {
	n := 0
	for _, r := range f.reqs {
		n += r.rows
	}
	return n
}

var flowSeqRe = regexp.MustCompile(`_([0-9]{4})\.csv$`)

// parseFlowFiles parses the published CSV files of one flow, in daily sequence order.
func parseFlowFiles(t *testing.T, pub map[string]string) []flowFile {
	t.Helper()
	var out []flowFile
	for name, content := range pub {
		m := flowSeqRe.FindStringSubmatch(name)
		if m == nil {
			t.Fatalf("file name %s has no daily sequence number", name)
		}
		seq, _ := strconv.Atoi(m[1])
		lines := strings.SplitAfter(content, "\r\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if len(lines) < 2 {
			t.Fatalf("%s holds no records:\n%s", name, content)
		}
		col := -1
		for i, h := range csvCells(t, lines[0]) {
			if h == "CP_UTENTE" {
				col = i
			}
		}
		if col < 0 {
			t.Fatalf("%s: no CP_UTENTE column in %q", name, lines[0])
		}
		f := flowFile{name: name, seq: seq, size: len(content), envelope: len(lines[0])}
		for _, ln := range lines[1:] {
			code := csvCells(t, ln)[col]
			if n := len(f.reqs); n > 0 && f.reqs[n-1].code == code {
				f.reqs[n-1].rows++
				f.reqs[n-1].bytes += len(ln)
				continue
			}
			f.reqs = append(f.reqs, flowRequest{code: code, rows: 1, bytes: len(ln)})
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func csvCells(t *testing.T, line string) []string {
	t.Helper()
	r := csv.NewReader(strings.NewReader(line))
	r.Comma = ';'
	cells, err := r.Read()
	if err != nil {
		t.Fatalf("CSV line %q: %v", line, err)
	}
	return cells
}

// packRequests is the split the limits call for: requests in order, a new file when
// the next request would take the current one past a limit.
func packRequests(reqs []flowRequest, envelope, maxRows int, maxBytes int64) [][]string {
	var out [][]string
	var cur []string
	rows, size := 0, envelope
	for _, r := range reqs {
		if len(cur) > 0 && (rows+r.rows > maxRows || int64(size+r.bytes) > maxBytes) {
			out = append(out, cur)
			cur, rows, size = nil, 0, envelope
		}
		cur = append(cur, r.code)
		rows, size = rows+r.rows, size+r.bytes
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// checkSplit checks the files of one flow against the limits: daily sequence numbers
// 1..n, every request of want exactly once and in order, every file within the limits
// unless it holds a single request, and the split the limits call for.
func checkSplit(t *testing.T, files []flowFile, want []flowRequest, maxRows int, maxBytes int64, wantFiles int) {
	t.Helper()
	if len(files) != wantFiles {
		t.Errorf("%d files, want %d", len(files), wantFiles)
	}
	var got []string
	seen := map[string]string{}
	for i, f := range files {
		if f.seq != i+1 {
			t.Errorf("file %d is %s: daily sequence numbers are not 1..n", i+1, f.name)
		}
		body := 0
		for _, r := range f.reqs {
			body += r.bytes
			if prev, dup := seen[r.code]; dup {
				t.Errorf("request %s went out twice: in %s and %s", r.code, prev, f.name)
			}
			seen[r.code] = f.name
			got = append(got, r.code)
		}
		if f.envelope+body != f.size {
			t.Errorf("%s: %d bytes, header %d + records %d", f.name, f.size, f.envelope, body)
		}
		if len(f.reqs) > 1 && int64(f.size) > maxBytes {
			t.Errorf("%s: %d bytes with %d requests, over max_file_bytes %d", f.name, f.size, len(f.reqs), maxBytes)
		}
		if len(f.reqs) > 1 && f.rows() > maxRows {
			t.Errorf("%s: %d rows with %d requests, over max_rows_per_file %d", f.name, f.rows(), len(f.reqs), maxRows)
		}
	}
	var wantCodes []string
	for _, r := range want {
		wantCodes = append(wantCodes, r.code)
	}
	if !reflect.DeepEqual(got, wantCodes) {
		t.Errorf("requests in the files, in order:\n got %v\nwant %v", got, wantCodes)
	}
	if len(files) == 0 {
		return
	}
	var split [][]string
	for _, f := range files {
		var codes []string
		for _, r := range f.reqs {
			codes = append(codes, r.code)
		}
		split = append(split, codes)
	}
	if exp := packRequests(want, files[0].envelope, maxRows, maxBytes); !reflect.DeepEqual(split, exp) {
		t.Errorf("split\n got %v\nwant %v", split, exp)
	}
}

// limitCase is a [build] limit to try, derived from the requests of an unlimited run.
type limitCase struct {
	name      string
	limits    func(ref flowFile) (rows int, bytes int64)
	wantFiles func(ref flowFile) int
}

func files1(flowFile) int       { return 1 }
func filesAll(ref flowFile) int { return len(ref.reqs) }

// bodyOf is the bytes of the first n requests of ref.
func bodyOf(ref flowFile, n int) int {
	s := 0
	for _, r := range ref.reqs[:n] {
		s += r.bytes
	}
	return s
}

// limitCases are the same for both builders: 1 file, 2 files, n files, by rows and by
// bytes, and both limits at once.
var limitCases = []limitCase{
	{"defaults: one file", func(flowFile) (int, int64) { return 0, 0 }, files1},
	{"bytes exactly the whole file: one file", func(ref flowFile) (int, int64) { return 0, int64(ref.size) }, files1},
	{"bytes one short of the whole file: two files", func(ref flowFile) (int, int64) { return 0, int64(ref.size - 1) }, func(flowFile) int { return 2 }},
	{"bytes for the first three requests", func(ref flowFile) (int, int64) { return 0, int64(ref.envelope + bodyOf(ref, 3)) },
		func(ref flowFile) int { return (len(ref.reqs) + 2) / 3 }},
	{"bytes below any request: one request a file", func(flowFile) (int, int64) { return 0, 1 }, filesAll},
	{"rows exactly all: one file", func(ref flowFile) (int, int64) { return ref.rows(), 0 }, files1},
	{"rows one short of all: two files", func(ref flowFile) (int, int64) { return ref.rows() - 1, 0 }, func(flowFile) int { return 2 }},
	{"one row a file", func(flowFile) (int, int64) { return 1, 0 }, filesAll},
	{"rows 2 and bytes for the first three requests", func(ref flowFile) (int, int64) { return 2, int64(ref.envelope + bodyOf(ref, 3)) },
		func(ref flowFile) int {
			return len(packRequests(ref.reqs, ref.envelope, 2, int64(ref.envelope+bodyOf(ref, 3))))
		}},
}

// effective returns the limits a builder applies for a case (0 = the default).
func effective(rows int, bytes int64) (int, int64) {
	if rows <= 0 {
		rows = 10000
	}
	if bytes <= 0 {
		bytes = 10 << 20
	}
	return rows, bytes
}

// setBuildLimits switches the daemon to [build] limits rows and bytes (0 = default).
// It goes through apply, below config's 1 KiB floor for max_file_bytes, so that a
// limit can be smaller than one request.
func (w *testWorld) setBuildLimits(rows int, bytes int64) {
	w.t.Helper()
	cfg := *w.d.Config()
	cfg.Build.MaxRowsPerFile, cfg.Build.MaxFileBytes = rows, bytes
	if err := w.d.apply(&cfg); err != nil {
		w.t.Fatal(err)
	}
}

func (w *entWorld) setBuildLimits(rows int, bytes int64) {
	w.t.Helper()
	cfg := *w.d.Config()
	cfg.Build.MaxRowsPerFile, cfg.Build.MaxFileBytes = rows, bytes
	if err := w.d.apply(&cfg); err != nil {
		w.t.Fatal(err)
	}
}

// takeIn archives content as a file of a drop folder and runs the folder's handler on
// it, as the intake does once a file has settled (without the settle wait).
func takeIn(t *testing.T, d *Daemon, folder, name, content string) {
	t.Helper()
	fo := d.folderByName(folder)
	if fo == nil {
		t.Fatalf("no folder %s", folder)
	}
	ctx := context.Background()
	res, err := d.Store.Ingest(ctx, archive.IngestRequest{Source: "folder:" + folder, Name: name, Direction: "in", Kind: fo.Kind, Reader: strings.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.process(ctx, res.File, fo)
	if err != nil || out.Rejected {
		t.Fatalf("%s: %v %s", name, err, out.Reason)
	}
}

// buildAndDeliver runs the build job and delivers what it built to the SII (as
// runOnce, without taking in folders or fetching answers).
func buildAndDeliver(t *testing.T, d *Daemon, testClock func() time.Time) {
	t.Helper()
	if _, err := d.BuildAll(context.Background()); err != nil {
		t.Fatalf("BuildAll: %v", err)
	}
	deliverOnWallClock(t, d, testClock)
}

// limitsExtract is e2eExtract (case A with two invoices, B, C waiting for its window,
// two refused rows) and seven more one-invoice cases: nine requests, ten rows.
func limitsExtract() string { return e2eExtract() + extraCases(7) }

// buildREQ drops limitsExtract, takes it in, sets the limits and builds and delivers.
// It returns the published SI1.0050 files and the requests that were ready to build.
func buildREQ(t *testing.T, rows int, bytes int64) (*testWorld, []flowFile, []archive.Request) {
	t.Helper()
	w := newTestWorld(t, e2eNow, "")
	w.setBuildLimits(rows, bytes)
	takeIn(t, w.d, "morosi", "morosi_20251015.csv", limitsExtract())
	ctx := context.Background()
	ready, err := w.d.Store.Requests(ctx, nil, 0, uscente.FlowREQ, "ready", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ready) != 9 {
		t.Fatalf("%d ready SI1.0050 requests after the extract, want 9", len(ready))
	}
	buildAndDeliver(t, w.d, func() time.Time { return w.now })
	pub := map[string]string{}
	for name, content := range w.published() {
		if strings.Contains(name, "_SI10050_") {
			pub[name] = content
		}
	}
	return w, parseFlowFiles(t, pub), ready
}

func TestBuildLimitsREQ(t *testing.T) {
	_, refFiles, _ := buildREQ(t, 0, 0)
	if len(refFiles) != 1 || len(refFiles[0].reqs) != 9 || refFiles[0].rows() != 10 {
		t.Fatalf("reference build: %d files, want one of 9 requests and 10 rows", len(refFiles))
	}
	ref := refFiles[0]
	for _, tc := range limitCases {
		t.Run(tc.name, func(t *testing.T) {
			rows, bytes := tc.limits(ref)
			w, files, ready := buildREQ(t, rows, bytes)
			rows, bytes = effective(rows, bytes)
			checkSplit(t, files, ref.reqs, rows, bytes, tc.wantFiles(ref))
			ctx := context.Background()
			fileOf := map[string]string{}
			for _, f := range files {
				for _, r := range f.reqs {
					fileOf[r.code] = f.name
				}
			}
			var readyCodes []string
			for _, r := range ready {
				readyCodes = append(readyCodes, r.CPUtente)
				got, err := w.d.Store.RequestByCPUtente(ctx, nil, r.CPUtente)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != "sent" || got.FileID == 0 {
					t.Errorf("request %s: %s in file #%d, want sent", r.CPUtente, got.State, got.FileID)
					continue
				}
				if f, err := w.d.Store.GetFile(ctx, got.FileID); err != nil || f.Name != fileOf[r.CPUtente] {
					t.Errorf("request %s is recorded in %q (%v), the SII got it in %q", r.CPUtente, f.Name, err, fileOf[r.CPUtente])
				}
				if p := w.practice(r.CPUtente); p.State != flows.StateSent {
					t.Errorf("practice %s: %s, want SENT", r.CPUtente, p.State)
				}
			}
			var refCodes []string
			for _, r := range ref.reqs {
				refCodes = append(refCodes, r.code)
			}
			if !reflect.DeepEqual(readyCodes, refCodes) {
				t.Errorf("ready requests %v, the reference file holds %v", readyCodes, refCodes)
			}
			if c := w.practice("E250000003"); c.State != flows.StateWaitingWindow {
				t.Errorf("C, whose window is not open, is %s", c.State)
			}
		})
	}
}

// rendPractices is how many indemnities the REND world is notified, one CMOR invoice
// each in January 2025.
const rendPractices = 7

func rendCPG(i int) string { return fmt.Sprintf("SII2025A00001%02d", i) }

// buildREND notifies rendPractices indemnities, bills them in January, sets the limits
// and builds January's REND on 1 February. It returns the published REND files and the
// report lines that were pending before the build.
func buildREND(t *testing.T, rows int, bytes int64) (*entWorld, []flowFile, []archive.ReportLine) {
	t.Helper()
	w := newEntWorld(t, entStart, `["entrante"]`, "")
	var notices, bills []map[string]string
	for i := 0; i < rendPractices; i++ {
		pod := fmt.Sprintf("IT001E000001%02d", i)
		notices = append(notices, map[string]string{"CP_GESTORE": rendCPG(i), "SETTORE": "E", "COD_POD": pod,
			"CF_CLIENTE": testCF(fmt.Sprintf("RSSMRA85T10A%03d", 200+i)), "IMPORTO_CMOR": "45.00",
			"FLAG_CMOR_PRECEDENTE_NON_RISCOSSO": "N", "DATA_NOTIFICA": "08/01/2025", "TERMINE_SOSPENSIONE": "31/01/2025"})
		bills = append(bills, map[string]string{"CP_GESTORE": rendCPG(i), "COD_POD": pod, "NUM_FATTURA_CMOR": fmt.Sprintf("FC2025-%03d", i),
			"DATA_FATTURA": "15/01/2025", "IMPORTO_FATTURATO": "45.00", "DATA_SCADENZA": "14/02/2025", "STATO_INCASSO": "N"})
	}
	ctx := context.Background()
	w.sii("NOTIF_ENTR", notices...)
	if err := w.d.PollSII(ctx); err != nil {
		t.Fatal(err)
	}
	lines := []string{strings.Join(fatturatoHeader, ";")}
	for _, b := range bills {
		cells := make([]string, len(fatturatoHeader))
		for i, h := range fatturatoHeader {
			cells[i] = b[h]
		}
		lines = append(lines, strings.Join(cells, ";"))
	}
	takeIn(t, w.d, "fatturato", "fatturato_202501.csv", strings.Join(lines, "\r\n")+"\r\n")
	buildAndDeliver(t, w.d, func() time.Time { return w.now })
	if got := w.published(ourPIVA + "_RE10050_"); len(got) != 0 {
		t.Fatalf("January reported before it ended: %v", keys(got))
	}
	pending, err := w.d.Store.PendingReportLines(ctx, nil, "2025-01")
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != rendPractices {
		t.Fatalf("%d report lines pending for January, want %d", len(pending), rendPractices)
	}
	w.setBuildLimits(rows, bytes)
	w.now = time.Date(2025, 2, 1, 8, 0, 0, 0, flows.Rome)
	buildAndDeliver(t, w.d, func() time.Time { return w.now })
	return w, parseFlowFiles(t, w.published(ourPIVA+"_RE10050_")), pending
}

func TestBuildLimitsRend(t *testing.T) {
	_, refFiles, _ := buildREND(t, 0, 0)
	if len(refFiles) != 1 || len(refFiles[0].reqs) != rendPractices {
		t.Fatalf("reference build: %d files, want one of %d rows", len(refFiles), rendPractices)
	}
	ref := refFiles[0]
	for _, tc := range limitCases {
		t.Run(tc.name, func(t *testing.T) {
			rows, bytes := tc.limits(ref)
			w, files, pending := buildREND(t, rows, bytes)
			rows, bytes = effective(rows, bytes)
			// REND draws its CP_UTENTE codes as it builds: the same codes in the same
			// order as the unlimited run, so a split skips no code.
			checkSplit(t, files, ref.reqs, rows, bytes, tc.wantFiles(ref))
			ctx := context.Background()
			if left, err := w.d.Store.PendingReportLines(ctx, nil, "2025-01"); err != nil || len(left) != 0 {
				t.Errorf("report lines still pending after the build: %d (%v)", len(left), err)
			}
			fileOf := map[string]string{}
			for _, f := range files {
				for _, r := range f.reqs {
					fileOf[r.code] = f.name
				}
			}
			for _, l := range pending {
				rs, err := w.d.Store.Requests(ctx, nil, l.PracticeID, entrante.FlowREND, "", 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(rs) != 1 {
					t.Errorf("line %d (practice #%d): %d REND requests, want 1", l.Line, l.PracticeID, len(rs))
					continue
				}
				r := rs[0]
				f, err := w.d.Store.GetFile(ctx, r.FileID)
				if r.State != "sent" || err != nil || f.Name != fileOf[r.CPUtente] {
					t.Errorf("REND %s: %s in %q (%v), the SII got it in %q", r.CPUtente, r.State, f.Name, err, fileOf[r.CPUtente])
				}
				p, err := w.d.Store.PracticeByID(ctx, nil, l.PracticeID)
				if err != nil {
					t.Fatal(err)
				}
				if h := w.history(p); !strings.Contains(h, "reported for 2025-01 in "+fileOf[r.CPUtente]) {
					t.Errorf("practice %s history does not name its REND file %s:\n%s", p.CPGestore, fileOf[r.CPUtente], h)
				}
			}
		})
	}
}

// strictREQCatalog writes a site catalog (mode extend) whose SI1.0050 takes a
// DENOMINAZIONE of at most 10 characters instead of 255. With readyToDraft, its state
// READY may also go back to DRAFT, as docs/uscente.md draws it for a request refused
// at build time.
func strictREQCatalog(t *testing.T) string {
	t.Helper()
	def := flows.DefaultCatalog()
	req := *def.Flow(uscente.FlowREQ)
	req.Fields = append([]flows.Field(nil), req.Fields...)
	found := false
	for i := range req.Fields {
		if req.Fields[i].Name == "DENOMINAZIONE" {
			req.Fields[i].Length, found = 10, true
		}
	}
	if !found {
		t.Fatal("the default SI1.0050 has no DENOMINAZIONE field")
	}
	site := &flows.Catalog{Version: "strict-denominazione", Flows: []*flows.Flow{&req}}
	var buf bytes.Buffer
	if err := site.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "catalog.toml")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A READY request whose row the flow refuses when its file is built (the site catalog
// now allows a shorter DENOMINAZIONE than the practice carries) leaves the build: the
// request becomes invalid and goes in no file, the practice goes back to DRAFT with a
// history entry, a build_refused exception (high) names the CP_UTENTE and the rule,
// and the other requests of the same build still go out, split as the limits say.
func TestBuildRefusedREQ(t *testing.T) {
	sw := flows.D(2025, 3, 1)
	long := morosiRow("IT001E00000042", testCF("VRDGPP70A01H501"), "Giuseppe Verdi", sw, "F2025-0100", "95.50", nil)
	tests := []struct {
		name          string
		before, after int // good cases before and after the refused one
		maxRows       int
		wantFiles     int
	}{
		{"refused first, one file", 0, 3, 0, 1},
		{"refused in the middle, one file", 2, 2, 0, 1},
		{"refused last, one file", 3, 0, 0, 1},
		{"refused in the middle, one row a file", 2, 2, 1, 4},
		{"refused in the middle, two rows a file", 1, 2, 2, 2},
		{"refused between two", 1, 1, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, fmt.Sprintf("[catalog]\npath = %q\nmode = \"extend\"\n", strictREQCatalog(t)))
			if tt.maxRows > 0 {
				w.setBuildLimits(tt.maxRows, 0)
			}
			good := strings.Split(strings.TrimSuffix(extraCases(tt.before+tt.after), "\r\n"), "\r\n")
			lines := append([]string{strings.Join(morosiHeader, ";")}, good[:tt.before]...)
			lines = append(append(lines, long), good[tt.before:]...)
			takeIn(t, w.d, "morosi", "morosi_20251015.csv", strings.Join(lines, "\r\n")+"\r\n")
			ctx := context.Background()
			bad := fmt.Sprintf("E25%07d", tt.before+1)
			if p := w.practice(bad); p.State != flows.StateReady || !strings.Contains(string(p.Data), "Giuseppe Verdi") {
				t.Fatalf("practice %s before the build: %s, want READY for Giuseppe Verdi", bad, p.State)
			}
			if r, err := w.d.Store.RequestByCPUtente(ctx, nil, bad); err != nil || r.State != "ready" {
				t.Fatalf("request %s before the build: %+v (%v)", bad, r, err)
			}
			buildAndDeliver(t, w.d, func() time.Time { return w.now })

			if r, err := w.d.Store.RequestByCPUtente(ctx, nil, bad); err != nil || r.State != "invalid" || r.FileID != 0 {
				t.Errorf("refused request %s: state %s file #%d (%v), want invalid and in no file", bad, r.State, r.FileID, err)
			}
			p := w.practice(bad)
			es := w.exceptions("build_refused")
			if len(es) != 1 {
				t.Fatalf("build_refused exceptions: %+v, want one", es)
			}
			if e := es[0]; e.Severity != archive.SevHigh || e.Subject != bad || e.PracticeID != p.ID || e.Rule != "BUILD" ||
				!strings.Contains(e.Message, bad) || !strings.Contains(e.Message, "DENOMINAZIONE") || !strings.Contains(e.Message, flows.RuleLength) {
				t.Errorf("build_refused exception %+v: want severity high, subject %s, rule BUILD, a message naming %s, DENOMINAZIONE and %s",
					e, bad, bad, flows.RuleLength)
			}

			pub := map[string]string{}
			for name, content := range w.published() {
				if strings.Contains(name, "_SI10050_") {
					if strings.Contains(content, bad) {
						t.Errorf("the refused request %s was published in %s", bad, name)
					}
					pub[name] = content
				}
			}
			files := parseFlowFiles(t, pub)
			size := map[string]int{}
			for _, f := range files {
				for _, r := range f.reqs {
					size[r.code] = r.bytes
				}
			}
			var want []flowRequest
			for i := 1; i <= tt.before+tt.after+1; i++ {
				if code := fmt.Sprintf("E25%07d", i); code != bad {
					want = append(want, flowRequest{code: code, rows: 1, bytes: size[code]})
				}
			}
			rows, bytes := effective(tt.maxRows, 0)
			checkSplit(t, files, want, rows, bytes, tt.wantFiles)
			for _, r := range want {
				if p := w.practice(r.code); p.State != flows.StateSent {
					t.Errorf("practice %s of the same build: %s, want SENT", r.code, p.State)
				}
			}

			hist, err := w.d.Store.PracticeHistory(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			last := hist[len(hist)-1]
			if last.Flow != uscente.FlowREQ || last.CauseCode != "BUILD" || !strings.Contains(last.Note, "DENOMINAZIONE") || !strings.Contains(last.Note, flows.RuleLength) {
				t.Errorf("refused practice's last history entry %+v: want REQ, cause BUILD, naming DENOMINAZIONE and %s", last, flows.RuleLength)
			}
			if p.State != flows.StateDraft || last.From != flows.StateReady || last.To != flows.StateDraft {
				t.Errorf("refused practice %s: %s, last history %s->%s; want back to DRAFT (READY->DRAFT)", bad, p.State, last.From, last.To)
			}
		})
	}
}
