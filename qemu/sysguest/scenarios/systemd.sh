# systemd: the udev + systemd flow in a systemd guest. The VM starts with the e1000e (not opted
# in) and an empty hot-plug root port; /etc/nicclock/devices opts in only 0000:01:00.0, the address
# an igb plugged into that port gets. Plugged in (QMP device_add), 70-nicclock.rules hands it to
# vfio-pci and starts nicclockd@0000:01:00.0.service, which becomes active (Type=notify) and
# publishes a LOCKED page that the unprivileged user reads; the daemon runs as `nicclock` with no
# capabilities. Unplugged (device_del), a waiting reader gets DEVICE_LOST and the unit ends with
# status 69 and is not restarted; plugged in again, it runs again. The e1000e keeps its kernel
# driver and gets no unit; `udevadm test` shows the rule's work for the igb and none for the e1000e.
# An application unit gated on the clock (ExecStartPre=nicclock wait --max-error), started before
# the NIC exists, waits through the plug and starts only once the page is LOCKED within its bound.
# The e1000e, opted in afterwards, is taken by `udevadm trigger --action=add` as if plugged in.
# nicclock came in as its Debian package (dpkg -i at image build): its man pages read with `man`;
# at the end `dpkg --purge` stops the daemon and leaves no file, user or group of nicclock's.
. /usr/local/lib/nicclock-lab/lib.sh

HOT=0000:01:00.0
UNIT="nicclockd@$HOT.service"
PAGE=$HOT
PLUG='{"execute":"device_add","arguments":{"driver":"igb","bus":"rp1","id":"hot","netdev":"n2","mac":"52:54:00:00:00:03","romfile":""}}'
UNPLUG='{"execute":"device_del","arguments":{"id":"hot"}}'

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
# wait_until SECONDS COMMAND...: polls COMMAND (every 0.25 s) until it succeeds; WAITED says how long.
wait_until() {
  limit=$(($1 * 1000))
  shift
  t0=$(now_ms)
  while :; do
    if "$@"; then WAITED=$(secs $(($(now_ms) - t0))); return 0; fi
    [ $(($(now_ms) - t0)) -lt "$limit" ] || { WAITED=$(secs $(($(now_ms) - t0))); return 1; }
    sleep 0.25
  done
}
as_user() { runuser -u reader -- "$@"; }
prop() { systemctl show -p "$2" --value "$1"; }
driver_of() { [ -e "/sys/bus/pci/devices/$1/driver" ] && basename "$(readlink "/sys/bus/pci/devices/$1/driver")"; }
present() { [ -e "/sys/bus/pci/devices/$1" ]; }
absent() { [ ! -e "/sys/bus/pci/devices/$1" ]; }
driver_is() { [ "$(driver_of "$1")" = "$2" ]; }
unit_active() { [ "$(systemctl is-active "$UNIT")" = active ]; }
# unit_settled: the unit's main process has ended and systemd has decided what follows: inactive or
# failed, or (were it to restart) SubState auto-restart, entered at the exit itself, RestartSec before the restart.
unit_settled() {
  case $(prop "$UNIT" ActiveState):$(prop "$UNIT" SubState) in
    inactive:* | failed:* | *:auto-restart) return 0 ;;
  esac
  return 1
}
nicclock_units() { systemctl list-units --all --plain --no-legend 'nicclockd@*' | awk '{print $1}'; }
journal() { journalctl -b -o short-monotonic --no-pager -u "$UNIT" | tail -"${1:-15}"; }
cursor() { journalctl -q -n 0 --show-cursor | sed -n 's/^-- cursor: //p'; }
# journal_since CURSOR: the unit's log after CURSOR, without the servo lines (the first 25).
journal_since() { journalctl -q -o short-monotonic --no-pager -u "$UNIT" --after-cursor="$1" | grep -v "phc offset" | head -25; }
show() { echo "  $UNIT: $(systemctl show -p ActiveState,SubState,Result,ExecMainStatus,NRestarts,MainPID "$UNIT" | tr '\n' ' ')"; }

