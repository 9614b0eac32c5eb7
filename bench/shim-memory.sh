#!/usr/bin/env bash
# Shim memory benchmark (not a test): N containers (`sleep`) under runtimed,
# and the same under podman, whose per-container monitor is conmon; prints
# each monitor's private memory and PSS from /proc/PID/smaps_rollup
# (averaged over the N). Private is what one more container costs; PSS
# also charges each its share of pages it shares with others.
# runtimed runs in its own netns, dirs, socket and cgroup parent; podman in
# its own root, run root and (none) network; all is removed on exit.
# Usage (as root):  bench/shim-memory.sh      Env: N (default 5).
set -euo pipefail

N=${N:-5}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

install_missing /bin/busybox=busybox-static podman=podman
build_release -q -p runtimed -p runtimectl

extra_cleanup() {
    [ -n "${PODMAN+x}" ] || return 0
    "${PODMAN[@]}" rm -f -a >/dev/null 2>&1
    "${PODMAN[@]}" system reset -f >/dev/null 2>&1
}

# mem PID...: "private_kB pss_kB", averaged over the pids.
mem() {
    local p priv=0 pss=0
    for p in "$@"; do
        priv=$((priv + $(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$p/smaps_rollup")))
        pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
    done
    echo "$((priv / $#)) $((pss / $#))"
}

bench_daemon
# runc, as beside our other figures: Debian's default crun refuses hybrid
# cgroups, and a conmon whose container failed to start is no reference.
PODMAN=(podman --root "$TMP/podman-root" --runroot "$TMP/podman-run" --cgroup-manager cgroupfs --events-backend none
    --runtime runc)
for i in $(seq "$N"); do rtc_at "$SOCK" run -d --network none --name "m$i" busybox sleep 3600 >/dev/null; done
sync # pages of a freshly built binary count as dirty until written back
mapfile -t SHIMS < <(pgrep -f "shim run .*--bundle $TMP/")
read -r OURS_PRIV OURS_PSS < <(mem "${SHIMS[@]}")

CONMON="(podman not runnable here)"
busybox_rootfs "$TMP/rootfs"
if tar -C "$TMP/rootfs" -c . | "${PODMAN[@]}" import - bench-busybox >/dev/null 2>&1; then
    # Our own limits: podman's higher defaults need CAP_SYS_RESOURCE,
    # which some machines do not grant.
    LIMITS=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
    STARTED=0
    for i in $(seq "$N"); do
        "${PODMAN[@]}" run -d "${LIMITS[@]}" --network none bench-busybox sleep 3600 >/dev/null || break
        STARTED=$i
    done
    mapfile -t MONS < <(pgrep -f "conmon .*$TMP/podman" || true)
    if ((STARTED == N && ${#MONS[@]} == N)); then CONMON=$(mem "${MONS[@]}"); fi
fi

printf '\nper-container monitor memory (%s containers, kB, from smaps_rollup)\n' "$N"
printf '%-28s %10s %10s\n' "" private pss
printf '%-28s %10s %10s\n' "runtimed shim" "$OURS_PRIV" "$OURS_PSS"
# shellcheck disable=SC2086 # two numbers, or the note
printf '%-28s %10s %10s\n' "podman's conmon (reference)" $CONMON
summary_row "shim private memory (kB)" "$OURS_PRIV" "podman's conmon" "${CONMON%% *}" "<= 500 kB"
