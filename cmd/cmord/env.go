package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/logx"
	"github.com/cmord/cmord/flows"
)

// Env is what a verb needs, opened lazily and closed once at exit.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	ConfigPath     string // from --config; empty: $CMORD_CONFIG, then /etc/cmord/cmord.toml

	command *command
	cfg     *config.Config
	store   *archive.Store
	log     *slog.Logger
	logCtl  *logx.Reloadable // the logger's settings, re-applied on SIGHUP
	// readOnly: this run of a command that may write only reads (digest --preview).
	readOnly bool
	// describing: the verb is run only to collect its flag set (commandSpecs): parse
	// records the set in described and stops the verb before it does anything.
	describing bool
	described  *flag.FlagSet
}

// ReadOnly makes Store open the archive read-only for this run.
func (e *Env) ReadOnly() { e.readOnly = true }

// DefaultConfigPath is used when neither --config nor $CMORD_CONFIG is given.
const DefaultConfigPath = "/etc/cmord/cmord.toml"

// ResolvedConfigPath says which configuration file the verb uses.
func (e *Env) ResolvedConfigPath() string {
	if e.ConfigPath != "" {
		return e.ConfigPath
	}
	if p := os.Getenv("CMORD_CONFIG"); p != "" {
		return p
	}
	return DefaultConfigPath
}

// configNotFound says which configuration files were looked for and how to give one.
type configNotFound struct{ tried []string }

func (e configNotFound) Error() string {
	return "no configuration file found; tried:\n  " + strings.Join(e.tried, "\n  ") +
		"\nuse --config FILE, set CMORD_CONFIG, or try `cmord demo`"
}

// checkConfigExists explains a missing configuration file before config.Load reports
// a bare "no such file": where cmord looked, in order, and what to do.
func (e *Env) checkConfigExists() error {
	path := e.ResolvedConfigPath()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var tried []string
	switch {
	case e.ConfigPath != "":
		tried = append(tried, fmt.Sprintf("--config %s: does not exist", e.ConfigPath))
	case os.Getenv("CMORD_CONFIG") != "":
		tried = append(tried, "--config: not given", fmt.Sprintf("$CMORD_CONFIG=%s: does not exist", os.Getenv("CMORD_CONFIG")))
	default:
		tried = append(tried, "--config: not given", "$CMORD_CONFIG: not set", DefaultConfigPath+": does not exist")
	}
	return configNotFound{tried}
}

// Config loads and validates the configuration (once).
func (e *Env) Config() (*config.Config, error) {
	if e.cfg != nil {
		return e.cfg, nil
	}
	if err := e.checkConfigExists(); err != nil {
		return nil, err
	}
	cfg, err := config.Load(e.ResolvedConfigPath())
	if err != nil {
		return nil, err
	}
	e.cfg = cfg
	return cfg, nil
}

// readOnlyCommands only read the archive: they open it read-only (archive.OpenReadOnly),
// so members of the cmord group can run them on a state directory they may read but
// not write, and they never migrate it. Every other command that opens the archive
// (exceptions resolve, digest, export: they record events) opens it read-write.
var readOnlyCommands = map[string]bool{
	"practices": true, "practice show": true, "exceptions": true, "deliveries ls": true,
	"archive ls": true, "archive show": true, "archive history": true, "archive cat": true, "archive verify": true,
}

// Store opens the archive of the configured state directory (once): read-only for
// the commands of readOnlyCommands, read-write (migrating it) for the others.
func (e *Env) Store() (*archive.Store, error) {
	if e.store != nil {
		return e.store, nil
	}
	cfg, err := e.Config()
	if err != nil {
		return nil, err
	}
	var s *archive.Store
	if e.readOnly || e.command != nil && readOnlyCommands[e.command.name] {
		s, err = archive.OpenReadOnly(cfg.StateDir)
	} else {
		s, err = archive.Open(cfg.StateDir)
		if err != nil && (archive.IsPermission(err) || !writable(cfg.StateDir)) {
			err = needsWriteError{dir: cfg.StateDir, err: err}
		}
	}
	if err != nil {
		return nil, err
	}
	e.store = s
	return s, nil
}

// needsWriteError is a failure to open or write the archive for lack of write access
// to the state directory (see Env.fail).
type needsWriteError struct {
	dir string
	err error
}

func (e needsWriteError) Error() string { return e.err.Error() }
func (e needsWriteError) Unwrap() error { return e.err }

// writable reports whether this process may write in dir and its index.
func writable(dir string) bool {
	if syscall.Access(dir, unixWOK) != nil {
		return false
	}
	idx := filepath.Join(dir, "index.db")
	if _, err := os.Stat(idx); err == nil && syscall.Access(idx, unixWOK) != nil {
		return false
	}
	return true
}

const unixWOK = 2 // W_OK of access(2)

// needsWriteHint explains a permission error of a command that writes the archive.
func (e *Env) needsWriteHint(err error) string {
	var nw needsWriteError
	if !errors.As(err, &nw) && !archive.IsPermission(err) {
		return ""
	}
	dir := nw.dir
	if dir == "" && e.cfg != nil {
		dir = e.cfg.StateDir
	}
	return fmt.Sprintf("cmord %s needs write access to the state directory %s: run it as the cmord user, e.g. `sudo -u cmord cmord %s …` (or `runuser -u cmord -- cmord %s …`)",
		e.command.name, dir, e.command.name, e.command.name)
}

// Logger returns a logger writing to stderr per the configuration (text on a
// terminal), or a default one when there is no configuration yet.
func (e *Env) Logger() *slog.Logger {
	if e.log != nil {
		return e.log
	}
	level, format, redact := "info", "auto", true
	if e.cfg != nil {
		level, format, redact = e.cfg.Log.Level, e.cfg.Log.Format, e.cfg.Log.Redact
	}
	e.logCtl = logx.NewReloadable(e.Stderr, level, format, redact)
	e.log = e.logCtl.Logger()
	return e.log
}

// applyLogSettings re-applies [log] level, format and redact of cfg to the logger
// already handed out (SIGHUP), and says so (in the old settings) when they change.
func (e *Env) applyLogSettings(cfg *config.Config) {
	if e.logCtl == nil {
		return
	}
	l := cfg.Log
	if !e.logCtl.Changes(l.Level, l.Format, l.Redact) {
		return
	}
	// Said in the old settings: at a higher level the new ones would swallow it.
	e.log.Info("applying new log settings", "log_level", logx.ParseLevel(l.Level).String(), "log_format", l.Format, "redact", l.Redact)
	e.logCtl.Set(l.Level, l.Format, l.Redact)
}

// Close releases what the verb opened.
func (e *Env) Close() {
	if e.store != nil {
		e.store.Close()
		e.store = nil
	}
}

// Catalog is the flow catalog in force: the embedded one, extended or replaced by the
// configured file when a configuration is given.
func (e *Env) Catalog() (*flows.Catalog, error) {
	cfg, err := e.Config()
	if err != nil {
		return nil, err
	}
	if cfg.Catalog.Path == "" {
		return flows.DefaultCatalog(), nil
	}
	return flows.LoadCatalog(cfg.Catalog.Path, cfg.Catalog.Mode)
}

// isConfigError reports whether err comes from loading the configuration.
func isConfigError(err error) bool {
	var ce *config.Error
	var nf configNotFound
	return errors.As(err, &ce) || errors.As(err, &nf) || errors.Is(err, os.ErrNotExist)
}

// isTerminal reports whether w is a terminal (progress bars only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
