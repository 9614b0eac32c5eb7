#!/usr/bin/env bash
# Networking benchmark (not a test). Prints, in one run:
#  1. container start time (`run -d -p ... busybox sleep 600`, wall time of
#     the command, median of RUNS; each run is followed by an untimed
#     `rm -f`) with 1 and with PORTS published ports, while 0 and while
#     BG_CONTAINERS x BG_PORTS other ports are already published. Our DNAT is
#     map-based (one nft transaction of map elements per container), so the
#     four figures should be flat;
#  2. TCP throughput (iperf3 inside containers, 1 stream, IPERF_TIME s each):
#     host -> container IP, host -> published port (a host address and
#     127.0.0.1), container -> container on the bridge, container -> published
#     port (hairpin), and the netns' own loopback as a ceiling;
#  3. the same start figures for rootful podman (its default network,
#     netavark), if podman can be installed and runs here.
# runtimed runs as in bench/start-latency.sh: own netns, dirs, socket and
# cgroup parent. podman gets a netns of its own too (nsenter --net, so its
# bridge and iptables rules stay there), storage under $TMP and a cgroup
# parent of its own. Traffic only goes to loopback and to addresses inside
# these namespaces. Everything is cleaned up on exit.
# Usage (as root, from anywhere in a clone):  sudo bench/networking.sh
# Env: RUNS (15), WARMUP (2), PORTS (200), BG_CONTAINERS (10), BG_PORTS (200),
#      PORT_FORM: range (default, one `-p A-B:A-B`), list (one `-p P:P` per
#        port; podman merges them back into a range) or sparse (one `-p P:P`
#        per port, every other port: podman cannot merge them, netavark then
#        writes iptables rules per port),
#      IPERF_TIME (5), PODMAN (1; 0 skips podman), PODMAN_RUNS (RUNS),
#      PODMAN_BUDGET (120: seconds podman should take; a cell stops early,
#        after at least one run, past a fifth of it; background containers
#        stop being added past half of it, and podman's "already published"
#        column then says how many ports it had),
#      DAEMON_LOG (warn; RUNTIMED_LOG wins), KEEP_LOG (path to copy the
#      daemon log to on exit).
set -euo pipefail
export LC_ALL=C   # EPOCHREALTIME with a '.'

RUNS=${RUNS:-15}
WARMUP=${WARMUP:-2}
PORTS=${PORTS:-200}
BG_CONTAINERS=${BG_CONTAINERS:-10}
BG_PORTS=${BG_PORTS:-200}
PORT_FORM=${PORT_FORM:-range}
IPERF_TIME=${IPERF_TIME:-5}
PODMAN=${PODMAN:-1}
PODMAN_RUNS=${PODMAN_RUNS:-$RUNS}
PODMAN_BUDGET=${PODMAN_BUDGET:-120}
DAEMON_LOG=${DAEMON_LOG:-warn}
KEEP_LOG=${KEEP_LOG:-}

PROBE_BASE=20000                 # host ports of the measured container
BG_BASE=30000                    # host port area of the background containers
HOST_ADDR=192.0.2.1              # "the host's address", on a veth inside the bench netns
case $PORT_FORM in range | list) STEP=1 ;; sparse) STEP=2 ;; *) echo "PORT_FORM must be range, list or sparse" >&2; exit 2 ;; esac
BG_TOTAL=$((BG_CONTAINERS * BG_PORTS))
BG_LAST=$((BG_BASE + (BG_TOTAL - 1) * STEP))
((PROBE_BASE + PORTS * STEP <= BG_BASE)) || { echo "PORTS too large" >&2; exit 2; }
((BG_LAST <= 65535)) || { echo "BG_CONTAINERS*BG_PORTS too large" >&2; exit 2; }

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
usec() { echo "${EPOCHREALTIME/./}"; }

install_missing iperf3=iperf3 /bin/busybox=busybox-static nft=nftables
IPERF=$(command -v iperf3)
build_release -q -p runtimed -p runtimectl

