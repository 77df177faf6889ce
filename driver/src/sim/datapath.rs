//! The simulated NIC's queue 0: advanced RX/TX descriptors and buffers in [`HostMemory`] by DMA,
//! frames to and from an attached wire, and the packet timestamps each family takes.
//!
//! TX runs when TDT (or TCTL/TXDCTL enabling the queue) is written, as QEMU does: every descriptor
//! from TDH to TDT is read, its frame goes out on the wire at that instant, a descriptor asking for
//! a stamp (ADVTXD_MAC_TSTAMP) latches SYSTIM into TXSTMPL/H if TSYNCTXCTL is enabled and not
//! VALID, and RS descriptors are written back DD. RX: a frame handed to [`SimNic::deliver`] at the
//! present instant needs link up, RCTL.EN, RXDCTL enabled and a free descriptor (RDH ≠ RDT), else
//! it is dropped and counted (silicon with SRRCTL.DROP_EN); the MAC filter takes our RAL0/RAH0,
//! broadcast with RCTL.BAM, multicast whose MTA bit is set, or everything under UPE/MPE.
//!
//! Stamps (igb-family.md §3, HARDWARE.md §7), each SYSTIM at the instant plus Gaussian jitter (the
//! i210/i211 also their latency: the TX stamp 178 ns before the frame leaves, the RX stamp 448 ns
//! after it arrives, at 1000 Mb/s):
//! - register latch (82576, and any family without SRRCTL.TIMESTAMP): a matching frame latches
//!   RXSTMPL/H + RXSATRL/H, sets TSYNCRXCTL.VALID and its descriptor's TS bit (16); while VALID
//!   no frame is stamped (counted). Silicon matches by TSYNCRXCTL's type (V2 events over L2 with
//!   an ETQF 1588 filter or UDP port 319 with the FTQF 1588 bit; all; …) after the MAC filter,
//!   and releases on the RXSTMPH read; a stamped frame then dropped for want of a descriptor
//!   leaves the latch held (the 82576 hang Linux clears after 5 s). QEMU (`qemu: true`) stamps
//!   only L2 frames whose first PTP byte equals TSYNCRXCFG[15:8], before the MAC filter, only
//!   when the queue can take the frame, leaves RXSATRH's sequenceId 0, and releases on the
//!   RXSATRH read (its RXSTMPH read does not).
//! - in the buffer (82580/i350/i354/i210/i211 with SRRCTL.TIMESTAMP; i210/i211 also
//!   RXPBS.CFG_TS_EN): 16 bytes before the frame — two zero dwords, SYSTIML, SYSTIMH — with TSIP
//!   (bit 15) in the descriptor, for every frame under TSYNCRXCTL type ALL.
//!
//! QEMU (`qemu: true`) does not drop what the receiver cannot take (link down, RCTL.EN clear, the
//! queue disabled or without a free descriptor): its net layer holds the frame (up to 10 000,
//! net/queue.c) and hands it over when the NIC asks again — an RDT or RCTL write, the link coming
//! up — so it is stamped then, not when it arrived (HARDWARE.md §7's hazard).
//!
//! Not modelled: multi-buffer frames (dropped as too long), legacy descriptors, queues other than
//! 0, interrupts.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::Rng;

use super::{irq, phy, Format, SimNic, State};
use crate::net::bringup::{bits, breg, mta_hash};
use crate::net::desc::{ctl, reg, rx_status, tx_cmd, tx_writeback_done, RxWriteback, TxData, TS_HEADER_LEN};
use crate::net::frame::{ETHERTYPE_IPV4, ETHERTYPE_PTP, ETHERTYPE_VLAN, ETH_MIN_FRAME, PTP_EVENT_PORT};
use crate::regs;

pub use super::dma::HostMemory;

/// Where the NIC's transmitted frames go: the wire it is attached to.
pub trait FrameSink: Send + Sync {
    /// `frame` (no FCS) left the NIC at true time `t_ns`.
    fn transmit(&self, t_ns: u64, frame: Vec<u8>);
}

