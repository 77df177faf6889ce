//! Clock operations on a NIC's PTP clock over the register seam: init, raw SYSTIM reads (with the
//! 82574 wrap re-read), a timecounter that extends and converts them to ns, and steering — rate by
//! TIMINCA with the sub-LSB remainder carried (hardware) or in the timecounter (software).

use std::cell::Cell;
use std::sync::Arc;

use nicclock_uio::{Presence, RegisterAccess};

use crate::model::{Model, Quirks, SystimFormat, TimadjFormat};
use crate::regs::{self, timinca, TIMINCA_PERIOD_SHIFT, TIMINCA_VALUE_MASK};
use crate::timesource::TimeSource;

/// Where frequency corrections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// TIMINCA: the NIC itself runs at the corrected rate (real silicon).
    Hardware,
    /// The NIC free-runs; the correction lives in the timecounter (QEMU, or by choice).
    Software,
}

impl std::fmt::Display for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hardware => "hw (TIMINCA)",
            Self::Software => "sw (timecounter)",
        })
    }
}

/// `--steer`: explicit, or chosen from the quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteerChoice {
    Auto,
    Hardware,
    Software,
}

impl SteerChoice {
    /// hw on real silicon, sw where a quirk says rate writes are unsafe.
    pub fn resolve(self, quirks: Quirks) -> Steering {
        match self {
            Self::Hardware => Steering::Hardware,
            Self::Software => Steering::Software,
            Self::Auto if quirks.contains(Quirks::TIMINCA_DISCONTINUOUS) => Steering::Software,
            Self::Auto => Steering::Hardware,
        }
    }
}

impl std::str::FromStr for SteerChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "hw" => Ok(Self::Hardware),
            "sw" => Ok(Self::Software),
            _ => Err(format!("unknown steering {s:?}: use auto, hw or sw")),
        }
    }
}

/// The device stopped answering: SYSTIM and STATUS read all ones. Config space, when the access
/// has it, tells a removed device (vendor ID all ones, or unreadable) from one that only stopped
/// decoding its BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct DeviceLost {
    pub last_read: u32,
    /// What config space said; `None` when there was none to ask.
    pub config: Option<Presence>,
}

impl DeviceLost {
    /// Whether the device is gone (removed), as opposed to present but not answering on its BAR.
    pub fn gone(&self) -> bool {
        self.config != Some(Presence::Present)
    }

    fn describe(&self) -> String {
        let read = self.last_read;
        match self.config {
            Some(Presence::Gone) => format!(
                "the NIC is gone: its registers read {read:#010x} and its PCI config space no longer answers (surprise removal)"
            ),
            None => format!("the NIC is gone: SYSTIM and STATUS read {read:#010x} (surprise removal?)"),
            Some(Presence::Present) => format!(
                "the NIC stopped answering: its registers read {read:#010x} but its PCI config space still \
                 shows it (memory decoding turned off, or reset by something else?)"
            ),
        }
    }
}

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

/// Jumps smaller than this across a TIMINCA write are read noise, not a discontinuity.
const DISCONTINUITY_NS: i64 = 10_000;

/// One read of the clock against the host's monotonic time.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    host: u64,
    nic: i128,
    width: u64,
}

/// One NIC clock.
pub struct Phc<R> {
    regs: R,
    host: Arc<dyn TimeSource>,
    steering: Steering,
    shift: u32,
    incperiod: u32,
    base_incvalue: f64,
    /// Fractional INCVALUE not yet written (hardware steering).
    inc_remainder: f64,
    freq_ppb: f64,
    max_adj_ppb: f64,
    /// How phase steps reach the hardware (hardware steering only; None: in the timecounter).
    timadj: Option<TimadjFormat>,
    /// The last raw SYSTIM read (a clock that stops advancing may have been removed).
    last_read: Cell<Option<u64>>,
    /// Timecounter: last raw SYSTIM, disciplined ns at it, sub-unit carry.
    last_raw: u64,
    ns: i128,
    carry: f64,
}

