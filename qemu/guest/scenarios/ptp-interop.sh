# ptp-interop: nicclockd's PTP port and linuxptp's ptp4l, both directions (issue 11).
#
# 1. nicclockd --ptp-role master on igb #1 (vfio-pci, --reference realtime, 8 Sync/s) serves
#    `ptp4l -2 -S -s` on the e1000e (kernel driver, software stamps): ptp4l reaches SLAVE with our
#    clock as its grandmaster and its offsets are centred on 0 (0 within two standard deviations
#    of their mean) over nicclock.interop_seconds (default 30). ptp4l steers the CLOCK_REALTIME
#    our master follows (one machine): both servos pull the same offset to 0.
# 2. nicclockd --ptp-role auto on igb #1 with `ptp4l -2 -S` at priority1 100 on the e1000e: the
#    BMCA makes nicclockd a slave (its page LOCKED to ptp4l's clock, port SLAVE); ptp4l stopped,
#    nicclockd becomes master: the page's STATUS_CHANGED event (waited for with `nicclock events`)
#    and the log line, and how many Announce intervals after ptp4l's end it came
#    (`figure ptp_interop_takeover_announce_intervals`: statime's announce receipt timer is 3 to 6
#    intervals, the BMCA runs once an interval).
. /lib/nicclock-guest.sh
arg() { sed -n "s/.*nicclock\.$1=\([0-9]*\).*/\1/p" /proc/cmdline; }
RUN_S=$(arg interop_seconds)
RUN_S=${RUN_S:-30}
modprobe e1000e && modprobe igb && modprobe vfio-pci && modprobe vfio_iommu_type1
E1000E=$(bdf_of 8086 10d3)
IGB1=$(bdf_of 8086 10c9 | sed -n 1p)
[ -n "$E1000E" ] && [ -n "$IGB1" ] || { fail "found the e1000e and an igb ($E1000E / $IGB1)"; exit 1; }
bind_to vfio-pci "$IGB1"
has_net() { ls "/sys/bus/pci/devices/$1/net" > /dev/null 2>&1; }
wait_for 10 has_net "$E1000E" || { fail "kernel netdev for $E1000E"; exit 1; }
ETH=$(ls "/sys/bus/pci/devices/$E1000E/net" | head -1)
ip link set "$ETH" up
mkdir -p /var/run
uptime_s() { cut -d' ' -f1 /proc/uptime; }
echo "nicclockd on $IGB1, ptp4l on $ETH ($E1000E)"

# wait_role_event PAGE STATE [--history]: reads PAGE's events as they come (`nicclock events`
# blocks on the page's futex) until a role change (STATUS_CHANGED whose detail carries the role
# flag 2^31) to port state STATE (linuxptp numbering: 5 PRE_MASTER, 6 MASTER, 9 SLAVE); prints it.
# At most 30 s without an event. Without --history, only events after the reader is waiting (the
# caller acts once this returns from its set-up: `role_reader` first).
role_reader() {
  rm -f /tmp/events
  mkfifo /tmp/events
  as_reader nicclock --page "$1" events --json --timeout 30 $2 > /tmp/events &
  EV=$!
  exec 3< /tmp/events
}
role_wait() {
  found=1
  while IFS= read -r line <&3; do
    echo "event: $line" >&2
    case $line in
      *'"kind":"STATUS_CHANGED"'*'"magnitude":'$1',"detail":21474836'*) echo "$line"; found=0; break ;;
    esac
  done
  exec 3<&-
  kill "$EV" 2> /dev/null
  wait "$EV" 2> /dev/null
  return $found
}
wait_role_event() {
  role_reader "$1" "$3"
  role_wait "$2"
}

echo "--- 1. nicclockd master, ptp4l slave"
nicclockd --device "vfio:$IGB1" --reference realtime --tai-offset 37 --ptp-role master --ptp-transport l2 \
  --ptp-log-sync-interval -3 --ptp-log-announce-interval 0 --page-name gm 2> /tmp/gm.log &
