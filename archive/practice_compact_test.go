package archive

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
)

// A uscente case stored in the compact form (flows.EncodeUscenteData, a blob without
// the row's point, customer, name and switch) reads back for every reader as the JSON
// it would have been stored as, beside a case stored as JSON by an earlier version; the
// build reads it compact and decodes the same case; the state chain verifies, and a
// case edited behind cmord's back — one byte of the blob, or the blob replaced by the
// JSON of the same case — is reported as its practice changed outside cmord.
func TestPracticeCompactCase(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := flows.UscenteData{Case: flows.Case{Sector: "E", POD: "IT001E00000042", CustomerCF: "VRDGPP70A01H501X", CustomerName: "Giuseppe Verdi",
		SwitchDate: flows.D(2025, 3, 1), Voltage: "BT", Invoices: []flows.Invoice{{Number: "F1", Issued: flows.D(2024, 12, 10), Amount: 15_000, Unpaid: 15_000}},
		Spend: []flows.MonthSpend{{Month: flows.D(2024, 1, 1), Amount: 7_000}}},
		Audit:  &flows.CMORAudit{RequestDate: flows.D(2025, 10, 15), Credit: 15_000, CMOR: 7_000, Counted: []string{"F1"}},
		Inputs: []flows.InputRef{{FileID: 1, Lines: []int{2}}}}
	newPractice := func(key string) *Practice {
		return &Practice{CaseKey: key, Role: "uscente", Sector: "E", CompanyPIVA: "01234567890", Point: data.Case.POD,
			CustomerID: data.Case.CustomerCF, CustomerName: data.Case.CustomerName, SwitchDate: data.Case.SwitchDate, State: "READY"}
	}
	compact, legacy := newPractice("U|compact"), newPractice("U|json")
	compact.Data = flows.EncodeUscenteData(&data, compact.CaseRow())
	legacy.Data = data.Marshal()
	if !flows.IsCompactUscenteData(compact.Data) || len(compact.Data)*3 > len(legacy.Data) {
		t.Fatalf("compact case %d bytes, JSON %d: want the compact form, at most a third", len(compact.Data), len(legacy.Data))
	}
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		if err := s.CreatePractice(ctx, tx, legacy, HistoryEntry{Flow: "uscente.morosi"}); err != nil {
			return err
		}
		// The morosi handler's path: queued, inserted by Flush, with its request.
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		if err := st.QueueCreate(ctx, compact, HistoryEntry{Flow: "uscente.morosi"}, &Request{Flow: "REQ", CPUtente: "E250000001"}); err != nil {
			st.Close(ctx)
			return err
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	var kind string
	var stored []byte
	if err := s.Read().QueryRow(`SELECT typeof(data), data FROM practice_data WHERE id = ?`, compact.ID).Scan(&kind, &stored); err != nil {
		t.Fatal(err)
	}
	// The handler's chunk stores it deflated against its dictionary (itself, the
	// chunk's first case), the other writers compact.
	if kind != "blob" || !IsDeflatedCase(stored) {
		t.Errorf("stored %s %q, want form 2 as a blob", kind, stored)
	}
	if c, err := s.expandCase(ctx, s.r, stored); err != nil || !bytes.Equal(c, compact.Data) {
		t.Errorf("stored %q inflates to %q, %v; want the compact form %q", stored, c, err, compact.Data)
	}

	// Every reader (show, exports, the handlers) gets JSON, the same for both.
	want := data.Marshal()
	for _, id := range []int64{compact.ID, legacy.ID} {
		p, err := s.PracticeByID(ctx, nil, id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Data, want) || !json.Valid(p.Data) {
			t.Errorf("practice #%d reads %s, want %s", id, p.Data, want)
		}
	}
	list, err := s.QueryPractices(ctx, PracticeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if !bytes.Equal(p.Data, want) {
			t.Errorf("listed practice #%d reads %s, want %s", p.ID, p.Data, want)
		}
	}
	// The build gets it as stored and decodes the same case.
	_, ps, err := s.ReadyRequestsWithPractices(ctx, nil, "REQ", 0, 10)
	if err != nil || len(ps) != 1 {
		t.Fatalf("ready requests: %d practices, %v", len(ps), err)
	}
	if got, err := ps[0].UscenteData(); err != nil || !reflect.DeepEqual(got, data) {
		t.Errorf("the build decodes %+v, %v; want %+v", got, err, data)
	}
	verifyOK(t, s, "with a compact case")

	for _, edit := range []struct {
		name  string
		value any
	}{
		{"one byte of the blob", append(append([]byte(nil), stored[:len(stored)-1]...), stored[len(stored)-1]^1)},
		{"the same case as JSON", string(want)},
	} {
		if _, err := s.w.Exec(`UPDATE practice_data SET data = ? WHERE id = ?`, edit.value, compact.ID); err != nil {
			t.Fatal(err)
		}
		rep, err := s.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "changed outside cmord") || !strings.Contains(rep.Problems[0], "E250000001") && !strings.Contains(rep.Problems[0], "#2") {
			t.Errorf("%s edited outside cmord: problems %q, want one about the practice", edit.name, rep.Problems)
		}
	}
	// Back as it was: verifies again.
	if _, err := s.w.Exec(`UPDATE practice_data SET data = ? WHERE id = ?`, stored, compact.ID); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, "with the case put back")
}

