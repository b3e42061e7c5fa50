// Package demo builds the self-contained showcase behind `cmord demo`: a working
// folder with drop folders, an in-process SFTP server standing in for the SII, an
// in-process SMTP server writing .eml files, a configuration that uses them, sample
// billing extracts dated relative to today, and a scripted SII that answers.
package demo

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail/smtpsink"
	"github.com/cmord/cmord/daemon/sftpx/sftpserver"
)

// Demo is a running demo environment.
type Demo struct {
	Dir        string
	ConfigPath string
	Config     *config.Config
	SFTP       *sftpserver.Server
	SMTP       *smtpsink.Sink
	Fresh      bool   // created now (samples dropped), not reused
	Metrics    string // 127.0.0.1:PORT of /metrics and /healthz while the daemon runs
}

// Files of the demo beside its folders.
const (
	LogFile  = "cmord.log" // the daemon's log: the terminal keeps the tour
	TourFile = "tour.txt"  // the first run's narration, replayed by later runs
)

// demoEntries are everything Setup and a run create in the demo directory: what Reset
// removes, and nothing else.
var demoEntries = []string{"in", SIIRoot, MailDir, BillingOut, "keys", "state", "cmord.toml", "fakesii.json", LogFile, TourFile}

// Reset removes what an earlier demo created in dir, so the next Setup starts fresh.
// It refuses a directory whose cmord.toml was not written by the demo (a real
// installation's folder given to --dir by mistake).
func Reset(dir string) error {
	cfg := filepath.Join(dir, "cmord.toml")
	b, err := os.ReadFile(cfg)
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing to reset
	}
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(b, []byte(configHeader)) {
		return fmt.Errorf("%s was not written by `cmord demo`: not resetting %s", cfg, dir)
	}
	for _, e := range demoEntries {
		if err := os.RemoveAll(filepath.Join(dir, e)); err != nil {
			return err
		}
	}
	return nil
}

// Folders of the demo, relative to its directory.
const (
	SIIRoot    = "sii"          // the SFTP server's root: what the SII sees
	SIIInbox   = "sii/to-sii"   // where cmord publishes (the SII's inbox)
	SIIOutbox  = "sii/from-sii" // where the SII puts its answers for us
	MailDir    = "mail"         // every message the SMTP server receives, as .eml
	BillingOut = "to-billing"   // exports for billing
)

// Setup creates (or reuses) the demo directory, starts the servers and writes the
// configuration. The caller must Close it.
func Setup(dir string) (*Demo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	d := &Demo{Dir: abs, ConfigPath: filepath.Join(abs, "cmord.toml")}
	if _, err := os.Stat(filepath.Join(abs, "state")); errors.Is(err, os.ErrNotExist) {
		d.Fresh = true
	}
	for _, sub := range []string{"in/morosi", "in/incassi", "in/annullamenti", "in/rimborsi", "in/fatturato", "in/sospensioni",
		"in/sii-manuale", SIIInbox, SIIOutbox, MailDir, BillingOut, "keys", "state"} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o750); err != nil {
			return nil, err
		}
	}
	clientKey, err := clientKey(filepath.Join(abs, "keys", "id_ed25519"))
	if err != nil {
		return nil, err
	}
	d.SFTP, err = sftpserver.Start(filepath.Join(abs, SIIRoot), clientKey)
	if err != nil {
		return nil, fmt.Errorf("demo SFTP server: %w", err)
	}
	if err := d.SFTP.WriteKnownHosts(filepath.Join(abs, "keys", "known_hosts")); err != nil {
		d.Close()
		return nil, err
	}
	d.SMTP, err = smtpsink.Start(filepath.Join(abs, MailDir), smtpsink.Options{})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("demo SMTP server: %w", err)
	}
	// A free port for /metrics: taken and released here, bound again by the daemon.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("demo metrics port: %w", err)
	}
	d.Metrics = ln.Addr().String()
	ln.Close()
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, map[string]any{"SFTPPort": d.SFTP.Port, "SMTPPort": d.SMTP.Port(), "Metrics": d.Metrics}); err != nil {
		d.Close()
		return nil, err
	}
	if err := os.WriteFile(d.ConfigPath, buf.Bytes(), 0o640); err != nil {
		d.Close()
		return nil, err
	}
	d.Config, err = config.Load(d.ConfigPath)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("demo configuration: %w", err)
	}
	return d, nil
}

