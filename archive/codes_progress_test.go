package archive

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cmord/cmord/flows"
)

// NewCode never hands out a code already issued, whether a practice or a request
// carries it, wherever it falls in the window of codes looked up together, and a
// code it issued earlier in the same transaction is not issued again.
func TestNewCodeSkipsIssuedCodes(t *testing.T) {
	render := func(seq int64) (string, error) { return fmt.Sprintf("E25%07d", seq), nil }
	tests := []struct {
		name   string
		issued []int64 // sequence values whose codes exist already (practice or request)
		draw   int
		want   []int64
	}{
		{"none issued", nil, 3, []int64{1, 2, 3}},
		{"first issued", []int64{1}, 2, []int64{2, 3}},
		{"run in the middle", []int64{2, 3, 4}, 3, []int64{1, 5, 6}},
		{"across the lookup window", []int64{codeWindowSize, codeWindowSize + 1}, codeWindowSize + 1,
			append(seqRange(1, codeWindowSize), codeWindowSize+2, codeWindowSize+3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			ctx := context.Background()
			err := s.Write(ctx, func(tx *sql.Tx) error {
				for i, v := range tt.issued {
					code, _ := render(v)
					p := &Practice{CaseKey: fmt.Sprintf("U|old%d", i), Role: "uscente", Sector: "E", CompanyPIVA: "x", Point: "p", CustomerID: "c", State: "SENT"}
					if i%2 == 0 {
						p.CPUtente = code
					}
					if err := s.CreatePractice(ctx, tx, p, HistoryEntry{}); err != nil {
						return err
					}
					if i%2 == 1 {
						if err := s.CreateRequest(ctx, tx, &Request{PracticeID: p.ID, Flow: "REQ", CPUtente: code}); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			err = s.Write(ctx, func(tx *sql.Tx) error {
				st, err := s.PreparePractices(ctx, tx)
				if err != nil {
					return err
				}
				defer st.Close(ctx)
				for i := 0; i < tt.draw; i++ {
					code, err := st.NewCode(ctx, "seq", render)
					if err != nil {
						return err
					}
					var v int64
					fmt.Sscanf(code, "E25%07d", &v)
					got = append(got, v)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("codes drawn %v, want %v", got, tt.want)
			}
		})
	}
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for v := from; v < to; v++ {
		out = append(out, v)
	}
	return out
}

// Progress saved chunk by chunk comes back whole, and is gone once cleared.
func TestFileProgressRoundTrip(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	res := ingest(t, s, "folder:x", "big.csv", "a;b\r\n1;2\r\n")
	id := res.File.ID
	if _, ok, err := s.LoadProgress(ctx, nil, id); err != nil || ok {
		t.Fatalf("fresh file: ok=%v err=%v", ok, err)
	}
	f1 := flows.Finding{File: "big.csv", Line: 3, Field: "COD_POD", Rule: "ID-POD", Value: "X", Message: "bad"}
	f2 := flows.Finding{File: "big.csv", Line: 9000, Rule: "CASE-ROWS", Message: "refused", Severity: "warning"}
	for _, step := range []struct {
		line  int
		added []flows.Finding
	}{{4097, []flows.Finding{f1}}, {8193, nil}, {12001, []flows.Finding{f2}}} {
		err := s.Write(ctx, func(tx *sql.Tx) error {
			return s.SaveProgress(ctx, tx, id, step.line, map[string]int{"rows": step.line - 1}, step.added)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	p, ok, err := s.LoadProgress(ctx, nil, id)
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if p.Line != 12001 || p.Counters["rows"] != 12000 || !reflect.DeepEqual(p.Findings, []flows.Finding{f1, f2}) {
		t.Errorf("progress %+v", p)
	}
	if err := s.Write(ctx, func(tx *sql.Tx) error { return s.ClearProgress(ctx, tx, id) }); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LoadProgress(ctx, nil, id); ok {
		t.Error("progress still there after ClearProgress")
	}
}

// Opening the archive leaves temp files alone (a CLI command beside a running daemon
// must not delete the blob it is writing); RemoveTemp, which the daemon calls holding
// the state lock, deletes them.
func TestTempBlobsRemovedOnlyOnRequest(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	tmp := filepath.Join(dir, "objects", "tmp", "put-123")
	if err := os.WriteFile(tmp, []byte("half a blob"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("Open removed an in-flight temp file: %v", err)
	}
	if err := s.Blobs.RemoveTemp(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("RemoveTemp left %s (%v)", tmp, err)
	}
}
