package config

import (
	"os"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzKeyLines: on any input the TOML parser accepts, the scanner must not panic and
// every line it records must be a line of the input.
func FuzzKeyLines(f *testing.F) {
	for _, p := range []string{"example.toml", "testdata/bad.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a = \"\"\"\nb = 1\n\"\"\"\n[[x]]\n[x.y]\nz = [\n'''\n]'''\n]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		if _, err := toml.Decode(string(data), &m); err != nil {
			return
		}
		lines := 1
		for _, c := range data {
			if c == '\n' {
				lines++
			}
		}
		for k, l := range scanKeyLines(data) {
			if l < 1 || l > lines {
				t.Fatalf("key %q at line %d of %d", k, l, lines)
			}
		}
	})
}
