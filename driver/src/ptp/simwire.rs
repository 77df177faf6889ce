//! The simulated PTP wire in virtual time: minimal masters and our slave, each on its own
//! simulated NIC (own oscillator), joined by a simulated link (path delay, asymmetry, loss); every
//! message is a frame through the NICs' TX and RX rings, descriptors and timestamp registers.
//!
//! The masters are written here from IEEE 1588-2019's message layouts (Announce, two-step
//! Sync + Follow_Up, Delay_Resp), independently of statime's codec, so each side checks the other.
//! Each runs on a simulated i210 whose clock is set to TAI and runs true (a GNSS-locked
//! grandmaster): t1 comes from its TXSTMPL/H, t4 from the timestamp header in its RX buffer (its
//! stamp latency compensated as Linux does). The slave is what nicclockd runs: its link up through
//! MDIC autonegotiation (in virtual time), then the daemon's [`PtpRunner`] over a [`NetPort`] on
//! the simulated NIC — the port's RX/TX rings in host memory the NIC reaches by DMA, its stamps
//! from the registers each family has — polled whenever a frame reaches the NIC and at its
//! deadlines.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use nicclock::stats::{self, Sample, Summary};
use nicclock_uio::RegisterAccess;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::page::{PtpPage, PtpPageConfig};
use super::runner::{PtpRunner, RunnerEvent};
use super::slave::{ClockIdentity, PortState, PtpConfig, PtpStatus};
use crate::clock::{DeviceLost, Nanos, Phc, RawTime, SteerChoice};
use crate::measure::Host;
use crate::model::{model, qemu_subsystem, quirks, Family, Quirks, INTEL};
use crate::net::bringup::{bring_up, RingPlace};
use crate::net::frame::{FrameFilter, FrameSpec, Transport};
use crate::net::phy;
use crate::net::port::{self, NetPort, PortConfig, StampUnlock, RX_MEM_BYTES, TX_MEM_BYTES};
use crate::net::ring::{bytes_needed, RxRing, TxRing};
use crate::net::DropCounters;
use crate::regs;
use crate::scenario::EPOCH_TAI_NS;
use crate::sim::{
    DatapathStats, HostMemory, LinkConfig, Side, SimConfig, SimLink, SimModel, SimNic, I210_STAMP_LATENCY_NS,
    RXSATRH, TSYNC_VALID,
};
use crate::timesource::{TimeSource, VirtualTime};

/// PTP message types (IEEE 1588-2019 Table 36).
pub const SYNC: u8 = 0x0;
pub const DELAY_REQ: u8 = 0x1;
pub const FOLLOW_UP: u8 = 0x8;
pub const DELAY_RESP: u8 = 0x9;
pub const ANNOUNCE: u8 = 0xb;

/// One simulated master (a grandmaster on the segment).
#[derive(Debug, Clone)]
pub struct MasterSpec {
    pub identity: ClockIdentity,
    pub priority1: u8,
    pub clock_class: u8,
    /// clockAccuracy and offsetScaledLogVariance it announces.
    pub clock_accuracy: u8,
    pub variance: u16,
    /// TAI−UTC it announces (valid), and a pending leap second.
    pub utc_offset_s: i16,
    pub leap61: bool,
    /// It starts and (optionally) stops sending at these seconds of virtual time.
    pub start_s: f64,
    pub stop_s: Option<f64>,
}

impl MasterSpec {
    pub fn new(last_byte: u8) -> Self {
        Self {
            identity: ClockIdentity([0x00, 0x1b, 0x21, 0xff, 0xfe, 0x00, 0x00, last_byte]),
            priority1: 128,
            clock_class: 6,
            clock_accuracy: 0x21,
            variance: 0x4e5d,
            utc_offset_s: 37,
            leap61: false,
            start_s: 0.0,
            stop_s: None,
        }
    }

    /// linuxptp's ptp4l with its default dataset (a free-running ordinary clock): clockClass 248,
    /// clockAccuracy unknown (0xFE), offsetScaledLogVariance 0xFFFF, priority1/2 128.
    pub fn ptp4l_default(last_byte: u8) -> Self {
        Self { clock_class: 248, clock_accuracy: 0xfe, variance: 0xffff, ..Self::new(last_byte) }
    }
}

/// The link between the masters and our slave.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    /// Mean one-way path delay, ns.
    pub delay_ns: u64,
    /// Master→slave delay minus slave→master delay, ns (the slave cannot see it).
    pub asymmetry_ns: i64,
    /// Standard deviation of every hardware stamp's error (every NIC, RX and TX), ns.
    pub stamp_jitter_ns: f64,
    /// Probability that a frame is lost.
    pub loss: f64,
}

