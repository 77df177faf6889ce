//! The 82574/82583's clock ops: 64-bit SYSTIM in 2^-18 ns at 25 MHz, whose reads are unreliable
//! (erratum): SYSTIMH may miss the SYSTIML wrap, and bits may read wrong, so every reading is
//! re-read until two in a row advance plausibly (igb-family.md §2.4, e1000e's rules).

use std::sync::atomic::{AtomicBool, Ordering};

use nicclock_uio::RegisterAccess;

use super::units::{Ppb, Ppt, RawTime, Ticks};
use super::{fractional, fractional_rate_of, fractional_timinca, ClockOps, Edge};
use crate::model::{Family, Model, Quirks};
use crate::regs::{self, timinca, TIMINCA_VALUE_MASK};

/// Most re-reads of one reading (e1000e's `E1000_MAX_82574_SYSTIM_REREADS`).
pub const REREADS: usize = 50;
/// Two readings in a row closer than this (2^35 ticks = 131 µs) are plausible
/// (e1000e's `E1000_82574_SYSTIM_EPSILON`).
pub const SANE_DELTA_TICKS: u64 = 1 << 35;
/// SYSTIML this close to its wrap is read again: SYSTIMH may not have latched (e1000e's rule).
const NEAR_WRAP: u32 = u32::MAX - 0x00FF_FFFF;

/// 82574/82583 clock ops.
#[derive(Debug)]
pub struct Clock82574 {
    base: u32,
    /// The counter moves in whole increments (real silicon): a difference that is not a multiple
    /// of INCVALUE is a bad read. Learnt at start; QEMU counts continuously.
    whole_increments: AtomicBool,
}

impl Clock82574 {
    pub fn new(model: &Model, quirks: Quirks) -> Self {
        let base =
            if quirks.contains(Quirks::SIXTEEN_NS_TICK) { timinca(1, 16 << 18) } else { model.base_timinca };
        Self { base, whole_increments: AtomicBool::new(false) }
    }

    /// One reading of SYSTIM with the wrap re-read: when SYSTIML is near its wrap, it is read
    /// again, and if it wrapped meanwhile the reading starts over.
    fn read_once(regs: &dyn RegisterAccess, edge: &mut dyn FnMut(Edge)) -> u64 {
        let mut raw = 0;
        for _ in 0..4 {
            let (lo, hi) = fractional::read(regs, edge);
            raw = RawTime::from_regs(lo, hi).0;
            if lo < NEAR_WRAP || regs.read32(regs::SYSTIML) >= lo {
                break;
            }
        }
        raw
    }
}

/// The 82574 erratum's sanitizing: after `first`, readings are taken from `next` until two in a
/// row differ by less than [`SANE_DELTA_TICKS`] and (when the counter moves in whole increments)
/// by a multiple of `incvalue`, at most [`REREADS`] times; the last reading is the answer.
pub fn sanitized(first: u64, mut next: impl FnMut() -> u64, incvalue: u32, whole_increments: bool) -> u64 {
    let mut last = first;
    for _ in 0..REREADS {
        let reading = next();
        let delta = reading.wrapping_sub(last);
        last = reading;
        let whole = match (whole_increments, incvalue) {
            (false, _) => true,
            (true, 0) => delta == 0,
            (true, inc) => delta % inc as u64 == 0,
        };
        if delta < SANE_DELTA_TICKS && whole {
            break;
        }
    }
    last
}

impl ClockOps for Clock82574 {
    fn family(&self) -> Family {
        Family::E82574
    }

    fn start(&self, regs: &dyn RegisterAccess) {
        regs.write32(regs::TIMINCA, self.base);
        // Whole increments if a few consecutive readings all moved by multiples of INCVALUE.
        let inc = (self.base & TIMINCA_VALUE_MASK) as u64;
        let mut none = |_| {};
        let mut last = Self::read_once(regs, &mut none);
        let (mut whole, mut moved) = (true, false);
        for _ in 0..4 {
            let r = Self::read_once(regs, &mut none);
            let d = r.wrapping_sub(last);
            whole &= d % inc == 0 && d < SANE_DELTA_TICKS;
            moved |= d != 0;
            last = r;
        }
        self.whole_increments.store(whole && moved, Ordering::Relaxed);
    }

    fn running(&self, regs: &dyn RegisterAccess) -> bool {
        regs.read32(regs::TIMINCA) != 0
    }

    fn read(&self, regs: &dyn RegisterAccess, edge: &mut dyn FnMut(Edge)) -> (u32, u32) {
        let first = Self::read_once(regs, edge);
        let whole = self.whole_increments.load(Ordering::Relaxed);
        // The increment only matters on a counter that moves in whole ones (an MMIO read less
        // per reading on QEMU, where each one traps).
        let incvalue = if whole { regs.read32(regs::TIMINCA) & TIMINCA_VALUE_MASK } else { 0 };
        let raw = RawTime(sanitized(first, || Self::read_once(regs, edge), incvalue, whole));
        (raw.lo(), raw.hi())
    }

    fn tick_shift(&self) -> u32 {
        18
    }

    fn ticks_between(&self, from: RawTime, to: RawTime) -> Ticks {
        fractional::ticks_between(from, to)
    }

    fn advance(&self, raw: RawTime, ticks: Ticks) -> RawTime {
        fractional::advance(raw, ticks)
    }

    fn nominal_timinca(&self) -> u32 {
        self.base
    }

    fn timinca(&self, rate: Ppt) -> u32 {
        fractional_timinca(self.base, rate)
    }

    fn rate_of(&self, timinca: u32) -> Ppb {
        fractional_rate_of(self.base, timinca)
    }
}
