package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// commandSpec is one command as --help, shell completion and the man page show it.
// All three come from the one registry of commands (register) and from each verb's
// own flag set, collected by running the verb in describing mode (Env.parse stops it
// before it does anything): a flag added to a verb reaches all three at once.
type commandSpec struct {
	name, summary, usage, details string
	flags                         []flagSpec
	args                          []string // fixed words a positional argument takes (completion bash|zsh)
}

// flagSpec is one flag of a command.
type flagSpec struct {
	name  string
	arg   string // the value's placeholder (FILE, DIR, N…); "" for a boolean flag
	usage string
	def   string // the default, when it is not the zero value
}

// typed is the flag as a user types it: -o, --config.
func (f flagSpec) typed() string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

// takesFile and takesDir say what a flag's value is, for completion.
func (f flagSpec) takesFile() bool { return f.arg == "FILE" || strings.HasSuffix(f.arg, ".zip") }
func (f flagSpec) takesDir() bool  { return f.arg == "DIR" }

// commandSpecs lists the visible commands in name order with their flags.
func commandSpecs() []commandSpec {
	var out []commandSpec
	for _, c := range commands {
		if c.hidden {
			continue
		}
		env := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, command: c, describing: true}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a verb that would run anyway finds its context done
		c.run(ctx, env, nil)
		env.Close()
		spec := commandSpec{name: c.name, summary: c.summary, usage: c.usage, details: c.details, args: c.args}
		if env.described != nil {
			spec.flags = flagSpecs(env.described)
		}
		out = append(out, spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// flagSpecs lists the flags of a verb's flag set, as --help, completion and the man
// page show them.
func flagSpecs(fs *flag.FlagSet) []flagSpec {
	var out []flagSpec
	fs.VisitAll(func(f *flag.Flag) {
		// The value's placeholder as the flag package names it: a `NAME` quoted in
		// the usage, else its type ("string", "int", "duration"); none for a bool.
		arg, usage := flag.UnquoteUsage(f)
		spec := flagSpec{name: f.Name, arg: arg, usage: usage}
		if !isZeroDefault(f.DefValue) {
			spec.def = f.DefValue
			if arg == "string" {
				spec.def = fmt.Sprintf("%q", f.DefValue)
			}
		}
		out = append(out, spec)
	})
	return out
}

// topWords are the first words of the commands ("archive" for "archive ls"), sorted,
// with each one's sub-commands (none for a plain command).
func topWords(specs []commandSpec) (words []string, subs map[string][]string, summary map[string]string) {
	subs, summary = map[string][]string{}, map[string]string{}
	for _, s := range specs {
		first, rest, hasSub := strings.Cut(s.name, " ")
		if _, seen := summary[first]; !seen {
			words = append(words, first)
			summary[first] = s.summary
		}
		if hasSub {
			subs[first] = append(subs[first], rest)
			if _, plain := commands[first]; !plain {
				summary[first] = "sub-commands: " + strings.Join(subs[first], ", ")
			}
		}
	}
	sort.Strings(words)
	return words, subs, summary
}
