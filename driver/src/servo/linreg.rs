//! linuxptp's linear-regression servo: fits remote time against its own frequency-corrected local
//! time over 4…64 points, picks the window with the smallest error, and steers by slope and intercept.

use super::{Algorithm, ServoState, StepRule};

const MIN_SIZE: usize = 2;
const MAX_SIZE: usize = 6;
const MAX_POINTS: usize = 1 << MAX_SIZE;
const ERR_SMOOTH: f64 = 0.02;
const ERR_INITIAL_UPDATES: u32 = 10;
const ERR_EQUALS: f64 = 1.05;

#[derive(Debug, Clone, Copy, Default)]
struct Point {
    x: u64,
    y: u64,
    w: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Fit {
    slope: f64,
    intercept: f64,
    err: f64,
    err_updates: u32,
}

/// Regression state; `clock_freq` is the adjustment applied (ppb, positive = faster).
#[derive(Debug, Clone)]
pub struct Linreg {
    points: [Point; MAX_POINTS],
    num_points: usize,
    last_point: usize,
    ref_x: u64,
    ref_y: u64,
    last_update: u64,
    x_remainder: f64,
    fits: [Fit; MAX_SIZE + 1],
    size: usize,
    clock_freq: f64,
    update_interval: f64,
}

impl Linreg {
    pub fn new(fadj_ppb: f64) -> Self {
        Self {
            points: [Point::default(); MAX_POINTS],
            num_points: 0,
            last_point: 0,
            ref_x: 0,
            ref_y: 0,
            last_update: 0,
            x_remainder: 0.0,
            fits: [Fit::default(); MAX_SIZE + 1],
            size: 0,
            clock_freq: -fadj_ppb,
            update_interval: 1.0,
        }
    }

    fn move_reference(&mut self, x: i64, y: i64) {
        self.ref_x = self.ref_x.wrapping_add_signed(x);
        self.ref_y = self.ref_y.wrapping_add_signed(y);
        for fit in &mut self.fits[MIN_SIZE..] {
            fit.intercept += x as f64 * fit.slope - y as f64;
        }
    }

    /// Advances the reference by the local time elapsed, with our own frequency correction removed.
    fn update_reference(&mut self, local_ts: u64) {
        if self.last_update != 0 {
            let y_int = local_ts.wrapping_sub(self.last_update) as i64;
            let x = y_int as f64 / (1.0 + self.clock_freq / 1e9) + self.x_remainder;
            let x_int = x as i64;
            self.x_remainder = x - x_int as f64;
            self.move_reference(x_int, y_int);
        }
        self.last_update = local_ts;
    }

    fn add_sample(&mut self, offset: i64, weight: f64) {
        self.last_point = (self.last_point + 1) % MAX_POINTS;
        self.points[self.last_point] =
            Point { x: self.ref_x, y: self.ref_y.wrapping_add_signed(-offset), w: weight };
        self.num_points = (self.num_points + 1).min(MAX_POINTS);
    }

    fn regress(&mut self) {
        let y0 = self.points[self.last_point].y.wrapping_sub(self.ref_y) as i64 as f64;
        let (mut sw, mut swx, mut swy, mut swxx, mut swxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut taken = 0;
        for size in MIN_SIZE..=MAX_SIZE {
            let n = 1 << size;
            if n > self.num_points {
                break;
            }
            let fit = &mut self.fits[size];
            // How well the previous fit (moved to the new reference) predicted this sample.
            if fit.slope != 0.0 {
                let e = (fit.intercept - y0).abs();
                if fit.err_updates < ERR_INITIAL_UPDATES {
                    fit.err = (fit.err * fit.err_updates as f64 + e) / (fit.err_updates + 1) as f64;
                    fit.err_updates += 1;
                } else {
                    fit.err += ERR_SMOOTH * (e - fit.err);
                }
            }
            while taken < n {
                let p = self.points[(self.last_point + MAX_POINTS - taken) % MAX_POINTS];
                let x = p.x.wrapping_sub(self.ref_x) as i64 as f64;
                let y = p.y.wrapping_sub(self.ref_y) as i64 as f64;
                sw += p.w;
                swx += p.w * x;
                swy += p.w * y;
                swxx += p.w * x * x;
                swxy += p.w * x * y;
                taken += 1;
            }
            let denominator = swxx - swx * swx / sw;
            if denominator == 0.0 || sw == 0.0 {
                continue;
            }
            fit.slope = (swxy - swx * swy / sw) / denominator;
            fit.intercept = (swy - fit.slope * swx) / sw;
        }
    }

    fn update_size(&mut self) {
        let mut best: Option<usize> = None;
        for size in MIN_SIZE..=MAX_SIZE {
            let fit = self.fits[size];
            if fit.slope == 0.0 {
                continue;
            }
            match best {
                None => best = Some(size),
                Some(b)
                    if fit.err_updates >= ERR_INITIAL_UPDATES && self.fits[b].err * ERR_EQUALS > fit.err =>
                {
                    best = Some(size)
                }
                _ => {}
            }
        }
        self.size = best.unwrap_or(0);
    }
}

impl Algorithm for Linreg {
    fn sample(
        &mut self,
        offset: i64,
        local_ts: u64,
        weight: f64,
        rule: StepRule,
        max: f64,
    ) -> (f64, ServoState) {
        self.update_reference(local_ts);
        self.add_sample(offset, weight);
        self.regress();
        self.update_size();
        if self.size < MIN_SIZE {
            return (-self.clock_freq, ServoState::Unlocked);
        }
        let state = if rule.jump(self.fits[self.size].intercept) {
            // The caller steps the clock by −offset: move every fit with it.
            self.move_reference(0, -offset);
            self.last_update = self.last_update.wrapping_add_signed(-offset);
            ServoState::Jump
        } else {
            ServoState::Locked
        };
        let fit = self.fits[self.size];
        // Correct the remaining offset over a longer interval for larger windows.
        let correction = if self.size <= 4 { 1.0 } else { self.size as f64 / 2.0 };
        self.clock_freq = 1e9 * (fit.slope - 1.0) + fit.intercept / self.update_interval / correction;
        self.clock_freq = self.clock_freq.clamp(-max, max);
        (-self.clock_freq, state)
    }

    fn sync_interval(&mut self, interval_s: f64) {
        self.update_interval = interval_s;
    }

    fn reset(&mut self) {
        self.num_points = 0;
        self.last_update = 0;
        self.size = 0;
        self.fits = [Fit::default(); MAX_SIZE + 1];
    }
}