/// RX timestamp attribute registers (the sequenceId/source of the latched frame).
pub const RXSATRL: usize = 0xB62C;
pub const RXSATRH: usize = 0xB630;
/// TSYNCRXCTL / TSYNCTXCTL VALID (read-only; the latch is held).
pub const TSYNC_VALID: u32 = 0x1;
const RCTL_UPE: u32 = 1 << 3;
const RCTL_MPE: u32 = 1 << 4;
const ETQF0: usize = 0x05CB0;
const FTQF_1588_TIME_STAMP: u32 = 0x0800_0000;
/// QEMU's net queue length (net/queue.c `nq_maxlen`).
const QEMU_QUEUE_LEN: usize = 10_000;
/// The most bytes a TX frame may gather over its descriptors (a jumbo frame's worth).
pub const MAX_TX_FRAME: usize = 16 * 1024;
/// RDLEN/TDLEN keep bits 19:7; RDBAL/TDBAL ignore the low 7 bits (128-byte aligned rings).
const XDLEN_MASK: u32 = 0x000F_FF80;
const XDBAL_MASK: u32 = 0xFFFF_FF80;

/// Why a received frame did not reach the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxDrop {
    /// STATUS.LU is clear (no autonegotiation yet, or no link partner).
    LinkDown,
    /// RCTL.EN is clear.
    ReceiverOff,
    /// RXDCTL.ENABLE is clear.
    QueueOff,
    /// RDH == RDT: software has given no free descriptor.
    NoDescriptor,
    /// Not for us: the MAC address filter.
    Filtered,
    /// Larger than the packet buffer (multi-buffer frames are not modelled).
    TooLong,
    /// QEMU: the receiver cannot take it now; QEMU's net layer holds it until the NIC asks again
    /// (then it is received, and stamped, at that instant).
    Held,
    /// The descriptor or its buffer is outside every attached host memory.
    DmaFault,
}

/// A frame written into the RX ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxDelivered {
    /// The descriptor it went into.
    pub index: usize,
    /// The raw SYSTIM it was stamped with (latched in RXSTMPL/H, or in the buffer's header).
    pub stamp: Option<u64>,
    /// True time it was received (and stamped) at, ns: what a simulated sender on the wire
    /// needs to stamp its side exactly.
    pub at_ns: u64,
}

/// What the datapath has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatapathStats {
    /// Frames written into the RX ring.
    pub rx_frames: u64,
    /// RX frames stamped into RXSTMPL/H.
    pub rx_latched: u64,
    /// RX frames stamped into their buffer.
    pub rx_packet_stamped: u64,
    /// RX frames that matched the stamp filter while the latch was held: not stamped.
    pub rx_latch_held: u64,
    pub rx_dropped_link_down: u64,
    pub rx_dropped_receiver_off: u64,
    pub rx_dropped_queue_off: u64,
    pub rx_dropped_no_descriptor: u64,
    pub rx_filtered: u64,
    pub rx_too_long: u64,
    /// QEMU: frames held because the receiver could not take them (received later, or dropped
    /// when QEMU's queue of 10 000 is full).
    pub rx_held: u64,
    /// QEMU: held frames dropped because the queue was full.
    pub rx_held_dropped: u64,
    /// Frames sent on the wire.
    pub tx_frames: u64,
    /// TX frames stamped into TXSTMPL/H.
    pub tx_stamped: u64,
    /// TX frames that asked for a stamp and got none (latch held, stamping off, or the fault).
    pub tx_stamp_missed: u64,
    /// TX frames lost because the link was down.
    pub tx_dropped_link_down: u64,
    /// TX frames dropped: empty, over [`MAX_TX_FRAME`] bytes, or a buffer outside host memory.
    pub tx_bad_frames: u64,
    /// Descriptors or buffers outside every attached host memory.
    pub dma_faults: u64,
}

/// The datapath's state inside the NIC.
pub(super) struct Datapath {
    memory: Vec<HostMemory>,
    wire: Option<Arc<dyn FrameSink>>,
    rx_valid: bool,
    tx_valid: bool,
    /// The frame being gathered from TX descriptors up to EOP, and whether one asked for a stamp.
    tx_frame: Vec<u8>,
    tx_stamp: bool,
    /// The frame being gathered lost a piece: dropped at its EOP.
    tx_frame_bad: bool,
    /// QEMU: frames its net layer holds for the NIC.
    held: VecDeque<Vec<u8>>,
    pub stats: DatapathStats,
}

