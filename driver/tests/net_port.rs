//! NetPort on a fake igb datapath: RX stamps matched by the descriptor's TS bit and released as
//! the board needs (RXSTMPH on silicon, RXSATRH on QEMU), a stuck RX latch cleared, the 82580+
//! in-buffer header and the i210's latency compensation, bad frames dropped and counted, the TX
//! stamp read once its descriptor is done, and a lost one given up after a bounded wait.

mod fakeport;

use std::net::Ipv4Addr;
use std::sync::Arc;

use fakeport::{from_master, ptp_message, FakeNic, SharedMem, OUR_MAC};
use nicclock_driver::clock::Nanos;
use nicclock_driver::model::Family;
use nicclock_driver::net::frame::{self, FrameFilter, Reject};
use nicclock_driver::net::port::{
    preg, LinkSpeed, NetPort, PortConfig, PortError, RawStamp, Received, StampUnlock, Transport,
    TxStampOutcome, RX_DESCS, RX_MEM_BYTES, STUCK_RX_LATCH_NS, TX_MEM_BYTES, TX_STAMP_TIMEOUT_NS,
};
use nicclock_driver::regs::TXSTMPH;

const SYNC: u8 = 0;
const DELAY_REQ: u8 = 1;
const FOLLOW_UP: u8 = 8;
const ANNOUNCE: u8 = 0xb;

fn port(family: Family, qemu: bool, transport: Transport) -> (Arc<FakeNic>, NetPort<SharedMem>) {
    let nic = FakeNic::new(family, qemu, RX_MEM_BYTES, TX_MEM_BYTES);
    let cfg = PortConfig {
        family,
        transport,
        mac: OUR_MAC,
        domain: 0,
        stamp_unlock: if qemu { StampUnlock::RxsatrhRead } else { StampUnlock::RxstmphRead },
    };
    let mut p = NetPort::new(nic.rx_mem.clone(), nic.tx_mem.clone(), cfg).unwrap();
    p.bring_up(&*nic).unwrap();
    (nic, p)
}

fn poll(nic: &FakeNic, p: &mut NetPort<SharedMem>) -> Vec<Received> {
    let mut out = Vec::new();
    p.poll_rx(nic, &mut out);
    out
}

