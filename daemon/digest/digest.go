package digest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/flows"
)

// Options configures the digest and the alerts.
type Options struct {
	Lang                string // "it" (default) or "en"
	Company             string // shown in the heading
	To                  []string
	From                string // default: the sender's [mail] from
	IncludePersonalData bool   // digest: customer CF/P.IVA and name in the body and CSV (the recipients' role needs them)
	AttachCSV           bool   // attach the list as CSV (for programs), bounded (AttachMaxRows, AttachMaxSize)
	AttachXLSX          bool   // attach the list as XLSX (for people: identifiers stay text), bounded likewise
	// AttachMaxRows and AttachMaxSize bound the attachments so that the mail stays
	// deliverable ([digest] attachment_max_rows, attachment_max_size; defaults
	// config.DefaultDigestAttachmentMaxRows and config.DefaultDigestAttachmentMaxSize):
	// over them the attachments carry the most urgent rows and the body says so.
	AttachMaxRows int
	AttachMaxSize int64  // the CSV and XLSX together, before the mail's base64
	Contact       string // who compliance calls for what needs the server ([digest] contact)
	SkipEmpty     bool   // when nothing happened and nothing is open, send nothing (default: a short "nothing needs you")
	DeadlineDays  int    // deadlines due in the next N days are listed (default 30), overdue ones always
	WarnDays      []int  // [digest] warn_days (default 30, 7, 2): how a deadline row is coloured
	MaxItems      int    // per section in the body (default 50); the CSV has all, within its bound
	DedupKey      string // outbox key; default "digest:<Rome date of now>"
	// ReadOnly builds the digest without writing to the archive (`cmord digest
	// --preview`): the deadlines are computed as the deadline job would, and the
	// exceptions it would raise, escalate or resolve are applied in memory only. An
	// exception it would newly raise has no id yet.
	ReadOnly bool
	Calendar *flows.Calendar
	// Deadlines are the [deadlines] terms: Build refreshes every practice's deadlines
	// with them (RunDeadlines, the deadline job's code) before reading, so a digest or
	// a preview never shows the terms of the job's last run. WarnDays and
	// UrgentWithinWorkingDays above fill theirs when unset.
	Deadlines DeadlineConfig
	// Catalog is the flow catalog in force: it describes the SII cause codes of
	// refusals. Default: the embedded catalog.
	Catalog *flows.Catalog

	// Alerts.
	AlertTo []string // default To
	// AlertIncludePersonalData puts customer CF/P.IVA and names in alert mails
	// ([alerts] include_personal_data, default false). It is not IncludePersonalData:
	// alerts go to a wider on-call audience than the digest.
	AlertIncludePersonalData bool
	// AlertNow queues a group with new members without waiting group_wait: nothing
	// else will join it (`cmord alert --unit-failed`: the daemon is down; a daemon
	// that starts after crashing and may die again at once).
	AlertNow                bool
	GroupWait               time.Duration // default 1m
	RepeatInterval          time.Duration // default 4h
	UrgentWithinWorkingDays int           // default 2

	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Lang != "en" {
		o.Lang = "it"
	}
	if o.DeadlineDays <= 0 {
		o.DeadlineDays = 30
	}
	if o.MaxItems <= 0 {
		o.MaxItems = 50
	}
	if o.Calendar == nil {
		o.Calendar = flows.NewCalendar(0, 0)
	}
	if o.Catalog == nil {
		o.Catalog = defaultCatalog()
	}
	if len(o.AlertTo) == 0 {
		o.AlertTo = o.To
	}
	if o.GroupWait <= 0 {
		o.GroupWait = time.Minute
	}
	if o.RepeatInterval <= 0 {
		o.RepeatInterval = 4 * time.Hour
	}
	if o.UrgentWithinWorkingDays <= 0 {
		o.UrgentWithinWorkingDays = 2
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// deadlineConfig is the deadline terms: o.Deadlines, with WarnDays and
// UrgentWithinWorkingDays from o when it leaves them unset.
func (o Options) deadlineConfig() DeadlineConfig {
	c := o.Deadlines
	if len(c.WarnDays) == 0 {
		c.WarnDays = o.WarnDays
	}
	if c.UrgentWithinWorkingDays <= 0 {
		c.UrgentWithinWorkingDays = o.UrgentWithinWorkingDays
	}
	return c.withDefaults()
}

// OptionsFromConfig maps [digest], [alerts], [deadlines], [company], [catalog] and
// lang. A catalog file that does not load leaves the embedded catalog (`cmord check`
// reports the file's problems); the daemon sets Catalog to the one it runs with.
func OptionsFromConfig(cfg *config.Config) Options {
	lang := cfg.Digest.Lang
	if lang == "" {
		lang = cfg.Lang
	}
	o := Options{Lang: lang, Company: cfg.Company.Name, To: cfg.Digest.To, From: cfg.Mail.From,
		IncludePersonalData: cfg.Digest.IncludePersonalData, AttachCSV: cfg.Digest.AttachCSV,
		AttachXLSX: cfg.Digest.AttachXLSX, Contact: cfg.Digest.Contact,
		AttachMaxRows: cfg.Digest.AttachmentMaxRows, AttachMaxSize: cfg.Digest.AttachmentMaxSize,
		AlertTo: cfg.Alerts.To, GroupWait: cfg.Alerts.GroupWait, RepeatInterval: cfg.Alerts.RepeatInterval,
		UrgentWithinWorkingDays: cfg.Alerts.UrgentWithinWorkingDays, Calendar: CalendarFromConfig(cfg), WarnDays: cfg.Digest.WarnDays,
		Deadlines: DeadlineConfigFromConfig(cfg), AlertIncludePersonalData: cfg.Alerts.IncludePersonalData}
	for _, w := range cfg.Digest.WarnDays {
		o.DeadlineDays = max(o.DeadlineDays, w)
	}
	if cfg.Catalog.Path != "" {
		if cat, err := flows.LoadCatalog(cfg.Catalog.Path, cfg.Catalog.Mode); err == nil {
			o.Catalog = cat
		}
	}
	return o
}

// DeadlineConfigFromConfig maps [deadlines], [digest] warn_days and [alerts].
func DeadlineConfigFromConfig(cfg *config.Config) DeadlineConfig {
	return DeadlineConfig{NoAnswerDays: cfg.Deadlines.NoAnswerDays, RefundDays: cfg.Deadlines.RefundDays,
		AckDays: cfg.Deadlines.AckDays, WarnDays: cfg.Digest.WarnDays, UrgentWithinWorkingDays: cfg.Alerts.UrgentWithinWorkingDays}
}

// CalendarFromConfig returns the working-day calendar with the configured patron day.
func CalendarFromConfig(cfg *config.Config) *flows.Calendar {
	if m, d, ok := cfg.Deadlines.PatronMonthDay(); ok {
		return flows.NewCalendar(m, d)
	}
	return flows.NewCalendar(0, 0)
}

// Item is one exception as the digest shows it, with what a person needs to find it.
type Item struct {
	archive.Exception
	PracticeCode string
	PointLabel   string // POD or PDR
	Point        string
	CustomerID   string
	CustomerName string
	FileName     string
	Age          time.Duration // since first seen, at the digest's end
	Muted        bool          // inhibited by an open sii_unreachable
	MutedBy      int64
}

// DeadlineItem is one deadline due soon.
type DeadlineItem struct {
	Kind            string
	Severity        string // as the deadline job raises it (urgent within 2 working days); low/normal when not raised yet
	Due             flows.Date
	DaysLeft        int
	WorkingDaysLeft int
	PracticeID      int64
	PracticeCode    string
	PointLabel      string
	Point           string
	State           string
	CustomerID      string
	CustomerName    string
}

// SevCount is the number of open exceptions of one severity.
type SevCount struct {
	Severity string
	Count    int
}

// KindCount is the number of open exceptions of one kind.
type KindCount struct {
	Kind     string
	Severity string // the most severe among them
	Count    int
	New      int
}

// Digest is what happened since the last digest and what is still open.
type Digest struct {
	Company     string
	PeriodStart time.Time
	PeriodEnd   time.Time
	FirstDigest bool // no previous digest: the period is the last 24 hours, or since the archive's first record
	FromFirst   bool // a first digest whose period starts at the archive's first record (older than 24 hours)
	SinceLast   bool // the period starts at the end of the last digest sent (the period line says so)
	Flows       []archive.FlowCount
	Open        []SevCount  // open, not muted, by severity (every severity, zeros included)
	ByKind      []KindCount // open, not muted, by kind, most severe first
	Muted       int
	New         []Item // first seen in the period, still open
	StillOpen   []Item // open from before the period, oldest first
	Resolved    []Item // resolved in the period
	Deadlines   []DeadlineItem
	MaxItems    int
	AttachCSV   bool // the mail carries the CSV (the body says so)
	AttachXLSX  bool // the mail carries the XLSX (the footer says so)
	// AttachMaxRows and AttachMaxSize bound the attachments (Options); Attachments
	// applies them and the body rendered afterwards says how many rows of how many
	// the attachments carry.
	AttachMaxRows int
	AttachMaxSize int64
	// WouldAttach is, in a preview (which attaches nothing and writes the whole list
	// to its CSV file), the rows a digest sent now would attach when fewer than the
	// list (PreviewBound); 0 otherwise. The body says so.
	WouldAttach int
	Contact     string         // who to call for what needs the server (footer)
	Rejected    []RejectedFile // files refused whole in the period, with their reason
	CSVFile     string         // a preview writes the CSV to this file (the body says so); "" when none
	Anchor      string         // the archive's state chain head when built (archive.Anchor), for an external notary

	cut *[3]int         // rows of New, StillOpen, Resolved the attachments carry (Attachments); nil: all
	cal *flows.Calendar // working days of the "when" of deadline items
	cat *flows.Catalog  // SII cause descriptions
}

// RejectedFile is a file refused whole in the period: nothing of it was taken in.
type RejectedFile struct {
	Name, Kind, Source string
	At                 time.Time
	Reason             string // the daemon's reason (English, technical)
}

// Empty reports whether there is nothing to tell: no activity, nothing open, resolved
// or due.
func (d *Digest) Empty() bool {
	return len(d.Flows) == 0 && len(d.New) == 0 && len(d.StillOpen) == 0 && len(d.Resolved) == 0 && len(d.Deadlines) == 0
}

// OpenTotal is the number of open, not muted exceptions.
func (d *Digest) OpenTotal() int {
	n := 0
	for _, c := range d.Open {
		n += c.Count
	}
	return n
}

// Build gathers the digest for the period from the last digest's end (or the last 24
// hours) to now. It first refreshes the deadlines (RunDeadlines, as the deadline job
// does), so a practice created or moved since the job's last run is in the deadline
// table and its exceptions are raised or resolved before the digest reads them.
func Build(ctx context.Context, store *archive.Store, opts Options, now time.Time) (*Digest, error) {
	opts = opts.withDefaults()
	var plan *deadlinePlan
	if opts.ReadOnly {
		p, err := planDeadlines(ctx, store, opts.Calendar, opts.deadlineConfig(), now)
		if err != nil {
			return nil, fmt.Errorf("digest: deadlines: %w", err)
		}
		plan = &p
	} else if _, _, err := RunDeadlines(ctx, store, opts.Calendar, opts.deadlineConfig(), now); err != nil {
		return nil, fmt.Errorf("digest: refresh deadlines: %w", err)
	}
	d := &Digest{Company: opts.Company, PeriodEnd: now, MaxItems: opts.MaxItems, AttachCSV: opts.AttachCSV,
		AttachXLSX: opts.AttachXLSX, AttachMaxRows: opts.AttachMaxRows, AttachMaxSize: opts.AttachMaxSize,
		Contact: opts.Contact, cal: opts.Calendar, cat: opts.Catalog}
	last, ok, err := store.LastDigest(ctx)
	if err != nil {
		return nil, err
	}
	if head, ok, err := store.ChainHead(ctx); err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	} else if ok {
		d.Anchor = head.String()
	}
	if ok && last.PeriodEnd.Before(now) {
		// The period line says so: a preview made just after a digest went out
		// (the demo's tour sends one) has a short period that may hold nothing.
		d.PeriodStart, d.SinceLast = last.PeriodEnd, true
	} else {
		d.PeriodStart, d.FirstDigest = now.Add(-24*time.Hour), !ok
	}
	if d.FirstDigest {
		// No digest yet: the period starts at the archive's first record when that
		// is older than a day, so that the first digest (and every preview before
		// it) reports what the archive holds, not only its last 24 hours: a digest
		// first enabled after days of work, or the demo's, whose script is dated
		// in the recent past, said "no file in the period".
		first, found, err := firstRecord(ctx, store)
		if err != nil {
			return nil, fmt.Errorf("digest: %w", err)
		}
		if found && first.Before(d.PeriodStart) {
			d.PeriodStart, d.FromFirst = first, true
		}
	}
	if d.Flows, err = store.FlowCounts(ctx, d.PeriodStart, now); err != nil {
		return nil, err
	}
	rejected, err := store.ListFiles(ctx, archive.FileFilter{Direction: "in", State: archive.StateRejected, Since: d.PeriodStart, Until: now})
	if err != nil {
		return nil, fmt.Errorf("digest: rejected files: %w", err)
	}
	for i := len(rejected) - 1; i >= 0; i-- { // oldest first
		f := rejected[i]
		d.Rejected = append(d.Rejected, RejectedFile{Name: f.Name, Kind: f.Kind, Source: f.Source, At: f.ReceivedAt, Reason: f.Reason})
	}
	yes := true
	open, err := store.Exceptions(ctx, archive.ExceptionFilter{Open: &yes})
	if err != nil {
		return nil, fmt.Errorf("digest: open exceptions: %w", err)
	}
	resolved, err := store.ExceptionsResolvedBetween(ctx, d.PeriodStart, now)
	if err != nil {
		return nil, err
	}
	if plan != nil {
		if open, resolved, err = overlayDeadlines(ctx, store, *plan, open, resolved, now); err != nil {
			return nil, err
		}
	}
	look := newLookup(store)
	if err := d.addExceptions(ctx, look, open, resolved, now); err != nil {
		return nil, err
	}
	if err := d.addDeadlines(ctx, store, look, plan, opts, now); err != nil {
		return nil, err
	}
	return d, nil
}

// firstRecord is when the archive's first record was made: the first file received or
// the first event logged, whichever is older (both read through an index).
func firstRecord(ctx context.Context, store *archive.Store) (time.Time, bool, error) {
	var first time.Time
	var received sql.NullString
	if err := store.Read().QueryRowContext(ctx, `SELECT min(received_at) FROM files`).Scan(&received); err != nil {
		return first, false, fmt.Errorf("first file: %w", err)
	}
	if received.Valid {
		if t, err := archive.ParseTS(received.String); err == nil {
			first = t
		}
	}
	events, err := store.Events(ctx, archive.EventFilter{Limit: 1})
	if err != nil {
		return first, false, fmt.Errorf("first event: %w", err)
	}
	if len(events) == 1 && !events[0].At.IsZero() && (first.IsZero() || events[0].At.Before(first)) {
		first = events[0].At
	}
	return first, !first.IsZero(), nil
}

// addExceptions fills the exception sections: open ones new in the period or still
// open (counted by severity and kind unless muted by another), and those resolved in
// the period.
func (d *Digest) addExceptions(ctx context.Context, look *lookup, open, resolved []archive.Exception, now time.Time) error {
	sev := map[string]int{}
	kinds := map[string]*KindCount{}
	for _, e := range open {
		it, err := look.item(ctx, e, now)
		if err != nil {
			return err
		}
		if by, muted := InhibitedBy(e, open); muted {
			it.Muted, it.MutedBy = true, by.ID
			d.Muted++
		} else {
			sev[e.Severity]++
			k := kinds[e.Kind]
			if k == nil {
				k = &KindCount{Kind: e.Kind, Severity: e.Severity}
				kinds[e.Kind] = k
			}
			k.Count++
			if SevRank(e.Severity) < SevRank(k.Severity) {
				k.Severity = e.Severity
			}
			if !e.FirstSeen.Before(d.PeriodStart) {
				k.New++
			}
		}
		if e.FirstSeen.Before(d.PeriodStart) {
			d.StillOpen = append(d.StillOpen, it)
		} else {
			d.New = append(d.New, it)
		}
	}
	for _, e := range resolved {
		if selfHealedMiss(e) {
			continue
		}
		it, err := look.item(ctx, e, now)
		if err != nil {
			return err
		}
		d.Resolved = append(d.Resolved, it)
	}
	for _, s := range Severities {
		d.Open = append(d.Open, SevCount{s, sev[s]})
	}
	for _, k := range kinds {
		d.ByKind = append(d.ByKind, *k)
	}
	sort.Slice(d.ByKind, func(i, j int) bool {
		a, b := d.ByKind[i], d.ByKind[j]
		if SevRank(a.Severity) != SevRank(b.Severity) {
			return SevRank(a.Severity) < SevRank(b.Severity)
		}
		return a.Kind < b.Kind
	})
	sortItems(d.New, false)
	sortItems(d.StillOpen, true)
	sortItems(d.Resolved, false)
	return nil
}

// addDeadlines fills the deadline table: every deadline up to DeadlineDays from today,
// overdue ones included.
func (d *Digest) addDeadlines(ctx context.Context, store *archive.Store, look *lookup, plan *deadlinePlan, opts Options, now time.Time) error {
	var err error
	today := flows.Today(now)
	// Overdue ones too: a deadline stays in the table while its condition holds.
	var rows []archive.DeadlineRow
	if plan != nil {
		rows = plannedDeadlinesUntil(*plan, today.AddDays(opts.DeadlineDays))
	} else if rows, err = store.DeadlinesBetween(ctx, flows.Date{}, today.AddDays(opts.DeadlineDays)); err != nil {
		return err
	}
	for _, r := range rows {
		p, err := look.practice(ctx, r.PracticeID)
		if err != nil {
			return err
		}
		sev, raised := deadlineSeverity(r.Kind, r.DueOn, today, opts.Calendar, opts.deadlineConfig())
		if !raised && sev == "" {
			sev = archive.SevNormal
		}
		d.Deadlines = append(d.Deadlines, DeadlineItem{Kind: r.Kind, Severity: sev, Due: r.DueOn, DaysLeft: today.DaysUntil(r.DueOn),
			WorkingDaysLeft: opts.Calendar.WorkingDaysBetween(today, r.DueOn), PracticeID: p.ID, PracticeCode: PracticeCode(p),
			PointLabel: pointLabel(p.Sector), Point: p.Point, State: p.State, CustomerID: p.CustomerID, CustomerName: p.CustomerName})
	}
	return nil
}

// overlayDeadlines applies in memory what RunDeadlines would do to the exceptions at
// now: a planned deadline exception already open takes its new severity and message;
// one that exists resolved automatically reopens; one that does not exist appears
// without an id; an open deadline exception no longer planned is resolved at now, which
// puts it out of this period (it belongs to the next digest's, as after a real run).
func overlayDeadlines(ctx context.Context, store *archive.Store, plan deadlinePlan, open, resolved []archive.Exception,
	now time.Time) ([]archive.Exception, []archive.Exception, error) {
	planned := make(map[string]archive.Exception, len(plan.raise))
	for _, e := range plan.raise {
		planned[e.Fingerprint] = e
	}
	refresh := func(e, p archive.Exception) archive.Exception {
		e.Severity, e.Message, e.DueOn, e.Action, e.LastSeen = p.Severity, p.Message, p.DueOn, p.Action, now
		e.Count++
		return e
	}
	seen := map[string]bool{}
	out := make([]archive.Exception, 0, len(open)+len(plan.raise))
	for _, e := range open {
		if !strings.HasPrefix(e.Fingerprint, deadlineFingerprintPrefix) {
			out = append(out, e)
			continue
		}
		if p, ok := planned[e.Fingerprint]; ok {
			seen[e.Fingerprint] = true
			out = append(out, refresh(e, p))
		}
	}
	reopened := map[string]bool{}
	for _, p := range plan.raise {
		if seen[p.Fingerprint] {
			continue
		}
		// The fingerprint names kind and practice: those two select the candidates.
		same, err := store.Exceptions(ctx, archive.ExceptionFilter{Kind: p.Kind, PracticeID: p.PracticeID})
		if err != nil {
			return nil, nil, fmt.Errorf("digest: deadline exceptions: %w", err)
		}
		var old *archive.Exception
		for i := range same {
			if same[i].Fingerprint == p.Fingerprint {
				old = &same[i]
			}
		}
		switch {
		case old == nil:
			p.FirstSeen, p.Count = now, 1
			out = append(out, p)
		case old.ResolvedBy == "auto":
			e := refresh(*old, p)
			e.ResolvedAt, e.Resolution, e.ResolvedBy = time.Time{}, "", ""
			out = append(out, e)
			reopened[p.Fingerprint] = true
		}
		// Resolved by a person: the resolution stands (RaiseException only counts).
	}
	keep := resolved[:0:0]
	for _, e := range resolved {
		if !reopened[e.Fingerprint] {
			keep = append(keep, e)
		}
	}
	return out, keep, nil
}

// plannedDeadlinesUntil is the planned deadline rows due up to last (overdue ones
// included), in DeadlinesBetween's order.
func plannedDeadlinesUntil(plan deadlinePlan, last flows.Date) []archive.DeadlineRow {
	var rows []archive.DeadlineRow
	for _, r := range plan.rows {
		if !r.DueOn.After(last) {
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.DueOn != b.DueOn {
			return a.DueOn.Before(b.DueOn)
		}
		if a.PracticeID != b.PracticeID {
			return a.PracticeID < b.PracticeID
		}
		return a.Kind < b.Kind
	})
	return rows
}

// sortItems orders most severe first, then newest first (or oldest first for the
// still-open list, where age matters), then by id.
func sortItems(items []Item, oldestFirst bool) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if SevRank(a.Severity) != SevRank(b.Severity) {
			return SevRank(a.Severity) < SevRank(b.Severity)
		}
		if a.Muted != b.Muted {
			return !a.Muted
		}
		if !a.FirstSeen.Equal(b.FirstSeen) {
			if oldestFirst {
				return a.FirstSeen.Before(b.FirstSeen)
			}
			return a.FirstSeen.After(b.FirstSeen)
		}
		return a.ID < b.ID
	})
}

