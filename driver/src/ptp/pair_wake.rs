//! When a PTP slave's loop wakes for its master's Sync/Follow_Up pairs: at the NIC's interrupt
//! while it learns their period and phase, then by a timer just after each pair is due complete
//! (the ring's interrupt masked meanwhile), so a pair costs one wake-up instead of two.
//!
//! Pure: the caller's monotonic ns and what its last ring poll found go in ([`PairWake::observe`]),
//! how to wait for the ring comes out ([`RingWait`]). Stamps are the hardware's, so a frame read
//! milliseconds after it arrived loses nothing; what a late read can cost is a second event frame
//! taking the 82576's single RX latch first, which is why the caller enables this only where
//! nothing but the Sync can take the latch (see `nicclockd`'s `ptp` loop).
//!
//! The rule:
//! - **Learning** (interrupt): each wake-up that completes a pair is a completion time. Two
//!   consecutive single-pair gaps that agree within an eighth give the period.
//! - **Deferred** (timer): the next wake-up is at the last completion + period + slack; a pair found
//!   complete there moves it one period on. Slack is twice the largest recent miss of a completion
//!   against the period's grid (the master's timer, its Follow_Up's delay and our wake-up latency),
//!   at least [`MIN_SLACK_NS`], at most a quarter period.
//! - **Back to the interrupt** when a pair is not complete at its time (a Sync without its
//!   Follow_Up, or nothing: the master gone or moved), when a pair completes far from its time, and
//!   on purpose after [`REANCHOR_NS`], doubling to [`REANCHOR_MAX_NS`]: the completion then seen
//!   by interrupt re-measures the phase, and the period over all the periods since (a master's
//!   oscillator runs up to ~100 ppm off ours: the period follows it, not our clock).

/// How the caller waits for its RX ring until the next [`PairWake::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingWait {
    /// The ring's interrupt wakes the loop (every frame).
    Interrupt,
    /// The ring's RX and TX causes masked: look at the ring at this time (caller's ns) or at any
    /// earlier wake-up (a timer, the page), not at a frame's arrival.
    Until(u64),
}

/// What deferring saved and cost, for the daemon's tally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairWakeCounters {
    /// Pairs taken in by a deferred wake-up (one wake-up each, not up to two).
    pub deferred: u64,
    /// Deferred wake-ups that found the pair incomplete (back to the interrupt).
    pub missed: u64,
    /// Returns to the interrupt to re-measure the phase.
    pub reanchored: u64,
}

/// Least slack after a pair's expected completion: a timer's wake-up latency and scheduling.
pub const MIN_SLACK_NS: u64 = 1_000_000;
/// Shortest period deferred (ptp4l's fastest logSyncInterval, −7, is 7.8 ms).
pub const MIN_PERIOD_NS: u64 = 4 * MIN_SLACK_NS;
/// Longest period deferred (logSyncInterval 4).
pub const MAX_PERIOD_NS: u64 = 16_000_000_000;
/// How long after learning a pair is taken by interrupt on purpose, to re-measure the phase and
/// the period over many periods; the span doubles after each re-anchoring that found the grid
/// (the period is then known to ~jitter / periods), up to [`REANCHOR_MAX_NS`], and starts again
/// at this after a miss.
pub const REANCHOR_NS: u64 = 1_000_000_000;
pub const REANCHOR_MAX_NS: u64 = 8_000_000_000;
/// Recent misses of the grid kept for the slack.
const JITTER_KEPT: usize = 8;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct PairWake {
    enabled: bool,
    /// Pairs completed as of the last observation (the runner's running count).
    seen: u64,
    /// The last completion seen at its interrupt, caller's ns.
    anchor: Option<u64>,
    /// The gap of the last single-pair step while the period is unknown.
    candidate: Option<u64>,
    period: Option<u64>,
    /// |completion − grid| of recent completions seen by interrupt, ns.
    jitter: [u64; JITTER_KEPT],
    jitter_at: usize,
    /// Deferred: when to look at the ring, and how many pairs until the next re-anchoring.
    next: Option<u64>,
    left: u64,
    /// The span until the next re-anchoring, ns.
    reanchor_ns: u64,
    /// Looks in a row that found nothing.
    empty_looks: u32,
    counters: PairWakeCounters,
}

