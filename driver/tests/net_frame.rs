//! PTP frame build and parse: byte-exact frames written out by hand for IEEE 802.3 (with and
//! without an 802.1Q tag) and UDP/IPv4 (checksums worked out below), and every rejection reason.

use std::net::Ipv4Addr;

use nicclock_driver::net::frame::{
    ipv4_checksum, udp4_checksum, BuildError, FrameFilter, FrameSpec, MessageClass, Reject, Transport,
};
use nicclock_driver::net::DropCounters;

const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const MASTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x99];
const OUR_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 7, 2);

/// A Delay_Req, 44 bytes: messageType 1, versionPTP 2, messageLength 0x002C, domain 0, flags 0,
/// correction 0, clockIdentity 02:00:00:ff:fe:00:00:01 port 1, sequenceId 7, control 1,
/// logMessageInterval 0x7F, originTimestamp 0.
fn delay_req() -> Vec<u8> {
    let mut p = vec![0x01, 0x02, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00];
    p.extend([0; 8]); // correctionField
    p.extend([0; 4]); // messageTypeSpecific
    p.extend([0x02, 0x00, 0x00, 0xFF, 0xFE, 0x00, 0x00, 0x01, 0x00, 0x01]);
    p.extend([0x00, 0x07, 0x01, 0x7F]);
    p.extend([0; 10]);
    assert_eq!(p.len(), 44);
    p
}

/// The same header as an Announce (messageType 0xB, general), 64 bytes.
fn announce() -> Vec<u8> {
    let mut p = delay_req();
    p[0] = 0x0B;
    p[3] = 64;
    p.resize(64, 0);
    p
}

fn spec(transport: Transport, vlan_tci: Option<u16>) -> FrameSpec {
    FrameSpec { transport, src_mac: OUR_MAC, src_ip: OUR_IP, vlan_tci, udp_checksum: true, ip_id: 0 }
}

fn filter(transport: Transport) -> FrameFilter {
    FrameFilter { transport, own_mac: OUR_MAC, vlan: None }
}

