//! When the PTP slave's loop updates the page: right after a Sync exchange, at most `--rate` times
//! a second, and by a timer of its own only when no exchange comes.

use std::time::{Duration, Instant};

/// The page's updates while statime steers. statime changes the clock's rate only on a Sync
/// exchange, so an update right after one re-anchors the page where the mapping changed; between
/// exchanges the page only ages. So an update rides on each exchange's wake-up (at most one per
/// 0.9 interval after the last exchange's: the `--rate` cap, with room for the master's jitter;
/// at once after the timer's, which keeps the updates on the exchanges), and the page's own timer
/// fires only when none came: two intervals after an update that followed an exchange (a lost
/// Sync costs no wake-up of its own), one interval otherwise (LISTENING, HOLDOVER: the `--rate`
/// grid). At 8 Sync/s and `--rate 10` that is 8 updates a second and no wake-up for the page.
#[derive(Debug, Clone, Copy)]
pub struct PageCadence {
    interval: Duration,
    last: Option<Instant>,
    after_exchange: bool,
}

impl PageCadence {
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: None, after_exchange: false }
    }

    /// The page's own deadline (`None`: due at once, nothing published yet).
    pub fn due(&self) -> Option<Instant> {
        self.last.map(|last| last + self.timer_after())
    }

    /// Whether a wake-up at `now` updates the page (`exchange`: it took in a Sync exchange).
    pub fn update_due(&self, now: Instant, exchange: bool) -> bool {
        let Some(last) = self.last else { return true };
        let since = now.saturating_duration_since(last);
        since >= self.timer_after()
            || (exchange && (!self.after_exchange || since >= self.interval.mul_f64(0.9)))
    }

    /// The page was updated at `now`.
    pub fn updated(&mut self, now: Instant, exchange: bool) {
        self.last = Some(now);
        self.after_exchange = exchange;
    }

    fn timer_after(&self) -> Duration {
        if self.after_exchange {
            self.interval * 2
        } else {
            self.interval
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nicclock_driver::ptp::pair_wake::{PairWake, RingWait};

    use super::PageCadence;

    /// 60 s of the slave's loop at 8 Sync/s, `--rate 10`: each pair completes 7 ms into its
    /// period plus up to 0.9 ms of the master's jitter; every 8th Follow_Up is lost; the
    /// Delay_Resp (one a second) wakes the loop only while frames interrupt. Returns (wake-ups/s,
    /// page-only wake-ups/s, updates/s, the page's oldest age).
    fn slave_loop(defer: bool) -> (f64, f64, f64, Duration) {
        let ms = |m: u64| Duration::from_millis(m);
        let ns = |d: Duration| d.as_nanos() as u64;
        let start = Instant::now();
        let pair = |k: u64| ms(125) * k as u32 + ms(7) + Duration::from_micros((k * 370) % 900);
        let lost = |k: u64| k % 8 == 5;
        let resp = |s: u64| ms(1000) * s as u32 + ms(430);
        let mut wake = PairWake::new(defer);
        let mut cadence = PageCadence::new(ms(100));
        let (mut wakes, mut page_only, mut updates) = (0u32, 0u32, 0u32);
        let (mut last_update, mut oldest) = (Duration::ZERO, Duration::ZERO);
        let (mut k, mut s, mut completed) = (0u64, 0u64, 0u64);
        let mut wait = RingWait::Interrupt;
        let end = ms(60_000);
        loop {
            let page_due = cadence.due().map_or(Duration::ZERO, |d| d - start);
            let next_frame = match wait {
                RingWait::Interrupt => pair(k).min(resp(s)),
                RingWait::Until(at) => Duration::from_nanos(at),
            };
            let at = next_frame.min(page_due);
            if at >= end {
                break;
            }
            wakes += 1;
            let by_frames = at == next_frame;
            let mut exchange = false;
            while pair(k) <= at {
                if !lost(k) {
                    completed += 1;
                    exchange = true;
                }
                k += 1;
            }
            while resp(s) <= at {
                s += 1;
            }
            wait = wake.observe(ns(at), completed, false, true);
            if cadence.update_due(start + at, exchange) {
                updates += 1;
                page_only += u32::from(!by_frames);
                oldest = oldest.max(at - last_update);
                last_update = at;
                cadence.updated(start + at, exchange);
            }
        }
        let per_s = |n: u32| f64::from(n) / 60.0;
        (per_s(wakes), per_s(page_only), per_s(updates), oldest)
    }

    #[test]
    fn the_page_rides_on_each_sync_exchange_and_a_pair_costs_one_wake_up() {
        // Frames interrupting: a wake-up per pair and per Delay_Resp, the page on the pairs'; 7
        // exchanges a second, and the page's timer 200 ms after the exchange before a lost one.
        let (wakes, page_only, updates, oldest) = slave_loop(false);
        assert!((7.9..=8.1).contains(&updates), "{updates} updates/s");
        assert!(page_only <= 1.1, "{page_only} wake-ups/s for the page alone");
        assert!(wakes <= 10.1, "{wakes} wake-ups/s");
        assert!(oldest <= Duration::from_millis(250), "the page went {oldest:?} without an update");
        // Deferred: the Delay_Resp waits for the next pair; a lost Follow_Up costs its look (and
        // the page's timer, as above), the next pair is taken by its interrupt.
        let (wakes, page_only, updates, oldest) = slave_loop(true);
        assert!((7.9..=8.1).contains(&updates), "{updates} updates/s");
        assert!(wakes <= 9.1, "{wakes} wake-ups/s deferred");
        assert!(page_only <= 1.1, "{page_only}");
        assert!(oldest <= Duration::from_millis(250), "{oldest:?}");
    }

    #[test]
    fn without_exchanges_the_page_keeps_the_rate_and_after_one_it_waits_two_intervals() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut c = PageCadence::new(ms(100));
        assert!(c.update_due(t0, false), "the first update at once");
        c.updated(t0, false);
        assert_eq!(c.due(), Some(t0 + ms(100)), "the --rate grid without exchanges");
        assert!(c.update_due(t0 + ms(30), true), "the first exchange after the timer's at once");
        c.updated(t0 + ms(30), true);
        assert!(!c.update_due(t0 + ms(119), true), "at most --rate between exchanges");
        assert!(c.update_due(t0 + ms(120), true));
        c.updated(t0 + ms(120), true);
        assert_eq!(c.due(), Some(t0 + ms(320)), "a lost Sync costs no wake-up");
        assert!(!c.update_due(t0 + ms(245), false));
        assert!(c.update_due(t0 + ms(320), false));
    }
}
