package export

import (
	"regexp"
	"strings"

	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/flows"
)

// The daemon writes a practice's history notes in English (they are log lines as much
// as evidence: daemon/uscente.go, daemon/entrante.go, daemon/sii.go). The Italian
// dossier translates the fixed ones here: a note is a few segments joined by "; ",
// each segment is matched whole against notePatterns and rewritten, its amounts as
// 1.234,56 and its state codes in words; a segment no pattern knows (free text: a
// motivation, a refusal message) is left as it is. TestNotePatternsCoverTheDaemon
// fails when the daemon writes a note these patterns do not know.

// notePattern rewrites one kind of note segment. In it, ${name} is the named group
// of re; groups named amt… are amounts, state… state codes, word an SII outcome.
type notePattern struct {
	re *regexp.Regexp
	it string
}

func pattern(re, it string) notePattern {
	return notePattern{re: regexp.MustCompile(`^(?:` + re + `)$`), it: it}
}

var notePatterns = []notePattern{
	// daemon/uscente.go
	pattern(`case read from (?P<file>.+) lines (?P<lines>\S+)`, "caso letto da ${file}, ${lines}"),
	pattern(`CMOR (?P<amt>\S+) \(credit (?P<amt2>\S+), estimate (?P<amt3>\S+)\)`, "CMOR ${amt} (credito ${amt2}, stima 4 mesi ${amt3})"),
	pattern(`CMOR now (?P<amt>\S+) \(credit (?P<amt2>\S+), estimate (?P<amt3>\S+)\)`, "CMOR ora ${amt} (credito ${amt2}, stima 4 mesi ${amt3})"),
	pattern(`case updated: CMOR (?P<amt>\S+) \(credit (?P<amt2>\S+), estimate (?P<amt3>\S+)\)`, "caso aggiornato: CMOR ${amt} (credito ${amt2}, stima 4 mesi ${amt3})"),
	pattern(`CMOR (?P<amt>\S+)`, "CMOR ${amt}"),
	pattern(`request window opens (?P<date>\S+)`, "la finestra di richiesta apre il ${date}"),
	pattern(`held: rows of (?P<file>.+) \(lines (?P<lines>\S+)\) refused or in conflict, not filed until billing sends the practice again`,
		"sospesa: righe ${lines} di ${file} scartate o in conflitto, non presentata finché la fatturazione non reinvia la pratica"),
	pattern(`files again the case of CP_UTENTE (?P<code>\S+) \((?P<state>\S+)\)`, "ripresenta il caso del CP_UTENTE ${code}, stato ${state}"),
	pattern(`case filed again as CP_UTENTE (?P<code>\S+) \(practice #(?P<id>\d+)\) from (?P<file>.+)`, "caso ripresentato come CP_UTENTE ${code} (pratica #${id}) da ${file}"),
	pattern(`payment of (?P<amt>\S+) on (?P<date>\S+) for invoice (?P<inv>.+)`, "pagamento di ${amt} il ${date} per la fattura ${inv}"),
	pattern(`still unpaid (?P<amt>\S+)`, "ancora insoluto ${amt}"),
	pattern(`annulment requested \(ANN_REQ (?P<code>\S+), cause (?P<cause>[^)]*)\): (?P<text>.*)`, "annullamento richiesto (ANN_REQ ${code}, causale ${cause}): ${text}"),
	pattern(`debt paid on (?P<date>\S+) \(invoice (?P<inv>.+), (?P<amt>[^,)]+)\)`, "debito saldato il ${date} (fattura ${inv}, ${amt})"),
	pattern(`refund of (?P<amt>\S+) to the customer on (?P<date>\S+) \((?P<mode>[^)]*)\)`, "rimborso di ${amt} al cliente il ${date} (${mode})"),
	pattern(`REFUND_ACK (?P<code>\S+) due by (?P<date>\S+)`, "REFUND_ACK ${code} da inviare entro il ${date}"),
	pattern(`not sent: (?P<text>.*)`, "non inviata: ${text}"),
	pattern(`no longer eligible: (?P<text>.*)`, "non più ammissibile: ${text}"),
	pattern(`withdrawn before filing \(no flow sent to the SII\): (?P<text>.*)`, "ritirata prima della presentazione (nessun flusso inviato al SII): ${text}"),
	pattern(`(?P<flow>\S+) (?P<code>\S+) not sent: (?P<text>.*)`, "${flow} ${code} non inviata: ${text}"),
	pattern(`(?P<flow>\S+) (?P<code>\S+) written into (?P<file>.+)`, "${flow} ${code} scritta nel file ${file}"),
	pattern(`request window opened on (?P<date>\S+)`, "finestra di richiesta aperta il ${date}"),
	pattern(`request window opened on (?P<date>\S+), but the case no longer passes: (?P<text>.*)`,
		"finestra di richiesta aperta il ${date}, ma il caso non supera più i controlli: ${text}"),
	// daemon/sii.go: an answer the state machine forbids (flows.StateConflict).
	pattern(`answer not applied: (?P<flow>\S+) cannot move a practice from (?P<state>\S+) to (?P<state2>\S+): the flow applies only to practices in (?P<states>.+)`,
		"risposta non applicata: ${flow} non può portare la pratica da ${state} a ${state2}: il flusso vale solo per le pratiche in ${states}"),
	pattern(`answer not applied: (?P<flow>\S+) cannot move a practice from (?P<state>\S+) to (?P<state2>\S+): the catalog's state machine does not allow it`,
		"risposta non applicata: ${flow} non può portare la pratica da ${state} a ${state2}: il catalogo non ammette il passaggio"),
	pattern(`answer not applied: (?P<flow>\S+) cannot move a practice from (?P<state>\S+) to (?P<state2>\S+): (?P<state3>\S+) is terminal`,
		"risposta non applicata: ${flow} non può portare la pratica da ${state} a ${state2}: ${state3} è uno stato finale"),
	pattern(`answer not applied: (?P<text>.*)`, "risposta non applicata: ${text}"),
	// daemon/entrante.go
	pattern(`suspension requested \(SUSP_REQ (?P<code>\S+), cause (?P<cause>\S+), event (?P<date>\S+), term (?P<date2>[^)]+)\): goes into the next SUSP_REQ file`,
		"sospensione richiesta (SUSP_REQ ${code}, causale ${cause}, evento ${date}, termine ${date2}): partirà con il prossimo file SUSP_REQ"),
	pattern(`suspension request (?P<code>\S+) withdrawn before sending \((?P<cause>[^)]*)\)`, "richiesta di sospensione ${code} ritirata prima dell'invio (${cause})"),
	pattern(`suspension revocation requested \(SUSP_REVOKE (?P<code>\S+), cause (?P<cause>\S+), on (?P<date>[^)]+)\)`,
		"revoca della sospensione richiesta (SUSP_REVOKE ${code}, causale ${cause}, il ${date})"),
	pattern(`CMOR invoice (?P<inv>.+) of (?P<date>\S+): billed (?P<amt>\S+), collected (?P<amt2>\S+) \((?P<text>[^)]*)\)`,
		"fattura CMOR ${inv} del ${date}: fatturato ${amt}, incassato ${amt2} (${text})"),
	pattern(`totals billed (?P<amt>\S+), collected (?P<amt2>\S+)`, "totali fatturato ${amt}, incassato ${amt2}"),
	pattern(`suspension refused: (?P<text>.*)`, "sospensione rifiutata: ${text}"),
	pattern(`revocation refused: (?P<text>.*)`, "revoca rifiutata: ${text}"),
	pattern(`annulment notice received again: already annulled`, "notifica di annullamento ricevuta di nuovo: pratica già annullata"),
	pattern(`MOTIVAZIONE: (?P<text>.*)`, "MOTIVAZIONE: ${text}"), // the SII's field, its text verbatim
	pattern(`reported in (?P<period>.+)`, "rendicontata nel periodo ${period}"),
	// daemon/sii/answers.go
	pattern(`annulment (?P<code>\S+) (?P<word>\S+) by the SII`, "richiesta di annullamento ${code} ${word} dal SII"),
	pattern(`annulled on (?P<date>\S+)`, "annullata il ${date}"),
	pattern(`suspension cause (?P<cause>.+)`, "causale della sospensione ${cause}"),
	pattern(`event date (?P<date>\S+)`, "data dell'evento ${date}"),
	pattern(`CMOR updated on (?P<date>\S+): old (?P<amt>\S+), new (?P<amt2>\S+), delta (?P<amt3>\S+)`,
		"CMOR aggiornato il ${date}: precedente ${amt}, nuovo ${amt2}, differenza ${amt3}"),
	pattern(`our amount was (?P<amt>\S+), not (?P<amt2>\S+)`, "il nostro importo era ${amt}, non ${amt2}"),
	pattern(`CP_GESTORE changed from (?P<code>\S+) to (?P<code2>\S+)`, "CP_GESTORE cambiato da ${code} a ${code2}"),
	pattern(`CMOR validated by the SII (?P<amt>\S+) \(requested (?P<amt2>\S+), delta (?P<amt3>[^)]+)\)`,
		"CMOR convalidato dal SII: ${amt} (richiesto ${amt2}, differenza ${amt3})"),
	pattern(`indemnity already paid: refund (?P<amt>\S+) to the customer by (?P<date>\S+), then REFUND_ACK within (?P<n>\d+) working days`,
		"indennizzo già erogato: rimborsare ${amt} al cliente entro il ${date}, poi REFUND_ACK entro ${n} giorni lavorativi"),
	pattern(`(?P<flow>\S+) (?P<code>\S+) (?P<word>\S+) by the SII`, "${flow} ${code} ${word} dal SII"),
	pattern(`indemnity annulled by the SII on (?P<date>\S+) \(cause (?P<cause>[^)]*)\)`, "indennizzo annullato dal SII il ${date} (causale ${cause})"),
	pattern(`CMOR updated by the SII on (?P<date>\S+): (?P<amt>\S+) → (?P<amt2>\S+)`, "CMOR aggiornato dal SII il ${date}: ${amt} → ${amt2}"),
	pattern(`CMOR updated by the SII on (?P<date>\S+): (?P<amt>\S+) → (?P<amt2>\S+) \(the notice says the old amount was (?P<amt3>\S+)\)`,
		"CMOR aggiornato dal SII il ${date}: ${amt} → ${amt2} (secondo la notifica l'importo precedente era ${amt3})"),
	pattern(`annulment requested by the entrante \(ANN_REQ (?P<code>\S+), cause (?P<cause>[^)]*)\): (?P<text>.*)`,
		"annullamento richiesto dal venditore entrante (ANN_REQ ${code}, causale ${cause}): ${text}"),
	pattern(`linked to entrante practice (?P<code>\S+) \(#(?P<id>\d+)\): its uncollected CMOR (?P<amt>\S+) is the previous CMOR (?P<amt2>\S+) of this request`,
		"collegata alla pratica entrante ${code} (#${id}): il suo CMOR non incassato ${amt} è il CMOR precedente ${amt2} di questa richiesta"),
	pattern(`linked to uscente practice (?P<code>\S+) \(#(?P<id>\d+)\), which adds this uncollected CMOR \((?P<amt>\S+)\) as its previous CMOR`,
		"collegata alla pratica uscente ${code} (#${id}), che aggiunge questo CMOR non incassato (${amt}) come CMOR precedente"),
	pattern(`reported for (?P<period>\S+) in (?P<file>\S+) \(REND (?P<code>\S+), invoice (?P<inv>.+), (?P<text>[^,)]*)\)`,
		"rendicontata per ${period} nel file ${file} (REND ${code}, fattura ${inv}, ${text})"),
	// A flow's state change waits for its file's delivery (archive.DeferTransition,
	// applied by archive.MarkDelivered with what was confirmed; daemon/uscente.go,
	// daemon/entrante.go), or the delivery is abandoned (cmord deliveries abandon).
	pattern(`(?P<state>\S+) once (?P<file>.+) is delivered`, "${state} quando ${file} sarà consegnato al SII"),
	pattern(`(?P<what>.+) published in (?P<file>[^:]+)(?:: (?P<path>\S+) confirmed on (?P<target>\S+) \(size (?P<size>\d+) checked, renamed\))?`,
		"${what} pubblicata in ${file}: ${path} confermato su ${target} (dimensione ${size} verificata, rinominato)"),
	pattern(`reported for (?P<period>\S+) in (?P<file>[^:]+)(?:: (?P<path>\S+) confirmed on (?P<target>\S+) \(size (?P<size>\d+) checked, renamed\))?`,
		"riportata per ${period} in ${file}: ${path} confermato su ${target} (dimensione ${size} verificata, rinominato)"),
	pattern(`delivery of (?P<file>\S+) to (?P<target>\S+) abandoned by (?P<who>\S+): (?P<text>.*)`, "consegna di ${file} a ${target} abbandonata da ${who}: ${text}"),
}

