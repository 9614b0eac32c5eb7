#!/usr/bin/env bash
# The whole test suite, from a fresh clone, as root: installs what it needs,
# builds, and runs unit and integration tests (each integration test brings
# up its own network namespace and daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "tests/run.sh must run as root (namespaces, mounts, cgroups)"; exit 1; }
scripts/install-deps.sh
if [ ! -x .venv-tests/bin/python ] || ! .venv-tests/bin/python -c 'import grpc_tools, grpc_health, grpc_reflection' 2>/dev/null; then
  python3 -m venv .venv-tests
  .venv-tests/bin/pip install -q grpcio grpcio-tools grpcio-health-checking grpcio-reflection
fi
# The style gate: one format (rustfmt.toml) and no clippy warning. (Both
# come with rustup's default profile; a toolchain without them says so.)
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check || { echo "tests/run.sh: code is not formatted; run cargo fmt --all"; exit 1; }
else
  echo "tests/run.sh: rustfmt is not installed; format check skipped"
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --quiet -- -D warnings
else
  echo "tests/run.sh: clippy is not installed; lint check skipped"
fi
cargo build --workspace --bins
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast -- --test-threads "${TEST_THREADS:-4}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# Every test cleans up after itself; prove it.
# (A socket keeper leaves within a second of its daemon's directory.)
sleep 1
leaks=$( (ip netns list | grep -E '^(rt|ext|ul)[0-9]+x' || true; grep -E ' /tmp/rt[0-9]+x' /proc/self/mountinfo || true
          pgrep -a -f 'etcd --name e1 --data-dir /tmp/etcd[0-9]+x' || true
          pgrep -a -f 'runtimed (keeper|shim run) .*/tmp/rt[0-9]+x' || true) | head -5)
if [ -n "$leaks" ]; then echo "tests leaked resources:"; echo "$leaks"; exit 1; fi
echo "no leaked namespaces, mounts, shims, keepers or etcd servers"
# The multi-node demo's Vagrantfile and scripts (no VMs are started).
vagrant/check.sh || status=1
# One closing line for the whole workspace (cargo prints one per target).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
