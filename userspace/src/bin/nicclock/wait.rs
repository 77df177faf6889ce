//! `nicclock wait --status STATUS` / `--max-error BOUND`: blocks until the page says STATUS (on its
//! event futex: every status change posts an event) or is LOCKED within BOUND (on its update futex,
//! `Clock::wait_until`) — and on inotify until the page file exists — or until the timeout (exit 1
//! naming where the clock stands). Scripts and systemd units wait on this, not on a loop.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nicclock::{EventWait, Standing, Status, SyncCondition, SyncWait};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::output::outln;
use crate::Cli;

pub fn wait(cli: &Cli, target: Status, timeout: Duration) -> Result<ExitCode> {
    let start = Instant::now();
    let deadline = start + timeout;
    if let Some(name) = &cli.page {
        wait_for_file(&nicclock::page_path(&cli.dir, name), deadline, timeout)?;
    }
    // Opened before the first look at the status: every status change after this point posts an
    // event this handle receives, so none can slip between the look and the wait.
    let mut clock = crate::commands::open(cli)?;
    loop {
        let status = clock
            .status()
            .with_context(|| format!("waiting for {} on {}", target.name(), clock.path().display()))?;
        if status == target {
            outln!(
                "{} {} after {:.2} s",
                clock.path().display(),
                status.name(),
                start.elapsed().as_secs_f64()
            );
            return Ok(ExitCode::SUCCESS);
        }
        let still = format!(
            "{} is still {} after {:.1} s (waited for {})",
            clock.path().display(),
            status.name(),
            timeout.as_secs_f64(),
            target.name()
        );
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            bail!(still);
        };
        match clock.wait_event(Some(left))? {
            EventWait::Event(_) | EventWait::Missed(_) => {}
            EventWait::TimedOut => bail!(still),
        }
    }
}

pub fn wait_synced(cli: &Cli, max_error_ns: u64, timeout: Duration) -> Result<ExitCode> {
    let start = Instant::now();
    let deadline = start + timeout;
    if let Some(name) = &cli.page {
        wait_for_file(&nicclock::page_path(&cli.dir, name), deadline, timeout)?;
    }
    let clock = crate::commands::open(cli)?;
    let left = deadline.saturating_duration_since(Instant::now());
    let goal = format!("LOCKED with max error ≤ {max_error_ns} ns");
    let waited = clock
        .wait_until(SyncCondition::locked_within(max_error_ns), Some(left))
        .with_context(|| format!("waiting for {goal} on {}", clock.path().display()))?;
    match waited {
        SyncWait::Reached(r) => {
            let holds = match r.holds_for {
                Some(d) => format!("holds for {:.1} s without a new update", d.as_secs_f64()),
                None => "the bound does not grow between updates".into(),
            };
            outln!(
                "{} LOCKED, max error {} ns ≤ {max_error_ns} ns after {:.2} s ({holds})",
                clock.path().display(),
                r.now.error_bound_ns(),
                start.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        SyncWait::TimedOut(standing) => {
            let stands = match standing {
                Standing::NoTimeYet => "has published no time yet".to_string(),
                Standing::Reading(now) if now.error_bound_ns() == u64::MAX => {
                    format!("is still {}, max error unknown", now.status.name())
                }
                Standing::Reading(now) => {
                    format!("is still {}, max error {} ns", now.status.name(), now.error_bound_ns())
                }
            };
            bail!(
                "{} {stands} after {:.1} s (waited for {goal})",
                clock.path().display(),
                timeout.as_secs_f64()
            )
        }
    }
}

/// Returns once `path` exists, watching its directory with inotify (the writer links a complete
/// page into place, which the directory reports as a creation).
fn wait_for_file(path: &Path, deadline: Instant, timeout: Duration) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).context("inotify_init")?;
    inotify
        .add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
        .with_context(|| format!("cannot watch {} for the page to appear", dir.display()))?;
    // Looked at after the watch is in place: a page linked in between is seen either way.
    while !path.exists() {
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            bail!(
                "no time page at {} after {:.1} s: nicclockd did not start (or uses another --page-name/--page-dir)",
                path.display(),
                timeout.as_secs_f64()
            );
        };
        let ms = PollTimeout::try_from(left.as_millis().clamp(1, i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&inotify), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll on inotify"),
        }
        match inotify.read_events() {
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(e) => return Err(e).context("reading inotify events"),
        }
    }
    Ok(())
}