D=$!
expect_locked gm
OUR_ID=$(sed -n "s/.*ptp: port \([0-9a-f.]*\)-1 up.*/\1/p" /tmp/gm.log | head -1)
# a) ptp4l steering CLOCK_REALTIME (it slews, never steps): SLAVE with our clock as grandmaster.
# It cannot stay there for long on this one machine: our master follows the CLOCK_REALTIME ptp4l
# steers, so the constant part of ptp4l's software-stamp error is never corrected and its
# integrator runs away; the offsets come from b).
printf '[global]\nlogSyncInterval -3\nlogAnnounceInterval 0\nfirst_step_threshold 0.0\nstep_threshold 0.0\n' > /tmp/slave.cfg
ptp4l -i "$ETH" -2 -S -s -m -f /tmp/slave.cfg > /tmp/ptp4l-slave.log 2>&1 &
P=$!
is_slave() { grep -q "to SLAVE on" /tmp/ptp4l-slave.log; }
if wait_for 90 is_slave; then pass "ptp4l: $(grep -m1 'to SLAVE on' /tmp/ptp4l-slave.log)"; else
  fail "ptp4l reached SLAVE within 90 s"
  tail -15 /tmp/ptp4l-slave.log
fi
gm=$(sed -n 's/.*new foreign master \([0-9a-f.]*\)-.*/\1/p' /tmp/ptp4l-slave.log | head -1)
[ -n "$gm" ] && [ "$gm" = "$OUR_ID" ] && pass "ptp4l's master is nicclockd ($gm)" || fail "ptp4l's foreign master '$gm', ours is '$OUR_ID'"
grep "master offset" /tmp/ptp4l-slave.log | grep -m3 " s2 "
kill "$P"
wait "$P" 2> /dev/null
# ptp4l leaves CLOCK_REALTIME at its last frequency (and tick: up to 10 % off); back to nominal.
expect "CLOCK_REALTIME back at its nominal rate after ptp4l (phc_ctl freq 0)" phc_ctl CLOCK_REALTIME freq 0
# b) ptp4l free running (it measures, steers nothing: its clock is the one our master follows, so
# its offsets are our master's error plus its own software stamps'), one offset a second.
printf '[global]\nlogSyncInterval -3\nfree_running 1\nfreq_est_interval 0\nsummary_interval -3\n' > /tmp/free.cfg
ptp4l -i "$ETH" -2 -S -s -m -f /tmp/free.cfg > /tmp/ptp4l-free.log 2>&1 &
P=$!
offsets() { grep -c 'master offset' /tmp/ptp4l-free.log; }
has_offsets() { [ "$(offsets)" -ge "$1" ]; }
wait_for 60 has_offsets 3 || fail "ptp4l (free running) reported no offsets in 60 s"
n0=$(offsets)
wait_for $((RUN_S * 3)) has_offsets $((n0 + RUN_S)) || fail "ptp4l: fewer than $RUN_S offsets in $((RUN_S * 3)) s"
kill "$P"
wait "$P" 2> /dev/null
grep 'master offset' /tmp/ptp4l-free.log | tail -n +$((n0 + 1)) > /tmp/ptp4l-offsets.log
tail -2 /tmp/ptp4l-offsets.log
j=$(nicclock stats --json --lock-threshold 1000000000 /tmp/ptp4l-offsets.log)
n=$(echo "$j" | json_field samples)
mean=$(echo "$j" | json_field mean_offset_ns | awk '{ printf "%.0f", $1 }')
rms=$(echo "$j" | json_field rms_offset_ns | awk '{ printf "%.0f", $1 }')
echo "figure ptp_interop_ptp4l_slave_mean_ns $mean"
echo "figure ptp_interop_ptp4l_slave_rms_ns $rms"
result "ptp4l (free running) behind nicclockd: $n offsets, mean $mean ns, rms $rms ns"
# Centred: 0 within two standard deviations of the offsets' mean (sd² = rms² − mean²: |mean| <=
# 2·sd is 5·mean² <= 4·rms²). The mean is mostly ptp4l's own software stamps' asymmetry (the
# e1000e's receive latency against its transmit stamp), not our master's error: 81–327 µs in the
# lab's runs, with standard deviations of 119–738 µs; one CI run had a mean of 290 µs with a
# standard deviation of 170 µs (1.7 of them), which a one-deviation check failed although the
# master was right. A master off by the TAI−UTC offset (37 s) or by several ms is far outside;
# what is below ~1 ms cannot be told from ptp4l's software stamps here (ptp-pair measures that,
# hardware stamps at both ends).
# (The guest's busybox awk has no sqrt: Newton's iteration.)
sd=$(awk -v m="$mean" -v r="$rms" 'BEGIN { v = r * r - m * m; if (v <= 0) { print 0; exit }
  x = v + 1; for (k = 0; k < 80; k++) x = (x + v / x) / 2; printf "%.0f", x }')
