//! A simulated Intel NIC PTP clock behind the register seam of a mapped BAR, one per family
//! (82574, 82576, 82580/i350/i354, i210/i211), faithful to the silicon; tests can ask it the truth.
//!
//! An oscillator with frequency error, random-walk wander and steps, PCIe read latency and jitter;
//! each family's SYSTIM format, latch order, wrap and reset values (one file each); the time-sync
//! pins with a simulated GPS PPS input (pins.rs); the 82574 erratum as a seeded fault (faults.rs);
//! QEMU's measured behaviour (qemu.rs); surprise removal. The PTP datapath's side: queue 0's
//! descriptors in host memory by DMA with packet stamps (datapath.rs, dma.rs), the PHY behind
//! MDIC (phy.rs), interrupt causes (irq.rs), and a link between NICs (link.rs). Deterministic from
//! a seed; runs on virtual time (tests) or real time (the daemon).
//!
//! Reset values: SYSTIM 0, TIMINCA 0 (82576/82574: the counter adds nothing until the driver
//! writes TIMINCA; 82580 and later: exactly 8 ns per 8 ns tick), TSAUXC 0 (counting; bit 31 would
//! stop it — set at reset with [`SimConfig::systim_disabled_at_reset`]), TSSDP 0, TSIM 0, TSICR 0,
//! all SDPs inputs.

mod counter;
mod datapath;
mod dma;
mod faults;
mod fractional;
mod i210;
mod irq;
pub mod link;
mod ns40;
mod phy;
mod pins;
mod qemu;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nicclock_uio::access::{check_offset, RegisterAccess};
use nicclock_uio::Presence;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::regs;
use crate::timesource::TimeSource;

pub use counter::{Format, NS40_WRAP, NS_PER_S};
pub use datapath::{
    DatapathStats, FrameSink, RxDelivered, RxDrop, I210_STAMP_LATENCY_NS, RXSATRH, RXSATRL, TSYNC_VALID,
};
pub use dma::HostMemory;
pub use irq::{IrqHook, ICR, ICS, IMC, IMS, INT_ASSERTED, LSC, RXDMT0, RXDW, TIME_SYNC, TXDW};
pub use link::{Arrival, LinkConfig, LinkStats, Side, SimLink};
pub use phy::{MDIC, STATUS_LU};
pub use pins::{Edge, PpsInput};

/// Which silicon the simulator imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimModel {
    /// 82574 (e1000e): SYSTIM in 2^-18 ns, one increment period = 40 ns (25 MHz); SYSTIM erratum.
    I82574,
    /// 82576: SYSTIM in 2^-19 ns, one increment period = 16 ns.
    I82576,
    /// 82580: 40-bit ns SYSTIM, SYSTIMR first; TSICR needs a write to clear (its erratum).
    I82580,
    /// i350: as the 82580 (TSICR clears on read).
    I350,
    /// i354 (Atom C2000, 1 Gb/s SKU): as the i350.
    I354,
    /// i210: SYSTIMH seconds, SYSTIML ns, SYSTIMR first; FREQOUT clocks.
    I210,
    /// i211: as the i210.
    I211,
}

impl SimModel {
    /// Every model, in the order `model=` lists them.
    pub const ALL: [SimModel; 7] =
        [Self::I82574, Self::I82576, Self::I82580, Self::I350, Self::I354, Self::I210, Self::I211];

    /// The PCI device id the simulated NIC shows (igb-family.md §7; the first of each model).
    pub fn device_id(self) -> u16 {
        match self {
            Self::I82574 => 0x10D3,
            Self::I82576 => 0x10C9,
            Self::I82580 => 0x150E,
            Self::I350 => 0x1521,
            Self::I354 => 0x1F41,
            Self::I210 => 0x1533,
            Self::I211 => 0x1539,
        }
    }

