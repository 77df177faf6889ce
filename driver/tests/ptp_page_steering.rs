//! The page under PTP follows statime's steering of the slave's own clock: read between its
//! anchors, the published PHC→counter mapping stays on the clock statime steers (software
//! steering, the QEMU igb's rule), instead of re-learning each rate change from measurements.

use nicclock_driver::clock::SteerChoice;
use nicclock_driver::ptp::page::PtpPageConfig;
use nicclock_driver::ptp::simwire::{run, LinkSpec, OwnClockCheck, StampNoise, WireScenario};
use nicclock_driver::sim::{SimConfig, SimModel};

/// The slave on a QEMU igb (82576, software steering), 8 Sync/s, an oscillator `ppm` off that
/// wanders; the page at 10 updates/s as nicclockd's default `--rate`.
fn own_clock(seed: u64, ppm: f64) -> OwnClockCheck {
    let sc = WireScenario {
        duration_s: 60.0,
        seed,
        sim: SimConfig {
            model: SimModel::I82576,
            qemu: true,
            freq_error_ppm: ppm,
            wander_ppb_per_sqrt_s: 5.0,
            seed,
            ..SimConfig::default()
        },
        steer: SteerChoice::Software,
        page: Some(PtpPageConfig::default()),
        ..WireScenario::standard()
    };
    let o = run(&sc).expect("the simulated NIC stays present");
    let p = o.page.expect("the page ran");
    assert!(p.locked_updates > 300, "the page LOCKED for most of the run: {p:?}");
    assert_eq!(p.violations, 0, "a LOCKED bound below the true error: {p:?}");
    assert_eq!(p.reader.outside, 0, "a reader got a bound below the true error: {:?}", p.reader);
    p.own_clock
}

#[test]
fn the_page_follows_the_steered_clock_between_anchors() {
    // Before the page took statime's rate changes at once (it re-learnt each one over its 64-point
    // window): RMS 44.5 / 25.4 / 60.9 ns, max 310 / 120 / 417 ns.
    let (mut worst_rms, mut worst_max): (f64, i64) = (0.0, 0);
    for (seed, ppm) in [(1, 5.0), (2, -20.0), (3, 40.0)] {
        let c = own_clock(seed, ppm);
        let rms = c.rms_ns().expect("LOCKED samples");
        println!(
            "seed {seed} ({ppm:+} ppm): page vs the slave's own clock between anchors: RMS {rms:.1} ns, \
             max {} ns over {} samples",
            c.max_abs_ns, c.samples
        );
        worst_rms = worst_rms.max(rms);
        worst_max = worst_max.max(c.max_abs_ns);
    }
    // What may remain: the mapping's own reads (the sim's bracket) and the rate change until the
    // next anchor. Right after LOCKED statime is still correcting the start fit's frequency
    // (seed 2: one sample of 438 at 240 ns, at 6.9 s, just after LOCKED, the page's bound 14 µs:
    // 2.4 ppm over one 100 ms interval), which the page takes whole at its next anchor.
    assert!(worst_rms < 35.0, "the page lags statime's steering: RMS {worst_rms:.1} ns");
    assert!(worst_max < 300, "the page lags statime's steering: max {worst_max} ns");
}

#[test]
fn every_reading_lies_within_the_bound_the_reader_got_from_the_first_exchange_on() {
    // The QEMU lab's pair: both clocks QEMU's (0.5 ppm apart), a 12 µs path, emulated stamps µs
    // late and noisy. Right after the first step the servo's offset is 0 and the clock still
    // ~20 µs off; with one raw exchange or none the page published a LOCKING bound of ~600 ns
    // (3 of these 12 runs had a reading outside it, by up to 20 µs): no bound before
    // MIN_EXCHANGES.
    let mut outside = 0;
    for seed in 1..=12 {
        let noise = StampNoise {
            sigma_ns: 1_000.0,
            t1_late_mean_ns: 5_000.0,
            t4_late_mean_ns: 5_000.0,
            ..StampNoise::default()
        };
        let sc = qemu_pair(seed, 1_000.0, noise);
        let p = run(&sc).expect("the simulated NIC stays present").page.expect("the page ran");
        println!("seed {seed}: {:?}", p.reader);
        assert!(p.reader.readings > 250, "the page had a bound for most of the run: {:?}", p.reader);
        outside += p.reader.outside;
    }
    assert_eq!(outside, 0, "readings outside the bound the reader got");
}

