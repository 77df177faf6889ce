//! igb advanced descriptors and the RX/TX rings: encodings against hand-worked values, round
//! trips, and refill/reap with a fake device that writes back DD, EOP and lengths, across
//! head/tail wrap-around.

use std::cell::RefCell;
use std::collections::HashMap;

use nicclock_driver::net::desc::{
    self, reg, rx_error, rx_status, split_timestamp_header, RxWriteback, TxData, BUF_LEN,
};
use nicclock_driver::net::frame::{FrameFilter, FrameSpec, Transport};
use nicclock_driver::net::ring::{
    bytes_needed, DescMemory, RingError, RxDiscard, RxRing, TxError, TxRing, VecMemory,
};
use nicclock_uio::RegisterAccess;

/// A register file that remembers writes.
#[derive(Default)]
struct Regs(RefCell<HashMap<usize, u32>>);

impl Regs {
    fn get(&self, off: usize) -> u32 {
        self.0.borrow().get(&off).copied().unwrap_or(0)
    }
}

impl RegisterAccess for Regs {
    fn len(&self) -> usize {
        0x20000
    }
    fn read32(&self, offset: usize) -> u32 {
        self.get(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        self.0.borrow_mut().insert(offset, value);
    }
}

const BASE: u64 = 0x1_2345_0000;

/// The device side: owns RDH/TDH, obeys RDT/TDT, reads and writes descriptors in ring memory.
#[derive(Default)]
struct FakeNic {
    rdh: usize,
    tdh: usize,
    sent: Vec<(Vec<u8>, bool)>,
}

impl FakeNic {
    fn rx_desc_off(ring: &RxRing<VecMemory>, i: usize) -> usize {
        ring.memory().offset_of(ring.desc_addr()).unwrap() + i * desc::DESC_LEN
    }

    /// Receives one buffer's worth into the next descriptor; false if none is free (RDH == RDT).
    fn deliver(&mut self, regs: &Regs, ring: &mut RxRing<VecMemory>, bytes: &[u8], status: u32) -> bool {
        if self.rdh == regs.get(reg::RDT0) as usize {
            return false;
        }
        let at = Self::rx_desc_off(ring, self.rdh);
        let mem = ring.memory_mut();
        let pkt = mem.read_u64(at);
        assert_eq!(mem.read_u64(at + 8), 0, "armed descriptor has a clean hdr/status word");
        let off = mem.offset_of(pkt).expect("buffer address inside the memory");
        mem.write_bytes(off, bytes);
        let wb = RxWriteback {
            pkt_info: 0,
            rss: 0,
            status_error: rx_status::DD | status,
            length: bytes.len() as u16,
            vlan: 0,
        }
        .encode();
        mem.write_u64(at, wb[0]);
        mem.write_u64(at + 8, wb[1]);
        self.rdh = (self.rdh + 1) % ring.size();
        regs.write32(reg::RDH0, self.rdh as u32);
        true
    }

