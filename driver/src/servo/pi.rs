//! linuxptp's PI servo: a two-sample frequency estimate, then proportional-integral control with
//! conditional integration (the integral is frozen while the output is clamped).

use super::{Algorithm, ServoState, StepRule};

/// PI state. `kp`/`ki` are the constants per sync interval, as phc2sys's `-P`/`-I`.
#[derive(Debug, Clone)]
pub struct Pi {
    kp_const: f64,
    ki_const: f64,
    kp: f64,
    ki: f64,
    drift: f64,
    last_freq: f64,
    count: u8,
    offset: [i64; 2],
    local: [u64; 2],
}

impl Pi {
    pub fn new(kp: f64, ki: f64, fadj_ppb: f64) -> Self {
        Self {
            kp_const: kp,
            ki_const: ki,
            kp: 0.0,
            ki: 0.0,
            drift: fadj_ppb,
            last_freq: fadj_ppb,
            count: 0,
            offset: [0; 2],
            local: [0; 2],
        }
    }
}

impl Algorithm for Pi {
    fn sample(
        &mut self,
        offset: i64,
        local_ts: u64,
        weight: f64,
        rule: StepRule,
        max: f64,
    ) -> (f64, ServoState) {
        let mut ppb = self.last_freq;
        let state = match self.count {
            0 => {
                self.offset[0] = offset;
                self.local[0] = local_ts;
                self.count = 1;
                ServoState::Unlocked
            }
            1 => {
                self.offset[1] = offset;
                self.local[1] = local_ts;
                if self.local[0] >= self.local[1] {
                    self.count = 0;
                    ServoState::Unlocked
                } else {
                    let mut localdiff = (self.local[1] - self.local[0]) as f64 / 1e9;
                    localdiff += localdiff * 0.001; // FREQ_EST_MARGIN
                    let interval = if self.ki > 0.0 { (0.016 / self.ki).min(1000.0) } else { 1000.0 };
                    if localdiff < interval {
                        ServoState::Unlocked
                    } else {
                        let dt = (self.local[1] - self.local[0]) as f64;
                        self.drift += (1e9 - self.drift) * (self.offset[1] - self.offset[0]) as f64 / dt;
                        self.drift = self.drift.clamp(-max, max);
                        ppb = self.drift;
                        self.count = 2;
                        if rule.jump(offset as f64) {
                            ServoState::Jump
                        } else {
                            ServoState::Locked
                        }
                    }
                }
            }
            _ => {
                if rule.step_threshold(offset as f64) {
                    self.count = 0;
                    ServoState::Unlocked
                } else {
                    let ki_term = self.ki * offset as f64 * weight;
                    ppb = self.kp * offset as f64 * weight + self.drift + ki_term;
                    if ppb < -max {
                        ppb = -max;
                    } else if ppb > max {
                        ppb = max;
                    } else {
                        self.drift += ki_term;
                    }
                    ServoState::Locked
                }
            }
        };
        self.last_freq = ppb;
        (ppb, state)
    }

    /// phc2sys's constants: kp = min(kp_const, 1/I), ki = min(ki_const, 2/I).
    fn sync_interval(&mut self, interval_s: f64) {
        self.kp = self.kp_const.min(1.0 / interval_s);
        self.ki = self.ki_const.min(2.0 / interval_s);
    }

    fn reset(&mut self) {
        self.count = 0;
    }
}
