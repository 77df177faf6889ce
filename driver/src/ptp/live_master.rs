//! A simulated grandmaster on the simulated NIC's wire, in real time (`--device sim:ptp-master=N`):
//! nicclockd's PTP slave runs whole — rings, stamps, interrupt, statime, page — with no network.
//!
//! The master's clock is the host's CLOCK_REALTIME taken as UTC (TAI = it + 37 s, announced with
//! the PTP timescale), so a reader can hold the page against the system clock. Its thread sends
//! two-step Syncs at N a second and an Announce every 2 s into the slave NIC's receive path (the
//! NIC stamps a Sync as it arrives; t1 is the master's time then, less the path delay), and answers
//! each Delay_Req the slave NIC transmits (t4: the master's time at the transmission, plus the
//! path delay) with a Delay_Resp. The path is symmetric and the stamps exact to the host's clock
//! reads: what the slave shows is its own datapath's and servo's doing.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::port::ClockIdentity;
use super::simwire::{message, put_timestamp, ANNOUNCE, DELAY_REQ, DELAY_RESP, FOLLOW_UP, SYNC};
use crate::clock::Nanos;
use crate::net::frame::{FrameSpec, Transport, ETHERTYPE_PTP, ETH_HEADER_LEN, ETH_MAX_FRAME, PTP_HEADER_LEN};
use crate::sim::{FrameSink, SimNic};
use crate::timesource::TimeSource;

/// The simulated master's MAC (locally administered) and so its clock identity.
pub const MASTER_MAC: [u8; 6] = [0x02, 0x6e, 0x63, 0x00, 0x00, 0x01];

/// TAI − UTC the master announces (since 2017).
pub const UTC_OFFSET_S: i16 = 37;

/// What the simulated master sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveMasterSpec {
    /// Sync interval, log2 s (−3: 8 a second).
    pub log_sync_interval: i8,
    /// One-way path delay, both ways, ns.
    pub path_delay_ns: u64,
    pub domain: u8,
}

impl LiveMasterSpec {
    /// Syncs a second (1 / 2^log_sync_interval).
    pub fn syncs_per_second(&self) -> f64 {
        2f64.powi(-i32::from(self.log_sync_interval))
    }
}

impl Default for LiveMasterSpec {
    fn default() -> Self {
        Self { log_sync_interval: -3, path_delay_ns: 5_000, domain: 0 }
    }
}

/// Announce interval, log2 s (ptp4l's default).
const LOG_ANNOUNCE_INTERVAL: i8 = 1;

/// What the master has done, for tests and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveMasterCounters {
    /// Syncs the slave NIC took in (each with its Follow_Up).
    pub syncs: u64,
    pub announces: u64,
    pub delay_resps: u64,
    /// Frames the slave NIC refused (its link or queue not up yet, no descriptor).
    pub refused: u64,
}

/// The running master: stopped and joined when dropped.
pub struct LiveMaster {
    spec: LiveMasterSpec,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<Inbox>,
    wake: Condvar,
}

#[derive(Default)]
struct Inbox {
    /// Delay_Reqs the slave sent: the PTP message and t4.
    requests: Vec<(Vec<u8>, Nanos)>,
    counters: LiveMasterCounters,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The slave NIC's wire as the master hears it: each Delay_Req stamped at its transmission.
struct Ears {
    shared: Arc<Shared>,
    time: Arc<dyn TimeSource>,
    path_delay_ns: u64,
}

impl FrameSink for Ears {
    fn transmit(&self, t_ns: u64, frame: Vec<u8>) {
        // The frame left at the simulation's true time `t_ns` (this runs just after, under the
        // NIC's lock): the master's clock then, plus the path, is the Delay_Req's arrival.
        let t4 = master_time_at(&*self.time, t_ns) + Nanos(i128::from(self.path_delay_ns));
        let Some(ptp) = l2_ptp(&frame) else { return };
        if ptp[0] & 0x0f != DELAY_REQ {
            return;
        }
        self.shared.lock().requests.push((ptp.to_vec(), t4));
        self.shared.wake.notify_one();
    }
}

/// The PTP message in an L2 PTP frame (untagged), if it is one.
fn l2_ptp(frame: &[u8]) -> Option<&[u8]> {
    let ptp = frame.get(ETH_HEADER_LEN..)?;
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    (ethertype == ETHERTYPE_PTP && ptp.len() >= PTP_HEADER_LEN).then_some(ptp)
}

/// The master's time: CLOCK_REALTIME as UTC, plus TAI − UTC.
fn tai_now() -> Nanos {
    let utc = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
    Nanos(utc + i128::from(UTC_OFFSET_S) * 1_000_000_000)
}

/// The master's time at the simulation's true time `t_ns` (a few µs away from now): its clock
/// now, moved by the true time between (the two clocks' rates differ by ppm: nothing over µs).
fn master_time_at(time: &dyn TimeSource, t_ns: u64) -> Nanos {
    let (master, now) = (tai_now(), time.now_ns());
    master + Nanos(i128::from(t_ns) - i128::from(now))
}

impl LiveMaster {
    /// Puts a master on `nic`'s wire and starts it (its first Announce and Sync at once).
    /// `time` is the simulation's (the NIC's true time).
    pub fn start(nic: Arc<SimNic>, time: Arc<dyn TimeSource>, spec: LiveMasterSpec) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let ears = Ears { shared: shared.clone(), time: time.clone(), path_delay_ns: spec.path_delay_ns };
        nic.attach_wire(Arc::new(ears));
        let thread = std::thread::Builder::new().name("sim-ptp-master".into()).spawn({
            let shared = shared.clone();
            move || Master::new(nic, time, spec, shared).run()
        })?;
        Ok(Self { spec, shared, thread: Some(thread) })
    }

