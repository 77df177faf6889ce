//! The simulated NIC's datapath through the driver's own code: link up by MDIC autonegotiation,
//! `bring_up`, then frames through `RxRing`/`TxRing` in shared host memory, with packet stamps
//! compared with the simulator's truth; the 82576 latch (held, released by RXSTMPH on silicon and
//! by RXSATRH under QEMU), the 82580/i210 in-buffer header, drops when the link is down or the
//! ring is full.

use std::sync::Arc;
use std::time::Duration;

use nicclock_driver::model::Family;
use nicclock_driver::net::bringup::{bring_up, RingPlace};
use nicclock_driver::net::frame::{FrameSpec, Transport};
use nicclock_driver::net::phy::{self, LinkUp, PhyError};
use nicclock_driver::net::ring::{bytes_needed, RxRing, TxRing};
use nicclock_driver::regs;
use nicclock_driver::sim::{
    FrameSink, HostMemory, RxDrop, SimConfig, SimModel, SimNic, I210_STAMP_LATENCY_NS, RXSATRH, TSYNC_VALID,
};
use nicclock_driver::timesource::{TimeSource, VirtualTime};
use nicclock_uio::RegisterAccess;
use std::sync::Mutex;

const DESCS: usize = 16;

/// A PTP v2 message of `len` bytes whose first byte is `first` (transportSpecific | messageType).
fn ptp(first: u8, len: usize, seq: u16) -> Vec<u8> {
    let mut m = vec![0u8; len];
    m[0] = first;
    m[1] = 0x02;
    m[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    m[20..28].copy_from_slice(&[0, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 9]);
    m[30..32].copy_from_slice(&seq.to_be_bytes());
    m
}

fn l2(from: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let spec = FrameSpec {
        transport: Transport::L2,
        src_mac: from,
        src_ip: std::net::Ipv4Addr::UNSPECIFIED,
        vlan_tci: None,
        udp_checksum: false,
        ip_id: 0,
    };
    spec.build(payload).unwrap()
}

const PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x77];

/// Records what the NIC transmits.
#[derive(Default)]
struct Capture(Mutex<Vec<(u64, Vec<u8>)>>);

impl FrameSink for Capture {
    fn transmit(&self, t_ns: u64, frame: Vec<u8>) {
        self.0.lock().unwrap().push((t_ns, frame));
    }
}

struct Port {
    time: Arc<VirtualTime>,
    nic: Arc<SimNic>,
    rx: RxRing<HostMemory>,
    tx: TxRing<HostMemory>,
    wire: Arc<Capture>,
}

fn family(model: SimModel) -> Family {
    match model {
        SimModel::I82576 => Family::E82576,
        SimModel::I82580 | SimModel::I350 | SimModel::I354 => Family::E82580,
        SimModel::I210 | SimModel::I211 => Family::I210,
        SimModel::I82574 => Family::E82574,
    }
}

fn advance(time: &VirtualTime) -> impl FnMut(Duration) + '_ {
    move |d| time.advance(d.as_nanos() as u64)
}

/// A NIC with its link brought up by autonegotiation and queue 0 brought up on rings in host
/// memory, counting from TIMINCA (82576: the Linux value).
fn port(config: SimConfig) -> Port {
    let time = VirtualTime::new();
    let model = config.model;
    let nic = Arc::new(SimNic::new(SimConfig { link_up_at_reset: false, ..config }, time.clone()));
    let rx_mem = HostMemory::new(bytes_needed(DESCS), 0x1_0000_0000);
    let tx_mem = HostMemory::new(bytes_needed(DESCS), 0x2_0000_0000);
    nic.attach_memory(rx_mem.clone());
    nic.attach_memory(tx_mem.clone());
    let wire = Arc::new(Capture::default());
    nic.attach_wire(wire.clone());
    let rx = RxRing::new(rx_mem, 0, DESCS).unwrap();
    let tx = TxRing::new(tx_mem, 0, DESCS).unwrap();
    if model == SimModel::I82576 {
        nic.write32(regs::TIMINCA, 0x0180_0000);
    }
    let up = phy::link_up_with(&*nic, Duration::from_secs(5), &mut advance(&time)).unwrap();
    assert!(matches!(up, LinkUp::Negotiated { after } if after >= Duration::from_millis(500)), "{up:?}");
    let place = |addr, descs| RingPlace { desc_addr: addr, descs };
    bring_up(&*nic, family(model), place(rx.desc_addr(), DESCS), place(tx.desc_addr(), DESCS)).unwrap();
    Port { time, nic, rx, tx, wire }
}

