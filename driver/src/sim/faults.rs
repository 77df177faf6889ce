//! Seeded faults of real silicon: the 82574/82583 SYSTIM erratum (bad bits, halves of two
//! instants) that a driver must catch by re-reading (igb-family.md §2.4, §6 item 8).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Fault state: its own generator, so a fault rate of 0 leaves every other draw unchanged.
pub(super) struct Faults {
    rng: SmallRng,
    /// Reads corrupted so far.
    pub injected: u64,
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Self { rng: SmallRng::seed_from_u64(seed ^ 0x8257_4E44_A7A0_0000), injected: 0 }
    }
}

/// With probability `fraction`, spoils one SYSTIML/SYSTIMH pair as the 82574 erratum can: a bad
/// bit in SYSTIML (bits 16–31) or SYSTIMH (bits 0–15), or SYSTIMH from one count before or after
/// (the halves of two instants). Each spoils the reading by far more than read noise, and none is
/// a multiple of the 82574's increment, so Linux's sanitize check (delta a multiple of INCVALUE,
/// below 2^35 units) rejects them all.
pub(super) fn corrupt_82574(f: &mut Faults, fraction: f64, lo: &mut u32, hi: &mut u32) {
    if fraction <= 0.0 || f.rng.random::<f64>() >= fraction {
        return;
    }
    f.injected += 1;
    match f.rng.random_range(0..3u32) {
        0 => *lo ^= 1 << f.rng.random_range(16..32u32),
        1 => *hi ^= 1 << f.rng.random_range(0..16u32),
        _ => *hi = if f.rng.random::<bool>() { hi.wrapping_add(1) } else { hi.wrapping_sub(1) },
    }
}
