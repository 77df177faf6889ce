//! The reader: maps a page read-only and computes the time from the CPU counter without a syscall,
//! with its error bound and status; waits for clock events on the page's futex word.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::{Duration, Instant};

use crate::abi::{
    self, CounterKind, Status, DEFAULT_DIR, EVENT_RING_LEN, FILE_PREFIX, MAX_COUNTER_BEFORE_ANCHOR_NS,
    MAX_EVENT_HEAD, MONOTONIC_RAW_PERIOD_MAX, MONOTONIC_RAW_PERIOD_MIN, PERIOD_SHIFT, STALE_INTERVALS,
    STALE_MIN_NS, TSC_PERIOD_MAX, TSC_PERIOD_MIN,
};
use crate::error::Error;
use crate::identity::Identity;
use crate::name::{name_problem, page_path};
use crate::page::{counter, futex, ReadOnlyPage};
use crate::seqlock;
use crate::snapshot::{error_at, ticks_to_ns, utc_offset_at, Event, Snapshot};

/// A reading of the clock: the time and status at once, the error bounds on access.
///
/// The bounds are lazy: a reading carries the page's anchor bounds, their growth rates and its
/// distance from the anchor (all copied under the seqlock with the time, so they belong to the
/// same published mapping), and [`Now::error_bound_ns`] / [`Now::estimated_error_ns`] grow the
/// bounds when asked (one multiply each). A caller that wants only the time pays for one
/// multiply (the time's); the bounds are the same whenever they are asked for.
#[derive(Clone, Copy)]
pub struct Now {
    /// ns since 1970-01-01 00:00:00 in the time scale asked for (TAI from [`Clock::now`], UTC from
    /// [`Clock::now_utc`]).
    pub time_ns: u64,
    pub status: Status,
    /// The disruption epoch of the mapping this reading used (0: a page of an older writer).
    /// Two readings with the same epoch lie on one timeline: no step, restart, reference or
    /// device change between them.
    pub epoch: u32,
    bounds: LazyBounds,
}

/// What a reading's bounds need: each bound is `anchor value + growth over since_ns` (growth
/// rounded up by [`growth_ns`]; 0 ppt for a reading whose bounds were worked out in full).
#[derive(Clone, Copy)]
struct LazyBounds {
    since_ns: u64,
    max_ns: u64,
    max_growth_ppt: u32,
    est_growth_ppt: u32,
    est_ns: u64,
}

impl Now {
    /// A reading with its bounds given (`estimated_error_ns` is taken as no more than
    /// `error_bound_ns`, and as equal to it with epoch 0, a page of an older writer).
    pub fn new(
        time_ns: u64,
        error_bound_ns: u64,
        estimated_error_ns: u64,
        status: Status,
        epoch: u32,
    ) -> Self {
        let bounds = LazyBounds {
            since_ns: 0,
            max_ns: error_bound_ns,
            max_growth_ppt: 0,
            est_growth_ppt: 0,
            est_ns: estimated_error_ns,
        };
        Self { time_ns, status, epoch, bounds }
    }

    /// The true time lies within ± this many ns (`u64::MAX`: unknown): the maximum error, a
    /// bound the writer can stand behind. Computed on access (one multiply): never below what
    /// [`Snapshot::error_at`] gives at the reading's time, and above it by at most 1 ns and 10^-7
    /// of the growth.
    #[inline(always)]
    pub fn error_bound_ns(&self) -> u64 {
        let b = &self.bounds;
        b.max_ns.saturating_add(growth_ns(b.since_ns, b.max_growth_ppt))
    }

    /// What the servo believes the error is (statistical, about one standard deviation: RMS of
    /// the recent offsets and the mapping's jitter, grown by the rate's estimated error); never
    /// above [`Now::error_bound_ns`]. Equal to it on a page of an older writer (epoch 0, ABI
    /// minor < 4), which estimates nothing. Computed on access, as the maximum error is.
    #[inline(always)]
    pub fn estimated_error_ns(&self) -> u64 {
        let b = &self.bounds;
        let max = self.error_bound_ns();
        match self.epoch {
            0 => max,
            _ => b.est_ns.saturating_add(growth_ns(b.since_ns, b.est_growth_ppt)).min(max),
        }
    }

    /// Earliest time the true time can be.
    pub fn earliest_ns(&self) -> u64 {
        self.time_ns.saturating_sub(self.error_bound_ns())
    }

    /// Latest time the true time can be.
    pub fn latest_ns(&self) -> u64 {
        self.time_ns.saturating_add(self.error_bound_ns())
    }
}

/// Two readings are equal when everything they say is: time, bounds, status and epoch.
impl PartialEq for Now {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ns, self.error_bound_ns(), self.estimated_error_ns(), self.status, self.epoch)
            == (other.time_ns, other.error_bound_ns(), other.estimated_error_ns(), other.status, other.epoch)
    }
}

