#!/usr/bin/env bash
# Every test of the project, on a fresh machine: installs what it needs, then format, lints,
# the workspace tests (unit, integration, multi-process, C ABI), the loom model, the benchmarks and
# the QEMU VM scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/setup.sh

step() { printf '\n== %s\n' "$*"; }
# Each build directory, once no later step needs it, goes when NICCLOCK_PRUNE_TARGET=1 (.ci/run sets
# it: a CI machine's disk may be small; a developer's build cache stays otherwise).
prune() { [ "${NICCLOCK_PRUNE_TARGET:-}" != 1 ] || { echo "(pruning $*: not needed by later steps)"; rm -rf "$@"; }; }
free_gib() { df -Pk "${CARGO_TARGET_DIR:-target}" 2>/dev/null | awk 'NR==2 {printf "%.1f", $4 / 1048576}'; }
mkdir -p target
echo "disk: $(free_gib) GiB free under target/ (builds peak at about 1.2 GiB there with NICCLOCK_PRUNE_TARGET=1, 1.8 without; the VM cache takes 0.8)"

step "format"
cargo fmt --all -- --check
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "workspace tests"
cargo test --workspace
prune target/debug
step "PTP frame parser fuzz (10 M random and mutated frames, release; prints count and time)"
cargo test --release -p nicclock-driver --test frame_fuzz -- --nocapture
step "loom model of the seqlock"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p nicclock --lib --release loom_model
prune target/loom
step "reader benchmarks (ratios are printed, not asserted)"
cargo bench -p nicclock --bench readers
step "discipline benchmark (figures on the simulated NIC)"
cargo bench -p nicclock-driver --bench discipline
step "PTP benchmark (figures on the simulated wire: frames through the simulated NICs' rings and stamps)"
cargo bench -p nicclock-driver --bench ptp
step "PTP slave idle CPU (the release daemon on the simulated NIC, a simulated master at 8 Sync/s in real time)"
cargo bench -p nicclock-driver --bench ptp_idle
step "Debian package (build, lintian without errors, dpkg install, purge leaves nothing)"
bash packaging/deb/check.sh
step "the lab runner's QMP relay against a fake monitor (device_del waits for DEVICE_DELETED)"
timeout 120 bash qemu/tests/qmp-gate.sh
step "QEMU VM scenarios (emulated e1000e and igb through VFIO and UIO; faults and hot-unplug; phc2sys; PTP slave against ptp4l; PTP master and auto role with ptp4l; nicclockd master and slave with hardware stamps; systemd + udev)"
qemu/vm setup
qemu/vm build
qemu/vm sysbuild
qemu/vm run vfio uio faults versus-phc2sys ptp-slave ptp-interop ptp-pair systemd
