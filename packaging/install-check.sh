#!/usr/bin/env bash
# Installs a cmord .deb on this machine and checks it as a sysadmin would (CI runs it,
# as root): dpkg -i, the files in place, `systemd-analyze verify` of the installed
# unit, `cmord check` of the installed configuration as the cmord user, the man page
# and completion. Usage: packaging/install-check.sh cmord_VERSION_ARCH.deb
# With --purge, removes the package (dpkg --purge) and what the purge keeps (the cmord
# user, /var/lib/cmord, /srv/cmord) afterwards, leaving the machine as it was.
set -euo pipefail

deb="$1"
purge="${2:-}"
fail() { echo "install-check: $*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
dpkg -i "$deb"
trap 'if [ "$purge" = --purge ]; then dpkg --purge cmord >/dev/null; userdel cmord 2>/dev/null || true; getent group cmord >/dev/null && groupdel cmord || true; rm -rf /var/lib/cmord /srv/cmord; fi' EXIT

dpkg -s cmord | grep -q '^Status: install ok installed' || fail "dpkg says cmord is not installed"
for f in /usr/bin/cmord /lib/systemd/system/cmord.service /usr/lib/sysusers.d/cmord.conf \
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
if grep -q /usr/local/bin /lib/systemd/system/cmord.service; then
	fail "the installed unit names /usr/local/bin"
fi

cmord --version
cmord --version | grep -q "$(dpkg-query -W -f='${Version}' cmord)" || fail "cmord --version does not give the package version"

if command -v systemd-analyze >/dev/null 2>&1; then
	# verify checks the unit's syntax, ExecStart= binary and dependencies offline.
	systemd-analyze verify /lib/systemd/system/cmord.service
	echo "systemd-analyze verify: ok"
else
	echo "systemd-analyze not installed: unit not verified" >&2
fi

# The example configuration as installed passes `cmord check` as the cmord user
# (warnings for the SSH key, known_hosts and SMTP password the sysadmin still has to
# provide; exit 0).
runuser -u cmord -- cmord check --config /etc/cmord/cmord.toml

if command -v man >/dev/null 2>&1; then
	MANPAGER=cat MANWIDTH=80 man cmord | grep -q 'cmord run' || fail "man cmord does not render"
fi
bash -n /usr/share/bash-completion/completions/cmord
echo "install-check: $deb installed and checked"
