//! The values one update publishes ([`Snapshot`]) and one event carries ([`Event`]), and their
//! relaxed stores into / loads from the page (the seqlock around them is the caller's).

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;

use crate::abi::{
    ClockData, CounterKind, EventKind, EventSlot, Leap, ReferenceKind, Status, Urgency, UtcOffsetSource,
    ABI_MINOR, PERIOD_SHIFT,
};
use crate::error::Error;

/// Servo figures of the last update, as linuxptp logs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServoFigures {
    /// Measured offset of the clock from its reference, ns.
    pub offset_ns: i64,
    /// The servo's frequency figure, ppt (0.001 ppb): the NIC's estimated frequency error,
    /// positive when it runs fast (linuxptp's sign; the applied correction is its negation).
    pub freq_ppt: i64,
    /// Measurement window, ns.
    pub delay_ns: u64,
    /// linuxptp servo state: 0 unlocked, 1 jump, 2 locked, 3 locked stable.
    pub state: u32,
}

/// Which reference disciplines the clock and, under PTP, who it is (ABI minor 3; see
/// [`ClockData::reference_kind`]). Default: the system clock, everything else zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    pub kind: ReferenceKind,
    /// PTP grandmaster identity (EUI-64, wire order); zero unless PTP.
    pub gm_identity: [u8; 8],
    /// PTP stepsRemoved as announced.
    pub steps_removed: u32,
    /// PTP port state, linuxptp numbering (9 = SLAVE); 0 unless PTP.
    pub port_state: u32,
    /// `PTP_FLAG_*` bits as announced (leap61/59, UTC offset valid, PTP timescale, traceability).
    pub flags: u32,
    /// Where `tai_utc_offset_s` comes from.
    pub utc_offset_source: UtcOffsetSource,
    /// The grandmaster's announced clockAccuracy code (0 unless PTP).
    pub gm_clock_accuracy: u32,
    /// Error bound share the announced accuracy implies, ns (0: none; `u64::MAX`: unknown).
    pub gm_accuracy_ns: u64,
}

impl Default for Reference {
    fn default() -> Self {
        Self {
            kind: ReferenceKind::SystemClock,
            gm_identity: [0; 8],
            steps_removed: 0,
            port_state: 0,
            flags: 0,
            utc_offset_source: UtcOffsetSource::Host,
            gm_clock_accuracy: 0,
            gm_accuracy_ns: 0,
        }
    }
}

impl Reference {
    /// A PPS reference (numbered by the host's clock, so the UTC offset is the host's).
    pub fn pps() -> Self {
        Self { kind: ReferenceKind::Pps, ..Self::default() }
    }

    /// The error bound share an announced clockAccuracy code implies, ns (IEEE 1588-2019 table 5:
    /// 0x17 = 1 ps … 0x20 = 25 ns, 0x21 = 100 ns, … 0x2F = 1 s, 0x30 = 10 s; fractions of a ns round
    /// up to 1). `u64::MAX` for 0x31 (> 10 s), 0xFE (unknown) and reserved codes: no bound.
    pub fn accuracy_ns_for_code(code: u8) -> u64 {
        // 1, 2.5, 10, 25, 100, 250 … ps from code 0x17 on, in ps.
        const STEPS_PS: [u64; 26] = [
            1,
            3, // 2.5 ps, rounded up below anyway
            10,
            25,
            100,
            250,
            1_000,
            2_500,
            10_000,
            25_000,
            100_000,
            250_000,
            1_000_000,
            2_500_000,
            10_000_000,
            25_000_000,
            100_000_000,
            250_000_000,
            1_000_000_000,
            2_500_000_000,
            10_000_000_000,
            25_000_000_000,
            100_000_000_000,
            250_000_000_000,
            1_000_000_000_000,
            10_000_000_000_000,
        ];
        match code {
            0x17..=0x30 => STEPS_PS[(code - 0x17) as usize].div_ceil(1_000),
            _ => u64::MAX,
        }
    }

