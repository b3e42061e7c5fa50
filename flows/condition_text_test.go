package flows

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestConditionText(t *testing.T) {
	cases := []struct{ expr, want string }{
		{"!COD_PDR", "COD_PDR is empty"},
		{"DATA_COSTITUZIONE_MORA", "DATA_COSTITUZIONE_MORA is set"},
		{"SETTORE=E", "SETTORE is E"},
		{"STATO_INCASSO=I|P", "STATO_INCASSO is I or P"},
		{"STATO=A|B|C", "STATO is A, B or C"},
		{"ESITO!=1", "ESITO is not 1"},
		{"ESITO!=1|2", "ESITO is neither 1 nor 2"},
		{"SETTORE=", "SETTORE is empty"},
		{"VERIFICA_AMM=0&!PIVA_CLIENTE&CF_CLIENTE", "VERIFICA_AMM is 0 and PIVA_CLIENTE is empty and CF_CLIENTE is set"},
		{" SETTORE = G & ! COD_POD ", "SETTORE is G and COD_POD is empty"},
		{"A&&B", "A&&B"}, // does not parse: shown as written rather than half-translated
	}
	for _, tc := range cases {
		if got := ConditionText(tc.expr); got != tc.want {
			t.Errorf("ConditionText(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// conditionSyntax matches what only the catalog's condition grammar would put in a
// message: a negation, comparison, alternative or conjunction sign.
var conditionSyntax = regexp.MustCompile(`[!=|&]`)

// TestRequiredWhenMessages lists the message every conditional field of the embedded
// catalog gives when it is missing, so a reviewer sees them as a billing clerk will,
// and none shows the catalog's syntax.
func TestRequiredWhenMessages(t *testing.T) {
	c := DefaultCatalog()
	var b bytes.Buffer
	for _, group := range [][]*Flow{c.Flows, c.Inputs} {
		for _, f := range group {
			for i, fd := range f.Fields {
				cond := f.conds[i]
				if cond == nil {
					continue
				}
				msg := "value required when " + cond.words()
				if conditionSyntax.MatchString(msg) {
					t.Errorf("%s %s: message %q shows the catalog's condition syntax", f.ID(), fd.Name, msg)
				}
				fmt.Fprintf(&b, "%s %s (when %q): %s\n", f.ID(), fd.Name, fd.When, msg)
			}
		}
	}
	golden(t, "required_when_messages.txt", b.Bytes())
}

// TestRequiredWhenMessageInFindings reads a SUSP_REQ with neither COD_POD nor COD_PDR,
// in both formats, and checks the findings' words.
func TestRequiredWhenMessageInFindings(t *testing.T) {
	f := DefaultCatalog().Flow("SUSP_REQ")
	want := map[string]string{
		"COD_POD": "value required when COD_PDR is empty",
		"COD_PDR": "value required when COD_POD is empty",
	}
	for _, format := range []string{"csv", "xml"} {
		t.Run(format, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "golden", "SUSP_REQ."+format))
			if err != nil {
				t.Fatal(err)
			}
			s := string(data)
			if format == "csv" {
				s = strings.Replace(s, ";IT023E00121943;00881234567890;", ";;;", 1)
			} else {
				s = strings.Replace(s, "<COD_POD>IT023E00121943</COD_POD>", "", 1)
				s = strings.Replace(s, "<COD_PDR>00881234567890</COD_PDR>", "", 1)
			}
			_, fs := readAll(t, f, format, []byte(s), ReadOptions{FileName: "susp." + format})
			got := map[string]string{}
			for _, fd := range fs {
				if fd.Rule == RuleRequired {
					got[fd.Field] = fd.Message
				}
			}
			for field, msg := range want {
				if got[field] != msg {
					t.Errorf("%s: message %q, want %q (findings %v)", field, got[field], msg, fs)
				}
			}
		})
	}
}
