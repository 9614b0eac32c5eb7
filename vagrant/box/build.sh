#!/usr/bin/env bash
# Builds a libvirt Vagrant box of Debian 12 for the overlay demo, from Debian
# packages only (no Vagrant Cloud): the VMs of run-here.sh cannot reach any
# package mirror, so everything runtimed needs is in the box already.
#
#   box/build.sh [OUTPUT.box]       (as root; default: $CACHE/runtimed-debian12.box)
#   box/build.sh --metadata DIR     writes only metadata.json and the box's
#                                   Vagrantfile to DIR (no root, no download;
#                                   what CI checks)
#
# The box: a 4 GB qcow2 disk with one ext4 partition and GRUB (BIOS), the
# Debian kernel (its modules include vxlan, bridge, veth, overlay and
# nf_tables, loaded at boot), systemd with hybrid cgroups as on the hosts the
# daemon is tested on, ifupdown + DHCP on eth0 (what Vagrant's Debian guest
# support configures), openssh, sudo, rsync, and runtimed's runtime
# dependencies: nftables, busybox-static (the built-in busybox image),
# iproute2, etcd-server and etcd-client (etcd is installed but disabled; the
# provisioner enables it on the store node), curl and python3 for demo.sh.
# User vagrant (password vagrant, passwordless sudo) with Vagrant's public
# insecure key, as boxes are expected to have.
#
# Cache: $RUNTIMED_VAGRANT_CACHE (default /var/cache/runtimed-vagrant) keeps
# the box and the downloaded .debs. A box is rebuilt only when this script
# changed since it was built (its sha256 is kept beside the box) or with
# REBUILD=1. Mounts live in a private mount namespace and vanish with it; the
# loop device and the work directory are removed on exit, failure or Ctrl-C.
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), BOX_SIZE (4G).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SELF=$HERE/$(basename "$0")
CACHE=${RUNTIMED_VAGRANT_CACHE:-/var/cache/runtimed-vagrant}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SIZE=${BOX_SIZE:-4G}
SUITE=bookworm
# Every package beyond debootstrap's default set.
PACKAGES=(
    linux-image-amd64 grub-pc systemd-sysv udev kmod ifupdown isc-dhcp-client
    openssh-server sudo rsync ca-certificates curl python3 procps less
    nftables busybox-static iproute2 etcd-server etcd-client
)
MODULES=(vxlan bridge veth overlay nf_tables)
KERNEL_CMDLINE="console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0 systemd.unified_cgroup_hierarchy=0"

# metadata.json and the box's own Vagrantfile, into $1.
write_metadata() {
    local dir=$1 gib=${SIZE%G}
    mkdir -p "$dir"
    cat >"$dir/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $gib}
EOF
    cat >"$dir/Vagrantfile" <<'EOF'
# Defaults of the runtimed demo box (vagrant/box/build.sh); the project's
# Vagrantfile may override them.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "kvm"
    lv.disk_bus = "virtio"
    lv.nic_model_type = "virtio"
  end
end
EOF
}

# GRUB goes on the disk from inside a short-lived VM (KVM, or TCG where KVM
# cannot boot a Debian kernel: see accel.sh; no network, no
# disk but this one) booted with the box's own kernel and initramfs: the
# host's kernel may lack partition-table support for loop devices (this
# one does: no CONFIG_MSDOS_PARTITION), so grub-install cannot map the
# filesystem to a partition of the disk here. The VM runs
# /usr/local/sbin/box-finish as init, which installs GRUB, writes grub.cfg
# and powers off.
finish_in_vm() {
    local log=$WORK/finish.log accel cpu=host
    accel=$("$HERE/accel.sh" "$WORK/vmlinuz")
    [ "$accel" = tcg ] && cpu=max
    echo "==> box: GRUB, from a VM booted on the new disk ($accel)"
    timeout 900 qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m 768 -smp 1 \
        -nodefaults -display none -no-reboot -nic none \
        -serial "file:$log" \
        -drive "file=$WORK/disk.raw,format=raw,if=virtio" \
        -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
        -append "root=UUID=$(cat "$WORK/uuid") rw init=/usr/local/sbin/box-finish console=ttyS0 panic=-1" \
        || { tail -40 "$log" >&2; echo "the GRUB VM failed" >&2; return 1; }
    grep -q BOX-FINISH-OK "$log" || { tail -40 "$log" >&2; echo "GRUB was not installed (see above)" >&2; return 1; }
}

