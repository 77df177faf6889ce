//! The 82580/i350/i354's clock ops: a 40-bit ns counter (SYSTIMH[7:0]:SYSTIML) latched by reading
//! SYSTIMR, counting 8 ns every 8 ns ± TIMINCA·2^-32 ns (ISGN: minus); wraps every 18.3 minutes,
//! extended by the timecounter. Phase steps stay in the timecounter, as Linux does.

use nicclock_uio::RegisterAccess;

use super::units::{Nanos, Ppb, Ppt, RawTime, Ticks};
use super::{ClockOps, Edge};
use crate::model::Family;
use crate::regs::{self, TIMINCA_INCVALUE_MASK, TIMINCA_ISGN, TSAUXC_DISABLE};

const MASK40: u64 = (1 << 40) - 1;

/// TIMINCA for `rate` on 82580/i350/i210: magnitude ⌊|rate|·2^35⌋ (2^-32 ns per 8 ns tick; Linux's
/// `diff_by_scaled_ppm(2^35, …)`), ISGN set for a negative rate.
pub fn isgn_timinca(rate: Ppt) -> u32 {
    let magnitude = ((rate.0.unsigned_abs() as u128) << 35) / 1_000_000_000_000;
    let word = magnitude.min(TIMINCA_INCVALUE_MASK as u128) as u32;
    if rate.0 < 0 {
        word | TIMINCA_ISGN
    } else {
        word
    }
}

/// The rate an ISGN TIMINCA word gives.
pub fn isgn_rate_of(word: u32) -> Ppb {
    let magnitude = (word & TIMINCA_INCVALUE_MASK) as f64 * 1e9 / (1u64 << 35) as f64;
    Ppb(if word & TIMINCA_ISGN != 0 { -magnitude } else { magnitude })
}

/// Starts an 82580+ counter: nominal rate (TIMINCA 0: 8 ns per 8 ns) and counting enabled
/// (TSAUXC bit 31 cleared; the other TSAUXC bits are the pins').
pub(super) fn start_igb(regs: &dyn RegisterAccess) {
    regs.write32(regs::TIMINCA, 0);
    let tsauxc = regs.read32(regs::TSAUXC);
    regs.write32(regs::TSAUXC, tsauxc & !TSAUXC_DISABLE);
}

pub(super) fn running_igb(regs: &dyn RegisterAccess) -> bool {
    regs.read32(regs::TSAUXC) & TSAUXC_DISABLE == 0
}

/// Reads SYSTIMR (which latches the counter) inside the bracket, then SYSTIML and SYSTIMH.
pub(super) fn read_igb(regs: &dyn RegisterAccess, edge: &mut dyn FnMut(Edge)) -> (u32, u32) {
    edge(Edge::Before);
    regs.read32(regs::SYSTIMR);
    edge(Edge::After);
    let lo = regs.read32(regs::SYSTIML);
    (lo, regs.read32(regs::SYSTIMH))
}

/// 82580/i350/i354 clock ops.
#[derive(Debug, Clone, Copy)]
pub struct Clock82580;

impl ClockOps for Clock82580 {
    fn family(&self) -> Family {
        Family::E82580
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

    /// SYSTIMH bits 31:8 are reserved.
    fn raw_from_regs(&self, lo: u32, hi: u32) -> RawTime {
        RawTime::from_regs(lo, hi & 0xFF)
    }

    fn raw_to_regs(&self, raw: RawTime) -> (u32, u32) {
        (raw.lo(), raw.hi() & 0xFF)
    }

    fn tick_shift(&self) -> u32 {
        0
    }

    fn ns_of(&self, raw: RawTime) -> Nanos {
        Nanos((raw.0 & MASK40) as i128)
    }

    /// The 40-bit difference, sign-extended: within ±2^39 ns (9.2 minutes) either way.
    fn ticks_between(&self, from: RawTime, to: RawTime) -> Ticks {
        let d = to.0.wrapping_sub(from.0) & MASK40;
        Ticks(((d << 24) as i64) >> 24)
    }

    fn advance(&self, raw: RawTime, ticks: Ticks) -> RawTime {
        RawTime(raw.0.wrapping_add_signed(ticks.0) & MASK40)
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
}
