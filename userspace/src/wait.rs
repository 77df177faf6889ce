//! Waiting on the page for a condition, asleep on the clock block's futex word (the writer wakes it
//! at every update): until the clock is LOCKED within an error bound, or until a time has surely passed.

use std::sync::atomic::Ordering::Acquire;
use std::time::{Duration, Instant};

use crate::abi::Status;
use crate::error::Error;
use crate::interval::Interval;
use crate::page::futex;
use crate::reader::{Clock, Now};

/// What [`Clock::wait_until`] waits for: the page says LOCKED and the error bound, as
/// [`Clock::now`] computes it at that moment (the published bound grown since the update), is at
/// most `max_error_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncCondition {
    pub max_error_ns: u64,
}

impl SyncCondition {
    /// LOCKED with an error bound of at most `max_error_ns`.
    pub fn locked_within(max_error_ns: u64) -> Self {
        Self { max_error_ns }
    }

    /// Whether `now` satisfies it.
    pub fn holds(&self, now: &Now) -> bool {
        now.status == Status::Locked && now.error_bound_ns() <= self.max_error_ns
    }
}

/// The condition held at the reading `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    pub now: Now,
    /// How long it goes on holding if no update comes: the bound grows by the page's error growth
    /// between updates and passes the limit after this (`None`: the bound does not grow). An
    /// update (normally due well before) sets a new bound, which may be wider: the condition was
    /// reached at `now`, it is not promised for later.
    pub holds_for: Option<Duration>,
}

/// Where the clock stood when a wait ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The last reading.
    Reading(Now),
    /// The page has published no time yet.
    NoTimeYet,
}

/// What [`Clock::wait_until`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncWait {
    Reached(Reached),
    TimedOut(Standing),
}

/// What [`Clock::wait_until_after`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterWait {
    /// The reading whose earliest possible time lies after the instant waited for.
    Passed(Interval),
    /// The timeout came first; the last reading (`None`: no time published yet).
    TimedOut(Option<Interval>),
}

/// Extra sleep per ns still to go in a commit-wait (1/1024: the reader's sleep runs on
/// CLOCK_MONOTONIC, whose rate may differ from TAI's by a few hundred ppm), plus 1 µs: one sleep
/// then nearly always ends past the instant, rarely a second short one.
const COMMIT_MARGIN_SHIFT: u32 = 10;
const COMMIT_MARGIN: Duration = Duration::from_micros(1);

impl Clock {
    /// Blocks until `cond` holds (LOCKED, error bound ≤ `cond.max_error_ns`) or the timeout
    /// (`None`: no limit) passes. Sleeps on the futex the writer wakes at every update, which is
    /// the only moment the condition can become true (between updates the bound only grows), and
    /// at every status change: no polling. Once reached it may fall out again (see
    /// [`Reached::holds_for`]).
    ///
    /// Statuses other than LOCKED, and no time yet, are waited through. Errors end the wait at
    /// once: the writer stopped (`Unavailable(Stopped)`) or lost the device
    /// (`Unavailable(DeviceLost)`), the page went stale while waited on (the writer was killed or
    /// hangs: `Stale`, found when the page's max age runs out), a writer stuck mid-update, a
    /// corrupt page. Any number of threads may wait on one `Clock` at once.
    pub fn wait_until(&self, cond: SyncCondition, timeout: Option<Duration>) -> Result<SyncWait, Error> {
        let mut standing = Standing::NoTimeYet;
        let reached = self.wait_on_updates(timeout, |clock| match clock.now() {
            Ok(now) if cond.holds(&now) => {
                let growth = clock.snapshot().map_or(0, |s| s.error_growth_ppt as u128);
                let left = (cond.max_error_ns - now.error_bound_ns()) as u128;
                let holds_for = (growth > 0).then(|| {
                    Duration::from_nanos((left * 1_000_000_000_000 / growth).min(u64::MAX as u128) as u64)
                });
                Ok(Check::Done(Reached { now, holds_for }))
            }
            Ok(now) => {
                standing = Standing::Reading(now);
                Ok(Check::Wait(None))
            }
            Err(Error::NoTimeYet) => {
                standing = Standing::NoTimeYet;
                Ok(Check::Wait(None))
            }
            Err(e) => Err(e),
        })?;
        Ok(match reached {
            Some(r) => SyncWait::Reached(r),
            None => SyncWait::TimedOut(standing),
        })
    }

    /// Commit-wait: blocks until the earliest time the true TAI can be lies after `t_ns`, so that
    /// any reading anyone takes from then on is later than `t_ns` for certain. Sleeps (on the same
    /// futex, so an update that narrows the bound ends it early) for the time still to go, then
    /// checks; never spins. The timeout (`None`: no limit) bounds the whole call; a bound that
    /// stays unknown never lets it pass. Errors as [`Clock::wait_until`]'s: a page that stops,
    /// loses its device, goes stale or breaks ends the wait with that error.
    pub fn wait_until_after(&self, t_ns: u64, timeout: Option<Duration>) -> Result<AfterWait, Error> {
        let mut last = None;
        let passed = self.wait_on_updates(timeout, |clock| match clock.now_interval() {
            Ok(i) if i.earliest_ns > t_ns => Ok(Check::Done(i)),
            Ok(i) => {
                last = Some(i);
                let to_go = (t_ns - i.earliest_ns).saturating_add(1);
                let sleep = Duration::from_nanos(to_go.saturating_add(to_go >> COMMIT_MARGIN_SHIFT));
                Ok(Check::Wait(Some(sleep + COMMIT_MARGIN)))
            }
            Err(Error::NoTimeYet) => Ok(Check::Wait(None)),
            Err(e) => Err(e),
        })?;
        Ok(match passed {
            Some(i) => AfterWait::Passed(i),
            None => AfterWait::TimedOut(last),
        })
    }

    /// The waiting loop: `check` the page; done, or sleep on the clock block's futex word (loaded
    /// before the check, so an update in between ends the sleep at once) until the next update or
    /// status change, the time `check` asks for, the timeout (then `Ok(None)`), or the moment the
    /// page would go stale (checked by `check`'s reading after it).
    fn wait_on_updates<T>(
        &self,
        timeout: Option<Duration>,
        mut check: impl FnMut(&Clock) -> Result<Check<T>, Error>,
    ) -> Result<Option<T>, Error> {
        let deadline =
            timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(crate::reader::far_future));
        let word = self.clock_futex();
        let mut mid_update_since = None;
        loop {
            let expected = word.load(Acquire);
            let wanted = match check(self)? {
                Check::Done(t) => return Ok(Some(t)),
                Check::Wait(wanted) => wanted,
            };
            let now = Instant::now();
            let mut sleep = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(now) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(None),
                },
            };
            let recheck = self.liveness_in(&mut mid_update_since)?;
            for bound in [Some(recheck), wanted] {
                sleep = match (sleep, bound) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            futex::wait(word, expected, sleep).map_err(|e| Error::Io {
                action: "wait for updates of",
                path: self.path().into(),
                err: e,
            })?;
        }
    }
}

/// A check's verdict: done with a result, or wait for an update (and at most this long).
enum Check<T> {
    Done(T),
    Wait(Option<Duration>),
}
