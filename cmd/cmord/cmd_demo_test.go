package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// demoVolatile are the parts of the demo's output that change from run to run (ports,
// dates, timestamps in file names, the temporary folder), with what replaces them.
var demoVolatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:PORT"},
	{regexp.MustCompile(`\d{8}T\d{6}`), "AAAAMMGGThhmmss"},
	{regexp.MustCompile(`_\d{8}\.csv`), "_AAAAMMGG.csv"},
	{regexp.MustCompile(`\d{2}/\d{2}/\d{4}`), "GG/MM/AAAA"},
}

// TestDemoOnce runs `cmord demo --once` as a new user would and compares its
// narration with testdata/demo/once.txt (-update rewrites it). It also checks what a
// reader notices without a golden: no step repeats the same practice counts, and the
// tour names every folder the demo configures.
func TestDemoOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs seven daemon cycles (about 15 s)")
	}
	dir := filepath.Join(t.TempDir(), "cmord-demo")
	var out, errOut bytes.Buffer
	if code := run([]string{"demo", "--once", "--dir", dir}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	got := strings.ReplaceAll(out.String(), dir, "DEMO")
	for _, v := range demoVolatile {
		got = v.re.ReplaceAllString(got, v.with)
	}

	prev := ""
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "   practices now: ") {
			if line == prev {
				t.Errorf("the same counts printed twice in a row: %q", line)
			}
			prev = line
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, "in"))
	if err != nil {
		t.Fatal(err)
	}
	tour := got[strings.Index(got, "Where things are:"):]
	for _, e := range ents {
		if e.IsDir() && !strings.Contains(tour, e.Name()) {
			t.Errorf("the tour does not mention the drop folder in/%s:\n%s", e.Name(), tour)
		}
	}
	goldenCLI(t, "demo", "once.txt", []byte(got))
}