/// The next received frame: (bytes, latched TS bit, in-packet stamp).
fn receive(p: &mut Port) -> Option<(Vec<u8>, bool, Option<u64>)> {
    let nic = p.nic.clone();
    p.rx.receive(&*nic, |f| (f.bytes.to_vec(), f.latched_timestamp, f.packet_timestamp)).map(|r| r.unwrap())
}

fn rxstmp(nic: &SimNic) -> u64 {
    let lo = nic.read32(regs::RXSTMPL) as u64;
    lo | (nic.read32(regs::RXSTMPH) as u64) << 32
}

#[test]
fn frames_round_trip_through_the_rings_with_stamps_from_the_truth() {
    let mut p = port(SimConfig { stamp_jitter_ns: 20.0, ..SimConfig::default() });
    let mut errors = Vec::new();
    for k in 0..50u16 {
        p.time.advance(125_000_000);
        let frame = l2(PEER, &ptp(0x00, 44, k));
        let got = p.nic.deliver(&frame).unwrap();
        let truth = p.nic.truth();
        let (bytes, ts, in_packet) = receive(&mut p).expect("the frame is in the ring");
        assert_eq!(bytes, frame);
        assert!(ts && in_packet.is_none(), "82576: the TS bit, no header");
        let raw = rxstmp(&p.nic);
        assert_eq!(got.stamp, Some(raw));
        assert_eq!(raw % (1 << 23), 0, "a value the counter takes: whole 16 ns increments");
        errors.push((raw >> 19) as i64 - (truth.raw >> 19) as i64);
    }
    let mean = errors.iter().sum::<i64>() as f64 / errors.len() as f64;
    let worst = errors.iter().map(|e| e.abs()).max().unwrap();
    assert!(worst < 100 && mean.abs() < 10.0, "RX stamp errors vs truth: mean {mean}, worst {worst}");
    assert!(errors.iter().any(|e| *e != 0), "20 ns jitter shows");

    // TX: the frame leaves at the TDT write, stamped then.
    let payload = ptp(0x01, 44, 9);
    let frame = l2([0x52, 0x54, 0, 1, 0, 0], &payload);
    p.tx.send(&*p.nic, true, |buf| {
        buf[..frame.len()].copy_from_slice(&frame);
        frame.len()
    })
    .unwrap();
    let sent_at = p.time.now_ns();
    let truth = p.nic.truth();
    let done = p.tx.reap().expect("written back DD at once");
    assert!(done.timestamped);
    assert_ne!(p.nic.read32(regs::TSYNCTXCTL) & TSYNC_VALID, 0);
    let lo = p.nic.read32(regs::TXSTMPL) as u64;
    let raw = lo | (p.nic.read32(regs::TXSTMPH) as u64) << 32;
    assert_eq!(p.nic.read32(regs::TSYNCTXCTL) & TSYNC_VALID, 0, "TXSTMPH read releases");
    assert!(((raw >> 19) as i64 - (truth.raw >> 19) as i64).abs() < 100);
    let wire = p.wire.0.lock().unwrap();
    assert_eq!(wire.as_slice(), &[(sent_at, frame)]);
    let stats = p.nic.datapath_stats();
    assert_eq!((stats.rx_frames, stats.rx_latched, stats.tx_frames, stats.tx_stamped), (50, 50, 1, 1));
}

#[test]
fn the_82576_latch_holds_until_rxstmph_on_silicon() {
    let mut p = port(SimConfig::ideal());
    p.time.advance(1_000_000);
    p.nic.deliver(&l2(PEER, &ptp(0x00, 44, 1))).unwrap();
    let first_truth = p.nic.truth().raw;
    p.time.advance(1_000_000);
    let second = p.nic.deliver(&l2(PEER, &ptp(0x00, 44, 2))).unwrap();
    assert_eq!(second.stamp, None, "latch held: the next Sync is not stamped");
    let (_, ts1, _) = receive(&mut p).unwrap();
    let (_, ts2, _) = receive(&mut p).unwrap();
    assert!(ts1 && !ts2);
    assert_eq!(p.nic.datapath_stats().rx_latch_held, 1);
    assert_eq!(p.nic.read32(RXSATRH), 1 << 16 | 0x0900, "the latched frame's sequenceId (1) and uuid");
    assert_eq!(rxstmp(&p.nic), first_truth, "the latch kept the first frame's stamp");
    assert_eq!(p.nic.read32(regs::TSYNCRXCTL) & TSYNC_VALID, 0, "RXSTMPH released it");
    p.time.advance(1_000_000);
    assert!(p.nic.deliver(&l2(PEER, &ptp(0x00, 44, 3))).unwrap().stamp.is_some());
    // Follow_Up (general) and a frame to someone else's unicast MAC: not stamped / not received.
    p.nic.read32(regs::RXSTMPH);
    assert_eq!(p.nic.deliver(&l2(PEER, &ptp(0x08, 44, 3))).unwrap().stamp, None);
    let mut other = l2(PEER, &ptp(0x00, 44, 4));
    other[..6].copy_from_slice(&[0x02, 1, 2, 3, 4, 5]);
    assert_eq!(p.nic.deliver(&other), Err(RxDrop::Filtered));
}

