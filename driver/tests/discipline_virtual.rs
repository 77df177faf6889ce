//! The whole loop on virtual time (a simulated 82576/82574, a perfect reference): lock time and
//! hold RMS for both servos and both steering modes, the QEMU model, frequency steps, the page
//! mapping always inside its own error bound, the i350's 40-bit wrap crossed without a step and the
//! 82574's seeded bad reads kept from the servo. Ten minutes of clock take milliseconds.

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

#[test]
fn the_i350s_40_bit_wrap_is_crossed_under_discipline_without_a_step() {
    // 20 minutes of a disciplined i350 from counter 0: its 40-bit SYSTIM wraps at 1099.5 s.
    let mut scenario = Scenario::standard(ServoKind::Pi, SteerChoice::Hardware);
    scenario.sim.model = SimModel::I350;
    scenario.duration_s = 1200.0;
    let o = run(&scenario, 100).unwrap();
    assert_eq!(o.raw_wraps, 1, "SYSTIM wrapped once");
    // The only step is the first one, from the free-running counter to TAI.
    assert_eq!(o.step_events.len(), 1, "{:?}", o.step_events);
    assert!(o.step_events[0].0 < 1.0, "{:?}", o.step_events);
    assert_eq!(o.page_bound_violations, 0, "page time left its error bound");
    assert!(o.max_mapping_jump_ns < 1_000, "the published mapping jumped {} ns", o.max_mapping_jump_ns);
    let lock = o.summary.lock_index.expect("locked");
    let around_wrap: Vec<_> =
        o.offsets[lock..].iter().filter(|(t, _)| (1090.0..1110.0).contains(t)).collect();
    assert!(around_wrap.len() > 150, "sampled across the wrap");
    let worst = o.offsets[lock..].iter().map(|(_, off)| off.abs()).max().unwrap();
    assert!(worst < 1_000, "|true offset| up to {worst} ns after lock");
    assert_eq!(o.final_status, Status::Locked);
}

#[test]
fn the_82574s_seeded_bad_reads_never_reach_the_servo() {
    // 2 % of SYSTIM reads spoilt (bad bits, halves from different instants): the re-read rule
    // must catch every one, or the servo would see offsets of microseconds to seconds.
    let mut scenario = Scenario::standard(ServoKind::Pi, SteerChoice::Hardware);
    scenario.sim.model = SimModel::I82574;
    scenario.sim.bad_read_fraction = 0.02;
    scenario.duration_s = 120.0;
    let o = run(&scenario, 100).unwrap();
    assert!(o.bad_reads > 200, "the simulator spoilt {} reads", o.bad_reads);
    // After the first step and frequency estimate, what the servo is given stays small.
    let worst = o.servo_offsets[3..].iter().map(|v| v.abs()).max().unwrap();
    assert!(worst < 500, "the servo saw an offset of {worst} ns");
    assert_eq!(o.step_events.len(), 1, "no step after the first: {:?}", o.step_events);
    assert_eq!(o.page_bound_violations, 0);
    assert!(o.max_mapping_jump_ns < 1_000, "the published mapping jumped {} ns", o.max_mapping_jump_ns);
    assert_eq!(o.final_status, Status::Locked);
    eprintln!(
        "82574 with {} bad reads: servo |offset| max {worst} ns, true RMS {:.1} ns",
        o.bad_reads, o.rms_offset_ns
    );
}
