//! The discipline loop's step: measure the NIC against the reference, run the servo, steer the
//! clock, and produce the page update (counter→TAI mapping, error bound, status, events). Pure
//! apart from the register seam and the [`Host`], so it runs on virtual time in tests.

use std::collections::VecDeque;

use nicclock::{
    period_from_ns_per_tick, Estimate, EventKind, Leap, Reference, ServoFigures, Snapshot, Status,
};
use nicclock_uio::RegisterAccess;

use crate::clock::{DeviceLost, Discontinuity, Nanos, Phc, Ppb, StepMismatch};
use crate::measure::{measure, Host, Measurement};
use crate::servo::{Servo, ServoState};

/// Tunables of the loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisciplineConfig {
    /// Time between updates, ns.
    pub interval_ns: u64,
    /// Bracketed reads per measurement (phc2sys -N, default 5).
    pub readings: usize,
    /// |offset| under which a locked servo counts towards LOCKED, ns.
    pub lock_threshold_ns: u64,
    /// Consecutive samples under the threshold for LOCKED.
    pub lock_count: u32,
    /// Error-bound growth allowed for a locked clock besides its last frequency change, ppb
    /// (oscillator wander and the rate estimate's noise).
    pub locked_growth_ppb: f64,
}

impl Default for DisciplineConfig {
    fn default() -> Self {
        Self {
            interval_ns: 100_000_000,
            readings: 5,
            lock_threshold_ns: 1_000,
            lock_count: 3,
            locked_growth_ppb: 50.0,
        }
    }
}

/// What one update did and what to publish.
#[derive(Debug, Clone)]
pub struct Update {
    pub measurement: Measurement,
    pub servo_state: ServoState,
    /// The servo's output (ppb, linuxptp's sign: the clock's estimated frequency error).
    pub servo_ppb: f64,
    pub status: Status,
    /// The page update.
    pub snapshot: Snapshot,
    /// Events to post besides status changes (the writer posts those): (kind, magnitude).
    pub events: Vec<(EventKind, i64)>,
    /// A TIMINCA write moved the clock (forced hardware steering on QEMU).
    pub discontinuity: Option<Discontinuity>,
    /// A TIMADJ step moved the NIC by something else than asked (made up in software).
    pub step_mismatch: Option<StepMismatch>,
    /// Delays stayed far above the typical one (this, ns) for [`REJECT_LIMIT`] updates in a row:
    /// this measurement was used anyway, its delay taken as the new normal.
    pub new_normal_delay_from_ns: Option<u64>,
}

impl Update {
    /// The linuxptp-shaped log line: `offset -23 s2 freq +100 delay 500`.
    pub fn log_line(&self) -> String {
        format!(
            "offset {:9} s{} freq {:+7.0} delay {:6}",
            self.measurement.offset_ns, self.servo_state as u8, self.servo_ppb, self.measurement.delay_ns
        )
    }
}

/// A servo figure in the page's unit, ppt (linuxptp's sign: the clock's estimated frequency
/// error, positive when the NIC runs fast; the correction applied to it is the negation).
fn ppt(ppb: f64) -> i64 {
    Ppb(ppb).to_ppt().0
}

/// Least-squares rate of the reference against the counter over the last updates, with its
/// standard error (so the page's error bound can cover a poorly known rate).
#[derive(Debug, Default)]
pub(crate) struct RateEstimator {
    /// (counter, reference ns, measurement delay ns)
    points: VecDeque<(u64, u64, u64)>,
    /// The estimate over the points as they are, once asked for (a page update asks up to four
    /// times; each change of the points forgets it).
    cached: std::cell::Cell<Option<Option<Rate>>>,
}

const RATE_POINTS: usize = 64;

/// A rate estimate: reference ns per counter tick and its relative standard error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    pub(crate) ns_per_tick: f64,
    pub(crate) relative_error: f64,
}

