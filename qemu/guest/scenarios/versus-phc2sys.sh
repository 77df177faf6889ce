# versus-phc2sys: nicclockd (igb #1 on vfio-pci) against linuxptp's phc2sys (igb #2 on the kernel
# igb driver), each keeping a PHC and CLOCK_REALTIME together, in one VM.
#
# Phase 1 (nicclock.vs_seconds, default 60 s), at the same time:
#   - nicclockd disciplines igb #1 to CLOCK_REALTIME (defaults: PI, 10 Hz, best of 5 reads), and
#     an independent reader (nicclock compare, uid 1000) checks its page against CLOCK_REALTIME;
#   - phc2sys as the issue writes it, steering igb #2's PHC (`-s CLOCK_REALTIME -c /dev/ptpN`). On
#     QEMU each frequency change rewrites TIMINCA, which QEMU applies to all of the clock's past: a
#     lower rate moves SYSTIM backwards and the kernel's timecounter wraps (jumps of 2^41 ns and
#     more). Whether it locks or jumps is recorded, never hidden. Its measurement delays, taken
#     under the same load as nicclockd's, are the delay baseline.
# Phase 2 (nicclock.vs_ref_seconds, default 30 s): phc2sys with the same measurement
#   (PTP_SYS_OFFSET_EXTENDED, best of 5) and PI servo at nicclockd's 10 Hz, steering the other clock
#   of the pair, CLOCK_REALTIME to the PHC (`-s /dev/ptpN -c CLOCK_REALTIME`), which QEMU cannot
#   break: the offset baseline. Not at the same time as phase 1, because it moves the clock
#   nicclockd follows; under the same load (nicclockd and a compare reader keep running).
. /lib/nicclock-guest.sh
arg() { sed -n "s/.*nicclock\.$1=\([0-9]*\).*/\1/p" /proc/cmdline; }
RUN_S=$(arg vs_seconds)
RUN_S=${RUN_S:-60}
REF_S=$(arg vs_ref_seconds)
REF_S=${REF_S:-30}
RATE=10
modprobe vfio-pci && modprobe vfio_iommu_type1 && modprobe igb
IGB1=$(bdf_of 8086 10c9 | sed -n 1p)
IGB2=$(bdf_of 8086 10c9 | sed -n 2p)
[ -n "$IGB2" ] || { fail "two igbs present"; exit 1; }
bind_to vfio-pci "$IGB1"
i=0
while [ ! -d "/sys/bus/pci/devices/$IGB2/ptp" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
PTP=/dev/$(ls "/sys/bus/pci/devices/$IGB2/ptp" | head -1)
[ -c "$PTP" ] && pass "kernel igb on $IGB2 gives $PTP" || { fail "no PHC for $IGB2"; exit 1; }
mkdir -p /var/run
cs=/sys/devices/system/clocksource/clocksource0
result "guest_clocksource $(cat $cs/current_clocksource) available $(cat $cs/available_clocksource)"

# The floor of any "delay": a SYSTIML read bracketed by two CLOCK_REALTIME reads, from userspace.
TIMING=$(nicclockd probe "vfio:$IGB1" | grep '^timing')
echo "$TIMING"
floor=$(echo "$TIMING" | sed -n 's/.*bracketed by two: min \([0-9]*\) ns.*/\1/p')
clock_read=$(echo "$TIMING" | sed -n 's/.*CLOCK_REALTIME read: min \([0-9]*\) ns.*/\1/p')
[ -n "$floor" ] && pass "probe measured the bracketed SYSTIML read ($floor ns)" || fail "probe timing: $TIMING"

# One line per sample: seconds since start, offset, delay.
# phc2sys -m: "phc2sys[12.345]: CLOCK_REALTIME phc offset -23 s2 freq +100 delay 500"
phc2sys_samples() {
  awk '/ offset / && / s[0-9] / {
    t = $1; sub(/^phc2sys\[/, "", t); sub(/\]:$/, "", t)
    for (k = 1; k <= NF; k++) { if ($k == "offset") o = $(k + 1); if ($k == "delay") d = $(k + 1) }
    if (t0 == "") t0 = t
    print t - t0, o, d }' "$1"
}
# file -> "lock_s rms_ns mean_delay_ns samples": lock = first of 5 consecutive |offset| < 1000 ns;
# RMS and mean delay over the samples from there on.
stats() {
  awk '{ t[NR] = $1; o[NR] = $2; d[NR] = $3 }
  END {
    lock = 0
    for (i = 1; i <= NR - 4; i++) {
      ok = 1
      for (j = i; j < i + 5; j++) if (o[j] > 1000 || o[j] < -1000) ok = 0
      if (ok) { lock = i; break }
    }
    if (!lock) {
      sd = 0; for (i = 1; i <= NR; i++) sd += d[i]
      printf "never inf %.0f %d\n", (NR ? sd / NR : 0), NR
      exit
    }
    n = 0; s2 = 0; sd = 0
    for (i = lock; i <= NR; i++) { n++; s2 += o[i] * o[i]; sd += d[i] }
    # busybox awk has no sqrt: Newton iterations
    ms = s2 / n; r = (ms > 1) ? ms : 1
    for (k = 0; k < 100; k++) r = (r + ms / r) / 2
    printf "%.2f %.1f %.0f %d\n", t[lock] - t[1], (ms > 0) ? r : 0, sd / n, n
  }' "$1"
}

