package digest

import (
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/cmord/cmord/flows"
)

// The code raising exceptions and findings writes English: messages for logs and for
// whoever reads the archive. A compliance officer reading the Italian digest gets the
// tables below instead, keyed by what the code records (exception kind, finding rule,
// SII cause code, practice state); the raw English message stays only as a secondary
// "dettaglio tecnico" line and in the CSV.

// Text is one phrase in Italian and English.
type Text struct{ IT, EN string }

// In returns the phrase in lang ("en", else Italian).
func (t Text) In(lang string) string {
	if lang == "en" {
		return t.EN
	}
	return t.IT
}

// KindExplanations say in one sentence what happened, per exception kind: the main
// line of an item in the Italian digest when no finding rule says more.
var KindExplanations = map[string]Text{
	"row_refused":             {"Una riga del file non ha superato i controlli e non è stata acquisita.", "A row of the file failed a check and was not taken in."},
	"file_rejected":           {"Il file è stato rifiutato per intero e non è stato elaborato.", "The whole file was refused and not processed."},
	"case_not_eligible":       {"Il caso non è ammissibile al CMOR: non ammissibile, nessuna correzione necessaria.", "The case is not eligible for a CMOR: not eligible, no correction needed."},
	"sii_refusal":             {"Il SII ha respinto la richiesta (inammissibile o con esito negativo).", "The SII refused the request (inadmissible or negative outcome)."},
	"no_answer":               {"Il SII non ha ancora risposto alla richiesta inviata.", "The SII has not answered the request yet."},
	"window_closing":          {"La finestra di richiesta sta per chiudersi e la richiesta non è ancora stata inviata.", "The request window is about to close and the request has not been sent."},
	"window_opening":          {"La finestra di richiesta sta per aprirsi: la pratica partirà con il primo flusso utile.", "The request window is about to open: the practice goes out with the next flow."},
	"suspension_term_closing": {"Il termine per chiedere la sospensione sta per scadere.", "The term to request suspension is about to end."},
	"refund_overdue":          {"Il cliente va rimborsato: l'indennizzo era già stato incassato prima dell'annullamento.", "The customer must be refunded: the indemnity had been collected before the annulment."},
	"ack_overdue":             {"Il rimborso al cliente va comunicato al SII.", "The refund to the customer must be acknowledged to the SII."},
	"orphan_answer":           {"Il SII ha inviato una risposta che non corrisponde a nessuna nostra pratica.", "The SII sent an answer that matches none of our practices."},
	"state_conflict":          {"L'esito ricevuto dal SII non è ammesso dallo stato attuale della pratica e non è stato applicato.", "The SII's answer is not allowed from the practice's current state and was not applied."},
	"duplicate_file":          {"È arrivato un file identico a uno già ricevuto: non è stato elaborato di nuovo.", "A file identical to one already received arrived: it was not processed again."},
	"upload_failed":           {"La pubblicazione di un flusso sull'SFTP del SII non è riuscita; cmord riprova da solo.", "Publishing a flow to the SII's SFTP failed; cmord retries by itself."},
	"sii_unreachable":         {"Nessun contatto riuscito con l'SFTP del SII oltre la soglia configurata.", "No successful contact with the SII's SFTP for longer than the configured threshold."},
	"sftp_stalled":            {"La connessione SSH con il SII funziona ma il suo server SFTP non risponde alle operazioni oltre la soglia configurata.", "The SSH connection to the SII works but its SFTP server answers no operation for longer than the configured threshold."},
	"hostkey_mismatch":        {"La chiave host del server SFTP non corrisponde a quella attesa: cmord non si collega.", "The SFTP server's host key does not match the expected one: cmord does not connect."},
	"watch_overflow":          {"Alcune notifiche di cartella sono andate perse; cmord ha riletto l'intera cartella.", "Some folder notifications were lost; cmord rescanned the whole folder."},
	"missed_schedule":         {"Alcune esecuzioni pianificate sono state saltate (demone fermo o job fallito).", "Some scheduled runs were missed (daemon down or job failed)."},
	"verify_failed":           {"La verifica dell'archivio ha trovato contenuti mancanti o alterati.", "The archive check found missing or altered content."},
	"disk_low":                {"Il filesystem della directory di stato ha meno spazio libero della soglia configurata.", "The state directory's filesystem has less free space than the configured threshold."},
	"daemon_crashed":          {"Il demone cmord si è fermato senza un arresto regolare (crash, memoria esaurita, processo ucciso) ed è stato riavviato.", "The cmord daemon ended without a clean stop (a crash, out of memory, killed) and was restarted."},
	"daemon_down":             {"Il demone cmord è fermo: systemd ha smesso di riavviarlo.", "The cmord daemon is down: systemd stopped restarting it."},
	"mail_failed":             {"Un riepilogo o un avviso non è stato consegnato dopo più tentativi.", "A digest or alert was not delivered after several attempts."},
	"mail_late":               {"Il server di posta non ha accettato la posta per un periodo: alcuni riepiloghi o avvisi sono partiti in ritardo.", "The mail server did not accept mail for a while: some digests or alerts went out late."},
	"file_retrying":           {"Un file non può essere elaborato per un problema della macchina (disco pieno, database bloccato) e resta in attesa.", "A file cannot be processed because of a machine problem (disk full, database locked) and waits."},
	"file_grew":               {"Il file è cambiato dopo essere stato prelevato: la parte scritta dopo non è stata letta.", "The file changed after it was taken: what was written afterwards was not read."},
	"file_unstable":           {"Un file continua a cambiare oltre il tempo di assestamento e non viene prelevato.", "A file keeps changing past the settle time and is not picked up."},
	"folder_unreadable":       {"Una cartella di deposito non si può leggere (cancellata, permessi, condivisione smontata): nessun file viene prelevato.", "A drop folder cannot be read (deleted, permissions, share unmounted): no file is taken in."},
	"claim_failed":            {"cmord non riesce a prelevare (rinominare) un file pronto nella cartella.", "cmord cannot claim (rename) a ready file in the folder."},
	"build_case_unreadable":   {"Una richiesta pronta non è stata inviata: il caso archiviato della sua pratica non si legge (modificato fuori da cmord, o il suo dizionario).", "A ready request was not sent: its practice's stored case cannot be read (changed outside cmord, or its dictionary)."},
	"build_refused":           {"Una richiesta pronta non è stata inviata: al momento di costruire il flusso non supera i controlli.", "A ready request was not sent: it failed the checks when the flow was built."},
	"build_line_changed":      {"Una richiesta pronta non è stata inviata: la riga calcolata alla costruzione del flusso è diversa da quella decisa (caso modificato fuori da cmord, o calcolo cambiato da un aggiornamento).", "A ready request was not sent: the line computed when the flow was built differs from the one decided (case changed outside cmord, or computed differently since an update)."},
	"case_refused":            {"All'apertura della finestra il caso non supera più i controlli di ammissibilità.", "When the window opened, the case no longer passed the eligibility checks."},
	"export_unpublished":      {"Un export per la fatturazione è in archivio ma non è stato consegnato (outbound.billing_dir non configurato).", "An export for billing is archived but was not delivered (outbound.billing_dir not set)."},
	"previous_cmor_unknown":   {"Il CMOR precedente indicato non corrisponde a nessuna nostra pratica entrante non incassata.", "The previous CMOR given matches no uncollected entrante practice of ours."},
	"previous_cmor_mismatch":  {"Il CMOR precedente indicato riguarda un altro cliente.", "The previous CMOR given concerns another customer."},
	"previous_cmor_collected": {"Il CMOR precedente indicato risulta già incassato per intero.", "The previous CMOR given was already collected in full."},
	"previous_cmor_ambiguous": {"Più pratiche entranti del cliente corrispondono al CMOR precedente: va indicato quale.", "Several entrante practices of the customer match the previous CMOR: say which one."},
}

