//! A sans-IO PTP ordinary-clock port over statime: received payloads with their hardware RX stamps,
//! the TX stamps of our sent event messages and timer expiries in; payloads, timers and state out.
//!
//! E2E delay, two-step, one port per instance. Its [`PtpRole`]: `Slave` (statime's `slave_only`:
//! the BMCA still picks the best of several Announcers to follow), `Master` (statime's
//! `master_only`: Announce, Sync + Follow_Up with the Sync's TX stamp, Delay_Resp with each
//! Delay_Req's RX stamp, whatever else announces) or `Auto` (statime's BMCA decides).
//!
//! What statime 0.4 cannot be told, the adapter does:
//! - Our own Announce carries our clock's state ([`LocalClock`], from [`super::quality`]): statime's
//!   DefaultDS quality is fixed (class 248, accuracy unknown, variance 0x6900) and entering MASTER
//!   resets its timePropertiesDS to an internal oscillator without a UTC offset, so the adapter
//!   rewrites the quality and time properties of each Announce whose grandmaster is us. In `Auto`,
//!   statime's BMCA still compares each foreign Announce with that fixed quality, so the adapter
//!   also rewrites the quality of each foreign Announce it hands statime to one that compares with
//!   the fixed quality as the foreign one compares with ours
//!   ([`super::quality::quality_for_statime`]): the BMCA decides as if statime knew our quality,
//!   and two of our ports agree on which is better. The foreign grandmaster's real accuracy is
//!   kept for the page. `priority1`/`priority2` order `Auto` ports.
//! - Delay_Req floods: each peer's Delay_Reqs pass a token bucket ([`super::limit`]) while we
//!   serve; the excess is dropped and counted, the other peers are still answered.
//! - One steerer: statime may steer the clock only while the port is SLAVE/UNCALIBRATED
//!   ([`PtpClock::steering`]); in any other state the caller's own discipline owns it.
//! - Two step thresholds, as ptp4l: statime's filter has one, and resets and steps on any single
//!   measurement beyond it (at 50 µs, on a software-stamping master's noise, ~0.65 times a
//!   second). It gets the large one ([`PtpConfig::step_threshold_ns`], 1 ms); the gate wrapping
//!   it ([`super::gate`]) applies the first-step one (50 µs) until the first correction and holds
//!   back far measurements unless they persist. statime trusts no measurement before 4 Sync /
//!   Delay_Req pairs closer than its `estimate_threshold`: one Sync interval here, not 200 ms,
//!   else at 1 Sync/s a 100 ppm oscillator drifts a threshold away before the filter moves.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use nicclock_uio::RegisterAccess;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use statime::config::{
    AcceptAnyMaster, DelayMechanism, InstanceConfig, LeapIndicator, PortConfig, PtpMinorVersion, SdoId,
    TimePropertiesDS, TimeSource,
};
use statime::filters::KalmanConfiguration;
use statime::port::{InBmca, NoForwardedTLVs, Port, PortAction, Running, TimestampContext};
use statime::time::{Duration, Interval};
use statime::PtpInstance;

use super::clock::{duration_ns, to_time, PtpClock, SharedPhc};
use super::gate::{GateConfig, GatedKalman};
use super::limit::DelayReqLimiter;
use super::quality::{quality_for_bound, quality_for_statime, TimeProperties};
use super::spread::{RawSpread, SharedRawOffsets};
use crate::clock::Nanos;

/// An IEEE 1588 clock identity (EUI-64; from a MAC: its OUI, FF FE, its NIC part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClockIdentity(pub [u8; 8]);

impl ClockIdentity {
    pub fn from_mac(mac: [u8; 6]) -> Self {
        Self([mac[0], mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
    }
}

impl std::fmt::Display for ClockIdentity {
    /// ptp4l's spelling: `001b21.fffe.123456`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

/// The port's state, as IEEE 1588 names it (statime has no PRE_MASTER/UNCALIBRATED of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Initializing,
    Faulty,
    Disabled,
    Listening,
    PreMaster,
    Master,
    Passive,
    Uncalibrated,
    Slave,
}

impl std::fmt::Display for PortState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Initializing => "INITIALIZING",
            Self::Faulty => "FAULTY",
            Self::Disabled => "DISABLED",
            Self::Listening => "LISTENING",
            Self::PreMaster => "PRE_MASTER",
            Self::Master => "MASTER",
            Self::Passive => "PASSIVE",
            Self::Uncalibrated => "UNCALIBRATED",
            Self::Slave => "SLAVE",
        };
        f.write_str(s)
    }
}

