//! PTP frames on the wire: building and parsing IEEE 802.3 (EtherType 0x88F7, optionally one
//! 802.1Q tag) and UDP/IPv4 (224.0.1.129, ports 319/320) frames around a PTP message.
//!
//! Parsing never panics and never allocates: a frame is either a [`PtpFrame`] borrowing its
//! payload from the receive buffer or a [`Reject`] naming why it is not ours. Only the PTP common
//! header's framing fields are checked here (length, versionPTP, messageLength); what the
//! message means is the PTP engine's business.

use std::net::Ipv4Addr;

/// Destination MAC of PTP over IEEE 802.3 (IEEE 1588-2019 Annex E, all messages but peer delay).
pub const PTP_L2_MAC: [u8; 6] = [0x01, 0x1B, 0x19, 0x00, 0x00, 0x00];
/// Destination MAC of the peer-delay messages over IEEE 802.3 (not supported: P2P).
pub const PTP_L2_PDELAY_MAC: [u8; 6] = [0x01, 0x80, 0xC2, 0x00, 0x00, 0x0E];
/// EtherType of PTP over IEEE 802.3.
pub const ETHERTYPE_PTP: u16 = 0x88F7;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType (TPID) of an IEEE 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType (TPID) of an IEEE 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88A8;
/// The PTP primary multicast group over UDP/IPv4 (IEEE 1588-2019 Annex C).
pub const PTP_IPV4_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 129);
/// The multicast MAC that 224.0.1.129 maps to (01-00-5E + low 23 bits of the group).
pub const PTP_IPV4_MAC: [u8; 6] = [0x01, 0x00, 0x5E, 0x00, 0x01, 0x81];
/// UDP port of PTP event messages (Sync, Delay_Req, …): these carry hardware timestamps.
pub const PTP_EVENT_PORT: u16 = 319;
/// UDP port of PTP general messages (Announce, Follow_Up, Delay_Resp, …).
pub const PTP_GENERAL_PORT: u16 = 320;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// Time-to-live of the UDP/IPv4 frames we send (ptp4l's `udp_ttl` default).
pub const PTP_IPV4_TTL: u8 = 1;

/// Length of an Ethernet header without a tag.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// Length of an IPv4 header without options (what we send).
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Length of the PTP common header (IEEE 1588-2019 §13.3).
pub const PTP_HEADER_LEN: usize = 34;
/// Shortest Ethernet frame without its FCS: shorter frames are padded with zeros on send.
pub const ETH_MIN_FRAME: usize = 60;
/// Longest frame we build or accept (no jumbo frames; FCS stripped by the NIC).
pub const ETH_MAX_FRAME: usize = 1518;

/// How PTP messages travel (ptp4l `-2` / `-4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// IEEE 802.3 / Ethernet, EtherType 0x88F7, to 01-1B-19-00-00-00.
    L2,
    /// UDP over IPv4 to 224.0.1.129, ports 319 (event) and 320 (general).
    Udp4,
}

/// Whether a PTP message is an event message (timestamped) or a general one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// Sync, Delay_Req, Pdelay_Req, Pdelay_Resp (messageType 0..=3): port 319, stamped.
    Event,
    /// Follow_Up, Delay_Resp, Announce, Signaling, Management, …: port 320.
    General,
}

impl MessageClass {
    /// The class of a messageType nibble: event below 8, general from 8 (IEEE 1588-2019 Table 36).
    pub fn of_message_type(message_type: u8) -> Self {
        if message_type & 0x0F < 8 {
            MessageClass::Event
        } else {
            MessageClass::General
        }
    }

    /// The UDP destination port of this class.
    pub fn udp_port(self) -> u16 {
        match self {
            MessageClass::Event => PTP_EVENT_PORT,
            MessageClass::General => PTP_GENERAL_PORT,
        }
    }
}

/// A received frame that carries a PTP message for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtpFrame<'a> {
    /// The transport it came on.
    pub transport: Transport,
    /// Source MAC address.
    pub src_mac: [u8; 6],
    /// Source IPv4 address (UDP/IPv4 only).
    pub src_ip: Option<Ipv4Addr>,
    /// VLAN ID of its one 802.1Q tag, if it had one (a priority tag, ID 0, reads as `None`).
    pub vlan: Option<u16>,
    /// Event (port 319 / messageType < 8) or general.
    pub class: MessageClass,
    /// The PTP messageType nibble (0 Sync, 1 Delay_Req, 8 Follow_Up, 9 Delay_Resp, 0xB Announce…).
    pub message_type: u8,
    /// The PTP message, exactly `messageLength` bytes (Ethernet padding and UDP trailer cut off).
    pub payload: &'a [u8],
}

