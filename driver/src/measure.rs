//! Offset of the NIC clock from the reference, as phc2sys measures it: N reads of SYSTIML (more
//! when all were disturbed), each bracketed by (counter, reference) stamps; the narrowest wins.

use nicclock::CounterKind;
use nicclock_uio::RegisterAccess;

use crate::clock::{DeviceLost, Edge, Nanos, Phc};
use crate::vdso::SystemClock;

/// The machine around the NIC: the counter the page is expressed in and the reference clock.
pub trait Host {
    /// Which counter [`Host::counter`] reads (the page's counter kind).
    fn counter_kind(&self) -> CounterKind;
    /// The page's counter now.
    fn counter(&self) -> u64;
    /// The reference clock now, TAI ns.
    fn reference_ns(&self) -> u64;
    /// When the reference is a system clock: its id and the ns to add to it for TAI. [`measure`]
    /// then reads it itself inside the bracket, with no call through this trait there (each
    /// indirect call widens the bracket: under QEMU's TCG by tens of ns). `None`: use
    /// [`Host::reference_ns`].
    fn reference_clock(&self) -> Option<(libc::clockid_t, u64)> {
        None
    }
    /// TAI − UTC the reference implies (for the page).
    fn tai_utc_offset_s(&self) -> i32 {
        37
    }
    /// Reference ns per counter tick as calibrated at start-up, and its relative uncertainty
    /// (used until the loop has measured the rate itself).
    fn ns_per_tick(&self) -> (f64, f64);
}

/// One measurement (the narrowest of N reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// NIC − reference, ns (linuxptp's sign).
    pub offset_ns: i64,
    /// Width of the reference bracket around the SYSTIML read, ns ("delay" in phc2sys).
    pub delay_ns: u64,
    /// Disciplined NIC time at the read, ns.
    pub nic_ns: Nanos,
    /// Reference time at the bracket's midpoint, TAI ns.
    pub reference_ns: u64,
    /// Counter at the bracket's midpoint (the page anchor pairs it with `nic_ns`).
    pub counter: u64,
    /// Counter ticks across the bracket.
    pub counter_window: u64,
}

/// Most reads one measurement may take, as a multiple of `readings`.
pub const MAX_READINGS_FACTOR: usize = 4;

/// Takes `readings` bracketed reads and keeps the one with the shortest reference bracket. When
/// even the best of them is wider than `good_enough_ns` (the caller's idea of this machine's
/// usual best), it reads on, up to [`MAX_READINGS_FACTOR`] × `readings`: a read costs about a
/// microsecond here, not a syscall, and a wide bracket is an uncertain offset.
pub fn measure<R: RegisterAccess>(
    phc: &mut Phc<R>,
    host: &dyn Host,
    readings: usize,
    good_enough_ns: Option<u64>,
) -> Result<Measurement, DeviceLost> {
    measure_from(phc, host, readings, readings, good_enough_ns)
}

/// As [`measure`], but done at the first read within `good_enough_ns` (when the caller has an
/// idea of it; else `readings` as [`measure`]): for a page whose bound does not need the best of
/// several (PTP: the mapping's half-bracket is a small share of the bound, `ptp::page`). Each
/// read is two trapped register accesses under QEMU, ~10 per update at `--readings 5`.
pub fn measure_until_good<R: RegisterAccess>(
    phc: &mut Phc<R>,
    host: &dyn Host,
    readings: usize,
    good_enough_ns: Option<u64>,
) -> Result<Measurement, DeviceLost> {
    let at_least = if good_enough_ns.is_some() { 1 } else { readings };
    measure_from(phc, host, at_least, readings, good_enough_ns)
}

/// At least `at_least` reads; then on while the best (the shortest delay) is above
/// `good_enough_ns`, up to [`MAX_READINGS_FACTOR`] × `readings`.
fn measure_from<R: RegisterAccess>(
    phc: &mut Phc<R>,
    host: &dyn Host,
    at_least: usize,
    readings: usize,
    good_enough_ns: Option<u64>,
) -> Result<Measurement, DeviceLost> {
    let limits = Limits { at_least, readings, good_enough_ns };
    // The bracket's edges: a system clock read directly (the vDSO's clock_gettime, one call),
    // else the host's reference. One loop per kind: nothing is decided inside a bracket.
    match host.reference_clock() {
        Some((id, offset)) => {
            let clock = SystemClock::new(id);
            best_of(phc, host, limits, || clock.now_ns() + offset)
        }
        None => best_of(phc, host, limits, || host.reference_ns()),
    }
}

/// How many reads [`best_of`] takes.
#[derive(Clone, Copy)]
struct Limits {
    at_least: usize,
    readings: usize,
    good_enough_ns: Option<u64>,
}