/// Which roles the port may take (ptp4l: `slaveOnly`, `masterOnly`, neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PtpRole {
    /// The BMCA decides: master while no better clock announces, else slave (or passive).
    Auto,
    /// Never master: follows the best master the BMCA picks.
    #[default]
    Slave,
    /// Always master, whatever else announces (a grandmaster).
    Master,
}

impl std::fmt::Display for PtpRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Slave => "slave",
            Self::Master => "master",
        })
    }
}

/// What the port does now, from its state: who steers the clock follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveRole {
    /// LISTENING (and the states around it): neither serving nor following.
    Listening,
    /// MASTER or PRE_MASTER: serving our clock; the caller's discipline steers it.
    Master,
    /// PASSIVE: a better master serves the link; the caller's discipline steers.
    Passive,
    /// SLAVE or UNCALIBRATED: following a master; statime steers.
    Slave,
}

impl ActiveRole {
    pub fn of(state: PortState) -> Self {
        match state {
            PortState::Master | PortState::PreMaster => Self::Master,
            PortState::Passive => Self::Passive,
            PortState::Slave | PortState::Uncalibrated => Self::Slave,
            _ => Self::Listening,
        }
    }

    /// Whether statime steers the clock in this role (else the caller's discipline does).
    pub fn ptp_steers(self) -> bool {
        self == Self::Slave
    }
}

pub use super::quality::time_source;

/// Our own clock as a master announces it: the caller's discipline state and the host's time
/// properties ([`PtpPort::set_local`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalClock {
    /// The published bound on our clock's error while the discipline is LOCKED, ns; `None`: not
    /// locked (announced as class 255, accuracy unknown, the worst variance: no slave prefers it).
    pub locked_bound_ns: Option<u64>,
    /// TAI−UTC, leap flags, traceability and timeSource (default: a free-running clock that knows
    /// nothing).
    pub properties: TimeProperties,
}

/// The clockQuality we announce for `local` (class, accuracy code, offsetScaledLogVariance): see
/// [`quality_for_bound`].
pub fn announced_quality(local: &LocalClock) -> (u8, u8, u16) {
    quality_for_bound(local.locked_bound_ns)
}

/// What the port knows of its reference, for the page and `nicclock status`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PtpStatus {
    pub state: PortState,
    /// The grandmaster followed (ours while no master is known).
    pub grandmaster: ClockIdentity,
    pub steps_removed: u16,
    /// TAI−UTC from the master's Announce, when it says it is valid.
    pub utc_offset_s: Option<i16>,
    pub leap61: bool,
    pub leap59: bool,
    pub ptp_timescale: bool,
    pub time_traceable: bool,
    pub frequency_traceable: bool,
    /// The grandmaster's announced clockAccuracy (IEEE 1588 code; 0xFE unknown).
    pub clock_accuracy: u8,
    /// The filter's current offset from the master and mean path delay (slave state only), ns.
    pub offset_ns: Option<i64>,
    pub mean_delay_ns: Option<i64>,
    /// The spread of the recent raw (unfiltered) offsets (slave state only; [`super::spread`]).
    pub raw_offsets: Option<RawSpread>,
}

/// The port's timers: each output [`PortOutput::ArmTimer`] (re)arms one; expiry → [`PtpPort::on_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    Announce,
    Sync,
    DelayRequest,
    AnnounceReceipt,
    FilterUpdate,
    /// The BMCA's periodic run (the shortest announce interval).
    Bmca,
}

/// Names a sent event message whose TX stamp the port waits for ([`PtpPort::on_tx_timestamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxToken(u32);

/// What the port asks of the datapath and reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PortOutput {
    /// Send on the event port/ethertype (319; Sync, Delay_Req), stamp it, and hand the stamp back.
    SendEvent { data: Vec<u8>, token: TxToken },
    /// Send on the general port (320; Announce, Follow_Up, Delay_Resp), no stamp.
    SendGeneral { data: Vec<u8> },
    /// (Re)arm `timer` to expire `after` from now.
    ArmTimer { timer: Timer, after: std::time::Duration },
    /// The port state or the reference changed.
    StatusChanged(PtpStatus),
    /// The filter stepped the clock by this many ns (the page posts a STEP event).
    Stepped { ns: i64 },
    /// The port left SLAVE for LISTENING: no Announce from its master within the announce receipt
    /// timeout, or the BMCA found every master's Announce aged out (the page goes HOLDOVER).
    /// `last` is the status while following it (statime forgets the master's identity and UTC
    /// offset; the page keeps them through holdover).
    MasterLost { last: PtpStatus },
}

