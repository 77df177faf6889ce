//! The simulated NIC per family, through the register seam only, as a driver sees it: each
//! family's SYSTIM format, resolution and latch order (out-of-order reads give stale halves), the
//! 82580/i350 40-bit wrap crossed in virtual time, the i210's ns→s carry, direct set and TIMADJ,
//! the 82574 erratum's seeded bad reads, and the `sim:` device keys that select all this.

use std::sync::Arc;

use nicclock_driver::device::DeviceArg;
use nicclock_driver::regs;
use nicclock_driver::sim::{SimConfig, SimModel, SimNic, NS40_WRAP};
use nicclock_driver::timesource::{TimeSource, VirtualTime};
use nicclock_uio::RegisterAccess;

const TSICR_SYS_WRAP: u32 = 1 << 0;
const TSICR_TADJ: u32 = 1 << 7;
const TSAUXC_DISABLE: u32 = 1 << 31;

fn sim(model: SimModel) -> (Arc<VirtualTime>, SimNic) {
    sim_with(SimConfig { model, ..SimConfig::ideal() })
}

fn sim_with(config: SimConfig) -> (Arc<VirtualTime>, SimNic) {
    let time = VirtualTime::new();
    (time.clone(), SimNic::new(config, time))
}

/// 82576/82574 order: SYSTIML (latches), then SYSTIMH.
fn read_fractional(nic: &SimNic) -> u64 {
    let lo = nic.read32(regs::SYSTIML) as u64;
    (nic.read32(regs::SYSTIMH) as u64) << 32 | lo
}

/// 82580/i350/i210 order: SYSTIMR (latches), SYSTIML, SYSTIMH → (residue, low, high).
fn read_latched(nic: &SimNic) -> (u32, u32, u32) {
    let r = nic.read32(regs::SYSTIMR);
    (r, nic.read32(regs::SYSTIML), nic.read32(regs::SYSTIMH))
}

fn at(time: &VirtualTime, t: u64) {
    time.wait_until(t);
}

#[test]
fn the_82576_counts_2_pow_minus_19_ns_in_16_ns_steps() {
    let (time, nic) = sim(SimModel::I82576);
    assert_eq!(nic.read32(regs::TIMINCA), 0, "reset value");
    at(&time, 1_024);
    assert_eq!(read_fractional(&nic), 0, "nothing counts until TIMINCA is written");
    nic.write32(regs::TIMINCA, 0x0180_0000);
    let start = time.now_ns();
    at(&time, start + 1_000_000_015);
    assert_eq!(read_fractional(&nic), 1_000_000_000 << 19, "62.5 M periods of 16 ns, not 15 ns more");
    at(&time, start + 1_000_000_016);
    assert_eq!(read_fractional(&nic) >> 19, 1_000_000_016, "one more tick: 16 ns");
}

#[test]
fn the_82574_counts_2_pow_minus_18_ns_in_40_ns_steps() {
    let (time, nic) = sim(SimModel::I82574);
    nic.write32(regs::TIMINCA, 0x01A0_0000);
    at(&time, 1_000_000_039);
    assert_eq!(read_fractional(&nic), 1_000_000_000 << 18);
    at(&time, 1_000_000_040);
    assert_eq!(read_fractional(&nic), 1_000_000_040 << 18);
}

#[test]
fn a_late_systimh_read_gives_the_latched_half_not_the_current_one() {
    let (time, nic) = sim(SimModel::I82576);
    nic.write32(regs::TIMINCA, 0x0180_0000);
    at(&time, 1_000_000_000);
    let lo = nic.read32(regs::SYSTIML);
    at(&time, 2_000_000_000);
    let hi = nic.read32(regs::SYSTIMH);
    assert_eq!((hi as u64) << 32 | lo as u64, 1_000_000_000 << 19, "SYSTIMH from the SYSTIML read's instant");
    assert_eq!(read_fractional(&nic), 2_000_000_000 << 19);
}

