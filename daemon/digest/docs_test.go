package digest

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestDocsListEveryKind keeps docs/digest.md's table in step with the catalogue.
func TestDocsListEveryKind(t *testing.T) {
	b, err := os.ReadFile("../../docs/digest.md")
	if err != nil {
		t.Skip("docs/digest.md not found:", err)
	}
	for _, k := range KindNames() {
		if !strings.Contains(string(b), "| `"+k+"` |") {
			t.Errorf("docs/digest.md has no row for kind %s", k)
		}
	}
}

func BenchmarkBuildRender(b *testing.B) {
	st := openStore(b, b.TempDir())
	fixture(b, st)
	ctx := context.Background()
	for b.Loop() {
		d, err := Build(ctx, st, Options{AttachCSV: true}, fixtureNow)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, _, err := d.Render("it", false); err != nil {
			b.Fatal(err)
		}
	}
}
