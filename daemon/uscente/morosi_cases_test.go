package uscente

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
)

// The sort pass reads the file on a goroutine of its own: every row before a row that
// stops the reading still gives its findings, in file order, and the error is the
// reader's; a cancelled context stops it; a whole file gives every row, sorted by key.
func TestSortRowsByKeyAcrossBatches(t *testing.T) {
	const header = "SETTORE;COD_POD;CF_CLIENTE;DENOMINAZIONE;DATA_SWITCH\n"
	row := func(i int) string {
		return fmt.Sprintf("E;IT001E%08d;RSSMRA85T10A562S;Rossi;01/03/2025\n", (i*7919)%1000)
	}
	var rows strings.Builder
	for i := range 1000 {
		rows.WriteString(row(i))
	}
	long := "E;IT001E00000001;RSSMRA85T10A562S;" + strings.Repeat("x", 2<<20) + ";01/03/2025\n"
	flow := flows.DefaultCatalog().Input("uscente.morosi")
	for _, tc := range []struct {
		name     string
		data     string
		cancel   bool
		wantRows int    // rows handed to rowFindings
		wantErr  string // "" = the merge opens
	}{
		{"whole file", header + rows.String(), false, 1000, ""},
		{"a line too long after 600 rows", header + rows.String()[:strings.Index(rows.String(), row(600))] + long + row(601), false, 600, "longer than"},
		{"cancelled", header + rows.String(), true, 0, context.Canceled.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			rd := flows.NewCSVReader(strings.NewReader(tc.data), flow, flows.ReadOptions{FileName: "x.csv"})
			var lines []int
			n := 0
			m, err := sortRowsByKey(ctx, rd, flow, t.TempDir(), func(fs []flows.Finding) { n++ })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				var fd flows.Finding
				if tc.wantRows > 0 && !errors.As(err, &fd) {
					t.Errorf("the reader's finding is lost: %T %v", err, err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				prev := ""
				for {
					rec, _, ok, err := m.next()
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					key := flows.MorosiKey(rec)
					if key < prev {
						t.Fatalf("line %d: key %s after %s", rec.Line, key, prev)
					}
					prev = key
					lines = append(lines, rec.Line)
				}
				if len(lines) != tc.wantRows {
					t.Errorf("%d rows merged, want %d", len(lines), tc.wantRows)
				}
			}
			if n != tc.wantRows {
				t.Errorf("%d rows gave their findings, want %d", n, tc.wantRows)
			}
		})
	}
}
