//! An outlier gate in front of statime's Kalman filter: one bad packet (a mangled timestamp or
//! correction field) must not step or yank the clock, so measurements far off the recent ones wait.
//!
//! Per kind (Sync: t2−t1; Delay_Req: t3−t4) the gate compares each raw offset with the last one
//! accepted; beyond max(1 µs, 10 × the mean recent difference) it is dropped and counted. The
//! reference is set only by two measurements in a row that agree (within 1 ms): at start, after a
//! clock step by the filter (raw offsets jump with it), and after eight drops in a row (the master
//! really moved). One mangled timestamp therefore never reaches the filter, which matters beyond
//! accuracy: statime 0.4.0's Kalman filter overflows its time arithmetic on some absurd steps.
//! The admitted raw offsets are also recorded ([`super::spread`]) for the page's bound.
//!
//! Steps follow ptp4l's servo: a first-step threshold (50 µs) until the first correction, a step
//! threshold (1 ms) after. statime has one threshold, and resets its filter (losing its rate
//! estimate) and steps whenever a single measurement lies farther than it from its state: at
//! 50 µs a software-stamping master's noise (100s of µs) stepped the clock ~0.65 times a second,
//! and a 100 ppm oscillator at 1 Sync/s (100 µs per exchange) never locked. So the inner filter
//! gets the large threshold, and this wrapper
//! - makes the first step itself: once a Sync and a Delay_Req are measured, that exchange's
//!   offset ((t2−t1 + t3−t4)/2; statime's estimate does not move before it has 4 such pairs) is
//!   stepped if beyond the first-step threshold, and the inner filter is rebuilt (it cannot be
//!   told of a step it did not make). statime sets the clock's absolute frequency and a new filter starts from 0 ppm, so
//!   the inner filter steers relative to a base, the frequency it had reached: the rebuild keeps
//!   the syntonization;
//! - once past it, holds back a measurement farther than half the step threshold from the
//!   filter's prediction unless [`FAR_PERSIST`] come in a row: a noise spike never resets the
//!   filter, a real jump of the master (or of our clock) is stepped an exchange or three later.
//!
//! A new master (statime builds a new filter) starts with the first-step threshold again.
//!
//! What the inner filter is given is shifted by the lucky-exchange correction of one-sided stamp
//! latency ([`super::filter_latency`]; zero with hardware stamps at both ends); the page's raw
//! offsets stay as measured.

use std::cell::Cell;
use std::rc::Rc;

use statime::config::TimePropertiesDS;
use statime::filters::{Filter, FilterEstimate, FilterUpdate, KalmanConfiguration, KalmanFilter};
use statime::port::Measurement;
use statime::time::{Duration, Time};
use statime::Clock;

use super::filter_latency::LatencyCorrection;
use super::spread::SharedRawOffsets;

/// Below this a difference is never an outlier, ns.
pub const FLOOR_NS: f64 = 1_000.0;
/// Beyond this many mean differences a raw offset is an outlier.
pub const K: f64 = 10.0;
/// Consecutive outliers after which the gate starts acquiring afresh.
pub const MAX_DROPS: u32 = 8;
/// Two measurements in a row closer than this set the gate's reference, ns (100 ppm over 1 s with
/// margin: before lock consecutive raw offsets move at the oscillator's error).
pub const ACQUIRE_NS: f64 = 1_000_000.0;

/// The gated filter's configuration: Kalman's (its `step_threshold` is the step threshold once
/// locked), the first-step threshold, the counter of dropped measurements and where the admitted
/// raw offsets go.
#[derive(Clone)]
pub struct GateConfig {
    pub kalman: KalmanConfiguration,
    /// Until the first correction (at start, after a new master) offsets beyond this are stepped,
    /// ns (ptp4l's `first_step_threshold`).
    pub first_step_threshold_ns: f64,
    pub dropped: Rc<Cell<u64>>,
    pub raw: SharedRawOffsets,
}

