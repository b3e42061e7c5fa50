package flows

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestValidateCF(t *testing.T) {
	tests := []struct {
		in      string
		wantErr error  // nil = valid
		wantMsg string // substring of the error
	}{
		// brief §6.5bis vectors
		{"RSSMRA85T10A562S", nil, ""},
		{"RSSMRA85T10A56NH", nil, ""}, // omocodic: last digit 2 → N
		{"RSSMRA85T10A562T", ErrIDCheck, "check character is T, expected S"},
		// more, computed with the algorithm of brief §6.3
		{"RSSMRA80A01H501U", nil, ""},
		{"  rssmra85t10a562s ", nil, ""}, // normalised before the check
		{"RSSMRA85T50A562W", nil, ""},    // woman: day 10 + 40
		{"RSSMRAURTMLARUNN", nil, ""},    // every digit position omocodic
		{"RSSMRA85T72A562S", ErrIDCharacter, "day of birth 72"},
		{"RSSMRA85T00A562S", ErrIDCharacter, "day of birth 00"},
		{"RSSMRA85F10A562S", ErrIDCharacter, "month letter"},
		{"RSSMR185T10A562S", ErrIDCharacter, "character 6 ('1') must be a letter"},
		{"RSSMRA8KT10A562S", ErrIDCharacter, "character 8 ('K') must be a digit or an omocodia letter"},
		{"RSSMRA85T10A5620", ErrIDCharacter, "character 16"},
		{"RSSMRA85T10A562", ErrIDLength, "has 15 characters"},
		{"", ErrIDEmpty, "empty"},
		{"   ", ErrIDEmpty, "empty"},
		// 11-digit numeric CF of a legal entity, checked like a P.IVA
		{"00488410010", nil, ""},
		{"00488410011", ErrIDCheck, "numeric codice fiscale"},
		{"0048841001X", ErrIDLength, "expected 16"},
	}
	for _, tt := range tests {
		err := ValidateCF(tt.in)
		if tt.wantErr == nil {
			if err != nil {
				t.Errorf("ValidateCF(%q) = %v, want valid", tt.in, err)
			}
			continue
		}
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("ValidateCF(%q) = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("ValidateCF(%q) = %q, want it to mention %q", tt.in, err, tt.wantMsg)
		}
	}
}

func TestCFCheckCharAllPositions(t *testing.T) {
	// Changing any single character of a valid code must be caught (the check char
	// covers every position); omocodia letters and the day rule stay consistent.
	valid := "RSSMRA85T10A562S"
	for i := 0; i < 15; i++ {
		for c := byte('0'); c <= 'Z'; c++ {
			if c == valid[i] || (c > '9' && c < 'A') {
				continue
			}
			mut := valid[:i] + string(c) + valid[i+1:]
			if ValidateCF(mut) == nil {
				t.Errorf("ValidateCF(%q) accepted a single-character change of %q", mut, valid)
			}
		}
	}
}

func TestPIVA(t *testing.T) {
	tests := []struct {
		in, norm string
		wantErr  error
		wantMsg  string
	}{
		{"00488410010", "00488410010", nil, ""},
		{"IT00488410010", "00488410010", nil, ""},
		{" it00488410010 ", "00488410010", nil, ""},
		{"12345678903", "12345678903", nil, ""},
		{"00488410011", "00488410011", ErrIDCheck, "check digit is 1, expected 0"},
		{"12345678901", "12345678901", ErrIDCheck, "expected 3"},
		{"0048841001", "0048841001", ErrIDLength, "has 10 characters"},
		{"0048841001A", "0048841001A", ErrIDCharacter, "character 11 ('A') is not a digit"},
		{"ITIT00488410010", "ITIT00488410010", ErrIDLength, ""},
		{"00000000000", "00000000000", ErrIDCharacter, "all zeros"},
		{"DE123456789", "DE123456789", ErrIDCharacter, "not a digit"},
		{"", "", ErrIDEmpty, ""},
	}
	for _, tt := range tests {
		if got := NormalizePIVA(tt.in); got != tt.norm {
			t.Errorf("NormalizePIVA(%q) = %q, want %q", tt.in, got, tt.norm)
		}
		err := ValidatePIVA(tt.in)
		if tt.wantErr == nil {
			if err != nil {
				t.Errorf("ValidatePIVA(%q) = %v, want valid", tt.in, err)
			}
			continue
		}
		if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("ValidatePIVA(%q) = %v, want %v mentioning %q", tt.in, err, tt.wantErr, tt.wantMsg)
		}
	}
}

