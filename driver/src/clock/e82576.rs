//! The 82576's clock ops: 64-bit SYSTIM in 2^-19 ns (SYSTIML latches), TIMINCA = period 1 |
//! 16 ns in 2^-19 ns, phase steps through TIMADJ in the model's (or QEMU's) encoding.

use nicclock_uio::RegisterAccess;

use super::units::{Ppb, Ppt, RawTime, Ticks};
use super::{fractional, fractional_rate_of, fractional_timinca, ClockOps, Edge, StepMethod};
use crate::model::{Family, Model, Quirks, TimadjFormat};
use crate::regs::{self, timinca};

/// 82576 clock ops.
#[derive(Debug, Clone, Copy)]
pub struct Clock82576 {
    base: u32,
    timadj: Option<TimadjFormat>,
}

impl Clock82576 {
    /// Nominal TIMINCA from the model (QEMU: 16 ns ticks whatever the model), TIMADJ encoding
    /// from the model unless a quirk says QEMU's.
    pub fn new(model: &Model, quirks: Quirks) -> Self {
        let base =
            if quirks.contains(Quirks::SIXTEEN_NS_TICK) { timinca(1, 16 << 19) } else { model.base_timinca };
        let timadj = match model.timadj {
            Some(_) if quirks.contains(Quirks::TIMADJ_TWOS_COMPLEMENT) => Some(TimadjFormat::TwosComplement),
            format => format,
        };
        Self { base, timadj }
    }
}

/// TIMADJL/TIMADJH for a step of `delta` ticks, or None when the register cannot hold it.
pub fn timadj_words(delta: Ticks, format: TimadjFormat) -> Option<(u32, u32)> {
    let magnitude = delta.0.unsigned_abs();
    if magnitude >= 1 << 63 {
        return None;
    }
    let word = match format {
        TimadjFormat::TwosComplement => delta.0 as u64,
        TimadjFormat::SignMagnitude => magnitude | if delta.0 < 0 { 1 << 63 } else { 0 },
    };
    Some((word as u32, (word >> 32) as u32))
}

impl ClockOps for Clock82576 {
    fn family(&self) -> Family {
        Family::E82576
    }

    fn start(&self, regs: &dyn RegisterAccess) {
        regs.write32(regs::TIMINCA, self.base);
    }

    fn running(&self, regs: &dyn RegisterAccess) -> bool {
        regs.read32(regs::TIMINCA) != 0
    }

    fn read(&self, regs: &dyn RegisterAccess, edge: &mut dyn FnMut(Edge)) -> (u32, u32) {
        fractional::read(regs, edge)
    }

    fn latch(&self) -> Option<super::Latch> {
        Some(super::Latch::Low)
    }

    fn tick_shift(&self) -> u32 {
        19
    }

    fn ticks_between(&self, from: RawTime, to: RawTime) -> Ticks {
        fractional::ticks_between(from, to)
    }

    fn advance(&self, raw: RawTime, ticks: Ticks) -> RawTime {
        fractional::advance(raw, ticks)
    }

    fn nominal_timinca(&self) -> u32 {
        self.base
    }

    fn timinca(&self, rate: Ppt) -> u32 {
        fractional_timinca(self.base, rate)
    }

    fn rate_of(&self, timinca: u32) -> Ppb {
        fractional_rate_of(self.base, timinca)
    }

    fn step_method(&self) -> StepMethod {
        self.timadj.map_or(StepMethod::Timecounter, StepMethod::Timadj)
    }

    fn write_step(&self, regs: &dyn RegisterAccess, delta: Ticks, _lost: Ticks) -> bool {
        let Some((lo, hi)) = self.timadj.and_then(|f| timadj_words(delta, f)) else {
            return false;
        };
        regs.write32(regs::TIMADJL, lo);
        regs.write32(regs::TIMADJH, hi);
        true
    }
}
