#!/usr/bin/env bash
# Stdio benchmark (not a test), each figure beside its reference measured in
# the same run:
#   - throughput (MB/s) of SIZE_MB random bytes piped through
#     `runtimectl run -i --rm busybox cat`, beside the same bytes piped
#     through `cat` on the host;
#   - throughput of streamed exec output (`runtimectl exec C cat FILE`, the
#     file inside the container), beside the same host pipe;
#   - latency of `runtimectl exec C true`, beside `runc exec` into a runc
#     container of the same kind (busybox, own namespaces).
# runtimed runs in its own netns, dirs, socket and cgroup parent; everything
# is cleaned up on exit. Usage (as root):  bench/stdio.sh
# Env: SIZE_MB (default 200), RUNS (default 30), WARMUP (default 3).
set -euo pipefail

SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

install_missing runc=runc hyperfine=hyperfine /bin/busybox=busybox-static
build_release -q -p runtimed -p runtimectl

RUNC_ID=bench-exec-$$
extra_cleanup() { runc --root "$TMP/runc-state" delete -f "$RUNC_ID" >/dev/null 2>&1; }
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
RUN_I=$(mb_per_s "cat '$DATA' | env RUNTIMED_HOST=unix://$SOCK $RTC run -i --rm --network none busybox cat > /dev/null")

rtc_at "$SOCK" run -d --name streamer --network none busybox sleep 3600 >/dev/null
rtc_at "$SOCK" exec -i streamer sh -c 'cat > /tmp/data.bin' <"$DATA"
EXEC_OUT=$(mb_per_s "env RUNTIMED_HOST=unix://$SOCK $RTC exec streamer cat /tmp/data.bin > /dev/null")

# --- exec latency beside runc exec ----------------------------------------------
BUNDLE=$TMP/bundle
runc_bundle "$BUNDLE" sleep 3600
runc --root "$TMP/runc-state" run -d -b "$BUNDLE" "$RUNC_ID" </dev/null >/dev/null 2>&1
say "timing exec"
EXEC_MS=$(median_ms exec "env RUNTIMED_HOST=unix://$SOCK $RTC exec streamer true")
RUNC_MS=$(median_ms runc-exec "runc --root $TMP/runc-state exec $RUNC_ID true")

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
printf '\nstdio throughput (%s MB, best of 3, MB/s)\n' "$SIZE_MB"
printf '%-52s %8s\n' "runtimectl run -i --rm busybox cat" "$RUN_I" "host: cat | cat (reference)" "$HOST_PIPE" \
    "ratio (target >= 0.50)" "$(ratio "$RUN_I" "$HOST_PIPE")"
printf '%-52s %8s\n' "runtimectl exec C cat FILE" "$EXEC_OUT" "host: cat | cat (reference)" "$HOST_PIPE" \
    "ratio (target >= 0.50)" "$(ratio "$EXEC_OUT" "$HOST_PIPE")"
summary_row "run -i cat throughput (MB/s)" "$RUN_I" "host: cat piped to cat" "$HOST_PIPE" ">= 0.50x"
summary_row "exec output throughput (MB/s)" "$EXEC_OUT" "host: cat piped to cat" "$HOST_PIPE" ">= 0.50x"
summary_row "exec C true (ms)" "$EXEC_MS" "runc exec" "$RUNC_MS" "<= 1.0x"
printf '\nexec latency (median of %s runs, ms)\n' "$RUNS"
printf '%-52s %8s\n' "runtimectl exec C true" "$EXEC_MS" "runc exec C true (reference)" "$RUNC_MS" \
    "ratio (target <= 1.00)" "$(ratio "$EXEC_MS" "$RUNC_MS")"
