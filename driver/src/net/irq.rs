//! The NIC side of datapath wake-ups on igb in single-vector mode (MSI or INTx; GPIE.MSIX_MODE
//! off): which causes interrupt (RX written back, TX done, link change, time-sync TX stamp), and
//! reading ICR/TSICR to clear them. The host side (the vector as a descriptor) is `nicclock_uio::irq`.

use nicclock_uio::RegisterAccess;

use crate::regs::{TSICR, TSIM, TSINTR_TXTS};

/// Interrupt registers (byte offsets in BAR0).
pub mod ireg {
    /// Interrupt cause read (read clears it in single-vector mode).
    pub const ICR: usize = 0x000C0;
    /// Interrupt mask set (write 1s to enable causes).
    pub const IMS: usize = 0x000D0;
    /// Interrupt mask clear (write 1s to disable causes).
    pub const IMC: usize = 0x000D8;
    /// General purpose interrupt enable (MSI-X mode, EIAME, NSICR).
    pub const GPIE: usize = 0x01514;
    /// Extended interrupt mask clear (MSI-X vectors).
    pub const EIMC: usize = 0x01528;
}

/// ICR / IMS cause bits the datapath uses.
pub mod cause {
    /// A TX descriptor with RS was written back (the Delay_Req left; QEMU latched its stamp).
    pub const TXDW: u32 = 1 << 0;
    /// Link status changed.
    pub const LSC: u32 = 1 << 2;
    /// The RX ring's free descriptors fell to SRRCTL.RDMTS × 16 (half the ring: the bring-up's).
    pub const RXDMT0: u32 = 1 << 4;
    /// RX descriptor written back (RXDW, "RXT0" in older datasheets).
    pub const RXDW: u32 = 1 << 7;
    /// Time-sync event: TSICR says which (82576 and later; QEMU does not raise it).
    pub const TIME_SYNC: u32 = 1 << 19;
    /// What [`enable`] unmasks.
    pub const DATAPATH: u32 = TXDW | LSC | RXDMT0 | RXDW | TIME_SYNC;
    /// What [`mask_frames`] masks: a frame's arrival, a sent frame, its TX stamp.
    pub const FRAMES: u32 = TXDW | RXDW | TIME_SYNC;
}

/// What an interrupt reported, read by [`ack`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Causes {
    /// ICR as read (reading cleared it).
    pub icr: u32,
    /// TSICR as read when ICR had the time-sync cause, else 0.
    pub tsicr: u32,
}

impl Causes {
    /// A frame was written to the RX ring.
    pub fn rx(&self) -> bool {
        self.icr & cause::RXDW != 0
    }

    /// A TX descriptor completed, or the TX stamp latched (TSICR.TXTS).
    pub fn tx(&self) -> bool {
        self.icr & cause::TXDW != 0 || self.tsicr & TSINTR_TXTS != 0
    }

    /// The link changed state.
    pub fn link(&self) -> bool {
        self.icr & cause::LSC != 0
    }
}

/// Routes the datapath causes to the single vector: MSI-X mode off, every cause masked and
/// cleared, then RX write-back, TX done, link change and the TX time stamp (TSIM.TXTS) unmasked.
pub fn enable(regs: &dyn RegisterAccess) {
    regs.write32(ireg::GPIE, 0);
    regs.write32(ireg::EIMC, u32::MAX);
    regs.write32(ireg::IMC, u32::MAX);
    regs.read32(ireg::ICR);
    let tsim = regs.read32(TSIM);
    regs.write32(TSIM, tsim | TSINTR_TXTS);
    regs.write32(ireg::IMS, cause::DATAPATH);
}

/// Reads (and so clears) the causes; TSICR too when ICR says time-sync (written back as well:
/// the 82580 and later clear it by writing 1s, the 82576 on the read).
pub fn ack(regs: &dyn RegisterAccess) -> Causes {
    let icr = regs.read32(ireg::ICR);
    let tsicr = if icr & cause::TIME_SYNC != 0 {
        let t = regs.read32(TSICR);
        regs.write32(TSICR, t);
        t
    } else {
        0
    };
    Causes { icr, tsicr }
}

/// Masks the causes each frame raises ([`cause::FRAMES`]) while the loop looks at the ring at
/// times of its own (`ptp::pair_wake`): the link's change and a filling ring (RXDMT0, a flood)
/// still interrupt.
pub fn mask_frames(regs: &dyn RegisterAccess) {
    regs.write32(ireg::IMC, cause::FRAMES);
}

