# Booting the lab VM: q35 + intel-iommu (VFIO needs it: Debian kernels have no VFIO no-IOMMU) under
# TCG (KVM is unusable here), one e1000e and two igbs on one hub (the second igb behind a
# pcie-root-port with native PCIe hot-plug, so the guest's pciehp handles device_del), a QMP
# socket for hot-plug. Guest lines starting NICCLOCK- carry the verdict.
# The guest is told its TSC is reliable: under TCG the TSC is QEMU's virtual clock, the same on
# every vCPU, but the kernel's watchdog sees TCG's stalls and falls back to the HPET, which makes
# every clock read (the kernel's, phc2sys' and ours alike) an emulated MMIO access of ~1.5 us.

# The machine every lab guest runs on: kernel-append-extra, initrd, then the guest's own netdevs and
# devices (the pcie-root-port rp1 for hot-plug is always there). NICCLOCK_VM_QEMU_EXTRA adds QEMU
# options, split on spaces (e.g. `-perfmap`: /tmp/perf-PID.map names each translated block by its
# guest PC, for `perf record -p PID` on the host; qemu/README.md, "PTP slave").
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
    ${NICCLOCK_VM_QEMU_EXTRA:-} "$@"
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

# The lab guest with one more e1000e (nic4, 52:54:00:00:00:05) on the same hub, for a kernel-driver
# ptp4l pair beside the NICs the other scenarios use (ptp-pair). A scenario asks for it with the
# line `# vm-boot: vm_qemu_extra_e1000e` (see vm_scenario_boot); every other one boots as vm_qemu.
vm_qemu_extra_e1000e() {
  local extra=$1
  shift
  vm_qemu "$extra" -netdev hubport,id=n4,hubid=0 -device e1000e,romfile=,netdev=n4,mac=52:54:00:00:00:05,id=nic4 "$@"
}

# The boot function scenario $1 asks for by a `# vm-boot: NAME` line (one of the vm_qemu* above),
# else vm_qemu.
vm_scenario_boot() {
  local b
  b=$(sed -n 's/^# vm-boot: *\(vm_qemu[a-z0-9_]*\) *$/\1/p' "$here/guest/scenarios/$1.sh" 2> /dev/null | head -1)
  echo "${b:-vm_qemu}"
}

vm_boot_shell() {
  vm_qemu ""
}

# Sends one QMP command (a JSON object) to the VM's monitor socket $1 and prints QEMU's answer.
# A device_del is complete only when QEMU says so: the guest's pciehp removes the device, powers the
# slot off, waits 1 s and turns the power indicator off; only then does QEMU finalise the removal
# (free the slot, the id and the netdev) and emit DEVICE_DELETED. (A guest watching the slot's
# power read 0 and then sent device_add met "slot 0 function 0 already occupied".) So for a
# device_del this keeps the connection until the DEVICE_DELETED event for that id arrives (at most
# NICCLOCK_VM_QMP_TIMEOUT s, default 60); the runner handles the guest's next request only after
# that, so a following device_add never meets a half-deleted device. Fails (exit 1, saying which)
# on an error reply or no answer or event in time. A VM that powers off while a removal is still
# being finalised (the scenario's last request) has no next request to protect: noted, not failed.
vm_qmp() {
  python3 - "$1" "$2" "${NICCLOCK_VM_QMP_TIMEOUT:-60}" <<'PY'
import json, socket, sys, time
path, request, limit = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
cmd = request.get("execute")
gone = request.get("arguments", {}).get("id") if cmd == "device_del" else None
deleted = False

def fail(why):
    print(f"vm: QMP {cmd} FAILED: {why}", file=sys.stderr)
    sys.exit(1)

s = socket.socket(socket.AF_UNIX)
s.settimeout(limit)
s.connect(path)
f = s.makefile("rw")

def receive(waiting_for):
    global deleted
    left = deadline - time.monotonic()
    if left <= 0:
        fail(f"no {waiting_for} within {limit:.0f} s")
    s.settimeout(left)
    try:
        line = f.readline()
    except socket.timeout:
        fail(f"no {waiting_for} within {limit:.0f} s")
    if not line:
        if reply is not None and gone is not None:
            print(f"vm: qmp QEMU exited (the VM powered off) before DEVICE_DELETED for {gone!r}", file=sys.stderr)
            sys.exit(0)
        fail(f"QEMU closed the monitor before {waiting_for}")
    msg = json.loads(line)
    if msg.get("event") == "DEVICE_DELETED" and gone is not None and msg.get("data", {}).get("device") == gone:
        deleted = True
    return msg

reply = None
receive("the QMP greeting")
for c in ({"execute": "qmp_capabilities"}, request):
    reply = None
    f.write(json.dumps(c) + "\n")
    f.flush()
    while True:
        reply = receive(f"an answer to {c['execute']}")
        if "return" in reply or "error" in reply:
            break
    if "error" in reply:
        fail(f"{json.dumps(c)} -> {reply['error'].get('desc', reply['error'])}")
print("vm: qmp", json.dumps(request), "->", reply, file=sys.stderr)
t0 = time.monotonic()
while gone is not None and not deleted:
    receive(f"DEVICE_DELETED for {gone!r} (the guest did not release the device)")
if gone is not None:
    print(f"vm: qmp DEVICE_DELETED {gone} {time.monotonic() - t0:.1f}s after device_del", file=sys.stderr)
PY
}

