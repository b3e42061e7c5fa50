package digest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"html/template"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/flows"
)

// backlog stores n stale practices, BUILT and never sent, whose request window closes
// within two working days of now: the first deadline run (Build runs it) raises an
// urgent window_closing exception for each, the backlog of an archive whose requests
// were never filed.
func backlog(t testing.TB, st *archive.Store, n int, now time.Time) {
	t.Helper()
	ctx := context.Background()
	at := now.AddDate(0, -2, 0)
	write(t, st, func(tx *sql.Tx) error {
		for i := range n {
			p := &archive.Practice{CaseKey: fmt.Sprintf("U|IT001E%08d|RSSMRA85T10A562S|2026-03-01", i), Role: "uscente", Sector: "E",
				CompanyPIVA: "00488410010", CPUtente: fmt.Sprintf("E26%07d", i), Point: fmt.Sprintf("IT001E%08d", i),
				CustomerID: "RSSMRA85T10A562S", CustomerName: "Mario Rossi", SwitchDate: flows.D(2026, time.March, 1),
				State: flows.StateBuilt, WindowOpen: flows.D(2026, time.May, 1), WindowClose: flows.Today(now).AddDays(1 + i%2)}
			if err := st.CreatePractice(ctx, tx, p, archive.HistoryEntry{At: at, Flow: "uscente.morosi"}); err != nil {
				return err
			}
		}
		return nil
	})
}

// csvRows is the number of data rows of a CSV attachment (its lines less the header).
func csvRows(t *testing.T, data []byte) int {
	t.Helper()
	return bytes.Count(data, []byte("\r\n")) - 1
}

// xlsxRows is the number of data rows of the XLSX attachment's first sheet, and the
// names of its sheets.
func xlsxRows(t *testing.T, data []byte) (int, []string) {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := f.GetRows(f.GetSheetName(0))
	if err != nil {
		t.Fatal(err)
	}
	return len(rows) - 1, f.GetSheetList()
}

