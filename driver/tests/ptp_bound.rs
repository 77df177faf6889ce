//! The page's bound under PTP is honest whatever the master's stamp noise: a master stamping in
//! software (100s of µs, one-sided, spikes) never sees a LOCKED bound below the true error, and a
//! master stamping in hardware keeps the bound within a small multiple of the true error.

use nicclock_driver::ptp::page::PtpPageConfig;
use nicclock_driver::ptp::simwire::{run, PageCheck, StampNoise, WireOutcome, WireScenario};

/// `lab`: the QEMU lab's `ptp4l -2 -S` master: 1 Sync/s (ptp4l's default), a slave oscillator
/// within a few ppm (QEMU's clock is the host's); else issue 10's standard scenario.
fn page_run(duration_s: f64, noise: StampNoise, seed: u64, lab: bool) -> (PageCheck, f64) {
    let o = outcome(duration_s, noise, seed, lab);
    let rms = o.summary.rms_offset_ns.unwrap_or(f64::NAN);
    (o.page.expect("the page ran"), rms)
}

fn outcome(duration_s: f64, noise: StampNoise, seed: u64, lab: bool) -> WireOutcome {
    let mut sc = WireScenario {
        duration_s,
        seed,
        page: Some(PtpPageConfig::default()),
        master_stamp_noise: noise,
        ..WireScenario::standard()
    };
    if lab {
        sc.log_sync_interval = 0;
        sc.sim.freq_error_ppm = 5.0;
    }
    run(&sc).expect("the simulated NIC stays present")
}

#[test]
fn a_software_stamping_master_never_gets_a_locked_bound_below_the_true_error() {
    // ~2 400 LOCKED updates over three seeds: honest with 2^-16 per update on the symmetric part
    // means none is expected; a single violation fails.
    let mut locked = 0;
    for seed in [1, 2, 3] {
        let (p, rms) = page_run(900.0, StampNoise::software(), seed, true);
        println!(
            "seed {seed}: software master: LOCKED {} updates, worst |error| {:?} ns, true RMS {rms:.0} ns, \
             mean bound {:.0} ns, worst margin {:?} ns, violations {}",
            p.locked_updates,
            p.worst_error_ns,
            p.mean_bound_ns.unwrap_or(f64::NAN),
            p.worst_margin_ns,
            p.violations
        );
        assert!(p.worst_error_ns.is_some_and(|e| e > 10_000), "the noise shows in the truth: {p:?}");
        assert_eq!(p.violations, 0, "a LOCKED bound below the true error: {p:?}");
        locked += p.locked_updates;
    }
    // There must be enough LOCKED for the check to mean something (before the noise stopped
    // stepping the clock, ptp::gate, it was rare: ~500 updates of 27 000).
    assert!(locked > 300, "LOCKED updates with the noisy master: {locked}");
    // Issue 10's scenario (8 Sync/s, 100 ppm) with the same master.
    let (p, _) = page_run(300.0, StampNoise::software(), 1, false);
    println!("standard scenario, software master: {p:?}");
    assert_eq!(p.violations, 0, "{p:?}");
}

#[test]
fn with_hardware_stamps_the_bound_stays_tight() {
    let o = outcome(120.0, StampNoise::default(), 1, false);
    let p = o.page.expect("the page ran");
    let rms = o.summary.rms_offset_ns.expect("locked");
    let raw = o.final_status.raw_offsets.expect("the slave measured").bound_ns();
    let mean_bound = p.mean_bound_ns.unwrap();
    println!(
        "hardware master: LOCKED {} updates, worst |error| {:?} ns, true RMS {rms:.1} ns, mean bound \
         {mean_bound:.0} ns; raw term max|m|+2sigma {raw} ns = {:.1} x the true RMS",
        p.locked_updates,
        p.worst_error_ns,
        raw as f64 / rms
    );
    assert!(p.locked_updates > 500, "{p:?}");
    assert_eq!(p.violations, 0, "{p:?}");
    // The raw-offset term is a few times the stamp noise (max of 16 + 2 sigma), not µs.
    assert!(raw as f64 <= 10.0 * rms, "raw term {raw} ns against a true RMS of {rms} ns");
    // The rest of the bound is fixed (the unseen asymmetry: up to the 5 µs mean path delay,
    // accuracy 100 ns, mapping ~100 ns) plus the first seconds of lock.
    assert!(mean_bound < 6_500.0, "the bound with hardware stamps: {mean_bound} ns, {p:?}");
}
