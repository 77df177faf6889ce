//! The servos against hand-computed linuxptp cases (pi.c / servo.c arithmetic with phc2sys's
//! constants kp 0.7, ki 0.3 at a 1 s interval, first step threshold 20 µs, no step threshold).

use nicclock_driver::servo::{Servo, ServoConfig, ServoState};

const S: u64 = 1_000_000_000;

fn pi() -> Servo {
    let mut s = Servo::pi(ServoConfig::default(), 0.7, 0.3, 0.0);
    s.sync_interval(1.0);
    s
}

fn run(servo: &mut Servo, samples: &[(i64, u64)]) -> Vec<(f64, ServoState)> {
    samples.iter().map(|&(offset, t)| servo.sample(offset, t, 1.0)).collect()
}

#[test]
fn pi_estimates_frequency_from_two_samples_then_integrates() {
    // Offsets 1000, 900, 500 ns at t = 1, 2, 3 s.
    let out = run(&mut pi(), &[(1000, S), (900, 2 * S), (500, 3 * S)]);
    assert_eq!(out[0], (0.0, ServoState::Unlocked));
    // drift = 1e9 · (900 − 1000) / 1e9 = −100
    assert_eq!(out[1].1, ServoState::Locked);
    assert!((out[1].0 - -100.0).abs() < 1e-9, "{}", out[1].0);
    // ki_term = 0.3·500 = 150; ppb = 0.7·500 − 100 + 150 = 400; drift becomes 50
    assert_eq!(out[2].1, ServoState::Locked);
    assert!((out[2].0 - 400.0).abs() < 1e-9, "{}", out[2].0);
}

#[test]
fn pi_steps_when_the_second_sample_exceeds_the_first_step_threshold() {
    let out = run(&mut pi(), &[(50_000, S), (50_200, 2 * S), (0, 3 * S)]);
    assert_eq!(out[0].1, ServoState::Unlocked);
    assert_eq!(out[1].1, ServoState::Jump);
    assert!((out[1].0 - 200.0).abs() < 1e-9);
    // After the step: ppb = 0 + drift 200 + 0.
    assert_eq!(out[2], (200.0, ServoState::Locked));
    // A big first sample followed by a small second one does not step.
    let out = run(&mut pi(), &[(50_000, S), (100, 2 * S)]);
    assert_eq!(out[1].1, ServoState::Locked);
}

#[test]
fn pi_without_step_threshold_slews_a_late_large_offset() {
    let mut servo = pi();
    run(&mut servo, &[(1000, S), (900, 2 * S), (500, 3 * S)]);
    // 30 ms later on: no step, ppb = 0.7·3e7 + 50 + 0.3·3e7 = 30 000 050.
    let (ppb, state) = servo.sample(30_000_000, 4 * S, 1.0);
    assert_eq!(state, ServoState::Locked);
    assert!((ppb - 30_000_050.0).abs() < 1e-6, "{ppb}");
    // The integral took 9e6: 0 offset next gives drift 9 000 050.
    assert!((servo.sample(0, 5 * S, 1.0).0 - 9_000_050.0).abs() < 1e-6);
}

#[test]
fn pi_with_a_step_threshold_resets_and_steps_two_samples_later() {
    let config = ServoConfig { step_threshold_ns: 1_000_000.0, ..ServoConfig::default() };
    let mut servo = Servo::pi(config, 0.7, 0.3, 0.0);
    servo.sync_interval(1.0);
    run(&mut servo, &[(1000, S), (900, 2 * S), (500, 3 * S)]);
    assert_eq!(
        servo.sample(30_000_000, 4 * S, 1.0),
        (400.0, ServoState::Unlocked),
        "reset, last frequency kept"
    );
    assert_eq!(servo.sample(30_000_000, 5 * S, 1.0).1, ServoState::Unlocked);
    assert_eq!(servo.sample(30_000_100, 6 * S, 1.0).1, ServoState::Jump);
}

#[test]
fn pi_clamps_output_and_freezes_the_integral_while_clamped() {
    let config = ServoConfig { max_frequency_ppb: 1_000.0, ..ServoConfig::default() };
    let mut servo = Servo::pi(config, 0.7, 0.3, 0.0);
    servo.sync_interval(1.0);
    run(&mut servo, &[(0, S), (0, 2 * S)]);
    assert_eq!(servo.sample(1_000_000, 3 * S, 1.0).0, 1_000.0);
    // The drift stayed 0: a zero offset now gives 0.
    assert_eq!(servo.sample(0, 4 * S, 1.0).0, 0.0);
}

#[test]
fn pi_waits_for_enough_time_between_the_first_two_samples() {
    // 0.016 / ki = 0.0533 s: samples 10 ms apart are not enough for an estimate.
    let mut servo = pi();
    assert_eq!(servo.sample(100, S, 1.0).1, ServoState::Unlocked);
    assert_eq!(servo.sample(200, S + 10_000_000, 1.0).1, ServoState::Unlocked);
    assert_eq!(servo.sample(300, S + 100_000_000, 1.0).1, ServoState::Locked);
}

#[test]
fn locked_stable_after_n_samples_under_the_offset_threshold() {
    let config = ServoConfig { offset_threshold_ns: 100.0, num_offset_values: 3, ..ServoConfig::default() };
    let mut servo = Servo::pi(config, 0.7, 0.3, 0.0);
    servo.sync_interval(1.0);
    let states: Vec<_> = [0, 10, 20, 30, 500, 10, 10, 10]
        .iter()
        .enumerate()
        .map(|(i, &o)| servo.sample(o, (i as u64 + 1) * S, 1.0).1)
        .collect();
    use ServoState::*;
    assert_eq!(states, [Unlocked, Locked, Locked, LockedStable, Locked, Locked, Locked, LockedStable]);
}

#[test]
fn linreg_learns_a_frequency_error_and_removes_it() {
    // A clock 100 ppb fast, corrected by the servo's own output as a real loop would.
    let mut servo = Servo::linreg(ServoConfig::default(), 0.0);
    servo.sync_interval(1.0);
    let (mut offset, mut freq_adj, mut last) = (0.0f64, 0.0f64, (0.0, ServoState::Unlocked));
    for i in 1..=200u64 {
        // Over one second the offset grows by (100 + adjustment) ns.
        offset += 100.0 + freq_adj;
        last = servo.sample(offset.round() as i64, i * S, 1.0);
        if last.1 == ServoState::Locked || last.1 == ServoState::Jump {
            freq_adj = -last.0;
        }
    }
    assert_eq!(last.1, ServoState::Locked);
    assert!((last.0 - 100.0).abs() < 5.0, "estimated error {} ppb, expected ~100", last.0);
    assert!(offset.abs() < 20.0, "offset left {offset} ns");
}

#[test]
fn linreg_is_unlocked_until_it_has_four_points() {
    let mut servo = Servo::linreg(ServoConfig::default(), 0.0);
    servo.sync_interval(1.0);
    let states: Vec<_> = (1..=5u64).map(|i| servo.sample(10, i * S, 1.0).1).collect();
    assert_eq!(&states[..3], [ServoState::Unlocked; 3]);
    assert_ne!(states[4], ServoState::Unlocked);
}
