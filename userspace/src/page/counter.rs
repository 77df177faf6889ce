//! The free-running counters a page's mapping is expressed in: x86 invariant TSC or CLOCK_MONOTONIC_RAW.
//! Reading them is the reader's only per-call work besides the seqlock; neither makes a syscall.

use std::fs;

use nix::time::{clock_gettime, ClockId};

use crate::abi::CounterKind;

/// Reads the counter, or `None` when this machine cannot read that kind (a TSC page on a non-x86 CPU).
#[inline]
pub fn read(kind: CounterKind) -> Option<u64> {
    match kind {
        CounterKind::Tsc => tsc(),
        CounterKind::MonotonicRaw => Some(monotonic_raw_ns()),
    }
}

/// `lfence; rdtsc`, as the vDSO's `rdtsc_ordered` does: the read is not hoisted above earlier loads.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn tsc() -> Option<u64> {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: lfence is SSE2, part of the x86_64 baseline; rdtsc is an unprivileged instruction on
    // Linux (CR4.TSD is clear for user processes). Neither touches memory.
    Some(unsafe {
        _mm_lfence();
        _rdtsc()
    })
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub fn tsc() -> Option<u64> {
    None
}

/// CLOCK_MONOTONIC_RAW in nanoseconds (served by the vDSO).
#[inline]
pub fn monotonic_raw_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC_RAW).expect("CLOCK_MONOTONIC_RAW exists on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// One (counter, clock) pair: the clock read between two counter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Counter value at the middle of the window.
    pub counter: u64,
    /// The clock's reading, ns since its epoch.
    pub clock_ns: u64,
    /// Counter ticks between the two counter reads (the sample's uncertainty is half of it).
    pub window: u64,
}

/// Sandwich-reads `clock` between counter reads `reads` times (as phc2sys does) and keeps the one
/// with the narrowest window. Panics if `kind` cannot be read here (check [`read`] first).
pub fn sample_clock(kind: CounterKind, clock: libc::clockid_t, reads: usize) -> ClockSample {
    let id = ClockId::from_raw(clock);
    let mut best: Option<ClockSample> = None;
    for _ in 0..reads.max(1) {
        let c1 = read(kind).expect("counter readable on this machine");
        let t = clock_gettime(id).expect("clock exists");
        let c2 = read(kind).expect("counter readable on this machine");
        let window = c2.wrapping_sub(c1);
        let sample = ClockSample {
            counter: c1.wrapping_add(window / 2),
            clock_ns: t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64,
            window,
        };
        if best.is_none_or(|b| sample.window < b.window) {
            best = Some(sample);
        }
    }
    best.expect("at least one read")
}

/// The counter a writer should publish in: the TSC when the CPU's is invariant (constant_tsc and
/// nonstop_tsc) and the kernel trusts it as its clocksource, else CLOCK_MONOTONIC_RAW.
pub fn best_available() -> CounterKind {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let clocksource = fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .unwrap_or_default();
    if tsc().is_some() && tsc_is_invariant(&cpuinfo) && clocksource.trim() == "tsc" {
        CounterKind::Tsc
    } else {
        CounterKind::MonotonicRaw
    }
}

/// Whether /proc/cpuinfo's first `flags` line names both constant_tsc and nonstop_tsc.
pub fn tsc_is_invariant(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| {
            let flags: Vec<&str> = l.split_whitespace().collect();
            flags.contains(&"constant_tsc") && flags.contains(&"nonstop_tsc")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invariant_tsc_needs_both_flags() {
        assert!(tsc_is_invariant("processor: 0\nflags\t\t: fpu tsc constant_tsc nonstop_tsc sse2\n"));
        assert!(!tsc_is_invariant("flags\t\t: fpu tsc constant_tsc sse2\n"));
        assert!(!tsc_is_invariant("flags\t\t: fpu tsc nonstop_tsc\n"));
        assert!(!tsc_is_invariant("processor: 0\n"));
    }

    #[test]
    fn counters_advance() {
        let kind = best_available();
        let a = read(kind).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = read(kind).unwrap();
        assert!(b > a, "{kind:?} did not advance: {a} then {b}");
    }
}
