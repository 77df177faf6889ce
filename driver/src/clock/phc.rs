//! The disciplined NIC clock over the register seam, family-agnostic: reads through the family's
//! ops (latch order, bracket, the 82574's re-reads), a timecounter that extends and converts them
//! to ns, rate steering (TIMINCA with the sub-LSB remainder carried, or in the timecounter) and
//! phase steps (TIMADJ, read-add-write or the timecounter), each verified by reading around it.

use std::cell::Cell;
use std::sync::Arc;

use nicclock_uio::{Presence, RegisterAccess};

use super::units::{Nanos, Ppb, RawTime, Ticks};
use super::{ops, ClockOps, DeviceLost, Edge, Latch, Steering, StepMethod, Timecounter};
use crate::model::{Family, FamilySpec, Model, Pins, Quirks};
use crate::regs;
use crate::timesource::TimeSource;

/// A TIMINCA write moved the clock (QEMU's emulation does this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discontinuity {
    /// How far the clock jumped across the write, ns.
    pub jump_ns: i64,
}

/// A TIMADJ step that did not move the clock by what was asked (the register's encoding is not
/// what the model table says): the timecounter made up the difference and TIMADJ is not used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepMismatch {
    pub asked_ns: i64,
    pub moved_ns: i64,
}

/// What a clock can do, for `nicclockd probe`, the pins and the logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capabilities {
    pub family: Family,
    pub spec: &'static FamilySpec,
    /// How phase steps reach the clock now.
    pub step: StepMethod,
    /// The counter can be set directly (i210: SYSTIML then SYSTIMH).
    pub direct_set: bool,
    pub pins: Pins,
}

/// Jumps smaller than this across a TIMINCA write are read noise, not a discontinuity.
const DISCONTINUITY_NS: i64 = 10_000;
/// Largest interval a read-add-write step is taken to lose (beyond: a disturbed measurement).
const MAX_LOST_NS: i64 = 1_000_000;

/// One read of the clock against the host's monotonic time.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    host: u64,
    nic: Nanos,
    width: u64,
}

/// One NIC clock.
pub struct Phc<R> {
    regs: R,
    ops: Box<dyn ClockOps>,
    host: Arc<dyn TimeSource>,
    steering: Steering,
    /// Fractional rate not yet written (hardware steering): the next write adds it.
    rate_carry: Ppb,
    freq: Ppb,
    max_adj: Ppb,
    /// How phase steps reach the hardware now (hardware steering only; else the timecounter).
    step: StepMethod,
    /// Read-add-write: the interval the last one lost between its read and its write.
    lost: Ticks,
    /// The last raw SYSTIM read (a clock that stops advancing may have been removed).
    last_read: Cell<Option<RawTime>>,
    tc: Timecounter,
}

impl<R: RegisterAccess> Phc<R> {
    /// Starts the clock with its family's ops (chosen here, once): the nominal rate (QEMU: 16 ns
    /// ticks), counting enabled, and the timecounter. `host` is a monotonic clock used only to
    /// check register writes for discontinuities.
    pub fn init(
        regs: R,
        model: &Model,
        quirks: Quirks,
        steering: Steering,
        host: Arc<dyn TimeSource>,
    ) -> Result<Self, DeviceLost> {
        let ops = ops(model, quirks);
        ops.start(&regs);
        let step = match steering {
            Steering::Software => StepMethod::Timecounter,
            Steering::Hardware => ops.step_method(),
        };
        let mut phc = Self {
            regs,
            host,
            steering,
            rate_carry: Ppb(0.0),
            freq: Ppb(0.0),
            max_adj: Ppb(model.spec().max_adj_ppb),
            step,
            lost: Ticks(0),
            last_read: Cell::new(None),
            tc: Timecounter::new(&*ops, RawTime(0)),
            ops,
        };
        let raw = phc.read_raw()?;
        phc.tc = Timecounter::new(&*phc.ops, raw);
        Ok(phc)
    }

