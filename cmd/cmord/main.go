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
	usage   string // argument synopsis shown by --help
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

// run is main without os.Exit, so tests can drive the CLI in-process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
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
		if subs := subcommands(args[0]); len(subs) > 0 {
			fmt.Fprintf(stderr, "cmord %s: missing or unknown sub-command; one of: %s\n", args[0], strings.Join(subs, ", "))
			return exitUsage
		}
		fmt.Fprintf(stderr, "cmord: unknown command %q (see cmord --help)\n", args[0])
		return exitUsage
	}
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, command: cmd}
	defer env.Close()
	return cmd.run(ctx, env, rest)
}

func subcommands(prefix string) []string {
	var out []string
	for name := range commands {
		if strings.HasPrefix(name, prefix+" ") {
			out = append(out, strings.TrimPrefix(name, prefix+" "))
		}
	}
	sort.Strings(out)
	return out
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "cmord — the CMOR indemnity daemon (Sistema Indennitario, TISIND)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: cmord <command> [flags] [args]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-22s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes --config FILE (default: $CMORD_CONFIG, then /etc/cmord/cmord.toml).")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 findings, 2 usage or configuration error.")
	fmt.Fprintln(w, "Run 'cmord <command> --help' for the command's flags.")
}

// newFlags builds the flag set of a verb with the common --config flag and a --help
// that prints the verb's synopsis.
func (e *Env) newFlags() *flag.FlagSet {
	c := e.command
	fs := flag.NewFlagSet("cmord "+c.name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.StringVar(&e.ConfigPath, "config", "", "configuration file (default $CMORD_CONFIG, then /etc/cmord/cmord.toml)")
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "Usage: cmord %s [flags] %s\n\n%s\n\nFlags:\n", c.name, c.usage, c.summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; it returns (exit code, false) when the verb must stop
// (--help gives 0, bad flags give 2).
func (e *Env) parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
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
		return exitFindings
	}
}
