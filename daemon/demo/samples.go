package demo

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cmord/cmord/flows"
)

// person builds a valid codice fiscale from its first 15 characters.
func person(first15 string) string { return first15 + string(flows.CFCheckChar(first15)) }

// company builds a valid partita IVA from its first 10 digits.
func company(first10 string) string { return first10 + string(flows.PIVACheckDigit(first10)) }

// moroso is one switched-out customer of the sample extract.
type moroso struct {
	sector, point, cf, piva, name string
	monthsAgo                     int      // switch date: first of the month, this many months ago
	unpaid                        []string // one invoice per amount, in the last months before the switch
	infoCMOR                      string
	note                          string // why it is in the sample
}

// Samples are the demo customers: good ones and ones cmord must refuse.
func samples() []moroso {
	return []moroso{
		{"E", "IT001E12345678", person("RSSMRA85T10A562"), "", "Mario Rossi", 7, []string{"120.50", "98.30", "143.10"}, "S", "ammissibile: richiesta preparata e inviata"},
		{"G", "00881234567890", person("BNCLRA70A41F205"), "", "Laura Bianchi", 8, []string{"210.00", "187.45"}, "S", "ammissibile (gas, uso domestico)"},
		{"E", "IT004E87654321", "", company("0123456789"), "Verdi Impianti S.r.l.", 9, []string{"1450.00", "1320.80", "990.15"}, "S", "ammissibile (azienda, MT)"},
		{"E", "IT001E11112222", person("FRRGNN60C12H501"), "", "Giovanni Ferrari", 3, []string{"88.20", "91.70"}, "S", "finestra non ancora aperta: in attesa"},
		{"E", "IT002E33334444", person("CLMPLA75E50L219"), "", "Paola Colombo", 15, []string{"65.00", "72.40"}, "S", "non ammissibile: finestra di richiesta chiusa (E3)"},
		{"E", "IT001E55556666", "RSSMRA85T10A562T", "", "Marco Rossi", 7, []string{"77.00"}, "S", "da correggere: carattere di controllo del codice fiscale (ID-CF)"},
		{"G", "00774455667788", person("RCCFNC80M01F839"), "", "Francesco Ricci", 8, []string{"130.00", "95.00"}, "N", "non ammissibile: la messa in mora non citava il CMOR (E5)"},
		{"E", "IT003E99990000", person("MRNLCU90H15D612"), "", "Luca Marino", 7, []string{"6.40"}, "S", "non ammissibile: indennizzo sotto i 10 euro (E9)"},
	}
}

// MorosiHeader is the header of the sample extract: our field names (a billing system
// with other names maps them in [folder.mapping]).
var morosiHeader = []string{"SETTORE", "COD_POD", "COD_PDR", "CF_CLIENTE", "PIVA_CLIENTE", "DENOMINAZIONE", "DATA_SWITCH",
	"TENSIONE", "USO_GAS", "CONSUMO_ANNUO_SMC", "NUM_FATTURA", "DATA_EMISSIONE", "DATA_SCADENZA", "PERIODO_DA", "PERIODO_A",
	"IMPORTO_FATTURA", "IMPORTO_INSOLUTO", "IMPORTO_RAI", "TIPO_LETTURA", "CONGUAGLIO", "RICOSTRUZIONE", "DATA_MORA",
	"MEZZO_MORA", "DATA_RICEVIMENTO_MORA", "TERMINE_MORA", "INFO_CMOR", "RIF_MORA", "SPESA_12M", "CMOR_PRECEDENTE",
	"CP_GESTORE_PRECEDENTE", "FATTURA_CHIUSURA", "INDENNIZZI_TIF_PAGATI", "RECLAMI_EVASI", "PUNTO_ATTIVO", "VOLTURA",
	"TUTTI_PUNTI_PERSI", "NOTE"}

