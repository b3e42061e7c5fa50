package flows

import (
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct{ name, in, want, wantText string }{
		{"plain", "uscente_2025-10.csv", "uscente_2025-10.csv", "uscente_2025-10.csv"},
		{"accents kept", "Società però.csv", "Società però.csv", "Società però.csv"},
		{"terminal escape", "a\x1b[2Jb.csv", `a\x1b[2Jb.csv`, `a\x1b[2Jb.csv`},
		{"newline and cr", "a\nb\rc", `a\nb\rc`, "a\nb\\rc"},
		{"tab", "a\tb", `a\tb`, "a\tb"},
		{"nul and del", "a\x00b\x7f", `a\x00b\x7f`, `a\x00b\x7f`},
		{"bell", "\a", `\x07`, `\x07`},
		{"invalid utf-8", "caf\xe9.csv", `caf\xe9.csv`, `caf\xe9.csv`},
		{"lone continuation byte", "a\x80b", `a\x80b`, `a\x80b`},
		{"C1 control", "a\u009bb", `a\u009bb`, `a\u009bb`},
		{"bidi override", "invoice\u202egpj.exe", `invoice\u202egpj.exe`, `invoice\u202egpj.exe`},
		{"bidi isolate", "a\u2066b", `a\u2066b`, `a\u2066b`},
		{"line separator", "a\u2028b", `a\u2028b`, `a\u2028b`},
		{"backslash kept", `C:\dati\x.csv`, `C:\dati\x.csv`, `C:\dati\x.csv`},
		{"empty", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Escape(tc.in); got != tc.want {
				t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := EscapeText(tc.in); got != tc.wantText {
				t.Errorf("EscapeText(%q) = %q, want %q", tc.in, got, tc.wantText)
			}
			if again := Escape(Escape(tc.in)); again != Escape(tc.in) {
				t.Errorf("Escape is not idempotent on %q: %q", tc.in, again)
			}
			for _, c := range Escape(tc.in) {
				if c < 0x20 || c == 0x7f || unsafeRune(c) {
					t.Errorf("Escape(%q) still holds %U", tc.in, c)
				}
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	big := strings.Repeat("x", 524_288_000/1000) // 524,288 bytes
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "abc", 3, "abc"},
		{"cut", "abcdef", 3, "abc…(6 bytes)"},
		{"size grouped", big, 4, "xxxx…(524,288 bytes)"},
		{"never inside a rune", "aàb", 2, "a…(4 bytes)"},
		{"zero", "abc", 0, "…(3 bytes)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Truncate(tc.in, tc.max); got != tc.want {
				t.Errorf("Truncate(%.20q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 524288000: "524,288,000", -1234567: "-1,234,567"} {
		if got := GroupThousands(n); got != want {
			t.Errorf("GroupThousands(%d) = %s, want %s", n, got, want)
		}
	}
	if got := Shown("a\x1b"+strings.Repeat("y", 1000), 3); got != `a\x1by…(1,002 bytes)` {
		t.Errorf("Shown = %q", got)
	}
}
