//! 82580/i350/i354 SYSTIM registers: a 40-bit ns counter that wraps every 2^40 ns (18.3 min),
//! with a 2^-32 ns residue register whose read latches the rest.
//!
//! SYSTIMH[7:0]:SYSTIML are the ns, SYSTIMR the residue; reading SYSTIML/H without SYSTIMR first
//! returns the previous latch. Writing SYSTIML then SYSTIMH sets the counter (Linux never does;
//! the header marks them RW). TIMADJ is not modelled: no driver uses it on these parts.

use super::{SimNic, State};
use crate::regs;

pub(super) fn read(nic: &SimNic, s: &mut State, offset: usize) -> Option<u32> {
    match offset {
        regs::SYSTIMR => {
            nic.bus_read(s);
            s.latched = nic.format().words(s.counter.units);
            Some(s.latched.0)
        }
        regs::SYSTIML => Some(s.latched.1),
        regs::SYSTIMH => Some(s.latched.2),
        _ => None,
    }
}

pub(super) fn write(nic: &SimNic, s: &mut State, offset: usize, value: u32) -> bool {
    match offset {
        regs::SYSTIML => s.pending_low = value,
        regs::SYSTIMH => s.counter.units = nic.format().from_words(s.pending_low, value),
        _ => return false,
    }
    true
}