/// One run's set-up.
#[derive(Debug, Clone)]
pub struct WireScenario {
    /// The slave's NIC (oscillator error, wander; its model and QEMU-ness pick the steering and
    /// the stamping: register latch on the 82576, in-buffer header on the 82580/i210).
    pub sim: SimConfig,
    pub steer: SteerChoice,
    pub masters: Vec<MasterSpec>,
    pub link: LinkSpec,
    /// L2 (0x88F7) or UDP/IPv4; QEMU stamps only L2.
    pub transport: Transport,
    pub domain: u8,
    /// The masters' domain (a mismatch must be ignored by the slave).
    pub master_domain: u8,
    pub log_sync_interval: i8,
    pub log_announce_interval: i8,
    pub duration_s: f64,
    pub seed: u64,
    /// Fraction of master frames whose PTP bytes are mangled (bytes changed, frame truncated or
    /// extended) on their way to the TX ring: bad input from the wire.
    pub mangle: f64,
    /// Fraction of our event messages whose TX stamp never comes (the slave NIC's seeded fault;
    /// the datapath finds TSYNCTXCTL not VALID and tells the port).
    pub tx_stamp_loss: f64,
    /// A single Follow_Up whose preciseOriginTimestamp is this many ns off, at this second.
    pub bad_follow_up: Option<(f64, i64)>,
    /// Also run the page writer under PTP (nicclockd's [`PtpPage`]) and check every LOCKED bound
    /// against the truth.
    pub page: Option<PtpPageConfig>,
    /// Noise on the masters' t1 and t4 (a master stamping in software); none by default.
    pub master_stamp_noise: StampNoise,
    /// At this second the first master's clock jumps by this many ns (a real time jump: the
    /// truth follows it, the slave must step after it).
    pub master_jump: Option<(f64, i64)>,
}

/// Noise the masters add to the t1 (Follow_Up) and t4 (Delay_Resp) they send, ns: a Gaussian
/// part, a one-sided late part per direction (exponential: a software stamp is taken after the
/// frame left or arrived), and rare spikes (uniform up to `spike_max_ns`, late).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StampNoise {
    pub sigma_ns: f64,
    pub t1_late_mean_ns: f64,
    pub t4_late_mean_ns: f64,
    pub spike_probability: f64,
    pub spike_max_ns: f64,
}

impl StampNoise {
    /// Like linuxptp's `ptp4l -S` under QEMU TCG: 30 µs Gaussian, t1 50 µs and t4 150 µs late on
    /// average (one-sided, unequal: a bias and a path delay off by 50 µs, both unseen), 2 % spikes
    /// up to 1 ms.
    pub fn software() -> Self {
        Self {
            sigma_ns: 30_000.0,
            t1_late_mean_ns: 50_000.0,
            t4_late_mean_ns: 150_000.0,
            spike_probability: 0.02,
            spike_max_ns: 1_000_000.0,
        }
    }

    /// One stamp's error, ns (`late_mean_ns`: the direction's one-sided part).
    fn draw(&self, rng: &mut SmallRng, late_mean_ns: f64) -> i64 {
        if *self == Self::default() {
            return 0;
        }
        // Box–Muller for the Gaussian part, the inverse CDF for the exponential one.
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
        let gauss = self.sigma_ns * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let late = -late_mean_ns * rng.random::<f64>().max(f64::MIN_POSITIVE).ln();
        let spike = if rng.random::<f64>() < self.spike_probability {
            rng.random::<f64>() * self.spike_max_ns
        } else {
            0.0
        };
        (gauss + late + spike).round() as i64
    }
}

impl WireScenario {
    /// Issue 10's bench: 8 Sync/s, 100 ppm, 1 ppb/√s wander, 5 µs symmetric path, 20 ns stamp
    /// jitter, 1 % loss; one master, announces every second.
    pub fn standard() -> Self {
        Self {
            sim: SimConfig::default(),
            steer: SteerChoice::Auto,
            masters: vec![MasterSpec::new(1)],
            link: LinkSpec { delay_ns: 5_000, asymmetry_ns: 0, stamp_jitter_ns: 20.0, loss: 0.01 },
            transport: Transport::L2,
            domain: 0,
            master_domain: 0,
            log_sync_interval: -3,
            log_announce_interval: 0,
            duration_s: 120.0,
            seed: 1,
            mangle: 0.0,
            tx_stamp_loss: 0.0,
            bad_follow_up: None,
            page: None,
            master_stamp_noise: StampNoise::default(),
            master_jump: None,
        }
    }
}

/// What a run saw.
#[derive(Debug, Clone)]
pub struct WireOutcome {
    /// (seconds, true offset of the slave's clock from the master's, ns), every Sync interval.
    pub offsets: Vec<(f64, i64)>,
    /// The offsets' statistics with "locked" meaning |true offset| < 100 ns.
    pub summary: Summary,
    pub lock_time_s: Option<f64>,
    /// Every status change the port reported, with its time.
    pub status_changes: Vec<(f64, PtpStatus)>,
    /// When the port reported its master lost.
    pub master_lost_s: Vec<f64>,
    /// The grandmaster each of those reports named.
    pub lost_masters: Vec<ClockIdentity>,
    pub final_status: PtpStatus,
    /// Frame copies the link lost (both directions).
    pub frames_lost: u64,
    pub frames_mangled: u64,
    pub tx_stamps_lost: u64,
    /// Every step the filter made: (seconds, ns).
    pub steps: Vec<(f64, i64)>,
    /// Measurements the slave's outlier gate dropped.
    pub outliers_dropped: u64,
    pub delay_resps: u64,
    /// When the slave's link came up (MDIC autonegotiation), s.
    pub link_up_s: f64,
    /// Frames the slave's filter accepted and dropped, by reason.
    pub slave_drops: DropCounters,
    /// Event messages that reached the slave without an RX stamp (dropped).
    pub rx_unstamped: u64,
    /// The slave NIC's datapath counters (frames, stamps, drops in the NIC).
    pub slave_datapath: DatapathStats,
    /// With [`WireScenario::page`]: what the page said while LOCKED.
    pub page: Option<PageCheck>,
}

