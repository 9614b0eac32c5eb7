#!/usr/bin/env bash
# Scale benchmark (not a test): how runtimed behaves with N running
# containers. Prints, each beside the same figure with none running:
#   - `run --rm busybox true` latency, --network none and bridge, bare
#     `runc run` of the same kind of container, and the kernel's floor
#     (bench/kernel-floor.py: the namespaces, cgroups and mounts of one
#     container made by hand, its mount namespace copied from the daemon's
#     template as our shim's is: what a runtime cannot avoid at that scale);
#   - `ps` latency;
#   - the daemon's restart to ready (SIGTERM, start, first answer);
#   - the host's mount count;
#   - `run --rm` (none) and bare runc with N host mounts that are not ours.
# runtimed runs in its own netns, dirs, socket and cgroup parent; all is
# removed on exit. Usage (as root):  bench/scale.sh
# Env: N (default 1000), RUNS (default 15), WARMUP (default 2).
set -euo pipefail
export LC_ALL=C

N=${N:-1000}
RUNS=${RUNS:-15}
WARMUP=${WARMUP:-2}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

install_missing runc=runc hyperfine=hyperfine /bin/busybox=busybox-static
build_release -q -p runtimed -p runtimectl

extra_cleanup() {
    runc --root "$RUNC_STATE" delete -f bench >/dev/null 2>&1
    rm_cgroups "rtbench-floor-$$"
}
bench_daemon
BUNDLE=$TMP/bundle
runc_bundle "$BUNDLE" true
# A foreground `runc run` deletes the container on exit: the id is reusable.
RUNC="runc --root $RUNC_STATE run -b $BUNDLE bench"
# The system's python, whose start is quick (pyenv's shim takes 0.15 s).
PY3=/usr/bin/python3
[ -x $PY3 ] || PY3=python3
# The floor copies the daemon's mount template, as the shim does.
FLOOR="$PY3 bench/kernel-floor.py $BUNDLE/rootfs rtbench-floor-$$ --template $TMP/run/mount-template"

# restart: stops the daemon, starts it again; RESTART_MS = the ms until it
# answers `ps`. (Not in a $(...): the daemon would keep its stdout open.)
restart() {
    stop_pid "$DPID" || true # its status is the daemon's
    local s=$EPOCHREALTIME
    rtd_start "$NS" "$TMP" warn
    DPID=$RTD_PID
    for _ in $(seq 600); do rtc_at "$SOCK" ps -q >/dev/null 2>&1 && break; sleep 0.01; done
    RESTART_MS=$(python3 -c "print('%.0f' % ((float('$EPOCHREALTIME') - $s) * 1000))")
}

# figures LABEL: adds a row of figures for the containers running now.
ROWS=()
figures() {
    local none bridge ps runc floor
    read -r -d '' none runc bridge floor < <(interleaved_ms "$RT run --rm --network none busybox true" \
        "$RUNC" "$RT run --rm busybox true" "$FLOOR" && printf '\0') || true
    ps=$(median_ms "ps-$1" "$RT ps")
    restart
    [ "$1" = "0 running" ] && NONE_0=$none
    [ "$1" = "0 running" ] && RUNC_0=$runc
    [ "$1" = "0 running" ] && FLOOR_0=$floor
    NONE_N=$none RUNC_N=$runc FLOOR_N=$floor PS_N=$ps RESTART_N=$RESTART_MS
    ROWS+=("$(printf '%-26s %10s %10s %10s %10s %8s %12s %8s' "$1" "$none" "$bridge" "$runc" "$floor" "$ps" "$RESTART_MS" \
        "$(wc -l </proc/self/mountinfo)")")
}

# host_mounts: N bind mounts that are not ours (a busy host's: another
# runtime's, a kubelet's), `run --rm` (none) and bare runc beside each
# other with them there, then they go. The daemon restarts after they are
# made, as it would have started on such a host: its mount template (a
# copy of the host's mounts when it starts) then holds them.
host_mounts() {
    local dir=$TMP/host-mounts i
    mkdir -p "$dir"
    touch "$dir/src"
    for i in $(seq "$N"); do touch "$dir/m$i" && mount --bind "$dir/src" "$dir/m$i"; done
    restart
    read -r -d '' MNT_NONE MNT_RUNC MNT_FLOOR < <(interleaved_ms "$RT run --rm --network none busybox true" \
        "$RUNC" "$FLOOR" && printf '\0') || true
    for i in $(seq "$N"); do umount "$dir/m$i"; done
    restart
}

say "figures with none running"
figures "0 running"
say "figures with $N host mounts that are not ours"
host_mounts
say "starting $N containers"
for i in $(seq "$N"); do
    rtc_at "$SOCK" run -d --network none --name "s$i" busybox sleep 36000 >/dev/null
    ((i % 100)) || say "$i running"
done
figures "$N running"

printf '\nscale (ms; medians of %s runs, the commands interleaved; load %s)\n' "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-26s %10s %10s %10s %10s %8s %12s %8s\n' "" "run none" "run bridge" "runc run" "floor" "ps" "restart" "mounts"
printf '%s\n' "${ROWS[@]}"
printf '%-26s %10s %10s %10s %10s\n' "0 running, $N host mounts" "$MNT_NONE" "" "$MNT_RUNC" "$MNT_FLOOR"
summary_row "run --rm none, $N running (ms)" "$NONE_N" "with 0 running" "$NONE_0" "<= 1.1x"
summary_row "runc run (reference), $N running (ms)" "$RUNC_N" "with 0 running" "$RUNC_0" ""
summary_row "kernel floor (reference), $N running (ms)" "$FLOOR_N" "with 0 running" "$FLOOR_0" ""
# What the kernel adds at scale, in ms rather than as a ratio: the floor
# starts from a slower base (a Python interpreter), which shrinks its ratio.
growth() { python3 -c "print('%+.1f' % ($1 - $2))"; }
summary_row "run --rm none, growth with $N running (ms)" "$(growth "$NONE_N" "$NONE_0")" \
    "the kernel floor's growth" "$(growth "$FLOOR_N" "$FLOOR_0")" ""
summary_row "run --rm none, $N host mounts not ours (ms)" "$MNT_NONE" "with 0 running" "$NONE_0" ""
summary_row "runc run (reference), $N host mounts (ms)" "$MNT_RUNC" "with 0 running" "$RUNC_0" ""
summary_row "kernel floor (reference), $N host mounts (ms)" "$MNT_FLOOR" "with 0 running" "$FLOOR_0" ""
summary_row "ps, $N running (ms)" "$PS_N" "" "" "< 30 ms"
summary_row "restart to ready, $N running (ms)" "$RESTART_N" "" "" "< 1000 ms"
