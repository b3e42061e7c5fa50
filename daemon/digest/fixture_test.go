package digest

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

var update = flag.Bool("update", false, "rewrite golden files")

func rome(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, flows.Rome)
}

func openStore(t testing.TB, dir string) *archive.Store {
	t.Helper()
	st, err := archive.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func write(t testing.TB, st *archive.Store, fn func(tx *sql.Tx) error) {
	t.Helper()
	if err := st.Write(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func raise(t testing.TB, st *archive.Store, e archive.Exception) int64 {
	t.Helper()
	var id int64
	write(t, st, func(tx *sql.Tx) error {
		var err error
		id, _, err = st.RaiseException(context.Background(), tx, e)
		return err
	})
	return id
}

func ingest(t testing.TB, st *archive.Store, source, name, dir, kind, state, content string, at time.Time) archive.File {
	t.Helper()
	res, err := st.Ingest(context.Background(), archive.IngestRequest{Source: source, Name: name, Direction: dir, Kind: kind,
		State: state, Reader: strings.NewReader(content), At: at})
	if err != nil {
		t.Fatal(err)
	}
	return res.File
}

func createPractice(t testing.TB, st *archive.Store, p *archive.Practice, at time.Time) {
	t.Helper()
	write(t, st, func(tx *sql.Tx) error {
		return st.CreatePractice(context.Background(), tx, p, archive.HistoryEntry{At: at, Flow: "uscente.morosi"})
	})
}

func transition(t testing.TB, st *archive.Store, p *archive.Practice, to, flow string, at time.Time) {
	t.Helper()
	write(t, st, func(tx *sql.Tx) error {
		return st.Transition(context.Background(), tx, p, to, archive.HistoryEntry{At: at, Flow: flow})
	})
}

// fixtureNow is the digest's end: Monday 23 November 2026, 07:30 in Rome.
var fixtureNow = rome(2026, time.November, 23, 7, 30)

// fixture fills a store with a day of activity: files in and out, practices with
// deadlines, exceptions new, old, muted and resolved, and a previous digest.
func fixture(t testing.TB, st *archive.Store) {
	t.Helper()
	ctx := context.Background()
	prev := rome(2026, time.November, 22, 7, 30)
	write(t, st, func(tx *sql.Tx) error {
		_, err := st.RecordDigest(ctx, tx, archive.DigestRecord{DedupKey: "digest:2026-11-22", PeriodStart: prev.Add(-24 * time.Hour),
			PeriodEnd: prev, Lang: "it", CreatedAt: prev})
		return err
	})

	// Files of the period.
	morosi := ingest(t, st, "folder:morosi", "morosi_20261122.csv", "in", "uscente.morosi", archive.StateProcessed,
		"POD;CF\nIT001E12345678;RSSMRA85T10A562S\n", rome(2026, time.November, 22, 18, 5))
	bad := ingest(t, st, "folder:morosi", "morosi_20261122_bis.csv", "in", "uscente.morosi", archive.StateRejected,
		"garbage\n", rome(2026, time.November, 22, 18, 40))
	write(t, st, func(tx *sql.Tx) error { // refused whole, with the daemon's reason
		return st.SetFileState(ctx, tx, bad.ID, archive.StateRejected, "the header has no column POD (line 1): nothing of the file was applied", nil)
	})
	dup := ingest(t, st, "folder:morosi", "morosi_copia.csv", "in", "uscente.morosi", "",
		"POD;CF\nIT001E12345678;RSSMRA85T10A562S\n", rome(2026, time.November, 22, 19, 0))
	amm := ingest(t, st, "sftp:sii", "SI1.0051_00488410010_20261122.csv", "in", "REQ_AMM", archive.StateProcessed,
		"CP_UTENTE;VERIFICA_AMM\nE260000007;1\n", rome(2026, time.November, 23, 6, 0))
	built := ingest(t, st, "built", "IT00488410010_SI1.0050_20261122_001.csv", "out", "REQ", "",
		"req\n", rome(2026, time.November, 22, 21, 0))
	old := ingest(t, st, "folder:morosi", "morosi_20261101.csv", "in", "uscente.morosi", archive.StateProcessed,
		"old\n", rome(2026, time.November, 1, 9, 0))
	write(t, st, func(tx *sql.Tx) error {
		id, err := st.QueueDelivery(ctx, tx, archive.Delivery{FileID: built.ID, Target: "sftp:sii", RemoteDir: "/in", RemoteName: built.Name})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 'delivered', delivered_at = ? WHERE id = ?`,
			archive.TS(rome(2026, time.November, 22, 21, 5)), id)
		return err
	})

	// Practices.
	data := func(m map[string]any) json.RawMessage { b, _ := json.Marshal(m); return b }
	p1 := &archive.Practice{CaseKey: "U|IT001E12345678|RSSMRA85T10A562S|2026-03-01", Role: "uscente", Sector: "E", CompanyPIVA: "00488410010",
		CPUtente: "E260000012", Point: "IT001E12345678", CustomerID: "RSSMRA85T10A562S", CustomerName: "Mario Rossi",
		SwitchDate: flows.D(2025, time.November, 1), State: flows.StateReady, WindowOpen: flows.D(2026, time.May, 1),
		WindowClose: flows.D(2026, time.November, 25), CMOR: 12345}
	createPractice(t, st, p1, rome(2026, time.October, 2, 10, 0))
	p2 := &archive.Practice{CaseKey: "U|00881234567890|VRDLGU70A01F205Z|2026-02-01", Role: "uscente", Sector: "G", CompanyPIVA: "00488410010",
		CPUtente: "G260000031", Point: "00881234567890", CustomerID: "VRDLGU70A01F205Z", CustomerName: "Luigi Verdi",
		State: flows.StateSent, RequestDate: flows.D(2026, time.November, 10), WindowClose: flows.D(2027, time.February, 28)}
	createPractice(t, st, p2, rome(2026, time.November, 9, 10, 0))
	p3 := &archive.Practice{CaseKey: "E|CMOR26000000451", Role: "entrante", Sector: "E", CompanyPIVA: "00488410010",
		CPGestore: "CMOR26000000451", Point: "IT001E87654321", CustomerID: "04444440157", CustomerName: "Bar Sport Srl",
		State: flows.EntranteNotified, SuspensionTerm: flows.D(2026, time.December, 4), CMOR: 8870}
	createPractice(t, st, p3, rome(2026, time.November, 15, 10, 0))
	p4 := &archive.Practice{CaseKey: "U|IT001E11112222|BNCNNA80A41H501W|2025-06-01", Role: "uscente", Sector: "E", CompanyPIVA: "00488410010",
		CPUtente: "E250000099", Point: "IT001E11112222", CustomerID: "BNCNNA80A41H501W", CustomerName: "Anna Bianchi",
		State: flows.StateIndemnityPaid, Data: data(map[string]any{})}
	createPractice(t, st, p4, rome(2026, time.March, 2, 10, 0))
	transition(t, st, p4, flows.StateAnnulled, "ANN_NOTIF", rome(2026, time.November, 20, 11, 0))
	p5 := &archive.Practice{CaseKey: "U|IT001E33334444|NREGPP75B12L219K|2026-06-01", Role: "uscente", Sector: "E", CompanyPIVA: "00488410010",
		CPUtente: "E260000040", Point: "IT001E33334444", CustomerID: "NREGPP75B12L219K", CustomerName: "Giuseppe Neri",
		State: flows.StateWaitingWindow, WindowOpen: flows.D(2026, time.November, 24), WindowClose: flows.D(2027, time.May, 31)}
	createPractice(t, st, p5, rome(2026, time.November, 3, 10, 0))

	// Deadlines: computed yesterday (reminders), again this morning (escalation).
	cal := flows.NewCalendar(0, 0)
	for _, at := range []time.Time{rome(2026, time.November, 22, 6, 0), rome(2026, time.November, 23, 6, 0)} {
		if _, _, err := RunDeadlines(ctx, st, cal, DeadlineConfig{}, at); err != nil {
			t.Fatal(err)
		}
	}

	// Exceptions.
	raise(t, st, archive.Exception{Kind: "state_conflict", Severity: archive.SevHigh, Owner: OwnerCompliance, PracticeID: p2.ID,
		Subject: "G260000031", Message: "REQ_ESITO cannot move a practice from SENT to ACCEPTED: the flow applies only to practices in ADMITTED",
		Action: "Check the practice on the SII portal.", LastSeen: rome(2026, time.November, 16, 9, 12)})
	raise(t, st, archive.Exception{Kind: "row_refused", FileID: morosi.ID, Line: 3, Field: "CF", Rule: flows.RuleIDCF,
		Value: "RSSMRA85T10A562X", Message: "codice fiscale RSSMRA85T10A562X: check character is X, expected S (Mario Rossi)",
		PracticeID: p1.ID, LastSeen: rome(2026, time.November, 22, 18, 5)})
	raise(t, st, archive.Exception{Kind: "row_refused", FileID: morosi.ID, Line: 7, Field: "DATA_SWITCH", Rule: flows.RuleDate,
		Value: "31/11/2026", Message: "date \"31/11/2026\" does not exist", LastSeen: rome(2026, time.November, 22, 18, 5)})
	// Findings about cases name them by their internal key (daemon/uscente.go): one
	// that never became a practice, one that is practice p1.
	raise(t, st, archive.Exception{Kind: "row_refused", FileID: morosi.ID, Line: 5, Field: "DATA_SWITCH", Rule: "CASE-ROWS",
		Value:    "U|IT001E55556666|BNCLRA90C50F205Y|2026-04-01",
		Message:  "morosi_20261122.csv:5: DATA_SWITCH: case not filed: some of its rows (lines 5-6) were refused; correct them and drop the case again (rule CASE-ROWS, value \"U|IT001E55556666|BNCLRA90C50F205Y|2026-04-01\")",
		LastSeen: rome(2026, time.November, 22, 18, 5)})
	raise(t, st, archive.Exception{Kind: "row_refused", FileID: morosi.ID, Line: 9, Field: "CP_UTENTE", Rule: "SI-D01", Value: "E260000012",
		Message:  "case U|IT001E12345678|RSSMRA85T10A562S|2026-03-01 was already filed as CP_UTENTE E260000012 (state READY): not filed again",
		LastSeen: rome(2026, time.November, 22, 18, 5)})
	raise(t, st, archive.Exception{Kind: "file_rejected", Severity: archive.SevHigh, FileID: bad.ID,
		Message: "morosi_20261122_bis.csv: line 1: header missing column POD", LastSeen: rome(2026, time.November, 22, 18, 40)})
	raise(t, st, archive.Exception{Kind: "duplicate_file", Severity: archive.SevLow, FileID: dup.ID, Subject: dup.Name,
		Message: "morosi_copia.csv: identical content was already received as morosi_20261122.csv", LastSeen: rome(2026, time.November, 22, 19, 0)})
	// As daemon/sii.go raises it: the rule is the SII's cause code, the value its MOTIVAZIONE.
	raise(t, st, archive.Exception{Kind: "sii_refusal", Severity: archive.SevHigh, Owner: OwnerCompliance, PracticeID: p1.ID,
		FileID: amm.ID, Line: 2, Rule: "SI-W02", Value: "Richiesta presentata oltre i termini", Subject: "E260000012",
		Message:  "the SII refused the request E260000012 (SI1.0100, cause SI-W02): Richiesta presentata oltre i termini",
		LastSeen: rome(2026, time.November, 23, 6, 1)})
	raise(t, st, archive.Exception{Fingerprint: "sii_unreachable|sii", Kind: "sii_unreachable", Severity: archive.SevUrgent, Owner: OwnerSysadmin,
		Subject: "sii", Message: "SII endpoint sii unreachable since 2026-11-23T04:40:00Z: dial tcp: i/o timeout",
		LastSeen: rome(2026, time.November, 23, 5, 10)})
	raise(t, st, archive.Exception{Fingerprint: "upload_failed|sftp:sii|IT00488410010_SI1.0050_20261123_001.csv", Kind: "upload_failed",
		Severity: archive.SevHigh, Owner: OwnerSysadmin, FileID: built.ID, Subject: "sii",
		Message:  "publishing IT00488410010_SI1.0050_20261123_001.csv to sftp:sii failed (attempt 3): dial tcp: i/o timeout",
		LastSeen: rome(2026, time.November, 23, 5, 20)})
	// Resolved in the period: one automatically, one by hand.
	raise(t, st, archive.Exception{Fingerprint: "hostkey_mismatch|sii", Kind: "hostkey_mismatch", Severity: archive.SevUrgent, Owner: OwnerSysadmin,
		Subject: "sii", Message: "SFTP sii: host key mismatch", LastSeen: rome(2026, time.November, 21, 22, 0)})
	write(t, st, func(tx *sql.Tx) error {
		_, err := st.ResolveByFingerprintAt(ctx, tx, "hostkey_mismatch|sii", "host key verified", rome(2026, time.November, 22, 9, 15))
		return err
	})
	orphan := raise(t, st, archive.Exception{Kind: "orphan_answer", Severity: archive.SevHigh, Owner: OwnerCompliance, FileID: old.ID, Line: 12,
		Field: "CP_UTENTE", Value: "E259999999", Message: "answer for CP_UTENTE E259999999: no such practice",
		LastSeen: rome(2026, time.November, 2, 8, 0)})
	write(t, st, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE exceptions SET resolved_at = ?, resolution = ?, resolved_by = ? WHERE id = ?`,
			archive.TS(rome(2026, time.November, 22, 16, 45)), "practice of another company, reported to the SII", "m.bianchi", orphan)
		return err
	})
}

// anchorRE matches the state chain's head a digest carries: it names the time the
// fixture's archive was written (the wall clock), so golden files hold a stand-in.
const anchorStandIn = "cmord-anchor/1 seq=N hash=H at=T events=E"

var anchorRE = regexp.MustCompile(`cmord-anchor/1 seq=\d+ hash=[0-9a-f]{64} at=\S+ events=\d+`)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	got = anchorRE.ReplaceAll(got, []byte(anchorStandIn))
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./daemon/digest -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (run with -update and review the diff):\n%s", name, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}
