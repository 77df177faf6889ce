//! Simulated runs of the pins in the discipline loop on virtual time — the simulated NIC's recorded
//! output edges and its PPS input — measuring what the driver cannot see. Used by tests and benches.

use std::sync::Arc;

use nicclock::stats::{self, Sample, Summary};

use crate::clock::{DeviceLost, Nanos, Phc, RawTime, SteerChoice, Steering};
use crate::discipline::{Discipline, DisciplineConfig};
use crate::measure::Host;
use crate::model::{model, Quirks, INTEL};
use crate::pins::Sdp;
use crate::pps::PpsConfig;
use crate::reference::{drive, Pins, PinsReport, PpsStep};
use crate::scenario::{VirtualHost, EPOCH_TAI_NS};
use crate::servo::Servo;
use crate::sim::{SimConfig, SimNic};
use crate::timesource::VirtualTime;

const NS_PER_S: u64 = 1_000_000_000;

/// One run's set-up: the simulated NIC (a model with pins; `pps_in` set for a PPS reference),
/// the pins asked for, the servo and loop, and how long.
pub struct PinScenario {
    pub sim: SimConfig,
    pub steer: SteerChoice,
    /// `--pps-out` pin.
    pub pps_out: Option<Sdp>,
    /// `--reference pps:` pin (the simulator's `pps_in` must drive it).
    pub pps_in: Option<Sdp>,
    pub servo: fn() -> Servo,
    pub discipline: DisciplineConfig,
    pub duration_s: u64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct PinOutcome {
    pub steering: Steering,
    /// True offset of the disciplined clock from TAI at each half second past (nicclock::stats'
    /// lock and RMS with a 100 ns lock threshold).
    pub offsets: Vec<(f64, i64)>,
    pub summary: Summary,
    /// Output edges after lock: (true ns, rising, ns from the nearest true half second: a rising
    /// edge's whole second, a falling edge's half past).
    pub edges_after_lock: Vec<(u64, bool, i64)>,
    /// Armed output edges that passed without firing.
    pub out_missed: usize,
    /// PPS samples the servo used, and ones judged outliers.
    pub pulses_used: usize,
    pub outliers: usize,
    /// Pulses missed (the largest run reported).
    pub pulses_missed: u64,
}

impl PinOutcome {
    /// RMS of the output edges' error after lock, ns.
    pub fn edge_rms_ns(&self) -> Option<f64> {
        let n = self.edges_after_lock.len();
        (n > 0).then(|| {
            (self.edges_after_lock.iter().map(|e| (e.2 as f64).powi(2)).sum::<f64>() / n as f64).sqrt()
        })
    }
}

/// Runs `scenario`, one second at a time, sampling the true offset half way through each second
/// (between two pulses of a PPS reference, not right after one corrected the clock).
pub fn run_pins(scenario: &PinScenario) -> Result<PinOutcome, DeviceLost> {
    let time = VirtualTime::new();
    let nic = Arc::new(SimNic::new(scenario.sim.clone(), time.clone()));
    let m = model(INTEL, scenario.sim.model.device_id()).expect("simulated models are in the table");
    let steering = scenario.steer.resolve(Quirks::empty());
    let phc = Phc::init(nic.clone(), m, Quirks::empty(), steering, time.clone())?;
    let mut discipline = Discipline::new(phc, (scenario.servo)(), scenario.discipline);
    let host = VirtualHost { time: time.clone() };
    let pps = scenario.pps_in.map(|sdp| (sdp, PpsConfig::default()));
    let mut pins = Pins::start(&*nic, m.family, scenario.pps_out, pps, host.reference_ns());
    let (mut out_missed, mut pulses_used, mut outliers, mut pulses_missed) = (0, 0, 0, 0);
    let mut offsets = Vec::new();
    for second in 1..=scenario.duration_s {
        let count = |_: u64, report: &PinsReport, _: Option<&_>| {
            out_missed += report.out.is_some_and(|o| o.missed.is_some()) as usize;
            match &report.pps {
                Some(PpsStep::Used { .. }) => pulses_used += 1,
                Some(PpsStep::Outlier { .. }) => outliers += 1,
                Some(PpsStep::Missed { in_a_row, .. }) => pulses_missed = pulses_missed.max(*in_a_row),
                _ => {}
            }
        };
        drive(&mut pins, &mut discipline, &host, &*time, second * NS_PER_S + 500_000_000, |_| {}, count)?;
        let truth = nic.truth();
        let disciplined = discipline.phc_mut().time_at(RawTime(truth.raw));
        let offset = (disciplined - Nanos((EPOCH_TAI_NS + truth.true_ns) as i128)).as_i64();
        offsets.push((truth.true_ns as f64 / 1e9, offset));
    }
    let samples: Vec<Sample> =
        offsets.iter().map(|(t, o)| Sample { time_s: *t, offset_ns: *o as f64, delay_ns: None }).collect();
    let summary = stats::summarize(&samples, 100.0);
    let locked_from_ns = summary.lock_index.map_or(u64::MAX, |i| (offsets[i].0 * 1e9) as u64);
    let half = NS_PER_S as i64 / 2;
    let edges_after_lock = match scenario.pps_out {
        Some(sdp) => nic
            .sdp_edges(sdp.index() as u8)
            .into_iter()
            .filter(|e| e.true_ns >= locked_from_ns)
            .map(|e| {
                // EPOCH_TAI_NS is a whole second: true TAI half seconds are true_ns's.
                let t = e.true_ns as i64;
                let nearest = (t + half / 2).div_euclid(half) * half;
                (e.true_ns, e.rising, t - nearest)
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(PinOutcome {
        steering,
        offsets,
        summary,
        edges_after_lock,
        out_missed,
        pulses_used,
        outliers,
        pulses_missed,
    })
}
