//! The i210/i211's clock ops: SYSTIMH seconds + SYSTIML ns (0..999,999,999) latched by reading
//! SYSTIMR, the 82580's ISGN rate word, and a counter software sets directly: SYSTIML, then
//! SYSTIMH. Phase steps read, add (carrying ns into seconds) and write back, with the interval
//! lost between the read and the write measured by the caller and added to the next step.

use nicclock_uio::RegisterAccess;

use super::e82580::{read_igb, running_igb, start_igb};
use super::units::{Nanos, Ppb, Ppt, RawTime, Ticks};
use super::{isgn_rate_of, isgn_timinca, ClockOps, Edge, StepMethod};
use crate::model::Family;
use crate::regs;

pub const NS_PER_S: u64 = 1_000_000_000;
/// The seconds field wraps at 2^32 s.
const WRAP_NS: i128 = (1i128 << 32) * NS_PER_S as i128;

/// i210/i211 clock ops.
#[derive(Debug, Clone, Copy)]
pub struct ClockI210;

impl ClockI210 {
    /// Sets the counter: SYSTIML first, then SYSTIMH (which takes both; DS-i210 §7.8.3.2).
    pub fn write(regs: &dyn RegisterAccess, raw: RawTime) {
        regs.write32(regs::SYSTIML, raw.lo());
        regs.write32(regs::SYSTIMH, raw.hi());
    }

    /// The reading for `ns` since the counter's epoch (seconds wrap at 2^32).
    pub fn raw_of(ns: i128) -> RawTime {
        let ns = ns.rem_euclid(WRAP_NS);
        RawTime::from_regs((ns % NS_PER_S as i128) as u32, (ns / NS_PER_S as i128) as u32)
    }
}

impl ClockOps for ClockI210 {
    fn family(&self) -> Family {
        Family::I210
    }

    fn start(&self, regs: &dyn RegisterAccess) {
        start_igb(regs);
    }

    fn running(&self, regs: &dyn RegisterAccess) -> bool {
        running_igb(regs)
    }

    fn read(&self, regs: &dyn RegisterAccess, edge: &mut dyn FnMut(Edge)) -> (u32, u32) {
        read_igb(regs, edge)
    }

    fn latch(&self) -> Option<super::Latch> {
        Some(super::Latch::Residue)
    }

    fn tick_shift(&self) -> u32 {
        0
    }

    fn ns_of(&self, raw: RawTime) -> Nanos {
        Nanos(raw.hi() as i128 * NS_PER_S as i128 + raw.lo() as i128)
    }

    /// Seconds apart within ±2^31 s (68 years), plus the ns difference.
    fn ticks_between(&self, from: RawTime, to: RawTime) -> Ticks {
        let seconds = to.hi().wrapping_sub(from.hi()) as i32 as i64;
        Ticks(seconds * NS_PER_S as i64 + (to.lo() as i64 - from.lo() as i64))
    }

    fn advance(&self, raw: RawTime, ticks: Ticks) -> RawTime {
        Self::raw_of(self.ns_of(raw).0 + ticks.0 as i128)
    }

    fn nominal_timinca(&self) -> u32 {
        0
    }

    fn timinca(&self, rate: Ppt) -> u32 {
        isgn_timinca(rate)
    }

    fn rate_of(&self, timinca: u32) -> Ppb {
        isgn_rate_of(timinca)
    }

    fn step_method(&self) -> StepMethod {
        StepMethod::ReadAddWrite
    }

    /// Reads SYSTIMR/L/H, adds `delta + lost` (ns into seconds), writes SYSTIML then SYSTIMH.
    fn write_step(&self, regs: &dyn RegisterAccess, delta: Ticks, lost: Ticks) -> bool {
        let (lo, hi) = read_igb(regs, &mut |_| {});
        let now = self.raw_from_regs(lo, hi);
        Self::write(regs, self.advance(now, Ticks(delta.0.saturating_add(lost.0))));
        true
    }
}