impl Datapath {
    pub fn new() -> Self {
        Self {
            memory: Vec::new(),
            wire: None,
            rx_valid: false,
            tx_valid: false,
            tx_frame: Vec::new(),
            tx_stamp: false,
            tx_frame_bad: false,
            held: VecDeque::new(),
            stats: DatapathStats::default(),
        }
    }

    pub fn attach_memory(&mut self, mem: HostMemory) {
        self.memory.push(mem);
    }

    pub fn attach_wire(&mut self, wire: Arc<dyn FrameSink>) {
        self.wire = Some(wire);
    }

    fn dma_read(&mut self, addr: u64, out: &mut [u8]) -> bool {
        let ok = self.memory.iter().any(|m| m.dma_read(addr, out));
        self.stats.dma_faults += u64::from(!ok);
        ok
    }

    fn dma_write(&mut self, addr: u64, data: &[u8]) -> bool {
        let ok = self.memory.iter().any(|m| m.dma_write(addr, data));
        self.stats.dma_faults += u64::from(!ok);
        ok
    }
}

/// The queue-0 aliases at 0x02800 (RX) and 0x03800 (TX) as their 0x0C000/0x0E000 offsets.
fn canonical(offset: usize) -> usize {
    match offset {
        0x2800..=0x283F => offset - 0x2800 + reg::RDBAL0,
        0x3800..=0x383F => offset - 0x3800 + reg::TDBAL0,
        _ => offset,
    }
}

fn reg(s: &State, offset: usize) -> u32 {
    s.regs.get(&offset).copied().unwrap_or(0)
}

/// Runs the PHY to `now`; under QEMU a link just up hands the held frames over.
pub(super) fn sync(nic: &SimNic, s: &mut State, now: u64) {
    if s.phy.run_until(now) {
        s.irq.raise(irq::LSC);
        if nic.config.qemu {
            flush_held(nic, s);
        }
    }
}

/// Datapath register reads (None: not a datapath register).
pub(super) fn read(nic: &SimNic, s: &mut State, offset: usize) -> Option<u32> {
    let offset = canonical(offset);
    let now = nic.time.now_ns();
    sync(nic, s, now);
    let qemu = nic.config.qemu;
    Some(match offset {
        regs::STATUS => phy::status(s, reg(s, regs::STATUS)),
        phy::MDIC => phy::read_mdic(s),
        regs::TSYNCRXCTL => (reg(s, offset) & !TSYNC_VALID) | u32::from(s.dp.rx_valid),
        regs::TSYNCTXCTL => (reg(s, offset) & !TSYNC_VALID) | u32::from(s.dp.tx_valid),
        regs::RXSTMPH => {
            // Silicon releases the latch here; QEMU only on the RXSATRH read.
            if !qemu {
                s.dp.rx_valid = false;
            }
            reg(s, offset)
        }
        RXSATRH => {
            if qemu {
                s.dp.rx_valid = false;
            }
            reg(s, offset)
        }
        regs::TXSTMPH => {
            s.dp.tx_valid = false;
            reg(s, offset)
        }
        irq::ICR => s.irq.read_icr(),
        irq::IMS | irq::ICS => s.irq.ims(),
        // The 82576's TSICR clears on the read (later families: pins.rs).
        regs::TSICR if !nic.config.model.has_pins() => s.regs.remove(&regs::TSICR).unwrap_or(0),
        _ => return None,
    })
}

