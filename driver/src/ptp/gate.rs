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

use std::cell::Cell;
use std::rc::Rc;

use statime::config::TimePropertiesDS;
use statime::filters::{Filter, FilterEstimate, FilterUpdate, KalmanConfiguration, KalmanFilter};
use statime::port::Measurement;
use statime::time::{Duration, Time};
use statime::Clock;

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

/// The gated filter's configuration: Kalman's, the counter of dropped measurements and where the
/// admitted raw offsets go.
#[derive(Clone)]
pub struct GateConfig {
    pub kalman: KalmanConfiguration,
    pub dropped: Rc<Cell<u64>>,
    pub raw: SharedRawOffsets,
}

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
    sync: Gate,
    delay: Gate,
    dropped: Rc<Cell<u64>>,
    raw: SharedRawOffsets,
}

/// The clock as the inner filter sees it: notes steps.
struct StepSpy<'a, C> {
    clock: &'a mut C,
    stepped: Option<Duration>,
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
        self.clock.set_frequency(ppm)
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
        let mut spy = StepSpy { clock, stepped: None };
        let out = f(&mut self.inner, &mut spy);
        if let Some(step) = spy.stepped {
            self.sync = Gate::default();
            self.delay = Gate::default();
            // The raw offsets stay: their spread is the master's noise, not the filter's state.
            self.raw.borrow_mut().stepped(step.nanos_lossy());
        }
        out
    }
}

impl Filter for GatedKalman {
    type Config = GateConfig;

    fn new(config: GateConfig) -> Self {
        // A new filter (a new master followed): the old raw offsets are of another path.
        config.raw.borrow_mut().clear();
        Self {
            inner: KalmanFilter::new(config.kalman),
            sync: Gate::default(),
            delay: Gate::default(),
            dropped: config.dropped,
            raw: config.raw,
        }
    }

    fn measurement<C: Clock>(&mut self, m: Measurement, clock: &mut C) -> FilterUpdate {
        let ns = |d: Duration| d.nanos_lossy();
        let admitted = m.raw_sync_offset.is_none_or(|o| self.sync.admit(ns(o)))
            && m.raw_delay_offset.is_none_or(|o| self.delay.admit(ns(o)));
        if !admitted {
            self.dropped.set(self.dropped.get() + 1);
            log::debug!("ptp: measurement dropped as an outlier: {m:?}");
            return FilterUpdate::default();
        }
        {
            let mut raw = self.raw.borrow_mut();
            if let Some(o) = m.raw_sync_offset {
                raw.on_sync(ns(o));
            }
            if let Some(o) = m.raw_delay_offset {
                raw.on_delay(ns(o));
            }
        }
        self.spied(clock, |f, c| f.measurement(m, c))
    }

    fn update<C: Clock>(&mut self, clock: &mut C) -> FilterUpdate {
        self.spied(clock, |f, c| f.update(c))
    }

    fn demobilize<C: Clock>(self, clock: &mut C) {
        self.inner.demobilize(clock)
    }

    fn current_estimates(&self) -> FilterEstimate {
        self.inner.current_estimates()
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