TMP=$(mktemp -d /tmp/rtnet.XXXXXX)
NS=rtnet-$$                      # runtimed's "host" netns, also its cgroup parent
PNS=rtnet-pd-$$                  # podman's netns, also its cgroup parent
SOCK=$TMP/runtimed.sock
DPID=""
LOOP_PID=""
RTCMD=(env "RUNTIMED_HOST=unix://$SOCK" "$RTC")  # for `timeout`, which cannot run functions
rtc() { "${RTCMD[@]}" "$@"; }

PDIR=$TMP/podman

cleanup() {
    set +e
    podman_cleanup
    [ -n "$LOOP_PID" ] && kill "$LOOP_PID" 2>/dev/null && wait "$LOOP_PID" 2>/dev/null
    rtd_rm_all "$SOCK"
    [ -n "$DPID" ] && stop_pid "$DPID"
    [ -n "$KEEP_LOG" ] && cp "$TMP/runtimed.log" "$KEEP_LOG" 2>/dev/null
    del_netns "$NS"
    rm_cgroups "$NS"
    rm_tmp "$TMP"
}
on_exit cleanup

# --- runtimed, isolated ------------------------------------------------------------
say "starting runtimed in netns $NS"
netns_add "$NS"
# Not every kernel has the dummy driver: a veth pair with both ends in the netns.
ip -n "$NS" link add rtnet0 type veth peer name rtnet1
ip -n "$NS" addr add "$HOST_ADDR/24" dev rtnet0
ip -n "$NS" link set rtnet1 up
ip -n "$NS" link set rtnet0 up
rtd_start "$NS" "$TMP" "$DAEMON_LOG"
DPID=$RTD_PID
rtd_wait "$TMP" "$DPID"
rtc run --rm busybox true   # warm-up / sanity

# --- helpers -------------------------------------------------------------------------
pflags() { # $1 first host port, $2 count -> -p flags (container port = host port)
    local a=$1 n=$2 p
    if ((n == 1)); then
        echo "-p $a:$a"
    elif [ "$PORT_FORM" = range ]; then
        echo "-p $a-$((a + n - 1)):$a-$((a + n - 1))"
    else
        for ((p = a; p < a + n * STEP; p += STEP)); do printf -- '-p %d:%d ' "$p" "$p"; done
    fi
}
rt_run() { local name=$1; shift; rtc run -d --name "$name" "$@" busybox sleep 600; }
rt_rm() { rtc rm -f "$1"; }
pd_run() { local name=$1; shift; pd run -d --name "$name" --cgroup-parent "/$PNS" "$@" localhost/rtnet-busybox sleep 600; }
pd_rm() { pd rm -f -t 0 "$1"; }

# Times `ENGINE run -d --name probe -p.. IMAGE sleep 600` (wall time, after
# WARM untimed runs), each run followed by an untimed `rm -f`. Stops early,
# with at least one timed run, once BUDGET seconds (0: none) have passed.
# Prints "median min max count", times in ms.
start_cell() { # $1 engine (rt|pd), $2 ports, $3 runs, $4 warm-up runs, $5 budget
    local eng=$1 n=$2 runs=$3 warm=$4 budget=${5:-0} i s e t0 flags samples=()
    flags=$(pflags "$PROBE_BASE" "$n")
    t0=$(usec)
    for ((i = 1; i <= warm + runs; i++)); do
        s=$EPOCHREALTIME
        # shellcheck disable=SC2086
        "${eng}_run" probe $flags >/dev/null || return 1
        e=$EPOCHREALTIME
        "${eng}_rm" probe >/dev/null || return 1
        if ((i > warm)); then samples+=($((${e/./} - ${s/./}))); fi
        if ((budget > 0 && ${#samples[@]} > 0 && $(usec) - t0 > budget * 1000000)); then break; fi
    done
    printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR] = $1}
        END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
             printf "%.1f %.1f %.1f %d\n", m / 1e3, a[1] / 1e3, a[NR] / 1e3, NR}'
}
bg_start() { # $1 engine, $2 index: background container number $2
    # shellcheck disable=SC2046
    "${1}_run" "bg$2" $(pflags $((BG_BASE + $2 * BG_PORTS * STEP)) "$BG_PORTS") >/dev/null
}
declare -A CELL   # CELL[engine,ports,0|bg] = "median min max count"