// MorosiCSV renders the sample uscente.morosi extract, dated relative to today.
func MorosiCSV(now time.Time) []byte {
	today := flows.Today(now)
	var b bytes.Buffer
	b.WriteString(strings.Join(morosiHeader, ";") + "\r\n")
	for ci, m := range samples() {
		sw := today.FirstOfMonth().AddMonths(-m.monthsAgo)
		var spend []string
		for k := 12; k >= 1; k-- {
			month := sw.AddMonths(-k)
			spend = append(spend, fmt.Sprintf("%04d-%02d:%d.%02d", month.Y, int(month.M), 60+(ci*13+k*7)%70, (k*17)%100))
		}
		// The mora notice follows the due date of the last unpaid invoice.
		lastFrom := sw.AddMonths(-2)
		mora := lastFrom.AddMonths(1).AddDays(-1).AddDays(10).AddDays(20).AddDays(5)
		for i, amount := range m.unpaid {
			from := sw.AddMonths(-(len(m.unpaid) - i) - 1)
			to := from.AddMonths(1).AddDays(-1)
			issued := to.AddDays(10)
			row := map[string]string{
				"SETTORE": m.sector, "DENOMINAZIONE": m.name, "DATA_SWITCH": sw.String(),
				"CF_CLIENTE": m.cf, "PIVA_CLIENTE": m.piva,
				"NUM_FATTURA":    fmt.Sprintf("F%04d%02d%03d", issued.Y, int(issued.M), ci*10+i+1),
				"DATA_EMISSIONE": issued.String(), "DATA_SCADENZA": issued.AddDays(20).String(),
				"PERIODO_DA": from.String(), "PERIODO_A": to.String(),
				"IMPORTO_FATTURA": amount, "IMPORTO_INSOLUTO": amount, "TIPO_LETTURA": "E", "RICOSTRUZIONE": "N",
				"DATA_MORA": mora.String(), "MEZZO_MORA": "PE", "DATA_RICEVIMENTO_MORA": mora.AddDays(1).String(),
				"TERMINE_MORA": mora.AddDays(15).String(), "INFO_CMOR": m.infoCMOR, "RIF_MORA": fmt.Sprintf("PEC-%d-%d", sw.Y, ci+1),
				"SPESA_12M": strings.Join(spend, ","), "FATTURA_CHIUSURA": "S", "INDENNIZZI_TIF_PAGATI": "S",
				"RECLAMI_EVASI": "S", "PUNTO_ATTIVO": "S", "VOLTURA": "N", "TUTTI_PUNTI_PERSI": "S", "NOTE": m.note,
			}
			if m.sector == "E" {
				row["COD_POD"] = m.point
				row["TENSIONE"] = "BT"
				if m.piva != "" {
					row["TENSIONE"] = "MT"
				}
			} else {
				row["COD_PDR"] = m.point
				row["USO_GAS"] = "domestico"
			}
			cols := make([]string, len(morosiHeader))
			for j, h := range morosiHeader {
				cols[j] = row[h]
			}
			b.WriteString(strings.Join(cols, ";") + "\r\n")
		}
	}
	return b.Bytes()
}

// IncassiCSV renders a payments extract: Mario Rossi paid everything after the
// request was sent, so cmord must file an annulment (cause: debt paid).
func IncassiCSV(now time.Time) []byte {
	today := flows.Today(now)
	m := samples()[0]
	sw := today.FirstOfMonth().AddMonths(-m.monthsAgo)
	var b bytes.Buffer
	b.WriteString("COD_POD;COD_PDR;CF_CLIENTE;PIVA_CLIENTE;CP_UTENTE;NUM_FATTURA;DATA_INCASSO;IMPORTO_INCASSATO;RESIDUO_INSOLUTO;MEZZO_PAGAMENTO;RIF_INCASSO\r\n")
	for i, amount := range m.unpaid {
		from := sw.AddMonths(-(len(m.unpaid) - i) - 1)
		issued := from.AddMonths(1).AddDays(9)
		fmt.Fprintf(&b, "%s;;%s;;;%s;%s;%s;0.00;bonifico;TRN%04d\r\n", m.point, m.cf,
			fmt.Sprintf("F%04d%02d%03d", issued.Y, int(issued.M), i+1), today.AddDays(-1).String(), amount, i+1)
	}
	return b.Bytes()
}

