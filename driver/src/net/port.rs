//! One PTP port on queue 0 of an igb NIC: the RX/TX rings, frame building and filtering, and the
//! hardware timestamps matched to their frames, per family (82576 register latch, 82580+ header).
//!
//! Sans-IO apart from the register seam: the caller polls it (daemon in real time, simulator in
//! virtual time); raw stamps come out as register words for [`Phc::stamp_to_ns`](crate::clock::Phc).

use std::net::Ipv4Addr;

use nicclock_uio::RegisterAccess;

use super::bringup::{self, BringupError, RingPlace};
use super::counters::DropCounters;
use super::desc::{BUF_LEN, DESC_LEN};
use super::frame::{self, BuildError, FrameFilter, FrameSpec, MessageClass, PTP_HEADER_LEN};
use super::phy;
use super::ring::{DescMemory, RingError, RxRing, TxError, TxRing};
use crate::clock::Nanos;
use crate::model::{Family, Quirks};
use crate::regs::{RXSTMPH, RXSTMPL, TSYNCRXCTL, TSYNCTXCTL, TXSTMPH, TXSTMPL};

/// RX descriptors (and 2 KiB buffers) of the port's receive ring.
pub const RX_DESCS: usize = 32;
/// TX descriptors of the port's transmit ring (PTP sends a few frames a second).
pub const TX_DESCS: usize = 16;
/// Received descriptors are handed back to the NIC (one RDT write) 8 at a time, not at each frame
/// ([`RxRing::set_return_batch`]): the NIC keeps at least 24 of the 32, ample at PTP's rates.
pub const RX_RETURN_BATCH: usize = 8;
/// Bytes of DMA memory the receive ring needs (from offset 0 of its memory, page-aligned).
pub const RX_MEM_BYTES: usize = ring_bytes(RX_DESCS);
/// Bytes of DMA memory the transmit ring needs.
pub const TX_MEM_BYTES: usize = ring_bytes(TX_DESCS);

/// [`super::ring::bytes_needed`] as a constant (kept equal by a test).
const fn ring_bytes(descs: usize) -> usize {
    (descs * DESC_LEN).div_ceil(BUF_LEN) * BUF_LEN + descs * BUF_LEN
}

/// Registers the port reads besides the TSYNC and stamp ones: link status, and the RX stamp
/// auxiliary word whose read releases QEMU's latch.
pub mod preg {
    /// Device status (link up, speed).
    pub const STATUS: usize = 0x0008;
    /// RX stamp auxiliary, high word (sequenceId; reading it releases QEMU's RX latch).
    pub const RXSATRH: usize = 0xB630;
}

/// TSYNCRXCTL / TSYNCTXCTL: a stamp is latched (VALID).
pub const TSYNC_VALID: u32 = 0x01;
/// STATUS: link up.
pub const STATUS_LU: u32 = 1 << 1;
/// STATUS: speed field (bits 7:6: 00 10 Mb/s, 01 100 Mb/s, 1x 1000 Mb/s).
const STATUS_SPEED_SHIFT: u32 = 6;

/// How long bring-up waits for autonegotiation (QEMU's takes 500 ms, silicon a few seconds).
pub const LINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A TX stamp not latched this long after its frame was handed over is lost (ns): the next
/// Delay_Req is due by then anyway (Linux waits 15 s, for a socket user who may be slow).
pub const TX_STAMP_TIMEOUT_NS: u64 = 1_000_000_000;
/// An RX latch VALID this long without a stamped frame to claim it is stuck (ns; Linux: 5 s).
pub const STUCK_RX_LATCH_NS: u64 = 2_000_000_000;

/// How PTP messages travel, with what our side needs of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// IEEE 802.3 / Ethernet (ptp4l -2).
    L2,
    /// UDP over IPv4 (ptp4l -4) from this configured source address (no ARP: multicast only).
    Udp4 { src: Ipv4Addr },
}

impl Transport {
    /// The frame layer's transport.
    pub fn kind(self) -> frame::Transport {
        match self {
            Transport::L2 => frame::Transport::L2,
            Transport::Udp4 { .. } => frame::Transport::Udp4,
        }
    }
}

