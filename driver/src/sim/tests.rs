//! The simulator's 82576/82574 basics and QEMU mode; each family's semantics and the pins are
//! tested through the register seam in driver/tests/sim_families.rs and sim_pins.rs.

use super::*;
use crate::timesource::VirtualTime;

fn sim(config: SimConfig) -> (Arc<VirtualTime>, SimNic) {
    let time = VirtualTime::new();
    (time.clone(), SimNic::new(config, time))
}

fn read_ns(nic: &SimNic, shift: u32) -> u64 {
    let lo = nic.read32(regs::SYSTIML) as u64;
    let hi = nic.read32(regs::SYSTIMH) as u64;
    ((hi << 32) | lo) >> shift
}

fn quiet() -> SimConfig {
    SimConfig::ideal()
}

#[test]
fn counts_nothing_until_timinca_is_written_then_one_ns_per_ns() {
    let (time, nic) = sim(quiet());
    time.advance(1_000_000);
    assert_eq!(read_ns(&nic, 19), 0);
    nic.write32(regs::TIMINCA, 0x0180_0000);
    time.advance(1_000_000_000);
    assert_eq!(read_ns(&nic, 19), 1_000_000_000);
}

#[test]
fn frequency_error_shows_in_the_count() {
    let (time, nic) = sim(SimConfig { freq_error_ppm: 100.0, ..quiet() });
    nic.write32(regs::TIMINCA, 0x0180_0000);
    time.advance(10_000_000_000);
    assert_eq!(read_ns(&nic, 19), 10_001_000_000);
}

#[test]
fn real_silicon_rate_changes_are_continuous() {
    let (time, nic) = sim(quiet());
    nic.write32(regs::TIMINCA, 0x0180_0000);
    time.advance(1_000_000_000);
    let before = read_ns(&nic, 19);
    nic.write32(regs::TIMINCA, 0x0180_0000 + 8); // +1 ppm-ish
    let after = read_ns(&nic, 19);
    assert_eq!(after, before, "no jump at the write");
    time.advance(1_000_000_000);
    let later = read_ns(&nic, 19);
    assert_eq!(later - after, 1_000_000_000 + 953, "8/2^23 faster for 1 s");
}

#[test]
fn qemu_mode_jumps_on_timinca_writes_and_ignores_systim_writes() {
    let (time, nic) = sim(SimConfig { qemu: true, ..quiet() });
    nic.write32(regs::TIMINCA, 0x0180_0000);
    // QEMU's first write after reset starts at twice the scaled uptime: here uptime is 0.
    time.advance(1_000_000_000);
    let before = read_ns(&nic, 19);
    assert_eq!(before, 1_000_000_000);
    nic.write32(regs::TIMINCA, 0x0180_0000 + 16);
    let after = read_ns(&nic, 19);
    // Raising INCVALUE by Δ jumps by about 2·Δ·t/16 units: 2·16·1e9/16 units = 2e9 units ≈ 3.8 µs.
    let jump = after as i64 - before as i64;
    assert!((3_000..5_000).contains(&jump), "jump {jump} ns");
    nic.write32(regs::TIMINCA, 0x0180_0000);
    let wrapped = read_ns(&nic, 19);
    assert!(wrapped > after + 1_000_000_000_000, "lowering wraps forward by ~2^60 units");
    nic.write32(regs::SYSTIML, 0);
    nic.write32(regs::SYSTIMH, 0);
    assert!(read_ns(&nic, 19) >= wrapped, "SYSTIM writes are ignored");
}

#[test]
fn qemu_timadj_is_twos_complement() {
    let (time, nic) = sim(SimConfig { qemu: true, ..quiet() });
    nic.write32(regs::TIMINCA, 0x0180_0000);
    time.advance(1_000_000_000);
    let minus_1ms = (-(1_000_000i64 << 19)) as u64;
    nic.write32(regs::TIMADJL, minus_1ms as u32);
    nic.write32(regs::TIMADJH, (minus_1ms >> 32) as u32);
    assert_eq!(read_ns(&nic, 19), 999_000_000);
}

#[test]
fn reads_take_time_and_removal_reads_all_ones() {
    let (time, nic) = sim(SimConfig { read_latency_ns: 500, read_jitter_ns: 50, ..quiet() });
    nic.write32(regs::TIMINCA, 0x0180_0000);
    let t0 = time.now_ns();
    read_ns(&nic, 19);
    let spent = time.now_ns() - t0;
    assert!((500..=550).contains(&spent), "one SYSTIML read took {spent} ns");
    nic.remove();
    assert_eq!(nic.read32(regs::SYSTIML), u32::MAX);
    assert_eq!(nic.read32(regs::STATUS), u32::MAX);
}

#[test]
fn the_same_seed_gives_the_same_world() {
    let run = || {
        let (time, nic) = sim(SimConfig { wander_ppb_per_sqrt_s: 5.0, ..SimConfig::default() });
        nic.write32(regs::TIMINCA, 0x0180_0000);
        (0..100)
            .map(|_| {
                time.advance(10_000_000);
                read_ns(&nic, 19)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}
