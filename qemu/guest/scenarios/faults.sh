# faults: nicclockd on a device still bound to its kernel driver and on an absent address (clear
# errors, exit 1), and on a device hot-removed while running (QEMU monitor device_del), once through
# VFIO (the release request) and once through sysfs resource0 (all-ones reads confirmed in config
# space): DEVICE_LOST on the page, a waiting reader woken by the event, exit 69.
. /lib/nicclock-guest.sh
modprobe igb && modprobe vfio-pci && modprobe vfio_iommu_type1
IGB2=$(bdf_of 8086 10c9 | sed -n 2p)
[ -n "$IGB2" ] || { fail "the second igb is present"; exit 1; }
has_driver() { [ -e "/sys/bus/pci/devices/$1/driver" ]; }
present() { [ -e "/sys/bus/pci/devices/$1" ]; }
absent() { [ ! -e "/sys/bus/pci/devices/$1" ]; }
wait_for 5 has_driver "$IGB2" || fail "igb did not bind $IGB2 within 5 s"

out=$(nicclockd --device "vfio:$IGB2" --page-name bound 2>&1)
rc=$?
echo "$out"
[ $rc = 1 ] && echo "$out" | grep -q "kernel driver igb" && echo "$out" | grep -q "driver_override" &&
  pass "a NIC on its kernel driver: exit 1, names igb and the rebind commands" || fail "bound device: exit $rc: $out"

out=$(nicclockd --device vfio:0000:00:1f.6 --page-name absent 2>&1)
rc=$?
echo "$out"
[ $rc = 1 ] && echo "$out" | grep -q "no PCI device 0000:00:1f.6" && pass "an absent address: exit 1, says so" ||
  fail "absent device: exit $rc: $out"

# unplug_and_expect_lost QEMU_ID PAGE WHAT WHY: device_del while nicclockd ($D, logging to
# /tmp/PAGE.log) runs on it: exit 69, WHY in its log, DEVICE_LOST on the page. The host's runner
# handles the guest's next request only once QEMU has reported the removal complete (DEVICE_DELETED).
unplug_and_expect_lost() {
  echo "NICCLOCK-HOST {\"execute\":\"device_del\",\"arguments\":{\"id\":\"$1\"}}"
  wait_exit "$D" "nicclockd ($3) after device_del"
  tail -3 "/tmp/$2.log"
  [ $rc = 69 ] && pass "$3: nicclockd exited 69 (device gone)" || fail "$3: nicclockd exit $rc after removal"
  expect_output "$3: the log says why" "$4" cat "/tmp/$2.log"
  expect_status "$3: the page says DEVICE_LOST" "$2" DEVICE_LOST
}

bind_to vfio-pci "$IGB2"
nicclockd --device "vfio:$IGB2" --page-name hot 2> /tmp/hot.log &
D=$!
expect_locked hot
as_reader nicclock --page hot events --json --count 2 --timeout 90 > /tmp/events.txt 2>&1 &
R=$!
expect_reader_blocked
# The host's runner sends this to QEMU's monitor: the second igb (id nic2) leaves the machine.
unplug_and_expect_lost nic2 hot "vfio" "removing the device"
wait_exit "$R" "the waiting reader"
cat /tmp/events.txt
expect_output "the waiting reader saw DEVICE_LOST" '"kind":"DEVICE_LOST","urgency":"urgent"' cat /tmp/events.txt
if wait_for 10 absent "$IGB2"; then pass "the kernel finished removing $IGB2"; else fail "$IGB2 still present 10 s after nicclockd exited"; fi

# Surprise removal without VFIO: nobody tells nicclockd, it must see it in the registers and
# confirm it in config space. The igb comes back (device_add), goes to uio_pci_generic, nicclockd
# maps its sysfs resource0, and the igb is removed again. The guest cannot see when QEMU has
# finished the first removal (the slot, id and netdev free again); the host can: its runner holds
# these requests until QEMU's DEVICE_DELETED for nic2 (qemu/lib/boot.sh vm_qmp). New ids and a new
# netdev all the same, so this never depends on what QEMU frees.
modprobe uio_pci_generic
echo 'NICCLOCK-HOST {"execute":"netdev_add","arguments":{"type":"hubport","id":"n3","hubid":0}}'
echo 'NICCLOCK-HOST {"execute":"device_add","arguments":{"driver":"igb","id":"nic2b","bus":"rp1","netdev":"n3","romfile":"","mac":"52:54:00:00:00:04"}}'
wait_for 30 present "$IGB2" && wait_for 10 has_driver "$IGB2"
[ -e "/sys/bus/pci/devices/$IGB2" ] && pass "device_add: $IGB2 is back" || { fail "device_add: no $IGB2 after 30 s"; exit 1; }
bind_to uio_pci_generic "$IGB2"
nicclockd --device "sysfs:$IGB2" --page-name hot2 2> /tmp/hot2.log &
D=$!
expect_locked hot2
unplug_and_expect_lost nic2b hot2 "sysfs resource0" "config space no longer answers"
