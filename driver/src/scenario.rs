//! Simulated runs of the whole loop on virtual time — a simulated NIC, a perfect reference, the
//! discipline loop — measuring the true offset the driver cannot see. Used by tests and benches.

use std::sync::Arc;

use nicclock::stats::{self, Sample, Summary};
use nicclock::{CounterKind, EventKind, Snapshot, Status};

use crate::clock::{DeviceLost, Nanos, Phc, RawTime, SteerChoice, Steering};
use crate::discipline::{Discipline, DisciplineConfig, Step, Update};
use crate::measure::Host;
use crate::model::{model, qemu_subsystem, quirks, INTEL};
use crate::servo::{Servo, ServoConfig, ServoKind};
use crate::sim::{SimConfig, SimNic};
use crate::timesource::{TimeSource, VirtualTime};

/// The reference's TAI at simulation start (2026-01-01 or so).
pub const EPOCH_TAI_NS: u64 = 1_767_225_637_000_000_000;

/// A host on virtual time: the counter is virtual ns, the reference is perfect TAI.
pub struct VirtualHost {
    pub time: Arc<VirtualTime>,
}

impl Host for VirtualHost {
    fn counter_kind(&self) -> CounterKind {
        CounterKind::MonotonicRaw
    }
    fn counter(&self) -> u64 {
        self.time.now_ns()
    }
    fn reference_ns(&self) -> u64 {
        EPOCH_TAI_NS + self.time.now_ns()
    }
    fn ns_per_tick(&self) -> (f64, f64) {
        (1.0, 0.0)
    }
}

/// One simulated run's set-up.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub sim: SimConfig,
    pub servo: ServoKind,
    pub steer: SteerChoice,
    pub discipline: DisciplineConfig,
    pub duration_s: f64,
}

