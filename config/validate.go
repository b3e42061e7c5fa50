package config

import (
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"golang.org/x/crypto/ssh"

	"github.com/cmord/cmord/flows"
)

// validate checks what involves more than one key, or a key and the system.
func validate(d *decoder, c *Config) {
	validateTop(d, c)
	validateCompany(d, c)
	// Names are unique across folders and endpoints: they label archive sources and metrics.
	names := &uniqueNames{d: d, seen: map[string][]string{}}
	validateFolders(d, c, names)
	validateSFTP(d, c, names)
	validateOutbound(d, c)
}

// at is a key path.
func at(parts ...string) []string { return parts }

// validateTop checks the top-level keys, the catalog's mode and the CMOR parameters.
func validateTop(d *decoder, c *Config) {
	// Top level.
	if c.Listen != "" {
		host, port, err := net.SplitHostPort(c.Listen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			d.add(at("listen"), "listen", "%q is not an address; expected \"127.0.0.1:PORT\"", c.Listen)
		} else if !isLoopback(host) {
			d.warn(at("listen"), "listen", "%q is not a loopback address: /metrics and /healthz have no authentication", c.Listen)
		}
	}
	if loc, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "" || c.Timezone == "Local" {
		d.add(at("timezone"), "timezone", "%q is not an IANA time zone; expected e.g. \"Europe/Rome\"", c.Timezone)
	} else {
		c.Location = loc
	}
	if c.Catalog.Mode == "replace" && c.Catalog.Path == "" {
		d.add(at("catalog", "mode"), "required", "mode \"replace\" needs catalog.path")
	}
}

// validateCompany checks the company and its practice codes.
func validateCompany(d *decoder, c *Config) {
	// Company.
	co := &c.Company
	checkPIVA(d, at("company", "piva"), &co.PIVA)
	checkPIVA(d, at("company", "piva_gestore"), &co.PIVAGestore)
	switch {
	case co.ActingAs == "CC" && co.UDDPIVA == "":
		d.add(at("company", "udd_piva"), "required", "acting_as = \"CC\" needs udd_piva, the VAT number of the UDD the company files through")
	case co.ActingAs == "CC":
		checkPIVA(d, at("company", "udd_piva"), &co.UDDPIVA)
		if co.UDDPIVA == co.PIVA {
			d.add(at("company", "udd_piva"), "udd_piva", "is the company's own VAT number; a CC files through another company")
		}
	case co.UDDPIVA != "":
		d.add(at("company", "udd_piva"), "udd_piva", "is only used with acting_as = \"CC\"")
	}
	if co.PIVA != "" && co.PIVA == co.PIVAGestore {
		d.add(at("company", "piva_gestore"), "piva_gestore", "is the company's own VAT number; it must be the Acquirente Unico's")
	}

	// Practice codes.
	if err := c.PracticeCode.check(); err != nil {
		d.add(at("practice_code", "template"), "practice_code", "%v", err)
	}

	// CMOR.
	if c.CMOR.EstimateMonths > c.CMOR.SpendWindowMonths {
		d.add(at("cmor", "estimate_months"), "range", "%d is more than spend_window_months (%d)", c.CMOR.EstimateMonths, c.CMOR.SpendWindowMonths)
	}
}

// uniqueNames checks that folder and endpoint names are well formed and unique.
type uniqueNames struct {
	d    *decoder
	seen map[string][]string // name → the key path that first used it
}

func (u *uniqueNames) check(path []string, name string) {
	d := u.d
	if name == "" {
		return
	}
	if !nameRE.MatchString(name) {
		d.add(path, "name", "%q: use lowercase letters, digits, '-' and '_' (at most 40), starting with a letter or digit", name)
		return
	}
	if first, dup := u.seen[name]; dup {
		d.add(path, "duplicate", "name %q is already used at line %d", name, d.lines.line(first))
		return
	}
	u.seen[name] = path
}

