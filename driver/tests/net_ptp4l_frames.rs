//! Our frames against ptp4l's, byte for byte: frames captured from ptp4l (fixtures/ptp4l_*.txt,
//! how in their header) parse as the messages they are, and rebuilding each from its payload
//! with the same addresses (and, for UDP/IPv4, the kernel's IP identification) gives the same
//! bytes: IPv4 header fields, both checksums, ports, and the Ethernet padding of short L2 frames.

use std::net::Ipv4Addr;

use nicclock_driver::net::frame::{FrameFilter, FrameSpec, MessageClass, Transport, ETH_MIN_FRAME};

const MASTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const SLAVE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// (sender, frame) pairs from a fixture file.
fn fixture(text: &str) -> Vec<(String, Vec<u8>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (who, hex) = l.split_once(' ').expect("sender and hex");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            (who.to_string(), bytes)
        })
        .collect()
}

/// The message types each fixture holds: Sync, Follow_Up, Delay_Resp and Announce from the
/// master, Delay_Req from the slave.
const EXPECTED: [(&str, u8); 5] =
    [("master", 0), ("master", 8), ("master", 9), ("master", 0xB), ("slave", 1)];

fn check(transport: Transport, text: &str) {
    let frames = fixture(text);
    let mut seen: Vec<(&str, u8)> = Vec::new();
    for (who, frame) in &frames {
        let (src_mac, dst_mac, src_ip) = if who == "master" {
            (MASTER_MAC, SLAVE_MAC, Ipv4Addr::new(192, 168, 7, 1))
        } else {
            (SLAVE_MAC, MASTER_MAC, Ipv4Addr::new(192, 168, 7, 2))
        };
        // Received by the other end.
        let filter = FrameFilter { transport, own_mac: dst_mac, vlan: None };
        let got = filter.parse(frame).unwrap_or_else(|e| panic!("{who}'s frame rejected: {e}"));
        assert_eq!(got.src_mac, src_mac);
        assert_eq!(got.src_ip, (transport == Transport::Udp4).then_some(src_ip));
        assert_eq!(got.class, MessageClass::of_message_type(got.message_type));
        seen.push((if who == "master" { "master" } else { "slave" }, got.message_type));
        // Its own end sees it as looped back.
        let own = FrameFilter { transport, own_mac: src_mac, vlan: None };
        assert!(own.parse(frame).is_err());
        // Rebuilt from the payload: the same bytes (short L2 frames padded to 60 by us).
        let ip_id = if transport == Transport::Udp4 { u16::from_be_bytes([frame[18], frame[19]]) } else { 0 };
        let spec = FrameSpec { transport, src_mac, src_ip, vlan_tci: None, udp_checksum: true, ip_id };
        let mut expected = frame.clone();
        expected.resize(expected.len().max(ETH_MIN_FRAME), 0);
        assert_eq!(spec.build(got.payload).unwrap(), expected, "{who} messageType {}", got.message_type);
    }
    seen.sort();
    let mut want = EXPECTED.to_vec();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn udp4_frames_match_ptp4l_byte_for_byte() {
    check(Transport::Udp4, include_str!("fixtures/ptp4l_udp4.txt"));
}

#[test]
fn l2_frames_match_ptp4l_byte_for_byte() {
    check(Transport::L2, include_str!("fixtures/ptp4l_l2.txt"));
}
