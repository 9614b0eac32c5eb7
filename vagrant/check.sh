#!/usr/bin/env bash
# CI check of the overlay demo, without VMs or boxes (a few seconds):
#   - `bash -n` and shellcheck on the demo's scripts (and bench/overlay.sh);
#   - `vagrant validate` of the Vagrantfile: with provider settings ignored
#     (works with no usable provider), and, when the vagrant-libvirt plugin
#     is there (Debian's vagrant recommends it), once more for libvirt,
#     provider settings included, for the default box and for what
#     run-here.sh passes (local box, prebuilt binaries, TCG);
#   - the box's metadata: box/build.sh --metadata writes metadata.json and
#     the box's Vagrantfile, checked as JSON and with `vagrant validate`
#     (nothing is downloaded or built).
# Installs Debian's vagrant and shellcheck packages if missing (needs root
# then).
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

scripts=(provision.sh demo.sh check.sh host-deps.sh run-here.sh run-netns.sh box/build.sh box/accel.sh
         netns/node.sh netns/bin/vagrant netns/bin/node-bin/sudo netns/bin/node-bin/systemctl)
[ -f ../bench/overlay.sh ] && scripts+=(../bench/overlay.sh)
for s in "${scripts[@]}"; do run "bash -n $s" bash -n "$s"; done
for tool in shellcheck vagrant; do
    command -v "$tool" >/dev/null && continue
    [ "$(id -u)" = 0 ] || { echo "$tool is missing; run as root to install Debian's package" >&2; exit 1; }
    echo "--- installing $tool (apt)"
    ./host-deps.sh "$tool"
done
run "shellcheck (${#scripts[@]} scripts)" shellcheck -x "${scripts[@]}"

TMPD=$(mktemp -d /tmp/vagrant-check.XXXXXX)
trap 'rm -rf "$TMPD"' EXIT
export VAGRANT_HOME=$TMPD/home VAGRANT_DOTFILE_PATH=$TMPD/dot
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1
unset VAGRANT_DEFAULT_PROVIDER VAGRANT_CWD VAGRANT_VAGRANTFILE
vagrant --version

run "vagrant validate --ignore-provider" vagrant validate --ignore-provider
local_box=(RUNTIMED_VAGRANT_BOX=runtimed/debian12-local RUNTIMED_VAGRANT_BIN="$TMPD"
           RUNTIMED_VAGRANT_MGMT_MODE=none RUNTIMED_VAGRANT_DRIVER=qemu)
run "vagrant validate --ignore-provider (run-here.sh's settings)" env "${local_box[@]}" vagrant validate --ignore-provider
if vagrant plugin list 2>/dev/null | grep -q '^vagrant-libvirt '; then
    run "vagrant validate (libvirt provider settings included)" env VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
    run "vagrant validate (libvirt, run-here.sh's settings)" env VAGRANT_DEFAULT_PROVIDER=libvirt "${local_box[@]}" vagrant validate
else
    echo "--- vagrant-libvirt not installed: provider settings not validated"
fi

# The box's metadata, as box/build.sh writes it into the box. Its
# Vagrantfile names no box (a box's never does), and without vagrant-libvirt
# (whose boxes are optional) the default provider wants one: it is loaded
# from a Vagrantfile that names the box, as a project's would.
box_meta() {
    box/build.sh --metadata "$TMPD/boxcheck/box" \
        && python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); assert m["provider"] == "libvirt" and m["format"] == "qcow2" and int(m["virtual_size"]) > 0, m' "$TMPD/boxcheck/box/metadata.json" \
        && printf '%s\n' 'load File.join(__dir__, "box", "Vagrantfile")' \
            'Vagrant.configure("2") { |config| config.vm.box = "runtimed/debian12-local" }' >"$TMPD/boxcheck/Vagrantfile" \
        && (cd "$TMPD/boxcheck" && vagrant validate --ignore-provider >/dev/null)
}
run "box metadata (box/build.sh --metadata)" box_meta

if ((${#FAILED[@]})); then
    echo "check failed: ${FAILED[*]}" >&2
    exit 1
fi
echo "all checks passed"