impl<R: RegisterAccess> Phc<R> {
    /// Starts the clock: programs the nominal increment (QEMU: 16 ns ticks) and the timecounter.
    /// `host` is a monotonic clock used only to check TIMINCA writes for discontinuities.
    pub fn init(
        regs: R,
        model: &Model,
        quirks: Quirks,
        steering: Steering,
        host: Arc<dyn TimeSource>,
    ) -> Result<Self, DeviceLost> {
        let SystimFormat::Fractional { shift } = model.systim else {
            unreachable!("only models with fractional SYSTIM are supported (checked at open)");
        };
        let base = if quirks.contains(Quirks::SIXTEEN_NS_TICK) {
            timinca(1, 16 << shift)
        } else {
            model.base_timinca
        };
        regs.write32(regs::TIMINCA, base);
        let mut phc = Self {
            regs,
            host,
            steering,
            shift,
            incperiod: base >> TIMINCA_PERIOD_SHIFT,
            base_incvalue: (base & TIMINCA_VALUE_MASK) as f64,
            inc_remainder: 0.0,
            freq_ppb: 0.0,
            max_adj_ppb: model.max_adj_ppb,
            timadj: match (steering, model.timadj) {
                (Steering::Software, _) | (_, None) => None,
                _ if quirks.contains(Quirks::TIMADJ_TWOS_COMPLEMENT) => Some(TimadjFormat::TwosComplement),
                (_, format) => format,
            },
            last_read: Cell::new(None),
            last_raw: 0,
            ns: 0,
            carry: 0.0,
        };
        let raw = phc.read_raw()?;
        phc.last_raw = raw;
        phc.ns = (raw >> shift) as i128;
        Ok(phc)
    }

    pub fn steering(&self) -> Steering {
        self.steering
    }

    pub fn regs(&self) -> &R {
        &self.regs
    }

    /// Current frequency correction, ppb (positive: faster).
    pub fn frequency_ppb(&self) -> f64 {
        self.freq_ppb
    }

    /// Reads SYSTIM (SYSTIML latches SYSTIMH), calling `stamp` right before and right after the
    /// SYSTIML read — the instant the NIC samples its counter — as PTP_SYS_OFFSET_EXTENDED does.
    pub fn read_raw_bracketed<T>(&self, mut stamp: impl FnMut() -> T) -> Result<(T, u64, T), DeviceLost> {
        loop {
            let before = stamp();
            let lo = self.regs.read32(regs::SYSTIML);
            let after = stamp();
            let hi = self.regs.read32(regs::SYSTIMH);
            if lo == u32::MAX && hi == u32::MAX {
                let status = self.regs.read32(regs::STATUS);
                if status == u32::MAX {
                    return Err(DeviceLost { last_read: status, config: self.regs.presence() });
                }
            }
            // 82574: SYSTIMH may not latch right at a SYSTIML wrap; read again near one.
            if lo >= 0xFF00_0000 && self.shift == 18 {
                let lo2 = self.regs.read32(regs::SYSTIML);
                if lo2 < lo {
                    continue;
                }
            }
            let raw = ((hi as u64) << 32) | lo as u64;
            // A running clock never reads the same twice. A removed device need not read all
            // ones either (QEMU answers 0 behind a root port): a frozen clock asks config space.
            if self.last_read.replace(Some(raw)) == Some(raw) && self.regs.presence() == Some(Presence::Gone)
            {
                return Err(DeviceLost { last_read: lo, config: Some(Presence::Gone) });
            }
            return Ok((before, raw, after));
        }
    }

    pub fn read_raw(&self) -> Result<u64, DeviceLost> {
        self.read_raw_bracketed(|| ()).map(|(_, raw, _)| raw)
    }

    /// Disciplined time at raw reading `raw` (advances the timecounter; call with increasing raws).
    pub fn time_at(&mut self, raw: u64) -> i128 {
        // Signed: readings come many times a second, so a difference beyond half the counter's
        // range (4.9 h on an 82576) is a step backwards (TIMADJ), not a wrap.
        let delta = raw.wrapping_sub(self.last_raw) as i64 as f64;
        let factor = match self.steering {
            Steering::Hardware => 1.0,
            Steering::Software => 1.0 + self.freq_ppb / 1e9,
        };
        // Units since the last reading at the disciplined rate, plus the sub-ns carry.
        let units = delta * factor + self.carry;
        let unit_ns = (1u64 << self.shift) as f64;
        let whole_ns = (units / unit_ns).floor();
        self.carry = units - whole_ns * unit_ns;
        self.ns += whole_ns as i128;
        self.last_raw = raw;
        self.ns
    }

