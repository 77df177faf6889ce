//! Lucky-exchange correction of one-sided stamp latency: a master that stamps in software stamps
//! Delay_Req late (t4) and Sync early (t1), which biases every offset; the exchanges with the
//! least measured path delay are the least delayed, and the filter is shifted to their offsets.
//!
//! Each exchange (an admitted Delay_Req measurement r = t3−t4 with the latest admitted Sync one
//! s = t2−t1) gives a path delay d = (s−r)/2 and an offset o = (s+r)/2; the filter's residual is
//! o − ô (ô: the filter's offset estimate then, which removes its steering from the comparison).
//! A stamp latency adds to d, and to o by half of it with a sign: the quarter of the last
//! [`WINDOW`] exchanges with the least d is the least biased, and the correction is the mean
//! residual of that quarter minus the mean residual of all, weighed by r² (Pearson's, delays
//! against residuals: the share of the residuals the delays explain). With zero-mean noise of
//! equal size on every stamp (hardware stamps) o and d are uncorrelated: the difference of the two
//! means is noise (100s of ns with the QEMU lab's emulated µs stamps) and r² ~1/n takes it away;
//! a one-sided latency moves o and d together (r² near 1), and the correction removes the mean
//! latency of the lucky quarter less that of all (in the QEMU lab: t4 145–500 µs late, ~60 µs of
//! offset). A latency floor common to every exchange stays: no measurement tells it from path
//! asymmetry.

use std::collections::VecDeque;

/// Exchanges the correction is computed over.
pub const WINDOW: usize = 32;
/// Exchanges needed before any correction.
pub const MIN_EXCHANGES: usize = 4;
/// Time after the first correction or a step (the gate starts it afresh then) whose exchanges
/// are not recorded, ns: while the filter converges its residuals and, before the frequency is
/// known, the path delays (a Sync and a Delay_Req apart in time) are its convergence, not
/// latency (a 100 ppm oscillator locks 3–4 s after the first correction at 8 Sync/s).
pub const WARMUP_NS: u64 = 4_000_000_000;

/// The lucky-exchange correction; fed by the gate, applied to every measurement it admits.
#[derive(Debug, Default, Clone)]
pub struct LatencyCorrection {
    last_sync: Option<f64>,
    /// (path delay, residual) per exchange, ns.
    exchanges: VecDeque<(f64, f64)>,
    correction_ns: f64,
    /// When the first exchange was seen, ns (the measurements' event time).
    first_ns: Option<u64>,
}

impl LatencyCorrection {
    /// An admitted Sync measurement, t2−t1 as measured, ns.
    pub fn on_sync(&mut self, sync_ns: f64) {
        self.last_sync = Some(sync_ns);
    }

    /// An admitted Delay_Req measurement, t3−t4 as measured, ns, with the filter's offset
    /// estimate (in the shifted frame the filter sees, i.e. including the correction then).
    /// `at_ns`: the measurement's event time.
    pub fn on_delay(&mut self, delay_ns: f64, estimate_ns: f64, at_ns: u64) {
        let Some(sync) = self.last_sync else { return };
        if at_ns.saturating_sub(*self.first_ns.get_or_insert(at_ns)) < WARMUP_NS {
            return;
        }
        if self.exchanges.len() == WINDOW {
            self.exchanges.pop_front();
        }
        // The residual in the filter's frame: the measurement as it was shifted, less ô.
        let residual = (sync + delay_ns) / 2.0 + self.correction_ns - estimate_ns;
        self.exchanges.push_back(((sync - delay_ns) / 2.0, residual));
        self.correction_ns = self.compute();
    }

