package archive

import "encoding/json"

// decodeRequestData decodes a request's data (a JSON object of strings, as
// CreateRequest writes it) into *m exactly as json.Unmarshal does, its error ignored
// as the readers always did. The build reads thousands of requests a file: an object
// as json.Marshal writes one, of printable ASCII without escapes (flatStringMap), is
// split by hand; anything else goes to json.Unmarshal.
func decodeRequestData(text string, m *map[string]string) {
	if *m == nil {
		if fast, ok := flatStringMap(text); ok {
			*m = fast
			return
		}
	}
	_ = json.Unmarshal([]byte(text), m)
}

// flatStringMap reads text when it is a JSON object of string values with no space
// between tokens and no byte in its strings outside printable ASCII but '"' and '\'
// (no escapes): then json.Unmarshal would give the same map (a later key replacing
// an earlier one). ok is false for anything else.
func flatStringMap(text string) (m map[string]string, ok bool) {
	if len(text) < 2 || text[0] != '{' {
		return nil, false
	}
	if text == "{}" {
		return map[string]string{}, true
	}
	m = make(map[string]string, 4)
	i := 1
	str := func() (string, bool) { // a string starting at text[i], i moved past it
		if i >= len(text) || text[i] != '"' {
			return "", false
		}
		start := i + 1
		for j := start; j < len(text); j++ {
			c := text[j]
			if c == '"' {
				i = j + 1
				return text[start:j], true
			}
			if c < 0x20 || c > 0x7e || c == '\\' {
				return "", false
			}
		}
		return "", false
	}
	for {
		k, ok := str()
		if !ok || i >= len(text) || text[i] != ':' {
			return nil, false
		}
		i++
		v, ok := str()
		if !ok || i >= len(text) {
			return nil, false
		}
		m[k] = v
		switch text[i] {
		case ',':
			i++
		case '}':
			if i != len(text)-1 {
				return nil, false
			}
			return m, true
		default:
			return nil, false
		}
	}
}