    /// The name `model=` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::I82574 => "82574",
            Self::I82576 => "82576",
            Self::I82580 => "82580",
            Self::I350 => "i350",
            Self::I354 => "i354",
            Self::I210 => "i210",
            Self::I211 => "i211",
        }
    }

    /// The model called `name` (as `model=` takes it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// How its SYSTIM counts.
    pub fn format(self) -> Format {
        match self {
            Self::I82574 => Format::Fractional { shift: 18, tick_ns: 40 },
            Self::I82576 => Format::Fractional { shift: 19, tick_ns: 16 },
            Self::I82580 | Self::I350 | Self::I354 => Format::Ns40,
            Self::I210 | Self::I211 => Format::SecondsNs,
        }
    }

    /// Whether it has the time-sync pins (TSAUXC, target times, aux stamps, TSSDP).
    pub fn has_pins(self) -> bool {
        !matches!(self.format(), Format::Fractional { .. })
    }

    /// Whether it has the FREQOUT clock outputs (i210/i211).
    pub fn has_freqout(self) -> bool {
        self.format() == Format::SecondsNs
    }

    /// Whether QEMU emulates it (`qemu=1` is only for these).
    pub fn in_qemu(self) -> bool {
        matches!(self, Self::I82574 | Self::I82576)
    }

    /// SYSTIM's resolution as a reader sees it: ns per increment period at the nominal rate.
    pub fn resolution_ns(self) -> u32 {
        match self.format() {
            Format::Fractional { tick_ns, .. } => tick_ns,
            Format::Ns40 | Format::SecondsNs => 8,
        }
    }

    /// How long the counter takes to wrap at the nominal rate, s.
    pub fn wrap_s(self) -> f64 {
        match self.format() {
            Format::Fractional { shift, .. } => 2f64.powi(64 - shift as i32) / 1e9,
            Format::Ns40 => NS40_WRAP as f64 / 1e9,
            Format::SecondsNs => 2f64.powi(32),
        }
    }
}

impl std::fmt::Display for SimModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
    /// 82574 erratum: the fraction of SYSTIML reads whose SYSTIML/SYSTIMH come back with bad bits
    /// or halves from different instants (seeded; 0 = never).
    pub bad_read_fraction: f64,
    /// A PPS signal on an SDP (82580 and later).
    pub pps_in: Option<PpsInput>,
    /// 82580 and later: TSAUXC comes out of reset with bit 31 set, so SYSTIM stands still until
    /// the driver clears it (as Linux's and DPDK's resets do). The sources do not say which reset
    /// value silicon has: off by default, on to check a driver starts the clock itself.
    pub systim_disabled_at_reset: bool,
    /// The link is up from reset (a port firmware or a kernel driver left up); false: STATUS.LU
    /// only after the driver restarts autonegotiation through MDIC (QEMU's igb; the datapath's
    /// scenarios start so).
    pub link_up_at_reset: bool,
    /// A link partner is there (cable plugged): without one autonegotiation never completes.
    pub link_partner: bool,
    /// Autonegotiation takes this long from the BMCR restart, ns (QEMU: a 500 ms timer).
    pub autoneg_ns: u64,
    /// Standard deviation of every packet timestamp's error (RX and TX), ns.
    pub stamp_jitter_ns: f64,
    /// Fault: the fraction of TX frames asking for a stamp that get none (seeded; 0 = never).
    pub tx_stamp_loss: f64,
    /// A simulated grandmaster on the wire in real time (`--device sim:ptp-master=N`, started by
    /// `device::open`; the NIC itself ignores it).
    pub ptp_master: Option<crate::ptp::live_master::LiveMasterSpec>,
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
            bad_read_fraction: 0.0,
            pps_in: None,
            systim_disabled_at_reset: false,
            link_up_at_reset: true,
            link_partner: true,
            autoneg_ns: 500_000_000,
            stamp_jitter_ns: 0.0,
            tx_stamp_loss: 0.0,
            ptp_master: None,
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
    /// What SYSTIM reads at that instant, converted to ns (i210: seconds · 1e9 + ns), wrapping
    /// as the register does.
    pub nic_ns: u128,
    /// SYSTIMH:SYSTIML at that instant as one word (82576/82574: units; 82580: 40-bit ns;
    /// i210: seconds << 32 | ns).
    pub raw: u64,
    /// Oscillator frequency error now, ppb.
    pub freq_error_ppb: f64,
}

