#!/bin/sh
# kernel-floor.sh ROOTFS CGROUP: one container's worth of kernel work and
# nothing else, the floor under any runtime's start. No runtime, no daemon,
# no config: util-linux `unshare` makes the namespaces a container gets
# (mount, network, pid, ipc, uts), a cgroup directory is made in every
# hierarchy and the process moved in, the mounts a container has (proc,
# sysfs, tmpfs /dev with devpts, shm and mqueue), pivot_root into ROOTFS
# (a busybox_rootfs), `true`, then the cgroups go. bench/scale.sh times
# it with 0 and N containers running: what it gains at scale is the
# kernel's, and any runtime pays it.
set -eu
rootfs=$1
cg=$2
# One directory per v1 hierarchy, or the one cgroup v2 tree.
dirs=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d)
[ -f /sys/fs/cgroup/cgroup.controllers ] && dirs=/sys/fs/cgroup
for d in $dirs; do mkdir -p "$d/$cg"; done
# A cpuset takes no task until it has cpus and memory nodes.
for f in cpus mems; do
    [ -f "/sys/fs/cgroup/cpuset/$cg/cpuset.$f" ] && cat "/sys/fs/cgroup/cpuset/cpuset.$f" >"/sys/fs/cgroup/cpuset/$cg/cpuset.$f"
done
# The shell inside is pid 1 of its namespace: `echo 0` moves the writer.
# shellcheck disable=SC2016 # expanded by that shell
DIRS=$dirs CG=$cg unshare --mount --net --pid --ipc --uts --fork --propagation private \
    /bin/sh -ec '
    for d in $DIRS; do echo 0 >"$d/$CG/cgroup.procs"; done
    cd "$1"
    mount --bind . .
    cd "$1"
    mount -t proc proc proc
    mount -t sysfs sysfs sys
    mount -t tmpfs -o mode=755 tmpfs dev
    mkdir dev/pts dev/shm dev/mqueue
    mount -t devpts -o newinstance devpts dev/pts
    mount -t tmpfs tmpfs dev/shm
    mount -t mqueue mqueue dev/mqueue
    mkdir -p .old
    pivot_root . .old
    umount -l /.old
    exec /bin/true' floor "$rootfs"
for d in $dirs; do
    rmdir "$d/$cg" 2>/dev/null || { sleep 0.01 && rmdir "$d/$cg"; }
done
