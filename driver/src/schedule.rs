//! The daemon's update schedule: tick k is due at k × interval after the start, in u64/u128
//! arithmetic that cannot wrap in any lifetime; a loop that fell behind skips the missed ticks.

use std::time::Duration;

/// A steady schedule of ticks, as durations since the loop started (pure: no clock inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    interval_ns: u64,
    tick: u64,
}

impl Schedule {
    /// Tick 0 (due at the start) and every `interval` after it (at least 1 ns).
    pub fn new(interval: Duration) -> Self {
        Self::from_tick(interval, 0)
    }

    /// A schedule whose next tick is number `tick` (a loop resumed, or a test near a wrap).
    pub fn from_tick(interval: Duration, tick: u64) -> Self {
        let interval_ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1);
        Self { interval_ns, tick }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// The number of the next tick.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// When the next tick is due, since the start.
    pub fn due(&self) -> Duration {
        at(self.interval_ns, self.tick)
    }

    /// Moves on after a tick handled at `elapsed` since the start: to the following tick, or, if
    /// that is already past (a suspend, an overload), to the first tick after `elapsed`.
    pub fn advance(&mut self, elapsed: Duration) {
        self.tick = self.tick.saturating_add(1);
        if self.due() <= elapsed {
            let behind = elapsed.as_nanos() / self.interval_ns as u128;
            self.tick = self.tick.max(u64::try_from(behind + 1).unwrap_or(u64::MAX));
        }
    }
}

fn at(interval_ns: u64, tick: u64) -> Duration {
    let ns = interval_ns as u128 * tick as u128;
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (ns % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ticks_are_due_at_whole_intervals() {
        let mut s = Schedule::new(MS * 100);
        assert_eq!(s.due(), Duration::ZERO);
        for k in 1..=5 {
            s.advance(s.due() + MS * 3); // each update takes 3 ms
            assert_eq!(s.due(), MS * 100 * k, "no drift from the work");
        }
    }

    #[test]
    fn a_loop_that_fell_behind_skips_to_the_next_future_tick() {
        let mut s = Schedule::new(MS * 100);
        s.advance(MS * 1_050); // stalled for a second
        assert_eq!((s.tick(), s.due()), (11, MS * 1_100));
        s.advance(MS * 1_100); // exactly on a tick boundary: that tick is past
        assert_eq!(s.due(), MS * 1_200);
    }

    #[test]
    fn at_1000_hz_the_schedule_runs_past_the_32_bit_tick_wrap() {
        // `interval * tick as u32` wrapped here after 49.7 days: every deadline in the past.
        let wrap = 1u64 << 32;
        let mut s = Schedule::from_tick(MS, wrap - 3);
        let mut last = s.due();
        for _ in 0..6 {
            let handled = s.due() + Duration::from_micros(200);
            s.advance(handled);
            assert!(s.due() > handled, "the next deadline lies ahead: {:?} after {handled:?}", s.due());
            assert_eq!(s.due() - last, MS, "one interval later");
            last = s.due();
        }
        assert_eq!(s.tick(), wrap + 3);
        assert_eq!(s.due(), Duration::from_millis(wrap + 3));
        assert!(s.due() > Duration::from_secs(49 * 86_400));
    }

    #[test]
    fn absurd_values_saturate_instead_of_wrapping() {
        let mut s = Schedule::from_tick(Duration::from_secs(100), u64::MAX - 1);
        s.advance(Duration::MAX);
        assert_eq!(s.tick(), u64::MAX);
        assert!(s.due() >= Duration::from_secs(u64::MAX / 1_000_000_000));
        assert_eq!(Schedule::new(Duration::ZERO).interval(), Duration::from_nanos(1));
    }
}