// RuleTexts explain the rule codes of findings (flows and the daemon's handlers) that
// reach the digest through row_refused, case_refused and build_refused.
var RuleTexts = map[string]Text{
	// Field types and file shape (flows/fieldtype.go, codecs).
	flows.RuleRequired:   {"Campo obbligatorio mancante.", "Required field missing."},
	flows.RuleLength:     {"Lunghezza del campo non ammessa dal tracciato.", "Field length not allowed by the layout."},
	flows.RuleConst:      {"Valore diverso da quello fisso previsto dal tracciato.", "Value differs from the fixed one of the layout."},
	flows.RuleEnum:       {"Valore non compreso tra quelli ammessi.", "Value not among the allowed ones."},
	flows.RuleCause:      {"Causale sconosciuta per questo flusso.", "Cause code unknown for this flow."},
	flows.RuleString:     {"Testo non valido (caratteri non ammessi).", "Invalid text (characters not allowed)."},
	flows.RuleAlnum:      {"Sono ammesse solo lettere e cifre.", "Only letters and digits are allowed."},
	flows.RuleInt:        {"Numero intero non valido.", "Not a valid whole number."},
	flows.RuleAmount:     {"Importo non valido: al massimo due decimali e nessun separatore delle migliaia (1020,50, non 1.020,50); la virgola decimale vale solo se la cartella la prevede.", "Not a valid amount: at most two decimals and no thousands separator (1020.50, not 1,020.50); a decimal comma only where the folder allows it."},
	flows.RuleDate:       {"Data non valida o inesistente (formato GG/MM/AAAA).", "Invalid or non-existent date (GG/MM/AAAA)."},
	flows.RuleTimestamp:  {"Data e ora non valide.", "Invalid date and time."},
	flows.RuleFlag:       {"Indicatore sì/no non valido.", "Invalid yes/no flag."},
	flows.RuleMonths:     {"Numero di mesi non valido.", "Invalid number of months."},
	flows.RuleIDCPUtente: {"Codice pratica (CP_UTENTE) non valido.", "Invalid practice code (CP_UTENTE)."},
	flows.RuleCSVHeader:  {"Intestazione non conforme al tracciato (colonna obbligatoria mancante, ripetuta o non prevista): se l'estrazione ha intestazioni proprie, alla cartella serve un file di mappatura (docs/inputs.md).", "Header does not fit the layout (a mandatory column missing, repeated or unknown): if the extract has headers of its own, the folder needs a mapping file (docs/inputs.md)."},
	flows.RuleCSVColumns: {"Numero di colonne diverso da quello dell'intestazione.", "Column count differs from the header's."},
	flows.RuleCSVColumn:  {"Colonna non prevista dal tracciato: ignorata.", "Column not in the layout: ignored."},
	flows.RuleCSVQuote:   {"Virgolette non chiuse o mal posizionate.", "Unbalanced or misplaced quotes."},
	flows.RuleCSVLine:    {"Riga illeggibile.", "Unreadable line."},
	flows.RuleXMLSyntax:  {"File XML non ben formato.", "Malformed XML file."},
	flows.RuleXMLRoot:    {"Elemento radice XML errato.", "Wrong XML root element."},
	flows.RuleXMLElement: {"Elemento XML non previsto o ripetuto.", "Unexpected or repeated XML element."},
	// Rows and files of billing inputs (flows/codec_csv.go, sniff.go, mapping_read.go).
	flows.RuleFileFormat:     {"Il file non si legge così com'è (compresso, Excel .xls, UTF-16, binario, separatore diverso da ';', cartella Excel con righe su più fogli o formule mai calcolate…): il motivo dice quale; salvarlo come CSV UTF-8 con ';' o come .xlsx di un solo foglio.", "The file cannot be read as it is (compressed, Excel .xls, UTF-16, binary, a separator other than ';', a workbook with rows on several sheets or formulas never computed…): the reason says which; save it as CSV UTF-8 with ';' or as a one-sheet .xlsx."},
	"DUPLICATE":              {"Contenuto identico a un file già ricevuto: non viene elaborato di nuovo.", "Same content as a file already received: not processed again."},
	flows.RuleCharset:        {"Caratteri illeggibili nel valore: salvare l'estrazione in UTF-8.", "Unreadable characters in the value: save the extract as UTF-8."},
	flows.RuleTextControl:    {"Caratteri di controllo nel valore (NUL, a capo…): correggere il dato in fatturazione.", "Control characters in the value (NUL, line break…): correct it in billing."},
	flows.RuleAmountNegative: {"Importo negativo: correggere la riga in fatturazione.", "Negative amount: correct the row in billing."},
	flows.RuleAmountAbove:    {"Importo superiore a quello che lo limita (es. insoluto oltre il totale fattura).", "Amount above the one that bounds it (e.g. unpaid above the invoice total)."},
	flows.RuleDateOrder:      {"Date in ordine inverso (es. periodo fatturato che finisce prima di iniziare).", "Dates in reverse order (e.g. billed period ending before it starts)."},
	flows.RuleRoute:          {"La colonna instradata dal file di mappatura non va a nessun campo (o a più di uno).", "The column routed by the mapping file goes to no field (or to several)."},
	flows.RuleSpend:          {"Spesa dei 12 mesi illeggibile (totale, numero di mesi o colonne mensili).", "12-month spend unreadable (total, number of months or monthly columns)."},
	// Eligibility (brief §5.4) and identifiers (flows/eligibility.go).
	"E1":                    {"Punto elettrico non in bassa o media tensione (condizione E1).", "Electricity point not low or medium voltage (condition E1)."},
	"E2":                    {"Cliente gas fuori dai limiti di uso o di consumo (condizione E2).", "Gas customer outside the use or consumption limits (condition E2)."},
	"E3":                    {"Richiesta fuori dalla finestra: dopo 6 mesi ed entro il 12° mese dallo switch (condizione E3).", "Request outside the window: after 6 months and by the 12th month after the switch (condition E3)."},
	flows.RuleWindowWait:    {"Finestra di richiesta non ancora aperta: la pratica resta in attesa.", "Request window not open yet: the practice waits."},
	"E4":                    {"Il cliente ha ancora punti forniti da noi: serve la perdita di tutti i punti (condizione E4).", "The customer still has points supplied by us: all must be lost (condition E4)."},
	"E5":                    {"Messa in mora mancante o non valida: scritta, con l'informativa sul CMOR, termine scaduto (condizione E5).", "Mora notice missing or not valid: in writing, informing about the CMOR, term passed (condition E5)."},
	"E6":                    {"Credito non conforme: fatture fuori dalla finestra di 5 mesi o non ammesse (condizione E6).", "Credit not compliant: invoices outside the 5-month window or not admissible (condition E6)."},
	"E7":                    {"Fattura di chiusura non emessa o indennizzi TIF art. 18 non pagati (condizione E7).", "Closing invoice not issued or TIF art. 18 indemnities not paid (condition E7)."},
	"E8":                    {"Reclami o richieste di rettifica non evasi, o indennizzi TIQV non pagati (condizione E8).", "Complaints or rectification requests unanswered, or TIQV indemnities unpaid (condition E8)."},
	"E9":                    {"Indennizzo inferiore a 10 euro o non coerente con il credito (condizione E9).", "Indemnity below 10 euro or inconsistent with the credit (condition E9)."},
	"E10":                   {"Punto non più attivo o oggetto di voltura (condizione E10).", "Point no longer active or changed holder (condition E10)."},
	"E11":                   {"Mancano dati obbligatori della richiesta: cliente, punto, fatture o mora (condizione E11).", "Mandatory request data missing: customer, point, invoices or mora (condition E11)."},
	flows.RuleIDSector:      {"Settore non valido (atteso E o G).", "Invalid sector (E or G expected)."},
	flows.RuleIDPOD:         {"Codice POD non valido: 14 caratteri, IT, 3 cifre del distributore, E, 8 cifre (es. IT001E12345678).", "Invalid POD code: 14 characters, IT, the distributor's 3 digits, E, 8 digits (e.g. IT001E12345678)."},
	flows.RuleIDPDR:         {"Codice PDR non valido: 14 cifre, zeri iniziali compresi (in Excel formattare la colonna come testo).", "Invalid PDR code: 14 digits, leading zeros included (format the column as text in Excel)."},
	flows.RuleIDCF:          {"Codice fiscale non valido: 16 caratteri con il carattere di controllo giusto, o le 11 cifre della partita IVA per una società.", "Invalid codice fiscale: 16 characters with the right check character, or a company's 11-digit partita IVA."},
	flows.RuleIDPIVA:        {"Partita IVA non valida: 11 cifre con la cifra di controllo giusta.", "Invalid partita IVA: 11 digits with the right check digit."},
	flows.RuleIDCPGest:      {"Codice pratica del Gestore (CP_GESTORE) non valido.", "Invalid SII practice code (CP_GESTORE)."},
	flows.RuleEntRole:       {"La società non è configurata come venditore entrante.", "The company is not configured as entrante."},
	flows.RuleEntPIVA:       {"Comunicazione indirizzata a un'altra società (PIVA_UTENTE).", "Notice addressed to another company (PIVA_UTENTE)."},
	flows.RuleEntDuplicate:  {"Seconda comunicazione per lo stesso CP_GESTORE.", "Second notice for the same CP_GESTORE."},
	flows.RuleEntNoPractice: {"Nessuna pratica entrante corrisponde alla riga.", "No entrante practice matches the row."},
	flows.RuleEntAmbiguous:  {"Più pratiche corrispondono a punto e cliente.", "Several practices match point and customer."},
	flows.RuleSuspTerm:      {"Termine per la richiesta di sospensione scaduto.", "The suspension term has expired."},
	flows.RuleSuspNoTerm:    {"La pratica non ha un termine di sospensione.", "The practice has no suspension term."},
	flows.RuleSuspCollected: {"CMOR già incassato: la sospensione non è ammessa.", "CMOR already collected: suspension not allowed."},
	flows.RuleSuspCause:     {"Causale di sospensione sconosciuta o non valida per il settore del punto.", "Suspension cause unknown or not valid for the point's sector."},
	flows.RuleSuspDate:      {"Data dell'evento mancante o futura.", "Event date missing or in the future."},
	flows.RuleSuspState:     {"La pratica non può essere sospesa nel suo stato attuale.", "The practice cannot be suspended in its current state."},
	flows.RuleRevokeState:   {"La pratica non è sospesa: non c'è nulla da revocare.", "The practice is not suspended: nothing to revoke."},
	flows.RuleRevokeCause:   {"Causale di revoca della sospensione sconosciuta.", "Unknown suspension revocation cause."},
	flows.RuleRendAmount:    {"Importi incoerenti: incassato più del fatturato, o fatturato più del CMOR.", "Inconsistent amounts: collected more than billed, or billed more than the CMOR."},
	flows.RuleRendState:     {"Dati di fatturazione per una pratica annullata.", "Billing data for an annulled practice."},

	// A practice held because its rows disagree (flows/uscente.go).
	flows.RuleCaseConflict: {"Pratica sospesa: un dato della pratica (tensione, spesa, messa in mora, ...) è diverso tra le sue righe; correggerlo nel gestionale.", "Practice held: a practice-level value (voltage, spend, mora, ...) differs between its rows; correct it in billing."},

	flows.RuleCellDate: {"Nel file Excel una cella di data sta in una colonna che non è una data: il foglio di calcolo ha trasformato il valore digitato (es. un numero di fattura 3/11) in una data. Formattare la colonna come testo e digitare di nuovo il valore.", "In the workbook a date cell stands in a column that is not a date: the spreadsheet turned the value typed (e.g. an invoice number 3/11) into a date. Format the column as text and type the value again."},

	flows.RuleCaseDupInvoice: {"Pratica sospesa: la stessa fattura compare due volte; elencare ogni fattura una sola volta.", "Practice held: the same invoice is listed twice; list each invoice once."},

	// The daemon's handlers (daemon/*.go).
	"CASE-ROWS":        {"Caso non presentato: alcune sue righe sono state scartate; correggerle e reinviare il caso.", "Case not filed: some of its rows were refused; correct them and send the case again."},
	"SI-D01":           {"Caso già presentato al SII: non viene presentato una seconda volta.", "Case already filed with the SII: not filed a second time."},
	"REFUND-REPEATED":  {"Rimborso già registrato per questa pratica (e la sua comunicazione REFUND_ACK già prodotta): non registrato una seconda volta.", "Refund already recorded for this practice (and its REFUND_ACK already built): not recorded a second time."},
	"PAYMENT-REPEATED": {"Incasso già applicato alla pratica (stessa fattura, data, importo e riferimento): non applicato una seconda volta. Se è un altro incasso, dare a ciascuno il proprio RIF_INCASSO.", "Payment already applied to the practice (same invoice, date, amount and reference): not applied a second time. If it is another payment, give each its own RIF_INCASSO."},
	"HEADER":           {"Intestazione del file non conforme al tracciato della cartella.", "File header does not match the folder's layout."},
	"SIZE":             {"File oltre il limite di dimensione: non elaborato; in archivio solo nome, dimensione e (se letto) impronta SHA-256, non il contenuto. Un file del SII oltre il limite non viene nemmeno scaricato.", "File over its size limit: not processed; only its name, size and (if read) SHA-256 are archived, not its content. An SII file over the limit is not even downloaded."},
	"UNSAFE":           {"Al posto del file depositato c'era un collegamento simbolico o un file diverso: rifiutato senza leggerlo.", "A symbolic link or another file stood where the dropped file was: refused unread."},
	"MORE":             {"Altre righe scartate, non elencate una per una: vedere il file dei motivi o `cmord validate`.", "More refused rows, not listed one by one: see the reason file or `cmord validate`."},
	"NO-PRACTICE":      {"Nessuna pratica ha questo codice.", "No practice has this code."},
	"NO-INVOICE":       {"Fattura non presente nella pratica.", "Invoice not in the practice."},
	"STATE":            {"Operazione non ammessa nello stato attuale della pratica.", "Not allowed in the practice's current state."},
	"ANN-DUP":          {"Annullamento già richiesto per questa pratica.", "Annulment already requested for this practice."},
	"ANN-CAUSE":        {"Causale di annullamento sconosciuta o non ammessa.", "Annulment cause unknown or not allowed."},
	"ANN-MOTIVATION":   {"Manca la motivazione, obbligatoria con la causale AN-99.", "Motivation missing, mandatory with cause AN-99."},
	"ANN-STATE":        {"Nello stato attuale della pratica non c'è nulla da annullare.", "Nothing to annul in the practice's current state."},
	"ANN-DUPLICATE":    {"Una richiesta di annullamento è già in attesa di invio.", "An annulment request is already waiting to be sent."},
	"ORPHAN":           {"Risposta che non corrisponde a nessuna nostra richiesta.", "Answer matching no request of ours."},
	"PIVA_UTENTE":      {"Risposta indirizzata a un'altra società (PIVA_UTENTE).", "Answer addressed to another company (PIVA_UTENTE)."},
	"MAPPING":          {"Mappatura delle colonne della cartella non valida.", "Invalid column mapping of the folder."},
	"LINE_CHANGED":     {"La riga SI1.0050 calcolata ora dal caso è diversa da quella decisa quando la richiesta è diventata pronta.", "The SI1.0050 line computed now from the case differs from the one decided when the request was made ready."},
	"CASE_UNREADABLE":  {"Il caso archiviato della pratica non si legge: modificato fuori da cmord, o il dizionario su cui era compresso modificato o cancellato.", "The practice's stored case cannot be read: changed outside cmord, or the dictionary it was deflated against edited or deleted."},
	"BUILD":            {"Il tracciato del flusso rifiuta i dati della richiesta.", "The flow's layout refuses the request's data."},
}