    fn compute(&self) -> f64 {
        let n = self.exchanges.len();
        if n < MIN_EXCHANGES {
            return 0.0;
        }
        let mut by_delay: Vec<(f64, f64)> = self.exchanges.iter().copied().collect();
        by_delay.sort_by(|a, b| a.0.total_cmp(&b.0));
        let lucky = (n / 4).max(2);
        let mean =
            |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
        // The residuals were taken under the corrections of their time; the difference of two
        // means over the same exchanges is free of them as of the filter's level.
        let shift = mean(&by_delay[..lucky], |e| e.1) - mean(&by_delay, |e| e.1);
        // A latency moves the offset by at most what it adds to the path delay (half of it each,
        // all of it in one direction): no more than the lucky quarter's lead in path delay. This
        // also keeps residuals taken while the filter converges from shifting it.
        let lead = mean(&by_delay, |e| e.0) - mean(&by_delay[..lucky], |e| e.0);
        // Weighed by how much of the residuals the delays explain (r², Pearson's): a stamp
        // latency moves the offset and the delay together (r² near 1), stamp noise does not
        // (r² ~1/n), and the difference of two means of noise is noise, µs with the QEMU lab's
        // emulated stamps: unweighed, it moved a hardware-stamped pair by up to 2 µs.
        shift.clamp(-lead, lead) * r_squared(&by_delay)
    }

    /// The shift to add to every raw offset (Sync and Delay_Req) the filter is given, ns.
    pub fn correction_ns(&self) -> f64 {
        self.correction_ns
    }

    /// The clock stepped by `step_ns`: the pending Sync shifts with it (residuals and delays do
    /// not: both sides of a residual moved).
    pub fn stepped(&mut self, step_ns: f64) {
        if let Some(s) = self.last_sync.as_mut() {
            *s += step_ns;
        }
    }
}