# plug: device_add through the host, then the unit active and the page LOCKED for the reader.
plug() {
  echo "NICCLOCK-HOST $PLUG"
  if wait_until 60 present "$HOT"; then
    pass "$1: the igb appeared at $HOT ${WAITED}s after device_add"
  else
    fail "$1: no PCI device $HOT 60 s after device_add"
    return 1
  fi
  t_plug=$(now_ms)
  id=$(cat "/sys/bus/pci/devices/$HOT/vendor"):$(cat "/sys/bus/pci/devices/$HOT/device")
  [ "$id" = 0x8086:0x10c9 ] && pass "$1: $HOT is the 82576 (igb) just plugged" || fail "$1: $HOT is $id, not 8086:10c9"
  if wait_until 60 driver_is "$HOT" vfio-pci; then
    pass "$1: udev bound $HOT to vfio-pci (${WAITED}s)"
  else
    fail "$1: $HOT on driver '$(driver_of "$HOT")', not vfio-pci, after 60 s"
  fi
  if wait_until 60 unit_active; then
    pass "$1: $UNIT active (Type=notify: READY sent) $(secs $(($(now_ms) - t_plug)))s after the device appeared"
    result "$1_unit_active_s $(secs $(($(now_ms) - t_plug)))"
  else
    fail "$1: $UNIT not active 60 s after the device appeared"
    show
    journal 20
    return 1
  fi
  show
  # The reader blocks on the page's own status event (nicclock wait: futex), no polling.
  if out=$(as_user nicclock --page "$PAGE" wait --status LOCKED --timeout 60 2>&1); then
    pass "$1: uid $(id -u reader) reads /dev/shm/nicclock-$PAGE LOCKED ($(secs $(($(now_ms) - t_plug)))s after the device appeared; $out)"
  else
    fail "$1: the page not LOCKED for the reader within 60 s: $out"
    as_user nicclock --page "$PAGE" status
    journal 20
    return 1
  fi
}

# --- 0. the starting state
[ "$(cat /proc/1/comm)" = systemd ] && pass "PID 1 is systemd ($(systemctl --version | head -1))" || fail "PID 1 is $(cat /proc/1/comm)"
udevadm settle --timeout=60 || fail "udevadm settle timed out"
echo "  system: $(systemctl is-system-running 2>&1); failed units: $(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
optins=$(grep -v '^[[:space:]]*#' /etc/nicclock/devices | grep -v '^[[:space:]]*$')
[ "$optins" = "$HOT vfio" ] && pass "/etc/nicclock/devices opts in only $HOT (vfio)" || fail "/etc/nicclock/devices: '$optins'"
RP=
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/class")" = 0x060400 ] && [ -d "$d/pci_bus/0000:01" ] && RP=$(basename "$d")
done
[ -n "$RP" ] && pass "the hot-plug root port is $RP, secondary bus 01 (so the plugged igb will be $HOT)" || fail "no PCI bridge with secondary bus 01"
absent "$HOT" && [ -z "$(bdf_of 8086 10c9)" ] && pass "no igb at boot" || fail "an igb is present at boot: $(bdf_of 8086 10c9)"
E1000E=$(bdf_of 8086 10d3)
[ -n "$E1000E" ] || { fail "the e1000e is present"; exit 1; }
if wait_until 30 driver_is "$E1000E" e1000e; then pass "the e1000e $E1000E is on its kernel driver e1000e"; else fail "the e1000e $E1000E is on '$(driver_of "$E1000E")'"; fi
[ -z "$(nicclock_units)" ] && pass "no nicclockd@ unit before the plug" || fail "nicclockd@ units before the plug: $(nicclock_units)"
NUID=$(id -u nicclock) && NGID=$(id -g nicclock) && pass "the package's postinst created the nicclock user ($NUID:$NGID)" || fail "no nicclock user"
pkg=$(dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}' nicclock 2>&1)
case $pkg in "nicclock "*" ii ") pass "dpkg lists the package installed: $pkg" ;; *) fail "dpkg-query nicclock: '$pkg'" ;; esac
for f in /usr/sbin/nicclockd /usr/bin/nicclock /lib/systemd/system/nicclockd@.service /lib/udev/rules.d/70-nicclock.rules; do
  owner=$(dpkg -S "$f" 2>&1)
  [ "$owner" = "nicclock: $f" ] || fail "dpkg -S $f: '$owner'"
