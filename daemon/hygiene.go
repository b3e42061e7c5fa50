package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cmord/cmord/config"
)

// systemTrees are directories a drop folder must not be in: cmord claims (renames
// away) and archives every file that appears in a drop folder, so a folder set to
// /etc would take the system's files, and one in /proc or /dev would read devices.
var systemTrees = []string{"/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/proc", "/sys", "/dev", "/run/systemd"}

// systemDirs are directories a drop folder must not be, though folders below them
// are fine (/srv/cmord/morosi, /var/spool/cmord/...).
var systemDirs = []string{"/", "/var", "/var/lib", "/var/spool", "/var/log", "/home", "/root", "/tmp", "/var/tmp", "/opt", "/srv", "/mnt", "/media", "/run"}

// HygieneWarnings names what, in cfg and on disk, puts secrets or the system at risk
// without being wrong enough to refuse: secrets the group or others may read, a
// configuration others may change, a drop folder set to a system directory or to the
// state directory. `cmord check` prints them; the daemon logs them at startup and at
// each reload. Issue 13.
func HygieneWarnings(cfg *config.Config) []string {
	var out []string
	if w := secretModeWarning("mail.password_file "+cfg.Mail.PasswordFile, cfg.Mail.PasswordFile, "", "cmord:cmord"); w != "" {
		out = append(out, w)
	}
	for _, ep := range cfg.SFTP {
		// cmord (x/crypto) uses such a key anyway, but OpenSSH's own ssh and sftp refuse
		// it ("UNPROTECTED PRIVATE KEY FILE"): trying the endpoint by hand would fail.
		if w := secretModeWarning(fmt.Sprintf("sftp %s: key_file %s", ep.Name, ep.KeyFile), ep.KeyFile, ", and OpenSSH's ssh refuses such a key", "cmord"); w != "" {
			out = append(out, w)
		}
	}
	if cfg.File != "" {
		if st, err := os.Stat(cfg.File); err == nil && st.Mode().Perm()&0o022 != 0 {
			who := "the group"
			if st.Mode().Perm()&0o002 != 0 {
				who = "every user"
			}
			out = append(out, fmt.Sprintf("configuration %s has mode %04o: %s may change it (folders, endpoints, where mail goes); chown root:cmord %s && chmod 0640 %s",
				cfg.File, st.Mode().Perm(), who, cfg.File, cfg.File))
		}
	}
	state := cleanReal(cfg.StateDir)
	for _, f := range cfg.Folders {
		if w := folderWarning(f, state); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// secretModeWarning says that the secret file at path (shown as what) has a mode the
// group or others may read, with the commands that fix it (owner for chown), or "".
// more is added to the risk named.
func secretModeWarning(what, path, more, owner string) string {
	if path == "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return ""
	}
	who := "the group (members of the cmord group run the CLI)"
	if st.Mode().Perm()&0o007 != 0 {
		who = "every user"
	}
	return fmt.Sprintf("%s has mode %04o: %s may read the secret%s; chown %s %s && chmod 0600 %s",
		what, st.Mode().Perm(), who, more, owner, path, path)
}

// folderWarning says why drop folder f is a dangerous place, or "".
func folderWarning(f config.Folder, state string) string {
	p := cleanReal(f.Path)
	if p == "" {
		return ""
	}
	what := fmt.Sprintf("folder %s: path %s", f.Name, f.Path)
	for _, d := range systemDirs {
		if p == d {
			return what + " is a system directory: cmord would claim and archive every file that appears in it; use a directory of its own (e.g. /srv/cmord/" + f.Name + ")"
		}
	}
	for _, t := range systemTrees {
		if within(p, t) {
			return what + " is inside " + t + ", a system directory: cmord would claim and archive the files that appear there; use a directory of its own (e.g. /srv/cmord/" + f.Name + ")"
		}
	}
	if state != "" {
		switch {
		case within(p, state):
			return what + " is inside the state directory " + state + ": the archive is no drop folder; use a directory of its own"
		case within(state, p):
			return what + " contains the state directory " + state + ": cmord would claim its own archive; use a directory of its own"
		}
	}
	return ""
}

// cleanReal is p absolute and clean, symbolic links resolved where the path exists
// (a link from /srv/drop to /etc is /etc).
func cleanReal(p string) string {
	if p == "" {
		return ""
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return filepath.Clean(abs)
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}