/// Datapath register writes (false: not a datapath register).
pub(super) fn write(nic: &SimNic, s: &mut State, offset: usize, value: u32) -> bool {
    let offset = canonical(offset);
    let now = nic.time.now_ns();
    sync(nic, s, now);
    match offset {
        phy::MDIC => {
            let was_up = s.phy.link_up();
            phy::write_mdic(s, value, now, nic.config.autoneg_ns, nic.config.link_partner);
            if was_up && !s.phy.link_up() {
                s.irq.raise(irq::LSC);
            }
        }
        irq::ICR | irq::ICS | irq::IMS | irq::IMC => {
            s.irq.write(offset, value);
        }
        regs::STATUS | regs::RXSTMPL | regs::RXSTMPH | RXSATRL | RXSATRH | regs::TXSTMPL | regs::TXSTMPH => {}
        regs::TSYNCRXCTL | regs::TSYNCTXCTL => {
            s.regs.insert(offset, value & !TSYNC_VALID);
        }
        reg::RDLEN0 | reg::TDLEN0 => {
            s.regs.insert(offset, value & XDLEN_MASK);
        }
        reg::RDBAL0 | reg::TDBAL0 => {
            s.regs.insert(offset, value & XDBAL_MASK);
        }
        reg::RDH0 | reg::TDH0 => {
            s.regs.insert(offset, value & 0xFFFF);
        }
        // QEMU looks at its held frames again when software moves RDT or writes RCTL.
        reg::RDT0 | breg::RCTL => {
            s.regs.insert(offset, if offset == reg::RDT0 { value & 0xFFFF } else { value });
            if nic.config.qemu {
                flush_held(nic, s);
            }
        }
        reg::TDT0 | breg::TCTL | reg::TXDCTL0 => {
            let value = if offset == reg::TDT0 { value & 0xFFFF } else { value };
            s.regs.insert(offset, value);
            transmit(nic, s);
        }
        _ => return false,
    }
    true
}

/// How far the i210/i211 stamps are from the wire (the SFD at the MDI) at 1000 Mb/s, the speed
/// the simulated link runs at, ns: the TX stamp is taken this long before the frame leaves, the RX
/// stamp this long after it arrived (igb-family.md §3.5: Linux's compensation values, which the
/// datasheet's measured ranges bracket). Linux compensates no other family, and here they have none.
pub const I210_STAMP_LATENCY_NS: (u64, u64) = (178, 448);

/// (TX, RX) stamp latency of this NIC, ns.
fn latency(nic: &SimNic) -> (u64, u64) {
    if !nic.config.qemu && nic.format() == Format::SecondsNs {
        I210_STAMP_LATENCY_NS
    } else {
        (0, 0)
    }
}

/// The counter as a stamp taken `after_ns` (plus the Gaussian stamp jitter) from now reads it,
/// in the family's units: a value the counter really takes, whole increments from now (the state
/// advanced to the present).
fn stamp_units(nic: &SimNic, s: &mut State, after_ns: f64) -> u128 {
    let sigma = nic.config.stamp_jitter_ns;
    let jitter_ns = if sigma > 0.0 {
        let (u1, u2): (f64, f64) = (s.stamp_rng.random::<f64>().max(1e-300), s.stamp_rng.random());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * sigma
    } else {
        0.0
    };
    let dt = after_ns + jitter_ns;
    if nic.config.qemu {
        let vns = (s.osc_ns + dt * (1.0 + s.freq_error)).max(0.0) as u64;
        return u128::from(super::qemu::systim_at(s, vns));
    }
    let run = nic.run(s);
    let periods = (s.counter.phase + dt / run.period_true_ns).floor() as i128;
    let modulus = run.format.modulus() as i128;
    (s.counter.units as i128 + periods * run.increment as i128).rem_euclid(modulus) as u128
}

/// (SYSTIML, SYSTIMH) of a counter value as the stamp registers and header hold them.
fn stamp_words(nic: &SimNic, units: u128) -> (u32, u32) {
    if nic.config.qemu {
        return (units as u32, (units >> 32) as u32);
    }
    let (_, lo, hi) = nic.format().words(units);
    (lo, hi)
}

