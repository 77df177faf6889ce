//! The PTP port on the wire: a [`NetPort`] (frames and hardware stamps) driving a [`PtpPort`]
//! (statime; slave, master or BMCA), with its timers in a table. Pure: no threads, no sleeping.
//!
//! The caller drives it: [`PtpRunner::poll`] at [`PtpRunner::next_deadline`] and whenever the ring
//! may hold frames (the daemon in real time, the simulator in virtual time; `now_ns` is the
//! caller's monotonic clock, the same one every call).

use std::collections::BTreeMap;

use nicclock_uio::RegisterAccess;

use super::clock::SharedPhc;
use super::pair_wake::SyncPairs;
use super::port::{ActiveRole, LocalClock, PortOutput, PtpConfig, PtpPort, PtpStatus, Timer, TxToken};
use crate::net::port::{NetPort, PortCounters, Received, TxStampOutcome};
use crate::net::{DescMemory, DropCounters};

/// What happened in one [`PtpRunner::poll`] that the page or the log cares about.
#[derive(Debug, Clone, PartialEq)]
pub enum RunnerEvent {
    /// The port state or the reference (grandmaster, UTC offset, leap flags) changed.
    StatusChanged(PtpStatus),
    /// The slave stepped the clock by this many ns (the page posts a STEP event).
    Stepped { ns: i64 },
    /// The master's Announces stopped: the page goes HOLDOVER. `last`: the status while following it.
    MasterLost { last: PtpStatus },
    /// A Delay_Req's TX stamp never came (counted in [`PortCounters::tx_stamps_lost`]).
    TxStampLost,
    /// A frame could not be sent (ring full, or not a PTP message); the reason is logged.
    SendFailed,
    /// The port's role changed (after the [`RunnerEvent::StatusChanged`] that says so): from now on
    /// statime steers the clock if `to.ptp_steers()`, the caller's discipline otherwise.
    RoleChanged { from: ActiveRole, to: ActiveRole, status: PtpStatus },
}

/// The NIC port and the PTP port, driven by the caller (see the module docs).
pub struct PtpRunner<R: RegisterAccess + Clone, M: DescMemory> {
    regs: R,
    port: NetPort<M>,
    slave: PtpPort<R>,
    role: ActiveRole,
    /// Each armed timer's deadline, caller's ns.
    timers: BTreeMap<Timer, u64>,
    /// The event message whose TX stamp the port awaits.
    pending: Option<TxToken>,
    rx: Vec<Received>,
    send_failures: u64,
    next_link_check_ns: u64,
    next_latch_check_ns: u64,
    /// The Sync exchanges taken in, for the loop's wake-ups (`pair_wake`).
    pairs: SyncPairs,
}

/// Rounds of due timers one poll handles (a timer re-armed as due again waits for the next poll).
const MAX_TIMER_ROUNDS: usize = 4;

/// How often the link state and speed are read (the i210's stamp compensation depends on it).
const LINK_CHECK_NS: u64 = 1_000_000_000;

/// How often the 82576's RX latch is checked for being stuck (a TSYNCRXCTL read, an exit under
/// QEMU TCG, so not at every wake-up): a stuck latch is cleared within
/// [`crate::net::port::STUCK_RX_LATCH_NS`] + this.
pub const LATCH_CHECK_NS: u64 = 250_000_000;

impl<R: RegisterAccess + Clone, M: DescMemory> PtpRunner<R, M> {
    /// A runner over a port already brought up, steering `phc` through statime; the slave starts
    /// LISTENING at `now_ns`. One per daemon run (the slave leaks a small statime instance).
    pub fn new(port: NetPort<M>, config: PtpConfig, phc: SharedPhc<R>, now_ns: u64) -> Self {
        let regs = phc.borrow().regs().clone();
        let (slave, first) = PtpPort::new(config, phc);
        let mut runner = Self {
            role: slave.active_role(),
            regs,
            port,
            slave,
            timers: BTreeMap::new(),
            pending: None,
            rx: Vec::new(),
            send_failures: 0,
            next_link_check_ns: now_ns.saturating_add(LINK_CHECK_NS),
            next_latch_check_ns: now_ns,
            pairs: SyncPairs::default(),
        };
        let mut ignored = Vec::new();
        runner.apply(first, now_ns, &mut ignored);
        runner
    }

    /// Handles everything due at `now_ns`: received frames (with their stamps), the awaited TX
    /// stamp, a stuck RX latch, expired timers. Returns what changed.
    pub fn poll(&mut self, now_ns: u64) -> Vec<RunnerEvent> {
        let mut events = Vec::new();
        let mut rx = std::mem::take(&mut self.rx);
        self.port.poll_rx(&self.regs, &mut rx);
        for r in rx.drain(..) {
            let out = match r {
                Received::Event { data, rx_raw } => {
                    self.pairs.note(&data);
                    let ns = {
                        let phc = self.slave.phc().borrow();
                        self.port.rx_stamp_ns(rx_raw, |lo, hi| phc.stamp_to_ns(lo, hi))
                    };
                    self.slave.on_event(&data, ns)
                }
                Received::General { data } => {
                    self.pairs.note(&data);
                    self.slave.on_general(&data)
                }
            };
            self.apply(out, now_ns, &mut events);
        }
        self.rx = rx;
        if now_ns >= self.next_latch_check_ns {
            self.port.check_rx_latch(&self.regs, now_ns);
            self.next_latch_check_ns = now_ns.saturating_add(LATCH_CHECK_NS);
        }
        if now_ns >= self.next_link_check_ns {
            self.port.check_link(&self.regs);
            self.next_link_check_ns = now_ns.saturating_add(LINK_CHECK_NS);
        }
        self.poll_tx(now_ns, &mut events);
        // The timers due now, earliest first. A handler may arm a timer due at once (statime's
        // first Delay_Req on entering SLAVE): handled in the next round, a bounded number of
        // rounds (never a loop on a timer that keeps re-arming itself at zero).
        for _ in 0..MAX_TIMER_ROUNDS {
            let mut due: Vec<(u64, Timer)> =
                self.timers.iter().filter(|(_, &at)| at <= now_ns).map(|(&t, &at)| (at, t)).collect();
            if due.is_empty() {
                break;
            }
            due.sort_unstable();
            for (at, timer) in due {
                if self.timers.get(&timer) != Some(&at) {
                    continue; // re-armed by an earlier handler: its next round
                }
                self.timers.remove(&timer);
                let out = self.slave.on_timer(timer);
                self.apply(out, now_ns, &mut events);
            }
        }
        events
    }

