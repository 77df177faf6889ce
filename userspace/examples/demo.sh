#!/usr/bin/env bash
# The main job (until nicclockd lands): a writer publishes the system clock in a time page, and an
# unprivileged user reads it with the `nicclock` CLI and the C camera example, then sees the
# writer's shutdown arrive as events. Run from anywhere: bash userspace/examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/setup.sh

cargo build --release -q -p nicclock --lib --bins --examples
work=$(mktemp -d /tmp/nicclock-demo.XXXXXX)
trap 'if [ -n "${writer:-}" ]; then kill "$writer" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -m 755 "$work/pages"
cp target/release/nicclock target/release/examples/publish_system_clock target/release/libnicclock.so "$work/"
cc -O2 -std=c11 -D_GNU_SOURCE -I userspace/include userspace/examples/camera.c -L "$work" -lnicclock \
  -lpthread -Wl,-rpath,"$work" -o "$work/camera"

# Readers run as `nobody` when we are root, to show that reading needs no privilege.
as_reader() {
  if [ "$(id -u)" = 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; else "$@"; fi
}
say() { printf '\n$ %s\n' "$*"; }
nc() { as_reader "$work/nicclock" --dir "$work/pages" "$@"; }

"$work/publish_system_clock" demo "$work/pages" &
writer=$!
sleep 1

say "nicclock list";                       nc list
say "nicclock now";                        nc now
say "nicclock now --utc --format rfc3339"; nc now --utc --format rfc3339
say "nicclock status";                     nc status
say "nicclock watch --count 3";            nc watch --count 3
say "camera --frames 15 (C example, 30 frames/s)"
as_reader "$work/camera" --dir "$work/pages" --page demo --frames 15
say "nicclock events --count 2   (while the writer is stopped with SIGTERM)"
nc events --count 2 --timeout 10 &
events=$!
sleep 0.5
kill -TERM "$writer"
wait "$writer" || true
wait "$events"
say "nicclock now   (after the writer stopped: exit status 1, with the reason)"
nc now || echo "(exit status $?)"
