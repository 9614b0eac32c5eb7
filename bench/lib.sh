# shellcheck shell=bash
# bench/lib.sh: what the benchmarks in bench/ share. Sourced, not run:
#     . "$(dirname "$0")/lib.sh"
# Sourcing only defines functions; the scripts call them:
#   setup    bench_init, say, apt_install, install_missing, build_release,
#            release_bins, netns_add, busybox_rootfs
#   runtimed rtd_start, rtd_wait, rtc_at (an isolated daemon: a netns of its
#            own, which is also the name of its cgroup parent, and one
#            directory D for the rest: D/root (--root), D/run (--run-dir),
#            D/runtimed.sock (--socket), D/runtimed.log (its stderr))
#   cleanup  on_exit, rtd_rm_all, stop_pid, del_netns, rm_cgroups, rm_tmp
#            (for the exit trap: each one copes with what is already gone)
#   podman   podman_init, pd, podman_cleanup (a rootful podman of the
#            bench's own: storage, config, netns and cgroup parent)
#   measure  iperf_gbps
#   report   summary_row (a line of bench/all.sh's summary table)
# Globals: REPO and T0 (bench_init), RTD and RTC (release_bins), RTD_PID
# (rtd_start).

# summary_row FIGURE OURS REFERENCE REFERENCE_VALUE TARGET: when run by
# bench/all.sh (BENCH_SUMMARY names its file), one row of its summary:
# our figure beside the reference measured in the same run.
summary_row() {
    [ -n "${BENCH_SUMMARY:-}" ] || return 0
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_SUMMARY"
}

# bench_init: cd to the root of the clone (REPO), exit unless run as root,
# start the clock of `say` (T0).
bench_init() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
    REPO=$PWD
    [ "$(id -u)" = 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }
    T0=$EPOCHREALTIME
}

# say MESSAGE...: a progress line on stderr, stamped with the seconds since
# bench_init (EPOCHREALTIME needs LC_ALL=C, for its '.').
say() { printf '[%5.1fs] %s\n' "$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')" "$*" >&2; }

# apt_install PACKAGE...: installs them, quietly; `apt-get update` only if
# the first try fails.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get install -y -qq "$@" >/dev/null 2>&1 \
        || { timeout 300 apt-get update -qq >/dev/null 2>&1 && timeout 300 apt-get install -y -qq "$@" >/dev/null 2>&1; }
}

