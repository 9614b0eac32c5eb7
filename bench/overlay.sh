#!/usr/bin/env bash
# Overlay benchmark (not a test): TCP throughput between two containers on
# different "hosts" over an overlay network (VXLAN), next to the throughput
# between the two hosts themselves over the underlay, in one run.
#
# The hosts are two network namespaces, n1 and n2, each with one veth into an
# underlay bridge that lives in a third namespace (10.230.0.0/24: the bridge
# is .1, n1 .11, n2 .12). etcd, the cluster store, runs in the underlay
# namespace on 10.230.0.1:2379. One runtimed per node runs in that node's
# namespace (as in bench/networking.sh: own root, run dir, socket and cgroup
# parent) with
#   --cluster-store etcd://10.230.0.1:2379 --advertise 10.230.0.1x --node-name nX.
# An overlay network `benchnet` is created on n1; container s runs on n2 and
# c on n1. The host's iperf3 runs inside their network namespaces (nsenter
# -t PID -n), so the image needs nothing: server in s against s's overlay
# address, client in c. Then the same between the nodes: server in n2 on
# 10.230.0.12, client in n1. Overlay and underlay runs alternate; each figure
# is the median of REPEATS runs of IPERF_TIME seconds, 1 stream.
# Traffic only goes to addresses inside namespaces this script creates.
# Everything (containers, network, daemons, etcd, iperf3, namespaces, cgroups,
# directories) is removed on exit, also after a failure or Ctrl-C.
#
# Usage (as root, from anywhere in a clone):  sudo bench/overlay.sh
# Env: IPERF_TIME (5), REPEATS (3), OVERLAY_SUBNET (none: the daemon picks),
#      UNDERLAY_ONLY (0; 1: no overlay network or containers, only the
#        underlay figure: checks the setup),
#      BUILD (1; 0 uses target/release as it is),
#      DAEMON_LOG (warn; RUNTIMED_LOG wins), KEEP_LOG (a directory to copy
#      the daemons' and etcd's logs to on exit).
set -euo pipefail
export LC_ALL=C   # EPOCHREALTIME with a '.'

IPERF_TIME=${IPERF_TIME:-5}
REPEATS=${REPEATS:-3}
OVERLAY_SUBNET=${OVERLAY_SUBNET:-}
UNDERLAY_ONLY=${UNDERLAY_ONLY:-0}
BUILD=${BUILD:-1}
DAEMON_LOG=${DAEMON_LOG:-warn}
KEEP_LOG=${KEEP_LOG:-}
[[ $IPERF_TIME =~ ^[1-9][0-9]*$ && $REPEATS =~ ^[1-9][0-9]*$ ]] \
    || { echo "IPERF_TIME and REPEATS must be positive integers" >&2; exit 2; }

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

install_missing etcd=etcd-server iperf3=iperf3 /bin/busybox=busybox-static nft=nftables
command -v python3 >/dev/null || { echo "python3 is needed (JSON)" >&2; exit 1; }
ETCD=$(command -v etcd)
IPERF=$(command -v iperf3)
if [ "$BUILD" != 0 ]; then
    say "building (release)"
    build_release --bins
else
    release_bins
fi
CLUSTER=1
if ! "$RTD" --help 2>/dev/null | grep -q -- '--cluster-store'; then
    if [ "$UNDERLAY_ONLY" = 0 ]; then
        echo "this runtimed has no --cluster-store flag (no overlay support); UNDERLAY_ONLY=1 checks the rest" >&2
        exit 1
    fi
    CLUSTER=0
fi

TMP=$(mktemp -d /tmp/ovbench.XXXXXX)
UNS=ovb-u-$$                     # the underlay: bridge and etcd
NODES=(n1 n2)
declare -A NS=([n1]=ovb-n1-$$ [n2]=ovb-n2-$$)          # also the cgroup parents
declare -A ADDR=([n1]=10.230.0.11 [n2]=10.230.0.12)
STORE_ADDR=10.230.0.1
NET=benchnet
declare -A DPID=()
ETCD_PID=""
IPERF_PIDS=()
NET_CREATED=""

sock() { echo "$TMP/$1/runtimed.sock"; }
rtc() { # node, runtimectl args...
    local node=$1; shift
    timeout 120 env "RUNTIMED_HOST=unix://$(sock "$node")" "$RTC" "$@"
}
in_node() { local node=$1; shift; nsenter --net="/run/netns/${NS[$node]}" "$@"; }

cleanup() {
    set +e
    for p in "${IPERF_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    # Containers first, while the daemons and the store are up, so that their
    # endpoints leave the store; then the network.
    for n in "${NODES[@]}"; do rtd_rm_all "$(sock "$n")"; done
    [ -n "$NET_CREATED" ] && rtc n1 network rm "$NET" >/dev/null 2>&1
    for n in "${NODES[@]}"; do [ -n "${DPID[$n]:-}" ] && stop_pid "${DPID[$n]}"; done
    [ -n "$ETCD_PID" ] && stop_pid "$ETCD_PID"
    if [ -n "$KEEP_LOG" ]; then
        mkdir -p "$KEEP_LOG"
        for n in "${NODES[@]}"; do cp "$TMP/$n/runtimed.log" "$KEEP_LOG/runtimed-$n.log" 2>/dev/null; done
        cp "$TMP/etcd.log" "$KEEP_LOG/etcd.log" 2>/dev/null
    fi
    del_netns "${NS[@]}" "$UNS"
    rm_cgroups "${NS[@]}"
    rm_tmp "$TMP"
}
on_exit cleanup

