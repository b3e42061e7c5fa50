package flows

import (
	"io"
	"strings"
	"testing"
)

func TestBoundedXML(t *testing.T) {
	long := strings.Repeat("a", MaxXMLText+10)
	accented := strings.Repeat("a", MaxXMLText-1) + "è" + "bbb"
	tests := []struct {
		name, in, want, err string
	}{
		{"short text passes", "<a>ciao</a>", "<a>ciao</a>", ""},
		{"text at the bound passes", "<a>" + long[:MaxXMLText] + "</a>", "<a>" + long[:MaxXMLText] + "</a>", ""},
		{"long text cut, size noted", "<a>" + long + "</a>", "<a>" + long[:MaxXMLText] + "…(65,546 bytes)</a>", ""},
		{"cut never inside a character", "<a>" + accented + "</a>", "<a>" + accented[:MaxXMLText-1] + "…(65,540 bytes)</a>", ""},
		{"long text at the end of the file", "<a>" + long, "<a>" + long[:MaxXMLText] + "…(65,546 bytes)", ""},
		{"long tag refused", "<a x=\"" + long + "\">", "", "a tag longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time and all at once give the same.
			for _, r := range []io.Reader{strings.NewReader(tc.in), &oneByte{s: tc.in}} {
				got, err := io.ReadAll(newBoundedXML(r))
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("err = %v, want %q", err, tc.err)
					}
					continue
				}
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %d bytes %.40q… (err %v), want %d bytes", len(got), got, err, len(tc.want))
				}
			}
		})
	}
}

type oneByte struct{ s string }

func (o *oneByte) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}
