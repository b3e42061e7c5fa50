package archive

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

// TestHistoryLinksNamesWithBraces proves that a folded row reads with its file's name
// as it is, whatever the name holds: braces, FileName itself (an operator may name an
// extract so) or a quote. The name is put in once, never read again as a template.
func TestHistoryLinksNamesWithBraces(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct{ extract, built string }{
		{"morosi_{file}.csv", "CMOR_{file}{file}.csv"},
		{"morosi_{x}_{.csv", "CMOR_'}{.csv"},
		{"{file}", "{file} lines "},
	} {
		t.Run(tt.extract, func(t *testing.T) {
			s := openTest(t)
			var files []File
			for _, f := range []struct{ source, name, dir string }{{"folder:morosi", tt.extract, "in"}, {"built", tt.built, "out"}} {
				res, err := s.Ingest(ctx, IngestRequest{Source: f.source, Name: f.name, Direction: f.dir, Kind: "k",
					Reader: strings.NewReader(f.name), At: linksT0})
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, res.File)
			}
			var ids []int64
			if err := s.Write(ctx, func(tx *sql.Tx) error {
				st, err := s.PreparePractices(ctx, tx)
				if err != nil {
					return err
				}
				for i, code := range []string{"E250000001", "E250000002"} {
					p := &Practice{CaseKey: "U|" + code, Role: "uscente", Sector: "E", CompanyPIVA: "00488410010", CPUtente: code,
						Point: "IT001E" + code, CustomerID: "C", State: "READY"}
					if err := st.QueueCreate(ctx, p, HistoryEntry{Flow: "uscente.morosi", FileID: files[0].ID, Line: 2 + i, At: linksT0,
						Link: LinkInputCaseRead, Note: "2-4; CMOR 1.00"}, nil); err != nil {
						return err
					}
					ids = append(ids, p.ID)
				}
				if err := st.Flush(ctx); err != nil {
					return err
				}
				return st.HistoryAll(ctx, []HistoryEntry{
					{PracticeID: ids[0], From: "READY", To: "BUILT", Flow: "REQ", FileID: files[1].ID, At: linksT0, Link: LinkBuiltRequest, Note: "SENT"},
					{PracticeID: ids[1], From: "READY", To: "READY", Flow: "ANN_REQ", FileID: files[1].ID, At: linksT0, Link: LinkBuilt,
						Note: BuildNote("ANN_REQ", "E250000009", FileName, "ANNULLING")},
				})
			}); err != nil {
				t.Fatal(err)
			}
			want := [][]string{
				{"case read from " + tt.extract + " lines 2-4; CMOR 1.00", "REQ E250000001 written into " + tt.built + "; SENT once " + tt.built + " is delivered"},
				{"case read from " + tt.extract + " lines 2-4; CMOR 1.00", "ANN_REQ E250000009 written into " + tt.built + "; ANNULLING once " + tt.built + " is delivered"},
			}
			for i, id := range ids {
				hs, err := s.PracticeHistory(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, h := range hs {
					got = append(got, h.Note)
				}
				if strings.Join(got, "\n") != strings.Join(want[i], "\n") {
					t.Errorf("practice %d reads\n%q\nwant\n%q", i+1, got, want[i])
				}
			}
			verifyOK(t, s, "after folded rows naming files with braces")
		})
	}
}

