//! Delay_Req rate limiting while the port serves: a token bucket per requesting port identity, so
//! one flooding peer costs us its own answers, not everyone's.
//!
//! A peer may send at 4× the rate our logMinDelayReqInterval allows it, in bursts of 8
//! (a slave's first requests after a step come fast); more is dropped and counted. At most
//! [`MAX_PEERS`] peers are tracked (the longest idle is forgotten), and all peers together get
//! [`GLOBAL_FACTOR`] peers' worth, so a flood from ever-new identities is capped too.

use std::collections::HashMap;

/// Peers tracked at once.
pub const MAX_PEERS: usize = 256;
/// The shared bucket's size in peers' worth (rate and burst).
pub const GLOBAL_FACTOR: f64 = 64.0;
const BURST: f64 = 8.0;
const RATE_FACTOR: f64 = 4.0;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ns: i128,
}

impl Bucket {
    fn take(&mut self, now_ns: i128, rate_per_s: f64, burst: f64) -> bool {
        // A clock stepped back makes no tokens (and takes none away).
        let elapsed_s = (now_ns - self.last_ns).max(0) as f64 * 1e-9;
        self.tokens = (self.tokens + elapsed_s * rate_per_s).min(burst);
        self.last_ns = self.last_ns.max(now_ns);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The limiter (see the module docs).
#[derive(Debug)]
pub struct DelayReqLimiter {
    rate_per_s: f64,
    peers: HashMap<[u8; 10], Bucket>,
    global: Option<Bucket>,
    limited: u64,
}

impl DelayReqLimiter {
    /// For a port whose logMinDelayReqInterval is `log_interval` (a slave may ask every 2^x s).
    pub fn new(log_interval: i8) -> Self {
        let per_s = 2f64.powi(-i32::from(log_interval.clamp(-7, 7)));
        Self { rate_per_s: RATE_FACTOR * per_s, peers: HashMap::new(), global: None, limited: 0 }
    }

    /// Whether the Delay_Req from `peer` (its sourcePortIdentity, 10 bytes) received at `now_ns`
    /// may be answered; counted when not.
    pub fn allow(&mut self, peer: &[u8], now_ns: i128) -> bool {
        let Ok(key) = <[u8; 10]>::try_from(peer) else {
            self.limited += 1;
            return false;
        };
        if !self.peers.contains_key(&key) && self.peers.len() >= MAX_PEERS {
            if let Some(idle) = self.peers.iter().min_by_key(|(_, b)| b.last_ns).map(|(k, _)| *k) {
                self.peers.remove(&idle);
            }
        }
        let bucket = self.peers.entry(key).or_insert(Bucket { tokens: BURST, last_ns: now_ns });
        let ok = bucket.take(now_ns, self.rate_per_s, BURST);
        let global = self.global.get_or_insert(Bucket { tokens: BURST * GLOBAL_FACTOR, last_ns: now_ns });
        let ok = ok && global.take(now_ns, self.rate_per_s * GLOBAL_FACTOR, BURST * GLOBAL_FACTOR);
        if !ok {
            self.limited += 1;
        }
        ok
    }

    /// Delay_Reqs refused so far.
    pub fn limited(&self) -> u64 {
        self.limited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    #[test]
    fn a_flooding_peer_is_limited_and_the_others_still_pass() {
        let mut l = DelayReqLimiter::new(0); // 1 request/s allowed: 4/s passes, bursts of 8
        let (flood, calm) = ([1u8; 10], [2u8; 10]);
        let mut passed = 0;
        for i in 0..1000 {
            passed += usize::from(l.allow(&flood, i * S / 100)); // 100/s for 10 s
            if i % 100 == 0 {
                assert!(l.allow(&calm, i * S / 100), "the calm peer at {i}");
            }
        }
        assert!((40..=50).contains(&passed), "8 burst + 4/s for 10 s, got {passed}");
        assert_eq!(l.limited(), 1000 - passed as u64);
    }

    #[test]
    fn new_identities_cannot_get_round_the_limit() {
        let mut l = DelayReqLimiter::new(0);
        let mut passed = 0u32;
        for i in 0..100_000u32 {
            let mut id = [0u8; 10];
            id[..4].copy_from_slice(&i.to_be_bytes());
            passed += u32::from(l.allow(&id, i128::from(i) * S / 10_000)); // 10 s
        }
        assert!(passed <= (8.0 * GLOBAL_FACTOR + 4.0 * GLOBAL_FACTOR * 10.0) as u32 + 1, "{passed}");
        assert!(l.peers.len() <= MAX_PEERS);
    }

    #[test]
    fn a_short_identity_or_a_clock_stepped_back_does_not_panic() {
        let mut l = DelayReqLimiter::new(-3);
        assert!(!l.allow(&[1, 2], 0));
        assert!(l.allow(&[3; 10], 10 * S));
        assert!(l.allow(&[3; 10], 0), "a step back: the burst is still there");
    }
}