/// Why a received frame is not a PTP message for us. Each reason has its own drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// Shorter than the headers it announces (Ethernet, tag, IPv4 or UDP header).
    #[error("truncated frame")]
    Truncated,
    /// Longer than an Ethernet frame without jumbo support.
    #[error("oversized frame")]
    Oversized,
    /// Not PTP: another EtherType, another IP protocol, or not to a PTP destination.
    #[error("not a PTP frame")]
    NotPtp,
    /// PTP, but on the transport we are not configured for.
    #[error("PTP on the other transport")]
    OtherTransport,
    /// To the peer-delay address (01-80-C2-00-00-0E or 224.0.0.107): P2P is not supported.
    #[error("peer-delay frame (P2P not supported)")]
    PeerDelay,
    /// More than one VLAN tag, or an 802.1ad service tag.
    #[error("stacked VLAN tags")]
    StackedVlan,
    /// Tagged for a VLAN other than ours, or untagged when we are on a VLAN.
    #[error("frame on another VLAN")]
    WrongVlan,
    /// IPv4 header malformed: version, header length, total length.
    #[error("malformed IPv4 header")]
    BadIpHeader,
    /// IPv4 header checksum wrong.
    #[error("bad IPv4 header checksum")]
    BadIpChecksum,
    /// An IPv4 fragment (MF set or a fragment offset): we do not reassemble.
    #[error("IPv4 fragment")]
    Fragmented,
    /// UDP to a port other than 319 and 320.
    #[error("UDP port not 319/320")]
    WrongPort,
    /// UDP length field inconsistent with the IPv4 total length.
    #[error("bad UDP length")]
    BadUdpLength,
    /// A non-zero UDP checksum that does not verify.
    #[error("bad UDP checksum")]
    BadUdpChecksum,
    /// Our own frame, looped back (source MAC is ours).
    #[error("our own frame looped back")]
    Looped,
    /// PTP message shorter than the 34-byte common header.
    #[error("PTP message shorter than its header")]
    PtpTooShort,
    /// versionPTP is not 2.
    #[error("PTP version not 2")]
    PtpVersion,
    /// messageLength below 34 or beyond the bytes received.
    #[error("PTP messageLength inconsistent with the frame")]
    PtpLength,
    /// An event message on the general port or a general one on the event port.
    #[error("PTP message class does not match its UDP port")]
    ClassMismatch,
}

impl Reject {
    /// Every reason, in counter order.
    pub const ALL: [Reject; 18] = [
        Reject::Truncated,
        Reject::Oversized,
        Reject::NotPtp,
        Reject::OtherTransport,
        Reject::PeerDelay,
        Reject::StackedVlan,
        Reject::WrongVlan,
        Reject::BadIpHeader,
        Reject::BadIpChecksum,
        Reject::Fragmented,
        Reject::WrongPort,
        Reject::BadUdpLength,
        Reject::BadUdpChecksum,
        Reject::Looped,
        Reject::PtpTooShort,
        Reject::PtpVersion,
        Reject::PtpLength,
        Reject::ClassMismatch,
    ];

    /// A short snake_case name, for the stats CSV and `nicclock status`.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::Oversized => "oversized",
            Reject::NotPtp => "not_ptp",
            Reject::OtherTransport => "other_transport",
            Reject::PeerDelay => "peer_delay",
            Reject::StackedVlan => "stacked_vlan",
            Reject::WrongVlan => "wrong_vlan",
            Reject::BadIpHeader => "bad_ip_header",
            Reject::BadIpChecksum => "bad_ip_checksum",
            Reject::Fragmented => "fragmented",
            Reject::WrongPort => "wrong_port",
            Reject::BadUdpLength => "bad_udp_length",
            Reject::BadUdpChecksum => "bad_udp_checksum",
            Reject::Looped => "looped",
            Reject::PtpTooShort => "ptp_too_short",
            Reject::PtpVersion => "ptp_version",
            Reject::PtpLength => "ptp_length",
            Reject::ClassMismatch => "class_mismatch",
        }
    }
}