# --- 1. start latency, runtimed ------------------------------------------------------------
nft_published() { # elements of the daemon's any-address port map
    ip netns exec "$NS" nft -j list map ip runtimed dnat_any_port 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(len(o["map"].get("elem", [])) for o in d["nftables"] if "map" in o))' 2>/dev/null || echo "?"
}
say "runtimed: start latency, 0 ports already published ($RUNS runs per cell)"
CELL[rt,1,0]=$(start_cell rt 1 "$RUNS" "$WARMUP")
CELL[rt,$PORTS,0]=$(start_cell rt "$PORTS" "$RUNS" "$WARMUP")
say "runtimed: publishing $BG_TOTAL ports in $BG_CONTAINERS background containers"
s=$(usec)
for ((b = 0; b < BG_CONTAINERS; b++)); do bg_start rt "$b"; done
RT_BG_MS=$((($(usec) - s) / 1000))
RT_NFT=$(nft_published)
say "runtimed: start latency, $BG_TOTAL ports already published (nft map holds $RT_NFT)"
CELL[rt,1,bg]=$(start_cell rt 1 "$RUNS" "$WARMUP")
CELL[rt,$PORTS,bg]=$(start_cell rt "$PORTS" "$RUNS" "$WARMUP")

# --- 2. throughput ---------------------------------------------------------------------------
say "building the iperf3 image from $IPERF"
IMG=$TMP/iperf-rootfs
busybox_rootfs "$IMG"
chmod 1777 "$IMG/tmp"
BB_TAR=$TMP/busybox.tar                  # also podman's image
tar -C "$IMG" -cf "$BB_TAR" .
# The binary and every library ldd lists, the dynamic loader included, at their paths.
for f in "$IPERF" $(ldd "$IPERF" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    cp -L --parents "$f" "$IMG/"
done
tar -C "$IMG" -cf "$TMP/iperf.tar" .
rtc image import iperf "$TMP/iperf.tar" >/dev/null
rtc run -d --name srv -p 5201:5201 iperf "$IPERF" -s >/dev/null
rtc run -d --name cli iperf sleep 600 >/dev/null
SRV_IP=$(rtc inspect srv | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["NetworkSettings"]["Networks"]["bridge"]["IPAddress"])')
# Wait until the server listens (0A = LISTEN, 1451 = 5201); a probe
# connection would occupy iperf3's single test slot.
for _ in $(seq 100); do
    rtc exec srv cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$2 ~ /:1451$/ && $4 == "0A" {f = 1} END {exit !f}' && break
    sleep 0.1
done
TPUT=()
measure() { # $1 label, rest: command printing iperf3 JSON
    local label=$1 out res; shift
    say "iperf3: $label"
    out=$(timeout $((IPERF_TIME + 30)) "$@" 2>"$TMP/iperf.err") || true
    res=$(iperf_gbps "n/a (no JSON)" "error: " retr <<<"$out")   # "Gbit/s retransmits"
    case $res in n/a*) res="$res: $(tail -n1 "$TMP/iperf.err")" ;; esac
    TPUT+=("$label|$res")
}
IC=(-t "$IPERF_TIME" -J)
measure "host -> container IP ($SRV_IP:5201)" ip netns exec "$NS" "$IPERF" -c "$SRV_IP" "${IC[@]}"
measure "host -> published port $HOST_ADDR:5201 (DNAT)" ip netns exec "$NS" "$IPERF" -c "$HOST_ADDR" "${IC[@]}"
measure "host -> published port 127.0.0.1:5201 (DNAT)" ip netns exec "$NS" "$IPERF" -c 127.0.0.1 "${IC[@]}"
measure "container -> container IP, same bridge" "${RTCMD[@]}" exec cli "$IPERF" -c "$SRV_IP" "${IC[@]}"
measure "container -> published port $HOST_ADDR:5201 (hairpin)" "${RTCMD[@]}" exec cli "$IPERF" -c "$HOST_ADDR" "${IC[@]}"
ip netns exec "$NS" "$IPERF" -s -1 -p 5301 >/dev/null 2>&1 &
LOOP_PID=$!
for _ in $(seq 50); do ip netns exec "$NS" ss -Hltn 'sport = :5301' | grep -q . && break; sleep 0.1; done
measure "reference: loopback in the bench netns, no container" ip netns exec "$NS" "$IPERF" -c 127.0.0.1 -p 5301 "${IC[@]}"
wait "$LOOP_PID" 2>/dev/null || true
LOOP_PID=""

