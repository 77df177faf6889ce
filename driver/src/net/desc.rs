//! igb advanced RX and TX descriptor encodings (16 bytes each) and the queue-0 ring registers:
//! the bits PTP needs, named after the Linux igb headers' facts (values written from them here).
//!
//! A descriptor is two little-endian u64s; `[u64; 2]` is its in-memory form.

/// Size of one advanced descriptor in bytes.
pub const DESC_LEN: usize = 16;
/// Size of the buffer behind each descriptor (SRRCTL.BSIZEPACKET = 2 KiB).
pub const BUF_LEN: usize = 2048;
/// Descriptor rings are a multiple of 128 bytes (RDLEN/TDLEN), so of 8 descriptors.
pub const RING_ALIGN_DESCS: usize = 8;

/// Queue-0 ring registers (byte offsets in BAR0; the 0x0C000/0x0E000 blocks, whose queue-0
/// copies are also aliased at 0x02800/0x03800).
pub mod reg {
    /// RX descriptor base address, low 32 bits.
    pub const RDBAL0: usize = 0x0C000;
    /// RX descriptor base address, high 32 bits.
    pub const RDBAH0: usize = 0x0C004;
    /// RX descriptor ring length in bytes (multiple of 128).
    pub const RDLEN0: usize = 0x0C008;
    /// Split and replication RX control (buffer size, descriptor type, TIMESTAMP on 82580+).
    pub const SRRCTL0: usize = 0x0C00C;
    /// RX descriptor head (hardware's next descriptor to fill).
    pub const RDH0: usize = 0x0C010;
    /// RX descriptor tail (one past the last descriptor given to hardware).
    pub const RDT0: usize = 0x0C018;
    /// RX descriptor control (queue enable).
    pub const RXDCTL0: usize = 0x0C028;
    /// TX descriptor base address, low 32 bits.
    pub const TDBAL0: usize = 0x0E000;
    /// TX descriptor base address, high 32 bits.
    pub const TDBAH0: usize = 0x0E004;
    /// TX descriptor ring length in bytes (multiple of 128).
    pub const TDLEN0: usize = 0x0E008;
    /// TX descriptor head (hardware's next descriptor to send).
    pub const TDH0: usize = 0x0E010;
    /// TX descriptor tail (one past the last descriptor given to hardware).
    pub const TDT0: usize = 0x0E018;
    /// TX descriptor control (queue enable).
    pub const TXDCTL0: usize = 0x0E028;
}

/// SRRCTL and queue-control fields for bring-up.
pub mod ctl {
    /// SRRCTL.BSIZEPACKET is in 1 KiB units, bits 6:0.
    pub const SRRCTL_BSIZEPKT_SHIFT: u32 = 10;
    /// SRRCTL.DESCTYPE = advanced, one buffer (bits 27:25 = 001b).
    pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 0x0200_0000;
    /// SRRCTL.TIMESTAMP (82580+): write the 16-byte timestamp header in front of the frame.
    pub const SRRCTL_TIMESTAMP: u32 = 0x4000_0000;
    /// SRRCTL.RDMTS (bits 24:20, in 16s): ICR.RXDMT0 when the free descriptors fall to 16, half the
    /// ring (a flood wakes a loop whose frame causes are masked).
    pub const SRRCTL_RDMTS_16: u32 = 1 << 20;
    /// SRRCTL.DROP_EN: drop when no descriptor is free instead of stalling the packet buffer.
    pub const SRRCTL_DROP_EN: u32 = 0x8000_0000;
    /// RXDCTL/TXDCTL.ENABLE.
    pub const QUEUE_ENABLE: u32 = 0x0200_0000;
}

/// RX write-back status bits (low 20 bits of `status_error`).
pub mod rx_status {
    /// Descriptor done: hardware wrote this descriptor back.
    pub const DD: u32 = 0x0000_0001;
    /// End of packet: last descriptor of the frame.
    pub const EOP: u32 = 0x0000_0002;
    /// The frame had an 802.1Q tag (stripped into `vlan` when VLAN stripping is on).
    pub const VP: u32 = 0x0000_0008;
    /// Timestamp in packet (82580+): the buffer starts with the 16-byte timestamp header.
    pub const TSIP: u32 = 0x0000_8000;
    /// The frame was timestamped into RXSTMPL/H (register latch; 82576).
    pub const TS: u32 = 0x0001_0000;
}

/// RX write-back error bits (high bits of `status_error`).
pub mod rx_error {
    /// CRC error.
    pub const CE: u32 = 0x0100_0000;
    /// Symbol error.
    pub const SE: u32 = 0x0200_0000;
    /// Sequence error.
    pub const SEQ: u32 = 0x0400_0000;
    /// Carrier extension error.
    pub const CXE: u32 = 0x1000_0000;
    /// RX data error.
    pub const RXE: u32 = 0x8000_0000;
    /// The errors that make the frame unusable (the driver drops the frame on any of them).
    pub const FRAME_ERR_MASK: u32 = CE | SE | SEQ | CXE | RXE;
}

/// TX advanced data descriptor `cmd_type_len` fields.
pub mod tx_cmd {
    /// Data length, bits 15:0.
    pub const DTALEN_MASK: u32 = 0x0000_FFFF;
    /// Request an IEEE 1588 transmit timestamp into TXSTMPL/H (MAC field, bit 19).
    pub const MAC_TSTAMP: u32 = 0x0008_0000;
    /// Descriptor type: advanced data (DTYP = 0011b, bits 23:20).
    pub const DTYP_DATA: u32 = 0x0030_0000;
    /// Descriptor type mask.
    pub const DTYP_MASK: u32 = 0x00F0_0000;
    /// End of packet.
    pub const EOP: u32 = 0x0100_0000;
    /// Insert FCS.
    pub const IFCS: u32 = 0x0200_0000;
    /// Report status: write DD back when done.
    pub const RS: u32 = 0x0800_0000;
    /// Descriptor extension: advanced format.
    pub const DEXT: u32 = 0x2000_0000;
}