/// The page's LOCKED updates against the truth (the master's clock at the page's anchor).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PageCheck {
    pub locked_updates: u64,
    /// LOCKED updates whose |page time − truth| exceeded the published bound.
    pub violations: u64,
    /// The smallest bound − |error| seen while LOCKED, ns.
    pub worst_margin_ns: Option<i64>,
    /// The largest |page time − truth| seen while LOCKED, ns.
    pub worst_error_ns: Option<i64>,
    /// The mean published bound while LOCKED, ns.
    pub mean_bound_ns: Option<f64>,
    /// The LOCKED page read between its anchors (at every Sync-interval sample) against the
    /// slave's own clock there: how well the published mapping follows statime's steering.
    pub own_clock: OwnClockCheck,
    /// The page read between its anchors (at every Sync-interval sample) against the truth, with
    /// the bound a reader gets there (the anchor's grown by the published growth), whenever the
    /// published bound is finite (LOCKED or LOCKING): what `nicclock compare` checks.
    pub reader: ReaderCheck,
    /// When the page first said LOCKED, s into the run.
    pub first_locked_s: Option<f64>,
    /// The page read against the truth (page time − the master's clock) at every Sync-interval
    /// sample with a finite bound from the first LOCKED on, as the QEMU lab's `ptp-pair` reads
    /// page against page: its first 10 s (the servo settling after its first step) and the rest.
    pub true_first_10s: OwnClockCheck,
    pub true_after_10s: OwnClockCheck,
}

/// Readings of the page between anchors against the truth and the reader's bound there.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReaderCheck {
    pub readings: u64,
    /// Readings whose |page time − truth| exceeded the bound the reader got.
    pub outside: u64,
    /// The smallest bound − |error| seen, ns.
    pub worst_margin_ns: Option<i64>,
    /// Where the worst margin was: seconds into the run.
    pub worst_at_s: f64,
}

/// The page's mapping against the slave's own (steered) clock between anchors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OwnClockCheck {
    pub samples: u64,
    pub sum_ns: f64,
    pub sum_sq_ns: f64,
    pub max_abs_ns: i64,
}

impl OwnClockCheck {
    /// RMS of page time − the slave's clock, ns (`None` before any LOCKED sample).
    pub fn rms_ns(&self) -> Option<f64> {
        (self.samples > 0).then(|| (self.sum_sq_ns / self.samples as f64).sqrt())
    }

    fn add(&mut self, error_ns: i64) {
        self.samples += 1;
        self.sum_ns += error_ns as f64;
        self.sum_sq_ns += (error_ns as f64).powi(2);
        self.max_abs_ns = self.max_abs_ns.max(error_ns.abs());
    }
}

/// The machine in virtual time for the page: the counter is true ns, the reference the master.
struct SimHost {
    time: Arc<VirtualTime>,
}

impl Host for SimHost {
    fn counter_kind(&self) -> nicclock::CounterKind {
        nicclock::CounterKind::MonotonicRaw
    }
    fn counter(&self) -> u64 {
        self.time.now_ns()
    }
    fn reference_ns(&self) -> u64 {
        EPOCH_TAI_NS + self.time.now_ns()
    }
    fn ns_per_tick(&self) -> (f64, f64) {
        (1.0, 1e-6)
    }
}

impl WireOutcome {
    /// The first time the port reached `state`.
    pub fn first(&self, state: PortState) -> Option<f64> {
        self.status_changes.iter().find(|(_, s)| s.state == state).map(|(t, _)| *t)
    }
}

/// RX descriptors per ring (TX: a quarter).
const RX_DESCS: usize = 64;
const TX_DESCS: usize = 16;
/// How long the slave waits for autonegotiation.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// A master's NIC: queue 0 in host memory, brought up, with its frame codec (the masters' own
/// minimal datapath; the slave runs the daemon's [`NetPort`]).
struct Station {
    nic: Arc<SimNic>,
    rx: RxRing<HostMemory>,
    tx: TxRing<HostMemory>,
    spec: FrameSpec,
    filter: FrameFilter,
    family: Family,
}

/// The NIC's MAC address (RAL0/RAH0).
fn nic_mac(nic: &SimNic) -> [u8; 6] {
    let (ral, rah) = (nic.read32(regs::RAL0).to_le_bytes(), nic.read32(regs::RAH0).to_le_bytes());
    [ral[0], ral[1], ral[2], ral[3], rah[0], rah[1]]
}

/// A received PTP message: its payload and, for event messages, the raw RX stamp.
struct Received {
    payload: Vec<u8>,
    stamp: Option<u64>,
}

fn family_of(model: SimModel) -> Family {
    match model {
        SimModel::I82574 => Family::E82574,
        SimModel::I82576 => Family::E82576,
        SimModel::I82580 | SimModel::I350 | SimModel::I354 => Family::E82580,
        SimModel::I210 | SimModel::I211 => Family::I210,
    }
}

