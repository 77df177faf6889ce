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
//! - makes the first correction itself, from the start's exchanges ([`StartFit`]: 3 Syncs and 3
//!   Delay_Reqs or more over 2 s, or 16 of each), none of which statime's filter is given:
//!   their fit (one Theil–Sen slope for both kinds, each kind's level its median) gives the
//!   clock's frequency error, set at once, and its offset now, stepped if beyond the first-step
//!   threshold; the inner filter is rebuilt (it cannot be told of a step it did not make), told
//!   the frequency to 3 standard errors of the fit instead of its default 100 ppm (a fit less
//!   certain than 5 ppm, from a master stamping in software, is not used: the newest exchange's
//!   offset is, the frequency left to statime's filter as before). Before, the
//!   inner filter saw the first exchange: far off (the clock at power-up), it reset on it and
//!   stepped by the Sync offset alone (offset + path delay), left the clock a path delay off,
//!   and slewed that at 10s of ppm once it trusted its measurements (4 Sync/Delay_Req pairs
//!   later) — the QEMU pair's ~40 ppm transient after its first LOCKED. statime sets the clock's
//!   absolute frequency and a new filter starts from 0 ppm, so the inner filter steers relative
//!   to a base, the fitted frequency: the rebuild keeps the syntonization;
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
    /// The admitted raw Sync and Delay_Req offsets while `first`: their fit decides the first
    /// correction (offset and frequency, [`StartFit`]).
    start: StartFit,
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

    /// What the inner filter is given: the measurement shifted by the lucky-exchange correction.
    fn shifted(&self, m: Measurement) -> Measurement {
        shift(m, self.latency.correction_ns())
    }

    fn after_step(&mut self, step: Duration) {
        self.sync = Gate::default();
        self.delay = Gate::default();
        self.seen_sync = false;
        self.seen_delay = false;
        self.far = 0;
        self.start = StartFit::default();
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

    /// Before the first correction: once the start's exchanges are in ([`StartFit::ready`]),
    /// their fit sets the frequency and, beyond the first-step threshold, steps the offset; a new
    /// inner filter starts from there, told how well the fit knows the frequency (module docs).
    fn first_correction<C: Clock>(&mut self, clock: &mut C) {
        if !self.first || !self.start.ready() {
            return;
        }
        let Some(fit) = self.start.fit(clock.now()) else { return };
        self.first = false;
        self.start = StartFit::default();
        // The latency correction's warm-up starts here: before, the clock was still to be set.
        self.latency = LatencyCorrection::default();
        self.freq_base_ppm += self.inner_ppm - fit.freq_ppm;
        self.inner_ppm = 0.0;
        if clock.set_frequency(self.freq_base_ppm).is_err() {
            log::error!("ptp: could not set the clock's frequency to {:+.3} ppm", self.freq_base_ppm);
        }
        let mut kalman = self.kalman;
        kalman.initial_frequency_uncertainty = (START_FREQ_SIGMAS * fit.freq_sigma_ppm * 1e-6)
            .clamp(MIN_FREQ_UNCERTAINTY, kalman.initial_frequency_uncertainty);
        self.inner = KalmanFilter::new(kalman);
        self.seen_sync = false;
        self.seen_delay = false;
        log::info!(
            "ptp: start fit over {} exchanges: offset {} ns, frequency {:+.3} ppm (±{:.3})",
            fit.exchanges,
            fit.offset.nanos_lossy(),
            -fit.freq_ppm,
            fit.freq_sigma_ppm
        );
        if fit.offset.nanos_lossy().abs() > self.first_step_ns {
            if clock.step_clock(-fit.offset).is_ok() {
                log::info!(
                    "ptp: first step of {} ns (beyond the first-step threshold)",
                    -fit.offset.nanos_lossy()
                );
                self.after_step(-fit.offset);
            } else {
                log::error!("ptp: could not step the clock by {} ns", -fit.offset.nanos_lossy());
            }
        }
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
            start: StartFit::default(),
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
        if !admitted || self.hold_back(&self.shifted(m)) {
            self.dropped.set(self.dropped.get() + 1);
            log::debug!("ptp: measurement dropped as an outlier: {m:?}");
            return FilterUpdate::default();
        }
        if self.first {
            // Collected for the start's fit, not given to statime's filter (module docs). The
            // clock runs at the base meanwhile (statime's first write would set it there too).
            if self.start.is_empty() && clock.set_frequency(self.freq_base_ppm + self.inner_ppm).is_err() {
                log::error!("ptp: could not set the clock's frequency");
            }
            self.start.add(&m);
            self.first_correction(clock);
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
        let m = self.shifted(m);
        // Before the call: a step by the inner filter clears them (this measurement predates it).
        self.seen_sync |= m.raw_sync_offset.is_some();
        self.seen_delay |= m.raw_delay_offset.is_some();
        self.spied(clock, |f, c| f.measurement(m, c))
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

/// Exchanges (Syncs and Delay_Reqs each) the start's fit waits for at fast rates (2 s at 8 per
/// second: over 1 s the QEMU pair's µs of stamp noise left the frequency up to 4 ppm off).
pub const START_EXCHANGES: usize = 16;
/// Or, at slow rates, this many of each over at least [`START_SPAN_S`].
pub const START_MIN: usize = 3;
pub const START_SPAN_S: f64 = 2.0;
/// The rebuilt filter's initial frequency uncertainty: this many standard errors of the fit's
/// frequency, at least [`MIN_FREQ_UNCERTAINTY`] (s/s).
pub const START_FREQ_SIGMAS: f64 = 3.0;
pub const MIN_FREQ_UNCERTAINTY: f64 = 0.1e-6;
/// A fitted frequency less certain than this (standard error, ppm) is not used (the offset is
/// then the newest exchange's, as statime's filter would see it).
pub const MAX_START_FREQ_SIGMA_PPM: f64 = 5.0;

/// The start's fit ([`StartFit::fit`]).
#[derive(Debug, Clone, Copy)]
pub struct StartOffset {
    /// The clock's offset from the master at the time asked for.
    pub offset: Duration,
    /// The clock's frequency error (+: fast), ppm, and its standard error.
    pub freq_ppm: f64,
    pub freq_sigma_ppm: f64,
    pub exchanges: usize,
}

/// Before the first correction: the admitted raw offsets, each relative to the first one (ns, so
/// that f64 keeps their ns at any distance from the master), at their times (s since the first).
/// Sync (offset + delay) and Delay_Req (offset − delay) offsets share the clock's offset and
/// frequency error, each with its own level.
#[derive(Debug, Default, Clone)]
pub struct StartFit {
    origin: Option<(Time, Duration)>,
    sync: Vec<(f64, f64)>,
    delay: Vec<(f64, f64)>,
}

impl StartFit {
    pub fn is_empty(&self) -> bool {
        self.origin.is_none()
    }

    pub fn add(&mut self, m: &Measurement) {
        for (raw, is_delay) in [(m.raw_sync_offset, false), (m.raw_delay_offset, true)] {
            let Some(o) = raw else { continue };
            let (t0, o0) = *self.origin.get_or_insert((m.event_time, o));
            let point = ((m.event_time - t0).seconds(), (o - o0).nanos_lossy());
            if is_delay {
                self.delay.push(point);
            } else {
                self.sync.push(point);
            }
        }
    }

    /// Enough exchanges for the fit: [`START_EXCHANGES`] of each, or [`START_MIN`] of each over
    /// [`START_SPAN_S`].
    pub fn ready(&self) -> bool {
        let n = self.sync.len().min(self.delay.len());
        let span = self.sync.iter().chain(&self.delay).map(|p| p.0).fold(0.0, f64::max);
        n >= START_EXCHANGES || (n >= START_MIN && span >= START_SPAN_S)
    }

    /// The clock's offset at `at` and its frequency error: one slope for both kinds by least
    /// squares (each about its own mean), each kind's level the median of its points less the
    /// slope (a stray stamp moves a median little), the offset the mean of the two levels.
    pub fn fit(&self, at: Time) -> Option<StartOffset> {
        let (t0, o0) = self.origin?;
        if self.sync.is_empty() || self.delay.is_empty() {
            return None;
        }
        // Theil–Sen: the median of the slopes between every two points of one kind (a mangled
        // stamp the gate let through moves it little; least squares it moved by 10s of ppm).
        let mut slopes = Vec::new();
        for pts in [&self.sync, &self.delay] {
            for (i, p) in pts.iter().enumerate() {
                slopes.extend(pts[i + 1..].iter().filter(|q| q.0 > p.0).map(|q| (q.1 - p.1) / (q.0 - p.0)));
            }
        }
        // ns per s: ppm × 1000.
        let slope = median(&mut slopes).unwrap_or(0.0);
        let level =
            |pts: &[(f64, f64)]| median(&mut pts.iter().map(|p| p.1 - slope * p.0).collect::<Vec<_>>());
        let (a, b) = (level(&self.sync)?, level(&self.delay)?);
        // The residuals' spread (1.4826 × their median absolute value: σ for Gaussian noise) and
        // the slope's standard error as least squares would have it.
        let mut residuals: Vec<f64> = (self.sync.iter().map(|p| (p.1 - a - slope * p.0).abs()))
            .chain(self.delay.iter().map(|p| (p.1 - b - slope * p.0).abs()))
            .collect();
        let sigma = 1.4826 * median(&mut residuals).unwrap_or(0.0);
        let spread = |pts: &[(f64, f64)]| {
            let mt = pts.iter().map(|p| p.0).sum::<f64>() / pts.len() as f64;
            pts.iter().map(|p| (p.0 - mt).powi(2)).sum::<f64>()
        };
        let sxx = spread(&self.sync) + spread(&self.delay);
        let freq_sigma_ppm = if sxx > 0.0 { sigma / sxx.sqrt() / 1000.0 } else { f64::INFINITY };
        let exchanges = self.sync.len().min(self.delay.len());
        if freq_sigma_ppm > MAX_START_FREQ_SIGMA_PPM {
            // Too noisy to say the frequency (a master stamping in software, at 1 Sync/s): the
            // newest exchange's offset, the frequency left to statime's filter.
            let (s, d) = (self.sync.last()?.1, self.delay.last()?.1);
            return Some(StartOffset {
                offset: o0 + Duration::from_nanos(((s + d) / 2.0).round() as i64),
                freq_ppm: 0.0,
                freq_sigma_ppm: f64::INFINITY,
                exchanges,
            });
        }
        let t = (at - t0).seconds();
        Some(StartOffset {
            offset: o0 + Duration::from_nanos(((a + b) / 2.0 + slope * t).round() as i64),
            freq_ppm: slope / 1000.0,
            freq_sigma_ppm,
            exchanges,
        })
    }
}

/// The median (`None` for none); sorts `v`.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let k = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[k]),
        _ => Some((v[k - 1] + v[k]) / 2.0),
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
    fn the_first_correction_fits_the_starts_exchanges_and_later_spikes_do_not_reset() {
        let mut g = gated();
        let mut c = Rec::default();
        // 200 µs off (below statime's 1 ms) and 20 ppm fast (20 ns per ms), path 5 µs, each
        // exchange ±800 ns of stamp noise: Sync sees offset + 5 µs, Delay_Req offset − 5 µs.
        let offset_at = |t: i64| 200_000 + t / 50_000;
        let noise = [800, -500, 300, -800, 0, 600, -300, 100, -600, 400];
        let mut t = 1_000_000_000i64;
        for i in 0..20 {
            c.now_ns = t;
            g.measurement(m(t, Some(offset_at(t) + 5_000 + noise[i % 10]), None), &mut c);
            c.now_ns = t + 50_000_000;
            let u = t + 50_000_000;
            g.measurement(m(u, None, Some(offset_at(u) - 5_000 - noise[(i + 3) % 10])), &mut c);
            t += 125_000_000;
            if !c.steps.is_empty() {
                break;
            }
        }
        // One exchange's offset (before: the first one decided, ±800 ns, and statime's filter
        // then learnt the 20 ppm from scratch, slewing at 10s of ppm on the way) — now the fit of
        // the start's exchanges: the offset at the step and the frequency, at once.
        assert_eq!(c.steps.len(), 1, "a first step beyond 50 µs: {:?}", c.steps);
        let expected = -(offset_at(c.now_ns) as f64);
        assert!((c.steps[0] - expected).abs() < 500.0, "{expected} ns: {:?}", c.steps);
        let set = *c.freq.last().unwrap();
        assert!((set + 20.0).abs() < 1.0, "the clock slowed by 20 ppm at the step: {:?}", c.freq);
        // The rebuilt filter's first frequency write is its 0 ppm on top of the base: the clock's
        // frequency stays the fitted one, not reset to nominal.
        let n = c.freq.len();
        // (The gate acquires afresh after a step: two measurements before one is admitted.)
        while c.freq.len() == n && t < 10_000_000_000 {
            g.measurement(m(t, Some(5_000), None), &mut c);
            t += 125_000_000;
        }
        assert_eq!(c.freq[n], set, "the new filter's 0 ppm is the fitted frequency: {:?}", c.freq);
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
