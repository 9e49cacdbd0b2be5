# Shared by the VM suites (sourced): the cache, and one way to boot a guest.
# shellcheck shell=bash

vm_cache=${BERTH_VM_CACHE:-/var/cache/berth-vm}

# vm_boot LOG TIMEOUT_S KERNEL_DIR INITRD APPEND [qemu args...]
# Boots Debian's kernel under TCG (no KVM here) with 2 vCPUs and 2 GiB, the
# serial console on LOG, no reboot on panic or poweroff. Returns qemu's
# status, or 124 when the guest did not power off within TIMEOUT_S.
vm_boot() {
  local log=$1 timeout=$2 kdir=$3 initrd=$4 append=$5
  shift 5
  local accel=tcg,thread=multi
  timeout --foreground -k 5 "$timeout" \
    qemu-system-x86_64 -machine q35 -accel "$accel" -cpu max -smp 2 -m 2048 \
      -nodefaults -no-reboot -display none -serial "file:$log" \
      -kernel "$kdir/vmlinuz" -initrd "$initrd" \
      -append "console=ttyS0 panic=-1 oops=panic $append" \
      -device virtio-rng-pci "$@" </dev/null
}
