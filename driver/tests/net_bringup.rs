//! The igb queue bring-up and teardown sequences against hand-written register writes (offsets
//! and values worked out from the datasheet bits), the bounded waits' errors, and the multicast
//! hash of the PTP addresses.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use nicclock_driver::model::Family;
use nicclock_driver::net::bringup::{bring_up, mta_hash, tear_down, BringupError, RingPlace};
use nicclock_driver::net::ring::{bytes_needed, RxRing, VecMemory};
use nicclock_uio::RegisterAccess;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    R(usize),
    W(usize, u32),
}

/// A register file recording every access; `stuck` registers always read `stuck_value`.
#[derive(Default)]
struct Fake {
    values: RefCell<HashMap<usize, u32>>,
    ops: RefCell<Vec<Op>>,
    stuck: HashSet<usize>,
    stuck_value: u32,
}

impl Fake {
    fn with(preset: &[(usize, u32)]) -> Self {
        let f = Fake::default();
        f.values.borrow_mut().extend(preset.iter().copied());
        f
    }
    fn writes(&self) -> Vec<(usize, u32)> {
        self.ops
            .borrow()
            .iter()
            .filter_map(|op| if let Op::W(o, v) = *op { Some((o, v)) } else { None })
            .collect()
    }
}

impl RegisterAccess for Fake {
    fn len(&self) -> usize {
        0x20000
    }
    fn read32(&self, offset: usize) -> u32 {
        self.ops.borrow_mut().push(Op::R(offset));
        if self.stuck.contains(&offset) {
            return self.stuck_value;
        }
        self.values.borrow().get(&offset).copied().unwrap_or(0)
    }
    fn write32(&self, offset: usize, value: u32) {
        self.ops.borrow_mut().push(Op::W(offset, value));
        self.values.borrow_mut().insert(offset, value);
    }
}

const RX: RingPlace = RingPlace { desc_addr: 0x0000_0001_2345_6000, descs: 64 };
const TX: RingPlace = RingPlace { desc_addr: 0x0000_0002_0000_8000, descs: 32 };

/// What was in RCTL/TCTL before (enabled, as a kernel driver leaves them).
const PRESET: [(usize, u32); 2] = [(0x0100, 0x0400_8002), (0x0400, 0x0103_F0FA)];

/// The writes every family shares up to the stamping part.
fn queue_writes(srrctl: u32) -> Vec<(usize, u32)> {
    let mut w = vec![(0x0100, 0x0400_8000), (0x0400, 0x0103_F0F8), (0xC028, 0), (0xE028, 0)];
    w.extend((0..128).map(|i| (0x5200 + 4 * i, 0)));
    // 01-1B-19-00-00-00: hash 0 -> MTA[0] bit 0; 01-00-5E-00-01-81: hash 0x810 -> MTA[64] bit 16.
    w.extend([(0x5200, 0x0000_0001), (0x5300, 0x0001_0000)]);
    w.extend([
        (0xC000, 0x2345_6000),
        (0xC004, 0x0000_0001),
        (0xC008, 64 * 16),
        (0xC00C, srrctl),
        (0xC010, 0),
        (0xC018, 0),
        (0xC028, 0x0201_0108),
        (0xC018, 63),
        (0x0100, 0x0400_8002),
        (0xE000, 0x0000_8000),
        (0xE004, 0x0000_0002),
        (0xE008, 32 * 16),
        (0xE010, 0),
        (0xE018, 0),
        (0xE028, 0x0201_0108),
        (0x0400, 0x0103_F0FA),
    ]);
    w
}

fn ends_with_latch_reads(fake: &Fake) {
    let ops = fake.ops.borrow();
    assert_eq!(
        ops[ops.len() - 4..],
        [Op::R(0xB618), Op::R(0xB61C), Op::R(0xB624), Op::R(0xB628)],
        "TXSTMPL/H and RXSTMPL/H read once at the end to release stale latches"
    );
}

#[test]
fn the_82576_gets_the_hand_written_sequence() {
    let fake = Fake::with(&PRESET);
    bring_up(&fake, Family::E82576, RX, TX).unwrap();
    // SRRCTL: BSIZEPKT 2 (2 KiB) | one-buffer advanced 0x02000000 | RDMTS 1 (16 descriptors)
    // 0x00100000 | DROP_EN 0x80000000.
    let mut want = queue_writes(0x8210_0002);
    want.extend([
        (0x5F50, 0),
        (0x5CBC, 0x4400_88F7),
        (0x59CC, 0x3F01),
        (0x5A8C, 0x3F01),
        (0x5AAC, 0x0008_1000),
        (0x59EC, 0x6800_8011),
        (0xB620, 0x1A),
        (0xB614, 0x10),
    ]);
    assert_eq!(fake.writes(), want);
    ends_with_latch_reads(&fake);
}

#[test]
fn the_i210_gets_the_buffer_timestamp_and_every_packet_stamped() {
    let fake = Fake::with(&[PRESET[0], PRESET[1], (0x2404, 0xA2), (0xB620, 0x0000_0401)]);
    bring_up(&fake, Family::I210, RX, TX).unwrap();
    // SRRCTL also has the timestamp-header bit 0x40000000.
    let mut want = queue_writes(0xC210_0002);
    want.extend([
        (0x2404, 0x8000_00A2),
        (0x5F50, 0),
        (0x5CBC, 0x4400_88F7),
        (0x5A8C, 0x3F01),
        (0x5AAC, 0x0008_1000),
        (0x59EC, 0xE800_8011),
        // Other bits kept (RXSYNSIG 0x400, VALID), type ALL 0x08 | enabled 0x10.
        (0xB620, 0x0000_0419),
        (0xB614, 0x10),
    ]);
    assert_eq!(fake.writes(), want);
    ends_with_latch_reads(&fake);
}

