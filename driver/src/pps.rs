//! The PPS reference's servo input, pure: an external stamp of a PPS edge, the whole second it
//! marks (the system clock's nearest, as ts2phc without NMEA), the offset, outliers and missed pulses.
//!
//! The igb stamps both edges of a pulse. The leading edge is told from the trailing one by the
//! time since the previous edge: under half a second after it, an edge ends a pulse (so pulses
//! must be narrower than half a second, as GPS receivers' are); the very first edge, with nothing
//! before it, is not used.

use std::collections::VecDeque;

const NS_PER_S: i128 = 1_000_000_000;

/// Tunables of the PPS input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PpsConfig {
    /// A pulse this late (after its second, by the system clock) counts as missed, ns.
    pub missing_after_ns: u64,
    /// Once locked, a pulse further than this from the recent ones (and than 8 of their median
    /// absolute deviations) is an outlier, ns.
    pub outlier_floor_ns: u64,
    /// Outliers in a row after which the clock is taken to have really moved (history cleared).
    pub outlier_limit: u32,
}

impl Default for PpsConfig {
    fn default() -> Self {
        Self { missing_after_ns: 500_000_000, outlier_floor_ns: 1_000, outlier_limit: 4 }
    }
}

/// What one stamp gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PpsSample {
    /// Feed the servo: the NIC's disciplined time at the pulse minus the second it marks.
    Offset {
        offset_ns: i64,
        /// The whole second the pulse marks, reference (TAI) ns.
        second_ns: i128,
    },
    /// Far from the recent offsets (a glitch on the line): not used.
    Outlier { offset_ns: i64, typical_ns: i64, in_a_row: u32 },
    /// A second pulse for a second already seen: not used.
    Duplicate { second_ns: i128 },
    /// The trailing edge of a pulse (under half a second after the previous edge): not used.
    TrailingEdge,
    /// The first edge since the start (or a step, or a gap): which edge it is is not known yet.
    FirstEdge,
}

/// Edges closer than this to the previous one end a pulse, ns.
const TRAILING_EDGE_NS: i128 = NS_PER_S / 2;

/// Tracks the pulses: assigns seconds, rejects outliers, counts missed pulses.
#[derive(Debug)]
pub struct PpsTracker {
    config: PpsConfig,
    /// The second of the last pulse used (or the start, rounded down, before any).
    last_second_ns: i128,
    seen_any: bool,
    /// Missed pulses already reported since the last one used.
    missed_reported: u64,
    recent: VecDeque<i64>,
    outliers_in_a_row: u32,
    /// The previous edge (any), NIC disciplined ns.
    last_edge_ns: Option<i128>,
}

impl PpsTracker {
    /// A tracker started at reference time `start_ref_ns`: a pulse is due at each second after it.
    pub fn new(config: PpsConfig, start_ref_ns: u64) -> Self {
        let start = start_ref_ns as i128;
        Self {
            config,
            last_second_ns: start - start.rem_euclid(NS_PER_S),
            seen_any: false,
            missed_reported: 0,
            recent: VecDeque::new(),
            outliers_in_a_row: 0,
            last_edge_ns: None,
        }
    }

