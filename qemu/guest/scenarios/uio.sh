# uio: the same through uio_pci_generic, the e1000e via /dev/uioN and the first igb via sysfs
# resource0.
. /lib/nicclock-guest.sh
modprobe uio_pci_generic
E1000E=$(bdf_of 8086 10d3)
IGB=$(bdf_of 8086 10c9 | head -1)
bind_to uio_pci_generic "$E1000E"
bind_to uio_pci_generic "$IGB"
UIO=$(basename "$(ls -d /sys/bus/pci/devices/"$E1000E"/uio/uio* | head -1)")
[ -n "$UIO" ] && pass "e1000e is /dev/$UIO" || { fail "no uio node for $E1000E"; exit 1; }

expect_probe "probe via uio: model 82574" "uio:/dev/$UIO" model 82574
expect_probe "probe via sysfs: model 82576" "sysfs:$IGB" model 82576

nicclockd --device "uio:/dev/$UIO" --page-name e1000e 2> /tmp/e1000e.log &
D1=$!
nicclockd --device "sysfs:$IGB" --page-name igb 2> /tmp/igb.log &
D2=$!
for p in e1000e igb; do
  expect_locked "$p"
  expect_in_bound "$p"
done
expect "camera as uid 1000 stamps every frame (exit 0: none unstamped)" as_reader camera --page igb --frames 10
expect_clean_stop "$D1" "$D2"