impl Eq for Now {}

impl std::fmt::Debug for Now {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Now")
            .field("time_ns", &self.time_ns)
            .field("error_bound_ns", &self.error_bound_ns())
            .field("estimated_error_ns", &self.estimated_error_ns())
            .field("status", &self.status)
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// What [`Clock::wait_event`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventWait {
    /// The next event, in order.
    Event(Event),
    /// The ring overflowed: this many events were overwritten before this reader took them.
    Missed(u64),
    /// Nothing happened within the timeout.
    TimedOut,
}

/// A time page opened for reading.
///
/// `Send + Sync`: one handle may be shared by any number of threads (`Arc<Clock>` or a borrow).
/// Every reading (`now`, `now_utc`, `now_interval`, `status`, `snapshot`, …) and the waits
/// `wait_until` / `wait_until_after` take `&self` and run side by side without a lock: a reading
/// is a lock-free copy of the page under its sequence word. Only [`Clock::wait_event`] takes
/// `&mut self` (it moves this handle's event cursor): one handle per event-following thread.
pub struct Clock {
    page: ReadOnlyPage,
    max_age_ns: Option<u64>,
    /// Number of the last event delivered (or skipped).
    cursor: u64,
    /// The event slot being waited for that did not hold its event: (event number, head, since).
    stuck: Option<(u64, u64, Instant)>,
    /// When a waiting reader next checks that the page is still being updated.
    liveness_due: Option<Instant>,
    /// Since when a waiting reader has found the writer mid-update at every check.
    mid_update_since: Option<Instant>,
}

// One handle may be shared by any number of threads: every reading takes `&self` and is a
// lock-free seqlock read of the page (no mutex, no write to shared memory); only the event cursor
// of `wait_event` (`&mut self`) is per handle.
const _: () = {
    const fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<Clock>()
};

/// Staleness limit when the reader sets none: 3 update intervals, at least 1 s. An interval
/// beyond 2^62 ns (146 years) counts as 2^62: no multiply that checks for overflow on the
/// reader's fast path (the limit is then beyond any reading's age anyway).
#[inline(always)]
pub fn default_max_age_ns(update_interval_ns: u64) -> u64 {
    (update_interval_ns.min(1 << 62) * STALE_INTERVALS).max(STALE_MIN_NS)
}

/// How often a waiting reader re-checks a page that has no time to go stale (stopped, device
/// lost, no time yet): a writer that starts again is seen through its events, not this.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

impl Clock {
    /// Opens `/dev/shm/nicclock-<name>`.
    pub fn open(name: &str) -> Result<Self, Error> {
        Self::open_in(Path::new(DEFAULT_DIR), name)
    }

    /// Opens `dir/nicclock-<name>`.
    pub fn open_in(dir: &Path, name: &str) -> Result<Self, Error> {
        if let Some(reason) = name_problem(name) {
            return Err(Error::InvalidName { name: name.into(), reason });
        }
        Self::open_path(&page_path(dir, name))
    }

    /// Opens a page file by path.
    pub fn open_path(path: &Path) -> Result<Self, Error> {
        let page = ReadOnlyPage::open(path)?;
        let cursor = page.page().events.head.load(Acquire);
        let clock =
            Self { page, max_age_ns: None, cursor, stuck: None, liveness_due: None, mid_update_since: None };
        clock.check_published_mapping()?;
        Ok(clock)
    }

