//! Link bring-up through the PHY: MDIC reads and writes of the PHY's registers, an autonegotiation
//! restart, and a bounded wait for STATUS.LU — each failure a named error, never a hang.
//!
//! MDIC (0x0020, Linux e1000_defines.h): data [15:0], PHY register [20:16], PHY address [25:21],
//! write op bit 26, read op bit 27, READY bit 28, ERROR bit 30. The igb parts' internal PHY answers
//! at address 1 (QEMU refuses any other with ERROR). Like Linux's `e1000_{read,write}_phy_reg_mdic`
//! an access is polled for READY up to 1920 times 50 µs apart, ERROR fails it, and a read's answer
//! must name the register asked (the i210's "MDI read offset error" check). Autonegotiation is
//! restarted by writing BMCR 0x1340 (AN enable, restart, full duplex, 1000 Mb/s; HARDWARE.md §7:
//! QEMU's igb only takes frames once it completes, 500 ms later); silicon takes a few seconds.

use std::time::Duration;

use nicclock_uio::RegisterAccess;

use crate::regs::STATUS;

/// The MDI control register.
pub const MDIC: usize = 0x0020;

/// MDIC fields.
pub mod mdic {
    pub const DATA_MASK: u32 = 0x0000_FFFF;
    pub const REG_SHIFT: u32 = 16;
    pub const REG_MASK: u32 = 0x001F_0000;
    pub const PHY_SHIFT: u32 = 21;
    pub const OP_WRITE: u32 = 0x0400_0000;
    pub const OP_READ: u32 = 0x0800_0000;
    pub const READY: u32 = 0x1000_0000;
    pub const ERROR: u32 = 0x4000_0000;
}

/// The internal PHY's MDIO address on igb parts.
pub const PHY_ADDR: u32 = 1;

/// IEEE 802.3 clause 22 PHY registers and bits used here.
pub mod mii {
    pub const BMCR: u8 = 0;
    pub const BMSR: u8 = 1;
    pub const PHYID1: u8 = 2;
    pub const PHYID2: u8 = 3;
    /// BMCR: autonegotiation enable.
    pub const BMCR_ANENABLE: u16 = 0x1000;
    /// BMCR: restart autonegotiation (self-clearing).
    pub const BMCR_ANRESTART: u16 = 0x0200;
    /// BMCR: full duplex.
    pub const BMCR_FULLDPLX: u16 = 0x0100;
    /// BMCR: speed select MSB (1000 Mb/s with the LSB clear).
    pub const BMCR_SPEED1000: u16 = 0x0040;
    /// BMSR: link up.
    pub const BMSR_LSTATUS: u16 = 0x0004;
    /// BMSR: autonegotiation complete.
    pub const BMSR_ANEGCOMPLETE: u16 = 0x0020;
}

/// BMCR value that restarts autonegotiation: 0x1340.
pub const BMCR_RESTART_AUTONEG: u16 =
    mii::BMCR_ANENABLE | mii::BMCR_ANRESTART | mii::BMCR_FULLDPLX | mii::BMCR_SPEED1000;

/// STATUS.LU: link up.
pub const STATUS_LU: u32 = 0x0000_0002;

/// How often and how long an MDIC access is polled (Linux: E1000_GEN_POLL_TIMEOUT × 3, 50 µs).
const MDIC_POLLS: u32 = 1920;
const MDIC_GAP: Duration = Duration::from_micros(50);
/// How often STATUS.LU is polled while autonegotiation runs.
const LINK_GAP: Duration = Duration::from_millis(10);

/// Why the PHY or the link did not come up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhyError {
    /// MDIC never reported READY.
    #[error(
        "MDIC {op} of PHY register {reg} not done within {waited_us} us (MDIC {last:#010x}): the \
         PHY is not answering; reset the NIC (unbind/bind the PCI function) and retry"
    )]
    MdicTimeout {
        /// "read" or "write".
        op: &'static str,
        reg: u8,
        last: u32,
        waited_us: u64,
    },
    /// MDIC reported ERROR: no PHY at the address, or a register it lacks.
    #[error(
        "MDIC {op} of PHY register {reg} failed (MDIC {value:#010x}, error bit set): no PHY at \
         address {PHY_ADDR} or no such register; is this an igb port with an internal copper PHY?"
    )]
    MdicError { op: &'static str, reg: u8, value: u32 },
    /// A read answered for another register than the one asked.
    #[error("MDIC read of PHY register {asked} answered for register {answered} (MDIC {value:#010x})")]
    MdicWrongRegister { asked: u8, answered: u8, value: u32 },
    /// STATUS.LU stayed clear after autonegotiation was restarted.
    #[error(
        "link did not come up within {waited_ms} ms of restarting autonegotiation (STATUS \
         {status:#010x}, PHY BMSR {bmsr:#06x}): check the cable and that the link partner is up"
    )]
    LinkDown { waited_ms: u64, status: u32, bmsr: u16 },
}