    /// Disciplined time now.
    pub fn now(&mut self) -> Result<i128, DeviceLost> {
        let raw = self.read_raw()?;
        Ok(self.time_at(raw))
    }

    /// Steps the clock by `delta_ns`: through TIMADJ when hardware-steered on a model that has
    /// it (checked by reading the clock on both sides; the timecounter makes up any difference),
    /// else in the timecounter, as Linux does.
    pub fn step(&mut self, delta_ns: i64) -> Result<Option<StepMismatch>, DeviceLost> {
        let Some(format) = self.timadj else {
            self.ns += delta_ns as i128;
            return Ok(None);
        };
        let units = (delta_ns as i128) << self.shift;
        let magnitude = units.unsigned_abs();
        if magnitude >= 1 << 63 {
            // Beyond the register's range (a first step from 0 to TAI is ~2^60 ns): timecounter.
            self.ns += delta_ns as i128;
            return Ok(None);
        }
        let word = match format {
            TimadjFormat::TwosComplement => units as i64 as u64,
            TimadjFormat::SignMagnitude => magnitude as u64 | if units < 0 { 1 << 63 } else { 0 },
        };
        let (moved, uncertainty) = self.jump_across(|regs| {
            regs.write32(regs::TIMADJL, word as u32);
            regs.write32(regs::TIMADJH, (word >> 32) as u32);
        })?;
        // Whatever the hardware did, the disciplined time moves by delta_ns (to the brackets' width).
        self.ns += (delta_ns - moved) as i128;
        if (moved - delta_ns).abs() > DISCONTINUITY_NS + uncertainty {
            self.timadj = None;
            return Ok(Some(StepMismatch { asked_ns: delta_ns, moved_ns: moved }));
        }
        Ok(None)
    }

    /// Whether phase steps currently go through TIMADJ.
    pub fn steps_in_hardware(&self) -> bool {
        self.timadj.is_some()
    }

    /// Sets the frequency correction (ppb, positive: faster), clamped to the model's range.
    /// Hardware steering writes TIMINCA and checks the write did not move the clock.
    pub fn set_frequency(&mut self, ppb: f64) -> Result<Option<Discontinuity>, DeviceLost> {
        let ppb = ppb.clamp(-self.max_adj_ppb, self.max_adj_ppb);
        if self.steering == Steering::Software {
            // Bring the timecounter up to now at the old rate before the new one applies.
            self.now()?;
            self.freq_ppb = ppb;
            return Ok(None);
        }
        let exact = self.base_incvalue * (1.0 + ppb / 1e9) + self.inc_remainder;
        let value = exact.floor().clamp(1.0, TIMINCA_VALUE_MASK as f64);
        self.inc_remainder = (exact - value).clamp(-1.0, 1.0);
        let word = timinca(self.incperiod, value as u32);
        let (jump, uncertainty) = self.jump_across(|regs| regs.write32(regs::TIMINCA, word))?;
        self.freq_ppb = ppb;
        Ok((jump.abs() > DISCONTINUITY_NS + uncertainty).then_some(Discontinuity { jump_ns: jump }))
    }

    /// (host ns at the read's midpoint, disciplined ns, host bracket width) of the tightest of
    /// three reads: a preempted read must not look like the clock jumping.
    fn stamped(&mut self) -> Result<Stamp, DeviceLost> {
        let host = self.host.clone();
        let mut best: Option<Stamp> = None;
        for _ in 0..3 {
            let (h0, raw, h1) = self.read_raw_bracketed(|| host.now_ns())?;
            let nic = self.time_at(raw);
            let stamp = Stamp { host: h0 + (h1 - h0) / 2, nic, width: h1 - h0 };
            if best.is_none_or(|b| stamp.width < b.width) {
                best = Some(stamp);
            }
        }
        Ok(best.expect("three reads"))
    }