echo "--- phase 1: nicclockd on $IGB1 (--rate $RATE) and phc2sys -s CLOCK_REALTIME -c $PTP -O 0 -m, ${RUN_S} s"
nicclockd --device "vfio:$IGB1" --page-name igb --rate "$RATE" --stats-file /tmp/nicclockd.csv 2> /tmp/nicclockd.log &
D=$!
timeout "$RUN_S" phc2sys -s CLOCK_REALTIME -c "$PTP" -O 0 -m > /tmp/phc2sys-phc.log 2>&1 &
P=$!
sleep 5
as_reader nicclock --page igb compare --seconds $((RUN_S - 10)) --rate 20 > /tmp/compare.txt 2>&1
compare_rc=$?
wait "$P"
# nicclockd's figures are phase 1's; it keeps running through phase 2 as that phase's load.
cp /tmp/nicclockd.csv /tmp/nicclockd-phase1.csv
cat /tmp/compare.txt
result "independent-reader $(cat /tmp/compare.txt)"
[ $compare_rc = 0 ] && pass "nicclockd's page stayed inside its bound for the independent reader" ||
  fail "independent reader: $(cat /tmp/compare.txt)"
phc2sys_samples /tmp/phc2sys-phc.log > /tmp/pp.samples
set -- $(stats /tmp/pp.samples)
jumps=$(grep -c 'clock jumped' /tmp/phc2sys-phc.log)
max_off=$(awk '{ a = ($2 < 0) ? -$2 : $2; if (a > m) m = a } END { printf "%.0f", m }' /tmp/pp.samples)
pp_delay=$(awk '{ s += $3 } END { printf "%.0f", NR ? s / NR : 0 }' /tmp/pp.samples)
result "phc2sys_steering_phc lock_time_s $1 rms_offset_ns $2 delay_ns $pp_delay samples $4 clock_jumps $jumps max_abs_offset_ns $max_off"
[ "$4" -ge $((RUN_S / 2)) ] && pass "phase 1: phc2sys logged $4 samples" || fail "phase 1: phc2sys logged $4 samples: $(head -3 /tmp/phc2sys-phc.log)"

echo "--- phase 2: phc2sys -s $PTP -c CLOCK_REALTIME -O 0 -R $RATE -m, ${REF_S} s"
# Give igb #2 back its nominal rate and the system's time (settime re-initialises the kernel's timecounter).
phc_ctl "$PTP" freq 0 set > /dev/null 2>&1 && pass "phc_ctl restored $PTP" || fail "phc_ctl could not restore $PTP"
# The same load as phase 1 (nicclockd, a compare reader at 20 Hz, its results not used: nicclockd
# follows a CLOCK_REALTIME that phc2sys now steps and steers).
as_reader nicclock --page igb compare --seconds "$REF_S" --rate 20 > /dev/null 2>&1 &
C=$!
timeout "$REF_S" phc2sys -s "$PTP" -c CLOCK_REALTIME -O 0 -R "$RATE" -m > /tmp/phc2sys.log 2>&1
wait "$C"
kill -TERM "$D"
wait "$D" && pass "nicclockd stopped cleanly" || fail "nicclockd exit $? at the end"

