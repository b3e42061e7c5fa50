package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cmord/cmord/flows"
)

// FakeSII plays the Sistema Informativo Integrato for the demo: it reads the flows
// cmord publishes into the SII's inbox on the demo SFTP server and writes the
// answers a real SII would send (admissibility, outcome, notices) into the folder
// cmord polls. It is a script, not a model of the SII's checks: one request is
// declared inadmissible so that the digest has a refusal to show.
type FakeSII struct {
	d     *Demo
	cat   *flows.Catalog
	piva  string // our company (PIVA_UTENTE)
	au    string // PIVA_GESTORE
	state fakeState
	path  string
}

type fakeState struct {
	Seen           map[string]bool   // files of ours already read
	Gestore        map[string]string // CP_UTENTE → CP_GESTORE assigned
	Amounts        map[string]string // CP_UTENTE → requested indemnity
	PendingEsito   []string          // CP_UTENTE admitted, outcome due next round
	PendingSusp    [][2]string       // (CP_UTENTE, CP_GESTORE) of suspension requests, outcome next round
	Counter        int
	Files          int
	NotifiedEntr   bool
	RefusedOneReq  bool
	EntrantePoints []string
	EntranteCodes  []string // CP_GESTORE of the notices sent to us as entrante
}

// NewFakeSII loads (or starts) the scripted SII's state.
func NewFakeSII(d *Demo, cat *flows.Catalog) (*FakeSII, error) {
	f := &FakeSII{d: d, cat: cat, piva: d.Config.Company.PIVA, au: d.Config.Company.PIVAGestore, path: d.Path("fakesii.json")}
	f.state = fakeState{Seen: map[string]bool{}, Gestore: map[string]string{}, Amounts: map[string]string{}}
	if b, err := os.ReadFile(f.path); err == nil {
		if err := json.Unmarshal(b, &f.state); err != nil {
			return nil, fmt.Errorf("demo SII state %s: %w", f.path, err)
		}
	}
	return f, nil
}

func (f *FakeSII) save() error {
	b, _ := json.MarshalIndent(f.state, "", "  ")
	return os.WriteFile(f.path, b, 0o640)
}

// Round reads what cmord published since the last round and answers it. It returns
// the names of the answer files written.
func (f *FakeSII) Round(now time.Time) ([]string, error) {
	var out []string
	today := flows.Today(now)
	// Outcomes promised at the previous round come first, as the SII answers in days.
	if len(f.state.PendingEsito) > 0 {
		var rows []map[string]string
		for _, cp := range f.state.PendingEsito {
			rows = append(rows, map[string]string{"CP_UTENTE": cp, "CP_GESTORE": f.state.Gestore[cp], "ESITO": "1",
				"IMPORTO_CMOR_VALIDATO": f.state.Amounts[cp], "DATA_ESITO": today.String()})
		}
		name, err := f.write("REQ_ESITO", rows, now)
		if err != nil {
			return out, err
		}
		out = append(out, name)
		f.state.PendingEsito = nil
	}
	if len(f.state.PendingSusp) > 0 {
		var rows []map[string]string
		for _, s := range f.state.PendingSusp {
			rows = append(rows, map[string]string{"CP_UTENTE": s[0], "CP_GESTORE": s[1], "ESITO": "1", "DATA_ESITO": today.String()})
		}
		name, err := f.write("SUSP_ESITO", rows, now)
		if err != nil {
			return out, err
		}
		out = append(out, name)
		f.state.PendingSusp = nil
	}
	inbox := f.d.Path(SIIInbox)
	ents, err := os.ReadDir(inbox)
	if err != nil {
		return out, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || f.state.Seen[e.Name()] {
			continue
		}
		names, err := f.answer(filepath.Join(inbox, e.Name()), now)
		if err != nil {
			return out, fmt.Errorf("demo SII reading %s: %w", e.Name(), err)
		}
		out = append(out, names...)
		f.state.Seen[e.Name()] = true
	}
	if !f.state.NotifiedEntr {
		name, err := f.notifyEntrante(now)
		if err != nil {
			return out, err
		}
		out = append(out, name)
		f.state.NotifiedEntr = true
	}
	return out, f.save()
}