    pub fn steering(&self) -> Steering {
        self.steering
    }

    pub fn regs(&self) -> &R {
        &self.regs
    }

    /// The family's clock operations (raw register formats for stamps and target times).
    pub fn ops(&self) -> &dyn ClockOps {
        &*self.ops
    }

    pub fn capabilities(&self) -> Capabilities {
        let family = self.ops.family();
        Capabilities {
            family,
            spec: family.spec(),
            step: self.step,
            direct_set: family == Family::I210,
            pins: family.spec().pins,
        }
    }

    /// Current frequency correction (positive: faster).
    pub fn frequency(&self) -> Ppb {
        self.freq
    }

    /// Reads SYSTIM in the family's latch order, calling `stamp` right before and right after the
    /// latching read — the instant the NIC samples its counter — as PTP_SYS_OFFSET_EXTENDED does.
    /// (82574: the stamps around the re-read whose value is returned.)
    pub fn read_raw_bracketed<T>(
        &self,
        mut stamp: impl FnMut(Edge) -> T,
    ) -> Result<(T, RawTime, T), DeviceLost> {
        let (mut before, mut after) = (None, None);
        let (lo, hi) = match self.ops.latch() {
            Some(latch) => {
                let (b, lo, a, hi) = read_latched(latch, &self.regs, &mut stamp);
                (before, after) = (Some(b), Some(a));
                (lo, hi)
            }
            None => self.ops.read(&self.regs, &mut |edge| {
                let s = stamp(edge);
                match edge {
                    Edge::Before => before = Some(s),
                    Edge::After => after = Some(s),
                }
            }),
        };
        if lo == u32::MAX && hi == u32::MAX {
            let status = self.regs.read32(regs::STATUS);
            if status == u32::MAX {
                return Err(DeviceLost { last_read: status, config: self.regs.presence() });
            }
        }
        let raw = self.ops.raw_from_regs(lo, hi);
        // A running clock never reads the same twice. A removed device need not read all
        // ones either (QEMU answers 0 behind a root port): a frozen clock asks config space.
        if self.last_read.replace(Some(raw)) == Some(raw) && self.regs.presence() == Some(Presence::Gone) {
            return Err(DeviceLost { last_read: lo, config: Some(Presence::Gone) });
        }
        // Every family's read brackets its latching read; a stamp it missed is taken now (wider).
        let before = before.unwrap_or_else(|| stamp(Edge::Before));
        let after = after.unwrap_or_else(|| stamp(Edge::After));
        Ok((before, raw, after))
    }

    pub fn read_raw(&self) -> Result<RawTime, DeviceLost> {
        self.read_raw_bracketed(|_| ()).map(|(_, raw, _)| raw)
    }

    fn factor(&self) -> f64 {
        match self.steering {
            Steering::Hardware => 1.0,
            Steering::Software => 1.0 + self.freq.0 / 1e9,
        }
    }

    /// Disciplined time at raw reading `raw` (advances the timecounter; call with increasing raws).
    pub fn time_at(&mut self, raw: RawTime) -> Nanos {
        let factor = self.factor();
        self.tc.update(&*self.ops, raw, factor)
    }

    /// Disciplined time at a raw stamp (AUXSTMP, Tx/Rx stamp) taken within half the counter's
    /// wrap of the last reading, without advancing the timecounter.
    pub fn raw_to_ns(&self, raw: RawTime) -> Nanos {
        self.tc.at(&*self.ops, raw, self.factor())
    }

    /// Disciplined time at the timecounter's last reading (no register read): the time of a
    /// software rate change, which reads the clock to re-anchor.
    pub fn last_read_ns(&self) -> Nanos {
        self.raw_to_ns(self.tc.last())
    }

    /// The raw reading at which the disciplined time is `ns` (a target time to program).
    pub fn ns_to_raw(&self, ns: Nanos) -> RawTime {
        self.tc.raw_at(&*self.ops, ns, self.factor())
    }