#[test]
fn under_qemu_rxsatrh_releases_the_latch_and_rxstmph_does_not() {
    let mut p = port(SimConfig { qemu: true, ..SimConfig::ideal() });
    p.time.advance(1_000_000);
    assert!(p.nic.deliver(&l2(PEER, &ptp(0x00, 44, 7))).unwrap().stamp.is_some());
    rxstmp(&p.nic);
    assert_ne!(p.nic.read32(regs::TSYNCRXCTL) & TSYNC_VALID, 0, "QEMU: RXSTMPH does not release");
    assert_eq!(p.nic.deliver(&l2(PEER, &ptp(0x00, 44, 8))).unwrap().stamp, None);
    assert_eq!(p.nic.read32(RXSATRH) >> 16, 0, "QEMU's sequenceId reads 0");
    assert_eq!(p.nic.read32(regs::TSYNCRXCTL) & TSYNC_VALID, 0, "RXSATRH released it");
    // QEMU stamps only what matches TSYNCRXCFG's message type (0: Sync), not a Delay_Req.
    assert_eq!(p.nic.deliver(&l2(PEER, &ptp(0x01, 44, 9))).unwrap().stamp, None);
    assert!(p.nic.deliver(&l2(PEER, &ptp(0x00, 44, 10))).unwrap().stamp.is_some());
    let flags: Vec<bool> = std::iter::from_fn(|| receive(&mut p)).map(|(_, ts, _)| ts).collect();
    assert_eq!(flags, vec![true, false, false, true]);
}

#[test]
fn the_82580_and_i210_write_the_stamp_into_the_buffer() {
    for model in [SimModel::I82580, SimModel::I210] {
        let mut p = port(SimConfig { model, ..SimConfig::ideal() });
        p.time.advance(3_000_000_000);
        let frame = l2(PEER, &ptp(0x0b, 64, 1)); // an Announce: type ALL stamps every packet
        let got = p.nic.deliver(&frame).unwrap();
        let truth = p.nic.truth();
        let (bytes, ts, in_packet) = receive(&mut p).unwrap();
        assert_eq!(bytes, frame, "{model}: the header is split off");
        assert!(!ts, "{model}: no register latch");
        // The i210 stamps 448 ns after the frame arrived (at 1000 Mb/s), the 82580 at arrival.
        let latency = if model == SimModel::I210 { I210_STAMP_LATENCY_NS.1 } else { 0 };
        assert_eq!(in_packet, Some(truth.raw + latency), "{model}: header = SYSTIM at arrival + latency");
        assert_eq!(got.stamp, in_packet);
        if model == SimModel::I210 {
            assert_eq!(truth.raw >> 32, 3, "i210: seconds in SYSTIMH");
            // TX: the stamp is taken 178 ns before the frame leaves.
            let frame = l2([0x52, 0x54, 0, 1, 0, 0], &ptp(0x01, 44, 2));
            p.tx.send(&*p.nic, true, |buf| {
                buf[..frame.len()].copy_from_slice(&frame);
                frame.len()
            })
            .unwrap();
            let (at, raw) = (p.time.now_ns(), p.nic.truth().raw);
            let lo = p.nic.read32(regs::TXSTMPL) as u64;
            assert_eq!(lo | (p.nic.read32(regs::TXSTMPH) as u64) << 32, raw);
            assert_eq!(p.wire.0.lock().unwrap()[0].0, at + I210_STAMP_LATENCY_NS.0);
        }
        assert_eq!(p.nic.datapath_stats().rx_packet_stamped, 1);
    }
}

