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

# expect_probe WHAT DEVICE KEY VALUE: `nicclockd probe --json DEVICE` says KEY is VALUE.
expect_probe() {
  got=$(nicclockd probe --json "$2" 2>&1 | json_field "$3")
  if [ "$got" = "$4" ]; then pass "$1 ($3 $got)"; else fail "$1: probe $3 is '$got', not '$4'"; fi
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

# wait_for SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS (1 if it never does). For
# guest state with nothing to block on (a sysfs node appearing or going); checked every 0.1 s.
wait_for() {
  n=$(($1 * 10))
  shift
  i=0
  until "$@"; do
    [ "$i" -lt "$n" ] || return 1
    sleep 0.1
    i=$((i + 1))
  done
}

# json_field KEY: the value of "KEY" in the one-line JSON object on stdin (`nicclock status --json`,
# `nicclock stats --json`, `nicclockd probe --json`: documented fields, one object per line); a
# string without its quotes. Keys are unique in those objects.
json_field() { sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" | sed 's/^"//; s/"$//'; }

# page_status PAGE: the page's status by `nicclock status --json` (whatever its exit status).
page_status() { nicclock --page "$1" status --json 2> /dev/null | json_field status; }

# expect_status WHAT PAGE STATUS: the page says STATUS.
expect_status() {
  st=$(page_status "$2")
  if [ "$st" = "$3" ]; then pass "$1"; else fail "$1: the page says '$st', not $3"; fi
}

# expect_locked PAGE: the page reaches LOCKED within 60 s (shows the daemon's log if not): waits on
# the page's own status event (nicclock wait blocks on its futex), not on a loop.
expect_locked() {
  if out=$(nicclock --page "$1" wait --status LOCKED --timeout 60 2>&1); then
    pass "$1 LOCKED ($out)"
  else
    fail "$1 LOCKED within 60 s: $out"
    tail -20 "/tmp/$1.log"
  fi
}

# reader_blocked: a `nicclock ... events` process sleeps on its page's futex (its kernel wait
# channel), i.e. it is waiting and will be woken by the next event.
reader_blocked() {
  for p in /proc/[0-9]*; do
    case $(tr '\0' ' ' < "$p/cmdline" 2> /dev/null) in
      nicclock\ *\ events\ *) grep -q futex "$p/wchan" 2> /dev/null && return 0 ;;
    esac
  done
  return 1
}

# expect_reader_blocked: within 30 s a `nicclock events` reader is blocked on its page's futex.
expect_reader_blocked() {
  if wait_for 30 reader_blocked; then pass "a reader (uid 1000) waits in nicclock events (blocked on the page's futex)"; else fail "no nicclock events reader blocked on a futex within 30 s"; fi
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
    wait_exit "$pid" "nicclockd (pid $pid) after SIGTERM"
    codes="$codes $rc"
  done
  case $codes in *[1-9]*) fail "daemon exit status$codes" ;; *) pass "daemons stopped cleanly" ;; esac
}

# wait_exit PID WHAT: waits for PID (a child of this shell) to end, at most 30 s (then a failed
# check and a kill); sets $rc to its exit status. The wait is the process's exit itself (`wait`);
# a watchdog in the background bounds it.
wait_exit() {
  rm -f /tmp/wait_exit.killed
  (
    sleep 30
    if kill -0 "$1" 2> /dev/null; then
      : > /tmp/wait_exit.killed
      dmesg | tail -15
      kill -9 "$1"
    fi
  ) &
  watchdog=$!
  wait "$1"
  rc=$?
  kill "$watchdog" 2> /dev/null
  [ ! -e /tmp/wait_exit.killed ] || fail "$2 still running 30 s later: killed"
}
