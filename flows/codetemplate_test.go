package flows

import (
	"strings"
	"testing"
)

func TestParseCodeTemplate(t *testing.T) {
	tests := []struct {
		tmpl    string
		wantErr string
		maxLen  int
	}{
		{tmpl: "{SECTOR}{YY}{SEQ:7}", maxLen: 10},
		{tmpl: "{SECTOR}{YYYY}{SEQ:10}", maxLen: 15},
		{tmpl: "{PREFIX:XYZ}{SEQ:12}", maxLen: 15},
		{tmpl: "CM{SECTOR}{SEQ:8}", maxLen: 11},
		{tmpl: "{SECTOR}{YYYY}{SEQ:11}", wantErr: "16 characters"},
		{tmpl: "{PREFIX:ab}{SEQ:3}", wantErr: "uppercase letters and digits"},
		{tmpl: "E-{SEQ:3}", wantErr: "uppercase letters and digits"},
		{tmpl: "E_{SEQ:3}", wantErr: "uppercase letters and digits"},
		{tmpl: "{SECTOR}{YY}", wantErr: "exactly one {SEQ:n}"},
		{tmpl: "{SEQ:3}{SEQ:3}", wantErr: "more than once"},
		{tmpl: "{SEQ:0}", wantErr: "width"},
		{tmpl: "{SEQ:x}", wantErr: "width"},
		{tmpl: "{MONTH}{SEQ:3}", wantErr: "unknown token"},
		{tmpl: "{SEQ:3", wantErr: "unclosed"},
		{tmpl: "", wantErr: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			ct, err := ParseCodeTemplate(tc.tmpl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ct.MaxLen() != tc.maxLen {
				t.Fatalf("MaxLen = %d, want %d", ct.MaxLen(), tc.maxLen)
			}
		})
	}
}

func TestCodeTemplateRender(t *testing.T) {
	tests := []struct {
		tmpl, sector string
		year         int
		seq          int64
		want         string
		wantErr      bool
	}{
		{"{SECTOR}{YY}{SEQ:7}", "E", 2025, 42, "E250000042", false},
		{"{SECTOR}{YYYY}{SEQ:4}", "G", 2026, 1, "G20260001", false},
		{"{PREFIX:XYZ}{SEQ:3}", "E", 2026, 999, "XYZ999", false},
		{"{PREFIX:XYZ}{SEQ:3}", "E", 2026, 1000, "", true},
		{"CM{SEQ:3}", "E", 2026, 0, "", true},
		{"{SECTOR}{SEQ:3}", "X", 2026, 1, "", true},
	}
	for _, tc := range tests {
		ct, err := ParseCodeTemplate(tc.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ct.Render(tc.sector, tc.year, tc.seq)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s.Render(%s, %d, %d) = %q, %v; want %q (error %v)", tc.tmpl, tc.sector, tc.year, tc.seq, got, err, tc.want, tc.wantErr)
		}
		if err == nil {
			if verr := ValidateCPUtente(got); verr != nil {
				t.Errorf("rendered %q is not a valid CP_UTENTE: %v", got, verr)
			}
		}
	}
}

func TestCodeTemplateSequenceName(t *testing.T) {
	withYear, _ := ParseCodeTemplate("{SECTOR}{YY}{SEQ:7}")
	noScope, _ := ParseCodeTemplate("{PREFIX:CM}{SEQ:8}")
	if a, b := withYear.SequenceName("00488410010", "E", 2025), withYear.SequenceName("00488410010", "E", 2026); a == b {
		t.Errorf("a template with {YY} must number each year apart: %q", a)
	}
	if a, b := withYear.SequenceName("00488410010", "E", 2025), withYear.SequenceName("00488410010", "G", 2025); a == b {
		t.Errorf("a template with {SECTOR} must number each sector apart: %q", a)
	}
	if a, b := noScope.SequenceName("00488410010", "E", 2025), noScope.SequenceName("00488410010", "G", 2026); a != b {
		t.Errorf("a template without sector or year has one sequence: %q vs %q", a, b)
	}
	if a, b := noScope.SequenceName("00488410010", "E", 2025), noScope.SequenceName("01234567897", "E", 2025); a == b {
		t.Errorf("sequences are per company: %q", a)
	}
}
