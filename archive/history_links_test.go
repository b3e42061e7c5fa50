package archive

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// linksWorld is one archive holding the same story, its history and links written in
// one form: "stored" as every version before migration 0034 wrote them (a
// practice_files row per link, the file's name in each note), "folded" as the bulk
// path and the build write them now (the creation and build rows stand for the input
// and built links, their notes name the file as FileName), "derived" as the build
// writes since migration 0037 (folded, but the first file's REQ rows not written:
// derived from their requests, BuiltRequest).
type linksWorld struct {
	s                      *Store
	extract, built, built2 File
	practices, requests    []int64
}

var linksT0 = time.Date(2025, 10, 15, 8, 0, 0, 0, time.UTC)

func newLinksWorld(t *testing.T, form string) *linksWorld {
	t.Helper()
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := linksT0
	s.Now = func() time.Time { return now }
	w := &linksWorld{s: s}
	for i, f := range []struct {
		source, name, dir, kind string
		dst                     *File
	}{
		{"folder:morosi", "morosi_20251015.csv", "in", "uscente.morosi", &w.extract},
		{"built", "CMOR_REQ_00488410010_20251015_1.csv", "out", "REQ", &w.built},
		{"built", "CMOR_REQ_00488410010_20251015_2.csv", "out", "REQ", &w.built2},
	} {
		res, err := s.Ingest(ctx, IngestRequest{Source: f.source, Name: f.name, Direction: f.dir, Kind: f.kind,
			Reader: strings.NewReader(fmt.Sprintf("file %d\r\n", i)), At: linksT0})
		if err != nil {
			t.Fatal(err)
		}
		*f.dst = res.File
	}
	name := func(f File) string {
		if form != "stored" {
			return FileName
		}
		return f.Name
	}
	// The handler: three practices of the extract, READY, with their requests.
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return now })
		for i := 0; i < 3; i++ {
			line := 2 + 3*i
			p := &Practice{CaseKey: fmt.Sprintf("U|IT001E%d|RSSMRA|2025-10-01", i), Role: "uscente", Sector: "E", CompanyPIVA: "00488410010",
				CPUtente: fmt.Sprintf("E25000000%d", i+1), Point: fmt.Sprintf("IT001E%d", i), CustomerID: "RSSMRA80A01H501U", State: "READY"}
			h := HistoryEntry{Flow: "uscente.morosi", FileID: w.extract.ID, Line: line, At: now,
				Note: fmt.Sprintf("case read from %s lines %d-%d; CMOR 12.%d0 (credit 100.00, estimate 30.00)", name(w.extract), line, line+2, i)}
			if form != "stored" && i > 0 { // as the morosi handler writes it; the first as a row standing for the link
				h.Link, h.Note = LinkInputCaseRead, strings.TrimPrefix(h.Note, CaseReadPrefix)
			}
			req := &Request{Flow: "REQ", CPUtente: p.CPUtente}
			if form != "stored" {
				err = st.QueueCreate(ctx, p, h, req)
			} else { // as QueueCreate wrote them before 0034: the history row and a link row
				if err = st.Create(ctx, p, h); err == nil {
					req.PracticeID = p.ID
					err = st.CreateRequest(ctx, req)
				}
			}
			if err != nil {
				return err
			}
			w.practices, w.requests = append(w.practices, p.ID), append(w.requests, req.ID)
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	// The build: the first two practices into built, the third into built2, as
	// writeFile does (BUILT now, SENT once published).
	now = linksT0.Add(time.Hour)
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return now })
		for _, b := range []struct {
			file File
			ids  []int64
		}{{w.built, w.practices[:2]}, {w.built2, w.practices[2:]}} {
			var hs []HistoryEntry
			var derived []BuiltRequest
			for i, id := range b.ids {
				if form == "derived" && b.file.ID == w.built.ID { // as the build marks a REQ sent
					derived = append(derived, BuiltRequest{ID: w.requests[i], From: "READY", To: "BUILT", Moves: "SENT"})
					continue
				}
				h := HistoryEntry{PracticeID: id, From: "READY", To: "BUILT", Flow: "REQ", FileID: b.file.ID, At: now,
					Note: fmt.Sprintf("REQ E25000000%d written into %s; SENT once %s is delivered", id, name(b.file), name(b.file))}
				switch {
				case form == "folded" && b.file.ID == w.built.ID: // as the build writes a REQ's row
					h.Link, h.Note = LinkBuiltRequest, "SENT"
				case form != "stored": // as it writes a request under a code of its own
					h.Link = LinkBuilt
				}
				hs = append(hs, h)
			}
			if err := st.MarkBuiltAll(ctx, derived, b.file.ID, now); err != nil {
				return err
			}
			if err := st.SetStateAll(ctx, b.ids, "BUILT", now); err != nil {
				return err
			}
			if err := st.HistoryAll(ctx, hs); err != nil {
				return err
			}
			if form == "stored" {
				if err := st.LinkAll(ctx, b.ids, b.file.ID, "built", 0); err != nil {
					return err
				}
			}
			if err := s.DeferTransition(ctx, tx, PendingTransition{FileID: b.file.ID, From: "BUILT", To: "SENT", Flow: "REQ",
				Note: "REQ published in " + b.file.Name, At: now}); err != nil {
				return err
			}
			if _, err := s.QueueDelivery(ctx, tx, Delivery{FileID: b.file.ID, Target: "sii", RemoteDir: "in", RemoteName: b.file.Name, CreatedAt: now}); err != nil {
				return err
			}
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		// A failed upload of built2: the practice built into it carries it.
		_, _, err = s.RaiseException(ctx, tx, Exception{Fingerprint: UploadFailedFingerprint("sii", w.built2.Name), Kind: "upload_failed",
			Severity: SevHigh, FileID: w.built2.ID, Message: "upload of " + w.built2.Name + " failed", LastSeen: now})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

// linksView is what a person reads of the story: every reader of history and links.
type linksView struct {
	History      [][]HistoryEntry
	Files        [][]string
	OfExtract    []PracticeAt
	OfBuilt      []PracticeAt
	Exceptions   [][]int64
	Awaiting     []int
	States       []string
	VerifyReport []string
}

func (w *linksWorld) view(t *testing.T) linksView {
	t.Helper()
	ctx := context.Background()
	var v linksView
	for _, id := range w.practices {
		hs, err := w.s.PracticeHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for i := range hs {
			hs[i].Link = "" // how it is stored, not what it says
		}
		v.History = append(v.History, hs)
		fs, err := w.s.PracticeFiles(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range fs {
			names = append(names, fmt.Sprintf("%s %s line %d", f.File.Name, f.Relation, f.Line))
		}
		v.Files = append(v.Files, names)
		es, err := w.s.Exceptions(ctx, ExceptionFilter{PracticeID: id})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		v.Exceptions = append(v.Exceptions, ids)
		p, err := w.s.PracticeByID(ctx, nil, id)
		if err != nil {
			t.Fatal(err)
		}
		v.States = append(v.States, p.State)
	}
	var err error
	if v.OfExtract, err = w.s.PracticesOfFile(ctx, w.extract.ID); err != nil {
		t.Fatal(err)
	}
	if v.OfBuilt, err = w.s.PracticesOfFile(ctx, w.built.ID); err != nil {
		t.Fatal(err)
	}
	for _, f := range []File{w.built, w.built2} {
		n, err := w.s.AwaitingPublication(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		v.Awaiting = append(v.Awaiting, n)
	}
	rep, err := w.s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.VerifyReport = rep.Problems
	return v
}

// withoutHistoryIDs is v with every history row's id 0.
func withoutHistoryIDs(v linksView) linksView {
	h := make([][]HistoryEntry, len(v.History))
	for i, hs := range v.History {
		h[i] = slices.Clone(hs)
		for j := range h[i] {
			h[i][j].ID = 0
		}
	}
	v.History = h
	return v
}

// publishAndAbandon publishes built (its practices move to SENT, each with a history
// row) and abandons built2's delivery (its practice gets a history row saying so).
func (w *linksWorld) publishAndAbandon(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ds, err := w.s.ListDeliveries(ctx, DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		switch d.FileID {
		case w.built.ID:
			err = w.s.MarkDelivered(ctx, d.ID, "in/"+d.RemoteName, 10)
		case w.built2.ID:
			if err = w.s.MarkDeliveryFailed(ctx, d.ID, fmt.Errorf("remote name taken"), linksT0, &RemoteConflict{Size: -1}); err == nil {
				_, err = w.s.AbandonDelivery(ctx, d.ID, "mrossi", "sent by hand", linksT0.Add(3*time.Hour))
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestHistoryLinksFoldedReadSame proves that a practice created by a bulk extract and
// built reads the same whether its creation and build rows stand for their links
// (folded, as written now) or the links are rows of their own and the notes carry
// the file's name (stored, as written before): its history with the notes a person
// reads, its files, the receipt of its extract, the exceptions of the file it waits
// on, what waits on publication, and after publication and an abandoned delivery the
// history rows those append to every practice of the file. Both verify clean.
func TestHistoryLinksFoldedReadSame(t *testing.T) {
	stored, folded, derived := newLinksWorld(t, "stored"), newLinksWorld(t, "folded"), newLinksWorld(t, "derived")
	for _, step := range []string{"built", "published"} {
		if step == "published" {
			stored.publishAndAbandon(t)
			folded.publishAndAbandon(t)
			derived.publishAndAbandon(t)
		}
		a, b, c := stored.view(t), folded.view(t), derived.view(t)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: stored form reads\n%+v\nfolded form reads\n%+v", step, a, b)
		}
		if len(b.VerifyReport) != 0 {
			t.Errorf("%s: verify of the folded form: %q", step, b.VerifyReport)
		}
		// The derived form reads the same but for the history rows' ids, which no
		// reader shows (a derived row has none, the rows after it one less).
		if a, c := withoutHistoryIDs(a), withoutHistoryIDs(c); !reflect.DeepEqual(a, c) {
			t.Errorf("%s: stored form reads\n%+v\nderived form reads\n%+v", step, a, c)
		}
		if len(c.VerifyReport) != 0 {
			t.Errorf("%s: verify of the derived form: %q", step, c.VerifyReport)
		}
		// What the story must read, so that equal is not equally wrong.
		h := b.History[0]
		if len(h) < 2 || h[0].Note != "case read from morosi_20251015.csv lines 2-4; CMOR 12.00 (credit 100.00, estimate 30.00)" ||
			h[1].Note != "REQ E250000001 written into CMOR_REQ_00488410010_20251015_1.csv; SENT once CMOR_REQ_00488410010_20251015_1.csv is delivered" {
			t.Errorf("%s: history of practice 1: %+v", step, h)
		}
		if h := b.History[2]; len(h) < 2 || h[1].Note != "REQ E250000003 written into CMOR_REQ_00488410010_20251015_2.csv; SENT once CMOR_REQ_00488410010_20251015_2.csv is delivered" {
			t.Errorf("%s: history of practice 3: %+v", step, h)
		}
		if want := []string{"morosi_20251015.csv input line 2", "CMOR_REQ_00488410010_20251015_1.csv built line 0"}; !reflect.DeepEqual(b.Files[0], want) {
			t.Errorf("%s: files of practice 1: %q, want %q", step, b.Files[0], want)
		}
		if len(b.OfExtract) != 3 || b.OfExtract[1].Line != 5 || len(b.OfBuilt) != 0 {
			t.Errorf("%s: receipts: of the extract %+v, of the built file %+v", step, b.OfExtract, b.OfBuilt)
		}
		if len(b.Exceptions[2]) != 1 || len(b.Exceptions[0]) != 0 {
			t.Errorf("%s: exceptions by practice %v: want the upload failure of built2 on the third practice only", step, b.Exceptions)
		}
		switch step {
		case "built":
			if !reflect.DeepEqual(b.Awaiting, []int{2, 1}) || !reflect.DeepEqual(b.States, []string{"BUILT", "BUILT", "BUILT"}) {
				t.Errorf("built: awaiting publication %v, states %v", b.Awaiting, b.States)
			}
		case "published":
			if !reflect.DeepEqual(b.States, []string{"SENT", "SENT", "BUILT"}) || len(b.History[0]) != 3 || len(b.History[2]) != 3 ||
				!strings.HasPrefix(b.History[0][2].Note, "REQ published in CMOR_REQ_00488410010_20251015_1.csv") ||
				!strings.HasPrefix(b.History[2][2].Note, "delivery of CMOR_REQ_00488410010_20251015_2.csv to sii abandoned by mrossi") {
				t.Errorf("published: states %v, history %+v", b.States, b.History)
			}
		}
	}
	// The derived form writes no history row for the first file's requests.
	var rows int
	if err := derived.s.Read().QueryRow(`SELECT count(*) FROM practice_history WHERE link = 3`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("derived form: %d link-3 history rows (%v), want 0", rows, err)
	}
	// The folded form writes no link row for them.
	var links int
	if err := folded.s.Read().QueryRow(`SELECT count(*) FROM practice_files`).Scan(&links); err != nil || links != 0 {
		t.Errorf("folded form: %d practice_files rows (%v), want 0", links, err)
	}
}

// TestHistoryLinksTamper proves that what a folded row stands for is as tamper-evident
// as the row: its link, its file, its note, and the file name and practice code the
// note is rendered with are all in the state chain, so an edit of any is reported.
func TestHistoryLinksTamper(t *testing.T) {
	for _, tt := range []struct {
		name, sql, want string
	}{
		{"link dropped", `UPDATE practice_history SET link = 0 WHERE link = 3`, "practice history row #"},
		{"link moved to another file", `UPDATE practice_history SET file_id = file_id + 1 WHERE link = 3`, "practice history row #"},
		{"note edited", `UPDATE practice_history SET note = replace(note, 'E250000003', 'E250000009') WHERE link = 2`, "practice history row #"},
		{"rendered note's state edited", `UPDATE practice_history SET note = 'ACCEPTED' WHERE link = 3`, "practice history row #"},
		{"rendered note's template changed", `UPDATE practice_history SET link = 2 WHERE link = 3`, "practice history row #"},
		{"input link changed into a built one", `UPDATE practice_history SET link = 2 WHERE link = 1`, "practice history row #"},
		{"case-read note's lines edited", `UPDATE practice_history SET note = replace(note, '5-7', '5-9') WHERE link = 4`, "practice history row #"},
		{"case-read note's prefix dropped", `UPDATE practice_history SET link = 1 WHERE link = 4`, "practice history row #"},
		{"file renamed", `UPDATE files SET name = 'forged.csv' WHERE name = 'CMOR_REQ_00488410010_20251015_1.csv'`, "was changed outside cmord"},
		{"practice's code changed", `UPDATE practices SET cp_utente = 'E250000009' WHERE cp_utente = 'E250000001'`, "was changed outside cmord"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newLinksWorld(t, "folded")
			verifyOK(t, w.s, "before")
			if _, err := w.s.w.Exec(tt.sql); err != nil {
				t.Fatal(err)
			}
			rep, err := w.s.Verify(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), tt.want) || !strings.Contains(strings.Join(rep.Problems, "\n"), "changed outside cmord") {
				t.Errorf("problems %q, want one with %q", rep.Problems, tt.want)
			}
		})
	}
}

// TestHistoryLinksMigration proves that an archive from before migrations 0033 and
// 0034 (practice_files a rowid table, practice_history without link) opens, reads
// the same (history, files, receipts), verifies, and that the migrations add no chain
// record: the column added with 0 changes no recorded hash, so nothing is sealed again.
func TestHistoryLinksMigration(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "stored")
	before := w.view(t)
	dir := w.s.Dir()
	w.s.Close()

	// The archive as the version before 0033 left it.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append(append(slices.Clone(undoBuiltHistory), undoStateSplit...),
		`DROP VIEW practice_links`,
		`DROP INDEX practice_history_link`,
		`ALTER TABLE practice_history DROP COLUMN link`,
		`CREATE TABLE practice_files_rowid (practice_id INTEGER NOT NULL REFERENCES practices (id), file_id INTEGER NOT NULL REFERENCES files (id),
			relation TEXT NOT NULL, line INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (practice_id, file_id, relation, line))`,
		`INSERT INTO practice_files_rowid SELECT * FROM practice_files`,
		`DROP TABLE practice_files`,
		`ALTER TABLE practice_files_rowid RENAME TO practice_files`,
		`CREATE INDEX practice_files_file ON practice_files (file_id)`,
		`DELETE FROM schema_migrations WHERE name IN ('0033_practice_files_without_rowid', '0034_history_links')`,
	) {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	var records, links int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM chain), (SELECT count(*) FROM practice_files)`).Scan(&records, &links); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if links != 6 {
		t.Fatalf("the old archive has %d links, want 6", links)
	}

	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w.s = s
	if after := w.view(t); !reflect.DeepEqual(after, before) {
		t.Errorf("after the migrations:\n%+v\nbefore:\n%+v", after, before)
	}
	var recordsAfter int
	var schema string
	if err := s.Read().QueryRow(`SELECT (SELECT count(*) FROM chain), (SELECT sql FROM sqlite_master WHERE name = 'practice_files')`).Scan(&recordsAfter, &schema); err != nil {
		t.Fatal(err)
	}
	// 0033 and 0034 add none, nor 0035 (the practices a view: every row keeps its hash).
	if recordsAfter != records {
		t.Errorf("the migrations added %d chain records, want none", recordsAfter-records)
	}
	if !strings.Contains(schema, "WITHOUT ROWID") {
		t.Errorf("practice_files after 0033: %s", schema)
	}
	// New rows in the folded form beside the old ones: still sealed and read.
	var newID int64
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p := &Practice{CaseKey: "U|IT001E9|RSSMRA|2025-10-01", Role: "uscente", Sector: "E", CompanyPIVA: "00488410010", Point: "IT001E9",
			CustomerID: "X", State: "READY"}
		if err := s.CreatePractice(ctx, tx, p, HistoryEntry{Flow: "uscente.morosi", FileID: w.extract.ID, Line: 20, Link: LinkInput,
			Note: "case read from " + FileName + " lines 20-22"}); err != nil {
			return err
		}
		newID = p.ID
		// The same link stored as well (no writer does both): still one link.
		return s.LinkPracticeFile(ctx, tx, p.ID, w.extract.ID, "input", 20)
	}); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, "after a folded row")
	of, err := s.PracticesOfFile(ctx, w.extract.ID)
	if err != nil || len(of) != 4 || of[3].Line != 20 {
		t.Errorf("receipt after a folded row beside stored links: %+v, %v", of, err)
	}
	if fs, err := s.PracticeFiles(ctx, newID); err != nil || len(fs) != 1 || fs[0].Relation != "input" || fs[0].Line != 20 {
		t.Errorf("files of a practice whose input link is both stood for and stored: %+v, %v", fs, err)
	}
}

func TestChainedColumnsChanged(t *testing.T) {
	base := "practice_history.id\tINTEGER\t\npractice_history.note\tTEXT\t''\n"
	for _, tt := range []struct {
		name, after string
		want        bool
	}{
		{"same", base, false},
		{"column added with 0", base + "practice_history.link\tINTEGER\t0\n", false},
		{"column added with ''", base + "practice_history.kind\tTEXT\t''\n", false},
		{"column added with no default", base + "practice_history.kind\tTEXT\t\n", false},
		{"column added with NULL", base + "practice_history.kind\tTEXT\tNULL\n", false},
		{"column added with a value", base + "practice_history.kind\tTEXT\t'x'\n", true},
		{"column added with 1", base + "practice_history.kind\tINTEGER\t1\n", true},
		{"column dropped", "practice_history.id\tINTEGER\t\n", true},
		{"default changed", "practice_history.id\tINTEGER\t\npractice_history.note\tTEXT\t'-'\n", true},
		{"default dropped (a table turned into a view)", "practice_history.id\tINTEGER\t\npractice_history.note\tTEXT\t\n", false},
		{"type changed", "practice_history.id\tINTEGER\t\npractice_history.note\tBLOB\t''\n", true},
	} {
		if got := chainedColumnsChanged(base, tt.after); got != tt.want {
			t.Errorf("%s: changed = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestBuildNote pins the text of a build's row: a LinkBuiltRequest row stores only the
// state, and reads as BuildNote (in SQL, historyNote) renders it; were the text
// changed, every row written before would read differently.
func TestBuildNote(t *testing.T) {
	for _, tt := range []struct{ to, want string }{
		{"SENT", "REQ E250000001 written into F.csv; SENT once F.csv is delivered"},
		{"", "REQ E250000001 written into F.csv"},
	} {
		if got := BuildNote("REQ", "E250000001", "F.csv", tt.to); got != tt.want {
			t.Errorf("BuildNote(%q) = %q, want %q", tt.to, got, tt.want)
		}
		// The SQL rendering gives the same text.
		w := newLinksWorld(t, "folded")
		if _, err := w.s.w.Exec(`UPDATE files SET name = 'F.csv' WHERE id = ?`, w.built.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := w.s.w.Exec(`UPDATE practice_history SET note = ? WHERE link = 3 AND practice_id = ?`, tt.to, w.practices[0]); err != nil {
			t.Fatal(err)
		}
		hs, err := w.s.PracticeHistory(context.Background(), w.practices[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != 2 || hs[1].Note != tt.want || hs[1].Link != LinkBuilt {
			t.Errorf("read back: %+v, want the note %q", hs, tt.want)
		}
	}
}

// TestBuiltHistoryTamper proves that a build history row derived from its request
// (migration 0037) is as tamper-evident as the row it replaces: what it is read from
// in request_state and request_rows is hashed with its practice (practiceSideBuilt),
// which the build rewrites in the same transaction, so an edit of any of it is
// reported as the practice changed outside cmord.
func TestBuiltHistoryTamper(t *testing.T) {
	for _, tt := range []struct {
		name, sql string
	}{
		{"row dropped", `UPDATE request_state SET hist_after = NULL WHERE hist_after IS NOT NULL`},
		{"row moved among the practice's rows", `UPDATE request_state SET hist_after = 0 WHERE hist_after IS NOT NULL`},
		{"link moved to another file", `UPDATE request_state SET file_id = file_id + 1 WHERE hist_after IS NOT NULL`},
		{"rendered note's state edited", `UPDATE request_state SET hist_moves = 'ACCEPTED' WHERE hist_after IS NOT NULL`},
		{"from state edited", `UPDATE request_state SET hist_from = 'NEW' WHERE hist_after IS NOT NULL`},
		{"to state edited", `UPDATE request_state SET hist_to = 'SENT' WHERE hist_after IS NOT NULL`},
		{"time edited", `UPDATE request_state SET sent_at = '2025-10-14T09:00:00.000000000Z' WHERE hist_after IS NOT NULL`},
		{"flow edited", `UPDATE request_state SET flow = 'ANN_REQ' WHERE hist_after IS NOT NULL`},
		{"request deleted", `DELETE FROM request_state WHERE hist_after IS NOT NULL`},
		{"request's row deleted", `DELETE FROM request_rows WHERE id IN (SELECT id FROM request_state WHERE hist_after IS NOT NULL)`},
		{"request moved to another practice", `UPDATE request_rows SET practice_id = 3 WHERE practice_id = 1`},
		{"row forged for another request", `UPDATE request_state SET hist_after = 1, hist_from = 'READY', hist_to = 'BUILT', file_id = 3
			WHERE hist_after IS NULL`},
		{"file renamed", `UPDATE files SET name = 'forged.csv' WHERE name = 'CMOR_REQ_00488410010_20251015_1.csv'`},
		{"practice's code changed", `UPDATE practices SET cp_utente = 'E250000009' WHERE cp_utente = 'E250000001'`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newLinksWorld(t, "derived")
			verifyOK(t, w.s, "before")
			if _, err := w.s.w.Exec(tt.sql); err != nil {
				t.Fatal(err)
			}
			rep, err := w.s.Verify(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), "changed outside cmord") {
				t.Errorf("problems %q, want the practice changed outside cmord", rep.Problems)
			}
		})
	}
}

// TestBuiltHistoryMigration proves that an archive from before migration 0037, whose
// builds wrote a REQ's row (link 3), opens, reads the same (each row once), verifies,
// gets no chain record from the migration, and that a build after it derives its row.
func TestBuiltHistoryMigration(t *testing.T) {
	w := newLinksWorld(t, "folded")
	before := w.view(t)
	dir := w.s.Dir()
	w.s.Close()
	db := openUndone(t, dir, undoBuiltHistory)
	var records int
	if err := db.QueryRow(`SELECT count(*) FROM chain`).Scan(&records); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w.s = s
	if after := w.view(t); !reflect.DeepEqual(after, before) {
		t.Errorf("after 0037:\n%+v\nbefore:\n%+v", after, before)
	}
	var now int
	if err := s.Read().QueryRow(`SELECT count(*) FROM chain`).Scan(&now); err != nil || now != records {
		t.Errorf("chain records: %d after the migration, %d before (%v)", now, records, err)
	}
	// A build after the upgrade: the old rows and the derived one side by side.
	at := linksT0.Add(2 * time.Hour)
	if err := s.Write(context.Background(), func(tx *sql.Tx) error {
		st, err := s.PreparePractices(context.Background(), tx)
		if err != nil {
			return err
		}
		if err := st.MarkBuiltAll(context.Background(), []BuiltRequest{{ID: w.requests[2], From: "BUILT", To: "BUILT"}}, w.built.ID, at); err != nil {
			return err
		}
		if err := st.SetStateAll(context.Background(), w.practices[2:], "BUILT", at); err != nil {
			return err
		}
		return st.Close(context.Background())
	}); err != nil {
		t.Fatal(err)
	}
	hs, err := s.PracticeHistory(context.Background(), w.practices[2])
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 3 || hs[2].ID != 0 || hs[2].Note != "REQ E250000003 written into CMOR_REQ_00488410010_20251015_1.csv" ||
		!hs[2].At.Equal(at) || hs[2].From != "BUILT" || hs[2].Link != LinkBuilt || hs[1].Link != LinkBuilt || hs[1].ID == 0 {
		t.Errorf("history after a build past 0037: %+v", hs)
	}
	verifyOK(t, s, "after a build past 0037")
}