// causeTexts describe the SII cause codes of the embedded catalog (brief §4). The
// catalog's own descriptions are English; a code the operator's catalog adds or
// describes differently is shown with the catalog's description.
var causeTexts = map[string]Text{
	"950":    {"PIVA_UTENTE diversa da quella del mittente", "PIVA_UTENTE differs from the sender's"},
	"951":    {"PIVA_GESTORE diversa da quella del Gestore", "PIVA_GESTORE differs from the Gestore's"},
	"5":      {"richiesta (CP_UTENTE) già ricevuta, con il codice pratica del Gestore indicato", "request (CP_UTENTE) already received, with the Gestore's practice code given"},
	"4":      {"campi obbligatori mancanti o compilati male (dettaglio nella motivazione)", "mandatory fields missing or badly filled (detail in the motivation)"},
	"1":      {"tracciato (formato o layout del file) non congruente (dettaglio nella motivazione)", "template (file format or layout) not congruent (detail in the motivation)"},
	"15":     {"richiesta non eseguibile (dettaglio nella motivazione)", "request not executable (detail in the motivation)"},
	"SI-W01": {"richiesta presentata prima dei 6 mesi dallo switch", "request before T_sw + 6 months"},
	"SI-W02": {"richiesta presentata dopo la fine del 12° mese dallo switch", "request after the end of the 12th month after T_sw"},
	"SI-P01": {"POD/PDR sconosciuto in RCU o sintatticamente errato", "POD/PDR unknown in RCU or syntactically invalid"},
	"SI-P02": {"punto non associato al richiedente prima dello switch", "point not associated with the requester before T_sw"},
	"SI-P03": {"punto non oggetto di switching, o cambio per voltura o subentro", "point not switched, or change by voltura/subentro rather than switching"},
	"SI-P04": {"punto non più attivo, o cliente sul punto diverso dal debitore", "point no longer active, or customer on the point differs from the debtor"},
	"SI-P05": {"punto elettrico non in BT/MT, o punto gas fuori dai limiti di uso o consumo", "electricity point not BT/MT, or gas point outside the use/consumption limits"},
	"SI-A01": {"indennizzo inferiore a 10 euro", "indemnity below 10 euro"},
	"SI-A02": {"indennizzo superiore al credito (più l'eventuale CMOR precedente)", "indemnity above the credit (plus previous CMOR)"},
	"SI-A03": {"fatture fuori dalla finestra di 5 mesi", "invoices outside the 5-month window"},
	"SI-M01": {"dati della messa in mora mancanti, o mora successiva alla richiesta", "mora data missing, or mora after the request date"},
	"SI-D01": {"richiesta duplicata per lo stesso punto, cliente e switch", "duplicate active request for the same point, customer and switch"},
	"AN-01":  {"cliente non messo in mora, o sollecito privo dell'informativa sul CMOR", "customer not put in mora, or the notice lacked the CMOR information"},
	"AN-02":  {"il venditore uscente ha incassato il credito (debito pagato o chiuso)", "CC uscente collected the unpaid amount (debt paid or closed)"},
	"AN-03":  {"fattura di chiusura (TIF) non emessa, o indennizzi TIF art. 18 non pagati", "closing invoice (TIF) not issued, or TIF art. 18 indemnities not paid"},
	"AN-04":  {"credito comprensivo di una ricostruzione dei consumi per guasto del misuratore", "credit includes a consumption reconstruction after a meter fault"},
	"AN-05":  {"reclamo o rettifica non evasi, o indennizzi automatici TIQV non pagati", "complaint or rectification not answered, or TIQV automatic indemnities not paid"},
	"AN-06":  {"richiesta presentata per errore (cliente, punto o importo sbagliati)", "request filed by mistake (wrong customer, point or amount)"},
	"AN-07":  {"causa lato entrante (es. il cliente sul punto non è il debitore)", "entrante-side cause (e.g. the customer on the point is not the debtor)"},
	"AN-99":  {"altro, spiegato nella motivazione", "other, explained in MOTIVAZIONE"},
	"SO-01":  {"punto sospeso per morosità verso il venditore entrante", "point suspended for non-payment of the entrante's invoices"},
	"SO-02":  {"richiesta di sospensione per morosità inviata al distributore (in corso)", "suspension request for non-payment sent to the distributor (pending)"},
	"SO-03":  {"sospensione tentata senza esito", "suspension attempted but not successful"},
	"SO-G1":  {"gas: PDR chiuso o chiusura richiesta per morosità", "gas: PDR closed or closure requested for non-payment"},
	"RV-01":  {"il cliente ha pagato il venditore entrante", "the customer paid the entrante"},
	"RV-02":  {"fornitura riattivata", "supply reactivated"},
	"RV-99":  {"altro", "other"},
	"SS-01":  {"CMOR già incassato dal venditore entrante", "CMOR already collected by the CC entrante"},
	"SS-02":  {"nessuna sospensione o richiesta di sospensione trovata per il punto", "no suspension or suspension request found for the point"},
	"SS-03":  {"termine per la richiesta di sospensione scaduto", "term for the suspension request expired"},
	"SS-99":  {"altro, spiegato nella motivazione", "other, explained in MOTIVAZIONE"},
}