# nicclockd CSV: time_s,offset_ns,servo_state,freq_ppb,delay_ns,status,error_bound_ns
awk -F, 'NR > 1 { print $1, $2, $5 }' /tmp/nicclockd-phase1.csv > /tmp/n.samples
phc2sys_samples /tmp/phc2sys.log > /tmp/p.samples
# |offset| after lock: median, 90th, 99th percentile, max (RMS alone hides whether a few outliers or
# the bulk make it).
spread() {
  lock_i=$(awk -v l="$2" 'NR == 1 { t1 = $1 } l != "never" && $1 - t1 >= l { print NR; exit }' "$1")
  [ -n "$lock_i" ] || { echo "n/a"; return; }
  awk -v s="$lock_i" 'NR >= s { print ($2 < 0) ? -$2 : $2 }' "$1" | sort -n |
    awk '{ v[NR] = $1 } END { printf "p50 %d p90 %d p99 %d max %d", v[int(NR * .5) + 1], v[int(NR * .9) + 1], v[int(NR * .99) + 1], v[NR] }'
}
N=$(stats /tmp/n.samples)
P=$(stats /tmp/p.samples)
echo "nicclockd: lock_s rms_ns mean_delay_ns samples = $N"
echo "phc2sys:   lock_s rms_ns mean_delay_ns samples = $P"
set -- $N; n_lock=$1 n_rms=$2 n_delay=$3 n_samples=$4
set -- $P; p_lock=$1 p_rms=$2 p_delay=$3 p_samples=$4
result "nicclockd lock_time_s $n_lock rms_offset_ns $n_rms delay_ns $n_delay samples $n_samples"
result "phc2sys lock_time_s $p_lock rms_offset_ns $p_rms delay_ns $p_delay samples $p_samples"
result "nicclockd abs_offset_ns $(spread /tmp/n.samples "$n_lock")"
result "phc2sys abs_offset_ns $(spread /tmp/p.samples "$p_lock")"
[ "$n_lock" != never ] && pass "nicclockd locked ($n_lock s)" || fail "nicclockd never locked"
[ "$p_lock" != never ] && pass "phc2sys locked ($p_lock s)" || fail "phc2sys never locked (its log: $(tail -3 /tmp/phc2sys.log))"
[ "$n_samples" -ge $((RUN_S * RATE / 2)) ] && pass "nicclockd logged $n_samples samples" || fail "nicclockd logged only $n_samples samples"
[ "$p_samples" -ge $((REF_S * RATE / 2)) ] && pass "phc2sys logged $p_samples samples" || fail "phc2sys logged only $p_samples samples"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "n/a" }'; }
echo "ratio delay_nicclockd_vs_phc2sys $(ratio "$n_delay" "$pp_delay")"
if [ "$n_lock" != never ] && [ "$p_lock" != never ]; then
  echo "ratio rms_offset_nicclockd_vs_phc2sys $(ratio "$n_rms" "$p_rms")"
else
  echo "ratio rms_offset_nicclockd_vs_phc2sys n/a (a side never locked)"
fi
# What no reader of this machine's clocks can beat: the userspace bracket's own minimum.
echo "ratio delay_floor_vs_phc2sys $(ratio "$floor" "$pp_delay")"
echo "figure clock_read_ns $clock_read"
echo "figure delay_floor_ns $floor"
echo "figure lock_time_s_nicclockd $n_lock"
echo "figure lock_time_s_phc2sys $p_lock"
echo "--- phc2sys log (first lines)"
head -6 /tmp/phc2sys-phc.log
grep -m 3 'clock jumped' -B 1 /tmp/phc2sys-phc.log
head -6 /tmp/phc2sys.log
echo "--- nicclockd log (last lines)"
tail -3 /tmp/nicclockd.log
