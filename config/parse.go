package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cmord/cmord/flows"
)

// DefaultPath is where cmord looks for its configuration without --config or $CMORD_CONFIG.
const DefaultPath = "/etc/cmord/cmord.toml"

// Load reads and parses the configuration file at path. Problems in the file are
// returned as a *Error listing all of them.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(abs, data)
}

// Parse parses data as the configuration file name (used in messages and to resolve
// relative paths; a relative name is taken relative to the working directory).
func Parse(name string, data []byte) (*Config, error) {
	abs := name
	if a, err := filepath.Abs(name); err == nil {
		abs = a
	}
	d := &decoder{file: name, dir: filepath.Dir(abs)}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Problems: []Problem{{File: name, Line: pe.Position.Line, Rule: "syntax", Message: "TOML syntax: " + pe.Message}}}
		}
		return nil, &Error{Problems: []Problem{{File: name, Rule: "syntax", Message: err.Error()}}}
	}
	d.lines = scanKeyLines(data)

	c := Defaults()
	c.File = abs
	root := d.root(raw)
	readTop(root, c)
	readLog(root.table("log"), &c.Log)
	readCompany(root.table("company"), &c.Company)
	readPracticeCode(root.table("practice_code"), &c.PracticeCode)
	readCMOR(root.table("cmor"), &c.CMOR)
	readLimits(root.table("limits"), &c.Limits)
	for _, t := range root.array("folder") {
		c.Folders = append(c.Folders, readFolder(t, c.Limits))
	}
	for _, t := range root.array("sftp") {
		c.SFTP = append(c.SFTP, readSFTP(t))
	}
	readOutbound(root.table("outbound"), &c.Outbound)
	readBuild(root.table("build"), &c.Build)
	readSchedule(root.table("schedule"), &c.Schedule)
	readMail(root.table("mail"), &c.Mail)
	readDigest(root.table("digest"), &c.Digest)
	alertsTo := readAlerts(root.table("alerts"), &c.Alerts)
	if !alertsTo {
		c.Alerts.To = c.Digest.To
		d.alertsToDefaulted = true // its addresses are checked as digest.to
	}
	readDeadlines(root.table("deadlines"), &c.Deadlines)
	root.finish()

	validate(d, c)

	c.Warnings = d.warns
	if len(d.probs) > 0 {
		sortProblems(d.probs)
		return nil, &Error{Problems: d.probs}
	}
	sortProblems(c.Warnings)
	return c, nil
}

// Defaults returns a Config holding every default value (it is not valid by itself:
// the company and at least its VATs must be configured).
func Defaults() *Config {
	return &Config{
		StateDir: "/var/lib/cmord",
		Lang:     "it",
		Timezone: "Europe/Rome",
		Location: flows.Rome,
		Catalog:  Catalog{Mode: "extend"},
		Log:      Log{Level: "info", Format: "auto", Redact: true},
		Company:  Company{ActingAs: "UDD"},
		PracticeCode: PracticeCode{
			Template: DefaultPracticeCodeTemplate,
		},
		CMOR: CMOR{
			CreditWindowMonths:    5,
			SpendWindowMonths:     12,
			EstimateMonths:        4,
			EstimateMethod:        "average",
			MinIndemnity:          flows.Euros(10, 0),
			PartialInvoice:        "whole",
			ExcludeRAI:            true,
			RequireActualReadings: true,
			WindowOpenMonths:      6,
			WindowRule:            "strict",
			WindowWarnDays:        30,
		},
		Build: Build{MaxRowsPerFile: 10000, MaxFileBytes: 10 << 20},
		Schedule: Schedule{
			PollSII:   Job{Name: "poll_sii", Spec: "*/5 * * * *", Missed: "skip"},
			Build:     Job{Name: "build", Spec: "0 * * * *", Missed: "run_once"},
			Deliver:   Job{Name: "deliver", Spec: "*/2 * * * *", Missed: "skip"},
			Digest:    Job{Name: "digest", Spec: "30 7 * * *", Missed: "run_once"},
			Deadlines: Job{Name: "deadlines", Spec: "0 6 * * *", Missed: "skip"},
			Verify:    Job{Name: "verify", Spec: "0 3 * * 0", Missed: "skip"},
		},
		Mail: Mail{TLS: "starttls", Timeout: 30 * time.Second, DeadLetterAfter: 10},
		Digest: Digest{AttachCSV: true, AttachXLSX: true, WarnDays: []int{30, 7, 2},
			AttachmentMaxRows: DefaultDigestAttachmentMaxRows, AttachmentMaxSize: DefaultDigestAttachmentMaxSize},
		Alerts:    Alerts{GroupWait: time.Minute, RepeatInterval: 4 * time.Hour, UrgentWithinWorkingDays: 2, StateMinFree: 2 << 30},
		Deadlines: Deadlines{NoAnswerDays: 5, RefundDays: 10, AckDays: 2},
		Limits:    Limits{SIIFile: DefaultSIIFileMaxSize},
	}
}

