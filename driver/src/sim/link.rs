//! A simulated Ethernet link between simulated NICs in virtual time: frames a NIC transmits arrive
//! at the NICs on the other side after the path delay (asymmetry, jitter), or are lost.
//!
//! Two sides, A and B (one or more NICs each, as on a hub: the PTP masters on A, the slave on B);
//! a frame from a side reaches every NIC of the other side, each copy lost or delayed on its own:
//! A→B takes `delay + asymmetry/2`, B→A `delay − asymmetry/2`, each plus Gaussian jitter (never
//! below 0). Seeded, so a run is reproducible. The link keeps frames in flight; whoever runs
//! virtual time moves it to [`SimLink::next_arrival`] and calls [`SimLink::deliver_next`], which
//! hands the frame to the NIC at that instant ([`SimNic::deliver`]: ring, stamp or drop).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{FrameSink, RxDelivered, RxDrop, SimNic};
use crate::timesource::{TimeSource, VirtualTime};

/// The link's physics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Mean one-way delay, ns.
    pub delay_ns: u64,
    /// A→B delay minus B→A delay, ns (a PTP slave on B cannot see it).
    pub asymmetry_ns: i64,
    /// Standard deviation of each frame's delay around its direction's mean, ns.
    pub jitter_ns: f64,
    /// Probability that one copy of a frame is lost.
    pub loss: f64,
    pub seed: u64,
}

impl Default for LinkConfig {
    /// 5 µs (1 km of fibre), symmetric, steady, lossless.
    fn default() -> Self {
        Self { delay_ns: 5_000, asymmetry_ns: 0, jitter_ns: 0.0, loss: 0.0, seed: 1 }
    }
}

/// A side of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

/// Per direction (index 0: A→B, 1: B→A): copies sent, lost, delivered, and their delays.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkStats {
    pub sent: [u64; 2],
    pub lost: [u64; 2],
    /// Copies handed to a NIC (whatever the NIC then did with them).
    pub arrived: [u64; 2],
    /// Copies the NIC wrote into its RX ring.
    pub received: [u64; 2],
    /// Sum of the delays of the copies that arrived, ns.
    pub delay_sum_ns: [f64; 2],
}

impl LinkStats {
    /// Mean delay of direction `dir` (0: A→B, 1: B→A), ns.
    pub fn mean_delay_ns(&self, dir: usize) -> Option<f64> {
        (self.arrived[dir] > 0).then(|| self.delay_sum_ns[dir] / self.arrived[dir] as f64)
    }

    /// Fraction of direction `dir`'s copies lost.
    pub fn loss_rate(&self, dir: usize) -> Option<f64> {
        (self.sent[dir] > 0).then(|| self.lost[dir] as f64 / self.sent[dir] as f64)
    }
}

struct InFlight {
    to: usize,
    dir: usize,
    sent_at: u64,
    frame: Vec<u8>,
}

struct State {
    ends: Vec<(Side, Arc<SimNic>)>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    flights: HashMap<u64, InFlight>,
    seq: u64,
    rng: SmallRng,
    stats: LinkStats,
}

/// The link (see the module docs).
pub struct SimLink {
    config: LinkConfig,
    state: Mutex<State>,
}

/// One NIC's attachment: what it transmits enters the link from its side.
struct Tap {
    link: Weak<SimLink>,
    end: usize,
}

impl FrameSink for Tap {
    fn transmit(&self, t_ns: u64, frame: Vec<u8>) {
        if let Some(link) = self.link.upgrade() {
            link.send(self.end, t_ns, frame);
        }
    }
}

/// What [`SimLink::deliver_next`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The NIC it reached (the index [`SimLink::plug`] returned).
    pub end: usize,
    /// The true time it arrived, ns.
    pub at_ns: u64,
    /// What that NIC did with it.
    pub outcome: Result<RxDelivered, RxDrop>,
}

impl SimLink {
    pub fn new(config: LinkConfig) -> Arc<Self> {
        let state = State {
            ends: Vec::new(),
            queue: BinaryHeap::new(),
            flights: HashMap::new(),
            seq: 0,
            rng: SmallRng::seed_from_u64(config.seed ^ 0x4C49_4E4B_0000_0000),
            stats: LinkStats::default(),
        };
        Arc::new(Self { config, state: Mutex::new(state) })
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plugs `nic` into `side`; returns its end index.
    pub fn plug(self: &Arc<Self>, side: Side, nic: Arc<SimNic>) -> usize {
        let end = {
            let mut s = self.lock();
            s.ends.push((side, nic.clone()));
            s.ends.len() - 1
        };
        nic.attach_wire(Arc::new(Tap { link: Arc::downgrade(self), end }));
        end
    }

    fn send(&self, from: usize, t: u64, frame: Vec<u8>) {
        let mut s = self.lock();
        let side = s.ends[from].0;
        let dir = if side == Side::A { 0 } else { 1 };
        let half = self.config.asymmetry_ns as f64 / 2.0;
        let mean = self.config.delay_ns as f64 + if dir == 0 { half } else { -half };
        let targets: Vec<usize> = (0..s.ends.len()).filter(|&e| s.ends[e].0 != side).collect();
        for to in targets {
            s.stats.sent[dir] += 1;
            if self.config.loss > 0.0 && s.rng.random::<f64>() < self.config.loss {
                s.stats.lost[dir] += 1;
                continue;
            }
            let jitter =
                if self.config.jitter_ns > 0.0 { gauss(&mut s.rng) * self.config.jitter_ns } else { 0.0 };
            let delay = (mean + jitter).round().max(0.0) as u64;
            s.seq += 1;
            let id = s.seq;
            s.queue.push(Reverse((t + delay, id)));
            s.flights.insert(id, InFlight { to, dir, sent_at: t, frame: frame.clone() });
        }
    }

    /// When the next frame in flight arrives, ns of true time.
    pub fn next_arrival(&self) -> Option<u64> {
        self.lock().queue.peek().map(|Reverse((t, _))| *t)
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().flights.len()
    }

    /// Hands the next frame in flight to its NIC, now (the caller has moved time to its arrival).
    pub fn deliver_next(&self) -> Option<Arrival> {
        let (at, flight, nic) = {
            let mut s = self.lock();
            let Reverse((at, id)) = s.queue.pop()?;
            let flight = s.flights.remove(&id).expect("every queued frame is stored");
            s.stats.arrived[flight.dir] += 1;
            s.stats.delay_sum_ns[flight.dir] += (at - flight.sent_at) as f64;
            let nic = s.ends[flight.to].1.clone();
            (at, flight, nic)
        };
        // The NIC is called without the link's lock: its TX path may call back into the link.
        let outcome = nic.deliver(&flight.frame);
        if outcome.is_ok() {
            self.lock().stats.received[flight.dir] += 1;
        }
        Some(Arrival { end: flight.to, at_ns: at, outcome })
    }

    /// Delivers every frame arriving up to `until`, each at its arrival instant (moving `time`
    /// there), then moves `time` to `until`.
    pub fn run_until(&self, time: &VirtualTime, until: u64) -> Vec<Arrival> {
        let mut out = Vec::new();
        while let Some(at) = self.next_arrival().filter(|at| *at <= until) {
            time.wait_until(at);
            out.extend(self.deliver_next());
        }
        time.wait_until(until);
        out
    }

    pub fn stats(&self) -> LinkStats {
        self.lock().stats
    }
}

fn gauss(rng: &mut SmallRng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