impl RateEstimator {
    pub(crate) fn add(&mut self, counter: u64, reference_ns: u64, delay_ns: u64) {
        self.cached.set(None);
        if self.points.len() == RATE_POINTS {
            self.points.pop_front();
        }
        self.points.push_back((counter, reference_ns, delay_ns));
    }

    /// The clock's rate was changed by `factor` (new / old) just after the newest point: the
    /// points are redrawn as if the new rate had always applied (each one's distance from the
    /// newest scaled by `factor`), so the estimate is the new rate at once instead of after the
    /// window has refilled.
    pub(crate) fn rescale(&mut self, factor: f64) {
        self.cached.set(None);
        let Some(&(_, last, _)) = self.points.back() else { return };
        for p in &mut self.points {
            let before = last.wrapping_sub(p.1) as i64;
            p.1 = last.wrapping_sub((before as f64 * factor).round() as i64 as u64);
        }
    }

    /// The clock was stepped by `ns` just after the newest point: the points move with it (the
    /// rate is unchanged).
    pub(crate) fn shift(&mut self, ns: i64) {
        self.cached.set(None);
        for p in &mut self.points {
            p.1 = p.1.wrapping_add(ns as u64);
        }
    }

    /// The least-squares rate over the points, with its relative standard error: computed once
    /// per change of the points (walking them where they are, allocating nothing).
    pub(crate) fn rate(&self) -> Option<Rate> {
        if let Some(rate) = self.cached.get() {
            return rate;
        }
        let rate = self.regression();
        self.cached.set(Some(rate));
        rate
    }

    fn regression(&self) -> Option<Rate> {
        let &(c0, r0, d0) = self.points.front()?;
        let n = self.points.len();
        if n < 2 {
            return None;
        }
        let xy = || {
            self.points.iter().map(move |&(c, r, _)| (c.wrapping_sub(c0) as f64, r.wrapping_sub(r0) as f64))
        };
        let (sx, sy) = xy().fold((0.0, 0.0), |(sx, sy), p| (sx + p.0, sy + p.1));
        let (mx, my) = (sx / n as f64, sy / n as f64);
        let (sxx, sxy) =
            xy().fold((0.0, 0.0), |(sxx, sxy), p| (sxx + (p.0 - mx).powi(2), sxy + (p.0 - mx) * (p.1 - my)));
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let span_ns = self.points.back().map_or(0.0, |&(_, r, _)| r.wrapping_sub(r0) as f64).max(1.0);
        let relative_error = if n >= 4 {
            let residual2: f64 = xy().map(|p| (p.1 - my - slope * (p.0 - mx)).powi(2)).sum();
            (residual2 / (n - 2) as f64 / sxx).sqrt() / slope.abs().max(f64::MIN_POSITIVE)
        } else {
            // Too few points for residuals: assume each end is off by its own half-bracket.
            let d1 = self.points.back().map_or(0, |p| p.2);
            (d0 + d1) as f64 / 2.0 / span_ns
        };
        Some(Rate { ns_per_tick: slope, relative_error })
    }
}

/// How long a measurement's best read took, ns: the larger of its reference bracket (`delay_ns`)
/// and its counter bracket, which holds the reference reads too: a stall between a counter read
/// and a reference read moves the anchor (the counter's middle) as much as one inside the
/// reference bracket, and the delay alone does not show it.
pub(crate) fn bracket_ns(m: &Measurement, ns_per_tick: f64) -> u64 {
    m.delay_ns.max((m.counter_window as f64 * ns_per_tick).round() as u64)
}

/// Recent measurement delays, to reject a measurement whose every read was disturbed (the
/// thread was preempted, the bus stalled): its offset is too uncertain to steer or publish by.
/// Delays that stay high are this machine's new normal, not a disturbance: after
/// [`REJECT_LIMIT`] rejections in a row the filter starts over from the current delays rather than
/// leave the page without updates for good.
#[derive(Debug, Default)]
pub(crate) struct DelayFilter {
    /// The accepted measurements' brackets ([`bracket_ns`]): what is judged.
    recent: VecDeque<u64>,
    /// The same measurements' delays (reference brackets): what `measure` compares its reads with.
    recent_delays: VecDeque<u64>,
    rejected_in_a_row: u32,
}

