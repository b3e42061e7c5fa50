// Command cmord runs and inspects the CMOR indemnity daemon.
//
// Every verb lives in its own file (cmd_<verb>.go) and registers itself in init with
// register. The CLI is thin: it parses flags, opens what the verb needs through Env,
// and calls into daemon/ and archive/. Exit codes: 0 ok, 1 findings, 2 usage or config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes, as SPEC.md says.
const (
	exitOK       = 0
	exitFindings = 1
	exitUsage    = 2
)

// command is one verb of the CLI.
type command struct {
	name    string // "archive verify" for sub-verbs
	summary string
	usage   string   // argument synopsis shown by --help
	details string   // more --help text after the flags (output formats, field lists)
	hidden  bool     // an alias: runs, but is not listed
	args    []string // fixed words its positional argument takes, for shell completion
	run     func(ctx context.Context, env *Env, args []string) int
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// usageError is returned by verbs for bad arguments: exit 2 with the message.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func isHelpArg(s string) bool { return s == "-h" || s == "--help" || s == "-help" || s == "help" }

// run is main without os.Exit, so tests can drive the CLI in-process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "-V" {
		args = append([]string{"version"}, args[1:]...)
	}
	if isHelpArg(args[0]) {
		if len(args) > 1 {
			// "cmord help archive" is "cmord archive --help".
			return run(append(append([]string{}, args[1:]...), "--help"), stdin, stdout, stderr)
		}
		printUsage(stdout)
		return exitOK
	}
	// Longest match: "archive verify" before "archive".
	var cmd *command
	var rest []string
	if len(args) >= 2 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			cmd, rest = c, args[2:]
		}
	}
	if cmd == nil {
		if c, ok := commands[args[0]]; ok {
			cmd, rest = c, args[1:]
		}
	}
	if cmd == nil {
		subs := subcommands(args[0])
		if len(subs) == 0 {
			fmt.Fprintf(stderr, "cmord: unknown command %q (see cmord --help)\n", args[0])
			return exitUsage
		}
		switch {
		case len(args) > 1 && isHelpArg(args[1]):
			printGroupUsage(stdout, args[0], subs)
			return exitOK
		case len(args) == 1 || strings.HasPrefix(args[1], "-"):
			fmt.Fprintf(stderr, "cmord %s: missing sub-command\n\n", args[0])
		default:
			fmt.Fprintf(stderr, "cmord %s: unknown sub-command %q\n\n", args[0], args[1])
		}
		printGroupUsage(stderr, args[0], subs)
		return exitUsage
	}
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, command: cmd}
	defer env.Close()
	return cmd.run(ctx, env, rest)
}