    /// At open: a published mapping (if the writer is not mid-update right now) must have a
    /// counter kind and a period a real counter could have. now() checks every mapping again.
    fn check_published_mapping(&self) -> Result<(), Error> {
        let c = &self.page.page().clock;
        let read = seqlock::try_read(&c.seq, || {
            (c.updated_tai_ns.load(Relaxed), c.counter_kind.load(Relaxed), c.counter_period.load(Relaxed))
        });
        match read {
            Some((updated, kind, period)) if updated != 0 => match CounterKind::from_raw(kind) {
                None => Err(Error::Corrupt { field: "counter kind", value: kind.into() }),
                Some(kind) => check_period(kind, period),
            },
            _ => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        self.page.path()
    }

    /// Overrides the staleness limit (default: 3 update intervals, at least 1 s).
    pub fn set_max_age(&mut self, max_age: Duration) {
        self.max_age_ns = Some(max_age.as_nanos().min(u64::MAX as u128) as u64);
    }

    /// Who the page describes.
    pub fn identity(&self) -> Identity {
        Identity::from_header(&self.page.page().header)
    }

    /// Pid of the writer publishing now (0: none).
    pub fn writer_pid(&self) -> u32 {
        self.page.page().header.writer_pid.load(Relaxed)
    }

    /// TAI now, with error bound and status. No syscall with a TSC page. Errors: the page is stale,
    /// the device is lost or the daemon stopped, no time was published yet, the writer is stuck
    /// mid-update, or the mapping is invalid (a period no counter has, a time ahead of the counter
    /// by more than [`abi::MAX_COUNTER_BEFORE_ANCHOR_NS`]).
    ///
    /// Cost: one ordered counter read plus a few ns (the readers bench prints both). The page is
    /// read while the counter read is in flight, and one multiply makes the time. The error bounds
    /// are lazy: the reading carries what they need, copied under the same seqlock read, and
    /// [`Now::error_bound_ns`] / [`Now::estimated_error_ns`] grow them on access (one multiply
    /// each, rounded up: never below what [`Snapshot::error_at`] gives at the reading's time).
    #[inline(always)]
    pub fn now(&self) -> Result<Now, Error> {
        self.read_time::<false>()
    }

    /// UTC now (TAI − the page's TAI−UTC offset, leap second applied when due).
    #[inline(always)]
    pub fn now_utc(&self) -> Result<Now, Error> {
        self.read_time::<true>()
    }

    /// (earliest, latest) TAI ns the true time can be.
    pub fn bounds(&self) -> Result<(u64, u64), Error> {
        let now = self.now()?;
        Ok((now.earliest_ns(), now.latest_ns()))
    }

    /// The page's status; a page not updated within its max age is `Err(Stale)`. A stopped or lost
    /// clock is reported as that status, not as stale.
    pub fn status(&self) -> Result<Status, Error> {
        match self.now() {
            Ok(now) => Ok(now.status),
            Err(Error::Unavailable(status)) => Ok(status),
            Err(Error::NoTimeYet) => Ok(Status::Unsynchronized),
            Err(e) => Err(e),
        }
    }

    /// A consistent copy of the whole clock block (for status displays).
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        let c = &self.page.page().clock;
        let Some(raw) = seqlock::read(&c.seq, || Snapshot::load(c)) else {
            return Err(Error::WriterStuck);
        };
        raw.check(self.page.page().header.abi_minor.load(Relaxed))
    }

    /// Age of the last update in ns, by the page's own mapping (None before the first update).
    pub fn age_ns(&self, snap: &Snapshot) -> Option<u64> {
        let now = snap.tai_at(counter::read(snap.counter_kind)?);
        Some((now - snap.updated_tai_ns as i128).max(0) as u64)
    }

    /// The staleness limit in force for `snap`.
    pub fn max_age_ns(&self, snap: &Snapshot) -> u64 {
        self.max_age_ns.unwrap_or_else(|| default_max_age_ns(snap.update_interval_ns))
    }

    /// The hot path: always inlined (a call frame costs as much as the arithmetic); every error is
    /// built out of line in a cold function. `UTC`: a constant, so a TAI reading carries no UTC code.
    #[inline(always)]
    fn read_time<const UTC: bool>(&self) -> Result<Now, Error> {
        // The TSC is read first, before the page is even looked at: `lfence; rdtsc` then waits only
        // for the caller's earlier loads (the ordering guarantee a clock read owes its caller), not
        // for our pointer chase into the page, which runs while the counter read is in flight. A
        // mapping published after that read makes `since` slightly negative: such a reading is
        // retried once out of line with the counter read after the page (`read_time_again`).
        // Pages in CLOCK_MONOTONIC_RAW read theirs after the page, out of line.
        let tsc = counter::tsc();
        let (c, h) = (&self.page.page().clock, &self.page.page().header);
        // Scalars straight from the page into registers: no struct whose address is taken, no copy.
        let read = seqlock::try_read(&c.seq, move || Fast {
            kind: c.counter_kind.load(Relaxed),
            counter_value: c.counter_value.load(Relaxed),
            period: c.counter_period.load(Relaxed),
            anchor: c.anchor_tai_ns.load(Relaxed),
            bound: c.error_bound_ns.load(Relaxed),
            growth: c.error_growth_ppt.load(Relaxed),
            status: c.status.load(Relaxed),
            updated: c.updated_tai_ns.load(Relaxed),
            interval: c.update_interval_ns.load(Relaxed),
            // A writer older than minor 4 that took over a newer one's page leaves its epoch: only
            // the header's minor says whether the block's epoch and estimate are live.
            epoch: if h.abi_minor.load(Relaxed) >= 4 { c.disruption_epoch.load(Relaxed) } else { 0 },
            est: c.est_error_ns.load(Relaxed),
            est_growth: c.est_error_growth_ppt.load(Relaxed),
            utc: if UTC {
                (c.tai_utc_offset_s.load(Relaxed), c.leap.load(Relaxed), c.leap_tai_s.load(Relaxed))
            } else {
                (0, 0, 0)
            },
        });
        let Some(f) = read else {
            return self.read_time_general(UTC, tsc);
        };
        match tsc {
            Some(counter) if f.kind == CounterKind::Tsc as u32 => self.evaluate::<UTC>(&f, counter, tsc),
            _ => self.read_time_other::<UTC>(tsc),
        }
    }

