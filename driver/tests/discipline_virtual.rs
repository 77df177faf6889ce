//! The whole loop on virtual time (a simulated 82576/82574, a perfect reference): lock time and
//! hold RMS for both servos and both steering modes, the QEMU model, frequency steps, and the page
//! mapping always inside its own error bound. Ten minutes of clock take milliseconds.

use nicclock::{EventKind, Status};
use nicclock_driver::phc::{SteerChoice, Steering};
use nicclock_driver::scenario::{run, Scenario};
use nicclock_driver::servo::ServoKind;
use nicclock_driver::sim::{SimConfig, SimModel};

fn check_standard(servo: ServoKind, steer: SteerChoice) {
    let o = run(&Scenario::standard(servo, steer), 100).unwrap();
    let lock =
        o.lock_time_s.unwrap_or_else(|| panic!("{servo:?}/{steer:?} never locked: {:?}", &o.offsets[..20]));
    eprintln!(
        "{servo:?}/{steer:?}: lock {lock:.1} s, rms {:.1} ns, max {} ns, page error max {} ns",
        o.rms_offset_ns, o.max_offset_ns, o.max_page_error_ns
    );
    assert!(lock <= 10.0, "{servo:?}/{steer:?} locked after {lock} s");
    assert!(o.rms_offset_ns <= 30.0, "{servo:?}/{steer:?} RMS {} ns over 10 min", o.rms_offset_ns);
    assert_eq!(o.page_bound_violations, 0, "page time left its error bound");
    assert_eq!(o.final_status, Status::Locked);
    assert_eq!(o.offsets.last().unwrap().0.round(), 600.0, "ran ten minutes of clock");
}

#[test]
fn pi_with_hardware_steering_locks_and_holds() {
    check_standard(ServoKind::Pi, SteerChoice::Hardware);
}

#[test]
fn pi_with_software_steering_locks_and_holds() {
    check_standard(ServoKind::Pi, SteerChoice::Software);
}

#[test]
fn linreg_with_hardware_steering_locks_and_holds() {
    check_standard(ServoKind::Linreg, SteerChoice::Hardware);
}

#[test]
fn linreg_with_software_steering_locks_and_holds() {
    check_standard(ServoKind::Linreg, SteerChoice::Software);
}

#[test]
fn the_first_update_steps_the_clock_to_the_reference() {
    let o = run(&Scenario::standard(ServoKind::Pi, SteerChoice::Auto), 100).unwrap();
    let steps: Vec<_> =
        o.updates.iter().flat_map(|u| u.events.iter()).filter(|(k, _)| *k == EventKind::Step).collect();
    assert_eq!(steps.len(), 1, "one step, at the start");
    assert!(steps[0].1 > 1_700_000_000_000_000_000, "from SYSTIM's 0 to TAI: {}", steps[0].1);
    assert_eq!(o.updates[0].status, Status::Unsynchronized);
}

#[test]
fn on_the_qemu_model_auto_steers_in_software_and_stays_locked() {
    for model in [SimModel::I82576, SimModel::I82574] {
        let mut s = Scenario::standard(ServoKind::Pi, SteerChoice::Auto);
        s.sim = SimConfig { qemu: true, model, ..SimConfig::default() };
        let o = run(&s, 100).unwrap();
        assert_eq!(o.steering, Steering::Software, "{model:?}");
        assert!(o.lock_time_s.is_some_and(|t| t <= 10.0), "{model:?}: {:?}", o.lock_time_s);
        assert!(o.rms_offset_ns <= 30.0, "{model:?}: RMS {}", o.rms_offset_ns);
        assert!(o.updates.iter().all(|u| u.discontinuity.is_none()));
    }
}

#[test]
fn forced_hardware_steering_on_qemu_is_detected_and_reported() {
    let mut s = Scenario::standard(ServoKind::Pi, SteerChoice::Hardware);
    s.sim = SimConfig { qemu: true, ..SimConfig::default() };
    s.duration_s = 5.0;
    let o = run(&s, 100).unwrap();
    assert_eq!(o.steering, Steering::Hardware);
    let jumps: Vec<_> = o.updates.iter().filter_map(|u| u.discontinuity).collect();
    assert!(!jumps.is_empty(), "no discontinuity reported");
    assert!(
        o.updates.iter().any(|u| u.events.iter().any(|(k, _)| *k == EventKind::FrequencyJump)),
        "the page gets a FREQUENCY_JUMP event"
    );
}

#[test]
fn a_frequency_step_is_followed_and_relocked() {
    let mut s = Scenario::standard(ServoKind::Pi, SteerChoice::Hardware);
    // At 300 s the oscillator jumps from +100 to +110 ppm.
    s.sim.freq_steps = vec![(300_000_000_000, 110.0)];
    let o = run(&s, 100).unwrap();
    let late: Vec<i64> = o.offsets.iter().filter(|(t, _)| *t > 320.0).map(|(_, o)| *o).collect();
    let rms = (late.iter().map(|o| (*o as f64).powi(2)).sum::<f64>() / late.len() as f64).sqrt();
    assert!(rms < 30.0, "relocked after the step: RMS {rms}");
    assert_eq!(o.page_bound_violations, 0);
    assert_eq!(o.final_status, Status::Locked);
}

#[test]
fn update_lines_read_like_linuxptp() {
    let o = run(&Scenario { duration_s: 3.0, ..Scenario::standard(ServoKind::Pi, SteerChoice::Auto) }, 100)
        .unwrap();
    let line = o.updates.last().unwrap().log_line();
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((w[0], w[2], w[3], w[5]), ("offset", "s2", "freq", "delay"), "{line}");
    assert!(
        w[1].parse::<i64>().is_ok() && w[4].starts_with(['+', '-']) && w[6].parse::<u64>().is_ok(),
        "{line}"
    );
}
