# faults: nicclockd on a device still bound to its kernel driver and on an absent address (clear
# errors, exit 1), and on a device hot-removed while running (QEMU monitor device_del): DEVICE_LOST
# on the page, a waiting reader woken by the event, exit 69.
. /lib/nicclock-guest.sh
modprobe igb && modprobe vfio-pci && modprobe vfio_iommu_type1
IGB2=$(bdf_of 8086 10c9 | sed -n 2p)
[ -n "$IGB2" ] || { fail "the second igb is present"; exit 1; }
i=0
while [ ! -e "/sys/bus/pci/devices/$IGB2/driver" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done

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

bind_to vfio-pci "$IGB2"
nicclockd --device "vfio:$IGB2" --page-name hot 2> /tmp/hot.log &
D=$!
expect_locked hot
as_reader nicclock --page hot events --count 2 --timeout 90 > /tmp/events.txt 2>&1 &
R=$!
sleep 1
# The host's runner sends this to QEMU's monitor: the second igb (id nic2) leaves the machine.
echo 'NICCLOCK-HOST {"execute":"device_del","arguments":{"id":"nic2"}}'
i=0
while kill -0 "$D" 2> /dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$D" 2> /dev/null; then
  fail "nicclockd still running 30 s after device_del"
  dmesg | tail -15
  kill -9 "$D"
fi
wait "$D"
rc=$?
tail -3 /tmp/hot.log
[ $rc = 69 ] && pass "nicclockd exited 69 (device gone)" || fail "nicclockd exit $rc after removal"
expect_output "the log says why" "removing the device" cat /tmp/hot.log
expect_output "the page says DEVICE_LOST" "DEVICE_LOST" nicclock --page hot status
wait "$R"
cat /tmp/events.txt
expect_output "the waiting reader saw DEVICE_LOST" "urgent DEVICE_LOST" cat /tmp/events.txt
i=0
while [ -e "/sys/bus/pci/devices/$IGB2" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ ! -e "/sys/bus/pci/devices/$IGB2" ] && pass "the kernel finished removing $IGB2" || fail "$IGB2 still present"