    /// The grandmaster identity as ptp4l prints it: `001122.fffe.334455`.
    pub fn gm_identity_text(&self) -> String {
        let h = |r: std::ops::Range<usize>| {
            self.gm_identity[r].iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        format!("{}.{}.{}", h(0..3), h(3..5), h(5..8))
    }
}

/// The estimated error beside the maximum one (ABI minor 4): what the writer believes
/// statistically, where `error_bound_ns` is what it can prove. Never above the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Estimated error at the anchor, ns (`u64::MAX`: unknown).
    pub error_ns: u64,
    /// Its growth away from the anchor: the rate's own estimated error, ppt (ps per s).
    pub growth_ppt: u32,
}

impl Estimate {
    /// Nothing estimated (a page of an older writer reads so too).
    pub const UNKNOWN: Estimate = Estimate { error_ns: u64::MAX, growth_ppt: 0 };

    /// The estimated error `since_anchor_ns` away from its anchor (`u64::MAX` stays unknown).
    pub fn grown(&self, since_anchor_ns: u64) -> u64 {
        error_at(self.error_ns, self.growth_ppt as u64, since_anchor_ns)
    }

    /// The estimate from a measurement's random parts, each a 1σ figure in ns, combined as the
    /// root of their sum of squares (rounded up), with the rate's estimated error in ppb.
    pub fn from_parts(sigmas_ns: &[f64], rate_error_ppb: f64) -> Estimate {
        let error = sigmas_ns.iter().map(|s| s * s).sum::<f64>().sqrt().ceil();
        Estimate {
            error_ns: if error.is_finite() { error.min(u64::MAX as f64 - 1.0) as u64 } else { u64::MAX },
            growth_ppt: (rate_error_ppb * 1000.0).clamp(0.0, u32::MAX as f64) as u32,
        }
    }

    /// The rate's estimated error in ppb.
    pub fn rate_error_ppb(&self) -> f64 {
        self.growth_ppt as f64 / 1000.0
    }
}

/// One published update of the counter→TAI mapping and the clock's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub counter_kind: CounterKind,
    /// Counter value at the anchor.
    pub counter_value: u64,
    /// ns per counter tick × 2^48 (see [`period_from_ns_per_tick`]).
    pub counter_period: u64,
    /// TAI ns at the anchor.
    pub anchor_tai_ns: u64,
    /// Error bound at the anchor, ns (`u64::MAX`: unknown).
    pub error_bound_ns: u64,
    /// Error bound growth away from the anchor, ps/s.
    pub error_growth_ppt: u32,
    pub status: Status,
    pub leap: Leap,
    /// TAI second at which `leap` takes effect (0 when none).
    pub leap_tai_s: u64,
    pub tai_utc_offset_s: i32,
    /// TAI ns when the update was made (readers measure staleness from it; 0 reads as "no time yet").
    pub updated_tai_ns: u64,
    /// Nominal ns between updates.
    pub update_interval_ns: u64,
    /// Updates published by the current writer; set by the writer on publish.
    pub update_count: u64,
    pub servo: ServoFigures,
    /// The reference identity (minor 3), published with the mapping.
    pub reference: Reference,
    /// The estimated error (minor 4); the writer clamps it to the maximum error and growth.
    pub estimate: Estimate,
    /// Disruption epoch (minor 4): set by the writer on publish (what a publisher puts here is
    /// ignored; see [`crate::Writer::mark_disruption`]); 0 read from a page of an older writer.
    pub epoch: u32,
}

/// Converts a rate (clock ns per counter tick) to the page's fixed point.
pub fn period_from_ns_per_tick(ns_per_tick: f64) -> u64 {
    (ns_per_tick * (1u64 << PERIOD_SHIFT) as f64).round() as u64
}

/// The page's fixed-point period back to ns per tick.
pub fn period_to_ns_per_tick(period: u64) -> f64 {
    period as f64 / (1u64 << PERIOD_SHIFT) as f64
}

impl Snapshot {
    /// Clock time (TAI ns) at counter value `counter`, by the mapping.
    #[inline]
    pub fn tai_at(&self, counter: u64) -> i128 {
        tai_at(self.counter_value, self.counter_period, self.anchor_tai_ns, counter)
    }