# --- underlay: a bridge in its own namespace, one veth per node ----------------------------------
say "underlay: netns $UNS (bridge $STORE_ADDR/24), nodes ${NS[n1]} (${ADDR[n1]}) and ${NS[n2]} (${ADDR[n2]})"
netns_add "$UNS"
ip -n "$UNS" link add ubr0 type bridge
ip -n "$UNS" addr add "$STORE_ADDR/24" dev ubr0
ip -n "$UNS" link set ubr0 up
for n in "${NODES[@]}"; do
    netns_add "${NS[$n]}"
    ip -n "$UNS" link add "u-$n" type veth peer name eth0 netns "${NS[$n]}"
    ip -n "$UNS" link set "u-$n" master ubr0 up
    ip -n "${NS[$n]}" addr add "${ADDR[$n]}/24" dev eth0
    ip -n "${NS[$n]}" link set eth0 up
    ip -n "${NS[$n]}" route add default via "$STORE_ADDR"
done
UNDERLAY_MTU=$(ip -n "${NS[n1]}" -o link show dev eth0 | sed -n 's/.* mtu \([0-9]*\).*/\1/p')

# --- etcd in the underlay namespace -------------------------------------------------------
say "etcd on $STORE_ADDR:2379 ($("$ETCD" --version 2>/dev/null | awk 'NR == 1 {print $NF}'))"
ip netns exec "$UNS" "$ETCD" --data-dir "$TMP/etcd" \
    --listen-client-urls "http://$STORE_ADDR:2379" --advertise-client-urls "http://$STORE_ADDR:2379" \
    --listen-peer-urls http://127.0.0.1:2380 >"$TMP/etcd.log" 2>&1 &
ETCD_PID=$!
etcd_healthy() { # asked from n1: also checks the underlay
    in_node n1 python3 -c '
import sys, urllib.request
try:
    body = urllib.request.urlopen("http://'"$STORE_ADDR"':2379/health", timeout=2).read()
except Exception:
    sys.exit(1)
sys.exit(0 if b"\"health\":\"true\"" in body else 1)'
}
for _ in $(seq 100); do etcd_healthy && break; kill -0 "$ETCD_PID" 2>/dev/null || break; sleep 0.2; done
etcd_healthy || { echo "etcd did not become healthy:" >&2; tail -n 20 "$TMP/etcd.log" >&2; exit 1; }

# --- one runtimed per node ------------------------------------------------------------------------
for n in "${NODES[@]}"; do
    cluster=(--cluster-store "etcd://$STORE_ADDR:2379" --advertise "${ADDR[$n]}" --node-name "$n")
    if ((CLUSTER)); then
        say "runtimed $n in netns ${NS[$n]}: ${cluster[*]}"
    else
        say "runtimed $n in netns ${NS[$n]}, without cluster flags (this runtimed has none)"
        cluster=()
    fi
    rtd_start "${NS[$n]}" "$TMP/$n" "$DAEMON_LOG" "${cluster[@]}"
    DPID[$n]=$RTD_PID
done
for n in "${NODES[@]}"; do rtd_wait "$TMP/$n" "${DPID[$n]}" "$n"; done
if ((CLUSTER)); then
    for _ in $(seq 50); do
        nodes=$(rtc n1 node ls 2>/dev/null) || true
        grep -qw n1 <<<"$nodes" && grep -qw n2 <<<"$nodes" && break
        sleep 0.2
    done
    say "cluster (node ls on n1): $(rtc n1 node ls 2>&1 | tr -s ' \n' ' ')"
fi

