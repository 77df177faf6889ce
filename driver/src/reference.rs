//! The pins in the discipline loop: `--reference pps:SDPn` (aux stamps of a PPS input feed the same
//! servo as the system-clock measurement) and `--pps-out SDPn`, polled together by [`Pins`].
//!
//! Steering: with hardware steering the NIC's raw clock is the disciplined one; with software
//! steering (QEMU, `--steer sw`) it is not. Either way stamps and output targets go through the
//! clock's own conversions ([`crate::clock::Phc`]'s timecounter, fresh from a reading at every
//! poll), so the same code serves both.

use nicclock::{
    period_from_ns_per_tick, Estimate, EventKind, Leap, Reference, ServoFigures, Snapshot, Status,
};
use nicclock_uio::RegisterAccess;

use crate::clock::{DeviceLost, Nanos};
use crate::discipline::{Discipline, Step, Update};
use crate::measure::{Host, Measurement};
use crate::model::Family;
use crate::pins::{self, OutService, PpsOut, Sdp};
use crate::pps::{PpsConfig, PpsSample, PpsTracker};
use crate::servo::ServoState;
use crate::timesource::TimeSource;

/// What one poll of the PPS input did.
#[derive(Debug, Clone)]
pub enum PpsStep {
    /// A pulse fed the servo: the discipline's step, and the system clock (TAI ns) when the NIC
    /// was read for it (what an NTP SHM consumer compares the NIC with).
    Used { step: Step, system_ns: u64 },
    /// A pulse far from the recent ones: not used.
    Outlier { offset_ns: i64, typical_ns: i64, in_a_row: u32 },
    /// A second pulse within one second: not used.
    Duplicate,
    /// A pulse's trailing edge (the igb stamps both): not used.
    TrailingEdge,
    /// The first edge after the start, a step or a gap (leading or trailing, not known): not used.
    FirstEdge,
    /// No new pulse, none overdue.
    Waiting,
    /// Pulses are overdue (`in_a_row` of them): the page update, with a PULSE_MISSED event when
    /// `in_a_row` is a power of two. It
    /// is HOLDOVER, re-anchored at the last rate with a growing bound; before any pulse was used,
    /// UNSYNCHRONIZED with the free-running time. Nothing is stepped.
    Missed { in_a_row: u64, update: Box<Update> },
}

/// `--reference pps:SDPn`: disciplines the clock to a PPS input's aux stamps.
#[derive(Debug)]
pub struct PpsReference {
    sdp: Sdp,
    tracker: PpsTracker,
    last: Option<Update>,
}

impl PpsReference {
    /// Routes `sdp` to aux stamp 0; pulses are due from reference time `start_ref_ns` on.
    pub fn start<R: RegisterAccess + ?Sized>(
        regs: &R,
        sdp: Sdp,
        config: PpsConfig,
        start_ref_ns: u64,
    ) -> Self {
        pins::configure_input(regs, sdp);
        Self { sdp, tracker: PpsTracker::new(config, start_ref_ns), last: None }
    }

    pub fn sdp(&self) -> Sdp {
        self.sdp
    }

