//! Past timestamps: a counter value or a system-clock timestamp taken earlier, converted to TAI/UTC
//! with the mapping that was in force then (the page's history, ABI minor 4), not today's.
//!
//! A system-clock timestamp is first carried back to the counter by a bracketed reading of that
//! clock now (`counter, clock, counter`, best of three): the counter at the timestamp is the
//! bracket's middle minus the timestamp's age. What that can get wrong is added to the bound: half
//! the bracket, and the age × [`CLOCK_RATE_TOLERANCE_PPM`] (the system clock may run at another
//! rate than the page's clock: NTP frequency and slew). CLOCK_MONOTONIC_RAW on a page whose
//! counter *is* CLOCK_MONOTONIC_RAW needs no bracket. CLOCK_REALTIME is stepped by
//! `settimeofday`: a realtime timestamp from before such a step converts wrongly (the bound cannot
//! know); prefer CLOCK_MONOTONIC.
//!
//! Refused, never guessed: a timestamp from an older disruption epoch (taken before a step, a
//! restart of nicclockd, a reference or device change — or in the update interval in which that
//! happened), one older than the history, one in the future.

use std::sync::atomic::Ordering::Relaxed;

use crate::abi::{
    CounterKind, Status, CLOCK_RATE_TOLERANCE_PPM, HISTORY_LEN, MAX_COUNTER_BEFORE_ANCHOR_NS,
    MONOTONIC_RAW_PERIOD_MAX, MONOTONIC_RAW_PERIOD_MIN, PERIOD_SHIFT, TSC_PERIOD_MAX, TSC_PERIOD_MIN,
};
use crate::error::Error;
use crate::history::{self, Miss, PastMapping};
use crate::page::counter;
use crate::reader::{check_period, unusable, Clock, Now};
use crate::seqlock;
use crate::snapshot::{error_at, ticks_to_ns, utc_offset_at};

/// A timestamp taken earlier, in a clock this reader can carry back to the page's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Past {
    /// A value of the page's counter: TSC ticks on a TSC page, CLOCK_MONOTONIC_RAW ns on a
    /// CLOCK_MONOTONIC_RAW page ([`crate::counter::read`] gives it).
    Counter(u64),
    /// CLOCK_MONOTONIC, ns (`tv_sec × 10^9 + tv_nsec`): what V4L2 stamps frames with.
    Monotonic(u64),
    /// CLOCK_MONOTONIC_RAW, ns.
    MonotonicRaw(u64),
    /// CLOCK_REALTIME, ns since 1970 UTC.
    Realtime(u64),
}

impl Past {
    fn clock_id(self) -> Option<libc::clockid_t> {
        match self {
            Past::Counter(_) => None,
            Past::Monotonic(_) => Some(libc::CLOCK_MONOTONIC),
            Past::MonotonicRaw(_) => Some(libc::CLOCK_MONOTONIC_RAW),
            Past::Realtime(_) => Some(libc::CLOCK_REALTIME),
        }
    }
}

/// What a past conversion needs of the clock block, read under its sequence word.
struct Block {
    kind: u32,
    counter_value: u64,
    period: u64,
    anchor: u64,
    bound: u64,
    growth: u32,
    est: u64,
    est_growth: u32,
    status: u32,
    updated: u64,
    interval: u64,
    epoch: u32,
    head: u64,
    utc: Option<(i32, u32, u64)>,
}

impl Clock {
    /// TAI at a timestamp taken earlier ([`Past`]), by the mapping in force then, with both
    /// errors (and what carrying a system-clock timestamp to the counter adds) and the epoch.
    /// The page must be usable now (as for [`Clock::now`]). Errors besides `now()`'s:
    /// [`Error::BeforeDisruption`] (taken before a step, restart, reference or device change),
    /// [`Error::OlderThanHistory`] (older than the page's history: at least
    /// [`crate::abi::HISTORY_DEPTH_NS`]), [`Error::InTheFuture`], [`Error::NoHistory`] (a page of
    /// an older writer: only timestamps since its last update convert).
    #[inline]
    pub fn convert(&self, when: Past) -> Result<Now, Error> {
        self.convert_in(when, false)
    }

