//! The PTP loop's wake-ups counted by cause and the time it spends awake by part, logged every
//! 10 s: what an idle daemon costs and where (qemu/README.md, PTP slave, reads it beside the CPU).

use std::time::{Duration, Instant};

use nicclock_driver::ptp::pair_wake::PairWakeCounters;

/// How often the wake-up tally is logged.
const TALLY_INTERVAL: Duration = Duration::from_secs(10);

/// The loop's wake-ups and the time it spent awake (from a ppoll's return to the next one's
/// call), by part, logged every [`TALLY_INTERVAL`]: what an idle daemon costs, and where (the
/// lab's CPU figures are read beside it: qemu/README.md, PTP slave).
pub struct WakeTally {
    since: Instant,
    woke_at: Option<Instant>,
    wakes: u64,
    frame_wakes: u64,
    /// Wake-ups at a Sync exchange's expected time (the ring's frames masked).
    look_wakes: u64,
    /// The pair deferral's counters so far (not reset by a line).
    pairs: PairWakeCounters,
    busy: Duration,
    /// The previous [`WakeTally::mark`] in this wake-up.
    last: Option<Instant>,
    phases: [Duration; 5],
    updates: u64,
    /// Page updates at a wake-up no frame caused.
    timer_updates: u64,
    /// Whether this wake-up was the ring's, or a look at the ring at a pair's expected time.
    frames: bool,
    looked: bool,
    /// Frames received and TX stamps taken, over the tally's span.
    received: u64,
    tx_stamps: u64,
    /// Ring wake-ups that found no new frame and no TX stamp (their cause was handled by an
    /// earlier wake-up: a frame that came while the daemon was awake signals it again).
    empty_ring_wakes: u64,
}

/// What a part of a wake-up did (see [`WakeTally::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The interrupt's descriptor read and the NIC's causes.
    Interrupt,
    /// Removal check, watchdog, the page's link check.
    Chores,
    /// Received frames, TX stamps and timers through statime.
    Port,
    /// The page, stats and log published.
    Page,
    /// The PHC measured against the counter and the page's figures updated.
    Measure,
}

impl WakeTally {
    pub fn new(now: Instant) -> Self {
        Self {
            since: now,
            woke_at: None,
            wakes: 0,
            frame_wakes: 0,
            look_wakes: 0,
            pairs: PairWakeCounters::default(),
            busy: Duration::ZERO,
            last: None,
            phases: [Duration::ZERO; 5],
            updates: 0,
            timer_updates: 0,
            frames: false,
            looked: false,
            received: 0,
            tx_stamps: 0,
            empty_ring_wakes: 0,
        }
    }

    /// This wake-up's port work took in `frames` received frames and `tx_stamps` TX stamps.
    pub fn found(&mut self, frames: u64, tx_stamps: u64) {
        self.received += frames;
        self.tx_stamps += tx_stamps;
        self.empty_ring_wakes += u64::from(self.frames && frames == 0 && tx_stamps == 0);
    }

    /// The part of the wake-up since the previous mark was `phase`.
    pub fn mark(&mut self, phase: Phase, now: Instant) {
        if let Some(last) = self.last {
            self.phases[phase as usize] += now.saturating_duration_since(last);
        }
        if phase == Phase::Page {
            self.updates += 1;
            self.timer_updates += u64::from(!self.frames && !self.looked);
        }
        self.last = Some(now);
    }

    /// The page was updated since the previous mark, `measuring` of it measuring the PHC and
    /// updating the page's figures.
    pub fn mark_page(&mut self, measuring: Duration, now: Instant) {
        self.mark(Phase::Page, now);
        let p = &mut self.phases;
        let measuring = measuring.min(p[Phase::Page as usize]);
        p[Phase::Page as usize] -= measuring;
        p[Phase::Measure as usize] += measuring;
    }

    /// The loop's wait returned at `now`.
    pub fn awake(&mut self, now: Instant) {
        self.woke_at = Some(now);
        self.last = Some(now);
    }

    /// The loop goes back to sleep at `now`.
    pub fn sleeping(&mut self, now: Instant) {
        if let Some(woke) = self.woke_at.take() {
            self.busy += now.saturating_duration_since(woke);
        }
    }

