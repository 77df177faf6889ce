//! Fuzz-style test of the PTP frame parser (issue 10, bad input from the wire): a seeded generator
//! feeds random and mutated frames (bit flips, truncations, length fields, random bytes, tags)
//! through both transports' filters; 0 panics, and every accepted frame is self-consistent.
//!
//! `cargo test --release -p nicclock-driver --test frame_fuzz` runs 10 M frames; a debug build
//! runs 200 k so that the everyday `cargo test` stays quick.

use std::net::Ipv4Addr;
use std::time::Instant;

use nicclock_driver::net::frame::{ipv4_checksum, FrameFilter, FrameSpec, Reject, Transport};
use nicclock_driver::net::DropCounters;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[cfg(debug_assertions)]
const FRAMES: u64 = 200_000;
#[cfg(not(debug_assertions))]
const FRAMES: u64 = 10_000_000;

const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// A valid PTP message of type `t` and `len` bytes (≥ 34).
fn message(rng: &mut SmallRng, t: u8, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len];
    rng.fill(&mut m[..]);
    m[0] = t;
    m[1] = 0x02;
    m[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    m
}

/// Valid frames to mutate: each message type, both transports, tags, checksum on and off,
/// from the master and (some) from ourselves.
fn corpus(rng: &mut SmallRng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for t in [0x0u8, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB, 0xC, 0xD] {
        for len in [34usize, 44, 64, 90, 300] {
            for transport in [Transport::L2, Transport::Udp4] {
                for vlan_tci in [None, Some(0x2005)] {
                    let src_mac = if rng.random_ratio(1, 8) { OUR_MAC } else { [0x02, 0, 0, 0, 0, 0x99] };
                    let spec = FrameSpec {
                        transport,
                        src_mac,
                        src_ip: Ipv4Addr::new(10, 0, 0, rng.random()),
                        vlan_tci,
                        udp_checksum: rng.random_bool(0.7),
                        ip_id: rng.random(),
                    };
                    out.push(spec.build(&message(rng, t, len)).unwrap());
                }
            }
        }
    }
    out
}

/// Offset of the IPv4 header in a frame we built (after an optional tag).
fn ip_at(f: &[u8]) -> usize {
    if f.len() > 13 && f[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    }
}

fn fix_ip_checksum(f: &mut [u8]) {
    let at = ip_at(f);
    if f.len() >= at + 20 {
        f[at + 10..at + 12].copy_from_slice(&[0, 0]);
        let c = ipv4_checksum(&f[at..at + 20]);
        f[at + 10..at + 12].copy_from_slice(&c.to_be_bytes());
    }
}