# --- measurements ----------------------------------------------------------------------------
median() { # numbers as arguments (others are ignored) -> median, or nothing
    printf '%s\n' "$@" | awk '/^[0-9.]+$/' | sort -g | awk '{a[NR] = $1}
        END {if (NR) printf "%.2f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
listening() { # nsenter args... : true once something listens on TCP 5201 there
    local i
    for i in $(seq 100); do
        nsenter "$@" ss -Hltn 'sport = :5201' | grep -q . && return 0
        sleep 0.1
    done
    return 1
}
start_server() { # bind address, nsenter args...: an iperf3 server, in the background
    local addr=$1; shift
    nsenter "$@" "$IPERF" -s -B "$addr" -p 5201 >>"$TMP/iperf-server.log" 2>&1 &
    IPERF_PIDS+=($!)
    listening "$@"
}
run_client() { # server address, nsenter args... -> Gbit/s or n/a
    local addr=$1 out; shift
    out=$(timeout $((IPERF_TIME + 30)) nsenter "$@" "$IPERF" -c "$addr" -p 5201 -t "$IPERF_TIME" -J 2>>"$TMP/iperf-client.log") || true
    iperf_gbps "n/a: no JSON from iperf3" "n/a: " <<<"$out"
}

OV_WHY=""                        # why there is no overlay figure
OV_INFO=""
if [ "$UNDERLAY_ONLY" != 0 ]; then
    OV_WHY="skipped (UNDERLAY_ONLY=$UNDERLAY_ONLY)"
else
    say "overlay network $NET (created on n1)"
    subnet=()
    [ -n "$OVERLAY_SUBNET" ] && subnet=(--subnet "$OVERLAY_SUBNET")
    rtc n1 network create --driver overlay "${subnet[@]}" "$NET" >/dev/null
    NET_CREATED=1
    for _ in $(seq 50); do rtc n2 network ls 2>/dev/null | grep -qw "$NET" && break; sleep 0.2; done
    rtc n2 run -d --name s --network "$NET" busybox sleep 600 >/dev/null
    rtc n1 run -d --name c --network "$NET" busybox sleep 600 >/dev/null
    endpoint() { # node container -> "pid ip interface"
        rtc "$1" inspect "$2" | python3 -c '
import json, sys
c = json.load(sys.stdin)[0]
e = c["NetworkSettings"]["Networks"]["'"$NET"'"]
print(c["State"]["Pid"], e["IPAddress"], e.get("Interface") or "eth0")'
    }
    ep=$(endpoint n2 s)
    read -r S_PID S_IP _ <<<"$ep"
    ep=$(endpoint n1 c)
    read -r C_PID C_IP C_IF <<<"$ep"
    OV_MTU=$(nsenter -t "$C_PID" -n ip -o link show dev "$C_IF" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
    OV_INFO="c $C_IP (n1, pid $C_PID) -> s $S_IP (n2, pid $S_PID), container MTU ${OV_MTU:-?}"
    say "overlay: $OV_INFO"
    # The remote endpoint reaches n1 through the store: give it a moment.
    for _ in $(seq 50); do
        nsenter -t "$C_PID" -n /bin/busybox ping -c 1 -W 1 "$S_IP" >/dev/null 2>&1 && break
        sleep 0.2
    done
    if ! nsenter -t "$C_PID" -n /bin/busybox ping -c 1 -W 1 "$S_IP" >/dev/null 2>&1; then
        OV_WHY="c cannot ping s ($S_IP) over $NET"
    elif ! start_server "$S_IP" -t "$S_PID" -n; then
        OV_WHY="iperf3 server in s did not listen"
    fi
fi
start_server "${ADDR[n2]}" --net="/run/netns/${NS[n2]}" || { echo "iperf3 server in ${NS[n2]} did not listen" >&2; exit 1; }

OV=() UL=()
for ((i = 1; i <= REPEATS; i++)); do
    if [ -z "$OV_WHY" ]; then
        say "iperf3 $i/$REPEATS: overlay, c (n1) -> s (n2) $S_IP"
        OV+=("$(run_client "$S_IP" -t "$C_PID" -n)")
    fi
    say "iperf3 $i/$REPEATS: underlay, n1 -> n2 ${ADDR[n2]}"
    UL+=("$(run_client "${ADDR[n2]}" --net="/run/netns/${NS[n1]}")")
done

# --- report --------------------------------------------------------------------------------
OV_MED=$(median "${OV[@]}")
UL_MED=$(median "${UL[@]}")
RATIO=""
if [ -n "$OV_MED" ] && [ -n "$UL_MED" ]; then
    RATIO=$(awk -v o="$OV_MED" -v u="$UL_MED" 'BEGIN {if (u > 0) printf "%.2f", o / u}')
fi
row() { # label, median, runs...
    local label=$1 med=$2; shift 2
    printf '%-58s %8s   %s\n' "$label" "${med:-n/a}" "$*"
}
echo
echo "== TCP throughput over an overlay network: iperf3 -t $IPERF_TIME, 1 stream, median of $REPEATS, $(nproc) CPUs =="
printf '%-58s %8s   %s\n' "path" "Gbit/s" "runs"
if [ -n "$OV_WHY" ]; then
    row "overlay: container n1 -> container n2 (VXLAN)" "" "$OV_WHY"
else
    row "overlay: container n1 -> container n2 (VXLAN)" "$OV_MED" "${OV[*]}"
fi
row "underlay: node n1 -> node n2 (${ADDR[n1]} -> ${ADDR[n2]})" "$UL_MED" "${UL[*]}"
echo
printf 'overlay %s Gbit/s | underlay %s Gbit/s | overlay/underlay %s\n' "${OV_MED:-n/a}" "${UL_MED:-n/a}" "${RATIO:-n/a}"
summary_row "overlay TCP, container to container (Gbit/s)" "${OV_MED:-n/a}" "underlay, node to node" "${UL_MED:-n/a}" ""
[ -n "$OV_INFO" ] && echo "overlay: $OV_INFO; underlay MTU ${UNDERLAY_MTU:-?}"
echo
say "done"
if [ -z "$UL_MED" ] || { [ "$UNDERLAY_ONLY" = 0 ] && [ -z "$OV_MED" ]; }; then
    exit 1
fi
