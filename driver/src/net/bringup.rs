//! Register sequence that brings receive and transmit queue 0 of an igb NIC up for PTP (queues,
//! RCTL/TCTL, PTP multicast filter, EtherType/UDP stamping filters, TSYNC enables) and down again.
//!
//! Pure functions over [`RegisterAccess`]: the caller owns the rings and passes their device
//! addresses. Every wait on the device is bounded and ends in a [`BringupError`], never a hang.
//! The link comes first: [`super::phy::link_up`] (MDIC autonegotiation, bounded wait), which
//! [`bring_up_with_link`] runs before [`bring_up`]; [`bring_up`] alone assumes the link is up.

use std::time::Duration;

use nicclock_uio::RegisterAccess;

use super::desc::{ctl, reg, BUF_LEN, DESC_LEN};
use crate::model::Family;
use crate::regs::{RXSTMPH, RXSTMPL, TSYNCRXCFG, TSYNCRXCTL, TSYNCTXCTL, TXSTMPH, TXSTMPL};

/// Offsets of the registers bring-up writes besides the queue and TSYNC ones.
pub mod breg {
    /// Receive control.
    pub const RCTL: usize = 0x00100;
    /// Transmit control.
    pub const TCTL: usize = 0x00400;
    /// RX packet buffer size (i210: bit 31 puts the timestamp into the buffer).
    pub const RXPBS: usize = 0x02404;
    /// Multicast table array: 128 words of 32 hash bits.
    pub const MTA: usize = 0x05200;
    /// Words in the multicast table.
    pub const MTA_WORDS: usize = 128;
    /// Source-port filter 3 (82576).
    pub const SPQF3: usize = 0x059CC;
    /// 5-tuple filter 3.
    pub const FTQF3: usize = 0x059EC;
    /// Immediate-interrupt destination port 3.
    pub const IMIR3: usize = 0x05A8C;
    /// Immediate-interrupt extension 3.
    pub const IMIREXT3: usize = 0x05AAC;
    /// EtherType filter 3 (the 1588 one).
    pub const ETQF3: usize = 0x05CBC;
}

/// Register bits bring-up uses.
pub mod bits {
    /// RCTL: receiver enable.
    pub const RCTL_EN: u32 = 1 << 1;
    /// RCTL: accept broadcast.
    pub const RCTL_BAM: u32 = 1 << 15;
    /// RCTL: strip the Ethernet CRC.
    pub const RCTL_SECRC: u32 = 1 << 26;
    /// TCTL: transmitter enable.
    pub const TCTL_EN: u32 = 1 << 1;
    /// TCTL: pad short packets.
    pub const TCTL_PSP: u32 = 1 << 3;
    /// TCTL: collision threshold 15 (bits 11:4).
    pub const TCTL_CT: u32 = 0x0F << 4;
    /// TCTL: collision distance 63 (bits 21:12, full duplex).
    pub const TCTL_COLD: u32 = 0x3F << 12;
    /// TCTL: retransmit on late collision.
    pub const TCTL_RTLC: u32 = 1 << 24;
    /// RXPBS (i210): timestamp in the receive buffer.
    pub const RXPBS_CFG_TS_EN: u32 = 0x8000_0000;
    /// ETQF: filter enable.
    pub const ETQF_FILTER_ENABLE: u32 = 1 << 26;
    /// ETQF: time-stamp matching frames.
    pub const ETQF_1588: u32 = 1 << 30;
    /// PTP over Ethernet.
    pub const ETHERTYPE_PTP: u32 = 0x88F7;
    /// TSYNCRXCTL / TSYNCTXCTL: enabled.
    pub const TSYNC_ENABLED: u32 = 0x10;
    /// TSYNCRXCTL: the type field.
    pub const TSYNCRXCTL_TYPE_MASK: u32 = 0x0E;
    /// TSYNCRXCTL type: every V2 event message, L2 and L4 (what the 82576 can do).
    pub const TSYNCRXCTL_TYPE_EVENT_V2: u32 = 0x0A;
    /// TSYNCRXCTL type: every packet (82580 and later, stamp in the buffer).
    pub const TSYNCRXCTL_TYPE_ALL: u32 = 0x08;
    /// FTQF 3 for UDP port 319 stamping on 82580+: protocol 17, VF bypass, 1588 stamp, all
    /// masks but the protocol's (igb-family.md §3.2 step 7).
    pub const FTQF_UDP_319: u32 = 0xE800_8011;
    /// FTQF 3 on the 82576, which also compares the source port (SPQF).
    pub const FTQF_UDP_319_82576: u32 = 0x6800_8011;
    /// FTQF: everything masked (filter off).
    pub const FTQF_OFF: u32 = 0xF000_0000;
    /// IMIR / SPQF: port 319 in network order as the register holds it.
    pub const PORT_319: u32 = 0x3F01;
    /// IMIREXT: size and control-bits bypass.
    pub const IMIREXT_BYPASS: u32 = 0x0008_1000;
    /// RXDCTL/TXDCTL thresholds: prefetch 8, host 1, write-back 1 (a done descriptor is
    /// written back at once, which PTP's polling wants, not batched).
    pub const DCTL_THRESHOLDS: u32 = 8 | 1 << 8 | 1 << 16;
}