    /// A page in CLOCK_MONOTONIC_RAW (its counter read after the page, then the same fast path),
    /// or one the fast path does not take.
    #[inline(never)]
    fn read_time_other<const UTC: bool>(&self, tsc: Option<u64>) -> Result<Now, Error> {
        let r = self.read_block(UTC)?;
        if r.kind != CounterKind::MonotonicRaw as u32 {
            return self.evaluate_general(&r, tsc, true);
        }
        let counter = counter::monotonic_raw_ns();
        let (epoch, est, est_growth) = (r.epoch, r.est, r.est_growth);
        let f = Fast {
            kind: r.kind,
            counter_value: r.counter_value,
            period: r.period,
            anchor: r.anchor,
            bound: r.bound,
            growth: r.growth as u32,
            status: r.status,
            updated: r.updated,
            interval: r.interval,
            epoch,
            est,
            est_growth,
            utc: r.utc.unwrap_or((0, 0, 0)),
        };
        self.evaluate::<UTC>(&f, counter, tsc)
    }

    /// The general path: a fresh copy of the page evaluated with every check, with the counter
    /// read before it (`tsc`; a counter before the anchor is retried once).
    #[cold]
    #[inline(never)]
    fn read_time_general(&self, utc: bool, tsc: Option<u64>) -> Result<Now, Error> {
        let r = self.read_block(utc)?;
        self.evaluate_general(&r, tsc, true)
    }

    /// The reading retried with the counter read after the page: a negative age now is real.
    #[cold]
    #[inline(never)]
    fn read_time_again(&self, utc: bool) -> Result<Now, Error> {
        let r = self.read_block(utc)?;
        self.evaluate_general(&r, counter::tsc(), false)
    }

    /// One consistent copy of what a reading needs (everything in the block's first cache line).
    #[inline(always)]
    fn read_block(&self, utc: bool) -> Result<Reading, Error> {
        let (c, h) = (&self.page.page().clock, &self.page.page().header);
        let read = seqlock::read(&c.seq, move || Reading {
            kind: c.counter_kind.load(Relaxed),
            counter_value: c.counter_value.load(Relaxed),
            period: c.counter_period.load(Relaxed),
            anchor: c.anchor_tai_ns.load(Relaxed),
            bound: c.error_bound_ns.load(Relaxed),
            growth: c.error_growth_ppt.load(Relaxed) as u64,
            status: c.status.load(Relaxed),
            updated: c.updated_tai_ns.load(Relaxed),
            interval: c.update_interval_ns.load(Relaxed),
            // A writer older than minor 4 that took over a newer one's page leaves its epoch: only
            // the header's minor says whether the block's epoch and estimate are live.
            epoch: if h.abi_minor.load(Relaxed) >= 4 { c.disruption_epoch.load(Relaxed) } else { 0 },
            est: c.est_error_ns.load(Relaxed),
            est_growth: c.est_error_growth_ppt.load(Relaxed),
            utc: utc.then(|| {
                (c.tai_utc_offset_s.load(Relaxed), c.leap.load(Relaxed), c.leap_tai_s.load(Relaxed))
            }),
        });
        // Not `ok_or(Error::WriterStuck)`: that builds and drops an Error on every reading.
        match read {
            Some(r) => Ok(r),
            None => Err(writer_stuck()),
        }
    }

