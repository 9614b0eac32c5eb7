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
cd "$(dirname "$0")/.."
REPO=$PWD
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }

if ! command -v runc >/dev/null || ! command -v hyperfine >/dev/null || [ ! -x /bin/busybox ]; then
    apt-get install -y -qq runc hyperfine busybox-static >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq runc hyperfine busybox-static >/dev/null; }
fi
cargo build --release -q -p runtimed -p runtimectl
RTD=$REPO/target/release/runtimed
RTC=$REPO/target/release/runtimectl

TMP=$(mktemp -d /tmp/rtbench.XXXXXX)
NS=rtbench-$$
SOCK=$TMP/runtimed.sock
HOSTENV="RUNTIMED_HOST=unix://$SOCK"
DPID=""

cleanup() {
    set +e
    if [ -S "$SOCK" ]; then
        ids=$(env "$HOSTENV" "$RTC" ps -aq 2>/dev/null)
        [ -n "$ids" ] && env "$HOSTENV" "$RTC" rm -f $ids >/dev/null 2>&1
    fi
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID"
        for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
    fi
    runc --root "$TMP/runc-state" delete -f bench >/dev/null 2>&1
    ip netns del "$NS" 2>/dev/null
    # Leftover cgroups of this run (deepest first); kill stragglers so rmdir works.
    for d in $(find /sys/fs/cgroup -maxdepth 2 -type d \( -name "rtbench-$$" -o -name "rtbench-runc-$$" \) 2>/dev/null); do
        find "$d" -depth -type d | while read -r c; do
            xargs -r kill -KILL <"$c/cgroup.procs" 2>/dev/null
            rmdir "$c" 2>/dev/null || { sleep 0.2; rmdir "$c" 2>/dev/null; }
        done
    done
    # Unmount anything left under $TMP, deepest first.
    awk -v t="$TMP" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# --- runtimed, isolated -------------------------------------------------------
ip netns add "$NS"
nsenter --net="/run/netns/$NS" "$RTD" --root "$TMP/root" --run-dir "$TMP/run" \
    --socket "$SOCK" --cgroup-parent "$NS" --log-level warn 2>"$TMP/runtimed.log" &
DPID=$!
for _ in $(seq 150); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "runtimed did not start:" >&2; cat "$TMP/runtimed.log" >&2; exit 1; }
# The socket is bound before the busybox image is built; wait until it answers.
for _ in $(seq 150); do env "$HOSTENV" "$RTC" images 2>/dev/null | grep -q busybox && break; sleep 0.1; done
for _ in 1 2; do env "$HOSTENV" "$RTC" run --rm busybox true; done   # warm-up / sanity

# --- runc bundle from the host's static busybox ------------------------------
BUNDLE=$TMP/bundle
mkdir -p "$BUNDLE"/rootfs/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$BUNDLE/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$BUNDLE/rootfs/bin/$a"
done
(cd "$BUNDLE" && runc spec)
python3 - "$BUNDLE/config.json" "/rtbench-runc-$$/c" <<'EOF'
import json, sys
path, cg = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
spec["process"]["args"] = ["true"]
spec["process"]["terminal"] = False
ns = spec["linux"].setdefault("namespaces", [])
if not any(n["type"] == "network" for n in ns):
    ns.append({"type": "network"})
spec["linux"]["cgroupsPath"] = cg
json.dump(spec, open(path, "w"), indent=2)
EOF
RUNC="runc --root $TMP/runc-state run -b $BUNDLE bench"
# A foreground `runc run` deletes the container on exit, so a fixed id is reusable.
for _ in 1 2; do $RUNC </dev/null; done

# --- measure --------------------------------------------------------------------
median_ms() { # $1 = name, $2 = command string
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
A=$(median_ms runtimectl "env $HOSTENV $RTC run --rm busybox true")
B=$(median_ms runc "$RUNC")

printf '\nstart latency (median of %s runs, ms)\n' "$RUNS"
printf '%-36s %6s\n' "runtimectl run --rm busybox true" "$A" "runc run (bare, same bundle)" "$B"
printf '%-36s %6s\n' "ratio runtimectl/runc" "$(python3 -c "print('%.2f' % ($A/$B))")"