#[test]
fn the_40_bit_families_count_ns_with_a_residue_from_reset() {
    for model in [SimModel::I82580, SimModel::I350, SimModel::I354] {
        let (time, nic) = sim(model);
        assert_eq!(nic.read32(regs::TIMINCA), 0, "{model}: reset TIMINCA is the nominal rate");
        at(&time, 5_000_000_007);
        let (r, lo, hi) = read_latched(&nic);
        assert_eq!(
            (r, lo, hi),
            (0, (5_000_000_000u64 & 0xFFFF_FFFF) as u32, 1),
            "{model}: 8 ns ticks from reset"
        );
        // +1 · 2^-32 ns per 8 ns tick (DPDK's "start" value): the residue shows it.
        nic.write32(regs::TIMINCA, 1);
        at(&time, 6_000_000_000);
        let (r, lo, hi) = read_latched(&nic);
        assert_eq!(r, 125_000_000, "{model}: 1.25e8 ticks of 2^-32 ns in 1 s");
        assert_eq!((hi as u64) << 32 | lo as u64, 6_000_000_000);
    }
}

#[test]
fn reading_systiml_without_systimr_gives_the_previous_latch() {
    let (time, nic) = sim(SimModel::I350);
    at(&time, 1_000_000_000);
    read_latched(&nic);
    at(&time, 3_000_000_000);
    assert_eq!(nic.read32(regs::SYSTIML), 1_000_000_000, "stale: SYSTIMR was not read");
    assert_eq!(nic.read32(regs::SYSTIMH), 0);
    nic.read32(regs::SYSTIMR);
    assert_eq!(nic.read32(regs::SYSTIML), 3_000_000_000);
}

#[test]
fn isgn_rates_follow_the_2_pow_minus_35_formula() {
    // −100 ppm: INCVALUE = 100e-6 · 2^35 ≈ 3,435,974 with ISGN; +50 ppb: 50e-9 · 2^35 ≈ 1718.
    for (timinca, incvalue, negative) in
        [(0x8000_0000u32 | 3_435_974, 3_435_974u128, true), (1718, 1718, false)]
    {
        let (time, nic) = sim(SimModel::I82580);
        nic.write32(regs::TIMINCA, timinca);
        at(&time, 10_000_000_000);
        let (_, lo, hi) = read_latched(&nic);
        let ticks = 1_250_000_000u128;
        let units = if negative { ticks * ((8 << 32) - incvalue) } else { ticks * ((8 << 32) + incvalue) };
        assert_eq!((hi as u128) << 32 | lo as u128, units >> 32, "TIMINCA {timinca:#x}");
    }
    // The largest adjustment: 2^31 − 1 units per tick is 62,499,999.97 ppb.
    let (time, nic) = sim(SimModel::I210);
    nic.write32(regs::TIMINCA, 0x7FFF_FFFF);
    at(&time, 1_000_000_000);
    let (_, lo, _) = read_latched(&nic);
    assert_eq!(lo, 62_499_999, "1 s at +6.25 % shows 62,499,999 extra ns (one less than 1e9 + 62.5 M)");
}

#[test]
fn the_40_bit_counter_wraps_every_2_pow_40_ns_in_virtual_time() {
    let (time, nic) = sim(SimModel::I350);
    let wrap = NS40_WRAP as u64;
    // Read every 6 minutes as Linux's overflow worker does, across the wrap: each reading is the
    // true time modulo 2^40, SYSTIMH never shows more than 8 bits, and TSICR says it wrapped.
    let mut t = 0;
    while t < wrap + 360_000_000_000 {
        t += 360_000_000_000;
        at(&time, t);
        let (_, lo, hi) = read_latched(&nic);
        assert!(hi <= 0xFF, "SYSTIMH[31:8] reserved: {hi:#x}");
        assert_eq!((hi as u64) << 32 | lo as u64, (t % wrap) / 8 * 8, "at {t} ns");
    }
    assert_ne!(nic.read32(regs::TSICR) & TSICR_SYS_WRAP, 0, "the wrap is flagged");
    assert!((nic.config().model.wrap_s() - 1099.5).abs() < 0.1, "18.3 min");
}