    /// The time by mapping `f` at `counter` (read by the caller). The fast path, for the readings
    /// nearly every call makes (a usable status, a period of a counter faster than 1 GHz, the
    /// counter at most [`FAST_TICKS`] past the anchor, an age within the limit): everything that
    /// depends on the page alone (the validity checks, the age limit as a span of `since`) is
    /// worked out while the counter read is in flight; after it comes one multiply for the time
    /// (`ticks × period`, rounded as [`ticks_to_ns`] rounds). The bounds stay lazy in the
    /// reading ([`Now::error_bound_ns`]). Everything else goes to [`Clock::evaluate_general`] (with the
    /// counter read before the page, `tsc`), which checks and reports it in full.
    #[inline(always)]
    fn evaluate<const UTC: bool>(&self, f: &Fast, counter: u64, tsc: Option<u64>) -> Result<Now, Error> {
        let (period_min, period_max) = match f.kind {
            2 => (MONOTONIC_RAW_PERIOD_MIN, MONOTONIC_RAW_PERIOD_MAX),
            _ => (TSC_PERIOD_MIN, TSC_PERIOD_MAX.min(FAST_PERIOD_MAX)),
        };
        let ticks = counter.wrapping_sub(f.counter_value);
        // The publication time from the anchor (exact when both are below 2^63, as checked).
        let from_anchor = (f.updated as i64).wrapping_sub(f.anchor as i64);
        // `&`, not `&&`: no branch per check. `updated` in [1, 2^63) and `anchor` < 2^63 keep the
        // arithmetic below exact (2^63 ns is the year 2262).
        let fast = (f.status < USABLE_BELOW)
            & (f.updated.wrapping_sub(1) < (1 << 63) - 1)
            & (f.anchor < 1 << 63)
            // Published at most `tolerance` after its anchor (every writer publishes at the
            // anchor): then no reading here (0 ≤ since) is too early, and only the age's upper
            // limit is left to check after the multiply.
            & (from_anchor <= MAX_COUNTER_BEFORE_ANCHOR_NS as i64)
            & (f.period.wrapping_sub(period_min) <= period_max - period_min)
            & (ticks < FAST_TICKS);
        if !fast {
            return self.read_time_general(UTC, tsc);
        }
        // period < 2^48: `period << 16` keeps every bit, and the high half of the product is
        // (ticks × period + 2^47) >> 48 exactly; ticks < 2^44 keeps `since` below 2^48.
        let product = ticks as u128 * ((f.period as u128) << 16) + (1 << 63);
        let since = (product >> 64) as u64;
        // The age (tai − updated) must lie in [−tolerance, max_age]; with tai = anchor + since
        // and since ≥ 0 ≥ updated − anchor − tolerance (above), only `since ≤ updated − anchor +
        // max_age` is left: its right side is worked out from the page alone, so one comparison
        // follows the multiply. A max age beyond 2^62 ns (146 years) counts as 2^62 (since < 2^48
        // here): no overflow, as from_anchor lies in (−2^63, tolerance].
        let max_age = self.max_age_ns.unwrap_or_else(|| default_max_age_ns(f.interval));
        let latest = from_anchor + max_age.min(1 << 62) as i64;
        if since as i64 > latest {
            return self.read_time_general(UTC, tsc);
        }
        let tai = f.anchor + since;
        // The bounds are grown when asked for (`Now::error_bound_ns`): no multiply for them here.
        let bounds = LazyBounds {
            since_ns: since,
            max_ns: f.bound,
            max_growth_ppt: f.growth,
            est_growth_ppt: f.est_growth,
            est_ns: f.est,
        };
        let time_ns = if UTC {
            let (offset, leap, leap_tai_s) = f.utc;
            let Some(leap) = crate::abi::Leap::from_raw(leap) else {
                return self.read_time_general(UTC, tsc);
            };
            let offset = utc_offset_at(offset, leap, leap_tai_s, tai / 1_000_000_000);
            tai.saturating_add_signed(-(offset as i64) * 1_000_000_000)
        } else {
            tai
        };
        let status = status_from_usable(f.status);
        Ok(Now { time_ns, status, epoch: f.epoch, bounds })
    }

    /// The time by mapping `r` at `counter_now`, with every validity check: a usable status and a
    /// published time, a readable counter, a plausible period, an age in
    /// [−MAX_COUNTER_BEFORE_ANCHOR_NS, max age] and a counter no further before the anchor. Out
    /// of line: the readings [`Clock::evaluate`]'s fast path leaves (errors, a counter before the
    /// anchor, ages beyond its range, a UTC reading's leap second) and nothing else.
    #[cold]
    #[inline(never)]
    fn evaluate_general(&self, r: &Reading, tsc: Option<u64>, may_retry: bool) -> Result<Now, Error> {
        let (counter_now, period_min, period_max) = match r.kind {
            1 => (tsc, TSC_PERIOD_MIN, TSC_PERIOD_MAX),
            2 => (Some(counter::monotonic_raw_ns()), MONOTONIC_RAW_PERIOD_MIN, MONOTONIC_RAW_PERIOD_MAX),
            _ => (None, 0, 0),
        };
        // `updated` in [1, 2^63): 0 is "no time yet", and 2^63 ns (year 2262) or more is no real
        // time (the range also keeps the wrapping age arithmetic below exact).
        let status = match Status::from_raw(r.status) {
            Some(status) if status.is_usable() && r.updated.wrapping_sub(1) < (1 << 63) - 1 => status,
            _ => return Err(unusable(r.status, r.updated)),
        };
        let Some(counter_now) = counter_now else {
            return Err(no_counter(r.kind));
        };
        if r.period.wrapping_sub(period_min) > period_max - period_min {
            return Err(implausible_period(r.kind, r.period));
        }
        let since = ticks_to_ns(counter_now.wrapping_sub(r.counter_value) as i64, r.period);
        let tai = r.anchor.saturating_add_signed(since);
        let max_age = self.max_age_ns.unwrap_or_else(|| default_max_age_ns(r.interval));
        // The age must lie in [−tolerance, max_age]: one wrapping subtraction and one comparison
        // (a negative age wraps to a huge one), exact because `updated` < 2^63.
        let tolerance = MAX_COUNTER_BEFORE_ANCHOR_NS;
        let age = tai.wrapping_sub(r.updated);
        if age.wrapping_add(tolerance) > max_age.saturating_add(tolerance) || since < -(tolerance as i64) {
            return if may_retry {
                self.read_time_again(r.utc.is_some())
            } else {
                Err(out_of_range(since, tai as i128 - r.updated as i128, max_age))
            };
        }
        let error_bound_ns = error_at(r.bound, r.growth, since.unsigned_abs());
        // Epoch 0: an older writer, whose reserved zeros are no estimate.
        let estimated_error_ns = match r.epoch {
            0 => error_bound_ns,
            _ => error_at(r.est, r.est_growth as u64, since.unsigned_abs()).min(error_bound_ns),
        };
        let time_ns = match r.utc {
            None => tai,
            Some((offset, leap, leap_tai_s)) => {
                let leap = crate::abi::Leap::from_raw(leap)
                    .ok_or_else(|| Error::Corrupt { field: "leap indicator", value: leap.into() })?;
                let offset = utc_offset_at(offset, leap, leap_tai_s, tai / 1_000_000_000);
                tai.saturating_add_signed(-(offset as i64) * 1_000_000_000)
            }
        };
        Ok(Now::new(time_ns, error_bound_ns, estimated_error_ns, status, r.epoch))
    }