// StateTexts name the practice states (flows' state machine) for people.
var StateTexts = map[string]Text{
	"DRAFT":           {"bozza, non valida", "draft, not valid"},
	"WAITING_WINDOW":  {"in attesa dell'apertura della finestra", "waiting for the window"},
	"READY":           {"pronta per l'invio", "ready to send"},
	"BUILT":           {"flusso generato, in attesa di invio al SII", "file built, waiting to be delivered to the SII"},
	"SENT":            {"inviata al SII", "sent to the SII"},
	"INADMISSIBLE":    {"inammissibile", "inadmissible"},
	"ADMITTED":        {"ammessa", "admitted"},
	"REJECTED":        {"respinta", "rejected"},
	"ACCEPTED":        {"accolta", "accepted"},
	"SUSPENDED":       {"sospesa", "suspended"},
	"NOTIFIED_TO_DSO": {"comunicata al distributore", "notified to the distributor"},
	"BILLED_TO_UDD_E": {"fatturata al venditore entrante", "billed to the entrante"},
	"PAID_TO_CSEA":    {"pagata a CSEA", "paid to CSEA"},
	"INDEMNITY_PAID":  {"indennizzo versato", "indemnity paid"},
	"AMOUNT_UPDATED":  {"importo aggiornato", "amount updated"},
	"ANNULLED":        {"annullata", "annulled"},
	"REFUNDED":        {"rimborsata", "refunded"},
	"NOTIFIED":        {"notificata: CMOR da addebitare", "notified: CMOR to charge"},
	"TO_CHARGE":       {"da addebitare al cliente", "to charge to the customer"},
	"CHARGED":         {"addebitata al cliente", "charged to the customer"},
	"SUSP_REQUESTED":  {"sospensione richiesta", "suspension requested"},
	"COLLECTED":       {"incassata", "collected"},
	"CLOSED":          {"chiusa", "closed"},
}

