//! SYSTIM as each family's silicon keeps it: a counter that adds the family's increment at every
//! tick of the NIC's oscillator, in the family's units and width, and its register words.

/// ns per second.
pub const NS_PER_S: u128 = 1_000_000_000;
/// Fraction bits of the 82580/i350/i210 counter (SYSTIMR holds them): units of 2^-32 ns.
const FRAC_BITS: u32 = 32;
const FRAC_MASK: u128 = (1 << FRAC_BITS) - 1;
/// The 82580/i350/i354 counter: 40 bits of ns.
pub const NS40_WRAP: u128 = 1 << 40;
/// ns per tick of the 82580/i350/i210 oscillator (igb-family.md §2.2: "every 8ns by 8ns").
const TICK_8NS: f64 = 8.0;
const ISGN: u32 = 0x8000_0000;
const INCVALUE_31: u32 = 0x7FFF_FFFF;

/// How a family's SYSTIM counts (igb-family.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 82576 (shift 19, 16 ns tick) and 82574 (shift 18, 40 ns tick): a 64-bit count of 2^-shift
    /// ns; every INCPERIOD ticks TIMINCA's INCVALUE is added. SYSTIML latches SYSTIMH.
    Fractional { shift: u32, tick_ns: u32 },
    /// 82580/i350/i354: 40-bit ns in SYSTIMH[7:0]:SYSTIML, 2^-32 ns residue in SYSTIMR; every
    /// 8 ns tick adds 8 ns ± INCVALUE·2^-32 ns (ISGN, bit 31). SYSTIMR latches SYSTIML/H.
    Ns40,
    /// i210/i211: SYSTIMH seconds, SYSTIML ns (0..1e9−1), SYSTIMR residue; the same 8 ns tick.
    SecondsNs,
}

impl Format {
    /// True-rate length of one increment period, ns of the oscillator.
    pub fn period_ns(self, timinca: u32) -> f64 {
        match self {
            Self::Fractional { tick_ns, .. } => ((timinca >> 24).max(1) * tick_ns) as f64,
            Self::Ns40 | Self::SecondsNs => TICK_8NS,
        }
    }

    /// Units added per increment period.
    pub fn increment(self, timinca: u32) -> u128 {
        match self {
            Self::Fractional { .. } => (timinca & crate::regs::TIMINCA_VALUE_MASK) as u128,
            Self::Ns40 | Self::SecondsNs => {
                let base = 8u128 << FRAC_BITS;
                let value = (timinca & INCVALUE_31) as u128;
                if timinca & ISGN != 0 {
                    base - value
                } else {
                    base + value
                }
            }
        }
    }

    /// The counter wraps to 0 here (units).
    pub fn modulus(self) -> u128 {
        match self {
            Self::Fractional { .. } => 1 << 64,
            Self::Ns40 => NS40_WRAP << FRAC_BITS,
            // Seconds in 32 bits: 2106.
            Self::SecondsNs => ((1u128 << 32) * NS_PER_S) << FRAC_BITS,
        }
    }

    /// The counter in ns, as its registers count them (wrapping with them).
    pub fn ns(self, units: u128) -> u128 {
        match self {
            Self::Fractional { shift, .. } => units >> shift,
            Self::Ns40 | Self::SecondsNs => units >> FRAC_BITS,
        }
    }

    /// SYSTIMH:SYSTIML as one 64-bit word (what a driver assembles from the two reads).
    pub fn raw(self, units: u128) -> u64 {
        let (_, lo, hi) = self.words(units);
        ((hi as u64) << 32) | lo as u64
    }

    /// (SYSTIMR, SYSTIML, SYSTIMH) of a counter value.
    pub fn words(self, units: u128) -> (u32, u32, u32) {
        match self {
            Self::Fractional { .. } => (0, units as u32, (units >> 32) as u32),
            Self::Ns40 => (units as u32, (units >> 32) as u32, ((units >> 64) & 0xFF) as u32),
            Self::SecondsNs => {
                let ns = units >> FRAC_BITS;
                (units as u32, (ns % NS_PER_S) as u32, (ns / NS_PER_S) as u32)
            }
        }
    }