    /// Blocks (in the kernel, on the page's futex word) until the next event or the timeout
    /// (`None`: forever). Delivers every event in order; reports overwritten ones as `Missed`.
    ///
    /// Never spins and never outlives its timeout. While it waits it checks the page is alive: a
    /// page whose writer stopped updating it (killed, hung) ends the wait with `Err(Stale)` once
    /// older than its max age, as [`Clock::now`] would. An event slot that does not hold its
    /// event (the writer is mid-post) is waited for as long as a writer mid-update
    /// ([`abi::WRITER_STUCK_MS`]); then the oldest slot left at 0 (a writer that died while
    /// overwriting it) counts as one missed event, and any other mismatch is
    /// `Err(EventSlotStuck)` (either way the slot is passed over: the next call goes on with the
    /// next event). A ring head beyond [`abi::MAX_EVENT_HEAD`] is `Err(Corrupt)`.
    pub fn wait_event(&mut self, timeout: Option<Duration>) -> Result<EventWait, Error> {
        let deadline = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
        loop {
            let ev = &self.page.page().events;
            let word = ev.futex.load(Acquire);
            let head = ev.head.load(Acquire);
            if head > MAX_EVENT_HEAD {
                return Err(Error::Corrupt { field: "event ring head", value: head });
            }
            let mut slot_wait = None;
            if head < self.cursor {
                // The page was re-created under us; start over with what it has.
                self.cursor = head.saturating_sub(EVENT_RING_LEN as u64);
                self.stuck = None;
            }
            if head > self.cursor {
                let oldest = head.saturating_sub(EVENT_RING_LEN as u64) + 1;
                if self.cursor + 1 < oldest {
                    let missed = oldest - 1 - self.cursor;
                    self.cursor = oldest - 1;
                    self.stuck = None;
                    return Ok(EventWait::Missed(missed));
                }
                let number = self.cursor + 1;
                let index = ((number - 1) % EVENT_RING_LEN as u64) as usize;
                let (slot, epoch) = (&self.page.page().ring[index], &self.page.page().event_epochs[index]);
                let minor = self.page.page().header.abi_minor.load(Relaxed);
                match seqlock::read_slot(&slot.seq, number, || Event::load(number, slot, epoch, minor)) {
                    Some((_, _, Some(event))) => {
                        self.cursor = number;
                        self.stuck = None;
                        return Ok(EventWait::Event(event));
                    }
                    Some((kind, urgency, None)) => {
                        self.cursor = number;
                        self.stuck = None;
                        return Err(Error::Corrupt {
                            field: "event kind/urgency",
                            value: (kind as u64) << 16 | urgency as u64,
                        });
                    }
                    None => {
                        // Overwritten while we looked (the head has moved on: the next round
                        // counts it as missed), or mid-write: wait for the writer, boundedly.
                        let found = slot.seq.load(Acquire);
                        match self.slot_stuck(number, head, found) {
                            Ok(remaining) => slot_wait = Some(remaining),
                            Err(skip) => return skip,
                        }
                    }
                }
            }
            let now = Instant::now();
            let mut sleep = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(now) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return Ok(EventWait::TimedOut),
                },
            };
            if self.liveness_due.is_none_or(|due| now >= due) {
                let recheck = self.liveness()?;
                self.liveness_due = Some(now + recheck);
            }
            for bound in [slot_wait, self.liveness_due.map(|due| due.saturating_duration_since(now))] {
                sleep = match (sleep, bound) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            futex::wait(&self.page.page().events.futex, word, sleep).map_err(|e| Error::Io {
                action: "wait for events on",
                path: self.page.path().into(),
                err: e,
            })?;
        }
    }

    /// Bookkeeping for a slot that does not hold event `number`: `Ok(how much longer to wait)`, or
    /// the verdict once it has stayed so for WRITER_STUCK_MS with the head unchanged.
    fn slot_stuck(
        &mut self,
        number: u64,
        head: u64,
        found: u64,
    ) -> Result<Duration, Result<EventWait, Error>> {
        let since = match self.stuck {
            Some((n, h, since)) if (n, h) == (number, head) => since,
            _ => {
                let now = Instant::now();
                self.stuck = Some((number, head, now));
                now
            }
        };
        let waited = since.elapsed();
        if waited < seqlock::WRITER_STUCK_AFTER {
            return Ok(seqlock::WRITER_STUCK_AFTER - waited);
        }
        self.stuck = None;
        self.cursor = number;
        if found == 0 && number + EVENT_RING_LEN as u64 - 1 == head {
            // The writer began overwriting the oldest slot with event head + 1 and never
            // finished: that event is lost to the ring, exactly as an overflow loses it.
            Err(Ok(EventWait::Missed(1)))
        } else {
            Err(Err(Error::EventSlotStuck { number, found }))
        }
    }

    /// For a waiting reader: `Err(Stale)` (or another reason the page gives no time that will not
    /// heal by itself), else how long until the page would go stale. Never blocks (a wait's timeout
    /// holds): a writer found mid-update is looked at again in 10 ms, and reported stuck when it
    /// has stayed so for WRITER_STUCK_MS.
    fn liveness(&mut self) -> Result<Duration, Error> {
        let mut mid_update_since = self.mid_update_since.take();
        let verdict = self.liveness_in(&mut mid_update_since);
        self.mid_update_since = mid_update_since;
        verdict
    }

    /// [`Clock::liveness`] for a waiter that keeps its own "mid-update since" (a shared `&Clock`).
    pub(crate) fn liveness_in(&self, mid_update_since: &mut Option<Instant>) -> Result<Duration, Error> {
        let c = &self.page.page().clock;
        if seqlock::try_read(&c.seq, || ()).is_none() {
            let since = *mid_update_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= seqlock::WRITER_STUCK_AFTER {
                *mid_update_since = None;
                return Err(Error::WriterStuck);
            }
            return Ok(Duration::from_millis(10));
        }
        *mid_update_since = None;
        match self.now() {
            Ok(_) => {}
            Err(Error::Unavailable(_) | Error::NoTimeYet | Error::CounterUnavailable(_)) => {
                return Ok(IDLE_RECHECK)
            }
            Err(e) => return Err(e),
        }
        let snap = self.snapshot()?;
        let age = self.age_ns(&snap).unwrap_or(0);
        let left = self.max_age_ns(&snap).saturating_sub(age);
        // A millisecond past the limit, so the check after the sleep finds the page stale.
        Ok(Duration::from_nanos(left) + Duration::from_millis(1))
    }

    /// The mapped page.
    pub(crate) fn page_ref(&self) -> &abi::Page {
        self.page.page()
    }

    /// The staleness limit for a page updating every `interval_ns`.
    pub(crate) fn max_age_for(&self, interval_ns: u64) -> u64 {
        self.max_age_ns.unwrap_or_else(|| default_max_age_ns(interval_ns))
    }

    /// The clock block's sequence word, which the writer FUTEX_WAKEs after every update.
    pub(crate) fn clock_futex(&self) -> &std::sync::atomic::AtomicU32 {
        &self.page.page().clock.seq
    }

    /// Makes the next [`Clock::wait_event`] calls replay the events still in the ring.
    pub fn rewind_events(&mut self) {
        let head = self.page.page().events.head.load(Acquire);
        self.cursor = head.saturating_sub(EVENT_RING_LEN as u64);
    }
}

