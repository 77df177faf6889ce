//! Who steers the NIC clock under a port that may serve (`--ptp-role master|auto`): the
//! Discipline (to the host's reference) while the port is not a slave, statime while it is.
//!
//! The clock ([`Phc`], with its software timecounter under QEMU) lives in the runner's
//! [`SharedPhc`]: the port needs it at every poll (stamps to ns, Sync origin times). The
//! [`Discipline`] is built on a second handle on the same registers that it never reads or steers;
//! [`ClockOwner::update`] swaps the real clock in for one Discipline update and back out, and only
//! while the port's [`ActiveRole`] is not SLAVE (taking it back after a SLAVE spell, the
//! Discipline starts over: [`Discipline::resume`]). statime's clock adapter refuses to steer
//! unless the port is SLAVE/UNCALIBRATED ([`super::port`]). One thread, so never both at once.

use nicclock_uio::RegisterAccess;

use super::clock::SharedPhc;
use super::port::ActiveRole;
use crate::clock::{DeviceLost, Phc};
use crate::discipline::{Discipline, Step};
use crate::measure::Host;

/// The Discipline's side of the hand-over (see the module docs).
pub struct ClockOwner<R> {
    discipline: Discipline<R>,
    updates: u64,
    /// statime has steered the clock since the Discipline's last update.
    lent: bool,
}

impl<R: RegisterAccess> ClockOwner<R> {
    /// `discipline` must hold an idle handle (a [`Phc`] on the same registers, made before anything
    /// steered), never the clock the runner uses.
    pub fn new(discipline: Discipline<R>) -> Self {
        Self { discipline, updates: 0, lent: false }
    }

    /// One Discipline update on the runner's clock when `role` lets the Discipline steer; `None`
    /// while statime does (SLAVE).
    pub fn update(
        &mut self,
        role: ActiveRole,
        phc: &SharedPhc<R>,
        host: &dyn Host,
    ) -> Option<Result<Step, DeviceLost>> {
        if role.ptp_steers() {
            self.lent = true;
            return None;
        }
        if std::mem::take(&mut self.lent) {
            // The clock comes back as statime left it: the Discipline starts over.
            self.discipline.resume();
        }
        let mut clock = phc.borrow_mut();
        std::mem::swap(self.discipline.phc_mut(), &mut *clock);
        let step = self.discipline.update(host);
        std::mem::swap(self.discipline.phc_mut(), &mut *clock);
        self.updates += 1;
        Some(step)
    }

    /// Discipline updates made so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    pub fn discipline(&self) -> &Discipline<R> {
        &self.discipline
    }

    pub fn discipline_mut(&mut self) -> &mut Discipline<R> {
        &mut self.discipline
    }

    /// The idle handle (tests: it must never have been steered).
    pub fn idle_phc(&self) -> &Phc<R> {
        self.discipline.phc()
    }
}

/// PTP messageType of a Delay_Req (IEEE 1588 table 36).
const DELAY_REQ: u32 = 0x1;

/// The event message a port in `role` needs RX stamps of, as TSYNCRXCFG wants it (messageType in
/// bits 15:8): Delay_Req while it serves (each answer carries its RX stamp), Sync otherwise.
/// QEMU's igb stamps only the frames whose first PTP byte equals TSYNCRXCFG[15:8] (the bring-up's
/// 0 is Sync: a serving port got no Delay_Req stamp and answered none); real silicon stamps every
/// V2 event message under the bring-up's TSYNCRXCTL type and ignores the field.
pub fn rx_stamp_config(role: ActiveRole) -> u32 {
    if role == ActiveRole::Master {
        DELAY_REQ << 8
    } else {
        0
    }
}

/// Points the NIC's RX stamp latch at the event message `role` needs ([`rx_stamp_config`]): once
/// the port is up and at every role change.
pub fn set_rx_stamp_for(regs: &dyn RegisterAccess, role: ActiveRole) {
    regs.write32(crate::regs::TSYNCRXCFG, rx_stamp_config(role));
}