impl PairWake {
    /// `enabled` false: always [`RingWait::Interrupt`] (no interrupt to mask, or a latch another
    /// event message could take while the Sync waits).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            seen: 0,
            anchor: None,
            candidate: None,
            period: None,
            jitter: [0; JITTER_KEPT],
            jitter_at: 0,
            next: None,
            left: 0,
            reanchor_ns: REANCHOR_NS,
            empty_looks: 0,
            counters: PairWakeCounters::default(),
        }
    }

    pub fn counters(&self) -> PairWakeCounters {
        self.counters
    }

    /// The pairs' period once learnt, ns.
    pub fn period_ns(&self) -> Option<u64> {
        self.period
    }

    /// After a poll of the ring at `now_ns`: `completed` is the runner's count of pairs completed
    /// so far, `sync_waiting` whether a two-step Sync waits for its Follow_Up, `steering` whether
    /// the port follows a master (slave or uncalibrated). Returns how to wait next.
    pub fn observe(&mut self, now_ns: u64, completed: u64, sync_waiting: bool, steering: bool) -> RingWait {
        let new = completed.saturating_sub(self.seen);
        self.seen = completed;
        if !self.enabled || !steering {
            self.forget();
            return RingWait::Interrupt;
        }
        let complete = new > 0 && !sync_waiting;
        let Some(next) = self.next else {
            if complete {
                self.completion(now_ns, new);
            }
            return self.wait();
        };
        let period = self.period.unwrap_or(MIN_PERIOD_NS);
        if now_ns < next {
            if complete {
                if next - now_ns <= period / 2 {
                    // Taken in by a wake-up shortly before its time (a timer's, the page's): this
                    // period's pair is done.
                    self.done(now_ns);
                } else {
                    // Far from its time: the grid is wrong. Learn the phase again.
                    self.next = None;
                    self.counters.missed += 1;
                    self.reanchor_ns = REANCHOR_NS;
                }
            }
            return self.wait();
        }
        if complete {
            self.done(now_ns);
        } else {
            self.next = None;
            self.counters.missed += 1;
            self.reanchor_ns = REANCHOR_NS;
            if !sync_waiting {
                // Nothing at all: a lost Sync, a master gone, or one that changed its rate. Once
                // is a loss (the grid is checked again by the next completion's interrupt); twice
                // without a pair between, the period is learnt again from the next two gaps.
                self.empty_looks += 1;
                if self.empty_looks >= 2 {
                    self.period = None;
                    self.candidate = None;
                    self.empty_looks = 0;
                }
            }
        }
        self.wait()
    }

    fn wait(&self) -> RingWait {
        match self.next {
            Some(at) => RingWait::Until(at),
            None => RingWait::Interrupt,
        }
    }

    /// The port stopped following a master: learn everything again when it does.
    fn forget(&mut self) {
        self.anchor = None;
        self.candidate = None;
        self.period = None;
        self.next = None;
        self.empty_looks = 0;
    }

    /// A deferred pair found complete at `now`: on to the next one, or back to the interrupt to
    /// re-anchor.
    fn done(&mut self, now: u64) {
        self.counters.deferred += 1;
        self.empty_looks = 0;
        self.left = self.left.saturating_sub(1);
        let (Some(next), Some(period)) = (self.next, self.period) else { return };
        if self.left == 0 {
            self.next = None;
            self.counters.reanchored += 1;
            return;
        }
        let mut at = next.saturating_add(period);
        while at <= now {
            at = at.saturating_add(period);
        }
        self.next = Some(at);
    }

    /// A pair completed at `now`, seen by its interrupt (`new` pairs since the last observation).
    fn completion(&mut self, now: u64, new: u64) {
        let Some(anchor) = self.anchor.replace(now) else { return };
        let gap = now.saturating_sub(anchor);
        if let Some(period) = self.period {
            let n = (gap + period / 2) / period;
            let grid = anchor.saturating_add(n.saturating_mul(period));
            let miss = now.abs_diff(grid);
            if n >= 1 && miss <= period / 8 {
                self.jitter[self.jitter_at] = miss;
                self.jitter_at = (self.jitter_at + 1) % JITTER_KEPT;
                if n >= 4 {
                    // Over several periods the wake-up's latency is a small part: re-measure,
                    // and wait longer before the next re-anchoring.
                    self.period = Some(gap / n);
                    self.reanchor_ns = (self.reanchor_ns * 2).min(REANCHOR_MAX_NS);
                }
                self.defer_from(now);
            } else {
                self.period = None;
                self.candidate = None;
            }
            return;
        }
        if new != 1 || !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&gap) {
            self.candidate = None;
            return;
        }
        match self.candidate {
            Some(c) if gap.abs_diff(c) <= c / 8 => {
                self.candidate = None;
                self.period = Some((gap + c) / 2);
                self.jitter = [gap.abs_diff(c); JITTER_KEPT];
                self.reanchor_ns = REANCHOR_NS;
                self.defer_from(now);
            }
            _ => self.candidate = Some(gap),
        }
    }

    /// The slack after a pair's expected completion (see the module docs).
    pub fn slack_ns(&self) -> u64 {
        let period = self.period.unwrap_or(MIN_PERIOD_NS);
        let worst = self.jitter.iter().copied().max().unwrap_or(0);
        worst.saturating_mul(2).max(MIN_SLACK_NS).min(period / 4)
    }

    fn defer_from(&mut self, now: u64) {
        let Some(period) = self.period else { return };
        self.left = (self.reanchor_ns / period).max(2) - 1;
        self.next = Some(now.saturating_add(period).saturating_add(self.slack_ns()));
    }
}

