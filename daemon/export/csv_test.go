package export

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/flows"
)

// practicesCSVFromPractices is the CSV export as it was written before it read the
// stored text: each practice scanned into an archive.Practice (dates, instants and
// amounts parsed) and written through the columns' functions and encoding/csv. The
// CSV export must write the same bytes.
func practicesCSVFromPractices(t *testing.T, store *archive.Store, f archive.PracticeFilter, opt Options) []byte {
	t.Helper()
	open, err := store.OpenExceptionCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	cw := csv.NewWriter(bw)
	field, dec := opt.CSVSeparators()
	cw.Comma, cw.UseCRLF = field, true
	bw.WriteString("\uFEFF")
	if err := cw.Write(Headers(opt.Lang)); err != nil {
		t.Fatal(err)
	}
	lang, states := langOf(opt.Lang), stateNames{}
	record := make([]string, len(columns))
	f.WithoutCase = true
	err = store.EachPractice(context.Background(), f, func(p archive.Practice) error {
		r := row{p: &p, openExcept: open[p.ID], lang: lang, states: states}
		for i, col := range columns {
			switch col.kind {
			case kindText:
				record[i] = Neutralise(col.text(r))
			case kindDate:
				record[i] = dateIT(col.date(r))
			case kindAmount:
				record[i] = ""
				if !col.blank(r) {
					record[i] = amountText(col.amount(r), dec)
				}
			case kindInt:
				record[i] = strconv.Itoa(col.num(r))
			}
		}
		return cw.Write(record)
	})
	if err != nil {
		t.Fatal(err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	return buf.Bytes()
}

// csvOptions are the separator choices the CSV export takes, each of which the fast
// writer must quote as encoding/csv does.
var csvOptions = []Options{
	{}, {Lang: "en"}, {Lang: "it", DecimalPoint: true}, {Lang: "en", DecimalComma: true, Comma: ';'},
	{Lang: "it", Comma: ','}, // decimal comma and comma separator: amounts quoted
	{Lang: "en", Comma: '\t'}, {Lang: "it", Comma: '|'},
}

// hostilePractice is practice i of a store made to trip the CSV writer: formula-like
// and space-led names, quotes, separators, CR and LF, Unicode spaces, `\.`, negative
// and huge amounts, every state, instants around the changes of Rome's offset.
func hostilePractice(i int) archive.Practice {
	p := archive.SyntheticPractice(i)
	names := []string{"", " ", "=1+1", " =SUM(A1)", "+39 06", "-5", "@x", "\t=1", "\r", "\n", "\r\n@x", "Rossi\n=1",
		`Rossi "il Grande"`, "Rossi; Bianchi", "Rossi, Bianchi", "Rossi|Bianchi", "Rossi\tBianchi", `\.`, "\u00a0Rossi",
		"\u2003Rossi", "Ärger S.r.l.", "\xff\xfe", "'quoted", "a\rb", "Caffè \"Roma\"\r\nS.n.c."}
	p.CustomerName = names[i%len(names)]
	p.Motivation = names[(i+7)%len(names)]
	p.CauseCode = names[(i+3)%len(names)]
	amounts := []flows.Amount{0, 1, -1, 9, -9, 10, 99, -99, 100, -100, 12345, -12345, 1<<62 - 1, -(1 << 62), 9_223_372_036_854_775_807, -9_223_372_036_854_775_808}
	p.Credit, p.Estimate, p.Previous = amounts[i%len(amounts)], amounts[(i+5)%len(amounts)], amounts[(i+11)%len(amounts)]
	p.Charged, p.Collected = amounts[(i+2)%len(amounts)], amounts[(i+13)%len(amounts)]
	states := []string{"ready", "sent", "admitted", "accepted", "rejected", "closed", "suspended", "annulled", "unknown-state", "=evil"}
	p.State = states[i%len(states)]
	// Around the change to summer time (2025-03-30 01:00 UTC) and back (2025-10-26
	// 01:00 UTC), and midnight in Rome in both offsets.
	instants := []time.Time{
		time.Date(2025, 3, 29, 22, 59, 59, 999999999, time.UTC), time.Date(2025, 3, 29, 23, 0, 0, 0, time.UTC),
		time.Date(2025, 3, 30, 0, 59, 59, 0, time.UTC), time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC),
		time.Date(2025, 3, 30, 21, 59, 59, 999999999, time.UTC), time.Date(2025, 3, 30, 22, 0, 0, 0, time.UTC),
		time.Date(2025, 10, 25, 21, 59, 59, 0, time.UTC), time.Date(2025, 10, 25, 22, 0, 0, 1, time.UTC),
		time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC), time.Date(2025, 10, 26, 1, 30, 0, 0, time.UTC),
		time.Date(2025, 10, 26, 23, 0, 0, 0, time.UTC), time.Date(2025, 12, 31, 22, 59, 59, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1850, 6, 1, 23, 30, 0, 0, time.UTC),
	}
	p.CreatedAt = instants[i%len(instants)]
	return p
}

