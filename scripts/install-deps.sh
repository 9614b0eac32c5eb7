#!/usr/bin/env bash
# Installs the Debian packages runtimed and its tests need (idempotent).
set -euo pipefail
# protobuf-compiler: the etcd-client crate's build script; etcd-server and etcd-client
# (etcdctl): the overlay tests' cluster store; gzip, zstd, xz-utils: the
# compressed-import tests; docker-registry (a real OCI registry), skopeo (pushes
# test images to it and reads `save` archives), apache2-utils (htpasswd, for
# the registry's basic auth) and curl (waits for it to serve): the pull tests.
PKGS=(busybox-static libseccomp-dev pkg-config nftables iproute2 util-linux tar python3-venv protobuf-compiler etcd-server etcd-client procps gzip zstd xz-utils docker-registry skopeo apache2-utils curl)
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
  # Likewise the registry's service, which would listen on the host's :5000
  # (systemctl disables it, for systemd and SysV init, even where systemd does
  # not run; `service` stops a SysV-started one).
  if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
    if command -v systemctl >/dev/null; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
    service docker-registry stop >/dev/null 2>&1 || true
  fi
fi
