package digest

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
)

func fixtureDigest(t *testing.T) *Digest {
	t.Helper()
	st := openStore(t, t.TempDir())
	fixture(t, st)
	d, err := Build(context.Background(), st, Options{Company: "Esempio Energia S.p.A.", AttachCSV: true,
		AttachXLSX: true, Contact: "Ufficio sistemi, 06 1234567"}, fixtureNow)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBuildSections(t *testing.T) {
	d := fixtureDigest(t)
	if !d.PeriodStart.Equal(rome(2026, time.November, 22, 7, 30)) {
		t.Errorf("period starts %v, want the previous digest's end", d.PeriodStart)
	}
	kinds := func(items []Item) []string {
		var out []string
		for _, it := range items {
			out = append(out, it.Kind)
		}
		return out
	}
	if got := strings.Join(kinds(d.StillOpen), ","); got != "window_closing,ack_overdue,state_conflict,no_answer,refund_overdue,suspension_term_closing,window_opening" {
		t.Errorf("still open = %s", got)
	}
	if got := strings.Join(kinds(d.New), ","); got != "sii_unreachable,sii_refusal,file_rejected,upload_failed,row_refused,row_refused,row_refused,row_refused,duplicate_file" {
		t.Errorf("new = %s", got)
	}
	if got := strings.Join(kinds(d.Resolved), ","); got != "hostkey_mismatch,orphan_answer" {
		t.Errorf("resolved = %s", got)
	}
	// Inhibition: the upload failure behind the unreachable SII is muted, not counted.
	for _, it := range d.New {
		if it.Kind == "upload_failed" && !it.Muted {
			t.Error("upload_failed for sii not muted while sii_unreachable is open")
		}
	}
	if d.Muted != 1 {
		t.Errorf("muted = %d, want 1", d.Muted)
	}
	var urgent int
	for _, c := range d.Open {
		if c.Severity == archive.SevUrgent {
			urgent = c.Count
		}
	}
	if urgent != 3 { // window closing 25/11, ack due 24/11, SII unreachable
		t.Errorf("urgent open = %d, want 3", urgent)
	}
	var flowsSeen []string
	for _, f := range d.Flows {
		flowsSeen = append(flowsSeen, f.Kind)
		if f.Kind == "uscente.morosi" && (f.Received != 2 || f.Rejected != 1 || f.Duplicates != 1 || f.RowsRefused != 4) {
			t.Errorf("uscente.morosi counts = %+v", f)
		}
		if f.Kind == "REQ" && (f.Built != 1 || f.Published != 1) {
			t.Errorf("REQ counts = %+v", f)
		}
	}
	if strings.Join(flowsSeen, ",") != "REQ,REQ_AMM,uscente.morosi" {
		t.Errorf("flows = %v", flowsSeen)
	}
	// Every open deadline due within 30 days, the overdue no_answer included.
	if len(d.Deadlines) != 6 || d.Deadlines[0].Kind != DeadlineNoAnswer {
		t.Errorf("deadlines = %d, want 6 starting with the overdue no_answer: %+v", len(d.Deadlines), d.Deadlines)
	}
	for _, dl := range d.Deadlines {
		if dl.Kind == DeadlineWindowOpening && dl.Severity != archive.SevLow {
			t.Errorf("window opening shown as %s, want low", dl.Severity)
		}
	}
}

func TestRenderGolden(t *testing.T) {
	d := fixtureDigest(t)
	for _, tc := range []struct {
		lang     string
		personal bool
		name     string
	}{{"it", false, "digest_it"}, {"en", false, "digest_en"}, {"it", true, "digest_it_personal"}} {
		t.Run(tc.name, func(t *testing.T) {
			subject, text, html, csv, err := d.Render(tc.lang, tc.personal)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".txt", []byte("Subject: "+subject+"\n\n"+text))
			golden(t, tc.name+".html", []byte(html))
			golden(t, tc.name+".csv", csv)
		})
	}
}

