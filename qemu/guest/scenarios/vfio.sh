# vfio: the e1000e and the first igb bound to vfio-pci, nicclockd on each (--steer auto must pick
# software steering from the QEMU quirk); as the unprivileged user, `nicclock now`, the C camera
# example and `nicclock compare` read LOCKED time within the published bound of CLOCK_REALTIME.
. /lib/nicclock-guest.sh
modprobe vfio-pci && modprobe vfio_iommu_type1
E1000E=$(bdf_of 8086 10d3)
IGB=$(bdf_of 8086 10c9 | head -1)
[ -n "$E1000E" ] && [ -n "$IGB" ] || { fail "found the e1000e and igb ($E1000E / $IGB)"; exit 1; }
bind_to vfio-pci "$E1000E"
bind_to vfio-pci "$IGB"
ls -l /dev/vfio

expect_probe "probe e1000e: model 82574" "vfio:$E1000E" model 82574
expect_probe "probe e1000e: QEMU quirk" "vfio:$E1000E" quirk_source "QEMU emulated 82574L (e1000e)"
expect_probe "probe igb: model 82576" "vfio:$IGB" model 82576
expect_probe "probe igb: QEMU quirk, auto -> sw" "vfio:$IGB" steering_auto sw

nicclockd --device "vfio:$E1000E" --page-name e1000e 2> /tmp/e1000e.log &
D1=$!
nicclockd --device "vfio:$IGB" --page-name igb 2> /tmp/igb.log &
D2=$!
for p in e1000e igb; do
  expect_locked "$p"
  expect_output "$p: steering sw from the quirk" "steering sw (timecounter)" cat "/tmp/$p.log"
done
for p in e1000e igb; do
  expect "$p: nicclock now as uid 1000 (exit 0: a usable time)" as_reader nicclock --page "$p" now
  st=$(as_reader nicclock --page "$p" status --json | json_field status)
  [ "$st" = LOCKED ] && pass "$p: LOCKED for uid 1000" || fail "$p: uid 1000 reads status '$st'"
  expect "$p: camera as uid 1000 stamps every frame (exit 0: none unstamped)" as_reader camera --page "$p" --frames 10
  expect_in_bound "$p"
done
tail -3 /tmp/e1000e.log /tmp/igb.log
expect_clean_stop "$D1" "$D2"
expect_status "page says STOPPED" igb STOPPED