fn stamp_of(r: &Received) -> RawStamp {
    match r {
        Received::Event { rx_raw, .. } => *rx_raw,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn raw(s: RawStamp) -> u64 {
    u64::from(s.hi) << 32 | u64::from(s.lo)
}

#[test]
fn the_82576_latch_is_read_in_ring_order_and_released_by_rxstmph_on_silicon() {
    let (nic, mut p) = port(Family::E82576, false, Transport::L2);
    let sync = from_master(frame::Transport::L2, &ptp_message(SYNC, 44, 0, 1));
    let before = nic.raw_now();
    assert!(nic.deliver(&sync));
    nic.time.advance(1_000_000);
    let follow_up = from_master(frame::Transport::L2, &ptp_message(FOLLOW_UP, 44, 0, 1));
    assert!(nic.deliver(&follow_up));
    let got = poll(&nic, &mut p);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(raw(stamp_of(&got[0])), before, "the Sync carries the stamp latched at its arrival");
    assert!(matches!(&got[1], Received::General { data } if data[0] == FOLLOW_UP));
    assert!(!nic.rx_latch_valid(), "reading RXSTMPH released the latch");
    assert!(!nic.take_reads().contains(&preg::RXSATRH), "silicon needs no RXSATRH read");
    // The next Sync latches again.
    nic.time.advance(1_000_000);
    let second = nic.raw_now();
    assert!(nic.deliver(&sync));
    assert_eq!(raw(stamp_of(&poll(&nic, &mut p)[0])), second);
    assert_eq!(p.counters().accepted, 3);
    assert_eq!(p.port_counters().event_unstamped, 0);
}

#[test]
fn qemu_needs_the_rxsatrh_read_and_the_quirk_gives_it() {
    let sync = from_master(frame::Transport::L2, &ptp_message(SYNC, 44, 0, 1));
    // With the quirk's unlock, every Sync is stamped.
    let (nic, mut p) = port(Family::E82576, true, Transport::L2);
    for _ in 0..3 {
        nic.time.advance(125_000_000);
        let t = nic.raw_now();
        assert!(nic.deliver(&sync));
        assert_eq!(raw(stamp_of(&poll(&nic, &mut p)[0])), t);
    }
    assert!(nic.take_reads().contains(&preg::RXSATRH));
    // Without it (silicon's RXSTMPH release on QEMU), the latch stays held: later Syncs come
    // unstamped and are dropped, counted.
    let nic = FakeNic::new(Family::E82576, true, RX_MEM_BYTES, TX_MEM_BYTES);
    let cfg = PortConfig {
        family: Family::E82576,
        transport: Transport::L2,
        mac: OUR_MAC,
        domain: 0,
        stamp_unlock: StampUnlock::RxstmphRead,
    };
    let mut p = NetPort::new(nic.rx_mem.clone(), nic.tx_mem.clone(), cfg).unwrap();
    p.bring_up(&*nic).unwrap();
    for _ in 0..3 {
        assert!(nic.deliver(&sync));
    }
    assert_eq!(poll(&nic, &mut p).len(), 1);
    assert_eq!(p.port_counters().event_unstamped, 2);
}

#[test]
fn a_stuck_rx_latch_is_cleared_after_a_bounded_wait_and_counted() {
    let (nic, mut p) = port(Family::E82576, false, Transport::L2);
    let sync = from_master(frame::Transport::L2, &ptp_message(SYNC, 44, 0, 1));
    // Fill the ring without polling: the next Sync is stamped but dropped (no descriptor).
    let mut delivered = 0;
    while nic.deliver(&from_master(frame::Transport::L2, &ptp_message(ANNOUNCE, 64, 0, 1))) {
        delivered += 1;
    }
    assert_eq!(delivered, RX_DESCS - 1);
    assert!(!nic.deliver(&sync));
    assert!(nic.rx_latch_valid(), "the dropped frame's stamp holds the latch");
    assert_eq!(poll(&nic, &mut p).len(), RX_DESCS - 1);
    // Every later Sync is unstamped while the latch is held.
    assert!(nic.deliver(&sync));
    assert!(poll(&nic, &mut p).is_empty());
    assert_eq!(p.port_counters().event_unstamped, 1);
    let t0 = 5_000_000_000;
    assert!(!p.check_rx_latch(&*nic, t0), "VALID for a moment is a frame on its way");
    assert!(!p.check_rx_latch(&*nic, t0 + STUCK_RX_LATCH_NS - 1));
    assert!(p.check_rx_latch(&*nic, t0 + STUCK_RX_LATCH_NS), "held past the bound: cleared");
    assert!(!nic.rx_latch_valid());
    assert_eq!(p.port_counters().rx_latch_cleared, 1);
    assert!(nic.deliver(&sync));
    assert_eq!(poll(&nic, &mut p).len(), 1, "stamps flow again");
}

#[test]
fn the_82580_and_i210_stamp_in_the_buffer_and_the_i210_is_latency_compensated() {
    for family in [Family::E82580, Family::I210] {
        let (nic, mut p) = port(family, false, Transport::L2);
        let t = nic.raw_now();
        assert!(nic.deliver(&from_master(frame::Transport::L2, &ptp_message(SYNC, 44, 0, 7))));
        let got = poll(&nic, &mut p);
        let stamp = stamp_of(&got[0]);
        assert_eq!(raw(stamp), t, "{family:?}: SYSTIM from the 16-byte header");
        match &got[0] {
            Received::Event { data, .. } => assert_eq!(data.len(), 44, "header stripped"),
            _ => unreachable!(),
        }
        let ns = |_: u32, _: u32| Nanos(1_000_000);
        let (rx, tx) = (p.rx_stamp_ns(stamp, ns).0, p.tx_stamp_ns(stamp, ns).0);
        match family {
            Family::I210 => {
                assert_eq!((rx, tx), (1_000_000 - 448, 1_000_000 + 178), "1000 Mb/s");
                p.set_link_speed(LinkSpeed::Mbps100);
                assert_eq!(p.rx_stamp_ns(stamp, ns).0, 1_000_000 - 2213);
            }
            _ => assert_eq!((rx, tx), (1_000_000, 1_000_000), "no compensation off the i210"),
        }
    }
}

#[test]
fn the_link_speed_is_followed_for_the_i210_compensation() {
    let (nic, mut p) = port(Family::I210, false, Transport::L2);
    assert!(p.link_up());
    assert_eq!(p.latency().rx_ns, 448, "1000 Mb/s at bring-up");
    nic.set_status(0x0);
    assert!(!p.check_link(&*nic), "link down");
    nic.set_status(0x2 | 0x40);
    assert!(p.check_link(&*nic));
    assert_eq!(p.link_speed(), LinkSpeed::Mbps100);
    assert_eq!(p.latency(), nicclock_driver::net::port::StampLatency { tx_ns: 1024, rx_ns: 2213 });
}

#[test]
fn bad_frames_are_dropped_and_counted_never_delivered() {
    let (nic, mut p) = port(Family::E82576, false, Transport::L2);
    let mut looped = from_master(frame::Transport::L2, &ptp_message(ANNOUNCE, 64, 0, 1));
    looped[6..12].copy_from_slice(&OUR_MAC);
    let cases: Vec<Vec<u8>> = vec![
        vec![0xff; 10],                                                        // truncated
        [&[0xff; 12][..], &[0x08, 0x06], &[0; 46]].concat(),                   // ARP: not PTP
        from_master(frame::Transport::L2, &ptp_message(SYNC, 44, 5, 1)),       // wrong domain
        from_master(frame::Transport::Udp4, &ptp_message(ANNOUNCE, 64, 0, 1)), // other transport
        looped,                                                                // our own
        from_master(frame::Transport::L2, &ptp_message(ANNOUNCE, 64, 0, 1))[..40].to_vec(),
    ];
    for c in &cases {
        nic.deliver(c);
    }
    assert!(poll(&nic, &mut p).is_empty(), "nothing of that is for us");
    let d = p.counters();
    assert_eq!(d.dropped(Reject::Truncated), 1);
    assert_eq!(d.dropped(Reject::NotPtp), 1);
    assert_eq!(d.dropped(Reject::OtherTransport), 1);
    assert_eq!(d.dropped(Reject::Looped), 1);
    assert_eq!(d.total_dropped(), 5, "{:?}", d.iter().filter(|r| r.1 > 0).collect::<Vec<_>>());
    assert_eq!(p.port_counters().wrong_domain, 1);
    assert!(!nic.rx_latch_valid(), "the wrong-domain Sync's stamp was read and released anyway");
}

#[test]
fn the_tx_stamp_is_read_once_done_and_one_is_in_flight() {
    let src = Ipv4Addr::new(192, 168, 7, 2);
    let (nic, mut p) = port(Family::E82576, false, Transport::Udp4 { src });
    assert_eq!(p.poll_tx_stamp(&*nic, 0), None, "nothing asked");
    let t = nic.raw_now();
    p.send_event(&*nic, &ptp_message(DELAY_REQ, 44, 0, 3)).unwrap();
    assert!(matches!(p.send_event(&*nic, &ptp_message(DELAY_REQ, 44, 0, 4)), Err(PortError::StampInFlight)));
    p.send_general(&*nic, &ptp_message(ANNOUNCE, 64, 0, 1)).unwrap();
    let sent = nic.take_sent();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].1 && !sent[1].1, "only the event asked for a stamp");
    let parsed = FrameFilter { transport: frame::Transport::Udp4, own_mac: [9; 6], vlan: None }
        .parse(&sent[0].0)
        .unwrap();
    assert_eq!(parsed.src_ip, Some(src));
    assert_eq!(parsed.class, frame::MessageClass::Event, "to port 319");
    match p.poll_tx_stamp(&*nic, 10) {
        Some(TxStampOutcome::Stamped(s)) => assert_eq!(raw(s), t),
        other => panic!("{other:?}"),
    }
    assert!(!nic.tx_latch_valid(), "TXSTMPH's read released it");
    assert_eq!(p.poll_tx_stamp(&*nic, 20), None);
    p.send_event(&*nic, &ptp_message(DELAY_REQ, 44, 0, 4)).unwrap();
    assert!(matches!(p.poll_tx_stamp(&*nic, 30), Some(TxStampOutcome::Stamped(_))));
    assert_eq!(p.port_counters().tx_stamps, 2);
}