    /// One poll: a stamp (from [`pins::poll`]) becomes a servo update through `discipline`, its
    /// absence past the due time HOLDOVER.
    pub fn update<R: RegisterAccess>(
        &mut self,
        discipline: &mut Discipline<R>,
        host: &dyn Host,
        aux_stamp: Option<(u32, u32)>,
    ) -> Result<PpsStep, DeviceLost> {
        let Some((lo, hi)) = aux_stamp else {
            let Some(in_a_row) = self.tracker.missed(host.reference_ns()) else {
                return Ok(PpsStep::Waiting);
            };
            // The offsets before the gap say little about the clock after it.
            self.tracker.clear_history();
            let m = discipline.measure_now(host)?;
            let mut update = match self.last.as_ref().filter(|u| u.status != Status::Unsynchronized) {
                Some(last) => holdover(last, m),
                None => unsynchronized(m, host, discipline.config().interval_ns),
            };
            // One event for the 1st, 2nd, 4th, 8th… pulse missed in a row: a GPS gone for good
            // must not flush the ring of everything else.
            update.events = if in_a_row.is_power_of_two() {
                vec![(EventKind::PulseMissed, in_a_row as i64)]
            } else {
                Vec::new()
            };
            return Ok(PpsStep::Missed { in_a_row, update: Box::new(update) });
        };
        // Stamps are converted by the clock (its timecounter, within half the wrap of its last
        // reading); the measurement right after advances it.
        let stamp_ns = discipline.phc().stamp_to_ns(lo, hi);
        let m = discipline.measure_now(host)?;
        let locked = discipline.status() == Status::Locked;
        match self.tracker.on_stamp(stamp_ns.0, m.nic_ns.0, m.reference_ns, locked) {
            PpsSample::Offset { offset_ns, .. } => {
                // The reference at the reading is the NIC's time less the PPS offset.
                let reference_ns = non_negative(m.nic_ns - Nanos::from(offset_ns));
                discipline.set_reference(Reference::pps());
                let step = discipline.update_measured(host, Measurement { offset_ns, reference_ns, ..m })?;
                if let Step::Updated(u) = &step {
                    for (_, delta) in u.events.iter().filter(|(kind, _)| *kind == EventKind::Step) {
                        self.tracker.stepped(*delta);
                    }
                    self.last = Some((**u).clone());
                }
                Ok(PpsStep::Used { step, system_ns: m.reference_ns })
            }
            PpsSample::Outlier { offset_ns, typical_ns, in_a_row } => {
                Ok(PpsStep::Outlier { offset_ns, typical_ns, in_a_row })
            }
            PpsSample::Duplicate { .. } => Ok(PpsStep::Duplicate),
            PpsSample::TrailingEdge => Ok(PpsStep::TrailingEdge),
            PpsSample::FirstEdge => Ok(PpsStep::FirstEdge),
        }
    }
}

/// `ns` as the page's unsigned TAI ns (clamped at 0 and u64::MAX).
fn non_negative(ns: Nanos) -> u64 {
    ns.0.clamp(0, u64::MAX as i128) as u64
}

/// The page in holdover: a fresh anchor from `m` (the NIC runs on at its last rate, nothing is
/// stepped), the bound grown from the last pulse's at its growth rate, so the page never goes stale.
fn holdover(last: &Update, m: Measurement) -> Update {
    let mut u = last.clone();
    let s = &mut u.snapshot;
    let half_window = ((s.tai_at(m.counter.wrapping_add(m.counter_window)) - s.tai_at(m.counter)) / 2)
        .clamp(0, u64::MAX as i128) as u64;
    s.error_bound_ns =
        s.error_at(m.nic_ns.0).saturating_add(m.delay_ns / 2).saturating_add(half_window).saturating_add(1);
    // The estimate grows from the last pulse's the same way (at its own, smaller, rate).
    let since = (m.nic_ns.0 - s.anchor_tai_ns as i128).unsigned_abs().min(u64::MAX as u128) as u64;
    s.estimate.error_ns = s.estimate.grown(since).saturating_add(half_window);
    s.counter_value = m.counter;
    s.anchor_tai_ns = non_negative(m.nic_ns);
    s.updated_tai_ns = s.anchor_tai_ns;
    s.status = Status::Holdover;
    u.status = Status::Holdover;
    // The offset logged and kept is still the last pulse's (m's is against the system clock).
    let offset_ns = last.measurement.offset_ns;
    let reference_ns = non_negative(m.nic_ns - Nanos::from(offset_ns));
    u.measurement = Measurement { offset_ns, reference_ns, ..m };
    u.discontinuity = None;
    u.step_mismatch = None;
    u.new_normal_delay_from_ns = None;
    u
}

/// The page before any pulse was used: the free-running NIC's time, no bound (as the system-clock
/// loop's first update), so that the page exists and says why it is not synchronized.
fn unsynchronized(m: Measurement, host: &dyn Host, interval_ns: u64) -> Update {
    let anchor_tai_ns = non_negative(m.nic_ns);
    let (ns_per_tick, _) = host.ns_per_tick();
    Update {
        measurement: m,
        servo_state: ServoState::Unlocked,
        servo_ppb: 0.0,
        status: Status::Unsynchronized,
        snapshot: Snapshot {
            counter_kind: host.counter_kind(),
            counter_value: m.counter,
            counter_period: period_from_ns_per_tick(ns_per_tick),
            anchor_tai_ns,
            error_bound_ns: u64::MAX,
            error_growth_ppt: 0,
            status: Status::Unsynchronized,
            leap: Leap::None,
            leap_tai_s: 0,
            tai_utc_offset_s: host.tai_utc_offset_s(),
            updated_tai_ns: anchor_tai_ns,
            update_interval_ns: interval_ns,
            update_count: 0,
            servo: ServoFigures {
                offset_ns: 0,
                freq_ppt: 0,
                delay_ns: m.delay_ns,
                state: ServoState::Unlocked as u32,
            },
            reference: Reference::pps(),
            estimate: Estimate::UNKNOWN,
            epoch: 0,
        },
        events: Vec::new(),
        discontinuity: None,
        step_mismatch: None,
        new_normal_delay_from_ns: None,
    }
}

