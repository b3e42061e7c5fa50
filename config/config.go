// Package config reads cmord's TOML configuration into a typed Config.
//
// It is strict: an unknown key (usually a typo) and a bad value are refused with the
// file and line, the key, the rule and what was expected; every problem is reported
// at once in a *Error. Defaults are applied in code and documented in example.toml.
// Secrets are never written in the configuration: only paths to files holding them
// (password_file, key_file). Relative paths resolve against the config file's
// directory, so every path in a Config is absolute.
package config

import (
	"time"

	"github.com/cmord/cmord/flows"
)

// Config is the whole, validated configuration with defaults applied.
type Config struct {
	File     string         // absolute path of the file it was read from
	StateDir string         // SQLite index and blob store; default /var/lib/cmord
	Listen   string         // "" (off) or "127.0.0.1:9464": /healthz and /metrics
	Lang     string         // "it" (default) or "en": digests and mails
	Timezone string         // default "Europe/Rome"
	Location *time.Location // Timezone loaded
	Catalog  Catalog

	Log          Log
	Company      Company
	PracticeCode PracticeCode
	CMOR         CMOR
	Folders      []Folder
	SFTP         []SFTP
	Outbound     Outbound
	Build        Build
	Schedule     Schedule
	Mail         Mail
	Digest       Digest
	Alerts       Alerts
	Deadlines    Deadlines
	Limits       Limits

	// Warnings are things that are allowed but probably not meant (printed by
	// `cmord check`, logged at start).
	Warnings []Problem
}

// Catalog says where a flow catalog file is and how it combines with the embedded one.
type Catalog struct {
	Path string // "" = embedded catalog only
	Mode string // "extend" (default): entries override/add by key; "replace": only this file
}

// Log configures daemon/logx.
type Log struct {
	Level  string // debug|info (default)|warn|error
	Format string // auto (default: JSON under systemd, text otherwise)|text|json
	Redact bool   // default true: personal data masked at info and above
}

// Company is the one company this installation serves.
type Company struct {
	PIVA        string   // our VAT number (PIVA_UTENTE), 11 digits with a valid check digit
	Name        string   // shown in digests
	Roles       []string // subset of "uscente", "entrante"
	Sectors     []string // subset of "E" (electricity), "G" (gas)
	ActingAs    string   // "UDD" or "CC"
	UDDPIVA     string   // the UDD we file through; required when ActingAs is "CC"
	PIVAGestore string   // the SII Gestore (AU) VAT (PIVA_GESTORE), required
}

// HasRole reports whether the company holds role ("uscente" or "entrante").
func (c Company) HasRole(role string) bool { return contains(c.Roles, role) }

// HasSector reports whether the company serves sector ("E" or "G").
func (c Company) HasSector(sector string) bool { return contains(c.Sectors, sector) }

// CMOR holds every parameter of the indemnity computation and of the request window
// (brief §5).
type CMOR struct {
	CreditWindowMonths    int          // default 5: invoices due in the last N months before the switch
	SpendWindowMonths     int          // default 12: spend figures used for the estimate
	EstimateMonths        int          // default 4: the cap is N months of estimated spend
	EstimateMethod        string       // "average" (default) or "top"
	MinIndemnity          flows.Amount // default 10.00 euro: below this no request
	PreviousInsideCap     bool         // default false: previous uncollected CMOR counted inside the cap
	PartialInvoice        string       // "whole" (default) or "prorate": invoices straddling the window
	ExcludeRAI            bool         // default true: the TV licence fee is not part of the debt
	RequireActualReadings bool         // default true: estimated-reading invoices are not eligible
	WindowOpenMonths      int          // default 6: months after the switch the request can be filed
	WindowRule            string       // "strict" (default) or "switch_month"
	WindowWarnDays        int          // default 30: warn when a window closes within N days
}

// Folder kinds: which billing input (or SII files dropped by hand) a folder receives.
const (
	KindUscenteMorosi        = "uscente.morosi"
	KindUscenteIncassi       = "uscente.incassi"
	KindUscenteAnnullamenti  = "uscente.annullamenti"
	KindUscenteRimborsi      = "uscente.rimborsi"
	KindEntranteFatturato    = "entrante.fatturato"
	KindEntranteSospensioni  = "entrante.sospensioni"
	KindEntranteAnnullamenti = "entrante.annullamenti" // operator annulment lists for entrante practices (layout of uscente.annullamenti)
	KindSII                  = "sii"
)

// FolderKinds lists every folder kind in documentation order.
var FolderKinds = []string{
	KindUscenteMorosi, KindUscenteIncassi, KindUscenteAnnullamenti, KindUscenteRimborsi,
	KindEntranteFatturato, KindEntranteSospensioni, KindEntranteAnnullamenti, KindSII,
}

// DefaultIgnore are the globs a folder always ignores (files still being written).
var DefaultIgnore = []string{"*.part", "*.partial", "*.filepart", "*.tmp", "*~", ".*"}

