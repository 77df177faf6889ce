# Booting the lab VM: q35 + intel-iommu (VFIO needs it: Debian kernels have no VFIO no-IOMMU) under
# TCG (KVM is unusable here), one e1000e and two igbs on one hub (the second igb behind a
# pcie-root-port with native PCIe hot-plug, so the guest's pciehp handles device_del), a QMP
# socket for hot-plug. Guest lines starting NICCLOCK- carry the verdict.
# The guest is told its TSC is reliable: under TCG the TSC is QEMU's virtual clock, the same on
# every vCPU, but the kernel's watchdog sees TCG's stalls and falls back to the HPET, which makes
# every clock read (the kernel's, phc2sys' and ours alike) an emulated MMIO access of ~1.5 us.

# The machine every lab guest runs on: kernel-append-extra, initrd, then the guest's own netdevs and
# devices (the pcie-root-port rp1 for hot-plug is always there).
vm_machine() {
  local extra=$1 initrd=$2 kver
  shift 2
  kver=$(cat "$cache/kver")
  qemu-system-x86_64 -accel tcg -machine q35,kernel-irqchip=split -cpu max -smp 2 -m 1G \
    -nographic -no-reboot \
    -device intel-iommu,intremap=on,caching-mode=on \
    -kernel "$cache/kroot/boot/vmlinuz-$kver" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 intel_iommu=on iommu=pt tsc=reliable clocksource=tsc $extra" \
    -global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off \
    -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,hotplug=on \
    "$@"
}

# The busybox lab guest: e1000e and igb on the root bus, the second igb in rp1.
vm_qemu() { # append-extra, then extra qemu args
  local extra=$1
  shift
  [ -s "$cache/initramfs.cpio.gz" ] || { echo "vm: run 'qemu/vm build' first" >&2; return 1; }
  vm_machine "$extra" "$cache/initramfs.cpio.gz" \
    -netdev hubport,id=n0,hubid=0 -netdev hubport,id=n1,hubid=0 -netdev hubport,id=n2,hubid=0 \
    -device e1000e,romfile=,netdev=n0,mac=52:54:00:00:00:01,id=nic0 \
    -device igb,romfile=,netdev=n1,mac=52:54:00:00:00:02,id=nic1 \
    -device igb,romfile=,netdev=n2,mac=52:54:00:00:00:03,bus=rp1,id=nic2 \
    "$@"
}

vm_boot_shell() {
  vm_qemu ""
}

# Sends one QMP command (a JSON object) to the VM's monitor socket.
vm_qmp() {
  python3 - "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()  # greeting
for cmd in ({"execute": "qmp_capabilities"}, json.loads(sys.argv[2])):
    f.write(json.dumps(cmd) + "\n"); f.flush()
    while True:
        reply = json.loads(f.readline())
        if "return" in reply or "error" in reply:
            break
print("vm: qmp", sys.argv[2], "->", reply, file=sys.stderr)
PY
}

# Runs scenario $1 in a fresh VM booted by function $2 (default vm_qemu; it and vm_machine must
# need nothing but $cache). Every stage of the console pipeline is line-buffered (sed -u, tee,
# read), so a NICCLOCK-HOST request reaches QEMU's monitor as soon as the guest prints it.
# NICCLOCK_VM_APPEND adds kernel parameters (scenario settings, e.g. nicclock.vs_seconds=30),
# NICCLOCK_VM_TIMEOUT the seconds before the VM is killed.
vm_run_scenario() {
  local s=$1 boot=${2:-vm_qemu} timeout=${NICCLOCK_VM_TIMEOUT:-400}
  local log="$cache/logs/$s.log" sock="$cache/qmp-$s.sock"
  mkdir -p "$cache/logs"
  rm -f "$sock"
  echo "vm: === scenario $s (timeout ${timeout}s, log $log)"
  local start=$SECONDS
  set +e
  timeout --kill-after=10 "$timeout" bash -c "$(declare -f vm_machine "$boot"); cache='$cache'; $boot 'nicclock.scenario=$s ${NICCLOCK_VM_APPEND:-}' -qmp unix:$sock,server=on,wait=off" \
    < /dev/null 2>&1 | sed -u 's/\r//g; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$log" | while IFS= read -r line; do
      printf '  [%s] %s\n' "$s" "$line"
      case $line in
        NICCLOCK-HOST\ *) vm_qmp "$sock" "${line#NICCLOCK-HOST }" ;;
      esac
    done
  local rc=${PIPESTATUS[0]}
  set -e
  local took=$((SECONDS - start))
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "vm: scenario $s TIMED OUT after ${timeout}s: the VM was killed (log $log)" >&2
    return 1
  fi
  # Not anchored: a guest line can follow the firmware's unterminated "Booting from ROM...".
  if ! grep -q "NICCLOCK-BOOT uptime" "$log"; then
    echo "vm: scenario $s: the guest never started (qemu exit $rc; log $log)" >&2
    return 1
  fi
  if grep -q "^NICCLOCK-SCENARIO $s PASS" "$log" && ! grep -q "^NICCLOCK-CHECK FAIL" "$log"; then
    echo "vm: scenario $s PASSED in ${took}s"
    return 0
  fi
  echo "vm: scenario $s FAILED in ${took}s:" >&2
  grep "^NICCLOCK-CHECK FAIL" "$log" >&2 || echo "  (no verdict line: the guest died?)" >&2
  return 1
}