// answer reads one flow file of ours and writes the SII's answers to it.
func (f *FakeSII) answer(path string, now time.Time) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	flow := f.cat.IdentifyReader(filepath.Base(path), io.NewSectionReader(fh, 0, flows.IdentifyHead))
	if flow == nil {
		return nil, nil
	}
	r := flows.NewCSVReader(fh, flow, flows.ReadOptions{FileName: filepath.Base(path)})
	type req struct{ cp, gestore, amount string }
	var reqs []req
	seen := map[string]bool{}
	for {
		rec, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		cp := rec.Get("CP_UTENTE")
		if seen[cp] {
			continue // REQ has one row per invoice
		}
		seen[cp] = true
		reqs = append(reqs, req{cp, rec.Get("CP_GESTORE"), rec.Get("IMPORTO_INDENNIZZO")})
	}
	today := flows.Today(now)
	var out []string
	emit := func(key string, rows []map[string]string) error {
		if len(rows) == 0 {
			return nil
		}
		name, err := f.write(key, rows, now)
		if err == nil {
			out = append(out, name)
		}
		return err
	}
	switch flow.Key {
	case "REQ":
		var amm []map[string]string
		for _, q := range reqs {
			if !f.state.RefusedOneReq && len(reqs) > 1 && q.cp == reqs[len(reqs)-1].cp {
				// One request of the first batch is inadmissible, to show a refusal.
				f.state.RefusedOneReq = true
				amm = append(amm, map[string]string{"CP_UTENTE": q.cp, "VERIFICA_AMM": "0", "COD_CAUSALE": "4",
					"MOTIVAZIONE": "Campi obbligatori mancanti o valorizzati in modo errato (RIF_COMUNICAZIONE)"})
				continue
			}
			f.state.Counter++
			g := fmt.Sprintf("SII%04dA%07d", today.Y, 8588000+f.state.Counter)
			f.state.Gestore[q.cp], f.state.Amounts[q.cp] = g, q.amount
			f.state.PendingEsito = append(f.state.PendingEsito, q.cp)
			amm = append(amm, map[string]string{"CP_UTENTE": q.cp, "CP_GESTORE": g, "VERIFICA_AMM": "1"})
		}
		return out, emit("REQ_AMM", amm)
	case "ANN_REQ":
		var amm, notif []map[string]string
		for _, q := range reqs {
			amm = append(amm, map[string]string{"CP_UTENTE": q.cp, "CP_GESTORE": q.gestore, "VERIFICA_AMM": "1"})
			notif = append(notif, map[string]string{"CP_UTENTE": q.cp, "CP_GESTORE": q.gestore, "COD_CAUSALE_ANNULLAMENTO": "AN-02",
				"MOTIVAZIONE": "Debito saldato dal cliente", "DATA_ANNULLAMENTO": today.String(), "FLAG_INDENNIZZO_GIA_EROGATO": "N"})
		}
		if err := emit("ANN_AMM", amm); err != nil {
			return out, err
		}
		return out, emit("ANN_NOTIF", notif)
	case "SUSP_REQ":
		var amm []map[string]string
		for _, q := range reqs {
			amm = append(amm, map[string]string{"CP_UTENTE": q.cp, "CP_GESTORE": q.gestore, "VERIFICA_AMM": "1"})
			f.state.PendingSusp = append(f.state.PendingSusp, [2]string{q.cp, q.gestore})
		}
		return out, emit("SUSP_AMM", amm)
	case "REND":
		var amm []map[string]string
		for _, q := range reqs {
			amm = append(amm, map[string]string{"CP_UTENTE": q.cp, "CP_GESTORE": q.gestore, "VERIFICA_AMM": "1"})
		}
		return out, emit("REND_AMM", amm)
	}
	return out, nil
}

// notifyEntrante sends two acceptance notices: customers that came to us carrying a
// CMOR we must charge (one of them we will suspend).
func (f *FakeSII) notifyEntrante(now time.Time) (string, error) {
	today := flows.Today(now)
	rows := []map[string]string{
		{"CP_GESTORE": fmt.Sprintf("SII%04dB%07d", today.Y, 1200301), "SETTORE": "E", "COD_POD": "IT001E24681357",
			"CF_CLIENTE": person("GLLSRA88D45F205"), "IMPORTO_CMOR": "187.60", "FLAG_CMOR_PRECEDENTE_NON_RISCOSSO": "N",
			"DATA_NOTIFICA": today.String(), "TERMINE_SOSPENSIONE": today.AddDays(10).String()},
		{"CP_GESTORE": fmt.Sprintf("SII%04dB%07d", today.Y, 1200302), "SETTORE": "G", "COD_PDR": "00991122334455",
			"CF_CLIENTE": person("CNTMTT79B12L219"), "IMPORTO_CMOR": "96.25", "FLAG_CMOR_PRECEDENTE_NON_RISCOSSO": "N",
			"DATA_NOTIFICA": today.String(), "TERMINE_SOSPENSIONE": today.AddDays(10).String()},
	}
	f.state.EntrantePoints = []string{rows[0]["COD_POD"], rows[1]["COD_PDR"]}
	f.state.EntranteCodes = []string{rows[0]["CP_GESTORE"], rows[1]["CP_GESTORE"]}
	return f.write("NOTIF_ENTR", rows, now)
}

// write renders one answer file of the SII into the folder cmord polls, under a
// temporary name first.
func (f *FakeSII) write(key string, rows []map[string]string, now time.Time) (string, error) {
	flow := f.cat.Flow(key)
	if flow == nil {
		return "", fmt.Errorf("catalog has no flow %s", key)
	}
	var buf bytes.Buffer
	w := flows.NewCSVWriter(&buf, flow)
	for _, r := range rows {
		r["COD_SERVIZIO"], r["COD_FLUSSO"] = flow.Service, flow.Code
		r["PIVA_UTENTE"], r["PIVA_GESTORE"] = f.piva, f.au
		if err := w.Write(r); err != nil {
			return "", fmt.Errorf("demo SII writing %s: %w", key, err)
		}
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	f.state.Files++
	name := fmt.Sprintf("%s%s_%s_%s_%03d.csv", flow.Service, flow.Code, f.piva, now.In(flows.Rome).Format("20060102T150405"), f.state.Files)
	return name, drop(f.d.Path(SIIOutbox), name, buf.Bytes())
}

// EntranteCodes returns the CP_GESTORE of the two entrante practices the scripted SII
// notified (empty before the first round).
func (f *FakeSII) EntranteCodes() []string { return f.state.EntranteCodes }