// Folder is a local drop folder.
type Folder struct {
	Name          string
	Path          string
	Kind          string
	Settle        time.Duration     // default 10s: unchanged this long = ready
	DoneMarker    string            // "" or a pattern like "{name}.done": ready when it exists
	Ignore        []string          // DefaultIgnore followed by the configured extra globs
	Rescan        time.Duration     // default 5m: full listing even when notifications work
	Watch         string            // "auto" (default), "poll" or "notify"
	PollInterval  time.Duration     // default 10s: when polling
	UnstableAfter time.Duration     // default 1h: still changing this long after it appeared = file_unstable
	Retry         time.Duration     // default 5s: first wait after a failed processing, doubled up to 10m
	MaxAttempts   int               // default 3: a file failing this many times is refused (poison-file policy)
	OnBadRows     string            // "skip_rows" (default) or "reject_file"
	ReceiptHTML   bool              // default false: also write done/NAME.esito.html beside the text receipt
	Encoding      string            // "auto" (default), "utf-8" or "windows-1252"
	DecimalComma  bool              // default false: amounts like "12,34"
	Mapping       map[string]string // billing header → our field name
	MappingFile   string            // or a TOML file with the same table
	// MaxSize: a dropped file bigger than this is refused while it is read, before it
	// is archived (only its hash and size are kept). Default DefaultFolderMaxSize, or
	// Limits.SIIFile for a folder of kind "sii".
	MaxSize int64
}

// DefaultFolderMaxSize is a billing folder's default max_size: a 1,000,000-row
// uscente.morosi extract is about 400 MB, and fits with room to spare.
const DefaultFolderMaxSize = 512 << 20

// DefaultSIIFileMaxSize is the default limits.sii_file: SII answers are much smaller
// than billing extracts (a few MB for tens of thousands of records).
const DefaultSIIFileMaxSize = 32 << 20

// Limits bounds what cmord takes in from the SII.
type Limits struct {
	SIIFile int64            // default 32 MiB: any SII file fetched over SFTP
	SIIFlow map[string]int64 // per flow key of the catalog, overriding SIIFile
}

// SIIMaxSize returns the size limit of an SII file of flow key (or "" / unknown).
func (l Limits) SIIMaxSize(key string) int64 {
	if n, ok := l.SIIFlow[key]; ok {
		return n
	}
	return l.SIIFile
}

// Role returns "uscente", "entrante" or "" (for kind "sii").
func (f Folder) Role() string {
	for _, r := range []string{"uscente", "entrante"} {
		if len(f.Kind) > len(r) && f.Kind[:len(r)+1] == r+"." {
			return r
		}
	}
	return ""
}

// SFTP is a remote SFTP endpoint (the SII).
type SFTP struct {
	Name                    string
	Host                    string
	Port                    int // default 22
	User                    string
	KeyFile                 string // private key (secret): path only
	KnownHosts              string // required unless InsecureTrustOnFirstUse
	InsecureTrustOnFirstUse bool
	HostKeyAlgorithms       []string
	DialTimeout             time.Duration // default 15s
	IOTimeout               time.Duration // default 60s
	OpTimeout               time.Duration // default 60s: an SFTP operation with no answer from the SFTP server this long closes the connection
	Keepalive               time.Duration // default 15s
	KeepaliveMaxMissed      int           // default 3
	BackoffMin              time.Duration // default 1s
	BackoffMax              time.Duration // default 5m
	Role                    string        // "sii" (default)
	InboundDir              string        // remote directory we fetch from
	OutboundDir             string        // remote directory we publish to
	TempPrefix              string        // default "."
	TempSuffix              string        // default ".part"
	Completion              string        // after fetching: "none" (default), "move", "delete"
	MoveTo                  string        // remote directory for Completion "move"
	Overwrite               bool          // default false: never replace a remote file
	Rename                  string        // "auto" (default), "posix" (posix-rename@openssh.com), "plain"
	MaxPacket               int           // default 32768
	ConcurrentWrites        bool          // default false
	ConcurrentReads         bool          // default true
	StableListings          int           // default 2: same size+mtime in N listings = stable
	UnreachableAlertAfter   time.Duration // default 30m
	StalledAlertAfter       time.Duration // default 10m: urgent alert when connected but no SFTP operation completes this long
	MaxAttempts             int           // default 3: a fetched SII file failing this many times is refused
}

// DefaultMaxAttempts is how many failed processing attempts refuse a file (the
// poison-file policy, docs/inputs.md).
const DefaultMaxAttempts = 3

// Addr returns "host:port".
func (s SFTP) Addr() string { return joinHostPort(s.Host, s.Port) }

// Outbound configures what goes to billing.
type Outbound struct {
	BillingDir string                       // local folder for exports to billing
	Exports    map[string]map[string]string // export name → our field → billing header
}