/// What a frame is checked against on receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFilter {
    /// The transport we are configured for; PTP on the other one is rejected.
    pub transport: Transport,
    /// Our MAC: frames from it are our own, looped back.
    pub own_mac: [u8; 6],
    /// The VLAN ID we are on (frames must carry one 802.1Q tag with it), or `None` for untagged
    /// (a priority tag, VLAN ID 0, counts as untagged).
    pub vlan: Option<u16>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The Internet checksum's one's-complement sum of `bytes` (odd length padded with a zero), folded
/// onto `acc`; not yet complemented.
fn ones_sum(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc
}

/// The IPv4 header checksum of `header` (its checksum field taken as it is: zero when computing,
/// the sent value when verifying, where a correct header gives 0).
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    !(ones_sum(0, header) as u16)
}

/// The UDP checksum over the IPv4 pseudo-header and `udp` (header with its checksum field zero,
/// plus data); 0 is sent as 0xFFFF (RFC 768).
pub fn udp4_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut acc = ones_sum(0, &src.octets());
    acc = ones_sum(acc, &dst.octets());
    acc = ones_sum(acc, &[0, IPPROTO_UDP]);
    acc = ones_sum(acc, &(udp.len() as u16).to_be_bytes());
    acc = ones_sum(acc, udp);
    match !(acc as u16) {
        0 => 0xFFFF,
        c => c,
    }
}

/// Checks the PTP common header's framing and returns (messageType, message bytes).
fn check_ptp(bytes: &[u8]) -> Result<(u8, &[u8]), Reject> {
    if bytes.len() < PTP_HEADER_LEN {
        return Err(Reject::PtpTooShort);
    }
    // versionPTP: low nibble of byte 1 (high nibble is minorVersionPTP).
    if bytes[1] & 0x0F != 2 {
        return Err(Reject::PtpVersion);
    }
    let length = usize::from(be16(bytes, 2));
    if length < PTP_HEADER_LEN || length > bytes.len() {
        return Err(Reject::PtpLength);
    }
    Ok((bytes[0] & 0x0F, &bytes[..length]))
}

