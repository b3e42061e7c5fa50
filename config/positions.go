package config

import (
	"strconv"
	"strings"
)

// keyLines maps a resolved key path to the 1-based line where it is defined.
//
// BurntSushi/toml keeps key positions private, and keeps only one position per key
// name even for arrays of tables ("folder.path" for every [[folder]]), so we scan
// the source ourselves. The scanner runs only on input the TOML parser has already
// accepted, so it can assume well-formed TOML and only has to follow tables, arrays
// of tables, dotted keys, quoted keys, and values that span lines.
//
// Paths are the key parts joined by pathSep; an element of an array of tables is
// written as the array's part followed by "[i]" (e.g. "folder[1]" then "settle").
type keyLines map[string]int

const pathSep = "\x1f"

func joinPath(parts []string) string { return strings.Join(parts, pathSep) }

// line returns the line of path, or of its nearest recorded ancestor (keys inside
// inline tables are not recorded: they get the line of the table), or 0.
func (kl keyLines) line(parts []string) int {
	for n := len(parts); n > 0; n-- {
		if l, ok := kl[joinPath(parts[:n])]; ok {
			return l
		}
		// "folder[1]" may be an element of an inline array: try "folder".
		if i := strings.LastIndexByte(parts[n-1], '['); i > 0 && strings.HasSuffix(parts[n-1], "]") {
			p := append(append([]string{}, parts[:n-1]...), parts[n-1][:i])
			if l, ok := kl[joinPath(p)]; ok {
				return l
			}
		}
	}
	return 0
}

func scanKeyLines(src []byte) keyLines {
	kl := keyLines{}
	s := &lineScanner{kl: kl, arrays: map[string]int{}}
	for i, raw := range strings.Split(string(src), "\n") {
		s.scanLine(i+1, strings.TrimSuffix(raw, "\r"))
	}
	return kl
}

type lineScanner struct {
	kl      keyLines
	arrays  map[string]int // [[array]] path → elements seen so far
	current []string       // resolved path of the current table
	inMulti string         // `"""` or `'''` while inside a multi-line string
	depth   int            // open [ and { of a value that spans lines
}

func (s *lineScanner) scanLine(n int, line string) {
	rest := line
	if s.inMulti != "" || s.depth > 0 {
		s.skipValue(rest)
		return
	}
	rest = strings.TrimLeft(rest, " \t")
	if rest == "" || rest[0] == '#' {
		return
	}
	if strings.HasPrefix(rest, "[[") {
		parts, _ := parseKey(rest[2:])
		path := s.resolve(parts)
		full := joinPath(path)
		idx := s.arrays[full]
		s.arrays[full] = idx + 1
		path[len(path)-1] += "[" + strconv.Itoa(idx) + "]"
		s.current = path
		s.record(path, n)
		return
	}
	if rest[0] == '[' {
		parts, _ := parseKey(rest[1:])
		s.current = s.resolve(parts)
		s.record(s.current, n)
		return
	}
	parts, after := parseKey(rest)
	path := append(append([]string{}, s.current...), parts...)
	s.record(path, n)
	after = strings.TrimLeft(after, " \t")
	after = strings.TrimPrefix(after, "=")
	s.skipValue(after)
}

// record sets the line of path and of any dotted parents not seen yet.
func (s *lineScanner) record(path []string, n int) {
	for i := len(s.current) + 1; i < len(path); i++ {
		if _, ok := s.kl[joinPath(path[:i])]; !ok {
			s.kl[joinPath(path[:i])] = n
		}
	}
	s.kl[joinPath(path)] = n
}

// resolve turns the parts of a table header into a path where each prefix that names
// an array of tables points at its latest element, as TOML defines.
func (s *lineScanner) resolve(parts []string) []string {
	var out []string
	for i, p := range parts {
		out = append(out, p)
		if i == len(parts)-1 {
			break
		}
		if c := s.arrays[joinPath(out)]; c > 0 {
			out[len(out)-1] += "[" + strconv.Itoa(c-1) + "]"
		}
	}
	return out
}

// skipValue follows strings and brackets through (part of) a value so that lines
// inside multi-line strings and arrays are not taken for keys.
func (s *lineScanner) skipValue(v string) {
	for i := 0; i < len(v); i++ {
		if s.inMulti != "" {
			if strings.HasPrefix(v[i:], s.inMulti) {
				i += 2
				// A closing delimiter may be followed by up to two more quotes.
				for i+1 < len(v) && v[i+1] == s.inMulti[0] {
					i++
				}
				s.inMulti = ""
			} else if s.inMulti == `"""` && v[i] == '\\' {
				i++
			}
			continue
		}
		switch c := v[i]; c {
		case '#':
			return
		case '[', '{':
			s.depth++
		case ']', '}':
			s.depth--
		case '"', '\'':
			delim := strings.Repeat(string(c), 3)
			if strings.HasPrefix(v[i:], delim) {
				s.inMulti = delim
				i += 2
				continue
			}
			for i++; i < len(v) && v[i] != c; i++ {
				if c == '"' && v[i] == '\\' {
					i++
				}
			}
		}
	}
}

// parseKey reads a dotted key (bare, "basic" or 'literal' parts) and returns the parts
// and what follows the key.
func parseKey(s string) ([]string, string) {
	var parts []string
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		switch s[i] {
		case '"':
			var b strings.Builder
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					switch s[i] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte(s[i]) // \" and \\; rare escapes in keys are not worth more
					}
					continue
				}
				b.WriteByte(s[i])
			}
			i = min(i+1, len(s))
			parts = append(parts, b.String())
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return append(parts, s[i+1:]), ""
			}
			parts = append(parts, s[i+1:i+1+j])
			i += j + 2
		default:
			j := i
			for j < len(s) && isBareKeyChar(s[j]) {
				j++
			}
			parts = append(parts, s[i:j])
			i = j
		}
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i < len(s) && s[i] == '.' {
			i++
			continue
		}
		break
	}
	return parts, s[i:]
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
