// Package digest turns exceptions into what a person reads: the catalogue of exception
// kinds, the deadlines of brief §2.3 per practice, the compliance digest (Italian by
// default, text + HTML + CSV) and urgent alerts grouped Alertmanager-style (group wait,
// repeat interval, inhibition).
package digest

import (
	"sort"

	"github.com/cmord/cmord/archive"
)

// Owner roles.
const (
	OwnerOperator   = "operator"   // billing / back office: fixes data and files
	OwnerCompliance = "compliance" // regulatory deadlines and SII outcomes
	OwnerSysadmin   = "sysadmin"   // transport, keys, the machine
)

// KindInfo describes one kind of exception: its default severity and owner, a title
// and the action expected, in Italian and English, and (English, for docs/digest.md)
// what raises it and what resolves it.
type KindInfo struct {
	Severity string
	Owner    string
	TitleIT  string
	TitleEN  string
	ActionIT string
	ActionEN string
	RaisedBy string
	Resolves string
}

// Title returns the kind's title in lang ("en" or Italian).
func (k KindInfo) Title(lang string) string {
	if lang == "en" {
		return k.TitleEN
	}
	return k.TitleIT
}

// Action returns the action expected in lang.
func (k KindInfo) Action(lang string) string {
	if lang == "en" {
		return k.ActionEN
	}
	return k.ActionIT
}