/// Raw statuses below this are usable ([`Status::is_usable`]): UNSYNCHRONIZED … HOLDOVER.
const USABLE_BELOW: u32 = Status::DeviceLost as u32;

/// The fast path takes counters at most this many ticks past the anchor: 2^44 is 880 s at 20 GHz,
/// far beyond any page's default max age (3 update intervals, at least 1 s); beyond it (a reader's
/// own longer max age) the general path computes in full range.
const FAST_TICKS: u64 = 1 << 44;

/// The fast path's largest period: 1 ns per tick (a counter of 1 GHz or more), so that
/// `period << 16` fits in 64 bits. A slower TSC takes the general path.
const FAST_PERIOD_MAX: u64 = (1 << PERIOD_SHIFT) - 1;

/// ⌈2^64 / 10^12⌉: ppt (ps per s) as a fraction of 2^64, rounded up.
const PPT_TO_2_64THS: u64 = 18_446_745;

/// An error bound's growth over `since_ns` at `growth_ppt` ps per s: one multiply (and the
/// factor's, a constant times the page's rate), never below [`error_at`]'s
/// `since × growth / 10^12` rounded down, and above it by at most 10^-7 of the growth plus 1 ns
/// (the factor is rounded up by less than 10^-7 of itself): conservative, as a bound must be.
#[inline(always)]
fn growth_ns(since_ns: u64, growth_ppt: u32) -> u64 {
    // growth_ppt < 2^32, the factor < 2^57 fits in 64 bits; the 128-bit product's high half is
    // below 2^57 for any since.
    ((since_ns as u128 * (growth_ppt as u64 * PPT_TO_2_64THS) as u128) >> 64) as u64
}