// ownerTexts name the owner roles in the CSV.
var ownerTexts = map[string]Text{
	OwnerOperator:   {"operatore (fatturazione)", "operator (billing)"},
	OwnerCompliance: {"compliance", "compliance"},
	OwnerSysadmin:   {"sistemista", "sysadmin"},
}

// textOf returns the phrase of key in table, or "" when there is none.
func textOf(table map[string]Text, key, lang string) string {
	if t, ok := table[key]; ok {
		return t.In(lang)
	}
	return ""
}

// stateLabel shows a state as "pronta per l'invio (READY)": the words for the reader,
// the code for `cmord practices --state`.
func stateLabel(state, lang string) string {
	if t := textOf(StateTexts, state, lang); t != "" {
		return t + " (" + state + ")"
	}
	return state
}

// ownerLabel names an owner role.
func ownerLabel(owner, lang string) string {
	if t := textOf(ownerTexts, owner, lang); t != "" {
		return t
	}
	return owner
}

// ---- SII causes ----

var (
	embeddedOnce    sync.Once
	embeddedCatalog *flows.Catalog
)

// defaultCatalog is the embedded catalog, parsed once.
func defaultCatalog() *flows.Catalog {
	embeddedOnce.Do(func() { embeddedCatalog = flows.DefaultCatalog() })
	return embeddedCatalog
}