/// How the 82576's RX stamp latch is released once read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampUnlock {
    /// Reading RXSTMPH (silicon, the datasheet).
    RxstmphRead,
    /// Reading RXSATRH (QEMU's igb, HARDWARE.md §7).
    RxsatrhRead,
}

impl StampUnlock {
    /// The unlock the quirk table says this board needs.
    pub fn for_quirks(quirks: Quirks) -> Self {
        if quirks.contains(Quirks::RX_STAMP_UNLOCK_RXSATRH) {
            StampUnlock::RxsatrhRead
        } else {
            StampUnlock::RxstmphRead
        }
    }
}

/// Link speed, for the i210's timestamp latency compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSpeed {
    Mbps10,
    Mbps100,
    Mbps1000,
}

impl LinkSpeed {
    /// From the STATUS register's speed field.
    pub fn from_status(status: u32) -> Self {
        match (status >> STATUS_SPEED_SHIFT) & 0x3 {
            0 => LinkSpeed::Mbps10,
            1 => LinkSpeed::Mbps100,
            _ => LinkSpeed::Mbps1000,
        }
    }
}

/// What a family's stamps are off from the wire (the SFD at the MDI), ns: the TX stamp is taken
/// `tx_ns` before the frame leaves (add it), the RX stamp `rx_ns` after it arrived (subtract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StampLatency {
    pub tx_ns: i64,
    pub rx_ns: i64,
}

/// The family's stamp latencies at `speed` (igb-family.md §3.5: i210/i211 only; Linux applies no
/// compensation to the 82576/82580/i350/i354, and neither do we).
pub fn stamp_latency(family: Family, speed: LinkSpeed) -> StampLatency {
    match (family, speed) {
        (Family::I210, LinkSpeed::Mbps10) => StampLatency { tx_ns: 9542, rx_ns: 20662 },
        (Family::I210, LinkSpeed::Mbps100) => StampLatency { tx_ns: 1024, rx_ns: 2213 },
        (Family::I210, LinkSpeed::Mbps1000) => StampLatency { tx_ns: 178, rx_ns: 448 },
        _ => StampLatency::default(),
    }
}

/// The port's set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    pub family: Family,
    pub transport: Transport,
    /// Our MAC (frames from it are our own, looped back).
    pub mac: [u8; 6],
    /// The PTP domain: messages of another are dropped and counted.
    pub domain: u8,
    pub stamp_unlock: StampUnlock,
}

/// A raw hardware stamp as its two register words (SYSTIML/SYSTIMH format of the family): convert
/// with [`Phc::stamp_to_ns`](crate::clock::Phc::stamp_to_ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStamp {
    pub lo: u32,
    pub hi: u32,
}

/// A PTP message received for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An event message (Sync, Delay_Req) with its hardware RX stamp.
    Event { data: Vec<u8>, rx_raw: RawStamp },
    /// A general message (Announce, Follow_Up, Delay_Resp, …).
    General { data: Vec<u8> },
}

/// What became of the TX stamp asked for by [`NetPort::send_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStampOutcome {
    Stamped(RawStamp),
    /// Not latched within [`TX_STAMP_TIMEOUT_NS`] (or abandoned): counted, the latch cleared.
    Lost,
}

/// The port's own counters besides the per-reason frame drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortCounters {
    /// Descriptors the RX ring discarded (multi-buffer frames, frame errors, bad lengths).
    pub rx_ring_discards: u64,
    /// PTP messages for another domain.
    pub wrong_domain: u64,
    /// Event messages that came without a hardware stamp (the latch held another's).
    pub event_unstamped: u64,
    /// A stamped descriptor whose latch was not VALID (nothing to read).
    pub stamp_missing: u64,
    /// RX latches found VALID with no frame to claim them, released (Linux's rx_hwtstamp_cleared).
    pub rx_latch_cleared: u64,
    /// TX stamps read.
    pub tx_stamps: u64,
    /// TX stamps never latched or abandoned (Linux's tx_hwtstamp_timeouts).
    pub tx_stamps_lost: u64,
    /// Frames not sent: the TX ring was full.
    pub tx_ring_full: u64,
}

