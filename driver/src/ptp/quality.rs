//! What our Announce says of our own clock, from our own state and the host's: clockQuality from
//! the discipline's lock and bound, timeSource and the UTC offset/leap flags from the kernel.
//!
//! Pure functions; the port applies them ([`super::port`]) and nicclockd feeds them the kernel's
//! state (adjtimex) and the discipline's.

/// IEEE 1588 timeSource codes (table 6) the host can name.
pub mod time_source {
    pub const GNSS: u8 = 0x20;
    pub const PTP: u8 = 0x40;
    pub const NTP: u8 = 0x50;
    pub const HAND_SET: u8 = 0x60;
    pub const OTHER: u8 = 0x90;
    pub const INTERNAL_OSCILLATOR: u8 = 0xA0;
}

/// clockClass, clockAccuracy (IEEE 1588 code) and offsetScaledLogVariance, in the BMCA's order.
pub type Quality = (u8, u8, u16);

/// The quality statime gives its own DefaultDS whatever the clock (statime 0.4 cannot be told
/// another): class 248, accuracy unknown, variance 0x8000 − 23·256.
pub const STATIME_OWN_QUALITY: Quality = (248, 0xFE, 0x8000 - 23 * 256);

/// The quality of a clock that is not locked: class 255, accuracy unknown, the worst variance.
pub const UNLOCKED_QUALITY: Quality = (255, 0xFE, 0xFFFF);

/// The clockQuality we announce for a clock whose discipline is LOCKED with the published bound
/// `locked_bound_ns`, or not locked (`None`).
///
/// LOCKED with a bound of N ns: class 248 (a clock that is not a primary reference), the smallest
/// clockAccuracy code whose range covers N (IEEE 1588-2019 table 5, the table
/// [`nicclock::Reference::accuracy_ns_for_code`] reads back), and the variance of an error with N
/// as its standard deviation (a conservative reading of the bound). Not locked: class 255,
/// accuracy unknown (0xFE), variance 0xFFFF: every other clock is preferred.
pub fn quality_for_bound(locked_bound_ns: Option<u64>) -> Quality {
    let Some(bound) = locked_bound_ns else { return UNLOCKED_QUALITY };
    // From 0x1D (1 ns): the codes below it are sub-ns, which a bound in whole ns cannot claim.
    let accuracy = (0x1Du8..=0x30)
        .find(|&c| nicclock::Reference::accuracy_ns_for_code(c) >= bound.max(1))
        .unwrap_or(0x31);
    let sigma_s = bound.max(1) as f64 * 1e-9;
    let scaled = 0x8000 as f64 + 256.0 * (sigma_s * sigma_s).log2();
    (248, accuracy, scaled.round().clamp(0.0, 65534.0) as u16)
}

/// A foreign Announce's quality as statime must see it for its BMCA to decide as if our own
/// DefaultDS carried `ours` (statime compares every Announce with [`STATIME_OWN_QUALITY`]): a
/// quality just better than statime's own when `theirs` is better than `ours`, just worse when
/// worse, statime's own when equal (then priority2 and the identities decide, as they should).
/// Priority1 comes before the quality in the comparison and is left as it is.
pub fn quality_for_statime(ours: Quality, theirs: Quality) -> Quality {
    let (class, accuracy, variance) = STATIME_OWN_QUALITY;
    match theirs.cmp(&ours) {
        std::cmp::Ordering::Less => (class, accuracy, variance - 1),
        std::cmp::Ordering::Equal => STATIME_OWN_QUALITY,
        std::cmp::Ordering::Greater => (class, accuracy, variance + 1),
    }
}

/// The host's clock as the kernel describes it (adjtimex, read only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelTime {
    /// The kernel's TAI − UTC, s (0: never set).
    pub tai_offset_s: i32,
    /// A leap second is to be inserted (STA_INS) / deleted (STA_DEL) at the end of the UTC day.
    pub leap_insert: bool,
    pub leap_delete: bool,
    /// Something keeps the system clock synchronized (STA_UNSYNC clear: chronyd, ntpd, phc2sys
    /// and timesyncd clear it; nothing sets it clear on a free-running host).
    pub synchronized: bool,
}

/// Our time properties as a master announces them (the [`super::port::LocalClock`]'s besides the
/// bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeProperties {
    /// currentUtcOffset, when valid (currentUtcOffsetValid).
    pub utc_offset_s: Option<i16>,
    pub leap61: bool,
    pub leap59: bool,
    pub time_traceable: bool,
    pub frequency_traceable: bool,
    pub time_source: u8,
}

impl Default for TimeProperties {
    /// A free-running clock that knows nothing.
    fn default() -> Self {
        Self {
            utc_offset_s: None,
            leap61: false,
            leap59: false,
            time_traceable: false,
            frequency_traceable: false,
            time_source: time_source::INTERNAL_OSCILLATOR,
        }
    }
}

