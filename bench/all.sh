#!/usr/bin/env bash
# Every benchmark in one run, then one summary table: each of our figures
# beside its reference (runc, podman, the host itself) measured in the same
# run, with the machine's load before and after. Each script's own report
# goes to stderr as it runs; the summary goes to stdout.
# Usage (as root):  bench/all.sh          Env: each script's own (RUNS, N, ...);
# BENCHES to pick some (default: all seven, in the order below).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }
BENCHES=${BENCHES:-"start-latency stdio shim-memory webserver networking scale overlay"}
BENCH_SUMMARY=$(mktemp)
export BENCH_SUMMARY
trap 'rm -f "$BENCH_SUMMARY"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$EPOCHREALTIME
for b in $BENCHES; do
    echo "===== bench/$b.sh" >&2
    if ! "bench/$b.sh" >&2; then
        printf '%s\tfailed (see its output above)\t\t\t\n' "bench/$b.sh" >>"$BENCH_SUMMARY"
    fi
done
python3 - "$BENCH_SUMMARY" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$started" "$EPOCHREALTIME" <<'PY'
import subprocess, sys
path, before, after, t0, t1 = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
print(f"\nsummary: commit {commit}, kernel {kernel}, {cpus} CPUs, load {before} before and {after} after, "
      f"{float(t1) - float(t0):.0f} s in all\n")
head = ["figure", "ours", "reference", "its figure", "ratio", "target"]
table = [head]
for figure, ours, ref, ref_value, target in ((r + [""] * 5)[:5] for r in rows):
    try:
        ratio = f"{float(ours) / float(ref_value):.2f}x"
    except (ValueError, ZeroDivisionError):
        ratio = ""
    table.append([figure, ours, ref, ref_value, ratio, target])
widths = [max(len(row[i]) for row in table) for i in range(len(head))]
for n, row in enumerate(table):
    print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
    if n == 0:
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
PY