/// The port's configuration (intervals as log2 seconds, ptp4l's `logSyncInterval` etc.).
#[derive(Debug, Clone, Copy)]
pub struct PtpConfig {
    pub identity: ClockIdentity,
    pub domain: u8,
    pub log_announce_interval: i8,
    pub announce_receipt_timeout: u8,
    pub log_sync_interval: i8,
    pub log_min_delay_req_interval: i8,
    /// Known delay asymmetry (IEEE 1588 delayAsymmetry), ns; 0 when unknown (the usual case).
    pub delay_asymmetry_ns: i64,
    /// Until the first correction (at start, after a new master), offsets beyond this are
    /// stepped, ns (ptp4l's `first_step_threshold`): 50 µs, not statime's 1 ms, else a first step
    /// made before the rate is known (100 ppm: 100 µs/s) leaves tens of µs to slew away.
    pub first_step_threshold_ns: i64,
    /// After the first correction, offsets beyond this are stepped, ns (ptp4l's
    /// `step_threshold`): statime's 1 ms, far above a hardware-stamping master's noise; a
    /// software-stamping one's spikes are held back by the gate unless they persist
    /// ([`super::gate`]), so only a real jump steps.
    pub step_threshold_ns: i64,
    /// The Kalman filter's time to slew an offset away, s (statime's default: 2; 0.5 locks a
    /// 100 ppm oscillator in ~6 s instead of ~15 s at the same RMS on the simulated wire).
    pub steer_time_s: f64,
    pub seed: u64,
    /// Which roles the port may take.
    pub role: PtpRole,
    /// ptp4l's `priority1`/`priority2` (lower wins the BMCA; 128 by default).
    pub priority1: u8,
    pub priority2: u8,
}

impl PtpConfig {
    /// ptp4l's defaults (domain 0, announce 2 s ×3, sync 1 s, delay_req 1 s, priorities 128) for
    /// `identity`, slave only (issue 10's port).
    pub fn new(identity: ClockIdentity) -> Self {
        Self {
            identity,
            domain: 0,
            log_announce_interval: 1,
            announce_receipt_timeout: 3,
            log_sync_interval: 0,
            log_min_delay_req_interval: 0,
            delay_asymmetry_ns: 0,
            first_step_threshold_ns: 50_000,
            step_threshold_ns: 1_000_000,
            steer_time_s: 0.5,
            seed: 1,
            role: PtpRole::Slave,
            priority1: 128,
            priority2: 128,
        }
    }
}

/// Our RNG in the shape statime's API wants (rand 0.8's `RngCore`): timer jitter only.
pub struct StatimeRng(SmallRng);

impl rand08::RngCore for StatimeRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand08::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

/// A filter estimate of exactly 0/0 is taken as one when the recent raw offsets lie within this
/// of 0 (max |offset| + σ), ns.
const ZERO_ESTIMATE_MAX_NS: u64 = 1_000;

/// Foreign grandmasters whose accuracy is remembered, at most (forgotten all at once beyond).
const MAX_FOREIGN: usize = 64;

/// Sent event messages waiting for their TX stamp, at most (one is usual: one Delay_Req in flight).
const MAX_UNSTAMPED: usize = 16;

type Instance = PtpInstance<GatedKalman>;
type RunningPort<R> = Port<'static, Running, AcceptAnyMaster, StatimeRng, PtpClock<R>, GatedKalman>;
type BmcaPort<R> = Port<'static, InBmca, AcceptAnyMaster, StatimeRng, PtpClock<R>, GatedKalman>;