// TestAttachmentsBounded: over the bound the attachments carry exactly the first N
// rows, the most urgent, and the body (text and HTML, Italian and English) says "N of
// M" and gives the command for the whole list; the CSV stays data only, the XLSX
// gets a sheet saying it is partial. Under the bound nothing changes (the goldens of
// TestRenderGolden are the unbounded digest).
func TestAttachmentsBounded(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lang       string
		maxRows    int
		maxSize    int64
		wantRows   int // -1: whatever fits maxSize, fewer than all
		golden     string
		note, more string
	}{
		{name: "it rows", lang: "it", maxRows: 5, wantRows: 5, golden: "digest_it_bounded",
			note: "Allegati parziali: contengono le prime 5 eccezioni di 18, le più urgenti",
			more: "… e altre 6: negli allegati 3 delle 9 di questa sezione (allegati parziali, vedi Sintesi)."},
		{name: "en rows", lang: "en", maxRows: 5, wantRows: 5, golden: "digest_en_bounded",
			note: "Partial attachments: they hold the first 5 of 18 exceptions, the most urgent",
			more: "… and 6 more: the attachments hold 3 of this section's 9 (partial attachments, see Summary)."},
		{name: "it size", lang: "it", maxSize: 16 << 10, wantRows: -1, note: "Allegati parziali: contengono le prime "},
		{name: "en size", lang: "en", maxSize: 16 << 10, wantRows: -1, note: "Partial attachments: they hold the first "},
		{name: "it under the bound", lang: "it", maxRows: 18, wantRows: 18},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := fixtureDigest(t)
			d.AttachMaxRows, d.AttachMaxSize, d.MaxItems = tc.maxRows, tc.maxSize, 3
			total := d.ListTotal()
			opts := Options{Lang: tc.lang, From: "cmord@example.it", To: []string{"compliance@example.it"}}
			msg, err := d.Message(opts, "digest:test")
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Attachments) != 2 {
				t.Fatalf("%d attachments, want the XLSX and the CSV", len(msg.Attachments))
			}
			xlsx, csvData := msg.Attachments[0].Data, msg.Attachments[1].Data
			n := d.Attached()
			switch {
			case tc.wantRows >= 0 && n != tc.wantRows:
				t.Fatalf("attached %d rows, want %d", n, tc.wantRows)
			case tc.wantRows < 0 && (n >= total || n == 0):
				t.Fatalf("attached %d rows of %d: the size bound should cut the list, not empty it", n, total)
			}
			if tc.maxSize > 0 && int64(len(xlsx)+len(csvData)) > tc.maxSize {
				t.Errorf("attachments of %d bytes, over the bound of %d", len(xlsx)+len(csvData), tc.maxSize)
			}
			if got := csvRows(t, csvData); got != n {
				t.Errorf("the CSV has %d rows, want %d", got, n)
			}
			xr, sheets := xlsxRows(t, xlsx)
			if xr != n {
				t.Errorf("the XLSX has %d rows, want %d", xr, n)
			}
			// The rows attached are the most urgent: no row left out is more severe
			// than one attached, the resolved ones last.
			worst := 0
			for s, sec := range [][]Item{d.New, d.StillOpen} {
				for _, it := range sec[:d.sectionAttached(s)] {
					worst = max(worst, SevRank(it.Severity))
				}
			}
			for s, sec := range [][]Item{d.New, d.StillOpen} {
				for _, it := range sec[d.sectionAttached(s):] {
					if SevRank(it.Severity) < worst && n < total {
						t.Errorf("left out %s exception #%d while a less severe one is attached", it.Severity, it.ID)
					}
				}
			}
			if n < total {
				wantNote := fmt.Sprintf("%d", n) + map[string]string{"it": " eccezioni di ", "en": " of "}[tc.lang] + strconv.Itoa(total)
				for name, body := range map[string]string{"text": msg.Text, "html": msg.HTML} {
					for _, want := range []string{tc.note, wantNote, FullListCommand(tc.lang), tc.more} {
						if name == "html" {
							want = template.HTMLEscapeString(want)
						}
						if !strings.Contains(body, want) {
							t.Errorf("%s body: no %q", name, want)
						}
					}
				}
				if bytes.Contains(csvData, []byte(FullListCommand(tc.lang))) {
					t.Error("the CSV carries the note: it must stay data only")
				}
				if len(sheets) != 2 || sheets[1] != labels[tc.lang]["sheet_note"] {
					t.Errorf("XLSX sheets %q, want the list and %q", sheets, labels[tc.lang]["sheet_note"])
				}
			} else {
				_, text, html, _, err := d.Render(tc.lang, false)
				if err != nil {
					t.Fatal(err)
				}
				if msg.Text != text || msg.HTML != html {
					t.Error("under the bound the body changed")
				}
				if len(sheets) != 1 {
					t.Errorf("XLSX sheets %q, want only the list", sheets)
				}
			}
			if tc.golden != "" {
				golden(t, tc.golden+".txt", []byte("Subject: "+msg.Subject+"\n\n"+msg.Text))
				golden(t, tc.golden+".html", []byte(msg.HTML))
				golden(t, tc.golden+".csv", csvData)
			}
		})
	}
}

// postfixMessageSizeLimit is Postfix's default message_size_limit, the smallest limit
// commonly met.
const postfixMessageSizeLimit = 10240000

// digestMessageSize builds the backlog's digest with opts, and its message as the
// sender does (mail.Build): its size, and the digest.
func digestMessageSize(t *testing.T, st *archive.Store, opts Options, now time.Time) (int, *Digest, mail.Message) {
	t.Helper()
	d, err := Build(context.Background(), st, opts, now)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := d.Message(opts, DedupKey(now))
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := mail.Build(msg)
	if err != nil {
		t.Fatal(err)
	}
	return len(raw), d, msg
}

// TestBacklogDigestStaysDeliverable: the digest of a backlog of 20,000 open exceptions,
// with the default bound, is a message under Postfix's default size limit (the whole
// list, 20,000 rows, made a message of about 18 MB), with personal data too (longer
// rows); its attachments carry the default's rows at most.
func TestBacklogDigestStaysDeliverable(t *testing.T) {
	const n = 20000
	now := fixtureNow
	st := openStore(t, t.TempDir())
	backlog(t, st, n, now)
	for _, personal := range []bool{false, true} {
		opts := Options{Company: "Esempio Energia S.p.A.", From: "cmord@example.it", To: []string{"compliance@example.it"},
			AttachCSV: true, AttachXLSX: true, IncludePersonalData: personal}
		size, d, msg := digestMessageSize(t, st, opts, now)
		if d.ListTotal() != n {
			t.Fatalf("the list has %d rows, want the backlog's %d", d.ListTotal(), n)
		}
		if size > postfixMessageSizeLimit {
			t.Errorf("personal %v: the digest is a message of %d bytes, over Postfix's default limit %d", personal, size, postfixMessageSizeLimit)
		}
		if d.Attached() > config.DefaultDigestAttachmentMaxRows || !d.Bounded() {
			t.Errorf("personal %v: %d rows attached of %d, want at most %d", personal, d.Attached(), n, config.DefaultDigestAttachmentMaxRows)
		}
		if !strings.Contains(msg.Text, fmt.Sprintf("le prime %d eccezioni di %d", d.Attached(), n)) {
			t.Errorf("personal %v: the body does not say how many rows are attached", personal)
		}
		t.Logf("personal %v: %d of %d rows attached; XLSX %d bytes, CSV %d bytes; message %d bytes", personal, d.Attached(), n,
			len(msg.Attachments[0].Data), len(msg.Attachments[1].Data), size)
	}
}

