package main

import (
	"context"
	"encoding/json"
	"errors"
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
	t.Setenv("SUDO_USER", "") // the tests may themselves run under sudo
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
	// Behind sudo, the operator who ran sudo is recorded, not the cmord user.
	t.Setenv("SUDO_USER", "mrossi")
	if code, out, _ := runCLI(t, "exceptions", "resolve", "#3", "--note", "answer arrived by PEC"); code != exitOK || !strings.HasSuffix(out, "resolved by mrossi\n") {
		t.Errorf("resolve under sudo: %d %q", code, out)
	}
}

func TestResolverName(t *testing.T) {
	uidName := func(name string, err error) func() (string, error) {
		return func() (string, error) { return name, err }
	}
	tests := []struct {
		name string
		env  map[string]string
		uid  func() (string, error)
		want string
	}{
		{"sudo operator first", map[string]string{"SUDO_USER": "mrossi", "USER": "cmord", "LOGNAME": "cmord"}, uidName("cmord", nil), "mrossi"},
		{"USER", map[string]string{"USER": "alice", "LOGNAME": "bob"}, uidName("carol", nil), "alice"},
		{"LOGNAME without USER (cron, runuser -u)", map[string]string{"LOGNAME": "bob"}, uidName("carol", nil), "bob"},
		{"blank variables are unset", map[string]string{"SUDO_USER": " ", "USER": ""}, uidName("carol", nil), "carol"},
		{"the uid's name", nil, uidName("cmord", nil), "cmord"},
		{"nothing known", nil, uidName("", errors.New("unknown userid 4242")), "cli"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolverName(func(k string) string { return tt.env[k] }, tt.uid)
			if got != tt.want {
				t.Errorf("resolverName = %q, want %q", got, tt.want)
			}
		})
	}
}