/// One PTP port on our NIC clock, in the roles its [`PtpConfig::role`] allows.
pub struct PtpPort<R: RegisterAccess> {
    /// statime's port borrows its instance: one instance per daemon, leaked to be `'static`.
    instance: &'static Instance,
    /// Always `Some` between calls (the BMCA takes the port out and puts it back).
    port: Option<RunningPort<R>>,
    phc: SharedPhc<R>,
    contexts: HashMap<u32, TimestampContext>,
    dropped: Rc<Cell<u64>>,
    raw: SharedRawOffsets,
    steps: Rc<RefCell<Vec<i64>>>,
    next_token: u32,
    last_status: PtpStatus,
    config: PtpConfig,
    local: LocalClock,
    limiter: DelayReqLimiter,
    /// The accuracy each foreign grandmaster announced (`Auto` hands statime a rewritten quality).
    foreign_accuracy: HashMap<[u8; 8], u8>,
    /// Whether statime may steer the clock (shared with its [`PtpClock`]): SLAVE/UNCALIBRATED only.
    steering: Rc<Cell<bool>>,
}

impl<R: RegisterAccess> PtpPort<R> {
    /// A port in LISTENING, and the outputs to start it (its first timers). statime's port borrows
    /// its instance, so each call leaks one small instance: make one per daemon run.
    pub fn new(config: PtpConfig, phc: SharedPhc<R>) -> (Self, Vec<PortOutput>) {
        // A slave-only port ranks itself last (priority 255, as ptp4l's slaveOnly does with its
        // class 255): statime's BMCA still compares our own dataset with each Announce, and its
        // fixed quality (class 248, variance 0x6900) beats ptp4l's defaults (248, 0xFFFF), so at
        // priority 128 the port would find itself better than such a master and never follow it.
        let (priority_1, priority_2) = match config.role {
            PtpRole::Slave => (255, 255),
            _ => (config.priority1, config.priority2),
        };
        let instance_config = InstanceConfig {
            clock_identity: statime::config::ClockIdentity(config.identity.0),
            priority_1,
            priority_2,
            domain_number: config.domain,
            sdo_id: SdoId::default(),
            slave_only: config.role == PtpRole::Slave,
            path_trace: false,
        };
        let properties = TimePropertiesDS::new_arbitrary_time(false, false, TimeSource::InternalOscillator);
        let instance: &'static Instance = Box::leak(Box::new(PtpInstance::new(instance_config, properties)));
        let port_config = PortConfig {
            acceptable_master_list: AcceptAnyMaster,
            delay_mechanism: DelayMechanism::E2E {
                interval: Interval::from_log_2(config.log_min_delay_req_interval),
            },
            announce_interval: Interval::from_log_2(config.log_announce_interval),
            announce_receipt_timeout: config.announce_receipt_timeout,
            sync_interval: Interval::from_log_2(config.log_sync_interval),
            master_only: config.role == PtpRole::Master,
            delay_asymmetry: Duration::from_nanos(config.delay_asymmetry_ns),
            minor_ptp_version: PtpMinorVersion::One,
        };
        let rng = StatimeRng(SmallRng::seed_from_u64(config.seed));
        let clock = PtpClock::new(phc.clone());
        let steps = clock.steps();
        let steering = clock.steering();
        steering.set(false);
        let dropped = Rc::new(Cell::new(0));
        let raw = SharedRawOffsets::default();
        let kalman = KalmanConfiguration {
            step_threshold: Duration::from_nanos(config.step_threshold_ns),
            steer_time: Duration::from_seconds(config.steer_time_s),
            // statime pairs a Sync with a Delay_Req measurement closer than this to estimate the
            // measurement noise, and trusts no measurement before it has 4 such pairs: at 1 Sync/s
            // its 200 ms default pairs a fraction of them, and a 100 ppm oscillator drifted a
            // step threshold away before the filter moved. One Sync interval pairs every one.
            estimate_threshold: Duration::from_seconds(
                2f64.powi(config.log_sync_interval.max(config.log_min_delay_req_interval).into()).max(0.2),
            ),
            ..KalmanConfiguration::default()
        };
        let bmca: BmcaPort<R> = instance.add_port(
            port_config,
            GateConfig {
                kalman,
                first_step_threshold_ns: config.first_step_threshold_ns as f64,
                dropped: dropped.clone(),
                raw: raw.clone(),
            },
            clock,
            rng,
        );
        let (port, actions) = bmca.end_bmca();
        let mut slave = Self {
            config,
            local: LocalClock::default(),
            limiter: DelayReqLimiter::new(config.log_min_delay_req_interval),
            foreign_accuracy: HashMap::new(),
            steering,
            instance,
            port: None,
            phc,
            contexts: HashMap::new(),
            dropped,
            raw,
            steps,
            next_token: 0,
            last_status: PtpStatus {
                state: PortState::Listening,
                grandmaster: config.identity,
                steps_removed: 0,
                utc_offset_s: None,
                leap61: false,
                leap59: false,
                ptp_timescale: false,
                time_traceable: false,
                frequency_traceable: false,
                clock_accuracy: 0xFE,
                offset_ns: None,
                mean_delay_ns: None,
                raw_offsets: None,
            },
        };
        let mut out = Vec::new();
        slave.collect(actions, &mut out);
        slave.port = Some(port);
        out.push(PortOutput::ArmTimer { timer: Timer::Bmca, after: instance.bmca_interval() });
        (slave, out)
    }