impl Scenario {
    /// Issue 3's scenario: 100 ppm initial error, 1 ppb/√s wander, 50 ns read jitter.
    pub fn standard(servo: ServoKind, steer: SteerChoice) -> Self {
        Self {
            sim: SimConfig::default(),
            servo,
            steer,
            discipline: DisciplineConfig::default(),
            duration_s: 600.0,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub steering: Steering,
    /// (seconds since start, true offset of the disciplined NIC from the reference, ns) per update.
    pub offsets: Vec<(f64, i64)>,
    /// Seconds until |true offset| < `threshold` for 5 updates in a row.
    pub lock_time_s: Option<f64>,
    /// RMS and max |true offset| from lock to the end, ns.
    pub rms_offset_ns: f64,
    pub max_offset_ns: i64,
    /// The offsets' statistics (nicclock::stats, as `nicclock stats` and the lab compute them).
    pub summary: Summary,
    /// Largest |page time − true time| seen, and whether each was inside the page's error bound.
    pub max_page_error_ns: i64,
    pub page_bound_violations: usize,
    pub updates: Vec<Update>,
    pub final_status: Status,
    /// Measurements the delay filter threw away.
    pub rejected: usize,
    /// The offset the servo was given at each update, ns (what the driver measured, not the truth).
    pub servo_offsets: Vec<i64>,
    /// Every STEP event posted: (seconds since start, ns).
    pub step_events: Vec<(f64, i64)>,
    /// Largest jump between consecutive published mappings once LOCKED: |the previous page's
    /// time at the new anchor's counter − the new anchor|, ns (what a reader would see as a step).
    pub max_mapping_jump_ns: i64,
    /// Times the NIC's raw SYSTIM came back smaller than the reading before (its counter wrapped).
    pub raw_wraps: u32,
    /// 82574 erratum reads the simulator spoilt.
    pub bad_reads: u64,
}

/// Runs a scenario; `lock_threshold_ns` defines "locked" for the lock time (100 ns in issue 3).
pub fn run(scenario: &Scenario, lock_threshold_ns: i64) -> Result<Outcome, DeviceLost> {
    let time = VirtualTime::new();
    let nic = Arc::new(SimNic::new(scenario.sim.clone(), time.clone()));
    let m = model(INTEL, scenario.sim.model.device_id()).expect("simulated models are in the table");
    let q = if scenario.sim.qemu {
        let device = scenario.sim.model.device_id();
        let (vendor, subsystem) =
            qemu_subsystem(device).expect("the quirk table has QEMU's ids for each model");
        quirks(device, vendor, subsystem, true).0
    } else {
        crate::model::Quirks::empty()
    };
    let steering = scenario.steer.resolve(q);
    let phc = Phc::init(nic.clone(), m, q, steering, time.clone())?;
    let servo = Servo::new(scenario.servo, ServoConfig::default());
    let mut loop_ = Discipline::new(phc, servo, scenario.discipline);
    let host = VirtualHost { time: time.clone() };
    let interval = scenario.discipline.interval_ns;
    let steps = (scenario.duration_s * 1e9 / interval as f64) as u64;
    let mut offsets = Vec::with_capacity(steps as usize);
    let mut updates = Vec::new();
    let (mut max_page_error_ns, mut page_bound_violations, mut rejected) = (0i64, 0usize, 0usize);
    let mut snapshot: Option<Snapshot> = None;
    let (mut servo_offsets, mut step_events) = (Vec::new(), Vec::new());
    let (mut max_mapping_jump_ns, mut raw_wraps, mut last_raw) = (0i64, 0u32, None);
    for k in 1..=steps {
        // Check the page mapping from the previous update just before this one replaces it.
        if let Some(s) = snapshot.as_ref().filter(|s| s.status != Status::Unsynchronized) {
            let t = time.now_ns();
            let page = s.tai_at(t);
            let err = (page - (EPOCH_TAI_NS + t) as i128) as i64;
            max_page_error_ns = max_page_error_ns.max(err.abs());
            if err.unsigned_abs() > s.error_at(page) {
                page_bound_violations += 1;
            }
        }
        let update = match loop_.update(&host)? {
            Step::Updated(update) => *update,
            Step::Rejected { .. } => {
                rejected += 1;
                time.wait_until(k * interval);
                continue;
            }
        };
        let truth = nic.truth();
        let disciplined = loop_.phc_mut().time_at(RawTime(truth.raw));
        let offset = (disciplined - Nanos((EPOCH_TAI_NS + truth.true_ns) as i128)).as_i64();
        offsets.push((truth.true_ns as f64 / 1e9, offset));
        servo_offsets.push(update.measurement.offset_ns);
        let now_s = truth.true_ns as f64 / 1e9;
        step_events.extend(update.events.iter().filter(|e| e.0 == EventKind::Step).map(|e| (now_s, e.1)));
        raw_wraps += last_raw.replace(truth.raw).is_some_and(|last| truth.raw < last) as u32;
        if let Some(old) = snapshot.as_ref().filter(|s| s.status == Status::Locked) {
            let new = &update.snapshot;
            let jump = (old.tai_at(new.counter_value) - new.anchor_tai_ns as i128) as i64;
            max_mapping_jump_ns = max_mapping_jump_ns.max(jump.abs());
        }
        snapshot = Some(update.snapshot.clone());
        if updates.len() < 50 || k == steps {
            updates.push(update);
        }
        time.wait_until(k * interval);
    }
    let samples: Vec<Sample> =
        offsets.iter().map(|(t, o)| Sample { time_s: *t, offset_ns: *o as f64, delay_ns: None }).collect();
    let summary = stats::summarize(&samples, lock_threshold_ns as f64);
    Ok(Outcome {
        steering,
        // Seconds since the simulation started (its first update comes one interval in).
        lock_time_s: summary.lock_index.map(|i| offsets[i].0),
        rms_offset_ns: summary.rms_offset_ns.unwrap_or(f64::INFINITY),
        max_offset_ns: summary.abs_offset_max_ns.map_or(i64::MAX, |m| m as i64),
        summary,
        offsets,
        max_page_error_ns,
        page_bound_violations,
        final_status: loop_.status(),
        updates,
        rejected,
        servo_offsets,
        step_events,
        max_mapping_jump_ns,
        raw_wraps,
        bad_reads: nic.bad_reads(),
    })
}
