//! The PTP slave steps only when its clock is really off (start-up, a real jump of the master's
//! time), never on measurement noise: a software-stamping master's spikes are held back by the
//! gate, a 100 ppm oscillator at 1 Sync/s locks, and a 10 ms jump is still stepped in seconds.

use nicclock_driver::ptp::page::PtpPageConfig;
use nicclock_driver::ptp::simwire::{run, StampNoise, WireOutcome, WireScenario};

/// The QEMU lab's master (`ptp4l -2 -S`: software stamps, 1 Sync/s), a slave within 5 ppm.
fn lab(seed: u64, duration_s: f64) -> WireScenario {
    let mut sc = WireScenario {
        duration_s,
        seed,
        page: Some(PtpPageConfig::default()),
        master_stamp_noise: StampNoise::software(),
        log_sync_interval: 0,
        ..WireScenario::standard()
    };
    sc.sim.freq_error_ppm = 5.0;
    sc
}

fn go(sc: &WireScenario) -> WireOutcome {
    run(sc).expect("the simulated NIC stays present")
}

/// RMS of the true offset from the master after `from_s`, ns.
fn rms_after(o: &WireOutcome, from_s: f64) -> f64 {
    let v: Vec<f64> = o.offsets.iter().filter(|(t, _)| *t >= from_s).map(|(_, x)| *x as f64).collect();
    (v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

#[test]
fn a_software_stamping_master_makes_no_step_after_start_up() {
    // Before: statime reset its filter and stepped whenever one noisy measurement was 50 µs
    // from its state: ~570 steps in 900 s. Now the start-up steps only: the slave's clock starts
    // far from TAI (statime steps it at the first Sync), then the first exchange's offset, if
    // beyond the 50 µs first-step threshold (with this noise, in some runs). Spikes (2 % of
    // stamps, up to 1 ms) are held back by the gate unless 3 come in a row.
    for seed in [1, 2, 3] {
        let o = go(&lab(seed, 900.0));
        let p = o.page.expect("the page ran");
        let rms = rms_after(&o, 60.0);
        println!(
            "seed {seed}: steps {:?}, outliers dropped {}, LOCKED {} updates, violations {}, true RMS after 60 s \
             {rms:.0} ns",
            o.steps, o.outliers_dropped, p.locked_updates, p.violations
        );
        assert!(!o.steps.is_empty(), "the start-up step");
        assert!(o.steps.iter().all(|(t, _)| *t < 10.0), "a step on noise: {:?}", o.steps);
        assert!(o.steps.len() <= 2, "start-up steps (statime's, then a first step): {:?}", o.steps);
        assert_eq!(p.violations, 0, "{p:?}");
        assert!(p.locked_updates > 5_000, "the page is LOCKED most of the time: {p:?}");
        // The noise (t1 50 µs late, t4 150 µs late on average) biases the offset by ~50 µs, which
        // the slave cannot see; what the steps added on top is gone (before, seed 1: 208 µs RMS
        // with 566 steps; now ~104 µs, the bias).
        assert!(rms < 150_000.0, "true RMS {rms} ns");
    }
}

#[test]
fn one_sync_per_second_with_a_100_ppm_oscillator_locks() {
    // Before: 100 µs of drift per exchange against a 50 µs step threshold: a step every exchange,
    // never locked. Now the start-up step (statime's, the clock starts far off), the first step
    // (the drift since, beyond 50 µs), then slewing under the 1 ms threshold while the filter
    // learns the rate; statime trusts no measurement before 4 Sync/Delay_Req pairs, so the
    // oscillator may drift past 1 ms once more (a third step) before it does; none after lock.
    let sc = WireScenario { log_sync_interval: 0, duration_s: 300.0, ..WireScenario::standard() };
    assert_eq!(sc.sim.freq_error_ppm, 100.0);
    let o = go(&sc);
    println!(
        "1 Sync/s, 100 ppm: steps {:?}, lock at {:?} s, RMS {:?} ns",
        o.steps, o.lock_time_s, o.summary.rms_offset_ns
    );
    let lock = o.lock_time_s.unwrap_or_else(|| panic!("never locked: steps {:?}", o.steps));
    assert!(o.steps.len() <= 3, "{:?}", o.steps);
    assert!(o.steps.iter().all(|(t, _)| *t < lock), "a step after lock at {lock} s: {:?}", o.steps);
}

#[test]
fn a_real_jump_of_the_master_is_stepped_within_seconds() {
    // 8 Sync/s, hardware stamps: the gate drops 8 of each kind, acquires afresh (2), then the
    // hold-back passes the 3rd far measurement in a row: ~1.5 s.
    let sc = WireScenario { master_jump: Some((60.0, 10_000_000)), ..WireScenario::standard() };
    let o = go(&sc);
    println!("8 Sync/s, master +10 ms at 60 s: steps {:?}", o.steps);
    let after: Vec<_> = o.steps.iter().filter(|(t, _)| *t >= 60.0).collect();
    assert_eq!(after.len(), 1, "{:?}", o.steps);
    let (t, ns) = *after[0];
    assert!(t < 63.0, "stepped at {t} s");
    assert!((ns - 10_000_000).abs() < 100_000, "a step of {ns} ns");
    assert!(rms_after(&o, 70.0) < 100.0, "locked again: {:?}", &o.offsets[o.offsets.len() - 5..]);

    // The lab's noisy master at 1 Sync/s: the same counts take a Sync interval each (~12 s).
    let mut sc = lab(1, 300.0);
    sc.master_jump = Some((150.0, 10_000_000));
    let o = go(&sc);
    println!("1 Sync/s, software master, +10 ms at 150 s: steps {:?}", o.steps);
    let after: Vec<_> = o.steps.iter().filter(|(t, _)| *t >= 150.0).collect();
    assert_eq!(after.len(), 1, "{:?}", o.steps);
    let (t, ns) = *after[0];
    assert!(t < 170.0, "stepped at {t} s");
    assert!((ns - 10_000_000).abs() < 1_000_000, "a step of {ns} ns");
}
