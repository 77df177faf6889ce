//! `--reference ptp`: nicclockd as a PTP slave on its own NIC port. statime (through
//! [`PtpRunner`]) steers the clock from the wire's hardware stamps; the page is published from
//! PHC-vs-counter measurements ([`PtpPage`]), never steered from them.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{error, info, warn};
use nicclock::Writer;
use nicclock_driver::device::OpenedClock;
use nicclock_driver::discipline::{Step, Update};
use nicclock_driver::measure::Host;
use nicclock_driver::model::{Family, Quirks};
use nicclock_driver::net::port::{NetPort, PortConfig, StampUnlock, Transport, RX_MEM_BYTES, TX_MEM_BYTES};
use nicclock_driver::net::DescMemory;
use nicclock_driver::ntpshm::NtpShm;
use nicclock_driver::phc::{DeviceLost, Phc};
use nicclock_driver::ptp::live_master::LiveMaster;
use nicclock_driver::ptp::page::{PtpPage, PtpPageConfig};
use nicclock_driver::ptp::pair_wake::{PairWake, RingWait};
use nicclock_driver::ptp::{ClockIdentity, PtpConfig, PtpRole, PtpRunner, RunnerEvent, Timer};
use nicclock_driver::sim::HostMemory;
use nicclock_uio::RegisterAccess;

use crate::args::{PtpRoleArg, PtpTransport, PtpWakeArg, ReferenceArg, RunArgs, UsageError};
use crate::chores::{removal_requested, Chores};
use crate::host::RealHost;
use crate::page_cadence::PageCadence;
use crate::privileges;
use crate::ring_wake::RingWake;
use crate::run::Loop;
use crate::stats_file::{push_decimal, push_signed};
use crate::wake::{Wake, Waker};
use crate::wake_tally::{Phase, WakeTally};

/// The PTP options, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtpOptions {
    /// Slave: statime steers (`--reference ptp`); master/auto: the port serves the clock the
    /// Discipline steers to `--reference realtime|tai` (see `ptp_serve`).
    pub role: PtpRole,
    pub priority1: u8,
    pub priority2: u8,
    pub transport: Transport,
    pub domain: u8,
    pub log_sync_interval: i8,
    pub log_announce_interval: i8,
    pub log_min_delay_req_interval: i8,
    pub delay_asymmetry_ns: i64,
    pub first_step_threshold_ns: Option<i64>,
    pub step_threshold_ns: Option<i64>,
    pub max_asymmetry_ns: Option<u64>,
    /// `--ptp-wake exchange`: read the ring once per Sync exchange (`ptp::pair_wake`).
    pub wake_per_exchange: bool,
}