impl FrameFilter {
    /// Parses a received frame (FCS stripped), returning the PTP message it carries for us or why
    /// not. Never panics, never allocates.
    pub fn parse<'a>(&self, frame: &'a [u8]) -> Result<PtpFrame<'a>, Reject> {
        if frame.len() < ETH_HEADER_LEN {
            return Err(Reject::Truncated);
        }
        if frame.len() > ETH_MAX_FRAME + VLAN_TAG_LEN {
            return Err(Reject::Oversized);
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[0..6]);
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&frame[6..12]);
        let mut ethertype = be16(frame, 12);
        let mut at = ETH_HEADER_LEN;
        let mut vlan = None;
        if ethertype == ETHERTYPE_QINQ {
            return Err(Reject::StackedVlan);
        }
        if ethertype == ETHERTYPE_VLAN {
            if frame.len() < at + VLAN_TAG_LEN {
                return Err(Reject::Truncated);
            }
            vlan = Some(be16(frame, at) & 0x0FFF).filter(|vid| *vid != 0);
            ethertype = be16(frame, at + 2);
            at += VLAN_TAG_LEN;
            if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
                return Err(Reject::StackedVlan);
            }
        }
        if vlan != self.vlan {
            return Err(Reject::WrongVlan);
        }
        let rest = &frame[at..];
        match ethertype {
            ETHERTYPE_PTP => {
                if dst == PTP_L2_PDELAY_MAC {
                    return Err(Reject::PeerDelay);
                }
                if dst != PTP_L2_MAC && dst != self.own_mac {
                    return Err(Reject::NotPtp);
                }
                if self.transport != Transport::L2 {
                    return Err(Reject::OtherTransport);
                }
                if src_mac == self.own_mac {
                    return Err(Reject::Looped);
                }
                let (message_type, payload) = check_ptp(rest)?;
                Ok(PtpFrame {
                    transport: Transport::L2,
                    src_mac,
                    src_ip: None,
                    vlan,
                    class: MessageClass::of_message_type(message_type),
                    message_type,
                    payload,
                })
            }
            ETHERTYPE_IPV4 => {
                // Multicast only (no IP stack, no ARP): the group's MAC, or ours.
                if dst != PTP_IPV4_MAC && dst != self.own_mac {
                    return Err(Reject::NotPtp);
                }
                self.parse_ipv4(rest, src_mac, vlan)
            }
            _ => Err(Reject::NotPtp),
        }
    }

    fn parse_ipv4<'a>(
        &self,
        ip: &'a [u8],
        src_mac: [u8; 6],
        vlan: Option<u16>,
    ) -> Result<PtpFrame<'a>, Reject> {
        if ip.len() < IPV4_HEADER_LEN {
            return Err(Reject::Truncated);
        }
        if ip[0] >> 4 != 4 {
            return Err(Reject::BadIpHeader);
        }
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        if ihl < IPV4_HEADER_LEN {
            return Err(Reject::BadIpHeader);
        }
        if ip.len() < ihl {
            return Err(Reject::Truncated);
        }
        let total = usize::from(be16(ip, 2));
        if total < ihl {
            return Err(Reject::BadIpHeader);
        }
        if total > ip.len() {
            return Err(Reject::Truncated);
        }
        if ipv4_checksum(&ip[..ihl]) != 0 {
            return Err(Reject::BadIpChecksum);
        }
        if ip[9] != IPPROTO_UDP {
            return Err(Reject::NotPtp);
        }
        let flags_frag = be16(ip, 6);
        if flags_frag & 0x3FFF != 0 {
            // MF (0x2000) or a fragment offset.
            return Err(Reject::Fragmented);
        }
        let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        if dst_ip == Ipv4Addr::new(224, 0, 0, 107) {
            return Err(Reject::PeerDelay);
        }
        if dst_ip != PTP_IPV4_GROUP {
            return Err(Reject::NotPtp);
        }
        let udp = &ip[ihl..total];
        if udp.len() < UDP_HEADER_LEN {
            return Err(Reject::Truncated);
        }
        let dst_port = be16(udp, 2);
        let port_class = match dst_port {
            PTP_EVENT_PORT => MessageClass::Event,
            PTP_GENERAL_PORT => MessageClass::General,
            _ => return Err(Reject::WrongPort),
        };
        if self.transport != Transport::Udp4 {
            return Err(Reject::OtherTransport);
        }
        if src_mac == self.own_mac {
            return Err(Reject::Looped);
        }
        let udp_len = usize::from(be16(udp, 4));
        if udp_len < UDP_HEADER_LEN || udp_len > udp.len() {
            return Err(Reject::BadUdpLength);
        }
        let udp = &udp[..udp_len];
        let sent = be16(udp, 6);
        if sent != 0 {
            // Verifying: the sum over pseudo-header and datagram, checksum included, is 0xFFFF.
            let mut acc = ones_sum(0, &src_ip.octets());
            acc = ones_sum(acc, &dst_ip.octets());
            acc = ones_sum(acc, &[0, IPPROTO_UDP]);
            acc = ones_sum(acc, &(udp_len as u16).to_be_bytes());
            acc = ones_sum(acc, udp);
            if acc != 0xFFFF {
                return Err(Reject::BadUdpChecksum);
            }
        }
        let (message_type, payload) = check_ptp(&udp[UDP_HEADER_LEN..])?;
        let class = MessageClass::of_message_type(message_type);
        if class != port_class {
            return Err(Reject::ClassMismatch);
        }
        Ok(PtpFrame {
            transport: Transport::Udp4,
            src_mac,
            src_ip: Some(src_ip),
            vlan,
            class,
            message_type,
            payload,
        })
    }
}

/// What to build a frame from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    /// The transport.
    pub transport: Transport,
    /// Our MAC (source address).
    pub src_mac: [u8; 6],
    /// Our configured IPv4 source address (UDP/IPv4 only; we have no IP stack, so no ARP).
    pub src_ip: Ipv4Addr,
    /// One 802.1Q tag with this TCI (priority and VLAN ID), if set.
    pub vlan_tci: Option<u16>,
    /// Compute the UDP checksum (as the kernel does for ptp4l); false sends 0 (allowed over IPv4).
    pub udp_checksum: bool,
    /// IPv4 identification (UDP/IPv4 only). With DF set any value is valid; Linux increments it
    /// per datagram (captured ptp4l frames), so a sender may do the same.
    pub ip_id: u16,
}