    /// [`Self::raw_to_ns`] of a low/high stamp register pair (AUXSTMPLn/AUXSTMPHn).
    pub fn stamp_to_ns(&self, lo: u32, hi: u32) -> Nanos {
        self.raw_to_ns(self.ops.raw_from_regs(lo, hi))
    }

    /// The low/high register words (TRGTTIMLn/TRGTTIMHn) for disciplined time `ns`.
    pub fn target_regs(&self, ns: Nanos) -> (u32, u32) {
        self.ops.raw_to_regs(self.ns_to_raw(ns))
    }

    /// Disciplined time now.
    pub fn now(&mut self) -> Result<Nanos, DeviceLost> {
        let raw = self.read_raw()?;
        Ok(self.time_at(raw))
    }

    /// Sets the disciplined time to `ns` (a step by the difference, see [`Self::step`]).
    pub fn set(&mut self, ns: Nanos) -> Result<Option<StepMismatch>, DeviceLost> {
        let now = self.now()?;
        self.step(ns - now)
    }

    /// Steps the clock by `delta`: in hardware when hardware-steered on a family that can
    /// (TIMADJ on the 82576, read-add-write on the i210; checked by reading the clock on both
    /// sides, the timecounter making up any difference), else in the timecounter, as Linux does.
    pub fn step(&mut self, delta: Nanos) -> Result<Option<StepMismatch>, DeviceLost> {
        let ticks = delta.0.checked_shl(self.ops.tick_shift()).filter(|t| i64::try_from(*t).is_ok());
        let (StepMethod::Timadj(_) | StepMethod::ReadAddWrite, Some(ticks)) = (self.step, ticks) else {
            // Beyond the registers' range (a first step from 0 to TAI is ~2^60 ns), or no way.
            self.tc.shift(delta);
            return Ok(None);
        };
        let lost = self.lost;
        let (moved, uncertainty, wrote) =
            self.jump_across(|regs, ops| ops.write_step(regs, Ticks(ticks as i64), lost))?;
        // Whatever the hardware did, the disciplined time moves by delta (to the brackets' width).
        let delta_ns = delta.as_i64();
        self.tc.shift(Nanos::from(delta_ns - moved) + (delta - Nanos::from(delta_ns)));
        if !wrote {
            return Ok(None);
        }
        let missed = delta_ns - moved;
        match self.step {
            StepMethod::ReadAddWrite => {
                // What the write lost between its read and itself: added to the next step.
                let lost_ns = (self.lost.0 >> self.ops.tick_shift()) + missed;
                self.lost = Ticks(lost_ns.clamp(0, MAX_LOST_NS) << self.ops.tick_shift());
                Ok(None)
            }
            _ if missed.abs() > DISCONTINUITY_NS + uncertainty => {
                self.step = StepMethod::Timecounter;
                Ok(Some(StepMismatch { asked_ns: delta_ns, moved_ns: moved }))
            }
            _ => Ok(None),
        }
    }

    /// Whether phase steps currently reach the hardware.
    pub fn steps_in_hardware(&self) -> bool {
        self.step != StepMethod::Timecounter
    }

    /// The interval the last read-add-write step lost between its read and its write, ns.
    pub fn step_lost_ns(&self) -> i64 {
        self.lost.0 >> self.ops.tick_shift()
    }

