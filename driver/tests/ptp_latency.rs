//! A master that stamps its Delay_Req receptions late in software (the QEMU lab's `ptp4l -S`:
//! t4 100s of µs late, one-sided) biases a slave that centres its exchanges by half the mean
//! latency; the lucky-exchange correction (`ptp::filter_latency`) takes it to the least delayed
//! exchanges' level, and hardware stamps at both ends get no correction at all.

use nicclock_driver::ptp::page::PtpPageConfig;
use nicclock_driver::ptp::simwire::{run, StampNoise, WireOutcome, WireScenario};

/// Mean true offset from the master after `from_s`, ns.
fn mean_after(o: &WireOutcome, from_s: f64) -> f64 {
    let v: Vec<f64> = o.offsets.iter().filter(|(t, _)| *t >= from_s).map(|(_, x)| *x as f64).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn a_late_stamping_master_biases_the_slave_by_the_lucky_exchanges_latency_only() {
    // 8 Sync and 8 Delay_Req a second, t4 exponentially late by 150 µs on average, 5 µs of
    // Gaussian noise on t1 and t4: centred on all exchanges the slave sits ~75 µs off; the least
    // delayed quarter is ~20 µs late (0.14 of the mean), ~10 µs of offset.
    let noise = StampNoise {
        sigma_ns: 5_000.0,
        t1_late_mean_ns: 0.0,
        t4_late_mean_ns: 150_000.0,
        spike_probability: 0.0,
        spike_max_ns: 0.0,
    };
    for seed in [1, 2] {
        let sc = WireScenario {
            duration_s: 120.0,
            seed,
            master_stamp_noise: noise,
            page: Some(PtpPageConfig::default()),
            ..WireScenario::standard()
        };
        let o = run(&sc).expect("the simulated NIC stays present");
        let mean = mean_after(&o, 40.0);
        let p = o.page.expect("the page ran");
        println!("seed {seed}: mean true offset after 40 s {mean:.0} ns, steps {:?}, page {p:?}", o.steps);
        assert!(mean.abs() < 30_000.0, "mean true offset {mean} ns (uncorrected: ~75 µs)");
        assert_eq!(p.violations, 0, "{p:?}");
    }
}