#[test]
fn tsauxc_bit_31_stops_the_counter() {
    let (time, nic) = sim(SimModel::I210);
    at(&time, 1_000_000_000);
    nic.write32(regs::TSAUXC, TSAUXC_DISABLE);
    at(&time, 2_000_000_000);
    assert_eq!(read_latched(&nic), (0, 0, 1), "stopped at 1 s");
    nic.write32(regs::TSAUXC, 0);
    at(&time, 2_500_000_000);
    assert_eq!(read_latched(&nic), (0, 500_000_000, 1));
}

#[test]
fn with_tsauxc_disabled_at_reset_nothing_counts_until_the_driver_clears_bit_31() {
    let (time, nic) = sim_with(SimConfig {
        systim_disabled_at_reset: true,
        ..SimConfig { model: SimModel::I350, ..SimConfig::ideal() }
    });
    assert_eq!(nic.read32(regs::TSAUXC), TSAUXC_DISABLE);
    at(&time, 1_000_000_000);
    assert_eq!(read_latched(&nic), (0, 0, 0));
    nic.write32(regs::TSAUXC, 0);
    at(&time, 2_000_000_000);
    assert_eq!(read_latched(&nic), (0, 1_000_000_000, 0));
}

#[test]
fn the_i210_carries_ns_into_seconds_at_1e9() {
    let (time, nic) = sim(SimModel::I210);
    at(&time, 999_999_992);
    assert_eq!(read_latched(&nic), (0, 999_999_992, 0));
    at(&time, 1_000_000_000);
    assert_eq!(read_latched(&nic), (0, 0, 1), "999,999,992 + 8 ns is 1 s 0 ns");
    assert_ne!(nic.read32(regs::TSICR) & TSICR_SYS_WRAP, 0, "the second's rollover (SYS_WRAP)");
    assert_eq!(nic.read32(regs::TSICR), 0, "TSICR clears on read");
}

#[test]
fn the_i210_is_set_by_systiml_then_systimh_and_runs_on() {
    let (time, nic) = sim(SimModel::I210);
    at(&time, 5_000);
    nic.write32(regs::SYSTIML, 999_999_000);
    nic.write32(regs::SYSTIMH, 1_767_225_637);
    assert_eq!(read_latched(&nic), (0, 999_999_000, 1_767_225_637));
    at(&time, 6_000);
    assert_eq!(read_latched(&nic), (0, 0, 1_767_225_638), "1000 ns later: the next second");
    let truth = nic.truth();
    assert_eq!(truth.raw, 1_767_225_638 << 32, "raw is seconds << 32 | ns");
    assert_eq!(truth.nic_ns, 1_767_225_638 * 1_000_000_000);
}

#[test]
fn the_i210_timadj_steps_by_signed_ns_and_says_it_is_done() {
    let (time, nic) = sim(SimModel::I210);
    nic.write32(regs::SYSTIML, 0);
    nic.write32(regs::SYSTIMH, 10);
    nic.write32(regs::TIMADJL, 0x8000_0000 | 500);
    assert_eq!(read_latched(&nic), (0, 999_999_500, 9), "−500 ns across the second");
    assert_ne!(nic.read32(regs::TSICR) & TSICR_TADJ, 0);
    nic.write32(regs::TIMADJL, 250_000);
    assert_eq!(read_latched(&nic), (0, 249_500, 10));
    assert_ne!(nic.read32(regs::TSICR) & TSICR_TADJ, 0);
    // Out of range: zero, or 999,999,900 ns and more, does nothing.
    nic.write32(regs::TIMADJL, 999_999_900);
    nic.write32(regs::TIMADJL, 0x8000_0000);
    assert_eq!(read_latched(&nic), (0, 249_500, 10));
    assert_eq!(nic.read32(regs::TSICR) & TSICR_TADJ, 0);
    time.advance(1_000);
    assert_eq!(read_latched(&nic), (0, 250_500, 10), "and runs on");
}