    /// Tells the port the state of our own clock, which its Announce carries while it is the
    /// grandmaster (see [`announced_quality`]).
    pub fn set_local(&mut self, local: LocalClock) {
        self.local = local;
    }

    /// The configuration the port was made with.
    pub fn config(&self) -> &PtpConfig {
        &self.config
    }

    /// What the port does now (who steers the clock follows from it).
    pub fn active_role(&self) -> ActiveRole {
        ActiveRole::of(self.last_status.state)
    }

    /// Delay_Reqs dropped by the per-peer rate limit while serving.
    pub fn delay_reqs_limited(&self) -> u64 {
        self.limiter.limited()
    }

    /// Measurements the outlier gate dropped (see [`super::gate`]).
    pub fn outliers_dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// The NIC clock the port steers (the datapath converts raw stamps with it).
    pub fn phc(&self) -> &SharedPhc<R> {
        &self.phc
    }

    /// A payload received on the event port with its RX hardware stamp (disciplined time).
    pub fn on_event(&mut self, data: &[u8], rx: Nanos) -> Vec<PortOutput> {
        let mut out = Vec::new();
        // A Delay_Req (type 1) while serving: its sender's rate is limited before statime answers.
        if data.len() >= 44
            && data[0] & 0x0f == 0x1
            && self.active_role() == ActiveRole::Master
            && !self.limiter.allow(&data[20..30], rx.0)
        {
            return out;
        }
        let actions: Vec<_> = self.running().handle_event_receive(data, to_time(rx)).map(own).collect();
        self.collect_owned(actions, &mut out);
        self.finish(out)
    }

    /// A payload received on the general port.
    pub fn on_general(&mut self, data: &[u8]) -> Vec<PortOutput> {
        let mut out = Vec::new();
        let mut rewritten;
        let data = if self.config.role == PtpRole::Auto && is_foreign_announce(data, self.config.identity) {
            rewritten = data.to_vec();
            self.rewrite_foreign_quality(&mut rewritten);
            &rewritten[..]
        } else {
            data
        };
        let actions: Vec<_> = self.running().handle_general_receive(data).map(own).collect();
        self.collect_owned(actions, &mut out);
        self.finish(out)
    }

    /// The TX stamp of the event message `token` named (disciplined time).
    pub fn on_tx_timestamp(&mut self, token: TxToken, tx: Nanos) -> Vec<PortOutput> {
        let mut out = Vec::new();
        let Some(context) = self.contexts.remove(&token.0) else {
            log::warn!("ptp: TX stamp for an unknown or already stamped message");
            return out;
        };
        let actions: Vec<_> = self.running().handle_send_timestamp(context, to_time(tx)).map(own).collect();
        self.collect_owned(actions, &mut out);
        self.finish(out)
    }

    /// A sent event message whose stamp never came (counted by the datapath): forget it.
    pub fn on_tx_timestamp_lost(&mut self, token: TxToken) {
        self.contexts.remove(&token.0);
    }

    /// `timer` expired.
    pub fn on_timer(&mut self, timer: Timer) -> Vec<PortOutput> {
        let mut out = Vec::new();
        if timer == Timer::Bmca {
            // The BMCA's state change consumes the port: the only call that moves it.
            let port = self.port.take().expect("port present between calls");
            let mut bmca = port.start_bmca();
            self.instance.bmca(&mut [&mut bmca]);
            let (running, actions) = bmca.end_bmca();
            let actions: Vec<_> = actions.map(own).collect();
            self.port = Some(running);
            self.collect_owned(actions, &mut out);
            out.push(PortOutput::ArmTimer { timer: Timer::Bmca, after: self.instance.bmca_interval() });
        } else {
            let port = self.running();
            let actions: Vec<_> = match timer {
                Timer::Announce => port.handle_announce_timer(&mut NoForwardedTLVs).map(own).collect(),
                Timer::Sync => port.handle_sync_timer().map(own).collect(),
                Timer::DelayRequest => port.handle_delay_request_timer().map(own).collect(),
                Timer::AnnounceReceipt => port.handle_announce_receipt_timer().map(own).collect(),
                Timer::FilterUpdate => port.handle_filter_update_timer().map(own).collect(),
                Timer::Bmca => unreachable!("handled above"),
            };
            self.collect_owned(actions, &mut out);
        }
        self.finish(out)
    }

