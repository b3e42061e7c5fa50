package archive

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
)

// dictCase is the made-up case number i: cases alike but for their numbers, as those
// of one extract are.
func dictCase(i int) (flows.UscenteData, *Practice) {
	d := flows.UscenteData{Case: flows.Case{Sector: "E", POD: fmt.Sprintf("IT001E%08d", 100+i), CustomerCF: fmt.Sprintf("RSSMRA85T10A%03d", i%1000),
		CustomerName: fmt.Sprintf("Cliente %d", i), SwitchDate: flows.D(2025, 3, 1), Voltage: "BT",
		Invoices: []flows.Invoice{{Number: fmt.Sprintf("F2024-%05d", i), Issued: flows.D(2024, 12, 10), Amount: flows.Amount(15_000 + i), Unpaid: flows.Amount(15_000 + i)},
			{Number: fmt.Sprintf("F2025-%05d", i), Issued: flows.D(2025, 1, 10), Amount: 8_000, Unpaid: 4_000}},
		Spend: []flows.MonthSpend{{Month: flows.D(2024, 1, 1), Amount: flows.Amount(7_000 + i)}, {Month: flows.D(2024, 2, 1), Amount: 6_500}}},
		Audit:  &flows.CMORAudit{RequestDate: flows.D(2025, 10, 15), Credit: flows.Amount(19_000 + i), CMOR: 7_000, Counted: []string{fmt.Sprintf("F2024-%05d", i)}},
		Inputs: []flows.InputRef{{FileID: 1, Lines: []int{2 + 2*i, 3 + 2*i}}}}
	p := &Practice{CaseKey: fmt.Sprintf("U|%d", i), Role: "uscente", Sector: "E", CompanyPIVA: "01234567890", Point: d.Case.POD,
		CustomerID: d.Case.CustomerCF, CustomerName: d.Case.CustomerName, SwitchDate: d.Case.SwitchDate, State: "READY"}
	p.Data = flows.EncodeUscenteData(&d, p.CaseRow())
	return d, p
}

// writeChunk writes cases from..to-1 as the handler's chunk does (PracticeStmts,
// queued, with a REQ each), in one transaction; fail makes it roll back at the end.
func writeChunk(t *testing.T, s *Store, from, to int, fail bool) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		for i := from; i < to; i++ {
			_, p := dictCase(i)
			if err := st.QueueCreate(ctx, p, HistoryEntry{Flow: "uscente.morosi"}, &Request{Flow: "REQ", CPUtente: fmt.Sprintf("E25%07d", i)}); err != nil {
				st.Close(ctx)
				return err
			}
			ids = append(ids, p.ID)
		}
		if err := st.Close(ctx); err != nil {
			return err
		}
		if fail {
			return fmt.Errorf("rolled back")
		}
		return nil
	})
	if err != nil && !fail {
		t.Fatal(err)
	}
	return ids
}

