//! The simulated link between two simulated NICs: a frame sent through one NIC's TX ring arrives
//! in the other's RX ring after the path delay, stamped at both ends; loss and asymmetry show in
//! the link's statistics as configured; a NIC whose link is down neither sends nor receives.

use std::sync::Arc;
use std::time::Duration;

use nicclock_driver::model::Family;
use nicclock_driver::net::bringup::{bring_up, RingPlace};
use nicclock_driver::net::frame::{FrameSpec, Transport};
use nicclock_driver::net::phy;
use nicclock_driver::net::ring::{bytes_needed, RxRing, TxRing};
use nicclock_driver::regs;
use nicclock_driver::sim::{HostMemory, LinkConfig, RxDrop, Side, SimConfig, SimLink, SimModel, SimNic};
use nicclock_driver::timesource::{TimeSource, VirtualTime};
use nicclock_uio::RegisterAccess;

const DESCS: usize = 64;

struct End {
    nic: Arc<SimNic>,
    rx: RxRing<HostMemory>,
    tx: TxRing<HostMemory>,
}

fn end(time: &Arc<VirtualTime>, seed: u64, base: u64) -> End {
    let config = SimConfig { link_up_at_reset: false, seed, ..SimConfig::ideal() };
    let nic = Arc::new(SimNic::new(config, time.clone()));
    let rx_mem = HostMemory::new(bytes_needed(DESCS), base);
    let tx_mem = HostMemory::new(bytes_needed(DESCS), base + 0x1000_0000);
    nic.attach_memory(rx_mem.clone());
    nic.attach_memory(tx_mem.clone());
    nic.write32(regs::TIMINCA, 0x0180_0000);
    End { nic, rx: RxRing::new(rx_mem, 0, DESCS).unwrap(), tx: TxRing::new(tx_mem, 0, DESCS).unwrap() }
}

fn up(time: &VirtualTime, e: &End) {
    phy::link_up_with(&*e.nic, Duration::from_secs(5), &mut |d| time.advance(d.as_nanos() as u64)).unwrap();
    let place = |addr| RingPlace { desc_addr: addr, descs: DESCS };
    bring_up(&*e.nic, Family::E82576, place(e.rx.desc_addr()), place(e.tx.desc_addr())).unwrap();
}

fn sync(seq: u16) -> Vec<u8> {
    let mut m = vec![0u8; 44];
    m[1] = 2;
    m[2..4].copy_from_slice(&44u16.to_be_bytes());
    m[30..32].copy_from_slice(&seq.to_be_bytes());
    let spec = FrameSpec {
        transport: Transport::L2,
        src_mac: [0x02, 0, 0, 0, 0, 1],
        src_ip: std::net::Ipv4Addr::UNSPECIFIED,
        vlan_tci: None,
        udp_checksum: false,
        ip_id: 0,
    };
    spec.build(&m).unwrap()
}

fn send(e: &mut End, frame: &[u8]) {
    let nic = e.nic.clone();
    e.tx.send(&*nic, true, |buf| {
        buf[..frame.len()].copy_from_slice(frame);
        frame.len()
    })
    .unwrap();
    while e.tx.reap().is_some() {}
}

fn stamp(nic: &SimNic, lo: usize, hi: usize) -> u64 {
    let l = nic.read32(lo) as u64;
    l | (nic.read32(hi) as u64) << 32
}

