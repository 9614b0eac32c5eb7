#!/usr/bin/env bash
# Installs the Debian packages runtimed and its tests need (idempotent).
set -euo pipefail
# protobuf-compiler: the etcd-client crate's build script; etcd-server and etcd-client
# (etcdctl): the overlay tests' cluster store; gzip, zstd, xz-utils: the
# compressed-import tests.
PKGS=(busybox-static libseccomp-dev pkg-config nftables iproute2 util-linux tar python3-venv protobuf-compiler etcd-server etcd-client procps gzip zstd xz-utils)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # Tests start etcd themselves inside their namespaces; the packaged
  # service is not needed.
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi
