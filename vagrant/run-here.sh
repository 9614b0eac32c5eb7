#!/usr/bin/env bash
# The three-VM overlay demo, for real, on this (Linux, KVM) machine, with no
# traffic outside a network namespace of its own:
#   vagrant/run-here.sh        (as root)
# Steps, each timed and reported at the end:
#   1. host packages (vagrant, vagrant-libvirt, libvirt, qemu; host-deps.sh);
#   2. `cargo build --release --bins` on the host (CARGO_TARGET_DIR, default
#      ../target), binaries synced into the VMs (no Rust in the VMs);
#   3. the box, by box/build.sh (cached under /var/cache/runtimed-vagrant),
#      and a probe of whether KVM boots its kernel (box/accel.sh): if not,
#      the VMs run under TCG (emulation), as on kvm_pvm machines;
#   4. a network namespace (rt-vagrant) with a libvirtd of our own in it:
#      its own config, state and socket under a run directory, in a private
#      mount namespace (fresh /sys for the netns), qemu as root, no cgroups,
#      no virtlogd. Every bridge, tap and dnsmasq of the VMs is in that
#      namespace; the management network is isolated (no NAT, no route out).
#      vagrant runs in the namespace too (it ssh-es to the VMs there);
#   5. `vagrant up` of node1..node3 (1 vCPU, 1 GB each) from the local box;
#   6. demo.sh;
#   7. teardown: vagrant destroy, every libvirt domain, network and pool,
#      libvirtd, the namespace, the run directory. The same teardown runs on
#      failure and on Ctrl-C (trap on EXIT).
# Env: KEEP=1 leaves everything up after the demo (then run the printed
#   teardown command yourself); REBUILD=1 rebuilds the box; CARGO_TARGET_DIR.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${RUNTIMED_VAGRANT_CACHE:-/var/cache/runtimed-vagrant}
NS=rt-vagrant
BOX_FILE=$CACHE/runtimed-debian12.box
BOX_NAME=runtimed/debian12-local
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}

[ "$(id -u)" = 0 ] || { echo "run-here.sh must run as root (namespaces, libvirtd, KVM)" >&2; exit 1; }
[ -c /dev/kvm ] || { echo "/dev/kvm is missing: no KVM here" >&2; exit 1; }

# ---- results and timings ------------------------------------------------------
STEPS=()
step_start=0
T0=$(date +%s)
begin() { step_name=$1; step_start=$(date +%s); echo; echo "=== $step_name"; }
done_step() { # RESULT
    local t=$(($(date +%s) - step_start))
    STEPS+=("$(printf '%-34s %-6s %5d s' "$step_name" "$1" "$t")")
    echo "=== $step_name: $1 (${t} s)"
    step_name=""
}
summary() {
    echo
    echo "==================== run-here.sh summary ===================="
    printf '%s\n' "${STEPS[@]}"
    echo "total: $(($(date +%s) - T0)) s"
}