    /// Error bound at TAI time `tai_ns`: the anchor's bound grown by the drift allowance.
    #[inline]
    pub fn error_at(&self, tai_ns: i128) -> u64 {
        let since = (tai_ns - self.anchor_tai_ns as i128).unsigned_abs();
        error_at(self.error_bound_ns, self.error_growth_ppt as u64, since.min(u64::MAX as u128) as u64)
    }

    /// TAI − UTC in effect at TAI second `tai_s`, taking a pending leap into account.
    pub fn tai_utc_offset_at(&self, tai_s: u64) -> i32 {
        utc_offset_at(self.tai_utc_offset_s, self.leap, self.leap_tai_s, tai_s)
    }

    pub(crate) fn store(&self, c: &ClockData) {
        c.counter_kind.store(self.counter_kind as u32, Relaxed);
        c.counter_value.store(self.counter_value, Relaxed);
        c.counter_period.store(self.counter_period, Relaxed);
        c.anchor_tai_ns.store(self.anchor_tai_ns, Relaxed);
        c.error_bound_ns.store(self.error_bound_ns, Relaxed);
        c.error_growth_ppt.store(self.error_growth_ppt, Relaxed);
        c.status.store(self.status as u32, Relaxed);
        c.leap.store(self.leap as u32, Relaxed);
        c.leap_tai_s.store(self.leap_tai_s, Relaxed);
        c.tai_utc_offset_s.store(self.tai_utc_offset_s, Relaxed);
        c.updated_tai_ns.store(self.updated_tai_ns, Relaxed);
        c.update_interval_ns.store(self.update_interval_ns, Relaxed);
        c.update_count.store(self.update_count, Relaxed);
        c.servo_offset_ns.store(self.servo.offset_ns, Relaxed);
        c.servo_freq_ppt.store(self.servo.freq_ppt, Relaxed);
        c.servo_delay_ns.store(self.servo.delay_ns, Relaxed);
        c.servo_state.store(self.servo.state, Relaxed);
        let r = &self.reference;
        c.reference_kind.store(r.kind as u32, Relaxed);
        for (slot, b) in c.gm_identity.iter().zip(r.gm_identity) {
            slot.store(b, Relaxed);
        }
        c.ptp_steps_removed.store(r.steps_removed, Relaxed);
        c.ptp_port_state.store(r.port_state, Relaxed);
        c.ptp_flags.store(r.flags, Relaxed);
        c.utc_offset_source.store(r.utc_offset_source as u32, Relaxed);
        c.gm_clock_accuracy.store(r.gm_clock_accuracy, Relaxed);
        c.gm_accuracy_ns.store(r.gm_accuracy_ns, Relaxed);
        c.disruption_epoch.store(self.epoch, Relaxed);
        c.est_error_ns.store(self.estimate.error_ns, Relaxed);
        c.est_error_growth_ppt.store(self.estimate.growth_ppt, Relaxed);
    }

    /// The estimated error at TAI time `tai_ns` (`u64::MAX` when unknown or not published).
    pub fn estimated_error_at(&self, tai_ns: i128) -> u64 {
        if self.epoch == 0 {
            return u64::MAX;
        }
        let since = (tai_ns - self.anchor_tai_ns as i128).unsigned_abs();
        let since = since.min(u64::MAX as u128) as u64;
        error_at(self.estimate.error_ns, self.estimate.growth_ppt as u64, since)
    }

