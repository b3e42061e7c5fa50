package archive

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"
	"time"
)

// storedForms is what an archive stores in the columns migration 0043 shortens, one
// text per row, in id order.
func storedForms(t *testing.T, db *sql.DB) (requests, history, built []string) {
	t.Helper()
	read := func(q string) []string {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	return read(`SELECT created_at FROM request_rows ORDER BY id`),
		read(`SELECT at || '/' || flow FROM practice_history WHERE link IN (1, 4) ORDER BY id`),
		read(`SELECT coalesce(hist_from, 'NULL') || ' ' || coalesce(hist_to, 'NULL') || ' ' || coalesce(hist_moves, 'NULL')
			FROM request_state WHERE hist_after IS NOT NULL ORDER BY id`)
}

// requestsDump is every request as SELECT * of the view requests gives it.
func requestsDump(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM requests ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			b.WriteString(cols[i] + "=")
			if v.Valid {
				b.WriteString(v.String)
			} else {
				b.WriteString("NULL")
			}
			b.WriteString(" ")
		}
		out = append(out, b.String())
	}
	return out
}

// TestRowsTrimmed proves migration 0043's forms: the bulk path stores a request's
// created_at and its practice's creation history row's at (and its flow, the file's
// kind) as the empty text, and a
// REQ's derived build row's READY -> BUILT -> SENT as NULLs; every reader (the view
// requests, the history, the links, receipts, verify: linksWorld.view) reads what the
// forms written before read (TestHistoryLinksFoldedReadSame compares them with the
// stored form); an archive from before 0043 opens, reads the same, gets no chain
// record and verifies; and an edit of a shortened column behind cmord's back is
// reported.
func TestRowsTrimmed(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "derived")
	db := w.s.Read()
	reqs, hist, built := storedForms(t, db)
	if want := []string{"", "", ""}; !reflect.DeepEqual(reqs, want) || !reflect.DeepEqual(hist, []string{"/", "/", "/"}) {
		t.Errorf("stored: requests' created_at %q, creation rows' at/flow %q, want empty texts", reqs, hist)
	}
	if want := []string{"NULL NULL NULL", "NULL NULL NULL"}; !reflect.DeepEqual(built, want) {
		t.Errorf("stored: derived build rows' states %q, want %q", built, want)
	}
	for i, id := range w.practices {
		hs, err := w.s.PracticeHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !hs[0].At.Equal(linksT0) || hs[0].Flow != "uscente.morosi" {
			t.Errorf("practice %d: creation row at %v, flow %q; want %v, uscente.morosi", id, hs[0].At, hs[0].Flow, linksT0)
		}
		if i < 2 && (hs[1].From != "READY" || hs[1].To != "BUILT" || !strings.HasSuffix(hs[1].Note, "; SENT once CMOR_REQ_00488410010_20251015_1.csv is delivered")) {
			t.Errorf("practice %d: derived build row %+v", id, hs[1])
		}
		rs, err := w.s.Requests(ctx, nil, id, "", "", 0)
		if err != nil || len(rs) != 1 || !rs[0].CreatedAt.Equal(linksT0) {
			t.Errorf("practice %d: requests %+v (%v), want one created at %v", id, rs, err, linksT0)
		}
	}
	// A build that archives its file at the time it marks the requests sent (as
	// the uscente builder does): sent_at stored empty, read as the file's time.
	at := buildAtFileTime(t, w)
	var sentStored, sentRead string
	if err := db.QueryRow(`SELECT s.sent_at, r.sent_at FROM request_state s JOIN requests r ON r.id = s.id WHERE s.id = ?`, w.requests[3]).
		Scan(&sentStored, &sentRead); err != nil || sentStored != "" || sentRead != TS(at) {
		t.Errorf("sent_at stored %q, read %q (%v); want the empty text read as %q", sentStored, sentRead, err, TS(at))
	}
	if hs, err := w.s.PracticeHistory(ctx, w.practices[3]); err != nil || len(hs) != 2 || !hs[1].At.Equal(at) || !hs[0].At.Equal(at) ||
		hs[1].Note != "REQ E250000009 written into CMOR_REQ_00488410010_20251015_3.csv; SENT once CMOR_REQ_00488410010_20251015_3.csv is delivered" {
		t.Errorf("history of the practice built at its file's time: %+v (%v)", hs, err)
	}
	if rs, err := w.s.Requests(ctx, nil, w.practices[3], "", "", 0); err != nil || len(rs) != 1 || !rs[0].SentAt.Equal(at) {
		t.Errorf("its request: %+v (%v), want sent at %v", rs, err, at)
	}
	var viewCreated string
	if err := db.QueryRow(`SELECT created_at FROM requests WHERE id = ?`, w.requests[0]).Scan(&viewCreated); err != nil || viewCreated != TS(linksT0) {
		t.Errorf("the view requests: created_at %q (%v), want %q", viewCreated, err, TS(linksT0))
	}
	verifyOK(t, w.s, "after writes under 0043")

	// An archive from before 0043 (its schema; the forms written out as an older
	// cmord wrote them where no chained hash covers them).
	before, beforeReqs := w.view(t), requestsDump(t, db)
	dir := w.s.Dir()
	w.s.Close()
	c := openUndone(t, dir, undoRowsTrimmed)
	var records int
	if err := c.QueryRow(`SELECT count(*) FROM chain`).Scan(&records); err != nil {
		t.Fatal(err)
	}
	var sentAfterUndo string
	if err := c.QueryRow(`SELECT sent_at FROM request_state WHERE id = ?`, w.requests[3]).Scan(&sentAfterUndo); err != nil || sentAfterUndo != TS(at) {
		t.Fatalf("undone: sent_at %q (%v)", sentAfterUndo, err)
	}
	if reqs, _, built := storedForms(t, c); reqs[0] != TS(linksT0) || built[0] != "READY BUILT SENT" {
		t.Fatalf("undone: requests' created_at %q, build rows %q", reqs, built)
	}
	if got := requestsDump(t, c); !reflect.DeepEqual(got, beforeReqs) {
		t.Fatalf("the undone archive's requests read otherwise:\n%q\nwant\n%q", got, beforeReqs)
	}
	c.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w.s = s
	if after := w.view(t); !reflect.DeepEqual(after, before) {
		t.Errorf("after 0043:\n%+v\nbefore:\n%+v", after, before)
	}
	if got := requestsDump(t, s.Read()); !reflect.DeepEqual(got, beforeReqs) {
		t.Errorf("after 0043 the requests read:\n%q\nwant\n%q", got, beforeReqs)
	}
	var recordsAfter int
	if err := s.Read().QueryRow(`SELECT count(*) FROM chain`).Scan(&recordsAfter); err != nil || recordsAfter != records {
		t.Errorf("0043 added %d chain records (%v), want none", recordsAfter-records, err)
	}
	var partial string
	if err := s.Read().QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'requests_ready'`).Scan(&partial); err != nil ||
		!strings.Contains(partial, "WHERE state = 'ready'") {
		t.Errorf("requests_ready after 0043: %q (%v)", partial, err)
	}
	verifyOK(t, s, "after 0043")

	// Behind cmord's back.
	for _, tt := range []struct {
		name, sql, want string
	}{
		{"creation row's time written in", `UPDATE practice_history SET at = '2020-01-01T00:00:00.000000000Z' WHERE at = '' AND practice_id = 1`,
			"practice history row #1"},
		{"creation row's flow written in", `UPDATE practice_history SET flow = 'forged' WHERE at = '' AND practice_id = 1`,
			"practice history row #1"},
		{"extract's kind edited", `UPDATE files SET kind = 'forged' WHERE kind = 'uscente.morosi'`, "file #1"},
		{"another row's time emptied", `UPDATE practice_history SET at = '' WHERE link = 2`, "practice history row #"},
		{"practice's creation time edited", `UPDATE practice_rows SET created_at = '2020-01-01T00:00:00.000000000Z' WHERE id = 1`,
			"practice #1"},
		{"sent time written in", `UPDATE request_state SET sent_at = '2020-01-01T00:00:00.000000000Z' WHERE sent_at = ''`, "practice #4"},
		{"built file's time edited", `UPDATE files SET received_at = '2020-01-01T00:00:00.000000000Z' WHERE name LIKE '%_3.csv'`, "file #"},
		{"view requests redefined", `DROP VIEW requests; CREATE VIEW requests AS SELECT * FROM request_rows`, "view requests"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newLinksWorld(t, "derived")
			buildAtFileTime(t, w)
			verifyOK(t, w.s, "before")
			if _, err := w.s.w.Exec(tt.sql); err != nil {
				t.Fatal(err)
			}
			rep, err := w.s.Verify(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p := strings.Join(rep.Problems, "\n"); !strings.Contains(p, tt.want) || !strings.Contains(p, "changed outside cmord") {
				t.Errorf("problems %q, want one with %q", rep.Problems, tt.want)
			}
		})
	}
}

// buildAtFileTime creates a fourth practice of w with its request, and builds it into
// a file archived at the time the build marks it sent, as the uscente builder does;
// it returns that time.
func buildAtFileTime(t *testing.T, w *linksWorld) time.Time {
	t.Helper()
	ctx := context.Background()
	at := linksT0.Add(3 * time.Hour)
	built3, err := w.s.Ingest(ctx, IngestRequest{Source: "built", Name: "CMOR_REQ_00488410010_20251015_3.csv", Direction: "out", Kind: "REQ",
		Reader: strings.NewReader("file 3\r\n"), At: at})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.s.Write(ctx, func(tx *sql.Tx) error {
		st, err := w.s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		st.SetClock(func() time.Time { return at })
		p := &Practice{CaseKey: "U|IT001E9|RSSMRA|2025-10-01", Role: "uscente", Sector: "E", CompanyPIVA: "00488410010",
			CPUtente: "E250000009", Point: "IT001E9", CustomerID: "RSSMRA80A01H501U", State: "READY"}
		req := &Request{Flow: "REQ", CPUtente: p.CPUtente}
		if err := st.QueueCreate(ctx, p, HistoryEntry{Flow: "uscente.morosi", FileID: w.extract.ID, Line: 20, At: at}, req); err != nil {
			return err
		}
		if err := st.Flush(ctx); err != nil {
			return err
		}
		w.practices, w.requests = append(w.practices, p.ID), append(w.requests, req.ID)
		if err := st.MarkBuiltAll(ctx, []BuiltRequest{{ID: req.ID, From: "READY", To: "BUILT", Moves: "SENT"}}, built3.File.ID, at); err != nil {
			return err
		}
		if err := st.SetStateAll(ctx, []int64{p.ID}, "BUILT", at); err != nil {
			return err
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	return at
}

// TestReadyRequestsPartialIndex pins the plans of the build's reads of ready requests
// on the partial index requests_ready (migration 0043).
func TestReadyRequestsPartialIndex(t *testing.T) {
	s := openTest(t)
	for _, q := range []string{readyWithPracticeQuery, readyEntranteQuery,
		requestSelect + ` WHERE flow = ? AND state = 'ready' AND id > ? ORDER BY id LIMIT ?`} {
		plan := explainPlan(t, s.Read(), q, "REQ", 0, 10)
		if !strings.Contains(strings.Join(plan, "\n"), "requests_ready") {
			t.Errorf("plan does not use requests_ready:\n%s\n%s", q, strings.Join(plan, "\n"))
		}
	}
}

// TestCreationRowForms pins how a creation row written with its practice stores its
// time and flow (migration 0043) for each flow beside its file's kind, and that each
// reads back as given.
func TestCreationRowForms(t *testing.T) {
	ctx := context.Background()
	w := newLinksWorld(t, "derived")
	tests := []struct {
		flow   string
		fileID int64
		stored string // at/flow as stored
	}{
		{"uscente.morosi", w.extract.ID, "/"},    // the file's kind: both empty
		{"manual", w.extract.ID, "/manual"},      // another flow: kept
		{"", w.extract.ID, TS(linksT0) + "/"},    // no flow, a file with a kind: the time kept
		{"", 0, "/"},                             // no flow, no file
		{"uscente.morosi", 0, "/uscente.morosi"}, // a flow, no file
	}
	var ids []int64
	if err := w.s.Write(ctx, func(tx *sql.Tx) error {
		st, err := w.s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		for i, tt := range tests {
			p := &Practice{CaseKey: "U|IT002E" + string(rune('0'+i)) + "|RSSMRA|2025-10-01", Role: "uscente", Sector: "E", CompanyPIVA: "00488410010",
				Point: "IT002E" + string(rune('0'+i)), CustomerID: "RSSMRA80A01H501U", State: "READY"}
			if err := st.QueueCreate(ctx, p, HistoryEntry{Flow: tt.flow, FileID: tt.fileID, Line: 2, At: linksT0}, nil); err != nil {
				return err
			}
			ids = append(ids, p.ID)
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		var stored string
		if err := w.s.Read().QueryRow(`SELECT at || '/' || flow FROM practice_history WHERE practice_id = ?`, ids[i]).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		hs, err := w.s.PracticeHistory(ctx, ids[i])
		if err != nil || len(hs) != 1 {
			t.Fatalf("history of %d: %+v, %v", ids[i], hs, err)
		}
		if stored != tt.stored || hs[0].Flow != tt.flow || !hs[0].At.Equal(linksT0) {
			t.Errorf("flow %q, file %d: stored %q, read %q at %v; want stored %q, read as given", tt.flow, tt.fileID, stored, hs[0].Flow, hs[0].At, tt.stored)
		}
	}
	verifyOK(t, w.s, "after creation rows of every form")
}
