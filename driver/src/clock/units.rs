//! Typed time on the clock path: raw counter readings, counter ticks, nanoseconds and rates, so
//! that a 2^-19 ns unit is never taken for a nanosecond nor a ppb for a ppt again.

use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// A SYSTIM reading as the family's registers hold it: `(SYSTIMH << 32) | SYSTIML` (82580/i350:
/// SYSTIMH bits 7:0 only; i210: seconds in the high word, nanoseconds in the low one). Not a
/// linear count in general: only the family's ops compare or convert it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawTime(pub u64);

impl RawTime {
    /// From the low and high registers (SYSTIML/H, AUXSTMPL/H, TRGTTIML/H, ...).
    pub const fn from_regs(lo: u32, hi: u32) -> Self {
        Self(((hi as u64) << 32) | lo as u64)
    }
    pub const fn lo(self) -> u32 {
        self.0 as u32
    }
    pub const fn hi(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Display for RawTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}:{:08x}", self.hi(), self.lo())
    }
}

/// A signed number of counter ticks (the family's SYSTIM LSB: 2^-19 ns, 2^-18 ns or 1 ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Ticks(pub i64);

/// Nanoseconds, signed: an instant (TAI or the clock's own scale) or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub i128);

impl Nanos {
    pub const ZERO: Self = Self(0);

    /// As i64 ns, saturating (offsets and steps; ±292 years).
    pub fn as_i64(self) -> i64 {
        self.0.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

impl From<i64> for Nanos {
    fn from(ns: i64) -> Self {
        Self(ns as i128)
    }
}

impl Add for Nanos {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self(self.0 + rhs.0)
    }
}

impl AddAssign for Nanos {
    fn add_assign(&mut self, rhs: Self) {
        self.0 += rhs.0;
    }
}

impl Sub for Nanos {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self(self.0 - rhs.0)
    }
}

impl SubAssign for Nanos {
    fn sub_assign(&mut self, rhs: Self) {
        self.0 -= rhs.0;
    }
}

impl Neg for Nanos {
    type Output = Self;
    fn neg(self) -> Self {
        Self(-self.0)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ns", self.0)
    }
}

/// A relative frequency in parts per billion (positive: faster), as the servo computes it.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Ppb(pub f64);

impl Ppb {
    /// In parts per trillion, rounded (the page's unit, and the register arithmetic's input).
    pub fn to_ppt(self) -> Ppt {
        Ppt((self.0 * 1000.0).round().clamp(i64::MIN as f64, i64::MAX as f64) as i64)
    }
}

impl Neg for Ppb {
    type Output = Self;
    fn neg(self) -> Self {
        Self(-self.0)
    }
}

impl fmt::Display for Ppb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ppb", self.0)
    }
}

/// A relative frequency in parts per trillion (the page's `servo_freq_ppt`; integral, so the
/// TIMINCA arithmetic is exact for whole ppb as in Linux's formulas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Ppt(pub i64);

impl Ppt {
    pub fn to_ppb(self) -> Ppb {
        Ppb(self.0 as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_time_splits_into_its_registers() {
        let r = RawTime::from_regs(0x89AB_CDEF, 0x0123_4567);
        assert_eq!(r, RawTime(0x0123_4567_89AB_CDEF));
        assert_eq!((r.lo(), r.hi()), (0x89AB_CDEF, 0x0123_4567));
    }

    #[test]
    fn rates_convert_between_ppb_and_ppt() {
        assert_eq!(Ppb(-1.2345).to_ppt(), Ppt(-1235));
        assert_eq!(Ppt(62_499_999_000).to_ppb(), Ppb(62_499_999.0));
    }
}