/// How many accepted measurements' brackets the delay filter judges by.
const RECENT_BRACKETS: usize = 16;

/// Consecutive rejected measurements after which the delay filter starts over.
pub const REJECT_LIMIT: u32 = 8;

/// Why the delay filter let a measurement through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Typical,
    /// Delays stayed far above the typical one (this many ns) for [`REJECT_LIMIT`] updates.
    NewNormal {
        old_typical_ns: u64,
    },
}

impl DelayFilter {
    /// The smallest recent delay (this machine's usual best), once there are a few: a delay, not a
    /// bracket, since `measure` reads on while its best read's delay is above this (+ 25 %): the
    /// wider counter bracket here would let it stop reading on early.
    pub(crate) fn floor(&self) -> Option<u64> {
        (self.recent_delays.len() >= 4).then(|| self.recent_delays.iter().copied().min()).flatten()
    }

    /// Whether a measurement of `bracket` ([`bracket_ns`]) is typical (else the typical bracket);
    /// an accepted one's bracket and `delay` are remembered.
    pub(crate) fn accept(&mut self, bracket: u64, delay: u64) -> Result<Verdict, u64> {
        let verdict = self.judge(bracket)?;
        if self.recent_delays.len() == 16 {
            self.recent_delays.pop_front();
        }
        if verdict != Verdict::Typical {
            self.recent_delays.clear();
        }
        self.recent_delays.push_back(delay);
        Ok(verdict)
    }

    /// The verdict on `bracket`, remembered when accepted.
    fn judge(&mut self, bracket: u64) -> Result<Verdict, u64> {
        let mut verdict = Verdict::Typical;
        if self.recent.len() >= 4 {
            // The median of at most RECENT_BRACKETS, sorted on the stack (no allocation per update).
            let mut sorted = [0u64; RECENT_BRACKETS];
            let n = self.recent.len();
            for (slot, &b) in sorted.iter_mut().zip(&self.recent) {
                *slot = b;
            }
            sorted[..n].sort_unstable();
            let typical = sorted[n / 2];
            if bracket > typical.saturating_mul(4) && bracket > typical + 10_000 {
                self.rejected_in_a_row += 1;
                if self.rejected_in_a_row < REJECT_LIMIT {
                    return Err(typical);
                }
                self.recent.clear();
                verdict = Verdict::NewNormal { old_typical_ns: typical };
            }
        }
        self.rejected_in_a_row = 0;
        if self.recent.len() == RECENT_BRACKETS {
            self.recent.pop_front();
        }
        self.recent.push_back(bracket);
        Ok(verdict)
    }
}

/// What one call of [`Discipline::update`] did.
#[derive(Debug, Clone)]
pub enum Step {
    Updated(Box<Update>),
    /// The measurement was disturbed (delay far above the typical one) and was not used.
    Rejected {
        delay_ns: u64,
        typical_ns: u64,
        /// Rejections in a row, this one included (below [`REJECT_LIMIT`]).
        in_a_row: u32,
    },
}

/// The discipline loop over one NIC clock.
pub struct Discipline<R> {
    phc: Phc<R>,
    servo: Servo,
    config: DisciplineConfig,
    status: Status,
    under_threshold: u32,
    last_ppb: f64,
    rate: RateEstimator,
    delays: DelayFilter,
    update_count: u64,
    /// The reference identity published with every snapshot (system clock unless set).
    reference: Reference,
    /// |offset| left after each of the last updates (0 after a step), for the estimated error.
    recent_offsets: VecDeque<u64>,
}

/// How many recent offsets the estimated error's RMS takes.
const ESTIMATE_OFFSETS: usize = 16;

