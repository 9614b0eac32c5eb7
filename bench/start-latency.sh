#!/usr/bin/env bash
# Start-latency benchmark (not a test): median wall time of
#   `runtimectl run --rm busybox true` through runtimed with --network none,
#   --network host and the default bridge, beside
#   bare `runc run` of an equivalent busybox bundle (the reference),
# taking turns run by run (interleaved_ms), so that the machine's load
# falls on all four alike. Then `--network none` and runc again, with the
# daemon's root dir and runc's bundle on a journaled ext4 image: a start
# makes and removes a container's writable layer on the disk (and the
# kernel makes and removes test files in it at each overlay mount), and an
# ext4 without a journal, as some VMs' disks are, reads every inode freed
# in the last minutes at each allocation; hosts' /var/lib mostly has one.
# runtimed runs in its own netns, dirs, socket and cgroup parent, so it
# does not collide with a system daemon; everything is cleaned up on exit.
# Usage (as root, from anywhere in a clone):  sudo bench/start-latency.sh
# Env: RUNS (default 40), WARMUP (default 3).
set -euo pipefail

RUNS=${RUNS:-40}
WARMUP=${WARMUP:-3}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

install_missing runc=runc hyperfine=hyperfine /bin/busybox=busybox-static mkfs.ext4=e2fsprogs
build_release -q -p runtimed -p runtimectl

extra_cleanup() { runc --root "$RUNC_STATE" delete -f bench >/dev/null 2>&1; }

# --- runtimed, isolated -------------------------------------------------------
bench_daemon
for _ in 1 2; do env "$HOSTENV" "$RTC" run --rm busybox true; done   # warm-up / sanity

# --- runc bundle from the host's static busybox ------------------------------
BUNDLE=$TMP/bundle
runc_bundle "$BUNDLE" true
RUNC="runc --root $RUNC_STATE run -b $BUNDLE bench"
# A foreground `runc run` deletes the container on exit, so a fixed id is reusable.
for _ in 1 2; do $RUNC </dev/null; done

# --- measure --------------------------------------------------------------------
export LC_ALL=C   # EPOCHREALTIME with a '.'
RUN="$RT run --rm"
read -r -d '' NONE HOST BRIDGE RUNC_MS < <(interleaved_ms "$RUN --network none busybox true" \
    "$RUN --network host busybox true" "$RUN busybox true" "$RUNC" && printf '\0') || true

printf '\nstart latency (median of %s interleaved runs, ms)\n' "$RUNS"
printf '%-44s %6s\n' "runtimectl run --rm --network none ... true" "$NONE" \
    "runtimectl run --rm --network host ... true" "$HOST" \
    "runtimectl run --rm ... true (default bridge)" "$BRIDGE" \
    "runc run (bare, same bundle)" "$RUNC_MS"
printf '%-44s %6s\n' "ratio none/runc" "$(python3 -c "print('%.2f' % ($NONE/$RUNC_MS))")" \
    "bridge - none (ms)" "$(python3 -c "print('%.1f' % ($BRIDGE-$NONE))")"
printf '%-44s %s\n' "none/runc round by round: median (p10-p90)" "$(round_ratios 0 3)"
summary_row "run --rm busybox true, --network none (ms)" "$NONE" "runc run, same bundle" "$RUNC_MS" "<= 1.0x runc"
summary_row "run --rm busybox true, --network host (ms)" "$HOST" "runc run, same bundle" "$RUNC_MS" ""
summary_row "run --rm busybox true, default bridge (ms)" "$BRIDGE" "--network none" "$NONE" "<= none + 5 ms"

# --- again, the root dir and runc's bundle on a journaled ext4 --------------------
say "again with the root dir and runc's bundle on a journaled ext4 image"
stop_pid "$DPID" || true
truncate -s 4G "$TMP/ext4.img"
mkfs.ext4 -q -F "$TMP/ext4.img"
mkdir "$TMP/ext4"
mount -o loop "$TMP/ext4.img" "$TMP/ext4"
mkdir "$TMP/ext4/root"
rm -rf "$TMP/root"
ln -s "$TMP/ext4/root" "$TMP/root"
rtd_start "$NS" "$TMP" warn
DPID=$RTD_PID
rtd_wait "$TMP" "$DPID"
runc_bundle "$TMP/ext4/bundle" true
RUNC_J="runc --root $RUNC_STATE run -b $TMP/ext4/bundle bench"
read -r -d '' NONE_J RUNC_J_MS < <(interleaved_ms "$RUN --network none busybox true" "$RUNC_J" && printf '\0') || true
printf '%-44s %6s\n' "on a journaled ext4: run --rm --network none" "$NONE_J" \
    "on a journaled ext4: runc run" "$RUNC_J_MS" \
    "ratio none/runc" "$(python3 -c "print('%.2f' % ($NONE_J/$RUNC_J_MS))")"
printf '%-44s %s\n' "none/runc round by round: median (p10-p90)" "$(round_ratios 0 1)"
summary_row "run --rm busybox true, none, journaled ext4 (ms)" "$NONE_J" "runc run, bundle on it too" "$RUNC_J_MS" "<= 1.0x runc"