/// Why the port could not be set up or could not send.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{0:?} has no igb datapath: the PTP port supports 82576, 82580/i350/i354 and i210/i211")]
    Unsupported(Family),
    #[error("{queue} ring: {err}")]
    Ring {
        queue: &'static str,
        #[source]
        err: RingError,
    },
    #[error(transparent)]
    Bringup(#[from] BringupError),
    #[error("cannot frame the PTP message: {0}")]
    Build(#[from] BuildError),
    #[error("cannot send: {0}")]
    Tx(#[from] TxError),
    /// A stamped frame is still waiting for its stamp (one in flight: the NIC latches one).
    #[error("a TX stamp is still in flight")]
    StampInFlight,
}

/// The stamped frame in flight.
#[derive(Debug, Clone, Copy)]
struct TxPending {
    index: usize,
    done: bool,
    /// The first poll after it was sent (the bounded wait counts from there).
    since_ns: Option<u64>,
}

/// One PTP port over queue 0 (see the module docs).
pub struct NetPort<M: DescMemory> {
    rx: RxRing<M>,
    tx: TxRing<M>,
    cfg: PortConfig,
    spec: FrameSpec,
    filter: FrameFilter,
    drops: DropCounters,
    counters: PortCounters,
    speed: LinkSpeed,
    tx_pending: Option<TxPending>,
    /// When the RX latch was first seen VALID with no stamped frame claimed since.
    latch_valid_since: Option<u64>,
    up: bool,
    link_up: bool,
}

impl<M: DescMemory> NetPort<M> {
    /// Lays the rings out at offset 0 of `rx_mem` and `tx_mem` ([`RX_MEM_BYTES`],
    /// [`TX_MEM_BYTES`]); nothing is written to the device yet.
    pub fn new(rx_mem: M, tx_mem: M, cfg: PortConfig) -> Result<Self, PortError> {
        if cfg.family == Family::E82574 {
            return Err(PortError::Unsupported(cfg.family));
        }
        let mut rx = RxRing::new(rx_mem, 0, RX_DESCS).map_err(|err| PortError::Ring { queue: "RX", err })?;
        rx.set_return_batch(RX_RETURN_BATCH);
        let tx = TxRing::new(tx_mem, 0, TX_DESCS).map_err(|err| PortError::Ring { queue: "TX", err })?;
        let src_ip = match cfg.transport {
            Transport::Udp4 { src } => src,
            Transport::L2 => Ipv4Addr::UNSPECIFIED,
        };
        let spec = FrameSpec {
            transport: cfg.transport.kind(),
            src_mac: cfg.mac,
            src_ip,
            vlan_tci: None,
            udp_checksum: true,
            ip_id: 0,
        };
        let filter = FrameFilter { transport: cfg.transport.kind(), own_mac: cfg.mac, vlan: None };
        Ok(Self {
            rx,
            tx,
            cfg,
            spec,
            filter,
            drops: DropCounters::default(),
            counters: PortCounters::default(),
            speed: LinkSpeed::Mbps1000,
            tx_pending: None,
            latch_valid_since: None,
            up: false,
            link_up: false,
        })
    }

    pub fn config(&self) -> &PortConfig {
        &self.cfg
    }

    /// Brings the link up through the PHY ([`phy::link_up`], waiting up to [`LINK_TIMEOUT`]; a
    /// link that does not come up, or a PHY that does not answer, is logged and the port goes on
    /// without it: frames flow once the link is there), then programs queue 0 and the stamping
    /// filters ([`bringup::bring_up`]) and reads the link speed.
    pub fn bring_up(&mut self, regs: &dyn RegisterAccess) -> Result<(), PortError> {
        if self.cfg.family == Family::E82574 {
            return Err(PortError::Unsupported(self.cfg.family));
        }
        if let Err(e) = phy::link_up(regs, LINK_TIMEOUT) {
            log::warn!("ptp port: {e}");
        }
        let rx = RingPlace { desc_addr: self.rx.desc_addr(), descs: self.rx.size() };
        let tx = RingPlace { desc_addr: self.tx.desc_addr(), descs: self.tx.size() };
        bringup::bring_up(regs, self.cfg.family, rx, tx)?;
        self.up = true;
        if !self.check_link(regs) {
            log::warn!("ptp port: link is down after bring-up; waiting for it");
        }
        Ok(())
    }

    /// Reads the link state and speed (STATUS): the speed keys the i210's latency compensation.
    /// Logs a change; returns whether the link is up.
    pub fn check_link(&mut self, regs: &dyn RegisterAccess) -> bool {
        let status = regs.read32(preg::STATUS);
        let up = status & STATUS_LU != 0;
        let speed = LinkSpeed::from_status(status);
        if up && (speed != self.speed || !self.link_up) {
            log::info!("ptp port: link up at {speed:?}");
            self.speed = speed;
        } else if !up && self.link_up {
            log::warn!("ptp port: link down");
        }
        self.link_up = up;
        up
    }

    /// Whether the link was up at the last [`Self::check_link`].
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Stamping and queues off ([`bringup::tear_down`]); the rings' memory may be freed after `Ok`.
    pub fn tear_down(&mut self, regs: &dyn RegisterAccess) -> Result<(), PortError> {
        self.up = false;
        bringup::tear_down(regs, self.cfg.family)?;
        Ok(())
    }

    /// The link speed the latency compensation uses (read at bring-up and by [`Self::check_link`];
    /// 1000 Mb/s before the link was first seen up).
    pub fn link_speed(&self) -> LinkSpeed {
        self.speed
    }

    /// Overrides the link speed (a link renegotiated; tests).
    pub fn set_link_speed(&mut self, speed: LinkSpeed) {
        self.speed = speed;
    }

    /// This family's stamp latencies at the current link speed.
    pub fn latency(&self) -> StampLatency {
        stamp_latency(self.cfg.family, self.speed)
    }

    /// An RX stamp in disciplined ns, latency-compensated (`to_ns`: the PHC's stamp conversion).
    pub fn rx_stamp_ns(&self, raw: RawStamp, to_ns: impl FnOnce(u32, u32) -> Nanos) -> Nanos {
        to_ns(raw.lo, raw.hi) - Nanos::from(self.latency().rx_ns)
    }

    /// A TX stamp in disciplined ns, latency-compensated.
    pub fn tx_stamp_ns(&self, raw: RawStamp, to_ns: impl FnOnce(u32, u32) -> Nanos) -> Nanos {
        to_ns(raw.lo, raw.hi) + Nanos::from(self.latency().tx_ns)
    }

    /// Received frames dropped, by reason (and those accepted).
    pub fn counters(&self) -> &DropCounters {
        &self.drops
    }

    /// The port's other counters (stamps, domain, ring).
    pub fn port_counters(&self) -> &PortCounters {
        &self.counters
    }

    /// Whether a TX stamp is awaited.
    pub fn tx_stamp_pending(&self) -> bool {
        self.tx_pending.is_some()
    }

    /// Drains what the RX ring holds (at most one ring's worth per call, so a flood cannot keep
    /// the caller here): every frame parsed, PTP messages for us appended to `out` with their
    /// stamps, everything else counted.
    pub fn poll_rx(&mut self, regs: &dyn RegisterAccess, out: &mut Vec<Received>) {
        let Self { rx, cfg, filter, drops, counters, latch_valid_since, .. } = self;
        for _ in 0..rx.size() {
            let outcome = rx.receive(regs, |f| {
                // A latched stamp is read (and the latch released) whatever the frame turns out
                // to be: else it blocks every later one.
                let latched = f.latched_timestamp.then(|| {
                    *latch_valid_since = None;
                    read_rx_latch(regs, cfg.stamp_unlock, counters)
                });
                let stamp = match (latched, f.packet_timestamp) {
                    (Some(s), _) => s,
                    (None, Some(systim)) => Some(RawStamp { lo: systim as u32, hi: (systim >> 32) as u32 }),
                    (None, None) => None,
                };
                let parsed = filter.parse(f.bytes);
                drops.record(&parsed);
                let Ok(p) = parsed else { return None };
                if p.payload.len() >= PTP_HEADER_LEN && p.payload[4] != cfg.domain {
                    counters.wrong_domain += 1;
                    return None;
                }
                let data = p.payload.to_vec();
                match MessageClass::of_message_type(p.message_type) {
                    MessageClass::General => Some(Received::General { data }),
                    MessageClass::Event => match stamp {
                        Some(rx_raw) => Some(Received::Event { data, rx_raw }),
                        None => {
                            counters.event_unstamped += 1;
                            None
                        }
                    },
                }
            });
            match outcome {
                None => break,
                Some(Ok(Some(r))) => out.push(r),
                Some(Ok(None)) => {}
                Some(Err(discard)) => {
                    counters.rx_ring_discards += 1;
                    log::debug!("ptp port: RX descriptor discarded: {discard}");
                }
            }
        }
    }

    /// The 82576's stuck RX latch (igb_ptp_rx_hang): VALID for [`STUCK_RX_LATCH_NS`] with no
    /// stamped frame to claim it (the ring dropped the frame it belongs to) blocks every later
    /// stamp; release it. Call after [`Self::poll_rx`]. True when it cleared one.
    pub fn check_rx_latch(&mut self, regs: &dyn RegisterAccess, now_ns: u64) -> bool {
        if self.cfg.family != Family::E82576 || !self.up {
            return false;
        }
        if regs.read32(TSYNCRXCTL) & TSYNC_VALID == 0 {
            self.latch_valid_since = None;
            return false;
        }
        let since = *self.latch_valid_since.get_or_insert(now_ns);
        if now_ns.saturating_sub(since) < STUCK_RX_LATCH_NS {
            return false;
        }
        regs.read32(RXSTMPL);
        regs.read32(RXSTMPH);
        if self.cfg.stamp_unlock == StampUnlock::RxsatrhRead {
            regs.read32(preg::RXSATRH);
        }
        self.latch_valid_since = None;
        self.counters.rx_latch_cleared += 1;
        log::warn!("ptp port: RX stamp latch stuck (VALID with no stamped frame); cleared");
        true
    }

    /// Sends an event message (Sync, Delay_Req) and asks for its TX stamp (one in flight).
    pub fn send_event(&mut self, regs: &dyn RegisterAccess, ptp_payload: &[u8]) -> Result<(), PortError> {
        if self.tx_pending.is_some() {
            return Err(PortError::StampInFlight);
        }
        let index = self.send(regs, ptp_payload, true)?;
        self.tx_pending = Some(TxPending { index, done: false, since_ns: None });
        Ok(())
    }

    /// Sends a general message (no stamp).
    pub fn send_general(&mut self, regs: &dyn RegisterAccess, ptp_payload: &[u8]) -> Result<(), PortError> {
        self.send(regs, ptp_payload, false).map(|_| ())
    }

    fn send(&mut self, regs: &dyn RegisterAccess, payload: &[u8], stamp: bool) -> Result<usize, PortError> {
        self.reap_tx();
        let mut built = Err(BuildError::NotPtp);
        let spec = self.spec;
        let r = self.tx.send(regs, stamp, |buf| {
            built = spec.build_into(payload, buf);
            *built.as_ref().unwrap_or(&0)
        });
        built?;
        let index = r.inspect_err(|e| {
            if *e == TxError::Full {
                self.counters.tx_ring_full += 1;
            }
        })?;
        self.spec.ip_id = self.spec.ip_id.wrapping_add(1);
        Ok(index)
    }

    fn reap_tx(&mut self) {
        while let Some(done) = self.tx.reap() {
            if let Some(p) = self.tx_pending.as_mut().filter(|p| p.index == done.index) {
                p.done = true;
            }
        }
    }

    /// The stamp asked by [`Self::send_event`], once its descriptor is done and TXSTMPL/H hold it
    /// (TXSTMPH's read releases the latch); `Lost` after [`TX_STAMP_TIMEOUT_NS`] from the first
    /// poll (counted, logged, the latch cleared). `None`: nothing pending, or not yet.
    pub fn poll_tx_stamp(&mut self, regs: &dyn RegisterAccess, now_ns: u64) -> Option<TxStampOutcome> {
        self.reap_tx();
        let p = self.tx_pending.as_mut()?;
        let since = *p.since_ns.get_or_insert(now_ns);
        if p.done && regs.read32(TSYNCTXCTL) & TSYNC_VALID != 0 {
            let lo = regs.read32(TXSTMPL);
            let hi = regs.read32(TXSTMPH);
            self.tx_pending = None;
            self.counters.tx_stamps += 1;
            return Some(TxStampOutcome::Stamped(RawStamp { lo, hi }));
        }
        if now_ns.saturating_sub(since) >= TX_STAMP_TIMEOUT_NS {
            let done = p.done;
            self.abandon(regs);
            log::warn!(
                "ptp port: no TX stamp {} ms after sending (descriptor {}); counted lost",
                TX_STAMP_TIMEOUT_NS / 1_000_000,
                if done { "done" } else { "not done" }
            );
            return Some(TxStampOutcome::Lost);
        }
        None
    }

    /// Gives up the awaited TX stamp (a new event message must go out): counted lost, the latch
    /// cleared. True if one was pending.
    pub fn abandon_tx_stamp(&mut self, regs: &dyn RegisterAccess) -> bool {
        if self.tx_pending.is_none() {
            return false;
        }
        self.abandon(regs);
        log::warn!("ptp port: TX stamp abandoned (the next event message is due); counted lost");
        true
    }

    fn abandon(&mut self, regs: &dyn RegisterAccess) {
        // As Linux does on a timeout: reading TXSTMPH clears VALID so the next frame can latch.
        regs.read32(TXSTMPH);
        self.tx_pending = None;
        self.counters.tx_stamps_lost += 1;
    }
}

/// Reads the 82576's latched RX stamp and releases the latch; `None` (counted) if it was not
/// VALID.
fn read_rx_latch(
    regs: &dyn RegisterAccess,
    unlock: StampUnlock,
    counters: &mut PortCounters,
) -> Option<RawStamp> {
    let valid = regs.read32(TSYNCRXCTL) & TSYNC_VALID != 0;
    let lo = regs.read32(RXSTMPL);
    let hi = regs.read32(RXSTMPH);
    if unlock == StampUnlock::RxsatrhRead {
        regs.read32(preg::RXSATRH);
    }
    if !valid {
        counters.stamp_missing += 1;
        return None;
    }
    Some(RawStamp { lo, hi })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ring::bytes_needed;

    #[test]
    fn memory_sizes_agree_with_the_rings() {
        assert_eq!(bytes_needed(RX_DESCS), RX_MEM_BYTES);
        assert_eq!(bytes_needed(TX_DESCS), TX_MEM_BYTES);
    }

    #[test]
    fn only_the_i210_is_compensated_and_by_speed() {
        assert_eq!(stamp_latency(Family::E82576, LinkSpeed::Mbps100), StampLatency::default());
        assert_eq!(stamp_latency(Family::E82580, LinkSpeed::Mbps1000), StampLatency::default());
        assert_eq!(stamp_latency(Family::I210, LinkSpeed::Mbps1000), StampLatency { tx_ns: 178, rx_ns: 448 });
        assert_eq!(stamp_latency(Family::I210, LinkSpeed::Mbps10).rx_ns, 20662);
        assert_eq!(LinkSpeed::from_status(0x80), LinkSpeed::Mbps1000);
        assert_eq!(LinkSpeed::from_status(0x40), LinkSpeed::Mbps100);
        assert_eq!(LinkSpeed::from_status(0x03), LinkSpeed::Mbps10);
    }

    #[test]
    fn the_unlock_comes_from_the_quirk_table() {
        let (q, _) = crate::model::quirks(0x10C9, 0x1AF4, 0x1100, false);
        assert_eq!(StampUnlock::for_quirks(q), StampUnlock::RxsatrhRead, "QEMU's igb");
        assert_eq!(StampUnlock::for_quirks(Quirks::empty()), StampUnlock::RxstmphRead, "silicon");
    }
}