/// The status of a raw value below [`USABLE_BELOW`], without a bounds check.
#[inline(always)]
fn status_from_usable(raw: u32) -> Status {
    match raw {
        0 => Status::Unsynchronized,
        1 => Status::Locking,
        2 => Status::Locked,
        _ => Status::Holdover,
    }
}

#[cold]
#[inline(never)]
pub(crate) fn unusable(status: u32, updated: u64) -> Error {
    match Status::from_raw(status) {
        None => Error::Corrupt { field: "status", value: status.into() },
        Some(status) if !status.is_usable() => Error::Unavailable(status),
        Some(_) if updated == 0 => Error::NoTimeYet,
        Some(_) => Error::Corrupt { field: "update time", value: updated },
    }
}

#[cold]
#[inline(never)]
fn no_counter(kind: u32) -> Error {
    match CounterKind::from_raw(kind) {
        Some(kind) => Error::CounterUnavailable(kind),
        None => Error::Corrupt { field: "counter kind", value: kind.into() },
    }
}

#[cold]
#[inline(never)]
fn writer_stuck() -> Error {
    Error::WriterStuck
}

#[cold]
#[inline(never)]
fn implausible_period(kind: u32, period: u64) -> Error {
    match CounterKind::from_raw(kind) {
        Some(kind) => check_period(kind, period).expect_err("called for an implausible period"),
        None => no_counter(kind),
    }
}

/// `Err(ImplausiblePeriod)` unless `period` lies in the kind's plausible range.
pub(crate) fn check_period(kind: CounterKind, period: u64) -> Result<(), Error> {
    let (min, max) = abi::period_range(kind);
    if (min..=max).contains(&period) {
        return Ok(());
    }
    let ns = crate::snapshot::period_to_ns_per_tick;
    Err(Error::ImplausiblePeriod { kind, ns_per_tick: ns(period), min: ns(min), max: ns(max) })
}

/// The verdict on a reading whose age or distance from the anchor is out of range.
#[cold]
#[inline(never)]
fn out_of_range(since: i64, age: i128, max_age_ns: u64) -> Error {
    let tolerance = MAX_COUNTER_BEFORE_ANCHOR_NS as i128;
    let ahead = (-(since as i128)).max(-age);
    if ahead > tolerance {
        Error::AheadOfCounter { ahead_ns: ahead.min(u64::MAX as i128) as u64 }
    } else {
        let age_ns = age.clamp(0, u64::MAX as i128) as u64;
        Error::Stale { age_ms: age_ns / 1_000_000, max_age_ms: max_age_ns / 1_000_000 }
    }
}

/// An instant no timeout reaches (`Instant + Duration` would overflow).
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

/// What the fast path reads from the page's clock block (`utc` only for a UTC reading).
struct Fast {
    kind: u32,
    counter_value: u64,
    period: u64,
    anchor: u64,
    bound: u64,
    growth: u32,
    status: u32,
    updated: u64,
    interval: u64,
    epoch: u32,
    est: u64,
    est_growth: u32,
    utc: (i32, u32, u64),
}

struct Reading {
    kind: u32,
    counter_value: u64,
    period: u64,
    anchor: u64,
    bound: u64,
    growth: u64,
    status: u32,
    updated: u64,
    interval: u64,
    epoch: u32,
    est: u64,
    est_growth: u32,
    utc: Option<(i32, u32, u64)>,
}

/// Page names found in `dir` (files `nicclock-*`), sorted.
pub fn list_pages(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let entries = fs::read_dir(dir).map_err(|e| Error::Io { action: "list", path: dir.into(), err: e })?;
    let mut pages: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let name = file.strip_prefix(FILE_PREFIX)?.to_string();
            (!name.is_empty()).then(|| (name, e.path()))
        })
        .collect();
    pages.sort();
    Ok(pages)
}
