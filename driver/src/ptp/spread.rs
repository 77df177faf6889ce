//! The spread of the raw per-exchange offsets (before statime's Kalman filter): how noisy the
//! master's measurements are, which the filtered offset hides; the page's bound is built on it.
//!
//! Each Delay_Req measurement that the gate admits is paired with the latest admitted Sync one:
//! offset = ((t2−t1) + (t3−t4)) / 2, path delay = ((t2−t1) − (t3−t4)) / 2. The last [`WINDOW`]
//! offsets are kept; a clock step shifts them by the step (what they would have read after it):
//! the noise must not be forgotten at a step (at start-up, after a real jump of the master).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// Exchanges kept (the probability that zero-mean noise puts them all on one side of the true
/// error is 2^−WINDOW; see the page's module docs).
pub const WINDOW: usize = 16;
/// Exchanges needed before the page may say LOCKED (fewer say too little of the noise).
pub const MIN_EXCHANGES: u32 = 4;

/// Figures of the recent raw offsets, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawSpread {
    /// Exchanges behind the figures (at most [`WINDOW`]).
    pub count: u32,
    /// The largest |raw offset|.
    pub max_abs_ns: u64,
    /// The raw offsets' standard deviation about their mean (0 with one exchange).
    pub sigma_ns: u64,
    /// Their mean: where the clock was over the window, as the exchanges say.
    pub mean_ns: i64,
    /// Their root mean square about zero (a statistical figure of the clock's error).
    pub rms_ns: u64,
    /// The exchanges' mean path delay ((t2−t1) − (t3−t4)) / 2, at least 0: known from the first
    /// exchange on, where the Kalman filter's estimate starts at 0 and takes many to converge.
    pub mean_delay_ns: u64,
    /// The filter's current lucky-exchange shift ([`super::filter_latency`]), ns.
    pub latency_shift_ns: i64,
    /// When the newest exchange began (its Sync's receive time, the slave's clock, ns; moved by
    /// each step like the offsets): the figures say what the clock was then, and it has drifted
    /// since (the page grows its bound from here, not from its anchor). `None`: not known.
    pub newest_at_ns: Option<u64>,
}

impl RawSpread {
    /// The honest part of the page's bound: max |raw offset| + 2σ (see the page's module docs).
    pub fn bound_ns(&self) -> u64 {
        self.max_abs_ns.saturating_add(self.sigma_ns.saturating_mul(2))
    }
}

/// The recent raw offsets; shared between the gate (writer) and the port (reader).
#[derive(Debug, Default)]
pub struct RawOffsets {
    last_sync: Option<f64>,
    /// The latest Sync's receive time and the newest exchange's (see [`RawSpread::newest_at_ns`]).
    last_sync_at: Option<u64>,
    newest_at: Option<u64>,
    offsets: VecDeque<f64>,
    delays: VecDeque<f64>,
    latency_shift_ns: f64,
    /// [`RawOffsets::spread`] as last computed; emptied by every change. The port asks for it
    /// after each message (its status), the figures change once per exchange.
    figures: Cell<Option<Option<RawSpread>>>,
}

/// The handle the gate and the port share.
pub type SharedRawOffsets = Rc<RefCell<RawOffsets>>;

impl RawOffsets {
    /// An admitted Sync measurement, t2−t1 (asymmetry-corrected), ns, received at `at_ns` (t2,
    /// the slave's clock).
    pub fn on_sync(&mut self, sync_ns: f64, at_ns: u64) {
        self.last_sync = Some(sync_ns);
        self.last_sync_at = Some(at_ns);
    }

    /// An admitted Delay_Req measurement, t3−t4, ns: one exchange, paired with the latest Sync.
    pub fn on_delay(&mut self, delay_ns: f64) {
        let Some(sync) = self.last_sync else { return };
        self.newest_at = self.last_sync_at;
        self.figures.take();
        if self.offsets.len() == WINDOW {
            self.offsets.pop_front();
            self.delays.pop_front();
        }
        self.offsets.push_back((sync + delay_ns) / 2.0);
        self.delays.push_back((sync - delay_ns) / 2.0);
    }