// DefaultFolder returns a folder with every default applied.
func DefaultFolder() Folder {
	return Folder{
		Settle: 10 * time.Second, Ignore: append([]string{}, DefaultIgnore...), Rescan: 5 * time.Minute,
		Watch: "auto", PollInterval: 10 * time.Second, OnBadRows: "skip_rows", Encoding: "auto",
		UnstableAfter: time.Hour, Retry: 5 * time.Second, MaxAttempts: DefaultMaxAttempts, MaxSize: DefaultFolderMaxSize,
	}
}

// DefaultSFTP returns an endpoint with every default applied.
func DefaultSFTP() SFTP {
	return SFTP{
		Port: 22, DialTimeout: 15 * time.Second, IOTimeout: 60 * time.Second, OpTimeout: 60 * time.Second, Keepalive: 15 * time.Second,
		KeepaliveMaxMissed: 3, BackoffMin: time.Second, BackoffMax: 5 * time.Minute, Role: "sii",
		TempPrefix: ".", TempSuffix: ".part", Completion: "none", Rename: "auto", MaxPacket: 32768,
		ConcurrentReads: true, StableListings: 2, UnreachableAlertAfter: 30 * time.Minute,
		StalledAlertAfter: 10 * time.Minute,
		MaxAttempts:       DefaultMaxAttempts,
	}
}

func readTop(t *table, c *Config) {
	if _, ok := t.get("state_dir"); ok {
		t.requiredPath("state_dir", &c.StateDir, "the state directory")
	}
	t.str("listen", &c.Listen)
	t.enum("lang", &c.Lang, "it", "en")
	t.str("timezone", &c.Timezone)
	ct := t.table("catalog")
	ct.filePath("path", &c.Catalog.Path)
	ct.enum("mode", &c.Catalog.Mode, "extend", "replace")
	ct.finish()
}

func readLog(t *table, l *Log) {
	t.enum("level", &l.Level, "debug", "info", "warn", "error")
	t.enum("format", &l.Format, "auto", "text", "json")
	t.boolean("redact", &l.Redact)
	t.finish()
}

func readCompany(t *table, c *Company) {
	t.required("piva", &c.PIVA, "the company's VAT number (PIVA_UTENTE)")
	t.required("name", &c.Name, "the company's name")
	if !t.has("roles") {
		t.errorf("roles", "required", `missing: the roles the company holds, e.g. ["uscente", "entrante"]`)
	}
	t.subset("roles", &c.Roles, "uscente", "entrante")
	if !t.has("sectors") {
		t.errorf("sectors", "required", `missing: the sectors the company serves, e.g. ["E", "G"]`)
	}
	t.subset("sectors", &c.Sectors, "E", "G")
	t.enum("acting_as", &c.ActingAs, "UDD", "CC")
	t.str("udd_piva", &c.UDDPIVA)
	t.required("piva_gestore", &c.PIVAGestore, "the VAT number of the SII Gestore (Acquirente Unico), PIVA_GESTORE")
	t.finish()
}

func readPracticeCode(t *table, p *PracticeCode) {
	t.str("template", &p.Template)
	t.finish()
}