/// Unmasks them again, first clearing what they raised while masked (write 1s to clear), so that
/// frames the loop has already taken in raise no interrupt: call it after the ring was read.
pub fn unmask_frames(regs: &dyn RegisterAccess) {
    regs.write32(ireg::ICR, cause::FRAMES);
    regs.write32(ireg::IMS, cause::FRAMES);
}

/// Masks every cause again (TSIM.TXTS too) and clears what is pending.
pub fn disable(regs: &dyn RegisterAccess) {
    regs.write32(ireg::IMC, u32::MAX);
    let tsim = regs.read32(TSIM);
    regs.write32(TSIM, tsim & !TSINTR_TXTS);
    regs.read32(ireg::ICR);
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    /// Registers as a map; ICR clears on read, as in single-vector mode.
    #[derive(Default)]
    struct Fake {
        values: RefCell<HashMap<usize, u32>>,
        writes: RefCell<Vec<(usize, u32)>>,
    }

    impl RegisterAccess for Fake {
        fn len(&self) -> usize {
            0x20000
        }
        fn read32(&self, offset: usize) -> u32 {
            let mut v = self.values.borrow_mut();
            let value = v.get(&offset).copied().unwrap_or(0);
            if offset == ireg::ICR || offset == TSICR {
                v.insert(offset, 0);
            }
            value
        }
        fn write32(&self, offset: usize, value: u32) {
            self.writes.borrow_mut().push((offset, value));
            self.values.borrow_mut().insert(offset, value);
        }
    }

    #[test]
    fn enable_masks_clears_then_unmasks_the_datapath_causes() {
        let fake = Fake::default();
        fake.values.borrow_mut().extend([(ireg::ICR, cause::LSC), (TSIM, 1 << 3)]);
        enable(&fake);
        assert_eq!(
            *fake.writes.borrow(),
            [
                (ireg::GPIE, 0),
                (ireg::EIMC, u32::MAX),
                (ireg::IMC, u32::MAX),
                (TSIM, 1 << 3 | TSINTR_TXTS),
                (ireg::IMS, 0x0008_0095),
            ]
        );
        assert_eq!(fake.values.borrow()[&ireg::ICR], 0, "a stale cause is cleared before unmasking");
    }

    #[test]
    fn frames_are_masked_and_unmasked_with_what_they_raised_meanwhile_cleared_first() {
        let fake = Fake::default();
        mask_frames(&fake);
        unmask_frames(&fake);
        // TXDW 0x1 | RXDW 0x80 | TIME_SYNC 0x80000: the link (0x4) and RXDMT0 (0x10) stay.
        assert_eq!(
            *fake.writes.borrow(),
            [(ireg::IMC, 0x0008_0081), (ireg::ICR, 0x0008_0081), (ireg::IMS, 0x0008_0081)]
        );
    }

    #[test]
    fn ack_reads_the_causes_and_the_time_sync_ones() {
        let fake = Fake::default();
        fake.values.borrow_mut().insert(ireg::ICR, cause::RXDW);
        let c = ack(&fake);
        assert!(c.rx() && !c.tx() && !c.link());
        assert_eq!(c.tsicr, 0, "TSICR is not touched without the time-sync cause");
        assert!(fake.writes.borrow().is_empty());

        fake.values.borrow_mut().extend([(ireg::ICR, cause::TIME_SYNC), (TSICR, TSINTR_TXTS)]);
        let c = ack(&fake);
        assert!(c.tx() && !c.rx());
        assert_eq!(*fake.writes.borrow(), [(TSICR, TSINTR_TXTS)], "written back: 82580+ clear by 1s");
        assert_eq!(ack(&fake), Causes::default(), "the read cleared them");
    }

    #[test]
    fn disable_masks_everything_and_the_tx_stamp_cause() {
        let fake = Fake::default();
        fake.values.borrow_mut().extend([(TSIM, TSINTR_TXTS | 1), (ireg::ICR, cause::RXDW)]);
        disable(&fake);
        assert_eq!(*fake.writes.borrow(), [(ireg::IMC, u32::MAX), (TSIM, 1)]);
        assert_eq!(fake.values.borrow()[&ireg::ICR], 0);
    }
}