// storedCase is practice id's case as stored.
func storedCase(t *testing.T, s *Store, id int64) []byte {
	t.Helper()
	var b []byte
	if err := s.Read().QueryRow(`SELECT data FROM practice_data WHERE id = ?`, id).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkCases requires every reader of a case to get cases from..from+len(ids)-1 as
// they were written: PracticeByID and the listing JSON, the build the same case.
func checkCases(t *testing.T, s *Store, from int, ids []int64) {
	t.Helper()
	ctx := context.Background()
	byID := map[int64]int{}
	for k, id := range ids {
		byID[id] = from + k
		d, _ := dictCase(from + k)
		p, err := s.PracticeByID(ctx, nil, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := d.Marshal(); !bytes.Equal(p.Data, want) {
			t.Errorf("practice #%d reads %s, want %s", id, p.Data, want)
		}
	}
	n := 0
	if err := s.EachPractice(ctx, PracticeFilter{}, func(p Practice) error {
		if i, ok := byID[p.ID]; ok {
			n++
			if d, _ := dictCase(i); !bytes.Equal(p.Data, d.Marshal()) {
				t.Errorf("listed practice #%d reads %s", p.ID, p.Data)
			}
		}
		return nil
	}); err != nil || n != len(ids) {
		t.Fatalf("listing: %d of %d practices, %v", n, len(ids), err)
	}
	_, ps, err := s.ReadyRequestsWithPractices(ctx, nil, "REQ", 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for _, p := range ps {
		i, ok := byID[p.ID]
		if !ok {
			continue
		}
		n++
		want, _ := dictCase(i)
		if got, err := p.UscenteData(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("the build decodes practice #%d as %+v, %v", p.ID, got, err)
		}
	}
	if n != len(ids) {
		t.Errorf("the build read %d of %d practices", n, len(ids))
	}
}

// The handler's chunk stores its first case as its dictionary and every case deflated
// against it (form 2), a chunk per dictionary; every reader gets each case as it was
// written, and verify holds. A transaction that rolls back takes its dictionary with
// it, and the next one, given the same id, is read as itself.
func TestCaseDictsRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A rolled-back chunk first: its dictionary (id 1) is cached, then gone.
	writeChunk(t, s, 500, 503, true)
	a := writeChunk(t, s, 0, 150, false)
	b := writeChunk(t, s, 150, 151, false) // a chunk of one: its own dictionary
	var dicts int
	if err := s.Read().QueryRow(`SELECT count(*) FROM case_dicts`).Scan(&dicts); err != nil || dicts != 2 {
		t.Fatalf("%d dictionaries, %v; want 2 (one per chunk)", dicts, err)
	}
	total, compactTotal := 0, 0
	for k, id := range append(append([]int64{}, a...), b...) {
		st := storedCase(t, s, id)
		if !IsDeflatedCase(st) {
			t.Errorf("case %d stored %q, want form 2", k, st)
		}
		_, p := dictCase(k)
		total, compactTotal = total+len(st), compactTotal+len(p.Data)
	}
	if total*10 > compactTotal*7 {
		t.Errorf("deflated cases %d bytes, compact %d: want at most 70 %%", total, compactTotal)
	}
	checkCases(t, s, 0, a)
	checkCases(t, s, 150, b)
	// The daemon's next start reads without the cache.
	s.dropCaseDicts()
	checkCases(t, s, 0, a)
	verifyOK(t, s, "with deflated cases")

	// Saved with the case it read (a state change): left as stored; with a case
	// changed: stored compact (SavePractice writes no dictionary).
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p, err := s.PracticeByID(ctx, tx, a[3])
		if err != nil {
			return err
		}
		d, _ := dictCase(3)
		p.Data = flows.EncodeUscenteData(&d, p.CaseRow())
		if err := s.SavePractice(ctx, tx, &p); err != nil {
			return err
		}
		p, err = s.PracticeByID(ctx, tx, a[4])
		if err != nil {
			return err
		}
		d, _ = dictCase(4)
		d.Case.Voltage = "MT"
		p.Data = d.Marshal()
		return s.SavePractice(ctx, tx, &p)
	}); err != nil {
		t.Fatal(err)
	}
	if st := storedCase(t, s, a[3]); !IsDeflatedCase(st) {
		t.Errorf("a case saved unchanged was rewritten: %q", st)
	}
	if st := storedCase(t, s, a[4]); !flows.IsCompactUscenteData(st) {
		t.Errorf("a case changed is stored %q, want the compact form", st)
	}
	if p, err := s.PracticeByID(ctx, nil, a[4]); err != nil || !strings.Contains(string(p.Data), `"MT"`) {
		t.Errorf("changed case reads %s, %v", p.Data, err)
	}
	verifyOK(t, s, "after saving cases")
}