/// Pearson's r² between the exchanges' path delays and residuals (0 when either is constant).
fn r_squared(exchanges: &[(f64, f64)]) -> f64 {
    let n = exchanges.len() as f64;
    let (md, mr) =
        (exchanges.iter().map(|e| e.0).sum::<f64>() / n, exchanges.iter().map(|e| e.1).sum::<f64>() / n);
    let (mut sdd, mut srr, mut sdr) = (0.0, 0.0, 0.0);
    for &(d, r) in exchanges {
        sdd += (d - md) * (d - md);
        srr += (r - mr) * (r - mr);
        sdr += (d - md) * (r - mr);
    }
    if sdd <= 0.0 || srr <= 0.0 {
        return 0.0;
    }
    (sdr * sdr / (sdd * srr)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator (xorshift) for noise.
    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn gauss(&mut self) -> f64 {
            let (u1, u2) = (self.unit().max(1e-300), self.unit());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }

    /// Runs exchanges (true offset 0) through the correction into a filter that centres the
    /// shifted offsets (here an exponential mean, as the Kalman filter's level); returns the
    /// filter's final belief of the offset: its error, as 0 is the truth.
    fn settle(mut exchange: impl FnMut(&mut Rng) -> (f64, f64)) -> f64 {
        let (mut c, mut rng, mut est) = (
            LatencyCorrection { first_ns: Some(0), ..LatencyCorrection::default() },
            Rng(0x9e37_79b9_7f4a_7c15),
            0.0,
        );
        for _ in 0..400 {
            let (s, r) = exchange(&mut rng);
            c.on_sync(s);
            c.on_delay(r, est, WARMUP_NS);
            est += ((s + r) / 2.0 + c.correction_ns() - est) / 8.0;
        }
        est
    }

    #[test]
    fn symmetric_noise_gets_no_correction_and_one_sided_latency_is_mostly_removed() {
        // True offset 0, path 5 µs. Hardware stamps: 20 ns Gaussian on each of the four.
        let mut c = LatencyCorrection { first_ns: Some(0), ..LatencyCorrection::default() };
        let mut rng = Rng(7);
        let mut worst: f64 = 0.0;
        for i in 0..2_000 {
            let s = 5_000.0 + 28.0 * rng.gauss();
            let r = -5_000.0 + 28.0 * rng.gauss();
            c.on_sync(s);
            c.on_delay(r, 0.0, WARMUP_NS);
            if i > WINDOW {
                worst = worst.max(c.correction_ns().abs());
            }
        }
        assert!(worst < 25.0, "a correction of {worst} ns on symmetric 20 ns noise");

        // t4 late by 145 µs + exponential 150 µs (the QEMU lab's software master), t1 early by
        // up to 10 µs: an uncorrected mean-centring filter believes -145 µs; the corrected one
        // ~-70 µs (the lucky quarter's latency: about the floor's half).
        let one_sided = |rng: &mut Rng| {
            let s = 5_000.0 + 10_000.0 * rng.unit();
            let r = -5_000.0 - 145_000.0 - 150_000.0 * -(rng.unit().max(1e-12)).ln();
            (s, r)
        };
        let plain = {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let n = 400;
            (0..n).map(|_| one_sided(&mut rng)).map(|(s, r)| (s + r) / 2.0).sum::<f64>() / n as f64
        };
        let corrected = settle(one_sided);
        assert!(plain < -140_000.0, "uncorrected {plain}");
        assert!(
            corrected > -100_000.0 && corrected < -55_000.0,
            "corrected {corrected} (uncorrected {plain})"
        );
    }

    #[test]
    fn microseconds_of_stamp_noise_move_the_filter_by_little() {
        // The QEMU lab's pair: both ends stamp in (emulated) hardware, each stamp ~1 µs of noise
        // and no latency on one side: the lucky quarter's mean residual minus all's is noise
        // (293 ns RMS here, unweighed) that the delays do not explain (weighed by r²: 20 ns).
        let mut c = LatencyCorrection { first_ns: Some(0), ..LatencyCorrection::default() };
        let mut rng = Rng(11);
        let (mut sum2, mut n) = (0.0, 0.0);
        for i in 0..2_000 {
            let s = 12_000.0 + 1_400.0 * rng.gauss();
            let r = -12_000.0 + 1_400.0 * rng.gauss();
            c.on_sync(s);
            c.on_delay(r, 0.0, WARMUP_NS);
            if i > WINDOW {
                sum2 += c.correction_ns().powi(2);
                n += 1.0;
            }
        }
        let rms = (sum2 / n).sqrt();
        assert!(rms < 100.0, "the correction moved by {rms:.0} ns RMS on symmetric noise");
    }

    #[test]
    fn no_correction_before_enough_exchanges_and_a_step_moves_the_pending_sync() {
        let mut c = LatencyCorrection::default();
        c.on_delay(-100.0, 0.0, 0);
        assert_eq!(c.correction_ns(), 0.0, "no Sync to pair with");
        c.on_sync(100.0);
        c.on_delay(-1e9, 0.0, 0);
        c.on_sync(100.0);
        c.on_delay(-1e9, 0.0, WARMUP_NS - 1);
        assert_eq!(c.exchanges.len(), 0, "the warm-up's exchanges are not recorded");
        for i in 0..MIN_EXCHANGES - 1 {
            c.on_sync(100.0);
            c.on_delay(-100.0 - 1_000.0 * i as f64, 0.0, WARMUP_NS);
        }
        assert_eq!(c.correction_ns(), 0.0, "fewer than {MIN_EXCHANGES} exchanges");
        c.on_sync(100.0);
        c.stepped(1_000.0);
        c.on_delay(900.0, 1_000.0, WARMUP_NS);
        // The last exchange, after a step of +1 µs: Sync, Delay_Req and estimate moved with it,
        // residual 0 as the first's; lucky quarter (2 least delayed: residuals 0, 0) vs all (0, -500, -1000, ...).
        let all = (0..MIN_EXCHANGES - 1).map(|i| -500.0 * i as f64).sum::<f64>() / MIN_EXCHANGES as f64;
        assert!((c.correction_ns() - (0.0 - all)).abs() < 1e-6, "{}", c.correction_ns());
    }
}