    fn poll_tx(&mut self, now_ns: u64, events: &mut Vec<RunnerEvent>) {
        let Some(outcome) = self.port.poll_tx_stamp(&self.regs, now_ns) else { return };
        let Some(token) = self.pending.take() else { return };
        match outcome {
            TxStampOutcome::Stamped(raw) => {
                let ns = {
                    let phc = self.slave.phc().borrow();
                    self.port.tx_stamp_ns(raw, |lo, hi| phc.stamp_to_ns(lo, hi))
                };
                let out = self.slave.on_tx_timestamp(token, ns);
                self.apply(out, now_ns, events);
            }
            TxStampOutcome::Lost => {
                self.slave.on_tx_timestamp_lost(token);
                events.push(RunnerEvent::TxStampLost);
            }
        }
    }

    fn apply(&mut self, outputs: Vec<PortOutput>, now_ns: u64, events: &mut Vec<RunnerEvent>) {
        for o in outputs {
            match o {
                PortOutput::SendEvent { data, token } => {
                    if self.port.abandon_tx_stamp(&self.regs) {
                        if let Some(old) = self.pending.take() {
                            self.slave.on_tx_timestamp_lost(old);
                        }
                        events.push(RunnerEvent::TxStampLost);
                    }
                    match self.port.send_event(&self.regs, &data) {
                        Ok(()) => {
                            self.pending = Some(token);
                            // A stamp latched at the tail write is read at once.
                            self.poll_tx(now_ns, events);
                        }
                        Err(e) => {
                            log::warn!("ptp: cannot send an event message: {e}");
                            self.slave.on_tx_timestamp_lost(token);
                            self.send_failures += 1;
                            events.push(RunnerEvent::SendFailed);
                        }
                    }
                }
                PortOutput::SendGeneral { data } => {
                    if let Err(e) = self.port.send_general(&self.regs, &data) {
                        log::warn!("ptp: cannot send a general message: {e}");
                        self.send_failures += 1;
                        events.push(RunnerEvent::SendFailed);
                    }
                }
                PortOutput::ArmTimer { timer, after } => {
                    let after = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX);
                    self.timers.insert(timer, now_ns.saturating_add(after));
                }
                PortOutput::StatusChanged(s) => {
                    events.push(RunnerEvent::StatusChanged(s));
                    let to = ActiveRole::of(s.state);
                    if to != self.role {
                        events.push(RunnerEvent::RoleChanged { from: self.role, to, status: s });
                        self.role = to;
                    }
                }
                PortOutput::Stepped { ns } => events.push(RunnerEvent::Stepped { ns }),
                PortOutput::MasterLost { last } => events.push(RunnerEvent::MasterLost { last }),
            }
        }
    }

    /// The earliest armed timer (caller's ns). Frames are not announced by it: poll the ring too
    /// (on its interrupt, or often).
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.values().copied().min()
    }

    /// The earliest armed timer among those `which` picks (caller's ns).
    pub fn next_deadline_of(&self, which: impl Fn(Timer) -> bool) -> Option<u64> {
        self.timers.iter().filter(|(&t, _)| which(t)).map(|(_, &at)| at).min()
    }

    /// The port's state and reference now.
    pub fn status(&self) -> PtpStatus {
        self.slave.status()
    }

    /// The Sync exchanges taken in from the wire so far.
    pub fn sync_pairs(&self) -> &SyncPairs {
        &self.pairs
    }

    /// Whether a sent event message's TX stamp is still awaited (read at the next poll).
    pub fn tx_stamp_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// What the port does now: statime steers the clock while it is [`ActiveRole::Slave`].
    pub fn active_role(&self) -> ActiveRole {
        self.role
    }

    /// Our own clock's state, for our Announce while we are the grandmaster.
    pub fn set_local(&mut self, local: LocalClock) {
        self.slave.set_local(local);
    }

    /// Delay_Reqs dropped by the per-peer rate limit while serving.
    pub fn delay_reqs_limited(&self) -> u64 {
        self.slave.delay_reqs_limited()
    }

    /// The NIC clock the port steers while SLAVE.
    pub fn phc(&self) -> &SharedPhc<R> {
        self.slave.phc()
    }

    /// Received frames dropped by reason.
    pub fn drops(&self) -> &DropCounters {
        self.port.counters()
    }

    /// The port's stamp, domain and ring counters.
    pub fn port_counters(&self) -> &PortCounters {
        self.port.port_counters()
    }

    /// Measurements the slave's outlier gate dropped.
    pub fn outliers_dropped(&self) -> u64 {
        self.slave.outliers_dropped()
    }

    /// Frames that could not be sent.
    pub fn send_failures(&self) -> u64 {
        self.send_failures
    }

    pub fn port(&self) -> &NetPort<M> {
        &self.port
    }

    pub fn port_mut(&mut self) -> &mut NetPort<M> {
        &mut self.port
    }

    /// The register seam the port uses.
    pub fn regs(&self) -> &R {
        &self.regs
    }
}
