#!/usr/bin/env python3
"""kernel-floor.py ROOTFS CGROUP [DIR... | --template FILE]: one
container's worth of kernel work and nothing else, the floor under a
runtime's start.

No runtime, no daemon, no config, and no helper binary that reads the mount
table: system calls only. The namespaces a container gets (mount, network,
pid, ipc, uts), a cgroup directory in every hierarchy with the process moved
in, the mounts a container has (proc, sysfs, a tmpfs /dev with devpts, shm
and mqueue), pivot_root into ROOTFS (a busybox rootfs), exec `true`, then
the cgroups go. Each DIR is detached from the new mount namespace at once,
with every mount below it, as runtimed's shim detached the other
containers' mounts before it had a template; with --template, the mount
namespace is a copy of FILE's (runtimed's run/mount-template, which has
none of them), as the shim's is now. bench/scale.sh times it with 0 and N
containers running: what it gains at scale is the kernel's, which no
runtime avoids.
"""
import ctypes
import os
import sys
import time
import traceback

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 1 << 18
MNT_DETACH = 2
# pivot_root has no libc wrapper; its number is per architecture.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)

libc = ctypes.CDLL(None, use_errno=True)


def check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src, target, fstype, flags=0, data=None):
    enc = lambda s: s.encode() if s is not None else None
    check(libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def cgroup_dirs(name):
    """One directory per v1 hierarchy, or one in the cgroup v2 tree."""
    root = "/sys/fs/cgroup"
    if os.path.exists(f"{root}/cgroup.controllers"):
        return [f"{root}/{name}"]
    return [f"{root}/{d}/{name}" for d in sorted(os.listdir(root)) if not os.path.islink(f"{root}/{d}")]


def make_cgroups(dirs):
    for d in dirs:
        os.makedirs(d, exist_ok=True)
        if "/cpuset/" in d:  # a cpuset takes no task until it has cpus and mems
            for f in ("cpus", "mems"):
                with open(f"{os.path.dirname(d)}/cpuset.{f}") as src, open(f"{d}/cpuset.{f}", "w") as dst:
                    dst.write(src.read())


def child(rootfs, cgroups, slim, template):
    """Pid 1 of the new namespaces: into the cgroups, mounts, pivot, exec.
    The other namespaces are made here, as a runtime's init makes them:
    the parent keeps the host's root to remove the cgroups from."""
    if template:
        fd = os.open(template, os.O_RDONLY | os.O_CLOEXEC)
        check(libc.setns(fd, CLONE_NEWNS), f"setns {template}")
        os.close(fd)
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    for d in slim:
        check(libc.umount2(d.encode(), MNT_DETACH), f"detach {d}")
    for d in cgroups:
        with open(f"{d}/cgroup.procs", "w") as f:
            f.write("0")
    os.chdir(rootfs)
    mount(".", ".", None, MS_BIND | MS_REC)
    os.chdir(rootfs)
    mount("proc", "proc", "proc")
    mount("sysfs", "sys", "sysfs")
    mount("tmpfs", "dev", "tmpfs", 0, "mode=755")
    for d in ("pts", "shm", "mqueue"):
        os.mkdir(f"dev/{d}")
    mount("devpts", "dev/pts", "devpts", 0, "newinstance")
    mount("tmpfs", "dev/shm", "tmpfs")
    mount("mqueue", "dev/mqueue", "mqueue")
    os.makedirs(".old", exist_ok=True)
    check(libc.syscall(SYS_PIVOT_ROOT, b".", b".old"), "pivot_root")
    check(libc.umount2(b"/.old", MNT_DETACH), "umount /.old")
    os.chdir("/")
    os.execv("/bin/true", ["true"])


def main():
    rootfs, name, slim, template = sys.argv[1], sys.argv[2], sys.argv[3:], None
    if slim[:1] == ["--template"]:
        slim, template = [], slim[1]
    if SYS_PIVOT_ROOT is None:
        sys.exit(f"kernel-floor.py: no pivot_root number for {os.uname().machine}")
    cgroups = cgroup_dirs(name)
    make_cgroups(cgroups)
    check(libc.unshare(CLONE_NEWPID), "unshare")  # the child is its pid 1
    pid = os.fork()
    if pid == 0:
        try:
            child(rootfs, cgroups, slim, template)
        except BaseException:  # imported already: after pivot_root no import works
            traceback.print_exc()
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    for d in cgroups:
        for _ in range(100):  # the exited task may linger a moment
            try:
                os.rmdir(d)
                break
            except OSError:
                time.sleep(0.001)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
