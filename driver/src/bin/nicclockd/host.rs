//! The real machine as the discipline loop sees it: the page counter (TSC or MONOTONIC_RAW) and
//! the reference clock (CLOCK_REALTIME + TAI offset, or CLOCK_TAI).

use nicclock::{counter, CounterKind};
use nicclock_driver::measure::Host;
use nicclock_driver::ptp::quality::KernelTime;
use nix::time::{clock_gettime, ClockId};

use crate::args::Reference;

/// TAI − UTC since 2017-01-01 (IERS Bulletin C), used when neither the kernel nor the admin says.
pub const TAI_UTC_DEFAULT: i32 = 37;

pub struct RealHost {
    kind: CounterKind,
    clock: ClockId,
    offset_ns: u64,
    tai_utc: i32,
    /// Reference ns per counter tick from a 50 ms calibration, and its relative uncertainty.
    calibration: (f64, f64),
}

fn ns(clock: ClockId) -> u64 {
    let t = clock_gettime(clock).expect("clock exists");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// The kernel's TAI offset (CLOCK_TAI − CLOCK_REALTIME, rounded), 0 when never set.
pub fn kernel_tai_offset() -> i32 {
    let tai = ns(ClockId::CLOCK_TAI) as i128;
    let utc = ns(ClockId::CLOCK_REALTIME) as i128;
    ((tai - utc) as f64 / 1e9).round() as i32
}

/// The kernel's own time state, read only (adjtimex with no modes: it changes nothing): its TAI
/// offset, a pending leap second, whether something keeps the clock synchronized. `None` when the
/// call fails (it does not for a read).
pub fn kernel_time() -> Option<KernelTime> {
    let t = crate::sys::adjtimex_read()?;
    Some(KernelTime {
        tai_offset_s: t.tai,
        leap_insert: t.status & libc::STA_INS != 0,
        leap_delete: t.status & libc::STA_DEL != 0,
        synchronized: t.status & libc::STA_UNSYNC == 0,
    })
}

impl RealHost {
    /// Returns the host and a sentence saying where the TAI offset came from.
    pub fn new(reference: Reference, tai_offset: Option<i32>) -> (Self, String) {
        let kernel = kernel_tai_offset();
        let (tai_utc, source) = match (tai_offset, kernel) {
            (Some(o), _) => (o, "from --tai-offset".to_string()),
            (None, 0) => (TAI_UTC_DEFAULT, "default (the kernel's TAI offset is not set)".to_string()),
            (None, k) => (k, "from the kernel".to_string()),
        };
        let (clock, offset_ns) = match reference {
            Reference::Realtime => (ClockId::CLOCK_REALTIME, tai_utc as u64 * 1_000_000_000),
            Reference::Tai => (ClockId::CLOCK_TAI, 0),
        };
        let kind = counter::best_available();
        let a = counter::sample_clock(kind, clock.as_raw(), 5);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let b = counter::sample_clock(kind, clock.as_raw(), 5);
        let ticks = b.counter.wrapping_sub(a.counter).max(1) as f64;
        let rate = (b.clock_ns - a.clock_ns) as f64 / ticks;
        // Each end is uncertain by half its bracket; allow 10 ppm on top for the reference's slew.
        let relative = (a.window + b.window) as f64 / 2.0 / ticks + 1e-5;
        let host = Self { kind, clock, offset_ns, tai_utc, calibration: (rate, relative) };
        (host, format!("TAI-UTC {tai_utc} s {source}"))
    }
}

impl Host for RealHost {
    fn counter_kind(&self) -> CounterKind {
        self.kind
    }
    #[inline]
    fn counter(&self) -> u64 {
        counter::read(self.kind).expect("best_available() only picks readable counters")
    }
    #[inline]
    fn reference_ns(&self) -> u64 {
        ns(self.clock) + self.offset_ns
    }
    fn reference_clock(&self) -> Option<(libc::clockid_t, u64)> {
        Some((self.clock.as_raw(), self.offset_ns))
    }
    fn tai_utc_offset_s(&self) -> i32 {
        self.tai_utc
    }
    fn ns_per_tick(&self) -> (f64, f64) {
        self.calibration
    }
}
