//! QEMU's emulation of the 82576/82574 clock as measured: SYSTIM = TIMADJ + ns · INCVALUE /
//! (16 · INCPERIOD) in u64, TIMINCA writes jump it, SYSTIM writes ignored, TIMADJ two's complement.

use super::{SimNic, State};
use crate::regs::{self, TIMINCA_PERIOD_SHIFT, TIMINCA_VALUE_MASK};

/// QEMU's `muldiv64(ns, INCVALUE, INCPERIOD · 16)`.
fn muldiv(ns: u64, timinca: u32) -> u64 {
    let period = (timinca >> TIMINCA_PERIOD_SHIFT).max(1) as u128;
    let value = (timinca & TIMINCA_VALUE_MASK) as u128;
    (ns as u128 * value / (period * 16)) as u64
}

pub(super) fn systim_units(s: &State) -> u64 {
    systim_at(s, s.osc_ns as u64)
}

/// SYSTIM when the virtual clock reads `vns` (a packet stamp a little before or after now).
pub(super) fn systim_at(s: &State, vns: u64) -> u64 {
    s.qemu_timadj.wrapping_add(muldiv(vns, s.timinca))
}

pub(super) fn read(nic: &SimNic, s: &mut State, offset: usize) -> Option<u32> {
    match offset {
        regs::SYSTIML => {
            nic.bus_read(s);
            let units = systim_units(s);
            s.latched.2 = (units >> 32) as u32;
            Some(units as u32)
        }
        regs::SYSTIMH => Some(s.latched.2),
        _ => None,
    }
}

pub(super) fn write(s: &mut State, offset: usize, value: u32) -> bool {
    match offset {
        regs::TIMINCA => {
            // QEMU adds new − old (the continuity fix has its sign reversed), wrapping.
            let vns = s.osc_ns as u64;
            let delta = muldiv(vns * 16, value).wrapping_sub(muldiv(vns * 16, s.timinca)) / 16;
            s.qemu_timadj = s.qemu_timadj.wrapping_add(delta);
            s.timinca = value;
        }
        regs::SYSTIML | regs::SYSTIMH => {} // QEMU ignores SYSTIM writes
        regs::TIMADJL => s.timadj_low = value,
        regs::TIMADJH => {
            let adj = ((value as u64) << 32) | s.timadj_low as u64;
            s.qemu_timadj = s.qemu_timadj.wrapping_add(adj);
        }
        _ => return false,
    }
    true
}