echo "figure ptp_interop_ptp4l_slave_sd_ns $sd"
if [ "${n:-0}" -ge $((RUN_S / 2)) ] && awk -v m="$mean" -v r="$rms" 'BEGIN { exit !(5 * m * m <= 4 * r * r) }'; then
  pass "ptp4l's offsets from nicclockd centred on 0 (|mean| $mean ns within two standard deviations, sd $sd ns, RMS $rms ns, $n offsets)"
else
  fail "ptp4l's offsets: $n, mean $mean ns, RMS $rms ns ($j)"
fi
expect_clean_stop "$D"
grep "final counters" /tmp/gm.log

echo "--- 2. nicclockd auto, ptp4l priority1 100"
printf '[global]\npriority1 100\nlogSyncInterval -3\nlogAnnounceInterval 0\n' > /tmp/better.cfg
start_better() {
  ptp4l -i "$ETH" -2 -S -m -f /tmp/better.cfg > /tmp/ptp4l-better.log 2>&1 &
  B=$!
}
start_better
is_gm() { grep -q "assuming the grand master role" /tmp/ptp4l-better.log; }
wait_for 30 is_gm && pass "ptp4l (priority1 100) is grandmaster" || fail "ptp4l did not become grandmaster in 30 s"
BETTER=$(sed -n 's/.*selected local clock \([0-9a-f.]*\) as best master.*/\1/p' /tmp/ptp4l-better.log | head -1)
nicclockd --device "vfio:$IGB1" --reference realtime --tai-offset 37 --ptp-role auto --ptp-transport l2 \
  --ptp-log-announce-interval 0 --page-name auto 2> /tmp/auto.log &
D=$!
is_page() { [ -e /dev/shm/nicclock-auto ]; }
wait_for 30 is_page || fail "auto: no page in 30 s"
# The role change to SLAVE (9): the page's events from its first on (--history), as they come.
if ev=$(wait_role_event auto 9 --history); then pass "auto: the BMCA made nicclockd a slave: $ev"; else
  fail "auto: no role change to SLAVE on the page"
  grep -v "ptp offset" /tmp/auto.log | tail -10
fi
if out=$(nicclock --page auto wait --status LOCKED --timeout 120 2>&1); then pass "auto: page LOCKED as a slave ($out)"; else
  fail "auto: page LOCKED within 120 s: $out"
  grep "ptp offset" /tmp/auto.log | tail -5
  grep -v "ptp offset" /tmp/auto.log | tail -15
fi
st=$(nicclock --page auto status --json)
ps=$(echo "$st" | json_field port_state)
g=$(echo "$st" | json_field gm_identity)
r=$(echo "$st" | json_field reference)
[ "$ps" = SLAVE ] && [ "$g" = "$BETTER" ] && [ "$r" = ptp ] && pass "auto: port SLAVE, grandmaster ptp4l ($g), reference ptp" || fail "auto: port '$ps', grandmaster '$g' (ptp4l is '$BETTER'), reference '$r'"
expect_output "auto: the role change in the log" "role Listening -> Slave\|role Master -> Slave" cat /tmp/auto.log

# The page's events from now on (the reader waiting before ptp4l stops).
role_reader auto
wait_for 30 reader_blocked || fail "auto: the events reader never waited on the page"
t_stop=$(uptime_s)
kill "$B"
wait "$B" 2> /dev/null
took=
# PRE_MASTER (5) or MASTER (6).
if role_wait '[56]' > /tmp/took.txt; then took=$(awk -v a="$t_stop" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'); fi
if [ -n "$took" ]; then
  pass "auto: STATUS_CHANGED to MASTER on the page $took s after ptp4l stopped"
  echo "figure ptp_interop_takeover_s $took"
  echo "figure ptp_interop_takeover_announce_intervals $took"
  result "auto takeover $took s = $took Announce intervals (1 s)"
  awk -v t="$took" 'BEGIN { exit !(t <= 7) }' && pass "auto: master within the announce receipt timeout (3-6 intervals) and one BMCA run" ||
    fail "auto: master only $took s (Announce intervals) after ptp4l stopped"
else
  fail "auto: no STATUS_CHANGED to MASTER within 30 s of ptp4l's end"
fi
expect_output "auto: the role change to master in the log" "role Slave -> Master\|role Listening -> Master" cat /tmp/auto.log
grep "role\|port SLAVE ->\|port LISTENING ->" /tmp/auto.log | tail -4
expect_locked auto
expect_clean_stop "$D"
exit 0