    /// How far the clock moved across `write`, beyond the time that passed, and how uncertain
    /// that figure is (the two brackets' half-widths).
    fn jump_across(&mut self, write: impl FnOnce(&R)) -> Result<(i64, i64), DeviceLost> {
        let before = self.stamped()?;
        write(&self.regs);
        let after = self.stamped()?;
        let moved = ((after.nic - before.nic) - (after.host as i128 - before.host as i128)) as i64;
        Ok((moved, ((before.width + after.width) / 2) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let t0 = phc.now().unwrap();
        time.advance(3_000_000);
        let t1 = phc.now().unwrap();
        assert_eq!(t1 - t0, 3_000_000, "3 ms across the wrap");
    }

    #[test]
    fn software_steering_scales_time_and_leaves_the_nic_alone() {
        let (time, nic, mut phc) = phc(quiet(), Steering::Software);
        let before = nic.read32(regs::TIMINCA);
        phc.set_frequency(1000.0).unwrap();
        assert_eq!(nic.read32(regs::TIMINCA), before, "no TIMINCA write");
        let t0 = phc.now().unwrap();
        time.advance(1_000_000_000);
        assert!((phc.now().unwrap() - t0 - 1_000_001_000).abs() <= 1, "1 ppm faster, to the ns");
        phc.step(-500).unwrap();
        time.advance(1_000_000_000);
        assert!((phc.now().unwrap() - t0 - (2_000_002_000 - 500)).abs() <= 1);
    }

    #[test]
    fn hardware_steering_carries_the_sub_lsb_remainder() {
        let (time, _nic, mut phc) = phc(quiet(), Steering::Hardware);
        // One INCVALUE step of an 82576 is 1/2^23 ≈ 119 ppb: 50 ppb is only reachable on average,
        // by writing the extra LSB in the right share of updates.
        let t0 = phc.now().unwrap();
        for _ in 0..100 {
            assert!(phc.set_frequency(50.0).unwrap().is_none());
            time.advance(1_000_000_000);
        }
        let gained = phc.now().unwrap() - t0 - 100_000_000_000;
        // 50 ppb over 100 s = 5000 ns (to within one LSB-second, 119 ns).
        assert!((4_880..=5_120).contains(&gained), "gained {gained} ns, expected ~5000");
    }

    #[test]
    fn hardware_rate_changes_on_real_silicon_are_continuous() {
        let (time, _nic, mut phc) = phc(SimConfig { read_latency_ns: 500, ..quiet() }, Steering::Hardware);
        time.advance(10_000_000_000);
        assert_eq!(phc.set_frequency(100_000.0).unwrap(), None);
        assert_eq!(phc.set_frequency(-100_000.0).unwrap(), None);
    }

    #[test]
    fn a_discontinuous_timinca_is_detected_and_measured() {
        let (time, _nic, mut phc) =
            phc(SimConfig { qemu: true, read_latency_ns: 500, ..quiet() }, Steering::Hardware);
        time.advance(100_000_000_000);
        let d = phc.set_frequency(100_000.0).unwrap().expect("QEMU's TIMINCA write jumps");
        assert!(d.jump_ns > 1_000_000, "a 100 ppm speed-up after 100 s jumps ~20 ms: {d:?}");
    }

    #[test]
    fn hardware_steps_go_through_timadj_and_are_verified() {
        let (time, nic, mut phc) = phc(SimConfig { read_latency_ns: 500, ..quiet() }, Steering::Hardware);
        assert!(phc.steps_in_hardware(), "82576 has TIMADJ");
        time.advance(1_000_000_000);
        let raw_before = nic.truth().nic_ns as i64;
        let t0 = phc.now().unwrap();
        assert_eq!(phc.step(-250_000).unwrap(), None);
        let t1 = phc.now().unwrap();
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
        let t0 = phc.now().unwrap();
        let mismatch =
            phc.step(-250_000).unwrap().expect("the sign-magnitude word is read as two's complement");
        assert_eq!(mismatch.asked_ns, -250_000);
        let t1 = phc.now().unwrap();
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
