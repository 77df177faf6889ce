//! The simulated NIC's PHY behind MDIC (one PHY, at address 1) and the link state it drives:
//! STATUS.LU only after autonegotiation completes, as QEMU's igb and the silicon do.
//!
//! As QEMU models it (hw/net/igb_core.c, e1000x_common.c): an MDIC write is answered at once with
//! READY (and ERROR for another PHY address or a register the PHY lacks; a read returns the
//! register in the data field). Writing BMCR with AN enable + restart takes the link down and
//! completes autonegotiation `autoneg_ns` later (QEMU: a 500 ms virtual-clock timer): BMSR link
//! status and AN complete, ANLPAR acknowledge, STATUS.LU with 1000 Mb/s full duplex. Without a
//! link partner ([`super::SimConfig::link_partner`] false: no cable) it never completes.

use super::State;

/// MDIC register and fields (Linux e1000_defines.h).
pub const MDIC: usize = 0x0020;
const MDIC_DATA_MASK: u32 = 0x0000_FFFF;
const MDIC_REG_SHIFT: u32 = 16;
const MDIC_REG_MASK: u32 = 0x001F_0000;
const MDIC_PHY_SHIFT: u32 = 21;
const MDIC_PHY_MASK: u32 = 0x03E0_0000;
const MDIC_OP_WRITE: u32 = 0x0400_0000;
const MDIC_OP_READ: u32 = 0x0800_0000;
const MDIC_READY: u32 = 0x1000_0000;
const MDIC_ERROR: u32 = 0x4000_0000;
/// The PHY's MDIO address.
const PHY_ADDR: u32 = 1;

/// IEEE 802.3 clause 22 registers the PHY has, and whether software may write them.
const BMCR: usize = 0;
const BMSR: usize = 1;
const PHYID1: usize = 2;
const PHYID2: usize = 3;
const ANAR: usize = 4;
const ANLPAR: usize = 5;
const ANER: usize = 6;
const CTRL1000: usize = 9;
const STAT1000: usize = 10;
const EXTSTAT: usize = 15;
/// The IGP page-select register (0x1F) the 82576's PHY has.
const PAGE_SELECT: usize = 31;
const READABLE: [usize; 11] =
    [BMCR, BMSR, PHYID1, PHYID2, ANAR, ANLPAR, ANER, CTRL1000, STAT1000, EXTSTAT, PAGE_SELECT];
const WRITABLE: [usize; 4] = [BMCR, ANAR, CTRL1000, PAGE_SELECT];

const BMCR_RESET: u16 = 0x8000;
const BMCR_ANENABLE: u16 = 0x1000;
const BMCR_ANRESTART: u16 = 0x0200;
const BMSR_LSTATUS: u16 = 0x0004;
const BMSR_ANEGCOMPLETE: u16 = 0x0020;
const ANLPAR_ACK: u16 = 0x4000;

/// STATUS.LU, and the speed/duplex bits that go with a 1000 Mb/s full-duplex link.
pub const STATUS_LU: u32 = 0x0000_0002;
const STATUS_FD: u32 = 0x0000_0001;
const STATUS_SPEED_1000: u32 = 0x0000_0080;

/// PHY register values after reset (the 82576's IGP03 PHY id; abilities of a 10/100/1000 PHY).
fn reset_values() -> [u16; 32] {
    let mut r = [0u16; 32];
    r[BMCR] = 0x1140; // AN enable, full duplex, 1000 Mb/s
    r[BMSR] = 0x7949; // 10/100 abilities, extended status, preamble suppression, AN ability, extended caps
    r[PHYID1] = 0x02A8;
    r[PHYID2] = 0x0390;
    r[ANAR] = 0x0DE1;
    r[ANLPAR] = 0x45E1;
    r[CTRL1000] = 0x0E00;
    r[STAT1000] = 0x3C00;
    r[EXTSTAT] = 0x3000;
    r
}

/// The PHY and link state.
pub(super) struct Phy {
    regs: [u16; 32],
    /// Autonegotiation completes at this true time, ns.
    autoneg_done_at: Option<u64>,
    link_up: bool,
    /// MDIC as last written and answered.
    mdic: u32,
}

impl Phy {
    pub fn new(link_up: bool) -> Self {
        let mut phy = Self { regs: reset_values(), autoneg_done_at: None, link_up: false, mdic: MDIC_READY };
        if link_up {
            phy.complete_autoneg();
        }
        phy
    }

    /// Whether the link is up (STATUS.LU).
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    fn complete_autoneg(&mut self) {
        self.autoneg_done_at = None;
        self.link_up = true;
        self.regs[BMSR] |= BMSR_LSTATUS | BMSR_ANEGCOMPLETE;
        self.regs[ANLPAR] |= ANLPAR_ACK;
    }

    fn link_down(&mut self) {
        self.link_up = false;
        self.regs[BMSR] &= !(BMSR_LSTATUS | BMSR_ANEGCOMPLETE);
        self.regs[ANLPAR] &= !ANLPAR_ACK;
    }

    /// Completes a pending autonegotiation whose time has come; true if the link came up now.
    pub fn run_until(&mut self, t: u64) -> bool {
        let due = self.autoneg_done_at.is_some_and(|at| at <= t);
        if due {
            self.complete_autoneg();
        }
        due
    }

    fn write_bmcr(&mut self, value: u16, now: u64, autoneg_ns: u64, partner: bool) {
        if value & BMCR_RESET != 0 {
            self.regs = reset_values();
            self.link_down();
            self.autoneg_done_at = None;
        }
        // Reset and restart are self-clearing.
        self.regs[BMCR] = value & !(BMCR_RESET | BMCR_ANRESTART);
        if value & BMCR_ANRESTART != 0 && value & BMCR_ANENABLE != 0 {
            self.link_down();
            self.autoneg_done_at = partner.then_some(now + autoneg_ns);
        }
    }
}

/// STATUS as the link makes it (the rest of the register from `base`).
pub(super) fn status(s: &State, base: u32) -> u32 {
    if s.phy.link_up() {
        base | STATUS_LU | STATUS_FD | STATUS_SPEED_1000
    } else {
        base & !(STATUS_LU | STATUS_SPEED_1000)
    }
}

/// An MDIC write: the PHY access it asks, answered at once.
pub(super) fn write_mdic(s: &mut State, value: u32, now: u64, autoneg_ns: u64, partner: bool) {
    let data = (value & MDIC_DATA_MASK) as u16;
    let reg = ((value & MDIC_REG_MASK) >> MDIC_REG_SHIFT) as usize;
    let phy = &mut s.phy;
    let answer = if (value & MDIC_PHY_MASK) >> MDIC_PHY_SHIFT != PHY_ADDR {
        phy.mdic | MDIC_ERROR
    } else if value & MDIC_OP_READ != 0 {
        if READABLE.contains(&reg) {
            (value & !MDIC_DATA_MASK) | u32::from(phy.regs[reg])
        } else {
            value | MDIC_ERROR
        }
    } else if value & MDIC_OP_WRITE != 0 {
        if WRITABLE.contains(&reg) {
            if reg == BMCR {
                phy.write_bmcr(data, now, autoneg_ns, partner);
            } else {
                phy.regs[reg] = data;
            }
            value
        } else {
            value | MDIC_ERROR
        }
    } else {
        value
    };
    phy.mdic = answer | MDIC_READY;
}

/// MDIC as software reads it.
pub(super) fn read_mdic(s: &State) -> u32 {
    s.phy.mdic
}