    /// A stamp: `stamp_ns` is the NIC's disciplined time at the edge, `nic_now_ns` and `ref_now_ns`
    /// one bracketed reading of NIC and system clock after it. The system clock places the edge
    /// (now minus the time since it, as the NIC measured it) and the nearest whole second is the
    /// one it marks, which needs the system clock within half a second of the truth. `locked`:
    /// whether the servo is locked (outliers are only judged then; converging offsets move fast).
    pub fn on_stamp(&mut self, stamp_ns: i128, nic_now_ns: i128, ref_now_ns: u64, locked: bool) -> PpsSample {
        let edge_ref = ref_now_ns as i128 - (nic_now_ns - stamp_ns);
        let second_ns = (edge_ref + NS_PER_S / 2).div_euclid(NS_PER_S) * NS_PER_S;
        let unused = match self.last_edge_ns.replace(stamp_ns) {
            None => Some(PpsSample::FirstEdge),
            Some(previous) if stamp_ns - previous < TRAILING_EDGE_NS => Some(PpsSample::TrailingEdge),
            Some(_) => None,
        };
        if let Some(unused) = unused {
            // Not used, but pulses are coming: none is missing up to this second.
            if !self.seen_any || second_ns > self.last_second_ns {
                self.last_second_ns = second_ns;
                self.missed_reported = 0;
            }
            self.seen_any = true;
            return unused;
        }
        if self.seen_any && second_ns <= self.last_second_ns {
            return PpsSample::Duplicate { second_ns };
        }
        let offset_ns = (stamp_ns - second_ns).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        if locked && self.recent.len() >= 4 {
            let typical = median(self.recent.iter().copied());
            let mad = median(self.recent.iter().map(|o| (o - typical).abs()));
            let limit = (self.config.outlier_floor_ns as i64).max(8 * mad);
            if (offset_ns - typical).abs() > limit {
                self.outliers_in_a_row += 1;
                if self.outliers_in_a_row < self.config.outlier_limit {
                    return PpsSample::Outlier {
                        offset_ns,
                        typical_ns: typical,
                        in_a_row: self.outliers_in_a_row,
                    };
                }
                self.recent.clear();
            }
        }
        self.outliers_in_a_row = 0;
        if self.recent.len() == 8 {
            self.recent.pop_front();
        }
        self.recent.push_back(offset_ns);
        self.last_second_ns = second_ns;
        self.seen_any = true;
        self.missed_reported = 0;
        PpsSample::Offset { offset_ns, second_ns }
    }

    /// Pulses missed by reference time `ref_now_ns`: each second after the last pulse used whose
    /// pulse is more than `missing_after_ns` late. `Some(in a row)` when that count grew since the
    /// last call, else `None`.
    pub fn missed(&mut self, ref_now_ns: u64) -> Option<u64> {
        let late = ref_now_ns as i128 - self.config.missing_after_ns as i128 - self.last_second_ns;
        let missed = if late < NS_PER_S { 0 } else { (late / NS_PER_S) as u64 };
        (missed > self.missed_reported).then(|| {
            self.missed_reported = missed;
            missed
        })
    }

    /// The clock was stepped by `delta_ns`: the offsets before say nothing of the ones after; the
    /// last edge moves with the clock (so the next edge is still told leading or trailing).
    pub fn stepped(&mut self, delta_ns: i64) {
        self.recent.clear();
        self.outliers_in_a_row = 0;
        if let Some(edge) = self.last_edge_ns.as_mut() {
            *edge += delta_ns as i128;
        }
    }

    /// Forgets the offsets and the last edge (pulses were missing: the old ones say nothing of
    /// the new).
    pub fn clear_history(&mut self) {
        self.recent.clear();
        self.outliers_in_a_row = 0;
        self.last_edge_ns = None;
    }
}