impl Station {
    /// Lays out the rings in host memory at `base` the NIC can reach.
    fn new(nic: Arc<SimNic>, base: u64, transport: Transport, src_ip: Ipv4Addr) -> Self {
        let rx_mem = HostMemory::new(bytes_needed(RX_DESCS), base);
        let tx_mem = HostMemory::new(bytes_needed(TX_DESCS), base + 0x0100_0000);
        nic.attach_memory(rx_mem.clone());
        nic.attach_memory(tx_mem.clone());
        let mac = nic_mac(&nic);
        let family = family_of(nic.config().model);
        Self {
            rx: RxRing::new(rx_mem, 0, RX_DESCS).expect("rings fit their memory"),
            tx: TxRing::new(tx_mem, 0, TX_DESCS).expect("rings fit their memory"),
            spec: FrameSpec { transport, src_mac: mac, src_ip, vlan_tci: None, udp_checksum: true, ip_id: 0 },
            filter: FrameFilter { transport, own_mac: mac, vlan: None },
            family,
            nic,
        }
    }

    /// Queue 0 up (the link is up already).
    fn bring_up(&self) {
        let place = |desc_addr, descs| RingPlace { desc_addr, descs };
        bring_up(
            &*self.nic,
            self.family,
            place(self.rx.desc_addr(), RX_DESCS),
            place(self.tx.desc_addr(), TX_DESCS),
        )
        .expect("the simulated queues come up");
    }

    /// Sends `payload` (a PTP message) in a frame, `mangle` applied to the built frame; asks a TX
    /// stamp for event messages. False if the ring refused it.
    fn send(&mut self, payload: &[u8], stamp: bool, mangle: impl FnOnce(&mut [u8], usize) -> usize) -> bool {
        while self.tx.reap().is_some() {}
        let spec = self.spec;
        let nic = self.nic.clone();
        let sent = self.tx.send(&*nic, stamp, |buf| match spec.build_into(payload, buf) {
            Ok(len) => mangle(buf, len),
            Err(_) => 0,
        });
        while self.tx.reap().is_some() {}
        sent.is_ok()
    }

    /// The TX stamp if the NIC latched one (TSYNCTXCTL.VALID), released by the TXSTMPH read.
    fn tx_stamp(&mut self) -> Option<u64> {
        while self.tx.reap().is_some() {}
        let valid = self.nic.read32(regs::TSYNCTXCTL) & TSYNC_VALID != 0;
        let lo = u64::from(self.nic.read32(regs::TXSTMPL));
        let hi = u64::from(self.nic.read32(regs::TXSTMPH));
        valid.then_some(hi << 32 | lo)
    }

    /// Drains the RX ring: every PTP message for us, event messages with their stamp (the
    /// register latch read, in ring order, whenever a descriptor has TS — and released: RXSTMPH
    /// on silicon, RXSATRH under QEMU); everything else counted in `drops`.
    fn poll_rx(&mut self, drops: &mut DropCounters, out: &mut Vec<Received>) {
        let nic = self.nic.clone();
        let qemu = nic.config().qemu;
        let filter = self.filter;
        while let Some(r) = self.rx.receive(&*nic, |f| {
            let latched = f.latched_timestamp.then(|| {
                let lo = u64::from(nic.read32(regs::RXSTMPL));
                let hi = u64::from(nic.read32(regs::RXSTMPH));
                if qemu {
                    nic.read32(RXSATRH);
                }
                hi << 32 | lo
            });
            let parsed = filter.parse(f.bytes);
            drops.record(&parsed);
            parsed
                .ok()
                .map(|p| Received { payload: p.payload.to_vec(), stamp: latched.or(f.packet_timestamp) })
        }) {
            if let Ok(Some(m)) = r {
                out.push(m);
            }
        }
    }
}

#[derive(Debug)]
enum Ev {
    Sample,
    MasterSync(usize),
    MasterAnnounce(usize),
    /// The page writer's update.
    Page,
    /// Master `m` sends a general message (Follow_Up, Delay_Resp) it prepared earlier.
    MasterSend {
        m: usize,
        data: Vec<u8>,
    },
    /// The first master's clock jumps by this many ns.
    MasterJump(i64),
}

struct Sim {
    rng: SmallRng,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Ev>,
    seq: u64,
    scenario: WireScenario,
    master_seq: Vec<(u16, u16)>,
    masters: Vec<Station>,
    mangled: u64,
    delay_resps: u64,
}

/// A PTP timestamp's ns from an i210 raw stamp (SYSTIMH seconds, SYSTIML ns).
fn i210_ns(raw: u64) -> Nanos {
    Nanos(i128::from(raw >> 32) * 1_000_000_000 + i128::from(raw as u32))
}

/// The i210's stamp latency at 1000 Mb/s compensated as Linux does: TX stamps + 178 ns, RX − 448.
fn i210_wire_ns(raw: u64, tx: bool) -> Nanos {
    let (tx_ns, rx_ns) = I210_STAMP_LATENCY_NS;
    i210_ns(raw) + if tx { Nanos(i128::from(tx_ns)) } else { Nanos(-i128::from(rx_ns)) }
}

impl Sim {
    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn alive(&self, m: usize, t: u64) -> bool {
        let spec = &self.scenario.masters[m];
        let s = t as f64 / 1e9;
        s >= spec.start_s && spec.stop_s.is_none_or(|stop| s < stop)
    }

