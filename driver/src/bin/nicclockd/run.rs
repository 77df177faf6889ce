//! The daemon: open the device and the page, then update at the configured rate until SIGTERM/
//! SIGINT (page STOPPED, exit 0) or device loss (page DEVICE_LOST, exit 69).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{error, info, warn};
use nicclock::lockfile::{LockDir, LockFile};
use nicclock::{Identity, PageOptions, Status, Writer, WriterError};
use nicclock_driver::device::{self, DeviceArg};
use nicclock_driver::discipline::{Discipline, DisciplineConfig, Step, Update, REJECT_LIMIT};
use nicclock_driver::measure::Host;
use nicclock_driver::ntpshm::{self, NtpShm};
use nicclock_driver::phc::{DeviceLost, Phc};
use nicclock_driver::pins::{check_pin, models_with_pins};
use nicclock_driver::pps::PpsConfig;
use nicclock_driver::reference::{Pins, PinsReport, PpsStep, PIN_POLL_NS};
use nicclock_driver::schedule::Schedule;
use nicclock_driver::servo::{Servo, ServoConfig, ServoKind};
use nicclock_driver::timesource::RealTime;
use nicclock_uio::Sysfs;

use crate::args::{RunArgs, UsageError};
use crate::chores::{removal_requested, Chores};
use crate::host::RealHost;
use crate::privileges;
use crate::stats_file::{push_decimal, push_fixed3, push_signed, push_thousandths, StatsFile};
use crate::wake::{Wake, Waker};
use crate::EXIT_DEVICE_GONE;

fn group_id(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(UsageError(format!(
            "--page-group {group:?}: no such group (give a group name or a numeric gid)"
        ))
        .into()),
    }
}