# install_missing COMMAND=PACKAGE...: installs (apt_install) the packages whose
# command is not there (a COMMAND with a '/' is a path that must be
# executable); exits if that fails.
install_missing() {
    local pair cmd want=()
    for pair in "$@"; do
        cmd=${pair%%=*}
        if [[ $cmd == */* ]]; then
            [ -x "$cmd" ] && continue
        else
            command -v "$cmd" >/dev/null && continue
        fi
        want+=("${pair#*=}")
    done
    ((${#want[@]})) || return 0
    say "installing ${want[*]}"
    apt_install "${want[@]}" || { echo "cannot install ${want[*]}" >&2; exit 1; }
}

# build_release CARGO_ARGS...: `cargo build --release CARGO_ARGS`, then
# release_bins.
build_release() {
    cargo build --release "$@"
    release_bins
}

# release_bins: RTD and RTC = target/release's runtimed and runtimectl;
# exits if one of them is missing.
release_bins() {
    RTD=$REPO/target/release/runtimed
    RTC=$REPO/target/release/runtimectl
    if [ ! -x "$RTD" ] || [ ! -x "$RTC" ]; then echo "no $RTD or $RTC" >&2; exit 1; fi
}

# netns_add NAME: a new network namespace, its loopback up.
netns_add() {
    ip netns add "$1"
    ip -n "$1" link set lo up
}

# busybox_rootfs DIR: a minimal root filesystem in DIR: the host's static
# /bin/busybox, a link in /bin for each of its applets, and empty /proc, /sys,
# /dev, /tmp and /etc.
busybox_rootfs() {
    local a
    mkdir -p "$1"/{bin,proc,sys,dev,tmp,etc}
    cp /bin/busybox "$1/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"
    done
}

# runc_bundle DIR CMD...: an OCI bundle in DIR for bare runc, the reference
# beside our containers: busybox_rootfs, runc's default spec running CMD
# without a terminal, in a network namespace of its own (as ours), in a
# cgroup of the bench's own.
runc_bundle() {
    local dir=$1
    shift
    busybox_rootfs "$dir/rootfs"
    (cd "$dir" && runc spec)
    python3 - "$dir/config.json" "/rtbench-runc-$$/c" "$@" <<'PY'
import json, sys
path, cg, args = sys.argv[1], sys.argv[2], sys.argv[3:]
spec = json.load(open(path))
spec["process"]["args"] = args
spec["process"]["terminal"] = False
ns = spec["linux"].setdefault("namespaces", [])
if not any(n["type"] == "network" for n in ns):
    ns.append({"type": "network"})
spec["linux"]["cgroupsPath"] = cg
json.dump(spec, open(path, "w"), indent=2)
PY
}

# podman_init DIR NETNS: a podman for the reference figures, with its
# storage and config in DIR, its containers in the network namespace NETNS
# (created here; also the name of their cgroup parent) and runc as its
# runtime. Installs podman (and iptables, which netavark needs) if missing.
# Returns 1 with PD_WHY set if podman cannot run here; sets PD_VER.
# `pd ARGS` then runs podman so (PD_CMD: the same as a string, for
# commands given as strings); podman_cleanup undoes it all.
PD_OK=""          # set once podman's netns and storage exist
PD_CREATED=()     # host paths podman makes that did not exist before
PD_NETNS_BEFORE=""
PD_TIMEOUT=600
podman_init() {
    PDIR=$1 PNS=$2 PCONF=$1/containers.conf
    if ! command -v podman >/dev/null || ! command -v iptables >/dev/null; then
        say "installing podman (and iptables, which netavark needs)"
        apt_install podman iptables || { PD_WHY="podman could not be installed (apt-get install podman iptables failed)"; return 1; }
    fi
    # shellcheck disable=SC2034 # for the caller
    PD_VER=$(podman --version 2>/dev/null | awk '{print $NF}')
    local p
    for p in /run/containers /var/lib/containers /dev/shm/libpod_lock; do
        [ -e "$p" ] || PD_CREATED+=("$p")
    done
    mkdir -p "$PDIR"
    # No systemd here: cgroupfs. podman's default rlimits for root (nofile
    # 1048576, ...) can exceed the host's hard limits; runc then fails (EPERM).
    cat >"$PCONF" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PDIR/events.log"
tmp_dir = "$PDIR/tmp"
runtime = "runc"
[network]
network_backend = "netavark"
network_config_dir = "$PDIR/net"
CONF
    # The same as a string, for commands given as strings (median_ms).
    PD_CMD="timeout $PD_TIMEOUT nsenter --net=/run/netns/$PNS env CONTAINERS_CONF=$PCONF"
    PD_CMD+=" podman --root $PDIR/root --runroot $PDIR/run --storage-driver overlay"
    PD_NETNS_BEFORE=$(ls /run/netns 2>/dev/null || true)
    # shellcheck disable=SC2034 # for the caller
    ip netns add "$PNS" || { PD_WHY="cannot create netns $PNS"; return 1; }
    ip -n "$PNS" link set lo up
    PD_OK=1
}

# pd ARGS...: podman as podman_init set it up. The timeout is a last resort
# only: a podman killed while holding one of its locks leaves it held.
pd() {
    timeout "$PD_TIMEOUT" nsenter --net="/run/netns/$PNS" env CONTAINERS_CONF="$PCONF" \
        podman --root "$PDIR/root" --runroot "$PDIR/run" --storage-driver overlay "$@"
}

# podman_cleanup: removes podman's containers, the netns podman made for
# them and ours, their cgroups and the host paths podman created (its
# storage in DIR goes with the caller's rm_tmp).
podman_cleanup() {
    [ -n "$PD_OK" ] || return 0
    PD_TIMEOUT=60
    pd rm -af -t 0 >/dev/null 2>&1
    # What podman leaves when it fails or is stopped: its containers'
    # netns, named netns-<uuid>, that appeared while we ran.
    local n p
    for n in /run/netns/netns-*; do
        n=${n##*/}
        [ "$n" = "netns-*" ] || grep -qx "$n" <<<"$PD_NETNS_BEFORE" || ip netns del "$n" 2>/dev/null
    done
    del_netns "$PNS"
    rm_cgroups "$PNS"   # conmon lives there too
    for p in "${PD_CREATED[@]}"; do rm -rf "$p"; done
}

# iperf_gbps NO_JSON ERROR_PREFIX [retr]: the output of `iperf3 -J` on stdin
# -> the Gbit/s received (%.2f), then, with "retr", a space and the sender's
# retransmits ("-" if it has none); NO_JSON if stdin is no JSON, ERROR_PREFIX
# followed by iperf3's error if it reports one.
iperf_gbps() {
    python3 -c '
import json, sys
no_json, error_prefix = sys.argv[1], sys.argv[2]
retr = sys.argv[3:] == ["retr"]
try:
    d = json.load(sys.stdin)
except Exception:
    print(no_json); sys.exit()
if d.get("error"):
    print(error_prefix + d["error"]); sys.exit()
e = d["end"]
out = "%.2f" % (e["sum_received"]["bits_per_second"] / 1e9)
if retr:
    out += " %s" % e["sum_sent"].get("retransmits", "-")
print(out)' "$@"
}

# rtd_start NETNS DIR LOG_LEVEL [RUNTIMED_ARGS...]: starts runtimed (RTD) in
# the background inside netns NETNS, with cgroup parent NETNS, --log-level
# LOG_LEVEL, its files in DIR (see the top) and RUNTIMED_ARGS; RTD_PID = its
# pid (nsenter execs the daemon).
rtd_start() {
    local ns=$1 dir=$2 level=$3
    shift 3
    mkdir -p "$dir"
    nsenter --net="/run/netns/$ns" "$RTD" --root "$dir/root" --run-dir "$dir/run" --socket "$dir/runtimed.sock" \
        --cgroup-parent "$ns" --log-level "$level" "$@" 2>"$dir/runtimed.log" &
    # shellcheck disable=SC2034 # for the caller
    RTD_PID=$!
}

# rtd_wait DIR PID [NAME]: waits (15 s at most, less if PID dies) for the
# socket of the runtimed in DIR, then (15 s more at most) until it answers
# with the busybox image; exits with its log if the socket does not appear.
# NAME names the daemon in that message.
rtd_wait() {
    local dir=$1 pid=$2 name=${3:-} sock=$1/runtimed.sock
    for _ in $(seq 150); do [ -S "$sock" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    [ -S "$sock" ] || { echo "runtimed${name:+ $name} did not start:" >&2; cat "$dir/runtimed.log" >&2; exit 1; }
    # The socket is bound before the busybox image is built; wait until it answers.
    for _ in $(seq 150); do rtc_at "$sock" images 2>/dev/null | grep -q busybox && break; sleep 0.1; done
}

# rtc_at SOCKET ARGS...: runtimectl (RTC) ARGS against the runtimed at SOCKET.
rtc_at() {
    local sock=$1
    shift
    env "RUNTIMED_HOST=unix://$sock" "$RTC" "$@"
}

# on_exit FUNCTION: FUNCTION runs on exit; INT and TERM exit (130) through it.
on_exit() {
    # shellcheck disable=SC2064 # the name is expanded now, on purpose
    trap "$1" EXIT
    trap "exit 130" INT TERM
}

# rtd_rm_all SOCKET: force-removes every container of the runtimed at SOCKET,
# if that socket exists (each runtimectl call bounded to 120 s).
rtd_rm_all() {
    local ids
    [ -S "$1" ] || return 0
    ids=$(timeout 120 env "RUNTIMED_HOST=unix://$1" "$RTC" ps -aq 2>/dev/null) || return 0
    # shellcheck disable=SC2086 # one id a word
    if [ -n "$ids" ]; then timeout 120 env "RUNTIMED_HOST=unix://$1" "$RTC" rm -f $ids >/dev/null 2>&1; fi
}

# stop_pid PID: TERM, up to 5 s, then KILL, and reap it (a child of this
# shell); nothing if it is gone.
stop_pid() {
    local p=$1
    kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p"
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}

# del_netns NAME...: deletes those network namespaces, if they exist.
del_netns() {
    local n
    for n in "$@"; do ip netns del "$n" 2>/dev/null; done
    return 0
}

# rm_cgroups NAME...: removes the cgroups of those names in the first two
# levels of /sys/fs/cgroup (v2, or v1 per controller) and all below them,
# deepest first, killing whatever still runs in them so that rmdir works.
rm_cgroups() {
    local n d c names=()
    for n in "$@"; do
        ((${#names[@]} == 0)) || names+=(-o)
        names+=(-name "$n")
    done
    find /sys/fs/cgroup -maxdepth 2 -type d \( "${names[@]}" \) 2>/dev/null | while read -r d; do
        find "$d" -depth -type d | while read -r c; do
            xargs -r kill -KILL <"$c/cgroup.procs" 2>/dev/null
            rmdir "$c" 2>/dev/null || { sleep 0.2; rmdir "$c" 2>/dev/null; }
        done
    done
}

# rm_tmp DIR: unmounts whatever is still mounted under DIR, compared as a path
# (/tmp/b1 must not take /tmp/b10 along), deepest first (daemons'
# namespaces, image layers), then deletes DIR.
rm_tmp() {
    local m
    awk -v t="${1%/}" '$5 == t || index($5, t "/") == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "$1"
}

# median_ms NAME COMMAND: median wall time in ms of COMMAND (a string, run
# RUNS times after WARMUP runs) with hyperfine, or a plain timing loop
# without it; NAME names its JSON export in TMP.
median_ms() {
    local json=$TMP/$1.json
    if command -v hyperfine >/dev/null; then
        local hf=(hyperfine -N)
        hyperfine -N --runs 1 --style none true >/dev/null 2>&1 || hf=(hyperfine)
        "${hf[@]}" --style none --warmup "$WARMUP" --runs "$RUNS" --export-json "$json" "$2" >/dev/null
        python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$json"
    else
        for _ in $(seq "$WARMUP"); do $2 >/dev/null; done
        for _ in $(seq "$RUNS"); do
            s=$(date +%s%N); $2 >/dev/null; echo $(( $(date +%s%N) - s ))
        done | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1e6}'
    fi
}

# interleaved_ms COMMAND...: the median wall time in ms of each COMMAND (a
# string), one line each, in order. They take turns, one run each per round
# (WARMUP rounds, then RUNS), so a change of the machine's load falls on all
# of them alike: the ratios between them are what to trust. Each round
# starts one further along, so none of them always follows the same one
# (and the work a container's removal leaves to the kernel). A command that
# fails stops the whole benchmark: the time of a failure is no figure.
# Each command's times, in round order, stay in $TMP/interleaved.<index>
# for round_ratios.
interleaved_ms() {
    local cmds=("$@") n=$# i k r t0 t1 times=()
    for ((r = 0; r < WARMUP + RUNS; r++)); do
        for ((k = 0; k < n; k++)); do
            i=$(((r + k) % n))
            t0=$EPOCHREALTIME
            ${cmds[$i]} >/dev/null || bench_abort "failed ($?): ${cmds[$i]}"
            t1=$EPOCHREALTIME
            ((r < WARMUP)) || times[i]+="${t0/./} ${t1/./}"$'\n'
        done
    done
    for i in "${!cmds[@]}"; do
        printf '%s' "${times[$i]}" | awk '{print ($2 - $1) / 1000}' >"$TMP/interleaved.$i"
        sort -n "$TMP/interleaved.$i" | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m}'
    done
}

# round_ratios A B: how the ratio of commands A and B (indexes) of the last
# interleaved_ms spreads over its rounds (each round ran both, one after
# the other): "median (p10-p90)". A ratio of two medians does not say
# whether the rounds agreed; on a VM whose CPUs are taken away at times
# they often do not.
round_ratios() {
    paste "$TMP/interleaved.$1" "$TMP/interleaved.$2" | awk '{print $1 / $2}' | sort -n | awk '{a[NR]=$1}
        END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f (%.2f-%.2f)\n", m, a[int(NR*0.1)+1], a[int(NR*0.9)]}'
}

# bench_abort MESSAGE: stops the benchmark from anywhere, a $(...) or a
# <(...) included (its exit would end only that subshell): the main shell
# gets a TERM, which on_exit turns into an exit with cleanup.
bench_abort() {
    echo "bench: $*" >&2
    kill -TERM $$
    exit 1
}

# bench_daemon: an isolated runtimed for this benchmark, ready: TMP (its
# files), NS (its netns and cgroup parent), SOCK, HOSTENV (for `env`), RT
# (runtimectl against it, with no `env` process before it: a timed command
# must not count an exec that runc's does not have), RUNC_STATE (bare
# runc's --root) and DPID. The layout is the defaults':
# the root dir on the disk (as /var/lib/runtimed), the run dir and runc's
# state on a tmpfs (as /run/runtimed and /run/runc). BENCH_TMP (default
# /tmp) names the disk. On exit, bench_cleanup removes everything, calling
# the script's own `extra_cleanup` first if it defines one.
bench_daemon() {
    TMP=$(mktemp -d "${BENCH_TMP:-/tmp}/rtbench.XXXXXX")
    mkdir "$TMP/run"
    mount -t tmpfs -o mode=0711 tmpfs "$TMP/run"
    # shellcheck disable=SC2034 # for the caller
    RUNC_STATE=$TMP/run/runc
    NS=rtbench-$$
    SOCK=$TMP/runtimed.sock
    # shellcheck disable=SC2034 # for the caller
    HOSTENV="RUNTIMED_HOST=unix://$SOCK"
    # shellcheck disable=SC2034 # for the caller
    RT="$RTC -H unix://$SOCK"
    DPID=""
    on_exit bench_cleanup
    ip netns add "$NS"
    rtd_start "$NS" "$TMP" warn
    DPID=$RTD_PID
    rtd_wait "$TMP" "$DPID"
}

bench_cleanup() {
    set +e
    rtd_rm_all "$SOCK"
    [ -n "$DPID" ] && stop_pid "$DPID"
    declare -F extra_cleanup >/dev/null && extra_cleanup
    del_netns "$NS"
    rm_cgroups "$NS" "rtbench-runc-$$"
    rm_tmp "$TMP"
}
