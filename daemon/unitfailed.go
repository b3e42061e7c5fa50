package daemon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
	// ArchiveErr is why the archive could not record daemon_down nor queue its alert
	// (index.db damaged, the disk full or read-only): then the alert was mailed
	// directly, without the outbox (DirectSent, or SendErr), and nothing retries it.
	ArchiveErr string
	DirectSent bool
	// Held is set when another process holds the state directory's lock although
	// systemd says the unit failed: a stuck or orphaned cmord (the watchdog killed it
	// but it has not ended: uninterruptible sleep, stopped) or one started by hand.
	// Nothing is recorded (the archive is that process's); the alert naming it is
	// mailed directly, once (DirectSent, or SendErr).
	Held *StateLockedError
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
	var held *StateLockedError
	if errors.As(err, &held) {
		return alertHeld(ctx, cfg, log, f, now, rep, held)
	}
	if err != nil {
		return rep, err
	}
	defer lock.Unlock()
	store, err := archive.Open(cfg.StateDir)
	if err != nil {
		return alertDirect(ctx, cfg, log, f, now, rep, err)
	}
	defer store.Close()
	store.Now = func() time.Time { return now }
	if rep.Streak, err = store.UncleanStreakBefore(ctx, 0); err != nil {
		return alertDirect(ctx, cfg, log, f, now, rep, err)
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
		return alertDirect(ctx, cfg, log, f, now, rep, fmt.Errorf("record daemon_down: %w", err))
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
	sender.Lang = opts.Lang
	sender.OnEvent = func(ev mail.Event) {
		if ev.Kind == mail.EventLate {
			if err := RecordMailLate(ctx, store, ev.SentAt); err != nil {
				log.Error("mail sent late: cannot record it", "err", err)
			}
		}
	}
	groups, err := digest.QueueAlerts(ctx, store, sender, opts, now)
	if err != nil {
		return alertDirect(ctx, cfg, log, f, now, rep, fmt.Errorf("queue the alert: %w", err))
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

// alertDirect mails the urgent alert without the archive, which could not record it
// (archiveErr): the daemon is down, and most likely for that very reason (index.db
// damaged, the state directory's disk full or read-only), so the outbox, the only
// other way out, is unusable too. One attempt through [mail], from memory: nothing
// retries it, and the message says so.
func alertDirect(ctx context.Context, cfg *config.Config, log *slog.Logger, f UnitFailure, now time.Time, rep UnitFailedReport, archiveErr error) (UnitFailedReport, error) {
	rep.ArchiveErr = archiveErr.Error()
	log.Error("the archive cannot record that the daemon is down; mailing the alert directly", "err", archiveErr)
	host, _ := os.Hostname()
	subject := "[CMOR URGENTE] cmord fermo e il suo archivio è inutilizzabile"
	text := fmt.Sprintf(`systemd ha smesso di riavviare cmord: %s.
Nessun file viene preso in carico, nessun flusso parte verso il SII, nessun riepilogo viene inviato.

L'archivio (%s su %s) non ha potuto registrarlo né mettere in coda questo avviso:
%s

Cosa fare: leggere journalctl -u cmord; controllare il disco della directory di stato
(pieno, in sola lettura) e il file index.db; poi
systemctl reset-failed cmord && systemctl start cmord.

Questo avviso è stato inviato una sola volta, senza coda: nessuno lo ripeterà.
`, f.String(), cfg.StateDir, host, archiveErr)
	if digest.OptionsFromConfig(cfg).Lang == "en" {
		subject = "[CMOR URGENT] cmord down and its archive unusable"
		text = fmt.Sprintf(`systemd stopped restarting cmord: %s.
No file is taken in, no flow goes to the SII, no digest is sent.

The archive (%s on %s) could not record it nor queue this alert:
%s

What to do: read journalctl -u cmord; check the state directory's disk (full,
read-only) and its index.db; then systemctl reset-failed cmord && systemctl start cmord.

This alert was sent once, without a queue: nothing will repeat it.
`, f.String(), cfg.StateDir, host, archiveErr)
	}
	if err := mailDirect(ctx, cfg, log, now, &rep, subject, text); err != nil {
		return rep, fmt.Errorf("%v; and the alert could not be built: %w", archiveErr, err)
	}
	return rep, nil
}

// alertHeld mails the urgent alert when systemd says cmord.service failed but another
// process still holds the state directory's lock (held): before, the command said "a
// daemon holds it, so it is not down" and mailed nobody, yet that is the very case of
// a daemon the watchdog killed that does not end (uninterruptible sleep on a hung disk
// or NFS mount survives SIGKILL: each restart then fails on the lock, systemd hits its
// start limit and gives up) or of a cmord started by hand outside systemd. The archive
// is that process's (it may be inside a write), so nothing is recorded there: one
// attempt through [mail], from memory, naming the PID and what /proc says of it.
func alertHeld(ctx context.Context, cfg *config.Config, log *slog.Logger, f UnitFailure, now time.Time, rep UnitFailedReport, held *StateLockedError) (UnitFailedReport, error) {
	rep.Held = held
	log.Error("systemd says cmord failed but another process holds the state directory; mailing the alert directly",
		"pid", held.PID, "state", held.State, "dir", held.Dir)
	host, _ := os.Hostname()
	who, whoEN := "un processo", "a process"
	if held.PID > 0 {
		who, whoEN = fmt.Sprintf("il processo PID %d", held.PID), fmt.Sprintf("process PID %d", held.PID)
	}
	state, stateEN := "lo stato del processo non è leggibile in /proc", "/proc does not show the process"
	if held.State != "" {
		state = "stato del processo in /proc: " + held.State
		stateEN = "its state in /proc: " + held.State
	}
	pid := "PID"
	if held.PID > 0 {
		pid = fmt.Sprint(held.PID)
	}
	subject := fmt.Sprintf("[CMOR URGENTE] cmord fermo: systemd lo dà fallito ma %s tiene ancora il suo archivio", who)
	text := fmt.Sprintf(`systemd dà fallita l'unità di cmord: %s.
Ma %s tiene ancora il lock della directory di stato %s su %s
(%s).

Un cmord bloccato o rimasto orfano: il watchdog di systemd lo ha ucciso ma il processo non
termina (in attesa nel kernel, stato D: un disco o un mount NFS che non risponde; anche
kill -9 aspetta), oppure un cmord avviato a mano fuori da systemd. Finché quel processo
esiste ogni avvio di cmord fallisce sul lock: nessun file viene preso in carico, nessun
flusso parte verso il SII, nessun riepilogo viene inviato.

Cosa fare: systemctl status cmord; ps -o pid,stat,lstart,cmd -p %s; cat /proc/%s/stack
(stato D: controllare il disco o il server NFS della directory di stato e delle cartelle;
se il processo non termina serve un riavvio della macchina); quando il processo non c'è
più: systemctl reset-failed cmord && systemctl start cmord.

Questo avviso è stato inviato una sola volta, senza coda: nessuno lo ripeterà.
`, f.String(), who, held.Dir, host, state, pid, pid)
	if digest.OptionsFromConfig(cfg).Lang == "en" {
		subject = fmt.Sprintf("[CMOR URGENT] cmord down: systemd says it failed but %s still holds its archive", whoEN)
		text = fmt.Sprintf(`systemd says cmord's unit failed: %s.
But %s still holds the lock of the state directory %s on %s
(%s).

A stuck or orphaned cmord: systemd's watchdog killed it but the process does not end
(waiting in the kernel, state D: a disk or NFS mount that does not answer; kill -9
waits too), or a cmord started by hand outside systemd. While that process exists every
start of cmord fails on the lock: no file is taken in, no flow goes to the SII, no
digest is sent.

What to do: systemctl status cmord; ps -o pid,stat,lstart,cmd -p %s; cat /proc/%s/stack
(state D: check the disk or NFS server of the state directory and the folders; a
process that never ends needs a reboot); once it is gone:
systemctl reset-failed cmord && systemctl start cmord.

This alert was sent once, without a queue: nothing will repeat it.
`, f.String(), whoEN, held.Dir, host, stateEN, pid, pid)
	}
	if err := mailDirect(ctx, cfg, log, now, &rep, subject, text); err != nil {
		return rep, fmt.Errorf("%v; and the alert could not be built: %w", held, err)
	}
	return rep, nil
}

// mailDirect sends one urgent alert to [alerts] to (else [digest] to) through [mail],
// once, from memory: no archive, no outbox.
func mailDirect(ctx context.Context, cfg *config.Config, log *slog.Logger, now time.Time, rep *UnitFailedReport, subject, text string) error {
	opts := digest.OptionsFromConfig(cfg)
	to := opts.AlertTo
	if len(to) == 0 {
		to = opts.To
	}
	if len(to) == 0 {
		rep.NoRecipients = true
		return nil
	}
	if cfg.Mail.Host == "" {
		rep.NoRelay = true
		return nil
	}
	box := &memOutbox{}
	sender := mail.NewSender(smtpConfig(cfg.Mail), box, log)
	sender.Now = func() time.Time { return now }
	key := "alert:sysadmin:direct:" + now.UTC().Format(time.RFC3339)
	msg := mail.Message{To: to, Subject: subject, Text: text, Date: now,
		Headers: map[string]string{"X-Cmord-Alert": key, "X-Priority": "1"}}
	if err := sender.Queue(ctx, key, "alert", msg); err != nil {
		return err
	}
	if _, err := sender.Flush(ctx); err != nil {
		rep.SendErr = err.Error()
		return nil
	}
	rep.DirectSent = true
	return nil
}

// memOutbox is a mail outbox in memory, for the one alert mailed without the archive.
type memOutbox struct{ msgs []archive.OutboxMessage }

func (o *memOutbox) Enqueue(_ context.Context, m archive.OutboxMessage) (int64, bool, error) {
	m.ID, m.State = int64(len(o.msgs)+1), archive.OutboxQueued
	o.msgs = append(o.msgs, m)
	return m.ID, false, nil
}

func (o *memOutbox) Due(context.Context, time.Time) ([]archive.OutboxMessage, error) {
	var due []archive.OutboxMessage
	for _, m := range o.msgs {
		if m.State == archive.OutboxQueued {
			due = append(due, m)
		}
	}
	return due, nil
}

func (o *memOutbox) MarkSending(context.Context, int64) error { return nil }

func (o *memOutbox) MarkSent(_ context.Context, id int64, at time.Time) error {
	o.msgs[id-1].State, o.msgs[id-1].SentAt = archive.OutboxSent, at
	return nil
}

func (o *memOutbox) MarkRetry(_ context.Context, id int64, errText string, _ time.Time) (int, error) {
	o.msgs[id-1].Attempts++
	o.msgs[id-1].LastError = errText
	return o.msgs[id-1].Attempts, nil
}

func (o *memOutbox) SetDeadLetter(context.Context, int64, string) error { return nil }

func (o *memOutbox) Pending(context.Context) (int, error) {
	due, _ := o.Due(context.Background(), time.Time{})
	return len(due), nil
}
