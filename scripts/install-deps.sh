#!/usr/bin/env bash
# Installs the Debian packages runtimed and its tests need (idempotent).
set -euo pipefail
PKGS=(busybox-static libseccomp-dev pkg-config nftables iproute2 util-linux tar python3-venv)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