#[test]
fn the_first_seconds_after_locked_carry_no_servo_transient() {
    // The QEMU lab's pair (both clocks QEMU's, 0.5 ppm apart, a 12 µs path, 1.5 µs of stamp noise
    // at each end): the page read against the truth from its first LOCKED on, as `ptp-pair` reads
    // page against page. The first correction came from one exchange: statime's own filter
    // stepped by the Sync offset alone (offset + path delay), left the clock a path delay off and
    // slewed it at 10s of ppm once it trusted its measurements, while the page already said
    // LOCKED: over these 12 seeds the first 10 s read 1713 ns RMS (up to 16.9 µs), the rest
    // 299 ns. Now the first correction is fitted from the start's exchanges (offset and
    // frequency, 2 s of them) and the page waits for the exchanges to agree with the servo: 749 ns,
    // up to 4.9 µs (what is left: statime's filter settling on the fitted frequency).
    let (mut first_sq, mut first_n, mut worst) = (0.0, 0, 0);
    for seed in 1..=12 {
        let sc = qemu_pair(seed, 1_500.0, StampNoise { sigma_ns: 1_500.0, ..StampNoise::default() });
        let p = run(&sc).expect("the simulated NIC stays present").page.expect("the page ran");
        let f = p.true_first_10s;
        println!(
            "seed {seed}: LOCKED at {:?} s; first 10 s: RMS {:.0} ns, max {} ns; after: RMS {:.0} ns",
            p.first_locked_s,
            f.rms_ns().unwrap_or(0.0),
            f.max_abs_ns,
            p.true_after_10s.rms_ns().unwrap_or(0.0)
        );
        assert!(f.samples > 50, "the page LOCKED early enough for its first 10 s: {p:?}");
        assert_eq!(p.reader.outside, 0, "a reader got a bound below the true error: {:?}", p.reader);
        first_sq += f.sum_sq_ns;
        first_n += f.samples;
        worst = worst.max(f.max_abs_ns);
    }
    let rms = (first_sq / first_n as f64).sqrt();
    println!("first 10 s after LOCKED, all seeds: RMS {rms:.0} ns, max {worst} ns");
    assert!(rms < 1_200.0, "the servo's transient after LOCKED: RMS {rms:.0} ns");
    assert!(worst < 8_000, "the servo's transient after LOCKED: max {worst} ns");
}

/// The QEMU lab's pair for 40 s: both clocks QEMU igbs (software steering) 0.5 ppm apart and
/// wandering, a 12 µs path, every hardware stamp `jitter_ns` of noise (standard deviation), the
/// master's stamps `noise` on top; the page at nicclockd's default rate.
fn qemu_pair(seed: u64, jitter_ns: f64, noise: StampNoise) -> WireScenario {
    WireScenario {
        duration_s: 40.0,
        seed,
        sim: SimConfig {
            model: SimModel::I82576,
            qemu: true,
            freq_error_ppm: 0.5,
            wander_ppb_per_sqrt_s: 5.0,
            seed,
            ..SimConfig::default()
        },
        steer: SteerChoice::Software,
        page: Some(PtpPageConfig::default()),
        link: LinkSpec { delay_ns: 12_000, asymmetry_ns: 0, stamp_jitter_ns: jitter_ns, loss: 0.0 },
        master_stamp_noise: noise,
        ..WireScenario::standard()
    }
}