/// Measurements in a row, each farther than half the step threshold from the filter's
/// prediction, after which they reach the filter (which then resets and steps if they are beyond
/// the threshold): a lasting offset is real, one noisy stamp is not.
pub const FAR_PERSIST: u32 = 3;

#[derive(Default)]
struct Gate {
    last: Option<f64>,
    spread: Option<f64>,
    /// While acquiring: the previous measurement, which the next must agree with.
    candidate: Option<f64>,
    drops: u32,
}

impl Gate {
    fn admit(&mut self, v: f64) -> bool {
        let (Some(last), Some(spread)) = (self.last, self.spread) else {
            // Acquiring (at start, after a step, after a burst of outliers): two measurements in a
            // row that agree, so that no single packet sets the reference.
            let agree = self.candidate.map(|c| (v - c).abs()).filter(|d| *d <= ACQUIRE_NS);
            self.candidate = Some(v);
            let Some(d) = agree else { return false };
            *self = Self { last: Some(v), spread: Some(d), candidate: None, drops: 0 };
            return true;
        };
        let d = (v - last).abs();
        if d > FLOOR_NS.max(K * spread) {
            self.drops += 1;
            if self.drops >= MAX_DROPS {
                // The master moved (or we did): acquire afresh.
                *self = Self::default();
            }
            return false;
        }
        self.drops = 0;
        self.spread = Some(spread + (d - spread) / 16.0);
        self.last = Some(v);
        true
    }
}

/// statime's Kalman filter behind the gate.
pub struct GatedKalman {
    inner: KalmanFilter,
    kalman: KalmanConfiguration,
    first_step_ns: f64,
    /// The first-step threshold applies: no correction made yet by this filter.
    first: bool,
    /// Kinds of measurement the inner filter absorbed since it was built or stepped: the offset
    /// estimate means something once it has both (Sync alone sees offset + delay).
    seen_sync: bool,
    seen_delay: bool,
    /// Far-off measurements in a row held back from the inner filter.
    far: u32,
    /// The latest admitted raw Sync and Delay_Req offsets while `first`, ns: one exchange's
    /// offset, (sync + delay) / 2, decides the first correction (statime's own estimate does not
    /// move before it has 4 Sync/Delay_Req pairs to estimate the noise from).
    first_sync: Option<f64>,
    first_delay: Option<f64>,
    /// The clock's frequency when the inner filter was built, ppm: a rebuilt filter starts from
    /// 0 ppm (statime sets the clock's absolute frequency), so it steers relative to this.
    freq_base_ppm: f64,
    /// The inner filter's last frequency, relative to `freq_base_ppm`.
    inner_ppm: f64,
    sync: Gate,
    delay: Gate,
    /// The shift for one-sided stamp latency, applied to what the inner filter is given.
    latency: LatencyCorrection,
    dropped: Rc<Cell<u64>>,
    raw: SharedRawOffsets,
}

/// The clock as the inner filter sees it: notes steps, offsets the frequency by the base.
struct StepSpy<'a, C> {
    clock: &'a mut C,
    stepped: Option<Duration>,
    freq_base_ppm: f64,
    inner_ppm: &'a mut f64,
}

impl<C: Clock> Clock for StepSpy<'_, C> {
    type Error = C::Error;
    fn now(&self) -> Time {
        self.clock.now()
    }
    fn step_clock(&mut self, offset: Duration) -> Result<Time, C::Error> {
        self.stepped = Some(self.stepped.unwrap_or(Duration::ZERO) + offset);
        self.clock.step_clock(offset)
    }
    fn set_frequency(&mut self, ppm: f64) -> Result<Time, C::Error> {
        let t = self.clock.set_frequency(self.freq_base_ppm + ppm)?;
        *self.inner_ppm = ppm;
        Ok(t)
    }
    fn set_properties(&mut self, p: &TimePropertiesDS) -> Result<(), C::Error> {
        self.clock.set_properties(p)
    }
}