    /// statime's running port, worked on in place: it is several KiB (its filter, foreign
    /// masters and buffers), and moving it out and back at each message was most of a wake-up's
    /// instructions (a memcpy each way; under QEMU TCG ~0.5 ms of guest CPU per wake-up).
    fn running(&mut self) -> &mut RunningPort<R> {
        self.port.as_mut().expect("port present between calls")
    }

    /// The port's state and reference now.
    pub fn status(&self) -> PtpStatus {
        let port = self.port.as_ref().expect("port present between calls");
        let state = match port.port_ds().port_state {
            statime::observability::port::PortState::Initializing => PortState::Initializing,
            statime::observability::port::PortState::Faulty => PortState::Faulty,
            statime::observability::port::PortState::Disabled => PortState::Disabled,
            statime::observability::port::PortState::Listening => PortState::Listening,
            statime::observability::port::PortState::PreMaster => PortState::PreMaster,
            statime::observability::port::PortState::Master => PortState::Master,
            statime::observability::port::PortState::Passive => PortState::Passive,
            statime::observability::port::PortState::Uncalibrated => PortState::Uncalibrated,
            statime::observability::port::PortState::Slave => PortState::Slave,
        };
        // statime reports 0/0 while its Kalman filter has no state yet (before the first
        // measurements, after a reset): that is no estimate, not a perfect one — unless the recent
        // exchanges themselves say 0: two emulated NICs on one virtual clock (QEMU's igbs) measure
        // exactly 0 offset and 0 delay, and the filter's estimate is then exactly 0/0. (A noisy
        // master's filter resets often; its raw offsets are far from 0 and 0/0 stays no estimate.)
        let raw_offsets = self.raw.borrow().spread();
        let measured = raw_offsets.is_some_and(|r| r.count > 0 && r.bound_ns() <= ZERO_ESTIMATE_MAX_NS);
        let estimate = port
            .port_current_ds_contribution()
            .filter(|e| measured || e.offset_from_master != Duration::ZERO || e.mean_delay != Duration::ZERO);
        let parent = self.instance.parent_ds();
        let current = self.instance.current_ds(None);
        let tp = self.instance.time_properties_ds();
        let status = PtpStatus {
            state,
            grandmaster: ClockIdentity(parent.grandmaster_identity.0),
            steps_removed: current.steps_removed,
            utc_offset_s: tp.utc_offset(),
            leap61: tp.leap_indicator() == LeapIndicator::Leap61,
            leap59: tp.leap_indicator() == LeapIndicator::Leap59,
            ptp_timescale: tp.is_ptp(),
            time_traceable: tp.time_traceable,
            frequency_traceable: tp.frequency_traceable,
            clock_accuracy: parent.grandmaster_clock_quality.clock_accuracy.to_primitive(),
            offset_ns: estimate.as_ref().map(|e| duration_ns(e.offset_from_master) as i64),
            mean_delay_ns: estimate.as_ref().map(|e| duration_ns(e.mean_delay) as i64),
            raw_offsets: if state == PortState::Slave { raw_offsets } else { None },
        };
        if status.grandmaster != self.config.identity {
            let accuracy = self.foreign_accuracy.get(&status.grandmaster.0).copied();
            return PtpStatus { clock_accuracy: accuracy.unwrap_or(status.clock_accuracy), ..status };
        }
        // We are the grandmaster: what our Announce says (statime's datasets know none of it).
        let (_, accuracy, _) = announced_quality(&self.local);
        let l = &self.local.properties;
        PtpStatus {
            utc_offset_s: l.utc_offset_s,
            leap61: l.leap61,
            leap59: l.leap59,
            ptp_timescale: true,
            time_traceable: l.time_traceable,
            frequency_traceable: l.frequency_traceable,
            clock_accuracy: accuracy,
            ..status
        }
    }

