//! The reader: maps a page read-only and computes the time from the CPU counter without a syscall,
//! with its error bound and status; waits for clock events on the page's futex word.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::{Duration, Instant};

use crate::abi::{CounterKind, Status, DEFAULT_DIR, EVENT_RING_LEN, FILE_PREFIX};
use crate::error::Error;
use crate::identity::Identity;
use crate::name::{name_problem, page_path};
use crate::page::{counter, futex, ReadOnlyPage};
use crate::seqlock;
use crate::snapshot::{error_at, ticks_to_ns, utc_offset_at, Event, Snapshot};

/// A reading of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// ns since 1970-01-01 00:00:00 in the time scale asked for (TAI from [`Clock::now`], UTC from
    /// [`Clock::now_utc`]).
    pub time_ns: u64,
    /// The true time lies within ± this many ns (`u64::MAX`: unknown).
    pub error_bound_ns: u64,
    pub status: Status,
}

impl Now {
    /// Earliest time the true time can be.
    pub fn earliest_ns(&self) -> u64 {
        self.time_ns.saturating_sub(self.error_bound_ns)
    }

    /// Latest time the true time can be.
    pub fn latest_ns(&self) -> u64 {
        self.time_ns.saturating_add(self.error_bound_ns)
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
pub struct Clock {
    page: ReadOnlyPage,
    max_age_ns: Option<u64>,
    cursor: u64,
}

/// Staleness limit when the reader sets none: 3 update intervals, at least 1 s.
pub fn default_max_age_ns(update_interval_ns: u64) -> u64 {
    update_interval_ns.saturating_mul(3).max(1_000_000_000)
}

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
        Ok(Self { page, max_age_ns: None, cursor })
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
    /// the device is lost or the daemon stopped, or no time was published yet.
    #[inline(always)]
    pub fn now(&self) -> Result<Now, Error> {
        self.read_time(false)
    }

    /// UTC now (TAI − the page's TAI−UTC offset, leap second applied when due).
    #[inline(always)]
    pub fn now_utc(&self) -> Result<Now, Error> {
        self.read_time(true)
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
        raw.check()
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
    /// built out of line in a cold function.
    #[inline(always)]
    fn read_time(&self, utc: bool) -> Result<Now, Error> {
        // The TSC is read first, before the page is even looked at: `lfence; rdtsc` then waits only
        // for the caller's earlier loads (the ordering guarantee a clock read owes its caller), not
        // for our pointer chase into the page. A mapping published after that read just makes
        // `since` slightly negative. Pages in CLOCK_MONOTONIC_RAW (no invariant TSC) read theirs below.
        let tsc = counter::tsc();
        let c = &self.page.page().clock;
        let Some(r) = seqlock::read(&c.seq, || Reading {
            kind: c.counter_kind.load(Relaxed),
            counter_value: c.counter_value.load(Relaxed),
            period: c.counter_period.load(Relaxed),
            anchor: c.anchor_tai_ns.load(Relaxed),
            bound: c.error_bound_ns.load(Relaxed),
            growth: c.error_growth_ppt.load(Relaxed) as u64,
            status: c.status.load(Relaxed),
            updated: c.updated_tai_ns.load(Relaxed),
            interval: c.update_interval_ns.load(Relaxed),
            utc: utc.then(|| {
                (c.tai_utc_offset_s.load(Relaxed), c.leap.load(Relaxed), c.leap_tai_s.load(Relaxed))
            }),
        }) else {
            return Err(Error::WriterStuck);
        };
        let counter_now = match r.kind {
            1 => tsc,
            2 => Some(counter::monotonic_raw_ns()),
            _ => None,
        };

        let status = match Status::from_raw(r.status) {
            Some(status) if status.is_usable() && r.updated != 0 => status,
            _ => return Err(unusable(r.status, r.updated)),
        };
        let Some(counter_now) = counter_now else {
            return Err(no_counter(r.kind));
        };
        let since = ticks_to_ns(counter_now.wrapping_sub(r.counter_value) as i64, r.period);
        let tai = r.anchor.saturating_add_signed(since);
        let age = tai.saturating_sub(r.updated);
        let max_age = self.max_age_ns.unwrap_or_else(|| default_max_age_ns(r.interval));
        if age > max_age {
            return Err(stale(age, max_age));
        }
        let error_bound_ns = error_at(r.bound, r.growth, since.unsigned_abs());
        let time_ns = match r.utc {
            None => tai,
            Some((offset, leap, leap_tai_s)) => {
                let leap = crate::abi::Leap::from_raw(leap)
                    .ok_or_else(|| Error::Corrupt { field: "leap indicator", value: leap.into() })?;
                let offset = utc_offset_at(offset, leap, leap_tai_s, tai / 1_000_000_000);
                tai.saturating_add_signed(-(offset as i64) * 1_000_000_000)
            }
        };
        Ok(Now { time_ns, error_bound_ns, status })
    }

    /// Blocks (in the kernel, on the page's futex word) until the next event or the timeout
    /// (`None`: forever). Delivers every event in order; reports overwritten ones as `Missed`.
    pub fn wait_event(&mut self, timeout: Option<Duration>) -> Result<EventWait, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let ev = &self.page.page().events;
        loop {
            let word = ev.futex.load(Acquire);
            let head = ev.head.load(Acquire);
            if head < self.cursor {
                // The page was re-created under us; start over with what it has.
                self.cursor = head.saturating_sub(EVENT_RING_LEN as u64);
            }
            if head > self.cursor {
                let oldest = head.saturating_sub(EVENT_RING_LEN as u64) + 1;
                if self.cursor + 1 < oldest {
                    let missed = oldest - 1 - self.cursor;
                    self.cursor = oldest - 1;
                    return Ok(EventWait::Missed(missed));
                }
                let number = self.cursor + 1;
                let slot = &self.page.page().ring[((number - 1) % EVENT_RING_LEN as u64) as usize];
                match seqlock::read_slot(&slot.seq, number, || Event::load(number, slot)) {
                    Some((_, _, Some(event))) => {
                        self.cursor = number;
                        return Ok(EventWait::Event(event));
                    }
                    Some((kind, urgency, None)) => {
                        self.cursor = number;
                        return Err(Error::Corrupt {
                            field: "event kind/urgency",
                            value: (kind as u64) << 16 | urgency as u64,
                        });
                    }
                    // Overwritten while we looked: the next round counts it as missed.
                    None => continue,
                }
            }
            let remaining = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return Ok(EventWait::TimedOut),
                },
            };
            futex::wait(&ev.futex, word, remaining).map_err(|e| Error::Io {
                action: "wait for events on",
                path: self.page.path().into(),
                err: e,
            })?;
        }
    }

    /// Makes the next [`Clock::wait_event`] calls replay the events still in the ring.
    pub fn rewind_events(&mut self) {
        let head = self.page.page().events.head.load(Acquire);
        self.cursor = head.saturating_sub(EVENT_RING_LEN as u64);
    }
}

#[cold]
#[inline(never)]
fn unusable(status: u32, updated: u64) -> Error {
    match Status::from_raw(status) {
        None => Error::Corrupt { field: "status", value: status.into() },
        Some(status) if !status.is_usable() => Error::Unavailable(status),
        Some(_) => {
            debug_assert_eq!(updated, 0);
            Error::NoTimeYet
        }
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
fn stale(age_ns: u64, max_age_ns: u64) -> Error {
    Error::Stale { age_ms: age_ns / 1_000_000, max_age_ms: max_age_ns / 1_000_000 }
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