fn median(values: impl Iterator<Item = i64>) -> i64 {
    let mut v: Vec<i64> = values.collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_637_000_000_000;

    #[test]
    fn the_nearest_second_by_the_system_clock_and_the_offset_to_it() {
        let mut t = PpsTracker::new(PpsConfig::default(), T0 + 200_000_000);
        // The first edge: leading or trailing, nobody knows yet.
        let first = (T0 + 1_234) as i128;
        assert_eq!(t.on_stamp(first, first + 300_000_000, T0 + 300_000_000, false), PpsSample::FirstEdge);
        // The NIC stamped the edge at T0+1 s + 1234 ns (its time); 300 ms later (NIC) the system
        // clock, itself 40 ms ahead, reads T0 + 1.34 s: the edge was at T0+1.04 s → second T0+1 s.
        let stamp = (T0 + 1_000_001_234) as i128;
        let s = t.on_stamp(stamp, stamp + 300_000_000, T0 + 1_340_001_234, false);
        assert_eq!(s, PpsSample::Offset { offset_ns: 1234, second_ns: (T0 + 1_000_000_000) as i128 });
        // A NIC 0.4 s behind: its stamp 1.6 s, the system clock places the edge at 2.0 s − 30 µs.
        let stamp = (T0 + 1_600_000_000) as i128;
        let s = t.on_stamp(stamp, stamp + 100_000_000, T0 + 2_099_970_000, false);
        assert_eq!(s, PpsSample::Offset { offset_ns: -400_000_000, second_ns: (T0 + 2_000_000_000) as i128 });
        // Its trailing edge 100 ms later.
        let s = t.on_stamp(stamp + 100_000_000, stamp + 200_000_000, T0 + 2_200_000_000, false);
        assert_eq!(s, PpsSample::TrailingEdge);
        // An edge 0.6 s after that one placed in that same second again is not a new pulse.
        let stamp = stamp + 700_000_000;
        let s = t.on_stamp(stamp, stamp + 100_000_000, T0 + 2_300_000_000, false);
        assert_eq!(s, PpsSample::Duplicate { second_ns: (T0 + 2_000_000_000) as i128 });
    }

    fn feed(t: &mut PpsTracker, second: u64, offset: i64, locked: bool) -> PpsSample {
        let stamp = (T0 + second * 1_000_000_000) as i128 + offset as i128;
        t.on_stamp(stamp, stamp + 100_000_000, T0 + second * 1_000_000_000 + 100_000_000, locked)
    }

    #[test]
    fn outliers_are_rejected_once_locked_and_accepted_when_they_persist() {
        let mut t = PpsTracker::new(PpsConfig::default(), T0);
        assert_eq!(feed(&mut t, 0, 0, false), PpsSample::FirstEdge);
        // Converging: large moves are fine.
        for (k, o) in [(1, 90_000), (2, 20_000), (3, -3_000)] {
            assert!(matches!(feed(&mut t, k, o, false), PpsSample::Offset { .. }));
        }
        for (k, o) in [(4, 10), (5, -5), (6, 3), (7, 0), (8, 7), (9, -2), (10, 4), (11, 1)] {
            assert!(matches!(feed(&mut t, k, o, true), PpsSample::Offset { .. }));
        }
        // Recent: [10, -5, 3, 0, 7, -2, 4, 1]: median 3, MAD 4, limit max(1000, 8 × 4) = 1000 ns.
        assert_eq!(
            feed(&mut t, 12, 5_000, true),
            PpsSample::Outlier { offset_ns: 5_000, typical_ns: 3, in_a_row: 1 }
        );
        assert_eq!(
            feed(&mut t, 13, 900, true),
            PpsSample::Offset { offset_ns: 900, second_ns: (T0 + 13_000_000_000) as i128 }
        );
        // A real move (e.g. the antenna cable was changed): three rejections, then taken.
        for (k, n) in [(14, 1), (15, 2), (16, 3)] {
            assert!(
                matches!(feed(&mut t, k, 50_000, true), PpsSample::Outlier { in_a_row, .. } if in_a_row == n)
            );
        }
        assert!(matches!(feed(&mut t, 17, 50_000, true), PpsSample::Offset { offset_ns: 50_000, .. }));
        assert!(matches!(feed(&mut t, 18, 50_010, true), PpsSample::Offset { .. }), "the new normal");
    }

    #[test]
    fn a_step_moves_the_last_edge_so_the_trailing_one_is_still_known() {
        let mut t = PpsTracker::new(PpsConfig::default(), T0);
        assert_eq!(feed(&mut t, 1, 0, false), PpsSample::FirstEdge);
        assert!(matches!(feed(&mut t, 2, 0, false), PpsSample::Offset { .. }));
        // The servo steps the clock back 3 s; the trailing edge 100 ms later is stamped after it.
        t.stepped(-3_000_000_000);
        let stamp = (T0 + 2_100_000_000 - 3_000_000_000) as i128;
        assert_eq!(t.on_stamp(stamp, stamp + 1_000, T0 + 2_100_001_000, false), PpsSample::TrailingEdge);
    }

    #[test]
    fn missed_pulses_are_counted_once_each_and_reset_by_a_pulse() {
        let mut t = PpsTracker::new(PpsConfig::default(), T0 + 300_000_000);
        assert_eq!(t.missed(T0 + 1_400_000_000), None, "the first pulse (T0+1 s) is not 0.5 s late yet");
        assert_eq!(t.missed(T0 + 1_500_000_001), Some(1));
        assert_eq!(t.missed(T0 + 1_900_000_000), None, "reported once");
        assert_eq!(t.missed(T0 + 3_600_000_000), Some(3), "T0+2 s and T0+3 s too");
        // Pulses again: the first edge is not used, but it shows they are back.
        assert_eq!(feed(&mut t, 4, 20, false), PpsSample::FirstEdge);
        assert_eq!(t.missed(T0 + 4_600_000_000), None);
        assert!(matches!(feed(&mut t, 5, 20, false), PpsSample::Offset { .. }));
        assert_eq!(t.missed(T0 + 5_900_000_000), None);
        assert_eq!(t.missed(T0 + 6_500_000_001), Some(1), "counted from the last pulse");
    }
}