#[test]
fn a_frame_crosses_the_link_through_both_rings_after_the_path_delay() {
    let time = VirtualTime::new();
    let link = SimLink::new(LinkConfig { delay_ns: 5_000, ..LinkConfig::default() });
    let mut a = end(&time, 1, 0x1_0000_0000);
    let mut b = end(&time, 2, 0x2_0000_0000);
    let (ea, eb) = (link.plug(Side::A, a.nic.clone()), link.plug(Side::B, b.nic.clone()));
    up(&time, &a);
    up(&time, &b);
    time.advance(1_000_000_000);
    let frame = sync(1);
    send(&mut a, &frame);
    let t1 = stamp(&a.nic, regs::TXSTMPL, regs::TXSTMPH);
    assert_eq!(t1, a.nic.truth().raw, "TX stamped at the TDT write");
    let sent = time.now_ns();
    assert_eq!(link.next_arrival(), Some(sent + 5_000));
    let arrivals = link.run_until(&time, sent + 1_000_000);
    assert_eq!(arrivals.len(), 1);
    assert_eq!((arrivals[0].end, arrivals[0].at_ns), (eb, sent + 5_000));
    let delivered = arrivals[0].outcome.expect("in B's ring");
    let nic = b.nic.clone();
    let got = b.rx.receive(&*nic, |f| (f.bytes.to_vec(), f.latched_timestamp)).unwrap().unwrap();
    assert_eq!(got, (frame, true));
    let t2 = stamp(&b.nic, regs::RXSTMPL, regs::RXSTMPH);
    assert_eq!(Some(t2), delivered.stamp);
    // Both ideal oscillators started by the same TIMINCA write at 0: t2 − t1 is the path delay,
    // to the 82576's 16 ns increment period.
    let measured = (t2 - t1) >> 19;
    assert!((4_992..=5_008).contains(&measured), "{measured} ns");
    assert_ne!(ea, eb);
}

#[test]
fn loss_and_asymmetry_show_in_the_statistics() {
    let time = VirtualTime::new();
    let config = LinkConfig { delay_ns: 5_000, asymmetry_ns: 100, jitter_ns: 10.0, loss: 0.1, seed: 3 };
    let link = SimLink::new(config);
    let mut a = end(&time, 1, 0x1_0000_0000);
    let mut b = end(&time, 2, 0x2_0000_0000);
    link.plug(Side::A, a.nic.clone());
    link.plug(Side::B, b.nic.clone());
    up(&time, &a);
    up(&time, &b);
    for k in 0..2_000u16 {
        let t = time.now_ns();
        send(&mut a, &sync(k));
        send(&mut b, &sync(k));
        link.run_until(&time, t + 1_000_000);
        for e in [&mut a, &mut b] {
            let nic = e.nic.clone();
            while e.rx.receive(&*nic, |_| ()).is_some() {}
            nic.read32(regs::RXSTMPH);
        }
    }
    let s = link.stats();
    assert_eq!(s.sent, [2_000, 2_000]);
    for dir in 0..2 {
        let loss = s.loss_rate(dir).unwrap();
        assert!((0.08..0.12).contains(&loss), "direction {dir} lost {loss}");
        assert_eq!(s.arrived[dir], s.received[dir], "every copy that arrived was received");
    }
    let (ab, ba) = (s.mean_delay_ns(0).unwrap(), s.mean_delay_ns(1).unwrap());
    assert!((ab - 5_050.0).abs() < 2.0 && (ba - 4_950.0).abs() < 2.0, "A→B {ab} ns, B→A {ba} ns");
    assert_eq!(b.nic.datapath_stats().rx_frames, s.received[0]);
}

#[test]
fn a_nic_without_link_neither_sends_nor_receives() {
    let time = VirtualTime::new();
    let link = SimLink::new(LinkConfig::default());
    let mut a = end(&time, 1, 0x1_0000_0000);
    let b = end(&time, 2, 0x2_0000_0000);
    link.plug(Side::A, a.nic.clone());
    link.plug(Side::B, b.nic.clone());
    up(&time, &a);
    // B never negotiated: A's frame reaches B's PHY and is dropped there.
    send(&mut a, &sync(1));
    let arrivals = link.run_until(&time, time.now_ns() + 1_000_000);
    assert_eq!(arrivals[0].outcome, Err(RxDrop::LinkDown));
    assert_eq!(b.nic.datapath_stats().rx_dropped_link_down, 1);
    let model = a.nic.config().model;
    assert_eq!(model, SimModel::I82576);
}