/// Runs the TX queue: every descriptor from TDH to TDT, at the state's present.
fn transmit(nic: &SimNic, s: &mut State) {
    if reg(s, breg::TCTL) & bits::TCTL_EN == 0 || reg(s, reg::TXDCTL0) & ctl::QUEUE_ENABLE == 0 {
        return;
    }
    let base = u64::from(reg(s, reg::TDBAH0)) << 32 | u64::from(reg(s, reg::TDBAL0));
    let n = (reg(s, reg::TDLEN0) / 16) as usize;
    let tail = reg(s, reg::TDT0) as usize;
    if n == 0 || tail >= n {
        return;
    }
    let mut head = reg(s, reg::TDH0) as usize % n;
    while head != tail {
        let at = base + 16 * head as u64;
        let mut raw = [0u8; 16];
        if !s.dp.dma_read(at, &mut raw) {
            break;
        }
        let d = [
            u64::from_le_bytes(raw[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(raw[8..].try_into().expect("8 bytes")),
        ];
        let cmd = d[1] as u32;
        if let Some(data) = TxData::decode(d) {
            let mut bytes = vec![0u8; usize::from(data.len)];
            if s.dp.dma_read(data.addr, &mut bytes) && s.dp.tx_frame.len() + bytes.len() <= MAX_TX_FRAME {
                s.dp.tx_frame.extend_from_slice(&bytes);
            } else if !s.dp.tx_frame.is_empty() || !bytes.is_empty() {
                // Too long (or its buffer unreachable): the frame is dropped, up to its EOP.
                s.dp.tx_frame.clear();
                s.dp.tx_frame_bad = true;
            }
            s.dp.tx_stamp |= data.timestamp;
            if cmd & tx_cmd::EOP != 0 {
                send(nic, s);
            }
        }
        // Context and legacy descriptors carry no data here; every one asking is written back.
        if cmd & tx_cmd::RS != 0 && s.dp.dma_write(at + 8, &tx_writeback_done().to_le_bytes()) {
            s.irq.raise(irq::TXDW);
        }
        head = (head + 1) % n;
    }
    s.regs.insert(reg::TDH0, head as u32);
}

/// One gathered frame leaves: its stamp latched, padded as TCTL.PSP asks, onto the wire.
fn send(nic: &SimNic, s: &mut State) {
    let mut frame = std::mem::take(&mut s.dp.tx_frame);
    let wants_stamp = std::mem::take(&mut s.dp.tx_stamp);
    if std::mem::take(&mut s.dp.tx_frame_bad) || frame.is_empty() {
        s.dp.stats.tx_bad_frames += 1;
        return;
    }
    if wants_stamp {
        let enabled = reg(s, regs::TSYNCTXCTL) & bits::TSYNC_ENABLED != 0;
        let fault = nic.config.tx_stamp_loss > 0.0 && s.stamp_rng.random::<f64>() < nic.config.tx_stamp_loss;
        if enabled && !s.dp.tx_valid && !fault {
            let units = stamp_units(nic, s, 0.0);
            let (lo, hi) = stamp_words(nic, units);
            s.regs.insert(regs::TXSTMPL, lo);
            s.regs.insert(regs::TXSTMPH, hi);
            s.dp.tx_valid = true;
            s.dp.stats.tx_stamped += 1;
            if !nic.config.qemu {
                *s.regs.entry(regs::TSICR).or_default() |= regs::TSINTR_TXTS;
                if reg(s, regs::TSIM) & regs::TSINTR_TXTS != 0 {
                    s.irq.raise(irq::TIME_SYNC);
                }
            }
        } else {
            s.dp.stats.tx_stamp_missed += 1;
        }
    }
    if reg(s, breg::TCTL) & bits::TCTL_PSP != 0 && frame.len() < ETH_MIN_FRAME {
        frame.resize(ETH_MIN_FRAME, 0);
    }
    if !s.phy.link_up() {
        s.dp.stats.tx_dropped_link_down += 1;
        return;
    }
    s.dp.stats.tx_frames += 1;
    if let Some(wire) = &s.dp.wire {
        // The frame leaves at the instant its stamp was taken, the state's present (under a real-
        // time source the clock read again here is µs later: measured 4–20 µs on a busy host).
        wire.transmit(s.last_t + latency(nic).0, frame);
    }
}

/// What the stamping logic sees of a frame: its EtherType (after one VLAN tag), the PTP message
/// and whether it came over UDP to port 319.
struct PtpView<'a> {
    ethertype: u16,
    ptp: Option<&'a [u8]>,
    udp_event: bool,
}

fn view(frame: &[u8]) -> PtpView<'_> {
    let be16 = |at: usize| frame.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut at = 12;
    let mut ethertype = be16(at).unwrap_or(0);
    if ethertype == ETHERTYPE_VLAN {
        at += 4;
        ethertype = be16(at).unwrap_or(0);
    }
    at += 2;
    match ethertype {
        ETHERTYPE_PTP => PtpView { ethertype, ptp: frame.get(at..), udp_event: false },
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(frame.get(at).copied().unwrap_or(0) & 0x0F) * 4;
            let udp = frame.get(at + 9) == Some(&17);
            let dport = be16(at + ihl + 2);
            let udp_event = udp && ihl >= 20 && dport == Some(PTP_EVENT_PORT);
            PtpView { ethertype, ptp: frame.get(at + ihl + 8..).filter(|_| udp_event), udp_event }
        }
        _ => PtpView { ethertype, ptp: None, udp_event: false },
    }
}