#[test]
fn link_down_means_no_frames_and_a_named_error() {
    let time = VirtualTime::new();
    let config = SimConfig { link_up_at_reset: false, link_partner: false, ..SimConfig::ideal() };
    let nic = SimNic::new(config, time.clone());
    let err = phy::link_up_with(&nic, Duration::from_secs(3), &mut advance(&time)).unwrap_err();
    assert!(matches!(err, PhyError::LinkDown { waited_ms: 3000, .. }), "{err:?}");
    let PhyError::LinkDown { bmsr, status, .. } = err else { unreachable!() };
    assert_eq!((bmsr & 0x24, status & 2), (0, 0), "no link, no AN complete");
    assert!(err.to_string().contains("check the cable"), "{err}");
    assert_eq!(nic.deliver(&l2(PEER, &ptp(0, 44, 1))), Err(RxDrop::LinkDown));
    assert_eq!(nic.datapath_stats().rx_dropped_link_down, 1);
}

#[test]
fn a_full_ring_drops_and_counts() {
    let mut p = port(SimConfig::ideal());
    // RDT = 15: 15 descriptors given, the 16th held back.
    for k in 0..20u16 {
        let r = p.nic.deliver(&l2(PEER, &ptp(0x08, 44, k)));
        assert_eq!(r.is_ok(), k < 15, "frame {k}: {r:?}");
    }
    assert_eq!(p.nic.datapath_stats().rx_dropped_no_descriptor, 5);
    assert_eq!(std::iter::from_fn(|| receive(&mut p)).count(), 15);
    assert!(p.nic.deliver(&l2(PEER, &ptp(0x08, 44, 99))).is_ok(), "reaping gave descriptors back");
    // A stamped Sync dropped for want of a descriptor leaves the 82576 latch held (Linux's hang).
    let q = port(SimConfig::ideal());
    for k in 0..15u16 {
        q.nic.deliver(&l2(PEER, &ptp(0x08, 44, k))).unwrap();
    }
    assert_eq!(q.nic.deliver(&l2(PEER, &ptp(0x00, 44, 1))), Err(RxDrop::NoDescriptor));
    assert_ne!(q.nic.read32(regs::TSYNCRXCTL) & TSYNC_VALID, 0, "stuck latch");
}

#[test]
fn garbage_rings_and_descriptors_are_counted_never_a_panic() {
    use nicclock_driver::net::desc::reg;
    use rand::{Rng, SeedableRng};
    let p = port(SimConfig::ideal());
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    let mut tx_mem = HostMemory::new(4096, 0x3_0000_0000);
    p.nic.attach_memory(tx_mem.clone());
    // RX ring moved where no host memory is: the frame is a DMA fault, counted.
    p.nic.write32(reg::RDBAL0, 0x9000_0000);
    assert_eq!(p.nic.deliver(&l2(PEER, &ptp(0, 44, 1))), Err(RxDrop::DmaFault));
    assert_eq!(p.nic.datapath_stats().dma_faults, 1);
    // TX ring of random descriptors (addresses and lengths anywhere, EOP or not).
    use nicclock_driver::net::ring::DescMemory;
    p.nic.write32(reg::TDBAL0, 0);
    p.nic.write32(reg::TDBAH0, 3);
    p.nic.write32(reg::TDLEN0, 128 * 16);
    p.nic.write32(reg::TDH0, 0);
    for round in 0..200 {
        for i in 0..128 {
            let addr =
                if rng.random::<bool>() { 0x3_0000_0000 + rng.random_range(0..4096) } else { rng.random() };
            tx_mem.write_u64(i * 16, addr);
            tx_mem.write_u64(i * 16 + 8, rng.random::<u64>() & !(0xFFFF_u64 << 48));
        }
        let tail = rng.random_range(0..200u32);
        p.nic.write32(reg::TDT0, tail);
        assert!(p.nic.read32(reg::TDH0) < 128, "round {round}: TDH stays in the ring");
        // Random RX programming too.
        p.nic.write32(reg::RDLEN0, rng.random());
        p.nic.write32(reg::RDH0, rng.random());
        p.nic.write32(reg::RDT0, rng.random());
        p.nic.write32(reg::SRRCTL0, rng.random());
        let _ = p.nic.deliver(&l2(PEER, &ptp(rng.random(), 44, round)));
    }
    let s = p.nic.datapath_stats();
    assert!(s.dma_faults > 100 && s.tx_bad_frames > 0, "{s:?}");
}

