//! A simulated 82576/82574 PTP clock behind the same register seam as a mapped BAR: an oscillator
//! with frequency error, random-walk wander and steps, PCIe read latency and jitter, real-silicon
//! register semantics (continuous rate changes, SYSTIML latching SYSTIMH, TIMADJ), an optional
//! QEMU mode reproducing its measured discontinuities, and surprise removal. Deterministic from a
//! seed; runs on virtual time (tests) or real time (the daemon); tests can ask it for the truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nicclock_uio::access::{check_offset, RegisterAccess};
use nicclock_uio::Presence;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::regs::{self, TIMINCA_PERIOD_SHIFT, TIMINCA_VALUE_MASK};
use crate::timesource::TimeSource;

/// Which silicon the simulator imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimModel {
    /// 82576: SYSTIM in 2^-19 ns, one increment period = 16 ns.
    I82576,
    /// 82574: SYSTIM in 2^-18 ns, one increment period = 40 ns (25 MHz).
    I82574,
}

impl SimModel {
    pub fn device_id(self) -> u16 {
        match self {
            Self::I82576 => 0x10C9,
            Self::I82574 => 0x10D3,
        }
    }

    fn shift(self) -> u32 {
        match self {
            Self::I82576 => 19,
            Self::I82574 => 18,
        }
    }

    /// Length of one INCPERIOD unit, ns (QEMU uses 16 for both).
    fn tick_ns(self, qemu: bool) -> u64 {
        match (self, qemu) {
            (_, true) | (Self::I82576, false) => 16,
            (Self::I82574, false) => 40,
        }
    }
}

/// The simulated world.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub model: SimModel,
    /// Oscillator frequency error, ppm (positive: fast).
    pub freq_error_ppm: f64,
    /// Random-walk frequency wander, ppb per √s.
    pub wander_ppb_per_sqrt_s: f64,
    /// Time a register read takes on the bus, ns.
    pub read_latency_ns: u64,
    /// Extra random read time, uniform in [0, jitter], ns. The counter is sampled at a uniformly
    /// random point of the read.
    pub read_jitter_ns: u64,
    /// Reproduce QEMU's emulation (discontinuous TIMINCA, ignored SYSTIM writes, 16 ns ticks).
    pub qemu: bool,
    /// Frequency steps: at true time (ns), the oscillator error becomes (ppm).
    pub freq_steps: Vec<(u64, f64)>,
    pub seed: u64,
    /// Surprise removal at this true time, ns (see [`SimNic::remove`]).
    pub remove_at_ns: Option<u64>,
    /// Memory decoding turned off at this true time, ns (see [`SimNic::disable_decoding`]).
    pub decoding_off_at_ns: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            model: SimModel::I82576,
            freq_error_ppm: 100.0,
            wander_ppb_per_sqrt_s: 1.0,
            read_latency_ns: 500,
            read_jitter_ns: 50,
            qemu: false,
            freq_steps: vec![],
            seed: 1,
            remove_at_ns: None,
            decoding_off_at_ns: None,
        }
    }
}

impl SimConfig {
    /// A perfect oscillator with instant reads: for tests of exact register arithmetic.
    pub fn ideal() -> Self {
        Self {
            freq_error_ppm: 0.0,
            wander_ppb_per_sqrt_s: 0.0,
            read_latency_ns: 0,
            read_jitter_ns: 0,
            ..Self::default()
        }
    }
}

/// What the simulator knows and the driver cannot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    /// True time, ns since the simulation started.
    pub true_ns: u64,
    /// What SYSTIM reads at that instant, converted to ns.
    pub nic_ns: u128,
    /// The raw SYSTIM at that instant (units).
    pub raw: u64,
    /// Oscillator frequency error now, ppb.
    pub freq_error_ppb: f64,
}

struct State {
    last_t: u64,
    /// SYSTIM in units (real-silicon mode integrates; QEMU mode derives it from `osc_ns`).
    units: u128,
    /// The oscillator's own idea of elapsed time (true time with its frequency error), ns.
    osc_ns: f64,
    frac: f64,
    freq_error: f64,
    next_step: usize,
    timinca: u32,
    latched_high: u32,
    pending_low: u32,
    timadj_low: u32,
    /// QEMU's accumulated adjustment (u64 two's complement, as QEMU keeps it).
    qemu_timadj: u64,
    regs: HashMap<usize, u32>,
    removed: bool,
    /// Memory decoding off: the BAR reads all ones while config space still answers.
    decoding_off: bool,
    rng: SmallRng,
}

