package digest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/mail"
)

// AlertGroup is one urgent mail: the open urgent exceptions of one owner role.
type AlertGroup struct {
	Key      string // owner role
	DedupKey string // outbox key: alert:<group>:new:<first seen>:<new ids> or alert:<group>:repeat:<last alerted>
	Repeat   bool   // nothing new: a reminder after repeat_interval
	Items    []Item
	New      map[int64]bool
}

// PendingAlerts decides which alert mails are due at now (Alertmanager semantics):
// urgent open exceptions, minus those muted by inhibition, grouped by owner role; a
// group with never-alerted members is sent once group_wait has passed since the
// earliest of them was first seen (so related ones raised meanwhile join the same
// mail); a group with nothing new is sent again once repeat_interval has passed since
// its members were last alerted. A sent group lists every urgent open member.
//
// Alerts follow occurrences: an exception resolved automatically and raised again is
// reopened with AlertedAt cleared and OpenedAt set (archive.RaiseException), so it is
// new again here and is mailed at once, whatever was mailed about the earlier
// occurrence; its repeats are then counted from its own alert.
func PendingAlerts(ctx context.Context, store *archive.Store, opts Options, now time.Time) ([]AlertGroup, error) {
	opts = opts.withDefaults()
	yes := true
	open, err := store.Exceptions(ctx, archive.ExceptionFilter{Open: &yes})
	if err != nil {
		return nil, fmt.Errorf("alerts: open exceptions: %w", err)
	}
	look := newLookup(store)
	groups := map[string][]Item{}
	for _, e := range open {
		if e.Severity != archive.SevUrgent {
			continue
		}
		if _, muted := InhibitedBy(e, open); muted {
			continue
		}
		it, err := look.item(ctx, e, now)
		if err != nil {
			return nil, err
		}
		owner := e.Owner
		if owner == "" {
			owner = Info(e.Kind).Owner
		}
		groups[owner] = append(groups[owner], it)
	}
	var out []AlertGroup
	for key, items := range groups {
		var firstNew, lastAlerted time.Time
		newIDs := map[int64]bool{}
		for _, it := range items {
			if it.AlertedAt.IsZero() {
				newIDs[it.ID] = true
				// The occurrence's start, not FirstSeen: a reopened exception is a new
				// occurrence, and its key must differ from the earlier alert's.
				if firstNew.IsZero() || it.OpenedAt.Before(firstNew) {
					firstNew = it.OpenedAt
				}
			} else if it.AlertedAt.After(lastAlerted) {
				lastAlerted = it.AlertedAt
			}
		}
		g := AlertGroup{Key: key, Items: items, New: newIDs}
		switch {
		case len(newIDs) > 0:
			if !opts.AlertNow && now.Before(firstNew.Add(opts.GroupWait)) {
				continue // wait for related ones to join
			}
			g.DedupKey = "alert:" + key + ":new:" + archive.TS(firstNew) + ":" + idsKey(newIDs)
		case !now.Before(lastAlerted.Add(opts.RepeatInterval)):
			g.Repeat = true
			g.DedupKey = "alert:" + key + ":repeat:" + archive.TS(lastAlerted)
		default:
			continue
		}
		sortItems(g.Items, true)
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// RunAlerts mails the alert groups due at now (called every minute by the daemon).
// Each group is queued under its dedup key, then its members are marked alerted in the
// same step as the group is recorded; a crash in between re-derives the same key and
// the outbox refuses the duplicate, so a restart never mails a group twice.
func RunAlerts(ctx context.Context, store *archive.Store, sender *mail.Sender, opts Options, now time.Time) error {
	_, err := QueueAlerts(ctx, store, sender, opts, now)
	return err
}

// QueueAlerts is RunAlerts, and returns the groups it queued.
func QueueAlerts(ctx context.Context, store *archive.Store, sender *mail.Sender, opts Options, now time.Time) ([]AlertGroup, error) {
	opts = opts.withDefaults()
	groups, err := PendingAlerts(ctx, store, opts, now)
	if err != nil || len(groups) == 0 {
		return nil, err
	}
	if len(opts.AlertTo) == 0 {
		opts.Log.Warn("urgent exceptions open but no alert recipients ([alerts] to / [digest] to)", "groups", len(groups))
		return nil, nil
	}
	var queued []AlertGroup
	for _, g := range groups {
		// [alerts] include_personal_data, not the digest's: the on-call audience is wider.
		subject, text, html, err := g.Render(opts.Lang, opts.AlertIncludePersonalData, opts.Company, now)
		if err != nil {
			return queued, err
		}
		msg := mail.Message{From: opts.From, To: opts.AlertTo, Subject: subject, Text: text, HTML: html, Date: now,
			Headers: map[string]string{"X-Cmord-Alert": g.DedupKey, "X-Priority": "1"}}
		if err := sender.Queue(ctx, g.DedupKey, "alert", msg); err != nil {
			return queued, err
		}
		ids := make([]int64, len(g.Items))
		for i, it := range g.Items {
			ids[i] = it.ID
		}
		if err := store.Write(ctx, func(tx *sql.Tx) error {
			return store.RecordAlertGroup(ctx, tx, g.DedupKey, g.Key, ids, now)
		}); err != nil {
			return queued, err
		}
		opts.Log.Info("urgent alert queued", "key", g.DedupKey, "exceptions", len(ids), "repeat", g.Repeat)
		queued = append(queued, g)
	}
	return queued, nil
}

// alertMaxItems is how many exceptions an alert mail lists; the subject counts them all.
const alertMaxItems = 50

// Render returns the alert's subject and bodies.
func (g AlertGroup) Render(lang string, includePersonal bool, company string, now time.Time) (subject, text, html string, err error) {
	if lang != "en" {
		lang = "it"
	}
	L := labels[lang]
	d := &Digest{Company: company, PeriodEnd: now}
	m := masker{on: !includePersonal}
	v := view{L: L, Lang: lang, Title: L["alert_title"], Company: company, PeriodEnd: FormatTime(now), Masked: !includePersonal,
		Repeat: g.Repeat, Footer: fmt.Sprintf(L["alert_footer"], FormatTime(now))} // on-call people, who have the server
	sec := sectionView{Key: "alert", Title: L["alert_title"]}
	var titles []string
	seen := map[string]bool{}
	for i, it := range g.Items {
		// Listed up to alertMaxItems, the rest counted: a backlog's first deadline run
		// raised 100,000 urgent exceptions at once, and one mail listing them all was
		// 216 MB of text and as much HTML (cmord run --once peaked at 1.4 GB).
		if i < alertMaxItems {
			sec.Items = append(sec.Items, d.itemView(it, lang, m, L))
		}
		if t := Info(it.Kind).Title(lang); !seen[t] {
			seen[t] = true
			titles = append(titles, t)
		}
	}
	if more := len(g.Items) - len(sec.Items); more > 0 {
		sec.More, sec.MoreText = more, fmt.Sprintf(one(L, "alert_more", more), more, g.Key)
	}
	v.Sections = []sectionView{sec}
	tag := "[CMOR URGENTE]"
	if lang == "en" {
		tag = "[CMOR URGENT]"
	}
	if g.Repeat {
		tag += " " + L["alert_repeat"]
	}
	subject = fmt.Sprintf("%s %d × %s", tag, len(g.Items), strings.Join(titles, ", "))
	if r := []rune(subject); len(r) > 160 {
		subject = string(r[:157]) + "..."
	}
	var tb, hb bytes.Buffer
	if err := textTemplates.ExecuteTemplate(&tb, "alert.txt.tmpl", v); err != nil {
		return "", "", "", fmt.Errorf("alerts: render text: %w", err)
	}
	if err := htmlTemplates.ExecuteTemplate(&hb, "alert.html.tmpl", v); err != nil {
		return "", "", "", fmt.Errorf("alerts: render html: %w", err)
	}
	return subject, tb.String(), hb.String(), nil
}

// idsKey names a set of exception ids compactly (sorted, hashed when long).
func idsKey(ids map[int64]bool) string {
	list := make([]int64, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
	parts := make([]string, len(list))
	for i, id := range list {
		parts[i] = strconv.FormatInt(id, 10)
	}
	s := strings.Join(parts, "-")
	if len(s) > 64 {
		sum := sha256.Sum256([]byte(s))
		s = hex.EncodeToString(sum[:12])
	}
	return s
}
