package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// cliFixtureAt is the instant of every fixture event, so that outputs are stable.
var cliFixtureAt = time.Date(2025, 6, 2, 8, 30, 0, 0, time.UTC)

// cliFixture writes a minimal configuration whose state directory holds three
// practices, the files behind them and three exceptions, points CMORD_CONFIG at it,
// and returns the configuration path and the state directory.
func cliFixture(t *testing.T) (cfgPath, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	cfgPath = filepath.Join(dir, "cmord.toml")
	cfg := `state_dir = "state"

[company]
piva = "00488410010"
name = "Energia Test S.p.A."
roles = ["uscente", "entrante"]
sectors = ["E", "G"]
piva_gestore = "01234567897"
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMORD_CONFIG", cfgPath)
	t.Setenv("USER", "tester")
	t.Setenv("COLUMNS", "")

	ctx := context.Background()
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var files []archive.File
	for i, c := range []struct{ source, name, dir, kind, body string }{
		{"folder:morosi", "morosi_20250301.csv", "in", "uscente.morosi", "POD;CF;IMPORTO\r\nIT001E00000001;RSSMRA80A01H501U;120,50\r\n"},
		{"built", "CMOR_REQ_00488410010_20250310.csv", "out", "REQ", "CP_UTENTE;POD\r\nE250000001;IT001E00000001\r\n"},
		{"sftp:sii", "CMOR_ESITO_20250315.csv", "in", "REQ_ESITO", "CP_UTENTE;ESITO;CAUSALE\r\nE250000001;KO;5\r\n"},
	} {
		res, err := s.Ingest(ctx, archive.IngestRequest{Source: c.source, Name: c.name, Direction: c.dir, Kind: c.kind,
			Reader: strings.NewReader(c.body), At: cliFixtureAt.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, res.File)
	}
	amt := flows.MustAmount
	ps := []archive.Practice{
		{CaseKey: "U|1", Role: "uscente", Sector: "E", Point: "IT001E00000001", CustomerID: "RSSMRA80A01H501U",
			CustomerName: "Rossi Mario", CPUtente: "E250000001", State: "READY", SwitchDate: flows.D(2025, 1, 1),
			Credit: amt("250.00"), Estimate: amt("180.40"), CMOR: amt("120.50"), WindowOpen: flows.D(2025, 3, 1),
			WindowClose: flows.D(2025, 6, 30), RequestDate: flows.D(2025, 3, 10), AnswerDate: flows.D(2025, 3, 15), CauseCode: "5",
			Motivation: "codice già utilizzato"},
		{CaseKey: "U|2", Role: "uscente", Sector: "G", Point: "00881234567890", CustomerID: "01234567897",
			CustomerName: "=Gas Bianchi S.r.l. con un nome molto lungo davvero", CPUtente: "G250000001", State: "SENT",
			SwitchDate: flows.D(2025, 2, 1), CMOR: amt("999.99"), RequestDate: flows.D(2025, 4, 1)},
		{CaseKey: "E|G77", Role: "entrante", Sector: "E", Point: "IT001E00000009", CustomerID: "VRDLGU70B02F205X",
			CustomerName: "Verdi Luigi", CPGestore: "G77", State: "CHARGED", SwitchDate: flows.D(2025, 4, 1),
			CMOR: amt("45.67"), Charged: amt("45.67"), Collected: amt("20"), SuspensionTerm: flows.D(2025, 7, 1)},
	}
	err = s.Write(ctx, func(tx *sql.Tx) error {
		for i := range ps {
			ps[i].CompanyPIVA = "00488410010"
			h := archive.HistoryEntry{Flow: "uscente.morosi", At: cliFixtureAt, FileID: files[0].ID, Line: 2 + i}
			if ps[i].Role == "entrante" {
				h = archive.HistoryEntry{Flow: "NOTIFICA", At: cliFixtureAt}
			}
			if err := s.CreatePractice(ctx, tx, &ps[i], h); err != nil {
				return err
			}
		}
		p := &ps[0]
		if err := s.CreateRequest(ctx, tx, &archive.Request{PracticeID: p.ID, Flow: "REQ", CPUtente: "E250000001"}); err != nil {
			return err
		}
		if err := s.Transition(ctx, tx, p, "SENT", archive.HistoryEntry{Flow: "REQ", FileID: files[1].ID, Line: 2, At: cliFixtureAt.Add(2 * time.Hour)}); err != nil {
			return err
		}
		if err := s.Transition(ctx, tx, p, "REJECTED", archive.HistoryEntry{Flow: "REQ_ESITO", FileID: files[2].ID, Line: 2,
			CauseCode: "5", Note: "codice già utilizzato", At: cliFixtureAt.Add(3 * time.Hour)}); err != nil {
			return err
		}
		// One file touching a practice several times (lines, relations) is listed once.
		for _, l := range []struct {
			file int
			rel  string
			line int
		}{{0, "input", 3}, {0, "input", 4}, {2, "input", 2}} {
			if err := s.LinkPracticeFile(ctx, tx, p.ID, files[l.file].ID, l.rel, l.line); err != nil {
				return err
			}
		}
		for _, e := range []archive.Exception{
			{Kind: "sii_refusal", Severity: archive.SevHigh, Owner: "compliance", PracticeID: ps[0].ID, FileID: files[2].ID, Line: 2,
				Message: "SII refused E250000001: cause 5", Action: "file a new request with a new code"},
			{Kind: "row_refused", Severity: archive.SevNormal, FileID: files[0].ID, Line: 7, Field: "CF", Rule: "checksum",
				Value: "RSSMRA80A01H501X", Message: "codice fiscale check character wrong", Action: "fix the billing extract"},
			{Kind: "no_answer", Severity: archive.SevNormal, Owner: "compliance", PracticeID: ps[1].ID,
				Message: "no SII answer after 5 days", DueOn: "2025-06-10"},
		} {
			e.LastSeen = cliFixtureAt
			if _, _, err := s.RaiseException(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfgPath, stateDir
}

// runCLI runs the CLI in-process.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// goldenCLI compares got with cmd/cmord/testdata/<verb>/<name>.
func goldenCLI(t *testing.T, verb, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", verb, name)
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/cmord -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (go test -update, then review):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func TestPracticesVerb(t *testing.T) {
	cliFixture(t)
	tests := []struct {
		golden string
		args   []string
	}{
		{"all.txt", nil},
		{"by_pod.txt", []string{"--pod", "it001e00000001"}},
		{"by_pdr.txt", []string{"--pdr", "00881234567890"}},
		{"uscente_amount.txt", []string{"--role", "uscente", "--amount-min", "100,00", "--amount-max", "1000.00"}},
		{"switch_range.txt", []string{"--switch-from", "15/01/2025", "--switch-to", "2025-04-01", "--order", "-switch"}},
		{"states.txt", []string{"--state", "sent,charged"}},
		{"open_exceptions.txt", []string{"--open-exceptions"}},
		{"by_code_cause.txt", []string{"--code", "E250000001", "--cause", "5", "--request-from", "01/03/2025", "--answer-to", "31/03/2025"}},
		{"by_customer_sector.txt", []string{"--customer", "vrdlgu70b02f205x", "--sector", "e", "--cp-gestore", "G77"}},
		{"limit.txt", []string{"--limit", "1"}},
		{"none.txt", []string{"--pod", "IT001E99999999"}},
		{"all.csv", []string{"--format", "csv"}},
		{"all_decimal_point.csv", []string{"--format", "csv", "--decimal-point"}},
		{"all_en.csv", []string{"--format", "csv", "--lang", "en"}},
		{"all_en_decimal_comma.csv", []string{"--format", "csv", "--lang", "en", "--decimal-comma"}},
		{"all.json", []string{"--format", "json"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"practices"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %s", code, errOut)
			}
			goldenCLI(t, "practices", tt.golden, []byte(out))
		})
	}
	// JSON is valid and carries amounts as exact decimal strings.
	_, out, _ := runCLI(t, "practices", "--format", "json", "--pdr", "00881234567890")
	var recs []map[string]any
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 1 || recs[0]["cmor"] != "999.99" {
		t.Errorf("json: %v %v", recs, err)
	}
}

// TestPracticesFiltersAsPeopleCopyThem: a state as the exports word it, in Italian or
// English, selects the same practices as its code; a PDR whose leading zeros a
// spreadsheet dropped finds its practice.
func TestPracticesFiltersAsPeopleCopyThem(t *testing.T) {
	cliFixture(t)
	for _, c := range []struct{ want, got []string }{
		{[]string{"--state", "sent,charged"}, []string{"--state", "inviata al SII, Addebitata al cliente"}},
		{[]string{"--state", "sent,charged"}, []string{"--state", "inviata al SII (SENT),charged to the customer"}},
		{[]string{"--pdr", "00881234567890"}, []string{"--pdr", "881234567890"}},
	} {
		_, want, _ := runCLI(t, append([]string{"practices"}, c.want...)...)
		code, got, errOut := runCLI(t, append([]string{"practices"}, c.got...)...)
		if code != exitOK || got != want || strings.Contains(got, "no practices match") {
			t.Errorf("practices %v: exit %d, %s\n%s\nwant as %v:\n%s", c.got, code, errOut, got, c.want, want)
		}
	}
	if got := pointWithZeros("IT001E1234567"); got != "IT001E1234567" {
		t.Errorf("a POD was padded: %q", got)
	}
}

// TestPracticesDecimalFlagHelp: a decimal flag that changes nothing under a --lang
// (the language already gives that separator) must say so in its help, so nobody adds
// --decimal-comma to an Italian export believing the default is a point.
func TestPracticesDecimalFlagHelp(t *testing.T) {
	cliFixture(t)
	_, helpOut, helpErr := runCLI(t, "practices", "--help")
	help := helpOut + helpErr
	for _, lang := range []string{"it", "en"} {
		_, plain, _ := runCLI(t, "practices", "--format", "csv", "--lang", lang)
		for _, flag := range []string{"--decimal-comma", "--decimal-point"} {
			code, out, errOut := runCLI(t, "practices", "--format", "csv", "--lang", lang, flag)
			if code != exitOK {
				t.Fatalf("%s --lang %s: exit %d, %s", flag, lang, code, errOut)
			}
			_, text, _ := strings.Cut(help, "  "+flag+"\n")
			text, _, _ = strings.Cut(text, "\n")
			says := strings.Contains(text, "already so with --lang "+lang)
			if same := out == plain; same != says {
				t.Errorf("%s with --lang %s changes the CSV: %v; its help %q says it is the default: %v", flag, lang, !same, text, says)
			}
		}
	}
}

func TestPracticesVerbBadFlags(t *testing.T) {
	cliFixture(t)
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"--role", "venditore"}, `--role "venditore": want uscente or entrante`},
		{[]string{"--sector", "X"}, `--sector "X": want E or G`},
		{[]string{"--switch-from", "31/02/2025"}, "--switch-from: date \"31/02/2025\" does not exist"},
		{[]string{"--answer-to", "yesterday"}, "--answer-to: date \"yesterday\" is not GG/MM/AAAA"},
		{[]string{"--switch-from", "02/02/2025", "--switch-to", "01/02/2025"}, "--switch-to 01/02/2025 is before --switch-from 02/02/2025"},
		{[]string{"--amount-min", "12,345"}, "--amount-min: amount \"12,345\" has more than 2 decimals"},
		{[]string{"--amount-min", "100", "--amount-max", "50"}, "--amount-max 50.00 is below --amount-min 100.00"},
		{[]string{"--pod", "IT001E00000001", "--pdr", "00881234567890"}, "--pod and --pdr are the same filter"},
		{[]string{"--format", "xml"}, `--format "xml": want table, csv or json`},
		{[]string{"--order", "name"}, `--order "name"`},
		{[]string{"--format", "csv", "--decimal-comma", "--decimal-point"}, "--decimal-comma and --decimal-point: choose one"},
		{[]string{"--decimal-point"}, "--decimal-comma and --decimal-point apply to --format csv, not table"},
		{[]string{"IT001E00000001"}, "unexpected argument IT001E00000001"},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, append([]string{"practices"}, tt.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tt.msg) {
			t.Errorf("practices %v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tt.args, code, out, errOut, tt.msg)
		}
	}
}

func TestPracticeShow(t *testing.T) {
	cliFixture(t)
	for _, tt := range []struct{ code, golden string }{
		{"E250000001", "E250000001.txt"},
		{"G77", "G77.txt"},
		{"#2", "id2.txt"},
	} {
		code, out, errOut := runCLI(t, "practice", "show", tt.code)
		if code != exitOK {
			t.Fatalf("practice show %s: exit %d, %s", tt.code, code, errOut)
		}
		goldenCLI(t, "practice_show", tt.golden, []byte(out))
	}
	code, _, errOut := runCLI(t, "practice", "show", "E259999999")
	if code != exitFindings || !strings.Contains(errOut, "no practice E259999999") {
		t.Errorf("unknown practice: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "practice", "show")
	if code != exitUsage || !strings.Contains(errOut, "expects one practice code") {
		t.Errorf("no code: exit %d, %q", code, errOut)
	}
	// Flags after the code are parsed too.
	cfg := os.Getenv("CMORD_CONFIG")
	t.Setenv("CMORD_CONFIG", "/nonexistent.toml")
	if code, _, errOut := runCLI(t, "practice", "show", "G77", "--config", cfg); code != exitOK {
		t.Errorf("--config after the code: exit %d, %s", code, errOut)
	}
}

func TestTableFitsTerminal(t *testing.T) {
	tb := newTable("CODE", "STATE", "AMOUNT", "NOTE", "NAME")
	tb.rightAlign("AMOUNT")
	tb.dropOrder("NOTE")
	tb.add("E250000001", "sent", "1,00", "something long here", "Rossi Mario Francesco Giuseppe")
	tb.add("G77", "charged", "1234,56", "", "Verdi")
	var full, narrow bytes.Buffer
	tb.render(&full, 0)
	tb.render(&narrow, 40)
	wantFull := "CODE        STATE     AMOUNT  NOTE                 NAME\n" +
		"E250000001  sent        1,00  something long here  Rossi Mario Francesco Giuseppe\n" +
		"G77         charged  1234,56                       Verdi\n"
	if full.String() != wantFull {
		t.Errorf("full table:\n%s\nwant:\n%s", full.String(), wantFull)
	}
	for _, l := range strings.Split(strings.TrimSuffix(narrow.String(), "\n"), "\n") {
		if n := len([]rune(l)); n > 40 {
			t.Errorf("line %q is %d wide, terminal is 40", l, n)
		}
	}
	if strings.Contains(narrow.String(), "NOTE") || !strings.Contains(narrow.String(), "…") {
		t.Errorf("narrow table should drop NOTE and truncate NAME:\n%s", narrow.String())
	}
}

// TestCaseUnreadableWarned: practice show (text and JSON) and export --dossier tell the
// person that a practice's stored case cannot be read, instead of leaving it out
// without a word; a readable case gives no warning.
func TestCaseUnreadableWarned(t *testing.T) {
	_, stateDir := cliFixture(t)
	ctx := context.Background()
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		p, err := s.PracticeByCode(ctx, tx, "G77")
		if err != nil {
			return err
		}
		p.Data = json.RawMessage(`{"righe":[{"fattura":"F1"}]}`)
		return s.SavePractice(ctx, tx, &p)
	}); err != nil {
		t.Fatal(err)
	}
	check := func(damaged bool) {
		t.Helper()
		_, out, errOut := runCLI(t, "practice", "show", "G77")
		if got := strings.Contains(out, "WARNING: the stored case"); got != damaged {
			t.Errorf("practice show warns %v, want %v:\n%s%s", got, damaged, out, errOut)
		}
		_, out, _ = runCLI(t, "practice", "show", "G77", "--format", "json")
		if got := strings.Contains(out, `"case_unreadable": true`); got != damaged {
			t.Errorf("practice show --format json: case_unreadable %v, want %v", got, damaged)
		}
		zipPath := filepath.Join(t.TempDir(), "g77.zip")
		code, _, errOut := runCLI(t, "export", "--dossier", "G77", "-o", zipPath)
		if code != exitOK {
			t.Fatalf("export --dossier: exit %d, %s", code, errOut)
		}
		if got := strings.Contains(errOut, "stored case cannot be read"); got != damaged {
			t.Errorf("export --dossier warns %v, want %v: %q", got, damaged, errOut)
		}
	}
	check(false)
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE practice_data SET data = x'02ffff0300' WHERE id = (SELECT id FROM practices WHERE cp_gestore = 'G77')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	check(true)
}
