package flows

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ---- file names ----

var placeholderRe = regexp.MustCompile(`\{([A-Z_0-9]+)(?::([^}]*))?\}`)

// BuildFileName fills the flow's FileName pattern. values supplies {FIELD}
// placeholders (usually the first record), at is the build time (shown in Europe/Rome),
// seq the daily/sequence number, format "csv"/"xml" ("" = the flow's).
func (f *Flow) BuildFileName(values map[string]string, at time.Time, seq int, format string) (string, error) {
	if f.FileName == "" {
		return "", fmt.Errorf("flow %s has no file_name pattern", f.Key)
	}
	if format == "" {
		format = f.Format
	}
	var errs []string
	out := placeholderRe.ReplaceAllStringFunc(f.FileName, func(m string) string {
		p := placeholderRe.FindStringSubmatch(m)
		name, arg := p[1], p[2]
		switch name {
		case "SERVICE":
			return f.Service
		case "CODE":
			return f.Code
		case "KEY":
			return f.Key
		case "EXT":
			return format
		case "DATE":
			return formatDatePattern(at.In(Rome), arg)
		case "SEQ":
			width, err := strconv.Atoi(arg)
			if arg == "" {
				width, err = 1, nil
			}
			if err != nil || width < 1 || width > 12 {
				errs = append(errs, fmt.Sprintf("bad {SEQ:%s}", arg))
				return m
			}
			s := fmt.Sprintf("%0*d", width, seq)
			if len(s) > width {
				errs = append(errs, fmt.Sprintf("sequence %d does not fit in %d digits", seq, width))
			}
			return s
		}
		v, ok := values[name]
		if !ok || v == "" {
			errs = append(errs, fmt.Sprintf("no value for {%s}", name))
			return m
		}
		return v
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("file name for flow %s: %s", f.Key, strings.Join(errs, "; "))
	}
	if strings.ContainsAny(out, `/\ `) {
		return "", fmt.Errorf("file name %q for flow %s contains a path separator or a space", out, f.Key)
	}
	return out, nil
}

func formatDatePattern(t time.Time, layout string) string {
	if layout == "" {
		layout = "YYYYMMDD"
	}
	r := strings.NewReplacer("YYYY", fmt.Sprintf("%04d", t.Year()), "MM", fmt.Sprintf("%02d", int(t.Month())),
		"DD", fmt.Sprintf("%02d", t.Day()), "hh", fmt.Sprintf("%02d", t.Hour()),
		"mm", fmt.Sprintf("%02d", t.Minute()), "ss", fmt.Sprintf("%02d", t.Second()))
	return r.Replace(layout)
}
