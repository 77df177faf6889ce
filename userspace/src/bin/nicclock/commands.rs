//! The CLI's subcommands over the nicclock reader library.
//! Each returns the process exit code or an error (exit 1) whose message says what to do.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use nicclock::{list_pages, Clock, EventKind, EventWait, ReferenceKind, Snapshot, Status};
use serde::Serialize;

use crate::format;
use crate::output::{self, outln};
use crate::{Cli, Command, TimeFormat};

pub fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::List => list(cli),
        Command::Now { utc, format } => now(cli, *utc, *format),
        Command::Status { json } => status(cli, *json),
        Command::Watch { count, interval } => watch(cli, *count, *interval),
        Command::Events { count, timeout, history, json } => events(cli, *count, *timeout, *history, *json),
        Command::Compare { seconds, rate, against, count, interval, json } => match against {
            Some(name) => crate::compare::against(cli, name, *count, *interval, *json),
            None => compare(cli, *seconds, *rate),
        },
        Command::Wait { status, max_error, timeout } => match (status, max_error) {
            // With --max-error, --status can only be LOCKED (checked at parse time).
            (_, Some(max_error)) => crate::wait::wait_synced(cli, *max_error, *timeout),
            (Some(status), None) => crate::wait::wait(cli, *status, *timeout),
            (None, None) => bail!("wait needs --status or --max-error"),
        },
        Command::Convert { monotonic, monotonic_raw, realtime, tsc, utc, format } => {
            let when = match (monotonic, monotonic_raw, realtime, tsc) {
                (Some(t), ..) => nicclock::Past::Monotonic(*t),
                (_, Some(t), ..) => nicclock::Past::MonotonicRaw(*t),
                (_, _, Some(t), _) => nicclock::Past::Realtime(*t),
                (.., Some(c)) => nicclock::Past::Counter(*c),
                _ => bail!("convert needs --monotonic, --monotonic-raw, --realtime or --tsc"),
            };
            crate::convert::convert(cli, when, *utc, *format)
        }
        Command::Stats { file, lock_threshold, json } => crate::stats::stats(file, *lock_threshold, *json),
        Command::Plot { file, live, output, lock_threshold, size } => {
            let input = match (file, live) {
                (Some(file), _) => crate::plot::Input::File(file),
                (None, Some(seconds)) => crate::plot::Input::Live { seconds: *seconds },
                (None, None) => bail!("plot needs FILE or --live SECONDS"),
            };
            crate::plot::plot(cli, input, output, *lock_threshold, *size)
        }
        Command::Metrics { listen } => {
            crate::metrics::serve(&cli.dir, cli.page.as_deref(), cli.max_age, *listen)
        }
    }
}