    /// The page's history of past mappings, newest first (empty on a page of an older writer):
    /// each entry read whole under its own sequence word, the list cut where the writer has
    /// overwritten an entry since the head was read.
    pub fn history(&self) -> Result<Vec<PastMapping>, Error> {
        let page = self.page_ref();
        let c = &page.clock;
        let head = seqlock::read(&c.seq, || c.history_head.load(Relaxed)).ok_or(Error::WriterStuck)?;
        let mut out = Vec::with_capacity(HISTORY_LEN);
        let lowest = head.saturating_sub(HISTORY_LEN as u64 - 1).max(1);
        for n in (lowest..=head).rev() {
            let slot = &page.history[history::slot_of(n)];
            let e = seqlock::read(&slot.seq, || PastMapping::load(slot)).ok_or(Error::WriterStuck)?;
            if e.number != n {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    /// [`Clock::convert`] in UTC (the TAI−UTC offset in force at that time, leap applied).
    pub fn convert_utc(&self, when: Past) -> Result<Now, Error> {
        self.convert_in(when, true)
    }

    /// The hot path, as `now()`'s: one seqlock copy, checks inline, errors built out of line.
    /// A counter inside the history needs no counter read: the entry's bounds were fixed when its
    /// interval closed, whatever the page does now. One in the current interval is checked as
    /// `now()` checks a reading (page alive, not ahead of the counter) and not in the future.
    #[inline(always)]
    fn convert_in(&self, when: Past, utc: bool) -> Result<Now, Error> {
        let page = self.page_ref();
        let c = &page.clock;
        let read = seqlock::read(&c.seq, || Block {
            kind: c.counter_kind.load(Relaxed),
            counter_value: c.counter_value.load(Relaxed),
            period: c.counter_period.load(Relaxed),
            anchor: c.anchor_tai_ns.load(Relaxed),
            bound: c.error_bound_ns.load(Relaxed),
            growth: c.error_growth_ppt.load(Relaxed),
            est: c.est_error_ns.load(Relaxed),
            est_growth: c.est_error_growth_ppt.load(Relaxed),
            status: c.status.load(Relaxed),
            updated: c.updated_tai_ns.load(Relaxed),
            interval: c.update_interval_ns.load(Relaxed),
            // Minor < 4 in the header: an older writer (perhaps over a newer one's page): no history.
            epoch: if page.header.abi_minor.load(Relaxed) >= 4 {
                c.disruption_epoch.load(Relaxed)
            } else {
                0
            },
            head: c.history_head.load(Relaxed),
            utc: utc.then(|| {
                (c.tai_utc_offset_s.load(Relaxed), c.leap.load(Relaxed), c.leap_tai_s.load(Relaxed))
            }),
        });
        let Some(b) = read else {
            return Err(stuck());
        };
        let status = match Status::from_raw(b.status) {
            Some(s) if s.is_usable() && b.updated.wrapping_sub(1) < (1 << 63) - 1 => s,
            _ => return Err(unusable(b.status, b.updated)),
        };
        let (kind, min, max) = match b.kind {
            1 => (CounterKind::Tsc, TSC_PERIOD_MIN, TSC_PERIOD_MAX),
            2 => (CounterKind::MonotonicRaw, MONOTONIC_RAW_PERIOD_MIN, MONOTONIC_RAW_PERIOD_MAX),
            _ => return Err(bad_mapping(b.kind, b.period)),
        };
        if b.period.wrapping_sub(min) > max - min {
            return Err(bad_mapping(b.kind, b.period));
        }
        let (counter_then, carried_ns) = match when {
            Past::Counter(c) => (c, 0),
            _ => to_counter(when, kind, b.period)?,
        };
        let (tai, bound, est, epoch) = if counter_then.wrapping_sub(b.counter_value) as i64 >= 0 {
            // In the interval of the mapping in force now: as now() would, plus "not yet".
            let Some(counter_now) = counter::read(kind) else {
                return Err(Error::CounterUnavailable(kind));
            };
            self.check_alive(&b, counter_now)?;
            let ahead = ticks_to_ns(counter_then.wrapping_sub(counter_now) as i64, b.period);
            if ahead > MAX_COUNTER_BEFORE_ANCHOR_NS as i64 {
                return Err(Error::InTheFuture { ahead_ns: ahead as u64 });
            }
            let since = ticks_to_ns(counter_then.wrapping_sub(b.counter_value) as i64, b.period);
            let bound = error_at(b.bound, b.growth as u64, since.unsigned_abs());
            let est = match b.epoch {
                0 => bound,
                _ => error_at(b.est, b.est_growth as u64, since.unsigned_abs()).min(bound),
            };
            (b.anchor as i128 + since as i128, bound, est, b.epoch)
        } else {
            if b.epoch == 0 {
                return Err(Error::NoHistory { minor: page.header.abi_minor.load(Relaxed) });
            }
            match history::lookup(page, b.head, counter_then) {
                Ok(e) if e.epoch == b.epoch => {
                    if e.counter_period.wrapping_sub(min) > max - min {
                        return Err(bad_mapping(b.kind, e.counter_period));
                    }
                    (e.tai_at(counter_then), e.max_error_ns, e.est_error_ns.min(e.max_error_ns), e.epoch)
                }
                Ok(e) => return Err(Error::BeforeDisruption { then: e.epoch, now: b.epoch }),
                Err(miss) => return Err(missed(miss, kind, b.period)),
            }
        };
        let tai = tai.clamp(0, u64::MAX as i128) as u64;
        let add = |e: u64| if e == u64::MAX { e } else { e.saturating_add(carried_ns) };
        let time_ns = match b.utc {
            None => tai,
            Some((offset, leap, leap_tai_s)) => {
                let leap = crate::abi::Leap::from_raw(leap)
                    .ok_or(Error::Corrupt { field: "leap indicator", value: leap.into() })?;
                let offset = utc_offset_at(offset, leap, leap_tai_s, tai / 1_000_000_000);
                tai.saturating_add_signed(-(offset as i64) * 1_000_000_000)
            }
        };
        Ok(Now::new(time_ns, add(bound), add(est), status, epoch))
    }

    /// The page is alive at `counter_now` (age within the max age, not ahead of the counter).
    #[inline(always)]
    fn check_alive(&self, b: &Block, counter_now: u64) -> Result<(), Error> {
        let since_now = ticks_to_ns(counter_now.wrapping_sub(b.counter_value) as i64, b.period);
        let age = since_now as i128 + b.anchor as i128 - b.updated as i128;
        let tolerance = MAX_COUNTER_BEFORE_ANCHOR_NS as i128;
        let max_age = self.max_age_for(b.interval) as i128;
        if (since_now as i128) < -tolerance || age < -tolerance || age > max_age {
            return Err(not_alive(since_now, age, max_age));
        }
        Ok(())
    }
}

#[cold]
#[inline(never)]
fn stuck() -> Error {
    Error::WriterStuck
}

#[cold]
#[inline(never)]
fn bad_mapping(kind: u32, period: u64) -> Error {
    match CounterKind::from_raw(kind) {
        None => Error::Corrupt { field: "counter kind", value: kind.into() },
        Some(kind) => check_period(kind, period).expect_err("called for an implausible period"),
    }
}

#[cold]
#[inline(never)]
fn not_alive(since_now: i64, age: i128, max_age: i128) -> Error {
    let tolerance = MAX_COUNTER_BEFORE_ANCHOR_NS as i128;
    if (since_now as i128) < -tolerance || age < -tolerance {
        let ahead = (-(since_now as i128)).max(-age).min(u64::MAX as i128) as u64;
        return Error::AheadOfCounter { ahead_ns: ahead };
    }
    let age_ms = (age / 1_000_000).min(u64::MAX as i128) as u64;
    Error::Stale { age_ms, max_age_ms: (max_age / 1_000_000) as u64 }
}

/// Why the history held no entry, said with how far back it reaches (by the current rate).
#[cold]
#[inline(never)]
fn missed(miss: Miss, kind: CounterKind, period: u64) -> Error {
    match miss {
        Miss::Stuck => Error::WriterStuck,
        Miss::TooOld { oldest_start } => {
            let reach = match (oldest_start, counter::read(kind)) {
                (Some(s), Some(now)) => ticks_to_ns(now.wrapping_sub(s) as i64, period).max(0) as u64,
                _ => 0,
            };
            Error::OlderThanHistory { history_ms: reach / 1_000_000 }
        }
    }
}

/// The counter value at `when` and the ns of uncertainty carrying it there added.
#[inline(always)]
fn to_counter(when: Past, kind: CounterKind, period: u64) -> Result<(u64, u64), Error> {
    let (t, clock) = match (when, when.clock_id()) {
        (Past::Counter(c), _) => return Ok((c, 0)),
        (Past::MonotonicRaw(ns), _) if kind == CounterKind::MonotonicRaw => return Ok((ns, 0)),
        (Past::Monotonic(t) | Past::MonotonicRaw(t) | Past::Realtime(t), Some(clock)) => (t, clock),
        _ => unreachable!("every system clock has an id"),
    };
    let s = counter::sample_clock(kind, clock, 3);
    let age_ns = s.clock_ns as i128 - t as i128;
    if age_ns < -(MAX_COUNTER_BEFORE_ANCHOR_NS as i128) {
        return Err(Error::InTheFuture { ahead_ns: (-age_ns).min(u64::MAX as i128) as u64 });
    }
    let age_ns = age_ns.max(0) as u128;
    // ns → ticks by the page's rate (ns per tick × 2^48).
    let ticks = ((age_ns << PERIOD_SHIFT) / period as u128).min(i64::MAX as u128) as u64;
    let half_window_ns = ticks_to_ns((s.window / 2 + 1) as i64, period).unsigned_abs();
    let rate_ns = (age_ns * CLOCK_RATE_TOLERANCE_PPM as u128).div_ceil(1_000_000) as u64;
    Ok((s.counter.wrapping_sub(ticks), half_window_ns + rate_ns + 1))
}