// lookup caches the practices and files the items name. A practice is cached with
// only the fields a digest line shows (practiceForDigest): a backlog of 100,000
// exceptions names 100,000 practices, and caching each whole (its case data, invoices
// and computation audit) held about 1.4 KiB per practice for the whole digest.
type lookup struct {
	store     *archive.Store
	practices map[int64]archive.Practice
	files     map[int64]string
}

func newLookup(store *archive.Store) *lookup {
	return &lookup{store: store, practices: map[int64]archive.Practice{}, files: map[int64]string{}}
}

func (l *lookup) practice(ctx context.Context, id int64) (archive.Practice, error) {
	if p, ok := l.practices[id]; ok {
		return p, nil
	}
	p, err := l.store.PracticeByID(ctx, nil, id)
	if err != nil && !errors.Is(err, archive.ErrNotFound) {
		return p, fmt.Errorf("digest: practice %d: %w", id, err)
	}
	if err != nil {
		p = archive.Practice{ID: id}
	}
	p = practiceForDigest(p)
	l.practices[id] = p
	return p, nil
}

// practiceForDigest keeps of p what the digest's items and deadline lines show:
// its code, sector, point, state and customer.
func practiceForDigest(p archive.Practice) archive.Practice {
	return archive.Practice{ID: p.ID, CPUtente: p.CPUtente, CPGestore: p.CPGestore, Sector: p.Sector, Point: p.Point,
		State: p.State, CustomerID: p.CustomerID, CustomerName: p.CustomerName}
}