fn filter_vlan(transport: Transport, vlan: Option<u16>) -> FrameFilter {
    FrameFilter { vlan, ..filter(transport) }
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// IEEE 802.3: 58 bytes, padded with two zeros to 60.
fn l2_expected() -> Vec<u8> {
    let mut f = hex("011b19000000 020000000001 88f7");
    f.extend(delay_req());
    f.extend([0, 0]);
    f
}

/// UDP/IPv4. IPv4 header 45 00 0048 0000 4000 01 11 CSUM c0a80702 e0000181:
/// sum 4500+0048+0000+4000+0111+c0a8+0702+e000+0181 = 0x22f84, folded 0x2f86, checksum 0xd079.
/// UDP 013f 013f 0034 CSUM: pseudo-header c0a8+0702+e000+0181+0011+0034 = 0x1a970, header
/// 013f+013f+0034 = 0x02b2, payload words 0102+002c+0200+00ff+fe00+0001+0001+0007+017f = 0x103b5;
/// total 0x2afd7, folded 0xafd9, checksum 0x5026.
fn udp4_expected() -> Vec<u8> {
    let mut f = hex("01005e000181 020000000001 0800
         4500 0048 0000 4000 0111 d079 c0a80702 e0000181
         013f 013f 0034 5026");
    f.extend(delay_req());
    f
}

#[test]
fn builds_byte_exact_frames() {
    assert_eq!(spec(Transport::L2, None).build(&delay_req()).unwrap(), l2_expected());
    let mut tagged = hex("011b19000000 020000000001 8100 6005 88f7");
    tagged.extend(delay_req());
    assert_eq!(spec(Transport::L2, Some(0x6005)).build(&delay_req()).unwrap(), tagged);
    assert_eq!(spec(Transport::Udp4, None).build(&delay_req()).unwrap(), udp4_expected());
    // Without the UDP checksum: 0 in its place (allowed over IPv4).
    let mut no_sum = udp4_expected();
    no_sum[40..42].copy_from_slice(&[0, 0]);
    let s = FrameSpec { udp_checksum: false, ..spec(Transport::Udp4, None) };
    assert_eq!(s.build(&delay_req()).unwrap(), no_sum);
    // General messages go to port 320.
    let f = spec(Transport::Udp4, None).build(&announce()).unwrap();
    assert_eq!(&f[34..38], &hex("0140 0140"));
}

#[test]
fn checksum_helpers_match_the_worked_values() {
    let f = udp4_expected();
    assert_eq!(ipv4_checksum(&f[14..34]), 0, "a correct header sums to 0");
    let mut udp = f[34..].to_vec();
    udp[6..8].copy_from_slice(&[0, 0]);
    assert_eq!(udp4_checksum(OUR_IP, Ipv4Addr::new(224, 0, 1, 129), &udp), 0x5026);
}

#[test]
fn build_refuses_what_is_not_a_ptp_message() {
    let s = spec(Transport::L2, None);
    assert_eq!(s.build(&[0u8; 10]), Err(BuildError::NotPtp));
    let mut v1 = delay_req();
    v1[1] = 1;
    assert_eq!(s.build(&v1), Err(BuildError::NotPtp));
    let mut long = delay_req();
    long.push(0); // messageLength 44 but 45 bytes
    assert_eq!(s.build(&long), Err(BuildError::NotPtp));
    let mut small = [0u8; 59];
    assert_eq!(
        s.build_into(&delay_req(), &mut small),
        Err(BuildError::TooLong { needed: 60, available: 59 })
    );
}

#[test]
fn parses_what_it_builds() {
    for (transport, vlan, payload) in [
        (Transport::L2, None, delay_req()),
        (Transport::L2, Some(0x0007), announce()),
        (Transport::Udp4, None, delay_req()),
        (Transport::Udp4, Some(0x2123), announce()),
    ] {
        let sender =
            FrameSpec { src_mac: MASTER_MAC, src_ip: Ipv4Addr::new(192, 168, 7, 1), ..spec(transport, vlan) };
        let frame = sender.build(&payload).unwrap();
        let vid = vlan.map(|t| t & 0x0FFF);
        let got = filter_vlan(transport, vid).parse(&frame).unwrap();
        assert_eq!(got.transport, transport);
        assert_eq!(got.src_mac, MASTER_MAC);
        assert_eq!(got.vlan, vlan.map(|t| t & 0x0FFF));
        assert_eq!(got.payload, &payload[..], "padding cut off");
        assert_eq!(got.src_ip, (transport == Transport::Udp4).then_some(Ipv4Addr::new(192, 168, 7, 1)));
        let class = if payload[0] == 1 { MessageClass::Event } else { MessageClass::General };
        assert_eq!(got.class, class);
        assert_eq!(got.message_type, payload[0]);
    }
    // A UDP checksum of 0 is accepted.
    let mut no_sum = udp4_expected();
    no_sum[6..12].copy_from_slice(&MASTER_MAC);
    no_sum[40..42].copy_from_slice(&[0, 0]);
    assert!(filter(Transport::Udp4).parse(&no_sum).is_ok());
}

/// Rewrites the IPv4 header checksum after an edit (so the edit, not the checksum, is tested).
fn fix_ip(f: &mut [u8]) {
    f[24..26].copy_from_slice(&[0, 0]);
    let c = ipv4_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn from_master(mut f: Vec<u8>) -> Vec<u8> {
    f[6..12].copy_from_slice(&MASTER_MAC);
    f
}

#[test]
fn every_rejection_reason() {
    let l2 = from_master(l2_expected());
    let udp = from_master(udp4_expected());
    let mut cases: Vec<(&str, FrameFilter, Vec<u8>, Reject)> = Vec::new();
    let mut add = |name, t, f: Vec<u8>, r| cases.push((name, t, f, r));
    let mut tagged = l2.clone();
    tagged.splice(12..12, hex("8100 2005"));
    add("other vlan", filter_vlan(Transport::L2, Some(6)), tagged.clone(), Reject::WrongVlan);
    add("tagged, we are not", filter(Transport::L2), tagged.clone(), Reject::WrongVlan);
    add("untagged, we are on 5", filter_vlan(Transport::L2, Some(5)), l2.clone(), Reject::WrongVlan);
    assert_eq!(filter_vlan(Transport::L2, Some(5)).parse(&tagged).unwrap().vlan, Some(5));
    let mut priority = l2.clone();
    priority.splice(12..12, hex("8100 6000")); // priority 3, VLAN ID 0: untagged
    assert_eq!(filter(Transport::L2).parse(&priority).unwrap().vlan, None);
    let mut udp_dst = udp.clone();
    udp_dst[0..6].copy_from_slice(&[0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB]);
    add("udp4 to another group's MAC", filter(Transport::Udp4), udp_dst, Reject::NotPtp);
    let mut udp_unicast = udp.clone();
    udp_unicast[0..6].copy_from_slice(&OUR_MAC);
    assert!(filter(Transport::Udp4).parse(&udp_unicast).is_ok(), "to our MAC is fine");

    add("runt", filter(Transport::L2), l2[..13].to_vec(), Reject::Truncated);
    let mut tag_cut = l2[..12].to_vec();
    tag_cut.extend(hex("8100 00"));
    add("tag cut", filter(Transport::L2), tag_cut, Reject::Truncated);
    add("oversized", filter(Transport::L2), vec![0; 1600], Reject::Oversized);
    let mut arp = l2.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    add("arp", filter(Transport::L2), arp, Reject::NotPtp);
    let mut unicast_other = l2.clone();
    unicast_other[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x55]);
    add("other dst", filter(Transport::L2), unicast_other, Reject::NotPtp);
    add("l2 on udp4", filter(Transport::Udp4), l2.clone(), Reject::OtherTransport);
    add("udp4 on l2", filter(Transport::L2), udp.clone(), Reject::OtherTransport);
    let mut pdelay = l2.clone();
    pdelay[0..6].copy_from_slice(&[0x01, 0x80, 0xC2, 0x00, 0x00, 0x0E]);
    add("pdelay l2", filter(Transport::L2), pdelay, Reject::PeerDelay);
    let mut qinq = l2.clone();
    qinq.splice(12..12, hex("88a8 0005"));
    add("qinq", filter(Transport::L2), qinq, Reject::StackedVlan);
    let mut double = l2.clone();
    double.splice(12..12, hex("8100 0005 8100 0006"));
    add("two tags", filter(Transport::L2), double, Reject::StackedVlan);
    add("ip cut", filter(Transport::Udp4), udp[..30].to_vec(), Reject::Truncated);
    let mut v6 = udp.clone();
    v6[14] = 0x65;
    add("ip version", filter(Transport::Udp4), v6, Reject::BadIpHeader);
    let mut ihl = udp.clone();
    ihl[14] = 0x44;
    add("ihl 4", filter(Transport::Udp4), ihl, Reject::BadIpHeader);
    let mut total_short = udp.clone();
    total_short[16..18].copy_from_slice(&[0, 19]);
    fix_ip(&mut total_short);
    add("total < ihl", filter(Transport::Udp4), total_short, Reject::BadIpHeader);
    let mut total_long = udp.clone();
    total_long[16..18].copy_from_slice(&[0, 200]);
    fix_ip(&mut total_long);
    add("total > frame", filter(Transport::Udp4), total_long, Reject::Truncated);
    let mut ip_sum = udp.clone();
    ip_sum[25] ^= 1;
    add("ip checksum", filter(Transport::Udp4), ip_sum, Reject::BadIpChecksum);
    let mut tcp = udp.clone();
    tcp[23] = 6;
    fix_ip(&mut tcp);
    add("tcp", filter(Transport::Udp4), tcp, Reject::NotPtp);
    let mut mf = udp.clone();
    mf[20] = 0x20; // MF
    fix_ip(&mut mf);
    add("more fragments", filter(Transport::Udp4), mf, Reject::Fragmented);
    let mut off = udp.clone();
    off[20..22].copy_from_slice(&[0x40, 0x01]); // DF + offset 1
    fix_ip(&mut off);
    add("fragment offset", filter(Transport::Udp4), off, Reject::Fragmented);
    let mut pdelay4 = udp.clone();
    pdelay4[30..34].copy_from_slice(&[224, 0, 0, 107]);
    fix_ip(&mut pdelay4);
    add("pdelay udp", filter(Transport::Udp4), pdelay4, Reject::PeerDelay);
    let mut other_group = udp.clone();
    other_group[30..34].copy_from_slice(&[224, 0, 0, 251]);
    fix_ip(&mut other_group);
    add("mdns group", filter(Transport::Udp4), other_group, Reject::NotPtp);
    let mut port = udp.clone();
    port[36..38].copy_from_slice(&5353u16.to_be_bytes());
    add("port", filter(Transport::Udp4), port, Reject::WrongPort);
    let mut udp_len = udp.clone();
    udp_len[38..40].copy_from_slice(&[0, 7]);
    add("udp len < 8", filter(Transport::Udp4), udp_len, Reject::BadUdpLength);
    let mut udp_len2 = udp.clone();
    udp_len2[38..40].copy_from_slice(&[0, 53]);
    add("udp len > ip", filter(Transport::Udp4), udp_len2, Reject::BadUdpLength);
    let mut udp_sum = udp.clone();
    udp_sum[60] ^= 0x10; // a payload bit, checksum left as sent
    add("udp checksum", filter(Transport::Udp4), udp_sum, Reject::BadUdpChecksum);
    add("looped l2", filter(Transport::L2), l2_expected(), Reject::Looped);
    add("looped udp4", filter(Transport::Udp4), udp4_expected(), Reject::Looped);
    let mut short = l2.clone();
    short.truncate(14 + 33);
    add("ptp < 34", filter(Transport::L2), short, Reject::PtpTooShort);
    let mut v1 = l2.clone();
    v1[15] = 0x01;
    add("version 1", filter(Transport::L2), v1, Reject::PtpVersion);
    let mut minor = l2.clone();
    minor[15] = 0x12; // minorVersionPTP 1, versionPTP 2: accepted
    assert!(filter(Transport::L2).parse(&minor).is_ok());
    let mut len_big = l2.clone();
    len_big[16..18].copy_from_slice(&[0, 200]);
    add("messageLength > frame", filter(Transport::L2), len_big, Reject::PtpLength);
    let mut len_small = l2.clone();
    len_small[16..18].copy_from_slice(&[0, 33]);
    add("messageLength < 34", filter(Transport::L2), len_small, Reject::PtpLength);
    let mut class = udp.clone();
    class[36..38].copy_from_slice(&320u16.to_be_bytes()); // Delay_Req to the general port
    class[40..42].copy_from_slice(&[0, 0]);
    add("class/port", filter(Transport::Udp4), class, Reject::ClassMismatch);

    let mut counters = DropCounters::default();
    let mut seen = std::collections::HashSet::new();
    for (name, t, f, want) in &cases {
        let got = t.parse(f);
        assert_eq!(got.err(), Some(*want), "case {name}");
        counters.record(&got);
        seen.insert(*want);
    }
    for r in Reject::ALL {
        assert!(seen.contains(&r), "no case for {r:?}");
        assert!(counters.dropped(r) >= 1, "{r:?} not counted");
    }
    assert_eq!(counters.total_dropped(), cases.len() as u64);
    assert_eq!(counters.accepted, 0);
}
