package main

import (
	"context"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
)

// The package's -update flag ("rewrite golden files") is registered here only if
// another test file has not already declared it: package variables are initialised
// before init functions run, so a `var update = flag.Bool("update", ...)` elsewhere
// wins and is shared instead of panicking as a redefinition.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

// updating reports whether -update was given.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func TestExceptionsVerb(t *testing.T) {
	cliFixture(t)
	tests := []struct {
		golden string
		args   []string
	}{
		{"open.txt", nil},
		{"high.txt", []string{"--severity", "high"}},
		{"kind_owner.txt", []string{"--kind", "no_answer", "--owner", "compliance"}},
		{"practice.txt", []string{"--practice", "E250000001"}},
		{"none.txt", []string{"--kind", "hostkey_mismatch"}},
		{"open.csv", []string{"--format", "csv"}},
		{"open.json", []string{"--format", "json"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"exceptions"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			goldenCLI(t, "exceptions", tt.golden, []byte(out))
		})
	}
	for _, bad := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--severity", "critical"}, exitUsage, `--severity "critical": want one of urgent, high, normal, low`},
		{[]string{"--open", "--all"}, exitUsage, "--open and --all exclude each other"},
		{[]string{"--format", "xlsx"}, exitUsage, `--format "xlsx"`},
		{[]string{"--practice", "NOPE"}, exitFindings, "no practice NOPE"},
	} {
		code, _, errOut := runCLI(t, append([]string{"exceptions"}, bad.args...)...)
		if code != bad.code || !strings.Contains(errOut, bad.msg) {
			t.Errorf("exceptions %v: exit %d, %q; want %d and %q", bad.args, code, errOut, bad.code, bad.msg)
		}
	}
}

func TestExceptionsResolve(t *testing.T) {
	_, stateDir := cliFixture(t)
	code, out, errOut := runCLI(t, "exceptions", "resolve", "2", "--note", "extract corrected and re-sent")
	if code != exitOK || out != "exception 2 (row_refused) resolved by tester\n" {
		t.Fatalf("resolve: exit %d, %q, %q", code, out, errOut)
	}
	// It left the open list and appears resolved, with who and why, in --all.
	_, out, _ = runCLI(t, "exceptions", "--format", "json", "--all")
	var all []exceptionJSON
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range all {
		if e.ID == 2 {
			found = true
			if e.ResolvedBy != "tester" || e.Resolution != "extract corrected and re-sent" || e.ResolvedAt == "" {
				t.Errorf("resolved exception = %+v", e)
			}
		}
	}
	if !found {
		t.Error("resolved exception missing from --all")
	}
	_, out, _ = runCLI(t, "exceptions")
	if strings.Contains(out, "row_refused") {
		t.Errorf("resolved exception still listed as open:\n%s", out)
	}
	// The resolution is in the audit log.
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	events, err := s.Events(context.Background(), archive.EventFilter{})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range events {
		if e.Type == "EXCEPTION_RESOLVED" && e.Actor == "cli:tester" && strings.Contains(e.Detail, "extract corrected") {
			audited = true
		}
	}
	if !audited {
		t.Error("no EXCEPTION_RESOLVED event in the audit log")
	}

	for _, bad := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"2", "--note", "again"}, exitFindings, "exception 2 is already resolved"},
		{[]string{"99", "--note", "x"}, exitFindings, "no exception 99"},
		{[]string{"1"}, exitUsage, "--note is required"},
		{[]string{"1", "--note", "  "}, exitUsage, "--note is required"},
		{[]string{"abc", "--note", "x"}, exitUsage, `"abc" is not an exception ID`},
		{[]string{"--note", "x"}, exitUsage, "expects one exception ID"},
	} {
		code, _, errOut := runCLI(t, append([]string{"exceptions", "resolve"}, bad.args...)...)
		if code != bad.code || !strings.Contains(errOut, bad.msg) {
			t.Errorf("resolve %v: exit %d, %q; want %d and %q", bad.args, code, errOut, bad.code, bad.msg)
		}
	}
	// Without $USER the resolver is "cli".
	t.Setenv("USER", "")
	if code, out, _ := runCLI(t, "exceptions", "resolve", "#3", "--note", "answer arrived by PEC"); code != exitOK || !strings.HasSuffix(out, "resolved by cli\n") {
		t.Errorf("resolve without USER: %d %q", code, out)
	}
}
