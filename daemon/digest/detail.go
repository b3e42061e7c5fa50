package digest

import (
	"regexp"
	"strings"

	"github.com/cmord/cmord/flows"
)

// A finding's English message carries its specific facts (which rows, which value,
// where a repeated payment was already applied, which amount against which minimum);
// the rule's Italian wording (RuleTexts) does not. DetailIT says the commonest
// messages of the files an operator drops in Italian, with those facts, so that the
// receipt and the reason file can be acted on from the Italian alone. Amounts in the
// messages are cmord's own (canonical, decimal point) and are said with the decimal
// comma; values quoted from the file are left as the file has them.

type detailPattern struct {
	re *regexp.Regexp
	it func(m []string) string
}

var (
	amountRE = regexp.MustCompile(`^-?[0-9]+\.[0-9]{2}$`)
)

// AmountIT says a canonical amount ("6.40") with the decimal comma ("6,40"); any
// other text is returned as it is.
func AmountIT(s string) string {
	if amountRE.MatchString(s) {
		return strings.Replace(s, ".", ",", 1)
	}
	return s
}

// AmountsIT says the amounts of a text of cmord's own (an English message shown as a
// technical detail to an Italian reader) with the decimal comma: "indemnity 6.40 is
// below the minimum 10.00" → "indemnity 6,40 is below the minimum 10,00". Only a
// number with exactly two decimals standing alone (after a space, "(", "€", ":" or
// "=", before a space, a closing bracket, punctuation or the end) is touched; text
// in double quotes (a value quoted from the file), file names ("a_2026.11.csv"),
// versions and addresses are left as they are.
func AmountsIT(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	b := []byte(s)
	inQuote := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			inQuote = !inQuote
			continue
		}
		if inQuote || c != '.' || i == 0 || i+2 >= len(b) {
			continue
		}
		if !isDigit(b[i-1]) || !isDigit(b[i+1]) || !isDigit(b[i+2]) {
			continue
		}
		// the units: digits back to a boundary
		j := i - 1
		for j > 0 && isDigit(b[j-1]) {
			j--
		}
		if j > 0 && b[j-1] == '-' {
			j--
		}
		if j > 0 && !strings.ContainsRune(" (€:=[/\t", rune(b[j-1])) {
			continue
		}
		k := i + 3
		if k < len(b) {
			switch n := b[k]; {
			case n == ' ' || n == ')' || n == ']' || n == ';' || n == ',' || n == ':' || n == '\n':
			case n == '.' && (k+1 == len(b) || b[k+1] == ' ' || b[k+1] == '\n'):
			default:
				continue
			}
		}
		b[i] = ','
	}
	return string(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func p(re string, it func(m []string) string) detailPattern {
	return detailPattern{regexp.MustCompile(`^` + re + `$`), it}
}

// linesIT says "line 4" / "lines 2-4" of a message in Italian.
func linesIT(s string) string {
	s = strings.ReplaceAll(s, "rows on lines", "righe")
	s = strings.ReplaceAll(s, "row on line", "riga")
	s = strings.ReplaceAll(s, "lines", "righe")
	s = strings.ReplaceAll(s, "line", "riga")
	return strings.ReplaceAll(s, " and ", " e ")
}

var detailPatterns = []detailPattern{
	p(`payment of (\S+) on (\S+) for invoice (.+) of practice (\S+) was already applied \(line (\d+) of this file\): not applied again; .*`, func(m []string) string {
		return "pagamento di " + AmountIT(m[1]) + " euro del " + m[2] + " sulla fattura " + m[3] + " della pratica " + m[4] +
			" già applicato alla riga " + m[5] + " di questo file: non applicato di nuovo. Se è un altro pagamento, dare a ciascuno il proprio RIF_INCASSO, o indicare RESIDUO_INSOLUTO."
	}),
	p(`payment of (\S+) on (\S+) for invoice (.+) of practice (\S+) was already applied \(line (\d+) of file #(\d+)\): not applied again; .*`, func(m []string) string {
		return "pagamento di " + AmountIT(m[1]) + " euro del " + m[2] + " sulla fattura " + m[3] + " della pratica " + m[4] +
			" già applicato alla riga " + m[5] + " del file n. " + m[6] + ": non applicato di nuovo. Se è un altro pagamento, dare a ciascuno il proprio RIF_INCASSO, o indicare RESIDUO_INSOLUTO."
	}),
	// A repeat from an earlier file is a warning (billing's cumulative export): no advice follows.
	p(`payment of (\S+) on (\S+) for invoice (.+) of practice (\S+) was already applied \(line (\d+) of file #(\d+)\): not applied again`, func(m []string) string {
		return "pagamento di " + AmountIT(m[1]) + " euro del " + m[2] + " sulla fattura " + m[3] + " della pratica " + m[4] +
			" già applicato alla riga " + m[5] + " del file n. " + m[6] + ": non applicato di nuovo (un'estrazione che ripete i pagamenti già inviati); nulla da correggere."
	}),
	p(`practice (\S+) has no invoice (.+): payment noted only`, func(m []string) string {
		return "la pratica " + m[1] + " non ha la fattura " + m[2] + ": pagamento solo annotato."
	}),
	p(`practice (\S+): a refund of (\S+) on (\S+) \((.*)\) is already recorded and its REFUND_ACK filed or queued: not recorded again`, func(m []string) string {
		return "pratica " + m[1] + ": un rimborso di " + AmountIT(m[2]) + " euro del " + m[3] + " (" + m[4] + ") è già registrato e il suo REFUND_ACK inviato o in coda: non registrato di nuovo."
	}),
	p(`practice (\S+): this refund of (\S+) on (\S+) is already recorded and its REFUND_ACK filed or queued: not recorded again`, func(m []string) string {
		return "pratica " + m[1] + ": questo rimborso di " + AmountIT(m[2]) + " euro del " + m[3] + " è già registrato e il suo REFUND_ACK inviato o in coda: non registrato di nuovo; nulla da correggere."
	}),
	p(`practice (\S+) is (\S+), not ANNULLED: no refund is due`, func(m []string) string {
		return "la pratica " + m[1] + " è in stato " + m[2] + ", non ANNULLED: nessun rimborso è dovuto."
	}),
	p(`no practice has this code`, func([]string) string { return "nessuna pratica ha questo codice." }),
	p(`invoice (.+) is listed (\d+) times \(lines (.+)\); list each invoice once, the practice is held`, func(m []string) string {
		return "qui: la fattura " + m[1] + " compare " + m[2] + " volte (righe " + m[3] + ")."
	}),
	p(`(\S+) differs between the rows of one practice: (.+); billing must give one value, the practice is held`, func(m []string) string {
		return m[1] + " è diverso tra le righe della stessa pratica: " + linesIT(m[2]) + "; la fatturazione deve dare un solo valore, la pratica è trattenuta."
	}),
	p(`practice held, not filed: its (row on line|rows on lines) (.+) (?:was|were) refused, and (the row on line|the rows on lines) (.+) (?:is|are) not filed alone; correct the refused rows and drop the whole practice again`, func(m []string) string {
		return "pratica trattenuta, non presentata: " + map[bool]string{true: "la riga ", false: "le righe "}[m[1] == "row on line"] + m[2] +
			map[bool]string{true: " è stata rifiutata", false: " sono state rifiutate"}[m[1] == "row on line"] + ", e " +
			map[bool]string{true: "la riga ", false: "le righe "}[m[3] == "the row on line"] + m[4] + " non si presentano da sole; correggere le righe rifiutate e depositare di nuovo la pratica intera."
	}),
	p(`practice held, not filed: its rows in (.+) \((?:line|lines) (.+)\) were refused; correct them and drop the whole practice again`, func(m []string) string {
		return "pratica trattenuta, non presentata: le sue righe in " + m[1] + " (" + m[2] + ") sono state rifiutate; correggerle e depositare di nuovo la pratica intera."
	}),
	p(`row (\d+) has values in (\d+) columns, the header has (\d+)(?:: column (\d+), which has no header, holds (".*"))?`, func(m []string) string {
		s := "la riga " + m[1] + " ha valori in " + m[2] + " colonne, l'intestazione ne ha " + m[3]
		if m[4] != "" {
			s += ": la colonna " + m[4] + ", senza intestazione, contiene " + m[5]
		}
		return s + "."
	}),
	p(`line (\d+) has (\d+) values, the header has (\d+) columns(?:: column (\d+), which has no header, holds (".*"))? \(a ; inside a value must be in quotes\)`, func(m []string) string {
		s := "la riga " + m[1] + " ha " + m[2] + " valori, l'intestazione ha " + m[3] + " colonne"
		if m[4] != "" {
			s += ": la colonna " + m[4] + ", senza intestazione, contiene " + m[5]
		}
		return s + " (un ; dentro un valore va tra virgolette)."
	}),
	p(`column (\d+) has no header and holds (".*"): (?:.*)`, func(m []string) string {
		return "la colonna " + m[1] + " non ha intestazione e contiene " + m[2] + ": dare un nome alla colonna (o toglierla) e salvare di nuovo."
	}),
	p(`a quote opened on line (\d+) closes only on line (\d+): the row is refused and lines (\d+)-(\d+) are read as rows of their own .*`, func(m []string) string {
		return "le virgolette aperte alla riga " + m[1] + " si chiudono solo alla riga " + m[2] + ": la riga è rifiutata e le righe " + m[3] + "-" + m[4] + " sono lette come righe a sé (le virgolette dentro un valore si scrivono \"\")."
	}),
	p(`a quote opened on line (\d+) is never closed: the row is refused and lines (\d+)-(\d+) are read as rows of their own .*`, func(m []string) string {
		return "le virgolette aperte alla riga " + m[1] + " non si chiudono mai: la riga è rifiutata e le righe " + m[2] + "-" + m[3] + " sono lette come righe a sé (le virgolette dentro un valore si scrivono \"\")."
	}),
	p(`a quote opened on line (\d+) is never closed`, func(m []string) string {
		return "le virgolette aperte alla riga " + m[1] + " non si chiudono mai."
	}),
	p(`a date cell \((.*)\) in a column of (\S+), which is not a date: kept as the date; cmord does not use the column`, func(m []string) string {
		return "qui: una cella data (" + m[1] + ") nella colonna di " + m[2] + ", che cmord non usa: riga accettata, solo un avviso."
	}),
	p(`a date cell \((.*)\) in a column of (\S+), which is not a date: .*`, func(m []string) string {
		return "qui: una cella data (" + m[1] + ") nella colonna di " + m[2] + "."
	}),
	p(`byte (0x[0-9A-F]{2}) at position (\d+) of line (\d+)( \(and (\d+) more\))? is a character in neither UTF-8 nor Windows-1252: .*`, func(m []string) string {
		s := "il byte " + m[1] + " alla posizione " + m[2] + " della riga " + m[3]
		if m[4] != "" {
			s += " (e altri " + m[5] + ")"
		}
		return s + " non è un carattere né in UTF-8 né in Windows-1252: il valore non si legge come la fatturazione l'ha scritto; salvare l'estrazione in UTF-8."
	}),
	p(`control character (.+) at position (\d+): values go into SII files, which must not contain it`, func(m []string) string {
		return "carattere di controllo " + m[1] + " alla posizione " + m[2] + ": i valori vanno nei file del SII, che non devono contenerlo."
	}),
	p(`negative amount: correct the row in billing \(a credit note is not an unpaid invoice\)`, func([]string) string {
		return "Qui: una nota di credito non è una fattura insoluta."
	}),
	p(`(\S+) (\S+) is before (\S+) (\S+)`, func(m []string) string {
		return m[1] + " " + m[2] + " è precedente a " + m[3] + " " + m[4] + "."
	}),
	p(`(\S+) (-?[0-9]+\.[0-9]{2}) is above (\S+) (-?[0-9]+\.[0-9]{2})`, func(m []string) string {
		return m[1] + " " + AmountIT(m[2]) + " è maggiore di " + m[3] + " " + AmountIT(m[4]) + "."
	}),
	p(`an Excel workbook \(\.xlsx\) with values on more than one sheet: sheet (".*") is read and sheet (.*) would be ignored; .*`, func(m []string) string {
		return "Qui: una cartella Excel (.xlsx) con valori su più fogli: si legge il foglio " + m[1] + " e il foglio " + m[2] +
			" sarebbe ignorato; niente è stato letto. Mettere tutte le righe sul primo foglio (una sola intestazione), o salvare ogni foglio come file a sé (CSV UTF-8), e depositarlo di nuovo."
	}),
	p(`an Excel workbook \(\.xlsx\) whose formulas were never computed: (\d+) formula cell\(s\) of sheet (".*") have no value stored \(the first: (\S+)\), .*`, func(m []string) string {
		return "Qui: una cartella Excel (.xlsx) con formule mai calcolate: " + m[1] + " celle con formula del foglio " + m[2] + " non hanno un valore salvato (la prima: " + m[3] +
			") e si leggerebbero vuote; niente è stato letto. Aprirla in Excel o Calc, salvarla e depositarla di nuovo (o salvarla come CSV UTF-8)."
	}),
	p(`the header has no ';' between its columns but (tabs|commas): .*`, func(m []string) string {
		return "Qui: l'intestazione non ha ';' tra le colonne ma " + map[string]string{"tabs": "tabulazioni", "commas": "virgole"}[m[1]] +
			": il file è stato salvato con un altro separatore di campo; salvarlo di nuovo come CSV con ';' come separatore."
	}),
	p(`not a text CSV file: an Excel 97-2003 workbook .*`, func([]string) string {
		return "Qui: una cartella Excel 97-2003 (.xls): aprirla in Excel e salvarla come .xlsx o come \"CSV UTF-8 (delimitato da virgole)\"."
	}),
	p(`not a text CSV file: an Excel workbook \(\.xlsx\), which this reader does not take: .*`, func([]string) string {
		return "Qui: una cartella Excel (.xlsx), che questa cartella non legge: salvarla da Excel come \"CSV UTF-8 (delimitato da virgole)\" con ; come separatore, o depositare il .xlsx dove le cartelle Excel sono lette."
	}),
	p(`not a text CSV file: an OpenDocument spreadsheet .*`, func([]string) string {
		return "Qui: un foglio OpenDocument (.ods): salvarlo come CSV (UTF-8, ; come separatore) o come .xlsx."
	}),
	p(`not a text CSV file: text in UTF-16 .*`, func([]string) string {
		return "Qui: testo in UTF-16 (\"Testo Unicode\" di Excel), che non si legge: salvarlo come \"CSV UTF-8 (delimitato da virgole)\" con ; come separatore."
	}),
	p(`not a text CSV file: a (zip archive|gzip-compressed file|compressed archive).*`, func([]string) string {
		return "Qui: un file compresso: estrarne il file CSV e depositare quello."
	}),
	p(`not a text CSV file: a PDF document.*`, func([]string) string {
		return "Qui: un documento PDF, non un'estrazione di dati: depositare l'esportazione CSV del gestionale."
	}),
	p(`not a text CSV file: a binary file.*`, func([]string) string {
		return "Qui: un file binario, non testo: depositare l'esportazione CSV del gestionale."
	}),
	p(`badly quoted header`, func([]string) string { return "Qui: nell'intestazione." }),
	p(`badly quoted value \(text after a closing quote, or a quote never closed\)`, func([]string) string {
		return "Qui: testo dopo le virgolette di chiusura, o virgolette mai chiuse."
	}),
	p(`billed in total (\S+), more than the CMOR notified \((\S+)\)`, func(m []string) string {
		return "addebitati in totale " + AmountIT(m[1]) + " euro, più del CMOR comunicato (" + AmountIT(m[2]) + " euro)."
	}),
	p(`collection state (\S+) does not match the amounts \(billed (\S+), collected (\S+): (\S+)\)`, func(m []string) string {
		return "stato di incasso " + m[1] + " non coerente con gli importi (addebitati " + AmountIT(m[2]) + ", incassati " + AmountIT(m[3]) + ": " + m[4] + ")."
	}),
	p(`request window closed on (\S+) \((\S+) rule\); a request on (\S+) is too late`, func(m []string) string {
		return "la finestra di richiesta si è chiusa il " + m[1] + " (regola " + map[string]string{"strict": "stretta", "lenient": "larga"}[m[2]] +
			"); una richiesta del " + m[3] + " è tardiva."
	}),
	p(`request window opens on (\S+) \(switch (\S+) \+ (\d+) months\); hold the practice until then`, func(m []string) string {
		return "la finestra di richiesta apre il " + m[1] + " (switch " + m[2] + " + " + m[3] + " mesi): la pratica attende fino ad allora."
	}),
	p(`(\d+) refused rows? and on_bad_rows = "reject_file": the whole file is refused, nothing was done`, func(m []string) string {
		return m[1] + map[bool]string{true: " riga rifiutata", false: " righe rifiutate"}[m[1] == "1"] +
			" e la cartella rifiuta i file con righe errate (on_bad_rows = \"reject_file\"): tutto il file è rifiutato, niente è stato fatto."
	}),
	p(`(\d+) refused rows and the folder refuses files with bad rows \(on_bad_rows = "reject_file"\): nothing of the file was applied`, func(m []string) string {
		return m[1] + " righe rifiutate e la cartella rifiuta i file con righe errate (on_bad_rows = \"reject_file\"): niente del file è stato applicato."
	}),
	p(`the header row does not fit (\S+) \(see the findings\); no row was read`, func(m []string) string {
		return "l'intestazione non corrisponde al tracciato " + m[1] + " (" + FlowName(nil, m[1], "it") + "; vedere gli errori): nessuna riga è stata letta."
	}),
	p(`mandatory value missing`, func([]string) string { return "" }),
	p(`value required when (.+?)( \(the file has no such column\))?`, func(m []string) string {
		s := "obbligatorio quando " + m[1]
		if m[2] != "" {
			s += " (il file non ha questa colonna)"
		}
		return s + "."
	}),
	p(`code not in cause table (\S+)`, func(m []string) string { return "codice non presente nella tabella delle causali " + m[1] + "." }),
	p(`line breaks are not allowed in a value`, func([]string) string { return "Qui: un a capo dentro il valore." }),
	p(`line longer than (\d+) bytes`, func(m []string) string { return "riga più lunga di " + m[1] + " byte." }),
	p(`the value holds the replacement character .*`, func([]string) string {
		return "Qui: il valore contiene il carattere sostitutivo \uFFFD: byte dell'estrazione non leggibili come caratteri."
	}),
	p(`electricity case without a POD`, func([]string) string { return "caso elettrico senza POD." }),
	p(`gas case without a PDR`, func([]string) string { return "caso gas senza PDR." }),
	p(`customer has neither codice fiscale nor partita IVA`, func([]string) string { return "il cliente non ha né codice fiscale né partita IVA." }),
	p(`voltage level missing; .*`, func([]string) string { return "livello di tensione mancante; sono ammessi solo i punti BT e MT." }),
	p(`gas use missing; .*`, func([]string) string { return "uso del gas mancante; atteso domestico, condominio o altri." }),
	p(`gas use (".*") is not domestico, condominio or altri`, func(m []string) string { return "uso del gas " + m[1] + " diverso da domestico, condominio o altri." }),
	p(`previous CMOR is negative; ignored`, func([]string) string { return "CMOR precedente negativo: ignorato." }),
	p(`previous CMOR (\S+) given without the CP_GESTORE of its practice`, func(m []string) string {
		return "CMOR precedente " + AmountIT(m[1]) + " indicato senza il CP_GESTORE della sua pratica."
	}),
	p(`month given twice with different spend \((\S+) and (\S+)\); using (\S+)`, func(m []string) string {
		return "mese indicato due volte con spese diverse (" + AmountIT(m[1]) + " e " + AmountIT(m[2]) + "): si usa " + AmountIT(m[3]) + "."
	}),
	p(`negative spend (\S+) ignored`, func(m []string) string { return "spesa negativa " + AmountIT(m[1]) + " ignorata." }),
	p(`no monthly spend with supply between (\S+) and (\S+); the estimate is 0`, func(m []string) string {
		return "nessuna spesa mensile con fornitura tra il " + m[1] + " e il " + m[2] + ": la stima è 0."
	}),
	p(`practice (\S+) is (\S+): no annulment to request`, func(m []string) string {
		return "la pratica " + m[1] + " è " + StateName(m[2], "it") + ": nessun annullamento da chiedere."
	}),
	p(`an annulment of (\S+) is already (ready|sent) \((\S+)\)`, func(m []string) string {
		return "un annullamento di " + m[1] + " è già " + map[string]string{"ready": "pronto per l'invio", "sent": "inviato"}[m[2]] + " (" + m[3] + ")."
	}),
	p(`already annulled`, func([]string) string { return "pratica già annullata." }),
	p(`case (\S+) was already filed as CP_UTENTE (\S+) \(state (\S+)\): not filed again`, func(m []string) string {
		return "caso " + m[1] + " già presentato come CP_UTENTE " + m[2] + " (stato " + StateName(m[3], "it") + "): non presentato di nuovo."
	}),
	p(`case (\S+) was already filed as CP_UTENTE (\S+) \(state (\S+), CMOR (\S+)\), and this extract differs from the filed claim: (.*)\. The filed claim is not changed: .*`, func(m []string) string {
		return "caso " + m[1] + " già presentato come CP_UTENTE " + m[2] + " (stato " + StateName(m[3], "it") + ", CMOR " + AmountIT(m[4]) +
			"), e questa estrazione differisce dalla richiesta presentata: " + AmountsIT(m[5]) + ". La richiesta presentata non cambia: se il debito è quello di questa estrazione, " +
			"la compliance decide se annullare la pratica (uscente.annullamenti) e presentare di nuovo il caso."
	}),
	p(`indemnity (\S+) is below the minimum (\S+)`, func(m []string) string {
		return "indennizzo di " + AmountIT(m[1]) + " euro, inferiore al minimo di " + AmountIT(m[2]) + " euro."
	}),
	p(`indemnity is exactly the minimum (\S+); admitted, .*`, func(m []string) string {
		return "indennizzo pari esattamente al minimo di " + AmountIT(m[1]) + " euro: ammesso, ma le fonti differiscono tra \"almeno\" e \"più di\"."
	}),
	p(`no countable unpaid amount in the credit window (\S+)-(\S+)`, func(m []string) string {
		return "nessun importo insoluto computabile nella finestra del credito " + m[1] + "-" + m[2] + "."
	}),
	p(`invoice not counted in the credit: (.*)`, func(m []string) string {
		return "fattura non computata nel credito (" + AmountsIT(m[1]) + ")."
	}),
	p(`the customer still has points supplied by us; .*`, func([]string) string {
		return "il cliente ha ancora punti forniti da noi; l'indennizzo richiede la perdita di tutti."
	}),
	p(`switch date missing`, func([]string) string { return "data di switch mancante." }),
	p(`no invoices: .*`, func([]string) string {
		return "nessuna fattura: la richiesta deve elencare le fatture insolute alla base del credito."
	}),
	p(`closing invoice \(fattura di chiusura, TIF\) not issued`, func([]string) string { return "fattura di chiusura (TIF) non emessa." }),
	p(`TIF art\. 18 automatic indemnities not paid`, func([]string) string { return "indennizzi automatici TIF art. 18 non pagati." }),
	p(`complaints or rectification requests unanswered, or TIQV indemnities unpaid`, func([]string) string {
		return "reclami o richieste di rettifica senza risposta, o indennizzi TIQV non pagati."
	}),
	p(`the point is no longer active`, func([]string) string { return "il punto non è più attivo." }),
	p(`the point changed holder \(voltura\)`, func([]string) string { return "il punto ha cambiato intestatario (voltura)." }),
	p(`no mora notice: .*`, func([]string) string {
		return "nessuna messa in mora: il cliente va messo in mora per iscritto prima della richiesta."
	}),
	p(`voltage level (\S+) is not eligible; only BT and MT points are`, func(m []string) string {
		return "livello di tensione " + m[1] + " non ammissibile: lo sono solo i punti BT e MT."
	}),
	p(`(condominio uso domestico|other uses) consume(?:s)? (\d+) Smc/year, above the (\d+) limit`, func(m []string) string {
		return "consumo di " + m[2] + " Smc/anno, oltre il limite di " + m[3] + "."
	}),
}

// moraPatterns say the problems of one mora notice (E5).
var moraPatterns = []detailPattern{
	p(`date missing`, func([]string) string { return "data mancante" }),
	p(`dated (\S+), not before the request date (\S+)`, func(m []string) string {
		return "datata " + m[1] + ", non precedente alla data della richiesta " + m[2]
	}),
	p(`channel (".*") is neither RA \(raccomandata A/R\) nor PE \(PEC\)`, func(m []string) string {
		return "mezzo " + m[1] + " né RA (raccomandata A/R) né PE (PEC)"
	}),
	p(`the notice did not inform the customer about the CMOR`, func([]string) string {
		return "non informava il cliente sul CMOR"
	}),
	p(`payment term missing`, func([]string) string { return "termine di pagamento mancante" }),
	p(`payment term (\S+) has not expired before the request date (\S+)`, func(m []string) string {
		return "termine di pagamento " + m[1] + " non scaduto prima della data della richiesta " + m[2]
	}),
	p(`payment term (\S+) is before the notice date (\S+)`, func(m []string) string {
		return "termine di pagamento " + m[1] + " precedente alla data della messa in mora " + m[2]
	}),
	p(`received on (\S+), not before the request date (\S+)`, func(m []string) string {
		return "ricevuta il " + m[1] + ", non prima della data della richiesta " + m[2]
	}),
	p(`received on (\S+), before the notice date (\S+)`, func(m []string) string {
		return "ricevuta il " + m[1] + ", prima della data della messa in mora " + m[2]
	}),
}

var moraRE = regexp.MustCompile(`^mora notice (\d+)( \(.*\))?: (.*)$`)

// DetailIT says msg in Italian with its facts, "" when no pattern knows it or when
// the message adds nothing to the rule's Italian wording (Known tells the two apart).
func DetailIT(msg string) string {
	s, _ := detailIT(msg)
	return s
}

// Known: a pattern knows msg (DetailIT may still be "": nothing to add to the rule).
func Known(msg string) bool {
	_, ok := detailIT(msg)
	return ok
}

func detailIT(msg string) (string, bool) {
	msg = strings.TrimSpace(msg)
	if m := moraRE.FindStringSubmatch(msg); m != nil {
		for _, d := range moraPatterns {
			if mm := d.re.FindStringSubmatch(m[3]); mm != nil {
				return "Messa in mora n. " + m[1] + m[2] + ": " + d.it(mm) + ".", true
			}
		}
		return "", false
	}
	for _, d := range detailPatterns {
		if m := d.re.FindStringSubmatch(msg); m != nil {
			s := d.it(m)
			if s == "" {
				return "", true
			}
			return strings.ToUpper(s[:1]) + s[1:], true
		}
	}
	return "", false
}

// IsAmountField: a finding's (or exception's) value in field under rule is an amount
// cmord wrote (canonical, decimal point: a computed indemnity, a payment read and
// normalised), not text quoted from the file as the operator typed it (TYPE-AMOUNT,
// CELL-DATE, the CSV-* rules), which is shown as it is.
func IsAmountField(field, rule string) bool {
	switch {
	case rule == flows.RuleAmount || rule == flows.RuleCellDate || strings.HasPrefix(rule, "CSV-"):
		return false
	case rule == "E9":
		return true
	}
	for _, p := range []string{"IMPORTO", "STIMA", "SPESA", "CMOR", "RESIDUO", "CREDITO"} {
		if strings.Contains(field, p) {
			return true
		}
	}
	return false
}
