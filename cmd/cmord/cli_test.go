package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon"
	"github.com/cmord/cmord/daemon/receipt"
	"github.com/cmord/cmord/flows"
)

// TestFlagsAfterArguments: every verb that takes positional arguments also takes its
// flags after them, the way people type them. CMORD_CONFIG points nowhere, so a verb
// only succeeds if it read the --config that follows its argument.
func TestFlagsAfterArguments(t *testing.T) {
	cfg, _ := cliFixture(t)
	t.Setenv("CMORD_CONFIG", filepath.Join(t.TempDir(), "nowhere.toml"))
	mapping := "../../testdata/inputs/uscente.morosi.mapping.toml"
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"archive show", []string{"archive", "show", "1", "--config", cfg}, exitOK, "File #1  morosi_20250301.csv"},
		{"archive show, # and flag first", []string{"archive", "show", "--config", cfg, "#2"}, exitOK, "File #2"},
		{"archive history", []string{"archive", "history", "morosi_20250301.csv", "--config", cfg}, exitOK, "folder:morosi"},
		{"archive history --source after", []string{"archive", "history", "morosi_20250301.csv", "--config", cfg, "--source", "built"}, exitFindings, "no archived file"},
		{"archive cat", []string{"archive", "cat", "3", "--config", cfg}, exitOK, "E250000001;KO;5"},
		{"practice show", []string{"practice", "show", "G77", "--config", cfg}, exitOK, "Practice G77 (#3)"},
		{"practices show alias", []string{"practices", "show", "E250000001", "--config", cfg, "--format", "json"}, exitOK, `"cp_utente": "E250000001"`},
		{"exceptions resolve", []string{"exceptions", "resolve", "2", "--config", cfg, "--note", "fixed in billing"}, exitOK, "exception 2 (row_refused) resolved by tester"},
		{"validate", []string{"validate", "testdata/validate/one_bad_row.csv", "--kind", "uscente.morosi", "--mapping", mapping, "--on", "01/12/2025", "--config", cfg}, exitFindings, "rule ID-CF"},
		{"validate, -- ends flags", []string{"validate", "--mapping", mapping, "--config", cfg, "--", "testdata/validate/one_bad_row.csv"}, exitFindings, "one_bad_row.csv: uscente.morosi"},
		{"catalog check", []string{"catalog", "check", "../../flows/catalog_default.toml", "--mode", "replace"}, exitOK, "catalog OK"},
		{"flag error after the argument", []string{"archive", "show", "1", "--bogus"}, exitUsage, "cmord archive show: flag provided but not defined: -bogus"},
		{"second argument refused", []string{"archive", "show", "1", "--config", cfg, "2"}, exitUsage, "expects one file ID"},
		{"list verb refuses an argument among flags", []string{"practices", "--config", cfg, "IT001E00000001", "--role", "uscente"}, exitUsage, "unexpected argument IT001E00000001"},
		{"archive ls refuses an argument", []string{"archive", "ls", "x", "--config", cfg}, exitUsage, "unexpected argument x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("cmord %s: exit %d, want %d and %q\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.code, tt.want, out, errOut)
			}
		})
	}
}

