//! Counts of received frames dropped, by reason: what the daemon will publish in
//! `nicclock status` and the stats CSV.

use super::frame::Reject;

/// Dropped-frame counters, one per [`Reject`] reason, plus the frames accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Frames accepted as PTP messages for us.
    pub accepted: u64,
    dropped: [u64; Reject::ALL.len()],
}

impl DropCounters {
    /// Counts one frame with its parse outcome.
    pub fn record<T>(&mut self, outcome: &Result<T, Reject>) {
        match outcome {
            Ok(_) => self.accepted += 1,
            Err(reason) => self.drop(*reason),
        }
    }

    /// Counts one frame dropped for `reason`.
    pub fn drop(&mut self, reason: Reject) {
        let slot = &mut self.dropped[reason as usize];
        *slot = slot.saturating_add(1);
    }

    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: Reject) -> u64 {
        self.dropped[reason as usize]
    }

    /// Frames dropped for any reason.
    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// (name, count) for every reason, in a fixed order (CSV columns).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reject::ALL.iter().map(move |r| (r.name(), self.dropped(*r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} out of order in Reject::ALL");
        }
        let mut c = DropCounters::default();
        c.record::<()>(&Err(Reject::Looped));
        c.record::<()>(&Err(Reject::Looped));
        c.record(&Ok(()));
        c.drop(Reject::BadIpChecksum);
        assert_eq!(c.dropped(Reject::Looped), 2);
        assert_eq!(c.dropped(Reject::BadIpChecksum), 1);
        assert_eq!(c.dropped(Reject::Truncated), 0);
        assert_eq!(c.accepted, 1);
        assert_eq!(c.total_dropped(), 3);
        let names: Vec<_> = c.iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(names, vec![("bad_ip_checksum", 1), ("looped", 2)]);
    }
}