// Close stops the servers.
func (d *Demo) Close() {
	if d.SFTP != nil {
		d.SFTP.Close()
	}
	if d.SMTP != nil {
		d.SMTP.Close()
	}
}

// Path returns a path inside the demo directory.
func (d *Demo) Path(rel string) string { return filepath.Join(d.Dir, filepath.FromSlash(rel)) }

// clientKey loads or creates the demo's SSH client key (OpenSSH format, 0600).
func clientKey(path string) (ssh.PublicKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("demo key %s: %w", path, err)
		}
		return signer.PublicKey(), nil
	}
	return sftpserver.WriteClientKey(path, "cmord demo")
}

// Now is the demo's clock: the real time (samples are dated relative to it).
func Now() time.Time { return time.Now() }

// configHeader starts every configuration the demo writes (Reset looks for it).
const configHeader = "# cmord demo configuration, written by `cmord demo`."

var configTemplate = template.Must(template.New("cmord.toml").Parse(configHeader + `
# The SFTP and SMTP servers live inside the demo process: their ports change at each
# run, and this file is rewritten. Every other command works on the demo's state with
#   CMORD_CONFIG=<this file> cmord <command>
state_dir = "state"
lang = "it"
# /metrics and /healthz while the demo's daemon runs (a free port, chosen at each run).
listen = "{{.Metrics}}"

[company]
piva = "00488410010"
name = "Energia Demo S.p.A."
roles = ["uscente", "entrante"]
sectors = ["E", "G"]
acting_as = "UDD"
piva_gestore = "01234567897"

[practice_code]
template = "{SECTOR}{YY}{SEQ:7}"

[[folder]]
name = "morosi"
path = "in/morosi"
kind = "uscente.morosi"
settle = "1s"
rescan = "1m"

[[folder]]
name = "incassi"
path = "in/incassi"
kind = "uscente.incassi"
settle = "1s"
rescan = "1m"

[[folder]]
name = "annullamenti"
path = "in/annullamenti"
kind = "uscente.annullamenti"
settle = "1s"
rescan = "1m"

[[folder]]
name = "rimborsi"
path = "in/rimborsi"
kind = "uscente.rimborsi"
settle = "1s"
rescan = "1m"

[[folder]]
name = "fatturato"
path = "in/fatturato"
kind = "entrante.fatturato"
settle = "1s"
rescan = "1m"

[[folder]]
name = "sospensioni"
path = "in/sospensioni"
kind = "entrante.sospensioni"
settle = "1s"
rescan = "1m"

# SII files dropped by hand (an answer downloaded from the SII portal, say): recognised
# by name or COD_SERVIZIO/COD_FLUSSO and handled like answers fetched over SFTP.
[[folder]]
name = "sii-manuale"
path = "in/sii-manuale"
kind = "sii"
settle = "1s"
rescan = "1m"

[[sftp]]
name = "sii"
host = "127.0.0.1"
port = {{.SFTPPort}}
user = "cmord"
key_file = "keys/id_ed25519"
known_hosts = "keys/known_hosts"
inbound_dir = "/from-sii"
outbound_dir = "/to-sii"
completion = "move"
move_to = "/from-sii/letti"
unreachable_alert_after = "5m"

[outbound]
billing_dir = "to-billing"

[schedule]
poll_sii = "* * * * *"
build = "* * * * *"
deliver = "* * * * *"
digest = "off"   # the demo sends it at the end of its script; cmord digest --send any time
deadlines = "0 6 * * *"

[mail]
host = "127.0.0.1"
port = {{.SMTPPort}}
tls = "none"
from = "cmord demo <cmord@energia-demo.example>"

[digest]
to = ["compliance@energia-demo.example"]
include_personal_data = true

[alerts]
to = ["sistemi@energia-demo.example"]
`))
