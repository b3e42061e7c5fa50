package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/flows"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestExampleParses(t *testing.T) {
	c, err := Load("example.toml")
	if err != nil {
		t.Fatalf("example.toml: %v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("example.toml warnings: %v", c.Warnings)
	}
	if c.Company.PIVA != "00488410010" || !c.Company.HasRole("entrante") || !c.Company.HasSector("G") {
		t.Errorf("company = %+v", c.Company)
	}
	if len(c.Folders) != 6 || c.Folders[0].Settle != 10*time.Second || c.Folders[0].Role() != "uscente" {
		t.Errorf("folders = %+v", c.Folders)
	}
	if got := c.Folders[0].Ignore; !reflect.DeepEqual(got, DefaultIgnore) {
		t.Errorf("ignore = %v", got)
	}
	if c.CMOR.MinIndemnity != flows.Euros(10, 0) {
		t.Errorf("min_indemnity = %v", c.CMOR.MinIndemnity)
	}
	if c.Location != flows.Rome && c.Location.String() != "Europe/Rome" {
		t.Errorf("location = %v", c.Location)
	}
	if c.SFTP[0].Addr() != "sftp.sii.example.it:22" || c.Mail.Addr() != "smtp.example.it:587" {
		t.Errorf("addrs %s %s", c.SFTP[0].Addr(), c.Mail.Addr())
	}
	if !reflect.DeepEqual(c.Alerts.To, c.Digest.To) {
		t.Errorf("alerts.to = %v", c.Alerts.To)
	}
	if c.Alerts.IncludePersonalData {
		t.Error("alerts.include_personal_data = true in example.toml, want the default false")
	}
	// The header names the absolute path of the checkout: keep the golden file portable.
	golden(t, "example.effective.toml", strings.Replace(c.Redacted(), c.File, "example.toml", 1))
}

// The example documents every default: parsing it must give what the defaults give.
func TestExampleMatchesDefaults(t *testing.T) {
	ex, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	if !reflect.DeepEqual(ex.CMOR, d.CMOR) || !reflect.DeepEqual(ex.Schedule, d.Schedule) ||
		!reflect.DeepEqual(ex.Log, d.Log) || !reflect.DeepEqual(ex.Build.MaxFileBytes, d.Build.MaxFileBytes) ||
		!reflect.DeepEqual(ex.Deadlines, d.Deadlines) || ex.PracticeCode != d.PracticeCode || ex.StateDir != d.StateDir ||
		ex.Alerts.IncludePersonalData != d.Alerts.IncludePersonalData || ex.Digest.IncludePersonalData != d.Digest.IncludePersonalData {
		t.Errorf("example.toml and Defaults() disagree")
	}
	f := ex.Folders[0]
	f.Name, f.Path, f.Kind = "", "", ""
	if !reflect.DeepEqual(f, DefaultFolder()) {
		t.Errorf("folder defaults:\n%+v\n%+v", f, DefaultFolder())
	}
	s := ex.SFTP[0]
	s.Name, s.Host, s.User, s.KeyFile, s.KnownHosts, s.InboundDir, s.OutboundDir = "", "", "", "", "", "", ""
	s.HostKeyAlgorithms = nil
	if !reflect.DeepEqual(s, DefaultSFTP()) {
		t.Errorf("sftp defaults:\n%+v\n%+v", s, DefaultSFTP())
	}
}

// The effective configuration is itself a valid configuration with the same meaning.
func TestRedactedRoundTrip(t *testing.T) {
	c, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	out := c.Redacted()
	if strings.Contains(out, "cmord@example.it\"\npassword") {
		t.Error("username not redacted")
	}
	out = strings.Replace(out, `username = "[redacted]"`, `username = "cmord@example.it"`, 1)
	c2, err := Parse(c.File, []byte(out))
	if err != nil {
		t.Fatalf("effective config does not parse: %v", err)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip changed the config:\n%+v\n%+v", c, c2)
	}
}

