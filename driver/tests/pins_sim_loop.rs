//! The pins in the discipline loop on the simulated NIC (its recorded output edges, its own PPS
//! input), on virtual time: the output's edges land on the true (half) seconds once locked, and a
//! PPS input with 20 ns jitter as the reference locks the clock to the true second, every pulse used.

use nicclock_driver::discipline::DisciplineConfig;
use nicclock_driver::phc::SteerChoice;
use nicclock_driver::pin_scenario::{run_pins, PinScenario};
use nicclock_driver::servo::{Servo, ServoConfig, ServoKind};
use nicclock_driver::sim::{PpsInput, SimConfig, SimModel};

fn pi() -> Servo {
    Servo::new(ServoKind::Pi, ServoConfig::default())
}

#[test]
fn pps_out_edges_are_on_the_true_second_on_the_i210_and_i350() {
    for (model, steer) in [
        (SimModel::I210, SteerChoice::Hardware),
        (SimModel::I350, SteerChoice::Hardware),
        (SimModel::I210, SteerChoice::Software),
    ] {
        let o = run_pins(&PinScenario {
            sim: SimConfig { model, ..SimConfig::default() },
            steer,
            pps_out: Some("SDP2".parse().unwrap()),
            pps_in: None,
            servo: pi,
            discipline: DisciplineConfig::default(),
            duration_s: 30,
        })
        .unwrap();
        let what = format!("{model:?} {steer:?}");
        // One edge is stepped over: the first step from the NIC's 0 to TAI.
        assert!(o.out_missed <= 1, "{what}: {} missed", o.out_missed);
        assert!(o.edges_after_lock.len() >= 40, "{what}: {} edges after lock", o.edges_after_lock.len());
        for &(t, rising, err) in &o.edges_after_lock {
            assert!(err.abs() < 1_000, "{what}: edge at {t} ns is {err} ns off");
            let whole = (t as i64 - err) % 1_000_000_000 == 0;
            assert_eq!(rising, whole, "{what}: rising on the second, falling half past ({t} ns)");
        }
    }
}

#[test]
fn a_pps_reference_with_jitter_locks_to_the_true_second() {
    for model in [SimModel::I210, SimModel::I350] {
        let pps_in = PpsInput { sdp: 1, jitter_ns: 20.0, ..PpsInput::default() };
        let o = run_pins(&PinScenario {
            sim: SimConfig { model, pps_in: Some(pps_in), ..SimConfig::default() },
            steer: SteerChoice::Hardware,
            pps_out: None,
            pps_in: Some("SDP1".parse().unwrap()),
            servo: pi,
            discipline: DisciplineConfig { interval_ns: 1_000_000_000, ..DisciplineConfig::default() },
            duration_s: 60,
        })
        .unwrap();
        assert!(o.summary.lock_index.is_some(), "{model:?}: never within 100 ns: {:?}", o.offsets);
        assert_eq!((o.outliers, o.pulses_missed), (0, 0), "{model:?}");
        // Every second's pulse but the first two (first edge, first frequency estimate) steers.
        assert!(o.pulses_used >= 58, "{model:?}: {} pulses used", o.pulses_used);
        let worst = o.offsets[o.summary.lock_index.unwrap()..].iter().map(|p| p.1.abs()).max().unwrap();
        assert!(worst < 1_000, "{model:?}: |true offset| up to {worst} ns after lock");
    }
}