func (l *lookup) file(ctx context.Context, id int64) (string, error) {
	if n, ok := l.files[id]; ok {
		return n, nil
	}
	f, err := l.store.GetFile(ctx, id)
	if err != nil && !errors.Is(err, archive.ErrNotFound) {
		return "", fmt.Errorf("digest: file %d: %w", id, err)
	}
	name := flows.Shown(f.Name, flows.MaxNameLen)
	if err != nil {
		name = fmt.Sprintf("#%d", id)
	}
	l.files[id] = name
	return name, nil
}

func (l *lookup) item(ctx context.Context, e archive.Exception, now time.Time) (Item, error) {
	e.Bound() // rows are bounded when raised; this keeps the digest bounded whatever a row holds
	it := Item{Exception: e, Age: now.Sub(e.FirstSeen)}
	if !e.ResolvedAt.IsZero() {
		it.Age = e.ResolvedAt.Sub(e.FirstSeen) // how long it was open
	}
	if e.PracticeID != 0 {
		p, err := l.practice(ctx, e.PracticeID)
		if err != nil {
			return it, err
		}
		it.PracticeCode, it.PointLabel, it.Point = PracticeCode(p), pointLabel(p.Sector), flows.Escape(p.Point)
		it.CustomerID, it.CustomerName = flows.Escape(p.CustomerID), flows.Shown(p.CustomerName, flows.MaxNameLen)
	} else if key := caseKeyRE.FindString(e.Value + " " + e.Message); key != "" {
		// A finding about a case (CASE-ROWS, SI-D01) names it by its internal key: show
		// the practice it became, else the point and customer the key is made of.
		p, err := l.store.PracticeByKey(ctx, nil, key)
		switch {
		case err == nil:
			it.PracticeCode, it.PointLabel, it.Point = PracticeCode(p), pointLabel(p.Sector), p.Point
			it.CustomerID, it.CustomerName = p.CustomerID, p.CustomerName
		case !errors.Is(err, archive.ErrNotFound):
			return it, fmt.Errorf("digest: case of exception %d: %w", e.ID, err)
		default:
			if point, cust, _, ok := caseKeyParts(key); ok {
				it.PointLabel, it.Point, it.CustomerID = pointLabelOf(point), point, cust
			}
		}
	}
	if e.FileID != 0 {
		n, err := l.file(ctx, e.FileID)
		if err != nil {
			return it, err
		}
		it.FileName = n
	}
	return it, nil
}