/// Opens the page named by --page, or the only page in --dir.
pub(crate) fn open(cli: &Cli) -> Result<Clock> {
    let name = match &cli.page {
        Some(name) => name.clone(),
        None => {
            let pages = match list_pages(&cli.dir) {
                Err(nicclock::Error::Io { err, .. }) if err.kind() == std::io::ErrorKind::NotFound => {
                    vec![]
                }
                other => other?,
            };
            match pages.as_slice() {
                [] => bail!(
                    "no time page in {}: nicclockd is probably not running (start it, or point --dir at \
                     its page directory)",
                    cli.dir.display()
                ),
                [(name, _)] => name.clone(),
                many => bail!(
                    "{} pages in {}: choose one with --page ({})",
                    many.len(),
                    cli.dir.display(),
                    many.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let mut clock = Clock::open_in(&cli.dir, &name)?;
    if let Some(max_age) = cli.max_age {
        clock.set_max_age(max_age);
    }
    Ok(clock)
}

fn list(cli: &Cli) -> Result<ExitCode> {
    let pages = list_pages(&cli.dir)?;
    if pages.is_empty() {
        outln!("no time pages in {} (is nicclockd running?)", cli.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    for (name, path) in pages {
        match Clock::open_path(&path) {
            Ok(clock) => {
                let id = clock.identity();
                let state = match clock.status() {
                    Ok(s) => s.name().to_string(),
                    Err(e) => format!("unusable: {e}"),
                };
                outln!("{name}\t{state}\t{} {}\twriter pid {}", id.model, id.pci_address, clock.writer_pid());
            }
            Err(e) => outln!("{name}\tunreadable: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now(cli: &Cli, utc: bool, fmt: TimeFormat) -> Result<ExitCode> {
    let clock = open(cli)?;
    let now = if utc { clock.now_utc()? } else { clock.now()? };
    if now.status == Status::Unsynchronized {
        bail!(
            "{} is UNSYNCHRONIZED: its clock is not disciplined to any reference yet, so it has no time \
             to give (nicclockd is starting or has no reference; `nicclock wait --status LOCKED` waits for it)",
            clock.path().display()
        );
    }
    let time = match fmt {
        TimeFormat::Ns => now.time_ns.to_string(),
        TimeFormat::Rfc3339 => format::rfc3339(now.time_ns, utc),
    };
    outln!("{time} {} {}", format::bound(now.error_bound_ns()), now.status.name());
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct StatusJson {
    page: String,
    model: String,
    pci_address: String,
    clock_id: String,
    writer_pid: u32,
    status: String,
    stale: bool,
    counter: String,
    tai_ns: Option<u64>,
    error_bound_ns: Option<u64>,
    estimated_error_ns: Option<u64>,
    est_rate_error_ppb: Option<f64>,
    epoch: u32,
    age_ns: Option<u64>,
    max_age_ns: u64,
    update_interval_ns: u64,
    update_count: u64,
    tai_utc_offset_s: i32,
    leap: String,
    servo_offset_ns: i64,
    servo_freq_ppb: f64,
    servo_delay_ns: u64,
    servo_state: u32,
    reference: String,
    gm_identity: Option<String>,
    steps_removed: u32,
    port_state: String,
    ptp_flags: u32,
    utc_offset_source: String,
    gm_clock_accuracy: u32,
    gm_accuracy_ns: Option<u64>,
}

/// The `reference` line: the kind; under PTP the grandmaster as ptp4l prints it, steps removed,
/// port state, the announced accuracy and flags.
fn reference_line(r: &nicclock::Reference) -> String {
    if r.kind != ReferenceKind::Ptp {
        let kind = r.kind.name().replace('_', " ");
        // A PTP port serving this clock (nicclockd --ptp-role master|auto) names its state.
        if r.port_state == 0 {
            return kind;
        }
        return format!(
            "{kind}; ptp port {}, grandmaster {}",
            nicclock::abi::ptp_port_state_name(r.port_state),
            r.gm_identity_text()
        );
    }
    let accuracy = match r.gm_accuracy_ns {
        0 => String::new(),
        u64::MAX => ", accuracy unknown".into(),
        ns => format!(", accuracy {ns} ns"),
    };
    format!(
        "ptp grandmaster {} steps removed {} port {}{accuracy}, flags {:#04x}",
        r.gm_identity_text(),
        r.steps_removed,
        nicclock::abi::ptp_port_state_name(r.port_state),
        r.flags
    )
}

fn status(cli: &Cli, json: bool) -> Result<ExitCode> {
    let clock = open(cli)?;
    let snap = clock.snapshot()?;
    let id = clock.identity();
    let now = clock.now();
    let age = clock.age_ns(&snap).filter(|_| snap.update_count > 0);
    let r = &snap.reference;
    let report = StatusJson {
        page: clock.path().display().to_string(),
        model: id.model,
        pci_address: id.pci_address,
        clock_id: id.clock_id.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
        writer_pid: clock.writer_pid(),
        status: snap.status.name().into(),
        stale: matches!(now, Err(nicclock::Error::Stale { .. })),
        counter: snap.counter_kind.name().into(),
        tai_ns: now.as_ref().ok().map(|n| n.time_ns),
        error_bound_ns: now.as_ref().ok().map(|n| n.error_bound_ns()),
        estimated_error_ns: now.as_ref().ok().filter(|n| n.epoch != 0).map(|n| n.estimated_error_ns()),
        est_rate_error_ppb: Some(snap.estimate.rate_error_ppb())
            .filter(|_| snap.estimate.error_ns != u64::MAX),
        epoch: snap.epoch,
        age_ns: age,
        max_age_ns: clock.max_age_ns(&snap),
        update_interval_ns: snap.update_interval_ns,
        update_count: snap.update_count,
        tai_utc_offset_s: snap.tai_utc_offset_s,
        leap: format!("{:?}", snap.leap).to_lowercase(),
        servo_offset_ns: snap.servo.offset_ns,
        servo_freq_ppb: snap.servo.freq_ppt as f64 / 1000.0,
        servo_delay_ns: snap.servo.delay_ns,
        servo_state: snap.servo.state,
        reference: r.kind.name().into(),
        gm_identity: (r.kind == ReferenceKind::Ptp).then(|| r.gm_identity_text()),
        steps_removed: r.steps_removed,
        port_state: nicclock::abi::ptp_port_state_name(r.port_state).into(),
        ptp_flags: r.flags,
        utc_offset_source: r.utc_offset_source.name().into(),
        gm_clock_accuracy: r.gm_clock_accuracy,
        gm_accuracy_ns: Some(r.gm_accuracy_ns).filter(|&ns| ns != u64::MAX),
    };
    if json {
        outln!("{}", serde_json::to_string(&report).context("encoding status as JSON")?);
    } else {
        let r = &report;
        outln!("page        {}", r.page);
        outln!(
            "clock       {} at {} (id {}), writer pid {}",
            r.model,
            r.pci_address,
            r.clock_id,
            r.writer_pid
        );
        outln!("status      {}{}", r.status, if r.stale { " (STALE)" } else { "" });
        match &now {
            Ok(n) => outln!(
                "time        {} {}",
                format::rfc3339(n.time_ns, false),
                format::bound(n.error_bound_ns())
            ),
            Err(e) => outln!("time        unavailable: {e}"),
        }
        outln!(
            "updates     {} every {:.3} s, last {} ago (stale after {:.3} s)",
            r.update_count,
            r.update_interval_ns as f64 / 1e9,
            age.map_or("-".into(), |a| format!("{:.3} s", a as f64 / 1e9)),
            r.max_age_ns as f64 / 1e9
        );
        outln!(
            "servo       offset {} s{} freq {} delay {}",
            r.servo_offset_ns,
            r.servo_state,
            format::ppb(snap.servo.freq_ppt),
            r.servo_delay_ns
        );
        outln!("counter     {}", r.counter);
        outln!("tai-utc     {} s, leap {} (from {})", r.tai_utc_offset_s, r.leap, r.utc_offset_source);
        outln!("reference   {}", reference_line(&snap.reference));
    }
    // Like `now`: success only when the page gives a usable time.
    let usable = matches!(&now, Ok(n) if n.status != Status::Unsynchronized);
    Ok(if usable { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn watch_line(clock: &Clock) -> Result<String> {
    let snap: Snapshot = clock.snapshot()?;
    let now = clock.now()?;
    Ok(format!(
        "{} {:<14} offset {:>8} ns freq {} error {}",
        format::rfc3339(now.time_ns, false),
        now.status.name(),
        snap.servo.offset_ns,
        format::ppb(snap.servo.freq_ppt),
        format::bound(now.error_bound_ns())
    ))
}

fn watch(cli: &Cli, count: Option<u64>, interval: std::time::Duration) -> Result<ExitCode> {
    let clock = open(cli)?;
    let mut last_ok = true;
    let mut n = 0;
    let start = Instant::now();
    while count.is_none_or(|c| n < c) {
        match watch_line(&clock) {
            Ok(line) => {
                outln!("{line}");
                last_ok = true;
            }
            Err(e) => {
                outln!("{:<14} {e:#}", "UNAVAILABLE");
                last_ok = false;
            }
        }
        n += 1;
        if count.is_some_and(|c| n >= c) {
            break;
        }
        // Keep a steady cadence regardless of how long the read took.
        let next = start + interval * n as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(if last_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn events(
    cli: &Cli,
    count: Option<u64>,
    timeout: Option<std::time::Duration>,
    history: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut clock = open(cli)?;
    if history {
        clock.rewind_events();
    }
    let mut seen = 0;
    while count.is_none_or(|c| seen < c) {
        match clock.wait_event(timeout)? {
            EventWait::Event(e) if json => {
                outln!(
                    "{}",
                    serde_json::to_string(&EventJson::from(&e)).context("encoding an event as JSON")?
                );
                seen += 1;
            }
            EventWait::Missed(n) if json => outln!("{{\"missed\":{n}}}"),
            EventWait::Event(e) => {
                outln!("{}", format::event(&e));
                seen += 1;
                if e.kind == EventKind::Stopped && count.is_none() {
                    outln!(
                        "nicclockd stopped; page status {}",
                        clock.status().map_or("unknown", Status::name)
                    );
                }
            }
            EventWait::Missed(n) => {
                outln!("missed {n} events (ring overflow: this reader fell behind)")
            }
            EventWait::TimedOut => bail!(
                "no event within {:.1} s (received {seen} of {})",
                timeout.unwrap_or_default().as_secs_f64(),
                count.map_or("unlimited".into(), |c| c.to_string())
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `events --json`: one event.
#[derive(Serialize)]
struct EventJson {
    seq: u64,
    kind: &'static str,
    urgency: &'static str,
    tai_ns: u64,
    magnitude: i64,
    detail: u32,
    epoch: u32,
}

impl From<&nicclock::Event> for EventJson {
    fn from(e: &nicclock::Event) -> Self {
        Self {
            seq: e.seq,
            kind: e.kind.name(),
            urgency: e.urgency.name(),
            tai_ns: e.tai_ns,
            magnitude: e.magnitude,
            detail: e.detail,
            epoch: e.epoch,
        }
    }
}

/// CLOCK_REALTIME in ns.
fn realtime_ns() -> u64 {
    nicclock::counter::sample_clock(nicclock::CounterKind::MonotonicRaw, libc::CLOCK_REALTIME, 1).clock_ns
}

/// Page time against CLOCK_REALTIME + the page's TAI−UTC offset, each reading bracketed by two
/// system-clock reads (the tightest of three tries); a reading is outside when |difference| >
/// bound + half the bracket.
fn compare(cli: &Cli, seconds: std::time::Duration, rate: u32) -> Result<ExitCode> {
    let clock = open(cli)?;
    let tai_utc = clock.snapshot()?.tai_utc_offset_s as i128 * 1_000_000_000;
    let period = std::time::Duration::from_secs(1) / rate;
    let start = Instant::now();
    let (mut reads, mut outside, mut errors) = (0u64, 0u64, 0u64);
    let (mut sum, mut sum2, mut max_abs, mut max_bound, mut max_bracket) = (0f64, 0f64, 0i64, 0u64, 0u64);
    while start.elapsed() < seconds {
        // The tightest of three brackets: a reader preempted between its reads says nothing.
        let (r1, now, r2) = (0..3)
            .map(|_| {
                let r1 = realtime_ns();
                let now = clock.now();
                (r1, now, realtime_ns())
            })
            .min_by_key(|(r1, now, r2)| (now.is_err(), r2 - r1))
            .expect("three tries");
        max_bracket = max_bracket.max(r2 - r1);
        match now {
            Ok(now) => {
                let diff = (now.time_ns as i128 - (r1 + (r2 - r1) / 2) as i128 - tai_utc) as i64;
                if diff.unsigned_abs() > now.error_bound_ns().saturating_add((r2 - r1) / 2) {
                    outside += 1;
                }
                reads += 1;
                sum += diff as f64;
                sum2 += (diff as f64).powi(2);
                max_abs = max_abs.max(diff.abs());
                max_bound = max_bound.max(now.error_bound_ns());
            }
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    output::warn(format_args!("{e}"));
                }
            }
        }
        std::thread::sleep(period);
    }
    let n = reads.max(1) as f64;
    outln!(
        "compare reads {reads} outside_bound {outside} errors {errors} mean_offset_ns {:.0} rms_offset_ns {:.0} max_abs_offset_ns {max_abs} max_bound_ns {max_bound} max_bracket_ns {max_bracket}",
        sum / n,
        (sum2 / n).sqrt()
    );
    Ok(if outside == 0 && errors == 0 && reads > 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
