#!/usr/bin/env bash
# demo.sh, unchanged, against three network-namespace "nodes" instead of VMs:
# for machines where VMs cannot run (this kind: its KVM is kvm_pvm and does
# not boot a Debian kernel, see README.md), and to exercise the demo script
# itself quickly.
#   vagrant/run-netns.sh        (as root)
# What it builds: namespace rt-vg-ul with a bridge (the private network),
# rt-vg-node1..3 each with eth1 = 192.168.56.11..13/24 on that bridge and
# its own runtimed (host binaries, --root/--run-dir/socket of its own under
# a run directory), etcd in rt-vg-node1 on 192.168.56.11:2379, as on the
# VMs. netns/bin/vagrant stands in for vagrant (ssh = a command in the
# node's namespace; halt --force = the node loses power; up = it comes back)
# and netns/node.sh restarts a killed daemon as systemd does on the VMs.
# Prints each step's result and time; removes every namespace, process,
# mount, cgroup and file it made on exit, failure or Ctrl-C.
# Env: CARGO_TARGET_DIR (default ../target), NODE_TTL (15).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${RUNTIMED_VAGRANT_CACHE:-/var/cache/runtimed-vagrant}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
export NODE_TTL=${NODE_TTL:-15}
NODES=(node1 node2 node3)
declare -A ADDR=([node1]=192.168.56.11 [node2]=192.168.56.12 [node3]=192.168.56.13)
ETCD_ADDR=192.168.56.11
UL=rt-vg-ul

[ "$(id -u)" = 0 ] || { echo "run-netns.sh must run as root (namespaces, mounts, cgroups)" >&2; exit 1; }

STEPS=()
T0=$(date +%s)
step_name=""
begin() { step_name=$1; step_start=$(date +%s); echo; echo "=== $step_name"; }
done_step() {
    local t=$(($(date +%s) - step_start))
    STEPS+=("$(printf '%-34s %-6s %5d s' "$step_name" "$1" "$t")")
    echo "=== $step_name: $1 (${t} s)"
    step_name=""
}