func readCMOR(t *table, c *CMOR) {
	t.integer("credit_window_months", &c.CreditWindowMonths, 1, 24)
	t.integer("spend_window_months", &c.SpendWindowMonths, 1, 36)
	t.integer("estimate_months", &c.EstimateMonths, 1, 12)
	t.enum("estimate_method", &c.EstimateMethod, "average", "top")
	if v, ok := t.get("min_indemnity"); ok {
		s, isStr := v.(string)
		if !isStr {
			t.errorf("min_indemnity", "amount", "expected a decimal string like \"10.00\" (money is never a float), found %s", tomlType(v))
		} else if a, err := flows.ParseAmount(s, false); err != nil || a < 0 {
			t.errorf("min_indemnity", "amount", "%q is not an amount; expected a decimal string like \"10.00\", at least 0", s)
		} else {
			c.MinIndemnity = a
		}
	}
	t.boolean("previous_inside_cap", &c.PreviousInsideCap)
	t.enum("partial_invoice", &c.PartialInvoice, "whole", "prorate")
	t.boolean("exclude_rai", &c.ExcludeRAI)
	t.boolean("require_actual_readings", &c.RequireActualReadings)
	t.integer("window_open_months", &c.WindowOpenMonths, 1, 24)
	t.enum("window_rule", &c.WindowRule, "strict", "switch_month")
	t.integer("window_warn_days", &c.WindowWarnDays, 0, 365)
	t.finish()
}

func readFolder(t *table, limits Limits) Folder {
	f := DefaultFolder()
	t.required("name", &f.Name, "a short name for the folder (used in logs, metrics and the archive)")
	t.requiredPath("path", &f.Path, "the folder's directory")
	if !t.has("kind") {
		t.errorf("kind", "required", "missing: what the folder receives, one of %s", quoteList(FolderKinds))
	}
	t.enum("kind", &f.Kind, FolderKinds...)
	t.duration("settle", &f.Settle, 0, 24*time.Hour)
	t.str("done_marker", &f.DoneMarker)
	var extra []string
	if t.stringList("ignore", &extra) {
		f.Ignore = append(f.Ignore, extra...)
	}
	t.duration("rescan", &f.Rescan, time.Second, 24*time.Hour)
	t.enum("watch", &f.Watch, "auto", "poll", "notify")
	t.duration("poll_interval", &f.PollInterval, 100*time.Millisecond, time.Hour)
	t.duration("unstable_after", &f.UnstableAfter, 100*time.Millisecond, 7*24*time.Hour)
	t.duration("retry", &f.Retry, 10*time.Millisecond, time.Hour)
	t.integer("max_attempts", &f.MaxAttempts, 1, 100)
	t.enum("on_bad_rows", &f.OnBadRows, "skip_rows", "reject_file")
	t.boolean("receipt_html", &f.ReceiptHTML)
	t.enum("encoding", &f.Encoding, "auto", "utf-8", "windows-1252")
	t.boolean("decimal_comma", &f.DecimalComma)
	f.Mapping = t.stringMap("mapping")
	t.filePath("mapping_file", &f.MappingFile)
	if f.Kind == KindSII {
		f.MaxSize = limits.SIIFile // SII files, even dropped by hand, are small
	}
	t.size("max_size", &f.MaxSize, 1024, 64<<30)
	t.finish()
	return f
}

// readLimits reads [limits]: sizes of what is taken in from the SII.
func readLimits(t *table, l *Limits) {
	t.size("sii_file", &l.SIIFile, 1024, 64<<30)
	ft := t.table("sii_flow")
	for _, key := range sortedKeys(ft.m) {
		ft.known = append(ft.known, key)
		var n int64
		if ft.size(key, &n, 1024, 64<<30) {
			if l.SIIFlow == nil {
				l.SIIFlow = map[string]int64{}
			}
			l.SIIFlow[key] = n
		}
	}
	ft.finish()
	t.finish()
}

