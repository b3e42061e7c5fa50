#!/usr/bin/env bash
# Installs a cmord .deb on this machine and checks it as a sysadmin would (CI runs it,
# as root): dpkg -i, the files in place, `systemd-analyze verify` of the installed
# unit, `cmord check` of the installed configuration as the cmord user, the man page
# and completion. Usage: packaging/install-check.sh cmord_VERSION_ARCH.deb
# With --purge, removes the package (dpkg --purge) and what the purge keeps (the cmord
# user, /var/lib/cmord, /srv/cmord, the key and password files the check added to
# /etc/cmord) afterwards, leaving the machine as it was.
set -euo pipefail

deb="$1"
purge="${2:-}"
fail() { echo "install-check: $*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
dpkg -i "$deb"
# --purge: dpkg --purge, then what it keeps on purpose (the archive, billing's folders,
# the user) and the files this check added to /etc/cmord.
cleanup() {
	[ "$purge" = --purge ] || return 0
	dpkg --purge cmord >/dev/null
	rm -rf /etc/cmord /var/lib/cmord /srv/cmord
	userdel cmord 2>/dev/null || true
	if getent group cmord >/dev/null; then groupdel cmord; fi
}
trap cleanup EXIT

dpkg -s cmord | grep -q '^Status: install ok installed' || fail "dpkg says cmord is not installed"
for f in /usr/bin/cmord /lib/systemd/system/cmord.service /lib/systemd/system/cmord-failed.service /usr/lib/sysusers.d/cmord.conf \
	/usr/lib/tmpfiles.d/cmord.conf /usr/lib/sysctl.d/90-cmord-inotify.conf /etc/cmord/cmord.toml \
	/usr/share/doc/cmord/install.md /usr/share/bash-completion/completions/cmord \
	/usr/share/zsh/vendor-completions/_cmord /usr/share/man/man1/cmord.1.gz; do
	[ -e "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' cmord | grep -q ' /etc/cmord/cmord.toml ' || fail "/etc/cmord/cmord.toml is not a conffile"
# The operators' manual, when the checkout this runs from has one (docs/manuale*).
for m in docs/manuale*; do
	[ -e "$m" ] || continue
	[ -e "/usr/share/doc/cmord/$(basename "$m")" ] || fail "$m not installed under /usr/share/doc/cmord"
done
getent passwd cmord >/dev/null || fail "no cmord user"
for d in /srv/cmord /srv/cmord/morosi /srv/cmord/incassi /srv/cmord/annullamenti /srv/cmord/rimborsi \
	/srv/cmord/fatturato /srv/cmord/sospensioni /srv/cmord/to-billing /var/lib/cmord; do
	[ "$(stat -c %U:%G "$d" 2>/dev/null)" = cmord:cmord ] || fail "$d missing or not owned by cmord:cmord"
done
[ "$(stat -c %a:%G /etc/cmord/cmord.toml)" = 640:cmord ] || fail "/etc/cmord/cmord.toml is not 0640 root:cmord"
if grep -q /usr/local/bin /lib/systemd/system/cmord.service /lib/systemd/system/cmord-failed.service; then
	fail "an installed unit names /usr/local/bin"
fi
grep -q '^OnFailure=cmord-failed.service$' /lib/systemd/system/cmord.service || fail "cmord.service has no OnFailure=cmord-failed.service"

cmord --version
cmord --version | grep -q "$(dpkg-query -W -f='${Version}' cmord)" || fail "cmord --version does not give the package version"

if command -v systemd-analyze >/dev/null 2>&1; then
	# verify checks the unit's syntax, ExecStart= binary and dependencies offline.
	systemd-analyze verify /lib/systemd/system/cmord.service /lib/systemd/system/cmord-failed.service
	echo "systemd-analyze verify: ok"
else
	echo "systemd-analyze not installed: unit not verified" >&2
fi

# The example configuration as installed is a valid file: `cmord check` as the cmord
# user refuses nothing in it (exit 0, or 1 for the files it names that the sysadmin
# has yet to provide: the SSH key, known_hosts, the SMTP password; never 2).
rc=0
runuser -u cmord -- cmord check --config /etc/cmord/cmord.toml || rc=$?
[ "$rc" -le 1 ] || fail "cmord check refuses the installed example configuration (exit $rc)"
# Then the sysadmin's steps of docs/install.md, section 3: the SFTP key, the SII's
# host key in known_hosts (here the key just made stands in for the SII's), the SMTP
# password. With them the installed configuration passes `cmord check` (exit 0).
if [ ! -e /etc/cmord/sii_ed25519 ]; then
	ssh-keygen -q -t ed25519 -N '' -C cmord -f /etc/cmord/sii_ed25519
	chown cmord:cmord /etc/cmord/sii_ed25519
	chmod 0600 /etc/cmord/sii_ed25519
fi
[ -e /etc/cmord/known_hosts ] || echo "sftp.sii.example.it $(cut -d' ' -f1,2 /etc/cmord/sii_ed25519.pub)" >/etc/cmord/known_hosts
chmod 0644 /etc/cmord/known_hosts
if [ ! -e /etc/cmord/smtp_password ]; then
	install -m 0600 -o cmord -g cmord /dev/null /etc/cmord/smtp_password  # as docs/install.md: not the group
	echo 'not-a-real-password' >/etc/cmord/smtp_password
fi
runuser -u cmord -- cmord check --config /etc/cmord/cmord.toml

if command -v man >/dev/null 2>&1; then
	MANPAGER=cat MANWIDTH=80 man cmord | grep -q 'cmord run' || fail "man cmord does not render"
fi
bash -n /usr/share/bash-completion/completions/cmord
echo "install-check: $deb installed and checked"
