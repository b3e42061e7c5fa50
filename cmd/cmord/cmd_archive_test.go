package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
)

// TestArchiveHistoryByIDOrName: `archive history` takes a file ID, as show and cat
// do, and still a logical name; a bare number that is no file's ID is a name.
func TestArchiveHistoryByIDOrName(t *testing.T) {
	_, stateDir := cliFixture(t)
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	// A second version of the morosi extract (new content, same name and source).
	v2, err := s.Ingest(context.Background(), archive.IngestRequest{Source: "folder:morosi", Name: "morosi_20250301.csv", Direction: "in",
		Kind: "uscente.morosi", Reader: strings.NewReader("POD;CF;IMPORTO\r\n"), At: cliFixtureAt.Add(24 * time.Hour)})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	id2 := strconv.FormatInt(v2.File.ID, 10)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // in order
		stderr string
		rows   int // data rows of the table
	}{
		{"by name", []string{"morosi_20250301.csv"}, exitOK, []string{"SOURCE", "folder:morosi  1", "folder:morosi  2"}, "", 2},
		{"by ID of the first version", []string{"1"}, exitOK, []string{"file #1 is morosi_20250301.csv from folder:morosi; all its versions:", "folder:morosi  1", "folder:morosi  2"}, "", 2},
		{"by #ID of the second version", []string{"#" + id2}, exitOK, []string{"file #" + id2 + " is morosi_20250301.csv", "folder:morosi  2"}, "", 2},
		{"by ID, flags after", []string{"2", "--source", "built"}, exitOK, []string{"file #2 is CMOR_REQ_00488410010_20250310.csv from built", "built"}, "", 1},
		{"ID from another source", []string{"1", "--source", "built"}, exitUsage, nil, "file #1 comes from folder:morosi, not built", 0},
		{"no such #ID", []string{"#999"}, exitFindings, nil, "no archived file #999", 0},
		{"a number that is no ID is a name", []string{"999"}, exitFindings, []string{`no archived file is named "999"`}, "", 0},
		{"no such name", []string{"nope.csv"}, exitFindings, []string{`no archived file is named "nope.csv"`}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"archive", "history"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errOut)
			}
			rest := out
			for _, w := range tt.stdout {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stdout lacks %q (in this order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.stderr)
			}
			if tt.rows > 0 {
				rows := 0
				for _, l := range strings.Split(out, "\n") {
					if f := strings.Fields(l); len(f) == 8 && f[0] != "SOURCE" {
						rows++
					}
				}
				if rows != tt.rows {
					t.Errorf("%d rows, want %d:\n%s", rows, tt.rows, out)
				}
			}
		})
	}
}