func readSFTP(t *table) SFTP {
	s := DefaultSFTP()
	t.required("name", &s.Name, "a short name for the endpoint (used in logs, metrics and the archive)")
	t.required("host", &s.Host, "the SFTP server's host name or address")
	t.port("port", &s.Port)
	t.required("user", &s.User, "the login name")
	t.requiredPath("key_file", &s.KeyFile, "the private key file (authentication is by key only)")
	t.filePath("known_hosts", &s.KnownHosts)
	t.boolean("insecure_trust_on_first_use", &s.InsecureTrustOnFirstUse)
	t.stringList("host_key_algorithms", &s.HostKeyAlgorithms)
	t.duration("dial_timeout", &s.DialTimeout, time.Second, 10*time.Minute)
	t.duration("io_timeout", &s.IOTimeout, time.Second, time.Hour)
	t.duration("op_timeout", &s.OpTimeout, time.Second, time.Hour)
	t.duration("keepalive", &s.Keepalive, 0, time.Hour)
	t.integer("keepalive_max_missed", &s.KeepaliveMaxMissed, 1, 100)
	t.duration("backoff_min", &s.BackoffMin, 10*time.Millisecond, time.Hour)
	t.duration("backoff_max", &s.BackoffMax, 10*time.Millisecond, 24*time.Hour)
	t.enum("role", &s.Role, "sii")
	t.str("inbound_dir", &s.InboundDir)
	t.str("outbound_dir", &s.OutboundDir)
	t.str("temp_prefix", &s.TempPrefix)
	t.str("temp_suffix", &s.TempSuffix)
	t.enum("completion", &s.Completion, "none", "move", "delete")
	t.str("move_to", &s.MoveTo)
	t.boolean("overwrite", &s.Overwrite)
	t.enum("rename", &s.Rename, "auto", "posix", "plain")
	t.integer("max_packet", &s.MaxPacket, 1024, 262144)
	t.boolean("concurrent_writes", &s.ConcurrentWrites)
	t.boolean("concurrent_reads", &s.ConcurrentReads)
	t.integer("stable_listings", &s.StableListings, 1, 10)
	t.integer("max_attempts", &s.MaxAttempts, 1, 100)
	t.duration("unreachable_alert_after", &s.UnreachableAlertAfter, time.Minute, 30*24*time.Hour)
	t.duration("stalled_alert_after", &s.StalledAlertAfter, time.Second, 30*24*time.Hour)
	refuseLiteralSecret(t, "password", "SFTP authentication is by key only: set key_file")
	refuseLiteralSecret(t, "passphrase", "keep the private key unencrypted in a file readable only by the cmord user, and set key_file")
	t.finish()
	return s
}

func refuseLiteralSecret(t *table, k, advice string) {
	if _, ok := t.get(k); ok {
		t.errorf(k, "secret_in_config", "secrets are never written in the configuration; %s", advice)
	}
}

func readOutbound(t *table, o *Outbound) {
	t.filePath("billing_dir", &o.BillingDir)
	et := t.table("exports")
	for _, name := range sortedKeys(et.m) {
		if !contains(ExportNames, name) {
			continue // reported as unknown by et.finish
		}
		if m := et.stringMap(name); m != nil {
			if o.Exports == nil {
				o.Exports = map[string]map[string]string{}
			}
			o.Exports[name] = m
		}
	}
	for _, name := range ExportNames {
		et.known = append(et.known, name)
	}
	et.finish()
	t.finish()
}

func readBuild(t *table, b *Build) {
	t.integer("max_rows_per_file", &b.MaxRowsPerFile, 1, 10_000_000)
	if v, ok := t.get("max_file_bytes"); ok {
		switch v := v.(type) {
		case int64:
			b.MaxFileBytes = v
		case string:
			n, err := parseSize(v)
			if err != nil {
				t.errorf("max_file_bytes", "size", "%v", err)
			} else {
				b.MaxFileBytes = n
			}
		default:
			t.errorf("max_file_bytes", "size", "expected a size like 10485760 or \"10MiB\", found %s", tomlType(v))
		}
		if b.MaxFileBytes < 1024 || b.MaxFileBytes > 1<<30 {
			t.errorf("max_file_bytes", "range", "%d bytes is out of range; expected 1KiB to 1GiB", b.MaxFileBytes)
		}
	}
	b.Format = t.stringMap("format")
	t.finish()
}

