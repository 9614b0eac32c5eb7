#!/usr/bin/env bash
# Installs Debian packages on the host for box/build.sh and run-here.sh, only
# those missing (idempotent, quiet when there is nothing to do):
#   host-deps.sh PACKAGE...
# qemu-system-x86 must match the host's qemu-utils: Debian 12's (7.2)
# cannot be installed beside a qemu-utils from bookworm-backports (10.x,
# "Breaks: qemu-system-common (<< 8.0)"). When the host already has the
# backports qemu-utils, qemu-system-x86 and its data packages come from
# bookworm-backports too (libvirt stays Debian 12's: its backport would
# upgrade systemd), through a sources list of our own under
# /var/cache/runtimed-vagrant/apt (the host's apt configuration is not
# changed). No service is started: a policy-rc.d refuses it while we
# install, and libvirt-daemon-system (whose default network would go on the
# host) is never installed.
set -euo pipefail

(($#)) || { echo "usage: host-deps.sh PACKAGE..." >&2; exit 2; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "$@"; do installed "$p" || missing+=("$p"); done
((${#missing[@]})) || exit 0
[ "$(id -u)" = 0 ] || { echo "missing packages (${missing[*]}); run as root to install them" >&2; exit 1; }
for p in "${missing[@]}"; do
    [ "$p" = libvirt-daemon-system ] && { echo "host-deps.sh: libvirt-daemon-system is not wanted (its default network)" >&2; exit 2; }
done

export DEBIAN_FRONTEND=noninteractive
CACHE=${RUNTIMED_VAGRANT_CACHE:-/var/cache/runtimed-vagrant}
apt_opts=()
virt=()
plain=()
qemu_utils=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
if [ -n "$qemu_utils" ] && dpkg --compare-versions "$qemu_utils" ge 1:8 \
    && grep -q bpo <<<"$qemu_utils"; then
    for p in "${missing[@]}"; do
        case $p in
            qemu-system-x86) virt+=(qemu-system-{x86,common,data}/bookworm-backports seabios/bookworm-backports) ;;
            *) plain+=("$p") ;;
        esac
    done
else
    plain=("${missing[@]}")
fi
if ((${#virt[@]})); then
    apt_dir=$CACHE/apt
    mkdir -p "$apt_dir/lists/partial"
    # Debian 12 and its backports, lists kept apart from the host's.
    key="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
    {
        for suite in bookworm bookworm-updates bookworm-backports; do
            echo "deb $key http://deb.debian.org/debian $suite main"
        done
        echo "deb $key http://deb.debian.org/debian-security bookworm-security main"
    } >"$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=-"
              -o "Dir::State::lists=$apt_dir/lists")
fi

echo "host-deps.sh: installing ${plain[*]} ${virt[*]}"
# No daemon may start on the host's network because of this install.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi
trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
install() {
    apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}
if ! install "${plain[@]}" "${virt[@]}"; then
    apt-get "${apt_opts[@]}" update -qq
    install "${plain[@]}" "${virt[@]}"
fi