#[test]
fn a_tx_stamp_that_never_comes_is_lost_after_a_bounded_wait_not_waited_for_forever() {
    let (nic, mut p) = port(Family::E82576, false, Transport::L2);
    nic.break_tx_stamping(true);
    p.send_event(&*nic, &ptp_message(DELAY_REQ, 44, 0, 1)).unwrap();
    let t0 = 1_000;
    assert_eq!(p.poll_tx_stamp(&*nic, t0), None);
    assert_eq!(p.poll_tx_stamp(&*nic, t0 + TX_STAMP_TIMEOUT_NS - 1), None);
    nic.take_reads();
    assert_eq!(p.poll_tx_stamp(&*nic, t0 + TX_STAMP_TIMEOUT_NS), Some(TxStampOutcome::Lost));
    assert!(nic.take_reads().contains(&TXSTMPH), "the latch is cleared as Linux does");
    assert_eq!(p.port_counters().tx_stamps_lost, 1);
    assert!(!p.tx_stamp_pending());
    // Abandoning one for the next event message counts it too.
    nic.break_tx_stamping(false);
    p.send_event(&*nic, &ptp_message(DELAY_REQ, 44, 0, 2)).unwrap();
    assert!(p.abandon_tx_stamp(&*nic));
    assert!(!nic.tx_latch_valid());
    assert_eq!(p.port_counters().tx_stamps_lost, 2);
    p.send_event(&*nic, &ptp_message(DELAY_REQ, 44, 0, 3)).unwrap();
    assert!(matches!(p.poll_tx_stamp(&*nic, 0), Some(TxStampOutcome::Stamped(_))));
}