    /// The master's identity (EUI-64 of [`MASTER_MAC`]).
    pub fn identity() -> ClockIdentity {
        ClockIdentity::from_mac(MASTER_MAC)
    }

    pub fn spec(&self) -> LiveMasterSpec {
        self.spec
    }

    pub fn counters(&self) -> LiveMasterCounters {
        self.shared.lock().counters
    }
}

impl Drop for LiveMaster {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for LiveMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LiveMaster({})", Self::identity())
    }
}

/// The master's thread state.
struct Master {
    nic: Arc<SimNic>,
    time: Arc<dyn TimeSource>,
    spec: LiveMasterSpec,
    shared: Arc<Shared>,
    frame: FrameSpec,
    sync_seq: u16,
    announce_seq: u16,
}

impl Master {
    fn new(nic: Arc<SimNic>, time: Arc<dyn TimeSource>, spec: LiveMasterSpec, shared: Arc<Shared>) -> Self {
        let frame = FrameSpec {
            transport: Transport::L2,
            src_mac: MASTER_MAC,
            src_ip: std::net::Ipv4Addr::UNSPECIFIED,
            vlan_tci: None,
            udp_checksum: true,
            ip_id: 0,
        };
        Self { nic, time, spec, shared, frame, sync_seq: 0, announce_seq: 0 }
    }

