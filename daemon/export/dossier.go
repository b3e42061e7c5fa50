package export

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/flows"
)

// ManifestName is the dossier entry listing the SHA-256 of every other entry, in
// sha256sum format: after unzipping, `sha256sum -c manifest.sha256` checks them all.
const ManifestName = "manifest.sha256"

// CaseStoredName is the dossier entry holding a practice's stored case, byte for byte,
// when it cannot be read (archive.Practice.CaseUnreadable): the evidence is kept, and
// history.txt and practice.json ("case_unreadable") say so, rather than the case
// silently missing from the dossier.
const CaseStoredName = "case.stored.bin"

// dossierText holds the labels of the dossier's human-readable files.
type dossierText struct {
	title, practice, history, files, exceptions, none                  string
	at, from, to, flow, file, line, cause, note                        string
	id, name, direction, kind, relation, received, sha, severity, what string
	state, open, resolved, explanation, auto, in, out                  string
	caseUnreadable                                                     string // the warning of a practice whose stored case cannot be read
	comma                                                              rune   // CSV field separator: ';' for an Italian Excel, ',' in English
}

var dossierLabels = map[string]dossierText{
	"it": {title: "Fascicolo della pratica", practice: "Pratica", history: "Storia", files: "File", exceptions: "Eccezioni",
		none: "nessuna", at: "quando (Europe/Rome)", from: "da", to: "a", flow: "flusso", file: "file", line: "riga",
		cause: "causale", note: "nota", id: "id", name: "nome", direction: "direzione", kind: "tipo", relation: "relazione",
		received: "ricevuto (Europe/Rome)", sha: "sha256", severity: "gravità", what: "dettaglio tecnico", state: "stato",
		open: "aperta", resolved: "risolta", explanation: "spiegazione", auto: "automatica: condizione rientrata",
		in: "ricevuto", out: "inviato", comma: ';',
		caseUnreadable: "ATTENZIONE: il caso archiviato di questa pratica (le righe di fatturazione da cui è stata decisa) non si legge: " +
			"modificato fuori da cmord, o il dizionario su cui era compresso modificato o cancellato. practice.json non lo riporta; " +
			"il fascicolo lo contiene com'è archiviato in " + CaseStoredName + ". Eseguire cmord archive verify e avvisare l'amministratore."},
	"en": {title: "Practice dossier", practice: "Practice", history: "History", files: "Files", exceptions: "Exceptions",
		none: "none", at: "at (Europe/Rome)", from: "from", to: "to", flow: "flow", file: "file", line: "line",
		cause: "cause", note: "note", id: "id", name: "name", direction: "direction", kind: "kind", relation: "relation",
		received: "received (Europe/Rome)", sha: "sha256", severity: "severity", what: "message", state: "state",
		open: "open", resolved: "resolved", explanation: "explanation", auto: "automatic: the condition cleared",
		in: "in", out: "out", comma: ',',
		caseUnreadable: "WARNING: this practice's stored case (the billing rows it was decided from) cannot be read: " +
			"changed outside cmord, or the dictionary it was deflated against edited or deleted. practice.json leaves it out; " +
			"the dossier carries it as stored in " + CaseStoredName + ". Run cmord archive verify and tell the administrator."},
}