/// The PTP multicast addresses the receive filter lets in: 01-1B-19-00-00-00 (PTP over
/// Ethernet) and 01-00-5E-00-01-81 (224.0.1.129, PTP over UDP/IPv4).
pub const PTP_MULTICAST: [[u8; 6]; 2] =
    [[0x01, 0x1B, 0x19, 0x00, 0x00, 0x00], [0x01, 0x00, 0x5E, 0x00, 0x01, 0x81]];

/// Where a ring is for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingPlace {
    /// Device address of descriptor 0 (128-byte aligned).
    pub desc_addr: u64,
    /// Descriptors in the ring.
    pub descs: usize,
}

/// Why bring-up or teardown stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BringupError {
    /// The family has no igb queues (82574 is e1000e).
    #[error(
        "{0:?} has no igb datapath: the userspace PTP datapath supports 82576, \
         82580/i350/i354 and i210/i211"
    )]
    Unsupported(Family),
    /// A ring the hardware cannot take: RDLEN/TDLEN are multiples of 128 bytes (8 descriptors)
    /// up to 4096 descriptors here, the base 128-byte aligned.
    #[error(
        "{queue} ring of {descs} descriptors at {desc_addr:#x}: need 8..=4096 descriptors in \
         multiples of 8, 128-byte aligned"
    )]
    BadRing {
        /// "RX" or "TX".
        queue: &'static str,
        /// Its device address.
        desc_addr: u64,
        /// Its descriptors.
        descs: usize,
    },
    /// A queue's enable bit did not reach the wanted state in time.
    #[error(
        "{register} ({offset:#07x}) enable bit did not turn {} within {waited_us} us \
         (last read {last:#010x}): the device is not responding; reset it (unbind/bind the \
         PCI function) and retry",
        if *enable { "on" } else { "off" }
    )]
    QueueTimeout {
        /// The control register's name.
        register: &'static str,
        /// Its offset.
        offset: usize,
        /// Whether we waited for the bit to set (else to clear).
        enable: bool,
        /// The last value read.
        last: u32,
        /// How long we waited.
        waited_us: u64,
    },
    /// The PHY did not answer or the link did not come up.
    #[error("link bring-up: {0}")]
    Link(#[from] super::phy::PhyError),
}

/// How often and how long a queue enable/disable is polled (10 ms in all).
const POLLS: u32 = 100;
const POLL_GAP: Duration = Duration::from_micros(100);

/// Bit and word of the 4096-bit multicast table for `mac` with RCTL.MO = 0: the hash is
/// address bits 47:36, i.e. the high nibble of byte 4 and all of byte 5. Returns (word, bit).
pub fn mta_hash(mac: [u8; 6]) -> (usize, u32) {
    let hash = (usize::from(mac[4]) >> 4 | usize::from(mac[5]) << 4) & 0xFFF;
    (hash >> 5, (hash & 0x1F) as u32)
}

fn wait_enable(
    regs: &dyn RegisterAccess,
    register: &'static str,
    offset: usize,
    enable: bool,
) -> Result<(), BringupError> {
    let mut last = 0;
    for poll in 0..POLLS {
        last = regs.read32(offset);
        if (last & ctl::QUEUE_ENABLE != 0) == enable {
            return Ok(());
        }
        if poll + 1 < POLLS {
            std::thread::sleep(POLL_GAP);
        }
    }
    let waited_us = (POLL_GAP * (POLLS - 1)).as_micros() as u64;
    Err(BringupError::QueueTimeout { register, offset, enable, last, waited_us })
}

