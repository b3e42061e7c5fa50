package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// exampleSiteKeys are the keys of example.toml that have no default: what each site
// must (or may) fill in — who the company is, where its folders are, whom to reach.
// Every other key of example.toml claims to show its default.
var exampleSiteKeys = map[string]bool{
	"company.piva": true, "company.name": true, "company.roles": true, "company.sectors": true,
	"company.piva_gestore": true, "company.acting_as": true,
	"folder.name": true, "folder.path": true, "folder.kind": true,
	"sftp.name": true, "sftp.host": true, "sftp.user": true, "sftp.key_file": true, "sftp.known_hosts": true,
	"sftp.inbound_dir": true, "sftp.outbound_dir": true,
	"outbound.billing_dir": true,
	"mail.host":            true, "mail.from": true, "mail.username": true, "mail.password_file": true,
	"digest.to": true, "alerts.to": true,
}

// flatten turns a decoded TOML document into key → value, arrays of tables indexed
// ("folder[2].settle"); siteKey is the key without indexes ("folder.settle").
func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		switch x := v.(type) {
		case map[string]any:
			flatten(key, x, out)
		case []map[string]any:
			for i, t := range x {
				flatten(fmt.Sprintf("%s[%d]", key, i), t, out)
			}
		default:
			out[key] = v
		}
	}
}

func siteKey(key string) string {
	var b strings.Builder
	skip := false
	for _, r := range key {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestExampleShowsEveryDefault: example.toml says it shows every key with its default.
// A configuration holding only example.toml's site keys (no defaults given) is loaded,
// and its effective configuration (every key, defaults filled in) is compared key by
// key with example.toml's: each key whose value differs from the default fails by
// name. It also fails for a key of the effective configuration example.toml does not
// show (a default nobody documented).
func TestExampleShowsEveryDefault(t *testing.T) {
	raw, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if _, err := toml.Decode(string(raw), &doc); err != nil {
		t.Fatal(err)
	}
	shown := map[string]any{}
	flatten("", doc, shown)
	shownAnywhere := map[string]bool{} // a folder key shown in the first [[folder]] only
	for k := range shown {
		shownAnywhere[siteKey(k)] = true
	}

	// The site-only configuration, in example.toml's shape.
	site := map[string]any{}
	for key, v := range shown {
		if exampleSiteKeys[siteKey(key)] {
			site[key] = v
		}
	}
	var minimal bytes.Buffer
	if err := toml.NewEncoder(&minimal).Encode(unflatten(site)); err != nil {
		t.Fatal(err)
	}
	ex, err := Parse("example.toml", raw)
	if err != nil {
		t.Fatal(err)
	}
	def, err := Parse("example.toml", minimal.Bytes())
	if err != nil {
		t.Fatalf("the site keys alone do not load: %v\n%s", err, minimal.String())
	}
	effective := func(c *Config) map[string]any {
		var m map[string]any
		if _, err := toml.Decode(c.Redacted(), &m); err != nil {
			t.Fatal(err)
		}
		out := map[string]any{}
		flatten("", m, out)
		return out
	}
	exEff, defEff := effective(ex), effective(def)
	var keys []string
	for k := range defEff {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if exampleSiteKeys[siteKey(k)] {
			continue
		}
		if !reflect.DeepEqual(exEff[k], defEff[k]) {
			t.Errorf("%s: example.toml gives %v, the default is %v", k, exEff[k], defEff[k])
		}
		if !shownAnywhere[siteKey(k)] && !isCommentedInExample(raw, k) {
			t.Errorf("%s: not shown in example.toml (default %v)", k, defEff[k])
		}
	}
}

// isCommentedInExample: optional tables (per-flow formats, export column names) are
// shown commented out, e.g. "# [folder.mapping]".
func isCommentedInExample(raw []byte, key string) bool {
	leaf := key[strings.LastIndex(key, ".")+1:]
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") && strings.Contains(line, leaf) {
			return true
		}
	}
	return false
}

// unflatten is flatten's inverse for the keys it made.
func unflatten(flat map[string]any) map[string]any {
	root := map[string]any{}
	for key, v := range flat {
		parts := strings.Split(key, ".")
		m := root
		for _, p := range parts[:len(parts)-1] {
			name, idx := p, -1
			if i := strings.IndexByte(p, '['); i >= 0 {
				name = p[:i]
				fmt.Sscanf(p[i:], "[%d]", &idx)
			}
			if idx < 0 {
				next, _ := m[name].(map[string]any)
				if next == nil {
					next = map[string]any{}
					m[name] = next
				}
				m = next
				continue
			}
			arr, _ := m[name].([]map[string]any)
			for len(arr) <= idx {
				arr = append(arr, map[string]any{})
			}
			m[name] = arr
			m = arr[idx]
		}
		m[parts[len(parts)-1]] = v
	}
	return root
}