impl<R: RegisterAccess> Discipline<R> {
    pub fn new(phc: Phc<R>, mut servo: Servo, config: DisciplineConfig) -> Self {
        servo.sync_interval(config.interval_ns as f64 / 1e9);
        Self {
            phc,
            servo,
            config,
            status: Status::Unsynchronized,
            under_threshold: 0,
            last_ppb: 0.0,
            rate: RateEstimator::default(),
            delays: DelayFilter::default(),
            update_count: 0,
            reference: Reference::default(),
            recent_offsets: VecDeque::new(),
        }
    }

    /// Sets the reference identity the page publishes from the next update on.
    pub fn set_reference(&mut self, reference: Reference) {
        self.reference = reference;
    }

    pub fn phc(&self) -> &Phc<R> {
        &self.phc
    }

    pub fn phc_mut(&mut self) -> &mut Phc<R> {
        &mut self.phc
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn config(&self) -> &DisciplineConfig {
        &self.config
    }

    /// Takes the clock back after another steerer moved it (the PTP port as a slave): the servo
    /// starts over (its first update steps if the clock is off by more than the first-step
    /// threshold, as at start), and LOCKED is earned again.
    pub fn resume(&mut self) {
        self.servo.restart();
        self.under_threshold = 0;
        self.recent_offsets.clear();
    }

    /// One update: measure, servo, steer, and describe the page update.
    pub fn update(&mut self, host: &dyn Host) -> Result<Step, DeviceLost> {
        let m = self.measure_now(host)?;
        self.update_measured(host, m)
    }

    /// The NIC against the host's reference now (the system-clock measurement; another reference
    /// uses it for the page anchor and puts its own offset in).
    pub fn measure_now(&mut self, host: &dyn Host) -> Result<Measurement, DeviceLost> {
        // Good enough: within a quarter of the best delay of the recent measurements.
        let good_enough = self.delays.floor().map(|f| f + f / 4);
        measure(&mut self.phc, host, self.config.readings, good_enough)
    }

    /// One update from measurement `m`: servo, steer, and describe the page update.
    pub fn update_measured(&mut self, host: &dyn Host, m: Measurement) -> Result<Step, DeviceLost> {
        let ns_per_tick = self.rate.rate().map_or_else(|| host.ns_per_tick().0, |r| r.ns_per_tick);
        let bracket = bracket_ns(&m, ns_per_tick);
        let new_normal = match self.delays.accept(bracket, m.delay_ns) {
            Ok(Verdict::Typical) => None,
            Ok(Verdict::NewNormal { old_typical_ns }) => Some(old_typical_ns),
            Err(typical_ns) => {
                let in_a_row = self.delays.rejected_in_a_row;
                return Ok(Step::Rejected { delay_ns: bracket, typical_ns, in_a_row });
            }
        };
        self.update_count += 1;
        self.rate.add(m.counter, m.reference_ns, m.delay_ns);
        let (ppb, state) = self.servo.sample(m.offset_ns, m.reference_ns, 1.0);
        let mut events = Vec::new();
        let mut anchor_ns = m.nic_ns;
        let mut residual = m.offset_ns.unsigned_abs();
        let mut discontinuity = None;
        let mut step_mismatch = None;
        match state {
            ServoState::Jump => {
                if let Some(mismatch) = self.phc.step(Nanos::from(-m.offset_ns))? {
                    step_mismatch = Some(mismatch);
                }
                anchor_ns -= Nanos::from(m.offset_ns);
                residual = 0;
                events.push((EventKind::Step, -m.offset_ns));
                discontinuity = self.phc.set_frequency(Ppb(-ppb))?;
            }
            ServoState::Locked | ServoState::LockedStable => {
                discontinuity = self.phc.set_frequency(Ppb(-ppb))?
            }
            ServoState::Unlocked => {}
        }
        if let Some(d) = discontinuity {
            // The rate write moved the clock: readers learn of both (ABI units: the frequency
            // change in ppt, as `servo_freq_ppt` moved; the jump as a step in ns). The next
            // measurement shows the offset and the servo takes it from there.
            events.push((EventKind::FrequencyJump, ppt(ppb) - ppt(self.last_ppb)));
            events.push((EventKind::Step, d.jump_ns));
        }
        self.status = self.next_status(state, residual);
        let freq_change = (ppb - self.last_ppb).abs();
        self.last_ppb = ppb;

        // Until two measurements exist, the host's start-up calibration gives the rate.
        let rate = self.rate.rate().unwrap_or_else(|| {
            let (ns_per_tick, relative_error) = host.ns_per_tick();
            Rate { ns_per_tick, relative_error }
        });
        // Growth covers the rate estimate (3 standard errors), the servo's latest correction and
        // the oscillator's wander.
        let rate_ppb = 3.0 * rate.relative_error * 1e9;
        let growth_ppb = match self.status {
            Status::Locked => self.config.locked_growth_ppb + freq_change + rate_ppb,
            _ => (1_000.0f64).max(freq_change) + rate_ppb,
        };
        let anchor_tai_ns = anchor_ns.0.clamp(0, u64::MAX as i128) as u64;
        if residual == 0 && state == ServoState::Jump {
            self.recent_offsets.clear(); // what came before the step says nothing of after it
        }
        if self.recent_offsets.len() == ESTIMATE_OFFSETS {
            self.recent_offsets.pop_front();
        }
        self.recent_offsets.push_back(residual);
        let rms_offset = (self.recent_offsets.iter().map(|&o| (o as f64).powi(2)).sum::<f64>()
            / self.recent_offsets.len() as f64)
            .sqrt();
        // Estimated error: the RMS of the recent offsets (how far the servo has been from the
        // reference), and the two half-brackets as uniform jitter (σ = half/√3); its growth is
        // the rate estimate's 1σ and the servo's latest correction (the maximum takes 3σ and the
        // wander allowance on top). Unknown while the maximum is.
        let estimate = match self.status {
            Status::Unsynchronized => Estimate::UNKNOWN,
            _ => Estimate::from_parts(
                &[
                    rms_offset,
                    m.delay_ns as f64 / 2.0 / 3f64.sqrt(),
                    m.counter_window as f64 * rate.ns_per_tick / 2.0 / 3f64.sqrt(),
                ],
                rate.relative_error * 1e9 + freq_change,
            ),
        };
        let snapshot = Snapshot {
            counter_kind: host.counter_kind(),
            counter_value: m.counter,
            counter_period: period_from_ns_per_tick(rate.ns_per_tick),
            anchor_tai_ns,
            // The NIC's distance from the reference, plus the two half-brackets: the offset's (the
            // reference around the NIC read) and the anchor pairing's (the counter around both).
            // Unknown until the servo has set the clock.
            error_bound_ns: if self.status == Status::Unsynchronized {
                u64::MAX
            } else {
                residual
                    + m.delay_ns / 2
                    + (m.counter_window as f64 * rate.ns_per_tick / 2.0).ceil() as u64
                    + 1
            },
            error_growth_ppt: (growth_ppb * 1000.0).min(u32::MAX as f64) as u32,
            status: self.status,
            leap: Leap::None,
            leap_tai_s: 0,
            tai_utc_offset_s: host.tai_utc_offset_s(),
            updated_tai_ns: anchor_tai_ns,
            update_interval_ns: self.config.interval_ns,
            update_count: self.update_count,
            servo: ServoFigures {
                offset_ns: m.offset_ns,
                freq_ppt: ppt(ppb),
                delay_ns: m.delay_ns,
                state: state as u32,
            },
            reference: self.reference,
            estimate,
            epoch: 0,
        };
        Ok(Step::Updated(Box::new(Update {
            measurement: m,
            servo_state: state,
            servo_ppb: ppb,
            status: self.status,
            snapshot,
            events,
            discontinuity,
            step_mismatch,
            new_normal_delay_from_ns: new_normal,
        })))
    }

    fn next_status(&mut self, state: ServoState, residual: u64) -> Status {
        let servo_locked = matches!(state, ServoState::Locked | ServoState::LockedStable);
        if servo_locked && residual <= self.config.lock_threshold_ns {
            self.under_threshold += 1;
        } else {
            self.under_threshold = 0;
        }
        match (self.status, state) {
            (Status::Unsynchronized, ServoState::Unlocked) => Status::Unsynchronized,
            (_, _) if self.under_threshold >= self.config.lock_count => Status::Locked,
            // Once locked, stay locked until the offset leaves 10× the threshold.
            (Status::Locked, _) if servo_locked && residual <= 10 * self.config.lock_threshold_ns => {
                Status::Locked
            }
            _ => Status::Locking,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_rate_follows_every_change_of_the_points() {
        let mut r = RateEstimator::default();
        let mut fresh = RateEstimator::default();
        let same = |a: &RateEstimator, b: &RateEstimator| {
            let (a, b) = (a.rate().unwrap(), b.regression().unwrap());
            a.ns_per_tick == b.ns_per_tick && a.relative_error == b.relative_error
        };
        for k in 0..8u64 {
            let point = (k * 1_000, k * 1_001 + k % 3, 100);
            r.add(point.0, point.1, point.2);
            fresh.add(point.0, point.1, point.2);
        }
        assert!(same(&r, &fresh));
        r.add(8_000, 8_020, 100);
        fresh.add(8_000, 8_020, 100);
        assert!(same(&r, &fresh), "after add");
        r.rescale(1.001);
        fresh.rescale(1.001);
        assert!(same(&r, &fresh), "after rescale");
        let before = r.rate().unwrap().ns_per_tick;
        r.shift(5_000);
        fresh.shift(5_000);
        assert!(same(&r, &fresh), "after shift");
        assert!((r.rate().unwrap().ns_per_tick - before).abs() < 1e-12, "a step keeps the rate");
    }

    #[test]
    fn the_floor_measure_reads_on_against_is_a_delay_not_the_wider_bracket() {
        let mut f = DelayFilter::default();
        for k in 0..4 {
            // Counter brackets of ~1 500 ns around reference brackets (delays) of ~400 ns.
            assert_eq!(f.accept(1_500 + k, 400 + k), Ok(Verdict::Typical));
        }
        assert_eq!(f.floor(), Some(400), "the smallest delay, not the smallest bracket");
        assert_eq!(f.accept(1_000_000, 390), Err(1_502), "judged by its bracket (the typical one)");
        assert_eq!(f.floor(), Some(400), "a rejected measurement's delay is not remembered");
    }

    #[test]
    fn delays_that_stay_high_become_the_new_normal_instead_of_starving_the_page() {
        let mut f = DelayFilter::default();
        for _ in 0..16 {
            assert_eq!(f.accept(1_000, 1_000), Ok(Verdict::Typical));
        }
        assert_eq!(f.accept(1_000_000, 1_000_000), Err(1_000), "one disturbed measurement is rejected");
        assert_eq!(f.accept(1_100, 1_100), Ok(Verdict::Typical), "and forgotten");
        for k in 1..REJECT_LIMIT {
            assert_eq!(f.accept(1_000_000, 1_000_000), Err(1_000), "rejection {k} in a row");
            assert_eq!(f.rejected_in_a_row, k);
        }
        assert_eq!(f.accept(1_000_000, 1_000_000), Ok(Verdict::NewNormal { old_typical_ns: 1_000 }));
        assert_eq!(f.accept(1_050_000, 1_050_000), Ok(Verdict::Typical), "measured against the new delays");
        assert_eq!(f.rejected_in_a_row, 0);
    }
}