/// Mutates `f` in place (it starts as a copy of a valid frame).
fn mutate(rng: &mut SmallRng, f: &mut Vec<u8>) {
    match rng.random_range(0..9u32) {
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                if !f.is_empty() {
                    let i = rng.random_range(0..f.len());
                    f[i] ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => {
            let n = rng.random_range(0..=f.len());
            f.truncate(n);
        }
        2 => {
            // A length field: IPv4 total length, UDP length or PTP messageLength.
            let ip = ip_at(f);
            let at = *[ip + 2, ip + 24, ip + 30, 16, 20].get(rng.random_range(0..5)).unwrap();
            if f.len() >= at + 2 {
                let v: u16 = match rng.random_range(0..4) {
                    0 => rng.random(),
                    1 => rng.random_range(0..64),
                    _ => u16::from_be_bytes([f[at], f[at + 1]])
                        .wrapping_add(rng.random_range(0..8))
                        .wrapping_sub(4),
                };
                f[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
            if rng.random_bool(0.5) {
                fix_ip_checksum(f);
            }
        }
        3 => {
            let n = rng.random_range(0..1600);
            f.clear();
            f.resize(n, 0);
            rng.fill(&mut f[..]);
        }
        4 => {
            // Random bytes over a random range, checksum repaired half the time.
            if !f.is_empty() {
                let a = rng.random_range(0..f.len());
                let b = rng.random_range(a..=f.len().min(a + 8));
                rng.fill(&mut f[a..b]);
            }
            if rng.random_bool(0.5) {
                fix_ip_checksum(f);
            }
        }
        5 => {
            let n = rng.random_range(0..64);
            for _ in 0..n {
                f.push(rng.random());
            }
        }
        6 => {
            // Tags: insert one more 802.1Q or 802.1ad tag, or a bogus EtherType.
            if f.len() >= 14 {
                let tag: [u8; 4] = match rng.random_range(0..3) {
                    0 => [0x81, 0x00, rng.random(), rng.random()],
                    1 => [0x88, 0xA8, 0, 5],
                    _ => [rng.random(), rng.random(), rng.random(), rng.random()],
                };
                f.splice(12..12, tag);
            }
        }
        7 => {
            // Addresses and ports that are PTP's but not for this slave: the peer-delay MAC or
            // group, or an event message sent to the general port (and back), checksum off.
            let ip = ip_at(f);
            match rng.random_range(0..3) {
                0 if f.len() >= 6 => f[..6].copy_from_slice(&[0x01, 0x80, 0xC2, 0, 0, 0x0E]),
                1 if f.len() >= ip + 20 => {
                    f[ip + 16..ip + 20].copy_from_slice(&[224, 0, 0, 107]);
                    fix_ip_checksum(f);
                }
                _ if f.len() >= ip + 28 => {
                    let port = u16::from_be_bytes([f[ip + 22], f[ip + 23]]) ^ (319 ^ 320);
                    f[ip + 22..ip + 24].copy_from_slice(&port.to_be_bytes());
                    f[ip + 26..ip + 28].copy_from_slice(&[0, 0]);
                }
                _ => {}
            }
        }
        _ => {
            // IPv4 header fields with a repaired checksum: IHL, flags/fragment, protocol, dst.
            let ip = ip_at(f);
            if f.len() >= ip + 20 {
                let at = ip + [0usize, 6, 7, 9, 19][rng.random_range(0..5)];
                f[at] = rng.random();
                fix_ip_checksum(f);
            }
        }
    }
}

#[test]
fn parser_survives_random_and_mutated_frames() {
    let mut rng = SmallRng::seed_from_u64(0x6e69_63636c6f636b);
    let corpus = corpus(&mut rng);
    let filters = [
        FrameFilter { transport: Transport::L2, own_mac: OUR_MAC, vlan: None },
        FrameFilter { transport: Transport::Udp4, own_mac: OUR_MAC, vlan: None },
        FrameFilter { transport: Transport::L2, own_mac: OUR_MAC, vlan: Some(5) },
        FrameFilter { transport: Transport::Udp4, own_mac: OUR_MAC, vlan: Some(5) },
    ];
    let mut counters = DropCounters::default();
    let mut frame = Vec::with_capacity(2048);
    let start = Instant::now();
    for n in 0..FRAMES {
        frame.clear();
        frame.extend_from_slice(&corpus[rng.random_range(0..corpus.len())]);
        // One in 16 unmutated (the accept path stays exercised), a few stacked mutations.
        if n % 16 != 0 {
            for _ in 0..rng.random_range(1..=3) {
                mutate(&mut rng, &mut frame);
            }
        }
        let filter = &filters[(n % 4) as usize];
        let outcome = filter.parse(&frame);
        if let Ok(p) = &outcome {
            assert!(p.payload.len() >= 34 && p.payload.len() <= frame.len());
            assert_eq!(p.payload[1] & 0x0F, 2);
            assert_eq!(usize::from(u16::from_be_bytes([p.payload[2], p.payload[3]])), p.payload.len());
            assert_ne!(p.src_mac, OUR_MAC, "a looped frame was accepted");
            assert_eq!(p.transport, filter.transport);
            assert_eq!(p.vlan, filter.vlan);
        }
        counters.record(&outcome);
    }
    let elapsed = start.elapsed();
    let total = counters.accepted + counters.total_dropped();
    println!(
        "frame_fuzz: {total} frames parsed, 0 panics, in {:.2} s ({:.0} ns/frame); accepted {}",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / total as f64,
        counters.accepted
    );
    for (name, count) in counters.iter() {
        println!("  dropped {name}: {count}");
    }
    assert_eq!(total, FRAMES);
    assert!(counters.accepted > FRAMES / 50, "the accept path was reached");
    // The generator reaches every layer: each reason is seen.
    for r in Reject::ALL {
        assert!(counters.dropped(r) > 0, "no mutated frame hit {r:?}");
    }
}