/// Why a frame could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The payload is not a PTP message: shorter than 34 bytes, versionPTP not 2, or its
    /// messageLength is not its length.
    #[error("payload is not a well-framed PTP v2 message")]
    NotPtp,
    /// The frame does not fit in the buffer given (or exceeds an Ethernet frame).
    #[error("frame of {needed} bytes does not fit in {available}")]
    TooLong {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl FrameSpec {
    /// The length of the frame this spec builds around a payload of `payload_len` bytes.
    pub fn frame_len(&self, payload_len: usize) -> usize {
        let l2 = ETH_HEADER_LEN + if self.vlan_tci.is_some() { VLAN_TAG_LEN } else { 0 };
        let body = match self.transport {
            Transport::L2 => payload_len,
            Transport::Udp4 => IPV4_HEADER_LEN + UDP_HEADER_LEN + payload_len,
        };
        (l2 + body).max(ETH_MIN_FRAME)
    }

    /// Writes the frame carrying `payload` (a whole PTP message) into `buf`, padding to the
    /// Ethernet minimum; returns its length. Allocates nothing: `buf` can be a TX DMA buffer.
    pub fn build_into(&self, payload: &[u8], buf: &mut [u8]) -> Result<usize, BuildError> {
        let (message_type, message) = check_ptp(payload).map_err(|_| BuildError::NotPtp)?;
        if message.len() != payload.len() {
            return Err(BuildError::NotPtp);
        }
        let len = self.frame_len(payload.len());
        let max = ETH_MAX_FRAME + if self.vlan_tci.is_some() { VLAN_TAG_LEN } else { 0 };
        if len > buf.len() || len > max {
            return Err(BuildError::TooLong { needed: len, available: buf.len().min(max) });
        }
        let buf = &mut buf[..len];
        buf.fill(0);
        let dst = match self.transport {
            Transport::L2 => PTP_L2_MAC,
            Transport::Udp4 => PTP_IPV4_MAC,
        };
        buf[0..6].copy_from_slice(&dst);
        buf[6..12].copy_from_slice(&self.src_mac);
        let mut at = 12;
        if let Some(tci) = self.vlan_tci {
            buf[at..at + 2].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            buf[at + 2..at + 4].copy_from_slice(&tci.to_be_bytes());
            at += VLAN_TAG_LEN;
        }
        match self.transport {
            Transport::L2 => {
                buf[at..at + 2].copy_from_slice(&ETHERTYPE_PTP.to_be_bytes());
                at += 2;
                buf[at..at + payload.len()].copy_from_slice(payload);
            }
            Transport::Udp4 => {
                buf[at..at + 2].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                at += 2;
                let udp_len = UDP_HEADER_LEN + payload.len();
                let total = IPV4_HEADER_LEN + udp_len;
                let ip = &mut buf[at..at + total];
                ip[0] = 0x45; // version 4, IHL 5
                ip[1] = 0; // DSCP/ECN: ptp4l's dscp_event/dscp_general default 0
                ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                // Identification, and DF as Linux sends ptp4l's datagrams (path-MTU discovery).
                ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
                ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
                ip[8] = PTP_IPV4_TTL;
                ip[9] = IPPROTO_UDP;
                ip[12..16].copy_from_slice(&self.src_ip.octets());
                ip[16..20].copy_from_slice(&PTP_IPV4_GROUP.octets());
                let csum = ipv4_checksum(&ip[..IPV4_HEADER_LEN]);
                ip[10..12].copy_from_slice(&csum.to_be_bytes());
                let port = MessageClass::of_message_type(message_type).udp_port();
                let udp = &mut ip[IPV4_HEADER_LEN..];
                udp[0..2].copy_from_slice(&port.to_be_bytes());
                udp[2..4].copy_from_slice(&port.to_be_bytes());
                udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
                udp[UDP_HEADER_LEN..].copy_from_slice(payload);
                if self.udp_checksum {
                    let c = udp4_checksum(self.src_ip, PTP_IPV4_GROUP, udp);
                    udp[6..8].copy_from_slice(&c.to_be_bytes());
                }
            }
        }
        Ok(len)
    }

    /// [`FrameSpec::build_into`] into a new vector (send path and tests; not per received frame).
    pub fn build(&self, payload: &[u8]) -> Result<Vec<u8>, BuildError> {
        let mut buf = vec![0u8; ETH_MAX_FRAME + VLAN_TAG_LEN];
        let len = self.build_into(payload, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }
}
