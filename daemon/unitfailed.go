package daemon

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/mail"
)

// UnitFailure is what systemd says of a failed unit to the unit its OnFailure= starts
// (systemd.exec(5): $MONITOR_UNIT, $MONITOR_SERVICE_RESULT, $MONITOR_EXIT_CODE,
// $MONITOR_EXIT_STATUS; systemd 251 and later). Empty when not known.
type UnitFailure struct {
	Unit, Result, ExitCode, ExitStatus string
}

// String describes the failure in one line.
func (f UnitFailure) String() string {
	unit := f.Unit
	if unit == "" {
		unit = "cmord.service"
	}
	var parts []string
	if f.Result != "" {
		parts = append(parts, "result "+f.Result)
	}
	if f.ExitCode != "" || f.ExitStatus != "" {
		parts = append(parts, strings.TrimSpace(f.ExitCode+" "+f.ExitStatus))
	}
	if len(parts) == 0 {
		return unit
	}
	return unit + " (" + strings.Join(parts, ", ") + ")"
}

// UnitFailedReport is what AlertUnitFailed did.
type UnitFailedReport struct {
	Streak       archive.UncleanStreak
	ExceptionID  int64
	Queued       []string // dedup keys of the alert mails queued
	NoRecipients bool     // no [alerts] to nor [digest] to: nothing could be queued
	NoRelay      bool     // no [mail] host: queued, not sent
	Sent         []string // of Queued, those the relay accepted now
	SendErr      string   // why the rest are still queued (the next daemon start sends them)
}

// AlertUnitFailed is `cmord alert --unit-failed`: systemd gave up restarting the daemon
// (the start limit, an exit status it does not restart, a kill it does not restart),
// so nothing inside cmord runs to say it. It takes the state directory's lock (a
// *StateLockedError if a daemon holds it: then the daemon is not down), records
// daemon_down with what the run ledger knows, queues the urgent alert in the outbox
// (the next daemon start sends it if this send fails) and sends the outbox at once
// through the configured relay, with the daemon's own mail code.
func AlertUnitFailed(ctx context.Context, cfg *config.Config, log *slog.Logger, f UnitFailure, now time.Time) (UnitFailedReport, error) {
	var rep UnitFailedReport
	lock, err := LockStateDir(cfg.StateDir)
	if err != nil {
		return rep, err
	}
	defer lock.Unlock()
	store, err := archive.Open(cfg.StateDir)
	if err != nil {
		return rep, err
	}
	defer store.Close()
	store.Now = func() time.Time { return now }
	if rep.Streak, err = store.UncleanStreakBefore(ctx, 0); err != nil {
		return rep, err
	}
	msg := "systemd stopped restarting cmord: " + f.String() + ". Nothing runs now: no file is taken in, no flow goes to the SII, no digest is sent."
	if rep.Streak.Exits > 0 {
		msg += " The run ledger: " + StreakText(rep.Streak) + "."
	} else {
		msg += " The run ledger has no unclean exit: the daemon failed before it could record its start (see journalctl -u cmord)."
	}
	e := archive.Exception{Kind: "daemon_down", Severity: archive.SevUrgent, Owner: "sysadmin", Fingerprint: downFingerprint,
		Subject: "cmord", Message: msg, Action: digest.Info("daemon_down").ActionEN, LastSeen: now}
	err = store.Write(ctx, func(tx *sql.Tx) error {
		rep.ExceptionID, _, err = store.RaiseException(ctx, tx, e)
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("record daemon_down: %w", err)
	}
	opts := digest.OptionsFromConfig(cfg)
	opts.Log, opts.AlertNow = log, true
	if len(opts.AlertTo) == 0 && len(opts.To) == 0 {
		rep.NoRecipients = true
		return rep, nil
	}
	sender := mail.NewSender(smtpConfig(cfg.Mail), store.Outbox(), log)
	sender.DeadLetterDir = filepath.Join(cfg.StateDir, "dead-letter")
	if cfg.Mail.DeadLetterAfter > 0 {
		sender.DeadLetterAfter = cfg.Mail.DeadLetterAfter
	}
	sender.Now = func() time.Time { return now }
	groups, err := digest.QueueAlerts(ctx, store, sender, opts, now)
	if err != nil {
		return rep, fmt.Errorf("queue the alert: %w", err)
	}
	for _, g := range groups {
		rep.Queued = append(rep.Queued, g.DedupKey)
	}
	if cfg.Mail.Host == "" {
		rep.NoRelay = true
		return rep, nil
	}
	if _, err := sender.Flush(ctx); err != nil {
		rep.SendErr = err.Error()
	}
	for _, key := range rep.Queued {
		m, found, err := store.Outbox().ByKey(ctx, key)
		if err != nil {
			return rep, err
		}
		if found && m.State == archive.OutboxSent {
			rep.Sent = append(rep.Sent, key)
		} else if found && rep.SendErr == "" {
			rep.SendErr = m.LastError
		}
	}
	return rep, nil
}