func TestValidatePOD(t *testing.T) {
	tests := []struct {
		in       string
		strict   bool
		wantErr  error
		wantWarn string // substring; "" = no warning
	}{
		{"IT023E00121943", true, nil, ""}, // seen on a real practice (brief §6.5bis)
		{"IT023E00121943", false, nil, ""},
		{" it001e12345678 ", true, nil, ""},
		{"IT023E001219431", true, ErrIDLength, ""},
		{"IT023E001219431", false, nil, "15th character"},
		{"IT023E0012194A", true, ErrIDCharacter, ""},
		{"IT023E0012194A", false, nil, "character 14 ('A') is a letter"},
		{"IT023E0012194", true, ErrIDLength, ""},
		{"FR023E00121943", true, ErrIDCharacter, ""},
		{"IT0A3E00121943", false, ErrIDCharacter, ""},
		{"IT023G00121943", false, ErrIDCharacter, ""},
		{"IT023E0012194-", false, ErrIDCharacter, ""},
		{"", true, ErrIDEmpty, ""},
	}
	for _, tt := range tests {
		warn, err := ValidatePOD(tt.in, tt.strict)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("ValidatePOD(%q, %v) error = %v, want %v", tt.in, tt.strict, err, tt.wantErr)
		}
		if (tt.wantWarn == "") != (warn == "") || !strings.Contains(warn, tt.wantWarn) {
			t.Errorf("ValidatePOD(%q, %v) warning = %q, want %q", tt.in, tt.strict, warn, tt.wantWarn)
		}
	}
}

func TestValidatePDR(t *testing.T) {
	tests := []struct {
		in      string
		wantErr error
		wantMsg string
	}{
		{"00881234567890", nil, ""},
		{" 12345678901234 ", nil, ""},
		{"881234567890", ErrIDLength, "leading zeros lost"},
		{"123456789012345", ErrIDLength, "has 15 digits"},
		{"1234567890123A", ErrIDCharacter, "character 14"},
		{"", ErrIDEmpty, ""},
	}
	for _, tt := range tests {
		err := ValidatePDR(tt.in)
		if !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), tt.wantMsg)) {
			t.Errorf("ValidatePDR(%q) = %v, want %v mentioning %q", tt.in, err, tt.wantErr, tt.wantMsg)
		}
	}
}

func TestValidateCPGestore(t *testing.T) {
	tests := []struct {
		in      string
		strict  bool
		wantErr error
	}{
		{"SII2024A8588941", false, nil},
		{"SII2024A8588941", true, nil},
		{"SIIABCDEFGHIJKL", false, nil},
		{"SIIABCDEFGHIJKL", true, ErrIDCharacter},
		{"SII202448588941", true, ErrIDCharacter},
		{"SII2024a8588941", false, ErrIDCharacter},
		{"XII2024A8588941", false, ErrIDCharacter},
		{"SII2024A858894", false, ErrIDLength},
		{"", false, ErrIDEmpty},
	}
	for _, tt := range tests {
		if err := ValidateCPGestore(tt.in, tt.strict); !errors.Is(err, tt.wantErr) {
			t.Errorf("ValidateCPGestore(%q, %v) = %v, want %v", tt.in, tt.strict, err, tt.wantErr)
		}
	}
}

func TestValidateCPUtente(t *testing.T) {
	tests := []struct {
		in      string
		wantErr error
	}{
		{"E250000001", nil},
		{"A", nil},
		{"ABCDEFGHIJ12345", nil},
		{"ABCDEFGHIJ123456", ErrIDLength},
		{"E25_0000001", ErrIDCharacter},
		{"e250000001", ErrIDCharacter},
		{"E25 000", ErrIDCharacter},
		{"", ErrIDEmpty},
	}
	for _, tt := range tests {
		if err := ValidateCPUtente(tt.in); !errors.Is(err, tt.wantErr) {
			t.Errorf("ValidateCPUtente(%q) = %v, want %v", tt.in, err, tt.wantErr)
		}
	}
}

func BenchmarkValidateCF(b *testing.B) {
	for b.Loop() {
		_ = ValidateCF("RSSMRA85T10A56NH")
	}
}

func BenchmarkValidatePIVA(b *testing.B) {
	for b.Loop() {
		_ = ValidatePIVA("IT00488410010")
	}
}

// TestCFGenerated builds random well-formed codes (with and without omocodia), completes
// them with CFCheckChar and checks that exactly that check character is accepted.
func TestCFGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	letters := "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	pick := func(s string) byte { return s[rng.IntN(len(s))] }
	digit := func(d int) byte {
		if rng.IntN(4) == 0 {
			return cfOmocodia[d]
		}
		return byte('0' + d)
	}
	for n := 0; n < 2000; n++ {
		b := make([]byte, 0, 16)
		for i := 0; i < 6; i++ {
			b = append(b, pick(letters))
		}
		y := rng.IntN(100)
		b = append(b, digit(y/10), digit(y%10), pick(cfMonths))
		day := 1 + rng.IntN(31) + 40*rng.IntN(2)
		b = append(b, digit(day/10), digit(day%10), pick(letters))
		for i := 0; i < 3; i++ {
			b = append(b, digit(rng.IntN(10)))
		}
		check := CFCheckChar(string(b))
		cf := string(append(b, check))
		if err := ValidateCF(cf); err != nil {
			t.Fatalf("generated %q refused: %v", cf, err)
		}
		for c := byte('A'); c <= 'Z'; c++ {
			if c != check && ValidateCF(cf[:15]+string(c)) == nil {
				t.Fatalf("%q accepted with check %c too", cf, c)
			}
		}
	}
}