// selfHealedMiss reports a missed_schedule that its job's next run closed by itself
// (slots missed during a restart): the sysadmin's, and over. Compliance reads only
// the misses that matter (a day without digest or build, owner compliance), and
// those a job still failing leaves open.
func selfHealedMiss(e archive.Exception) bool {
	return e.Kind == "missed_schedule" && e.Owner != OwnerCompliance && e.ResolvedBy == "auto"
}

// DedupKey is the outbox key of the digest whose period ends at now: one per Rome day,
// so a restart (or a second run the same day) never mails it twice.
func DedupKey(now time.Time) string { return "digest:" + flows.Today(now).ISO() }

// logAlreadyQueued says what became of the digest of key, which is not queued again:
// queuing is not sending, so the log tells the outbox's truth (sent, or still waiting
// with its attempts and last error), never "sent" for a message still in the queue.
func logAlreadyQueued(ctx context.Context, store *archive.Store, log *slog.Logger, key string) {
	m, found, err := store.Outbox().ByKey(ctx, key)
	switch {
	case err != nil:
		log.Warn("digest already queued, not queued again; its mail state is unknown", "key", key, "err", err)
	case !found:
		// Recorded without a message: skip_empty found nothing to tell.
		log.Info("digest already done (nothing to tell, no mail), not queued again", "key", key)
	case m.State == archive.OutboxSent:
		log.Info("digest already sent, not sent again", "key", key, "sent_at", m.SentAt)
	default:
		log.Info("digest already queued, not queued again; not sent yet (the mail outbox retries it)", "key", key,
			"mail_state", m.State, "attempts", m.Attempts, "last_error", m.LastError)
	}
}

