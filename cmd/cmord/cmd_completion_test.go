package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every command of the registry, with its flags, reaches the bash and zsh completion
// and the man page; each verb's flag set is collected (it parsed in describing mode,
// so it ran no further).
func TestCommandSpecsCoverEveryCommand(t *testing.T) {
	specs := commandSpecs()
	visible := 0
	for _, c := range commands {
		if !c.hidden {
			visible++
		}
	}
	if len(specs) != visible || visible < 15 {
		t.Fatalf("%d specs for %d visible commands", len(specs), visible)
	}
	gen := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := run(args, nil, &out, &errb); code != exitOK {
			t.Fatalf("cmord %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	bash, zsh, man := gen("completion", "bash"), gen("completion", "zsh"), gen("man")
	for _, s := range specs {
		hasConfig := false
		for _, f := range s.flags {
			hasConfig = hasConfig || f.name == "config"
		}
		if !hasConfig {
			t.Errorf("%s: no --config flag collected: the verb did not parse its flags in describing mode", s.name)
		}
		if !strings.Contains(bash, "\t"+`"`+s.name+`") echo "`) {
			t.Errorf("bash completion lacks the flags of %q", s.name)
		}
		if !strings.Contains(zsh, "\t\t'"+s.name+"')\n") {
			t.Errorf("zsh completion lacks %q", s.name)
		}
		if !strings.Contains(man, `.SS "cmord `+roff(s.name)+`"`) {
			t.Errorf("man page lacks %q", s.name)
		}
		for _, f := range s.flags {
			if !strings.Contains(bash, " "+f.typed()) && !strings.Contains(bash, `"`+f.typed()) {
				t.Errorf("bash completion lacks %s %s", s.name, f.typed())
			}
			if !strings.Contains(zsh, "'"+f.typed()+"[") {
				t.Errorf("zsh completion lacks %s %s", s.name, f.typed())
			}
			if f.name != "config" && !strings.Contains(man, `\fB`+roff(f.typed())+`\fR`) {
				t.Errorf("man page lacks %s %s", s.name, f.typed())
			}
		}
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bashPath, zshPath, manPath := write("cmord.bash", bash), write("_cmord", zsh), write("cmord.1", man)
	if out, err := exec.Command("bash", "-n", bashPath).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("zsh"); err == nil {
		if out, err := exec.Command("zsh", "-n", zshPath).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	} else {
		t.Log("zsh not installed: zsh -n not run")
	}
	if _, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z", manPath)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff -ww: %v\n%s", err, stderr.String())
		}
	} else {
		t.Log("groff not installed: warnings not checked")
	}
	if _, err := exec.LookPath("man"); err == nil {
		cmd := exec.Command("man", "-l", manPath)
		cmd.Env = append(os.Environ(), "MANWIDTH=100", "MANPAGER=cat", "PAGER=cat")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man -l: %v\n%s", err, stderr.String())
		}
		for _, s := range specs {
			if !strings.Contains(stdout.String(), "cmord "+s.name) {
				t.Errorf("man -l output lacks the command %q", s.name)
			}
		}
	} else {
		t.Log("man not installed: rendering not checked")
	}
}