#[test]
fn the_82574_erratum_spoils_the_seeded_fraction_of_reads_and_each_is_detectable() {
    let (time, nic) =
        sim_with(SimConfig { model: SimModel::I82574, bad_read_fraction: 0.1, ..SimConfig::ideal() });
    let incvalue = 40u64 << 18;
    nic.write32(regs::TIMINCA, 0x0100_0000 | incvalue as u32);
    let mut last_good = read_fractional(&nic);
    let (mut bad, reads) = (0, 10_000);
    for k in 1..=reads {
        time.advance(1_000 + 7 * k);
        let raw = read_fractional(&nic);
        if raw != nic.truth().raw {
            bad += 1;
            // Linux's sanitize rule: a delta from a good reading is a multiple of INCVALUE and
            // below 2^35 units. Every spoilt reading breaks it.
            let delta = raw.wrapping_sub(last_good);
            assert!(delta % incvalue != 0 || delta >= 1 << 35, "a bad read that looks good: {raw:#x}");
        } else {
            let delta = raw.wrapping_sub(last_good);
            assert_eq!(delta % incvalue, 0, "good reads move by whole increments");
            last_good = raw;
        }
    }
    assert_eq!(bad, nic.bad_reads(), "every injected fault, and nothing else, reads wrong");
    assert!((800..1200).contains(&bad), "{bad} of {reads} reads spoilt at a 10 % rate");
    let (_, clean) = sim(SimModel::I82574);
    assert_eq!(clean.bad_reads(), 0, "off by default");
}

#[test]
fn each_family_reports_its_resolution_and_wrap() {
    let expected = [
        (SimModel::I82574, 40, 2f64.powi(46) / 1e9),
        (SimModel::I82576, 16, 2f64.powi(45) / 1e9),
        (SimModel::I82580, 8, 1099.511627776),
        (SimModel::I210, 8, 4294967296.0),
    ];
    for (model, resolution, wrap) in expected {
        assert_eq!(model.resolution_ns(), resolution, "{model}");
        assert!((model.wrap_s() - wrap).abs() < 1e-6, "{model}: {} s", model.wrap_s());
        assert_eq!(SimModel::from_name(model.name()), Some(model));
    }
}

#[test]
fn sim_keys_select_the_family_and_its_faults_and_pins() {
    let parse = |s: &str| match s.parse::<DeviceArg>() {
        Ok(DeviceArg::Sim(c)) => Ok(c),
        Ok(other) => panic!("{s} parsed as {other:?}"),
        Err(e) => Err(e.to_string()),
    };
    let c = parse("sim:model=i210,pps-in=SDP1,pps-jitter=20,pps-missing=0.1").unwrap();
    assert_eq!(c.model, SimModel::I210);
    let pps = c.pps_in.unwrap();
    assert_eq!((pps.sdp, pps.jitter_ns, pps.missing_fraction), (1, 20.0, 0.1));
    assert_eq!(parse("sim:model=82574,bad-reads=0.01").unwrap().bad_read_fraction, 0.01);
    for model in ["82580", "i350", "i354", "i211", "I210"] {
        assert!(parse(&format!("sim:model={model}")).is_ok(), "{model}");
    }
    let master = parse("sim:ptp-master=8").unwrap().ptp_master.unwrap();
    assert_eq!(master.log_sync_interval, -3, "8 Syncs a second: logSyncInterval -3");
    assert_eq!(parse("sim:ptp-master=1").unwrap().ptp_master.unwrap().log_sync_interval, 0);
    assert!(parse("sim").unwrap().ptp_master.is_none(), "no master unless asked");
    for (spec, why) in [
        ("sim:ptp-master=3", "a power of two from 1 to 128"),
        ("sim:ptp-master=256", "a power of two from 1 to 128"),
        ("sim:ptp-master=0", "a power of two from 1 to 128"),
        ("sim:ptp-master=yes", "a power of two from 1 to 128"),
        ("sim:model=i350,qemu=1", "QEMU emulates only the 82574 and the 82576"),
        ("sim:model=82576,pps-in=SDP0", "no time-sync pins"),
        ("sim:model=i210,bad-reads=0.1", "the 82574's"),
        ("sim:model=82574,bad-reads=2", "not between 0 and 1"),
        ("sim:model=i210,pps-in=SDP4", "SDP0 to SDP3"),
        ("sim:model=i225", "i210 or i211"),
    ] {
        let e = parse(spec).unwrap_err();
        assert!(e.contains(why), "{spec}: {e}");
    }
}