// storedOddities are stored values the archive itself never writes, set straight in
// the table: the export reads them as a Practice would (an unreadable date as no
// date), or refuses them by name (TestCSVRefusesCentsThatAreNot).
var storedOddities = []struct{ column, value string }{
	{"customer_name", "Nul\x00in the name"}, // read again column by column
	{"motivation", "\x00"},
	{"switch_date", "2024-13-45"},
	{"switch_date", "31/12/2024"}, // the other form flows.ParseDate reads
	{"window_open", "garbage"},
	{"request_date", "2024-02-30"},
	{"answer_date", "2024-02-29"},
	{"answer_date", "2023-02-29"},
	{"answer_date", "2100-02-29"},
	{"answer_date", "2000-02-29"},
	{"window_close", "1899-12-31"},
	{"window_close", "1900-01-01"},
	{"window_close", "2999-12-31"},
	{"window_close", "3000-01-01"},
	{"suspension_term", "2024-00-10"},
	{"suspension_term", "2024-04-31"},
	{"suspension_term", "2024-4-30"},
	{"suspension_term", "2024-04-30 "},
	{"state_since", "2025-03-30T01:00:00Z"},
	{"state_since", "2025-03-30T00:59:60Z"},
	{"state_since", "2025-03-30T00:61:00Z"},
	{"state_since", "2025-03-30T24:00:00Z"},
	{"state_since", "2025-03-30T02:00:00+02:00"},
	{"state_since", "2025-03-30T02:00:00.1234567890Z"},
	{"state_since", "2025-03-30T02:00:00.Z"},
	{"state_since", "not an instant"},
	{"state_since", ""},
	{"cp_utente", "=HYPERLINK(\"http://x\")"},
	{"point", " 00881234567890"},
}