RUN=""
ETCD_PID=""
BIN=$CARGO_TARGET_DIR/release
# shellcheck disable=SC2317  # (called from the trap)
teardown() {
    set +e
    if [ -n "$RUN" ]; then
        export NETNS_RUN=$RUN
        for n in "${NODES[@]}"; do
            [ -f "$RUN/$n/env" ] || continue
            # A halted node's daemon is started again to remove its containers.
            [ -e "$RUN/$n/stopping" ] && [ -n "$ETCD_PID" ] && "$HERE/netns/node.sh" start "$n" >/dev/null 2>&1
            if [ "$("$HERE/netns/node.sh" pid "$n")" != 0 ]; then
                ids=$(RUNTIMED_HOST=unix://$RUN/$n/run/runtimed.sock "$BIN/runtimectl" ps -aq 2>/dev/null)
                # shellcheck disable=SC2086
                [ -n "$ids" ] && RUNTIMED_HOST=unix://$RUN/$n/run/runtimed.sock "$BIN/runtimectl" rm -f $ids >/dev/null
            fi
        done
        for n in "${NODES[@]}"; do
            [ -f "$RUN/$n/env" ] && "$HERE/netns/node.sh" stop "$n"
        done
    fi
    if [ -n "$ETCD_PID" ]; then
        kill "$ETCD_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$ETCD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$ETCD_PID" 2>/dev/null
    fi
    if [ -n "$RUN" ]; then
        # Mounts the daemons leave (their own binds of containers/ and netns/).
        awk -v d="$RUN/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
            umount -l "$m"
        done
    fi
    for n in "${NODES[@]}"; do
        for cg in /sys/fs/cgroup/runtimed-vg-"$n" /sys/fs/cgroup/*/runtimed-vg-"$n"; do
            [ -d "$cg" ] || continue
            find "$cg" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
            rmdir "$cg" 2>/dev/null
        done
        ip netns del "rt-vg-$n" 2>/dev/null
    done
    ip netns del "$UL" 2>/dev/null
    [ -n "$RUN" ] && rm -rf "$RUN"
    echo "left: netns [$(ip netns list | grep -E '^rt-vg-' | xargs)]" \
        "mounts [$(grep -c "$CACHE/netns-run" /proc/self/mountinfo)]" \
        "cgroups [$(find /sys/fs/cgroup -maxdepth 2 -name 'runtimed-vg-*' -printf '%p ')]" \
        "run dirs [$(find "$CACHE" -maxdepth 1 -name 'netns-run.*' -printf '%p ')]"
}
on_exit() {
    local rc=$?
    [ -n "$step_name" ] && done_step FAILED
    begin teardown
    teardown
    done_step ok
    echo
    echo "==================== run-netns.sh summary ===================="
    printf '%s\n' "${STEPS[@]}"
    echo "total: $(($(date +%s) - T0)) s"
    ((rc == 0)) && echo "run-netns.sh: PASSED" || echo "run-netns.sh: FAILED (exit $rc)"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

begin "host packages"
"$HERE/host-deps.sh" etcd-server etcd-client busybox-static nftables iproute2 curl python3 util-linux
done_step ok

begin "cargo build --release (host)"
(cd "$REPO" && cargo build --release --bins --quiet)
ls -l "$BIN/runtimed" "$BIN/runtimectl"
done_step ok

begin "namespaces, etcd, three daemons"
for ns in "$UL" "${NODES[@]/#/rt-vg-}"; do
    ip netns list | grep -qw "$ns" && { echo "namespace $ns exists (an earlier run that was killed?); removing it"; ip netns del "$ns"; }
done
mkdir -p "$CACHE"
RUN=$(mktemp -d "$CACHE/netns-run.XXXXXX")
export NETNS_RUN=$RUN
mkdir -p "$RUN/tmp"
export TMPDIR=$RUN/tmp
ip netns add "$UL"
ip -n "$UL" link set lo up
ip -n "$UL" link add br0 type bridge
ip -n "$UL" link set br0 up
i=0
for n in "${NODES[@]}"; do
    i=$((i + 1))
    ip netns add "rt-vg-$n"
    ip -n "rt-vg-$n" link set lo up
    ip link add "vgul$i" netns "$UL" type veth peer name eth1 netns "rt-vg-$n"
    ip -n "$UL" link set "vgul$i" master br0 up
    ip -n "rt-vg-$n" addr add "${ADDR[$n]}/24" dev eth1
    ip -n "rt-vg-$n" link set eth1 up
    mkdir -p "$RUN/$n"
    cat >"$RUN/$n/env" <<EOF
RUNTIMED_BIN=$BIN/runtimed
RUNTIMECTL_BIN=$BIN/runtimectl
STORE=etcd://$ETCD_ADDR:2379
ADDR=${ADDR[$n]}
TTL=$NODE_TTL
EOF
done
etcd_url=http://$ETCD_ADDR:2379
nsenter --net=/run/netns/rt-vg-node1 etcd --name e1 --data-dir "$RUN/etcd" \
    --listen-client-urls "$etcd_url,http://127.0.0.1:2379" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster e1=http://127.0.0.1:2380 >"$RUN/etcd.log" 2>&1 &
ETCD_PID=$!
for _ in $(seq 100); do
    nsenter --net=/run/netns/rt-vg-node1 etcdctl --endpoints "$etcd_url" endpoint health >/dev/null 2>&1 && break
    kill -0 "$ETCD_PID" 2>/dev/null || { cat "$RUN/etcd.log" >&2; exit 1; }
    sleep 0.2
done
for n in "${NODES[@]}"; do "$HERE/netns/node.sh" start "$n"; done
echo "three daemons answer: ${NODES[*]}"
done_step ok

begin "demo.sh (namespace nodes)"
PATH=$HERE/netns/bin:$BIN:$PATH "$HERE/demo.sh"
done_step ok