impl GatedKalman {
    fn spied<C: Clock, T>(
        &mut self,
        clock: &mut C,
        f: impl FnOnce(&mut KalmanFilter, &mut StepSpy<C>) -> T,
    ) -> T {
        let mut spy = StepSpy {
            clock,
            stepped: None,
            freq_base_ppm: self.freq_base_ppm,
            inner_ppm: &mut self.inner_ppm,
        };
        let out = f(&mut self.inner, &mut spy);
        if let Some(step) = spy.stepped {
            self.after_step(step);
        }
        out
    }

    fn after_step(&mut self, step: Duration) {
        self.sync = Gate::default();
        self.delay = Gate::default();
        self.seen_sync = false;
        self.seen_delay = false;
        self.far = 0;
        self.first_sync = None;
        self.first_delay = None;
        // The exchanges before a step were taken by a clock (and filter) far off.
        self.latency = LatencyCorrection::default();
        // The raw offsets stay: their spread is the master's noise, not the filter's state.
        self.raw.borrow_mut().stepped(step.nanos_lossy());
    }

    /// Once locked, a measurement farther than half the step threshold from what the filter
    /// predicts is held back unless [`FAR_PERSIST`] come in a row: statime resets (and steps)
    /// on a single one beyond the threshold, losing its frequency estimate to one noisy stamp.
    fn hold_back(&mut self, m: &Measurement) -> bool {
        if self.first || !(self.seen_sync && self.seen_delay) {
            return false;
        }
        let e = self.inner.current_estimates();
        let (o, d) = (e.offset_from_master.nanos_lossy(), e.mean_delay.nanos_lossy());
        let far_from = |raw: Option<Duration>, predicted: f64| {
            raw.is_some_and(|r| {
                (r.nanos_lossy() - predicted).abs() > self.kalman.step_threshold.nanos_lossy() / 2.0
            })
        };
        if !(far_from(m.raw_sync_offset, o + d) || far_from(m.raw_delay_offset, o - d)) {
            self.far = 0;
            return false;
        }
        self.far += 1;
        if self.far >= FAR_PERSIST {
            log::info!("ptp: {} measurements in a row far from the estimate: passed to the filter", self.far);
            self.far = 0;
            return false;
        }
        true
    }

    /// Before the first correction: once an exchange is measured (a Sync and a Delay_Req since
    /// the start or the last step), step its offset if beyond the first-step threshold (and
    /// start a new inner filter, which knows of no step but keeps the frequency through the
    /// base), else slew from now on.
    fn first_correction<C: Clock>(&mut self, clock: &mut C) {
        let (true, Some(sync), Some(delay)) = (self.first, self.first_sync, self.first_delay) else {
            return;
        };
        self.first = false;
        // The latency correction's warm-up starts here: before, the clock was still to be set.
        self.latency = LatencyCorrection::default();
        let offset = Duration::from_nanos(((sync + delay) / 2.0).round() as i64);
        if offset.nanos_lossy().abs() <= self.first_step_ns {
            return;
        }
        if clock.step_clock(-offset).is_err() {
            log::error!("ptp: could not step the clock by {} ns", -offset.nanos_lossy());
            return;
        }
        log::info!("ptp: first step of {} ns (beyond the first-step threshold)", -offset.nanos_lossy());
        self.freq_base_ppm += self.inner_ppm;
        self.inner_ppm = 0.0;
        self.inner = KalmanFilter::new(self.kalman);
        self.after_step(-offset);
    }
}

impl Filter for GatedKalman {
    type Config = GateConfig;

    fn new(config: GateConfig) -> Self {
        // A new filter (a new master followed): the old raw offsets are of another path.
        config.raw.borrow_mut().clear();
        Self {
            inner: KalmanFilter::new(config.kalman),
            kalman: config.kalman,
            first_step_ns: config.first_step_threshold_ns,
            first: true,
            seen_sync: false,
            seen_delay: false,
            far: 0,
            first_sync: None,
            first_delay: None,
            freq_base_ppm: 0.0,
            inner_ppm: 0.0,
            sync: Gate::default(),
            delay: Gate::default(),
            latency: LatencyCorrection::default(),
            dropped: config.dropped,
            raw: config.raw,
        }
    }