func readSchedule(t *table, s *Schedule) {
	jobs := []*Job{&s.PollSII, &s.Build, &s.Deliver, &s.Digest, &s.Deadlines, &s.Verify}
	for _, j := range jobs {
		var spec string
		if t.str(j.Name, &spec) {
			if err := checkCronSpec(spec); err != nil {
				t.errorf(j.Name, "cron", "%v", err)
			} else {
				j.Spec = spec
			}
		}
	}
	mt := t.table("missed")
	for _, j := range jobs {
		mt.enum(j.Name, &j.Missed, "skip", "run_once")
	}
	mt.finish()
	if t.has("rescan") {
		t.get("rescan")
		t.errorf("rescan", "moved", "folder rescans are set per folder: [[folder]] rescan = \"5m\"")
	}
	t.finish()
}

func readMail(t *table, m *Mail) {
	t.str("host", &m.Host)
	t.port("port", &m.Port)
	t.enum("tls", &m.TLS, "starttls", "tls", "none")
	t.str("username", &m.Username)
	t.filePath("password_file", &m.PasswordFile)
	t.str("from", &m.From)
	t.str("helo", &m.HELO)
	t.duration("timeout", &m.Timeout, time.Second, 10*time.Minute)
	t.integer("dead_letter_after", &m.DeadLetterAfter, 1, 1000)
	refuseLiteralSecret(t, "password", "put the password alone in a file readable only by the cmord user and set password_file")
	t.finish()
}

func readDigest(t *table, g *Digest) {
	t.stringList("to", &g.To)
	t.enum("lang", &g.Lang, "it", "en")
	t.boolean("attach_csv", &g.AttachCSV)
	t.boolean("attach_xlsx", &g.AttachXLSX)
	t.str("contact", &g.Contact)
	t.boolean("include_personal_data", &g.IncludePersonalData)
	t.intList("warn_days", &g.WarnDays, 0, 365)
	// No 0 for "unlimited": the whole list of a backlog made a message no mail
	// server took (attach_csv / attach_xlsx = false attach nothing).
	if v, isInt := t.m["attachment_max_rows"].(int64); isInt && v == 0 {
		t.get("attachment_max_rows")
		t.errorf("attachment_max_rows", "range", "0 is not \"unlimited\": the attachments are always bounded so the digest stays "+
			"deliverable (the whole list of a big backlog makes a message mail servers refuse); expected 1 to 1000000 "+
			"(attach_csv = false and attach_xlsx = false attach nothing)")
	} else {
		t.integer("attachment_max_rows", &g.AttachmentMaxRows, 1, 1000000)
	}
	t.size("attachment_max_size", &g.AttachmentMaxSize, 64<<10, 1<<30)
	t.finish()
}

// readAlerts reports whether alerts.to was set.
func readAlerts(t *table, a *Alerts) bool {
	set := t.stringList("to", &a.To)
	t.duration("group_wait", &a.GroupWait, 0, time.Hour)
	t.duration("repeat_interval", &a.RepeatInterval, time.Minute, 30*24*time.Hour)
	t.integer("urgent_within_working_days", &a.UrgentWithinWorkingDays, 0, 60)
	t.boolean("include_personal_data", &a.IncludePersonalData)
	if v, ok := t.get("state_min_free"); ok {
		switch v := v.(type) {
		case int64:
			a.StateMinFree = v
		case string:
			n, err := parseSize(v)
			if err != nil {
				t.errorf("state_min_free", "size", "%v", err)
			} else {
				a.StateMinFree = n
			}
		default:
			t.errorf("state_min_free", "size", "expected a size like \"2GiB\" (0 = off), found %s", tomlType(v))
		}
		if a.StateMinFree < 0 {
			t.errorf("state_min_free", "range", "%d bytes is negative; expected 0 (off) or a size like \"2GiB\"", a.StateMinFree)
		}
	}
	t.finish()
	return set
}

func readDeadlines(t *table, d *Deadlines) {
	t.integer("no_answer_days", &d.NoAnswerDays, 1, 365)
	var s string
	if t.str("patron_day", &s) {
		if _, _, ok := parseMonthDay(s); s != "" && !ok {
			t.errorf("patron_day", "month_day", "%q is not a day of the year; expected \"MM-DD\", e.g. \"06-29\"", s)
		} else {
			d.PatronDay = s
		}
	}
	t.integer("refund_days", &d.RefundDays, 1, 365)
	t.integer("ack_days", &d.AckDays, 1, 365)
	t.finish()
}
