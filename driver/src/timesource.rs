//! Where "now" comes from for the clock code and the simulator: real time (CLOCK_MONOTONIC_RAW)
//! in the daemon, virtual time that moves only when told in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A monotonic time source in ns: what the simulated NIC counts and what the clock code brackets
/// its register reads with.
pub trait TimeSource: Send + Sync {
    /// Time now, ns since the source was created.
    fn now_ns(&self) -> u64;
    /// Lets time reach `t` (virtual: jumps there; real: waits for it).
    fn wait_until(&self, t: u64);
}

/// Time that moves only when told to: minutes of clock in milliseconds of test.
#[derive(Debug, Default)]
pub struct VirtualTime(AtomicU64);

impl VirtualTime {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(0)))
    }

    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
}

impl TimeSource for VirtualTime {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn wait_until(&self, t: u64) {
        self.0.fetch_max(t, Ordering::SeqCst);
    }
}

/// Real time: CLOCK_MONOTONIC_RAW since creation.
#[derive(Debug)]
pub struct RealTime {
    start: u64,
}

impl RealTime {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { start: nicclock::counter::monotonic_raw_ns() })
    }
}

impl TimeSource for RealTime {
    fn now_ns(&self) -> u64 {
        nicclock::counter::monotonic_raw_ns() - self.start
    }
    fn wait_until(&self, t: u64) {
        while self.now_ns() < t {
            std::hint::spin_loop();
        }
    }
}