/// How the link came up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkUp {
    /// It was already up (STATUS.LU): left alone, no autonegotiation restart.
    AlreadyUp,
    /// Autonegotiation was restarted and completed after this long.
    Negotiated { after: Duration },
}

fn mdic_wait(
    regs: &dyn RegisterAccess,
    op: &'static str,
    reg: u8,
    pause: &mut dyn FnMut(Duration),
) -> Result<u32, PhyError> {
    let mut last = 0;
    for poll in 0..MDIC_POLLS {
        last = regs.read32(MDIC);
        if last & mdic::READY != 0 {
            if last & mdic::ERROR != 0 {
                return Err(PhyError::MdicError { op, reg, value: last });
            }
            return Ok(last);
        }
        if poll + 1 < MDIC_POLLS {
            pause(MDIC_GAP);
        }
    }
    let waited_us = (MDIC_GAP * (MDIC_POLLS - 1)).as_micros() as u64;
    Err(PhyError::MdicTimeout { op, reg, last, waited_us })
}

fn command(reg: u8) -> u32 {
    (u32::from(reg) << mdic::REG_SHIFT) & mdic::REG_MASK | PHY_ADDR << mdic::PHY_SHIFT
}

/// Reads PHY register `reg` through MDIC, pausing with `pause` between polls.
pub fn read_phy_with(
    regs: &dyn RegisterAccess,
    reg: u8,
    pause: &mut dyn FnMut(Duration),
) -> Result<u16, PhyError> {
    regs.write32(MDIC, command(reg) | mdic::OP_READ);
    let value = mdic_wait(regs, "read", reg, pause)?;
    let answered = ((value & mdic::REG_MASK) >> mdic::REG_SHIFT) as u8;
    if answered != reg {
        return Err(PhyError::MdicWrongRegister { asked: reg, answered, value });
    }
    Ok((value & mdic::DATA_MASK) as u16)
}

/// Writes PHY register `reg` through MDIC, pausing with `pause` between polls.
pub fn write_phy_with(
    regs: &dyn RegisterAccess,
    reg: u8,
    value: u16,
    pause: &mut dyn FnMut(Duration),
) -> Result<(), PhyError> {
    regs.write32(MDIC, command(reg) | mdic::OP_WRITE | u32::from(value));
    mdic_wait(regs, "write", reg, pause).map(|_| ())
}

/// Reads PHY register `reg` (real-time pauses).
pub fn read_phy(regs: &dyn RegisterAccess, reg: u8) -> Result<u16, PhyError> {
    read_phy_with(regs, reg, &mut std::thread::sleep)
}

/// Writes PHY register `reg` (real-time pauses).
pub fn write_phy(regs: &dyn RegisterAccess, reg: u8, value: u16) -> Result<(), PhyError> {
    write_phy_with(regs, reg, value, &mut std::thread::sleep)
}

/// Whether STATUS says the link is up.
pub fn link_is_up(regs: &dyn RegisterAccess) -> bool {
    let status = regs.read32(STATUS);
    status != u32::MAX && status & STATUS_LU != 0
}

/// Brings the link up: if STATUS.LU is already set it is left alone; else autonegotiation is
/// restarted (BMCR 0x1340) and STATUS.LU waited for up to `timeout`, polled every 10 ms.
pub fn link_up(regs: &dyn RegisterAccess, timeout: Duration) -> Result<LinkUp, PhyError> {
    link_up_with(regs, timeout, &mut std::thread::sleep)
}

/// [`link_up`] with the caller's pause between polls (the simulator passes one that moves
/// virtual time on).
pub fn link_up_with(
    regs: &dyn RegisterAccess,
    timeout: Duration,
    pause: &mut dyn FnMut(Duration),
) -> Result<LinkUp, PhyError> {
    if link_is_up(regs) {
        return Ok(LinkUp::AlreadyUp);
    }
    write_phy_with(regs, mii::BMCR, BMCR_RESTART_AUTONEG, pause)?;
    let mut waited = Duration::ZERO;
    loop {
        if link_is_up(regs) {
            log::info!("link up after {} ms of autonegotiation", waited.as_millis());
            return Ok(LinkUp::Negotiated { after: waited });
        }
        if waited >= timeout {
            let status = regs.read32(STATUS);
            let bmsr = read_phy_with(regs, mii::BMSR, pause).unwrap_or(0);
            return Err(PhyError::LinkDown { waited_ms: waited.as_millis() as u64, status, bmsr });
        }
        pause(LINK_GAP);
        waited += LINK_GAP;
    }
}
