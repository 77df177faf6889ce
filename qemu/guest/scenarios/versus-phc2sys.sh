# versus-phc2sys: the second igb stays on the kernel igb driver and linuxptp's phc2sys disciplines
# its PHC to CLOCK_REALTIME while nicclockd disciplines the first igb (vfio-pci) to CLOCK_REALTIME,
# both for 60 s (NICCLOCK_VS_SECONDS on the kernel command line overrides). Both logs are parsed
# the same way; an independent reader (nicclock compare, uid 1000) checks nicclockd's page.
. /lib/nicclock-guest.sh
SECONDS_RUN=$(sed -n 's/.*nicclock\.vs_seconds=\([0-9]*\).*/\1/p' /proc/cmdline)
SECONDS_RUN=${SECONDS_RUN:-60}
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

nicclockd --device "vfio:$IGB1" --page-name igb --stats-file /tmp/nicclockd.csv 2> /tmp/nicclockd.log &
D=$!
timeout "$SECONDS_RUN" phc2sys -s CLOCK_REALTIME -c "$PTP" -O 0 -m > /tmp/phc2sys.log 2>&1 &
P=$!
sleep 5
as_reader nicclock --page igb compare --seconds $((SECONDS_RUN - 10)) --rate 20 > /tmp/compare.txt 2>&1
compare_rc=$?
sleep 5
kill -TERM "$D"
wait "$D"
wait "$P"
cat /tmp/compare.txt
result "independent-reader $(cat /tmp/compare.txt)"
[ $compare_rc = 0 ] && pass "nicclockd's page stayed inside its bound for the independent reader" ||
  fail "independent reader: $(cat /tmp/compare.txt)"

# One line per sample: seconds since start, offset, delay (servo state 2 only counts as a sample
# of a running servo; lock = first of 5 consecutive |offset| < 1000 ns).
# nicclockd: CSV time_s,offset_ns,servo_state,freq_ppb,delay_ns,status,error_bound_ns
awk -F, 'NR > 1 { print $1, $2, $5 }' /tmp/nicclockd.csv > /tmp/n.samples
# phc2sys -m: "phc2sys[12.345]: /dev/ptp0 sys offset -23 s2 freq +100 delay 500"
awk '/ offset / && / s[0-9] / {
  t = $1; sub(/^phc2sys\[/, "", t); sub(/\]:$/, "", t)
  for (k = 1; k <= NF; k++) { if ($k == "offset") o = $(k + 1); if ($k == "delay") d = $(k + 1) }
  if (t0 == "") t0 = t
  print t - t0, o, d }' /tmp/phc2sys.log > /tmp/p.samples
stats() { # file -> "lock_s rms_ns mean_delay_ns samples"
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
N=$(stats /tmp/n.samples)
P=$(stats /tmp/p.samples)
echo "nicclockd: lock_s rms_ns mean_delay_ns samples = $N"
echo "phc2sys:   lock_s rms_ns mean_delay_ns samples = $P"
set -- $N; n_lock=$1 n_rms=$2 n_delay=$3 n_samples=$4
set -- $P; p_lock=$1 p_rms=$2 p_delay=$3 p_samples=$4
result "nicclockd lock_time_s $n_lock rms_offset_ns $n_rms delay_ns $n_delay samples $n_samples"
result "phc2sys lock_time_s $p_lock rms_offset_ns $p_rms delay_ns $p_delay samples $p_samples"
[ "$n_lock" != never ] && pass "nicclockd locked ($n_lock s)" || fail "nicclockd never locked"
[ "$p_lock" != never ] && pass "phc2sys locked ($p_lock s)" || fail "phc2sys never locked (its log: $(tail -3 /tmp/phc2sys.log))"
# The measurement delay means the same whether or not a servo locked.
echo "ratio delay_nicclockd_vs_phc2sys $(awk -v a="$n_delay" -v b="$p_delay" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')"
if [ "$n_lock" != never ] && [ "$p_lock" != never ]; then
  echo "ratio rms_offset_nicclockd_vs_phc2sys $(awk -v a="$n_rms" -v b="$p_rms" 'BEGIN { printf "%.3f", a / b }')"
else
  echo "ratio rms_offset_nicclockd_vs_phc2sys n/a (a side never locked)"
fi
echo "figure lock_time_s_nicclockd $n_lock"
echo "figure lock_time_s_phc2sys $p_lock"
echo "--- phc2sys log (first lines)"
head -15 /tmp/phc2sys.log
echo "--- nicclockd log (last lines)"
tail -3 /tmp/nicclockd.log
