package archive

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
)

// A request's data (request_rows.data: the values to write into its file, by field
// name) is stored in one of two forms, both read:
//   - JSON (written up to the sixth round of issue 16): an object of strings, as
//     json.Marshal writes it, e.g. {"IMPORTO_CREDITO":"271.23",...} (90 bytes for a
//     REQ);
//   - compact (written since): a BLOB whose first byte is requestDataCompact (a byte
//     no JSON text starts with), then one entry per name, in name order:
//     a code byte, low 7 bits the name (1..127: requestDataNames[code-1]; 0: the name
//     follows, a uvarint length and its bytes), high bit the value's kind (0: a
//     uvarint length and its bytes; 1: an amount in canonical form, "-"? digits "."
//     two digits without a leading zero, e.g. "271.23", as a zigzag varint of its
//     cents). A REQ's three amounts take 13 bytes.
//
// Both decode to the same map: decodeRequestData.
const requestDataCompact = 0x01

// requestDataAmount marks, in a compact entry's code byte, a value stored as cents.
const requestDataAmount = 0x80

// requestDataNames is the compact form's table of field names: the fields of the
// default catalog's outgoing (request) flows, in catalog order (REQ, SUSP_REQ,
// SUSP_REVOKE, ANN_REQ, REFUND_ACK, REND), then the entrante's own "_src". A name's
// code is its index + 1, and it is stored in every compact request since: the table
// is APPEND-ONLY. Never reorder, remove or rename an entry (a renamed field is a new
// name: append it); a name not in it is stored in full. At most 127 entries
// (TestRequestDataNamesPinned pins them).
var requestDataNames = [...]string{
	"COD_SERVIZIO", "COD_FLUSSO", "PIVA_UTENTE", "PIVA_GESTORE",
	"CP_UTENTE", "PIVA_CC_USCENTE", "SETTORE", "COD_POD",
	"COD_PDR", "CF_CLIENTE", "PIVA_CLIENTE", "DENOMINAZIONE",
	"DATA_SWITCH", "IMPORTO_CREDITO", "IMPORTO_INDENNIZZO", "IMPORTO_CMOR_PRECEDENTE",
	"CP_GESTORE_CMOR_PRECEDENTE", "STIMA_SPESA_4_MESI", "NUM_FATTURA", "DATA_EMISSIONE",
	"DATA_SCADENZA", "PERIODO_DA", "PERIODO_A", "IMPORTO_FATTURA",
	"IMPORTO_INSOLUTO", "TIPO_LETTURA", "DATA_COSTITUZIONE_MORA", "MEZZO",
	"DATA_RICEVIMENTO", "TERMINE_PAGAMENTO", "RIF_COMUNICAZIONE", "INFO_CMOR",
	"NOTE", "CP_GESTORE", "MOTIVO_SOSPENSIONE", "DATA_RICHIESTA_SOSPENSIONE_FORNITURA",
	"COD_PRATICA_SOSPENSIONE_DISTRIBUTORE", "CMOR_INCASSATO", "MOTIVO_REVOCA", "DATA_REVOCA",
	"COD_CAUSALE_ANNULLAMENTO", "MOTIVAZIONE", "DATA_EVENTO", "DATA_RESTITUZIONE",
	"IMPORTO_RESTITUITO", "MODALITA", "NUM_FATTURA_CMOR", "DATA_FATTURA",
	"IMPORTO_FATTURATO", "STATO_INCASSO", "IMPORTO_INCASSATO", "DATA_INCASSO",
	"_src",
}

// requestDataCodes is requestDataNames by name: each name's code.
var requestDataCodes = func() map[string]byte {
	m := make(map[string]byte, len(requestDataNames))
	for i, n := range requestDataNames {
		m[n] = byte(i + 1)
	}
	return m
}()