    fn header(&mut self, m: usize, kind: u8, len: usize, seq: u16, interval: i8) -> Vec<u8> {
        let spec = &self.scenario.masters[m];
        let announce_flags = 0x04 | 0x08 | spec.leap61 as u8; // currentUtcOffsetValid, ptpTimescale, leap61
        message(kind, len, self.scenario.master_domain, spec.identity, seq, interval, announce_flags)
    }

    /// Master `m` sends `payload` through its TX ring; with probability `mangle` the frame's PTP
    /// bytes are spoilt on the way (changed, cut short or extended).
    fn master_send(&mut self, m: usize, payload: &[u8], stamp: bool) -> bool {
        let mangle = self.rng.random::<f64>() < self.scenario.mangle;
        self.mangled += u64::from(mangle);
        let (kind, cut, extra) =
            (self.rng.random_range(0..4), self.rng.random::<f64>(), self.rng.random_range(1..64));
        let bytes: Vec<(f64, u8)> =
            (0..4).map(|_| (self.rng.random::<f64>(), self.rng.random::<u8>())).collect();
        let filler: Vec<u8> = (0..extra).map(|_| self.rng.random::<u8>()).collect();
        self.masters[m].send(payload, stamp, |buf, len| {
            if !mangle {
                return len;
            }
            // The Ethernet header (14 bytes) stays: the frame still reaches the slave.
            let body = len - 14;
            match kind {
                0 => 14 + (cut * body as f64) as usize,
                1 => {
                    buf[len..len + filler.len()].copy_from_slice(&filler);
                    len + filler.len()
                }
                _ => {
                    for (at, b) in &bytes[..1 + kind as usize] {
                        buf[14 + (at * body as f64) as usize] = *b;
                    }
                    len
                }
            }
        })
    }

    fn sync(&mut self, m: usize, t: u64) {
        let seq = self.master_seq[m].0;
        self.master_seq[m].0 = seq.wrapping_add(1);
        let interval = self.scenario.log_sync_interval;
        let sync = self.header(m, SYNC, 44, seq, interval);
        self.master_send(m, &sync, true);
        // t1 from the master NIC's TX stamp (latched at the TDT write).
        let Some(raw) = self.masters[m].tx_stamp() else { return };
        let mut follow_up = self.header(m, FOLLOW_UP, 44, seq, interval);
        let bad = match self.scenario.bad_follow_up {
            Some((at, off)) if t >= (at * 1e9) as u64 => {
                self.scenario.bad_follow_up = None;
                off
            }
            _ => 0,
        };
        let noise = self.scenario.master_stamp_noise;
        let bad = bad + noise.draw(&mut self.rng, noise.t1_late_mean_ns);
        put_timestamp(&mut follow_up[34..44], i210_wire_ns(raw, true) + Nanos(bad as i128));
        // The Follow_Up leaves once the master has read its TX stamp.
        self.at(t + 20_000, Ev::MasterSend { m, data: follow_up });
    }

    fn announce(&mut self, m: usize) {
        let seq = self.master_seq[m].1;
        self.master_seq[m].1 = seq.wrapping_add(1);
        let interval = self.scenario.log_announce_interval;
        let mut a = self.header(m, ANNOUNCE, 64, seq, interval);
        let spec = self.scenario.masters[m].clone();
        a[44..46].copy_from_slice(&spec.utc_offset_s.to_be_bytes());
        a[47] = spec.priority1;
        a[48] = spec.clock_class;
        a[49] = spec.clock_accuracy;
        a[50..52].copy_from_slice(&spec.variance.to_be_bytes());
        a[52] = 128; // priority2
        a[53..61].copy_from_slice(&spec.identity.0);
        a[61..63].copy_from_slice(&0u16.to_be_bytes()); // stepsRemoved
        a[63] = 0x20; // timeSource: GNSS
        self.master_send(m, &a, false);
    }

    /// Master `m` drains its RX ring and answers each Delay_Req (t4 from its RX stamp).
    fn master_rx(&mut self, m: usize, t: u64) {
        let mut got = Vec::new();
        let mut drops = DropCounters::default();
        self.masters[m].poll_rx(&mut drops, &mut got);
        for r in got {
            let req = &r.payload;
            if !self.alive(m, t)
                || req.len() < 44
                || req[0] & 0x0f != DELAY_REQ
                || req[4] != self.scenario.master_domain
            {
                continue;
            }
            let Some(raw) = r.stamp else { continue };
            let seq = u16::from_be_bytes([req[30], req[31]]);
            let interval = self.scenario.log_sync_interval;
            let mut resp = self.header(m, DELAY_RESP, 54, seq, interval);
            let noise = self.scenario.master_stamp_noise;
            let late = noise.draw(&mut self.rng, noise.t4_late_mean_ns);
            put_timestamp(&mut resp[34..44], i210_wire_ns(raw, false) + Nanos(i128::from(late)));
            resp[44..54].copy_from_slice(&req[20..30]); // requestingPortIdentity
            self.delay_resps += 1;
            self.at(t + 30_000, Ev::MasterSend { m, data: resp });
        }
    }
}

