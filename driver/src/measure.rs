//! Offset of the NIC clock from the reference, as phc2sys measures it: N reads of SYSTIML, each
//! bracketed by (counter, reference) stamps; the narrowest bracket wins. Also the page's anchor.

use nicclock::CounterKind;
use nicclock_uio::RegisterAccess;

use crate::phc::{DeviceLost, Phc};

/// The machine around the NIC: the counter the page is expressed in and the reference clock.
pub trait Host {
    /// Which counter [`Host::counter`] reads (the page's counter kind).
    fn counter_kind(&self) -> CounterKind;
    /// The page's counter now.
    fn counter(&self) -> u64;
    /// The reference clock now, TAI ns.
    fn reference_ns(&self) -> u64;
    /// TAI − UTC the reference implies (for the page).
    fn tai_utc_offset_s(&self) -> i32 {
        37
    }
    /// Reference ns per counter tick as calibrated at start-up, and its relative uncertainty
    /// (used until the loop has measured the rate itself).
    fn ns_per_tick(&self) -> (f64, f64);
}

/// One measurement (the narrowest of N reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// NIC − reference, ns (linuxptp's sign).
    pub offset_ns: i64,
    /// Width of the reference bracket around the SYSTIML read, ns ("delay" in phc2sys).
    pub delay_ns: u64,
    /// Disciplined NIC time at the read, ns.
    pub nic_ns: i128,
    /// Reference time at the bracket's midpoint, TAI ns.
    pub reference_ns: u64,
    /// Counter at the bracket's midpoint (the page anchor pairs it with `nic_ns`).
    pub counter: u64,
    /// Counter ticks across the bracket.
    pub counter_window: u64,
}

/// Takes `readings` bracketed reads and keeps the one with the shortest reference bracket.
pub fn measure<R: RegisterAccess>(
    phc: &mut Phc<R>,
    host: &dyn Host,
    readings: usize,
) -> Result<Measurement, DeviceLost> {
    let mut best: Option<Measurement> = None;
    for _ in 0..readings.max(1) {
        // counter, reference, [SYSTIML], reference, counter: the reference brackets the NIC read
        // alone (the offset's uncertainty, "delay"); the counter brackets both (the anchor's).
        let mut before = true;
        let ((c1, r1), raw, (c2, r2)) = phc.read_raw_bracketed(|| {
            if std::mem::take(&mut before) {
                let c = host.counter();
                (c, host.reference_ns())
            } else {
                let r = host.reference_ns();
                (host.counter(), r)
            }
        })?;
        let nic_ns = phc.time_at(raw);
        let delay_ns = r2.saturating_sub(r1);
        let reference_ns = r1 + delay_ns / 2;
        let m = Measurement {
            offset_ns: (nic_ns - reference_ns as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            delay_ns,
            nic_ns,
            reference_ns,
            counter: c1 + c2.wrapping_sub(c1) / 2,
            counter_window: c2.wrapping_sub(c1),
        };
        if best.is_none_or(|b| m.delay_ns < b.delay_ns) {
            best = Some(m);
        }
    }
    Ok(best.expect("at least one reading"))
}