// Dossier writes to w a zip with everything about one practice (code: CP_UTENTE of the
// practice or of any of its requests, CP_GESTORE, or #id): every archived file behind
// it (files/<id>_<name>, byte for byte as archived), practice.json, history.csv,
// history.txt (labels in lang, "it" or "en"), exceptions.csv, and manifest.sha256; and
// case.stored.bin when the practice's stored case cannot be read (CaseStoredName). A
// blob whose content no longer matches its recorded hash stops the dossier with an
// error: a dossier is evidence and must not carry a tampered file.
func Dossier(ctx context.Context, store *archive.Store, code string, w io.Writer, lang string) error {
	if lang == "" {
		lang = "it"
	}
	_, ok := dossierLabels[lang]
	if !ok {
		return fmt.Errorf("export: unknown language %q (it or en)", lang)
	}
	p, err := store.PracticeByCode(ctx, nil, code)
	if err != nil {
		return err
	}
	history, err := store.PracticeHistory(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("export: history of practice #%d: %w", p.ID, err)
	}
	links, err := store.PracticeFiles(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("export: files of practice #%d: %w", p.ID, err)
	}
	exceptions, err := store.Exceptions(ctx, archive.ExceptionFilter{PracticeID: p.ID})
	if err != nil {
		return fmt.Errorf("export: exceptions of practice #%d: %w", p.ID, err)
	}
	// A file touching a practice on several lines or relations is stored once.
	files := map[int64]archive.File{}
	for _, l := range links {
		files[l.File.ID] = l.File
	}
	for _, h := range history {
		if _, ok := files[h.FileID]; h.FileID != 0 && !ok {
			f, err := store.GetFile(ctx, h.FileID)
			if err != nil {
				return fmt.Errorf("export: file #%d of practice #%d: %w", h.FileID, p.ID, err)
			}
			files[f.ID] = f
		}
	}
	ids := make([]int64, 0, len(files))
	for id := range files {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	openCount := 0
	for _, e := range exceptions {
		if e.Open() {
			openCount++
		}
	}
	// Generated entries carry the practice's last update as their time, so the same
	// practice always gives the same dossier bytes.
	stamp := p.UpdatedAt
	if stamp.IsZero() {
		stamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	}

	zw := zip.NewWriter(w)
	var manifest []string
	add := func(name string, modified time.Time, src io.Reader) (string, error) {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modified.UTC()})
		if err != nil {
			return "", err
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(fw, h), src); err != nil {
			return "", err
		}
		sum := hex.EncodeToString(h.Sum(nil))
		manifest = append(manifest, sum+"  "+name)
		return sum, nil
	}

	rec, err := json.MarshalIndent(NewRecord(p, openCount), "", "  ")
	if err != nil {
		return err
	}
	if _, err := add("practice.json", stamp, bytes.NewReader(append(rec, '\n'))); err != nil {
		return fmt.Errorf("export: dossier: %w", err)
	}
	if _, err := add("history.csv", stamp, bytes.NewReader(historyCSV(lang, history, files))); err != nil {
		return fmt.Errorf("export: dossier: %w", err)
	}
	if _, err := add("history.txt", stamp, bytes.NewReader(historyText(lang, p, history, files, ids, exceptions))); err != nil {
		return fmt.Errorf("export: dossier: %w", err)
	}
	if _, err := add("exceptions.csv", stamp, bytes.NewReader(exceptionsCSV(lang, exceptions))); err != nil {
		return fmt.Errorf("export: dossier: %w", err)
	}
	if p.CaseUnreadable() {
		if _, err := add(CaseStoredName, stamp, bytes.NewReader(p.Data)); err != nil {
			return fmt.Errorf("export: dossier: %w", err)
		}
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := files[id]
		rc, _, err := store.OpenFile(ctx, id)
		if err != nil {
			return fmt.Errorf("export: dossier: file #%d %s: %w", id, f.Name, err)
		}
		sum, err := add(DossierFileName(f), f.ReceivedAt, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("export: dossier: file #%d %s: %w", id, f.Name, err)
		}
		if sum != f.Hash {
			return fmt.Errorf("export: dossier: file #%d %s: content hash %s does not match the archived %s (run cmord archive verify)",
				id, f.Name, sum[:12], f.Hash[:12])
		}
	}
	mw, err := zw.CreateHeader(&zip.FileHeader{Name: ManifestName, Method: zip.Deflate, Modified: stamp.UTC()})
	if err != nil {
		return fmt.Errorf("export: dossier: %w", err)
	}
	if _, err := io.WriteString(mw, strings.Join(manifest, "\n")+"\n"); err != nil {
		return fmt.Errorf("export: dossier: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("export: dossier: %w", err)
	}
	return nil
}