/// A master's PTP message of `len` bytes (zeroed body) with its common header (IEEE 1588-2019
/// §13.3): version 2, two-step Syncs, port 1 of `identity`; `announce_flags` is an Announce's
/// flagField[1] (leap61 0x01, leap59 0x02, currentUtcOffsetValid 0x04, ptpTimescale 0x08).
pub(crate) fn message(
    kind: u8,
    len: usize,
    domain: u8,
    identity: ClockIdentity,
    seq: u16,
    interval: i8,
    announce_flags: u8,
) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0] = kind;
    b[1] = 0x12; // minorVersionPTP 1, versionPTP 2
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    b[4] = domain;
    if kind == SYNC {
        b[6] |= 0x02; // twoStepFlag
    }
    if kind == ANNOUNCE {
        b[7] = announce_flags;
    }
    b[20..28].copy_from_slice(&identity.0);
    b[28..30].copy_from_slice(&1u16.to_be_bytes());
    b[30..32].copy_from_slice(&seq.to_be_bytes());
    b[32] = match kind {
        SYNC => 0,
        DELAY_REQ => 1,
        FOLLOW_UP => 2,
        DELAY_RESP => 3,
        _ => 5,
    };
    b[33] = interval as u8;
    b
}

/// A PTP timestamp (48-bit seconds, 32-bit ns) of TAI `ns`.
pub(crate) fn put_timestamp(b: &mut [u8], ns: Nanos) {
    let secs = (ns.0 / 1_000_000_000) as u64;
    let sub = (ns.0 % 1_000_000_000) as u32;
    b[0..6].copy_from_slice(&secs.to_be_bytes()[2..8]);
    b[6..10].copy_from_slice(&sub.to_be_bytes());
}

fn interval_ns(log2: i8) -> u64 {
    (1e9 * 2f64.powi(log2 as i32)) as u64
}

/// A master's NIC: an i210 whose clock runs true and is set to TAI at start (its link up from
/// reset: a grandmaster long on the segment).
fn master_nic(scenario: &WireScenario, m: usize, time: &Arc<VirtualTime>) -> Arc<SimNic> {
    let config = SimConfig {
        model: SimModel::I210,
        stamp_jitter_ns: scenario.link.stamp_jitter_ns,
        seed: scenario.seed.wrapping_mul(7919) + 1000 + m as u64,
        ..SimConfig::ideal()
    };
    let nic = Arc::new(SimNic::new(config, time.clone()));
    let tai = EPOCH_TAI_NS + time.now_ns();
    nic.write32(regs::SYSTIML, (tai % 1_000_000_000) as u32);
    nic.write32(regs::SYSTIMH, (tai / 1_000_000_000) as u32);
    nic
}