/// Least often the pins are polled: an output edge every half second must be re-armed in time.
pub const PIN_POLL_NS: u64 = 100_000_000;

/// Both pin functions over one NIC, polled together (one TSICR read serves both).
#[derive(Debug)]
pub struct Pins {
    family: Family,
    out: Option<PpsOut>,
    pps: Option<PpsReference>,
}

/// What one [`Pins::poll`] did.
#[derive(Debug, Clone)]
pub struct PinsReport {
    pub out: Option<OutService>,
    pub pps: Option<PpsStep>,
}

impl Pins {
    /// Sets up `--pps-out` and/or `--reference pps:` (the same SDP cannot be both: the caller checks).
    pub fn start<R: RegisterAccess + ?Sized>(
        regs: &R,
        family: Family,
        pps_out: Option<Sdp>,
        pps_in: Option<(Sdp, PpsConfig)>,
        start_ref_ns: u64,
    ) -> Self {
        Self {
            family,
            out: pps_out.map(|sdp| PpsOut::start(regs, sdp)),
            pps: pps_in.map(|(sdp, config)| PpsReference::start(regs, sdp, config, start_ref_ns)),
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn pps_out(&self) -> Option<&PpsOut> {
        self.out.as_ref()
    }

    /// Whether the PPS input is the reference (then the loop's updates come from [`Pins::poll`]).
    pub fn is_reference(&self) -> bool {
        self.pps.is_some()
    }

    /// One poll: TSICR once, the output re-armed from a fresh reading, the input's stamp (or its
    /// absence) through the discipline. Call every [`PIN_POLL_NS`] or more often.
    pub fn poll<R: RegisterAccess>(
        &mut self,
        discipline: &mut Discipline<R>,
        host: &dyn Host,
    ) -> Result<PinsReport, DeviceLost> {
        let events = pins::poll(discipline.phc().regs(), self.family);
        let out = match self.out.as_mut() {
            Some(out) => {
                // A fresh reading: the clock's raw↔disciplined conversion is good near it.
                let now = discipline.phc_mut().now()?;
                let phc = discipline.phc();
                Some(out.service(phc.regs(), phc, events.target_fired, now))
            }
            None => None,
        };
        let pps = match self.pps.as_mut() {
            Some(pps) => Some(pps.update(discipline, host, events.aux_stamp)?),
            None => None,
        };
        Ok(PinsReport { out, pps })
    }
}

/// Runs the loop with pins on virtual time for tests and benches, as nicclockd does: polls the
/// pins every [`PIN_POLL_NS`] from now until `until_ns` and, unless the PPS input is the
/// reference, updates the discipline from the host's clock every `interval_ns` of its config.
/// `before_poll(t)` comes first (a simulator injects its pulses there, moving time up to each
/// one), `after_poll(t, report, system step)` after each poll.
pub fn drive<R: RegisterAccess>(
    pins: &mut Pins,
    discipline: &mut Discipline<R>,
    host: &dyn Host,
    time: &dyn TimeSource,
    until_ns: u64,
    mut before_poll: impl FnMut(u64),
    mut after_poll: impl FnMut(u64, &PinsReport, Option<&Step>),
) -> Result<(), DeviceLost> {
    let interval = discipline.config().interval_ns.max(1);
    // Polls on whole multiples of the poll period, as a steady daemon schedule would.
    let mut t = time.now_ns() / PIN_POLL_NS * PIN_POLL_NS;
    let mut next_update = t + interval;
    while t < until_ns {
        t += PIN_POLL_NS;
        before_poll(t);
        time.wait_until(t);
        let system = if !pins.is_reference() && t >= next_update {
            next_update += interval * ((t - next_update) / interval + 1);
            Some(discipline.update(host)?)
        } else {
            None
        };
        let report = pins.poll(discipline, host)?;
        after_poll(t, &report, system.as_ref());
    }
    Ok(())
}