/// The ETQF filter that matches `ethertype` with the 1588 flag, if one does.
fn etqf_1588(s: &State, ethertype: u16) -> bool {
    (0..8).map(|i| reg(s, ETQF0 + 4 * i)).any(|v| {
        v & bits::ETQF_FILTER_ENABLE != 0 && v & 0xFFFF == u32::from(ethertype) && v & bits::ETQF_1588 != 0
    })
}

/// Whether the register latch takes this frame's stamp (TSYNCRXCTL enabled, VALID aside).
fn latch_matches(nic: &SimNic, s: &State, frame: &[u8]) -> bool {
    let rxctl = reg(s, regs::TSYNCRXCTL);
    if rxctl & bits::TSYNC_ENABLED == 0 {
        return false;
    }
    let v = view(frame);
    let msgt = ((reg(s, regs::TSYNCRXCFG) >> 8) & 0xFF) as u8;
    let v2 = v.ptp.is_some_and(|p| p.len() >= 2 && p[1] & 0x0F == 2);
    if nic.config.qemu {
        let first = v.ptp.and_then(|p| p.first().copied());
        return v.ethertype == ETHERTYPE_PTP && etqf_1588(s, v.ethertype) && v2 && first == Some(msgt);
    }
    let l2 = v.ethertype == ETHERTYPE_PTP && etqf_1588(s, v.ethertype);
    let l4 = v.udp_event
        && reg(s, breg::FTQF3) & FTQF_1588_TIME_STAMP != 0
        && reg(s, breg::IMIR3) & 0xFFFF == bits::PORT_319;
    let message_type = v.ptp.and_then(|p| p.first()).map(|b| b & 0x0F);
    match rxctl & bits::TSYNCRXCTL_TYPE_MASK {
        bits::TSYNCRXCTL_TYPE_ALL => true,
        bits::TSYNCRXCTL_TYPE_EVENT_V2 => (l2 || l4) && v2 && message_type.is_some_and(|m| m < 8),
        0x00 => l2 && v2 && message_type == Some(msgt & 0x0F),
        0x04 => (l2 || l4) && v2 && message_type == Some(msgt & 0x0F),
        _ => false, // V1 (never sent here) and reserved types
    }
}

/// Whether this frame's stamp goes into its buffer (82580 and later).
fn packet_stamp(nic: &SimNic, s: &State) -> bool {
    let format = nic.format();
    if nic.config.qemu || matches!(format, Format::Fractional { .. }) {
        return false;
    }
    let i210 = format == Format::SecondsNs;
    reg(s, reg::SRRCTL0) & ctl::SRRCTL_TIMESTAMP != 0
        && reg(s, regs::TSYNCRXCTL) & bits::TSYNC_ENABLED != 0
        && reg(s, regs::TSYNCRXCTL) & bits::TSYNCRXCTL_TYPE_MASK == bits::TSYNCRXCTL_TYPE_ALL
        && (!i210 || reg(s, breg::RXPBS) & bits::RXPBS_CFG_TS_EN != 0)
}

/// The MAC address filter: our RAL0/RAH0, broadcast (BAM), multicast in the MTA, promiscuous.
fn mac_accepts(s: &State, frame: &[u8]) -> bool {
    let Some(dst) = frame.get(..6) else { return false };
    let rctl = reg(s, breg::RCTL);
    let (ral, rah) = (reg(s, regs::RAL0), reg(s, regs::RAH0));
    let mut ours = [0u8; 6];
    ours[..4].copy_from_slice(&ral.to_le_bytes());
    ours[4..].copy_from_slice(&rah.to_le_bytes()[..2]);
    if rah & 0x8000_0000 != 0 && dst == ours {
        return true;
    }
    if dst == [0xFF; 6] {
        return rctl & bits::RCTL_BAM != 0;
    }
    if dst[0] & 1 != 0 {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(dst);
        let (word, bit) = mta_hash(mac);
        return rctl & RCTL_MPE != 0 || reg(s, breg::MTA + 4 * word) & (1 << bit) != 0;
    }
    rctl & RCTL_UPE != 0
}