    /// The gate's current lucky-exchange shift, ns (reported with the figures).
    pub fn set_latency_shift(&mut self, ns: f64) {
        self.figures.take();
        self.latency_shift_ns = ns;
    }

    /// The clock stepped by `step_ns` (added to its time): the offsets shift with it.
    pub fn stepped(&mut self, step_ns: f64) {
        self.figures.take();
        if let Some(s) = self.last_sync.as_mut() {
            *s += step_ns;
        }
        for at in [&mut self.last_sync_at, &mut self.newest_at].into_iter().flatten() {
            *at = at.saturating_add_signed(step_ns as i64);
        }
        for o in self.offsets.iter_mut() {
            *o += step_ns;
        }
    }

    /// A new master (a new filter): the offsets of the old path say nothing of the new one.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The figures, once an exchange was measured.
    pub fn spread(&self) -> Option<RawSpread> {
        if let Some(figures) = self.figures.get() {
            return figures;
        }
        let figures = self.compute();
        self.figures.set(Some(figures));
        figures
    }

    fn compute(&self) -> Option<RawSpread> {
        if self.offsets.is_empty() {
            return None;
        }
        let n = self.offsets.len() as f64;
        let mean = self.offsets.iter().sum::<f64>() / n;
        let var = self.offsets.iter().map(|o| (o - mean).powi(2)).sum::<f64>() / n;
        let ms = self.offsets.iter().map(|o| o * o).sum::<f64>() / n;
        let max_abs = self.offsets.iter().map(|o| o.abs()).fold(0.0, f64::max);
        Some(RawSpread {
            count: self.offsets.len() as u32,
            max_abs_ns: max_abs.ceil() as u64,
            sigma_ns: var.sqrt().ceil() as u64,
            mean_ns: mean.round() as i64,
            rms_ns: ms.sqrt().ceil() as u64,
            mean_delay_ns: (self.delays.iter().sum::<f64>() / n).max(0.0).ceil() as u64,
            latency_shift_ns: self.latency_shift_ns.round() as i64,
            newest_at_ns: self.newest_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_each_delay_with_the_latest_sync_and_keeps_a_window() {
        let mut r = RawOffsets::default();
        r.on_delay(-5_000.0);
        assert_eq!(r.spread(), None, "no Sync yet: no exchange");
        // True offset 100, path delay 5000: sync = 5100, delay = -4900.
        r.on_sync(5_100.0, 1_000);
        r.on_delay(-4_900.0);
        let s = r.spread().unwrap();
        assert_eq!((s.count, s.max_abs_ns, s.sigma_ns, s.rms_ns, s.mean_delay_ns), (1, 100, 0, 100, 5_000));
        r.on_sync(5_300.0, 2_000);
        r.on_delay(-4_900.0);
        let s = r.spread().unwrap();
        assert_eq!((s.count, s.max_abs_ns, s.sigma_ns, s.mean_delay_ns), (2, 200, 50, 5_050));
        assert_eq!(s.mean_ns, 150);
        assert_eq!(s.bound_ns(), 300);
        for _ in 0..WINDOW {
            r.on_delay(-5_300.0);
        }
        let s = r.spread().unwrap();
        assert_eq!((s.count, s.max_abs_ns, s.sigma_ns), (WINDOW as u32, 0, 0), "the old ones left");
        r.on_delay(-5_300.0);
        r.stepped(-100.0);
        r.on_delay(-5_400.0);
        let s = r.spread().unwrap();
        assert_eq!((s.max_abs_ns, s.sigma_ns), (100, 0), "shifted with a step like the new ones");
        r.set_latency_shift(-12_345.6);
        assert_eq!(r.spread().unwrap().latency_shift_ns, -12_346, "the gate's shift is reported");
        r.clear();
        assert_eq!(r.spread(), None);
    }
}