/// The master's Sync exchanges as the ring delivers them, counted for [`PairWake::observe`]: a
/// one-step Sync, or a two-step Sync (flagField's twoStepFlag) and the Follow_Up with its source
/// port and sequenceId. Header fields only; statime checks the rest, and a forged Follow_Up can
/// only move a wake-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPairs {
    completed: u64,
    /// The two-step Sync awaiting its Follow_Up: sourcePortIdentity and sequenceId.
    waiting: Option<([u8; 10], u16)>,
}

/// PTP messageType values (IEEE 1588-2019 table 36).
const SYNC: u8 = 0x0;
const FOLLOW_UP: u8 = 0x8;

impl SyncPairs {
    /// A received PTP message (the payload from its first header byte).
    pub fn note(&mut self, payload: &[u8]) {
        let Some(header) = payload.get(..34) else { return };
        let source: [u8; 10] = header[20..30].try_into().expect("10 bytes");
        let sequence = u16::from_be_bytes([header[30], header[31]]);
        match header[0] & 0x0f {
            SYNC if header[6] & 0x02 != 0 => self.waiting = Some((source, sequence)),
            SYNC => {
                self.completed += 1;
                self.waiting = None;
            }
            FOLLOW_UP if self.waiting == Some((source, sequence)) => {
                self.completed += 1;
                self.waiting = None;
            }
            _ => {}
        }
    }

