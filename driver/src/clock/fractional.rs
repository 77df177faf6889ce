//! What the 82574 and 82576 share: a 64-bit SYSTIM counting 2^-shift ns, latched by reading
//! SYSTIML, and a TIMINCA of increment period (bits 31:24) and INCVALUE (bits 23:0).

use nicclock_uio::RegisterAccess;

use super::units::{Ppb, Ppt, RawTime, Ticks};
use super::Edge;
use crate::regs::{self, TIMINCA_VALUE_MASK};

/// Reads SYSTIML (latching SYSTIMH) inside the bracket, then SYSTIMH.
pub(super) fn read(regs: &dyn RegisterAccess, edge: &mut dyn FnMut(Edge)) -> (u32, u32) {
    edge(Edge::Before);
    let lo = regs.read32(regs::SYSTIML);
    edge(Edge::After);
    (lo, regs.read32(regs::SYSTIMH))
}

/// Ticks between two 64-bit readings, within ±2^63 (half the wrap).
pub(super) fn ticks_between(from: RawTime, to: RawTime) -> Ticks {
    Ticks(to.0.wrapping_sub(from.0) as i64)
}

pub(super) fn advance(raw: RawTime, ticks: Ticks) -> RawTime {
    RawTime(raw.0.wrapping_add_signed(ticks.0))
}

/// TIMINCA for `rate` relative to the nominal word `base`: INCVALUE = base ± ⌊base·|rate|⌋
/// (Linux's `adjust_by_scaled_ppm`, truncating the magnitude), the period kept, the value held
/// inside 1..=0xFFFFFF.
pub fn fractional_timinca(base: u32, rate: Ppt) -> u32 {
    let inc = (base & TIMINCA_VALUE_MASK) as i128;
    let diff = inc * rate.0.unsigned_abs() as i128 / 1_000_000_000_000;
    let value = if rate.0 < 0 { inc - diff } else { inc + diff };
    (base & !TIMINCA_VALUE_MASK) | value.clamp(1, TIMINCA_VALUE_MASK as i128) as u32
}

/// The rate TIMINCA word `word` gives relative to nominal `base`.
pub fn fractional_rate_of(base: u32, word: u32) -> Ppb {
    let inc = (base & TIMINCA_VALUE_MASK) as f64;
    Ppb(((word & TIMINCA_VALUE_MASK) as f64 - inc) / inc * 1e9)
}