fn check_family(family: Family) -> Result<(), BringupError> {
    match family {
        Family::E82574 => Err(BringupError::Unsupported(family)),
        Family::E82576 | Family::E82580 | Family::I210 => Ok(()),
    }
}

fn program_ring(regs: &dyn RegisterAccess, bal: usize, ring: RingPlace) {
    regs.write32(bal, ring.desc_addr as u32);
    regs.write32(bal + 4, (ring.desc_addr >> 32) as u32);
    regs.write32(bal + 8, (ring.descs * DESC_LEN) as u32);
}

fn stop_queues(regs: &dyn RegisterAccess) -> Result<(), BringupError> {
    let rctl = regs.read32(breg::RCTL);
    regs.write32(breg::RCTL, rctl & !bits::RCTL_EN);
    let tctl = regs.read32(breg::TCTL);
    regs.write32(breg::TCTL, tctl & !bits::TCTL_EN);
    regs.write32(reg::RXDCTL0, 0);
    regs.write32(reg::TXDCTL0, 0);
    wait_enable(regs, "RXDCTL0", reg::RXDCTL0, false)?;
    wait_enable(regs, "TXDCTL0", reg::TXDCTL0, false)
}

/// Brings RX and TX queue 0 up for PTP on `family`, the rings at `rx` and `tx` (every RX
/// descriptor armed, as a fresh `RxRing` leaves them; the TX ring empty):
///
/// 1. receiver and transmitter off, both queues disabled (waited for);
/// 2. multicast table cleared but for the [`PTP_MULTICAST`] bits;
/// 3. RX: RDBAL/RDBAH/RDLEN, SRRCTL (2 KiB buffers, advanced one-buffer descriptors, drop when
///    full, RXDMT0 at 16 free descriptors; 82580+ the timestamp header), RDH = RDT = 0, RXDCTL enabled and waited for, then
///    RDT = descs − 1 (all but one descriptor given), RCTL (enable, broadcast, strip CRC);
/// 4. TX: TDBAL/TDBAH/TDLEN, TDH = TDT = 0, TXDCTL enabled and waited for, TCTL (enable, pad,
///    collision threshold and distance);
/// 5. stamping: i210 RXPBS.CFG_TS_EN, TSYNCRXCFG = 0, ETQF(3) for EtherType 0x88F7 with the
///    1588 flag, the UDP port 319 filter (SPQF on 82576, IMIR, IMIREXT, FTQF), TSYNCRXCTL
///    (enabled; V2 events on 82576, every packet after), TSYNCTXCTL enabled; then the stamp
///    latches are read once to release anything stale.
pub fn bring_up(
    regs: &dyn RegisterAccess,
    family: Family,
    rx: RingPlace,
    tx: RingPlace,
) -> Result<(), BringupError> {
    check_family(family)?;
    for (queue, ring) in [("RX", rx), ("TX", tx)] {
        let d = ring.descs;
        if d == 0 || d % 8 != 0 || d > 4096 || ring.desc_addr % 128 != 0 {
            return Err(BringupError::BadRing { queue, desc_addr: ring.desc_addr, descs: d });
        }
    }
    stop_queues(regs)?;

    for word in 0..breg::MTA_WORDS {
        regs.write32(breg::MTA + 4 * word, 0);
    }
    let mut mta = [0u32; breg::MTA_WORDS];
    for mac in PTP_MULTICAST {
        let (word, bit) = mta_hash(mac);
        mta[word] |= 1 << bit;
    }
    for (word, &v) in mta.iter().enumerate().filter(|(_, &v)| v != 0) {
        regs.write32(breg::MTA + 4 * word, v);
    }

    program_ring(regs, reg::RDBAL0, rx);
    let mut srrctl = (BUF_LEN as u32 >> ctl::SRRCTL_BSIZEPKT_SHIFT)
        | ctl::SRRCTL_DESCTYPE_ADV_ONEBUF
        | ctl::SRRCTL_RDMTS_16
        | ctl::SRRCTL_DROP_EN;
    if family != Family::E82576 {
        srrctl |= ctl::SRRCTL_TIMESTAMP;
    }
    regs.write32(reg::SRRCTL0, srrctl);
    regs.write32(reg::RDH0, 0);
    regs.write32(reg::RDT0, 0);
    regs.write32(reg::RXDCTL0, bits::DCTL_THRESHOLDS | ctl::QUEUE_ENABLE);
    wait_enable(regs, "RXDCTL0", reg::RXDCTL0, true)?;
    regs.write32(reg::RDT0, (rx.descs - 1) as u32);
    regs.write32(breg::RCTL, bits::RCTL_EN | bits::RCTL_BAM | bits::RCTL_SECRC);

    program_ring(regs, reg::TDBAL0, tx);
    regs.write32(reg::TDH0, 0);
    regs.write32(reg::TDT0, 0);
    regs.write32(reg::TXDCTL0, bits::DCTL_THRESHOLDS | ctl::QUEUE_ENABLE);
    wait_enable(regs, "TXDCTL0", reg::TXDCTL0, true)?;
    regs.write32(
        breg::TCTL,
        bits::TCTL_EN | bits::TCTL_PSP | bits::TCTL_CT | bits::TCTL_COLD | bits::TCTL_RTLC,
    );

    if family == Family::I210 {
        let rxpbs = regs.read32(breg::RXPBS);
        regs.write32(breg::RXPBS, rxpbs | bits::RXPBS_CFG_TS_EN);
    }
    regs.write32(TSYNCRXCFG, 0);
    regs.write32(breg::ETQF3, bits::ETQF_FILTER_ENABLE | bits::ETQF_1588 | bits::ETHERTYPE_PTP);
    let ftqf = if family == Family::E82576 {
        regs.write32(breg::SPQF3, bits::PORT_319);
        bits::FTQF_UDP_319_82576
    } else {
        bits::FTQF_UDP_319
    };
    regs.write32(breg::IMIR3, bits::PORT_319);
    regs.write32(breg::IMIREXT3, bits::IMIREXT_BYPASS);
    regs.write32(breg::FTQF3, ftqf);
    let rx_type =
        if family == Family::E82576 { bits::TSYNCRXCTL_TYPE_EVENT_V2 } else { bits::TSYNCRXCTL_TYPE_ALL };
    let rxctl = regs.read32(TSYNCRXCTL) & !(bits::TSYNC_ENABLED | bits::TSYNCRXCTL_TYPE_MASK);
    regs.write32(TSYNCRXCTL, rxctl | bits::TSYNC_ENABLED | rx_type);
    let txctl = regs.read32(TSYNCTXCTL);
    regs.write32(TSYNCTXCTL, txctl | bits::TSYNC_ENABLED);
    for latch in [TXSTMPL, TXSTMPH, RXSTMPL, RXSTMPH] {
        regs.read32(latch);
    }
    Ok(())
}