// subcommands lists the visible commands named "prefix SUB".
func subcommands(prefix string) []*command {
	var out []*command
	for name, c := range commands {
		if strings.HasPrefix(name, prefix+" ") && !c.hidden {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// printGroupUsage lists the sub-commands of a command group, one a line.
func printGroupUsage(w io.Writer, group string, subs []*command) {
	fmt.Fprintf(w, "Usage: cmord %s <sub-command> [flags] [args]\n\nSub-commands:\n", group)
	printCommandList(w, subs, group+" ")
	fmt.Fprintf(w, "\nRun 'cmord %s <sub-command> --help' for its flags.\n", group)
}

func printCommandList(w io.Writer, list []*command, trim string) {
	width := 0
	for _, c := range list {
		width = max(width, len(strings.TrimPrefix(c.name, trim)))
	}
	for _, c := range list {
		fmt.Fprintf(w, "  %-*s  %s\n", width, strings.TrimPrefix(c.name, trim), c.summary)
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "cmord — the CMOR indemnity daemon (Sistema Indennitario, TISIND)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: cmord <command> [flags] [args]")
	fmt.Fprintln(w)
	var list []*command
	for _, c := range commands {
		if !c.hidden {
			list = append(list, c)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	printCommandList(w, list, "")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Every command takes --config FILE (default: $CMORD_CONFIG, then %s).\n", DefaultConfigPath)
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 findings, 2 usage or configuration error.")
	fmt.Fprintln(w, "Run 'cmord <command> --help' for the command's flags; 'cmord --version' for the version.")
}

// newFlags builds the flag set of a verb with the common --config flag; --help prints
// the verb's synopsis and flags to stdout (see parse).
func (e *Env) newFlags() *flag.FlagSet {
	c := e.command
	fs := flag.NewFlagSet("cmord "+c.name, flag.ContinueOnError)
	fs.SetOutput(prefixWriter{w: e.Stderr, prefix: "cmord " + c.name + ": "})
	fs.StringVar(&e.ConfigPath, "config", "", "configuration `FILE` (default $CMORD_CONFIG, then "+DefaultConfigPath+")")
	fs.Usage = func() {} // parse prints the help, to stdout when asked for
	return fs
}

// printHelp writes the verb's synopsis, flags, sub-commands and details.
func (e *Env) printHelp(w io.Writer, fs *flag.FlagSet) {
	c := e.command
	synopsis := "[flags]"
	if c.usage != "" {
		synopsis += " " + c.usage
	}
	fmt.Fprintf(w, "Usage: cmord %s %s\n\n%s\n\nFlags:\n", c.name, synopsis, c.summary)
	for _, f := range flagSpecs(fs) {
		line := "  " + f.typed()
		if f.arg != "" {
			line += " " + f.arg
		}
		fmt.Fprintln(w, line)
		usage := f.usage
		if f.def != "" && !strings.Contains(usage, "default") {
			usage += " (default " + f.def + ")"
		}
		fmt.Fprintf(w, "    \t%s\n", strings.ReplaceAll(usage, "\n", "\n    \t"))
	}
	if subs := subcommands(c.name); len(subs) > 0 {
		fmt.Fprintln(w, "\nSub-commands:")
		printCommandList(w, subs, "")
	}
	if c.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.details, "\n"))
	}
}

// prefixWriter puts "cmord VERB: " before each message the flag package writes (one
// Write per message), so its errors look like every other error of the CLI.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

func isZeroDefault(v string) bool { return v == "" || v == "0" || v == "false" || v == "0s" }

// parse parses flags; it returns (exit code, false) when the verb must stop
// (--help gives 0, bad flags give 2).
func (e *Env) parse(fs *flag.FlagSet, args []string) (int, bool) {
	if e.describing {
		e.described = fs
		return exitOK, false
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.printHelp(e.Stdout, fs)
			return exitOK, false
		}
		// The flag package printed what is wrong; say where the rest is.
		fmt.Fprintf(e.Stderr, "Run 'cmord %s --help' for its flags.\n", e.command.name)
		return exitUsage, false
	}
	return 0, true
}

// parseInterspersed parses flags that may come before, between or after positional
// arguments ("archive show 12 --config F") and returns the positional ones, in order.
// After "--" everything is positional.
func parseInterspersed(env *Env, fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if code, ok := env.parse(fs, args); !ok {
			return nil, code, false
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), exitOK, true
		}
		if len(rest) == 0 {
			return pos, exitOK, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noArgs parses flags of a verb that takes no positional argument, refusing any.
func noArgs(env *Env, fs *flag.FlagSet, args []string, hint string) (int, bool) {
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code, false
	}
	if len(pos) > 0 {
		return env.fail(usageError{"unexpected argument " + pos[0] + hint}), false
	}
	return 0, true
}

// fail prints an error the way users should see it and returns the exit code:
// usage and configuration problems give 2, anything else 1.
func (e *Env) fail(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(e.Stderr, "cmord %s: %s\n", e.command.name, ue.msg)
		return exitUsage
	case isConfigError(err):
		fmt.Fprintf(e.Stderr, "cmord %s: %v\n", e.command.name, err)
		return exitUsage
	default:
		fmt.Fprintf(e.Stderr, "cmord %s: %v\n", e.command.name, err)
		if hint := e.needsWriteHint(err); hint != "" {
			fmt.Fprintln(e.Stderr, hint)
		}
		return exitFindings
	}
}