    /// Exchanges completed so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Whether a two-step Sync waits for its Follow_Up.
    pub fn sync_waiting(&self) -> bool {
        self.waiting.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A master at `period` whose pair completes at k·period + `phase` + the k-th entry of `late`
    /// (cycled), driven through `PairWake` as the loop would: returns (wake-ups, pairs seen, the
    /// latest any pair was taken in after its completion).
    fn run(period: u64, late: &[u64], pairs: u64, wake: &mut PairWake) -> (u64, u64, u64) {
        let phase = 7 * MS;
        let completion = |k: u64| k * period + phase + late[(k as usize) % late.len()];
        let (mut wakes, mut taken, mut worst) = (0, 0, 0);
        let mut wait = RingWait::Interrupt;
        let mut k = 0; // the next pair not yet taken in
        while k < pairs {
            // When the loop looks: at the completion (interrupt) or at its timer.
            let now = match wait {
                RingWait::Interrupt => completion(k),
                RingWait::Until(at) => at,
            };
            wakes += 1;
            let mut new = 0;
            while k < pairs && completion(k) <= now {
                worst = worst.max(now - completion(k));
                k += 1;
                new += 1;
            }
            taken += new;
            wait = wake.observe(now, taken, false, true);
        }
        (wakes, taken, worst)
    }

    #[test]
    fn a_steady_master_costs_one_wake_up_a_pair_and_a_re_anchoring_every_eight_seconds() {
        let mut wake = PairWake::new(true);
        let period = 125 * MS;
        let (wakes, taken, worst) = run(period, &[0, 300_000, 100_000, 600_000], 480, &mut wake);
        assert_eq!(taken, 480);
        // Interrupt mode would take each pair at its own wake-up as well; what deferring must not
        // do is take two wake-ups for one pair.
        assert!(wakes <= 480, "{wakes} wake-ups for 480 pairs");
        assert!(wake.period_ns().is_some_and(|p| p.abs_diff(period) < MS), "{:?}", wake.period_ns());
        let c = wake.counters();
        assert!(c.deferred >= 440, "{c:?}");
        // After 1, 2, 4 s, then every 8 s.
        assert!((8..=10).contains(&c.reanchored), "re-anchored: {c:?}");
        // Taken in within the slack of its completion: twice the jitter, at least 1 ms.
        assert!(worst <= 2 * 600_000 + 2 * MIN_SLACK_NS, "a pair waited {worst} ns");
        assert_eq!(c.missed, 0, "{c:?}");
    }

    #[test]
    fn the_period_is_learnt_from_two_agreeing_gaps_and_relearnt_after_a_change() {
        let mut wake = PairWake::new(true);
        let ms = |m| m * MS;
        assert_eq!(wake.observe(ms(10), 1, false, true), RingWait::Interrupt);
        assert_eq!(wake.observe(ms(135), 2, false, true), RingWait::Interrupt, "one gap is not a period");
        let RingWait::Until(at) = wake.observe(ms(260), 3, false, true) else { panic!("two gaps agree") };
        assert_eq!(wake.period_ns(), Some(ms(125)));
        assert!((ms(385)..=ms(385) + ms(125) / 4).contains(&at), "next look at {at}");
        // The master goes to 4 Sync/s: nothing at the deferred look → interrupt.
        assert_eq!(wake.observe(at, 3, false, true), RingWait::Interrupt);
        assert_eq!(wake.counters().missed, 1);
        // Its next pair is two periods on: a lost Sync as far as one look can tell.
        let RingWait::Until(at) = wake.observe(ms(510), 4, false, true) else { panic!("on the grid") };
        assert_eq!(wake.period_ns(), Some(ms(125)));
        // Nothing again: now the period is learnt again, from two gaps of 250 ms.
        assert_eq!(wake.observe(at, 4, false, true), RingWait::Interrupt);
        assert_eq!(wake.period_ns(), None);
        assert_eq!(wake.observe(ms(760), 5, false, true), RingWait::Interrupt);
        let RingWait::Until(at) = wake.observe(ms(1010), 6, false, true) else { panic!("relearnt") };
        assert_eq!(wake.period_ns(), Some(ms(250)));
        assert!((ms(1260)..=ms(1260) + ms(250) / 4).contains(&at), "{at}");
    }

    #[test]
    fn a_sync_without_its_follow_up_at_the_deferred_look_goes_back_to_the_interrupt() {
        let mut wake = PairWake::new(true);
        let ms = |m| m * MS;
        wake.observe(ms(10), 1, false, true);
        wake.observe(ms(135), 2, false, true);
        let RingWait::Until(at) = wake.observe(ms(260), 3, false, true) else { panic!() };
        assert_eq!(wake.observe(at, 3, true, true), RingWait::Interrupt, "the Follow_Up is late");
        assert_eq!(wake.counters().missed, 1);
        // Its Follow_Up 15 ms late, by interrupt: on the grid within an eighth, so deferred
        // again, the period kept, with twice that slack.
        let RingWait::Until(next) = wake.observe(ms(400), 4, false, true) else { panic!() };
        assert_eq!(wake.period_ns(), Some(ms(125)));
        assert_eq!(wake.slack_ns(), ms(30));
        assert_eq!(next, ms(400) + ms(125) + ms(30));
    }

    #[test]
    fn a_pair_taken_by_an_earlier_wake_up_counts_for_its_period() {
        let mut wake = PairWake::new(true);
        let ms = |m| m * MS;
        wake.observe(ms(10), 1, false, true);
        wake.observe(ms(135), 2, false, true);
        let RingWait::Until(at) = wake.observe(ms(260), 3, false, true) else { panic!() };
        // statime's timer wakes the loop half a ms after the pair completed, before the look.
        assert_eq!(at, ms(385) + MIN_SLACK_NS);
        let RingWait::Until(next) = wake.observe(ms(385) + MS / 2, 4, false, true) else { panic!() };
        assert_eq!(next, at + ms(125));
        // At the old look nothing is new: the look has moved on, so no wake-up happens there.
        assert_eq!(wake.counters(), PairWakeCounters { deferred: 1, missed: 0, reanchored: 0 });
    }

    #[test]
    fn disabled_or_not_following_a_master_always_waits_on_the_interrupt() {
        let mut off = PairWake::new(false);
        let mut on = PairWake::new(true);
        for k in 1..=10u64 {
            assert_eq!(off.observe(k * 125 * MS, k, false, true), RingWait::Interrupt);
            assert_eq!(on.observe(k * 125 * MS, k, false, false), RingWait::Interrupt);
        }
        assert_eq!(on.period_ns(), None);
    }

    #[test]
    fn an_irregular_master_is_never_deferred() {
        let mut wake = PairWake::new(true);
        let mut t = 0;
        for (k, gap) in [125u64, 60, 200, 90, 170, 40, 125, 300, 80].into_iter().enumerate() {
            t += gap * MS;
            assert_eq!(wake.observe(t, k as u64 + 1, false, true), RingWait::Interrupt, "gap {gap} ms");
        }
    }

    fn message(kind: u8, two_step: bool, source: u8, sequence: u16) -> Vec<u8> {
        let mut m = vec![0u8; 44];
        m[0] = kind;
        m[1] = 2;
        m[6] = if two_step { 0x02 } else { 0 };
        m[20..30].fill(source);
        m[30..32].copy_from_slice(&sequence.to_be_bytes());
        m
    }

    #[test]
    fn a_pair_is_a_two_step_sync_and_its_own_follow_up_or_a_one_step_sync() {
        let mut pairs = SyncPairs::default();
        pairs.note(&message(SYNC, true, 1, 7));
        assert!(pairs.sync_waiting());
        pairs.note(&message(FOLLOW_UP, false, 1, 6)); // an older sequence
        pairs.note(&message(FOLLOW_UP, false, 2, 7)); // another master's
        pairs.note(&message(0xB, false, 1, 7)); // an Announce
        pairs.note(&message(FOLLOW_UP, false, 1, 7)[..20]); // truncated
        assert_eq!((pairs.completed(), pairs.sync_waiting()), (0, true));
        pairs.note(&message(FOLLOW_UP, false, 1, 7));
        assert_eq!((pairs.completed(), pairs.sync_waiting()), (1, false));
        pairs.note(&message(FOLLOW_UP, false, 1, 7)); // a duplicate
        pairs.note(&message(SYNC, false, 1, 8)); // one-step
        assert_eq!((pairs.completed(), pairs.sync_waiting()), (2, false));
        // A Sync whose Follow_Up never came is replaced by the next one.
        pairs.note(&message(SYNC, true, 1, 9));
        pairs.note(&message(SYNC, true, 1, 10));
        pairs.note(&message(FOLLOW_UP, false, 1, 10));
        assert_eq!((pairs.completed(), pairs.sync_waiting()), (3, false));
    }
}