    fn finish(&mut self, mut out: Vec<PortOutput>) -> Vec<PortOutput> {
        out.extend(self.steps.borrow_mut().drain(..).map(|ns| PortOutput::Stepped { ns }));
        let status = self.status();
        let changed = |a: &PtpStatus, b: &PtpStatus| {
            (a.state, a.grandmaster, a.steps_removed, a.utc_offset_s, a.leap61, a.leap59)
                != (b.state, b.grandmaster, b.steps_removed, b.utc_offset_s, b.leap61, b.leap59)
        };
        if changed(&status, &self.last_status) {
            log::info!(
                "ptp: port {} -> {}, grandmaster {} steps removed {}",
                self.last_status.state,
                status.state,
                status.grandmaster,
                status.steps_removed
            );
            out.push(PortOutput::StatusChanged(status));
            let was_slave = matches!(self.last_status.state, PortState::Slave | PortState::Uncalibrated);
            let now_slave = matches!(status.state, PortState::Slave | PortState::Uncalibrated);
            if was_slave && !now_slave && matches!(status.state, PortState::Listening | PortState::Master) {
                log::warn!("ptp: master {} lost (no Announce)", self.last_status.grandmaster);
                out.push(PortOutput::MasterLost { last: self.last_status });
            }
        }
        self.last_status = status;
        self.steering.set(ActiveRole::of(status.state).ptp_steers());
        out
    }

    fn collect(&mut self, actions: statime::port::PortActionIterator<'_>, out: &mut Vec<PortOutput>) {
        let owned: Vec<_> = actions.map(own).collect();
        self.collect_owned(owned, out);
    }

    fn collect_owned(&mut self, actions: Vec<Action>, out: &mut Vec<PortOutput>) {
        for action in actions {
            match action {
                Action::Event(data, context) => {
                    let token = TxToken(self.next_token);
                    self.next_token = self.next_token.wrapping_add(1);
                    if self.contexts.len() >= MAX_UNSTAMPED {
                        // Stamps the datapath never reported: forget the oldest.
                        if let Some(oldest) =
                            self.contexts.keys().min_by_key(|k| k.wrapping_sub(token.0)).copied()
                        {
                            self.contexts.remove(&oldest);
                        }
                    }
                    self.contexts.insert(token.0, context);
                    out.push(PortOutput::SendEvent { data, token });
                }
                Action::General(mut data) => {
                    self.rewrite_own_announce(&mut data);
                    out.push(PortOutput::SendGeneral { data })
                }
                Action::Timer(timer, after) => out.push(PortOutput::ArmTimer { timer, after }),
                Action::None => {}
            }
        }
    }
}

impl<R: RegisterAccess> PtpPort<R> {
    /// Our own Announce (we are its grandmaster) gets our clock's quality and time properties (see
    /// the module docs). Layout: IEEE
    /// 1588-2019 13.5 (flags in header byte 7, currentUtcOffset at 44, clockQuality at 48,
    /// grandmasterIdentity at 53, timeSource at 63).
    fn rewrite_own_announce(&self, data: &mut [u8]) {
        let ours = self.config.identity.0;
        if data.len() < 64 || data[0] & 0x0f != 0xB || data[20..28] != ours || data[53..61] != ours {
            return;
        }
        let l = &self.local.properties;
        let mut flags = data[7] & !0x3f;
        flags |= u8::from(l.leap61)
            | u8::from(l.leap59) << 1
            | u8::from(l.utc_offset_s.is_some()) << 2
            | 1 << 3 // PTP timescale: the NIC clock runs TAI
            | u8::from(l.time_traceable) << 4
            | u8::from(l.frequency_traceable) << 5;
        data[7] = flags;
        data[44..46].copy_from_slice(&l.utc_offset_s.unwrap_or(0).to_be_bytes());
        let (class, accuracy, variance) = announced_quality(&self.local);
        data[48] = class;
        data[49] = accuracy;
        data[50..52].copy_from_slice(&variance.to_be_bytes());
        data[63] = l.time_source;
    }