// TestHistoryLinkNeedsFile: a row cannot stand for a link to no file, or for a link
// of a kind the view does not know; every writer refuses it, and nothing is written.
func TestHistoryLinkNeedsFile(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	for _, h := range []HistoryEntry{
		{Flow: "uscente.morosi", Link: LinkInputCaseRead, Note: "2-4"},
		{Flow: "REQ", Link: LinkBuiltRequest},
		{Flow: "REQ", FileID: 1, Link: "answer"},
	} {
		for _, writer := range []string{"CreatePractice", "History", "HistoryAll", "QueueCreate"} {
			err := s.Write(ctx, func(tx *sql.Tx) error {
				p := &Practice{CaseKey: "U|1", Role: "uscente", Sector: "E", CompanyPIVA: "1", Point: "P", CustomerID: "C", State: "READY"}
				if writer == "CreatePractice" {
					return s.CreatePractice(ctx, tx, p, h)
				}
				st, err := s.PreparePractices(ctx, tx)
				if err != nil {
					return err
				}
				switch writer {
				case "QueueCreate":
					if err := st.QueueCreate(ctx, p, h, nil); err != nil {
						return err
					}
					return st.Flush(ctx)
				case "History":
					if err := st.Create(ctx, p, HistoryEntry{Flow: "x"}); err != nil {
						return err
					}
					h.PracticeID = p.ID
					return st.History(ctx, h)
				default:
					if err := st.Create(ctx, p, HistoryEntry{Flow: "x"}); err != nil {
						return err
					}
					h.PracticeID = p.ID
					return st.HistoryAll(ctx, []HistoryEntry{h})
				}
			})
			if err == nil || !strings.Contains(err.Error(), "archive: a history row") {
				t.Errorf("%s of a row standing for a %q link to file %d: %v, want a refusal", writer, h.Link, h.FileID, err)
			}
		}
	}
	var n int
	if err := s.Read().QueryRow(`SELECT (SELECT count(*) FROM practices) + (SELECT count(*) FROM practice_history)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d practices and history rows written (%v), want none", n, err)
	}
}

// TestHistoryLinksViewTamper proves that the view the links are read through is as
// tamper-evident as the rows: redefined by hand (a practice's links filtered out, a
// relation swapped), replaced by a table of forged links, or dropped, verify reports
// it, though no chained row changed; as cmord's migrations left it, verify is clean.
func TestHistoryLinksViewTamper(t *testing.T) {
	const arms = `SELECT practice_id, file_id, relation, line FROM practice_files UNION ALL
		SELECT practice_id, file_id, CASE WHEN link IN (1, 4) THEN 'input' ELSE 'built' END, line FROM practice_history WHERE link <> 0`
	for _, tt := range []struct {
		name string
		sql  []string
		want string
	}{
		{"a practice's links filtered out", []string{`DROP VIEW practice_links`,
			`CREATE VIEW practice_links (practice_id, file_id, relation, line) AS SELECT * FROM (` + arms + `) WHERE practice_id <> 3`},
			"view practice_links was changed outside cmord: its definition differs"},
		{"relations swapped", []string{`DROP VIEW practice_links`,
			`CREATE VIEW practice_links (practice_id, file_id, relation, line) AS SELECT practice_id, file_id, relation, line FROM practice_files UNION ALL
			SELECT practice_id, file_id, CASE WHEN link IN (1, 4) THEN 'built' ELSE 'input' END, line FROM practice_history WHERE link <> 0`},
			"view practice_links was changed outside cmord: its definition differs"},
		{"replaced by a table", []string{`DROP VIEW practice_links`,
			`CREATE TABLE practice_links AS ` + arms, `DELETE FROM practice_links WHERE practice_id = 3`},
			"view practice_links was changed outside cmord: it is now a table"},
		{"dropped", []string{`DROP VIEW practice_links`}, "view practice_links is missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newLinksWorld(t, "folded")
			verifyOK(t, w.s, "before")
			for _, q := range tt.sql {
				if _, err := w.s.w.Exec(q); err != nil {
					t.Fatal(q, err)
				}
			}
			rep, err := w.s.Verify(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rep.Problems, "\n"); !strings.Contains(got, tt.want) {
				t.Errorf("problems %q, want one with %q", rep.Problems, tt.want)
			}
		})
	}
}

// TestPracticeLinksReadersSearch proves that a reader of the view practice_links given
// a file reads the file's links by index, in every arm, and scans no table of links:
// over a million practices a scan reads every link and history row standing for one.
// (An automatic index over the file's links alone, what the arms found, is fine.) The
// same for the readers given a practice, PracticeHistory's derived rows (0037) and the
// state chain's reading of a practice's derived rows.
func TestPracticeLinksReadersSearch(t *testing.T) {
	w := newLinksWorld(t, "derived")
	byFile := []string{"SEARCH practice_files USING COVERING INDEX practice_files_file (file_id=?)",
		"SEARCH practice_history USING INDEX practice_history_link (file_id=?)",
		"SEARCH s USING INDEX request_state_built (file_id=?)", "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"}
	byPractice := []string{"SEARCH practice_files USING PRIMARY KEY (practice_id=?)",
		"SEARCH practice_history USING INDEX practice_history_practice (practice_id=?)",
		"SEARCH r USING COVERING INDEX requests_practice (practice_id=?)", "SEARCH s USING INTEGER PRIMARY KEY (rowid=?)"}
	for _, tt := range []struct {
		name, sql string
		args      []any
		good      []string
	}{
		{"AwaitingPublication", awaitingPublicationSQL, []any{w.built.ID}, byFile},
		{"applyPublished", `SELECT id FROM practices WHERE state = 'BUILT' AND id IN (SELECT practice_id FROM practice_links
			WHERE file_id = ? AND relation = 'built')`, []any{w.built.ID}, byFile},
		{"PracticesOfFile", `SELECT p.id, min(pf.line) FROM practice_links pf JOIN practices p ON p.id = pf.practice_id
			WHERE pf.file_id = ? AND pf.relation = 'input' GROUP BY p.id`, []any{w.extract.ID}, byFile},
		{"PracticeFiles", `SELECT DISTINCT file_id, relation, line FROM practice_links WHERE practice_id = ? ORDER BY file_id, line`,
			[]any{w.practices[0]}, byPractice},
		{"PracticeHistory", practiceHistoryQuery, []any{w.practices[0]}, []string{
			"SEARCH h USING INDEX practice_history_practice (practice_id=?)",
			"SEARCH r USING COVERING INDEX requests_practice (practice_id=?)", "SEARCH s USING INTEGER PRIMARY KEY (rowid=?)"}},
		{"the chain's derived rows of a practice", `SELECT t.id, ` + practiceSideBuilt + ` FROM practices t WHERE t.id > ?`,
			[]any{0}, []string{"SEARCH r USING COVERING INDEX requests_practice (practice_id=?)", "SEARCH s USING INTEGER PRIMARY KEY (rowid=?)"}},
	} {
		plan := explainPlan(t, w.s.Read(), tt.sql, tt.args...)
		text := strings.Join(plan, "\n")
		for _, bad := range []string{"SCAN practice_files", "SCAN practice_history", "SCAN h", "SCAN request_state", "SCAN s\n", "SCAN r\n",
			"SCAN request_rows", "TEMP B-TREE FOR group_concat"} {
			if strings.Contains(text+"\n", bad) {
				t.Errorf("%s: plan has %q:\n%s", tt.name, bad, text)
			}
		}
		for _, good := range tt.good {
			if !strings.Contains(text, good) {
				t.Errorf("%s: plan has no %q:\n%s", tt.name, good, text)
			}
		}
	}
}