# Runs scenario $1 in a fresh VM booted by function $2 (default: the one the scenario asks for,
# vm_scenario_boot; it, vm_qemu and vm_machine must need nothing but $cache). Every stage of the console pipeline is line-buffered (sed -u, tee,
# read), so a NICCLOCK-HOST request reaches QEMU's monitor as soon as the guest prints it.
# NICCLOCK_VM_APPEND adds kernel parameters (scenario settings, e.g. nicclock.vs_seconds=30),
# NICCLOCK_VM_TIMEOUT the seconds before the VM is killed.
#
# A guest that has not reached its init (the NICCLOCK-BOOT line, ~5 s into a normal boot, ~30 s in
# the systemd guest) within NICCLOCK_VM_BOOT_TIMEOUT seconds (default 150) is killed and booted
# once more, saying so: under TCG a guest kernel very rarely stalls before its first console line
# (seen once in CI: 400 s of silence after the firmware's "Booting from ROM"), which tests nothing
# of ours. A second stall fails the scenario.
vm_run_scenario() {
  local s=$1 boot=${2:-$(vm_scenario_boot "$1")} rc
  vm_run_attempt "$s" "$boot" && return 0 || rc=$?
  [ "$rc" = 3 ] || return "$rc"
  echo "vm: scenario $s: the guest stalled before its init (no NICCLOCK-BOOT in ${NICCLOCK_VM_BOOT_TIMEOUT:-150}s); booting it once more" >&2
  vm_run_attempt "$s" "$boot"
}

# One boot of scenario $1 by function $2: 0 passed, 3 the guest stalled before its init, 1 otherwise.
vm_run_attempt() {
  local s=$1 boot=$2 timeout=${NICCLOCK_VM_TIMEOUT:-400} boot_timeout=${NICCLOCK_VM_BOOT_TIMEOUT:-150}
  local log="$cache/logs/$s.log" sock="$cache/qmp-$s.sock" hostfail="$cache/logs/$s.host-failures"
  local stalled="$cache/logs/$s.stalled"
  mkdir -p "$cache/logs"
  rm -f "$sock" "$hostfail" "$stalled"
  : > "$log"
  echo "vm: === scenario $s (timeout ${timeout}s, log $log)"
  local start=$SECONDS
  # The boot watchdog: waits for the guest's NICCLOCK-BOOT line in the console log (the event
  # itself, through tail -F), at most boot_timeout s; on none, marks the stall and kills this VM
  # (found by its own QMP socket, so no other VM on the machine).
  (
    if ! timeout "$boot_timeout" grep -q -m1 "NICCLOCK-BOOT uptime" < <(tail -n +1 -F "$log" 2>/dev/null); then
      if ! grep -q "NICCLOCK-BOOT uptime" "$log"; then
        : > "$stalled"
        pkill -f -- "-qmp unix:$sock," || true
      fi
    fi
  ) &
  local watchdog=$!
  set +e
  timeout --kill-after=10 "$timeout" bash -c "$(declare -f vm_machine vm_qemu "$boot"); cache='$cache'; $boot 'nicclock.scenario=$s ${NICCLOCK_VM_APPEND:-}' -qmp unix:$sock,server=on,wait=off" \
    < /dev/null 2>&1 | sed -u 's/\r//g; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$log" | while IFS= read -r line; do
      printf '  [%s] %s\n' "$s" "$line"
      case $line in
        NICCLOCK-HOST\ *) vm_qmp "$sock" "${line#NICCLOCK-HOST }" || echo "${line#NICCLOCK-HOST }" >> "$hostfail" ;;
      esac
    done
  local rc=${PIPESTATUS[0]}
  set -e
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  pkill -f -- "tail -n \+1 -F $log" 2>/dev/null || true
  local took=$((SECONDS - start))
  if [ -e "$stalled" ]; then
    echo "vm: scenario $s: no NICCLOCK-BOOT after ${boot_timeout}s: the guest stalled before its init (log $log)" >&2
    return 3
  fi
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "vm: scenario $s TIMED OUT after ${timeout}s: the VM was killed (log $log)" >&2
    return 1
  fi
  # Not anchored: a guest line can follow the firmware's unterminated "Booting from ROM...".
  if ! grep -q "NICCLOCK-BOOT uptime" "$log"; then
    echo "vm: scenario $s: the guest never started (qemu exit $rc; log $log)" >&2
    return 1
  fi
  if [ -s "$hostfail" ]; then
    echo "vm: scenario $s FAILED in ${took}s: QEMU's monitor refused or never completed a request:" >&2
    sed 's/^/  /' "$hostfail" >&2
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