if [ "${1:-}" = --metadata ]; then
    dir=${2:?usage: build.sh --metadata DIR}
    write_metadata "$dir"
    exit 0
fi

OUT=${1:-$CACHE/runtimed-debian12.box}
[ "$(id -u)" = 0 ] || { echo "box/build.sh must run as root (debootstrap, loop device, chroot)" >&2; exit 1; }
STAMP=$OUT.sha256
want=$(sha256sum "$SELF" | cut -d' ' -f1)
if [ -z "${REBUILD:-}" ] && [ -f "$OUT" ] && [ -f "$OUT.vmlinuz" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    echo "box/build.sh: $OUT is up to date (REBUILD=1 to build it again)"
    exit 0
fi

# The build itself runs in a private mount namespace (re-executing this
# script there), so its mounts cannot outlive it, whatever happens.
if [ -z "${BOX_BUILD_INNER:-}" ]; then
    "$HERE/../host-deps.sh" debootstrap fdisk qemu-utils e2fsprogs mount util-linux
    mkdir -p "$CACHE/debs" "$(dirname "$OUT")"
    WORK=$(mktemp -d "$CACHE/box-work.XXXXXX")
    LOOP=""
    # shellcheck disable=SC2317  # (a trap)
    cleanup() {
        local rc=$?
        set +e
        [ -f "$WORK/loop" ] && LOOP=$(cat "$WORK/loop")
        [ -n "$LOOP" ] && losetup -d "$LOOP"
        rm -rf "$WORK"
        ((rc)) && echo "box/build.sh: failed (exit $rc)" >&2
        exit "$rc"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    start=$(date +%s)
    export WORK
    BOX_BUILD_INNER=1 unshare --mount --propagation private "$SELF" "$OUT"
    losetup -d "$(cat "$WORK/loop")"
    rm -f "$WORK/loop"
    finish_in_vm
    echo "==> box: qcow2 and box"
    qemu-img convert -O qcow2 "$WORK/disk.raw" "$WORK/box/box.img"
    rm -f "$WORK/disk.raw"
    write_metadata "$WORK/box"
    tar -C "$WORK/box" -cf "$OUT.part" metadata.json Vagrantfile box.img
    mv -f "$OUT.part" "$OUT"
    # Its kernel, for run-here.sh to probe KVM with (box/accel.sh).
    cp "$WORK/vmlinuz" "$OUT.vmlinuz"
    echo "$want" >"$STAMP"
    echo "box/build.sh: built $OUT ($(du -h "$OUT" | cut -f1)) in $(($(date +%s) - start)) s"
    exit 0
fi

# ---- inside the private mount namespace -------------------------------------
say() { echo "==> box: $*"; }
ROOT=$WORK/root
IMG=$WORK/disk.raw
mkdir -p "$ROOT" "$WORK/box"

say "disk: $SIZE, one bootable ext4 partition"
truncate -s "$SIZE" "$IMG"
echo 'start=2048, type=83, bootable' | sfdisk -q "$IMG"
# The partition through a loop device of its own (offset 1 MiB): no
# partition scanning needed from the host's kernel.
LOOP=$(losetup -f --show --offset $((2048 * 512)) --sizelimit $(($(stat -c %s "$IMG") - 2048 * 512)) "$IMG")
echo "$LOOP" >"$WORK/loop"
mkfs.ext4 -q -L root "$LOOP"
UUID=$(blkid -s UUID -o value "$LOOP")
echo "$UUID" >"$WORK/uuid"
mount "$LOOP" "$ROOT"

say "debootstrap $SUITE from $MIRROR (.debs cached in $CACHE/debs)"
debootstrap --arch=amd64 --cache-dir="$CACHE/debs" \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap.log" >&2; tail -30 "$ROOT/debootstrap/debootstrap.log" >&2 2>/dev/null; exit 1; }

mount --bind /dev "$ROOT/dev"
mount -t devpts devpts "$ROOT/dev/pts"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
in_root() { LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$ROOT" "$@"; }

say "system configuration"
cat >"$ROOT/etc/fstab" <<EOF
UUID=$UUID / ext4 errors=remount-ro 0 1
EOF
echo runtimed-box >"$ROOT/etc/hostname"
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.1.1 runtimed-box
::1 localhost ip6-localhost ip6-loopback
EOF
cat >"$ROOT/etc/network/interfaces" <<'EOF'
# The first NIC (Vagrant's management network) by DHCP; Vagrant appends the
# private network's interfaces.
source /etc/network/interfaces.d/*
auto lo
iface lo inet loopback
allow-hotplug eth0
iface eth0 inet dhcp
EOF
printf '%s\n' "# runtimed (overlay demo): loaded at boot" "${MODULES[@]}" >"$ROOT/etc/modules-load.d/runtimed.conf"
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
# etcd only on the store node (provision.sh enables it there).
in_root systemctl disable etcd.service >/dev/null 2>&1 || true
in_root systemctl enable systemd-timesyncd.service >/dev/null 2>&1 || true
# No DNS lookups of clients slowing each `vagrant ssh` down.
echo "UseDNS no" >"$ROOT/etc/ssh/sshd_config.d/vagrant.conf"
# Fresh host keys on every VM's first boot, not one set shared by all boxes.
rm -f "$ROOT"/etc/ssh/ssh_host_*
cat >"$ROOT/etc/systemd/system/ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
EOF
in_root systemctl enable ssh-hostkeys.service >/dev/null 2>&1

say "user vagrant (insecure key, passwordless sudo)"
in_root useradd -m -s /bin/bash -U vagrant
echo vagrant:vagrant | in_root chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$ROOT/etc/sudoers.d/vagrant"
chmod 0440 "$ROOT/etc/sudoers.d/vagrant"
install -d -m 0700 -o 1000 -g 1000 "$ROOT/home/vagrant/.ssh"
key=""
for k in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
    [ -f "$k" ] && { key=$k; break; }
done
[ -n "$key" ] || { echo "Vagrant's insecure public key (keys/vagrant.pub) not found: is vagrant installed?" >&2; exit 1; }
install -m 0600 -o 1000 -g 1000 "$key" "$ROOT/home/vagrant/.ssh/authorized_keys"

say "GRUB on the disk"
cat >>"$ROOT/etc/default/grub" <<EOF
# vagrant/box/build.sh
GRUB_TIMEOUT=0
GRUB_CMDLINE_LINUX="$KERNEL_CMDLINE"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200"
EOF
# Run as init by finish_in_vm (outside this namespace, once unmounted).
cat >"$ROOT/usr/local/sbin/box-finish" <<'EOF'
#!/bin/sh
# vagrant/box/build.sh: installs GRUB on this disk, then powers off.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
uuid=$(sed -n 's/^UUID=\([^ ]*\) .*/\1/p' /etc/fstab)
if grub-install --target=i386-pc /dev/vda && update-grub; then
    # No udev here: grub-mkconfig named the partition /dev/vda1.
    sed -i "s|root=/dev/vda1|root=UUID=$uuid|g" /boot/grub/grub.cfg
    grep -q "root=UUID=$uuid" /boot/grub/grub.cfg && echo BOX-FINISH-OK
fi
rm -f /usr/local/sbin/box-finish
sync
mount -o remount,ro /
echo o >/proc/sysrq-trigger
sleep 10
EOF
chmod 755 "$ROOT/usr/local/sbin/box-finish"
cp "$ROOT/boot/vmlinuz-"* "$WORK/vmlinuz"
cp "$ROOT/boot/initrd.img-"* "$WORK/initrd.img"
for m in "${MODULES[@]}"; do
    find "$ROOT/lib/modules" -name "$m.ko*" | grep -q . || { echo "kernel module $m missing from the box" >&2; exit 1; }
done

in_root apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/tmp/* "$ROOT/etc/machine-id"
touch "$ROOT/etc/machine-id"   # systemd makes a new id on each VM's first boot
umount "$ROOT/dev/pts" "$ROOT/dev" "$ROOT/proc" "$ROOT/sys" "$ROOT"
sync

