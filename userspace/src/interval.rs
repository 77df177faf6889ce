//! TrueTime-style intervals: the TAI span the true time lies in at one reading, the certain
//! orderings between two such spans, and a midpoint that refuses a span wider than the caller allows.

use crate::error::Error;
use crate::reader::{Clock, Now};

/// `[earliest_ns, latest_ns]`, TAI ns since 1970: the true time of a reading lies in it (both ends
/// included). A reading with an unknown bound is `[0, u64::MAX]`, which orders against nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    pub earliest_ns: u64,
    pub latest_ns: u64,
}

impl Interval {
    /// The interval of one known instant (e.g. a commit timestamp to compare a reading against).
    pub fn point(t_ns: u64) -> Self {
        Self { earliest_ns: t_ns, latest_ns: t_ns }
    }

    /// `latest - earliest`, ns (twice the error bound, or `u64::MAX` for an unknown bound).
    pub fn width_ns(&self) -> u64 {
        self.latest_ns.saturating_sub(self.earliest_ns)
    }

    /// True when every instant of `self` lies before every instant of `other`: whatever the
    /// errors, the event read as `self` happened first. False when the two overlap (or touch).
    pub fn definitely_before(&self, other: &Interval) -> bool {
        self.latest_ns < other.earliest_ns
    }

    /// True when every instant of `self` lies after every instant of `other`.
    pub fn definitely_after(&self, other: &Interval) -> bool {
        self.earliest_ns > other.latest_ns
    }

    /// The middle of the interval (the reading's own time for a symmetric bound), if the interval
    /// is at most `max_width_ns` wide; `Err(WindowTooWide)` otherwise, so a caller never takes a
    /// timestamp less certain than it can use.
    pub fn midpoint(&self, max_width_ns: u64) -> Result<u64, Error> {
        let width = self.width_ns();
        if width > max_width_ns {
            return Err(Error::WindowTooWide { width_ns: width, max_width_ns });
        }
        Ok(self.earliest_ns + width / 2)
    }
}

impl Now {
    /// The interval this reading's true time lies in (TAI or UTC, as the reading).
    #[inline(always)]
    pub fn interval(&self) -> Interval {
        Interval { earliest_ns: self.earliest_ns(), latest_ns: self.latest_ns() }
    }
}

impl Clock {
    /// TAI now as an interval: [`Clock::now`] with its bound applied (same errors, same cost).
    #[inline(always)]
    pub fn now_interval(&self) -> Result<Interval, Error> {
        match self.now() {
            Ok(now) => Ok(now.interval()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(earliest_ns: u64, latest_ns: u64) -> Interval {
        Interval { earliest_ns, latest_ns }
    }

    #[test]
    fn orderings_hold_only_without_overlap() {
        let a = iv(100, 200);
        assert!(a.definitely_before(&iv(201, 300)));
        assert!(iv(201, 300).definitely_after(&a));
        // Touching or overlapping intervals order neither way.
        for b in [iv(200, 300), iv(150, 160), iv(0, 100), iv(50, 250)] {
            assert!(!a.definitely_before(&b) && !a.definitely_after(&b), "{a:?} vs {b:?}");
            assert!(!b.definitely_before(&a) && !b.definitely_after(&a), "{b:?} vs {a:?}");
        }
        assert!(iv(301, 400).definitely_after(&a) && !a.definitely_after(&iv(301, 400)));
    }

    #[test]
    fn points_compare_as_timestamps() {
        let reading = iv(1_000, 1_100);
        assert!(reading.definitely_after(&Interval::point(999)));
        assert!(!reading.definitely_after(&Interval::point(1_000)), "earliest must exceed t");
        assert!(reading.definitely_before(&Interval::point(1_101)));
        assert!(!reading.definitely_before(&Interval::point(1_100)));
    }

    #[test]
    fn an_unknown_bound_orders_against_nothing() {
        let unknown = Now::new(5_000, u64::MAX, u64::MAX, crate::Status::Locked, 1).interval();
        assert_eq!(unknown, iv(0, u64::MAX));
        assert_eq!(unknown.width_ns(), u64::MAX);
        for other in [Interval::point(0), Interval::point(u64::MAX), iv(10, 20)] {
            assert!(!unknown.definitely_before(&other) && !unknown.definitely_after(&other));
        }
        assert!(matches!(unknown.midpoint(u64::MAX - 1), Err(Error::WindowTooWide { .. })));
    }

    #[test]
    fn midpoint_respects_the_callers_cap() {
        let now = Now::new(1_000_000, 250, 100, crate::Status::Locked, 1);
        let i = now.interval();
        assert_eq!(i, iv(999_750, 1_000_250));
        assert_eq!(i.midpoint(500).unwrap(), 1_000_000, "a width equal to the cap is accepted");
        assert_eq!(i.midpoint(u64::MAX).unwrap(), 1_000_000);
        match i.midpoint(499) {
            Err(Error::WindowTooWide { width_ns: 500, max_width_ns: 499 }) => {}
            other => panic!("{other:?}"),
        }
        let msg = i.midpoint(100).unwrap_err().to_string();
        assert!(msg.contains("500 ns wide") && msg.contains("100 ns"), "{msg}");
        // Saturated at 0: the middle of what is left.
        assert_eq!(iv(0, 10).midpoint(10).unwrap(), 5);
    }
}