/// Runs `scenario`: the slave from power-up to `duration_s`, the truth sampled every Sync interval.
pub fn run(scenario: &WireScenario) -> Result<WireOutcome, DeviceLost> {
    let time = VirtualTime::new();
    let link = SimLink::new(LinkConfig {
        delay_ns: scenario.link.delay_ns,
        asymmetry_ns: scenario.link.asymmetry_ns,
        jitter_ns: 0.0,
        loss: scenario.link.loss,
        seed: scenario.seed,
    });
    let slave_config = SimConfig {
        link_up_at_reset: false,
        stamp_jitter_ns: scenario.link.stamp_jitter_ns,
        tx_stamp_loss: scenario.tx_stamp_loss,
        ..scenario.sim.clone()
    };
    let nic = Arc::new(SimNic::new(slave_config, time.clone()));
    let slave_end = link.plug(Side::B, nic.clone());
    let mut masters = Vec::new();
    let mut master_of_end = HashMap::new();
    for m in 0..scenario.masters.len() {
        let mnic = master_nic(scenario, m, &time);
        master_of_end.insert(link.plug(Side::A, mnic.clone()), m);
        let ip = Ipv4Addr::new(192, 0, 2, 1 + m as u8);
        let station = Station::new(mnic, 0x2_0000_0000 + 0x1000_0000 * m as u64, scenario.transport, ip);
        station.bring_up();
        masters.push(station);
    }

    let device = scenario.sim.model.device_id();
    let mdl = model(INTEL, device).expect("simulated models are in the table");
    let q = if scenario.sim.qemu {
        let (vendor, subsystem) = qemu_subsystem(device).expect("the quirk table has QEMU's ids");
        quirks(device, vendor, subsystem, true).0
    } else {
        Quirks::empty()
    };
    let phc = Rc::new(RefCell::new(Phc::init(nic.clone(), mdl, q, scenario.steer.resolve(q), time.clone())?));
    // The slave's port: rings in host memory the NIC reaches, the link up through MDIC
    // autonegotiation in virtual time (the port's own bring-up then finds it up), queue 0.
    let rx_mem = HostMemory::new(RX_MEM_BYTES, 0x1_0000_0000);
    let tx_mem = HostMemory::new(TX_MEM_BYTES, 0x1_1000_0000);
    nic.attach_memory(rx_mem.clone());
    nic.attach_memory(tx_mem.clone());
    let mac = nic_mac(&nic);
    let transport = match scenario.transport {
        Transport::L2 => port::Transport::L2,
        Transport::Udp4 => port::Transport::Udp4 { src: Ipv4Addr::new(192, 0, 2, 100) },
    };
    let cfg = PortConfig {
        family: family_of(scenario.sim.model),
        transport,
        mac,
        domain: scenario.domain,
        stamp_unlock: StampUnlock::for_quirks(q),
    };
    let mut netport = NetPort::new(rx_mem, tx_mem, cfg).expect("the port's rings fit their memory");
    phy::link_up_with(&*nic, LINK_TIMEOUT, &mut |d| time.advance(d.as_nanos() as u64))
        .expect("the simulated link partner answers");
    let link_up_s = time.now_ns() as f64 / 1e9;
    netport.bring_up(&*nic).expect("the simulated queues come up");

    let mut config = PtpConfig::new(ClockIdentity::from_mac(mac));
    config.domain = scenario.domain;
    config.log_announce_interval = scenario.log_announce_interval;
    config.log_sync_interval = scenario.log_sync_interval;
    config.log_min_delay_req_interval = scenario.log_sync_interval;
    config.seed = scenario.seed;
    let mut runner = PtpRunner::new(netport, config, phc.clone(), time.now_ns());
    let mut sim = Sim {
        rng: SmallRng::seed_from_u64(scenario.seed),
        queue: BinaryHeap::new(),
        events: HashMap::new(),
        seq: 0,
        scenario: scenario.clone(),
        master_seq: vec![(0, 0); scenario.masters.len()],
        masters,
        mangled: 0,
        delay_resps: 0,
    };
    let sync_every = interval_ns(scenario.log_sync_interval);
    let announce_every = interval_ns(scenario.log_announce_interval);
    // Everything runs from the slave's link up (what masters sent before reached a dead link).
    let t0 = time.now_ns();
    for (i, spec) in scenario.masters.iter().enumerate() {
        // Masters are not in phase with each other or with the slave.
        let start = ((spec.start_s * 1e9) as u64).max(t0) + 1_000 * (i as u64 + 1) * 7_919;
        sim.at(start, Ev::MasterAnnounce(i));
        sim.at(start + 3_000, Ev::MasterSync(i));
    }
    sim.at(t0 + sync_every, Ev::Sample);
    if let Some((at, ns)) = scenario.master_jump {
        sim.at((at * 1e9) as u64, Ev::MasterJump(ns));
    }
    let host = SimHost { time: time.clone() };
    let mut page = scenario.page.map(|c| {
        sim.at(t0 + c.interval_ns, Ev::Page);
        (PtpPage::new(c, ClockIdentity::from_mac(mac), runner.status()), PageCheck::default(), 0f64)
    });
    // The last published LOCKED snapshot and its TAI − NIC-time shift (ARB masters are UTC).
    let mut published: Option<(nicclock::Snapshot, i128)> = None;
    // The last published snapshot with a finite bound (LOCKED or LOCKING), the same shift.
    let mut bounded: Option<(nicclock::Snapshot, i128)> = None;
    let end = (scenario.duration_s * 1e9) as u64;
    let mut outcome = WireOutcome {
        offsets: Vec::new(),
        summary: stats::summarize(&[], 100.0),
        lock_time_s: None,
        status_changes: Vec::new(),
        master_lost_s: Vec::new(),
        lost_masters: Vec::new(),
        final_status: runner.status(),
        frames_lost: 0,
        frames_mangled: 0,
        tx_stamps_lost: 0,
        steps: Vec::new(),
        outliers_dropped: 0,
        delay_resps: 0,
        link_up_s,
        slave_drops: DropCounters::default(),
        rx_unstamped: 0,
        slave_datapath: DatapathStats::default(),
        page: None,
    };
    loop {
        // The next thing to happen: a frame arriving, the runner's deadline, or a simulator event
        // (in that order at one instant: frames are received before that instant's timers).
        let next_frame = link.next_arrival();
        let next_deadline = runner.next_deadline();
        let next_event = sim.queue.peek().map(|Reverse((t, _))| *t);
        let Some(t) = [next_frame, next_deadline, next_event].into_iter().flatten().min() else { break };
        if t > end {
            break;
        }
        time.wait_until(t);
        let mut poll_slave = false;
        if next_frame == Some(t) {
            let Some(arrival) = link.deliver_next() else { continue };
            if arrival.end == slave_end {
                poll_slave = true;
            } else if let Some(&m) = master_of_end.get(&arrival.end) {
                sim.master_rx(m, t);
            }
        } else if next_deadline == Some(t) {
            poll_slave = true;
        } else {
            let Some(Reverse((_, id))) = sim.queue.pop() else { break };
            let ev = sim.events.remove(&id).expect("every queued event is stored");
            match ev {
                Ev::Sample => {
                    let truth = nic.truth();
                    // The master's clock as its counter reads (all masters run true, set to TAI).
                    let master_ns = match sim.masters.first() {
                        Some(m) => m.nic.truth().nic_ns as i128,
                        None => (EPOCH_TAI_NS + truth.true_ns) as i128,
                    };
                    let disciplined = phc.borrow_mut().time_at(RawTime(truth.raw));
                    let offset = (disciplined - Nanos(master_ns)).as_i64();
                    if let (Some((snap, shift)), Some((_, check, _))) = (&published, page.as_mut()) {
                        let page_ns = snap.tai_at(host.counter()) - shift;
                        check.own_clock.add((page_ns - disciplined.0) as i64);
                    }
                    if let (Some((snap, shift)), Some((_, check, _))) = (&bounded, page.as_mut()) {
                        let page_tai = snap.tai_at(host.counter());
                        let error = (page_tai - shift - master_ns).unsigned_abs() as i64;
                        let margin = snap.error_at(page_tai).min(i64::MAX as u64) as i64 - error;
                        if let Some(locked_s) = check.first_locked_s {
                            let signed = (page_tai - shift - master_ns) as i64;
                            if t as f64 / 1e9 < locked_s + 10.0 {
                                check.true_first_10s.add(signed);
                            } else {
                                check.true_after_10s.add(signed);
                            }
                        }
                        let r = &mut check.reader;
                        r.readings += 1;
                        r.outside += u64::from(margin < 0);
                        if r.worst_margin_ns.is_none_or(|w| margin < w) {
                            r.worst_margin_ns = Some(margin);
                            r.worst_at_s = t as f64 / 1e9;
                        }
                    }
                    outcome.offsets.push((truth.true_ns as f64 / 1e9, offset));
                    sim.at(t + sync_every, Ev::Sample);
                }
                Ev::Page => {
                    let (p, check, bound_sum) = page.as_mut().expect("scheduled with a page");
                    // Its PHC reads take bus time: wait for a quiet wire, a frame cannot be
                    // stamped in the past.
                    if link.next_arrival().is_some_and(|a| a < t + 20_000) {
                        sim.at(t + 20_000, Ev::Page);
                        continue;
                    }
                    let u = p.update(&mut phc.borrow_mut(), &host, runner.status())?;
                    let snap = &u.snapshot;
                    published = (snap.status == nicclock::Status::Locked)
                        .then(|| (snap.clone(), snap.anchor_tai_ns as i128 - u.measurement.nic_ns.0));
                    bounded = (snap.error_bound_ns != u64::MAX)
                        .then(|| (snap.clone(), snap.anchor_tai_ns as i128 - u.measurement.nic_ns.0));
                    if snap.status == nicclock::Status::Locked {
                        check.first_locked_s.get_or_insert(t as f64 / 1e9);
                        let truth = EPOCH_TAI_NS as i128 + snap.counter_value as i128;
                        let error = (snap.anchor_tai_ns as i128 - truth).unsigned_abs() as i64;
                        let margin = snap.error_bound_ns as i64 - error;
                        check.locked_updates += 1;
                        check.violations += u64::from(margin < 0);
                        check.worst_margin_ns = Some(check.worst_margin_ns.map_or(margin, |w| w.min(margin)));
                        check.worst_error_ns = Some(check.worst_error_ns.map_or(error, |w| w.max(error)));
                        *bound_sum += snap.error_bound_ns as f64;
                    }
                    sim.at(t + p.config().interval_ns, Ev::Page);
                }
                Ev::MasterSync(m) => {
                    if sim.alive(m, t) {
                        sim.sync(m, t);
                    }
                    sim.at(t + sync_every, Ev::MasterSync(m));
                }
                Ev::MasterAnnounce(m) => {
                    if sim.alive(m, t) {
                        sim.announce(m);
                    }
                    sim.at(t + announce_every, Ev::MasterAnnounce(m));
                }
                Ev::MasterJump(ns) => {
                    if let Some(m) = sim.masters.first() {
                        // The i210's SYSTIM: TAI seconds and ns, rewritten as the master's clock.
                        let tai = (m.nic.truth().nic_ns as i128 + i128::from(ns)) as u64;
                        m.nic.write32(regs::SYSTIML, (tai % 1_000_000_000) as u32);
                        m.nic.write32(regs::SYSTIMH, (tai / 1_000_000_000) as u32);
                    }
                }
                Ev::MasterSend { m, data } => {
                    if sim.alive(m, t) {
                        sim.master_send(m, &data, false);
                    }
                }
            }
        }
        if poll_slave {
            let s = t as f64 / 1e9;
            for e in runner.poll(t) {
                if let Some((p, _, _)) = page.as_mut() {
                    p.on_event(&e);
                }
                match e {
                    RunnerEvent::StatusChanged(st) => outcome.status_changes.push((s, st)),
                    RunnerEvent::Stepped { ns } => outcome.steps.push((s, ns)),
                    RunnerEvent::MasterLost { last } => {
                        outcome.master_lost_s.push(s);
                        outcome.lost_masters.push(last.grandmaster);
                    }
                    RunnerEvent::TxStampLost | RunnerEvent::SendFailed | RunnerEvent::RoleChanged { .. } => {}
                }
            }
        }
    }
    let samples: Vec<Sample> = outcome
        .offsets
        .iter()
        .map(|(t, o)| Sample { time_s: *t, offset_ns: *o as f64, delay_ns: None })
        .collect();
    outcome.summary = stats::summarize(&samples, 100.0);
    outcome.lock_time_s = outcome.summary.lock_index.map(|i| outcome.offsets[i].0);
    outcome.final_status = runner.status();
    let ls = link.stats();
    outcome.frames_lost = ls.lost[0] + ls.lost[1];
    outcome.delay_resps = sim.delay_resps;
    outcome.frames_mangled = sim.mangled;
    outcome.outliers_dropped = runner.outliers_dropped();
    outcome.tx_stamps_lost = runner.port_counters().tx_stamps_lost;
    outcome.rx_unstamped = runner.port_counters().event_unstamped;
    outcome.slave_drops = *runner.drops();
    outcome.slave_datapath = nic.datapath_stats();
    outcome.page = page.map(|(_, mut check, bound_sum)| {
        check.mean_bound_ns = (check.locked_updates > 0).then(|| bound_sum / check.locked_updates as f64);
        check
    });
    Ok(outcome)
}
