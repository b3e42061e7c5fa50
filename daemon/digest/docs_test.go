package digest

import (
	"context"
	"os"
	"path/filepath"
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

// docs/digest-preview.html is what a compliance officer receives, rendered by the real
// renderer from the test fixture (the Italian digest with the CSV attached): open it in
// a browser. Refreshed with -update, so it never goes stale.
func TestDocsPreviewCurrent(t *testing.T) {
	_, _, html, _, err := fixtureDigest(t).Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	html = anchorRE.ReplaceAllString(html, anchorStandIn)
	path := filepath.Join("..", "..", "docs", "digest-preview.html")
	if *update {
		if err := os.WriteFile(path, []byte(html), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./daemon/digest -update)", err)
	}
	if string(want) != html {
		t.Errorf("docs/digest-preview.html is stale (run go test ./daemon/digest -update):\n%s", firstDiff(string(want), html))
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
