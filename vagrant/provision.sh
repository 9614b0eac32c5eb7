#!/usr/bin/env bash
# Provisions one demo VM (run as root by the Vagrantfile; safe to re-run with
# `vagrant provision`):
#   provision.sh ADDRESS ROLE [ETCD_ADDRESS [BIN_DIR]]
#     ADDRESS       this node's address on the private network (--advertise)
#     ROLE          "store" (also runs etcd, listening on ADDRESS:2379) or "worker"
#     ETCD_ADDRESS  where etcd listens (default 192.168.56.11)
#     BIN_DIR       a directory in the VM holding prebuilt runtimed and
#                   runtimectl (built once on a Linux x86_64 host and synced
#                   in by the Vagrantfile, see RUNTIMED_VAGRANT_BIN); empty:
#                   build them here
# Installs the packages that are missing (none with the box of box/build.sh,
# whose VMs have no package mirror), then either installs the prebuilt
# binaries or installs Rust (rustup) and builds the workspace from /runtime
# (target dir outside the synced folder); installs runtimed and runtimectl
# into /usr/local/bin, and runs runtimed under systemd as a member of the
# cluster.
set -euo pipefail

ADDR=${1:?usage: provision.sh ADDRESS store|worker [ETCD_ADDRESS [BIN_DIR]]}
ROLE=${2:?usage: provision.sh ADDRESS store|worker [ETCD_ADDRESS [BIN_DIR]]}
ETCD_ADDR=${3:-192.168.56.11}
BIN_DIR=${4:-}
case $ROLE in store | worker) ;; *) echo "ROLE must be store or worker, not $ROLE" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

SRC=/runtime
export CARGO_TARGET_DIR=/var/cache/runtime-target
export HOME=/root RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo
export PATH=$CARGO_HOME/bin:$PATH
export DEBIAN_FRONTEND=noninteractive
NODE=$(hostname -s)
say() { echo "==> [$NODE] $*"; }

# --- packages ----------------------------------------------------------------------
# Runtime: nftables, iproute2, busybox-static (the built-in busybox image),
# etcd-client (etcdctl); curl and python3 for demo.sh.
pkgs=(nftables iproute2 busybox-static etcd-client curl ca-certificates python3)
# protobuf-compiler: etcd-client's build script needs protoc.
[ -z "$BIN_DIR" ] && pkgs+=(build-essential pkg-config protobuf-compiler libseccomp-dev)
[ "$ROLE" = store ] && pkgs+=(etcd-server)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    say "packages already installed: ${pkgs[*]}"
fi

# --- etcd (the cluster store) on the store node ----------------------------------------
if [ "$ROLE" = store ]; then
    say "configuring etcd on $ADDR:2379"
    # Read by Debian's etcd.service (EnvironmentFile=-/etc/default/etcd).
    # Loopback too, so etcdctl on this VM works without flags.
    cat >/etc/default/etcd <<EOF
# Written by /runtime/vagrant/provision.sh
ETCD_LISTEN_CLIENT_URLS="http://$ADDR:2379,http://127.0.0.1:2379"
ETCD_ADVERTISE_CLIENT_URLS="http://$ADDR:2379"
EOF
    systemctl enable etcd >/dev/null 2>&1 || true
    systemctl restart etcd
    for _ in $(seq 60); do
        curl -fsS "http://$ADDR:2379/health" 2>/dev/null | grep -q '"health":"true"' && break
        sleep 1
    done
    curl -fsS "http://$ADDR:2379/health" | grep -q '"health":"true"' \
        || { journalctl -u etcd --no-pager -n 50 >&2; echo "etcd is not healthy" >&2; exit 1; }
fi

if [ -n "$BIN_DIR" ]; then
    # --- prebuilt binaries ---------------------------------------------------------------
    for b in runtimed runtimectl; do
        [ -x "$BIN_DIR/$b" ] || { echo "$BIN_DIR/$b is missing (RUNTIMED_VAGRANT_BIN on the host?)" >&2; exit 1; }
    done
    say "installing the prebuilt runtimed and runtimectl from $BIN_DIR"
    # A running runtimed keeps its binary busy: install copies to a temp name and renames.
    install -m 0755 "$BIN_DIR/runtimed" "$BIN_DIR/runtimectl" /usr/local/bin/
else
    # --- swap: a release build of the workspace does not fit in 2 GB on 2 jobs ------------------
    if ! swapon --show=NAME --noheadings | grep -q .; then
        say "adding a 2 GB swap file"
        if [ ! -f /swapfile ]; then
            fallocate -l 2G /swapfile 2>/dev/null || dd if=/dev/zero of=/swapfile bs=1M count=2048 status=none
            chmod 600 /swapfile
            mkswap /swapfile >/dev/null
        fi
        swapon /swapfile
        grep -q '^/swapfile ' /etc/fstab || echo '/swapfile none swap sw 0 0' >>/etc/fstab
    fi

    # --- Rust ---------------------------------------------------------------------------
    if ! command -v cargo >/dev/null; then
        say "installing Rust (rustup, stable, minimal profile)"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
            | sh -s -- -y --profile minimal --default-toolchain stable --no-modify-path >/dev/null
    fi
    cargo --version

    # --- build and install --------------------------------------------------------------------
    [ -f "$SRC/Cargo.toml" ] || { echo "$SRC is not the repository (synced folder missing?)" >&2; exit 1; }
    say "building the workspace (release) in $CARGO_TARGET_DIR; this takes a while"
    (cd "$SRC" && cargo build --release --workspace --bins)
    # A running runtimed keeps its binary busy: install copies to a temp name and renames.
    install -m 0755 "$CARGO_TARGET_DIR/release/runtimed" "$CARGO_TARGET_DIR/release/runtimectl" /usr/local/bin/
fi

# --- runtimed under systemd --------------------------------------------------------------------
say "starting runtimed: --cluster-store etcd://$ETCD_ADDR:2379 --advertise $ADDR --node-name $NODE"
AFTER_ETCD=""
[ "$ROLE" = store ] && AFTER_ETCD=" etcd.service"
cat >/etc/systemd/system/runtimed.service <<EOF
# Written by /runtime/vagrant/provision.sh
[Unit]
Description=runtimed container runtime daemon (overlay demo, node $NODE)
After=network-online.target$AFTER_ETCD
Wants=network-online.target
# Other nodes may come up before etcd on node1: keep retrying.
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/local/bin/runtimed --cluster-store etcd://$ETCD_ADDR:2379 --advertise $ADDR --node-name $NODE
Restart=always
RestartSec=2
# Containers (their shims) outlive a daemon restart, as with docker.
KillMode=process
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable runtimed >/dev/null 2>&1
systemctl restart runtimed

for _ in $(seq 120); do runtimectl version >/dev/null 2>&1 && break; sleep 1; done
if ! runtimectl version >/dev/null 2>&1; then
    journalctl -u runtimed --no-pager -n 50 >&2
    echo "runtimed does not answer on $NODE" >&2
    exit 1
fi
runtimectl version
runtimectl node ls || say "runtimectl node ls failed (is etcd on $ETCD_ADDR up yet?)"
say "done"