    fn measurement<C: Clock>(&mut self, m: Measurement, clock: &mut C) -> FilterUpdate {
        let ns = |d: Duration| d.nanos_lossy();
        let admitted = m.raw_sync_offset.is_none_or(|o| self.sync.admit(ns(o)))
            && m.raw_delay_offset.is_none_or(|o| self.delay.admit(ns(o)));
        if !admitted || self.hold_back(&shift(m, self.latency.correction_ns())) {
            self.dropped.set(self.dropped.get() + 1);
            log::debug!("ptp: measurement dropped as an outlier: {m:?}");
            return FilterUpdate::default();
        }
        {
            let mut raw = self.raw.borrow_mut();
            if let Some(o) = m.raw_sync_offset {
                raw.on_sync(ns(o), m.event_time.nanos().to_num::<u64>());
                self.latency.on_sync(ns(o));
            }
            if let Some(o) = m.raw_delay_offset {
                raw.on_delay(ns(o));
                let estimate = self.inner.current_estimates().offset_from_master;
                let at = m.event_time.nanos().to_num::<u64>();
                self.latency.on_delay(ns(o), ns(estimate), at);
                raw.set_latency_shift(self.latency.correction_ns());
            }
        }
        let raw_m = m;
        let m = shift(m, self.latency.correction_ns());
        // Before the call: a step by the inner filter clears them (this measurement predates it).
        self.seen_sync |= m.raw_sync_offset.is_some();
        self.seen_delay |= m.raw_delay_offset.is_some();
        let update = self.spied(clock, |f, c| f.measurement(m, c));
        if self.first && self.seen_sync | self.seen_delay {
            // Not stepped by the inner filter just now (that clears them): this measurement
            // stands for the clock as it is.
            self.first_sync = raw_m.raw_sync_offset.map(ns).or(self.first_sync);
            self.first_delay = raw_m.raw_delay_offset.map(ns).or(self.first_delay);
        }
        self.first_correction(clock);
        update
    }

    fn update<C: Clock>(&mut self, clock: &mut C) -> FilterUpdate {
        self.spied(clock, |f, c| f.update(c))
    }

    fn demobilize<C: Clock>(mut self, clock: &mut C) {
        let inner = std::mem::replace(&mut self.inner, KalmanFilter::new(self.kalman));
        let mut spy = StepSpy {
            clock,
            stepped: None,
            freq_base_ppm: self.freq_base_ppm,
            inner_ppm: &mut self.inner_ppm,
        };
        inner.demobilize(&mut spy)
    }

    fn current_estimates(&self) -> FilterEstimate {
        self.inner.current_estimates()
    }
}