// DossierFileName is the entry name of an archived file in a dossier:
// files/<id>_<name>, the name reduced to characters safe on every file system (no
// directories, no "..").
func DossierFileName(f archive.File) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, f.Name)
	name = strings.TrimLeft(name, ".")
	if name == "" {
		name = "file"
	}
	return fmt.Sprintf("files/%d_%s", f.ID, name)
}

func romeTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(flows.Rome).Format("02/01/2006 15:04:05")
}

// historyCSV lists the practice's history: states in words (with their code), flows
// by name, notes translated for Italian (noteText).
func historyCSV(lang string, history []archive.HistoryEntry, files map[int64]archive.File) []byte {
	L := dossierLabels[lang]
	var buf bytes.Buffer
	buf.WriteString("\uFEFF")
	cw := csv.NewWriter(&buf)
	cw.Comma, cw.UseCRLF = L.comma, true
	_ = cw.Write([]string{L.at, L.from, L.to, L.flow, L.file + " " + L.id, L.file, L.line, L.cause, L.note})
	for _, h := range history {
		fid, fname, line := "", "", ""
		if h.FileID != 0 {
			fid, fname = strconv.FormatInt(h.FileID, 10), files[h.FileID].Name
		}
		if h.Line != 0 {
			line = strconv.Itoa(h.Line)
		}
		from := ""
		if h.From != "" {
			from = digest.StateName(h.From, lang)
		}
		_ = cw.Write([]string{romeTime(h.At), from, digest.StateName(h.To, lang), Neutralise(flowName(h.Flow, lang)), fid,
			Neutralise(fname), line, Neutralise(h.CauseCode), Neutralise(noteText(h.Note, lang))})
	}
	cw.Flush()
	return buf.Bytes()
}

// exceptionsCSV lists the practice's exceptions as the digest names them: the kind's
// title, the severity in words, the explanation, the code's message as technical
// detail.
func exceptionsCSV(lang string, exceptions []archive.Exception) []byte {
	L := dossierLabels[lang]
	var buf bytes.Buffer
	buf.WriteString("\uFEFF")
	cw := csv.NewWriter(&buf)
	cw.Comma, cw.UseCRLF = L.comma, true
	_ = cw.Write([]string{L.id, L.kind, L.severity, L.state, L.at, L.file + " " + L.id, L.line, L.explanation, L.what, L.note})
	for _, e := range exceptions {
		state := L.open
		if !e.Open() {
			state = L.resolved
		}
		line := ""
		if e.Line != 0 {
			line = strconv.Itoa(e.Line)
		}
		fid := ""
		if e.FileID != 0 {
			fid = strconv.FormatInt(e.FileID, 10)
		}
		_ = cw.Write([]string{strconv.FormatInt(e.ID, 10), digest.KindTitle(e.Kind, lang), digest.SeverityName(e.Severity, lang), state,
			romeTime(e.FirstSeen), fid, line, kindExplanation(e.Kind, lang), Neutralise(messageText(e.Message, lang)), Neutralise(resolutionText(e, L, lang))})
	}
	cw.Flush()
	return buf.Bytes()
}

// flowName names a history entry's flow: the digest's name of a catalog flow or input
// kind, else the key (e.g. "window", the request window opening).
func flowName(key, lang string) string {
	if key == "" {
		return ""
	}
	return digest.FlowName(nil, key, lang)
}

// messageText is an exception's message (the code's English) as the dossier shows it:
// in Italian with its amounts' decimal comma (6,40, not 6.40).
func messageText(msg, lang string) string {
	if lang == "en" {
		return msg
	}
	return digest.AmountsIT(msg)
}

func kindExplanation(kind, lang string) string {
	if t, ok := digest.KindExplanations[kind]; ok {
		return t.In(lang)
	}
	return ""
}