// Kinds is the catalogue of exception kinds (SPEC "Exceptions and the digest"). The
// severity is the default: deadlines escalate to urgent as they approach.
var Kinds = map[string]KindInfo{
	"row_refused": {archive.SevNormal, OwnerOperator,
		"Righe scartate", "Rows refused",
		"Correggere la riga nel gestionale di fatturazione e reinviare il file (file, riga, campo e regola sono indicati).",
		"Fix the row in billing and send the file again (file, line, field and rule are given).",
		"intake: a row of a billing input fails a check (format, identifier, eligibility rule)",
		"by hand (`cmord exceptions resolve`) once the corrected row has been received"},
	"case_not_eligible": {archive.SevLow, OwnerCompliance,
		"Pratiche non ammissibili", "Practices not eligible",
		"Non ammissibile, nessuna correzione necessaria: i dati sono corretti ma il caso non ha diritto al CMOR (regola indicata).",
		"Not eligible, no correction needed: the data are right but the case is not entitled to a CMOR (rule given).",
		"intake: a practice of a billing extract fails an eligibility condition (E3-E10, E1/E2 with a value): never put in mora, window closed, AT voltage, under 10 euro, ...",
		"by hand (`cmord exceptions resolve`); a later extract with new facts (e.g. a mora notice) files the practice"},
	"file_rejected": {archive.SevHigh, OwnerOperator,
		"File rifiutati", "Files rejected",
		"Il file non è stato elaborato: correggerlo (vedi il motivo) e depositarlo di nuovo.",
		"The file was not processed: fix it (see the reason) and drop it again.",
		"intake: a whole file is refused (unknown kind, bad header, wrong encoding, unreadable)",
		"by hand once a corrected version has been processed"},
	"sii_refusal": {archive.SevHigh, OwnerCompliance,
		"Esiti negativi del SII", "SII refusals",
		"Leggere causale e motivazione del SII; se rimediabile, correggere e ripresentare con un nuovo CP_UTENTE.",
		"Read the SII's cause code and text; if it can be remedied, fix and file again with a new CP_UTENTE.",
		"SII answer: a request inadmissible (VERIFICA_AMM=0) or rejected (ESITO=0), with cause code and motivation",
		"by hand after the decision (refile or accept the loss)"},
	"no_answer": {archive.SevHigh, OwnerCompliance,
		"Nessuna risposta del SII", "No SII answer",
		"Verificare sul portale SII lo stato della pratica e che il flusso sia stato pubblicato.",
		"Check the practice on the SII portal and that the flow was actually published.",
		"deadline job: a request sent N working days ago ([deadlines] no_answer_days) has no SII answer (uscente: SENT or ADMITTED; entrante: a suspension request delivered, SUSP_REQUESTED; either role: an annulment request delivered, or admitted, without its notice)",
		"automatically when an answer arrives (the practice leaves SENT, ADMITTED or SUSP_REQUESTED; the annulment request is answered)"},
	"window_closing": {archive.SevHigh, OwnerCompliance,
		"Finestra di richiesta in chiusura", "Request window closing",
		"Presentare la richiesta di indennizzo prima della chiusura della finestra, o decidere di rinunciare.",
		"File the indemnity request before the window closes, or decide to give it up.",
		"deadline job: an uscente practice not yet sent whose request window closes within warn_days",
		"automatically when the request is sent (practice SENT or later)"},
	"window_opening": {archive.SevLow, OwnerCompliance,
		"Finestra di richiesta in apertura", "Request window opening",
		"Nessuna azione: la pratica è in attesa e sarà inclusa nel primo flusso utile. Verificare i dati nel frattempo.",
		"None: the practice is waiting and goes into the first flow once the window opens. Check its data meanwhile.",
		"deadline job: a practice WAITING_WINDOW whose window opens within the shortest warn_days",
		"automatically when the practice leaves WAITING_WINDOW"},
	"suspension_term_closing": {archive.SevHigh, OwnerCompliance,
		"Termine di sospensione in scadenza", "Suspension term closing",
		"Decidere se chiedere la sospensione (cliente che contesta o ha pagato) prima del termine.",
		"Decide whether to request suspension (customer disputes or has paid) before the term ends.",
		"deadline job: an entrante practice whose suspension term ends within warn_days, no suspension requested",
		"automatically when a suspension is requested or the practice moves on"},
	"refund_overdue": {archive.SevHigh, OwnerCompliance,
		"Rimborso al cliente dopo annullamento", "Customer refund after annulment",
		"Rimborsare il cliente entro 10 giorni dalla notifica di annullamento (indennizzo già incassato) e registrare il rimborso.",
		"Refund the customer within 10 days of the annulment notice (indemnity already collected) and record the refund.",
		"deadline job: an annulled practice whose indemnity had been paid, refund not recorded, within warn_days of the 10-day term",
		"automatically when the refund is recorded (practice data refunded_on)"},
	"ack_overdue": {archive.SevHigh, OwnerCompliance,
		"Comunicazione del rimborso al SII", "Refund acknowledgement to the SII",
		"Comunicare al SII l'avvenuto rimborso entro 2 giorni lavorativi.",
		"Tell the SII about the refund within 2 working days.",
		"deadline job: an annulled, paid practice whose acknowledgement to the SII is not recorded, within warn_days of the 2-working-day term",
		"automatically when the acknowledgement is recorded (practice data ack_sent_on)"},
	"orphan_answer": {archive.SevHigh, OwnerCompliance,
		"Risposte SII senza pratica", "SII answers matching no practice",
		"Individuare la pratica (CP_UTENTE/CP_GESTORE indicati) o segnalare l'errore al SII.",
		"Find the practice (CP_UTENTE/CP_GESTORE given) or report the mistake to the SII.",
		"SII inbound: a record names a CP_UTENTE/CP_GESTORE we do not know",
		"by hand"},
	"state_conflict": {archive.SevHigh, OwnerCompliance,
		"Esiti incoerenti con lo stato della pratica", "Answers conflicting with the practice state",
		"Verificare la pratica sul portale SII: l'esito ricevuto non è ammesso dallo stato attuale e non è stato applicato.",
		"Check the practice on the SII portal: the answer is not allowed from its current state and was not applied.",
		"SII inbound: an answer the state machine forbids (e.g. an outcome for a practice never admitted)",
		"by hand"},
	"duplicate_file": {archive.SevLow, OwnerOperator,
		"File duplicati", "Duplicate files",
		"Nessuna se il reinvio era un errore; altrimenti verificare che il contenuto sia quello atteso.",
		"None if the re-delivery was a mistake; otherwise check the content is what was meant.",
		"archive: a file identical to one already received (any name) arrives; it is not processed again",
		"by hand"},
	"upload_failed": {archive.SevHigh, OwnerSysadmin,
		"Pubblicazioni fallite", "Uploads failed",
		"cmord riprova da solo; se persiste verificare l'endpoint SFTP del SII.",
		"cmord retries automatically; check the SII SFTP endpoint if it persists.",
		"delivery: publishing a built flow file to an SFTP endpoint fails",
		"automatically when a later attempt delivers the file; muted meanwhile while sii_unreachable is open for the same endpoint (inhibition)"},
	"sii_unreachable": {archive.SevUrgent, OwnerSysadmin,
		"SII non raggiungibile", "SII unreachable",
		"Verificare rete e stato del SII; i flussi restano in coda e partono al ritorno.",
		"Check the network path and the SII's status; flows wait in the queue and go out when it is back.",
		"transfer: no successful contact with an SII endpoint for longer than unreachable_alert_after",
		"automatically at the next successful contact"},
	"sftp_stalled": {archive.SevUrgent, OwnerSysadmin,
		"SFTP del SII bloccato", "SII SFTP server stalled",
		"Il server SFTP del SII è bloccato (disco, processo fermo): avvisare il SII. cmord abbandona ogni operazione ferma dopo op_timeout e riprova; i flussi restano in coda.",
		"The SII's SFTP server is hung (a stuck disk, a frozen process): tell the SII. cmord abandons each stalled operation after op_timeout and tries again; flows wait in the queue.",
		"transfer: connected, but no SFTP operation on an endpoint has made progress (each abandoned after op_timeout) for longer than stalled_alert_after",
		"automatically at the next SFTP operation that succeeds"},
	"hostkey_mismatch": {archive.SevUrgent, OwnerSysadmin,
		"Chiave host SFTP cambiata", "SFTP host key changed",
		"Confermare la nuova chiave con il SII per altra via (`cmord hostkey fetch`), poi aggiornare known_hosts. Mai accettarla alla cieca.",
		"Confirm the new key with the SII out of band (`cmord hostkey fetch`), then update known_hosts. Never accept it blindly.",
		"transfer: the SFTP server's host key does not match known_hosts (cmord refuses to connect)",
		"automatically once the key verifies again"},
	"watch_overflow": {archive.SevNormal, OwnerSysadmin,
		"Notifiche di cartella perse", "Folder notifications lost",
		"Nulla è perso (rescansione completa). Se si ripete, aumentare fs.inotify.max_queued_events.",
		"Nothing is lost (a full rescan was done). If it repeats, raise fs.inotify.max_queued_events.",
		"intake: inotify queue overflow or watch error on a drop folder",
		"by hand"},
	"missed_schedule": {archive.SevNormal, OwnerSysadmin,
		"Esecuzioni pianificate saltate", "Scheduled runs missed",
		"Nulla se il job riparte (si chiude da sola). Se manca il riepilogo o la costruzione dei flussi di un giorno: inviare il riepilogo a mano (`cmord digest --send`) e verificare le scadenze di quel giorno.",
		"Nothing if the job runs again (it closes by itself). If a day's digest or build of the flow files did not happen: send the digest by hand (`cmord digest --send`) and check that day's deadlines.",
		"sched: slots of a job missed while down, interrupted by a crash, or ended in a panic: one exception per job (low for jobs that run at least hourly, sysadmin); a job whose runs keep failing, panicking or hanging (still running at its next slot; 3 in a row for jobs that run at least hourly, 1 else; not the errors and hangs of poll_sii and deliver, which have their own): high, sysadmin, also on /healthz; and, owner compliance (high), a day that ended without a digest or without a build",
		"automatically at the job's next successful run; a day without digest or build by hand"},
	"verify_failed": {archive.SevUrgent, OwnerSysadmin,
		"Verifica dell'archivio fallita", "Archive verification failed",
		"Eseguire `cmord archive verify` e ripristinare da backup i contenuti indicati.",
		"Run `cmord archive verify` and restore the named blobs from backup.",
		"verify job: a blob is missing or its hash differs, or the event chain is broken",
		"automatically at the next clean verify"},
	"disk_low": {archive.SevUrgent, OwnerSysadmin,
		"Spazio su disco in esaurimento", "Disk space running out",
		"Liberare spazio sul filesystem della directory di stato o ingrandirlo: a disco pieno nessun file può essere archiviato.",
		"Free space on the state directory's filesystem or grow it: when it is full no file can be archived.",
		"disk check (every minute): free space on the state directory's filesystem below [alerts] state_min_free",
		"automatically when free space is back above the threshold"},
	"daemon_crashed": {archive.SevUrgent, OwnerSysadmin,
		"cmord terminato senza arresto regolare", "cmord ended without a clean stop",
		"Leggere `journalctl -u cmord` (panic, OOM killer a MemoryMax, kill -9) e rimuovere la causa; se si ripete, fermare il servizio e avvisare chi mantiene cmord. Finché il demone cade nessun file è preso in carico e nessun flusso parte.",
		"Read `journalctl -u cmord` (a panic, the OOM killer at MemoryMax, kill -9) and remove the cause; if it repeats, stop the service and tell cmord's maintainers. While the daemon keeps dying no file is taken in and no flow goes out.",
		"daemon start: the runs before it ended without a clean stop (run ledger): 2 or more in a row, none of them up an hour (a crash loop): urgent, mailed at once and on /healthz; a single one (the run before had been up an hour, then died): high, in the digest. The message gives the count, since when, and what the last run recorded before dying (a panic's message, the error that ended it)",
		"automatically once a run has stayed up an hour, or at a clean stop (systemctl stop/restart)"},
	"daemon_down": {archive.SevUrgent, OwnerSysadmin,
		"cmord fermo: systemd non lo riavvia più", "cmord down: systemd stopped restarting it",
		"Il demone è fermo. Leggere `journalctl -u cmord`, rimuovere la causa, poi `systemctl reset-failed cmord && systemctl start cmord`.",
		"The daemon is down. Read `journalctl -u cmord`, remove the cause, then `systemctl reset-failed cmord && systemctl start cmord`.",
		"`cmord alert --unit-failed`, run by systemd (cmord-failed.service, OnFailure= of cmord.service) when the unit failed: it hit the start limit (4 failed starts in 60 s), exited with a configuration error, or was killed and not restarted",
		"automatically at the daemon's next start"},
	"mail_failed": {archive.SevHigh, OwnerSysadmin,
		"Posta non consegnata", "Mail not delivered",
		"Verificare il relay SMTP; il messaggio resta in coda e viene ritentato (copia .eml nella dead-letter).",
		"Check the SMTP relay; the message stays queued and is retried (an .eml copy is in the dead-letter folder).",
		"mail: a digest or alert still undelivered after dead_letter_after attempts",
		"by hand once the relay works (the message goes out by itself)"},
	"mail_late": {archive.SevLow, OwnerSysadmin,
		"Posta inviata in ritardo", "Mail sent late",
		"Nessuna azione: la posta è partita. Se si ripete, verificare il relay SMTP.",
		"Nothing to do now: the mail went out. If it repeats, check the SMTP relay.",
		"mail: a digest or alert sent more than 15 minutes after it was queued (the relay did not answer, or cmord was not running); one a day, listed with the day's count, from when to when and the longest delay; the late mail itself opens with a line that says so",
		"at once (it is recorded resolved: the mail went out), so that the next digest lists it"},
	"file_retrying": {archive.SevHigh, OwnerSysadmin,
		"File in attesa per un problema della macchina", "Files waiting on a machine problem",
		"Risolvere la causa sulla macchina (spazio su disco nella cartella di stato, processo che blocca il database): il file riparte da solo.",
		"Fix the cause on the machine (disk space in the state directory, a process holding the database): the file goes on by itself.",
		"intake / SII inbound: a file still not processed after max_attempts because of a transient error (disk full, database locked), or processed but that cannot be moved out of .inprogress/",
		"automatically when the file is processed (or refused)"},
	"file_grew": {archive.SevHigh, OwnerOperator,
		"File cambiati dopo il prelievo", "Files changed after they were taken",
		"Reinviare il file completo; far scrivere il file con un nome temporaneo (.part) poi rinominarlo, usare done_marker o aumentare settle.",
		"Drop the complete file again; have the writer use a temporary name (.part) then rename, use done_marker, or raise settle.",
		"intake: after archiving, or later in done/ or rejected/ (watched up to unstable_after), the taken file is longer or newer than what was read (a slow writer, settle too short), or a new file of the same name appeared meanwhile",
		"by hand once the complete file has been processed"},
	"file_unstable": {archive.SevNormal, OwnerOperator,
		"File ancora in scrittura", "Files still being written",
		"Verificare che chi scrive il file lo completi, o usare un file marcatore.",
		"Check that whoever writes the file finishes it, or use a done-marker.",
		"intake: a file keeps changing past the settle time for longer than unstable_after, or (done_marker) has waited that long without its marker",
		"automatically when the file is taken at last (it stopped changing, its marker came) or is no longer in the folder"},
	"build_refused": {archive.SevHigh, OwnerCompliance,
		"Richieste non inviate", "Requests not sent",
		"Correggere i dati nel gestionale e reinviare il caso: una nuova richiesta avrà un NUOVO CP_UTENTE.",
		"Correct the data in billing and drop the case again; a new request gets a NEW CP_UTENTE.",
		"build: a request ready to go fails the flow's checks when its file is built (window closed meanwhile, state changed, layout refuses a value)",
		"by hand once the case has been corrected and filed again"},
	"build_line_changed": {archive.SevHigh, OwnerCompliance,
		"Richieste trattenute: riga cambiata dalla decisione", "Requests held: line changed since the decision",
		"Eseguire `cmord archive verify` (un caso modificato fuori da cmord vi risulta); altrimenti un aggiornamento di cmord calcola la riga in modo diverso: reinviare il caso nel prossimo estratto perché sia deciso di nuovo; la richiesta resta pronta fino ad allora.",
		"Run `cmord archive verify` (a case changed outside cmord shows there); otherwise an update of cmord computes the line differently: drop the case again in an extract so it is decided anew; the request stays ready until then.",
		"build: the SI1.0050 line computed from a ready request's case differs from the one decided when the request was made ready (its SHA-256 stored then): the stored case changed outside cmord, or an update of cmord computes the line differently (the configuration does not enter the line hashed)",
		"automatically when the request is sent or cancelled"},
	"build_case_unreadable": {archive.SevHigh, OwnerCompliance,
		"Richieste trattenute: caso archiviato illeggibile", "Requests held: stored case unreadable",
		"Eseguire `cmord archive verify` (indica cosa è stato modificato fuori da cmord) e ripristinare l'archivio da un backup; la richiesta resta pronta e parte con la costruzione successiva appena il caso torna leggibile.",
		"Run `cmord archive verify` (it names what was changed outside cmord) and restore the archive from a backup; the request stays ready and goes out with the next build once its case reads again.",
		"build: a ready request's practice has a stored case that cannot be decoded (edited outside cmord, or the dictionary it was deflated against edited or deleted); the request stays ready, unsent, and the build goes on with the others",
		"automatically when the request is sent or refused"},
	"case_refused": {archive.SevNormal, OwnerCompliance,
		"Casi non più ammissibili all'apertura della finestra", "Cases no longer eligible when the window opened",
		"Correggere il caso nel gestionale e reinviarlo.",
		"Correct the case in billing and drop it again.",
		"build: when a waiting practice's request window opens, its case no longer passes the eligibility checks",
		"by hand once the case has been corrected"},
	"export_unpublished": {archive.SevHigh, OwnerSysadmin,
		"Export per la fatturazione non consegnati", "Billing exports not delivered",
		"Configurare outbound.billing_dir; nel frattempo il file si ottiene con `cmord archive cat`.",
		"Set outbound.billing_dir; meanwhile `cmord archive cat` gives the file.",
		"entrante: an export for billing is archived but outbound.billing_dir is not configured",
		"by hand once the file has been handed to billing"},
	"previous_cmor_unknown": {archive.SevNormal, OwnerCompliance,
		"CMOR precedente sconosciuto", "Previous CMOR unknown",
		"Verificare il CMOR precedente della richiesta rispetto alle pratiche entranti (`cmord practices --role entrante`).",
		"Check the previous CMOR of the request against the entrante practices (`cmord practices --role entrante`).",
		"uscente: a request adds a previous CMOR that matches no uncollected entrante practice of ours",
		"by hand"},
	"previous_cmor_mismatch": {archive.SevNormal, OwnerCompliance,
		"CMOR precedente di un altro cliente", "Previous CMOR of another customer",
		"Verificare il CMOR precedente della richiesta rispetto alle pratiche entranti (`cmord practices --role entrante`).",
		"Check the previous CMOR of the request against the entrante practices (`cmord practices --role entrante`).",
		"uscente: the previous CMOR's entrante practice (CP_GESTORE_CMOR_PRECEDENTE) concerns another customer",
		"by hand"},
	"previous_cmor_collected": {archive.SevNormal, OwnerCompliance,
		"CMOR precedente già incassato", "Previous CMOR already collected",
		"Verificare il CMOR precedente della richiesta: risulta incassato per intero e non va richiesto di nuovo.",
		"Check the previous CMOR of the request: it was collected in full and must not be claimed again.",
		"uscente: the previous CMOR's entrante practice was collected in full",
		"by hand"},
	"previous_cmor_ambiguous": {archive.SevNormal, OwnerCompliance,
		"CMOR precedente ambiguo", "Previous CMOR ambiguous",
		"Indicare nel gestionale CP_GESTORE_CMOR_PRECEDENTE della pratica entrante giusta.",
		"Give CP_GESTORE_CMOR_PRECEDENTE of the right entrante practice in billing.",
		"uscente: several entrante practices of the customer match the previous CMOR",
		"by hand"},
	"folder_unreadable": {archive.SevHigh, OwnerSysadmin,
		"Cartelle di deposito non leggibili", "Drop folders unreadable",
		"Verificare la cartella: rimontare la condivisione o correggere i permessi (cmord deve poterla elencare); se è stata cancellata e ricreata di proposito, `systemctl reload cmord` la prepara di nuovo. I file depositati nel frattempo attendono e vengono prelevati appena la cartella torna.",
		"Check the folder: mount the share again or fix its permissions (cmord must be able to list it); if it was deleted and made again on purpose, `systemctl reload cmord` sets it up again. Files dropped meanwhile wait and are taken in once it is back.",
		"intake: a drop folder cannot be listed (deleted, permissions, I/O error), or lists without the .inprogress subdirectory cmord made (deleted and made again, or its share unmounted), or its intake has been busy 15 minutes with no file in hand (a listing that never returns on a dead network mount); also /healthz",
		"automatically, at the first scan that lists the folder as cmord set it up (also after a restart or reload), or once a busy intake comes back"},
	"claim_failed": {archive.SevHigh, OwnerSysadmin,
		"File non prelevabili", "Files cannot be claimed",
		"Verificare i permessi della cartella: cmord deve poter rinominare i file.",
		"Check the folder's permissions: cmord must be able to rename files in it.",
		"intake: renaming a ready file into .inprogress/ fails",
		"by hand"},
}