# --- 3. podman -------------------------------------------------------------------------------
PD_WHY=""        # why podman is not in the table at all
PD_BG_WHY=""     # why its "already published" column has fewer ports
PD_VER=""
PD_BG_MS=""
PD_BG_PORTS=$BG_TOTAL
PD_T0=$(usec)
podman_setup() { # returns 1 with PD_WHY set when podman cannot be benchmarked
    if [ "$PODMAN" = 0 ]; then PD_WHY="skipped (PODMAN=0)"; return 1; fi
    podman_init "$PDIR" "$PNS" || return 1
    local err=$TMP/podman.err
    if ! pd import "$BB_TAR" localhost/rtnet-busybox >/dev/null 2>"$err"; then
        PD_WHY="podman import failed: $(tail -n1 "$err")"; return 1
    fi
    if ! pd run --rm --cgroup-parent "/$PNS" -p "$PROBE_BASE:$PROBE_BASE" localhost/rtnet-busybox true >/dev/null 2>"$err"; then
        PD_WHY="podman cannot run a container here: $(tail -n1 "$err")"; return 1
    fi
    PD_VER="$PD_VER/$(pd info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo '?')"
}
podman_bench() {
    local cb=$((PODMAN_BUDGET / 5)) b deadline=$((PD_T0 + PODMAN_BUDGET * 500000))
    say "podman: start latency, 0 ports already published (up to $PODMAN_RUNS runs or ${cb}s per cell)"
    CELL[pd,1,0]=$(start_cell pd 1 "$PODMAN_RUNS" 1 "$cb") || return 1
    CELL[pd,$PORTS,0]=$(start_cell pd "$PORTS" "$PODMAN_RUNS" 0 "$cb") || return 1
    # The background containers, as many as fit in half of the budget (at least one).
    say "podman: publishing $BG_TOTAL ports in $BG_CONTAINERS background containers"
    s=$(usec)
    for ((b = 0; b < BG_CONTAINERS; b++)); do
        if ((b > 0 && $(usec) > deadline)); then break; fi
        bg_start pd "$b" || return 1
        PD_BG_PORTS=$(((b + 1) * BG_PORTS))
    done
    PD_BG_MS=$((($(usec) - s) / 1000))
    if ((PD_BG_PORTS < BG_TOTAL)); then
        PD_BG_WHY="only $PD_BG_PORTS of the $BG_TOTAL background ports were published within half of PODMAN_BUDGET (${PODMAN_BUDGET}s), in ${PD_BG_MS} ms: its second column is for $PD_BG_PORTS"
    fi
    say "podman: start latency, $PD_BG_PORTS ports already published ($(ip netns exec "$PNS" ss -Hltn | wc -l) host ports bound)"
    CELL[pd,1,bg]=$(start_cell pd 1 "$PODMAN_RUNS" 0 "$cb") || return 1
    CELL[pd,$PORTS,bg]=$(start_cell pd "$PORTS" "$PODMAN_RUNS" 0 "$cb") || return 1
}
if podman_setup; then
    podman_bench || PD_WHY="a podman command failed during the measurement"
fi
PD_S=$((($(usec) - PD_T0) / 1000000))