// TestCSVSameAsFromPractices holds the CSV export to the bytes the export wrote from
// Practices through encoding/csv, on hostile practices and stored oddities, with
// every separator choice, open exceptions and filters.
func TestCSVSameAsFromPractices(t *testing.T) {
	ctx := context.Background()
	store, err := archive.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const n = 500
	if err := store.BulkLoadPractices(ctx, n, hostilePractice); err != nil {
		t.Fatal(err)
	}
	err = store.Write(ctx, func(tx *sql.Tx) error {
		for i, o := range storedOddities {
			if _, err := tx.ExecContext(ctx, `UPDATE practices SET `+o.column+` = ? WHERE id = ?`, o.value, 10+i); err != nil {
				return fmt.Errorf("%s = %q: %w", o.column, o.value, err)
			}
		}
		// Open exceptions on two practices; a resolved one does not count.
		for i, e := range []struct {
			id       int
			resolved any
		}{{3, nil}, {3, nil}, {42, nil}, {43, "2025-01-01T00:00:00.000000000Z"}} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO exceptions (fingerprint, kind, severity, owner, practice_id, message,
				first_seen, last_seen, resolved_at) VALUES (?, 'test', 'normal', 'compliance', ?, 'x',
				'2025-01-01T00:00:00.000000000Z', '2025-01-01T00:00:00.000000000Z', ?)`, fmt.Sprint("fp", i), e.id, e.resolved); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	filters := []archive.PracticeFilter{{}, {Order: "-amount"}, {Role: "entrante"}, {Limit: 7, Offset: 9}}
	for i, opt := range csvOptions {
		for j, f := range filters {
			t.Run(fmt.Sprintf("options%d/filter%d", i, j), func(t *testing.T) {
				var got bytes.Buffer
				if _, err := Practices(ctx, store, f, &got, opt); err != nil {
					t.Fatal(err)
				}
				want := practicesCSVFromPractices(t, store, f, opt)
				if !bytes.Equal(got.Bytes(), want) {
					gl, wl := strings.Split(got.String(), "\r\n"), strings.Split(string(want), "\r\n")
					for i := range min(len(gl), len(wl)) {
						if gl[i] != wl[i] {
							t.Fatalf("line %d differs:\n got %q\nwant %q", i+1, gl[i], wl[i])
						}
					}
					t.Fatalf("%d lines, want %d", len(gl), len(wl))
				}
			})
		}
	}
	// The practice with a NUL in its name is there, whole, and the oddities too.
	var got bytes.Buffer
	if _, err := Practices(ctx, store, archive.PracticeFilter{}, &got, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Nul\x00in the name", "'=HYPERLINK(\"\"http://x\"\")", "31/12/2024"} {
		if !strings.Contains(got.String(), s) {
			t.Errorf("export lacks %q", s)
		}
	}
}

// TestCSVRefusesCentsThatAreNot: an amount column holding something other than whole
// cents (never written by cmord) stops the export with the practice and the column,
// as scanning it into a Practice did.
func TestCSVRefusesCentsThatAreNot(t *testing.T) {
	ctx := context.Background()
	store, err := archive.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.BulkLoadPractices(ctx, 3, archive.SyntheticPractice); err != nil {
		t.Fatal(err)
	}
	if err := store.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE practices SET credit_cents = 12.5 WHERE id = 2`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_, err = Practices(ctx, store, archive.PracticeFilter{}, io.Discard, Options{})
	if err == nil || !strings.Contains(err.Error(), "practice #2") || !strings.Contains(err.Error(), "credit_cents") {
		t.Errorf("export of a practice with 12.5 cents: %v", err)
	}
}

// TestAppendFieldAsEncodingCSV holds appendField to encoding/csv's quoting, field by
// field, with and without the apostrophe of a neutralised cell, for every separator.
func TestAppendFieldAsEncodingCSV(t *testing.T) {
	fields := []string{"", " ", "a", "ab c", `\.`, `\.x`, `"`, `a"b`, "a\rb", "a\nb", "a\r\nb", "\r", "\n", "\t", "\tx",
		" x", "x ", "\u00a0x", "\u2003x", "\u0085x", "\v", "\f", "ä", "\xff", "\xc3", ";", ",", "|", "a;b", "a,b", "a|b",
		"a\tb", "1234,50", "-12.00", "'", "=1"}
	for _, comma := range []byte{';', ',', '\t', '|'} {
		for _, f := range fields {
			for _, apostrophe := range []bool{false, true} {
				in := f
				if apostrophe {
					in = "'" + f
				}
				var want bytes.Buffer
				cw := csv.NewWriter(&want)
				cw.Comma, cw.UseCRLF = rune(comma), true
				cw.Write([]string{in})
				cw.Flush()
				got := append(appendField(nil, apostrophe, []byte(f), comma), '\r', '\n')
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf("comma %q, field %q: %q, encoding/csv %q", comma, in, got, want.Bytes())
				}
			}
		}
	}
}

func TestNeedsApostropheAsNeutralise(t *testing.T) {
	for _, s := range []string{"", " ", "   ", "Rossi", "=1", " =1", "  -5", "+", "@", "\t", "\r", "\n", "a=b", "'x", " \tx"} {
		if got, want := needsApostrophe([]byte(s)), Neutralise(s) != s; got != want {
			t.Errorf("needsApostrophe(%q) = %v, Neutralise changes it: %v", s, got, want)
		}
	}
}

func TestParseCents(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-1", -1, true}, {"123456789012345678", 123456789012345678, true},
		{"9223372036854775807", 9223372036854775807, true}, {"-9223372036854775808", -9223372036854775808, true},
		{"9223372036854775808", 0, false}, {"", 0, false}, {"-", 0, false}, {"12.5", 0, false}, {"1e3", 0, false},
		{" 1", 0, false},
	} {
		got, ok := parseCents([]byte(tt.in))
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parseCents(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