#[test]
fn the_82580_family_has_no_rxpbs_write() {
    let fake = Fake::with(&PRESET);
    bring_up(&fake, Family::E82580, RX, TX).unwrap();
    let w = fake.writes();
    assert!(w.contains(&(0xC00C, 0xC210_0002)) && w.contains(&(0xB620, 0x18)));
    assert!(!w.iter().any(|&(o, _)| o == 0x2404 || o == 0x59CC), "{w:x?}");
}

#[test]
fn the_82574_is_refused_before_any_write() {
    let fake = Fake::default();
    let e = bring_up(&fake, Family::E82574, RX, TX).unwrap_err();
    assert_eq!(e, BringupError::Unsupported(Family::E82574));
    assert!(e.to_string().contains("82576"), "{e}");
    assert_eq!(tear_down(&fake, Family::E82574), Err(BringupError::Unsupported(Family::E82574)));
    assert!(fake.ops.borrow().is_empty());
}

#[test]
fn rings_the_hardware_cannot_take_are_refused_before_any_write() {
    let fake = Fake::default();
    let bad =
        [RingPlace { descs: 0, ..RX }, RingPlace { descs: 12, ..RX }, RingPlace { desc_addr: 0x1040, ..RX }];
    for ring in bad {
        let e = bring_up(&fake, Family::E82576, RX, ring).unwrap_err();
        assert_eq!(e, BringupError::BadRing { queue: "TX", desc_addr: ring.desc_addr, descs: ring.descs });
        assert!(e.to_string().contains("multiples of 8"), "{e}");
    }
    assert!(fake.ops.borrow().is_empty());
}

#[test]
fn a_queue_that_never_enables_is_a_typed_error_not_a_hang() {
    let fake = Fake { stuck: [0xC028].into(), ..Fake::with(&PRESET) };
    let e = bring_up(&fake, Family::E82576, RX, TX).unwrap_err();
    let BringupError::QueueTimeout { register, offset, enable, last, .. } = e else { panic!("{e}") };
    assert_eq!((register, offset, enable, last), ("RXDCTL0", 0xC028, true, 0));
    assert!(e.to_string().contains("did not turn on") && e.to_string().contains("reset"), "{e}");
    let w = fake.writes();
    assert_eq!(w.last(), Some(&(0xC028, 0x0201_0108)), "nothing written after the failed wait");
    let polls = fake.ops.borrow().iter().filter(|&&op| op == Op::R(0xC028)).count();
    assert!(polls > 1 && polls <= 200, "bounded polling: {polls}");
}

#[test]
fn a_queue_that_never_disables_is_a_typed_error() {
    let fake = Fake { stuck: [0xE028].into(), stuck_value: 0x0200_0000, ..Fake::default() };
    let e = tear_down(&fake, Family::E82580).unwrap_err();
    assert!(
        matches!(e, BringupError::QueueTimeout { register: "TXDCTL0", enable: false, last: 0x0200_0000, .. }),
        "{e}"
    );
}

#[test]
fn teardown_stops_stamping_then_the_queues() {
    let fake = Fake::with(&[
        (0x0100, 0x0400_8002),
        (0x0400, 0x0103_F0FA),
        (0xB620, 0x1A),
        (0xB614, 0x11),
        (0x2404, 0x8000_00A2),
    ]);
    tear_down(&fake, Family::I210).unwrap();
    assert_eq!(
        fake.writes(),
        [
            (0xB620, 0x0A),
            (0xB614, 0x01),
            (0x5CBC, 0),
            (0x59EC, 0xF000_0000),
            (0x2404, 0xA2),
            (0x0100, 0x0400_8000),
            (0x0400, 0x0103_F0F8),
            (0xC028, 0),
            (0xE028, 0),
        ]
    );
}

#[test]
fn ptp_multicast_hashes_match_hand_computed_bits() {
    // Hash = address bits 47:36 = (byte4 >> 4) | (byte5 << 4); word = hash / 32, bit = hash % 32.
    assert_eq!(mta_hash([0x01, 0x1B, 0x19, 0x00, 0x00, 0x00]), (0, 0));
    assert_eq!(mta_hash([0x01, 0x00, 0x5E, 0x00, 0x01, 0x81]), (64, 16));
    assert_eq!(mta_hash([0x01, 0x80, 0xC2, 0x00, 0x00, 0x0E]), (7, 0));
    assert_eq!(mta_hash([0, 0, 0, 0, 0xF0, 0xFF]), (127, 31));
}

#[test]
fn bring_up_programs_the_ring_as_the_ring_itself_would() {
    let ring = RxRing::new(VecMemory::new(bytes_needed(64), 0x1_0000_0000), 0, 64).unwrap();
    let by_ring = Fake::default();
    ring.program(&by_ring);
    let by_bringup = Fake::with(&PRESET);
    bring_up(&by_bringup, Family::E82576, RingPlace { desc_addr: ring.desc_addr(), descs: ring.size() }, TX)
        .unwrap();
    for reg in [0xC000, 0xC004, 0xC008, 0xC010, 0xC018] {
        assert_eq!(by_ring.read32(reg), by_bringup.read32(reg), "register {reg:#x}");
    }
}