/// TX `olinfo_status` fields (upper dword of the second quadword; write-back status there too).
pub mod tx_status {
    /// Descriptor done (write-back).
    pub const DD: u32 = 0x0000_0001;
    /// PAYLEN (whole frame length without offloads) starts at bit 14.
    pub const PAYLEN_SHIFT: u32 = 14;
}

/// An RX descriptor in read format, as software hands it to hardware.
pub fn rx_read(pkt_addr: u64, hdr_addr: u64) -> [u64; 2] {
    [pkt_addr, hdr_addr]
}

/// An RX descriptor as hardware wrote it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxWriteback {
    /// Packet type and RSS type (low dword of the first quadword).
    pub pkt_info: u32,
    /// RSS hash or IP id/checksum (high dword of the first quadword).
    pub rss: u32,
    /// Status and error bits ([`rx_status`], [`rx_error`]).
    pub status_error: u32,
    /// Bytes written to the buffer (including a 16-byte timestamp header under TSIP).
    pub length: u16,
    /// VLAN tag when stripped.
    pub vlan: u16,
}

impl RxWriteback {
    /// Decodes a written-back descriptor.
    pub fn decode(d: [u64; 2]) -> Self {
        RxWriteback {
            pkt_info: d[0] as u32,
            rss: (d[0] >> 32) as u32,
            status_error: d[1] as u32,
            length: (d[1] >> 32) as u16,
            vlan: (d[1] >> 48) as u16,
        }
    }

    /// Encodes it (what a device model writes).
    pub fn encode(&self) -> [u64; 2] {
        [
            u64::from(self.pkt_info) | u64::from(self.rss) << 32,
            u64::from(self.status_error) | u64::from(self.length) << 32 | u64::from(self.vlan) << 48,
        ]
    }

    /// Whether hardware is done with this descriptor.
    pub fn done(&self) -> bool {
        self.status_error & rx_status::DD != 0
    }

    /// Whether this is the frame's last descriptor.
    pub fn end_of_packet(&self) -> bool {
        self.status_error & rx_status::EOP != 0
    }

    /// Whether RXSTMPL/H latched this frame's timestamp (82576).
    pub fn timestamp_latched(&self) -> bool {
        self.status_error & rx_status::TS != 0
    }

    /// Whether the buffer starts with the 16-byte timestamp header (82580+).
    pub fn timestamp_in_packet(&self) -> bool {
        self.status_error & rx_status::TSIP != 0
    }

    /// Frame errors that make it unusable, if any.
    pub fn frame_errors(&self) -> u32 {
        self.status_error & rx_error::FRAME_ERR_MASK
    }
}

/// Length of the in-buffer timestamp header (82580+, SRRCTL.TIMESTAMP).
pub const TS_HEADER_LEN: usize = 16;

/// Splits the 82580+ in-buffer timestamp header off a received buffer: two reserved zero dwords,
/// then SYSTIML, SYSTIMH (little-endian). Returns the raw SYSTIM and the frame after it, or
/// `None` if the buffer is too short or the reserved dwords are not zero (as Linux checks).
pub fn split_timestamp_header(buf: &[u8]) -> Option<(u64, &[u8])> {
    let header = buf.get(..TS_HEADER_LEN)?;
    if header[..8].iter().any(|b| *b != 0) {
        return None;
    }
    let mut systim = [0u8; 8];
    systim.copy_from_slice(&header[8..16]);
    Some((u64::from_le_bytes(systim), &buf[TS_HEADER_LEN..]))
}

/// A TX advanced data descriptor for a one-buffer frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxData {
    /// Device address of the frame.
    pub addr: u64,
    /// Frame length in bytes (without FCS, which hardware inserts).
    pub len: u16,
    /// Ask for a hardware transmit timestamp (1588, TXSTMPL/H).
    pub timestamp: bool,
}

impl TxData {
    /// Encodes it: DTYP data, DEXT, EOP, IFCS, RS (so DD is written back), MAC_TSTAMP if asked;
    /// PAYLEN = the frame length.
    pub fn encode(&self) -> [u64; 2] {
        let mut cmd =
            u32::from(self.len) | tx_cmd::DTYP_DATA | tx_cmd::DEXT | tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS;
        if self.timestamp {
            cmd |= tx_cmd::MAC_TSTAMP;
        }
        let olinfo = u32::from(self.len) << tx_status::PAYLEN_SHIFT;
        [self.addr, u64::from(cmd) | u64::from(olinfo) << 32]
    }

    /// Decodes a descriptor in read format (`None` if it is not an advanced data descriptor).
    pub fn decode(d: [u64; 2]) -> Option<Self> {
        let cmd = d[1] as u32;
        if cmd & tx_cmd::DTYP_MASK != tx_cmd::DTYP_DATA || cmd & tx_cmd::DEXT == 0 {
            return None;
        }
        Some(TxData {
            addr: d[0],
            len: (cmd & tx_cmd::DTALEN_MASK) as u16,
            timestamp: cmd & tx_cmd::MAC_TSTAMP != 0,
        })
    }
}

/// Whether a TX descriptor has been written back done.
pub fn tx_done(d: [u64; 2]) -> bool {
    (d[1] >> 32) as u32 & tx_status::DD != 0
}

/// A TX descriptor's second quadword after write-back with DD (what a device model writes).
pub fn tx_writeback_done() -> u64 {
    u64::from(tx_status::DD) << 32
}
