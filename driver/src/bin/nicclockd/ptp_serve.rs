//! `--ptp-role master|auto`: the PTP port serves the NIC clock that the Discipline steers to
//! `--reference realtime|tai`; in `auto`, while the BMCA makes the port a slave, statime steers.
//!
//! One steerer at a time ([`ClockOwner`]): the Discipline steers in MASTER/PASSIVE/LISTENING,
//! statime in SLAVE, never both. A role change logs a line and, once the page describes the new
//! role (that round's update), posts STATUS_CHANGED on it:
//! magnitude the new port state (linuxptp numbering, 6 MASTER, 9 SLAVE), detail
//! `ROLE_EVENT_FLAG | the old port state`.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use log::{error, info};
use nicclock::{EventKind, Reference, ReferenceKind, Status, Urgency, UtcOffsetSource, Writer};
use nicclock_driver::device::OpenedClock;
use nicclock_driver::discipline::{Discipline, DisciplineConfig, Step};
use nicclock_driver::measure::Host;
use nicclock_driver::net::port::NetPort;
use nicclock_driver::net::DescMemory;
use nicclock_driver::ntpshm::NtpShm;
use nicclock_driver::phc::Phc;
use nicclock_driver::ptp::owner::{set_rx_stamp_for, ClockOwner};
use nicclock_driver::ptp::page::{port_state_number, PtpPage, PtpPageConfig};
use nicclock_driver::ptp::quality::{host_time_properties, TimeProperties};
use nicclock_driver::ptp::{ActiveRole, LocalClock, PtpConfig, PtpRunner, PtpStatus, RunnerEvent};
use nicclock_driver::schedule::Schedule;
use nicclock_driver::timesource::RealTime;

use crate::args::RunArgs;
use crate::chores::{removal_requested, Chores};
use crate::host::{kernel_time, RealHost};
use crate::ptp::{counters_text, log_event, publish_measured, shut_down, stats_columns, Regs};
use crate::ring_wake::RingWake;
use crate::run::Loop;
use crate::wake::{Wake, Waker};

/// Set in a role change's STATUS_CHANGED detail (a page status change has the old status there).
pub const ROLE_EVENT_FLAG: u32 = 0x8000_0000;

/// What the serving loop needs beside the port.
pub struct Serving<'a> {
    pub args: &'a RunArgs,
    pub opened: &'a OpenedClock,
    pub writer: &'a mut Writer,
    pub host: RealHost,
    pub waker: &'a Waker,
    pub stats: Option<File>,
    pub ntpshm: Option<NtpShm>,
    pub ring_wake: RingWake,
}

/// The page's reference identity while the Discipline steers: the system clock, with the port's
/// state and our identity (we are the grandmaster while MASTER).
fn serving_reference(status: &PtpStatus, utc_valid: bool) -> Reference {
    Reference {
        kind: ReferenceKind::SystemClock,
        gm_identity: status.grandmaster.0,
        steps_removed: u32::from(status.steps_removed),
        port_state: port_state_number(status.state),
        utc_offset_source: if utc_valid { UtcOffsetSource::Host } else { UtcOffsetSource::Unknown },
        ..Reference::default()
    }
}