/// Brings the link up through the PHY ([`super::phy::link_up`], waiting up to `link_timeout` for
/// autonegotiation; a link already up is left alone), then the queues ([`bring_up`]).
pub fn bring_up_with_link(
    regs: &dyn RegisterAccess,
    family: Family,
    rx: RingPlace,
    tx: RingPlace,
    link_timeout: Duration,
) -> Result<(), BringupError> {
    check_family(family)?;
    super::phy::link_up(regs, link_timeout)?;
    bring_up(regs, family, rx, tx)
}

/// Takes the datapath down again: stamping off (TSYNCRXCTL/TSYNCTXCTL enables, ETQF(3), the UDP
/// filter, i210 RXPBS.CFG_TS_EN), receiver and transmitter off, both queues disabled and waited
/// for. Only after it returns `Ok` may the rings' DMA memory be freed.
pub fn tear_down(regs: &dyn RegisterAccess, family: Family) -> Result<(), BringupError> {
    check_family(family)?;
    let rxctl = regs.read32(TSYNCRXCTL);
    regs.write32(TSYNCRXCTL, rxctl & !bits::TSYNC_ENABLED);
    let txctl = regs.read32(TSYNCTXCTL);
    regs.write32(TSYNCTXCTL, txctl & !bits::TSYNC_ENABLED);
    regs.write32(breg::ETQF3, 0);
    regs.write32(breg::FTQF3, bits::FTQF_OFF);
    if family == Family::I210 {
        let rxpbs = regs.read32(breg::RXPBS);
        regs.write32(breg::RXPBS, rxpbs & !bits::RXPBS_CFG_TS_EN);
    }
    stop_queues(regs)
}