// resolutionText is how an exception was resolved: an automatic resolution's note is
// the code's English, so the Italian dossier says it in words, as the digest does.
func resolutionText(e archive.Exception, L dossierText, lang string) string {
	switch {
	case e.Open():
		return ""
	case e.ResolvedBy == "auto" && lang != "en":
		return L.auto
	case e.ResolvedBy == "auto" || e.ResolvedBy == "":
		return e.Resolution
	}
	return strings.TrimSpace(e.Resolution + " (" + e.ResolvedBy + ")")
}

func historyText(lang string, p archive.Practice, history []archive.HistoryEntry, files map[int64]archive.File,
	ids []int64, exceptions []archive.Exception) []byte {
	L := dossierLabels[lang]
	var buf bytes.Buffer
	code := p.CPUtente
	if code == "" {
		code = p.CPGestore
	}
	fmt.Fprintf(&buf, "%s %s (#%d)\n\n", L.title, code, p.ID)
	if p.CaseUnreadable() {
		fmt.Fprintf(&buf, "%s\n\n", L.caseUnreadable)
	}
	fmt.Fprintf(&buf, "%s\n", L.practice)
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	for i, h := range Headers(lang) {
		c := columns[i]
		var v string
		r := row{p: &p, lang: lang}
		switch c.kind {
		case kindText:
			v = c.text(r)
		case kindDate:
			v = c.date(r).String()
		case kindAmount:
			if !c.blank(r) {
				v = amountHuman(c.amount(r), lang)
			}
		case kindInt:
			continue
		}
		if v == "" {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\n", h, v)
	}
	tw.Flush()

	fmt.Fprintf(&buf, "\n%s\n", L.history)
	tw = tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\t%s → %s\t%s\t%s\t%s\n", L.at, L.from, L.to, L.flow, L.file, L.note)
	for _, h := range history {
		from := "·"
		if h.From != "" {
			from = digest.StateName(h.From, lang)
		}
		file := ""
		if h.FileID != 0 {
			file = fmt.Sprintf("#%d %s", h.FileID, files[h.FileID].Name)
			if h.Line != 0 {
				file += fmt.Sprintf(":%d", h.Line)
			}
		}
		note := noteText(h.Note, lang)
		if h.CauseCode != "" {
			note = strings.TrimSpace(L.cause + " " + h.CauseCode + " " + note)
		}
		fmt.Fprintf(tw, "  %s\t%s → %s\t%s\t%s\t%s\n", romeTime(h.At), from, digest.StateName(h.To, lang), flowName(h.Flow, lang), file, note)
	}
	tw.Flush()

	fmt.Fprintf(&buf, "\n%s\n", L.files)
	if len(ids) == 0 {
		fmt.Fprintf(&buf, "  %s\n", L.none)
	}
	tw = tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	for _, id := range ids {
		f := files[id]
		dir := map[string]string{"in": L.in, "out": L.out}[f.Direction]
		if dir == "" {
			dir = f.Direction
		}
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\t%s\n", f.ID, dir, flowName(f.Kind, lang), romeTime(f.ReceivedAt), f.Hash[:16], f.Name)
	}
	tw.Flush()

	fmt.Fprintf(&buf, "\n%s\n", L.exceptions)
	if len(exceptions) == 0 {
		fmt.Fprintf(&buf, "  %s\n", L.none)
	}
	tw = tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	for _, e := range exceptions {
		state := L.open
		if !e.Open() {
			state = L.resolved + " " + romeTime(e.ResolvedAt)
		}
		what := e.Message
		if x := kindExplanation(e.Kind, lang); x != "" && lang != "en" {
			what = x + " (" + L.what + ": " + messageText(e.Message, lang) + ")"
		}
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\n", e.ID, digest.SeverityName(e.Severity, lang), digest.KindTitle(e.Kind, lang), state, what)
	}
	tw.Flush()
	// tabwriter pads a short last cell: drop the trailing blanks.
	lines := bytes.Split(buf.Bytes(), []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimRight(l, " ")
	}
	return bytes.Join(lines, []byte("\n"))
}
