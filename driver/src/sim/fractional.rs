//! 82576 and 82574 SYSTIM registers on real silicon: SYSTIML's read latches SYSTIMH, software
//! may write SYSTIML then SYSTIMH, TIMADJL/TIMADJH step the clock (sign in TIMADJH bit 31).

use super::{faults, SimNic, State};
use crate::regs;

pub(super) fn read(nic: &SimNic, s: &mut State, offset: usize) -> Option<u32> {
    match offset {
        regs::SYSTIML => {
            nic.bus_read(s);
            let units = s.counter.units as u64;
            let (mut lo, mut hi) = (units as u32, (units >> 32) as u32);
            if nic.config.model == super::SimModel::I82574 {
                faults::corrupt_82574(&mut s.faults, nic.config.bad_read_fraction, &mut lo, &mut hi);
            }
            s.latched.2 = hi;
            Some(lo)
        }
        regs::SYSTIMH => Some(s.latched.2),
        _ => None,
    }
}

pub(super) fn write(s: &mut State, offset: usize, value: u32) -> bool {
    match offset {
        regs::SYSTIML => s.pending_low = value,
        regs::SYSTIMH => {
            s.counter.units = ((value as u128) << 32) | s.pending_low as u128;
        }
        regs::TIMADJL => s.timadj_low = value,
        regs::TIMADJH => {
            // 82576 datasheet: sign in bit 31 of TIMADJH, magnitude below (not used by Linux).
            let magnitude = (((value & 0x7FFF_FFFF) as u128) << 32) | s.timadj_low as u128;
            let modulus = 1u128 << 64;
            s.counter.units = if value & 0x8000_0000 != 0 {
                (s.counter.units + modulus - magnitude % modulus) % modulus
            } else {
                (s.counter.units + magnitude) % modulus
            };
        }
        _ => return false,
    }
    true
}