func TestBadGolden(t *testing.T) {
	_, err := Load("testdata/bad.toml")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *Error, got %v", err)
	}
	got := strings.ReplaceAll(err.Error(), mustAbs(t, "testdata/bad.toml"), "bad.toml")
	golden(t, "bad.golden", got+"\n")
	for _, f := range ce.Findings() {
		if f.Rule == "" || f.File == "" || f.Message == "" {
			t.Errorf("finding without rule/file/message: %+v", f)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// minimal is the smallest valid configuration; cases add to it.
const minimal = `[company]
piva = "00488410010"
name = "Esempio"
roles = ["uscente"]
sectors = ["E"]
piva_gestore = "01234567897"
`

func TestProblems(t *testing.T) {
	cases := []struct {
		name string
		toml string // followed by minimal, unless it starts with "!" (then it is the whole file)
		want []string
	}{
		{"unknown top key", `stat_dir = "/x"`, []string{`c.toml:1: unknown key "stat_dir" (did you mean "state_dir"?)`}},
		{"unknown nested key", "[log]\nlevl = \"info\"", []string{`c.toml:2: unknown key "log.levl" (did you mean "level"?)`}},
		{"unknown key in second folder", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\n[[folder]]\nname=\"b\"\npath=\"/b\"\nkind=\"uscente.morosi\"\nsettl=\"1s\"",
			[]string{`c.toml:9: unknown key "folder[1].settl" (did you mean "settle"?)`}},
		{"unknown table", "[mial]\nhost = \"x\"", []string{`c.toml:1: unknown key "mial" (did you mean "mail"?)`}},
		{"dotted key", `log.formt = "json"`, []string{`c.toml:1: unknown key "log.formt"`}},
		{"duration", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nsettle=\"10\"",
			[]string{`c.toml:5: folder[0].settle: "10" is not a duration; expected a value like "10s", "5m" or "1h30m" (rule duration)`}},
		{"duration type", "[alerts]\ngroup_wait = 60", []string{`c.toml:2: alerts.group_wait: expected a duration string`}},
		{"alerts personal data type", "[alerts]\ninclude_personal_data = \"yes\"", []string{`c.toml:2: alerts.include_personal_data: expected true or false, found the string "yes" (rule type)`}},
		{"alerts personal data typo", "[alerts]\ninclude_personal_dat = true", []string{`c.toml:2: unknown key "alerts.include_personal_dat" (did you mean "include_personal_data"?)`}},
		{"duration range", "[[sftp]]\nname=\"s\"\nhost=\"h\"\nuser=\"u\"\nkey_file=\"/k\"\nknown_hosts=\"/kh\"\ninbound_dir=\"/in\"\ndial_timeout=\"1ms\"",
			[]string{`c.toml:8: sftp[0].dial_timeout: 1ms is out of range; expected 1s to 10m (rule range)`}},
		{"cron 6 fields", "[schedule]\nbuild = \"0 0 * * * *\"", []string{`c.toml:2: schedule.build: "0 0 * * * *" is not a cron spec`}},
		{"cron descriptor ok", "[schedule]\nbuild = \"@daily\"\nverify = \"@every 1h\"\ndeliver = \"off\"", nil},
		{"cron bad descriptor", "[schedule]\nbuild = \"@fortnightly\"", []string{`c.toml:2: schedule.build: "@fortnightly" is not a cron spec`}},
		{"enum", "[log]\nformat = \"xml\"", []string{`c.toml:2: log.format: "xml" is not allowed; expected one of "auto", "text", "json" (rule enum)`}},
		{"piva checksum", "!" + strings.Replace(minimal, "00488410010", "00488410011", 1), []string{`c.toml:2: company.piva: partita IVA "00488410011": check digit is 1, expected 0 (rule piva)`}},
		{"piva shape", "!" + strings.Replace(minimal, "00488410010", "0048841001", 1), []string{`c.toml:2: company.piva: partita IVA "0048841001" has 10 characters, expected 11 digits (rule piva)`}},
		{"piva with IT prefix is normalised", "!" + strings.Replace(minimal, "00488410010", "IT00488410010", 1), nil},
		{"missing company keys", "![company]\nname = \"x\"\n", []string{
			`c.toml:1: company.piva: missing: the company's VAT number`,
			`c.toml:1: company.roles: missing`, `c.toml:1: company.sectors: missing`, `c.toml:1: company.piva_gestore: missing`}},
		{"no company at all", "!", []string{`c.toml: company.piva: missing`}},
		{"CC needs udd_piva", `company.acting_as = "CC"`, []string{`company.udd_piva: acting_as = "CC" needs udd_piva`}},
		{"udd_piva only with CC", `company.udd_piva = "12345678903"`, []string{`c.toml:1: company.udd_piva: is only used with acting_as = "CC"`}},
		{"CC ok", "!" + minimal + "acting_as = \"CC\"\nudd_piva = \"12345678903\"", nil},
		{"literal password", "[mail]\nhost=\"localhost\"\nfrom=\"a@b.it\"\ntls=\"none\"\npassword=\"x\"",
			[]string{`c.toml:5: mail.password: secrets are never written in the configuration; put the password alone in a file readable only by the cmord user and set password_file (rule secret_in_config)`}},
		{"tls none remote", "[mail]\nhost=\"smtp.example.it\"\nfrom=\"a@b.it\"\ntls=\"none\"", []string{`c.toml:4: mail.tls: "none" is allowed only towards a loopback host`}},
		{"tls none loopback", "[mail]\nhost=\"127.0.0.1\"\nfrom=\"a@b.it\"\ntls=\"none\"", nil},
		{"digest without mail", "[digest]\nto=[\"a@b.it\"]", []string{`c.toml: mail.host: digest.to or alerts.to is set but no mail relay is configured`}},
		{"bad address", "[mail]\nhost=\"localhost\"\nfrom=\"nobody\"", []string{`c.toml:3: mail.from: "nobody" is not an e-mail address`}},
		{"port range", "[mail]\nhost=\"localhost\"\nfrom=\"a@b.it\"\nport=0", []string{`c.toml:4: mail.port: 0 is out of range; expected 1 to 65535 (rule range)`}},
		{"port type", "[mail]\nhost=\"localhost\"\nfrom=\"a@b.it\"\nport=\"25\"", []string{`c.toml:4: mail.port: expected an integer, found the string "25" (rule type)`}},
		{"min_indemnity float", "[cmor]\nmin_indemnity = 10.5", []string{`c.toml:2: cmor.min_indemnity: expected a decimal string like "10.00" (money is never a float)`}},
		{"min_indemnity decimals", "[cmor]\nmin_indemnity = \"10.505\"", []string{`c.toml:2: cmor.min_indemnity: "10.505" is not an amount`}},
		{"estimate > spend", "[cmor]\nspend_window_months = 3", []string{`c.toml:1: cmor.estimate_months: 4 is more than spend_window_months (3)`}},
		{"template too long", "[practice_code]\ntemplate = \"{SECTOR}{YYYY}{SEQ:11}\"", []string{`makes codes of 16 characters; the SII allows at most 15`}},
		{"template non-alnum", "[practice_code]\ntemplate = \"{SECTOR}-{SEQ:7}\"", []string{`literal "-" may hold only uppercase letters and digits`}},
		{"template no seq", "[practice_code]\ntemplate = \"{SECTOR}{YY}\"", []string{`needs exactly one {SEQ:n}`}},
		{"template prefix", "[practice_code]\ntemplate = \"{PREFIX:cm}{SEQ:7}\"", []string{`literal "cm" may hold only uppercase letters and digits`}},
		{"folder inside folder", "[[folder]]\nname=\"a\"\npath=\"/srv/a\"\nkind=\"uscente.morosi\"\n[[folder]]\nname=\"b\"\npath=\"/srv/a/b\"\nkind=\"uscente.incassi\"",
			[]string{`c.toml:7: folder[1].path: /srv/a/b and folder "a"'s /srv/a are inside one another (line 3) (rule path_overlap)`}},
		{"folder in state dir", "state_dir=\"/srv\"\n[[folder]]\nname=\"a\"\npath=\"/srv/a\"\nkind=\"uscente.morosi\"", []string{`c.toml:4: folder[0].path: /srv/a overlaps state_dir /srv`}},
		{"sibling folders ok", "[[folder]]\nname=\"a\"\npath=\"/srv/a\"\nkind=\"uscente.morosi\"\n[[folder]]\nname=\"ab\"\npath=\"/srv/ab\"\nkind=\"uscente.incassi\"", nil},
		{"duplicate names across folder and sftp", "[[folder]]\nname=\"sii\"\npath=\"/srv/a\"\nkind=\"sii\"\n[[sftp]]\nname=\"sii\"\nhost=\"h\"\nuser=\"u\"\nkey_file=\"/k\"\nknown_hosts=\"/kh\"\ninbound_dir=\"/in\"",
			[]string{`c.toml:6: sftp[0].name: name "sii" is already used at line 2 (rule duplicate)`}},
		{"role not held", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"entrante.fatturato\"", []string{`c.toml:4: folder[0].kind: kind "entrante.fatturato" needs the "entrante" role, which company.roles does not include (rule role)`}},
		{"known_hosts required", "[[sftp]]\nname=\"s\"\nhost=\"h\"\nuser=\"u\"\nkey_file=\"/k\"\ninbound_dir=\"/in\"", []string{`c.toml:1: sftp[0].known_hosts: missing: a known_hosts file with the server's key (get it with ` + "`cmord hostkey fetch h:22`"}},
		{"tofu explicit", "[[sftp]]\nname=\"s\"\nhost=\"h\"\nuser=\"u\"\nkey_file=\"/k\"\ninbound_dir=\"/in\"\ninsecure_trust_on_first_use=true", nil},
		{"host key algo", "[[sftp]]\nname=\"s\"\nhost=\"h\"\nuser=\"u\"\nkey_file=\"/k\"\nknown_hosts=\"/kh\"\ninbound_dir=\"/in\"\nhost_key_algorithms=[\"ssh-ed25519\", \"ssh-dss2\"]", []string{`"ssh-dss2" is not a host key algorithm`}},
		{"mapping and mapping_file", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nmapping_file=\"m.toml\"\n[folder.mapping]\n\"Codice POD\" = \"pod\"", []string{`c.toml:5: folder[0].mapping_file: set either mapping or mapping_file, not both`}},
		{"mapping value type", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\n[folder.mapping]\n\"Codice POD\" = 3", []string{`c.toml:6: folder[0].mapping."Codice POD": expected a string, found the integer 3 (rule type)`}},
		{"inline mapping", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nmapping = { \"A\" = \"pod\", \"B\" = \"pod\" }", []string{`c.toml:5: folder[0].mapping.B: headers "A" and "B" both map to field "pod"`}},
		{"exports unknown", "[outbound.exports.invoices]\na = \"b\"", []string{`c.toml:1: unknown key "outbound.exports.invoices"`}},
		{"exports ok", "[outbound.exports.cmor_to_charge]\npod = \"Codice POD\"", nil},
		{"size", "[build]\nmax_file_bytes = \"10 parsecs\"", []string{`c.toml:2: build.max_file_bytes: "10 parsecs" is not a size`}},
		{"build format", "[build.format]\nREQ = \"json\"", []string{`c.toml:2: build.format.REQ: "json" is not allowed; expected "csv" or "xml"`}},
		{"patron day", "[deadlines]\npatron_day = \"29-06\"", []string{`c.toml:2: deadlines.patron_day: "29-06" is not a day of the year`}},
		{"listen", "listen = \"9464\"", []string{`c.toml:1: listen: "9464" is not an address`}},
		{"timezone", "timezone = \"Rome\"", []string{`c.toml:1: timezone: "Rome" is not an IANA time zone`}},
		{"syntax", "[log\nlevel = 1", []string{`c.toml:2: TOML syntax:`}},
		{"wrong table type", "log = \"debug\"", []string{`c.toml:1: log: expected a table ([log]), found the string "debug" (rule type)`}},
		{"multi-line string does not confuse lines", "[digest]\nto = [\n  \"a@b.it\",  # x = 1\n  '''\nfoo = 1\n''',\n]\nlangg = \"it\"", []string{`c.toml:8: unknown key "digest.langg"`}},
		{"tilde path", "state_dir = \"~/cmord\"", []string{`c.toml:1: state_dir: "~/cmord": "~" is not expanded`}},
		{"unstable_after ok", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nunstable_after=\"10m\"", nil},
		{"unstable_after not a duration", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nunstable_after=\"1 hour\"",
			[]string{`c.toml:5: folder[0].unstable_after: "1 hour" is not a duration; expected a value like "10s", "5m" or "1h30m" (rule duration)`}},
		{"unstable_after range", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nunstable_after=\"30d\"",
			[]string{`c.toml:5: folder[0].unstable_after: "30d" is not a duration`}},
		{"unstable_after too long", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nunstable_after=\"200h\"",
			[]string{`c.toml:5: folder[0].unstable_after: 200h is out of range; expected 100ms to 168h (rule range)`}},
		{"unstable_after within settle", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nsettle=\"2m\"\nunstable_after=\"1m\"",
			[]string{`c.toml:6: folder[0].unstable_after: 1m is not longer than settle (2m)`, `expected more than 2m (rule unstable_after)`}},
		{"unstable_after typo", "[[folder]]\nname=\"a\"\npath=\"/a\"\nkind=\"uscente.morosi\"\nunstable_afer=\"1m\"",
			[]string{`c.toml:5: unknown key "folder[0].unstable_afer" (did you mean "unstable_after"?)`}},
		{"dead_letter_after ok", "[mail]\nhost=\"localhost\"\nfrom=\"a@b.it\"\ndead_letter_after=3", nil},
		{"dead_letter_after zero", "[mail]\nhost=\"localhost\"\nfrom=\"a@b.it\"\ndead_letter_after=0",
			[]string{`c.toml:4: mail.dead_letter_after: 0 is out of range; expected 1 to 1000 (rule range)`}},
		{"dead_letter_after type", "[mail]\nhost=\"localhost\"\nfrom=\"a@b.it\"\ndead_letter_after=\"10\"",
			[]string{`c.toml:4: mail.dead_letter_after: expected an integer, found the string "10" (rule type)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.toml + "\n" + minimal
			if strings.HasPrefix(tc.toml, "!") {
				src = tc.toml[1:]
			}
			_, err := Parse("c.toml", []byte(src))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain\n  %s\ngot:\n%v", w, err)
				}
			}
		})
	}
}

// [alerts] include_personal_data is its own switch: personal data in the digest does
// not leak into alerts, which reach a wider on-call audience.
func TestAlertsPersonalDataIndependentOfDigest(t *testing.T) {
	for _, tc := range []struct {
		name         string
		extra        string
		digest, alrt bool
	}{
		{"defaults", "", false, false},
		{"digest only", "[digest]\ninclude_personal_data = true\n", true, false},
		{"alerts only", "[alerts]\ninclude_personal_data = true\n", false, true},
		{"both", "[digest]\ninclude_personal_data = true\n[alerts]\ninclude_personal_data = true\n", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("c.toml", []byte(minimal+tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			if c.Digest.IncludePersonalData != tc.digest || c.Alerts.IncludePersonalData != tc.alrt {
				t.Errorf("digest %v alerts %v, want %v %v", c.Digest.IncludePersonalData, c.Alerts.IncludePersonalData, tc.digest, tc.alrt)
			}
			if want := "include_personal_data = " + map[bool]string{true: "true", false: "false"}[tc.alrt]; !strings.Contains(c.Redacted()[strings.Index(c.Redacted(), "[alerts]"):], want) {
				t.Errorf("effective [alerts] lacks %q", want)
			}
		})
	}
}

func TestRelativePathsResolveAgainstConfigDir(t *testing.T) {
	dir := t.TempDir()
	src := "state_dir = \"state\"\n" + minimal + "[[folder]]\nname=\"a\"\npath=\"drop/a\"\nkind=\"uscente.morosi\"\n"
	if err := os.WriteFile(filepath.Join(dir, "cmord.toml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(dir, "cmord.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != filepath.Join(dir, "state") || c.Folders[0].Path != filepath.Join(dir, "drop/a") {
		t.Errorf("state_dir %s, folder %s", c.StateDir, c.Folders[0].Path)
	}
}

func TestWarnings(t *testing.T) {
	c, err := Parse("c.toml", []byte("listen = \"0.0.0.0:9464\"\n"+minimal))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`c.toml:1: listen: "0.0.0.0:9464" is not a loopback address: /metrics and /healthz have no authentication (rule listen)`,
		`c.toml: no [[sftp]] endpoint and no folder of kind "sii": flows will be built but neither published nor read (rule no_sii)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	pw := filepath.Join(dir, "pw")
	os.WriteFile(key, []byte("k"), 0o644)
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	src := minimal + `[[sftp]]
name = "s"
host = "h"
user = "u"
key_file = "key"
known_hosts = "missing_known_hosts"
inbound_dir = "/in"
[mail]
host = "localhost"
tls = "none"
from = "a@b.it"
username = "u"
password_file = "pw"
`
	os.WriteFile(filepath.Join(dir, "c.toml"), []byte(src), 0o644)
	c, err := Load(filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckFiles()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"sftp[0].key_file: " + key + " is readable by other users (mode 0644)", "sftp[0].known_hosts: " + filepath.Join(dir, "missing_known_hosts") + " does not exist"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "mail") {
		t.Errorf("mail password file is fine: %v", err)
	}
	if p, err := c.Mail.Password(); err != nil || p != "s3cret" {
		t.Errorf("Password() = %q, %v", p, err)
	}
}

func TestPracticeCode(t *testing.T) {
	cases := []struct {
		tmpl string
		ok   bool
	}{
		{DefaultPracticeCodeTemplate, true},
		{"{PREFIX:CM}{SECTOR}{YYYY}{SEQ:6}", true},
		{"X{SEQ:3}", true},
		{"{SECTOR}{YYYY}{SEQ:12}", false}, // 17 characters
		{"{SECTOR}{YY}", false},           // no sequence: codes would repeat
		{"cm{SEQ:5}", false},              // lowercase
		{"", false},
	}
	for _, tc := range cases {
		if err := (PracticeCode{Template: tc.tmpl}).check(); (err == nil) != tc.ok {
			t.Errorf("template %q: err = %v, want ok=%v", tc.tmpl, err, tc.ok)
		}
	}
}

func TestKeyLines(t *testing.T) {
	src := `a = 1
[t]
b.c = "x"  # comment [not a table]
"quoted key" = 2
s = """
d = 3
"""
[[arr]]
x = 1
[arr.sub]
y = 2
[[arr]]
x = 2
[arr.sub]
y = 3
`
	kl := scanKeyLines([]byte(src))
	want := map[string]int{
		"a": 1, "t": 2, "t\x1fb": 3, "t\x1fb\x1fc": 3, "t\x1fquoted key": 4, "t\x1fs": 5,
		"arr[0]": 8, "arr[0]\x1fx": 9, "arr[0]\x1fsub": 10, "arr[0]\x1fsub\x1fy": 11,
		"arr[1]": 12, "arr[1]\x1fx": 13, "arr[1]\x1fsub": 14, "arr[1]\x1fsub\x1fy": 15,
	}
	if !reflect.DeepEqual(map[string]int(kl), want) {
		t.Errorf("got %v\nwant %v", kl, want)
	}
}

func TestPIVANormalised(t *testing.T) {
	c, err := Parse("c.toml", []byte(strings.Replace(minimal, "00488410010", "IT00488410010", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Company.PIVA != "00488410010" {
		t.Errorf("piva = %q", c.Company.PIVA)
	}
}

func TestColumnMapping(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("# billing export v3\n\"Codice POD\" = \"pod\"\n'Cod. Fiscale' = \"cf\"\n"), 0o644)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("\"A\" = \"pod\"\n\"B\" = 3\n\"C\" = \"pod\"\n"), 0o644)

	m, err := Folder{MappingFile: good}.ColumnMapping()
	if err != nil || !reflect.DeepEqual(m, map[string]string{"Codice POD": "pod", "Cod. Fiscale": "cf"}) {
		t.Errorf("good: %v %v", m, err)
	}
	_, err = Folder{Name: "x", MappingFile: bad}.ColumnMapping()
	for _, want := range []string{bad + `:2: "B": expected a field name`, bad + `:3: headers "A" and "C" both map to field pod`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad: %v\nwant it to contain %s", err, want)
		}
	}
	table := filepath.Join(dir, "table.toml")
	os.WriteFile(table, []byte("kind = \"uscente.morosi\"\ndecimal_comma = true\n[mapping]\n\"Codice POD\" = \"COD_POD\"\n"), 0o644)
	if _, err := (Folder{Name: "m", Kind: "uscente.morosi", MappingFile: table}).ColumnMapping(); err == nil || !strings.Contains(err.Error(), "set decimal_comma = true") {
		t.Errorf("decimal comma in the mapping file but not the folder: %v", err)
	}
	if m, err := (Folder{Name: "m", Kind: "uscente.morosi", DecimalComma: true, MappingFile: table}).ColumnMapping(); err != nil || m["Codice POD"] != "COD_POD" {
		t.Errorf("table mapping: %v %v", m, err)
	}
	inline := map[string]string{"X": "pod"}
	if m, _ := (Folder{Mapping: inline}).ColumnMapping(); !reflect.DeepEqual(m, inline) {
		t.Errorf("inline: %v", m)
	}
}

// TestSizeLimitKeys: the size keys, their defaults and their refusals, one per limit.
func TestSizeLimitKeys(t *testing.T) {
	folder := func(kind, extra string) string {
		return "[[folder]]\nname=\"a\"\npath=\"/srv/a\"\nkind=\"" + kind + "\"\n" + extra
	}
	tests := []struct {
		name        string
		toml        string
		folderMax   int64
		siiFile     int64
		siiFlow     map[string]int64
		wantProblem string
	}{
		{name: "defaults", toml: folder("uscente.morosi", ""), folderMax: 512 << 20, siiFile: 32 << 20},
		{name: "sii folder defaults to sii_file", toml: folder("sii", ""), folderMax: 32 << 20, siiFile: 32 << 20},
		{name: "sii folder follows a raised sii_file", toml: "[limits]\nsii_file = \"64MiB\"\n" + folder("sii", ""), folderMax: 64 << 20, siiFile: 64 << 20},
		{name: "folder max_size as a string", toml: folder("uscente.morosi", "max_size = \"1GiB\""), folderMax: 1 << 30, siiFile: 32 << 20},
		{name: "folder max_size in bytes", toml: folder("uscente.incassi", "max_size = 2048"), folderMax: 2048, siiFile: 32 << 20},
		{name: "per flow", toml: folder("uscente.morosi", "") + "[limits]\nsii_file = \"16MiB\"\n[limits.sii_flow]\nREQ_AMM = \"128MiB\"\n", folderMax: 512 << 20, siiFile: 16 << 20, siiFlow: map[string]int64{"REQ_AMM": 128 << 20}},
		{name: "folder max_size too small", toml: folder("uscente.morosi", "max_size = 10"), wantProblem: `folder[0].max_size: 10 bytes is out of range; expected 1KiB to 64GiB (rule range)`},
		{name: "not a size", toml: folder("uscente.morosi", "max_size = \"lots\""), wantProblem: `folder[0].max_size: "lots" is not a size`},
		{name: "sii_file a float", toml: "[limits]\nsii_file = 1.5\n", wantProblem: `limits.sii_file: expected a size like 1048576 or "512MiB", found`},
		{name: "per flow not a size", toml: "[limits.sii_flow]\nREQ_AMM = true\n", wantProblem: `limits.sii_flow.REQ_AMM: expected a size`},
		{name: "unknown key", toml: "[limits]\nsii_files = \"1MiB\"\n", wantProblem: `unknown key "limits.sii_files"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("c.toml", []byte(minimal+tc.toml))
			if tc.wantProblem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantProblem) {
					t.Fatalf("err = %v, want %q", err, tc.wantProblem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Folders) > 0 && c.Folders[0].MaxSize != tc.folderMax {
				t.Errorf("folder max_size %d, want %d", c.Folders[0].MaxSize, tc.folderMax)
			}
			if c.Limits.SIIFile != tc.siiFile || !reflect.DeepEqual(c.Limits.SIIFlow, tc.siiFlow) {
				t.Errorf("limits %+v", c.Limits)
			}
			for key, want := range tc.siiFlow {
				if got := c.Limits.SIIMaxSize(key); got != want {
					t.Errorf("SIIMaxSize(%s) = %d, want %d", key, got, want)
				}
			}
			if got := c.Limits.SIIMaxSize("REND"); got != tc.siiFile {
				t.Errorf("SIIMaxSize of another flow = %d, want sii_file %d", got, tc.siiFile)
			}
			// The effective configuration says it, and reads back the same.
			back, err := Parse("c.toml", []byte(c.Redacted()))
			if err != nil {
				t.Fatalf("effective config does not parse: %v\n%s", err, c.Redacted())
			}
			if !reflect.DeepEqual(back.Limits, c.Limits) || (len(c.Folders) > 0 && back.Folders[0].MaxSize != c.Folders[0].MaxSize) {
				t.Errorf("round trip: %+v / %+v", back.Limits, c.Limits)
			}
		})
	}
}

// TestDigestAttachmentBound: [digest] attachment_max_rows and attachment_max_size,
// their defaults, their refusals (0 is not "unlimited"), and the effective
// configuration reading back the same.
func TestDigestAttachmentBound(t *testing.T) {
	for _, tc := range []struct {
		name        string
		toml        string
		rows        int
		size        int64
		wantProblem string
	}{
		{name: "defaults", rows: DefaultDigestAttachmentMaxRows, size: DefaultDigestAttachmentMaxSize},
		{name: "set", toml: "[digest]\nattachment_max_rows = 20000\nattachment_max_size = \"20MiB\"\n", rows: 20000, size: 20 << 20},
		{name: "size in bytes", toml: "[digest]\nattachment_max_size = 1048576\n", rows: DefaultDigestAttachmentMaxRows, size: 1 << 20},
		{name: "zero rows is not unlimited", toml: "[digest]\nattachment_max_rows = 0\n",
			wantProblem: `digest.attachment_max_rows: 0 is not "unlimited": the attachments are always bounded`},
		{name: "negative rows", toml: "[digest]\nattachment_max_rows = -1\n",
			wantProblem: `digest.attachment_max_rows: -1 is out of range; expected 1 to 1000000`},
		{name: "rows not an integer", toml: "[digest]\nattachment_max_rows = \"5000\"\n",
			wantProblem: `digest.attachment_max_rows: expected an integer`},
		{name: "size too small", toml: "[digest]\nattachment_max_size = \"1KiB\"\n",
			wantProblem: `digest.attachment_max_size: 1KiB is out of range; expected 64KiB to 1GiB`},
		{name: "size too big, as written", toml: "[digest]\nattachment_max_size = \"2GiB\"\n",
			wantProblem: `digest.attachment_max_size: 2GiB is out of range; expected 64KiB to 1GiB`},
		{name: "size in bytes too small", toml: "[digest]\nattachment_max_size = 65535\n",
			wantProblem: `digest.attachment_max_size: 65535 bytes is out of range; expected 64KiB to 1GiB`},
		{name: "size zero", toml: "[digest]\nattachment_max_size = 0\n",
			wantProblem: `digest.attachment_max_size: 0 bytes is out of range; expected 64KiB to 1GiB`},
		{name: "size not a size", toml: "[digest]\nattachment_max_size = \"big\"\n", wantProblem: `digest.attachment_max_size: "big" is not a size`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("c.toml", []byte(minimal+tc.toml))
			if tc.wantProblem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantProblem) {
					t.Fatalf("err = %v, want %q", err, tc.wantProblem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Digest.AttachmentMaxRows != tc.rows || c.Digest.AttachmentMaxSize != tc.size {
				t.Errorf("rows %d size %d, want %d %d", c.Digest.AttachmentMaxRows, c.Digest.AttachmentMaxSize, tc.rows, tc.size)
			}
			back, err := Parse("c.toml", []byte(c.Redacted()))
			if err != nil {
				t.Fatalf("effective config does not parse: %v\n%s", err, c.Redacted())
			}
			if back.Digest.AttachmentMaxRows != tc.rows || back.Digest.AttachmentMaxSize != tc.size {
				t.Errorf("round trip: rows %d size %d", back.Digest.AttachmentMaxRows, back.Digest.AttachmentMaxSize)
			}
		})
	}
}
