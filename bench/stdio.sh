#!/usr/bin/env bash
# Stdio benchmark (not a test), each figure beside its reference measured in
# the same run:
#   - throughput (MB/s) of SIZE_MB random bytes piped through
#     `runtimectl run -i --rm busybox cat`, beside the same bytes piped
#     through `cat` on the host (and, for information, the same run with
#     the daemon relaying the bytes instead of the shim taking our stdio);
#   - throughput of streamed exec output (`runtimectl exec C cat FILE`, the
#     file inside the container), beside the same host pipe;
#   - latency of `runtimectl exec C true`, beside `runc exec` into a runc
#     container of the same kind (busybox, own namespaces);
#   - each figure for podman too (rootful, runc, conmon), when it runs here:
#     how a docker-like engine with a daemon-less client does.
# runtimed runs in its own netns, dirs, socket and cgroup parent; everything
# is cleaned up on exit. Usage (as root):  bench/stdio.sh
# Env: SIZE_MB (default 200), RUNS (default 30), WARMUP (default 3),
#      PODMAN (1; 0 skips podman).
set -euo pipefail

SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
PODMAN=${PODMAN:-1}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

install_missing runc=runc hyperfine=hyperfine /bin/busybox=busybox-static
build_release -q -p runtimed -p runtimectl

RUNC_ID=bench-exec-$$
extra_cleanup() {
    runc --root "$RUNC_STATE" delete -f "$RUNC_ID" >/dev/null 2>&1
    podman_cleanup
}
bench_daemon

# mb_per_s COMMAND: runs COMMAND (a string, through bash) 3 times; the best
# SIZE_MB / seconds.
mb_per_s() {
    local best=0 s e
    for _ in 1 2 3; do
        s=$EPOCHREALTIME
        bash -c "$1"
        e=$EPOCHREALTIME
        best=$(python3 -c "import sys; print('%.0f' % max(float(sys.argv[1]), $SIZE_MB / ($e - $s)))" "$best")
    done
    echo "$best"
}

DATA=$TMP/data.bin
head -c "$((SIZE_MB * 1000000))" /dev/urandom >"$DATA"
say "piping $SIZE_MB MB"
HOST_PIPE=$(mb_per_s "cat '$DATA' | cat > /dev/null")
RUN_I=$(mb_per_s "cat '$DATA' | $RT run -i --rm --network none busybox cat > /dev/null")
# The same through the daemon's relay, the path of a remote or non-root
# client, and of a terminal.
RUN_I_RELAY=$(mb_per_s "cat '$DATA' | env RUNTIMECTL_DIRECT_STDIO=0 RUNTIMED_HOST=unix://$SOCK $RTC run -i --rm --network none busybox cat > /dev/null")

rtc_at "$SOCK" run -d --name streamer --network none busybox sleep 3600 >/dev/null
rtc_at "$SOCK" exec -i streamer sh -c 'cat > /tmp/data.bin' <"$DATA"
EXEC_OUT=$(mb_per_s "$RT exec streamer cat /tmp/data.bin > /dev/null")

# --- exec latency beside runc exec ----------------------------------------------
BUNDLE=$TMP/bundle
runc_bundle "$BUNDLE" sleep 3600
runc --root "$RUNC_STATE" run -d -b "$BUNDLE" "$RUNC_ID" </dev/null >/dev/null 2>&1
say "timing exec"
EXEC_MS=$(median_ms exec "$RT exec streamer true")
RUNC_MS=$(median_ms runc-exec "runc --root $RUNC_STATE exec $RUNC_ID true")

# --- podman, the same figures -----------------------------------------------------
PD_RUN_I=- PD_EXEC_OUT=- PD_EXEC_MS=- PD_WHY=""
podman_figures() {
    [ "$PODMAN" = 0 ] && { PD_WHY="skipped (PODMAN=0)"; return 1; }
    podman_init "$TMP/podman" "rtbench-pd-$$" || return 1
    local err=$TMP/podman.err img=localhost/rtbench-busybox
    tar -C "$BUNDLE/rootfs" -cf "$TMP/busybox.tar" .
    pd import "$TMP/busybox.tar" "$img" >/dev/null 2>"$err" || { PD_WHY="podman import failed: $(tail -n1 "$err")"; return 1; }
    local run="$PD_CMD run --cgroup-parent /$PNS --network none"
    $run --rm "$img" true >/dev/null 2>"$err" || { PD_WHY="podman cannot run a container here: $(tail -n1 "$err")"; return 1; }
    say "podman: piping $SIZE_MB MB"
    PD_RUN_I=$(mb_per_s "cat '$DATA' | $run -i --rm $img cat > /dev/null")
    $run -d --name streamer "$img" sleep 3600 >/dev/null
    pd exec -i streamer sh -c 'cat > /tmp/data.bin' <"$DATA"
    PD_EXEC_OUT=$(mb_per_s "$PD_CMD exec streamer cat /tmp/data.bin > /dev/null")
    say "podman: timing exec"
    PD_EXEC_MS=$(median_ms podman-exec "$PD_CMD exec streamer true")
}
podman_figures || say "podman: $PD_WHY"

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
printf '\nstdio throughput (%s MB, best of 3, MB/s)\n' "$SIZE_MB"
printf '%-52s %8s\n' "runtimectl run -i --rm busybox cat" "$RUN_I" "host: cat | cat (reference)" "$HOST_PIPE" \
    "ratio (target >= 0.50)" "$(ratio "$RUN_I" "$HOST_PIPE")"
printf '%-52s %8s\n' "the same, relayed by the daemon (DIRECT_STDIO=0)" "$RUN_I_RELAY"
printf '%-52s %8s\n' "runtimectl exec C cat FILE" "$EXEC_OUT" "host: cat | cat (reference)" "$HOST_PIPE" \
    "ratio (target >= 0.50)" "$(ratio "$EXEC_OUT" "$HOST_PIPE")"
printf '%-52s %8s\n' "podman run -i --rm busybox cat" "$PD_RUN_I" "podman exec C cat FILE" "$PD_EXEC_OUT"
summary_row "run -i cat throughput (MB/s)" "$RUN_I" "host: cat piped to cat" "$HOST_PIPE" ">= 0.50x"
summary_row "exec output throughput (MB/s)" "$EXEC_OUT" "host: cat piped to cat" "$HOST_PIPE" ">= 0.50x"
summary_row "exec C true (ms)" "$EXEC_MS" "runc exec" "$RUNC_MS" "<= 1.0x"
summary_row "run -i cat throughput (MB/s)" "$RUN_I" "podman run -i cat" "$PD_RUN_I" ""
summary_row "exec output throughput (MB/s)" "$EXEC_OUT" "podman exec cat" "$PD_EXEC_OUT" ""
summary_row "exec C true (ms)" "$EXEC_MS" "podman exec" "$PD_EXEC_MS" ""
printf '\nexec latency (median of %s runs, ms)\n' "$RUNS"
printf '%-52s %8s\n' "runtimectl exec C true" "$EXEC_MS" "runc exec C true (reference)" "$RUNC_MS" \
    "ratio (target <= 1.00)" "$(ratio "$EXEC_MS" "$RUNC_MS")" "podman exec C true" "$PD_EXEC_MS"
if [ -n "$PD_WHY" ]; then printf 'podman: %s\n' "$PD_WHY"; fi
