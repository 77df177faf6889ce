//! The timecounter: extends a family's raw readings past their wrap and turns them into
//! disciplined nanoseconds, at a software rate factor (software steering), keeping sub-ns carry.

use super::units::{Nanos, RawTime, Ticks};
use super::ClockOps;

/// Disciplined time at the last reading, and the sub-ns remainder in ticks.
#[derive(Debug, Clone, Copy)]
pub struct Timecounter {
    last: RawTime,
    ns: Nanos,
    /// Ticks not yet counted as whole ns, in [0, 2^shift).
    carry: f64,
}

impl Timecounter {
    /// Starts at what the counter itself says `raw` is.
    pub fn new(ops: &dyn ClockOps, raw: RawTime) -> Self {
        Self { last: raw, ns: ops.ns_of(raw), carry: 0.0 }
    }

    /// (ns, carry) at a reading `delta` ticks after the last one, at rate `factor`. Integer
    /// arithmetic for the ticks themselves (a step of decades stays exact), f64 for the rate's
    /// small share.
    fn project(&self, shift: u32, delta: Ticks, factor: f64) -> (Nanos, f64) {
        let extra = delta.0 as f64 * (factor - 1.0) + self.carry;
        let extra_whole = extra.floor();
        let units = delta.0 as i128 + extra_whole as i128;
        let whole_ns = units >> shift;
        let carry = (units - (whole_ns << shift)) as f64 + (extra - extra_whole);
        (Nanos(self.ns.0 + whole_ns), carry)
    }

    /// Disciplined time at `raw` (a reading within half the wrap of the last), advancing to it.
    pub fn update(&mut self, ops: &dyn ClockOps, raw: RawTime, factor: f64) -> Nanos {
        let delta = ops.ticks_between(self.last, raw);
        (self.ns, self.carry) = self.project(ops.tick_shift(), delta, factor);
        self.last = raw;
        self.ns
    }

    /// Disciplined time at `raw` without advancing (a stamp: AUXSTMP, Tx/Rx), Linux's
    /// `timecounter_cyc2time`: valid within half the wrap of the last reading.
    pub fn at(&self, ops: &dyn ClockOps, raw: RawTime, factor: f64) -> Nanos {
        self.project(ops.tick_shift(), ops.ticks_between(self.last, raw), factor).0
    }

    /// The reading at which the disciplined time will be `ns` (a target time), to a tick.
    pub fn raw_at(&self, ops: &dyn ClockOps, ns: Nanos, factor: f64) -> RawTime {
        let d = (ns.0 - self.ns.0) << ops.tick_shift();
        let correction = (d as f64 * (1.0 / factor - 1.0) - self.carry / factor).round();
        let ticks = (d + correction as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        ops.advance(self.last, Ticks(ticks))
    }

    /// Moves the disciplined time by `delta` (a step in software).
    pub fn shift(&mut self, delta: Nanos) {
        self.ns += delta;
    }

    pub fn last(&self) -> RawTime {
        self.last
    }
}
