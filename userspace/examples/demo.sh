#!/usr/bin/env bash
# The main job: nicclockd disciplines a simulated 82576 (100 ppm off, wandering) to the system
# clock in real time and publishes it; an unprivileged user reads it with the `nicclock` CLI and
# the C camera example, then sees the daemon's shutdown arrive as events. Last, time from the
# network: nicclockd as a PTP slave on a simulated NIC with a simulated grandmaster on its wire.
# Run from anywhere: bash userspace/examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/setup.sh

cargo build --release -q -p nicclock -p nicclock-driver --lib --bins
work=$(mktemp -d /tmp/nicclock-demo.XXXXXX)
trap 'if [ -n "${daemon:-}" ]; then kill "$daemon" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -m 755 "$work/pages"
cp target/release/nicclock target/release/nicclockd target/release/libnicclock.so "$work/"
cc -O2 -std=c11 -D_GNU_SOURCE -I userspace/include userspace/examples/camera.c -L "$work" -lnicclock \
  -lpthread -Wl,-rpath,"$work" -o "$work/camera"

# Readers run as `nobody` when we are root, to show that reading needs no privilege.
as_reader() {
  if [ "$(id -u)" = 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; else "$@"; fi
}
say() { printf '\n$ %s\n' "$*"; }
nc() { as_reader "$work/nicclock" --dir "$work/pages" "$@"; }

say "nicclockd --device sim --page-name demo   (log in $work/nicclockd.log)"
"$work/nicclockd" --device sim --page-name demo --page-dir "$work/pages" 2>"$work/nicclockd.log" &
daemon=$!
# Waits on the page's own status event (the futex), not on a loop over `nicclock status`.
nc wait --status LOCKED --timeout 30 >/dev/null
head -n 9 "$work/nicclockd.log"

say "nicclock list";                       nc list
say "nicclock now";                        nc now
say "nicclock now --utc --format rfc3339"; nc now --utc --format rfc3339
say "nicclock status";                     nc status
say "nicclock watch --count 3";            nc watch --count 3
say "camera --frames 15 (C example, 30 frames/s)"
as_reader "$work/camera" --dir "$work/pages" --page demo --frames 15
say "nicclock events --count 2   (while nicclockd is stopped with SIGTERM)"
nc events --count 2 --timeout 10 &
events=$!
# Stop the daemon only once the reader sleeps on the page's futex (its kernel wait channel).
for _ in $(seq 100); do
  for p in $(pgrep -f -- "--dir $work/pages events"); do
    grep -q futex "/proc/$p/wchan" 2>/dev/null && break 2
  done
  sleep 0.1
done
kill -TERM "$daemon"
wait "$daemon" || true
daemon=
wait "$events"
tail -n 2 "$work/nicclockd.log"
say "nicclock now   (after the daemon stopped: exit status 1, with the reason)"
nc now || echo "(exit status $?)"

say "nicclockd --device sim:ptp-master=8 --reference ptp --page-name ptp   (log in $work/ptp.log)"
"$work/nicclockd" --device sim:ptp-master=8 --reference ptp --page-name ptp --page-dir "$work/pages" \
  2>"$work/ptp.log" &
daemon=$!
nc --page ptp wait --status LOCKED --timeout 90 >/dev/null
grep -m 3 -e "grandmaster" -e "status LOCKING -> LOCKED" "$work/ptp.log"
say "nicclock --page ptp status   (the grandmaster, its port state and TAI-UTC from its Announce)"
nc --page ptp status
say "nicclock --page ptp compare --seconds 3   (the master's clock is this system clock, +37 s TAI)"
nc --page ptp compare --seconds 3
kill -TERM "$daemon"
wait "$daemon" || true
daemon=
