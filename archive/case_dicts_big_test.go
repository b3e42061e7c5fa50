package archive

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/flows"
)

// bigCase is dictCase(i) with n invoices (each with its own number and text), so
// that its compact form can pass deflate's 32 KiB window, or maxCaseSize.
func bigCase(i, n int) (flows.UscenteData, *Practice) {
	d, p := dictCase(i)
	for k := 0; k < n; k++ {
		d.Case.Invoices = append(d.Case.Invoices, flows.Invoice{Number: fmt.Sprintf("FX%d-%07d-%s", i, k, strings.Repeat("z", k%13)),
			Issued: flows.D(2024, time.Month(1+k%12), 1+k%28), Amount: flows.Amount(1000 + k*7 + i), Unpaid: flows.Amount(500 + k*3)})
	}
	p.Data = flows.EncodeUscenteData(&d, p.CaseRow())
	return d, p
}

// A chunk's cases of any size read back as written: a dictionary past deflate's 32 KiB
// window, and a case whose compact form is past maxCaseSize (which the readers refuse
// to inflate to, so it must not be stored deflated).
func TestCaseDictsBigCases(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int // invoices added to each case of the chunk, in order (the first is the dictionary)
	}{
		{"dictionary past deflate's window", []int{3000, 3000, 10, 3000}},
		{"small dictionary, big cases", []int{0, 3000, 40000}},
		{"case past maxCaseSize", []int{0, 70000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var ids []int64
			want := map[int64][]byte{}
			if err := s.Write(ctx, func(tx *sql.Tx) error {
				st, err := s.PreparePractices(ctx, tx)
				if err != nil {
					return err
				}
				for k, n := range tc.sizes {
					d, p := bigCase(k, n)
					if !flows.IsCompactUscenteData(p.Data) {
						t.Fatalf("case %d not compact", k)
					}
					if err := st.QueueCreate(ctx, p, HistoryEntry{Flow: "uscente.morosi"}, &Request{Flow: "REQ", CPUtente: fmt.Sprintf("E25%07d", k)}); err != nil {
						st.Close(ctx)
						return err
					}
					ids = append(ids, p.ID)
					want[p.ID] = d.Marshal()
				}
				return st.Close(ctx)
			}); err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 2; round++ {
				for k, id := range ids {
					p, err := s.PracticeByID(ctx, nil, id)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(p.Data, want[id]) {
						st := storedCase(t, s, id)
						t.Errorf("case %d (%d invoices, stored %d bytes, form %#x) reads %d bytes %.80q, want %d bytes",
							k, tc.sizes[k], len(st), st[0], len(p.Data), p.Data, len(want[id]))
					}
				}
				s.dropCaseDicts()
			}
			verifyOK(t, s, tc.name)
		})
	}
}
