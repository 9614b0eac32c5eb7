#!/usr/bin/env bash
# Fresh machine to a running container: installs packages, builds, starts
# runtimed in the background (unless one is already serving) and runs a
# container through runtimectl.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, mounts, cgroups, nftables)"; exit 1; }
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
# The main job: a web server with a published port, answering on the host.
runtimectl rm -f web >/dev/null 2>&1 || true
echo "+ runtimectl run -d -p 8080:80 --name web busybox httpd -f -p 80 -h /www"
runtimectl run -d -p 8080:80 --name web busybox \
  sh -c 'mkdir -p /www && echo "hello from a runtimed container" > /www/index.html && exec httpd -f -p 80 -h /www'
runtimectl ps
echo "+ GET http://127.0.0.1:8080/"
for _ in $(seq 1 50); do
  body=$(printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 3 127.0.0.1 8080 2>/dev/null | tail -n 1) && [ -n "$body" ] && break
  sleep 0.1
done
echo "$body"
[ "$body" = "hello from a runtimed container" ] || { echo "the published port did not answer"; exit 1; }
