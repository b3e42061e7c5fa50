package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/docs/manuale"
	"github.com/cmord/cmord/flows"
)

const manualPath = "../../docs/manuale/manuale.md"

// kindsTable is the manual's exceptions table, generated from the catalogue of kinds
// (daemon/digest/kinds.go): title, severity, owner and action in Italian.
func kindsTable() string {
	var b strings.Builder
	b.WriteString("| tipo | titolo | gravità | a chi tocca | cosa fare |\n|---|---|---|---|---|\n")
	names := digest.KindNames()
	sort.Strings(names)
	owners := map[string]string{digest.OwnerOperator: "operatore (fatturazione)", digest.OwnerCompliance: "compliance", digest.OwnerSysadmin: "sistemista"}
	for _, k := range names {
		info := digest.Info(k)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k, info.Title("it"), digest.SeverityName(info.Severity, "it"),
			owners[info.Owner], strings.ReplaceAll(info.Action("it"), "|", "\\|"))
	}
	return b.String()
}

// TestManualInStep keeps docs/manuale/manuale.md in step with the code: its exceptions
// table is the catalogue's (regenerated with -update), and every practice state of the
// catalog and every eligibility rule E1–E11 is explained in it.
func TestManualInStep(t *testing.T) {
	b, err := os.ReadFile(manualPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	const begin, end = "<!-- eccezioni:inizio -->\n", "<!-- eccezioni:fine -->"
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("the manual lacks the markers %q … %q", begin, end)
	}
	if want := kindsTable(); text[i+len(begin):j] != want {
		if updating() {
			text = text[:i+len(begin)] + want + text[j:]
			if err := os.WriteFile(manualPath, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			t.Errorf("the manual's exceptions table is not the catalogue's (go test ./cmd/cmord -run TestManualInStep -update)")
		}
	}
	for _, k := range digest.KindNames() {
		if !strings.Contains(text, "| `"+k+"` |") {
			t.Errorf("the manual does not explain exception kind %s", k)
		}
	}
	for _, s := range flows.DefaultCatalog().States {
		if !strings.Contains(text, "| `"+s.Name+"` |") {
			t.Errorf("the manual does not explain practice state %s", s.Name)
		}
	}
	for n := 1; n <= 11; n++ {
		if !strings.Contains(text, fmt.Sprintf("| `E%d` |", n)) {
			t.Errorf("the manual does not explain eligibility rule E%d", n)
		}
	}
	for _, kind := range []string{"uscente.morosi", "uscente.incassi", "uscente.annullamenti", "uscente.rimborsi", "entrante.fatturato", "entrante.sospensioni", "entrante.annullamenti"} {
		if !strings.Contains(text, "| `"+kind+"` |") {
			t.Errorf("the manual does not say what folder kind %s is for", kind)
		}
	}
	if filepath.Base(manualPath) != "manuale.md" || manuale.Text != text && !updating() {
		t.Errorf("the embedded manual differs from docs/manuale/manuale.md")
	}
}

// `cmord manuale` prints the embedded manual.
func TestManualeCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "manuale")
	if code != exitOK || !strings.HasPrefix(out, "# cmord — manuale per operatori e compliance") || !strings.Contains(out, "## 5. Le eccezioni") {
		t.Errorf("cmord manuale: exit %d, stderr %q, output starts %q", code, errOut, out[:min(80, len(out))])
	}
}