// Saving a practice (a state change, an SII answer, a later extract) writes its case
// only when the case changed: the compact case of a practice saved with the JSON it
// read stays the same blob, as does a JSON case of an earlier version; a changed case
// is stored compact when that gives its readers the same JSON, and is what they read.
// Through both save paths (Store.SavePractice and PracticeStmts.Save); the chain
// verifies after each.
func TestSaveKeepsOrCompactsCase(t *testing.T) {
	ctx := context.Background()
	data := flows.UscenteData{Case: flows.Case{Sector: "E", POD: "IT001E00000042", CustomerCF: "VRDGPP70A01H501X", CustomerName: "Giuseppe Verdi",
		SwitchDate: flows.D(2025, 3, 1), Voltage: "BT", Invoices: []flows.Invoice{{Number: "F1", Issued: flows.D(2024, 12, 10), Amount: 15_000, Unpaid: 15_000}}},
		Audit: &flows.CMORAudit{RequestDate: flows.D(2025, 10, 15), Credit: 15_000, CMOR: 7_000, Counted: []string{"F1"}}}
	changed := data
	changed.Audit = &flows.CMORAudit{RequestDate: flows.D(2025, 10, 16), Credit: 15_000, CMOR: 7_500, Counted: []string{"F1"}}
	for _, tc := range []struct {
		name        string
		stored      func(p *Practice) json.RawMessage // as created
		save        flows.UscenteData                 // the case the practice is saved with
		wantStored  func(p *Practice, before []byte) []byte
		wantCompact bool
	}{
		{"compact, saved unchanged: the same blob", func(p *Practice) json.RawMessage { return flows.EncodeUscenteData(&data, p.CaseRow()) }, data,
			func(_ *Practice, before []byte) []byte { return before }, true},
		{"JSON of an earlier version, saved unchanged: the same text", func(*Practice) json.RawMessage { return data.Marshal() }, data,
			func(_ *Practice, before []byte) []byte { return before }, false},
		{"compact, case changed: the new case, compact", func(p *Practice) json.RawMessage { return flows.EncodeUscenteData(&data, p.CaseRow()) }, changed,
			func(p *Practice, _ []byte) []byte { return flows.EncodeUscenteData(&changed, p.CaseRow()) }, true},
		{"JSON, case changed: the new case, compact", func(*Practice) json.RawMessage { return data.Marshal() }, changed,
			func(p *Practice, _ []byte) []byte { return flows.EncodeUscenteData(&changed, p.CaseRow()) }, true},
	} {
		for _, path := range []string{"Store.SavePractice", "PracticeStmts.Save"} {
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				s, err := Open(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				p := &Practice{CaseKey: "U|k", Role: "uscente", Sector: "E", CompanyPIVA: "01234567890", Point: data.Case.POD,
					CustomerID: data.Case.CustomerCF, CustomerName: data.Case.CustomerName, SwitchDate: data.Case.SwitchDate, State: "READY"}
				p.Data = tc.stored(p)
				if err := s.Write(ctx, func(tx *sql.Tx) error { return s.CreatePractice(ctx, tx, p, HistoryEntry{Flow: "uscente.morosi"}) }); err != nil {
					t.Fatal(err)
				}
				storedCase := func() []byte {
					var b []byte
					if err := s.Read().QueryRow(`SELECT data FROM practice_data WHERE id = ?`, p.ID).Scan(&b); err != nil {
						t.Fatal(err)
					}
					return b
				}
				before := storedCase()
				read, err := s.PracticeByID(ctx, nil, p.ID) // what a handler saves: the JSON it read
				if err != nil {
					t.Fatal(err)
				}
				read.CauseCode = "000"
				if !reflect.DeepEqual(tc.save, data) {
					read.Data = tc.save.Marshal()
				}
				if err := s.Write(ctx, func(tx *sql.Tx) error {
					if path == "Store.SavePractice" {
						return s.SavePractice(ctx, tx, &read)
					}
					st, err := s.PreparePractices(ctx, tx)
					if err != nil {
						return err
					}
					if err := st.Save(ctx, &read); err != nil {
						st.Close(ctx)
						return err
					}
					return st.Close(ctx)
				}); err != nil {
					t.Fatal(err)
				}
				got := storedCase()
				if want := tc.wantStored(p, before); !bytes.Equal(got, want) || flows.IsCompactUscenteData(got) != tc.wantCompact {
					t.Errorf("stored case %q (compact %v), want %q (compact %v)", got, flows.IsCompactUscenteData(got), want, tc.wantCompact)
				}
				after, err := s.PracticeByID(ctx, nil, p.ID)
				if err != nil {
					t.Fatal(err)
				}
				if want := tc.save.Marshal(); !bytes.Equal(after.Data, want) || after.CauseCode != "000" {
					t.Errorf("read back %s cause %q, want %s cause 000", after.Data, after.CauseCode, want)
				}
				verifyOK(t, s, "after the save")
			})
		}
	}
}