// A dictionary edited or deleted outside cmord changes what every case built on it
// reads as: verify names it, as it names a deflated case edited. The practices still
// list, each case that no longer decodes handed out as stored (TestDamagedCaseListing).
func TestCaseDictTamper(t *testing.T) {
	for _, tamper := range []struct {
		name, sql, want string
	}{
		{"dictionary edited", `DROP TRIGGER case_dicts_no_update; UPDATE case_dicts SET dict = x'01' || substr(dict, 2, 40) WHERE id = 1`,
			"case dictionary #1 was changed outside cmord"},
		{"dictionary deleted", `DROP TRIGGER case_dicts_no_delete; DELETE FROM case_dicts WHERE id = 1`,
			"case dictionary #1 was deleted outside cmord"},
		{"deflated case edited", `UPDATE practice_data SET data = substr(data, 1, length(data) - 3) WHERE id = 2`,
			"practice #2 was changed outside cmord"},
	} {
		t.Run(tamper.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ids := writeChunk(t, s, 0, 20, false)
			verifyOK(t, s, "before")
			if _, err := s.w.Exec(tamper.sql); err != nil {
				t.Fatal(err)
			}
			s.dropCaseDicts() // as a daemon started after the edit
			rep, err := s.Verify(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range rep.Problems {
				found = found || strings.Contains(p, tamper.want)
			}
			if !found {
				t.Errorf("verify: %q; want a line with %q", rep.Problems, tamper.want)
			}
			list, err := s.QueryPractices(ctx, PracticeFilter{})
			if err != nil || len(list) != len(ids) {
				t.Errorf("listing after the edit: %d of %d practices, %v", len(list), len(ids), err)
			}
			_, ps, err := s.ReadyRequestsWithPractices(ctx, nil, "REQ", 0, 100)
			if err != nil || len(ps) != len(ids) {
				t.Fatalf("the build's read: %d of %d practices, %v", len(ps), len(ids), err)
			}
			// The build fails the practices whose case no longer decodes, and those alone.
			failed := 0
			for _, p := range ps {
				if _, err := p.UscenteData(); err != nil {
					failed++
				}
			}
			if failed == 0 || (tamper.name == "deflated case edited" && failed != 1) {
				t.Errorf("%d of %d cases fail to decode for the build", failed, len(ps))
			}
		})
	}
}

// An archive from before migration 0038 reads the same after it and verifies, with
// no recorded chain record changed and none added by the migration; the next chunk
// deflates its cases.
func TestCaseDictsUpgrade(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	withMigrations(t, "0037_request_built_history", nil)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := writeChunk(t, s, 0, 10, false)
	var legacy int64
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		d, p := dictCase(10)
		p.Data = d.Marshal()
		if err := s.CreatePractice(ctx, tx, p, HistoryEntry{Flow: "uscente.morosi"}); err != nil {
			return err
		}
		legacy = p.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	chainBefore := chainHashes(t, s)
	s.Close()
	migrationSource = migrationFS
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := chainHashes(t, s); got != chainBefore {
		t.Errorf("the migration changed or added chain records:\n got %s\nwant %s", got, chainBefore)
	}
	for _, id := range old {
		if st := storedCase(t, s, id); !flows.IsCompactUscenteData(st) {
			t.Errorf("case of practice #%d stored %q, want it left compact", id, st)
		}
	}
	checkCases(t, s, 0, old)
	if p, err := s.PracticeByID(ctx, nil, legacy); err != nil || !bytes.Equal(p.Data, func() []byte { d, _ := dictCase(10); return d.Marshal() }()) {
		t.Errorf("JSON case reads %s, %v", p.Data, err)
	}
	verifyOK(t, s, "after the upgrade")
	next := writeChunk(t, s, 11, 30, false)
	if st := storedCase(t, s, next[5]); !IsDeflatedCase(st) {
		t.Errorf("a case written after the upgrade is stored %q, want form 2", st)
	}
	checkCases(t, s, 11, next)
	verifyOK(t, s, "after a chunk on the upgraded archive")
}

// chainHashes is every chain record's seq and hash.
func chainHashes(t *testing.T, s *Store) string {
	t.Helper()
	var out string
	if err := s.Read().QueryRow(`SELECT coalesce(group_concat(seq || ':' || hash, ' '), '') FROM (SELECT seq, hash FROM chain ORDER BY seq)`).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The reader of form 2 never panics nor allocates without end, whatever the bytes: a
// damaged stream is an error.
func FuzzInflateCase(f *testing.F) {
	_, p := dictCase(0)
	_, q := dictCase(1)
	d := &caseDeflater{head: []byte{caseDeflated, 1}}
	var err error
	if d.w, err = newDeflateWriter(&d.buf, p.Data); err != nil {
		f.Fatal(err)
	}
	good, err := d.deflate(q.Data)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[2:])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, stream []byte) {
		b, err := inflateCase(stream, p.Data)
		if err == nil && (len(b) > maxCaseSize || !flows.IsCompactUscenteData(b)) {
			t.Fatalf("inflated %d bytes, not a compact case, without an error", len(b))
		}
	})
}

