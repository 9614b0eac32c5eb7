#!/usr/bin/env bash
# CI check of the overlay demo, without VMs or boxes:
#   - `bash -n` on the demo's scripts (and bench/overlay.sh), shellcheck if
#     it is installed;
#   - `vagrant validate` of the Vagrantfile: with provider settings ignored
#     (works with no usable provider), and, when the vagrant-libvirt plugin
#     is there (Debian's vagrant recommends it), once more for libvirt,
#     provider settings included.
# Installs Debian's vagrant package if vagrant is missing (needs root then).
# Vagrant's home and the machines' dot directory go to a temporary directory:
# nothing is downloaded and nothing is written in the repository.
# Usage: vagrant/check.sh   (exits non-zero on any failure)
set -euo pipefail
cd "$(dirname "$0")"

FAILED=()
run() { # label, command...
    local label=$1; shift
    echo "--- $label"
    if "$@"; then echo "    ok"; else echo "    FAILED: $label" >&2; FAILED+=("$label"); fi
}

scripts=(provision.sh demo.sh check.sh)
[ -f ../bench/overlay.sh ] && scripts+=(../bench/overlay.sh)
for s in "${scripts[@]}"; do run "bash -n $s" bash -n "$s"; done
if command -v shellcheck >/dev/null; then
    run "shellcheck ${scripts[*]}" shellcheck -x "${scripts[@]}"
else
    echo "--- shellcheck not installed, skipped"
fi

if ! command -v vagrant >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "vagrant is missing; run as root to install Debian's package" >&2; exit 1; }
    echo "--- installing vagrant (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq vagrant >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq vagrant >/dev/null; }
fi

TMPD=$(mktemp -d /tmp/vagrant-check.XXXXXX)
trap 'rm -rf "$TMPD"' EXIT
export VAGRANT_HOME=$TMPD/home VAGRANT_DOTFILE_PATH=$TMPD/dot
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1
unset VAGRANT_DEFAULT_PROVIDER VAGRANT_CWD VAGRANT_VAGRANTFILE
vagrant --version

run "vagrant validate --ignore-provider" vagrant validate --ignore-provider
if vagrant plugin list 2>/dev/null | grep -q '^vagrant-libvirt '; then
    run "vagrant validate (libvirt provider settings included)" env VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
else
    echo "--- vagrant-libvirt not installed: provider settings not validated"
fi

if ((${#FAILED[@]})); then
    echo "check failed: ${FAILED[*]}" >&2
    exit 1
fi
echo "all checks passed"