/// The time properties of a NIC clock disciplined to the host's CLOCK_REALTIME or CLOCK_TAI.
///
/// `nic_tai_utc_s` is the TAI − UTC the NIC clock's time was set with and `configured_s` the
/// `--tai-offset` (which takes precedence there): the announced currentUtcOffset is the NIC's, so
/// a slave's UTC matches ours; it is valid when it came from the admin or from the kernel (a
/// kernel TAI offset of 0 means never set: the default is a guess, announced not valid). The
/// leap flags are the kernel's (set by the NTP daemon on the day of a leap second). timeSource:
/// NTP while the kernel says the clock is synchronized (what usually keeps it so; the kernel does
/// not say which), else the host's internal oscillator; traceable only while synchronized.
pub fn host_time_properties(
    kernel: KernelTime,
    configured_s: Option<i32>,
    nic_tai_utc_s: i32,
) -> TimeProperties {
    let valid = configured_s.is_some() || kernel.tai_offset_s != 0;
    let utc_offset_s = valid.then(|| nic_tai_utc_s.clamp(i16::MIN.into(), i16::MAX.into()) as i16);
    TimeProperties {
        utc_offset_s,
        leap61: kernel.leap_insert && !kernel.leap_delete,
        leap59: kernel.leap_delete && !kernel.leap_insert,
        time_traceable: kernel.synchronized && valid,
        frequency_traceable: kernel.synchronized,
        time_source: if kernel.synchronized { time_source::NTP } else { time_source::INTERNAL_OSCILLATOR },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_picks_the_smallest_accuracy_code_covering_it() {
        assert_eq!(quality_for_bound(None), (255, 0xFE, 0xFFFF));
        assert_eq!(quality_for_bound(Some(80)).1, 0x21, "80 ns: within 100 ns");
        assert_eq!(quality_for_bound(Some(100)).1, 0x21, "100 ns: within 100 ns");
        assert_eq!(quality_for_bound(Some(101)).1, 0x22, "101 ns: within 250 ns");
        assert_eq!(quality_for_bound(Some(0)).1, 0x1D, "never below 1 ns");
        assert_eq!(quality_for_bound(Some(2_000_000_000)).1, 0x30, "2 s: within 10 s");
        assert_eq!(quality_for_bound(Some(20_000_000_000)).1, 0x31, "beyond 10 s");
        // A tighter bound is never announced as a worse clock.
        let q: Vec<_> = [10, 100, 1_000, 100_000, 10_000_000].map(|b| quality_for_bound(Some(b))).into();
        assert!(q.windows(2).all(|w| w[0] < w[1]), "{q:?}");
        assert!(q.iter().all(|&x| x < UNLOCKED_QUALITY));
    }

    #[test]
    fn variance_is_the_bound_as_one_sigma() {
        // 1 µs: σ² = 10^-12 s² = 2^-39.863, 0x8000 + 256·log2(σ²) = 32768 − 10204.9.
        assert_eq!(quality_for_bound(Some(1_000)).2, 22563);
        assert!(
            quality_for_bound(Some(u64::MAX)).2 < 0xFFFF,
            "a locked clock never claims the unlocked variance"
        );
    }

    #[test]
    fn statime_sees_the_order_our_own_quality_would_give() {
        let locked_100ns = quality_for_bound(Some(100));
        let locked_1us = quality_for_bound(Some(1_000));
        let ptp4l_default = (248, 0xFE, 0xFFFF);
        let gps_gm = (6, 0x21, 0x4E5D);
        let s = STATIME_OWN_QUALITY;
        // A better foreign clock reads better than statime's own, a worse one worse.
        assert!(quality_for_statime(locked_1us, locked_100ns) < s);
        assert!(quality_for_statime(locked_100ns, locked_1us) > s);
        assert!(quality_for_statime(UNLOCKED_QUALITY, ptp4l_default) < s, "an unlocked clock yields");
        assert!(quality_for_statime(locked_1us, ptp4l_default) > s, "a locked one beats ptp4l's defaults");
        assert!(quality_for_statime(locked_100ns, gps_gm) < s);
        assert_eq!(quality_for_statime(locked_1us, locked_1us), s, "equal: priority2 and identity decide");
        // Two of our ports, each comparing the other with itself, agree on who is better.
        for (a, b) in [(locked_100ns, locked_1us), (UNLOCKED_QUALITY, locked_1us), (locked_1us, locked_1us)] {
            let a_sees_b = quality_for_statime(a, b).cmp(&s);
            let b_sees_a = quality_for_statime(b, a).cmp(&s);
            assert_eq!(a_sees_b, b_sees_a.reverse(), "{a:?} / {b:?}");
        }
    }

    #[test]
    fn time_properties_come_from_the_kernel_else_the_configured_offset() {
        let free = KernelTime::default();
        let p = host_time_properties(free, None, 37);
        assert_eq!(p.utc_offset_s, None, "the default 37 is a guess: not valid");
        assert_eq!(p.time_source, time_source::INTERNAL_OSCILLATOR);
        assert!(!p.time_traceable && !p.frequency_traceable && !p.leap61 && !p.leap59);

        let p = host_time_properties(free, Some(37), 37);
        assert_eq!(p.utc_offset_s, Some(37), "--tai-offset: valid");
        assert!(!p.time_traceable, "a free-running host is not traceable, whatever its offset");

        let ntp = KernelTime { tai_offset_s: 37, synchronized: true, ..KernelTime::default() };
        let p = host_time_properties(ntp, None, 37);
        assert_eq!((p.utc_offset_s, p.time_source), (Some(37), time_source::NTP));
        assert!(p.time_traceable && p.frequency_traceable);

        let inserting = KernelTime { leap_insert: true, ..ntp };
        assert!(host_time_properties(inserting, None, 37).leap61);
        let deleting = KernelTime { leap_delete: true, ..ntp };
        let p = host_time_properties(deleting, None, 37);
        assert!(p.leap59 && !p.leap61);

        let synced_no_offset = KernelTime { synchronized: true, ..KernelTime::default() };
        let p = host_time_properties(synced_no_offset, None, 37);
        assert_eq!(p.utc_offset_s, None);
        assert!(!p.time_traceable && p.frequency_traceable, "time needs a valid UTC offset too");
    }
}
