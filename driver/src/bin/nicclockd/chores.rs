//! What every nicclockd loop does beside its work: systemd's watchdog ping every half period, the
//! `--duration` end, and the kernel's request to have a VFIO device back (DEVICE_LOST, exit 69).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use log::error;
use nicclock_driver::device::OpenedClock;

use crate::run::Loop;
use crate::EXIT_DEVICE_GONE;

/// The watchdog and the end of the run.
pub struct Chores {
    half_watchdog: Option<Duration>,
    next_ping: Option<Instant>,
    end: Option<Instant>,
}

impl Chores {
    /// systemd: WATCHDOG=1 every half watchdog period, between updates too (the loop wakes for
    /// it), so a slow --rate never starves the watchdog. `duration_s`: `--duration`.
    pub fn new(start: Instant, duration_s: Option<f64>) -> Self {
        let half_watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
        Chores {
            half_watchdog,
            next_ping: half_watchdog.map(|half| start + half),
            end: duration_s.and_then(|d| start.checked_add(Duration::from_secs_f64(d))),
        }
    }

    /// The instants the loop must wake for besides its own.
    pub fn deadlines(&self) -> [Option<Instant>; 2] {
        [self.next_ping, self.end]
    }

    /// Pings the watchdog when due; `true` once `--duration` is over.
    pub fn tick(&mut self, now: Instant) -> bool {
        if let (Some(half), Some(ping)) = (self.half_watchdog, self.next_ping) {
            if now >= ping {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                self.next_ping = Some(now + half);
            }
        }
        self.end.is_some_and(|end| now >= end)
    }
}

/// The kernel is removing the device (a VFIO release request): the page says DEVICE_LOST and the
/// daemon exits 69 so that the removal completes. `None` while nobody asked.
pub fn removal_requested(opened: &OpenedClock, loop_: &mut Loop) -> Option<ExitCode> {
    if !opened.removal.as_ref().is_some_and(|r| r.requested()) {
        return None;
    }
    loop_.writer.device_lost(u32::MAX);
    error!(
        "{}: the kernel is removing the device (VFIO release request); {} now says DEVICE_LOST",
        opened.address,
        loop_.writer.path().display()
    );
    Some(ExitCode::from(EXIT_DEVICE_GONE))
}
