package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
	"github.com/cmord/cmord/daemon/sftpx"
	"github.com/cmord/cmord/flows"
)

// CheckConfig checks what config.Load cannot see alone: the catalog loads and is
// consistent, folders exist and are writable (files are claimed by rename), secrets
// and known_hosts files are readable. Paths that do not exist yet are warnings (a
// fresh installation creates them before starting); everything else is an error.
func CheckConfig(cfg *config.Config) (warnings []string, err error) {
	var errs []error
	missing := func(what string, e error) bool {
		if errors.Is(e, os.ErrNotExist) {
			warnings = append(warnings, fmt.Sprintf("%s: %v (create it before `cmord run`)", what, e))
			return true
		}
		return false
	}
	cat := flows.DefaultCatalog()
	if cfg.Catalog.Path != "" {
		c, err := flows.LoadCatalog(cfg.Catalog.Path, cfg.Catalog.Mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("catalog: %w", err))
		} else {
			cat = c
		}
	}
	for _, f := range cat.Check() {
		if !f.IsWarning() {
			errs = append(errs, fmt.Errorf("catalog: %s", f.String()))
		}
	}
	inputLayout := func(f config.Folder) *flows.Flow {
		if f.Kind == config.KindSII {
			return nil
		}
		layout := f.Kind
		if f.Kind == config.KindEntranteAnnullamenti {
			layout = config.KindUscenteAnnullamenti // same list layout, other side
		}
		return cat.Input(layout)
	}
	for _, f := range cfg.Folders {
		if err := writableDir(f.Path); err != nil && !missing("folder "+f.Name, err) {
			errs = append(errs, fmt.Errorf("folder %s: %w", f.Name, err))
		}
		if f.Kind != config.KindSII && inputLayout(f) == nil {
			errs = append(errs, fmt.Errorf("folder %s: the catalog has no input kind %q", f.Name, f.Kind))
		}
	}
	// Column mappings, as the daemon loads them when the first file arrives.
	for _, p := range cfg.CheckMappings(inputLayout) {
		if p.Rule == config.RuleFileMissing {
			warnings = append(warnings, p.String()+" (create it before `cmord run`)")
			continue
		}
		errs = append(errs, errors.New(p.String()))
	}
	if cfg.Outbound.BillingDir != "" {
		if err := writableDir(cfg.Outbound.BillingDir); err != nil && !missing("outbound.billing_dir", err) {
			errs = append(errs, fmt.Errorf("outbound.billing_dir: %w", err))
		}
	}
	warnings = append(warnings, HygieneWarnings(cfg)...) // modes of secrets and config, system folders
	for _, ep := range cfg.SFTP {
		for _, p := range []string{ep.KeyFile, ep.KnownHosts} {
			if p == "" {
				continue
			}
			if f, err := os.Open(p); err != nil {
				if !missing("sftp "+ep.Name, err) {
					errs = append(errs, fmt.Errorf("sftp %s: %w", ep.Name, err))
				}
			} else {
				f.Close()
			}
		}
	}
	if cfg.Mail.PasswordFile != "" {
		if _, err := os.ReadFile(cfg.Mail.PasswordFile); err != nil && !missing("mail.password_file", err) {
			errs = append(errs, fmt.Errorf("mail.password_file: %w", err))
		}
	}
	return warnings, errors.Join(errs...)
}

// keyModeWarning warns about a private key that the group or others may read. cmord
// (x/crypto) uses it anyway, but OpenSSH's own ssh and sftp refuse such a key
// ("UNPROTECTED PRIVATE KEY FILE"), so trying the endpoint by hand with the same key
// would fail, and the key is a secret.
func keyModeWarning(ep config.SFTP) string {
	if ep.KeyFile == "" {
		return ""
	}
	st, err := os.Stat(ep.KeyFile)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("sftp %s: key_file %s has mode %04o: the group or others may read the private key, and OpenSSH's ssh refuses such a key; chown cmord %s && chmod 0600 %s",
		ep.Name, ep.KeyFile, st.Mode().Perm(), ep.KeyFile, ep.KeyFile)
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
