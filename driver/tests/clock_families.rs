//! Each family's frequency and step arithmetic against values worked by hand from the Linux
//! formulas (igb-family.md §2 and §10): TIMINCA words, resolution limits, the 82580/i350 maximum,
//! ISGN signs, TIMADJ encodings, the 40-bit wrap extension and the i210's ns→s carry.

use nicclock_driver::clock::{
    fractional_rate_of, fractional_timinca, isgn_rate_of, isgn_timinca, ops, sanitized, timadj_words,
    ClockI210, Nanos, Ppb, Ppt, RawTime, Ticks, NS_PER_S, SANE_DELTA_TICKS,
};
use nicclock_driver::model::{model, Family, Quirks, TimadjFormat, INTEL};

fn ppb(whole: i64) -> Ppt {
    Ppt(whole * 1000)
}

#[test]
fn e82576_timinca_from_linux_formula() {
    // INCVALUE = 0x800000 ± ⌊0x800000·|ppb|/1e9⌋, period 1: TIMINCA = 0x01000000 | INCVALUE.
    let base = 0x0180_0000;
    for (rate, word) in [
        (0, 0x0180_0000),
        // 8388608·1000/1e9 = 8.39 → 8
        (1000, 0x0180_0008),
        (-1000, 0x017F_FFF8),
        // One LSB is 1e9/2^23 = 119.2 ppb: 119 ppb is below it, 120 ppb reaches it.
        (119, 0x0180_0000),
        (120, 0x0180_0001),
        (-120, 0x017F_FFFF),
        // max_adj 999,999,881: 8388608·0.999999881 = 8388607.0017 → INCVALUE 0xFFFFFF.
        (999_999_881, 0x01FF_FFFF),
        (-999_999_881, 0x0100_0001),
    ] {
        assert_eq!(fractional_timinca(base, ppb(rate)), word, "{rate} ppb");
    }
    assert!((fractional_rate_of(base, 0x0180_0001).0 - 119.209).abs() < 1e-3);
}

#[test]
fn e82574_timinca_from_linux_formula() {
    // Base 0x01A00000 (40 ns in 2^-18 ns per 40 ns tick); one LSB = 1e9/0xA00000 = 95.4 ppb.
    let base = 0x01A0_0000;
    for (rate, word) in [
        (95, 0x01A0_0000),
        (96, 0x01A0_0001),
        // 10485760·1000/1e9 = 10.49 → 10
        (1000, 0x01A0_000A),
        (-1000, 0x019F_FFF6),
        // max_adj 599,999,900: 10485760·0.5999999 = 6291454.95 → 6291454; 0xA00000 + that = 0xFFFFFE.
        (599_999_900, 0x01FF_FFFE),
    ] {
        assert_eq!(fractional_timinca(base, ppb(rate)), word, "{rate} ppb");
    }
    assert!((fractional_rate_of(base, 0x01A0_0001).0 - 95.367).abs() < 1e-3);
}

#[test]
fn isgn_timinca_of_82580_i350_i210_from_linux_formula() {
    // rate = ⌊|ppb|·2^35/1e9⌋ (2^-32 ns per 8 ns tick), ISGN (bit 31) for a negative rate.
    for (rate, word) in [
        (0, 0x0000_0000),
        // 34.36 → 34
        (1, 0x0000_0022),
        (-1, 0x8000_0022),
        // 34359.74 → 34359 = 0x8637
        (1000, 0x0000_8637),
        (-1000, 0x8000_8637),
        // max_adj 62,499,999: 2147483613.6 → 0x7FFFFFDD, just under 2^31.
        (62_499_999, 0x7FFF_FFDD),
        (-62_499_999, 0xFFFF_FFDD),
        // 62,500,000 would be 2^31: held at the field's maximum.
        (62_500_000, 0x7FFF_FFFF),
    ] {
        assert_eq!(isgn_timinca(ppb(rate)), word, "{rate} ppb");
    }
    // Resolution 2^-35 = 0.0291 ppb: 0.02 ppb is below one LSB, 0.03 ppb reaches it.
    assert_eq!(isgn_timinca(Ppt(20)), 0);
    assert_eq!(isgn_timinca(Ppt(30)), 1);
    assert!((isgn_rate_of(0x8000_8637).0 + 999.98).abs() < 0.01, "{:?}", isgn_rate_of(0x8000_8637));
    assert_eq!(Family::E82580.spec().max_adj_ppb, 62_499_999.0);
    assert_eq!(Family::I210.spec().max_adj_ppb, 62_499_999.0);
}

