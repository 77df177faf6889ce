//! The NIC clock: one set of clock operations per family behind [`ClockOps`], chosen once at open
//! from the model table (igb_ptp.c's habit), and [`Phc`], the family-agnostic timecounter and
//! steering the discipline loop, `nicclockd probe` and the pins talk to.

mod e82574;
mod e82576;
mod e82580;
mod fractional;
mod i210;
mod lost;
mod phc;
mod steering;
mod timecounter;
pub mod units;

use nicclock_uio::RegisterAccess;

pub use e82574::{sanitized, Clock82574, REREADS, SANE_DELTA_TICKS};
pub use e82576::{timadj_words, Clock82576};
pub use e82580::{isgn_rate_of, isgn_timinca, Clock82580};
pub use fractional::{fractional_rate_of, fractional_timinca};
pub use i210::{ClockI210, NS_PER_S};
pub use lost::DeviceLost;
pub use phc::{Capabilities, Discontinuity, Phc, StepMismatch};
pub use steering::{SteerChoice, Steering};
pub use timecounter::Timecounter;
pub use units::{Nanos, Ppb, Ppt, RawTime, Ticks};

use crate::model::{Family, Model, Quirks, TimadjFormat};

/// Which side of the latching register read a bracket stamp is taken on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Before,
    After,
}

/// A family whose SYSTIM read is one latching register read between the stamps, then plain
/// reads: [`Phc::read_raw_bracketed`] then reads it inline, with no call through the family's
/// ops or the stamp callback inside the bracket (under QEMU's TCG each such call widens it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latch {
    /// SYSTIML latches SYSTIMH (82576): stamp, SYSTIML, stamp, SYSTIMH.
    Low,
    /// SYSTIMR latches SYSTIML/H (82580, i350, i210): stamp, SYSTIMR, stamp, SYSTIML, SYSTIMH.
    Residue,
}

/// How a phase step reaches the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepMethod {
    /// Only the timecounter moves (Linux's way on 82574/82576/82580; the NIC is left alone).
    Timecounter,
    /// The TIMADJ register pair in this encoding (82576), verified by reading around it.
    Timadj(TimadjFormat),
    /// Read SYSTIM, add, write SYSTIML then SYSTIMH (i210), the interval lost between the read
    /// and the write measured and added to the next step.
    ReadAddWrite,
}

impl std::fmt::Display for StepMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Timecounter => "timecounter",
            Self::Timadj(_) => "TIMADJ",
            Self::ReadAddWrite => "read-add-write SYSTIML/H",
        })
    }
}

/// One family's clock operations on raw registers (no timecounter, no steering policy).
pub trait ClockOps: Send + Sync {
    fn family(&self) -> Family;

    /// Starts the counter at its nominal rate (TIMINCA; TSAUXC on 82580+).
    fn start(&self, regs: &dyn RegisterAccess);

    /// Whether the counter is counting (without changing anything).
    fn running(&self, regs: &dyn RegisterAccess) -> bool;

    /// Reads SYSTIM in the family's latch order, calling `edge` right before and right after the
    /// latching read (again for every re-read: the last pair brackets the value returned), and
    /// returns the latched (SYSTIML, SYSTIMH).
    fn read(&self, regs: &dyn RegisterAccess, edge: &mut dyn FnMut(Edge)) -> (u32, u32);

    /// `Some` when [`ClockOps::read`] is exactly that [`Latch`] sequence (no re-reads).
    fn latch(&self) -> Option<Latch> {
        None
    }

    /// A raw reading from a low/high register pair of the family's SYSTIM format (SYSTIM,
    /// AUXSTMP, TRGTTIM, Tx/Rx stamps).
    fn raw_from_regs(&self, lo: u32, hi: u32) -> RawTime {
        RawTime::from_regs(lo, hi)
    }

    /// The low/high register words of `raw` (to program a target time).
    fn raw_to_regs(&self, raw: RawTime) -> (u32, u32) {
        (raw.lo(), raw.hi())
    }

    /// log2 of ticks per ns.
    fn tick_shift(&self) -> u32;

    /// What the counter itself says `raw` is, ns (no wrap extension).
    fn ns_of(&self, raw: RawTime) -> Nanos {
        Nanos((raw.0 >> self.tick_shift()) as i128)
    }

    /// Ticks from `from` to `to`, taken within half the wrap either way (the wrap extension).
    fn ticks_between(&self, from: RawTime, to: RawTime) -> Ticks;

    /// `raw` moved by `ticks`, wrapping as the counter does.
    fn advance(&self, raw: RawTime, ticks: Ticks) -> RawTime;

    /// The TIMINCA word programmed at the nominal rate.
    fn nominal_timinca(&self) -> u32;

    /// The TIMINCA word for a rate `rate` relative to nominal (Linux's truncating formula).
    fn timinca(&self, rate: Ppt) -> u32;

    /// The rate a TIMINCA word gives relative to nominal.
    fn rate_of(&self, timinca: u32) -> Ppb;

    /// How phase steps can reach the hardware (hardware steering only).
    fn step_method(&self) -> StepMethod {
        StepMethod::Timecounter
    }

    /// Moves the hardware counter by `delta` (plus `lost`, the interval a read-add-write loses).
    /// False when it cannot (out of the register's range): the caller steps the timecounter.
    fn write_step(&self, _regs: &dyn RegisterAccess, _delta: Ticks, _lost: Ticks) -> bool {
        false
    }
}

/// The clock ops of `model`'s family, with the board's quirks applied: chosen once, at open.
pub fn ops(model: &Model, quirks: Quirks) -> Box<dyn ClockOps> {
    match model.family {
        Family::E82574 => Box::new(Clock82574::new(model, quirks)),
        Family::E82576 => Box::new(Clock82576::new(model, quirks)),
        Family::E82580 => Box::new(Clock82580),
        Family::I210 => Box::new(ClockI210),
    }
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod family_tests;
