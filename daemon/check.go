package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/sftpx"
	"github.com/cmord/cmord/flows"
)

// CheckConfig checks what config.Load cannot see alone, offline, on this machine:
// everything that is sure to make `cmord run` fail or stall. The catalog loads and is
// consistent; drop folders exist and cmord can create files in them (it claims files
// by rename into .inprogress/ and moves them to done/ and rejected/); the state
// directory can be created and written; mapping files, private keys, known_hosts and
// the SMTP password file exist and are usable (a key parses without a passphrase,
// known_hosts parses and has a key for the endpoint); flows that must go to the SII
// have an SFTP endpoint with an outbound_dir. Each error names the configuration
// file and line of the key at fault; warnings are what may be intended (a key the
// group can read, a billing folder still to be created).
func CheckConfig(cfg *config.Config) (warnings []string, err error) {
	var errs []error
	bad := func(rule, msg string, path ...string) {
		errs = append(errs, errors.New(cfg.ProblemAt(rule, msg, path...).String()))
	}
	cat := flows.DefaultCatalog()
	if cfg.Catalog.Path != "" {
		c, err := flows.LoadCatalog(cfg.Catalog.Path, cfg.Catalog.Mode)
		if err != nil {
			bad("catalog", err.Error(), "catalog", "path")
		} else {
			cat = c
		}
	}
	for _, f := range cat.Check() {
		if !f.IsWarning() {
			errs = append(errs, fmt.Errorf("catalog: %s", f.String()))
		}
	}
	if err := checkSIIFlowLimits(cfg, cat); err != nil {
		errs = append(errs, err)
	}
	inputLayout := inputLayoutOf(cat)
	if msg := stateDirProblem(cfg.StateDir); msg != "" {
		bad("state_dir", msg, "state_dir")
	}
	outbound, inbound := false, false
	for _, ep := range cfg.SFTP {
		outbound = outbound || ep.OutboundDir != ""
		inbound = inbound || ep.InboundDir != ""
	}
	for _, f := range cfg.Folders {
		inbound = inbound || f.Kind == config.KindSII // SII files downloaded by hand
	}
	for i, f := range cfg.Folders {
		el := fmt.Sprintf("folder[%d]", i)
		if msg := dropFolderProblem(f.Path); msg != "" {
			bad("folder_path", fmt.Sprintf("folder %s: %s", f.Name, msg), el, "path")
		}
		if f.Kind != config.KindSII && inputLayout(f) == nil {
			bad("kind", fmt.Sprintf("folder %s: the catalog has no input kind %q", f.Name, f.Kind), el, "kind")
		}
		if toSII[f.Kind] && !outbound {
			bad("no_outbound", fmt.Sprintf("folder %s (%s) leads to flows for the SII, but no [[sftp]] endpoint has an outbound_dir: they would be built and never sent", f.Name, f.Kind), el, "kind")
		}
		if f.Role() != "" && !inbound {
			bad("no_inbound", fmt.Sprintf("folder %s (%s) needs the SII's flows (answers, notices), but no [[sftp]] endpoint has an inbound_dir and no folder has kind \"sii\": they would never be read", f.Name, f.Kind), el, "kind")
		}
	}
	errs = append(errs, mappingErrors(cfg, inputLayout)...)
	if dir := cfg.Outbound.BillingDir; dir != "" {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			if msg := creatableProblem(dir); msg != "" {
				bad("billing_dir", msg, "outbound", "billing_dir")
			} else {
				warnings = append(warnings, fmt.Sprintf("outbound.billing_dir: %s does not exist yet (cmord creates it at the first export)", dir))
			}
		} else if err := writableDir(dir); err != nil {
			bad("billing_dir", err.Error(), "outbound", "billing_dir")
		}
	}
	warnings = append(warnings, HygieneWarnings(cfg)...) // modes of secrets and config, system folders
	for i, ep := range cfg.SFTP {
		el := fmt.Sprintf("sftp[%d]", i)
		if msg := privateKeyProblem(ep.KeyFile); msg != "" {
			bad("key_file", fmt.Sprintf("sftp %s: %s", ep.Name, msg), el, "key_file")
		}
		if ep.KnownHosts != "" && !ep.InsecureTrustOnFirstUse {
			if msg := knownHostsProblem(ep.KnownHosts, ep.Addr()); msg != "" {
				bad("known_hosts", fmt.Sprintf("sftp %s: %s", ep.Name, msg), el, "known_hosts")
			}
		}
	}
	if p := cfg.Mail.PasswordFile; p != "" {
		if b, err := os.ReadFile(p); err != nil {
			bad("password_file", fmt.Sprintf("%v: the SMTP login would fail", err), "mail", "password_file")
		} else if strings.TrimSpace(string(b)) == "" {
			bad("password_file", fmt.Sprintf("%s is empty: the SMTP login would fail", p), "mail", "password_file")
		}
	}
	return warnings, errors.Join(errs...)
}

// toSII are the folder kinds whose files lead to flows cmord sends to the SII
// (requests, annulments, refund acknowledgements, suspensions).
var toSII = map[string]bool{
	config.KindUscenteMorosi: true, config.KindUscenteAnnullamenti: true, config.KindUscenteRimborsi: true,
	config.KindEntranteSospensioni: true, config.KindEntranteAnnullamenti: true,
}

