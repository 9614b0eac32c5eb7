#!/usr/bin/env bash
# Fresh machine to a running container: installs packages, builds, starts
# runtimed in the background (unless one is already serving) and runs a
# container through runtimectl.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0"; exit 1; }
scripts/install-deps.sh
cargo build --release --bins
install -m 0755 target/release/runtimed target/release/runtimectl /usr/local/bin/
if ! runtimectl version >/dev/null 2>&1; then
  echo "starting runtimed (log: /var/log/runtimed.log)"
  nohup runtimed >>/var/log/runtimed.log 2>&1 &
  for _ in $(seq 1 100); do runtimectl version >/dev/null 2>&1 && break; sleep 0.1; done
fi
runtimectl version
echo "+ runtimectl run --rm busybox echo hello from a container"
runtimectl run --rm busybox echo hello from a container