#[test]
fn qemu_holds_what_the_ring_cannot_take_and_stamps_it_when_let_in() {
    let mut p = port(SimConfig { qemu: true, ..SimConfig::ideal() });
    for k in 0..15u16 {
        p.nic.deliver(&l2(PEER, &ptp(0x08, 44, k))).unwrap();
    }
    // The ring is full: QEMU's net layer holds the Sync instead of dropping it.
    p.time.advance(1_000_000);
    let arrived = p.nic.truth().raw;
    assert_eq!(p.nic.deliver(&l2(PEER, &ptp(0x00, 44, 99))), Err(RxDrop::Held));
    assert_eq!(p.nic.datapath_stats().rx_held, 1);
    // 10 ms later the driver reaps one descriptor (its RDT write): QEMU hands the Sync over then,
    // and stamps it then — 10 ms after it arrived (HARDWARE.md §7's hazard).
    p.time.advance(10_000_000);
    let let_in = p.nic.truth().raw;
    assert!(receive(&mut p).is_some());
    let latched = p.nic.read32(regs::RXSTMPL) as u64 | (p.nic.read32(regs::RXSTMPH) as u64) << 32;
    assert_eq!(latched, let_in);
    assert_eq!((latched - arrived) >> 19, 10_000_000);
    assert_eq!(p.nic.datapath_stats().rx_frames, 16);
    let flags: Vec<bool> = std::iter::from_fn(|| receive(&mut p)).map(|(_, ts, _)| ts).collect();
    assert_eq!(flags.last(), Some(&true), "the held Sync is the last frame, stamped");
}

#[test]
fn interrupt_causes_rise_with_the_datapath_and_clear_on_read() {
    use nicclock_driver::sim::{ICR, IMC, IMS, INT_ASSERTED, LSC, RXDW, TIME_SYNC, TXDW};
    use std::sync::atomic::{AtomicU64, Ordering};
    for qemu in [false, true] {
        let mut p = port(SimConfig { qemu, ..SimConfig::ideal() });
        let fired = Arc::new(AtomicU64::new(0));
        let f = fired.clone();
        p.nic.attach_irq(Arc::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
        }));
        p.nic.read32(ICR);
        p.nic.write32(regs::TSIM, regs::TSINTR_TXTS);
        p.nic.write32(IMS, TXDW | LSC | RXDW | TIME_SYNC);
        assert_eq!(fired.load(Ordering::SeqCst), 0, "nothing pending");
        // A received frame: RXDW.
        p.nic.deliver(&l2(PEER, &ptp(0x08, 44, 1))).unwrap();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert_eq!(p.nic.read32(ICR), RXDW | INT_ASSERTED);
        assert_eq!(p.nic.read32(ICR), 0, "read to clear");
        // A stamped frame sent: TXDW, and the time-sync cause with TSICR.TXTS (not under QEMU).
        let frame = l2([0x52, 0x54, 0, 1, 0, 0], &ptp(0x01, 44, 2));
        p.tx.send(&*p.nic, true, |buf| {
            buf[..frame.len()].copy_from_slice(&frame);
            frame.len()
        })
        .unwrap();
        let icr = p.nic.read32(ICR);
        if qemu {
            assert_eq!(icr, TXDW | INT_ASSERTED, "QEMU raises no time-sync cause");
        } else {
            assert_eq!(icr, TXDW | TIME_SYNC | INT_ASSERTED);
            assert_eq!(p.nic.read32(regs::TSICR), regs::TSINTR_TXTS);
            assert_eq!(p.nic.read32(regs::TSICR), 0, "the 82576's TSICR clears on the read");
        }
        // Masked causes are recorded but do not interrupt.
        p.nic.write32(IMC, RXDW);
        let before = fired.load(Ordering::SeqCst);
        p.nic.deliver(&l2(PEER, &ptp(0x08, 44, 3))).unwrap();
        assert_eq!(fired.load(Ordering::SeqCst), before);
        assert_eq!(p.nic.read32(ICR), RXDW, "pending but masked: not asserted");
        // Restarting autonegotiation: LSC when the link drops and again when it is back.
        phy::write_phy(&*p.nic, phy::mii::BMCR, phy::BMCR_RESTART_AUTONEG).unwrap();
        assert_eq!(p.nic.read32(ICR), LSC | INT_ASSERTED);
        p.time.advance(500_000_000);
        assert_eq!(p.nic.read32(ICR), LSC | INT_ASSERTED);
        assert_eq!(p.nic.interrupts(), fired.load(Ordering::SeqCst));
    }
}