    /// The pair deferral's counters now.
    pub fn pairs(&mut self, counters: PairWakeCounters) {
        self.pairs = counters;
    }

    /// The loop woke at `now` (`frames`: by the ring's interrupt; `looked`: at a Sync exchange's
    /// expected time, the ring's frames masked); the tally's line when due.
    pub fn woke(&mut self, now: Instant, frames: bool, looked: bool) -> Option<String> {
        self.wakes += 1;
        self.frame_wakes += u64::from(frames);
        self.look_wakes += u64::from(looked);
        self.frames = frames;
        self.looked = looked;
        let span = now.saturating_duration_since(self.since);
        if span < TALLY_INTERVAL {
            return None;
        }
        let us_per = |d: Duration, n: u64| d.as_micros() / u128::from(n.max(1));
        let p = &self.phases;
        let line = format!(
            "{} wake-ups in {:.1} s ({:.1}/s: {} by the ring ({} finding nothing new; {} frames, {} \
             TX stamps), {} at a Sync exchange's time, {} for the page, {} for statime's timers), \
             awake {:.1} ms ({} us each: interrupt {} us, frames and timers {} us; page update {} \
             us measuring and {} us publishing, {} of them); exchanges read at their time so far \
             {} (missed {}, re-anchored {})",
            self.wakes,
            span.as_secs_f64(),
            self.wakes as f64 / span.as_secs_f64(),
            self.frame_wakes,
            self.empty_ring_wakes,
            self.received,
            self.tx_stamps,
            self.look_wakes,
            self.timer_updates,
            self.wakes - self.frame_wakes - self.look_wakes - self.timer_updates,
            self.busy.as_secs_f64() * 1e3,
            us_per(self.busy, self.wakes),
            us_per(p[Phase::Interrupt as usize], self.frame_wakes),
            us_per(p[Phase::Port as usize], self.wakes),
            us_per(p[Phase::Measure as usize], self.updates),
            us_per(p[Phase::Page as usize], self.updates),
            self.updates,
            self.pairs.deferred,
            self.pairs.missed,
            self.pairs.reanchored,
        );
        *self = Self {
            woke_at: self.woke_at,
            last: self.last,
            frames,
            looked,
            pairs: self.pairs,
            ..Self::new(now)
        };
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_wake_ups_by_cause_and_awake_time_by_part() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut tally = WakeTally::new(t0);
        // 100 wake-ups over 9.9 s: every other one by the ring; every fourth updates the page
        // (two of them at a timer's wake-up), each awake 3 ms: 1 ms interrupt, 1 ms port, 1 ms page.
        for k in 0..100u32 {
            let at = t0 + ms(99) * k;
            tally.awake(at);
            let frames = k % 2 == 0;
            tally.mark(Phase::Interrupt, at + ms(1));
            // Every 10th wake-up is a look at a pair's time.
            assert_eq!(tally.woke(at + ms(1), frames, k % 10 == 5), None, "no line before 10 s");
            // Every 10th ring wake-up finds nothing; the others two frames; a TX stamp at k = 1.
            tally.found(if frames && k % 20 != 0 { 2 } else { 0 }, u64::from(k == 1));
            tally.mark(Phase::Port, at + ms(2));
            if k % 4 == 0 || k % 4 == 1 {
                tally.mark_page(ms(1) / 2, at + ms(3));
            }
            tally.sleeping(at + ms(3));
        }
        tally.awake(t0 + ms(10_000));
        tally.pairs(PairWakeCounters { deferred: 9, missed: 1, reanchored: 2 });
        let line = tally.woke(t0 + ms(10_000), false, false).expect("a line at 10 s");
        assert!(line.starts_with("101 wake-ups in 10.0 s (10.1/s: 50 by the ring (5 finding nothing new; 90 frames, 1 TX stamps), 10 at a Sync exchange's time, 20 for the page, 21 for statime's timers), awake 300.0 ms"), "{line}");
        assert!(line.ends_with("exchanges read at their time so far 9 (missed 1, re-anchored 2)"), "{line}");
        assert!(line.contains("page update 500 us measuring and 500 us publishing, 50 of them"), "{line}");
    }
}