    /// Relaxed loads of every field (call inside a seqlock read); validate with [`RawSnapshot::check`].
    pub(crate) fn load(c: &ClockData) -> RawSnapshot {
        RawSnapshot {
            counter_kind: c.counter_kind.load(Relaxed),
            status: c.status.load(Relaxed),
            leap: c.leap.load(Relaxed),
            reference_kind: c.reference_kind.load(Relaxed),
            utc_offset_source: c.utc_offset_source.load(Relaxed),
            rest: Snapshot {
                counter_kind: CounterKind::MonotonicRaw,
                counter_value: c.counter_value.load(Relaxed),
                counter_period: c.counter_period.load(Relaxed),
                anchor_tai_ns: c.anchor_tai_ns.load(Relaxed),
                error_bound_ns: c.error_bound_ns.load(Relaxed),
                error_growth_ppt: c.error_growth_ppt.load(Relaxed),
                status: Status::Unsynchronized,
                leap: Leap::None,
                leap_tai_s: c.leap_tai_s.load(Relaxed),
                tai_utc_offset_s: c.tai_utc_offset_s.load(Relaxed),
                updated_tai_ns: c.updated_tai_ns.load(Relaxed),
                update_interval_ns: c.update_interval_ns.load(Relaxed),
                update_count: c.update_count.load(Relaxed),
                servo: ServoFigures {
                    offset_ns: c.servo_offset_ns.load(Relaxed),
                    freq_ppt: c.servo_freq_ppt.load(Relaxed),
                    delay_ns: c.servo_delay_ns.load(Relaxed),
                    state: c.servo_state.load(Relaxed),
                },
                reference: Reference {
                    kind: ReferenceKind::Unknown,
                    gm_identity: std::array::from_fn(|i| c.gm_identity[i].load(Relaxed)),
                    steps_removed: c.ptp_steps_removed.load(Relaxed),
                    port_state: c.ptp_port_state.load(Relaxed),
                    flags: c.ptp_flags.load(Relaxed),
                    utc_offset_source: UtcOffsetSource::Unknown,
                    gm_clock_accuracy: c.gm_clock_accuracy.load(Relaxed),
                    gm_accuracy_ns: c.gm_accuracy_ns.load(Relaxed),
                },
                estimate: Estimate {
                    error_ns: c.est_error_ns.load(Relaxed),
                    growth_ppt: c.est_error_growth_ppt.load(Relaxed),
                },
                epoch: c.disruption_epoch.load(Relaxed),
            },
        }
    }
}

/// A consistent copy whose enumerations are not validated yet.
pub(crate) struct RawSnapshot {
    counter_kind: u32,
    status: u32,
    leap: u32,
    reference_kind: u32,
    utc_offset_source: u32,
    rest: Snapshot,
}

impl RawSnapshot {
    /// Validates the enumerations. A reference kind or UTC offset source this reader does not
    /// know is `Unknown` on a page of a newer minor (`page_minor` > [`ABI_MINOR`]: a compatible
    /// addition) and `Err(Corrupt)` otherwise (no writer of a minor we know publishes it). Status,
    /// leap and counter kind stay strict: a new value there would change what the time means,
    /// which takes a major version.
    pub(crate) fn check(self, page_minor: u16) -> Result<Snapshot, Error> {
        let corrupt = |field, value: u32| Error::Corrupt { field, value: value.into() };
        let newer = page_minor > ABI_MINOR;
        Ok(Snapshot {
            counter_kind: CounterKind::from_raw(self.counter_kind)
                .ok_or_else(|| corrupt("counter kind", self.counter_kind))?,
            status: Status::from_raw(self.status).ok_or_else(|| corrupt("status", self.status))?,
            leap: Leap::from_raw(self.leap).ok_or_else(|| corrupt("leap indicator", self.leap))?,
            reference: Reference {
                kind: match ReferenceKind::from_raw(self.reference_kind) {
                    Some(kind) => kind,
                    None if newer => ReferenceKind::Unknown,
                    None => return Err(corrupt("reference kind", self.reference_kind)),
                },
                utc_offset_source: match UtcOffsetSource::from_raw(self.utc_offset_source) {
                    Some(source) => source,
                    None if newer => UtcOffsetSource::Unknown,
                    None => return Err(corrupt("UTC offset source", self.utc_offset_source)),
                },
                ..self.rest.reference
            },
            // An older writer's page has zeros there (or, when it took over a newer writer's page,
            // what that one left): no estimate, not a 0 ns one, and no epoch.
            estimate: if self.rest.epoch == 0 || page_minor < 4 {
                Estimate::UNKNOWN
            } else {
                self.rest.estimate
            },
            epoch: if page_minor < 4 { 0 } else { self.rest.epoch },
            ..self.rest
        })
    }
}

/// `anchor + (counter − counter_value) × period / 2^48`, signed so a counter read a hair before the
/// anchor (another CPU) gives a slightly earlier time rather than a wrap.
#[inline]
pub(crate) fn tai_at(counter_value: u64, period: u64, anchor_tai_ns: u64, counter: u64) -> i128 {
    anchor_tai_ns as i128 + ticks_to_ns(counter.wrapping_sub(counter_value) as i64, period) as i128
}

