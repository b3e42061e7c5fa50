package digest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/flows"
)

// Every item of the Italian digest leads with Italian from the tables; the code's
// English message is only the "dettaglio tecnico" under it. In English the message
// leads and there is no detail line.
func TestItalianDigestExplainsEveryItem(t *testing.T) {
	d := fixtureDigest(t)
	m := masker{on: true}
	for _, lang := range []string{"it", "en"} {
		v := d.view(lang, false)
		n := 0
		for _, sec := range v.Sections {
			for _, iv := range sec.Items {
				n++
				var it Item
				for _, list := range [][]Item{d.New, d.StillOpen, d.Resolved} {
					for _, x := range list {
						if x.ID == iv.ID {
							it = x
						}
					}
				}
				raw := m.text(humanizeCaseKeys(it.Message, m, lang), it.CustomerID, it.CustomerName)
				if iv.Title != Kinds[it.Kind].Title(lang) {
					t.Errorf("%s #%d: title %q, want the catalogue's %q", lang, iv.ID, iv.Title, Kinds[it.Kind].Title(lang))
				}
				if lang == "en" {
					if iv.Message != raw || iv.Detail != "" {
						t.Errorf("en #%d: main line %q, detail %q; want the message and no detail", iv.ID, iv.Message, iv.Detail)
					}
					continue
				}
				if iv.Message == raw || iv.Message == "" {
					t.Errorf("it #%d (%s): the main line is the English message %q", iv.ID, it.Kind, raw)
				}
				if iv.Detail != AmountsIT(raw) {
					t.Errorf("it #%d: detail %q, want the message %q", iv.ID, iv.Detail, raw)
				}
			}
		}
		if n != 18 {
			t.Errorf("%s: %d items, want 18", lang, n)
		}
	}
	_, text, html, _, err := d.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"    Codice fiscale non valido: 16 caratteri con il carattere di controllo giusto, o le 11 cifre della partita IVA per una società.\n    Dettaglio tecnico: codice fiscale RSS***********2X: check character is X",
		"    Caso già presentato al SII: non viene presentato una seconda volta.\n",
		"    Chiusura finestra di richiesta: 25/11/2026 — tra 2 giorni (2 lavorativi).\n",
		"    Risposta attesa dal SII: 17/11/2026 — scaduta da 6 giorni.\n",
		"    Il SII ha respinto la richiesta (inammissibile o con esito negativo).\n",
		"— automatica: condizione rientrata\n",
		"stato pronta per l'invio (READY)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Italian text lacks %q", want)
		}
	}
	if !strings.Contains(html, "Dettaglio tecnico: SII endpoint sii unreachable") {
		t.Error("Italian HTML lacks the technical detail line")
	}
}

// englishWords are words that betray an English phrase in the Italian digest.
var englishWords = regexp.MustCompile(`\b(the|and|request|practice|refused|rule|cause|failed|answer|expected|days|not|was|with|of|due|open|none|verified)\b`)

// Outside the technical detail lines (and the person's own resolution notes, and the
// command in the footer), the Italian digest has no English.
func TestItalianDigestHasNoEnglishLines(t *testing.T) {
	d := fixtureDigest(t)
	_, text, _, _, err := d.Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(text, "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "Dettaglio tecnico:"), strings.HasPrefix(trim, "Generato da cmord"):
			continue
		case strings.HasPrefix(trim, "Risolta il:") && strings.Contains(trim, "(da "):
			continue // a person's note, in their words
		}
		if w := englishWords.FindString(line); w != "" {
			t.Errorf("line %d has English %q: %s", i+1, w, line)
		}
	}
}

// The archive's case keys never reach a person: not in the body, not in the CSV, in
// neither language, with or without personal data.
func TestNoCaseKeysShown(t *testing.T) {
	d := fixtureDigest(t)
	for _, lang := range []string{"it", "en"} {
		for _, personal := range []bool{false, true} {
			_, text, html, csv, err := d.Render(lang, personal)
			if err != nil {
				t.Fatal(err)
			}
			for what, body := range map[string]string{"text": text, "html": html, "csv": string(csv)} {
				if k := caseKeyRE.FindString(body); k != "" || strings.Contains(body, "U|") || strings.Contains(body, "E|CMOR") {
					t.Errorf("%s personal=%v %s shows a case key %q", lang, personal, what, k)
				}
			}
			if !strings.Contains(text, "POD IT001E55556666") {
				t.Errorf("%s: the unfiled case is not shown by its POD", lang)
			}
		}
	}
	// The case that became a practice is shown as that practice.
	var found bool
	for _, it := range d.New {
		if it.Rule == "SI-D01" {
			found = it.PracticeCode == "E260000012" && it.Point == "IT001E12345678"
		}
	}
	if !found {
		t.Error("SI-D01 item not linked to practice E260000012 through its case key")
	}
}