    fn run(mut self) {
        let sync_every = interval(self.spec.log_sync_interval);
        let announce_every = interval(LOG_ANNOUNCE_INTERVAL);
        let (mut next_sync, mut next_announce) = (Instant::now(), Instant::now());
        loop {
            let requests = {
                let mut inbox = self.shared.lock();
                while !inbox.stop && inbox.requests.is_empty() {
                    let now = Instant::now();
                    let until = next_sync.min(next_announce);
                    if now >= until {
                        break;
                    }
                    inbox = self
                        .shared
                        .wake
                        .wait_timeout(inbox, until - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if inbox.stop {
                    return;
                }
                std::mem::take(&mut inbox.requests)
            };
            for (request, t4) in requests {
                self.answer(&request, t4);
            }
            let now = Instant::now();
            if now >= next_announce {
                self.announce();
                next_announce = later(next_announce, announce_every, now);
            }
            if now >= next_sync {
                self.sync();
                next_sync = later(next_sync, sync_every, now);
            }
        }
    }

    /// `payload` into the slave NIC's receive path now: the true time it was received at, or
    /// None if the NIC refused it.
    fn deliver(&self, payload: &[u8]) -> Option<u64> {
        let mut buf = [0u8; ETH_MAX_FRAME];
        let len = self.frame.build_into(payload, &mut buf).ok()?;
        match self.nic.deliver(&buf[..len]) {
            Ok(d) => Some(d.at_ns),
            Err(_) => {
                self.shared.lock().counters.refused += 1;
                None
            }
        }
    }

    fn message(&self, kind: u8, len: usize, seq: u16, interval: i8) -> Vec<u8> {
        // currentUtcOffsetValid, ptpTimescale.
        message(kind, len, self.spec.domain, LiveMaster::identity(), seq, interval, 0x04 | 0x08)
    }

    fn sync(&mut self) {
        let seq = self.sync_seq;
        self.sync_seq = seq.wrapping_add(1);
        let interval = self.spec.log_sync_interval;
        let sync = self.message(SYNC, 44, seq, interval);
        // The slave NIC stamps the Sync as it takes it in: the master's clock then (not around
        // the call: the Sync's interrupt may wake the slave's thread inside it) is its arrival,
        // and it left the path delay earlier.
        let Some(at_ns) = self.deliver(&sync) else { return };
        let arrival = master_time_at(&*self.time, at_ns);
        let mut follow_up = self.message(FOLLOW_UP, 44, seq, interval);
        put_timestamp(&mut follow_up[34..44], arrival - Nanos(i128::from(self.spec.path_delay_ns)));
        if self.deliver(&follow_up).is_some() {
            self.shared.lock().counters.syncs += 1;
        }
    }

    fn announce(&mut self) {
        let seq = self.announce_seq;
        self.announce_seq = seq.wrapping_add(1);
        let mut a = self.message(ANNOUNCE, 64, seq, LOG_ANNOUNCE_INTERVAL);
        put_timestamp(&mut a[34..44], tai_now());
        a[44..46].copy_from_slice(&UTC_OFFSET_S.to_be_bytes());
        a[47] = 128; // priority1
        a[48] = 6; // clockClass: a primary reference (GNSS-locked)
        a[49] = 0x21; // clockAccuracy: within 100 ns
        a[50..52].copy_from_slice(&0x4E5Du16.to_be_bytes()); // offsetScaledLogVariance
        a[52] = 128; // priority2
        a[53..61].copy_from_slice(&LiveMaster::identity().0);
        a[61..63].copy_from_slice(&0u16.to_be_bytes()); // stepsRemoved
        a[63] = 0x20; // timeSource: GNSS
        if self.deliver(&a).is_some() {
            self.shared.lock().counters.announces += 1;
        }
    }

    /// A Delay_Resp to `request` (a Delay_Req in this master's domain) with t4.
    fn answer(&mut self, request: &[u8], t4: Nanos) {
        if request.len() < 44 || request[4] != self.spec.domain {
            return;
        }
        let seq = u16::from_be_bytes([request[30], request[31]]);
        let mut resp = self.message(DELAY_RESP, 54, seq, self.spec.log_sync_interval);
        put_timestamp(&mut resp[34..44], t4);
        resp[44..54].copy_from_slice(&request[20..30]); // requestingPortIdentity
        if self.deliver(&resp).is_some() {
            self.shared.lock().counters.delay_resps += 1;
        }
    }
}

fn interval(log2: i8) -> Duration {
    Duration::from_secs_f64(2f64.powi(i32::from(log2)))
}

/// The next time after `at` on its grid, skipping what `now` has passed (a stalled thread sends
/// one late message, not a burst).
fn later(at: Instant, every: Duration, now: Instant) -> Instant {
    let next = at + every;
    if next > now {
        next
    } else {
        now + every
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::PTP_L2_MAC;

    #[test]
    fn only_l2_ptp_frames_are_heard() {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&PTP_L2_MAC);
        f[12..14].copy_from_slice(&ETHERTYPE_PTP.to_be_bytes());
        assert_eq!(l2_ptp(&f).map(<[u8]>::len), Some(46));
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert!(l2_ptp(&f).is_none(), "IPv4 is not this master's");
        assert!(l2_ptp(&f[..20]).is_none(), "cut short");
    }

    #[test]
    fn the_sync_rate_follows_the_log_interval_both_ways() {
        let at = |log_sync_interval| LiveMasterSpec { log_sync_interval, ..LiveMasterSpec::default() };
        assert_eq!(at(-3).syncs_per_second(), 8.0);
        assert_eq!(at(0).syncs_per_second(), 1.0);
        assert_eq!(at(1).syncs_per_second(), 0.5, "a positive log interval is slower than 1/s");
    }

    #[test]
    fn the_grid_skips_what_a_stall_missed() {
        let t0 = Instant::now();
        let every = Duration::from_millis(125);
        assert_eq!(later(t0, every, t0), t0 + every);
        let stalled = t0 + Duration::from_secs(1);
        assert_eq!(later(t0, every, stalled), stalled + every, "one message late, not eight at once");
    }
}
