//! The simulated NIC's interrupt causes in single-vector mode (MSI or INTx): ICR set by the
//! datapath, masked by IMS/IMC, read to clear; an attached hook hears each unmasked cause rise.
//!
//! Causes (Linux e1000_defines.h): TXDW (bit 0) when a TX descriptor with RS is written back,
//! LSC (bit 2) when the link goes up or down, RXDMT0 (bit 4) when the RX descriptors left to the
//! NIC fall to SRRCTL.RDMTS × 16, RXDW (bit 7) when an RX descriptor is written back,
//! TIME_SYNC (bit 19) when the TX stamp latches and TSIM.TXTS is set (TSICR.TXTS says so; QEMU's
//! igb does not raise it). ICR reads with INT_ASSERTED (bit 31) while an unmasked cause is pending
//! and clears on the read; ICS sets causes; writing ICR clears the 1s. The 82576's TSICR clears on
//! the read (the 82580 and later keep their own TSICR rules, in pins.rs). Not modelled: MSI-X
//! (EICR/EIMS), interrupt throttling, the auto-mask registers.

use std::sync::Arc;

/// Interrupt registers.
pub const ICR: usize = 0x000C0;
pub const ICS: usize = 0x000C8;
pub const IMS: usize = 0x000D0;
pub const IMC: usize = 0x000D8;

/// ICR causes.
pub const TXDW: u32 = 1 << 0;
pub const LSC: u32 = 1 << 2;
pub const RXDMT0: u32 = 1 << 4;
pub const RXDW: u32 = 1 << 7;
pub const TIME_SYNC: u32 = 1 << 19;
pub const INT_ASSERTED: u32 = 1 << 31;

/// What an interrupt reaches: an eventfd's write, a flag. It runs under the NIC's lock, so it must
/// not touch the NIC.
pub type IrqHook = Arc<dyn Fn() + Send + Sync>;

/// ICR, IMS and the hook.
#[derive(Default)]
pub(super) struct Irq {
    icr: u32,
    ims: u32,
    hook: Option<IrqHook>,
    /// Interrupts signalled (an unmasked cause rose).
    pub raised: u64,
}

impl Irq {
    pub fn attach(&mut self, hook: IrqHook) {
        self.hook = Some(hook);
    }

    /// Sets `causes`; signals when one of them is unmasked and was not pending.
    pub fn raise(&mut self, causes: u32) {
        let new = causes & !self.icr & self.ims;
        self.icr |= causes;
        if new != 0 {
            self.signal();
        }
    }

    fn signal(&mut self) {
        self.raised += 1;
        if let Some(hook) = &self.hook {
            hook();
        }
    }

    /// ICR's read: the causes (INT_ASSERTED with an unmasked one), then cleared.
    pub fn read_icr(&mut self) -> u32 {
        let value = self.icr | if self.icr & self.ims != 0 { INT_ASSERTED } else { 0 };
        self.icr = 0;
        value
    }

    pub fn ims(&self) -> u32 {
        self.ims
    }

    /// A register write; false if `offset` is not an interrupt register.
    pub fn write(&mut self, offset: usize, value: u32) -> bool {
        match offset {
            ICR => self.icr &= !value,
            ICS => self.raise(value & !INT_ASSERTED),
            IMS => {
                let unmasked = value & !self.ims & self.icr;
                self.ims |= value & !INT_ASSERTED;
                if unmasked != 0 {
                    self.signal();
                }
            }
            IMC => self.ims &= !value,
            _ => return false,
        }
        true
    }
}