    /// Sets the frequency correction (positive: faster), clamped to the model's range. Hardware
    /// steering writes TIMINCA (Linux's truncating formula per family; what a word cannot hold
    /// is carried into the next write) and checks the write did not move the clock.
    pub fn set_frequency(&mut self, ppb: Ppb) -> Result<Option<Discontinuity>, DeviceLost> {
        let ppb = Ppb(ppb.0.clamp(-self.max_adj.0, self.max_adj.0));
        if self.steering == Steering::Software {
            // Bring the timecounter up to now at the old rate before the new one applies.
            self.now()?;
            self.freq = ppb;
            return Ok(None);
        }
        let target = Ppb(ppb.0 + self.rate_carry.0);
        let word = self.ops.timinca(target.to_ppt());
        let lsb = self.ops.family().spec().rate_lsb_ppb.max(f64::EPSILON);
        self.rate_carry = Ppb((target.0 - self.ops.rate_of(word).0).clamp(-lsb, lsb));
        let (jump, uncertainty, _) = self.jump_across(|regs, _| {
            regs.write32(regs::TIMINCA, word);
            true
        })?;
        self.freq = ppb;
        Ok((jump.abs() > DISCONTINUITY_NS + uncertainty).then_some(Discontinuity { jump_ns: jump }))
    }

    /// (host ns at the read's midpoint, disciplined ns, host bracket width) of the tightest of
    /// three reads: a preempted read must not look like the clock jumping.
    fn stamped(&mut self) -> Result<Stamp, DeviceLost> {
        let host = self.host.clone();
        let mut best: Option<Stamp> = None;
        for _ in 0..3 {
            let (h0, raw, h1) = self.read_raw_bracketed(|_| host.now_ns())?;
            let nic = self.time_at(raw);
            let stamp = Stamp { host: h0 + (h1 - h0) / 2, nic, width: h1 - h0 };
            if best.is_none_or(|b| stamp.width < b.width) {
                best = Some(stamp);
            }
        }
        Ok(best.expect("three reads"))
    }

    /// How far the clock moved across `write`, beyond the time that passed, how uncertain that
    /// figure is (the two brackets' half-widths), and what `write` returned.
    fn jump_across(
        &mut self,
        write: impl FnOnce(&dyn RegisterAccess, &dyn ClockOps) -> bool,
    ) -> Result<(i64, i64, bool), DeviceLost> {
        let before = self.stamped()?;
        let wrote = write(&self.regs, &*self.ops);
        let after = self.stamped()?;
        let moved = ((after.nic - before.nic).0 - (after.host as i128 - before.host as i128)) as i64;
        Ok((moved, ((before.width + after.width) / 2) as i64, wrote))
    }
}

