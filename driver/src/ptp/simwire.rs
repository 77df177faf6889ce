//! The simulated PTP wire at message level, in virtual time: minimal masters (their clock is the
//! simulation's truth) and our [`PtpSlave`] on a simulated NIC, joined by a link with path delay,
//! asymmetry, stamp jitter and loss. Frames are PTP payloads (no rings or descriptors yet).
//!
//! The masters are written here from IEEE 1588-2019's message layouts (Announce, two-step
//! Sync + Follow_Up, Delay_Resp), independently of statime's codec, so each side checks the other.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use nicclock::stats::{self, Sample, Summary};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::slave::{ClockIdentity, PortState, PtpConfig, PtpSlave, PtpStatus, SlaveOutput, Timer, TxToken};
use crate::clock::{DeviceLost, Nanos, Phc, RawTime, SteerChoice};
use crate::model::{model, qemu_subsystem, quirks, Quirks, INTEL};
use crate::scenario::EPOCH_TAI_NS;
use crate::sim::{SimConfig, SimNic};
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
            utc_offset_s: 37,
            leap61: false,
            start_s: 0.0,
            stop_s: None,
        }
    }
}

/// The link between the masters and our slave.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    /// Mean one-way path delay, ns.
    pub delay_ns: u64,
    /// Master→slave delay minus slave→master delay, ns (the slave cannot see it).
    pub asymmetry_ns: i64,
    /// Standard deviation of every hardware stamp's error (both ends), ns.
    pub stamp_jitter_ns: f64,
    /// Probability that a frame is lost.
    pub loss: f64,
}

/// One run's set-up.
#[derive(Debug, Clone)]
pub struct WireScenario {
    /// The slave's NIC (oscillator error, wander; its model and QEMU-ness pick the steering).
    pub sim: SimConfig,
    pub steer: SteerChoice,
    pub masters: Vec<MasterSpec>,
    pub link: LinkSpec,
    pub domain: u8,
    /// The masters' domain (a mismatch must be ignored by the slave).
    pub master_domain: u8,
    pub log_sync_interval: i8,
    pub log_announce_interval: i8,
    pub duration_s: f64,
    pub seed: u64,
    /// Fraction of frames to the slave replaced by a mangled copy (random bytes changed,
    /// truncated or extended): bad input from the wire.
    pub mangle: f64,
    /// Fraction of our event messages whose TX stamp never comes (the datapath's bounded wait
    /// gives up and tells the port).
    pub tx_stamp_loss: f64,
    /// A single Follow_Up whose preciseOriginTimestamp is this many ns off, at this second.
    pub bad_follow_up: Option<(f64, i64)>,
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
            domain: 0,
            master_domain: 0,
            log_sync_interval: -3,
            log_announce_interval: 0,
            duration_s: 120.0,
            seed: 1,
            mangle: 0.0,
            tx_stamp_loss: 0.0,
            bad_follow_up: None,
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
    pub frames_lost: u64,
    pub frames_mangled: u64,
    pub tx_stamps_lost: u64,
    /// Every step the filter made: (seconds, ns).
    pub steps: Vec<(f64, i64)>,
    /// Measurements the slave's outlier gate dropped.
    pub outliers_dropped: u64,
    pub delay_resps: u64,
}

impl WireOutcome {
    /// The first time the port reached `state`.
    pub fn first(&self, state: PortState) -> Option<f64> {
        self.status_changes.iter().find(|(_, s)| s.state == state).map(|(t, _)| *t)
    }
}

#[derive(Debug)]
enum Ev {
    Sample,
    MasterSync(usize),
    MasterAnnounce(usize),
    /// A frame reaches the slave (event or general).
    ToSlave {
        event: bool,
        data: Vec<u8>,
    },
    /// The slave's Delay_Req reaches master `m`.
    ToMaster {
        m: usize,
        data: Vec<u8>,
    },
    TxStamp(TxToken, Nanos),
    SlaveTimer(Timer, u64),
}

struct Sim {
    rng: SmallRng,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Ev>,
    seq: u64,
    timer_gen: HashMap<Timer, u64>,
    scenario: WireScenario,
    master_seq: Vec<(u16, u16)>,
    lost: u64,
    mangled: u64,
    delay_resps: u64,
}