/// Signed ticks × period / 2^48, rounded to the nearest ns: one 64×64→128 multiply.
#[inline]
pub(crate) fn ticks_to_ns(delta: i64, period: u64) -> i64 {
    let product = delta.unsigned_abs() as u128 * period as u128 + (1 << (PERIOD_SHIFT - 1));
    let magnitude = (product >> PERIOD_SHIFT).min(i64::MAX as u128) as i64;
    if delta < 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// The anchor's error bound grown by `growth_ppt` over `since_anchor_ns`.
#[inline]
pub(crate) fn error_at(bound_ns: u64, growth_ppt: u64, since_anchor_ns: u64) -> u64 {
    if bound_ns == u64::MAX {
        return u64::MAX;
    }
    // Fast path in u64 (dividing by a constant compiles to a multiply); u128 only on overflow.
    let growth = match since_anchor_ns.checked_mul(growth_ppt) {
        Some(p) => p / 1_000_000_000_000,
        None => {
            let g = since_anchor_ns as u128 * growth_ppt as u128 / 1_000_000_000_000;
            g.min(u64::MAX as u128) as u64
        }
    };
    bound_ns.saturating_add(growth)
}

pub(crate) fn utc_offset_at(offset_s: i32, leap: Leap, leap_tai_s: u64, tai_s: u64) -> i32 {
    match leap {
        Leap::Insert if tai_s >= leap_tai_s => offset_s + 1,
        Leap::Delete if tai_s >= leap_tai_s => offset_s - 1,
        _ => offset_s,
    }
}

/// One clock event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Event number, 1-based, never reused for a page (it survives writer restarts).
    pub seq: u64,
    /// What it reports; [`EventKind::Unknown`] for a kind added by a newer minor than this
    /// reader's (its number is in `raw_kind`).
    pub kind: EventKind,
    /// The kind's number as the page carries it (`kind as u16` for every known kind).
    pub raw_kind: u16,
    /// How much it matters; an urgency added by a newer minor reads as [`Urgency::Urgent`].
    pub urgency: Urgency,
    /// TAI ns at which it happened.
    pub tai_ns: u64,
    /// Kind-specific signed value: step ns, new status, …
    pub magnitude: i64,
    /// Kind-specific unsigned value: old status, pid, …
    pub detail: u32,
    /// The disruption epoch in force when it was posted (minor 4; 0 from an older writer). A
    /// STEP's epoch is the one that begins with it.
    pub epoch: u32,
}

impl Event {
    pub(crate) fn store(&self, slot: &EventSlot, epoch: &AtomicU32) {
        epoch.store(self.epoch, Relaxed);
        slot.tai_ns.store(self.tai_ns, Relaxed);
        slot.magnitude.store(self.magnitude, Relaxed);
        slot.kind.store(self.raw_kind, Relaxed);
        slot.urgency.store(self.urgency as u16, Relaxed);
        slot.detail.store(self.detail, Relaxed);
    }