/// The `--ptp-*` options checked against each other and `--reference` (usage errors, exit 2).
/// `None` when the reference is not PTP.
pub fn options(args: &RunArgs) -> Result<Option<PtpOptions>, UsageError> {
    let given: Vec<&str> = [
        (args.ptp_transport.is_some(), "--ptp-transport"),
        (args.ptp_domain.is_some(), "--ptp-domain"),
        (args.ptp_ip.is_some(), "--ptp-ip"),
        (args.ptp_log_sync_interval.is_some(), "--ptp-log-sync-interval"),
        (args.ptp_log_announce_interval.is_some(), "--ptp-log-announce-interval"),
        (args.ptp_log_min_delay_req_interval.is_some(), "--ptp-log-min-delay-req-interval"),
        (args.ptp_delay_asymmetry.is_some(), "--ptp-delay-asymmetry"),
        (args.ptp_max_asymmetry.is_some(), "--ptp-max-asymmetry"),
        (args.ptp_first_step_threshold.is_some(), "--ptp-first-step-threshold"),
        (args.ptp_step_threshold.is_some(), "--ptp-step-threshold"),
        (args.ptp_priority1.is_some(), "--ptp-priority1"),
        (args.ptp_priority2.is_some(), "--ptp-priority2"),
        (args.ptp_wake.is_some(), "--ptp-wake"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let role = match (args.reference, args.ptp_role) {
        (ReferenceArg::Ptp, None | Some(PtpRoleArg::Slave)) => PtpRole::Slave,
        (ReferenceArg::Ptp, Some(role)) => {
            return Err(UsageError(format!(
                "--ptp-role {} with --reference ptp: a port that may serve needs the reference it \
                 serves from: use --reference realtime or tai with --ptp-role {0} (the NIC clock is \
                 disciplined to it while the port is not a slave)",
                if role == PtpRoleArg::Master { "master" } else { "auto" }
            )))
        }
        (ReferenceArg::Clock(_), Some(PtpRoleArg::Master)) => PtpRole::Master,
        (ReferenceArg::Clock(_), Some(PtpRoleArg::Auto)) => PtpRole::Auto,
        (reference, Some(PtpRoleArg::Slave)) => {
            return Err(UsageError(format!(
                "--ptp-role slave: the slave's reference is the PTP master: use --reference ptp \
                 (the reference is {reference})"
            )))
        }
        (reference @ ReferenceArg::Pps(_), Some(_)) => {
            return Err(UsageError(format!(
                "--ptp-role with --reference {reference} is not supported yet: a PTP master serves \
                 a clock disciplined to --reference realtime or tai"
            )))
        }
        (reference, None) => {
            if let Some(first) = given.first() {
                return Err(UsageError(format!(
                    "{first} is a PTP option: it needs --reference ptp, or --ptp-role master|auto \
                     (the reference is {reference})"
                )));
            }
            return Ok(None);
        }
    };
    if role != PtpRole::Slave && args.ptp_wake.is_some() {
        return Err(UsageError(
            "--ptp-wake chooses how a slave-only port (--reference ptp) is woken: a port that may \
             serve answers Delay_Reqs as they come, so drop --ptp-wake or use --reference ptp"
                .into(),
        ));
    }
    if role == PtpRole::Slave {
        if let Some(first) = given.iter().find(|g| g.starts_with("--ptp-priority")) {
            return Err(UsageError(format!(
                "{first} orders the ports that may be master: it needs --ptp-role master or auto \
                 (a slave-only port never masters)"
            )));
        }
    }
    let transport = match (args.ptp_transport.unwrap_or(PtpTransport::L2), args.ptp_ip) {
        (PtpTransport::L2, None) => Transport::L2,
        (PtpTransport::L2, Some(ip)) => {
            return Err(UsageError(format!(
                "--ptp-ip {ip}: PTP over l2 (Ethernet) has no IP address; add --ptp-transport udp4 \
                 for PTP over UDP/IPv4, or drop --ptp-ip"
            )))
        }
        (PtpTransport::Udp4, None) => {
            return Err(UsageError(
                "--ptp-transport udp4 needs --ptp-ip A.B.C.D: this port has no kernel IP stack (no \
                 DHCP, no ARP) to take an address from; give the address it may use on its subnet"
                    .into(),
            ))
        }
        (PtpTransport::Udp4, Some(ip)) => {
            if ip.is_multicast() || ip.is_unspecified() || ip.is_broadcast() || ip.is_loopback() {
                return Err(UsageError(format!(
                    "--ptp-ip {ip} is not a unicast host address: give this port's own address"
                )));
            }
            Transport::Udp4 { src: ip }
        }
    };
    if let Some(sdp) = args.pps_out {
        return Err(UsageError(format!(
            "--pps-out {sdp} with a PTP port is not supported yet: run without --pps-out"
        )));
    }
    Ok(Some(PtpOptions {
        role,
        priority1: args.ptp_priority1.unwrap_or(128),
        priority2: args.ptp_priority2.unwrap_or(128),
        transport,
        domain: args.ptp_domain.unwrap_or(0),
        log_sync_interval: args.ptp_log_sync_interval.unwrap_or(0),
        log_announce_interval: args.ptp_log_announce_interval.unwrap_or(1),
        log_min_delay_req_interval: args.ptp_log_min_delay_req_interval.unwrap_or(0),
        delay_asymmetry_ns: args.ptp_delay_asymmetry.unwrap_or(0),
        max_asymmetry_ns: args.ptp_max_asymmetry,
        first_step_threshold_ns: args.ptp_first_step_threshold,
        step_threshold_ns: args.ptp_step_threshold,
        wake_per_exchange: args.ptp_wake == Some(PtpWakeArg::Exchange),
    }))
}

/// The stats CSV's columns after the common ones, under PTP.
pub fn stats_header() -> String {
    let mut h = String::from(
        ",port_state,rx_accepted,rx_dropped,wrong_domain,event_unstamped,rx_latch_cleared,tx_stamps,tx_stamps_lost,delay_req_limited",
    );
    for (name, _) in nicclock_driver::net::DropCounters::default().iter() {
        h.push_str(",drop_");
        h.push_str(name);
    }
    // While statime steers: how far the clock ran from the previous mapping by this update
    // (`PtpPage::mapping_miss_ns`); empty while the discipline steers.
    h.push_str(",mapping_miss_ns");
    h
}

pub(crate) type Regs = std::sync::Arc<dyn RegisterAccess + Send + Sync>;

/// What `run` hands over: everything opened before the mode's own set-up.
pub struct Started<'a> {
    pub args: &'a RunArgs,
    pub options: PtpOptions,
    pub opened: OpenedClock,
    pub phc: Phc<Regs>,
    pub writer: &'a mut Writer,
    pub host: RealHost,
    pub waker: &'a Waker,
    pub stats: Option<File>,
    pub run_as: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
}

/// Runs the PTP slave until SIGTERM/SIGINT, `--duration` or device loss.
pub fn run(s: Started<'_>) -> Result<ExitCode> {
    let opened = &s.opened;
    let family = opened.model.family;
    let cfg = PortConfig {
        family,
        transport: s.options.transport,
        mac: opened.mac(),
        domain: s.options.domain,
        stamp_unlock: StampUnlock::for_quirks(opened.quirks),
    };
    match &opened.dma {
        Some(dma) => {
            // Before privileges are dropped: pagemap and mlock need root.
            let alloc = |len, what| {
                dma.alloc(len).with_context(|| {
                    format!(
                        "--reference ptp: cannot get DMA memory for the {what} ring of {}",
                        opened.address
                    )
                })
            };
            let rx = alloc(RX_MEM_BYTES, "RX")?;
            let tx = alloc(TX_MEM_BYTES, "TX")?;
            info!("DMA memory for the rings: {} bytes ({:?})", RX_MEM_BYTES + TX_MEM_BYTES, dma);
            let port = NetPort::new(rx, tx, cfg).map_err(|e| UsageError(format!("--reference ptp: {e}")))?;
            run_port(s, port)
        }
        None => match &opened.sim {
            Some(nic) => {
                // The simulated NIC's datapath reads the rings from host memory attached to it.
                // Frames arrive only from a simulated master on its wire (`sim:ptp-master=N`,
                // in real time; tests and the benchmark join simulated NICs with a SimLink).
                let rx = HostMemory::new(RX_MEM_BYTES, 0x1000_0000);
                let tx = HostMemory::new(TX_MEM_BYTES, 0x2000_0000);
                nic.attach_memory(rx.clone());
                nic.attach_memory(tx.clone());
                match &opened.sim_master {
                    Some(master) => {
                        let spec = master.spec();
                        info!(
                            "sim: grandmaster {} on the simulated wire: {} Syncs/s, its clock \
                             CLOCK_REALTIME as UTC (TAI = it + 37 s), L2, E2E, two-step, {} ns each way",
                            LiveMaster::identity(),
                            spec.syncs_per_second(),
                            spec.path_delay_ns
                        );
                        if s.options.transport != Transport::L2 || s.options.domain != spec.domain {
                            warn!(
                                "sim: the simulated master speaks PTP over l2 in domain {}: with \
                                 these --ptp-transport/--ptp-domain the slave will not hear it",
                                spec.domain
                            );
                        }
                    }
                    None => warn!(
                        "sim: the simulated NIC is on no wire: no PTP frame will arrive (a slave \
                         stays LISTENING, the page UNSYNCHRONIZED; sim:ptp-master=8 puts a \
                         master on it)"
                    ),
                }
                let port =
                    NetPort::new(rx, tx, cfg).map_err(|e| UsageError(format!("--reference ptp: {e}")))?;
                run_port(s, port)
            }
            None => Err(UsageError(format!(
                "--reference ptp needs DMA memory for the NIC's rings and {} ({}) has none: use \
                 vfio:<pci address>, or uio:/dev/uioN / sysfs:<pci address> of a device whose PCI \
                 parent sysfs shows",
                opened.address, opened.backend
            ))
            .into()),
        },
    }
}

fn run_port<M: DescMemory>(s: Started<'_>, mut port: NetPort<M>) -> Result<ExitCode> {
    let Started { args, options, opened, phc, writer, host, waker, stats, run_as } = s;
    let regs = opened.regs.clone();
    let mac = opened.mac();
    let mut ring_wake = RingWake::open(&opened, &*regs);
    if let Err(e) = port.bring_up(&*regs) {
        return Err(anyhow::anyhow!("{}: cannot bring the PTP port up: {e}", opened.address));
    }
    let identity = ClockIdentity::from_mac(mac);
    info!(
        "ptp: port {identity}-1 up ({:?}, {}, domain {}, link {}); role {}, E2E, two-step",
        opened.model.family,
        match options.transport {
            Transport::L2 => "l2".to_string(),
            Transport::Udp4 { src } => format!("udp4 from {src}"),
        },
        options.domain,
        if port.link_up() { format!("{:?}", port.link_speed()) } else { "down".to_string() },
        match options.role {
            PtpRole::Slave => "slave only".to_string(),
            role => format!("{role} (priority1 {} priority2 {})", options.priority1, options.priority2),
        }
    );
    let mut config = PtpConfig::new(identity);
    config.role = options.role;
    config.priority1 = options.priority1;
    config.priority2 = options.priority2;
    config.domain = options.domain;
    config.log_sync_interval = options.log_sync_interval;
    config.log_announce_interval = options.log_announce_interval;
    config.log_min_delay_req_interval = options.log_min_delay_req_interval;
    config.delay_asymmetry_ns = options.delay_asymmetry_ns;
    config.first_step_threshold_ns =
        options.first_step_threshold_ns.unwrap_or(config.first_step_threshold_ns);
    config.step_threshold_ns = options.step_threshold_ns.unwrap_or(config.step_threshold_ns);
    config.seed = u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);

    if let Some((uid, gid)) = run_as {
        privileges::drop_to(uid, gid)?;
        info!("running as uid {uid} gid {gid} with no capabilities");
    }
    let ntpshm = args
        .ntpshm
        .map(|unit| {
            NtpShm::open(unit, args.ntpshm_mode)
                .with_context(|| format!("cannot create NTP SHM segment {unit}"))
        })
        .transpose()?;

    if options.role != PtpRole::Slave {
        let serving = crate::ptp_serve::Serving {
            args,
            opened: &opened,
            writer,
            host,
            waker,
            stats,
            ntpshm,
            ring_wake,
        };
        return crate::ptp_serve::run(serving, port, config, phc);
    }
    let start = Instant::now();
    let now_ns = || start.elapsed().as_nanos() as u64;
    let phc = Rc::new(RefCell::new(phc));
    let mut runner = PtpRunner::new(port, config, phc.clone(), now_ns());
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let page_config = PtpPageConfig {
        interval_ns: interval.as_nanos() as u64,
        readings: args.readings as usize,
        lock_threshold_ns: args.lock_threshold,
        max_asymmetry_ns: options.max_asymmetry_ns,
        ..PtpPageConfig::default()
    };
    let mut page = PtpPage::new(page_config, identity, runner.status());
    let mut loop_ = Loop::new(writer, stats, ntpshm);
    loop_.log_prefix = "ptp";
    // One update line a second (and one at each status change), as ptp4l's summary_interval 0;
    // the counters are formatted only for a line that is written.
    loop_.log_interval = Duration::from_secs(1);
    let mut chores = Chores::new(start, args.duration);
    let mut ready = false;
    let mut cadence = PageCadence::new(interval);
    let removal_fd = opened.removal.as_ref().map(|r| r.as_fd());
    let mut link_check = Every::new(LINK_CHECK_INTERVAL);
    let mut tally = WakeTally::new(start);
    // `--ptp-wake exchange`: the ring read at the master's exchanges' times instead of at each
    // frame (ptp::pair_wake): only behind an interrupt to mask, and only where nothing but the
    // awaited Sync can take the RX stamp meanwhile (stamps in the packet buffer, 82580 and later;
    // QEMU's igb, whose latch takes the TSYNCRXCFG type alone). Silicon's 82576 latch takes any
    // event message (another slave's Delay_Req): there each frame wakes the loop.
    let eligible = ring_wake.has_interrupt()
        && (opened.model.family != Family::E82576
            || opened.quirks.contains(Quirks::RX_STAMP_MESSAGE_FILTERED));
    let defer = options.wake_per_exchange && eligible;
    if options.wake_per_exchange && !eligible {
        warn!(
            "--ptp-wake exchange: not on this device ({}): each frame wakes the daemon",
            if ring_wake.has_interrupt() {
                "its 82576 RX stamp latch takes any event message while a Sync waits"
            } else {
                "no interrupt to mask"
            }
        );
    }
    if defer {
        info!(
            "ptp: the ring is read once per Sync exchange once their period is learnt (--ptp-wake exchange)"
        );
    }
    let mut pair_wake = PairWake::new(defer);
    let mut ring_wait = RingWait::Interrupt;
    let exit = loop {
        tally.sleeping(Instant::now());
        let due = cadence.due().unwrap_or(start);
        let ptp_due = runner.next_deadline().map(|d| start + Duration::from_nanos(d));
        let ring = ring_wake.poll_at();
        let look = match ring_wait {
            RingWait::Until(at) => Some(start + Duration::from_nanos(at)),
            RingWait::Interrupt => None,
        };
        // A TX stamp not yet latched when its frame was sent (silicon takes microseconds; QEMU
        // latches it at the tail write) is read soon, not at the next pair's look.
        let tx_look = (look.is_some() && runner.tx_stamp_pending()).then(|| Instant::now() + TX_LOOK);
        // statime's bookkeeping timers (the BMCA's, the Announce receipt's) wait for a look due
        // within TIMER_RIDE of them: a wake-up saved, a lost master seen that much later at most.
        // The others keep their time. The Delay_Req's is random: sent at the looks, every slave's
        // would follow the Sync by the same few ms, a burst at the master and in the switches
        // between. The filter's update ends a frequency steer: late, the steer overshoots.
        let ptp_due = match look {
            Some(look) => {
                let own_wake = |at: u64| look > start + Duration::from_nanos(at) + TIMER_RIDE;
                let rides = |t: Timer| matches!(t, Timer::Bmca | Timer::AnnounceReceipt);
                let own = runner.next_deadline_of(|t| !rides(t));
                let others = runner.next_deadline_of(rides).filter(|&at| own_wake(at));
                own.into_iter().chain(others).min().map(|d| start + Duration::from_nanos(d))
            }
            None => ptp_due,
        };
        let [ping, end] = chores.deadlines();
        let wake_at =
            [Some(due), ptp_due, ring, look, tx_look, ping, end].into_iter().flatten().min().unwrap_or(due);
        let ring_fd: Option<BorrowedFd<'_>> = ring_wake.fd();
        let mut frames = false;
        let woken = waker.wait_until_any(wake_at, &[removal_fd, ring_fd])?;
        tally.awake(Instant::now());
        match woken {
            Wake::Stop(signal) => {
                info!("{signal} received");
                break ExitCode::SUCCESS;
            }
            Wake::Ready(1) => {
                ring_wake.on_ready(&*regs);
                frames = true;
            }
            _ => {}
        }
        tally.mark(Phase::Interrupt, Instant::now());
        let now = Instant::now();
        let looked = !frames && look.is_some_and(|at| now >= at);
        if let Some(line) = tally.woke(now, frames, looked) {
            info!("ptp: {line}");
        }
        // The release request's eventfd is read only when ppoll says it is readable (it is first
        // in the set, so it wins over the ring): one failed read less per wake-up.
        if woken == Wake::Ready(0) {
            if let Some(exit) = removal_requested(&opened, &mut loop_) {
                return Ok(exit);
            }
        }
        if chores.tick(now) {
            break ExitCode::SUCCESS;
        }
        tally.mark(Phase::Chores, Instant::now());
        let before = port_work(&runner);
        let exchanges = runner.sync_pairs().completed();
        for event in runner.poll(now_ns()) {
            log_event(&event);
            page.on_event(&event);
        }
        let after = port_work(&runner);
        tally.found(after.0 - before.0, after.1 - before.1);
        let pairs = runner.sync_pairs();
        let exchange = pairs.completed() > exchanges;
        let wait = pair_wake.observe(
            now_ns(),
            pairs.completed(),
            pairs.sync_waiting(),
            runner.active_role().ptp_steers(),
        );
        match (ring_wait, wait) {
            (RingWait::Interrupt, RingWait::Until(_)) => ring_wake.mask_frames(&*regs),
            (RingWait::Until(_), RingWait::Interrupt) => ring_wake.unmask_frames(&*regs),
            _ => {}
        }
        ring_wait = wait;
        tally.pairs(pair_wake.counters());
        tally.mark(Phase::Port, Instant::now());
        if !cadence.update_due(now, exchange) {
            continue;
        }
        // The page's link check (an fstat) once a second, not at every update: under QEMU TCG
        // each syscall costs; an unlinked page ends the daemon at most a second later.
        if link_check.due(now) {
            if let Err(e) = loop_.writer.check_linked() {
                error!("{e}; exiting");
                break ExitCode::from(1);
            }
        }
        tally.mark(Phase::Chores, Instant::now());
        match publish_measured(&mut loop_, &runner, &mut page, &phc, &host, start, &mut ready) {
            Ok(measuring) => tally.mark_page(measuring, Instant::now()),
            Err(lost) => return Ok(loop_.lost(&opened.address, lost)),
        }
        cadence.updated(now, exchange);
    };
    shut_down(&mut ring_wake, &*regs, &mut runner, &loop_);
    Ok(exit)
}

