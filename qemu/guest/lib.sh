# Helpers for lab scenarios (sourced). Verdict lines go to the console:
#   NICCLOCK-CHECK PASS|FAIL <what>   one per check
#   NICCLOCK-RESULT <scenario> <key> <value...>   measured figures
#   NICCLOCK-HOST <qmp json>          asks the host to send a QMP command (hot-plug)

pass() { echo "NICCLOCK-CHECK PASS $*"; }
fail() { echo "NICCLOCK-CHECK FAIL $*"; echo "$*" >> /tmp/nicclock-failures; }
result() { echo "NICCLOCK-RESULT $SCENARIO $*"; }

# expect WHAT COMMAND...: runs COMMAND, a check that it succeeds.
expect() {
  what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what (exit $?)"; fi
}

# expect_output WHAT PATTERN COMMAND...: COMMAND's output (stdout+stderr) contains PATTERN.
expect_output() {
  what=$1
  pattern=$2
  shift 2
  out=$("$@" 2>&1)
  if printf '%s\n' "$out" | grep -q -- "$pattern"; then pass "$what"; else fail "$what: no '$pattern' in: $out"; fi
}

# PCI addresses of vendor:device.
bdf_of() {
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = "0x$1" ] && [ "$(cat "$d/device")" = "0x$2" ] && basename "$d"
  done
}

# bind_to DRIVER BDF: hands the device to DRIVER (driver_override + drivers_probe).
bind_to() {
  if [ -e "/sys/bus/pci/devices/$2/driver" ]; then echo "$2" > "/sys/bus/pci/devices/$2/driver/unbind"; fi
  echo "$1" > "/sys/bus/pci/devices/$2/driver_override"
  echo "$2" > /sys/bus/pci/drivers_probe
  echo "$2 -> $(basename "$(readlink "/sys/bus/pci/devices/$2/driver")" 2>/dev/null)"
}

# Runs a command as the unprivileged user `reader` (uid 1000; busybox su needs no password as
# root). busybox su reads options anywhere on its command line, so the command goes in one quoted string.
as_reader() {
  cmd=exec
  for a in "$@"; do cmd="$cmd '$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'"; done
  su -s /bin/sh -c "$cmd" reader
}

# wait_status PAGE STATUS SECONDS: until `nicclock status` says STATUS.
wait_status() {
  i=0
  while [ "$i" -lt $(($3 * 10)) ]; do
    nicclock --page "$1" status 2>/dev/null | grep -q "^status      $2" && return 0
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

# expect_locked PAGE: the page reaches LOCKED within 60 s (shows the daemon's log if not).
expect_locked() {
  if wait_status "$1" LOCKED 60; then pass "$1 LOCKED"; else fail "$1 LOCKED within 60 s"; tail -20 "/tmp/$1.log"; fi
}

# expect_in_bound PAGE: as uid 1000, 10 s of `nicclock compare` find every reading inside the bound.
expect_in_bound() {
  out=$(as_reader nicclock --page "$1" compare --seconds 10 --rate 50)
  rc=$?
  echo "$out"
  result "$1 $out"
  if [ $rc = 0 ]; then pass "$1: time within its bound of CLOCK_REALTIME for 10 s"; else fail "$1: compare: $out"; fi
}

# expect_clean_stop PID...: SIGTERM, and every daemon exits 0.
expect_clean_stop() {
  kill -TERM "$@"
  codes=
  for pid in "$@"; do
    wait "$pid"
    codes="$codes $?"
  done
  case $codes in *[1-9]*) fail "daemon exit status$codes" ;; *) pass "daemons stopped cleanly" ;; esac
}

# wait_exit PID WHAT: waits up to 30 s for PID to end (a failed check, and a kill, if it does not);
# sets $rc to its exit status.
wait_exit() {
  i=0
  while kill -0 "$1" 2> /dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$1" 2> /dev/null; then
    fail "$2 still running 30 s later"
    dmesg | tail -15
    kill -9 "$1"
  fi
  wait "$1"
  rc=$?
}
