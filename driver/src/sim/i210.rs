//! i210/i211 SYSTIM registers (igb-family.md §2.3, DS-i210 §8.15): seconds and ns that software
//! sets directly, a residue register that latches them, and TIMADJ.
//!
//! SYSTIMH seconds, SYSTIML ns 0..999,999,999 (carried into SYSTIMH at 1e9), SYSTIMR a 2^-32 ns
//! residue; reading SYSTIMR latches SYSTIML and SYSTIMH. A SYSTIML write replaces the ns and a
//! SYSTIMH write the seconds, each at once, the counter running on from the written value (the
//! datasheet asks for SYSTIML first; residue cleared) **[inference: fields written in place]**.
//! TIMADJ (0xB60C): Tadjus[29:0] ns, sign bit 31, added at once when non-zero and below
//! 999,999,900, completion flagged in TSICR.TADJ **[inference: a single step]**.

use super::{pins, SimNic, State};
use crate::regs;

/// The largest TIMADJ magnitude the datasheet allows, plus one.
const TADJ_LIMIT: u32 = 999_999_900;

/// The 82580's SYSTIMR latch (same registers, the i210's format), plus TIMADJ.
pub(super) fn read(nic: &SimNic, s: &mut State, offset: usize) -> Option<u32> {
    match offset {
        regs::TIMADJL => Some(s.timadj_low),
        _ => super::ns40::read(nic, s, offset),
    }
}

pub(super) fn write(nic: &SimNic, s: &mut State, offset: usize, value: u32) -> bool {
    let format = nic.format();
    let (_, lo, hi) = format.words(s.counter.units);
    match offset {
        regs::SYSTIML => s.counter.units = format.from_words(value & 0x3FFF_FFFF, hi),
        regs::SYSTIMH => s.counter.units = format.from_words(lo, value),
        regs::TIMADJL => {
            s.timadj_low = value;
            let tadj = value & 0x3FFF_FFFF;
            if tadj > 0 && tadj < TADJ_LIMIT {
                let modulus = format.modulus();
                let delta = ((tadj as u128) << 32) % modulus;
                s.counter.units = if value & 0x8000_0000 != 0 {
                    (s.counter.units + modulus - delta) % modulus
                } else {
                    (s.counter.units + delta) % modulus
                };
                *s.regs.entry(regs::TSICR).or_default() |= pins::TSICR_TADJ;
            }
        }
        _ => return false,
    }
    true
}