    /// Sends everything up to TDT, writing DD back; returns how many.
    fn transmit(&mut self, regs: &Regs, ring: &mut TxRing<VecMemory>) -> usize {
        let base = ring.memory().offset_of(ring.desc_addr()).unwrap();
        let mut n = 0;
        while self.tdh != regs.get(reg::TDT0) as usize {
            let at = base + self.tdh * desc::DESC_LEN;
            let mem = ring.memory_mut();
            let d = TxData::decode([mem.read_u64(at), mem.read_u64(at + 8)])
                .expect("an advanced data descriptor");
            let off = mem.offset_of(d.addr).unwrap();
            let mut frame = vec![0; usize::from(d.len)];
            mem.read_bytes(off, &mut frame);
            self.sent.push((frame, d.timestamp));
            mem.write_u64(at, 0);
            mem.write_u64(at + 8, desc::tx_writeback_done());
            self.tdh = (self.tdh + 1) % ring.size();
            regs.write32(reg::TDH0, self.tdh as u32);
            n += 1;
        }
        n
    }
}

fn rx_ring(size: usize) -> RxRing<VecMemory> {
    RxRing::new(VecMemory::new(bytes_needed(size), BASE), 0, size).unwrap()
}

fn tx_ring(size: usize) -> TxRing<VecMemory> {
    TxRing::new(VecMemory::new(bytes_needed(size), BASE), 0, size).unwrap()
}

#[test]
fn tx_descriptor_encoding_matches_hand_worked_bits() {
    let d = TxData { addr: 0x0000_0001_2345_6780, len: 86, timestamp: true };
    // cmd_type_len: 86 | DTYP data 0x00300000 | EOP 0x01000000 | IFCS 0x02000000 | RS 0x08000000
    // | DEXT 0x20000000 | MAC_TSTAMP 0x00080000 = 0x2B380056; olinfo: PAYLEN 86 << 14 = 0x158000.
    assert_eq!(d.encode(), [0x0000_0001_2345_6780, 0x0015_8000_2B38_0056]);
    assert_eq!(TxData::decode(d.encode()), Some(d));
    let plain = TxData { timestamp: false, ..d };
    assert_eq!(plain.encode()[1] as u32, 0x2B30_0056);
    assert_eq!(TxData::decode(plain.encode()), Some(plain));
    assert_eq!(TxData::decode([0, 0]), None, "legacy/empty is not ours");
    assert!(!desc::tx_done(d.encode()));
    assert!(desc::tx_done([0, desc::tx_writeback_done()]));
}

#[test]
fn rx_descriptor_encoding_round_trips() {
    assert_eq!(desc::rx_read(0xABCD_E000, 0), [0xABCD_E000, 0]);
    // status DD|EOP|TS = 0x10003, length 0x56 in bits 47:32, vlan 5 in bits 63:48.
    let raw = [0x0000_0000_0000_0080, 0x0005_0056_0001_0003];
    let wb = RxWriteback::decode(raw);
    assert_eq!(wb.pkt_info, 0x80);
    assert_eq!(wb.status_error, 0x1_0003);
    assert_eq!(wb.length, 0x56);
    assert_eq!(wb.vlan, 5);
    assert!(wb.done() && wb.end_of_packet() && wb.timestamp_latched());
    assert!(!wb.timestamp_in_packet());
    assert_eq!(wb.frame_errors(), 0);
    assert_eq!(wb.encode(), raw);
    let bad = RxWriteback { status_error: rx_status::DD | rx_status::EOP | rx_error::CE | 0x0800_0000, ..wb };
    assert_eq!(bad.frame_errors(), rx_error::CE, "only frame errors count");
}

#[test]
fn timestamp_header_split() {
    let mut buf = vec![0u8; 8];
    buf.extend(0x0000_0012_3456_789Au64.to_le_bytes());
    buf.extend([0xAA, 0xBB]);
    assert_eq!(split_timestamp_header(&buf), Some((0x0000_0012_3456_789A, &[0xAA, 0xBB][..])));
    buf[3] = 1;
    assert_eq!(split_timestamp_header(&buf), None, "reserved dwords must be 0");
    assert_eq!(split_timestamp_header(&[0; 15]), None);
}

#[test]
fn layout_is_checked() {
    let mem = || VecMemory::new(bytes_needed(64), BASE);
    assert_eq!(RxRing::new(mem(), 0, 12).err(), Some(RingError::BadSize(12)));
    assert_eq!(TxRing::new(mem(), 0, 0).err(), Some(RingError::BadSize(0)));
    assert_eq!(
        RxRing::new(mem(), 16, 64).err(),
        Some(RingError::TooSmall { base: 16, needed: bytes_needed(64), len: bytes_needed(64) })
    );
    let odd = VecMemory::new(bytes_needed(8), BASE + 64);
    assert_eq!(TxRing::new(odd, 0, 8).err(), Some(RingError::Misaligned(BASE + 64)));
}

#[test]
fn rx_program_and_reap_in_order() {
    let regs = Regs::default();
    let mut ring = rx_ring(8);
    ring.program(&regs);
    assert_eq!(regs.get(reg::RDBAL0), BASE as u32);
    assert_eq!(regs.get(reg::RDBAH0), (BASE >> 32) as u32);
    assert_eq!(regs.get(reg::RDLEN0), 8 * 16);
    assert_eq!(regs.get(reg::RDH0), 0);
    assert_eq!(regs.get(reg::RDT0), 7, "all but one descriptor given");
    let mut nic = FakeNic::default();
    assert!(ring.receive(&regs, |_| ()).is_none(), "nothing yet");
    for k in 0..3u8 {
        assert!(nic.deliver(&regs, &mut ring, &[k; 60], rx_status::EOP | rx_status::TS));
    }
    for k in 0..3u8 {
        let got = ring.receive(&regs, |f| (f.index, f.bytes.to_vec(), f.latched_timestamp)).unwrap().unwrap();
        assert_eq!(got, (usize::from(k), vec![k; 60], true));
        assert_eq!(regs.get(reg::RDT0), u32::from(k), "tail = the descriptor just re-armed");
    }
    assert!(ring.receive(&regs, |_| ()).is_none());
}

#[test]
fn rx_full_ring_holds_size_minus_one_and_refills() {
    let regs = Regs::default();
    let mut ring = rx_ring(8);
    ring.program(&regs);
    let mut nic = FakeNic::default();
    let mut taken = 0;
    while nic.deliver(&regs, &mut ring, &[taken; 64], rx_status::EOP) {
        taken += 1;
    }
    assert_eq!(taken, 7, "the hardware gets size - 1 descriptors");
    ring.receive(&regs, |_| ()).unwrap().unwrap();
    assert!(nic.deliver(&regs, &mut ring, &[99; 64], rx_status::EOP));
    assert!(!nic.deliver(&regs, &mut ring, &[100; 64], rx_status::EOP));
    let order: Vec<u8> =
        std::iter::from_fn(|| ring.receive(&regs, |f| f.bytes[0])).map(Result::unwrap).collect();
    assert_eq!(order, vec![1, 2, 3, 4, 5, 6, 99]);
}

#[test]
fn rx_wraps_many_times_in_bursts() {
    let regs = Regs::default();
    let mut ring = rx_ring(16);
    ring.program(&regs);
    let mut nic = FakeNic::default();
    let (mut sent, mut got) = (0u32, 0u32);
    for burst in 0..200u32 {
        for _ in 0..(burst % 15) + 1 {
            let mut frame = vec![0u8; 60 + (sent as usize % 100)];
            frame[..4].copy_from_slice(&sent.to_le_bytes());
            if nic.deliver(&regs, &mut ring, &frame, rx_status::EOP) {
                sent += 1;
            }
        }
        while let Some(r) =
            ring.receive(&regs, |f| (u32::from_le_bytes(f.bytes[..4].try_into().unwrap()), f.bytes.len()))
        {
            let (seq, len) = r.unwrap();
            assert_eq!(seq, got);
            assert_eq!(len, 60 + (got as usize % 100));
            got += 1;
            assert_eq!(ring.tail(), regs.get(reg::RDT0) as usize);
        }
    }
    assert_eq!(sent, got);
    assert!(sent > 16 * 50, "wrapped many times ({sent} frames)");
}

#[test]
fn rx_discards_bad_descriptors_and_recovers() {
    let regs = Regs::default();
    let mut ring = rx_ring(8);
    ring.program(&regs);
    let mut nic = FakeNic::default();
    // A frame in two buffers, then one with a CRC error, then a bad in-buffer header, then good.
    assert!(nic.deliver(&regs, &mut ring, &[1; 100], 0));
    assert!(nic.deliver(&regs, &mut ring, &[1; 100], rx_status::EOP));
    assert!(nic.deliver(&regs, &mut ring, &[2; 60], rx_status::EOP | rx_error::CE));
    assert!(nic.deliver(&regs, &mut ring, &[3; 60], rx_status::EOP | rx_status::TSIP));
    let mut stamped = vec![0u8; 8];
    stamped.extend(777u64.to_le_bytes());
    stamped.extend([4; 60]);
    assert!(nic.deliver(&regs, &mut ring, &stamped, rx_status::EOP | rx_status::TSIP));
    let mut outcomes = Vec::new();
    while let Some(r) = ring.receive(&regs, |f| (f.bytes.to_vec(), f.packet_timestamp)) {
        outcomes.push(r);
    }
    assert_eq!(
        outcomes,
        vec![
            Err(RxDiscard::MultiBuffer),
            Err(RxDiscard::MultiBuffer),
            Err(RxDiscard::FrameError(rx_error::CE)),
            Err(RxDiscard::BadTimestampHeader),
            Ok((vec![4; 60], Some(777))),
        ]
    );
    // Every discarded descriptor was recycled: the ring takes size - 1 frames again.
    let mut taken = 0;
    while nic.deliver(&regs, &mut ring, &[5; 60], rx_status::EOP) {
        taken += 1;
    }
    assert_eq!(taken, 7);
}

#[test]
fn rx_frame_through_ring_and_parser() {
    let regs = Regs::default();
    let mut ring = rx_ring(8);
    ring.program(&regs);
    let mut nic = FakeNic::default();
    let mut msg = vec![0x00, 0x02, 0x00, 0x2C];
    msg.resize(44, 0);
    let frame = FrameSpec {
        transport: Transport::Udp4,
        src_mac: [2, 0, 0, 0, 0, 0x99],
        src_ip: [10, 0, 0, 1].into(),
        vlan_tci: None,
        udp_checksum: true,
        ip_id: 0,
    }
    .build(&msg)
    .unwrap();
    assert!(nic.deliver(&regs, &mut ring, &frame, rx_status::EOP | rx_status::TS));
    let filter = FrameFilter { transport: Transport::Udp4, own_mac: [2, 0, 0, 0, 0, 1], vlan: None };
    let (latched, seq) = ring
        .receive(&regs, |f| {
            let p = filter.parse(f.bytes).unwrap();
            (f.latched_timestamp, p.payload.to_vec())
        })
        .unwrap()
        .unwrap();
    assert!(latched);
    assert_eq!(seq, msg);
}

#[test]
fn tx_send_reap_full_and_wrap() {
    let regs = Regs::default();
    let mut ring = tx_ring(8);
    ring.program(&regs);
    assert_eq!(regs.get(reg::TDBAL0), BASE as u32);
    assert_eq!(regs.get(reg::TDLEN0), 128);
    assert_eq!((regs.get(reg::TDH0), regs.get(reg::TDT0)), (0, 0));
    let mut nic = FakeNic::default();
    for k in 0..7u8 {
        let i = ring
            .send(&regs, k == 3, |b| {
                b[..60].fill(k);
                60
            })
            .unwrap();
        assert_eq!(i, usize::from(k));
    }
    assert_eq!(ring.send(&regs, false, |_| 60), Err(TxError::Full));
    assert!(ring.stamp_in_flight());
    assert_eq!(regs.get(reg::TDT0), 7);
    assert!(ring.reap().is_none(), "nothing done before the device runs");
    assert_eq!(nic.transmit(&regs, &mut ring), 7);
    let done: Vec<_> = std::iter::from_fn(|| ring.reap()).collect();
    assert_eq!(done.len(), 7);
    assert!(done.iter().enumerate().all(|(k, d)| d.index == k));
    assert_eq!(done.iter().filter(|d| d.timestamped).map(|d| d.index).collect::<Vec<_>>(), vec![3]);
    assert_eq!(ring.in_flight(), 0);
    assert!(!ring.stamp_in_flight());
    // Around the ring many times, one or two frames at a time.
    for k in 0..100usize {
        for _ in 0..(k % 2) + 1 {
            ring.send(&regs, false, |b| {
                b[0] = k as u8;
                61
            })
            .unwrap();
        }
        nic.transmit(&regs, &mut ring);
        while ring.reap().is_some() {}
        assert_eq!(ring.in_flight(), 0);
        assert_eq!(ring.tail(), regs.get(reg::TDT0) as usize);
    }
    assert_eq!(nic.sent.len(), 7 + 150);
    assert_eq!(nic.sent[3], (vec![3; 60], true));
    assert!(nic.sent[7..].iter().all(|(b, ts)| b.len() == 61 && !ts));
}

#[test]
fn tx_refuses_bad_lengths_without_moving_the_tail() {
    let regs = Regs::default();
    let mut ring = tx_ring(8);
    ring.program(&regs);
    assert_eq!(ring.send(&regs, false, |_| 0), Err(TxError::BadLength(0)));
    assert_eq!(ring.send(&regs, false, |_| BUF_LEN + 1), Err(TxError::BadLength(BUF_LEN + 1)));
    assert_eq!(ring.in_flight(), 0);
    assert_eq!(regs.get(reg::TDT0), 0);
}

#[test]
fn tx_one_stamp_in_flight() {
    let regs = Regs::default();
    let mut ring = tx_ring(8);
    ring.program(&regs);
    let mut nic = FakeNic::default();
    ring.send(&regs, true, |_| 60).unwrap();
    ring.send(&regs, false, |_| 60).unwrap();
    assert_eq!(ring.send(&regs, true, |_| 60), Err(TxError::StampInFlight));
    assert_eq!(regs.get(reg::TDT0), 2, "the refused frame was not handed over");
    nic.transmit(&regs, &mut ring);
    assert_eq!(ring.reap().map(|d| d.timestamped), Some(true));
    assert!(!ring.stamp_in_flight());
    assert_eq!(ring.send(&regs, true, |_| 60), Ok(2));
}

#[test]
fn rx_hands_descriptors_back_in_batches_and_a_full_ring_always_refills() {
    let regs = Regs::default();
    let mut ring = rx_ring(8);
    ring.set_return_batch(3);
    ring.program(&regs);
    let mut nic = FakeNic::default();
    for k in 0..7u8 {
        assert!(nic.deliver(&regs, &mut ring, &[k; 60], rx_status::EOP));
    }
    assert!(!nic.deliver(&regs, &mut ring, &[7; 60], rx_status::EOP), "full: size - 1 given");
    let mut rdt = Vec::new();
    for k in 0..7u8 {
        assert_eq!(ring.receive(&regs, |f| f.bytes[0]).unwrap().unwrap(), k);
        rdt.push(regs.get(reg::RDT0));
        assert_eq!(ring.tail(), regs.get(reg::RDT0) as usize, "tail() is what the hardware was given");
    }
    assert_eq!(rdt, [7, 7, 2, 2, 2, 5, 5], "RDT moves once per 3 re-armed descriptors");
    // 6 handed back, 1 waiting: the hardware fills those 6 and no more, and the ring refills.
    let (mut sent, mut got) = (0u32, 0u32);
    for _ in 0..100 {
        while nic.deliver(&regs, &mut ring, &sent.to_le_bytes(), rx_status::EOP) {
            sent += 1;
        }
        while let Some(r) = ring.receive(&regs, |f| u32::from_le_bytes(f.bytes[..4].try_into().unwrap())) {
            assert_eq!(r.unwrap(), got);
            got += 1;
        }
    }
    assert_eq!(sent, got);
    assert!(sent >= 100 * 5, "at least size - batch descriptors refilled each round ({sent} frames)");
    ring.set_return_batch(100);
    ring.set_return_batch(0);
    assert!(ring.receive(&regs, |_| ()).is_none());
}