    /// Loads slot fields. A kind or urgency this reader does not know comes back as `None` from a
    /// page of a minor we know (`page_minor` ≤ [`ABI_MINOR`]: corrupt) and as
    /// [`EventKind::Unknown`] / [`Urgency::Urgent`] from a newer minor's page.
    pub(crate) fn load(
        seq: u64,
        slot: &EventSlot,
        epoch: &AtomicU32,
        page_minor: u16,
    ) -> (u16, u16, Option<Event>) {
        let kind = slot.kind.load(Relaxed);
        let urgency = slot.urgency.load(Relaxed);
        let newer = page_minor > ABI_MINOR;
        let event = match (EventKind::from_raw(kind), Urgency::from_raw(urgency)) {
            (Some(k), Some(u)) => Some((k, u)),
            (k, u) if newer => Some((k.unwrap_or(EventKind::Unknown), u.unwrap_or(Urgency::Urgent))),
            _ => None,
        }
        .map(|(k, u)| Event {
            seq,
            kind: k,
            raw_kind: kind,
            urgency: u,
            tai_ns: slot.tai_ns.load(Relaxed),
            magnitude: slot.magnitude.load(Relaxed),
            detail: slot.detail.load(Relaxed),
            epoch: if page_minor >= 4 { epoch.load(Relaxed) } else { 0 },
        });
        (kind, urgency, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_accuracy_codes_map_to_the_standards_bounds() {
        let ns = Reference::accuracy_ns_for_code;
        let table = [
            (0x17, 1),
            (0x1D, 1),
            (0x1E, 3),
            (0x1F, 10),
            (0x20, 25),
            (0x21, 100),
            (0x22, 250),
            (0x23, 1_000),
            (0x25, 10_000),
            (0x29, 1_000_000),
            (0x2F, 1_000_000_000),
            (0x30, 10_000_000_000),
        ];
        for (code, want) in table {
            assert_eq!(ns(code), want, "code {code:#x}");
        }
        for code in [0x00, 0x16, 0x31, 0x80, 0xFE, 0xFF] {
            assert_eq!(ns(code), u64::MAX, "code {code:#x} gives no bound");
        }
    }

    #[test]
    fn mapping_evaluates_by_hand_computed_cases() {
        // 1 tick = 1 ns exactly.
        assert_eq!(tai_at(1000, 1 << 48, 5_000, 1500), 5_500);
        // 2.5 ticks per ns (0.4 ns per tick): 1_000_000 ticks = 400_000 ns.
        let p = period_from_ns_per_tick(0.4);
        assert_eq!(tai_at(0, p, 0, 1_000_000), 400_000);
        // Counter a little behind the anchor: earlier time, no wrap.
        assert_eq!(tai_at(1000, 1 << 48, 5_000, 990), 4_990);
        // 10 s of a 3 GHz TSC with a +100 ppb rate: 10 s + 1 µs.
        let p = period_from_ns_per_tick(1.0 / 3.0 * (1.0 + 100e-9));
        let t = tai_at(0, p, 0, 30_000_000_000);
        assert!((t - 10_000_001_000).abs() <= 1, "{t}");
    }

    #[test]
    fn ticks_to_ns_is_symmetric_and_saturates() {
        let p = period_from_ns_per_tick(0.4);
        assert_eq!(ticks_to_ns(1_000_000, p), 400_000);
        assert_eq!(ticks_to_ns(-1_000_000, p), -400_000);
        assert_eq!(ticks_to_ns(i64::MIN, u64::MAX), -i64::MAX);
        assert_eq!(ticks_to_ns(i64::MAX, u64::MAX), i64::MAX);
    }

    #[test]
    fn period_resolution_is_finer_than_a_hundredth_of_a_ppb() {
        let ns_per_tick = 1.0 / 3.5; // a 3.5 GHz TSC
        let p = period_from_ns_per_tick(ns_per_tick);
        let p2 = period_from_ns_per_tick(ns_per_tick * (1.0 + 0.01e-9));
        assert!(p2 > p, "a 0.01 ppb change must be representable");
        assert!((period_to_ns_per_tick(p) - ns_per_tick).abs() / ns_per_tick < 1e-13);
    }

    #[test]
    fn error_grows_with_distance_from_anchor() {
        assert_eq!(error_at(100, 1_000_000, 0), 100);
        // 1 ppm growth over 1 s either side adds 1000 ns.
        assert_eq!(error_at(100, 1_000_000, 1_000_000_000), 1100);
        assert_eq!(error_at(u64::MAX, 5, 10), u64::MAX);
        assert_eq!(error_at(u64::MAX - 1, u64::MAX, u64::MAX), u64::MAX);
        // Past u64 in the product: 1e10 ns × 1e12 ppt = 1e10 ns of growth, exactly.
        assert_eq!(error_at(0, 1_000_000_000_000, 10_000_000_000), 10_000_000_000);
    }

    #[test]
    fn utc_offset_switches_at_the_leap() {
        assert_eq!(utc_offset_at(37, Leap::None, 0, 100), 37);
        assert_eq!(utc_offset_at(37, Leap::Insert, 100, 99), 37);
        assert_eq!(utc_offset_at(37, Leap::Insert, 100, 100), 38);
        assert_eq!(utc_offset_at(37, Leap::Delete, 100, 100), 36);
    }
}