// dropFolderProblem says why a drop folder cannot work: missing, not a directory, or
// cmord cannot create files in it or in its .inprogress/, done/ and rejected/.
func dropFolderProblem(p string) string {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("%s does not exist: create it (owned by the cmord user, writable) before `cmord run`", p)
	case err != nil:
		return err.Error()
	case !st.IsDir():
		return fmt.Sprintf("%s is not a directory", p)
	}
	if err := writableDir(p); err != nil {
		return err.Error() + ": cmord moves each file it takes into .inprogress/, then done/ or rejected/"
	}
	for _, sub := range []string{".inprogress", "done", "rejected"} {
		d := filepath.Join(p, sub)
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			continue // created at start
		}
		if err := writableDir(d); err != nil {
			return err.Error()
		}
	}
	return ""
}

// stateDirProblem says why the state directory cannot be used: it exists and is not
// a writable directory, or it does not exist and cannot be created.
func stateDirProblem(p string) string {
	if p == "" {
		return ""
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return creatableProblem(p)
	}
	if err := writableDir(p); err != nil {
		return err.Error()
	}
	return ""
}

// creatableProblem says why directory p (which does not exist) cannot be created:
// its nearest existing ancestor is not a writable directory.
func creatableProblem(p string) string {
	parent := filepath.Dir(filepath.Clean(p))
	for {
		if _, err := os.Stat(parent); err == nil {
			break
		}
		next := filepath.Dir(parent)
		if next == parent {
			break
		}
		parent = next
	}
	if err := writableDir(parent); err != nil {
		return fmt.Sprintf("%s does not exist and cannot be created: %v", p, err)
	}
	return ""
}

// privateKeyProblem says why a private key cannot be used: missing, unreadable, not
// a private key, or protected by a passphrase (cmord has none to give).
func privateKeyProblem(p string) string {
	if p == "" {
		return ""
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("key_file: %v", err)
	}
	if _, err := ssh.ParsePrivateKey(b); err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return fmt.Sprintf("key_file %s is protected by a passphrase: cmord cannot use it (keep the key unencrypted, readable by the cmord user alone)", p)
		}
		return fmt.Sprintf("key_file %s is not a private key cmord can use: %v", p, err)
	}
	return ""
}

// knownHostsProblem says why host-key verification of addr would refuse every
// connection: the known_hosts file is missing, unreadable, does not parse, or has no
// key for the endpoint.
func knownHostsProblem(p, addr string) string {
	if _, err := os.ReadFile(p); err != nil {
		return fmt.Sprintf("known_hosts: %v: every connection would be refused; get the key with `cmord hostkey fetch %s` and confirm it out of band", err, addr)
	}
	// The keys the file records for addr, as the client reads them before it dials.
	algos, err := sftpx.HostKeyAlgorithmsFor(p, addr)
	if err != nil {
		return fmt.Sprintf("known_hosts %s: %v", p, err)
	}
	if len(algos) == 0 {
		return fmt.Sprintf("known_hosts %s has no key for %s: every connection would be refused; get it with `cmord hostkey fetch %s` and confirm it out of band", p, addr, addr)
	}
	return ""
}

func writableDir(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	f, err := os.CreateTemp(p, ".cmord-check-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", p, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// Connection is the result of reaching one server.
type Connection struct {
	Kind, Name string
	Err        error
}

// CheckConnections reaches every SFTP endpoint (host key verified, directories
// listed) and the SMTP server.
func CheckConnections(ctx context.Context, cfg *config.Config) []Connection {
	var out []Connection
	for _, ep := range cfg.SFTP {
		sep := endpoint(ep)
		sep.TOFUNoRecord = true // a check never writes the server's key: only the daemon does, on first use
		c := sftpx.NewClient(sep, nil)
		var err error
		for _, dir := range []string{ep.InboundDir, ep.OutboundDir} {
			if dir == "" || err != nil {
				continue
			}
			_, err = c.List(ctx, dir)
		}
		c.Close()
		out = append(out, Connection{Kind: "sftp", Name: ep.Name, Err: err})
	}
	if cfg.Mail.Host != "" {
		out = append(out, Connection{Kind: "smtp", Name: net.JoinHostPort(cfg.Mail.Host, strconv.Itoa(cfg.Mail.Port)),
			Err: mail.NewSender(smtpConfig(cfg.Mail), nil, nil).Check(ctx)})
	}
	return out
}

// checkSIIFlowLimits refuses a [limits.sii_flow] key that is no SII flow of the
// catalog: a typo would leave that flow at sii_file without a word.
func checkSIIFlowLimits(cfg *config.Config, cat *flows.Catalog) error {
	var bad []string
	for key := range cfg.Limits.SIIFlow {
		if f := cat.Flow(key); f == nil || f.Direction != "in" {
			bad = append(bad, key)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("limits.sii_flow: %s: not an inbound SII flow of the catalog (see `cmord catalog show`)", strings.Join(bad, ", "))
}

// inputLayoutOf gives a folder's input layout in cat (nil for the SII's folder).
func inputLayoutOf(cat *flows.Catalog) func(config.Folder) *flows.Flow {
	return func(f config.Folder) *flows.Flow {
		if f.Kind == config.KindSII {
			return nil
		}
		layout := f.Kind
		if f.Kind == config.KindEntranteAnnullamenti {
			layout = config.KindUscenteAnnullamenti // same list layout, other side
		}
		return cat.Input(layout)
	}
}

// mappingErrors checks the folders' column mappings as the daemon loads them when
// the first file arrives: a missing, broken or disagreeing mapping file refuses
// every file of its folder.
func mappingErrors(cfg *config.Config, inputLayout func(config.Folder) *flows.Flow) []error {
	var errs []error
	for _, p := range cfg.CheckMappings(inputLayout) {
		if p.Rule == config.RuleFileMissing {
			p.Message += ": every file of the folder would be refused"
		}
		errs = append(errs, errors.New(p.String()))
	}
	return errs
}