struct State {
    last_t: u64,
    /// SYSTIM in the family's units (real-silicon mode).
    counter: counter::Counter,
    /// The oscillator's own idea of elapsed time (true time with its frequency error), ns.
    osc_ns: f64,
    freq_error: f64,
    next_step: usize,
    timinca: u32,
    /// (SYSTIMR, SYSTIML, SYSTIMH) latched by the latching read.
    latched: (u32, u32, u32),
    pending_low: u32,
    timadj_low: u32,
    /// QEMU's accumulated adjustment (u64 two's complement, as QEMU keeps it).
    qemu_timadj: u64,
    regs: HashMap<usize, u32>,
    pins: pins::Pins,
    faults: faults::Faults,
    removed: bool,
    /// Memory decoding off: the BAR reads all ones while config space still answers.
    decoding_off: bool,
    rng: SmallRng,
    /// The PHY and link (MDIC, STATUS.LU).
    phy: phy::Phy,
    /// Queue 0, the wire and packet stamps.
    dp: datapath::Datapath,
    /// Interrupt causes (ICR/IMS) the datapath raises.
    irq: irq::Irq,
    /// Packet-stamp jitter and faults: their own generator, so other draws stay unchanged.
    stamp_rng: SmallRng,
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
        let now = time.now_ns();
        let mut regs = HashMap::from([
            (regs::STATUS, STATUS_LINK_UP),
            // A locally administered MAC, 52:54:00 like QEMU's, the rest from the seed.
            (regs::RAL0, u32::from_le_bytes([0x52, 0x54, 0x00, config.seed as u8])),
            (
                regs::RAH0,
                0x8000_0000
                    | u16::from_le_bytes([(config.seed >> 8) as u8, (config.seed >> 16) as u8]) as u32,
            ),
        ]);
        if config.systim_disabled_at_reset && config.model.has_pins() {
            regs.insert(regs::TSAUXC, pins::DISABLE);
        }
        let state = State {
            last_t: now,
            counter: counter::Counter::default(),
            osc_ns: 0.0,
            freq_error: config.freq_error_ppm * 1e-6,
            next_step: 0,
            timinca: 0,
            latched: (0, 0, 0),
            pending_low: 0,
            timadj_low: 0,
            qemu_timadj: 0,
            regs,
            pins: pins::Pins::new(now),
            faults: faults::Faults::new(config.seed),
            removed: false,
            decoding_off: false,
            rng: SmallRng::seed_from_u64(config.seed),
            phy: phy::Phy::new(config.link_up_at_reset),
            dp: datapath::Datapath::new(),
            irq: irq::Irq::default(),
            stamp_rng: SmallRng::seed_from_u64(config.seed ^ 0x5354_414D_5053_0000),
        };
        Self { config, time, state: Mutex::new(state) }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    fn format(&self) -> Format {
        self.config.model.format()
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
            nic_ns: self.format().ns(units),
            raw: self.format().raw(units),
            freq_error_ppb: s.freq_error * 1e9,
        }
    }

    /// The edges seen on SDP `pin` up to now, with their true times: driven by the NIC (target
    /// time, FREQOUT, software) or injected (the PPS input). The latest 65536 are kept.
    pub fn sdp_edges(&self, pin: u8) -> Vec<Edge> {
        let t = self.time.now_ns();
        let mut s = self.lock();
        self.advance(&mut s, t);
        s.pins.edges(pin)
    }

    /// The true time of the PPS input's rising edge for second `second` (None: no PPS input, or
    /// that pulse is missing).
    pub fn pps_in_edge_ns(&self, second: u64) -> Option<f64> {
        pins::input_edge(&self.config, second, true)
    }

    /// Aux-timestamp events lost on channel `chan` because the previous one was not read yet.
    pub fn aux_events_lost(&self, chan: usize) -> u64 {
        self.lock().pins.aux_lost[chan]
    }

    /// Lets the device reach `mem` by DMA at its bus addresses (the rings' memory).
    pub fn attach_memory(&self, mem: HostMemory) {
        self.lock().dp.attach_memory(mem);
    }

    /// Plugs the NIC into a wire: transmitted frames go to `wire` at the instant they leave.
    pub fn attach_wire(&self, wire: Arc<dyn FrameSink>) {
        self.lock().dp.attach_wire(wire);
    }

    /// A frame (no FCS) arrives from the wire now: written into the RX ring, stamped as the
    /// family does, or dropped and counted (see the datapath's module docs).
    pub fn deliver(&self, frame: &[u8]) -> Result<RxDelivered, RxDrop> {
        let mut s = self.lock();
        if s.removed || s.decoding_off {
            return Err(RxDrop::LinkDown);
        }
        datapath::deliver(self, &mut s, frame)
    }

    /// Hooks the NIC's interrupt (single vector): `hook` runs each time an unmasked cause rises
    /// (under the NIC's lock: signal something, do not touch the NIC).
    pub fn attach_irq(&self, hook: IrqHook) {
        self.lock().irq.attach(hook);
    }

    /// Interrupts signalled so far (an unmasked cause rose).
    pub fn interrupts(&self) -> u64 {
        self.lock().irq.raised
    }

    /// What the datapath has done so far (frames, stamps, drops by reason).
    pub fn datapath_stats(&self) -> DatapathStats {
        self.lock().dp.stats
    }

    /// Whether the link is up now (STATUS.LU).
    pub fn link_is_up(&self) -> bool {
        let t = self.time.now_ns();
        let mut s = self.lock();
        datapath::sync(self, &mut s, t);
        s.phy.link_up()
    }

    /// How many SYSTIM reads the 82574 erratum fault has corrupted so far.
    pub fn bad_reads(&self) -> u64 {
        self.lock().faults.injected
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Faults scheduled in the configuration happen on the first access at or after their time.
        let due = |at: Option<u64>| at.is_some_and(|at| self.time.now_ns() >= at);
        s.removed |= due(self.config.remove_at_ns);
        s.decoding_off |= due(self.config.decoding_off_at_ns);
        s
    }

    /// How the counter runs now (rate, increment; stopped by TSAUXC bit 31 on 82580 and later).
    fn run(&self, s: &State) -> counter::Run {
        let format = self.format();
        let stopped =
            self.config.model.has_pins() && s.regs.get(&regs::TSAUXC).is_some_and(|v| v & pins::DISABLE != 0);
        counter::Run {
            format,
            period_true_ns: format.period_ns(s.timinca) / (1.0 + s.freq_error),
            increment: if stopped { 0 } else { format.increment(s.timinca) },
        }
    }

    /// Runs the oscillator and the pins up to true time `t`, and the wander/steps.
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
            let run = self.run(s);
            if self.config.model.has_pins() {
                pins::run_events(self, s, t, &run);
            }
            let before = s.counter.units;
            s.counter.advance(dt, &run);
            if self.config.model.has_pins() {
                pins::note_wrap(s, self.format(), before);
            }
        }
        if self.config.wander_ppb_per_sqrt_s > 0.0 {
            // Random walk: N(0, σ²·dt), by Box–Muller from the seeded generator.
            let (u1, u2): (f64, f64) = (s.rng.random::<f64>().max(1e-300), s.rng.random());
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            s.freq_error += normal * self.config.wander_ppb_per_sqrt_s * 1e-9 * (dt / 1e9).sqrt();
        }
        s.last_t = t;
    }

    /// SYSTIM in units (state already advanced to the instant of interest).
    fn systim_units(&self, s: &State) -> u128 {
        if self.config.qemu {
            qemu::systim_units(s) as u128
        } else {
            s.counter.units
        }
    }

    /// A register read on the bus: takes `latency + j` (j uniform in [0, jitter]); the counter is
    /// sampled within ±jitter/2 of the read's midpoint, so a reader bracketing the read with its
    /// own clock measures it to ±jitter/2. Advances the simulation to the sampling instant.
    fn bus_read(&self, s: &mut State) {
        let t0 = self.time.now_ns();
        let jitter = self.config.read_jitter_ns;
        let j = if jitter > 0 { s.rng.random_range(0..=jitter) } else { 0 };
        let duration = self.config.read_latency_ns + j;
        let skew = if jitter > 0 { s.rng.random_range(0..=jitter) as i64 - (jitter / 2) as i64 } else { 0 };
        let sample = (t0 + duration / 2).saturating_add_signed(skew).clamp(t0, t0 + duration);
        self.time.wait_until(t0 + duration);
        self.advance(s, sample);
    }
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
        if let Some(value) = datapath::read(self, &mut s, offset) {
            return value;
        }
        let family = if self.config.qemu {
            qemu::read(self, &mut s, offset)
        } else {
            match self.format() {
                Format::Fractional { .. } => fractional::read(self, &mut s, offset),
                Format::Ns40 => ns40::read(self, &mut s, offset),
                Format::SecondsNs => i210::read(self, &mut s, offset),
            }
        };
        if let Some(value) = family {
            return value;
        }
        if self.config.model.has_pins() {
            let t = self.time.now_ns();
            self.advance(&mut s, t);
            if let Some(value) = pins::read(self, &mut s, offset) {
                return value;
            }
        }
        match offset {
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
        if datapath::write(self, &mut s, offset, value) {
            return;
        }
        let handled = if self.config.qemu {
            qemu::write(&mut s, offset, value)
        } else {
            match self.format() {
                Format::Fractional { .. } => fractional::write(&mut s, offset, value),
                Format::Ns40 => ns40::write(self, &mut s, offset, value),
                Format::SecondsNs => i210::write(self, &mut s, offset, value),
            }
        };
        if handled {
            return;
        }
        if self.config.model.has_pins() && pins::write(self, &mut s, offset, value) {
            return;
        }
        match offset {
            // Real silicon: the new rate applies from now on; SYSTIM is continuous.
            regs::TIMINCA => s.timinca = value,
            _ => {
                s.regs.insert(offset, value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