// TestCountsAgree: every count printed agrees with its noun.
func TestCountsAgree(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "0 files"}, {1, "1 file"}, {2, "2 files"}} {
		if got := plural(tt.n, "file", "files"); got != tt.want {
			t.Errorf("plural(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	if got := plural(int64(1), "byte", "bytes"); got != "1 byte" {
		t.Errorf("plural(int64 1) = %q", got)
	}
	cliFixture(t)
	mapping := "../../testdata/inputs/uscente.morosi.mapping.toml"
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"validate one row, one error", []string{"validate", "--on", "01/12/2025", "--mapping", mapping, "testdata/validate/one_bad_row.csv"},
			[]string{"1 row, 1 error, 0 warnings"}, []string{"1 rows", "1 errors"}},
		{"archive verify", []string{"archive", "verify"}, []string{"checked 3 blobs (", "bytes) and "}, []string{"problems"}},
		{"catalog check", []string{"catalog", "check", "../../flows/catalog_default.toml"}, []string{"flows, ", "input kinds, ", "states)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, out, errOut := runCLI(t, tt.args...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}
}

// TestCommandGroups: a group (archive, hostkey, catalog, practice) lists its
// sub-commands one a line: on stdout with exit 0 when asked, on stderr with exit 2
// when the sub-command is missing or unknown.
func TestCommandGroups(t *testing.T) {
	tests := []struct {
		args      []string
		code      int
		onStdout  bool
		want      []string
		wantError string
	}{
		{[]string{"archive", "--help"}, exitOK, true, []string{"  cat      write an archived file's content", "  verify   check every page, blob, event and row", "  anchor   print the state chain's head"}, ""},
		{[]string{"archive", "-h"}, exitOK, true, []string{"  ls       list archived files"}, ""},
		{[]string{"help", "archive"}, exitOK, true, []string{"  history  every version"}, ""},
		{[]string{"hostkey", "--help"}, exitOK, true, []string{"Usage: cmord hostkey <sub-command>", "  fetch  print an SSH server's host keys"}, ""},
		{[]string{"catalog", "help"}, exitOK, true, []string{"  check  ", "  show   "}, ""},
		{[]string{"practice", "--help"}, exitOK, true, []string{"  show  one practice"}, ""},
		{[]string{"archive"}, exitUsage, false, []string{"  show     one archived file"}, "cmord archive: missing sub-command"},
		{[]string{"archive", "--config", "x.toml"}, exitUsage, false, []string{"  ls  "}, "cmord archive: missing sub-command"},
		{[]string{"hostkey", "get"}, exitUsage, false, []string{"  fetch  "}, `cmord hostkey: unknown sub-command "get"`},
		{[]string{"exceptions", "--help"}, exitOK, true, []string{"Sub-commands:", "exceptions resolve  close an exception by hand"}, ""},
		{[]string{"--help"}, exitOK, true, []string{"  archive verify", "  practices  "}, ""},
		{nil, exitUsage, false, []string{"Usage: cmord <command>"}, ""},
		{[]string{"practices", "--help"}, exitOK, true, []string{"  --state string", "JSON (--format json)", "  open_exceptions    integer"}, ""},
		{[]string{"practice", "show", "--help"}, exitOK, true, []string{"  --format string", "  history     [{at, from, to"}, ""},
		{[]string{"frobnicate"}, exitUsage, false, nil, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			where, other := out, errOut
			if !tt.onStdout {
				where, other = errOut, out
			}
			if other != "" {
				t.Errorf("unexpected output on the other stream: %q", other)
			}
			for _, w := range append(tt.want, tt.wantError) {
				if !strings.Contains(where, w) {
					t.Errorf("lacks %q:\n%s", w, where)
				}
			}
			if strings.Contains(where, "(hidden)") || strings.Contains(where, "practices show") {
				t.Errorf("an alias is listed:\n%s", where)
			}
		})
	}
}

// TestConfigNotFound: without a configuration the error says where cmord looked and
// what to do, with exit 2.
func TestConfigNotFound(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.toml")
	hint := "use --config FILE, set CMORD_CONFIG, or try `cmord demo`"
	tests := []struct {
		name string
		env  string
		args []string
		want []string
	}{
		{"nothing given", "", []string{"practices"},
			[]string{"no configuration file found; tried:", "--config: not given", "$CMORD_CONFIG: not set", DefaultConfigPath + ": does not exist", hint}},
		{"CMORD_CONFIG names a missing file", missing, []string{"exceptions"},
			[]string{"$CMORD_CONFIG=" + missing + ": does not exist", hint}},
		{"--config names a missing file", "", []string{"archive", "ls", "--config", missing},
			[]string{"--config " + missing + ": does not exist", hint}},
		{"--config after the argument", "", []string{"practice", "show", "X", "--config", missing},
			[]string{"--config " + missing + ": does not exist"}},
		{"check", "", []string{"check"}, []string{"tried:", hint}},
	}
	if _, err := os.Stat(DefaultConfigPath); err == nil {
		t.Skipf("%s exists on this machine", DefaultConfigPath)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CMORD_CONFIG", tt.env)
			code, out, errOut := runCLI(t, tt.args...)
			if code != exitUsage || out != "" {
				t.Errorf("exit %d, stdout %q; want exit 2 and nothing", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestUnknownFilterValues: --state takes the catalog's states (any case) and names
// them when refusing; other closed-list flags name their values too.
func TestUnknownFilterValues(t *testing.T) {
	cliFixture(t)
	tests := []struct {
		args []string
		code int
		want []string
		not  []string
	}{
		{[]string{"practices", "--state", "FOO"}, exitUsage,
			[]string{`--state "FOO": unknown practice state`, "uscente: DRAFT, WAITING_WINDOW, READY, BUILT, SENT", "entrante: ", "SUSP_REQUESTED"}, nil},
		{[]string{"practices", "--role", "entrante", "--state", "sent"}, exitUsage,
			[]string{`--state "sent": not a state of entrante practices`, "entrante: ", "CHARGED"}, []string{"uscente:"}},
		{[]string{"export", "--state", "READY,NOPE", "-o", filepath.Join(t.TempDir(), "x.csv")}, exitUsage, []string{`--state "NOPE"`}, nil},
		{[]string{"practices", "--state", "sent,Charged"}, exitOK, []string{"G250000001", "G77"}, []string{"E250000001"}},
		{[]string{"practices", "--role", "notary"}, exitUsage, []string{`--role "notary": want uscente or entrante`}, nil},
		{[]string{"practices", "--sector", "W"}, exitUsage, []string{`--sector "W": want E or G`}, nil},
		{[]string{"archive", "ls", "--direction", "sideways"}, exitUsage, []string{`--direction "sideways": want in or out`}, nil},
		{[]string{"archive", "ls", "--state", "lost"}, exitUsage, []string{`--state "lost": want one of received, processed, rejected, duplicate, built, published`}, nil},
		{[]string{"archive", "ls", "--state", "Published", "--direction", "OUT"}, exitOK, []string{"no files match"}, nil},
		{[]string{"practice", "show", "G77", "--format", "xml"}, exitUsage, []string{`--format "xml": want text or json`}, nil},
		{[]string{"catalog", "check", "x.toml", "--mode", "merge"}, exitUsage, []string{`--mode "merge": want extend or replace`}, nil},
		{[]string{"practices", "--limit", "-5"}, exitUsage, []string{"--limit -5: want 0 (all) or more"}, nil},
		{[]string{"exceptions", "--limit", "-1"}, exitUsage, []string{"--limit -1: want 0 (all) or more"}, nil},
		{[]string{"archive", "ls", "--limit", "-1"}, exitUsage, []string{"--limit -1: want 0 (all) or more"}, nil},
		{[]string{"export", "--limit", "-2", "-o", "-"}, exitUsage, []string{"--limit -2: want 0 (all) or more"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("lacks %q:\n%s%s", w, out, errOut)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out+errOut, n) {
					t.Errorf("has %q:\n%s%s", n, out, errOut)
				}
			}
		})
	}
}

// TestPracticesJSONShape: the JSON has exactly the documented fields, always present,
// and no internal blobs; practice show --format json adds history, requests, files
// (each once) and the open exceptions.
func TestPracticesJSONShape(t *testing.T) {
	cliFixture(t)
	documented := []string{"id", "cp_utente", "cp_gestore", "role", "sector", "point", "customer_id", "customer_name", "company_piva",
		"switch_date", "state", "state_since", "credit", "estimate", "previous_cmor", "cmor", "charged", "collected", "cause_code",
		"motivation", "window_open", "window_close", "suspension_term", "request_date", "answer_date", "linked_practice_id", "open_exceptions"}
	sort.Strings(documented)
	for _, f := range documented {
		if !strings.Contains(practicesJSONHelp, f) {
			t.Errorf("--help does not document %s", f)
		}
	}
	keysOf := func(m map[string]any) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		sort.Strings(k)
		return k
	}
	tests := []struct {
		name string
		args []string
		n    int
	}{
		{"all", []string{"practices", "--format", "json"}, 3},
		{"one", []string{"practices", "--format", "json", "--code", "E250000001"}, 1},
		{"none", []string{"practices", "--format", "json", "--pod", "IT001E99999999"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var recs []map[string]any
			if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != tt.n {
				t.Fatalf("%d records, %v:\n%s", len(recs), err, out)
			}
			for _, r := range recs {
				if got := keysOf(r); !reflect.DeepEqual(got, documented) {
					t.Errorf("fields %v\nwant %v", got, documented)
				}
			}
			if strings.Contains(out, `"data"`) || strings.Contains(out, "case_key") {
				t.Errorf("internal fields leak:\n%s", out)
			}
		})
	}

	code, out, errOut := runCLI(t, "practice", "show", "E250000001", "--format", "json")
	if code != exitOK {
		t.Fatalf("practice show --format json: exit %d: %s", code, errOut)
	}
	goldenCLI(t, "practice_show", "E250000001.json", []byte(out))
	var show struct {
		Practice   map[string]any   `json:"practice"`
		Requests   []map[string]any `json:"requests"`
		History    []map[string]any `json:"history"`
		Files      []practiceFileJSON
		Exceptions []map[string]any `json:"exceptions"`
	}
	if err := json.Unmarshal([]byte(out), &show); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(show.Practice); !reflect.DeepEqual(got, documented) {
		t.Errorf("practice fields %v", got)
	}
	if len(show.History) != 3 || len(show.Requests) != 1 || len(show.Exceptions) != 1 || len(show.Files) != 3 {
		t.Errorf("history %d, requests %d, exceptions %d, files %d; want 3, 1, 1, 3", len(show.History), len(show.Requests),
			len(show.Exceptions), len(show.Files))
	}
	for _, f := range show.Files {
		if f.ID == 3 && (!reflect.DeepEqual(f.Relations, []string{"answer", "input"}) || !reflect.DeepEqual(f.Lines, []int{2})) {
			t.Errorf("file #3: %+v", f)
		}
	}
	// An empty practice still has every list, empty rather than null.
	_, out, _ = runCLI(t, "practice", "show", "G77", "--format", "json")
	for _, k := range []string{`"requests": []`, `"files": []`, `"exceptions": []`} {
		if !strings.Contains(out, k) {
			t.Errorf("G77 lacks %s:\n%s", k, out)
		}
	}
}

// TestPracticeFileRows: a file is listed once per practice, with every relation and
// line; a file we wrote is "built", or "sent" once published, never an "answer".
func TestPracticeFileRows(t *testing.T) {
	in := archive.File{ID: 4, Direction: "in", State: archive.StateProcessed}
	built := archive.File{ID: 13, Direction: "out", State: archive.StateBuilt}
	sent := archive.File{ID: 16, Direction: "out", State: archive.StatePublished}
	export := archive.File{ID: 5, Direction: "out", State: archive.StatePublished}
	type row struct {
		id    int64
		rels  string
		lines string
	}
	tests := []struct {
		name  string
		links []archive.PracticeFile
		want  []row
	}{
		{"notice as answer and input: once", []archive.PracticeFile{{File: in, Relation: "answer", Line: 2}, {File: in, Relation: "input", Line: 2}},
			[]row{{4, "answer, input", "2"}}},
		{"built file linked as answer", []archive.PracticeFile{{File: built, Relation: "answer"}}, []row{{13, "built", ""}}},
		{"published file", []archive.PracticeFile{{File: sent, Relation: "built"}, {File: sent, Relation: "answer"}}, []row{{16, "sent", ""}}},
		{"export keeps its name", []archive.PracticeFile{{File: export, Relation: "export"}}, []row{{5, "export", ""}}},
		{"lines joined and sorted; files by id", []archive.PracticeFile{{File: built, Relation: "built"}, {File: in, Relation: "input", Line: 4},
			{File: in, Relation: "input", Line: 2}, {File: in, Relation: "input", Line: 3}},
			[]row{{4, "input", "2,3,4"}, {13, "built", ""}}},
		{"long run of lines", []archive.PracticeFile{{File: in, Relation: "input", Line: 2}, {File: in, Relation: "input", Line: 3},
			{File: in, Relation: "input", Line: 4}, {File: in, Relation: "input", Line: 5}}, []row{{4, "input", "2-5"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []row
			for _, r := range practiceFileRows(tt.links) {
				got = append(got, row{r.File.ID, strings.Join(r.Relations, ", "), joinLines(r.Lines)})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReasonTextIsBodyOnly: the daemon's part of NAME.reason.txt has no header of its
// own (intake writes the one header), says what happened, and counts its findings.
func TestReasonTextIsBodyOnly(t *testing.T) {
	f := flows.Finding{Line: 5, Field: "CF_CLIENTE", Rule: "ID-CF", Message: "check character wrong"}
	const refused = "The whole file was refused and not processed: nothing of it was taken in.\n"
	tests := []struct {
		name string
		res  daemon.Result
		want string
	}{
		{"reason only", daemon.Result{Reason: "header: column POD missing"}, refused + "Reason (technical detail): header: column POD missing\n"},
		{"one finding", daemon.Result{Reason: "every row refused", Findings: []flows.Finding{f}},
			refused + "Reason (technical detail): every row refused\n\nErrors (1):\n  line 5: check character wrong (field CF_CLIENTE, rule ID-CF)\n"},
		{"two findings, no reason", daemon.Result{Findings: []flows.Finding{f, f}}, refused + "\nErrors (2):\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := receipt.ReasonText("", tt.res.Reason, tt.res.Findings, "en")
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("got:\n%s\nwant prefix:\n%s", got, tt.want)
			}
			if strings.Contains(got, "refused at") || strings.HasPrefix(got, "m.csv\n") {
				t.Errorf("a second header:\n%s", got)
			}
		})
	}
}

// TestHelpGoesToStdout: --help of a verb is on stdout (so it pages), flags are shown
// as --flag, and bad flags print one line and a pointer to --help on stderr.
func TestHelpGoesToStdout(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{[]string{"archive", "ls", "--help"}, exitOK, []string{"Usage: cmord archive ls [flags]", "  --direction string", "  --limit int", "(default 50)"}, nil},
		{[]string{"practices", "-h"}, exitOK, []string{"  --limit int", "(default 100 for table"}, nil},
		{[]string{"validate", "--help"}, exitOK, []string{"Usage: cmord validate [flags] [--kind K]", "  --config FILE"}, nil},
		{[]string{"version", "--help"}, exitOK, []string{"print the version"}, nil},
		{[]string{"export", "--help"}, exitOK, []string{"  -o FILE\n", "  --switch-from DATE\n", "  --amount-min AMOUNT\n"}, nil},
		{[]string{"exceptions", "resolve", "--help"}, exitOK, []string{"  --note TEXT\n"}, nil},
		{[]string{"archive", "ls", "--limit", "x"}, exitUsage, nil, []string{"cmord archive ls: invalid value", "Run 'cmord archive ls --help'"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tt.code == exitOK && errOut != "" {
				t.Errorf("stderr not empty: %q", errOut)
			}
			if strings.Contains(out, "(default -1)") {
				t.Errorf("a sentinel default is shown:\n%s", out)
			}
		})
	}
}

// TestArchiveShowMetaSorted: a file's metadata prints in key order, the same on
// every run (it is a map underneath).
func TestArchiveShowMetaSorted(t *testing.T) {
	_, stateDir := cliFixture(t)
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Ingest(context.Background(), archive.IngestRequest{Source: "export", Name: "x.csv", Direction: "out", Kind: "export.csv",
		Reader: strings.NewReader("a;b\r\n"), At: cliFixtureAt, Meta: map[string]string{"rows": "1", "by": "tester", "args": "-o x.csv", "zone": "z"}})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(res.File.ID, 10)
	for range 3 {
		_, out, errOut := runCLI(t, "archive", "show", id)
		var keys []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 1 && containsStr([]string{"args", "by", "rows", "zone"}, f[0]) {
				keys = append(keys, f[0])
			}
		}
		if want := []string{"args", "by", "rows", "zone"}; !reflect.DeepEqual(keys, want) {
			t.Fatalf("meta keys %v, want %v\n%s%s", keys, want, out, errOut)
		}
	}
}

// TestArchiveShowsUnreadFile: an SII file refused from its listed size has no SHA-256;
// archive ls, history, show and cat say so instead of failing on it.
func TestArchiveShowsUnreadFile(t *testing.T) {
	_, stateDir := cliFixture(t)
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	var res archive.IngestResult
	err = s.Write(context.Background(), func(tx *sql.Tx) error {
		var err error
		res, err = s.IngestUnreadTx(context.Background(), tx, archive.IngestRequest{Source: "sftp:sii", Name: "huge.xml", Direction: "in",
			Kind: "sii", MaxSize: 1024, At: cliFixtureAt}, 5<<20)
		return err
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(res.File.ID, 10)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"archive", "ls"}, exitOK, "huge.xml"},
		{[]string{"archive", "history", "huge.xml"}, exitOK, "rejected"},
		{[]string{"archive", "show", id}, exitOK, "never read"},
		{[]string{"archive", "cat", id}, exitFindings, "nor read"},
	}
	for _, tc := range tests {
		code, out, errOut := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}
}