// Info returns the catalogue entry of kind, or a generic one for a kind not listed.
func Info(kind string) KindInfo {
	if k, ok := Kinds[kind]; ok {
		return k
	}
	return KindInfo{Severity: archive.SevNormal, Owner: OwnerOperator, TitleIT: kind, TitleEN: kind,
		ActionIT: "Verificare il messaggio.", ActionEN: "Read the message."}
}

// KindNames returns the catalogue's kinds sorted.
func KindNames() []string {
	out := make([]string, 0, len(Kinds))
	for k := range Kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SevRank orders severities, most severe first.
func SevRank(sev string) int {
	switch sev {
	case archive.SevUrgent:
		return 0
	case archive.SevHigh:
		return 1
	case archive.SevNormal:
		return 2
	}
	return 3
}

// Severities lists severities most severe first.
var Severities = []string{archive.SevUrgent, archive.SevHigh, archive.SevNormal, archive.SevLow}

// InhibitedBy says which open exceptions mute e: an open sii_unreachable or
// sftp_stalled for endpoint X mutes every upload_failed whose subject is X (the
// failures behind it are not news).
func InhibitedBy(e archive.Exception, open []archive.Exception) (archive.Exception, bool) {
	if e.Kind != "upload_failed" || e.Subject == "" {
		return archive.Exception{}, false
	}
	for _, o := range open {
		if (o.Kind == "sii_unreachable" || o.Kind == "sftp_stalled") && o.Subject == e.Subject && o.Open() {
			return o, true
		}
	}
	return archive.Exception{}, false
}
