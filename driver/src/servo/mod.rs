//! Clock servos with linuxptp's semantics: a generic layer (first step, step threshold, frequency
//! clamp, LOCKED_STABLE) over interchangeable algorithms, PI and linear regression. Pure code.
//!
//! Conventions are linuxptp's: `offset` is clock − reference in ns; [`Servo::sample`] returns the
//! clock's estimated frequency error in ppb (positive: the clock runs fast), so the caller sets the
//! clock's frequency adjustment to the negative of it, and on [`ServoState::Jump`] steps the clock
//! by −offset.

mod linreg;
mod pi;

pub use linreg::Linreg;
pub use pi::Pi;

/// linuxptp's servo states (printed as s0…s3 in log lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServoState {
    Unlocked = 0,
    Jump = 1,
    Locked = 2,
    LockedStable = 3,
}

/// Limits shared by every algorithm (linuxptp's `struct servo` and its config defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServoConfig {
    /// Step when |offset| exceeds this after the first update; 0 disables (linuxptp default).
    pub step_threshold_ns: f64,
    /// Step on the first update when |offset| exceeds this; 0 disables. Default 20 µs.
    pub first_step_threshold_ns: f64,
    /// Clamp of the returned frequency, ppb. Default 900 000 000.
    pub max_frequency_ppb: f64,
    /// |offset| below which LOCKED samples count towards LOCKED_STABLE; 0 disables.
    pub offset_threshold_ns: f64,
    /// Consecutive LOCKED samples under the threshold needed for LOCKED_STABLE. Default 10.
    pub num_offset_values: u32,
}

impl Default for ServoConfig {
    fn default() -> Self {
        Self {
            step_threshold_ns: 0.0,
            first_step_threshold_ns: 20_000.0,
            max_frequency_ppb: 900_000_000.0,
            offset_threshold_ns: 0.0,
            num_offset_values: 10,
        }
    }
}

/// The step rules an algorithm applies, with linuxptp's strict comparisons.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepRule {
    pub first_update: bool,
    pub first_step_threshold_ns: f64,
    pub step_threshold_ns: f64,
}

impl StepRule {
    /// Whether `offset` calls for a step now.
    pub fn jump(&self, offset: f64) -> bool {
        (self.first_update
            && self.first_step_threshold_ns > 0.0
            && self.first_step_threshold_ns < offset.abs())
            || self.step_threshold(offset)
    }

    pub fn step_threshold(&self, offset: f64) -> bool {
        self.step_threshold_ns > 0.0 && self.step_threshold_ns < offset.abs()
    }
}

/// An algorithm behind the generic layer.
pub(crate) trait Algorithm {
    fn sample(
        &mut self,
        offset: i64,
        local_ts: u64,
        weight: f64,
        rule: StepRule,
        max_ppb: f64,
    ) -> (f64, ServoState);
    fn sync_interval(&mut self, interval_s: f64);
    fn reset(&mut self);
}

/// Which algorithm a servo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServoKind {
    Pi,
    Linreg,
}

impl std::str::FromStr for ServoKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pi" => Ok(Self::Pi),
            "linreg" => Ok(Self::Linreg),
            _ => Err(format!("unknown servo {s:?}: use pi or linreg")),
        }
    }
}

/// A servo: generic layer plus algorithm.
pub struct Servo {
    config: ServoConfig,
    first_update: bool,
    curr_offset_values: u32,
    algorithm: Box<dyn Algorithm + Send>,
}

impl Servo {
    /// A PI servo with explicit constants (phc2sys forces kp 0.7, ki 0.3) starting from the clock's
    /// current frequency error estimate `fadj_ppb`.
    pub fn pi(config: ServoConfig, kp: f64, ki: f64, fadj_ppb: f64) -> Self {
        Self::with(config, Box::new(Pi::new(kp, ki, fadj_ppb)))
    }

    /// A linear-regression servo starting from `fadj_ppb`.
    pub fn linreg(config: ServoConfig, fadj_ppb: f64) -> Self {
        Self::with(config, Box::new(Linreg::new(fadj_ppb)))
    }

    /// The servo `kind` with phc2sys's defaults (PI: kp 0.7, ki 0.3).
    pub fn new(kind: ServoKind, config: ServoConfig) -> Self {
        match kind {
            ServoKind::Pi => Self::pi(config, 0.7, 0.3, 0.0),
            ServoKind::Linreg => Self::linreg(config, 0.0),
        }
    }

    fn with(config: ServoConfig, algorithm: Box<dyn Algorithm + Send>) -> Self {
        Self { config, first_update: true, curr_offset_values: config.num_offset_values, algorithm }
    }

    /// Feeds one measurement: `offset_ns` = clock − reference, `local_ts_ns` = when it was taken.
    /// Returns the frequency error estimate (ppb; apply its negative) and the state.
    pub fn sample(&mut self, offset_ns: i64, local_ts_ns: u64, weight: f64) -> (f64, ServoState) {
        let rule = StepRule {
            first_update: self.first_update,
            first_step_threshold_ns: self.config.first_step_threshold_ns,
            step_threshold_ns: self.config.step_threshold_ns,
        };
        let (ppb, mut state) =
            self.algorithm.sample(offset_ns, local_ts_ns, weight, rule, self.config.max_frequency_ppb);
        match state {
            ServoState::Unlocked => self.curr_offset_values = self.config.num_offset_values,
            ServoState::Jump => {
                self.curr_offset_values = self.config.num_offset_values;
                self.first_update = false;
            }
            ServoState::Locked => {
                if self.offset_stable(offset_ns) {
                    state = ServoState::LockedStable;
                }
                self.first_update = false;
            }
            ServoState::LockedStable => {}
        }
        (ppb, state)
    }

    /// Tells the servo the interval between samples (sets PI gains' meaning, linreg's correction).
    pub fn sync_interval(&mut self, interval_s: f64) {
        self.algorithm.sync_interval(interval_s);
    }

    /// Starts over (after a reference change); keeps the frequency estimate.
    pub fn reset(&mut self) {
        self.algorithm.reset();
    }

    /// Starts over as a new servo would (another steerer moved the clock meanwhile): its first
    /// update may step again; keeps the frequency estimate.
    pub fn restart(&mut self) {
        self.algorithm.reset();
        self.first_update = true;
        self.curr_offset_values = self.config.num_offset_values;
    }

    fn offset_stable(&mut self, offset: i64) -> bool {
        if self.config.offset_threshold_ns == 0.0 {
            return false;
        }
        if (offset.unsigned_abs() as f64) < self.config.offset_threshold_ns {
            self.curr_offset_values = self.curr_offset_values.saturating_sub(1);
        } else {
            self.curr_offset_values = self.config.num_offset_values;
        }
        self.curr_offset_values == 0
    }
}
