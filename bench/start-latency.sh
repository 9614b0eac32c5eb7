#!/usr/bin/env bash
# Start-latency benchmark (not a test): median wall time of
#   (a) `runtimectl run --rm busybox true` through runtimed, and
#   (b) bare `runc run` of an equivalent busybox bundle (the reference),
# both measured with hyperfine (falls back to a plain timing loop without it).
# runtimed runs in its own netns, dirs, socket and cgroup parent, so it does
# not collide with a system daemon; everything is cleaned up on exit.
# Usage (as root, from anywhere in a clone):  sudo bench/start-latency.sh
# Env: RUNS (default 40), WARMUP (default 3).
set -euo pipefail

RUNS=${RUNS:-40}
WARMUP=${WARMUP:-3}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

install_missing runc=runc hyperfine=hyperfine /bin/busybox=busybox-static
build_release -q -p runtimed -p runtimectl

extra_cleanup() { runc --root "$TMP/runc-state" delete -f bench >/dev/null 2>&1; }

# --- runtimed, isolated -------------------------------------------------------
bench_daemon
for _ in 1 2; do env "$HOSTENV" "$RTC" run --rm busybox true; done   # warm-up / sanity

# --- runc bundle from the host's static busybox ------------------------------
BUNDLE=$TMP/bundle
runc_bundle "$BUNDLE" true
RUNC="runc --root $TMP/runc-state run -b $BUNDLE bench"
# A foreground `runc run` deletes the container on exit, so a fixed id is reusable.
for _ in 1 2; do $RUNC </dev/null; done

# --- measure --------------------------------------------------------------------
A=$(median_ms runtimectl "env $HOSTENV $RTC run --rm busybox true")
B=$(median_ms runc "$RUNC")

printf '\nstart latency (median of %s runs, ms)\n' "$RUNS"
printf '%-36s %6s\n' "runtimectl run --rm busybox true" "$A" "runc run (bare, same bundle)" "$B"
printf '%-36s %6s\n' "ratio runtimectl/runc" "$(python3 -c "print('%.2f' % ($A/$B))")"
summary_row "run --rm busybox true, default bridge (ms)" "$A" "runc run, same bundle" "$B" "none <= 1.0x runc"