// BenchmarkCaseDeflate is the handler's cost of a case stored deflated (one a case of
// its chunk's dictionary), and BenchmarkCaseInflate its readers'.
func BenchmarkCaseDeflate(b *testing.B) {
	_, dict := dictCase(0)
	cases := make([][]byte, 64)
	for i := range cases {
		_, p := dictCase(1 + i)
		cases[i] = p.Data
	}
	d := &caseDeflater{head: []byte{caseDeflated, 1}}
	var err error
	if d.w, err = newDeflateWriter(&d.buf, dict.Data); err != nil {
		b.Fatal(err)
	}
	n := 0
	for i := 0; b.Loop(); i++ {
		out, err := d.deflate(cases[i%len(cases)])
		if err != nil {
			b.Fatal(err)
		}
		n += len(out)
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/case")
}

func BenchmarkCaseInflate(b *testing.B) {
	_, dict := dictCase(0)
	d := &caseDeflater{head: []byte{caseDeflated, 1}}
	var err error
	if d.w, err = newDeflateWriter(&d.buf, dict.Data); err != nil {
		b.Fatal(err)
	}
	_, p := dictCase(1)
	st, err := d.deflate(p.Data)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := inflateCase(st[2:], dict.Data); err != nil {
			b.Fatal(err)
		}
	}
}

// A case deflated ahead (CasePredeflater, on the handler's reader) is stored as the
// chunk's transaction would store it deflating it itself: the same practice_data and
// case_dicts rows byte for byte, when the reader's guess of the dictionary holds, when
// it does not (the chunk's first case is not the first it created), when a case
// stored is not the one deflated ahead, and for a case whose stream is not smaller
// than its compact form.
func TestPredeflatedCasesStoredAsDeflated(t *testing.T) {
	ctx := context.Background()
	random := func(i int) []byte { // incompressible: stays compact either way
		b := []byte{0x01}
		x := uint32(2463534242 + i)
		for range 400 {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b = append(b, byte(x))
		}
		return b
	}
	// chunks of cases; guess[k] is the case the reader took for chunk k's first.
	chunks := [][]int{{0, 1, 2, 3, 4}, {5, 6, 7}, {8, 9, 10, 11}}
	guess := []int{0, 99, 8}
	data := func(i int) []byte {
		if i == 10 {
			return random(i)
		}
		_, p := dictCase(i)
		return p.Data
	}
	dump := func(s *Store) string {
		var out strings.Builder
		for _, q := range []string{`SELECT id, hex(data) FROM practice_data ORDER BY id`, `SELECT id, hex(dict) FROM case_dicts ORDER BY id`} {
			rows, err := s.Read().Query(q)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id int64
				var h string
				if err := rows.Scan(&id, &h); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&out, "%d %s\n", id, h)
			}
			rows.Close()
		}
		return out.String()
	}
	var dumps []string
	hits := 0
	for _, ahead := range []bool{false, true} {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		pd := s.CasePredeflater()
		for k, chunk := range chunks {
			var pres []*PredeflatedCase
			if ahead {
				pd.NewChunk()
				if _, err := pd.Deflate(data(guess[k])); err != nil {
					t.Fatal(err)
				}
				for _, i := range chunk {
					d := data(i)
					if i == 6 {
						d = data(1) // deflated ahead from another case than the one stored
					}
					pre, err := pd.Deflate(d)
					if err != nil {
						t.Fatal(err)
					}
					pres = append(pres, pre)
				}
			}
			err := s.Write(ctx, func(tx *sql.Tx) error {
				st, err := s.PreparePractices(ctx, tx)
				if err != nil {
					return err
				}
				for n, i := range chunk {
					_, p := dictCase(i)
					p.Data = data(i)
					var pre *PredeflatedCase
					if ahead {
						pre = pres[n]
					}
					if err := st.QueueCreateCase(ctx, p, HistoryEntry{Flow: "uscente.morosi"}, &Request{Flow: "REQ", CPUtente: fmt.Sprintf("E25%07d", i)}, pre); err != nil {
						st.Close(ctx)
						return err
					}
				}
				if ahead {
					for n, i := range chunk {
						if pres[n] != nil && guess[k] == chunk[0] && i != 6 {
							hits++
						}
					}
				}
				return st.Close(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		dumps = append(dumps, dump(s))
		s.Close()
	}
	if dumps[0] != dumps[1] {
		t.Errorf("stored with cases deflated ahead:\n%s\nwant, as deflated by the transaction:\n%s", dumps[1], dumps[0])
	}
	if !strings.Contains(dumps[0], "\n") || hits < 8 {
		t.Errorf("the test took %d cases deflated ahead", hits)
	}
	if pd := (&Store{}).CasePredeflater(); pd != nil {
		t.Errorf("a store without case_dicts deflates ahead")
	}
}
