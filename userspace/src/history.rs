//! The page's history of past mappings (ABI minor 4): the writer folds each finished update
//! interval into a ring of [`HistoryEntry`]s, a reader finds the entry that held a past counter.
//!
//! An entry stands for one or more consecutive update intervals of one disruption epoch, at least
//! [`HISTORY_SPAN_NS`] of them unless a disruption closes it early. Its line is the first
//! interval's mapping; its bounds hold over every interval it stands for: each interval's own
//! bound grown to the interval's end, plus how far the entry's line strays from the interval's
//! line (linear in between, so the larger of the two ends), plus 1 ns of rounding.

use std::sync::atomic::Ordering::Relaxed;

use crate::abi::{HistoryEntry, Page, HISTORY_LEN, HISTORY_SPAN_NS};
use crate::seqlock;
use crate::snapshot::{error_at, tai_at, ticks_to_ns, Snapshot};

/// One past mapping as the page's history holds it ([`crate::Clock::history`]): the mapping in
/// force for counter values in `[counter_start, counter_end)`, with errors that hold anywhere in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastMapping {
    /// Entry number, 1-based, counting on across writer restarts.
    pub number: u64,
    /// Disruption epoch of the updates it stands for.
    pub epoch: u32,
    pub counter_start: u64,
    pub counter_end: u64,
    /// TAI ns at `counter_start`.
    pub anchor_tai_ns: u64,
    /// ns per tick × 2^48.
    pub counter_period: u64,
    /// Maximum error anywhere in it, ns (`u64::MAX`: unknown).
    pub max_error_ns: u64,
    /// Estimated error anywhere in it, ns (`u64::MAX`: unknown).
    pub est_error_ns: u64,
}

type Entry = PastMapping;

impl Entry {
    fn store(&self, e: &HistoryEntry) {
        e.epoch.store(self.epoch, Relaxed);
        e.number.store(self.number, Relaxed);
        e.counter_start.store(self.counter_start, Relaxed);
        e.counter_end.store(self.counter_end, Relaxed);
        e.anchor_tai_ns.store(self.anchor_tai_ns, Relaxed);
        e.counter_period.store(self.counter_period, Relaxed);
        e.max_error_ns.store(self.max_error_ns, Relaxed);
        e.est_error_ns.store(self.est_error_ns, Relaxed);
    }

    pub(crate) fn load(e: &HistoryEntry) -> Entry {
        Entry {
            number: e.number.load(Relaxed),
            epoch: e.epoch.load(Relaxed),
            counter_start: e.counter_start.load(Relaxed),
            counter_end: e.counter_end.load(Relaxed),
            anchor_tai_ns: e.anchor_tai_ns.load(Relaxed),
            counter_period: e.counter_period.load(Relaxed),
            max_error_ns: e.max_error_ns.load(Relaxed),
            est_error_ns: e.est_error_ns.load(Relaxed),
        }
    }

    /// TAI ns at `counter` by this entry's line.
    #[inline]
    pub fn tai_at(&self, counter: u64) -> i128 {
        tai_at(self.counter_start, self.counter_period, self.anchor_tai_ns, counter)
    }
}

/// The writer's side: the entry still open (being extended) and the ring's head.
#[derive(Debug, Default)]
pub(crate) struct HistoryWriter {
    open: Option<Entry>,
    head: u64,
}

impl HistoryWriter {
    /// Continues the ring of `page` (a writer taking a page over keeps its numbering; entries of
    /// the earlier writer carry an older epoch and are refused by readers).
    pub fn resume(page: &Page) -> Self {
        Self { open: None, head: page.clock.history_head.load(Relaxed) }
    }

    /// Entries opened so far (what `ClockData::history_head` publishes).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Folds the interval of `last`'s mapping, in force from its anchor up to (not including)
    /// counter `end` (the next update's anchor), into the ring.
    pub fn close(&mut self, page: &Page, last: &Snapshot, end: u64) {
        let start = last.counter_value;
        if end.wrapping_sub(start) as i64 <= 0 {
            return; // a counter that went backwards: nothing to cover
        }
        let span_ns = ticks_to_ns(end.wrapping_sub(start) as i64, last.counter_period).unsigned_abs();
        let max = error_at(last.error_bound_ns, last.error_growth_ppt as u64, span_ns);
        let est = match last.epoch {
            0 => u64::MAX,
            _ => error_at(last.estimate.error_ns, last.estimate.growth_ppt as u64, span_ns),
        };
        let extend = self.open.filter(|o| {
            o.epoch == last.epoch
                && o.counter_end == start
                && (last.anchor_tai_ns as i128 - o.anchor_tai_ns as i128) < HISTORY_SPAN_NS as i128
        });
        let entry = match extend {
            Some(mut o) => {
                let at_start = (o.tai_at(start) - last.anchor_tai_ns as i128).unsigned_abs();
                let at_end = (o.tai_at(end) - last.tai_at(end)).unsigned_abs();
                let stray = (at_start.max(at_end) + 1).min(u64::MAX as u128) as u64;
                o.max_error_ns = o.max_error_ns.max(max.saturating_add(stray));
                o.est_error_ns = o.est_error_ns.max(est.saturating_add(stray));
                o.counter_end = end;
                o
            }
            None => {
                self.head += 1;
                Entry {
                    number: self.head,
                    epoch: last.epoch,
                    counter_start: start,
                    counter_end: end,
                    anchor_tai_ns: last.anchor_tai_ns,
                    counter_period: last.counter_period,
                    max_error_ns: max,
                    est_error_ns: est,
                }
            }
        };
        let slot = &page.history[slot_of(entry.number)];
        seqlock::write(&slot.seq, || entry.store(slot));
        self.open = Some(entry);
    }
}

#[inline]
pub(crate) fn slot_of(number: u64) -> usize {
    ((number - 1) % HISTORY_LEN as u64) as usize
}

/// Why no entry holds a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Older than every entry still in the ring; the oldest covers from this counter on (None:
    /// the ring is empty).
    TooOld { oldest_start: Option<u64> },
    /// An entry stayed mid-write for WRITER_STUCK_MS.
    Stuck,
}

/// The entry holding `counter`, newest first from entry `head` (read from the clock block).
/// An entry is skipped on one relaxed load of its start (a slot only ever gets a later start, so a
/// skip is never wrong); the one that may hold `counter` is read whole under its own sequence
/// word and checked: the expected number (not overwritten since) and `counter` inside it. Never
/// half of one update and half of another.
#[inline]
pub(crate) fn lookup(page: &Page, head: u64, counter: u64) -> Result<Entry, Miss> {
    let lowest = head.saturating_sub(HISTORY_LEN as u64 - 1).max(1);
    let mut n = head;
    let mut oldest_start = None;
    while n >= lowest {
        let slot = &page.history[slot_of(n)];
        let start = slot.counter_start.load(Relaxed);
        if (counter.wrapping_sub(start) as i64) < 0 {
            oldest_start = Some(start);
            n -= 1;
            continue;
        }
        let e = seqlock::read(&slot.seq, || Entry::load(slot)).ok_or(Miss::Stuck)?;
        let inside = counter.wrapping_sub(e.counter_start) as i64 >= 0
            && (counter.wrapping_sub(e.counter_end) as i64) < 0;
        if e.number == n && inside {
            return Ok(e);
        }
        // Overwritten since the head was read (what it held is gone), or a gap between two
        // writers' entries: not covered.
        break;
    }
    Err(Miss::TooOld { oldest_start })
}