impl Sim {
    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn gauss(&mut self) -> f64 {
        // Box–Muller.
        let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn jitter(&mut self) -> i128 {
        (self.gauss() * self.scenario.link.stamp_jitter_ns).round() as i128
    }

    /// A frame on its way to the slave, mangled with probability `mangle`.
    fn send_to_slave(&mut self, t: u64, event: bool, mut data: Vec<u8>) {
        if self.rng.random::<f64>() < self.scenario.mangle {
            self.mangled += 1;
            match self.rng.random_range(0..4) {
                0 => data.truncate(self.rng.random_range(0..data.len())),
                1 => data.extend((0..self.rng.random_range(1..64)).map(|_| self.rng.random::<u8>())),
                _ => {
                    for _ in 0..self.rng.random_range(1..4) {
                        let i = self.rng.random_range(0..data.len());
                        data[i] = self.rng.random();
                    }
                }
            }
        }
        self.at(t, Ev::ToSlave { event, data });
    }

    fn lost(&mut self) -> bool {
        let lost = self.rng.random::<f64>() < self.scenario.link.loss;
        self.lost += lost as u64;
        lost
    }

    /// The master's clock (the truth) at virtual `t`, stamped with jitter.
    fn master_stamp(&mut self, t: u64) -> Nanos {
        Nanos((EPOCH_TAI_NS + t) as i128 + self.jitter())
    }

    fn alive(&self, m: usize, t: u64) -> bool {
        let spec = &self.scenario.masters[m];
        let s = t as f64 / 1e9;
        s >= spec.start_s && spec.stop_s.is_none_or(|stop| s < stop)
    }

    fn ms_delay(&self) -> u64 {
        (self.scenario.link.delay_ns as i64 + self.scenario.link.asymmetry_ns / 2) as u64
    }

    fn sm_delay(&self) -> u64 {
        (self.scenario.link.delay_ns as i64 - self.scenario.link.asymmetry_ns / 2) as u64
    }

    fn header(&mut self, m: usize, kind: u8, len: usize, seq: u16, interval: i8) -> Vec<u8> {
        let spec = &self.scenario.masters[m];
        let mut b = vec![0u8; len];
        b[0] = kind;
        b[1] = 0x12; // minorVersionPTP 1, versionPTP 2
        b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        b[4] = self.scenario.master_domain;
        if kind == SYNC {
            b[6] |= 0x02; // twoStepFlag
        }
        if kind == ANNOUNCE {
            b[7] = 0x04 | 0x08 | spec.leap61 as u8; // currentUtcOffsetValid, ptpTimescale, leap61
        }
        b[20..28].copy_from_slice(&spec.identity.0);
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

    fn sync(&mut self, m: usize, t: u64) {
        let seq = self.master_seq[m].0;
        self.master_seq[m].0 = seq.wrapping_add(1);
        let interval = self.scenario.log_sync_interval;
        let sync = self.header(m, SYNC, 44, seq, interval);
        let t1 = self.master_stamp(t);
        let mut follow_up = self.header(m, FOLLOW_UP, 44, seq, interval);
        let bad = match self.scenario.bad_follow_up {
            Some((at, off)) if t >= (at * 1e9) as u64 => {
                self.scenario.bad_follow_up = None;
                off
            }
            _ => 0,
        };
        put_timestamp(&mut follow_up[34..44], t1 + Nanos(bad as i128));
        let d = self.ms_delay();
        if !self.lost() {
            self.send_to_slave(t + d, true, sync);
        }
        if !self.lost() {
            // The Follow_Up leaves once the master has read its TX stamp.
            self.send_to_slave(t + 20_000 + d, false, follow_up);
        }
    }

    fn announce(&mut self, m: usize, t: u64) {
        let seq = self.master_seq[m].1;
        self.master_seq[m].1 = seq.wrapping_add(1);
        let interval = self.scenario.log_announce_interval;
        let mut a = self.header(m, ANNOUNCE, 64, seq, interval);
        let spec = self.scenario.masters[m].clone();
        a[44..46].copy_from_slice(&spec.utc_offset_s.to_be_bytes());
        a[47] = spec.priority1;
        a[48] = spec.clock_class;
        a[49] = 0x21; // clockAccuracy: within 100 ns
        a[50..52].copy_from_slice(&0x4e5du16.to_be_bytes());
        a[52] = 128; // priority2
        a[53..61].copy_from_slice(&spec.identity.0);
        a[61..63].copy_from_slice(&0u16.to_be_bytes()); // stepsRemoved
        a[63] = 0x20; // timeSource: GNSS
        let d = self.ms_delay();
        if !self.lost() {
            self.send_to_slave(t + d, false, a);
        }
    }

    /// Master `m` answers a Delay_Req that reached it at `t`.
    fn delay_resp(&mut self, m: usize, t: u64, req: &[u8]) {
        if req.len() < 44 || req[0] & 0x0f != DELAY_REQ || req[4] != self.scenario.master_domain {
            return;
        }
        let t4 = self.master_stamp(t);
        let seq = u16::from_be_bytes([req[30], req[31]]);
        let interval = self.scenario.log_sync_interval;
        let mut r = self.header(m, DELAY_RESP, 54, seq, interval);
        put_timestamp(&mut r[34..44], t4);
        r[44..54].copy_from_slice(&req[20..30]); // requestingPortIdentity
        let d = self.ms_delay();
        self.delay_resps += 1;
        if !self.lost() {
            self.send_to_slave(t + 30_000 + d, false, r);
        }
    }
}

/// A PTP timestamp (48-bit seconds, 32-bit ns) of TAI `ns`.
fn put_timestamp(b: &mut [u8], ns: Nanos) {
    let secs = (ns.0 / 1_000_000_000) as u64;
    let sub = (ns.0 % 1_000_000_000) as u32;
    b[0..6].copy_from_slice(&secs.to_be_bytes()[2..8]);
    b[6..10].copy_from_slice(&sub.to_be_bytes());
}

fn interval_ns(log2: i8) -> u64 {
    (1e9 * 2f64.powi(log2 as i32)) as u64
}

/// Runs `scenario`: the slave from power-up to `duration_s`, the truth sampled every Sync interval.
pub fn run(scenario: &WireScenario) -> Result<WireOutcome, DeviceLost> {
    let time = VirtualTime::new();
    let nic = Arc::new(SimNic::new(scenario.sim.clone(), time.clone()));
    let device = scenario.sim.model.device_id();
    let m = model(INTEL, device).expect("simulated models are in the table");
    let q = if scenario.sim.qemu {
        let (vendor, subsystem) = qemu_subsystem(device).expect("the quirk table has QEMU's ids");
        quirks(device, vendor, subsystem, true).0
    } else {
        Quirks::empty()
    };
    let phc = Rc::new(RefCell::new(Phc::init(nic.clone(), m, q, scenario.steer.resolve(q), time.clone())?));
    let mut config = PtpConfig::new(ClockIdentity::from_mac([0x02, 0, 0, 0, 0, 0x10]));
    config.domain = scenario.domain;
    config.log_announce_interval = scenario.log_announce_interval;
    config.log_sync_interval = scenario.log_sync_interval;
    config.log_min_delay_req_interval = scenario.log_sync_interval;
    config.seed = scenario.seed;
    let (mut slave, first) = PtpSlave::new(config, phc.clone());
    let mut sim = Sim {
        rng: SmallRng::seed_from_u64(scenario.seed),
        queue: BinaryHeap::new(),
        events: HashMap::new(),
        seq: 0,
        timer_gen: HashMap::new(),
        scenario: scenario.clone(),
        master_seq: vec![(0, 0); scenario.masters.len()],
        lost: 0,
        mangled: 0,
        delay_resps: 0,
    };
    let sync_every = interval_ns(scenario.log_sync_interval);
    let announce_every = interval_ns(scenario.log_announce_interval);
    for (i, spec) in scenario.masters.iter().enumerate() {
        // Masters are not in phase with each other or with the slave.
        let start = (spec.start_s * 1e9) as u64 + 1_000 * (i as u64 + 1) * 7_919;
        sim.at(start, Ev::MasterAnnounce(i));
        sim.at(start + 3_000, Ev::MasterSync(i));
    }
    sim.at(sync_every, Ev::Sample);
    let end = (scenario.duration_s * 1e9) as u64;
    let mut outcome = WireOutcome {
        offsets: Vec::new(),
        summary: stats::summarize(&[], 100.0),
        lock_time_s: None,
        status_changes: Vec::new(),
        master_lost_s: Vec::new(),
        lost_masters: Vec::new(),
        final_status: slave.status(),
        frames_lost: 0,
        frames_mangled: 0,
        tx_stamps_lost: 0,
        steps: Vec::new(),
        outliers_dropped: 0,
        delay_resps: 0,
    };
    let mut outputs = first;
    loop {
        let now = time.now_ns();
        for o in outputs.drain(..) {
            match o {
                SlaveOutput::SendEvent { data, token } => {
                    if sim.rng.random::<f64>() < scenario.tx_stamp_loss {
                        outcome.tx_stamps_lost += 1;
                        slave.on_tx_timestamp_lost(token);
                    } else {
                        let t3 = phc.borrow().raw_to_ns(RawTime(nic.truth().raw)) + Nanos(sim.jitter());
                        sim.at(now + 2_000, Ev::TxStamp(token, t3));
                    }
                    for m in 0..scenario.masters.len() {
                        if sim.alive(m, now) && !sim.lost() {
                            let t = now + sim.sm_delay();
                            sim.at(t, Ev::ToMaster { m, data: data.clone() });
                        }
                    }
                }
                SlaveOutput::SendGeneral { .. } => {}
                SlaveOutput::Stepped { ns } => outcome.steps.push((now as f64 / 1e9, ns)),
                SlaveOutput::ArmTimer { timer, after } => {
                    let gen = sim.timer_gen.entry(timer).or_insert(0);
                    *gen += 1;
                    let gen = *gen;
                    sim.at(now + after.as_nanos() as u64, Ev::SlaveTimer(timer, gen));
                }
                SlaveOutput::StatusChanged(s) => outcome.status_changes.push((now as f64 / 1e9, s)),
                SlaveOutput::MasterLost { last } => {
                    outcome.master_lost_s.push(now as f64 / 1e9);
                    outcome.lost_masters.push(last.grandmaster);
                }
            }
        }
        let Some(Reverse((t, id))) = sim.queue.pop() else { break };
        if t > end {
            break;
        }
        time.wait_until(t);
        let ev = sim.events.remove(&id).expect("every queued event is stored");
        match ev {
            Ev::Sample => {
                let truth = nic.truth();
                let disciplined = phc.borrow_mut().time_at(RawTime(truth.raw));
                let offset = (disciplined - Nanos((EPOCH_TAI_NS + truth.true_ns) as i128)).as_i64();
                outcome.offsets.push((truth.true_ns as f64 / 1e9, offset));
                sim.at(t + sync_every, Ev::Sample);
            }
            Ev::MasterSync(m) => {
                if sim.alive(m, t) {
                    sim.sync(m, t);
                }
                sim.at(t + sync_every, Ev::MasterSync(m));
            }
            Ev::MasterAnnounce(m) => {
                if sim.alive(m, t) {
                    sim.announce(m, t);
                }
                sim.at(t + announce_every, Ev::MasterAnnounce(m));
            }
            Ev::ToSlave { event: true, data } => {
                let rx = phc.borrow().raw_to_ns(RawTime(nic.truth().raw)) + Nanos(sim.jitter());
                outputs = slave.on_event(&data, rx);
            }
            Ev::ToSlave { event: false, data } => outputs = slave.on_general(&data),
            Ev::ToMaster { m, data } => {
                if sim.alive(m, t) {
                    sim.delay_resp(m, t, &data);
                }
            }
            Ev::TxStamp(token, t3) => outputs = slave.on_tx_timestamp(token, t3),
            Ev::SlaveTimer(timer, gen) => {
                if sim.timer_gen.get(&timer) == Some(&gen) {
                    outputs = slave.on_timer(timer);
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
    outcome.final_status = slave.status();
    outcome.frames_lost = sim.lost;
    outcome.delay_resps = sim.delay_resps;
    outcome.frames_mangled = sim.mangled;
    outcome.outliers_dropped = slave.outliers_dropped();
    Ok(outcome)
}