done
[ ! -e /usr/local/sbin/nicclockd ] && [ ! -e /etc/systemd/system/nicclockd@.service ] && [ ! -e /etc/udev/rules.d/70-nicclock.rules ] &&
  pass "nicclockd, its unit and rules are the package's (/usr/sbin, /lib/systemd, /lib/udev), nothing under /usr/local or /etc" ||
  fail "a nicclock file outside the package: $(ls /usr/local/sbin /etc/systemd/system/nicclockd@.service /etc/udev/rules.d 2>&1 | tr '\n' ' ')"
# man(1) formats the installed page (not a tty: plain text, no pager).
man_nicclockd=$(man nicclockd 2>&1)
printf '%s\n' "$man_nicclockd" | sed -n '1,6p' | sed 's/^/  man nicclockd: /'
printf '%s\n' "$man_nicclockd" | grep -q '^NAME' && printf '%s\n' "$man_nicclockd" | grep -q -- '--device' &&
  pass "man nicclockd: $(printf '%s\n' "$man_nicclockd" | wc -l) lines, NAME and --device in them ($(man -w nicclockd))" ||
  fail "man nicclockd: '$(printf '%s\n' "$man_nicclockd" | head -3 | tr '\n' ' ')'"
man -w nicclock-metrics > /dev/null 2>&1 && pass "man nicclock-metrics: $(man -w nicclock-metrics)" || fail "no man page nicclock-metrics"

# --- 0b. an application gated on the clock, started before there is any NIC to give time
APP=clock-app.service
APP_BOUND_NS=100000
cat > /etc/systemd/system/$APP << EOF
[Unit]
Description=An application that needs the NIC clock LOCKED within 100 us
After=$UNIT

[Service]
Type=oneshot
RemainAfterExit=yes
User=reader
TimeoutStartSec=150
ExecStartPre=/usr/bin/nicclock --page $HOT wait --max-error 100us --timeout 120
ExecStart=/bin/sh -c '/usr/bin/nicclock --page $HOT now > /tmp/clock-app.started'
EOF
systemctl daemon-reload
systemctl start --no-block "$APP"
app_state() { echo "$(prop "$APP" ActiveState)/$(prop "$APP" SubState)"; }
app_waiting() { [ "$(app_state)" = activating/start-pre ]; }
app_active() { [ "$(prop "$APP" ActiveState)" = active ]; }
# The gate blocks in the kernel (on inotify until the page appears): it does not poll.
gate_blocked() {
  pid=$(prop "$APP" ControlPID)
  [ "${pid:-0}" != 0 ] && grep -q poll "/proc/$pid/wchan" 2> /dev/null
}
if wait_until 30 app_waiting && wait_until 30 gate_blocked; then
  pass "$APP waits in ExecStartPre ($(app_state)), blocked in the kernel, while there is no NIC"
else
  fail "$APP is $(app_state) before the plug, not waiting in ExecStartPre"
fi
[ ! -e /tmp/clock-app.started ] && pass "$APP has not started" || fail "$APP started before there was a clock"