/// Runs the serving port until SIGTERM/SIGINT, `--duration` or device loss.
pub fn run<M: DescMemory>(
    s: Serving<'_>,
    port: NetPort<M>,
    config: PtpConfig,
    phc: Phc<Regs>,
) -> Result<ExitCode> {
    let Serving { args, opened, writer, host, waker, stats, ntpshm, mut ring_wake } = s;
    let regs = opened.regs.clone();
    // The Discipline's idle handle (see the module docs): made now, before anything steers.
    let idle = Phc::init(regs.clone(), opened.model, opened.quirks, phc.steering(), RealTime::new())?;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let dconfig = DisciplineConfig {
        interval_ns: interval.as_nanos() as u64,
        readings: args.readings as usize,
        lock_threshold_ns: args.lock_threshold,
        ..DisciplineConfig::default()
    };
    let mut owner = ClockOwner::new(Discipline::new(idle, crate::run::servo(args), dconfig));
    // The host's time properties (the kernel's, re-read at every update: a leap second is
    // announced on its day), for our Announce.
    let properties =
        || host_time_properties(kernel_time().unwrap_or_default(), args.tai_offset, host.tai_utc_offset_s());
    let utc_valid = properties().utc_offset_s.is_some();
    let identity = config.identity;

    let start = Instant::now();
    let now_ns = || start.elapsed().as_nanos() as u64;
    let phc = Rc::new(RefCell::new(phc));
    let mut runner = PtpRunner::new(port, config, phc.clone(), now_ns());
    set_rx_stamp_for(&*regs, runner.active_role());
    owner.discipline_mut().set_reference(serving_reference(&runner.status(), utc_valid));
    let page_config = PtpPageConfig {
        interval_ns: interval.as_nanos() as u64,
        readings: args.readings as usize,
        lock_threshold_ns: args.lock_threshold,
        max_asymmetry_ns: args.ptp_max_asymmetry,
        ..PtpPageConfig::default()
    };
    let mut page = PtpPage::new(page_config, identity, runner.status());
    let mut loop_ = Loop::new(writer, stats, ntpshm);
    let mut chores = Chores::new(start, args.duration);
    let mut ready = false;
    let mut schedule = Schedule::new(interval);
    let removal_fd = opened.removal.as_ref().map(|r| r.as_fd());
    let mut locked_bound_ns = None;
    runner.set_local(local_clock(locked_bound_ns, properties()));
    let mut role_event = None;
    let exit = loop {
        let due = start + schedule.due();
        let ptp_due = runner.next_deadline().map(|d| start + Duration::from_nanos(d));
        let ring = ring_wake.poll_at();
        let [ping, end] = chores.deadlines();
        let wake_at = [Some(due), ptp_due, ring, ping, end].into_iter().flatten().min().unwrap_or(due);
        let ring_fd: Option<BorrowedFd<'_>> = ring_wake.fd();
        match waker.wait_until_any(wake_at, &[removal_fd, ring_fd])? {
            Wake::Stop(signal) => {
                info!("{signal} received");
                break ExitCode::SUCCESS;
            }
            Wake::Ready(1) => ring_wake.on_ready(&*regs),
            _ => {}
        }
        if let Some(exit) = removal_requested(opened, &mut loop_) {
            return Ok(exit);
        }
        let now = Instant::now();
        if chores.tick(now) {
            break ExitCode::SUCCESS;
        }
        for event in runner.poll(now_ns()) {
            log_event(&event);
            page.on_event(&event);
            match &event {
                RunnerEvent::RoleChanged { from, to, status } => {
                    set_rx_stamp_for(&*regs, *to);
                    info!(
                        "ptp: {} steers the clock now (role {from:?} -> {to:?})",
                        if to.ptp_steers() { "the PTP port" } else { "the discipline" }
                    );
                    // Posted after this round's page update: a reader woken by it finds the
                    // page already describing the new role.
                    role_event = Some((i64::from(port_state_number(status.state)), page_state_of(*from)));
                }
                RunnerEvent::StatusChanged(status) if !runner.active_role().ptp_steers() => {
                    owner.discipline_mut().set_reference(serving_reference(status, utc_valid));
                }
                _ => {}
            }
        }
        if now < due && role_event.is_none() {
            continue;
        }
        if let Err(e) = loop_.writer.check_linked() {
            error!("{e}; exiting");
            break ExitCode::from(1);
        }
        if let Some(step) = owner.update(runner.active_role(), &phc, &host) {
            match step {
                Ok(step) => {
                    if let Step::Updated(u) = &step {
                        locked_bound_ns = (u.status == Status::Locked).then_some(u.snapshot.error_bound_ns);
                        runner.set_local(local_clock(locked_bound_ns, properties()));
                        loop_.extra_columns = Some(stats_columns(&runner, u, None));
                    }
                    loop_.extra_log = Some(counters_text(&runner));
                    loop_.step(step, start, &mut ready, None);
                }
                Err(lost) => return Ok(loop_.lost(&opened.address, lost)),
            }
        } else {
            // SLAVE: statime steers, the page is measured as under --reference ptp.
            let measured = publish_measured(&mut loop_, &runner, &mut page, &phc, &host, start, &mut ready);
            if let Err(lost) = measured {
                return Ok(loop_.lost(&opened.address, lost));
            }
        }
        if let Some((state, old)) = role_event.take() {
            loop_.writer.post(EventKind::StatusChanged, Urgency::Notice, state, ROLE_EVENT_FLAG | old, 0);
        }
        schedule.advance(start.elapsed());
    };
    shut_down(&mut ring_wake, &*regs, &mut runner, &loop_);
    Ok(exit)
}

/// Our clock as our Announce describes it: the discipline's bound while LOCKED, the host's time
/// properties.
fn local_clock(locked_bound_ns: Option<u64>, properties: TimeProperties) -> LocalClock {
    LocalClock { locked_bound_ns, properties }
}

/// A role's usual port state number, for the event's "old state".
fn page_state_of(role: ActiveRole) -> u32 {
    match role {
        ActiveRole::Listening => 4,
        ActiveRole::Master => 6,
        ActiveRole::Passive => 7,
        ActiveRole::Slave => 9,
    }
}
