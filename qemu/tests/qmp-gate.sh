#!/usr/bin/env bash
# The lab runner's QMP relay (qemu/lib/boot.sh vm_qmp) against a fake QEMU monitor, no VM needed:
# a device_del returns only once DEVICE_DELETED for that id has arrived (a device_add sent earlier
# is refused, as QEMU refuses it with "slot 0 function 0 already occupied"); an error reply, a
# missing event (bounded) and a monitor that closes before answering fail loudly; a VM powering
# off after the answer but before the event is only noted. Each case runs under a timeout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/lib/boot.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
check() { if [ "$2" = "$3" ]; then echo "qmp-gate: PASS $1"; else echo "qmp-gate: FAIL $1 (got $2, want $3)" >&2; failures=$((failures + 1)); fi; }

# fake MODE: one QMP session on $work/qmp.sock. The device (id nic2) is deleted 1 s after
# device_del; a device_add before that gets QEMU's error. Writes what happened to $work/server.
fake() {
  python3 - "$work/qmp.sock" "$1" "$work/server" <<'PY' &
import json, os, socket, sys, time
path, mode, report = sys.argv[1:4]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(2)
srv.settimeout(20)
deleted_at = None

def session():
    global deleted_at
    c, _ = srv.accept()
    f = c.makefile("rw")
    def send(m):
        f.write(json.dumps(m) + "\n"); f.flush()
    send({"QMP": {"version": {}, "capabilities": []}})
    json.loads(f.readline()); send({"return": {}})
    req = json.loads(f.readline())
    if req["execute"] == "device_add":
        busy = deleted_at is None or time.monotonic() < deleted_at
        send({"error": {"class": "GenericError", "desc": "slot 0 function 0 already occupied"}} if busy else {"return": {}})
        return "device_add " + ("refused" if busy else "accepted")
    if mode == "error":
        send({"error": {"class": "DeviceNotFound", "desc": "Device 'nic2' not found"}}); return "error"
    if mode == "close":
        c.close(); return "closed"
    send({"return": {}})
    if mode == "never":
        time.sleep(3); return "never"
    if mode == "poweroff":
        c.close(); return "poweroff"
    time.sleep(1)
    send({"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/nic2/virtio-backend"}})
    deleted_at = time.monotonic()
    send({"event": "DEVICE_DELETED", "data": {"device": "nic2", "path": "/machine/peripheral/nic2"}})
    time.sleep(0.2)
    return "deleted"

log = [session()]
if mode == "ok":
    log.append(session())
open(report, "w").write(" ".join(log) + "\n")
PY
  server=$!
  local i=0
  while [ ! -S "$work/qmp.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}
del='{"execute":"device_del","arguments":{"id":"nic2"}}'
add='{"execute":"device_add","arguments":{"driver":"igb","id":"nic2b","bus":"rp1"}}'
run() { rm -f "$work/qmp.sock" "$work/server"; fake "$1"; shift; local rc=0; NICCLOCK_VM_QMP_TIMEOUT=2 timeout 20 bash -c "$(declare -f vm_qmp); $*" 2> "$work/err" || rc=$?; wait "$server" || true; echo "$rc"; }

rc=$(run ok "vm_qmp '$work/qmp.sock' '$del' && vm_qmp '$work/qmp.sock' '$add'")
check "device_del waits for DEVICE_DELETED, so the next device_add is accepted" "$rc $(cat "$work/server")" "0 deleted device_add accepted"
rc=$(run error "vm_qmp '$work/qmp.sock' '$del'")
check "an error reply fails, naming it" "$rc $(grep -c "FAILED.*not found" "$work/err")" "1 1"
rc=$(run never "vm_qmp '$work/qmp.sock' '$del'")
check "no DEVICE_DELETED within the bound fails, saying so" "$rc $(grep -c "no DEVICE_DELETED for 'nic2'.*within 2 s" "$work/err")" "1 1"
rc=$(run close "vm_qmp '$work/qmp.sock' '$del'")
check "a monitor closed before answering fails" "$rc $(grep -c "closed the monitor" "$work/err")" "1 1"
rc=$(run poweroff "vm_qmp '$work/qmp.sock' '$del'")
check "a VM powering off after the answer is noted, not failed" "$rc $(grep -c "powered off" "$work/err")" "0 1"
[ "$failures" = 0 ] || { echo "qmp-gate: $failures FAILED" >&2; exit 1; }
echo "qmp-gate: all passed"