// encodeRequestData is m's stored form, compact (nil m as empty).
func encodeRequestData(m map[string]string) []byte {
	names := make([]string, 0, len(m))
	size := 1
	for k, v := range m {
		names = append(names, k)
		size += 2 + len(k) + len(v)
	}
	slices.Sort(names)
	b := make([]byte, 1, size)
	b[0] = requestDataCompact
	for _, k := range names {
		v := m[k]
		code, known := requestDataCodes[k]
		cents, amount := amountCents(v)
		if amount {
			code |= requestDataAmount
		}
		b = append(b, code)
		if !known {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
		}
		if amount {
			b = binary.AppendVarint(b, cents)
		} else {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

// maxAmountCents bounds the amounts stored as cents: 16 integer digits.
const maxAmountCents = 1e18

// amountCents reads v as an amount in canonical form ("-"? digits "." two digits, no
// leading zero, not "-0.00"; at most 16 integer digits): exactly the texts
// appendAmount writes back. ok is false for anything else (stored as text).
func amountCents(v string) (cents int64, ok bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	n := len(v)
	if n < 4 || n > 19 || v[n-3] != '.' || (v[0] == '0' && n > 4) {
		return 0, false
	}
	for i := 0; i < n; i++ {
		if i == n-3 {
			continue
		}
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		cents = cents*10 + int64(c-'0')
	}
	if neg {
		if cents == 0 {
			return 0, false
		}
		cents = -cents
	}
	return cents, true
}

// appendAmount writes cents as amountCents reads them.
func appendAmount(b []byte, cents int64) []byte {
	if cents < 0 {
		b = append(b, '-')
		cents = -cents
	}
	b = strconv.AppendInt(b, cents/100, 10)
	return append(b, '.', byte('0'+cents/10%10), byte('0'+cents%10))
}

// decodeCompactRequestData reads the compact form (text[0] is requestDataCompact)
// into *m (made if nil); ok is false, and *m untouched, if text is not one whole.
func decodeCompactRequestData(text string, m *map[string]string) (ok bool) {
	type entry struct{ k, v string }
	var entries []entry
	i := 1
	str := func() (string, bool) { // a uvarint length and that many bytes at text[i]
		n, w := binary.Uvarint([]byte(text[i:min(len(text), i+binary.MaxVarintLen64)]))
		if w <= 0 || n > uint64(len(text)-i-w) {
			return "", false
		}
		i += w
		s := text[i : i+int(n)]
		i += int(n)
		return s, true
	}
	for i < len(text) {
		code := text[i]
		i++
		var e entry
		if idx := int(code &^ requestDataAmount); idx == 0 {
			k, ok := str()
			if !ok {
				return false
			}
			e.k = k
		} else if idx <= len(requestDataNames) {
			e.k = requestDataNames[idx-1]
		} else {
			return false
		}
		if code&requestDataAmount != 0 {
			cents, w := binary.Varint([]byte(text[i:min(len(text), i+binary.MaxVarintLen64)]))
			if w <= 0 || cents <= -maxAmountCents || cents >= maxAmountCents {
				return false
			}
			i += w
			e.v = string(appendAmount(nil, cents))
		} else {
			v, ok := str()
			if !ok {
				return false
			}
			e.v = v
		}
		entries = append(entries, e)
	}
	if *m == nil {
		*m = make(map[string]string, len(entries))
	}
	for _, e := range entries {
		(*m)[e.k] = e.v
	}
	return true
}

// decodeRequestData decodes a request's data, in either stored form, into *m: the
// compact form as encodeRequestData wrote it, JSON exactly as json.Unmarshal does,
// an error ignored (*m left as it was) as the readers always did. The build reads
// thousands of requests a file: a JSON object as json.Marshal writes one, of
// printable ASCII without escapes (flatStringMap), is split by hand; anything else
// goes to json.Unmarshal.
func decodeRequestData(text string, m *map[string]string) {
	if len(text) > 0 && text[0] == requestDataCompact {
		decodeCompactRequestData(text, m)
		return
	}
	if *m == nil {
		if fast, ok := flatStringMap(text); ok {
			*m = fast
			return
		}
	}
	_ = json.Unmarshal([]byte(text), m)
}

// flatStringMap reads text when it is a JSON object of string values with no space
// between tokens and no byte in its strings outside printable ASCII but '"' and '\'
// (no escapes): then json.Unmarshal would give the same map (a later key replacing
// an earlier one). ok is false for anything else.
func flatStringMap(text string) (m map[string]string, ok bool) {
	if len(text) < 2 || text[0] != '{' {
		return nil, false
	}
	if text == "{}" {
		return map[string]string{}, true
	}
	m = make(map[string]string, 4)
	i := 1
	str := func() (string, bool) { // a string starting at text[i], i moved past it
		if i >= len(text) || text[i] != '"' {
			return "", false
		}
		start := i + 1
		for j := start; j < len(text); j++ {
			c := text[j]
			if c == '"' {
				i = j + 1
				return text[start:j], true
			}
			if c < 0x20 || c > 0x7e || c == '\\' {
				return "", false
			}
		}
		return "", false
	}
	for {
		k, ok := str()
		if !ok || i >= len(text) || text[i] != ':' {
			return nil, false
		}
		i++
		v, ok := str()
		if !ok || i >= len(text) {
			return nil, false
		}
		m[k] = v
		switch text[i] {
		case ',':
			i++
		case '}':
			if i != len(text)-1 {
				return nil, false
			}
			return m, true
		default:
			return nil, false
		}
	}
}