    /// The counter value SYSTIML/SYSTIMH words stand for (residue 0).
    pub fn from_words(self, lo: u32, hi: u32) -> u128 {
        match self {
            Self::Fractional { .. } => ((hi as u128) << 32) | lo as u128,
            Self::Ns40 => ((((hi & 0xFF) as u128) << 32) | lo as u128) << FRAC_BITS,
            Self::SecondsNs => ((hi as u128 * NS_PER_S + lo as u128) << FRAC_BITS) % self.modulus(),
        }
    }

    /// ns of a target-time or timestamp word pair (TRGTTIML/H, AUXSTMPL/H) in the counter's ns.
    pub fn pair_ns(self, lo: u32, hi: u32) -> u128 {
        self.ns(self.from_words(lo, hi))
    }

    /// Units from `units` until the counter's ns reach `target_ns` (the next time it passes it;
    /// None if it never will without a write: i210 time in the past).
    pub fn units_until(self, units: u128, target_ns: u128) -> Option<u128> {
        let now = self.ns(units);
        let ahead = match self {
            Self::Ns40 => match (target_ns + NS40_WRAP - now) % NS40_WRAP {
                0 => NS40_WRAP,
                d => d,
            },
            Self::SecondsNs => target_ns.checked_sub(now).filter(|d| *d > 0)?,
            Self::Fractional { shift, .. } => return target_ns.checked_sub(now).map(|d| d << shift),
        };
        Some((ahead << FRAC_BITS) - (units & FRAC_MASK))
    }
}

/// The counter and where the oscillator is within its current increment period.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter {
    pub units: u128,
    /// Fraction of the current increment period already elapsed, [0, 1).
    pub phase: f64,
}

/// How the counter runs over one stretch of true time (rate, increment: constant over it).
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub format: Format,
    /// True ns per increment period.
    pub period_true_ns: f64,
    /// Units per period (0: stopped).
    pub increment: u128,
}

impl Counter {
    fn periods_in(&self, dt: f64, run: &Run) -> u128 {
        (self.phase + dt / run.period_true_ns).floor().max(0.0) as u128
    }

    /// The counter `dt` true ns from now.
    pub fn value_after(&self, dt: f64, run: &Run) -> u128 {
        (self.units + self.periods_in(dt, run) * run.increment) % run.format.modulus()
    }

    /// Moves the counter `dt` true ns on.
    pub fn advance(&mut self, dt: f64, run: &Run) {
        let x = self.phase + dt / run.period_true_ns;
        let n = x.floor();
        self.phase = x - n;
        self.units = (self.units + n as u128 * run.increment) % run.format.modulus();
    }

    /// True ns from now until the tick that takes the counter at least `need` units on.
    pub fn time_until(&self, need: u128, run: &Run) -> Option<f64> {
        (run.increment > 0).then(|| (need.div_ceil(run.increment) as f64 - self.phase) * run.period_true_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_each_format() {
        let f = Format::Ns40;
        let units = ((0xAB_1234_5678u128) << 32) | 0x9000_0000;
        assert_eq!(f.words(units), (0x9000_0000, 0x1234_5678, 0xAB));
        assert_eq!(
            f.from_words(0x1234_5678, 0xFFFF_FFAB),
            0xAB_1234_5678u128 << 32,
            "SYSTIMH[31:8] reserved"
        );
        let s = Format::SecondsNs;
        let units = (5 * NS_PER_S + 999_999_999) << 32;
        assert_eq!(s.words(units), (0, 999_999_999, 5));
        assert_eq!(s.raw(units), (5 << 32) | 999_999_999);
    }

    #[test]
    fn isgn_subtracts() {
        assert_eq!(Format::Ns40.increment(0), 8 << 32);
        assert_eq!(Format::Ns40.increment(5), (8 << 32) + 5);
        assert_eq!(Format::SecondsNs.increment(0x8000_0005), (8 << 32) - 5);
    }

    #[test]
    fn target_distance_wraps_for_40_bits() {
        let f = Format::Ns40;
        let units = (NS40_WRAP - 10) << 32;
        assert_eq!(f.units_until(units, 5), Some(15 << 32), "across the 2^40 wrap");
        assert_eq!(Format::SecondsNs.units_until(100 << 32, 50), None, "i210: the past never comes");
    }
}