// The bash completion completes what a user types, run in a real bash.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	var script bytes.Buffer
	writeBashCompletion(&script, commandSpecs())
	path := filepath.Join(t.TempDir(), "cmord.bash")
	if err := os.WriteFile(path, script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line string // what is typed; the last word is completed
		want []string
		not  []string
	}{
		{"cmord ", []string{"archive", "run", "demo", "completion", "man", "practices", "version"}, []string{"--config"}},
		{"cmord arch", []string{"archive"}, []string{"run"}},
		{"cmord archive ", []string{"ls", "verify", "cat"}, []string{"run"}},
		{"cmord archive ls --", []string{"--kind", "--limit", "--config"}, []string{"--once"}},
		{"cmord --config /etc/cmord/cmord.toml run --", []string{"--once", "--config"}, []string{"--kind"}},
		{"cmord completion ", []string{"bash", "zsh"}, nil},
		{"cmord demo --", []string{"--dir", "--once"}, nil},
		{"cmord exceptions res", []string{"resolve"}, nil},
	}
	for _, tt := range tests {
		words := strings.Fields(tt.line)
		if strings.HasSuffix(tt.line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := "source " + path + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			itoa(len(words)-1) + "\n_cmord\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil {
			t.Errorf("%q: %v\n%s", tt.line, err, out)
			continue
		}
		got := "\n" + string(out)
		for _, w := range tt.want {
			if !strings.Contains(got, "\n"+w+"\n") {
				t.Errorf("%q: completions lack %q:\n%s", tt.line, w, out)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, "\n"+n+"\n") {
				t.Errorf("%q: completions offer %q:\n%s", tt.line, n, out)
			}
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// zshStubs stand in for zsh's completion system (compsys, which needs a terminal):
// _describe prints the candidates, _arguments the flag specs, or sets $state and
// shifts $words as `_arguments -C '1: :->cmd' '*:: :->args'` does.
const zshStubs = `
_describe() { print -l -- "${(@P)${@[-1]}}" }
_arguments() {
	local a
	for a in "$@"; do
		if [[ $a == '*:: :->args' ]]; then
			if (( CURRENT == 2 )); then state=cmd; else state=args; words=("${(@)words[2,-1]}"); (( CURRENT-- )); fi
			return
		fi
	done
	print -l -- "$@"
}
_files() { }
`

// The zsh completion offers, at each point of a command line, the commands, the
// sub-commands or the flags of the command typed, run in a real zsh with stubs for
// the completion system's functions.
func TestZshCompletion(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh not installed")
	}
	var script bytes.Buffer
	writeZshCompletion(&script, commandSpecs())
	path := filepath.Join(t.TempDir(), "_cmord")
	if err := os.WriteFile(path, script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words []string // the last is being completed
		want  []string
		not   []string
	}{
		{[]string{"cmord", ""}, []string{"archive:", "run:", "completion:", "man:"}, []string{"--config"}},
		{[]string{"cmord", "archive", ""}, []string{"ls:", "verify:"}, []string{"run:"}},
		{[]string{"cmord", "archive", "ls", "--"}, []string{"--kind[", "--config["}, []string{"--once["}},
		{[]string{"cmord", "exceptions", "-"}, []string{"--all["}, []string{"resolve:"}},
		{[]string{"cmord", "exceptions", ""}, []string{"resolve:"}, nil},
		{[]string{"cmord", "exceptions", "resolve", "-"}, []string{"--note["}, []string{"--all["}},
		{[]string{"cmord", "run", "-"}, []string{"--once["}, []string{"--kind["}},
		{[]string{"cmord", "completion", ""}, []string{"1:argument:(bash zsh)"}, nil},
	}
	for _, tt := range tests {
		var quoted []string
		for _, w := range tt.words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := zshStubs + "source " + path + "\nwords=(" + strings.Join(quoted, " ") + ")\nCURRENT=" +
			strconv.Itoa(len(tt.words)) + "\nPREFIX=" + quoted[len(quoted)-1] + "\n_cmord\n"
		out, err := exec.Command("zsh", "-f", "-c", prog).CombinedOutput()
		line := strings.Join(tt.words, " ")
		if err != nil {
			t.Errorf("%q: %v\n%s", line, err, out)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%q: zsh offers no %q:\n%s", line, w, out)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(string(out), n) {
				t.Errorf("%q: zsh offers %q:\n%s", line, n, out)
			}
		}
	}
}

// `cmord completion` wants one known shell; `cmord man` takes no argument.
func TestCompletionAndManUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"completion"}, exitUsage, "want one shell: bash or zsh"},
		{[]string{"completion", "fish"}, exitUsage, `unknown shell "fish"`},
		{[]string{"completion", "bash", "zsh"}, exitUsage, "want one shell"},
		{[]string{"man", "cmord"}, exitUsage, "unexpected argument cmord"},
		{[]string{"completion", "--help"}, exitOK, "bash-completion/completions/cmord"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if code := run(tt.args, nil, &out, &out); code != tt.code || !strings.Contains(out.String(), tt.want) {
			t.Errorf("cmord %s: exit %d, %q; want exit %d and %q", strings.Join(tt.args, " "), code, out.String(), tt.code, tt.want)
		}
	}
}