# --- report ---------------------------------------------------------------------------------
cell() { # "median min max count" [nominal count] -> "median (min-max)[ n=count]"
    [ -n "${1:-}" ] || { echo "-"; return; }
    local m lo hi n
    read -r m lo hi n <<<"$1"
    if awk -v m="$m" 'BEGIN {exit !(m >= 1000)}'; then
        printf '%.0f (%.0f-%.0f)' "$m" "$lo" "$hi"
    else
        printf '%s (%s-%s)' "$m" "$lo" "$hi"
    fi
    ((n == ${2:-$n})) || printf ' n=%s' "$n"
    echo
}
flat() { # $1 engine -> largest/smallest of its medians
    local k meds=()
    for k in "1,0" "$PORTS,0" "1,bg" "$PORTS,bg"; do
        [ -n "${CELL[$1,$k]:-}" ] && meds+=("${CELL[$1,$k]%% *}")
    done
    printf '%s\n' "${meds[@]}" | awk 'NR == 1 {mx = $1; mn = $1} {if ($1 > mx) mx = $1; if ($1 < mn) mn = $1}
        END {printf "%.2fx (largest/smallest of %d medians; spread %.1f ms)", mx / mn, NR, mx - mn}'
}
PD_COLS=0
[ -z "$PD_WHY" ] && PD_COLS=1
echo
echo "== container start: \`run -d -p ... busybox sleep 600\`, wall ms, median (min-max) =="
echo "   ports as: $PORT_FORM; other ports: $BG_CONTAINERS containers x $BG_PORTS ports in $BG_BASE-$BG_LAST"
F='%-20s %-24s %-24s'   # the runtimed columns of a row
# shellcheck disable=SC2059 # F is a format
if ((PD_COLS)); then
    printf "$F | %-24s %-24s\n" "" "runtimed ($RUNS runs)" "" "podman $PD_VER (<=$PODMAN_RUNS runs)" ""
    printf "$F | %-24s %-24s\n" "already published:" "0" "$BG_TOTAL" "0" "$PD_BG_PORTS"
    for n in 1 "$PORTS"; do
        printf "$F | %-24s %-24s\n" "$n port(s)" "$(cell "${CELL[rt,$n,0]}")" "$(cell "${CELL[rt,$n,bg]}")" \
            "$(cell "${CELL[pd,$n,0]:-}" "$PODMAN_RUNS")" "$(cell "${CELL[pd,$n,bg]:-}" "$PODMAN_RUNS")"
    done
else
    printf "$F\n" "" "runtimed ($RUNS runs)" ""
    printf "$F\n" "already published:" "0" "$BG_TOTAL"
    for n in 1 "$PORTS"; do
        printf "$F\n" "$n port(s)" "$(cell "${CELL[rt,$n,0]}")" "$(cell "${CELL[rt,$n,bg]}")"
    done
fi
echo "flatness, runtimed: $(flat rt)"
summary_row "start with $PORTS ports, $BG_TOTAL already published (ms)" "${CELL[rt,$PORTS,bg]%% *}" \
    "$PORTS ports, none published" "${CELL[rt,$PORTS,0]%% *}" "flat"
if ((PD_COLS)); then echo "flatness, podman:   $(flat pd)"; fi
echo "publishing the background ports took: runtimed ${RT_BG_MS} ms for $BG_TOTAL (nft map: $RT_NFT elements)${PD_BG_MS:+, podman $PD_BG_MS ms for $PD_BG_PORTS}"
if [ -n "$PD_WHY" ]; then echo "podman: $PD_WHY"; fi
if [ -n "$PD_BG_WHY" ]; then echo "podman: $PD_BG_WHY"; fi
if ((PD_COLS)); then echo "podman part took ${PD_S}s"; fi
echo
echo "== TCP throughput: iperf3 -t $IPERF_TIME, 1 stream, $(nproc) CPUs (runtimed, $BG_TOTAL other ports published) =="
printf '%-58s %8s %6s\n' "path" "Gbit/s" "retr"
for t in "${TPUT[@]}"; do
    label=${t%%|*} res=${t#*|}
    case $res in
        [0-9]*) printf '%-58s %8s %6s\n' "$label" "${res% *}" "${res#* }" ;;
        *) printf '%-58s %s\n' "$label" "${res:-no output}" ;;
    esac
done
echo
say "done"