/// The measurement with both raw offsets shifted by `ns` (the latency correction).
fn shift(m: Measurement, ns: f64) -> Measurement {
    let by = Duration::from_nanos(ns.round() as i64);
    Measurement {
        raw_sync_offset: m.raw_sync_offset.map(|o| o + by),
        raw_delay_offset: m.raw_delay_offset.map(|o| o + by),
        ..m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_drops_a_lone_outlier_and_follows_a_lasting_move() {
        let mut g = Gate::default();
        assert!(!g.admit(1e15), "a lone first value sets nothing");
        assert!(!g.admit(5_000.0), "nor does one that disagrees with it");
        assert!(g.admit(5_020.0), "two that agree do");
        for i in 0..20 {
            assert!(g.admit(5_000.0 + (i % 3) as f64 * 20.0));
        }
        assert!(!g.admit(5_000.0 + 1e9), "one packet a second off");
        assert!(g.admit(5_010.0), "the next good one passes");
        // The master steps by 1 ms: dropped MAX_DROPS times, then acquired afresh (two in a row).
        for _ in 0..MAX_DROPS {
            assert!(!g.admit(1_005_000.0));
        }
        assert!(!g.admit(1_005_010.0));
        assert!(g.admit(1_005_020.0));
        assert!(g.admit(1_005_000.0));
    }
}

#[cfg(test)]
mod step_tests {
    use super::*;

    /// A clock that records what the filter asks of it.
    #[derive(Default)]
    struct Rec {
        now_ns: i64,
        freq: Vec<f64>,
        steps: Vec<f64>,
    }

    impl Clock for Rec {
        type Error = ();
        fn now(&self) -> Time {
            Time::from_nanos(self.now_ns as u64)
        }
        fn step_clock(&mut self, offset: Duration) -> Result<Time, ()> {
            self.steps.push(offset.nanos_lossy());
            Ok(self.now())
        }
        fn set_frequency(&mut self, ppm: f64) -> Result<Time, ()> {
            self.freq.push(ppm);
            Ok(self.now())
        }
        fn set_properties(&mut self, _: &TimePropertiesDS) -> Result<(), ()> {
            Ok(())
        }
    }

    fn m(at_ns: i64, sync: Option<i64>, delay: Option<i64>) -> Measurement {
        Measurement {
            event_time: Time::from_nanos(at_ns as u64),
            offset: None,
            delay: None,
            peer_delay: None,
            raw_sync_offset: sync.map(Duration::from_nanos),
            raw_delay_offset: delay.map(Duration::from_nanos),
        }
    }

    fn gated() -> GatedKalman {
        GatedKalman::new(GateConfig {
            kalman: KalmanConfiguration::default(),
            first_step_threshold_ns: 50_000.0,
            dropped: Rc::default(),
            raw: SharedRawOffsets::default(),
        })
    }

    #[test]
    fn the_first_step_keeps_the_frequency_and_later_spikes_do_not_reset() {
        let mut g = gated();
        let mut c = Rec::default();
        // 200 µs off (below statime's 1 ms), path 5 µs: Sync sees 205 µs, Delay_Req 195 µs.
        let mut t = 1_000_000_000i64;
        for _ in 0..3 {
            g.measurement(m(t, Some(205_000), None), &mut c);
            g.measurement(m(t + 50_000_000, None, Some(195_000)), &mut c);
            t += 125_000_000;
            if !c.steps.is_empty() {
                break;
            }
        }
        assert_eq!(c.steps.len(), 1, "a first step beyond 50 µs: {:?}", c.steps);
        assert!((c.steps[0] + 200_000.0).abs() < 20_000.0, "about -200 µs: {:?}", c.steps);
        // The rebuilt filter's first frequency write is its 0 ppm on top of the base: the clock's
        // frequency is where it was, not reset to nominal.
        let (before, n) = (*c.freq.last().unwrap(), c.freq.len());
        assert_ne!(before, 0.0, "the first filter steered the frequency");
        // (The gate acquires afresh after a step: two measurements before one is admitted.)
        while c.freq.len() == n && t < 10_000_000_000 {
            g.measurement(m(t, Some(5_000), None), &mut c);
            t += 125_000_000;
        }
        assert_eq!(c.freq[n], before, "the new filter's 0 ppm is the old frequency: {:?}", c.freq);
        // Locked (past the first correction): a lone 3 ms spike is held back, no reset, no step.
        for _ in 0..40 {
            g.measurement(m(t, Some(5_000), None), &mut c);
            g.measurement(m(t + 50_000_000, None, Some(-5_000)), &mut c);
            t += 125_000_000;
        }
        let (steps, dropped) = (c.steps.len(), g.dropped.get());
        g.measurement(m(t, Some(3_005_000), None), &mut c);
        assert_eq!(c.steps.len(), steps, "a step on one spike");
        assert_eq!(g.dropped.get(), dropped + 1, "held back");
    }
}