fn best_of<R: RegisterAccess>(
    phc: &mut Phc<R>,
    host: &dyn Host,
    limits: Limits,
    reference: impl Fn() -> u64,
) -> Result<Measurement, DeviceLost> {
    let readings = limits.readings.max(1);
    let at_least = limits.at_least.clamp(1, readings);
    let mut best: Option<Measurement> = None;
    for i in 0..readings * MAX_READINGS_FACTOR {
        if i >= at_least && best.is_some_and(|b| limits.good_enough_ns.is_none_or(|g| b.delay_ns <= g)) {
            break;
        }
        // counter, reference, [SYSTIML], reference, counter: the reference brackets the NIC read
        // alone (the offset's uncertainty, "delay"); the counter brackets both (the anchor's).
        let ((c1, r1), raw, (c2, r2)) = phc.read_raw_bracketed(|edge| match edge {
            Edge::Before => {
                let c = host.counter();
                (c, reference())
            }
            Edge::After => {
                let r = reference();
                (host.counter(), r)
            }
        })?;
        let nic_ns = phc.time_at(raw);
        let delay_ns = r2.saturating_sub(r1);
        let reference_ns = r1 + delay_ns / 2;
        let m = Measurement {
            offset_ns: (nic_ns - Nanos(reference_ns as i128)).as_i64(),
            delay_ns,
            nic_ns,
            reference_ns,
            counter: c1 + c2.wrapping_sub(c1) / 2,
            counter_window: c2.wrapping_sub(c1),
        };
        if best.is_none_or(|b| m.delay_ns < b.delay_ns) {
            best = Some(m);
        }
    }
    Ok(best.expect("at least one reading"))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;

    use super::*;
    use crate::clock::Steering;
    use crate::model::{model, Quirks, INTEL};
    use crate::sim::{SimConfig, SimNic};
    use crate::timesource::{TimeSource, VirtualTime};

    /// Virtual time that counts its reference reads (two per bracketed read).
    struct CountingHost {
        time: Arc<VirtualTime>,
        reference_reads: Cell<usize>,
    }

    impl Host for CountingHost {
        fn counter_kind(&self) -> CounterKind {
            CounterKind::MonotonicRaw
        }
        fn counter(&self) -> u64 {
            self.time.now_ns()
        }
        fn reference_ns(&self) -> u64 {
            self.reference_reads.set(self.reference_reads.get() + 1);
            self.time.now_ns()
        }
        fn ns_per_tick(&self) -> (f64, f64) {
            (1.0, 0.0)
        }
    }

    fn reads_taken(good_enough_ns: Option<u64>) -> usize {
        reads_taken_by(measure, good_enough_ns)
    }

    type Measure =
        fn(&mut Phc<Arc<SimNic>>, &dyn Host, usize, Option<u64>) -> Result<Measurement, DeviceLost>;

    fn reads_taken_by(how: Measure, good_enough_ns: Option<u64>) -> usize {
        let time = VirtualTime::new();
        // Every SYSTIML read takes 1000 ± 200 ns of (virtual) bus time.
        let config = SimConfig { read_latency_ns: 1000, read_jitter_ns: 200, ..SimConfig::ideal() };
        let nic = Arc::new(SimNic::new(config, time.clone()));
        let m = model(INTEL, 0x10C9).unwrap();
        let mut phc = Phc::init(nic, m, Quirks::empty(), Steering::Software, time.clone()).unwrap();
        let host = CountingHost { time, reference_reads: Cell::new(0) };
        let best = how(&mut phc, &host, 5, good_enough_ns).unwrap();
        assert!(best.delay_ns >= 500, "a bracket holds the bus time: {best:?}");
        host.reference_reads.get() / 2
    }

    /// A host whose reference is CLOCK_MONOTONIC + 1 s, read by `measure` itself.
    struct SystemClockHost {
        time: Arc<VirtualTime>,
    }

    impl Host for SystemClockHost {
        fn counter_kind(&self) -> CounterKind {
            CounterKind::MonotonicRaw
        }
        fn counter(&self) -> u64 {
            self.time.now_ns()
        }
        fn reference_ns(&self) -> u64 {
            panic!("a system-clock reference is read inside the bracket, not through the trait")
        }
        fn reference_clock(&self) -> Option<(libc::clockid_t, u64)> {
            Some((libc::CLOCK_MONOTONIC, 1_000_000_000))
        }
        fn ns_per_tick(&self) -> (f64, f64) {
            (1.0, 0.0)
        }
    }

    #[test]
    fn a_system_clock_reference_is_read_directly_with_its_offset() {
        let time = VirtualTime::new();
        let nic = Arc::new(SimNic::new(SimConfig::ideal(), time.clone()));
        let m = model(INTEL, 0x10C9).unwrap();
        let mut phc = Phc::init(nic, m, Quirks::empty(), Steering::Software, time.clone()).unwrap();
        let host = SystemClockHost { time };
        let monotonic = SystemClock::libc(libc::CLOCK_MONOTONIC);
        let before = monotonic.now_ns() + 1_000_000_000;
        let best = measure(&mut phc, &host, 5, None).unwrap();
        let after = monotonic.now_ns() + 1_000_000_000;
        assert!(
            (before..=after).contains(&best.reference_ns),
            "reference {} outside [{before}, {after}]",
            best.reference_ns
        );
        assert!(best.delay_ns <= after - before, "{best:?}");
    }

    #[test]
    fn reads_on_only_while_the_best_is_worse_than_good_enough() {
        assert_eq!(reads_taken(None), 5, "no idea of the usual best: the configured readings");
        assert_eq!(reads_taken(Some(1_000_000)), 5, "the first readings were good enough");
        assert_eq!(reads_taken(Some(1)), 5 * MAX_READINGS_FACTOR, "never good enough: up to the cap");
    }

    #[test]
    fn until_good_stops_at_the_first_good_read() {
        assert_eq!(reads_taken_by(measure_until_good, None), 5, "no idea of good: the configured readings");
        assert_eq!(reads_taken_by(measure_until_good, Some(1_000_000)), 1, "the first read was good enough");
        assert_eq!(
            reads_taken_by(measure_until_good, Some(1)),
            5 * MAX_READINGS_FACTOR,
            "never good enough: up to the same cap"
        );
    }
}