/// Latches the register stamp of `frame` (the latch is free); returns the raw SYSTIM.
fn latch(nic: &SimNic, s: &mut State, frame: &[u8]) -> u64 {
    let units = stamp_units(nic, s, latency(nic).1 as f64);
    let (lo, hi) = stamp_words(nic, units);
    s.regs.insert(regs::RXSTMPL, lo);
    s.regs.insert(regs::RXSTMPH, hi);
    // Source uuid (clockIdentity bytes 2..8) and sequenceId; QEMU's header struct is two bytes
    // off, so its sequenceId reads 0 (HARDWARE.md §7) [inference: silicon's byte choice].
    let p = view(frame).ptp.unwrap_or(&[]);
    let byte = |i: usize| p.get(i).copied().unwrap_or(0);
    let seq = if nic.config.qemu { 0 } else { u32::from(u16::from_be_bytes([byte(30), byte(31)])) };
    s.regs.insert(RXSATRL, u32::from_le_bytes([byte(22), byte(23), byte(24), byte(25)]));
    s.regs.insert(RXSATRH, u32::from(u16::from_le_bytes([byte(26), byte(27)])) | seq << 16);
    s.dp.rx_valid = true;
    s.dp.stats.rx_latched += 1;
    (u64::from(hi) << 32) | u64::from(lo)
}