func TestHumanizeCaseKeys(t *testing.T) {
	for _, tt := range []struct {
		in, lang string
		personal bool
		want     string
	}{
		{"case U|IT001E12345678|RSSMRA85T10A562S|2026-03-01 was filed", "it", false, "case POD IT001E12345678, cliente RSS***********2S, switch 01/03/2026 was filed"},
		{"U|00881234567890|01234567897|2026-02-01", "en", true, "PDR 00881234567890, customer 01234567897, switch 01/02/2026"},
		{"U|00881234567890|01234567897|2026-02-01", "en", false, "PDR 00881234567890, customer 012******97, switch 01/02/2026"},
		{"linked to E|CMOR26000000451.", "it", false, "linked to CP_GESTORE CMOR26000000451."},
		{"a|b and E4|x stay", "it", false, "a|b and E4|x stay"},
	} {
		if got := humanizeCaseKeys(tt.in, masker{on: !tt.personal}, tt.lang); got != tt.want {
			t.Errorf("humanizeCaseKeys(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// An SII refusal's rule is the SII's cause: labelled "causale SII" with its
// description, its value the SII's motivation.
func TestSIICauseShownAsCausale(t *testing.T) {
	d := fixtureDigest(t)
	for _, tt := range []struct{ lang, want, not string }{
		{"it", "causale SII SI-W02: richiesta presentata dopo la fine del 12° mese dallo switch, motivazione «Richiesta presentata oltre i termini»", "regola SI-W02"},
		{"en", "SII cause SI-W02: request after the end of the 12th month after T_sw, motivation «Richiesta presentata oltre i termini»", "rule SI-W02"},
	} {
		_, text, html, csv, err := d.Render(tt.lang, false)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, tt.want) || strings.Contains(text, tt.not) {
			t.Errorf("%s text: want %q and no %q", tt.lang, tt.want, tt.not)
		}
		if !strings.Contains(html, "SI-W02") || strings.Contains(html, tt.not) {
			t.Errorf("%s html: rule label", tt.lang)
		}
		if !strings.Contains(string(csv), ";SI-W02: ") {
			t.Errorf("%s csv lacks the cause with its description", tt.lang)
		}
	}
}

func TestCauseDescription(t *testing.T) {
	own := flows.DefaultCatalog()
	for _, c := range own.Causes["ANNULLAMENTO"].Codes {
		if c.Code == "AN-06" {
			// The operator maps a placeholder to the official meaning.
			c := own.Causes["ANNULLAMENTO"].Lookup("AN-06")
			c.Description = "Annullamento richiesto dal venditore (codice ufficiale)"
		}
	}
	for _, tt := range []struct {
		cat        *flows.Catalog
		code, lang string
		want       string
	}{
		{nil, "SI-W02", "it", "richiesta presentata dopo la fine del 12° mese dallo switch"},
		{nil, "005", "it", "richiesta (CP_UTENTE) già ricevuta, con il codice pratica del Gestore indicato"},
		{nil, "SI-W02", "en", "request after the end of the 12th month after T_sw"},
		{own, "AN-06", "it", "Annullamento richiesto dal venditore (codice ufficiale)"},
		{own, "AN-02", "it", "il venditore uscente ha incassato il credito (debito pagato o chiuso)"},
		{nil, "ZZ-99", "it", ""},
		{nil, "", "it", ""},
	} {
		cat := tt.cat
		if cat == nil {
			cat = defaultCatalog()
		}
		if got := CauseDescription(cat, tt.code, tt.lang); got != tt.want {
			t.Errorf("CauseDescription(%q, %s) = %q, want %q", tt.code, tt.lang, got, tt.want)
		}
	}
}

// Alerts reach a wider on-call audience: personal data follow [alerts]
// include_personal_data (default false), not the digest's switch.
func TestAlertsMaskedByDefault(t *testing.T) {
	for _, tt := range []struct {
		name             string
		digest, alerts   bool
		wantPersonalData bool
	}{
		{"digest personal, alerts default", true, false, false},
		{"alerts personal", false, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t0 := rome(2026, time.November, 23, 7, 0)
			r := newRig(t, t0)
			r.opts.IncludePersonalData, r.opts.AlertIncludePersonalData = tt.digest, tt.alerts
			p := &archive.Practice{CaseKey: "U|IT001E12345678|RSSMRA85T10A562S|2025-11-01", Role: "uscente", Sector: "E",
				CompanyPIVA: "00488410010", CPUtente: "E260000012", Point: "IT001E12345678", CustomerID: "RSSMRA85T10A562S",
				CustomerName: "Mario Rossi", State: flows.StateReady, WindowOpen: flows.D(2026, time.May, 1), WindowClose: flows.D(2026, time.November, 25)}
			createPractice(t, r.st, p, t0)
			raise(t, r.st, archive.Exception{Fingerprint: "window_closing|x", Kind: "window_closing", Severity: archive.SevUrgent,
				Owner: OwnerCompliance, PracticeID: p.ID, Subject: "E260000012", DueOn: "2026-11-25", LastSeen: t0,
				Message: "practice E260000012 (POD IT001E12345678, READY) of Mario Rossi RSSMRA85T10A562S: request window closes on 25/11/2026"})
			r.clock.Set(t0.Add(2 * time.Minute))
			r.alerts()
			if n := r.flush(); n != 1 {
				t.Fatalf("sent %d alerts, want 1", n)
			}
			body := strings.ReplaceAll(string(r.sink.Messages()[0].Data), "=\r\n", "")
			for _, secret := range []string{"RSSMRA85T10A562S", "Mario Rossi"} {
				if got := strings.Contains(body, secret); got != tt.wantPersonalData {
					t.Errorf("alert contains %q = %v, want %v", secret, got, tt.wantPersonalData)
				}
			}
			if !tt.wantPersonalData && !strings.Contains(body, "RSS***********2S") {
				t.Error("masked CF not in the alert")
			}
		})
	}
}

func TestOptionsFromConfigPersonalData(t *testing.T) {
	base := "[company]\npiva = \"00488410010\"\nname = \"Esempio\"\nroles = [\"uscente\"]\nsectors = [\"E\"]\npiva_gestore = \"01234567897\"\n"
	for _, tt := range []struct {
		extra          string
		digest, alerts bool
	}{
		{"", false, false},
		{"[digest]\ninclude_personal_data = true\n", true, false},
		{"[alerts]\ninclude_personal_data = true\n", false, true},
	} {
		cfg, err := config.Parse("c.toml", []byte(base+tt.extra))
		if err != nil {
			t.Fatal(err)
		}
		o := OptionsFromConfig(cfg)
		if o.IncludePersonalData != tt.digest || o.AlertIncludePersonalData != tt.alerts {
			t.Errorf("%q: digest %v alerts %v, want %v %v", tt.extra, o.IncludePersonalData, o.AlertIncludePersonalData, tt.digest, tt.alerts)
		}
		if o.Deadlines.NoAnswerDays != cfg.Deadlines.NoAnswerDays {
			t.Errorf("deadline terms not mapped: %+v", o.Deadlines)
		}
	}
}

// A practice created after the deadline job's last run: Build refreshes the deadlines
// itself, so the digest lists the new term and raises its exception.
func TestBuildRefreshesDeadlines(t *testing.T) {
	st := openStore(t, t.TempDir())
	now := fixtureNow
	if _, _, err := RunDeadlines(context.Background(), st, flows.NewCalendar(0, 0), DeadlineConfig{}, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	p := &archive.Practice{CaseKey: "U|IT001E12345678|RSSMRA85T10A562S|2025-11-01", Role: "uscente", Sector: "E",
		CompanyPIVA: "00488410010", CPUtente: "E260000012", Point: "IT001E12345678", CustomerID: "RSSMRA85T10A562S",
		State: flows.StateReady, WindowOpen: flows.D(2026, time.May, 1), WindowClose: flows.D(2026, time.November, 30)}
	createPractice(t, st, p, now.Add(-time.Minute))
	d, err := Build(context.Background(), st, Options{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Deadlines) != 1 || d.Deadlines[0].PracticeCode != "E260000012" || d.Deadlines[0].Kind != DeadlineWindowClosing {
		t.Errorf("deadlines = %+v, want the new practice's window closing", d.Deadlines)
	}
	if len(d.New) != 1 || d.New[0].Kind != DeadlineWindowClosing {
		t.Errorf("new = %+v, want its window_closing exception", d.New)
	}
}

// The tables cover everything: every catalogued kind is explained in both languages,
// every cause code and state of the embedded catalog has Italian words.
func TestTablesComplete(t *testing.T) {
	for _, k := range KindNames() {
		e := KindExplanations[k]
		if e.IT == "" || e.EN == "" || e.IT == e.EN {
			t.Errorf("kind %s: explanation %+v", k, e)
		}
		if Kinds[k].TitleIT == Kinds[k].TitleEN && k != "sii_unreachable" {
			t.Errorf("kind %s: Italian title is the English one", k)
		}
	}
	for k := range KindExplanations {
		if _, ok := Kinds[k]; !ok {
			t.Errorf("explanation of %s, which the catalogue lacks", k)
		}
	}
	cat := flows.DefaultCatalog()
	for name, tab := range cat.Causes {
		for _, c := range tab.Codes {
			if causeTexts[c.Code].IT == "" {
				t.Errorf("cause %s of table %s has no Italian description", c.Code, name)
			}
		}
	}
	for _, s := range cat.States {
		if StateTexts[s.Name].IT == "" {
			t.Errorf("state %s has no Italian label", s.Name)
		}
	}
	for code, txt := range RuleTexts {
		if txt.IT == "" || txt.EN == "" {
			t.Errorf("rule %s: %+v", code, txt)
		}
	}
}

// sourceMatches returns the first group of every match of re in the non-test Go files
// of dir.
func sourceMatches(t *testing.T, dir string, re *regexp.Regexp) map[string][]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = append(out[m[1]], filepath.Base(p))
		}
	}
	return out
}

// Whatever kind the daemon raises and whatever rule a finding or an exception carries
// has its row in the tables: a new one added to the code without words for people fails
// here, not in a compliance officer's inbox.
func TestTablesCoverWhatTheCodeRaises(t *testing.T) {
	kindRE := regexp.MustCompile(`(?s)Exception\{[^{}]*?Kind: +"([a-z_]+)"|raise\("([a-z_]+)"`)
	kinds := map[string][]string{}
	for _, dir := range []string{"..", "../uscente", "../entrante", "../sii", "../family", "../../archive", "."} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range kindRE.FindAllStringSubmatch(string(b), -1) {
				k := m[1] + m[2]
				kinds[k] = append(kinds[k], filepath.Base(p))
			}
		}
	}
	if len(kinds) < 15 {
		t.Fatalf("found only %d kinds in the sources: %v", len(kinds), kinds)
	}
	for k, where := range kinds {
		if _, ok := Kinds[k]; !ok {
			t.Errorf("kind %s raised in %v is not in the catalogue", k, where)
		}
	}

	rules := map[string][]string{}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`Rule: +"([A-Z][A-Z0-9_-]+)"`),
		regexp.MustCompile(`\bRule[A-Za-z]* += +"([A-Z][A-Z0-9_-]+)"`),
		regexp.MustCompile(`\b(?:fail|warn|refuse)\((?:ctx, st, pr, )?"([A-Z][A-Z0-9_-]+)"`),
	} {
		for _, dir := range []string{"../../flows", "..", "../uscente", "../entrante", "../sii", "../family"} {
			for r, where := range sourceMatches(t, dir, re) {
				rules[r] = append(rules[r], where...)
			}
		}
	}
	var missing []string
	for r, where := range rules {
		if strings.HasPrefix(r, "CATALOG-") {
			continue // the catalog's self-check (`cmord catalog check`), never an exception
		}
		if _, ok := RuleTexts[r]; !ok {
			missing = append(missing, r+" ("+strings.Join(where, ",")+")")
		}
	}
	sort.Strings(missing)
	if len(rules) < 40 || len(missing) > 0 {
		t.Errorf("%d rules found; without words in RuleTexts: %v", len(rules), missing)
	}
}
