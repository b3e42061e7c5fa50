package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
)

// A mapping file's spend given as a total cannot feed the "top 4 months" estimate:
// `cmord check` says so at the [spend] line; with the average it is fine.
func TestCheckMappingsSpendTotalNeedsAverage(t *testing.T) {
	dir := t.TempDir()
	mp := filepath.Join(dir, "m.toml")
	if err := os.WriteFile(mp, []byte("kind = \"uscente.morosi\"\n\n[spend]\ntotal = \"Spesa\"\nmonths = \"Mesi\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	morosi := func(Folder) *flows.Flow { return flows.DefaultCatalog().Input("uscente.morosi") }
	for _, tc := range []struct {
		method string
		want   int
	}{{flows.CMOREstimateTop, 1}, {flows.CMOREstimateAverage, 0}} {
		c := &Config{File: filepath.Join(dir, "cmord.toml"), CMOR: CMOR{EstimateMethod: tc.method},
			Folders: []Folder{{Name: "morosi", Kind: "uscente.morosi", MappingFile: mp}}}
		probs := c.CheckMappings(morosi)
		if len(probs) != tc.want {
			t.Fatalf("%s: problems %v, want %d", tc.method, probs, tc.want)
		}
		if tc.want == 1 && (probs[0].File != mp || probs[0].Line != 3 || !strings.Contains(probs[0].Message, "estimate_method")) {
			t.Errorf("%s: %+v, want %s:3 naming estimate_method", tc.method, probs[0], mp)
		}
	}
	// FolderMapping hands the daemon the whole file, not only its column pairs.
	m, err := Folder{Name: "morosi", Kind: "uscente.morosi", MappingFile: mp}.FolderMapping()
	if err != nil || m.Spend == nil || m.Spend.Total != "Spesa" {
		t.Errorf("FolderMapping: %+v, %v", m, err)
	}
}
