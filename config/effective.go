package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// Password reads the SMTP password from PasswordFile (trailing newline removed).
// The password is never kept in the Config, so it cannot leak into a dump of it.
func (m Mail) Password() (string, error) {
	if m.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(m.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("mail password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// CheckFiles checks the files the configuration points at: secrets and keys exist, are
// readable and are not readable by other users; known_hosts, catalog and mapping files
// exist. It is separate from Parse because it depends on the machine (and on the user
// running it): the daemon and `cmord check` call it, tests of parsing need not.
func (c *Config) CheckFiles() error {
	var probs []Problem
	add := func(key, rule, format string, args ...any) {
		probs = append(probs, Problem{File: c.File, Key: key, Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	check := func(key, path string, secret bool) {
		if path == "" {
			return
		}
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			add(key, "file_missing", "%s does not exist", path)
			return
		case err != nil:
			add(key, "file", "%v", err)
			return
		case fi.IsDir():
			add(key, "file", "%s is a directory, not a file", path)
			return
		}
		f, err := os.Open(path)
		if err != nil {
			add(key, "file", "%v", err)
			return
		}
		f.Close()
		if secret && fi.Mode().Perm()&0o007 != 0 {
			add(key, "file_mode", "%s is readable by other users (mode %04o); chmod 0600 or 0640", path, fi.Mode().Perm())
		}
	}
	check("catalog.path", c.Catalog.Path, false)
	for i, f := range c.Folders {
		check(fmt.Sprintf("folder[%d].mapping_file", i), f.MappingFile, false)
	}
	for i, s := range c.SFTP {
		check(fmt.Sprintf("sftp[%d].key_file", i), s.KeyFile, true)
		if !s.InsecureTrustOnFirstUse {
			check(fmt.Sprintf("sftp[%d].known_hosts", i), s.KnownHosts, false)
		}
	}
	check("mail.password_file", c.Mail.PasswordFile, true)
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

// Redacted renders the effective configuration (defaults applied, paths resolved) as
// TOML for `cmord check --effective`. No secret is ever held in a Config (only paths to the files
// holding them), and the SMTP username is masked too.
func (c *Config) Redacted() string {
	w := &tomlWriter{}
	w.comment("effective configuration of " + c.File)
	w.kv("state_dir", c.StateDir)
	w.kv("listen", c.Listen)
	w.kv("lang", c.Lang)
	w.kv("timezone", c.Timezone)

	w.table("catalog")
	w.kv("path", c.Catalog.Path)
	w.kv("mode", c.Catalog.Mode)

	w.table("log")
	w.kv("level", c.Log.Level)
	w.kv("format", c.Log.Format)
	w.kv("redact", c.Log.Redact)

	w.table("company")
	co := c.Company
	w.kv("piva", co.PIVA)
	w.kv("name", co.Name)
	w.kv("roles", co.Roles)
	w.kv("sectors", co.Sectors)
	w.kv("acting_as", co.ActingAs)
	w.kv("udd_piva", co.UDDPIVA)
	w.kv("piva_gestore", co.PIVAGestore)

	w.table("practice_code")
	w.kv("template", c.PracticeCode.Template)

	w.table("cmor")
	m := c.CMOR
	w.kv("credit_window_months", m.CreditWindowMonths)
	w.kv("spend_window_months", m.SpendWindowMonths)
	w.kv("estimate_months", m.EstimateMonths)
	w.kv("estimate_method", m.EstimateMethod)
	w.kv("min_indemnity", m.MinIndemnity.String())
	w.kv("previous_inside_cap", m.PreviousInsideCap)
	w.kv("partial_invoice", m.PartialInvoice)
	w.kv("exclude_rai", m.ExcludeRAI)
	w.kv("require_actual_readings", m.RequireActualReadings)
	w.kv("window_open_months", m.WindowOpenMonths)
	w.kv("window_rule", m.WindowRule)
	w.kv("window_warn_days", m.WindowWarnDays)

	for _, f := range c.Folders {
		writeFolder(w, f)
	}

	for _, s := range c.SFTP {
		writeSFTP(w, s)
	}

	w.table("outbound")
	w.kv("billing_dir", c.Outbound.BillingDir)
	for _, name := range sortedKeys(c.Outbound.Exports) {
		w.table("outbound.exports." + name)
		for _, k := range sortedKeys(c.Outbound.Exports[name]) {
			w.kv(strconv.Quote(k), c.Outbound.Exports[name][k])
		}
	}

	w.table("build")
	w.kv("max_rows_per_file", c.Build.MaxRowsPerFile)
	w.kv("max_file_bytes", int(c.Build.MaxFileBytes))
	if len(c.Build.Format) > 0 {
		w.table("build.format")
		for _, k := range sortedKeys(c.Build.Format) {
			w.kv(k, c.Build.Format[k])
		}
	}

	w.table("schedule")
	for _, j := range c.Schedule.Jobs() {
		w.kv(j.Name, j.Spec)
	}
	w.table("schedule.missed")
	for _, j := range c.Schedule.Jobs() {
		w.kv(j.Name, j.Missed)
	}

	c.writeNotices(w)
	return w.b.String()
}

// writeFolder renders one [[folder]].
func writeFolder(w *tomlWriter, f Folder) {
	w.array("folder")
	w.kv("name", f.Name)
	w.kv("path", f.Path)
	w.kv("kind", f.Kind)
	w.kv("settle", f.Settle)
	w.kv("done_marker", f.DoneMarker)
	w.kv("ignore", f.Ignore[len(DefaultIgnore):])
	w.comment("always ignored: " + strings.Join(DefaultIgnore, " "))
	w.kv("rescan", f.Rescan)
	w.kv("watch", f.Watch)
	w.kv("poll_interval", f.PollInterval)
	w.kv("unstable_after", f.UnstableAfter)
	w.kv("retry", f.Retry)
	w.kv("max_attempts", f.MaxAttempts)
	w.kv("on_bad_rows", f.OnBadRows)
	w.kv("receipt_html", f.ReceiptHTML)
	w.kv("encoding", f.Encoding)
	w.kv("decimal_comma", f.DecimalComma)
	w.kv("mapping_file", f.MappingFile)
	w.kv("max_size", FormatSize(f.MaxSize))
	if len(f.Mapping) > 0 {
		w.table("folder.mapping")
		for _, k := range sortedKeys(f.Mapping) {
			w.kv(strconv.Quote(k), f.Mapping[k])
		}
	}
}

// writeSFTP renders one [[sftp]] endpoint.
func writeSFTP(w *tomlWriter, s SFTP) {
	w.array("sftp")
	w.kv("name", s.Name)
	w.kv("host", s.Host)
	w.kv("port", s.Port)
	w.kv("user", s.User)
	w.kv("key_file", s.KeyFile)
	w.kv("known_hosts", s.KnownHosts)
	w.kv("insecure_trust_on_first_use", s.InsecureTrustOnFirstUse)
	w.kv("host_key_algorithms", s.HostKeyAlgorithms)
	w.kv("dial_timeout", s.DialTimeout)
	w.kv("io_timeout", s.IOTimeout)
	w.kv("op_timeout", s.OpTimeout)
	w.kv("keepalive", s.Keepalive)
	w.kv("keepalive_max_missed", s.KeepaliveMaxMissed)
	w.kv("backoff_min", s.BackoffMin)
	w.kv("backoff_max", s.BackoffMax)
	w.kv("role", s.Role)
	w.kv("inbound_dir", s.InboundDir)
	w.kv("outbound_dir", s.OutboundDir)
	w.kv("temp_prefix", s.TempPrefix)
	w.kv("temp_suffix", s.TempSuffix)
	w.kv("completion", s.Completion)
	w.kv("move_to", s.MoveTo)
	w.kv("overwrite", s.Overwrite)
	w.kv("rename", s.Rename)
	w.kv("max_packet", s.MaxPacket)
	w.kv("concurrent_writes", s.ConcurrentWrites)
	w.kv("concurrent_reads", s.ConcurrentReads)
	w.kv("stable_listings", s.StableListings)
	w.kv("max_attempts", s.MaxAttempts)
	w.kv("unreachable_alert_after", s.UnreachableAlertAfter)
	w.kv("stalled_alert_after", s.StalledAlertAfter)
}

// writeNotices renders [mail], [digest], [alerts], [deadlines] and [limits].
func (c *Config) writeNotices(w *tomlWriter) {
	w.table("mail")
	ml := c.Mail
	w.kv("host", ml.Host)
	w.kv("port", ml.Port)
	w.kv("tls", ml.TLS)
	if ml.Username != "" {
		w.kv("username", "[redacted]")
	}
	w.kv("password_file", ml.PasswordFile)
	w.kv("from", ml.From)
	w.kv("helo", ml.HELO)
	w.kv("timeout", ml.Timeout)
	w.kv("dead_letter_after", ml.DeadLetterAfter)

	w.table("digest")
	w.kv("to", c.Digest.To)
	w.kv("lang", c.Digest.Lang)
	w.kv("attach_csv", c.Digest.AttachCSV)
	w.kv("attach_xlsx", c.Digest.AttachXLSX)
	w.kv("attachment_max_rows", c.Digest.AttachmentMaxRows)
	w.kv("attachment_max_size", FormatSize(c.Digest.AttachmentMaxSize))
	w.kv("contact", c.Digest.Contact)
	w.kv("include_personal_data", c.Digest.IncludePersonalData)
	w.kv("warn_days", c.Digest.WarnDays)

	w.table("alerts")
	w.kv("to", c.Alerts.To)
	w.kv("group_wait", c.Alerts.GroupWait)
	w.kv("repeat_interval", c.Alerts.RepeatInterval)
	w.kv("urgent_within_working_days", c.Alerts.UrgentWithinWorkingDays)
	w.kv("include_personal_data", c.Alerts.IncludePersonalData)
	w.kv("state_min_free", int(c.Alerts.StateMinFree))

	w.table("deadlines")
	w.kv("no_answer_days", c.Deadlines.NoAnswerDays)
	w.kv("patron_day", c.Deadlines.PatronDay)
	w.kv("refund_days", c.Deadlines.RefundDays)
	w.kv("ack_days", c.Deadlines.AckDays)

	w.table("limits")
	w.kv("sii_file", FormatSize(c.Limits.SIIFile))
	if len(c.Limits.SIIFlow) > 0 {
		w.table("limits.sii_flow")
		for _, k := range sortedKeys(c.Limits.SIIFlow) {
			w.kv(strconv.Quote(k), FormatSize(c.Limits.SIIFlow[k]))
		}
	}
}

type tomlWriter struct{ b strings.Builder }

func (w *tomlWriter) comment(s string) { fmt.Fprintf(&w.b, "# %s\n", s) }
func (w *tomlWriter) table(name string) {
	fmt.Fprintf(&w.b, "\n[%s]\n", name)
}
func (w *tomlWriter) array(name string) { fmt.Fprintf(&w.b, "\n[[%s]]\n", name) }

// kv writes key = value; empty strings and lists are written too (they show the
// effective value), as "" and [].
func (w *tomlWriter) kv(key string, v any) {
	var s string
	switch v := v.(type) {
	case string:
		s = strconv.Quote(v)
	case bool:
		s = strconv.FormatBool(v)
	case int:
		s = strconv.Itoa(v)
	case time.Duration:
		s = strconv.Quote(fmtDur(v))
	case []string:
		q := make([]string, len(v))
		for i, e := range v {
			q[i] = strconv.Quote(e)
		}
		s = "[" + strings.Join(q, ", ") + "]"
	case []int:
		q := make([]string, len(v))
		for i, e := range v {
			q[i] = strconv.Itoa(e)
		}
		s = "[" + strings.Join(q, ", ") + "]"
	default:
		panic(fmt.Sprintf("tomlWriter: %T", v))
	}
	fmt.Fprintf(&w.b, "%s = %s\n", key, s)
}