// validateFolders checks the drop folders: names, roles, timings, mappings, paths.
func validateFolders(d *decoder, c *Config, names *uniqueNames) {
	checkName := names.check
	// Folders.
	for i, f := range c.Folders {
		el := fmt.Sprintf("folder[%d]", i)
		checkName(at(el, "name"), f.Name)
		if r := f.Role(); r != "" && !c.Company.HasRole(r) {
			d.add(at(el, "kind"), "role", "kind %q needs the %q role, which company.roles does not include", f.Kind, r)
		}
		if f.Settle == 0 && f.DoneMarker == "" {
			d.add(at(el, "settle"), "settle", "settle = \"0s\" with no done_marker would take files while they are written")
		}
		if f.UnstableAfter <= f.Settle {
			d.add(at(el, "unstable_after"), "unstable_after", "%s is not longer than settle (%s): every file still being written would be reported unstable before it could settle; expected more than %s",
				fmtDur(f.UnstableAfter), fmtDur(f.Settle), fmtDur(f.Settle))
		}
		if strings.ContainsAny(f.DoneMarker, `/\`) {
			d.add(at(el, "done_marker"), "done_marker", "%q: a marker is a file name in the same folder, e.g. \"{name}.done\"", f.DoneMarker)
		}
		for _, g := range f.Ignore {
			if _, err := filepath.Match(g, ""); err != nil || g == "" {
				d.add(at(el, "ignore"), "glob", "%q is not a glob pattern", g)
			}
		}
		if f.Mapping != nil && f.MappingFile != "" {
			d.add(at(el, "mapping_file"), "mapping", "set either mapping or mapping_file, not both")
		}
		seen := map[string]string{}
		for _, h := range sortedKeys(f.Mapping) {
			field := f.Mapping[h]
			if field == "" {
				d.add(at(el, "mapping", h), "mapping", "header %q maps to an empty field name", h)
			} else if other, dup := seen[field]; dup {
				d.add(at(el, "mapping", h), "mapping", "headers %q and %q both map to field %q", other, h, field)
			}
			seen[field] = h
		}
		if f.Path != "" {
			if within(f.Path, c.StateDir) || within(c.StateDir, f.Path) {
				d.add(at(el, "path"), "path_overlap", "%s overlaps state_dir %s; keep drop folders apart from the state", f.Path, c.StateDir)
			}
			for j := range i {
				g := c.Folders[j]
				if g.Path == "" {
					continue
				}
				switch {
				case f.Path == g.Path:
					d.add(at(el, "path"), "path_overlap", "%s is also the path of folder %q (line %d)", f.Path, g.Name, d.lines.line(at(fmt.Sprintf("folder[%d]", j), "path")))
				case within(f.Path, g.Path) || within(g.Path, f.Path):
					d.add(at(el, "path"), "path_overlap", "%s and folder %q's %s are inside one another (line %d)", f.Path, g.Name, g.Path, d.lines.line(at(fmt.Sprintf("folder[%d]", j), "path")))
				}
			}
			if c.Outbound.BillingDir != "" && (within(c.Outbound.BillingDir, f.Path) || c.Outbound.BillingDir == f.Path) {
				d.add(at("outbound", "billing_dir"), "path_overlap", "%s is inside drop folder %q: exports would be read back as input", c.Outbound.BillingDir, f.Name)
			}
		}
	}
}

// validateSFTP checks the SFTP endpoints.
func validateSFTP(d *decoder, c *Config, names *uniqueNames) {
	checkName := names.check
	// SFTP endpoints.
	sii := 0
	hostKeyAlgos := append(ssh.SupportedAlgorithms().HostKeys, ssh.InsecureAlgorithms().HostKeys...)
	for i, s := range c.SFTP {
		el := fmt.Sprintf("sftp[%d]", i)
		checkName(at(el, "name"), s.Name)
		if s.Role == "sii" {
			sii++
			if sii == 2 {
				d.add(at(el, "role"), "role", "only one endpoint can have role \"sii\"")
			}
		}
		if s.KnownHosts == "" && !s.InsecureTrustOnFirstUse {
			d.add(at(el, "known_hosts"), "required", "missing: a known_hosts file with the server's key (get it with `cmord hostkey fetch %s` and confirm the fingerprint out of band)", s.Addr())
		}
		if s.InsecureTrustOnFirstUse {
			d.warn(at(el, "insecure_trust_on_first_use"), "tofu", "the first host key seen will be trusted without confirmation")
		}
		for _, a := range s.HostKeyAlgorithms {
			if !contains(hostKeyAlgos, a) {
				d.add(at(el, "host_key_algorithms"), "enum", "%q is not a host key algorithm; expected any of %s", a, quoteList(ssh.SupportedAlgorithms().HostKeys))
			}
		}
		if s.InboundDir == "" && s.OutboundDir == "" {
			d.add(at(el, "inbound_dir"), "required", "missing: inbound_dir and/or outbound_dir")
		}
		if s.TempPrefix == "" && s.TempSuffix == "" {
			d.add(at(el, "temp_suffix"), "temp_name", "temp_prefix and temp_suffix are both empty: uploads would appear under their final name before they are complete")
		}
		if strings.ContainsAny(s.TempPrefix+s.TempSuffix, "/\\") {
			d.add(at(el, "temp_prefix"), "temp_name", "temp_prefix and temp_suffix must not contain '/'")
		}
		switch {
		case s.Completion == "move" && s.MoveTo == "":
			d.add(at(el, "move_to"), "required", "completion = \"move\" needs move_to, the remote directory")
		case s.Completion != "move" && s.MoveTo != "":
			d.add(at(el, "move_to"), "move_to", "is only used with completion = \"move\"")
		}
		if s.BackoffMin > s.BackoffMax {
			d.add(at(el, "backoff_min"), "range", "backoff_min %s is more than backoff_max %s", fmtDur(s.BackoffMin), fmtDur(s.BackoffMax))
		}
	}
	if sii == 0 && !hasSIIFolder(c.Folders) && c.Company.PIVA != "" {
		d.warn(nil, "no_sii", "no [[sftp]] endpoint and no folder of kind \"sii\": flows will be built but neither published nor read")
	}
}

// validateOutbound checks the build formats, the mail relay, the digest and alerts.
func validateOutbound(d *decoder, c *Config) {
	// Outbound and build.
	for flow, f := range c.Build.Format {
		if f != "csv" && f != "xml" {
			d.add(at("build", "format", flow), "enum", "%q is not allowed; expected \"csv\" or \"xml\"", f)
		}
	}

	// Mail, digest, alerts.
	m := &c.Mail
	if m.Port == 0 {
		m.Port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[m.TLS]
	}
	if m.Host != "" {
		if m.TLS == "none" && !isLoopback(m.Host) {
			d.add(at("mail", "tls"), "tls", "\"none\" is allowed only towards a loopback host (localhost, 127.0.0.1, ::1), not %q", m.Host)
		}
		if m.From == "" {
			d.add(at("mail", "from"), "required", "missing: the sender address")
		}
	}
	if m.From != "" {
		if _, err := mail.ParseAddress(m.From); err != nil {
			d.add(at("mail", "from"), "email", "%q is not an e-mail address", m.From)
		}
	}
	if (m.Username == "") != (m.PasswordFile == "") {
		d.add(at("mail", "username"), "auth", "username and password_file go together")
	}
	checkAddrs(d, at("digest", "to"), c.Digest.To)
	if !d.alertsToDefaulted {
		checkAddrs(d, at("alerts", "to"), c.Alerts.To)
	}
	if !m.Enabled() && (len(c.Digest.To) > 0 || len(c.Alerts.To) > 0) {
		d.add(at("mail", "host"), "required", "digest.to or alerts.to is set but no mail relay is configured")
	}
	if m.Enabled() && len(c.Digest.To) == 0 {
		d.warn(at("digest", "to"), "required", "no digest recipients: digests are built and archived but not mailed")
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)

func hasSIIFolder(fs []Folder) bool {
	for _, f := range fs {
		if f.Kind == KindSII {
			return true
		}
	}
	return false
}

func checkAddrs(d *decoder, path []string, addrs []string) {
	for _, a := range addrs {
		if _, err := mail.ParseAddress(a); err != nil {
			d.add(path, "email", "%q is not an e-mail address", a)
		}
	}
}

// checkPIVA validates a VAT number (flows.ValidatePIVA: 11 digits, check digit of
// brief §6.4) and stores it normalised ("IT" prefix and spaces removed), the form the
// SII header fields want.
func checkPIVA(d *decoder, path []string, v *string) {
	if *v == "" {
		return // reported as required
	}
	if err := flows.ValidatePIVA(*v); err != nil {
		d.add(path, "piva", "%v", err)
		return
	}
	*v = flows.NormalizePIVA(*v)
}

// checkCronSpec accepts what robfig/cron's standard parser accepts (5 fields or a
// descriptor such as @daily or @every 10m), or "off". The zone is the configured
// timezone, so CRON_TZ/TZ prefixes are refused.
func checkCronSpec(spec string) error {
	if spec == "off" {
		return nil
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return fmt.Errorf("%q: schedules run in the configured timezone; remove the TZ prefix", spec)
	}
	if _, err := cron.ParseStandard(spec); err != nil {
		return fmt.Errorf("%q is not a cron spec (%v); expected 5 fields \"min hour day month weekday\" like \"*/5 * * * *\", a descriptor like \"@daily\", or \"off\"", spec, err)
	}
	return nil
}

// parseSize reads "10MiB", "512KiB", "1GiB", "100KB", "1MB" or a plain byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}}
	t := strings.TrimSpace(s)
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mul = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size; expected bytes or a value like \"10MiB\"", s)
	}
	return n * mul, nil
}

func parseMonthDay(s string) (time.Month, int, bool) {
	if len(s) != 5 || s[2] != '-' {
		return 0, 0, false
	}
	m, err1 := strconv.Atoi(s[:2])
	day, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || m < 1 || m > 12 || day < 1 || day > time.Date(2024, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return 0, 0, false
	}
	return time.Month(m), day, true
}

// within reports whether path p is strictly inside dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sortProblems orders problems by line; problems without a line (absent keys) keep
// their place relative to each other and come last.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}

// ProblemAt is a problem found outside Parse (by `cmord check`, looking at the
// machine) about the key at path ("folder[0]", "path"): it carries the key's line in
// the configuration file, so it reads file:line like the parser's own.
func (c *Config) ProblemAt(rule, message string, path ...string) Problem {
	line := 0
	if data, err := os.ReadFile(c.File); err == nil {
		line = scanKeyLines(data).line(path)
	}
	return Problem{File: c.File, Line: line, Key: displayKey(path), Rule: rule, Message: message}
}