/// IEEE 802.3 CRC-32 of `data` (the FCS a receiver keeps when RCTL.SECRC is clear).
fn fcs(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Receives `frame` at the present instant (see the module docs).
pub(super) fn deliver(nic: &SimNic, s: &mut State, frame: &[u8]) -> Result<RxDelivered, RxDrop> {
    let now = nic.time.now_ns();
    nic.advance(s, now);
    sync(nic, s, now);
    if nic.config.qemu {
        if !s.dp.held.is_empty() {
            // Behind frames already held (they go first, or this one waits too).
            flush_held(nic, s);
        }
        if !s.dp.held.is_empty() {
            return hold(s, frame);
        }
    }
    let out = receive(nic, s, frame);
    if nic.config.qemu && matches!(out, Err(e) if not_ready(e)) {
        return hold(s, frame);
    }
    count(s, &out);
    out
}

/// Whether `e` means the receiver could not take a frame now (QEMU: hold it).
fn not_ready(e: RxDrop) -> bool {
    matches!(e, RxDrop::LinkDown | RxDrop::ReceiverOff | RxDrop::QueueOff | RxDrop::NoDescriptor)
}

fn hold(s: &mut State, frame: &[u8]) -> Result<RxDelivered, RxDrop> {
    if s.dp.held.len() >= QEMU_QUEUE_LEN {
        s.dp.stats.rx_held_dropped += 1;
    } else {
        s.dp.held.push_back(frame.to_vec());
        s.dp.stats.rx_held += 1;
    }
    Err(RxDrop::Held)
}

/// QEMU hands its held frames to the NIC, in order, as long as it takes them (stamped now).
fn flush_held(nic: &SimNic, s: &mut State) {
    while let Some(frame) = s.dp.held.pop_front() {
        let out = receive(nic, s, &frame);
        if matches!(out, Err(e) if not_ready(e)) {
            s.dp.held.push_front(frame);
            break;
        }
        count(s, &out);
    }
}

fn count(s: &mut State, out: &Result<RxDelivered, RxDrop>) {
    let st = &mut s.dp.stats;
    match out {
        Ok(_) => st.rx_frames += 1,
        Err(RxDrop::LinkDown) => st.rx_dropped_link_down += 1,
        Err(RxDrop::ReceiverOff) => st.rx_dropped_receiver_off += 1,
        Err(RxDrop::QueueOff) => st.rx_dropped_queue_off += 1,
        Err(RxDrop::NoDescriptor) => st.rx_dropped_no_descriptor += 1,
        Err(RxDrop::Filtered) => st.rx_filtered += 1,
        Err(RxDrop::TooLong) => st.rx_too_long += 1,
        Err(RxDrop::DmaFault | RxDrop::Held) => {} // counted where it happened
    }
}

fn receive(nic: &SimNic, s: &mut State, frame: &[u8]) -> Result<RxDelivered, RxDrop> {
    if !s.phy.link_up() {
        return Err(RxDrop::LinkDown);
    }
    if reg(s, breg::RCTL) & bits::RCTL_EN == 0 {
        return Err(RxDrop::ReceiverOff);
    }
    let n = (reg(s, reg::RDLEN0) / 16) as usize;
    let (head, tail) = (reg(s, reg::RDH0) as usize, reg(s, reg::RDT0) as usize);
    let queue_on = reg(s, reg::RXDCTL0) & ctl::QUEUE_ENABLE != 0;
    let free = n > 0 && head < n && tail < n && head != tail;
    let qemu = nic.config.qemu;
    if qemu && !queue_on {
        return Err(RxDrop::QueueOff);
    }
    if qemu && !free {
        return Err(RxDrop::NoDescriptor);
    }
    let in_packet = packet_stamp(nic, s);
    let mut stamp = None;
    // QEMU stamps in igb_receive_assign, before the MAC filter; silicon after it.
    let stamp_now = |nic: &SimNic, s: &mut State, stamp: &mut Option<u64>| {
        if !in_packet && latch_matches(nic, s, frame) {
            if s.dp.rx_valid {
                s.dp.stats.rx_latch_held += 1;
            } else {
                *stamp = Some(latch(nic, s, frame));
            }
        }
    };
    if qemu {
        stamp_now(nic, s, &mut stamp);
    }
    if !mac_accepts(s, frame) {
        return Err(RxDrop::Filtered);
    }
    if !qemu {
        stamp_now(nic, s, &mut stamp);
    }
    if !queue_on {
        return Err(RxDrop::QueueOff);
    }
    if !free {
        // 82576: the stamp stays latched with no descriptor to carry TS (Linux's Rx hang).
        return Err(RxDrop::NoDescriptor);
    }
    let mut buf = Vec::with_capacity(frame.len() + TS_HEADER_LEN + 4);
    let mut status = rx_status::DD | rx_status::EOP;
    if in_packet {
        let units = stamp_units(nic, s, latency(nic).1 as f64);
        let (lo, hi) = stamp_words(nic, units);
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&lo.to_le_bytes());
        buf.extend_from_slice(&hi.to_le_bytes());
        status |= rx_status::TSIP;
        stamp = Some((u64::from(hi) << 32) | u64::from(lo));
        s.dp.stats.rx_packet_stamped += 1;
    } else if stamp.is_some() {
        status |= rx_status::TS;
    }
    buf.extend_from_slice(frame);
    if reg(s, breg::RCTL) & bits::RCTL_SECRC == 0 {
        buf.extend_from_slice(&fcs(frame).to_le_bytes());
    }
    let bsize = match reg(s, reg::SRRCTL0) & 0x7F {
        0 => 2048,
        k => k as usize * 1024,
    };
    if buf.len() > bsize.min(usize::from(u16::MAX)) {
        return Err(RxDrop::TooLong);
    }
    let base = u64::from(reg(s, reg::RDBAH0)) << 32 | u64::from(reg(s, reg::RDBAL0));
    let at = base + 16 * head as u64;
    let mut raw = [0u8; 16];
    if !s.dp.dma_read(at, &mut raw) {
        return Err(RxDrop::DmaFault);
    }
    let pkt_addr = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
    if !s.dp.dma_write(pkt_addr, &buf) {
        return Err(RxDrop::DmaFault);
    }
    let wb = RxWriteback { pkt_info: 0, rss: 0, status_error: status, length: buf.len() as u16, vlan: 0 };
    let [q0, q1] = wb.encode();
    s.dp.dma_write(at, &q0.to_le_bytes());
    s.dp.dma_write(at + 8, &q1.to_le_bytes());
    let head = (head + 1) % n;
    s.regs.insert(reg::RDH0, head as u32);
    // RXDMT0 when the descriptors left to the NIC fall to SRRCTL.RDMTS × 16 (as QEMU's igb:
    // equal, so once per crossing).
    let left = (reg(s, reg::RDT0) as usize + n - head) % n;
    let threshold = ((reg(s, reg::SRRCTL0) >> 20) & 31) as usize * 16;
    let rxdmt = if threshold > 0 && left == threshold { irq::RXDMT0 } else { 0 };
    s.irq.raise(irq::RXDW | rxdmt);
    Ok(RxDelivered { index: head, stamp, at_ns: s.last_t })
}