/// Frames the port has taken in (accepted or dropped) and TX stamps it has read, so far.
fn port_work<M: DescMemory>(runner: &PtpRunner<Regs, M>) -> (u64, u64) {
    let d = runner.drops();
    (d.accepted + d.total_dropped(), runner.port_counters().tx_stamps)
}

/// How soon a deferred loop looks again for a TX stamp its send did not find latched.
const TX_LOOK: Duration = Duration::from_millis(1);

/// How late statime's BMCA and Announce-receipt timers may run to share a deferred loop's look at
/// the ring (a period at 8 Sync/s and its slack).
const TIMER_RIDE: Duration = Duration::from_millis(150);

/// How often the PTP loop checks that its page is still linked under its name.
const LINK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A chore done at most once per interval: due at the first call, then once `interval` has passed.
struct Every {
    interval: Duration,
    last: Option<Instant>,
}

impl Every {
    fn new(interval: Duration) -> Self {
        Self { interval, last: None }
    }

    /// True (and restarts the interval) when the chore is due at `now`.
    fn due(&mut self, now: Instant) -> bool {
        let due = self.last.is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// One page update while statime steers (the slave, or a serving port while SLAVE): measure the
/// clock against the counter, describe it by the port's status, publish it with the port's
/// counters in the log line and the stats CSV. Returns how long the measurement and the page's
/// update took (the rest is publishing: page, stats, log), for the wake-up tally.
pub(crate) fn publish_measured<M: DescMemory>(
    loop_: &mut Loop<'_>,
    runner: &PtpRunner<Regs, M>,
    page: &mut PtpPage,
    phc: &Rc<RefCell<Phc<Regs>>>,
    host: &RealHost,
    start: Instant,
    ready: &mut bool,
) -> Result<Duration, DeviceLost> {
    let began = Instant::now();
    let u = page.update(&mut phc.borrow_mut(), host, runner.status())?;
    let measured = began.elapsed();
    loop_.extra_columns = loop_.has_stats().then(|| stats_columns(runner, &u, page.mapping_miss_ns()));
    loop_.extra_log = loop_.line_due(Instant::now()).then(|| counters_text(runner));
    // The NTP SHM receive time is the system clock's (UTC by the host's TAI−UTC); `publish`
    // takes it back to UTC with the page's (the master's) offset.
    let shift_s = i64::from(u.snapshot.tai_utc_offset_s) - i64::from(host.tai_utc_offset_s());
    let system_ns = u.measurement.reference_ns.saturating_add_signed(shift_s * 1_000_000_000);
    loop_.step(Step::Updated(Box::new(u)), start, ready, Some(system_ns));
    Ok(measured)
}

/// The end of a PTP loop: the interrupt released and the NIC's causes masked before the queues go
/// down, then the final counters.
pub(crate) fn shut_down<M: DescMemory>(
    ring_wake: &mut RingWake,
    regs: &dyn RegisterAccess,
    runner: &mut PtpRunner<Regs, M>,
    loop_: &Loop<'_>,
) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    ring_wake.close(regs);
    if let Err(e) = runner.port_mut().tear_down(regs) {
        warn!("ptp: tearing the port down: {e}");
    }
    info!("ptp: final counters: {}", counters_text(runner));
    info!("stopping; {} marked STOPPED", loop_.writer.path().display());
}

pub(crate) fn log_event(e: &RunnerEvent) {
    match e {
        RunnerEvent::StatusChanged(s) => info!(
            "ptp: port {} grandmaster {} steps removed {} utc offset {}",
            s.state,
            s.grandmaster,
            s.steps_removed,
            s.utc_offset_s.map_or("unknown".to_string(), |o| format!("{o} s (valid)"))
        ),
        RunnerEvent::Stepped { ns } => info!("ptp: clock stepped by {ns} ns"),
        RunnerEvent::MasterLost { last } => warn!("ptp: master {} lost; page in HOLDOVER", last.grandmaster),
        RunnerEvent::TxStampLost => warn!("ptp: a Delay_Req's TX stamp never came (counted)"),
        RunnerEvent::SendFailed => {}
        RunnerEvent::RoleChanged { from, to, status } => {
            info!("ptp: role {from:?} -> {to:?} (port {})", status.state)
        }
    }
}

/// The counters, linuxptp-log style: `rx 120 drop 3 (not_ptp 3) unstamped 0 tx_lost 0 ...`, then
/// the raw exchanges' mean path delay and the lucky-exchange shift.
pub(crate) fn counters_text<M: DescMemory>(runner: &PtpRunner<Regs, M>) -> String {
    let d = runner.drops();
    let p = runner.port_counters();
    let reasons: Vec<String> = d.iter().filter(|(_, n)| *n > 0).map(|(r, n)| format!("{r} {n}")).collect();
    // The raw exchanges' mean path delay and the filter's lucky-exchange shift (ptp::filter_latency).
    let raw = runner.status().raw_offsets.unwrap_or_default();
    format!(
        "rx {} drop {}{} domain {} unstamped {} latch_cleared {} tx_lost {} req_limited {} raw_delay {} lucky_shift {}",
        d.accepted,
        d.total_dropped(),
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
        p.wrong_domain,
        p.event_unstamped,
        p.rx_latch_cleared,
        p.tx_stamps_lost,
        runner.delay_reqs_limited(),
        raw.mean_delay_ns,
        raw.latency_shift_ns,
    )
}

pub(crate) fn stats_columns<M: DescMemory>(
    runner: &PtpRunner<Regs, M>,
    u: &Update,
    mapping_miss_ns: Option<i64>,
) -> String {
    let d = runner.drops();
    let p = runner.port_counters();
    // One buffer, the counters written digit by digit: at 10 updates a second, `format!` per
    // column was 40 % of a page update's instructions (core::fmt's machinery per number).
    let mut line = String::with_capacity(160);
    let counters = [
        u64::from(u.snapshot.reference.port_state),
        d.accepted,
        d.total_dropped(),
        p.wrong_domain,
        p.event_unstamped,
        p.rx_latch_cleared,
        p.tx_stamps,
        p.tx_stamps_lost,
        runner.delay_reqs_limited(),
    ];
    for n in counters.into_iter().chain(d.iter().map(|(_, n)| n)) {
        line.push(',');
        push_decimal(&mut line, n);
    }
    line.push(',');
    if let Some(miss) = mapping_miss_ns {
        push_signed(&mut line, miss);
    }
    line
}