/// Takes the PCI device's lock, so that no second nicclockd drives the same NIC through another
/// backend (sysfs, UIO, VFIO). The simulator needs none.
pub(crate) fn lock_device(locks: &LockDir, device: &DeviceArg, sysfs: &Sysfs) -> Result<Option<LockFile>> {
    let Some(address) = device::pci_address(device, sysfs) else {
        return Ok(None);
    };
    match locks.try_lock(&format!("pci-{address}.lock")) {
        Ok(lock) => Ok(Some(lock)),
        Err(WriterError::Busy { pid, .. }) => Err(anyhow::anyhow!(
            "PCI device {address} is already driven by another nicclockd ({}); stop it first (two \
             servos on one clock would fight over it)",
            nicclock::lockfile::holder(pid)
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    // First, so that a SIGTERM during start-up is kept for the loop rather than killing us mid-way.
    let waker = Waker::new()?;
    let device_arg: &DeviceArg = args.device.as_ref().ok_or_else(|| {
        UsageError(
            "--device is required (vfio:<pci address>, uio:/dev/uioN, sysfs:<pci address> or sim)".into(),
        )
    })?;
    let ptp_options = crate::ptp::options(args)?;
    if let (DeviceArg::Sim(sim), None) = (device_arg, ptp_options) {
        if sim.ptp_master.is_some() {
            return Err(UsageError(format!(
                "--device sim:...ptp-master=N puts a PTP master on the simulated wire, which only a \
                 PTP port hears: add --reference ptp (or --ptp-role master|auto), or drop ptp-master \
                 (the reference is {})",
                args.reference
            ))
            .into());
        }
    }
    let group = args.page_group.as_deref().map(group_id).transpose()?;
    let run_as = args.user.as_deref().map(|u| privileges::resolve(u, args.group.as_deref())).transpose()?;
    let stats = args
        .stats_file
        .as_ref()
        .map(|p| {
            let new = !p.exists();
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open --stats-file {}", p.display()))?;
            if new {
                let extra = if ptp_options.is_some() { crate::ptp::stats_header() } else { String::new() };
                writeln!(f, "time_s,offset_ns,servo_state,freq_ppb,delay_ns,status,error_bound_ns{extra}")?;
            }
            Ok::<File, anyhow::Error>(f)
        })
        .transpose()?;

    let sysfs = Sysfs::new(&args.sysfs_root);
    let locks = LockDir::open(&args.lock_dir).map_err(|e| match e {
        e if !nix::unistd::geteuid().is_root() => {
            anyhow::anyhow!("{e}: run nicclockd as root (it maps PCI devices and locks them)")
        }
        e => e.into(),
    })?;
    let pps_in = args.reference.pps();
    if let (Some(out), Some(input)) = (args.pps_out, pps_in) {
        if out == input {
            return Err(UsageError(format!(
                "{out} cannot be both the PPS output (--pps-out) and the PPS input (--reference pps:{input}): \
                 give them different pins"
            ))
            .into());
        }
    }
    let _device_lock = lock_device(&locks, device_arg, &sysfs)?;
    let opened = device::open(device_arg, &sysfs, &args.vfio_container)?;
    // What the pins can do comes from the family table (the same entry the clock ops come from).
    let pin_caps = opened.model.spec().pins;
    let has_pins = pin_caps.sdps > 0;
    if (args.pps_out.is_some() || pps_in.is_some()) && !has_pins {
        let option = match (args.pps_out, pps_in) {
            (Some(_), _) => "--pps-out".to_string(),
            (None, sdp) => format!("--reference pps:{}", sdp.map_or(String::new(), |s| s.to_string())),
        };
        return Err(UsageError(format!(
            "{option}: the {} has no timing pins (SDPs with target times and aux timestamps); only the \
             {} have them",
            opened.model.name,
            models_with_pins()
        ))
        .into());
    }
    for (sdp, output, option) in
        [(args.pps_out, true, "--pps-out"), (pps_in, false, "--reference pps:")].into_iter()
    {
        if let Some(sdp) = sdp {
            check_pin(&pin_caps, sdp, output).map_err(|e| UsageError(format!("{option}{sdp}: {e}")))?;
        }
    }
    let steering = args.steer.resolve(opened.quirks);
    info!(
        "{}: Intel {} ({:04x}:{:04x}, subsystem {:04x}:{:04x}) via {}",
        opened.address,
        opened.model.name,
        opened.ids[0],
        opened.ids[1],
        opened.ids[2],
        opened.ids[3],
        opened.backend
    );
    match opened.quirk_source {
        Some(source) => info!("quirks {:?} ({source}); steering {steering}", opened.quirks),
        None => info!("no quirks; steering {steering}"),
    }
    if opened.backend == "vfio" {
        info!(
            "VFIO release requests (hot-unplug) {}",
            if opened.removal.is_some() { "watched" } else { "unavailable" }
        );
    }
    let phc = Phc::init(opened.regs.clone(), opened.model, opened.quirks, steering, RealTime::new())?;
    let caps = phc.capabilities();
    info!(
        "clock family {}: {}, latched by {}; rate LSB {:.4} ppb, max {} ppb; phase steps via {}",
        caps.family,
        caps.spec.counter,
        caps.spec.latch,
        caps.spec.rate_lsb_ppb,
        caps.spec.max_adj_ppb,
        caps.step
    );
    let mac = opened.mac();
    let identity = Identity {
        model: opened.model.name.into(),
        pci_address: opened.address.clone(),
        clock_id: Identity::eui64_from_mac(mac),
    };
    let page_name = args.page_name.clone().unwrap_or_else(|| opened.address.clone());
    let page = PageOptions {
        dir: args.page_dir.clone(),
        name: page_name,
        mode: args.page_mode,
        group,
        lock_dir: args.lock_dir.clone(),
    };
    let mut writer = Writer::create(&page, &identity)?;
    let (host, tai_source) = RealHost::new(args.reference.clock(), args.tai_offset);
    info!(
        "publishing in {} ({tai_source}, reference {}, counter {})",
        writer.path().display(),
        args.reference,
        host.counter_kind().name()
    );
    // This thread measures the NIC against the reference from here on (every reference kind).
    crate::realtime::prepare();
    if let Some(options) = ptp_options {
        return crate::ptp::run(crate::ptp::Started {
            args,
            options,
            opened,
            phc,
            writer: &mut writer,
            host,
            waker: &waker,
            stats,
            run_as,
        });
    }

    let servo = servo(args);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let config = DisciplineConfig {
        // A PPS reference gives the servo one sample a second, whatever the poll rate.
        interval_ns: if pps_in.is_some() { 1_000_000_000 } else { interval.as_nanos() as u64 },
        readings: args.readings as usize,
        lock_threshold_ns: args.lock_threshold,
        ..DisciplineConfig::default()
    };
    let mut discipline = Discipline::new(phc, servo, config);
    let mut pins = (args.pps_out.is_some() || pps_in.is_some()).then(|| {
        let pps = pps_in.map(|sdp| (sdp, PpsConfig::default()));
        Pins::start(discipline.phc().regs(), opened.model.family, args.pps_out, pps, host.reference_ns())
    });
    if let Some(sdp) = args.pps_out {
        info!("PPS output on {sdp} (target time 0, rising on each disciplined second)");
    }
    if let Some(sdp) = pps_in {
        info!("PPS input on {sdp} (aux timestamp 0); its seconds numbered by CLOCK_REALTIME");
    }
    let mut pin_schedule = Schedule::new(Duration::from_nanos(PIN_POLL_NS));

    if let Some((uid, gid)) = run_as {
        privileges::drop_to(uid, gid)?;
        info!("running as uid {uid} gid {gid} with no capabilities");
    }
    let start = Instant::now();
    let ntpshm = args
        .ntpshm
        .map(|unit| {
            NtpShm::open(unit, args.ntpshm_mode)
                .with_context(|| format!("cannot create NTP SHM segment {unit}"))
        })
        .transpose()?;
    if let Some(shm) = &ntpshm {
        info!(
            "NTP SHM unit {} (key {:#x}, mode {:o})",
            shm.unit,
            ntpshm::KEY_BASE + shm.unit as i32,
            args.ntpshm_mode
        );
    }
    let mut loop_ = Loop::new(&mut writer, stats, ntpshm);
    // systemd: READY=1 after the first published update; the watchdog and --duration (bounded by
    // the parser, MAX_DURATION_S; an end beyond what Instant holds means no end) in `chores`.
    let mut chores = Chores::new(start, args.duration);
    let mut ready = false;
    let mut schedule = Schedule::new(interval);
    let removal_fd = opened.removal.as_ref().map(|r| r.as_fd());
    loop {
        let due = start + schedule.due();
        let pin_due = pins.as_ref().map(|_| start + pin_schedule.due());
        let [ping, end] = chores.deadlines();
        let wake_at = [Some(due), pin_due, ping, end].into_iter().flatten().min().unwrap_or(due);
        if let Wake::Stop(signal) = waker.wait_until(wake_at, removal_fd)? {
            info!("{signal} received");
            break;
        }
        if let Some(exit) = removal_requested(&opened, &mut loop_) {
            return Ok(exit);
        }
        let now = Instant::now();
        if chores.tick(now) {
            break;
        }
        if let (Some(p), Some(pin_due)) = (pins.as_mut(), pin_due) {
            if now >= pin_due {
                match p.poll(&mut discipline, &host) {
                    Ok(report) => loop_.pins(&report, start, &mut ready),
                    Err(lost) => return Ok(loop_.lost(&opened.address, lost)),
                }
                pin_schedule.advance(start.elapsed());
            }
        }
        if now < due {
            continue;
        }
        if let Err(e) = loop_.writer.check_linked() {
            // Exit rather than publish where nobody can find it; a restart makes a new page.
            error!("{e}; exiting");
            return Ok(ExitCode::from(1));
        }
        // With a PPS reference the pin polls update the clock; this schedule only checks the page.
        if !pins.as_ref().is_some_and(Pins::is_reference) {
            match discipline.update(&host) {
                Ok(step) => loop_.step(step, start, &mut ready, None),
                Err(lost) => return Ok(loop_.lost(&opened.address, lost)),
            }
        }
        // A steady schedule; if we fell behind (suspend, overload), the missed ticks are skipped.
        schedule.advance(start.elapsed());
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    info!("stopping; {} marked STOPPED", writer.path().display());
    Ok(ExitCode::SUCCESS)
}

/// The servo the options ask for (the discipline's, also under a serving PTP port).
pub(crate) fn servo(args: &RunArgs) -> Servo {
    let servo_config = ServoConfig {
        step_threshold_ns: args.step_threshold * 1e9,
        first_step_threshold_ns: args.first_step_threshold * 1e9,
        max_frequency_ppb: args.max_frequency,
        ..ServoConfig::default()
    };
    match args.servo {
        ServoKind::Pi => Servo::pi(servo_config, args.kp, args.ki, 0.0),
        ServoKind::Linreg => Servo::linreg(servo_config, 0.0),
    }
}

/// One stats CSV line: `time_s,offset_ns,servo_state,freq_ppb,delay_ns,status,error_bound_ns`
/// then `extra` (the mode's columns), written digit by digit (see `stats_file::push_decimal`).
fn stats_line(update: &Update, elapsed: Duration, extra: Option<String>) -> String {
    let extra = extra.unwrap_or_default();
    let mut line = String::with_capacity(64 + extra.len());
    push_thousandths(&mut line, (elapsed.as_micros() as f64 / 1e3).round() as i64);
    line.push(',');
    push_signed(&mut line, update.measurement.offset_ns);
    line.push(',');
    push_decimal(&mut line, update.servo_state as u64);
    line.push(',');
    push_fixed3(&mut line, update.servo_ppb);
    line.push(',');
    push_decimal(&mut line, update.measurement.delay_ns);
    line.push(',');
    line.push_str(update.snapshot.status.name());
    line.push(',');
    push_decimal(&mut line, update.snapshot.error_bound_ns);
    line.push_str(&extra);
    line.push('\n');
    line
}

pub(crate) struct Loop<'a> {
    pub(crate) writer: &'a mut Writer,
    stats: Option<StatsFile>,
    status: Status,
    ntpshm: Option<NtpShm>,
    /// The update log line's first word ("phc"; "ptp" under PTP).
    pub(crate) log_prefix: &'static str,
    /// Appended to the next update's log line (PTP: the datapath's counters).
    pub(crate) extra_log: Option<String>,
    /// Appended to the next stats CSV line (PTP: its columns, see `ptp::stats_header`).
    pub(crate) extra_columns: Option<String>,
    /// At most one update log line per this (and one at each status change); zero: every update.
    pub(crate) log_interval: std::time::Duration,
    last_line: Option<Instant>,
}

impl<'a> Loop<'a> {
    pub(crate) fn new(writer: &'a mut Writer, stats: Option<File>, ntpshm: Option<NtpShm>) -> Self {
        Self {
            writer,
            stats: stats.map(StatsFile::new),
            status: Status::Unsynchronized,
            ntpshm,
            log_prefix: "phc",
            extra_log: None,
            extra_columns: None,
            log_interval: std::time::Duration::ZERO,
            last_line: None,
        }
    }

    /// Whether updates go to a stats CSV.
    pub(crate) fn has_stats(&self) -> bool {
        self.stats.is_some()
    }

    /// Whether the next update gets a log line (see `log_interval`).
    pub(crate) fn line_due(&self, now: Instant) -> bool {
        self.last_line.is_none_or(|t| now.duration_since(t) >= self.log_interval)
    }

    /// A discipline step: publish an update (READY=1 after the first), log a rejection.
    /// `system_ns`: the system clock at the NIC read when the measurement's reference is not it.
    pub(crate) fn step(&mut self, step: Step, start: Instant, ready: &mut bool, system_ns: Option<u64>) {
        match step {
            Step::Updated(update) => {
                if let Some(old) = update.new_normal_delay_from_ns {
                    warn!(
                        "measurement delays stayed far above the usual {old} ns for {REJECT_LIMIT} updates; \
                         taking {} ns as the new normal",
                        update.measurement.delay_ns
                    );
                }
                self.publish(&update, start, system_ns);
                if !*ready {
                    *ready = true;
                    let _ = sd_notify::notify(&[
                        sd_notify::NotifyState::Ready,
                        sd_notify::NotifyState::Status("publishing"),
                    ]);
                }
            }
            Step::Rejected { delay_ns, typical_ns, in_a_row } => {
                let msg = format!(
                    "measurement disturbed (delay {delay_ns} ns, typically {typical_ns} ns): not used"
                );
                // Once per run of rejections; the rest at debug level, then the filter starts over.
                if in_a_row == 1 {
                    warn!("{msg}");
                } else {
                    log::debug!("{msg} ({in_a_row} in a row)");
                }
            }
        }
    }

    /// The device stopped answering: the page says DEVICE_LOST; the exit code says whether a
    /// restart can help.
    pub(crate) fn lost(&mut self, address: &str, lost: DeviceLost) -> ExitCode {
        self.writer.device_lost(lost.last_read);
        error!("{address}: {lost}; {} now says DEVICE_LOST", self.writer.path().display());
        // Gone: restarting cannot help until it is back (udev starts us then). Present but
        // silent: a restart re-initialises it, so a plain failure (systemd restarts).
        ExitCode::from(if lost.gone() { EXIT_DEVICE_GONE } else { 1 })
    }

    /// One pin poll: the PPS output's edges and the PPS input's update, holdover or rejection.
    fn pins(&mut self, report: &PinsReport, start: Instant, ready: &mut bool) {
        if let Some(out) = &report.out {
            if let Some(edge) = out.missed {
                warn!(
                    "PPS output: the edge at {} ns passed before its target fired; re-armed",
                    edge.disc_ns.0
                );
            }
            if let Some(edge) = out.fired {
                log::debug!(
                    "PPS output: {} edge at {} ns",
                    if edge.rising { "rising" } else { "falling" },
                    edge.disc_ns.0
                );
            }
        }
        match &report.pps {
            Some(PpsStep::Used { step, system_ns }) => {
                self.step(step.clone(), start, ready, Some(*system_ns))
            }
            Some(PpsStep::Outlier { offset_ns, typical_ns, in_a_row }) => {
                warn!("PPS input: offset {offset_ns} ns far from the usual {typical_ns} ns: not used ({in_a_row} in a row)")
            }
            Some(PpsStep::Duplicate) => warn!("PPS input: a second pulse within one second: not used"),
            Some(PpsStep::Missed { in_a_row, update }) => {
                warn!("PPS input: {in_a_row} pulse(s) missed in a row; {}", update.status.name());
                self.publish(update, start, None);
            }
            Some(PpsStep::FirstEdge) => {
                info!("PPS input: first edge (not used: leading or trailing is not known yet)")
            }
            Some(PpsStep::Waiting | PpsStep::TrailingEdge) | None => {}
        }
    }

    fn publish(&mut self, update: &Update, start: Instant, system_ns: Option<u64>) {
        nicclock_driver::publish::publish(self.writer, update);
        if let Some(m) = update.step_mismatch {
            warn!(
                "a TIMADJ step of {} ns moved the NIC by {} ns: its TIMADJ encoding is not the model table's; steps now go to the timecounter",
                m.asked_ns, m.moved_ns
            );
        }
        if let Some(d) = update.discontinuity {
            warn!("a TIMINCA write moved the clock by {} ns: this NIC's rate cannot be steered in hardware; use --steer sw (or auto)", d.jump_ns);
        }
        let now = Instant::now();
        let mut due = self.line_due(now);
        if update.status != self.status {
            info!("status {} -> {}", self.status.name(), update.status.name());
            self.status = update.status;
            due = true;
        }
        if due {
            self.last_line = Some(now);
            match self.extra_log.take() {
                Some(extra) => info!("{} {} {extra}", self.log_prefix, update.log_line()),
                None => info!("{} {}", self.log_prefix, update.log_line()),
            }
        }
        if let (Some(shm), Status::Locked) = (self.ntpshm.as_mut(), update.status) {
            // The NIC's time and the system clock's at the measurement, both as UTC.
            let s = &update.snapshot;
            let utc = s.tai_utc_offset_s as i128 * 1_000_000_000;
            let bound_s = (s.error_bound_ns.max(1) as f64) / 1e9;
            shm.publish(&ntpshm::Sample {
                clock_utc_ns: s.anchor_tai_ns as i128 - utc,
                receive_utc_ns: system_ns.unwrap_or(update.measurement.reference_ns) as i128 - utc,
                leap: 0,
                precision: bound_s.log2().floor() as i32,
            });
        }
        if let Some(f) = self.stats.as_mut() {
            let line = stats_line(update, now.saturating_duration_since(start), self.extra_columns.take());
            // Kept and written at most once a second (and at the end): one write for ~10 lines.
            if let Err(e) = f.push(&line, now) {
                warn!("stats file: {e}; no more stats lines");
                self.stats = None;
            }
        }
    }
}