# ---- teardown -------------------------------------------------------------------
RUN=""
LIBVIRTD_PID=""
in_ns() { nsenter --net="/run/netns/$NS" "$@"; }
# shellcheck disable=SC2317  # (called from the trap)
teardown() {
    set +e
    if [ -n "$RUN" ] && [ -n "$LIBVIRTD_PID" ] && kill -0 "$LIBVIRTD_PID" 2>/dev/null; then
        if [ -d "$VAGRANT_DOTFILE_PATH" ]; then
            (cd "$HERE" && in_ns timeout 300 vagrant destroy -f >"$RUN/destroy.log" 2>&1) \
                || { echo "vagrant destroy failed:"; tail -20 "$RUN/destroy.log"; }
        fi
        # Whatever vagrant did not remove.
        for d in $(virsh -c "$LIBVIRT_DEFAULT_URI" list --all --name 2>/dev/null); do
            virsh -c "$LIBVIRT_DEFAULT_URI" destroy "$d" >/dev/null 2>&1
            virsh -c "$LIBVIRT_DEFAULT_URI" undefine "$d" --remove-all-storage >/dev/null 2>&1
        done
        for n in $(virsh -c "$LIBVIRT_DEFAULT_URI" net-list --all --name 2>/dev/null); do
            virsh -c "$LIBVIRT_DEFAULT_URI" net-destroy "$n" >/dev/null 2>&1
            virsh -c "$LIBVIRT_DEFAULT_URI" net-undefine "$n" >/dev/null 2>&1
        done
        for p in $(virsh -c "$LIBVIRT_DEFAULT_URI" pool-list --all --name 2>/dev/null); do
            virsh -c "$LIBVIRT_DEFAULT_URI" pool-destroy "$p" >/dev/null 2>&1
            virsh -c "$LIBVIRT_DEFAULT_URI" pool-undefine "$p" >/dev/null 2>&1
        done
        echo "libvirt objects left: domains [$(virsh -c "$LIBVIRT_DEFAULT_URI" list --all --name 2>/dev/null | xargs)]" \
            "networks [$(virsh -c "$LIBVIRT_DEFAULT_URI" net-list --all --name 2>/dev/null | xargs)]" \
            "pools [$(virsh -c "$LIBVIRT_DEFAULT_URI" pool-list --all --name 2>/dev/null | xargs)]"
    fi
    if [ -n "$LIBVIRTD_PID" ]; then
        kill "$LIBVIRTD_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$LIBVIRTD_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$LIBVIRTD_PID" 2>/dev/null
        wait "$LIBVIRTD_PID" 2>/dev/null
    fi
    # qemu and dnsmasq outlive libvirtd: any still running (their pid files
    # are ours) are ended by pid.
    if [ -n "$RUN" ]; then
        for f in "$RUN"/root/run/libvirt/qemu/*.pid "$RUN"/root/run/libvirt/network/*.pid "$RUN"/root/var/lib/libvirt/dnsmasq/*.pid; do
            [ -f "$f" ] || continue
            pid=$(cat "$f")
            grep -qaE 'qemu|dnsmasq' "/proc/$pid/cmdline" 2>/dev/null || continue
            kill -9 "$pid" && echo "killed a leftover process $pid ($f)"
        done
    fi
    ip netns del "$NS" 2>/dev/null
    [ -n "$RUN" ] && rm -rf "$RUN"
    echo "left: netns [$(ip netns list | grep -w "$NS" || true)]" \
        "run dirs [$(find "$CACHE" -maxdepth 1 -name 'run.*' -printf '%p ')]"
}
on_exit() {
    local rc=$?
    [ -n "${step_name:-}" ] && done_step "FAILED"
    if [ -n "${KEEP:-}" ] && ((rc == 0)); then
        echo "KEEP=1: everything is left up. Teardown: kill $LIBVIRTD_PID; ip netns del $NS; rm -rf $RUN (after vagrant destroy -f in the namespace)"
    else
        begin "teardown"
        teardown
        done_step ok
    fi
    summary
    ((rc == 0)) && echo "run-here.sh: PASSED" || echo "run-here.sh: FAILED (exit $rc)"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

# ---- 1. host packages -----------------------------------------------------------------
begin "host packages"
"$HERE/host-deps.sh" vagrant vagrant-libvirt libvirt-daemon libvirt-daemon-driver-qemu \
    libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base iptables rsync openssh-client \
    util-linux iproute2 debootstrap fdisk e2fsprogs
done_step ok

# ---- 2. binaries ------------------------------------------------------------------------
begin "cargo build --release (host)"
command -v cargo >/dev/null || { echo "cargo is missing on the host" >&2; exit 1; }
(cd "$REPO" && cargo build --release --bins --quiet)
BIN=$CARGO_TARGET_DIR/release
ls -l "$BIN/runtimed" "$BIN/runtimectl"
done_step ok

# ---- 3. box -------------------------------------------------------------------------------
begin "box build (box/build.sh)"
"$HERE/box/build.sh" "$BOX_FILE"
done_step ok

begin "KVM probe (box/accel.sh)"
# KVM if it boots the box's kernel, else TCG (kvm_pvm machines: README.md).
ACCEL=$("$HERE/box/accel.sh" "$BOX_FILE.vmlinuz")
echo "accelerator: $ACCEL"
if [ "$ACCEL" = tcg ]; then
    export RUNTIMED_VAGRANT_DRIVER=qemu RUNTIMED_VAGRANT_BOOT_TIMEOUT=${RUNTIMED_VAGRANT_BOOT_TIMEOUT:-1200}
else
    export RUNTIMED_VAGRANT_DRIVER=kvm
fi
done_step "$ACCEL"

# ---- 4. namespace and libvirtd -------------------------------------------------------------
begin "namespace $NS + libvirtd"
if ip netns list | grep -qw "$NS"; then
    echo "namespace $NS exists (an earlier run that was killed?); removing it"
    ip netns del "$NS"
fi
mkdir -p "$CACHE"
RUN=$(mktemp -d "$CACHE/run.XXXXXX")
# Temporary files of vagrant, demo.sh and the rest: in the run directory.
mkdir -p "$RUN/tmp"
export TMPDIR=$RUN/tmp
ip netns add "$NS"
ip -n "$NS" link set lo up
# Seen by libvirtd (in its mount namespace) as /etc/libvirt, /var and /run.
R=$RUN/root
mkdir -p "$R/etc" "$R/run" "$R/var/lib/libvirt/images" "$R/var/log/libvirt" "$R/var/cache/libvirt" "$R/var/tmp"
ln -s /run "$R/var/run"
ln -s /run/lock "$R/var/lock"
cat >"$R/etc/libvirtd.conf" <<'EOF'
# run-here.sh: only root reaches this daemon, through its unix socket.
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
EOF
cat >"$R/etc/qemu.conf" <<'EOF'
# run-here.sh: qemu as root, no security driver, no cgroups, console logs in
# plain files (no virtlogd), no per-VM mount namespace.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "file"
namespaces = [ ]
EOF
# Debian's libvirt resolves its default qemu user, libvirt-qemu, before it
# reads qemu.conf: libvirtd sees passwd/group files with that user added
# (the host's own are not changed).
cp /etc/passwd "$R/passwd"
cp /etc/group "$R/group"
getent passwd libvirt-qemu >/dev/null || echo "libvirt-qemu:x:64055:64055:libvirt (run-here.sh):/nonexistent:/usr/sbin/nologin" >>"$R/passwd"
getent group libvirt-qemu >/dev/null || echo "libvirt-qemu:x:64055:" >>"$R/group"
export LIBVIRT_DEFAULT_URI="qemu:///system?socket=$R/run/libvirt/libvirt-sock"
# Vagrant's state, out of the repository and of the user's ~/.vagrant.d.
export VAGRANT_HOME=$RUN/vagrant-home VAGRANT_DOTFILE_PATH=$RUN/vagrant-dot
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1 VAGRANT_DEFAULT_PROVIDER=libvirt
export RUNTIMED_VAGRANT_BOX=$BOX_NAME RUNTIMED_VAGRANT_BIN=$BIN RUNTIMED_VAGRANT_MGMT_MODE=none
# `vagrant halt --force` in demo.sh is a power cut (vagrant-libvirt 0.11.2
# first asks for an ACPI shutdown and, when that outlasts this timeout,
# raises instead of powering off); the VMs are destroyed afterwards, so
# demo.sh need not boot node3 again.
export RUNTIMED_VAGRANT_HALT_TIMEOUT=0 RESTORE_HALTED=0
unset VAGRANT_CWD VAGRANT_VAGRANTFILE
# A fresh sysfs shows the namespace's interfaces (libvirt reads bridges
# there); /etc/libvirt, /var and /run are the run directory's.
# (nsenter itself, not in_ns: $! must be libvirtd's pid, and setsid,
# nsenter, env and unshare exec, with no fork, into it. setsid: a Ctrl-C
# on the terminal must not end libvirtd before the teardown has used it.
# TMPDIR is in the run directory, which libvirtd's mount namespace hides.)
# shellcheck disable=SC2016  # (expanded by the inner bash)
setsid nsenter --net="/run/netns/$NS" env -u TMPDIR unshare --mount --propagation private bash -c '
    set -e
    R=$1
    mount -t sysfs sysfs /sys
    mount --bind "$R/etc" /etc/libvirt
    mount --bind "$R/passwd" /etc/passwd
    mount --bind "$R/group" /etc/group
    mount --bind "$R/run" /run
    mount --bind "$R/var" /var   # last: $R itself is under /var
    exec libvirtd -f /etc/libvirt/libvirtd.conf
' libvirtd-ns "$R" >"$RUN/libvirtd.log" 2>&1 &
LIBVIRTD_PID=$!
sleep 0.5
grep -q libvirtd "/proc/$LIBVIRTD_PID/cmdline" 2>/dev/null || { cat "$RUN/libvirtd.log" >&2; echo "libvirtd did not start" >&2; exit 1; }
for _ in $(seq 100); do
    virsh -c "$LIBVIRT_DEFAULT_URI" version >/dev/null 2>&1 && break
    kill -0 "$LIBVIRTD_PID" 2>/dev/null || { cat "$RUN/libvirtd.log" >&2; echo "libvirtd exited" >&2; exit 1; }
    sleep 0.2
done
virsh -c "$LIBVIRT_DEFAULT_URI" version
done_step ok

# ---- 5. vagrant up -------------------------------------------------------------------------
begin "vagrant box add"
vagrant box add --name "$BOX_NAME" --provider libvirt "$BOX_FILE" >"$RUN/box-add.log" 2>&1 \
    || { cat "$RUN/box-add.log" >&2; exit 1; }
done_step ok

begin "vagrant up (3 VMs)"
(cd "$HERE" && in_ns vagrant up --provider libvirt) 2>&1 | tee "$RUN/up.log"
(cd "$HERE" && in_ns vagrant status)
done_step ok

# ---- 6. the demo -----------------------------------------------------------------------
begin "demo.sh"
(cd "$HERE" && in_ns ./demo.sh)
done_step ok