// drop writes a file into a drop folder the way billing should: under a temporary
// name, then renamed, so cmord never sees it half-written.
func drop(dir, name string, content []byte) error {
	tmp := filepath.Join(dir, name+".part")
	if err := os.WriteFile(tmp, content, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// DropMorosi drops the sample extract into the morosi folder.
func (d *Demo) DropMorosi(now time.Time) (string, error) {
	name := fmt.Sprintf("morosi_%s.csv", now.In(flows.Rome).Format("20060102"))
	return name, drop(d.Path("in/morosi"), name, MorosiCSV(now))
}

// DropIncassi drops the sample payments into the incassi folder.
func (d *Demo) DropIncassi(now time.Time) (string, error) {
	name := fmt.Sprintf("incassi_%s.csv", now.In(flows.Rome).Format("20060102"))
	return name, drop(d.Path("in/incassi"), name, IncassiCSV(now))
}

// FatturatoCSV renders billing's report of the CMOR charged to the two customers
// that came to us: the first has not paid it, the second has.
func FatturatoCSV(now time.Time, codes []string) []byte {
	today := flows.Today(now)
	var b bytes.Buffer
	b.WriteString("CP_GESTORE;COD_POD;COD_PDR;CF_CLIENTE;PIVA_CLIENTE;NUM_FATTURA_CMOR;DATA_FATTURA;IMPORTO_FATTURATO;DATA_SCADENZA;STATO_INCASSO;IMPORTO_INCASSATO;DATA_INCASSO\r\n")
	fmt.Fprintf(&b, "%s;IT001E24681357;;;;FC%04d0001;%s;187.60;%s;N;;\r\n", codes[0], today.Y, today.AddDays(-1).String(), today.AddDays(20).String())
	fmt.Fprintf(&b, "%s;;00991122334455;;;FC%04d0002;%s;96.25;%s;I;96.25;%s\r\n", codes[1], today.Y, today.AddDays(-1).String(), today.AddDays(20).String(), today.String())
	return b.Bytes()
}

// SospensioniCSV renders billing's suspension list: the first customer, who did not
// pay the CMOR, had its supply suspended for non-payment.
func SospensioniCSV(now time.Time, codes []string) []byte {
	today := flows.Today(now)
	var b bytes.Buffer
	b.WriteString("CP_GESTORE;COD_POD;COD_PDR;MOTIVO_SOSPENSIONE;DATA_RICHIESTA_SOSPENSIONE_FORNITURA;DATA_SOSPENSIONE;COD_PRATICA_SOSPENSIONE_DISTRIBUTORE;CMOR_INCASSATO;DATA_RIATTIVAZIONE;NOTE\r\n")
	fmt.Fprintf(&b, "%s;IT001E24681357;;SO-01;%s;%s;DSO%04d000123;N;;fornitura sospesa per morosità\r\n", codes[0], today.AddDays(-2).String(), today.String(), today.Y)
	return b.Bytes()
}

// DropFatturato drops billing's CMOR report into the fatturato folder.
func (d *Demo) DropFatturato(now time.Time, codes []string) (string, error) {
	name := fmt.Sprintf("fatturato_%s.csv", now.In(flows.Rome).Format("20060102"))
	return name, drop(d.Path("in/fatturato"), name, FatturatoCSV(now, codes))
}

// DropSospensioni drops billing's suspension list into the sospensioni folder.
func (d *Demo) DropSospensioni(now time.Time, codes []string) (string, error) {
	name := fmt.Sprintf("sospensioni_%s.csv", now.In(flows.Rome).Format("20060102"))
	return name, drop(d.Path("in/sospensioni"), name, SospensioniCSV(now, codes))
}