// ExportNames are the billing exports whose columns can be renamed.
var ExportNames = []string{"cmor_to_charge", "credit_notes"}

// Build limits the flow files we produce.
type Build struct {
	MaxRowsPerFile int               // default 10000
	MaxFileBytes   int64             // default 10 MiB
	Format         map[string]string // flow key → "csv" or "xml", overriding the catalog
}

// Job is one scheduled job.
type Job struct {
	Name   string // poll_sii, build, deliver, digest, deadlines, verify
	Spec   string // robfig/cron standard spec ("*/5 * * * *", "@daily"); "off" = disabled
	Missed string // slot missed while down: "skip" or "run_once"
}

// Enabled reports whether the job runs at all.
func (j Job) Enabled() bool { return j.Spec != "off" }

// Schedule holds the jobs; specs are read in Config.Timezone.
type Schedule struct {
	PollSII, Build, Deliver, Digest, Deadlines, Verify Job
}

// Jobs returns every job in a fixed order.
func (s Schedule) Jobs() []Job {
	return []Job{s.PollSII, s.Build, s.Deliver, s.Digest, s.Deadlines, s.Verify}
}

// Mail is the SMTP relay for digests and alerts.
type Mail struct {
	Host         string // "" = no mail (digests are still queued)
	Port         int    // default 587 (starttls), 465 (tls), 25 (none)
	TLS          string // "starttls" (default), "tls", "none" (loopback hosts only)
	Username     string
	PasswordFile string // the password (secret) is read from this file: see Password
	From         string
	HELO         string
	Timeout      time.Duration // default 30s
	// DeadLetterAfter: a message refused this many times (default 10) is copied to
	// STATE/dead-letter and raises mail_failed; it stays queued and is retried.
	DeadLetterAfter int
}

// Enabled reports whether a mail relay is configured.
func (m Mail) Enabled() bool { return m.Host != "" }

// Addr returns "host:port".
func (m Mail) Addr() string { return joinHostPort(m.Host, m.Port) }

// Digest configures the compliance digest.
type Digest struct {
	To                  []string
	Lang                string // "" = Config.Lang
	AttachCSV           bool   // default true: the full list as CSV, for programs
	AttachXLSX          bool   // default true: the full list as XLSX, for people (identifiers stay text)
	Contact             string // default "": who compliance calls for what needs the server (digest footer)
	IncludePersonalData bool   // default false
	WarnDays            []int  // default [30, 7, 2]: deadline reminders
	// AttachmentMaxRows and AttachmentMaxSize bound the attachments so that the
	// digest stays deliverable: over them the CSV and XLSX carry the most urgent rows
	// and the body says how many of how many, and the command that gives the whole
	// list. Rows: each attachment's (default DefaultDigestAttachmentMaxRows); size:
	// the CSV and XLSX together, before the mail's base64 adds a third (default
	// DefaultDigestAttachmentMaxSize), less the bodies' excess over 1 MiB encoded
	// (items at their longest). There is no "unlimited": the whole list of a backlog
	// made a message no mail server took.
	AttachmentMaxRows int
	AttachmentMaxSize int64
}

// DefaultDigestAttachmentMaxRows is [digest] attachment_max_rows's default.
const DefaultDigestAttachmentMaxRows = 5000

// DefaultDigestAttachmentMaxSize is [digest] attachment_max_size's default: with
// base64 and the bodies, the message stays under Postfix's default message_size_limit
// (10,240,000 bytes), the smallest limit commonly met.
const DefaultDigestAttachmentMaxSize = 6 << 20

// Alerts configures urgent mails.
type Alerts struct {
	To                      []string      // default Digest.To
	GroupWait               time.Duration // default 1m: alerts raised together go in one mail
	RepeatInterval          time.Duration // default 4h: an open alert is mailed again after this
	UrgentWithinWorkingDays int           // default 2: a deadline this close is urgent
	// IncludePersonalData puts customer CF/P.IVA and names in alert mails. Default
	// false, independent of [digest]: alerts go to a wider on-call audience (sysadmins,
	// a shared mailbox) whose role does not need personal data.
	IncludePersonalData bool
	// StateMinFree: when the state directory's filesystem has less free space than
	// this (bytes), the daemon raises an urgent disk_low exception (and its alert);
	// resolved by itself once space is back. Default 2 GiB; 0 turns it off.
	StateMinFree int64
}

// Deadlines configures the terms the deadline job watches.
type Deadlines struct {
	NoAnswerDays int    // default 5: no SII answer after N working days = exception
	PatronDay    string // "" or "MM-DD": the local patron saint's day, a holiday
	RefundDays   int    // default 10
	AckDays      int    // default 2
}

// PatronMonthDay returns the patron day as month and day (ok false when unset).
func (d Deadlines) PatronMonthDay() (time.Month, int, bool) {
	if d.PatronDay == "" {
		return 0, 0, false
	}
	m, day, ok := parseMonthDay(d.PatronDay)
	return m, day, ok
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