// TestLongRowsStayUnderTheSizeBound: rows as long as an exception can hold (message,
// action and value at their bounds) reach the size bound well before the row bound:
// the attachments stay under attachment_max_size, the message under Postfix's limit.
func TestLongRowsStayUnderTheSizeBound(t *testing.T) {
	const n = 3000
	now := fixtureNow
	st := openStore(t, t.TempDir())
	at := now.Add(-48 * time.Hour)
	long := func(c string, size int) string { return strings.Repeat(c, size) }
	write(t, st, func(tx *sql.Tx) error {
		for i := range n {
			if _, _, err := st.RaiseException(context.Background(), tx, archive.Exception{Kind: "row_refused", Severity: archive.SevNormal,
				Owner: "operator", Fingerprint: fmt.Sprintf("long-%d", i), Subject: long("s", flows.MaxNameLen), Field: long("f", flows.MaxNameLen),
				Rule: long("r", flows.MaxNameLen), Value: long("v", flows.MaxValueLen), Message: long("m", flows.MaxMessageLen),
				Action: long("a", flows.MaxMessageLen), FirstSeen: at, LastSeen: at}); err != nil {
				return err
			}
		}
		return nil
	})
	opts := Options{From: "cmord@example.it", To: []string{"compliance@example.it"}, AttachCSV: true, AttachXLSX: true}
	size, d, msg := digestMessageSize(t, st, opts, now)
	attachments := len(msg.Attachments[0].Data) + len(msg.Attachments[1].Data)
	if !d.Bounded() || d.Attached() >= config.DefaultDigestAttachmentMaxRows {
		t.Errorf("%d rows attached of %d: the size bound should have cut them", d.Attached(), d.ListTotal())
	}
	if attachments > config.DefaultDigestAttachmentMaxSize {
		t.Errorf("attachments of %d bytes, over the default bound %d", attachments, config.DefaultDigestAttachmentMaxSize)
	}
	if size > postfixMessageSizeLimit {
		t.Errorf("the digest is a message of %d bytes, over Postfix's default limit %d", size, postfixMessageSizeLimit)
	}
	t.Logf("%d of %d rows attached; attachments %d bytes; message %d bytes", d.Attached(), d.ListTotal(), attachments, size)
}

// TestBacklogDigestSize measures the digest of a backlog of CMORD_DIGEST_BACKLOG open
// exceptions (docs/digest.md's figures, 100,000): rows attached, attachment and
// message sizes, with the default bound and without one.
func TestBacklogDigestSize(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CMORD_DIGEST_BACKLOG"))
	if n <= 0 {
		t.Skip("set CMORD_DIGEST_BACKLOG=100000 to measure")
	}
	now := fixtureNow
	st := openStore(t, t.TempDir())
	backlog(t, st, n, now)
	for _, b := range []struct {
		name string
		rows int
		size int64
	}{{"default bound", 0, 0}, {"no bound", 1000000, 1 << 30}} {
		opts := Options{Company: "Esempio Energia S.p.A.", From: "cmord@example.it", To: []string{"compliance@example.it"},
			AttachCSV: true, AttachXLSX: true, AttachMaxRows: b.rows, AttachMaxSize: b.size}
		size, d, msg := digestMessageSize(t, st, opts, now)
		t.Logf("%s: %d of %d rows attached; XLSX %d bytes, CSV %d bytes; text %d, HTML %d; message %d bytes", b.name,
			d.Attached(), d.ListTotal(), len(msg.Attachments[0].Data), len(msg.Attachments[1].Data), len(msg.Text), len(msg.HTML), size)
	}
}