#[test]
fn the_82574_has_no_datapath() {
    let nic = FakeNic::new(Family::E82576, false, RX_MEM_BYTES, TX_MEM_BYTES);
    let cfg = PortConfig {
        family: Family::E82574,
        transport: Transport::L2,
        mac: OUR_MAC,
        domain: 0,
        stamp_unlock: StampUnlock::RxstmphRead,
    };
    let err = NetPort::new(nic.rx_mem.clone(), nic.tx_mem.clone(), cfg).err().unwrap();
    assert!(err.to_string().contains("82576"), "{err}");
}

#[test]
fn random_and_mangled_frames_never_panic_and_every_one_is_accounted_for() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let (nic, mut p) = port(Family::E82576, true, Transport::L2);
    let mut rng = SmallRng::seed_from_u64(10);
    let good = [
        from_master(frame::Transport::L2, &ptp_message(SYNC, 44, 0, 1)),
        from_master(frame::Transport::L2, &ptp_message(ANNOUNCE, 64, 0, 1)),
        from_master(frame::Transport::Udp4, &ptp_message(SYNC, 44, 0, 1)),
    ];
    let (mut delivered, mut received) = (0u64, 0u64);
    for i in 0..50_000 {
        let mut f = if rng.random_bool(0.2) {
            (0..rng.random_range(0..1600)).map(|_| rng.random()).collect()
        } else {
            good[i % good.len()].clone()
        };
        for _ in 0..rng.random_range(0..4) {
            if !f.is_empty() {
                let k = rng.random_range(0..f.len());
                f[k] = rng.random();
            }
        }
        if rng.random_bool(0.1) {
            f.truncate(rng.random_range(0..=f.len()));
        }
        delivered += u64::from(nic.deliver(&f));
        if i % 7 == 0 {
            received += poll(&nic, &mut p).len() as u64;
        }
    }
    received += poll(&nic, &mut p).len() as u64;
    let d = p.counters();
    let c = p.port_counters();
    assert_eq!(
        d.accepted + d.total_dropped() + c.rx_ring_discards,
        delivered,
        "every frame the ring took is accepted or dropped for a reason"
    );
    assert_eq!(received, d.accepted - c.wrong_domain - c.event_unstamped, "{c:?}");
    assert!(received > 1_000 && d.total_dropped() > 1_000, "both kinds seen: {received} {d:?}");
}