// lookupCause finds code in any cause table of cat (codes are unique across the
// tables of a catalog; a table includes the common SII ones).
func lookupCause(cat *flows.Catalog, code string) *flows.Cause {
	if cat == nil || code == "" {
		return nil
	}
	names := make([]string, 0, len(cat.Causes))
	for n := range cat.Causes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if t := cat.Causes[n]; t != nil {
			if c := t.Lookup(code); c != nil {
				return c
			}
		}
	}
	return nil
}

// CauseDescription describes an SII cause code in lang: the Italian or English text of
// a code of the embedded catalog, or the description the catalog in force gives a code
// it adds or redefines. "" when the code is unknown.
func CauseDescription(cat *flows.Catalog, code, lang string) string {
	code = strings.TrimSpace(code)
	if code == "" {
		return ""
	}
	inForce := lookupCause(cat, code)
	builtin := lookupCause(defaultCatalog(), code)
	if inForce != nil && (builtin == nil || inForce.Description != builtin.Description) {
		return inForce.Description // the operator's own description
	}
	if builtin != nil {
		if t := textOf(causeTexts, builtin.Code, lang); t != "" {
			return t
		}
		return builtin.Description
	}
	return ""
}

// ---- case keys ----

// caseKeyRE matches the archive's internal case keys: "U|<POD/PDR>|<CF/P.IVA>|<switch
// ISO date>" for an uscente case, "E|<CP_GESTORE>" for an entrante one. They identify
// cases in the archive and must never reach a person as such.
var caseKeyRE = regexp.MustCompile(`\b(?:U\|([A-Z0-9]+)\|([A-Z0-9]*)\|(\d{4}-\d{2}-\d{2})|E\|([A-Z0-9]+))`)