// Send builds and renders the digest, queues it in the mail outbox under its dedup key
// and records it in the ledger. Run again with the same key (after a crash between the
// two steps, or a restart the same day) it queues nothing new and completes the ledger.
// It returns whether a digest was queued now.
func Send(ctx context.Context, store *archive.Store, sender *mail.Sender, opts Options, now time.Time) (bool, error) {
	opts = opts.withDefaults()
	key := opts.DedupKey
	if key == "" {
		key = DedupKey(now)
	}
	if _, done, err := store.DigestByKey(ctx, key); err != nil || done {
		if done {
			logAlreadyQueued(ctx, store, opts.Log, key)
		}
		return false, err
	}
	if len(opts.To) == 0 {
		return false, errors.New("digest: no recipients ([digest] to)")
	}
	d, err := Build(ctx, store, opts, now)
	if err != nil {
		return false, err
	}
	summary, _ := json.Marshal(map[string]any{"open": d.Open, "muted": d.Muted, "new": len(d.New), "still_open": len(d.StillOpen),
		"resolved": len(d.Resolved), "deadlines": len(d.Deadlines)})
	rec := archive.DigestRecord{DedupKey: key, PeriodStart: d.PeriodStart, PeriodEnd: d.PeriodEnd, Lang: opts.Lang,
		Summary: summary, CreatedAt: now}
	if d.Empty() && opts.SkipEmpty {
		opts.Log.Info("digest: nothing to tell, not sent (skip_empty)", "key", key)
		return false, store.Write(ctx, func(tx *sql.Tx) error { _, err := store.RecordDigest(ctx, tx, rec); return err })
	}
	msg, err := d.Message(opts, key)
	if err != nil {
		return false, err
	}
	subject, text := msg.Subject, msg.Text
	if err := sender.Queue(ctx, key, "digest", msg); err != nil {
		return false, err
	}
	// The digest sent is part of the archive (SPEC "Archive": digests sent).
	if _, err := store.Ingest(ctx, archive.IngestRequest{Source: "digest", Name: strings.TrimPrefix(key, "digest:") + ".txt",
		Direction: "out", Kind: "digest", State: archive.StatePublished, Reader: strings.NewReader(text), At: now,
		Meta: map[string]string{"dedup_key": key, "subject": subject}}); err != nil {
		opts.Log.Warn("digest: archive copy failed", "key", key, "err", err)
	}
	rec.Subject = subject
	if err := store.Write(ctx, func(tx *sql.Tx) error { _, err := store.RecordDigest(ctx, tx, rec); return err }); err != nil {
		return false, err
	}
	opts.Log.Info("digest queued", "key", key, "new", len(d.New), "still_open", len(d.StillOpen), "resolved", len(d.Resolved),
		"deadlines", len(d.Deadlines))
	if d.Bounded() {
		opts.Log.Warn("digest: the attachments carry only the most urgent part of the list, to keep the mail deliverable "+
			"([digest] attachment_max_rows, attachment_max_size); the body says so", "key", key, "attached", d.Attached(),
			"list", d.ListTotal(), "full_list", FullListCommand(opts.Lang))
	}
	return true, nil
}