    /// A foreign Announce, before statime's BMCA sees it in `Auto`: its quality compared with ours
    /// becomes the same comparison with statime's fixed one (see the module docs); its real
    /// accuracy is kept for [`Self::status`].
    fn rewrite_foreign_quality(&mut self, data: &mut [u8]) {
        let theirs = (data[48], data[49], u16::from_be_bytes([data[50], data[51]]));
        let mut gm = [0u8; 8];
        gm.copy_from_slice(&data[53..61]);
        if self.foreign_accuracy.len() >= MAX_FOREIGN && !self.foreign_accuracy.contains_key(&gm) {
            self.foreign_accuracy.clear();
        }
        self.foreign_accuracy.insert(gm, theirs.1);
        let (class, accuracy, variance) = quality_for_statime(announced_quality(&self.local), theirs);
        data[48] = class;
        data[49] = accuracy;
        data[50..52].copy_from_slice(&variance.to_be_bytes());
    }
}

/// An Announce (IEEE 1588-2019 13.5, long enough to hold its grandmaster) from another clock.
fn is_foreign_announce(data: &[u8], ours: ClockIdentity) -> bool {
    data.len() >= 64 && data[0] & 0x0f == 0xB && data[20..28] != ours.0 && data[53..61] != ours.0
}

/// A statime action with its borrowed payload copied out (the port's buffer is reused).
enum Action {
    Event(Vec<u8>, TimestampContext),
    General(Vec<u8>),
    Timer(Timer, std::time::Duration),
    None,
}

fn own(action: PortAction<'_>) -> Action {
    match action {
        PortAction::SendEvent { context, data, .. } => Action::Event(data.to_vec(), context),
        PortAction::SendGeneral { data, .. } => Action::General(data.to_vec()),
        PortAction::ResetAnnounceTimer { duration } => Action::Timer(Timer::Announce, duration),
        PortAction::ResetSyncTimer { duration } => Action::Timer(Timer::Sync, duration),
        PortAction::ResetDelayRequestTimer { duration } => Action::Timer(Timer::DelayRequest, duration),
        PortAction::ResetAnnounceReceiptTimer { duration } => Action::Timer(Timer::AnnounceReceipt, duration),
        PortAction::ResetFilterUpdateTimer { duration } => Action::Timer(Timer::FilterUpdate, duration),
        // Transparent/boundary clocks forward TLVs; an ordinary slave has nowhere to.
        PortAction::ForwardTLV { .. } => Action::None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Phc, Steering};
    use crate::model::{model, Quirks, INTEL};
    use crate::sim::{SimConfig, SimModel, SimNic};
    use crate::timesource::VirtualTime;

    fn slave() -> (PtpPort<Arc<SimNic>>, Vec<PortOutput>) {
        let time = VirtualTime::new();
        let nic = Arc::new(SimNic::new(SimConfig::ideal(), time.clone()));
        let m = model(INTEL, SimModel::I82576.device_id()).unwrap();
        let phc = Phc::init(nic, m, Quirks::empty(), Steering::Hardware, time).unwrap();
        PtpPort::new(
            PtpConfig::new(ClockIdentity::from_mac([0, 0x1b, 0x21, 1, 2, 3])),
            Rc::new(RefCell::new(phc)),
        )
    }

    #[test]
    fn clock_identity_from_mac_reads_like_ptp4l() {
        let id = ClockIdentity::from_mac([0x00, 0x1b, 0x21, 0x12, 0x34, 0x56]);
        assert_eq!(id.to_string(), "001b21.fffe.123456");
    }

    #[test]
    fn starts_listening_with_its_timers() {
        let (s, out) = slave();
        assert_eq!(s.status().state, PortState::Listening);
        assert_eq!(s.status().grandmaster, ClockIdentity::from_mac([0, 0x1b, 0x21, 1, 2, 3]));
        let timers: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                PortOutput::ArmTimer { timer, .. } => Some(*timer),
                _ => None,
            })
            .collect();
        assert!(timers.contains(&Timer::AnnounceReceipt) && timers.contains(&Timer::Bmca), "{out:?}");
    }

    #[test]
    fn stray_stamps_and_garbage_are_ignored() {
        let (mut s, _) = slave();
        assert!(s.on_tx_timestamp(TxToken(7), Nanos(1)).is_empty(), "a stamp nobody asked for");
        for data in [&[][..], &[0x12][..], &[0x0b, 0x02, 0, 64][..], &[0xff; 200][..]] {
            assert!(s.on_general(data).is_empty());
            assert!(s.on_event(data, Nanos(5)).is_empty());
        }
        assert_eq!(s.status().state, PortState::Listening);
        assert!(s.on_timer(Timer::Sync).iter().all(|o| !matches!(o, PortOutput::SendEvent { .. })));
    }
}