# --- 1. plug: udev binds, systemd starts the unit, the page locks
if plug plug; then
  if wait_until 60 app_active; then
    pass "$APP active once the page was LOCKED within $APP_BOUND_NS ns (${WAITED}s after the reader saw LOCKED)"
  else
    fail "$APP still $(app_state) 60 s after the page was LOCKED"
  fi
  gate=$(journalctl -b -o cat --no-pager -u "$APP" | grep -m1 'LOCKED, max error')
  echo "  $APP gate: $gate"
  bound=$(printf '%s\n' "$gate" | sed -n 's/.*LOCKED, max error \([0-9]*\) ns.*/\1/p')
  [ -n "$bound" ] && [ "$bound" -le "$APP_BOUND_NS" ] && pass "the gate let $APP start at LOCKED ± $bound ns" ||
    fail "the gate's line: '$gate'"
  started=$(cat /tmp/clock-app.started 2> /dev/null)
  echo "  $APP ExecStart read: $started"
  case $started in *LOCKED) pass "$APP's first reading: LOCKED" ;; *) fail "$APP's first reading: '$started'" ;; esac
  out=$(as_user nicclock --page "$PAGE" now 2>&1)
  rc=$?
  echo "  reader: nicclock now: $out"
  [ $rc = 0 ] && pass "uid $(id -u reader): nicclock now" || fail "nicclock now as reader: exit $rc: $out"
  as_user nicclock --page "$PAGE" status 2>&1 | sed 's/^/  reader: /'
  out=$(as_user nicclock --page "$PAGE" status --json 2>&1)
  rc=$?
  addr=$(printf '%s\n' "$out" | json_field pci_address)
  [ $rc = 0 ] && [ "$addr" = "$HOT" ] && pass "uid $(id -u reader): nicclock status --json names $HOT" ||
    fail "nicclock status --json as reader: exit $rc, pci_address '$addr': $out"
  ls -l "/dev/shm/nicclock-$PAGE"
  PID=$(prop "$UNIT" MainPID)
  if [ "${PID:-0}" != 0 ] && [ -r "/proc/$PID/status" ]; then
    grep -E '^(Name|Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' "/proc/$PID/status" | tr '\t' ' ' | sed 's/^/  daemon: /'
    name=$(awk '/^Name:/{print $2}' "/proc/$PID/status")
    uids=$(awk '/^Uid:/{print $2, $3, $4, $5}' "/proc/$PID/status")
    gids=$(awk '/^Gid:/{print $2, $3, $4, $5}' "/proc/$PID/status")
    capeff=$(awk '/^CapEff:/{print $2}' "/proc/$PID/status")
    capprm=$(awk '/^CapPrm:/{print $2}' "/proc/$PID/status")
    [ "$name" = nicclockd ] && [ "$uids" = "$NUID $NUID $NUID $NUID" ] && [ "$gids" = "$NGID $NGID $NGID $NGID" ] &&
      pass "MainPID $PID is nicclockd running as nicclock (uid/gid $NUID/$NGID)" || fail "MainPID $PID: $name uid $uids gid $gids"
    [ "$capeff" = 0000000000000000 ] && [ "$capprm" = 0000000000000000 ] && pass "nicclockd has no capabilities (CapEff $capeff)" ||
      fail "nicclockd CapEff $capeff CapPrm $capprm"
    # The unit lets the measuring thread be set up before the drop: one thread SCHED_FIFO (policy
    # 1, /proc/PID/task/TID/stat field 41), memory locked, and the daemon's line saying so.
    fifo=$(for t in /proc/"$PID"/task/*/stat; do sed 's/^.*) //' "$t" | awk '{print $39}'; done | grep -c '^1$')
    vmlck=$(awk '/^VmLck:/{print $2}' "/proc/$PID/status")
    mline=$(journalctl -b -o cat --no-pager -u "$UNIT" | grep -m1 -o 'measuring thread:.*')
    case "$fifo $mline" in
      "1 measuring thread: SCHED_FIFO priority 1, pinned to CPU "*", memory locked"*)
        [ "${vmlck:-0}" -gt 0 ] && pass "the measuring thread: SCHED_FIFO, pinned, ${vmlck} kB locked ('$mline')" ||
          fail "the measuring thread: VmLck ${vmlck:-?} kB after '$mline'" ;;
      *) fail "the measuring thread: $fifo SCHED_FIFO threads, VmLck ${vmlck:-?} kB, line '$mline'" ;;
    esac
  else
    fail "$UNIT has no MainPID ($PID)"
  fi
  PID1=$PID
fi

# --- 2. unplug: the waiting reader gets DEVICE_LOST, the unit ends 69 and stays down
rm -f /tmp/events.txt
as_user nicclock --page "$PAGE" events --json --count 2 --timeout 90 > /tmp/events.txt 2>&1 &
R=$!
expect_reader_blocked
c_del=$(cursor)
echo "NICCLOCK-HOST $UNPLUG"
t_del=$(now_ms)
if wait_until 60 unit_settled; then
  pass "$UNIT stopped $(secs $(($(now_ms) - t_del)))s after device_del"
else
  fail "$UNIT still $(systemctl is-active "$UNIT") 60 s after device_del"
fi
show
journal_since "$c_del"
st=$(prop "$UNIT" ExecMainStatus)
[ "$st" = 69 ] && pass "ExecMainStatus=69 (device gone)" || fail "ExecMainStatus=$st, not 69"
# systemd decides at the exit whether to restart: a restart would show now as SubState
# auto-restart and a queued job, RestartSec (2 s) before it happens. No need to wait it out.
state=$(prop "$UNIT" ActiveState)
sub=$(prop "$UNIT" SubState)
nr=$(prop "$UNIT" NRestarts)
jobs=$(systemctl list-jobs --no-legend --plain 2> /dev/null | grep -c "$UNIT")
[ "$nr" = 0 ] && [ "$sub" != auto-restart ] && [ "$jobs" = 0 ] && case $state in inactive | failed) true ;; *) false ;; esac &&
  pass "not restarted: $state/$sub, NRestarts=0, no job queued" || fail "after exit 69: $state/$sub, NRestarts=$nr, $jobs jobs queued"
wait_exit "$R" "the waiting reader"
rrc=$rc
sed 's/^/  reader: /' /tmp/events.txt
[ $rrc = 0 ] && grep -q '"kind":"DEVICE_LOST","urgency":"urgent"' /tmp/events.txt && pass "the waiting reader saw DEVICE_LOST" ||
  fail "the reader (exit $rrc) did not see DEVICE_LOST"
if wait_until 30 absent "$HOT"; then pass "the kernel removed $HOT"; else fail "$HOT still present 30 s after the unit stopped"; fi

# --- 3. plug again: the same unit runs again
# The guest cannot see when QEMU has finished the unplug (the slot, the id "hot" and netdev n2 free
# again: after pciehp's power-off and 1 s wait, when it turns the power indicator off); the host
# can, and its runner holds this device_add until QEMU's DEVICE_DELETED for "hot" (qemu/lib/boot.sh).
if plug replug; then
  PID2=$(prop "$UNIT" MainPID)
  [ -n "$PID2" ] && [ "$PID2" != 0 ] && [ "$PID2" != "${PID1:-}" ] && pass "a new nicclockd (pid $PID2, was ${PID1:-none})" ||
    fail "MainPID after the replug: $PID2 (before: ${PID1:-none})"
  out=$(as_user nicclock --page "$PAGE" now 2>&1) && pass "uid $(id -u reader): nicclock now after the replug: $out" ||
    fail "nicclock now after the replug: $out"
fi

# --- 4. the NIC that is not opted in
driver_is "$E1000E" e1000e && pass "the e1000e $E1000E is still on e1000e" || fail "the e1000e is on '$(driver_of "$E1000E")'"
units=$(nicclock_units | tr '\n' ' ')
[ "$units" = "$UNIT " ] && pass "the only nicclockd@ unit is $UNIT" || fail "nicclockd@ units: '$units'"
[ ! -e "/dev/shm/nicclock-$E1000E" ] && pass "no page for the e1000e" || fail "a page exists for the e1000e"

# --- 5. udevadm test (systemd 252 has no udevadm verify): the rule's result per device
udev_test() { udevadm test --action=add "/sys/bus/pci/devices/$1" 2>&1; }
out=$(udev_test "$HOT")
printf '%s\n' "$out" | grep -E 'nicclock|SYSTEMD_WANTS|^run:' | sed 's/^/  udevadm test igb: /'
rules_read=$(printf '%s\n' "$out" | grep -c '70-nicclock.rules')
want=$(printf '%s\n' "$out" | grep -c "^SYSTEMD_WANTS=.*nicclockd@$HOT.service")
run=$(printf '%s\n' "$out" | grep -c "^run: '/usr/lib/nicclock/nicclock-bind $HOT vfio'")
backend=$(printf '%s\n' "$out" | grep -c '^NICCLOCK_BACKEND=vfio$')
[ "$rules_read" -ge 1 ] && [ "$want" = 1 ] && [ "$run" = 1 ] && [ "$backend" = 1 ] &&
  pass "udevadm test $HOT: NICCLOCK_BACKEND=vfio, SYSTEMD_WANTS=$UNIT, RUN nicclock-bind $HOT vfio" ||
  fail "udevadm test $HOT: rules read $rules_read, SYSTEMD_WANTS $want, RUN $run, backend $backend"
out=$(udev_test "$E1000E")
printf '%s\n' "$out" | grep -E 'nicclock|SYSTEMD_WANTS|^run:|^DRIVER=' | sed 's/^/  udevadm test e1000e: /'
rules_read=$(printf '%s\n' "$out" | grep -c '70-nicclock.rules')
seen=$(printf '%s\n' "$out" | grep -c "^PCI_SLOT_NAME=$E1000E$")
ours=$(printf '%s\n' "$out" | grep -E -c '^SYSTEMD_WANTS=.*nicclockd|^run:.*nicclock|^NICCLOCK_BACKEND=')
[ "$rules_read" -ge 1 ] && [ "$seen" = 1 ] && [ "$ours" = 0 ] &&
  pass "udevadm test $E1000E: the rules ran and set nothing of nicclock's (no SYSTEMD_WANTS, RUN or backend)" ||
  fail "udevadm test $E1000E: rules read $rules_read, device seen $seen, nicclock lines $ours"

# --- 5b. a NIC already present, opted in afterwards (README's quick start): a synthetic add event
# does what plugging it in does. The e1000e leaves its kernel driver for vfio-pci.
U2="nicclockd@$E1000E.service"
printf '%s vfio\n' "$E1000E" >> /etc/nicclock/devices
udevadm trigger --action=add "/sys/bus/pci/devices/$E1000E"
u2_active() { [ "$(systemctl is-active "$U2")" = active ]; }
if wait_until 60 driver_is "$E1000E" vfio-pci; then pass "trigger: udev moved the e1000e $E1000E to vfio-pci (${WAITED}s)"; else
  fail "trigger: the e1000e is on '$(driver_of "$E1000E")' 60 s after udevadm trigger --action=add"; fi
if wait_until 60 u2_active; then pass "trigger: $U2 active (${WAITED}s after the NIC was on vfio-pci)"; else
  fail "trigger: $U2 $(systemctl is-active "$U2") 60 s after udevadm trigger --action=add"; fi
if out=$(as_user nicclock --page "$E1000E" wait --status LOCKED --timeout 60 2>&1); then pass "trigger: uid $(id -u reader) reads the e1000e's page LOCKED ($out)"; else
  fail "trigger: the e1000e's page not LOCKED: $out"; fi

# --- 6. purge: the daemon stops, and nothing of nicclock's is left (files, user, group, pages)
files=$(dpkg -L nicclock | while read -r f; do [ -d "$f" ] || echo "$f"; done)
nfiles=$(printf '%s\n' "$files" | wc -l)
c_purge=$(cursor)
if out=$(timeout 120 dpkg --purge nicclock 2>&1); then pass "dpkg --purge nicclock"; else fail "dpkg --purge nicclock: $out"; fi
printf '%s\n' "$out" | sed 's/^/  purge: /'
show
journal_since "$c_purge"
# prerm stops the daemon for good: no reload on the way (systemctl disable, postrm's daemon-reload)
# may start it again from the device's SYSTEMD_WANTS while its files go.
starts=$(journalctl -q -o cat --no-pager --after-cursor="$c_purge" | grep -c "Starting nicclockd@")
[ "$starts" = 0 ] && pass "nothing started a nicclockd@ unit again during the purge" || fail "nicclockd@ units were started $starts times during the purge"
daemon_gone() { ! pgrep -x nicclockd > /dev/null; }
if wait_until 30 daemon_gone; then
  pass "no nicclockd runs after the purge"
else
  fail "nicclockd still runs 30 s after the purge: $(pgrep -a nicclockd)"
fi
st=$(systemctl is-active "$UNIT" "$U2" | tr '\n' ' ')
[ "$st" = "inactive inactive " ] && pass "$UNIT and $U2 inactive after the purge" || fail "$UNIT, $U2: $st after the purge"
dpkg-query -W -f '${db:Status-Abbrev}' nicclock 2> /dev/null | grep -q '^ii' && fail "dpkg still lists nicclock installed"
left=
for f in $files /etc/nicclock /run/nicclock /usr/lib/nicclock /dev/shm/nicclock-*; do
  [ -e "$f" ] && left="$left $f"
done
[ -z "$left" ] && pass "the purge left none of the package's $nfiles files, no /etc/nicclock, /run/nicclock or page" ||
  fail "the purge left:$left"
! getent passwd nicclock > /dev/null && ! getent group nicclock > /dev/null && pass "the purge removed the nicclock user and group" ||
  fail "the purge left: $(getent passwd nicclock) $(getent group nicclock)"