// caseKeyParts splits an uscente case key; ok is false for anything else.
func caseKeyParts(s string) (point, customer string, sw flows.Date, ok bool) {
	m := caseKeyRE.FindStringSubmatch(s)
	if m == nil || m[1] == "" {
		return "", "", flows.Date{}, false
	}
	sw, _ = flows.ParseDate(m[3])
	return m[1], m[2], sw, true
}

// pointLabelOf tells a POD (IT…) from a PDR (14 digits) by its shape.
func pointLabelOf(point string) string {
	if strings.HasPrefix(point, "IT") {
		return "POD"
	}
	return "PDR"
}

// humanizeCaseKeys replaces every case key in s by what a person knows the case by:
// POD/PDR, customer (masked unless personal data are allowed) and switch date, or the
// CP_GESTORE.
func humanizeCaseKeys(s string, m masker, lang string) string {
	if !strings.Contains(s, "|") {
		return s
	}
	return caseKeyRE.ReplaceAllStringFunc(s, func(k string) string {
		g := caseKeyRE.FindStringSubmatch(k)
		if g[4] != "" {
			return "CP_GESTORE " + g[4]
		}
		parts := []string{pointLabelOf(g[1]) + " " + g[1]}
		if g[2] != "" {
			parts = append(parts, map[string]string{"it": "cliente ", "en": "customer "}[langOf(lang)]+m.id(g[2]))
		}
		if d, err := flows.ParseDate(g[3]); err == nil {
			parts = append(parts, "switch "+d.String())
		}
		return strings.Join(parts, ", ")
	})
}

func langOf(lang string) string {
	if lang == "en" {
		return "en"
	}
	return "it"
}

// HumanizeKeys rewrites the archive's case keys in s as a person knows the case
// ("POD IT001E…, cliente RSS…, switch 01/03/2026"), unmasked: receipts and reason files
// sit beside the operator's own extract, which carries the same data.
func HumanizeKeys(s, lang string) string { return humanizeCaseKeys(s, masker{}, lang) }

// RuleText explains a finding rule in lang ("" when the table lacks it).
func RuleText(rule, lang string) string { return textOf(RuleTexts, rule, lang) }