// Message is the digest's mail: the bodies in opts.Lang and its attachments, bounded
// (Attachments) so that the message stays deliverable; the body says when they are.
func (d *Digest) Message(opts Options, key string) (mail.Message, error) {
	opts = opts.withDefaults()
	// The attachments first: the body says how many rows they carry.
	xlsx, csvData, err := d.Attachments(opts.Lang, opts.IncludePersonalData)
	if err != nil {
		return mail.Message{}, err
	}
	subject, text, html, err := d.renderBodies(opts.Lang, opts.IncludePersonalData)
	if err != nil {
		return mail.Message{}, err
	}
	now := d.PeriodEnd
	msg := mail.Message{From: opts.From, To: opts.To, Subject: subject, Text: text, HTML: html, Date: now,
		Headers: map[string]string{"X-Cmord-Digest": key, "X-Cmord-Period": archive.TS(d.PeriodStart) + "/" + archive.TS(d.PeriodEnd)}}
	if d.AttachXLSX {
		msg.Attachments = append(msg.Attachments, mail.Attachment{Name: XLSXName(opts.Lang, now),
			ContentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Data: xlsx})
	}
	if d.AttachCSV {
		msg.Attachments = append(msg.Attachments, mail.Attachment{Name: CSVName(opts.Lang, now),
			ContentType: "text/csv; charset=utf-8", Data: csvData})
	}
	return msg, nil
}

// CSVName is the attachment's file name.
func CSVName(lang string, now time.Time) string {
	if lang == "en" {
		return "cmord-exceptions-" + flows.Today(now).ISO() + ".csv"
	}
	return "cmord-eccezioni-" + flows.Today(now).ISO() + ".csv"
}
