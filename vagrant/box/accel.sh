#!/usr/bin/env bash
# Prints the qemu accelerator that boots a given Linux kernel on this
# machine: "kvm" when a KVM guest gets as far as the kernel's first message,
# "tcg" (emulation, much slower) otherwise, with the reason on stderr.
#   box/accel.sh VMLINUZ
# Why: /dev/kvm may be there and still not boot a stock kernel. On machines
# whose KVM is PVM (module kvm_pvm, nested virtualisation without VMX), a
# Debian kernel stops after "Probing EDD (edd=off to disable)... ok" and
# never prints anything else; with TCG it boots. The probe boots the kernel
# with no disk (it panics at once, then qemu exits: -no-reboot), for at most
# 15 s. RUNTIMED_VAGRANT_ACCEL=kvm|tcg skips the probe.
set -euo pipefail

kernel=${1:?usage: box/accel.sh VMLINUZ}
if [ -n "${RUNTIMED_VAGRANT_ACCEL:-}" ]; then echo "$RUNTIMED_VAGRANT_ACCEL"; exit 0; fi
if [ ! -c /dev/kvm ]; then echo "accel.sh: no /dev/kvm: tcg" >&2; echo tcg; exit 0; fi
log=$(mktemp "${TMPDIR:-/tmp}/accel-probe.XXXXXX")
trap 'rm -f "$log"' EXIT
timeout 15 qemu-system-x86_64 -accel kvm -cpu host -m 256 -smp 1 -nodefaults -display none \
    -no-reboot -nic none -serial "file:$log" -kernel "$kernel" \
    -append "console=ttyS0 panic=-1" >/dev/null 2>&1 || true
if grep -q "Linux version" "$log"; then
    echo kvm
else
    pvm=""
    [ -d /sys/module/kvm_pvm ] && pvm=" (this KVM is kvm_pvm)"
    echo "accel.sh: a KVM guest did not boot $kernel within 15 s$pvm; serial output was: $(tr -d '\r' <"$log" | tr '\n' ' ' | cut -c1-200)" >&2
    echo "accel.sh: using tcg (emulation)" >&2
    echo tcg
fi