/// The simulated NIC.
pub struct SimNic {
    config: SimConfig,
    time: Arc<dyn TimeSource>,
    state: Mutex<State>,
}

/// BAR0 size of an 82576/82574.
pub const BAR_LEN: usize = 0x20000;
/// STATUS of a NIC with link up (full duplex, 1 Gb/s).
const STATUS_LINK_UP: u32 = 0x0008_0783;

impl SimNic {
    pub fn new(config: SimConfig, time: Arc<dyn TimeSource>) -> Self {
        let state = State {
            last_t: time.now_ns(),
            units: 0,
            osc_ns: 0.0,
            frac: 0.0,
            freq_error: config.freq_error_ppm * 1e-6,
            next_step: 0,
            timinca: 0,
            latched_high: 0,
            pending_low: 0,
            timadj_low: 0,
            qemu_timadj: 0,
            regs: HashMap::from([
                (regs::STATUS, STATUS_LINK_UP),
                // A locally administered MAC, 52:54:00 like QEMU's, the rest from the seed.
                (regs::RAL0, u32::from_le_bytes([0x52, 0x54, 0x00, config.seed as u8])),
                (
                    regs::RAH0,
                    0x8000_0000
                        | u16::from_le_bytes([(config.seed >> 8) as u8, (config.seed >> 16) as u8]) as u32,
                ),
            ]),
            removed: false,
            decoding_off: false,
            rng: SmallRng::seed_from_u64(config.seed),
        };
        Self { config, time, state: Mutex::new(state) }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Surprise removal: from now on every read returns all ones (0 in QEMU mode, as QEMU does),
    /// writes vanish and config space no longer answers.
    pub fn remove(&self) {
        self.lock().removed = true;
    }

    /// Memory decoding turned off (someone cleared the command register's memory bit): the BAR
    /// reads all ones, but the device is still there in config space.
    pub fn disable_decoding(&self) {
        self.lock().decoding_off = true;
    }

    /// The true state now (advances the simulation to the present).
    pub fn truth(&self) -> Truth {
        let t = self.time.now_ns();
        let mut s = self.lock();
        self.advance(&mut s, t);
        let units = self.systim_units(&s);
        Truth {
            true_ns: t,
            nic_ns: units >> self.config.model.shift(),
            raw: units as u64,
            freq_error_ppb: s.freq_error * 1e9,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Faults scheduled in the configuration happen on the first access at or after their time.
        let due = |at: Option<u64>| at.is_some_and(|at| self.time.now_ns() >= at);
        s.removed |= due(self.config.remove_at_ns);
        s.decoding_off |= due(self.config.decoding_off_at_ns);
        s
    }

    /// Integrates the oscillator up to true time `t` (real-silicon mode) and the wander/steps.
    fn advance(&self, s: &mut State, t: u64) {
        if t <= s.last_t {
            return;
        }
        let dt = (t - s.last_t) as f64;
        // Frequency steps that fall inside the interval take effect at its end (≤ one read late).
        while let Some(&(at, ppm)) = self.config.freq_steps.get(s.next_step) {
            if at > t {
                break;
            }
            s.freq_error = ppm * 1e-6;
            s.next_step += 1;
        }
        s.osc_ns += dt * (1.0 + s.freq_error);
        if !self.config.qemu {
            let rate = self.units_per_ns(s.timinca);
            let add = dt * (1.0 + s.freq_error) * rate + s.frac;
            let whole = add.floor();
            s.frac = add - whole;
            s.units = s.units.wrapping_add(whole as u128);
        }
        if self.config.wander_ppb_per_sqrt_s > 0.0 {
            // Random walk: N(0, σ²·dt), by Box–Muller from the seeded generator.
            let (u1, u2): (f64, f64) = (s.rng.random::<f64>().max(1e-300), s.rng.random());
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            s.freq_error += normal * self.config.wander_ppb_per_sqrt_s * 1e-9 * (dt / 1e9).sqrt();
        }
        s.last_t = t;
    }

    /// SYSTIM units per true ns at TIMINCA `timinca` (without the oscillator error).
    fn units_per_ns(&self, timinca: u32) -> f64 {
        let period = (timinca >> TIMINCA_PERIOD_SHIFT).max(1) as f64;
        let value = (timinca & TIMINCA_VALUE_MASK) as f64;
        value / (period * self.config.model.tick_ns(self.config.qemu) as f64)
    }

    /// SYSTIM in units (state already advanced to the instant of interest).
    fn systim_units(&self, s: &State) -> u128 {
        if self.config.qemu {
            // QEMU: timadj + virtual_ns · INCVALUE / (16 · INCPERIOD), all in u64.
            let vns = s.osc_ns as u64;
            s.qemu_timadj.wrapping_add(qemu_muldiv(vns, s.timinca)) as u128
        } else {
            s.units & u64::MAX as u128
        }
    }

    /// A register read on the bus: takes `latency + j` (j uniform in [0, jitter]); the counter is
    /// sampled within ±jitter/2 of the read's midpoint, so a reader bracketing the read with its
    /// own clock measures it to ±jitter/2.
    fn bus_read(&self, s: &mut State) -> u64 {
        let t0 = self.time.now_ns();
        let jitter = self.config.read_jitter_ns;
        let j = if jitter > 0 { s.rng.random_range(0..=jitter) } else { 0 };
        let duration = self.config.read_latency_ns + j;
        let skew = if jitter > 0 { s.rng.random_range(0..=jitter) as i64 - (jitter / 2) as i64 } else { 0 };
        let sample = (t0 + duration / 2).saturating_add_signed(skew).clamp(t0, t0 + duration);
        self.time.wait_until(t0 + duration);
        sample
    }
}

/// QEMU's `muldiv64(ns, INCVALUE, INCPERIOD · 16)`.
fn qemu_muldiv(ns: u64, timinca: u32) -> u64 {
    let period = (timinca >> TIMINCA_PERIOD_SHIFT).max(1) as u128;
    let value = (timinca & TIMINCA_VALUE_MASK) as u128;
    (ns as u128 * value / (period * 16)) as u64
}

impl RegisterAccess for SimNic {
    fn len(&self) -> usize {
        BAR_LEN
    }

    fn presence(&self) -> Option<Presence> {
        Some(if self.lock().removed { Presence::Gone } else { Presence::Present })
    }

    fn read32(&self, offset: usize) -> u32 {
        check_offset(offset, BAR_LEN);
        let mut s = self.lock();
        if s.removed && self.config.qemu {
            // Measured: QEMU answers reads of a removed device behind a root port with 0.
            return 0;
        }
        if s.removed || s.decoding_off {
            return u32::MAX;
        }
        match offset {
            regs::SYSTIML => {
                let t = self.bus_read(&mut s);
                self.advance(&mut s, t);
                let units = self.systim_units(&s) as u64;
                s.latched_high = (units >> 32) as u32;
                units as u32
            }
            regs::SYSTIMH => s.latched_high,
            regs::TIMINCA => s.timinca,
            _ => s.regs.get(&offset).copied().unwrap_or(0),
        }
    }

    fn write32(&self, offset: usize, value: u32) {
        check_offset(offset, BAR_LEN);
        let t = self.time.now_ns();
        let mut s = self.lock();
        if s.removed || s.decoding_off {
            return;
        }
        self.advance(&mut s, t);
        match offset {
            regs::TIMINCA if self.config.qemu => {
                // QEMU adds new − old (the continuity fix has its sign reversed), wrapping.
                let vns = s.osc_ns as u64;
                let delta = qemu_muldiv(vns * 16, value).wrapping_sub(qemu_muldiv(vns * 16, s.timinca)) / 16;
                s.qemu_timadj = s.qemu_timadj.wrapping_add(delta);
                s.timinca = value;
            }
            // Real silicon: the new rate applies from now on; SYSTIM is continuous.
            regs::TIMINCA => s.timinca = value,
            regs::SYSTIML if !self.config.qemu => s.pending_low = value,
            regs::SYSTIMH if !self.config.qemu => {
                s.units = ((value as u128) << 32) | s.pending_low as u128;
                s.frac = 0.0;
            }
            regs::SYSTIML | regs::SYSTIMH => {} // QEMU ignores SYSTIM writes
            regs::TIMADJL => s.timadj_low = value,
            regs::TIMADJH if self.config.qemu => {
                let adj = ((value as u64) << 32) | s.timadj_low as u64;
                s.qemu_timadj = s.qemu_timadj.wrapping_add(adj);
            }
            regs::TIMADJH => {
                // 82576 datasheet: sign in bit 31 of TIMADJH, magnitude below (not used by Linux).
                let magnitude = (((value & 0x7FFF_FFFF) as u128) << 32) | s.timadj_low as u128;
                s.units = if value & 0x8000_0000 != 0 {
                    s.units.wrapping_sub(magnitude)
                } else {
                    s.units.wrapping_add(magnitude)
                };
            }
            _ => {
                s.regs.insert(offset, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