// sii outcomes as entrante.go words them ("… admitted by the SII").
var outcomeWords = map[string]string{"admitted": "ammessa", "inadmissible": "dichiarata inammissibile", "accepted": "accolta",
	"rejected": "respinta", "refused": "respinta"}

var placeholderRE = regexp.MustCompile(`\$\{(\w+)\}`)

// noteText is a history note in lang: as written for English, translated segment by
// segment for Italian.
func noteText(note, lang string) string {
	if lang == "en" || note == "" {
		return note
	}
	segs := strings.Split(note, "; ")
	for i, s := range segs {
		segs[i] = noteSegment(s, lang)
	}
	return strings.Join(segs, "; ")
}

func noteSegment(s, lang string) string {
	t, _ := translateSegment(s, lang)
	return t
}

// translateSegment translates one segment; known is false when no pattern matches
// (the segment is returned as it is).
func translateSegment(s, lang string) (string, bool) {
	for _, p := range notePatterns {
		m := p.re.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		return placeholderRE.ReplaceAllStringFunc(p.it, func(ph string) string {
			name := ph[2 : len(ph)-1]
			v := m[p.re.SubexpIndex(name)]
			switch {
			case strings.HasPrefix(name, "amt"):
				if a, err := flows.ParseAmount(v, false); err == nil {
					return amountHuman(a, lang)
				}
			case strings.HasPrefix(name, "states"):
				parts := strings.Split(v, ", ")
				for i, st := range parts {
					parts[i] = digest.StateName(st, lang)
				}
				return strings.Join(parts, ", ")
			case strings.HasPrefix(name, "state"):
				return digest.StateName(v, lang)
			case name == "lines": // "5" or "5-6" / "5, 7"
				if strings.ContainsAny(v, "-,") {
					return "righe " + v
				}
				return "riga " + v
			case name == "text": // free text, or a note of its own ("debt paid on …")
				if t, ok := translateSegment(v, lang); ok {
					return t
				}
			case name == "word":
				if w, ok := outcomeWords[v]; ok {
					return w
				}
			}
			return v
		}), true
	}
	return s, false
}

// amountHuman writes an amount for a person: 1.234,56 in Italian, 1,234.56 in English.
func amountHuman(a flows.Amount, lang string) string {
	thousands, dec := byte('.'), byte(',')
	if lang == "en" {
		thousands, dec = ',', '.'
	}
	s := amountText(a, dec) // sign, units, decimal separator, two decimals
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	units, frac := s[:len(s)-3], s[len(s)-3:]
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i := range len(units) {
		if i > 0 && (len(units)-i)%3 == 0 {
			b.WriteByte(thousands)
		}
		b.WriteByte(units[i])
	}
	b.WriteString(frac)
	return b.String()
}
