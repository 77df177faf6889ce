//! The PTP slave on the simulated wire is fed through the datapath: frames in the NICs' rings,
//! stamps from the registers each family has (82576 latch, i210 buffer header), UDP/IPv4 as well
//! as L2 (the i210's stamp latencies compensated), and QEMU's limits show (it stamps no UDP frame: the slave cannot measure).

use nicclock_driver::net::frame::Transport;
use nicclock_driver::ptp::simwire::{run, WireScenario};
use nicclock_driver::ptp::PortState;
use nicclock_driver::sim::SimModel;

fn scenario(duration_s: f64) -> WireScenario {
    WireScenario { duration_s, ..WireScenario::standard() }
}

#[test]
fn every_message_went_through_the_rings_and_stamp_registers() {
    let o = run(&scenario(30.0)).unwrap();
    let d = o.slave_datapath;
    assert!((0.5..0.501).contains(&o.link_up_s), "link up {} s: 500 ms of autonegotiation", o.link_up_s);
    assert!(d.rx_frames > 500 && d.tx_frames > 150, "{d:?}");
    assert_eq!(d.rx_frames, o.slave_drops.accepted + o.slave_drops.total_dropped());
    // 82576: every Sync stamped into RXSTMPL/H (about a third of what arrives), every Delay_Req
    // into TXSTMPL/H.
    assert!(d.rx_latched * 4 > d.rx_frames && d.rx_latched * 2 < d.rx_frames, "{d:?}");
    assert_eq!(d.tx_stamped, d.tx_frames, "only Delay_Reqs are sent");
    assert_eq!((d.rx_latch_held, d.rx_dropped_no_descriptor, o.rx_unstamped), (0, 0, 0));
    assert_eq!(o.final_status.state, PortState::Slave);
    assert!(o.lock_time_s.is_some());
}

#[test]
fn an_i210_slave_locks_on_in_buffer_stamps() {
    let mut sc = scenario(40.0);
    sc.sim.model = SimModel::I210;
    let o = run(&sc).unwrap();
    let d = o.slave_datapath;
    assert_eq!(d.rx_latched, 0);
    assert_eq!(d.rx_packet_stamped, d.rx_frames, "type ALL: every frame has its header");
    assert_eq!(o.final_status.state, PortState::Slave);
    assert!(o.lock_time_s.is_some(), "never within 100 ns");
    // Both ends' i210 stamp latencies (TX 178 ns early, RX 448 ns late) compensated: no bias.
    let mean = o.summary.mean_offset_ns.unwrap();
    assert!(mean.abs() < 15.0, "mean true offset {mean} ns");
}

#[test]
fn udp4_locks_on_silicon_but_qemu_stamps_no_udp_frame() {
    let mut sc = scenario(40.0);
    sc.transport = Transport::Udp4;
    let o = run(&sc).unwrap();
    assert!(o.slave_datapath.rx_latched > 200, "UDP port 319 stamped via FTQF: {:?}", o.slave_datapath);
    assert!(o.lock_time_s.is_some());
    sc.sim.qemu = true;
    let q = run(&sc).unwrap();
    assert_eq!(q.slave_datapath.rx_latched, 0, "QEMU stamps only through ETQF (L2)");
    assert!(q.rx_unstamped > 200, "Syncs without a stamp are dropped: {}", q.rx_unstamped);
    assert!(q.lock_time_s.is_none(), "no measurement, no lock");
}

#[test]
fn the_page_bound_covers_an_unseen_100_ns_asymmetry() {
    let mut sc = scenario(60.0);
    sc.link.asymmetry_ns = 100;
    sc.page = Some(nicclock_driver::ptp::page::PtpPageConfig::default());
    let o = run(&sc).unwrap();
    let mean = o.summary.mean_offset_ns.unwrap();
    assert!((-65.0..=-35.0).contains(&mean), "the truth shows half the asymmetry: {mean} ns");
    let p = o.page.expect("the page ran");
    assert!(p.locked_updates > 300, "{p:?}");
    assert_eq!(p.violations, 0, "a LOCKED bound below the true error: {p:?}");
    assert!(p.worst_error_ns.unwrap() >= 35, "the page's error includes the bias: {p:?}");
}