#[test]
fn family_ops_use_their_family_formula() {
    let i350 = ops(model(INTEL, 0x1521).unwrap(), Quirks::empty());
    assert_eq!(i350.family(), Family::E82580);
    assert_eq!((i350.nominal_timinca(), i350.timinca(ppb(-1000))), (0, 0x8000_8637));
    let i210 = ops(model(INTEL, 0x1533).unwrap(), Quirks::empty());
    assert_eq!(i210.timinca(ppb(-62_499_999)), 0xFFFF_FFDD);
    let e82576 = ops(model(INTEL, 0x10C9).unwrap(), Quirks::empty());
    assert_eq!((e82576.nominal_timinca(), e82576.timinca(ppb(1000))), (0x0180_0000, 0x0180_0008));
    let e82574 = ops(model(INTEL, 0x10D3).unwrap(), Quirks::empty());
    assert_eq!((e82574.nominal_timinca(), e82574.timinca(ppb(96))), (0x01A0_0000, 0x01A0_0001));
    // QEMU counts 16 ns ticks whatever the model: the 82574 base becomes 16 ns in 2^-18 ns.
    let qemu = ops(model(INTEL, 0x10D3).unwrap(), Quirks::SIXTEEN_NS_TICK);
    assert_eq!(qemu.nominal_timinca(), 0x0140_0000);
}

#[test]
fn e82576_timadj_words_in_both_encodings() {
    // -1 ms in 2^-19 ns: -(1e6 << 19) = -524,288,000,000 = -0x7A_1200_0000.
    let delta = Ticks(-(1_000_000i64 << 19));
    assert_eq!(timadj_words(delta, TimadjFormat::SignMagnitude), Some((0x1200_0000, 0x8000_007A)));
    assert_eq!(timadj_words(delta, TimadjFormat::TwosComplement), Some((0xEE00_0000, 0xFFFF_FF85)));
    assert_eq!(timadj_words(Ticks(i64::MIN), TimadjFormat::SignMagnitude), None, "beyond 63 bits");
}

#[test]
fn e82580_forty_bit_wrap_is_extended() {
    let o = ops(model(INTEL, 0x1521).unwrap(), Quirks::empty());
    // 1 µs before 2^40 ns to 2 µs after it: +3000 ticks, and back again.
    let before = RawTime((1 << 40) - 1000);
    let after = RawTime(2000);
    assert_eq!(o.ticks_between(before, after), Ticks(3000));
    assert_eq!(o.ticks_between(after, before), Ticks(-3000));
    assert_eq!(o.advance(before, Ticks(3000)), after);
    // Reserved SYSTIMH bits 31:8 are dropped.
    assert_eq!(o.raw_from_regs(0x1234_5678, 0xABCD_EF9A), RawTime(0x9A_1234_5678));
    assert_eq!(o.raw_to_regs(RawTime(0x9A_1234_5678)), (0x1234_5678, 0x9A));
    assert_eq!(Family::E82580.spec().wrap_ns, 1_099_511_627_776, "2^40 ns = 18.3 minutes");
}

#[test]
fn i210_step_carries_nanoseconds_into_seconds() {
    let o = ops(model(INTEL, 0x1533).unwrap(), Quirks::empty());
    // 5 s + 999,999,000 ns, +2000 ns → 6 s + 1000 ns.
    let raw = RawTime::from_regs(999_999_000, 5);
    assert_eq!(o.advance(raw, Ticks(2000)), RawTime::from_regs(1000, 6));
    // 6 s + 1000 ns − 1,000,000,001 ns = 5 s + 999 ns: the borrow goes the other way.
    assert_eq!(o.advance(RawTime::from_regs(1000, 6), Ticks(-1_000_000_001)), RawTime::from_regs(999, 5));
    assert_eq!(o.ticks_between(raw, RawTime::from_regs(1000, 6)), Ticks(2000));
    assert_eq!(o.ns_of(RawTime::from_regs(1000, 6)), Nanos(6 * NS_PER_S as i128 + 1000));
    // A TAI value in 2026 is a direct set of seconds and ns.
    let tai = 1_767_225_637 * NS_PER_S as i128 + 123;
    assert_eq!(ClockI210::raw_of(tai), RawTime::from_regs(123, 1_767_225_637));
}

#[test]
fn e82574_sanitizing_skips_implausible_reads() {
    // Readings 40 ns apart at 25 MHz: INCVALUE 0xA00000 per tick.
    let inc = 0xA0_0000u32;
    let good = 1_000 * inc as u64;
    // A read with a flipped high bit, then one off the tick grid, then two good ones.
    let mut reads =
        [good ^ (1 << 40), good + 3 * inc as u64 + 7, good + 4 * inc as u64, good + 5 * inc as u64]
            .into_iter();
    assert_eq!(sanitized(good, || reads.next().unwrap(), inc, true), good + 5 * inc as u64);
    // A continuously counting clock (QEMU): only the size of the step matters.
    let mut reads = [good + SANE_DELTA_TICKS, good + SANE_DELTA_TICKS + 77].into_iter();
    assert_eq!(sanitized(good, || reads.next().unwrap(), inc, false), good + SANE_DELTA_TICKS + 77);
    // An all-ones device (removed) is returned as read, for the caller to recognise.
    assert_eq!(sanitized(u64::MAX, || u64::MAX, 0xFF_FFFF, true), u64::MAX);
    assert_eq!(Ppb(1.5).to_ppt(), Ppt(1500));
}