func TestRenderSubjectAndSections(t *testing.T) {
	d := fixtureDigest(t)
	subject, text, _, _, err := d.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	if subject != "Riepilogo CMOR — 23/11/2026" {
		t.Errorf("subject %q", subject)
	}
	last := -1
	for _, sec := range []string{"== Sintesi ==", "== Nuove eccezioni", "== Ancora aperte", "== Risolte", "== Scadenze"} {
		i := strings.Index(text, sec)
		if i < 0 || i < last {
			t.Errorf("section %q missing or out of order", sec)
		}
		last = i
	}
	if !strings.Contains(text, "23/11/2026 07:30 (06:30 UTC)") {
		t.Error("times must be shown in Rome with UTC in parentheses")
	}
	subject, _, _, _, _ = d.Render("en", false)
	if subject != "CMOR digest — 23/11/2026" {
		t.Errorf("en subject %q", subject)
	}
}

func TestPersonalDataMasked(t *testing.T) {
	d := fixtureDigest(t)
	for _, personal := range []bool{false, true} {
		_, text, html, csv, err := d.Render("it", personal)
		if err != nil {
			t.Fatal(err)
		}
		for what, body := range map[string]string{"text": text, "html": html, "csv": string(csv)} {
			for _, secret := range []string{"RSSMRA85T10A562S", "Mario Rossi", "VRDLGU70A01F205Z", "Luigi Verdi", "RSSMRA85T10A562X"} {
				if got := strings.Contains(body, secret); got != personal {
					t.Errorf("personal=%v: %s contains %q = %v", personal, what, secret, got)
				}
			}
		}
	}
}

func TestCSVForExcel(t *testing.T) {
	d := fixtureDigest(t)
	_, _, _, csv, err := d.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(csv, []byte("\ufeffID;Sezione;Gravità;")) {
		t.Errorf("CSV must start with a BOM and Italian headers: %q", csv[:40])
	}
	if n := bytes.Count(csv, []byte("\r\n")); n != 1+len(d.New)+len(d.StillOpen)+len(d.Resolved) {
		t.Errorf("CSV has %d lines", n)
	}
	d.New[0].Message = "=HYPERLINK(\"http://x\")"
	_, _, _, csv, _ = d.Render("it", false)
	if bytes.Contains(csv, []byte(";=HYPERLINK")) || !bytes.Contains(csv, []byte("'=HYPERLINK")) {
		t.Error("a cell starting with = must be neutralised")
	}
}

func TestEmptyDigest(t *testing.T) {
	st := openStore(t, t.TempDir())
	d, err := Build(context.Background(), st, Options{Company: "Esempio Energia S.p.A."}, fixtureNow)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Empty() || !d.FirstDigest {
		t.Fatalf("empty store: Empty=%v First=%v", d.Empty(), d.FirstDigest)
	}
	subject, text, html, _, err := d.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "digest_empty_it.txt", []byte("Subject: "+subject+"\n\n"+text))
	if !strings.Contains(html, "Niente richiede la vostra attenzione") {
		t.Error("empty HTML digest must say nothing needs you")
	}
}

func TestMaxItemsCap(t *testing.T) {
	d := fixtureDigest(t)
	d.MaxItems = 2
	_, text, _, csv, err := d.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "… e altre "+strconv.Itoa(len(d.New)-2)+": elenco completo nell'allegato CSV.") {
		t.Errorf("capped section must point to the CSV:\n%s", text)
	}
	if n := bytes.Count(csv, []byte("\r\n")); n != 1+len(d.New)+len(d.StillOpen)+len(d.Resolved) {
		t.Errorf("CSV must keep every row, has %d lines", n)
	}
}

func TestFormatTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{rome(2026, time.November, 23, 7, 30), "23/11/2026 07:30 (06:30 UTC)"},
		{rome(2026, time.July, 1, 9, 0), "01/07/2026 09:00 (07:00 UTC)"},
		{rome(2026, time.November, 23, 0, 30), "23/11/2026 00:30 (22/11 23:30 UTC)"},
		{time.Time{}, ""},
	} {
		if got := FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestKindsCatalogue(t *testing.T) {
	spec := []string{"row_refused", "file_rejected", "sii_refusal", "no_answer", "window_closing", "window_opening",
		"suspension_term_closing", "refund_overdue", "ack_overdue", "orphan_answer", "state_conflict", "duplicate_file",
		"upload_failed", "sii_unreachable", "hostkey_mismatch", "watch_overflow", "missed_schedule", "verify_failed", "mail_failed"}
	for _, k := range spec {
		info, ok := Kinds[k]
		if !ok {
			t.Errorf("kind %s missing from the catalogue", k)
			continue
		}
		if SevRank(info.Severity) > 3 || info.Severity == "" || info.Owner == "" || info.TitleIT == "" || info.TitleEN == "" ||
			info.ActionIT == "" || info.ActionEN == "" || info.RaisedBy == "" || info.Resolves == "" {
			t.Errorf("kind %s incomplete: %+v", k, info)
		}
	}
	for _, k := range []string{"hostkey_mismatch", "sii_unreachable", "verify_failed"} {
		if Kinds[k].Severity != archive.SevUrgent {
			t.Errorf("%s must be urgent", k)
		}
	}
}

// TestDigestCarriesChainHead: every digest carries the archive's state chain head
// as it was when the digest was built, in the line `cmord archive verify --anchor`
// reads, in both languages and in text and HTML (issue 13: the head anchored outside
// the database, in the compliance mailbox).
func TestDigestCarriesChainHead(t *testing.T) {
	st := openStore(t, t.TempDir())
	fixture(t, st)
	head, ok, err := st.ChainHead(context.Background())
	if err != nil || !ok {
		t.Fatalf("chain head: %v %v", ok, err)
	}
	d, err := Build(context.Background(), st, Options{}, fixtureNow)
	if err != nil {
		t.Fatal(err)
	}
	if d.Anchor != head.String() {
		t.Fatalf("digest anchor %q, want the head %q", d.Anchor, head)
	}
	if _, err := archive.ParseAnchor(d.Anchor); err != nil {
		t.Fatalf("the digest's anchor does not parse: %v", err)
	}
	for _, lang := range []string{"it", "en"} {
		_, text, html, _, err := d.Render(lang, false)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, head.String()) || !strings.Contains(html, head.String()) {
			t.Errorf("%s: the digest does not carry the head %s", lang, head)
		}
	}
}

// The flow table reads in the order a person follows, not the archive's by internal
// key (which put AI1.0100 before AI1.0050 and SI2.0200 before RE1.0050): billing's
// drops, then the SII's flows by code (a request next to its answers), then the
// exports for billing.
func TestRenderFlowOrder(t *testing.T) {
	d := fixtureDigest(t)
	d.Flows = nil
	for _, k := range []string{"ANN_AMM", "ANN_NOTIF", "ANN_REQ", "NOTIF_ENTR", "REND", "REND_AMM", "REQ", "REQ_AMM", "REQ_ESITO",
		"SUSP_AMM", "SUSP_ESITO", "SUSP_REQ", "cmor_to_charge", "entrante.fatturato", "entrante.sospensioni", "uscente.incassi", "uscente.morosi"} {
		d.Flows = append(d.Flows, archive.FlowCount{Kind: k, Received: 1})
	}
	_, text, _, _, err := d.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Fatturazione — CMOR fatturati e incassati", "Fatturazione — Crediti insoluti", "Fatturazione — Incassi dai clienti",
		"Fatturazione — Sospensioni per morosità", "AI1.0050", "AI1.0100", "AI2.0200", "RE1.0050", "RE1.0100", "SI1.0050", "SI1.0100",
		"SI1.0150", "SI2.0200", "SO1.0050", "SO1.0100", "SO1.0150", "Export per la fatturazione — CMOR da addebitare"}
	at := -1
	for _, w := range want {
		i := strings.Index(text, "\n  "+w)
		if i < 0 || i < at {
			t.Fatalf("flow table: %q missing or out of order (want %v):\n%s", w, want, text)
		}
		at = i
	}
}
