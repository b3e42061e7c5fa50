package main

import (
	"context"
	"database/sql"
	"path/filepath"
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

// TestArchiveAnchorAndVerify: `archive anchor` prints the head in the form
// `archive verify --anchor` reads back; a later state that extends it verifies, a
// state rewritten consistently from inside the database (the chain thrown away and
// sealed afresh by cmord's own code) does not, and a malformed anchor is a usage
// error. Issue 13.
func TestArchiveAnchorAndVerify(t *testing.T) {
	_, stateDir := cliFixture(t)
	code, out, errOut := runCLI(t, "archive", "anchor")
	if code != exitOK || !strings.HasPrefix(out, "cmord-anchor/1 seq=") || strings.Count(out, "\n") != 1 {
		t.Fatalf("archive anchor: %d %q %q", code, out, errOut)
	}
	anchor := strings.TrimSpace(out)
	if _, err := archive.ParseAnchor(anchor); err != nil {
		t.Fatalf("the anchor printed does not parse: %v", err)
	}
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(context.Background(), archive.IngestRequest{Source: "folder:morosi", Name: "later.csv", Direction: "in",
		Kind: "uscente.morosi", Reader: strings.NewReader("POD;CF\r\n"), At: cliFixtureAt.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	seqHash := strings.Fields(anchor)[1][len("seq="):] + ":" + strings.Fields(anchor)[2][len("hash="):]
	for _, a := range []string{anchor, seqHash} {
		code, out, errOut = runCLI(t, "archive", "verify", "--anchor", a)
		if code != exitOK || !strings.Contains(out, "the chain extends the anchor") || !strings.Contains(out, "archive OK") {
			t.Fatalf("verify --anchor %q after more writes: %d\n%s%s", a, code, out, errOut)
		}
	}
	// The consistent rewrite: only the anchor tells.
	rewriteChain(t, stateDir)
	code, out, _ = runCLI(t, "archive", "verify")
	if code != exitOK {
		t.Fatalf("without the anchor a consistent rewrite is not visible, as documented; got %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "archive", "verify", "--anchor", anchor)
	if code != exitFindings || !strings.Contains(out, "PROBLEM: state chain") || !strings.Contains(out, "anchor") {
		t.Fatalf("verify --anchor after a consistent rewrite: %d\n%s", code, out)
	}
	for _, bad := range []string{"nonsense", "12:abc", "cmord-anchor/9 seq=1 hash=" + strings.Repeat("a", 64)} {
		if code, _, errOut := runCLI(t, "archive", "verify", "--anchor", bad); code != exitUsage || !strings.Contains(errOut, "--anchor") {
			t.Errorf("--anchor %q: %d %q, want a usage error", bad, code, errOut)
		}
	}
}

// rewriteChain forges the state the way someone with the database and cmord's
// source could: the chain dropped and the chain migration run again, which seals
// the state as it is.
func rewriteChain(t *testing.T, stateDir string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(stateDir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE files SET name = 'forged.csv' WHERE id = 1`, `DROP TABLE chain`, `DELETE FROM schema_migrations WHERE name = '0030_chain'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestArchiveShowLayout: `archive show` prints its fields as one table whose values
// start in one column however long a meta key is (practices_created pushed its value
// out of line), names a dropped file's path as where it was dropped (it read as where
// the file is; once taken it moved to done/ or rejected/), and prints an event with no
// detail as its type alone, with no trailing blanks. Golden: testdata/archive_show.
func TestArchiveShowLayout(t *testing.T) {
	_, stateDir := cliFixture(t)
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Now = func() time.Time { return cliFixtureAt.Add(time.Hour) }
	ctx := context.Background()
	ids := map[string]int64{}
	for _, f := range []struct{ name, state string }{{"morosi_taken.csv", archive.StateProcessed}, {"morosi_waiting.csv", ""}} {
		res, err := s.Ingest(ctx, archive.IngestRequest{Source: "folder:morosi", Name: f.name, Direction: "in", Kind: "uscente.morosi",
			Reader: strings.NewReader("POD;CF\r\n" + f.name + "\r\n"), At: cliFixtureAt.Add(time.Hour),
			Meta: map[string]string{"path": "/srv/cmord/in/morosi/" + f.name}})
		if err != nil {
			t.Fatal(err)
		}
		ids[f.name] = res.File.ID
		if f.state == "" {
			continue
		}
		if err := s.Write(ctx, func(tx *sql.Tx) error {
			return s.SetFileState(ctx, tx, res.File.ID, f.state, "", map[string]string{"rows": "16", "practices_created": "4", "waiting_window": "1"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	for _, tt := range []struct {
		name, golden string
		args         []string
	}{
		{"a file taken, long meta keys, an event with no detail", "taken.txt", []string{strconv.FormatInt(ids["morosi_taken.csv"], 10)}},
		{"a file not taken yet", "waiting.txt", []string{strconv.FormatInt(ids["morosi_waiting.csv"], 10)}},
		{"a built file (fixed labels only)", "built.txt", []string{"2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"archive", "show"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			fields, col := true, -1
			for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if strings.TrimRight(l, " ") != l {
					t.Errorf("trailing blanks: %q", l)
				}
				if l == "Events:" {
					fields = false
				}
				if !fields || !strings.HasPrefix(l, "  ") {
					continue
				}
				// The value starts after the label's run of blanks: one column for all.
				label := strings.TrimLeft(l, " ")
				i := strings.Index(label, " ")
				if strings.HasPrefix(label, "dropped as") || strings.HasPrefix(label, "made ") {
					i = strings.Index(label[i+1:], " ") + i + 1
				}
				c := len(l) - len(strings.TrimLeft(label[i:], " ")) // byte offset of the value
				if col < 0 {
					col = c
				} else if c != col {
					t.Errorf("value of %q at column %d, others at %d:\n%s", l, c, col, out)
				}
			}
			goldenCLI(t, "archive_show", tt.golden, []byte(out))
		})
	}
}
