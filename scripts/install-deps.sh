#!/usr/bin/env bash
# Installs the Debian packages runtimed and its tests need (idempotent).
set -euo pipefail
# protobuf-compiler: the etcd-client crate's build script; etcd-server and etcd-client
# (etcdctl): the overlay tests' cluster store; gzip, zstd, xz-utils: the
# compressed-import tests; docker-registry (a real OCI registry), skopeo (pushes
# test images to it and reads `save` archives), apache2-utils (htpasswd, for
# the registry's basic auth), curl (waits for it to serve) and openssl (keys and
# signatures of the test token server, for bearer-token auth): the pull tests;
# podman: loads what `save` writes, as another engine would;
# libc6, libcrypt1, libpcre2-8-0, libssl3 and zlib1g: the libraries of the
# nginx the image tests put in an image (below).
PKGS=(busybox-static libseccomp-dev pkg-config nftables iproute2 util-linux tar python3-venv protobuf-compiler etcd-server etcd-client procps gzip zstd xz-utils docker-registry skopeo apache2-utils curl openssl podman libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g)
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
# Debian's nginx package for the image tests, which build a web server image
# from it: downloaded, never installed (installing would start a server on
# the host's port 80).
NGINX_DEBS=/var/cache/runtimed-tests
if ! compgen -G "$NGINX_DEBS/nginx_*.deb" >/dev/null; then
  mkdir -p "$NGINX_DEBS"
  get() { (cd "$NGINX_DEBS" && apt-get download -qq -o APT::Sandbox::User=root nginx); }
  get || { apt-get update -qq && get; }
fi