/// The [`Latch`] sequence, inline: (stamp before, SYSTIML, stamp after, SYSTIMH), with nothing
/// but the latching register read between the stamps: one volatile load where the registers are
/// mapped memory ([`RegisterAccess::register`], resolved before the bracket opens).
#[inline(always)]
pub(super) fn read_latched<R: RegisterAccess + ?Sized, T>(
    latch: Latch,
    regs: &R,
    stamp: &mut impl FnMut(Edge) -> T,
) -> (T, u32, T, u32) {
    let offset = match latch {
        Latch::Low => regs::SYSTIML,
        Latch::Residue => regs::SYSTIMR,
    };
    let register = regs.register(offset);
    let before = stamp(Edge::Before);
    let latched = match register {
        Some(r) => r.read(),
        None => regs.read32(offset),
    };
    let after = stamp(Edge::After);
    let lo = match latch {
        Latch::Low => latched,
        Latch::Residue => regs.read32(regs::SYSTIML),
    };
    (before, lo, after, regs.read32(regs::SYSTIMH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SteerChoice;
    use crate::model::{model, INTEL};
    use crate::sim::{SimConfig, SimNic};
    use crate::timesource::VirtualTime;

    fn phc(config: SimConfig, steering: Steering) -> (Arc<VirtualTime>, Arc<SimNic>, Phc<Arc<SimNic>>) {
        let time = VirtualTime::new();
        let nic = Arc::new(SimNic::new(config.clone(), time.clone()));
        let quirks = if config.qemu { crate::model::QUIRKS[0].quirks } else { Quirks::empty() };
        let m = model(INTEL, config.model.device_id()).unwrap();
        let phc = Phc::init(nic.clone(), m, quirks, steering, time.clone()).unwrap();
        (time, nic, phc)
    }

    fn quiet() -> SimConfig {
        SimConfig::ideal()
    }

    #[test]
    fn timecounter_follows_systim_across_its_64_bit_wrap() {
        let (time, nic, mut phc) = phc(quiet(), Steering::Hardware);
        // Put SYSTIM 1 ms before its 2^64-unit wrap (2^45 ns, 9.77 h).
        let near_wrap = u64::MAX - (1_000_000u64 << 19);
        nic.write32(regs::SYSTIML, near_wrap as u32);
        nic.write32(regs::SYSTIMH, (near_wrap >> 32) as u32);
        let t0 = phc.now().unwrap().0;
        time.advance(3_000_000);
        let t1 = phc.now().unwrap().0;
        assert_eq!(t1 - t0, 3_000_000, "3 ms across the wrap");
    }

    #[test]
    fn software_steering_scales_time_and_leaves_the_nic_alone() {
        let (time, nic, mut phc) = phc(quiet(), Steering::Software);
        let before = nic.read32(regs::TIMINCA);
        phc.set_frequency(Ppb(1000.0)).unwrap();
        assert_eq!(nic.read32(regs::TIMINCA), before, "no TIMINCA write");
        let t0 = phc.now().unwrap().0;
        time.advance(1_000_000_000);
        assert!((phc.now().unwrap().0 - t0 - 1_000_001_000).abs() <= 1, "1 ppm faster, to the ns");
        phc.step(Nanos(-500)).unwrap();
        time.advance(1_000_000_000);
        assert!((phc.now().unwrap().0 - t0 - (2_000_002_000 - 500)).abs() <= 1);
    }

    #[test]
    fn hardware_steering_carries_the_sub_lsb_remainder() {
        let (time, _nic, mut phc) = phc(quiet(), Steering::Hardware);
        // One INCVALUE step of an 82576 is 1/2^23 ≈ 119 ppb: 50 ppb is only reachable on average,
        // by writing the extra LSB in the right share of updates.
        let t0 = phc.now().unwrap().0;
        for _ in 0..100 {
            assert!(phc.set_frequency(Ppb(50.0)).unwrap().is_none());
            time.advance(1_000_000_000);
        }
        let gained = phc.now().unwrap().0 - t0 - 100_000_000_000;
        // 50 ppb over 100 s = 5000 ns (to within one LSB-second, 119 ns).
        assert!((4_880..=5_120).contains(&gained), "gained {gained} ns, expected ~5000");
    }

    #[test]
    fn hardware_rate_changes_on_real_silicon_are_continuous() {
        let (time, _nic, mut phc) = phc(SimConfig { read_latency_ns: 500, ..quiet() }, Steering::Hardware);
        time.advance(10_000_000_000);
        assert_eq!(phc.set_frequency(Ppb(100_000.0)).unwrap(), None);
        assert_eq!(phc.set_frequency(Ppb(-100_000.0)).unwrap(), None);
    }

    #[test]
    fn a_discontinuous_timinca_is_detected_and_measured() {
        let (time, _nic, mut phc) =
            phc(SimConfig { qemu: true, read_latency_ns: 500, ..quiet() }, Steering::Hardware);
        time.advance(100_000_000_000);
        let d = phc.set_frequency(Ppb(100_000.0)).unwrap().expect("QEMU's TIMINCA write jumps");
        assert!(d.jump_ns > 1_000_000, "a 100 ppm speed-up after 100 s jumps ~20 ms: {d:?}");
    }

    #[test]
    fn hardware_steps_go_through_timadj_and_are_verified() {
        let (time, nic, mut phc) = phc(SimConfig { read_latency_ns: 500, ..quiet() }, Steering::Hardware);
        assert!(phc.steps_in_hardware(), "82576 has TIMADJ");
        time.advance(1_000_000_000);
        let raw_before = nic.truth().nic_ns as i64;
        let t0 = phc.now().unwrap().0;
        assert_eq!(phc.step(Nanos(-250_000)).unwrap(), None);
        let t1 = phc.now().unwrap().0;
        assert!((t1 - t0 - -250_000).abs() < 5_000, "disciplined time stepped by -250 µs: {}", t1 - t0);
        let raw_after = nic.truth().nic_ns as i64;
        assert!(
            (raw_after - raw_before + 250_000).abs() < 5_000,
            "the NIC itself moved (TIMADJ), not just the timecounter"
        );
    }

    #[test]
    fn a_timadj_with_the_wrong_encoding_is_caught_and_made_up_in_software() {
        // QEMU's two's complement TIMADJ, but a driver that believes the 82576 datasheet.
        let time = VirtualTime::new();
        let nic =
            Arc::new(SimNic::new(SimConfig { qemu: true, read_latency_ns: 500, ..quiet() }, time.clone()));
        let m = model(INTEL, 0x10C9).unwrap();
        let mut phc =
            Phc::init(nic.clone(), m, Quirks::SIXTEEN_NS_TICK, Steering::Hardware, time.clone()).unwrap();
        time.advance(1_000_000_000);
        let t0 = phc.now().unwrap().0;
        let mismatch =
            phc.step(Nanos(-250_000)).unwrap().expect("the sign-magnitude word is read as two's complement");
        assert_eq!(mismatch.asked_ns, -250_000);
        let t1 = phc.now().unwrap().0;
        assert!((t1 - t0 + 250_000).abs() < 5_000, "disciplined time is still right: {}", t1 - t0);
        assert!(!phc.steps_in_hardware(), "TIMADJ is not trusted again");
    }

    #[test]
    fn steering_auto_follows_the_quirks() {
        assert_eq!(SteerChoice::Auto.resolve(Quirks::TIMINCA_DISCONTINUOUS), Steering::Software);
        assert_eq!(SteerChoice::Auto.resolve(Quirks::empty()), Steering::Hardware);
        assert_eq!(SteerChoice::Hardware.resolve(Quirks::TIMINCA_DISCONTINUOUS), Steering::Hardware);
    }

    #[test]
    fn a_removed_device_is_reported_lost() {
        let (_time, nic, mut phc) = phc(quiet(), Steering::Hardware);
        nic.remove();
        let lost = phc.now().unwrap_err();
        assert_eq!(lost, DeviceLost { last_read: u32::MAX, config: Some(Presence::Gone) });
        assert!(lost.gone());
        assert!(lost.to_string().contains("config space no longer answers"), "{lost}");
    }

    #[test]
    fn a_removed_device_that_reads_zero_is_reported_lost() {
        // QEMU: the BAR of a removed device reads 0, so SYSTIM freezes; config space says why.
        let (time, nic, mut phc) = phc(SimConfig { qemu: true, ..quiet() }, Steering::Software);
        time.advance(1_000_000);
        phc.now().unwrap();
        nic.remove();
        time.advance(1_000_000);
        let lost = phc.now().and_then(|_| phc.now()).unwrap_err();
        assert_eq!(lost, DeviceLost { last_read: 0, config: Some(Presence::Gone) });
        assert!(lost.gone());
    }

    #[test]
    fn a_clock_read_twice_at_the_same_instant_is_not_a_removal() {
        // Virtual time that does not move between reads: the same raw value, but config space
        // still shows the device.
        let (_time, _nic, mut phc) = phc(quiet(), Steering::Software);
        assert_eq!(phc.read_raw().unwrap(), phc.read_raw().unwrap(), "time stood still between the reads");
        assert!(phc.now().is_ok() && phc.now().is_ok());
    }

    #[test]
    fn a_bar_that_stopped_decoding_is_not_called_a_removal() {
        let (_time, nic, mut phc) = phc(quiet(), Steering::Hardware);
        nic.disable_decoding();
        let lost = phc.now().unwrap_err();
        assert_eq!(lost.config, Some(Presence::Present));
        assert!(!lost.gone(), "config space still shows the device");
        assert!(lost.to_string().contains("still shows it"), "{lost}");
    }
}
